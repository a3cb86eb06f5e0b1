//! The given/when/then harness: what each step checks and returns, and how it
//! reports a failure.

use tally_sdk::Context;
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, given_stored, stored};

use crate::ledger::{Command, Event, Ledger, record, recorded};

#[test]
fn handle_sees_the_context_the_harness_was_given() {
    let ctx = Context {
        aggregate_id: "l-1".into(),
        stream_version: 41,
        now_ms: 99,
    };
    given::<Ledger>([])
        .with_context(ctx)
        .when(record(5))
        .then_events([recorded(5, 99, 42)]);
}

#[test]
fn the_default_context_counts_the_given_events() {
    given::<Ledger>([recorded(1, 0, 1), recorded(2, 0, 2)])
        .when(record(3))
        .then_events([recorded(3, 1_700_000_000_000, 3)]);
}

#[test]
fn then_events_returns_the_state_after_the_new_events() {
    let state = given::<Ledger>([recorded(10, 5, 1)])
        .when(record(-4))
        .then_events([recorded(-4, 1_700_000_000_000, 2)]);
    assert_eq!(
        state,
        Ledger {
            total: 6,
            last_entry_at: Some(1_700_000_000_000)
        }
    );
}

#[test]
fn a_renamed_unit_command_travels_under_its_wire_name() {
    given::<Ledger>([recorded(10, 5, 1)])
        .when_raw("Wipe", "")
        .then_events([Event::Cleared]);
    given::<Ledger>([])
        .when_raw("Clear", "{}")
        .then_rejects("invalid-command");
}

#[test]
fn then_raw_events_checks_name_version_and_json() {
    let ctx = Context {
        aggregate_id: "l-1".into(),
        stream_version: 0,
        now_ms: 7,
    };
    given::<Ledger>([])
        .with_context(ctx)
        .when(record(2))
        .then_raw_events([stored(
            "Recorded",
            3,
            json!({"amount": 2, "at": 7, "entry": 1}),
        )]);
}

#[test]
fn then_rejects_returns_the_rejection() {
    let rejection = given::<Ledger>([])
        .when(record(0))
        .then_rejects("zero-amount");
    assert_eq!(rejection.message, "nothing to record");
}

#[test]
#[should_panic(expected = "events differ")]
fn then_events_fails_on_different_events() {
    given::<Ledger>([])
        .when(Command::Clear)
        .then_events([recorded(1, 1, 1)]);
}

#[test]
#[should_panic(expected = "expected events, but the command was rejected: zero-amount")]
fn then_events_fails_on_a_rejection() {
    given::<Ledger>([]).when(record(0)).then_events([]);
}

#[test]
#[should_panic(expected = "wrong rejection code")]
fn then_rejects_fails_on_another_code() {
    given::<Ledger>([])
        .when(record(0))
        .then_rejects("other-code");
}

#[test]
#[should_panic(expected = "expected rejection zero-amount, but the command produced")]
fn then_rejects_fails_when_events_were_produced() {
    given::<Ledger>([])
        .when(Command::Clear)
        .then_rejects("zero-amount");
}

#[test]
fn given_stored_upcasts_through_the_chain_and_splits() {
    let scenario = given_stored::<Ledger>([
        stored("Recorded", 1, json!({"amount": 1})),
        stored("Batch", 1, json!({"amounts": [10, 20]})),
        stored("Recorded", 3, json!({"amount": 100, "at": 8, "entry": 4})),
    ]);
    assert_eq!(
        scenario.state(),
        Ledger {
            total: 131,
            last_entry_at: Some(8)
        }
    );
    assert_eq!(
        scenario.state_json(),
        json!({"total": 131, "last_entry_at": 8})
    );
}

#[test]
#[should_panic(expected = "cannot be upcast: upcasting Batch v1: Batch without amounts")]
fn given_stored_fails_on_an_event_that_cannot_be_upcast() {
    given_stored::<Ledger>([stored("Batch", 1, json!({}))]);
}
