//! bank-account v1 across the boundary: a whole account life through handle, apply
//! and state-json; rejections; malformed commands; bad input to apply.

use serde_json::json;
use tally_plugin_contract_tests::{PluginInstance, command, components, context, data_json, event};

fn v1() -> PluginInstance {
    PluginInstance::load(components::BANK_ACCOUNT_V1).unwrap()
}

/// Handles `command` on `state`, applies the events, and returns them with the new state.
fn decide_and_apply(
    plugin: &mut PluginInstance,
    state: &[u8],
    version: u64,
    name: &str,
    data: &str,
) -> (Vec<tally_plugin_contract_tests::Event>, Vec<u8>) {
    let events = plugin
        .handle(&context("acc-1", version), state, &command(name, data))
        .unwrap()
        .unwrap();
    let state = plugin.apply(state, &events).unwrap().unwrap();
    (events, state)
}

#[test]
fn an_account_lives_through_open_deposit_withdraw_and_close() {
    let mut plugin = v1();
    let state = plugin.initial_state().unwrap();
    assert_eq!(
        plugin.state_json(&state).unwrap().unwrap(),
        json!({"balance": 0, "open": false, "closed": false})
    );

    let (events, state) = decide_and_apply(
        &mut plugin,
        &state,
        0,
        "OpenAccount",
        r#"{"initial_balance": 1000}"#,
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].name.as_str(), events[0].version),
        ("AccountOpened", 1)
    );
    assert_eq!(data_json(&events[0]), json!({"initial_balance": 1000}));

    let (events, state) = decide_and_apply(&mut plugin, &state, 1, "Deposit", r#"{"amount": 500}"#);
    assert_eq!(data_json(&events[0]), json!({"amount": 500}));
    let (_, state) = decide_and_apply(&mut plugin, &state, 2, "Withdraw", r#"{"amount": 1500}"#);
    assert_eq!(
        plugin.state_json(&state).unwrap().unwrap(),
        json!({"balance": 0, "open": true, "closed": false})
    );

    let (events, state) = decide_and_apply(&mut plugin, &state, 3, "CloseAccount", "{}");
    assert_eq!(
        (events[0].name.as_str(), data_json(&events[0])),
        ("AccountClosed", json!({}))
    );
    assert_eq!(
        plugin.state_json(&state).unwrap().unwrap(),
        json!({"balance": 0, "open": false, "closed": true})
    );
}

#[test]
fn apply_folds_a_whole_batch_in_one_call() {
    let mut plugin = v1();
    let initial = plugin.initial_state().unwrap();
    let batch = [
        event("AccountOpened", 1, r#"{"initial_balance": 10}"#),
        event("MoneyDeposited", 1, r#"{"amount": 5}"#),
        event("MoneyWithdrawn", 1, r#"{"amount": 3}"#),
    ];
    let state = plugin.apply(&initial, &batch).unwrap().unwrap();
    assert_eq!(
        plugin.state_json(&state).unwrap().unwrap()["balance"],
        json!(12)
    );
}

#[test]
fn rule_violations_come_back_as_rejections_with_their_codes() {
    let mut plugin = v1();
    let initial = plugin.initial_state().unwrap();
    let open = [event("AccountOpened", 1, r#"{"initial_balance": 100}"#)];
    let opened = plugin.apply(&initial, &open).unwrap().unwrap();
    let empty_closed = plugin
        .apply(
            &initial,
            &[
                event("AccountOpened", 1, r#"{"initial_balance": 0}"#),
                event("AccountClosed", 1, "{}"),
            ],
        )
        .unwrap()
        .unwrap();
    let cases = [
        (&initial, "Deposit", r#"{"amount": 1}"#, "account-not-open"),
        (
            &initial,
            "OpenAccount",
            r#"{"initial_balance": -5}"#,
            "invalid-amount",
        ),
        (
            &opened,
            "OpenAccount",
            r#"{"initial_balance": 1}"#,
            "account-already-open",
        ),
        (&opened, "Deposit", r#"{"amount": 0}"#, "invalid-amount"),
        (
            &opened,
            "Deposit",
            r#"{"amount": 9223372036854775807}"#,
            "invalid-amount",
        ),
        (
            &opened,
            "Withdraw",
            r#"{"amount": 101}"#,
            "insufficient-funds",
        ),
        (&opened, "CloseAccount", "{}", "balance-not-zero"),
        (
            &empty_closed,
            "Deposit",
            r#"{"amount": 1}"#,
            "account-closed",
        ),
    ];
    for (state, name, data, code) in cases {
        let rejection = plugin
            .handle(&context("acc-1", 1), state, &command(name, data))
            .unwrap()
            .unwrap_err();
        assert_eq!(rejection.code, code, "{name} {data}: {}", rejection.message);
        assert!(!rejection.message.is_empty());
    }
}

#[test]
fn malformed_commands_are_rejected_as_invalid_command_not_trapped() {
    let mut plugin = v1();
    let state = plugin.initial_state().unwrap();
    let cases = [
        (
            "Transfer",
            r#"{"amount": 5}"#,
            r#"unknown command "Transfer""#,
        ),
        ("Deposit", r#"{"amount": "five"}"#, "Deposit: invalid type"),
        (
            "OpenAccount",
            "{}",
            r#"OpenAccount: missing field "initial_balance""#,
        ),
        (
            "Deposit",
            r#"{"amount": 5, "extra": 1}"#,
            r#"Deposit: unknown field "extra" (expected "amount")"#,
        ),
        ("Withdraw", "not json", "Withdraw: data is not JSON"),
    ];
    for (name, data, detail) in cases {
        let rejection = plugin
            .handle(&context("acc-1", 0), &state, &command(name, data))
            .unwrap()
            .unwrap_err();
        assert_eq!(rejection.code, "invalid-command", "{name} {data}");
        assert!(
            rejection.message.contains(detail),
            "{name} {data}: {}",
            rejection.message
        );
    }
    // The instance is still healthy afterwards.
    let events = plugin.handle(
        &context("acc-1", 0),
        &state,
        &command("OpenAccount", r#"{"initial_balance": 1}"#),
    );
    assert_eq!(events.unwrap().unwrap().len(), 1);
}

#[test]
fn state_bytes_that_are_not_a_v1_state_are_an_invalid_state() {
    let mut plugin = v1();
    let rejection = plugin
        .handle(
            &context("acc-1", 0),
            b"\x00garbage",
            &command("CloseAccount", "{}"),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(rejection.code, "invalid-state");
    assert!(
        plugin
            .state_json(b"\x00garbage")
            .unwrap()
            .unwrap_err()
            .contains("state cannot be decoded")
    );
}

#[test]
fn apply_reports_events_it_cannot_read_as_errors() {
    let mut plugin = v1();
    let state = plugin.initial_state().unwrap();
    let cases = [
        (
            event("InterestPaid", 1, r#"{"amount": 1}"#),
            "unknown variant",
        ),
        (
            event("MoneyDeposited", 1, r#"{"amount": "x"}"#),
            "invalid type",
        ),
        (
            event(
                "AccountOpened",
                2,
                r#"{"initial_balance": 1, "currency": "EUR"}"#,
            ),
            "upcast it first",
        ),
    ];
    for (bad, detail) in cases {
        let good = event("AccountOpened", 1, r#"{"initial_balance": 1}"#);
        let error = plugin.apply(&state, &[good, bad]).unwrap().unwrap_err();
        assert!(
            error.contains("event 1 of the batch") && error.contains(detail),
            "{error}"
        );
    }
}

#[test]
fn upcast_is_the_identity_for_current_events_and_refuses_newer_ones() {
    let mut plugin = v1();
    let current = event("MoneyDeposited", 1, r#"{"amount":5}"#);
    assert_eq!(plugin.upcast(&current).unwrap().unwrap(), [current]);
    let newer = event(
        "AccountOpened",
        2,
        r#"{"initial_balance":1,"currency":"EUR"}"#,
    );
    assert!(
        plugin
            .upcast(&newer)
            .unwrap()
            .unwrap_err()
            .contains("newer than this plugin")
    );
}
