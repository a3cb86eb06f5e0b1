//! Contract versions: plugins built against tally:aggregate@1.1.0 (the SDK) decide
//! a command in one call; plugins built against 1.0.0 still load and decide with
//! `handle` then `apply`, with the same answers.

use tally_test_support::components;

use crate::{command, context, plugin, text};

#[test]
fn sdk_plugins_export_decide_and_a_1_0_plugin_does_not() {
    assert!(plugin(components::BANK_ACCOUNT_V1).exports_decide());
    assert!(plugin(components::BANK_ACCOUNT_V2).exports_decide());
    assert_eq!(
        plugin(components::BANK_ACCOUNT_V1).contract(),
        tally_runtime::semver::Version::new(1, 1, 0)
    );
    let counter = plugin(components::TEST_CONTRACT_V1);
    assert!(!counter.exports_decide());
    assert_eq!(
        counter.contract(),
        tally_runtime::semver::Version::new(1, 0, 0)
    );
    assert_eq!(counter.info().aggregate_type, "counter");
}

#[test]
fn a_1_0_plugin_decides_through_handle_then_apply() {
    let mut counter = plugin(components::TEST_CONTRACT_V1).instance();
    let state = counter.initial_state().unwrap();
    let (events, state) = counter
        .decide(
            &context("c-1", 0),
            &state,
            &command("Add", r#"{"amount": 5}"#),
        )
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].name.as_str(), events[0].version), ("Added", 1));
    assert_eq!(text(&state), r#"{"total":5}"#);
    let (_, state) = counter
        .decide(
            &context("c-1", 1),
            &state,
            &command("Add", r#"{"amount": 7}"#),
        )
        .unwrap()
        .unwrap();
    assert_eq!(text(&state), r#"{"total":12}"#);

    let rejection = counter
        .decide(
            &context("c-1", 2),
            &state,
            &command("Add", r#"{"amount": 0}"#),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(rejection.code, "invalid-amount");
}

#[test]
fn decide_on_the_host_answers_as_handle_then_apply() {
    let mut v1 = plugin(components::BANK_ACCOUNT_V1).instance();
    let initial = v1.initial_state().unwrap();
    let open = command("OpenAccount", r#"{"initial_balance": 100}"#);
    let (events, opened) = v1
        .decide(&context("acc-1", 0), &initial, &open)
        .unwrap()
        .unwrap();
    let handled = v1
        .handle(&context("acc-1", 0), &initial, &open)
        .unwrap()
        .unwrap();
    assert_eq!(events, handled);
    assert_eq!(opened, v1.apply(&initial, &handled).unwrap().unwrap());

    let overdraw = command("Withdraw", r#"{"amount": 101}"#);
    let rejection = v1
        .decide(&context("acc-1", 1), &opened, &overdraw)
        .unwrap()
        .unwrap_err();
    assert_eq!(rejection.code, "insufficient-funds");
}
