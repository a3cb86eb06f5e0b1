//! A panic in plugin code reaches the host as a readable message: the trap itself
//! only says "unreachable", the SDK's panic hook puts the message on stderr.

use tally_plugin_contract_tests::{PluginInstance, command, components, context};

#[test]
fn a_panic_in_handle_traps_and_its_message_is_on_stderr() {
    let mut plugin = PluginInstance::load(components::TEST_PANIC).unwrap();
    let state = plugin.initial_state().unwrap();
    assert_eq!(plugin.panic_message(), None);

    let trap = plugin
        .handle(
            &context("p-1", 0),
            &state,
            &command("Explode", r#"{"reason": "line 1\nline 2"}"#),
        )
        .expect_err("a panic must trap, not return");
    assert!(format!("{trap:?}").contains("unreachable"), "{trap:?}");

    let message = plugin
        .panic_message()
        .expect("the panic hook reported the panic on stderr");
    assert!(
        message.starts_with("test-panic was told to explode: line 1\\nline 2 (at "),
        "{message}"
    );
    assert!(message.contains("test-panic/src/lib.rs:"), "{message}");
}

#[test]
fn a_plugin_that_does_not_panic_writes_nothing_to_stderr() {
    let mut plugin = PluginInstance::load(components::TEST_PANIC).unwrap();
    let state = plugin.initial_state().unwrap();
    let events = plugin
        .handle(&context("p-2", 0), &state, &command("Touch", "{}"))
        .unwrap()
        .unwrap();
    let state = plugin.apply(&state, &events).unwrap().unwrap();
    assert_eq!(
        plugin.state_json(&state).unwrap().unwrap(),
        serde_json::json!({"touches": 1})
    );
    assert_eq!(plugin.stderr(), "");
}

#[test]
fn an_instance_that_trapped_refuses_further_calls() {
    let mut plugin = PluginInstance::load(components::TEST_PANIC).unwrap();
    let state = plugin.initial_state().unwrap();
    plugin
        .handle(
            &context("p-3", 0),
            &state,
            &command("Explode", r#"{"reason": "once"}"#),
        )
        .unwrap_err();
    let after = plugin.handle(&context("p-3", 0), &state, &command("Touch", "{}"));
    assert!(
        after.is_err(),
        "a trapped instance must not be re-entered: {after:?}"
    );
}
