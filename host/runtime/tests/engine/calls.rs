//! Typed calls on the reference plugins: handle, apply, upcast, state-json, and
//! the instance pool and recycling.

use tally_runtime::{EngineConfig, LoadedPlugin, PluginEngine, PluginInstance};
use tally_test_support::components;

use crate::{bytes, command, context, engine, event, plugin, test_config, text};

/// Handles `name`/`data` on `state` (which has `version` events), applies the
/// events and returns the new state.
fn decide_and_apply(
    instance: &mut PluginInstance,
    state: &[u8],
    version: u64,
    name: &str,
    data: &str,
) -> Vec<u8> {
    let events = instance
        .handle(&context("acc-1", version), state, &command(name, data))
        .unwrap()
        .unwrap();
    instance.apply(state, &events).unwrap().unwrap()
}

#[test]
fn open_and_deposit_round_trip_through_handle_apply_and_state_json() {
    let mut v1 = plugin(components::BANK_ACCOUNT_V1).instance();
    let state = v1.initial_state().unwrap();
    assert_eq!(
        text(&v1.state_json(&state).unwrap().unwrap()),
        r#"{"balance":0,"closed":false,"open":false}"#
    );

    let events = v1
        .handle(
            &context("acc-1", 0),
            &state,
            &command("OpenAccount", r#"{"initial_balance": 1000}"#),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        events,
        [event("AccountOpened", 1, r#"{"initial_balance":1000}"#)]
    );
    let state = v1.apply(&state, &events).unwrap().unwrap();
    let state = decide_and_apply(&mut v1, &state, 1, "Deposit", r#"{"amount": 500}"#);
    assert_eq!(
        text(&v1.state_json(&state).unwrap().unwrap()),
        r#"{"balance":1500,"closed":false,"open":true}"#
    );
}

#[test]
fn a_business_rule_is_a_rejection_not_an_error() {
    let mut v1 = plugin(components::BANK_ACCOUNT_V1).instance();
    let state = v1.initial_state().unwrap();
    let state = decide_and_apply(
        &mut v1,
        &state,
        0,
        "OpenAccount",
        r#"{"initial_balance": 100}"#,
    );
    let rejection = v1
        .handle(
            &context("acc-1", 1),
            &state,
            &command("Withdraw", r#"{"amount": 200}"#),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(rejection.code, "insufficient-funds");
    let malformed = v1
        .handle(
            &context("acc-1", 1),
            &state,
            &command("Withdraw", "not json"),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(malformed.code, "invalid-command");
}

#[test]
fn apply_and_state_json_report_unreadable_input_as_errors() {
    let mut v1 = plugin(components::BANK_ACCOUNT_V1).instance();
    let state = v1.initial_state().unwrap();
    let unknown = v1
        .apply(&state, &[event("MoneyTeleported", 1, "{}")])
        .unwrap();
    assert!(unknown.is_err(), "{unknown:?}");
    assert!(v1.state_json(b"\xff not a state").unwrap().is_err());
    // The instance is fine after answering with an error.
    assert!(v1.initial_state().is_ok());
}

#[test]
fn v2_upcasts_a_v1_stream_and_applies_it() {
    let mut v2 = plugin(components::BANK_ACCOUNT_V2).instance();
    let stored = [
        event("AccountOpened", 1, r#"{"initial_balance":2000}"#),
        event("MoneyDeposited", 1, r#"{"amount":500}"#),
    ];
    let mut current = Vec::new();
    for event in &stored {
        current.extend(v2.upcast(event).unwrap().unwrap());
    }
    assert_eq!(current[0].name, "AccountOpened");
    assert_eq!(current[0].version, 2);
    assert!(
        text(&current[0].data).contains(r#""currency":"USD""#),
        "{}",
        text(&current[0].data)
    );
    // An event already current comes back unchanged.
    assert_eq!(
        v2.upcast(&current[1]).unwrap().unwrap(),
        [current[1].clone()]
    );

    let state = v2.initial_state().unwrap();
    let state = v2.apply(&state, &current).unwrap().unwrap();
    let json = v2.state_json(&state).unwrap().unwrap();
    assert!(text(&json).contains(r#""balance":2500"#), "{}", text(&json));
    assert!(
        text(&json).contains(r#""currency":"USD""#),
        "{}",
        text(&json)
    );
}

#[test]
fn instances_return_to_the_pool_and_are_reused() {
    // The impostor: no other test of this binary takes instances of it, so the
    // counts below are this test's alone.
    let pooled = plugin(components::TEST_IMPOSTOR);
    // Holding two at once forces two distinct instances.
    let mut first = pooled.instance();
    let mut second = pooled.instance();
    first.initial_state().unwrap();
    second.initial_state().unwrap();
    drop(first);
    drop(second);
    assert_eq!(pooled.idle_instances(), 2);
    assert_eq!(
        pooled.instantiations(),
        2,
        "describe's instance, then one more"
    );
    let before = pooled.instantiations();
    let mut again = pooled.instance();
    assert!(again.calls_on_current_instance() >= 1, "a pooled instance");
    again.initial_state().unwrap();
    assert_eq!(
        pooled.instantiations(),
        before,
        "no new instance was needed"
    );
}

#[test]
fn instances_are_recycled_after_the_configured_number_of_calls() {
    let engine = PluginEngine::new(EngineConfig {
        max_calls_per_instance: 3,
        ..test_config()
    })
    .unwrap();
    let panic_plugin = LoadedPlugin::load(&engine, &bytes(components::TEST_PANIC)).unwrap();
    // `describe` was call 1 of the instance made at load; it is in the pool.
    assert_eq!(panic_plugin.instantiations(), 1);
    let mut instance = panic_plugin.instance();
    let mut state = instance.initial_state().unwrap();
    assert_eq!(instance.calls_on_current_instance(), 2);
    let touch = command("Touch", "{}");
    let events = instance
        .handle(&context("t", 0), &state, &touch)
        .unwrap()
        .unwrap();
    // Third call: recycled right after it.
    assert_eq!(instance.calls_on_current_instance(), 0);
    for _ in 0..4 {
        state = instance.apply(&state, &events).unwrap().unwrap();
    }
    assert_eq!(panic_plugin.instantiations(), 3);
    assert_eq!(instance.calls_on_current_instance(), 1);
    assert_eq!(
        text(&instance.state_json(&state).unwrap().unwrap()),
        r#"{"touches":4}"#
    );
}

#[test]
fn the_pool_keeps_no_more_idle_memory_than_its_budget() {
    // Room for one instance's memory, not two.
    let one_instance = {
        let plugin = LoadedPlugin::load(engine(), &bytes(components::BANK_ACCOUNT_V1)).unwrap();
        let mut instance = plugin.instance();
        instance.initial_state().unwrap();
        drop(instance);
        assert_eq!(plugin.idle_instances(), 1);
        plugin.idle_memory_bytes()
    };
    assert!(one_instance > 0, "an instance holds linear memory");
    let budget = PluginEngine::new(EngineConfig {
        max_idle_memory: one_instance + one_instance / 2,
        ..test_config()
    })
    .unwrap();
    let plugin = LoadedPlugin::load(&budget, &bytes(components::BANK_ACCOUNT_V1)).unwrap();
    let mut first = plugin.instance();
    let mut second = plugin.instance();
    first.initial_state().unwrap();
    second.initial_state().unwrap();
    drop(first);
    drop(second);
    assert_eq!(
        plugin.idle_instances(),
        1,
        "the second did not fit the budget"
    );
    assert!(plugin.idle_memory_bytes() <= one_instance + one_instance / 2);
}
