//! The exported functions on wire data, as the host calls them: `describe`'s shape,
//! the initial state, `upcast`, `apply`'s checks of the events it folds, and
//! `handle`'s check of the state.

use tally_sdk::__private::wire::{self, EventSchema, RawCommand, RawEvent};
use tally_sdk::serde_json::{self, Value, json};
use tally_sdk::testing::stored;
use tally_sdk::{Context, INVALID_STATE};

use crate::ledger::Ledger;

/// The state JSON `state-json` renders for these state bytes.
fn state_json(state: &[u8]) -> Value {
    let json = wire::state_json::<Ledger>(state).expect("a state the plugin encoded");
    serde_json::from_slice(&json).expect("state-json is JSON")
}

#[test]
fn describe_reads_names_from_the_enums_and_versions_from_the_table() {
    let info = wire::describe::<Ledger>();
    assert_eq!(
        (info.aggregate_type.as_str(), info.version.as_str()),
        ("ledger", "3.1.0")
    );
    assert_eq!(info.description, "Adds up amounts.");
    assert_eq!(info.commands, ["Record", "Wipe"]);
    let schema = |name: &str, version| EventSchema {
        name: name.to_owned(),
        version,
    };
    // `Cleared` is not in EVENT_VERSIONS: version 1.
    assert_eq!(info.events, [schema("Recorded", 3), schema("Cleared", 1)]);
}

#[test]
fn the_initial_state_is_the_default_state_as_json() {
    let initial = wire::initial_state::<Ledger>();
    assert_eq!(initial, br#"{"total":0,"last_entry_at":null}"#);
    assert_eq!(
        state_json(&initial),
        json!({"total": 0, "last_entry_at": null})
    );
}

#[test]
fn upcasting_a_current_event_returns_it_unchanged() {
    for event in [
        stored("Recorded", 3, json!({"amount": 5, "at": 1, "entry": 1})),
        // Not in EVENT_VERSIONS, so current at version 1.
        stored("Cleared", 1, json!({})),
    ] {
        assert_eq!(wire::upcast::<Ledger>(&event).unwrap(), [event]);
    }
}

#[test]
fn upcasting_goes_through_the_chain_to_the_current_version() {
    let upcast = wire::upcast::<Ledger>(&stored("Recorded", 1, json!({"amount": 4}))).unwrap();
    assert_eq!(
        upcast,
        [stored(
            "Recorded",
            3,
            json!({"amount": 4, "at": 0, "entry": 0})
        )]
    );
}

#[test]
fn upcasting_returns_split_events_in_order_at_current_versions() {
    let upcast = wire::upcast::<Ledger>(&stored("Batch", 1, json!({"amounts": [1, 2]}))).unwrap();
    assert_eq!(
        upcast,
        [
            stored("Recorded", 3, json!({"amount": 1, "at": 0, "entry": 0})),
            stored("Recorded", 3, json!({"amount": 2, "at": 0, "entry": 0})),
        ]
    );
}

#[test]
fn upcasting_an_event_from_a_newer_plugin_fails() {
    let error = wire::upcast::<Ledger>(&stored("Recorded", 4, json!({}))).unwrap_err();
    assert!(error.contains("newer than this plugin"), "{error}");
}

#[test]
fn upcasting_refuses_data_that_is_not_json() {
    let event = RawEvent {
        name: "Recorded".into(),
        version: 1,
        data: b"{".to_vec(),
    };
    assert!(
        wire::upcast::<Ledger>(&event)
            .unwrap_err()
            .starts_with("Recorded v1: data is not JSON")
    );
}

#[test]
fn apply_refuses_an_event_not_at_its_current_version() {
    let event = stored("Recorded", 2, json!({"amount": 5, "at": 1}));
    let error = wire::apply::<Ledger>(&wire::initial_state::<Ledger>(), &[event]).unwrap_err();
    assert!(
        error.contains("not at the current schema version"),
        "{error}"
    );
    assert!(error.contains("upcast it first"), "{error}");
}

#[test]
fn apply_refuses_an_unknown_event() {
    let event = stored("InterestPaid", 1, json!({"amount": 5}));
    let error = wire::apply::<Ledger>(&wire::initial_state::<Ledger>(), &[event]).unwrap_err();
    assert!(error.contains("unknown variant `InterestPaid`"), "{error}");
}

#[test]
fn apply_folds_a_batch_in_order() {
    let events = [
        stored("Recorded", 3, json!({"amount": 10, "at": 1, "entry": 1})),
        stored("Cleared", 1, json!({})),
        stored("Recorded", 3, json!({"amount": 3, "at": 2, "entry": 3})),
    ];
    let state = wire::apply::<Ledger>(&wire::initial_state::<Ledger>(), &events).unwrap();
    assert_eq!(state_json(&state), json!({"total": 3, "last_entry_at": 2}));
}

#[test]
fn handle_rejects_state_bytes_it_cannot_read() {
    let command = RawCommand {
        name: "Wipe".to_owned(),
        data: b"{}".to_vec(),
    };
    let rejection =
        wire::handle::<Ledger>(&Context::default(), b"not a state", &command).unwrap_err();
    assert_eq!(rejection.code, INVALID_STATE);
}

#[test]
fn handle_rejects_an_undecodable_state_before_the_command() {
    let command = RawCommand {
        name: "Nope".into(),
        data: Vec::new(),
    };
    let rejection = wire::handle::<Ledger>(&Context::default(), b"[]", &command).unwrap_err();
    assert_eq!(rejection.code, INVALID_STATE);
    let rejection = wire::decide::<Ledger>(&Context::default(), b"[]", &command).unwrap_err();
    assert_eq!(rejection.code, INVALID_STATE);
}

#[test]
fn raw_events_print_their_data_as_text() {
    assert_eq!(
        format!("{:?}", stored("Cleared", 1, json!({}))),
        "Cleared v1 {}"
    );
}
