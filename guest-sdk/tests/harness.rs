//! The given/when/then harness and the raw exported functions, on a small
//! aggregate that uses every SDK feature: a unit command, a renamed variant, an
//! event at schema version 3 with a chain of upcasters, a split upcaster and the
//! call context.

use serde::{Deserialize, Serialize};
use tally_sdk::raw::{self, EventSchema, RawCommand};
use tally_sdk::serde_json::{Value, json};
use tally_sdk::testing::{given, given_stored, stored};
use tally_sdk::{Aggregate, Context, JsonEvent, Rejection, Upcaster};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    total: i64,
    last_entry_at: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Command {
    Record {
        amount: i64,
    },
    #[serde(rename = "Wipe")]
    Clear,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Event {
    Recorded { amount: i64, at: u64, entry: u64 },
    Cleared,
}

fn recorded_v1_to_v2(mut data: Value) -> Result<Value, String> {
    data["at"] = json!(0);
    Ok(data)
}

fn recorded_v2_to_v3(mut data: Value) -> Result<Value, String> {
    data["entry"] = json!(0);
    Ok(data)
}

/// `Batch` (gone from the current events) held several amounts in one event.
fn split_batch(data: Value) -> Result<Vec<JsonEvent>, String> {
    let amounts = data["amounts"].as_array().ok_or("Batch without amounts")?;
    Ok(amounts
        .iter()
        .map(|amount| JsonEvent {
            name: "Recorded".into(),
            version: 1,
            data: json!({"amount": amount}),
        })
        .collect())
}

impl Aggregate for Ledger {
    type Command = Command;
    type Event = Event;
    const AGGREGATE_TYPE: &'static str = "ledger";
    const VERSION: &'static str = "3.1.0";
    const DESCRIPTION: &'static str = "Adds up amounts.";
    const EVENT_VERSIONS: &'static [(&'static str, u32)] = &[("Recorded", 3)];
    const UPCASTERS: &'static [Upcaster] = &[
        Upcaster::next("Recorded", 1, recorded_v1_to_v2),
        Upcaster::next("Recorded", 2, recorded_v2_to_v3),
        Upcaster::replace("Batch", 1, split_batch),
    ];

    fn handle(&self, ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Record { amount: 0 } => {
                Err(Rejection::new("zero-amount", "nothing to record"))
            }
            Command::Record { amount } => Ok(vec![Event::Recorded {
                amount,
                at: ctx.now_ms,
                entry: ctx.stream_version + 1,
            }]),
            Command::Clear => Ok(vec![Event::Cleared]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Recorded { amount, at, .. } => {
                self.total += amount;
                self.last_entry_at = Some(at);
            }
            Event::Cleared => *self = Ledger::default(),
        }
    }
}

fn recorded(amount: i64, at: u64, entry: u64) -> Event {
    Event::Recorded { amount, at, entry }
}

#[test]
fn describe_reads_names_from_the_enums_and_versions_from_the_table() {
    let info = raw::describe::<Ledger>();
    assert_eq!(
        (info.aggregate_type.as_str(), info.version.as_str()),
        ("ledger", "3.1.0")
    );
    assert_eq!(info.commands, ["Record", "Wipe"]);
    let schema = |name: &str, version| EventSchema {
        name: name.to_owned(),
        version,
    };
    assert_eq!(info.events, [schema("Recorded", 3), schema("Cleared", 1)]);
}

#[test]
fn handle_sees_the_context_the_harness_was_given() {
    let ctx = Context {
        aggregate_id: "l-1".into(),
        stream_version: 41,
        now_ms: 99,
    };
    given::<Ledger>([])
        .with_context(ctx)
        .when(Command::Record { amount: 5 })
        .then_events([recorded(5, 99, 42)]);
}

#[test]
fn the_default_context_counts_the_given_events() {
    given::<Ledger>([recorded(1, 0, 1), recorded(2, 0, 2)])
        .when(Command::Record { amount: 3 })
        .then_events([recorded(3, 1_700_000_000_000, 3)]);
}

#[test]
fn then_events_returns_the_state_after_the_new_events() {
    let state = given::<Ledger>([recorded(10, 5, 1)])
        .when(Command::Record { amount: -4 })
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
        .when(Command::Record { amount: 2 })
        .then_raw_events([stored(
            "Recorded",
            3,
            json!({"amount": 2, "at": 7, "entry": 1}),
        )]);
}

#[test]
fn then_rejects_returns_the_rejection() {
    let rejection = given::<Ledger>([])
        .when(Command::Record { amount: 0 })
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
    given::<Ledger>([])
        .when(Command::Record { amount: 0 })
        .then_events([]);
}

#[test]
#[should_panic(expected = "wrong rejection code")]
fn then_rejects_fails_on_another_code() {
    given::<Ledger>([])
        .when(Command::Record { amount: 0 })
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

#[test]
fn raw_upcast_returns_split_events_in_order_at_current_versions() {
    let upcast = raw::upcast::<Ledger>(&stored("Batch", 1, json!({"amounts": [1, 2]}))).unwrap();
    assert_eq!(
        upcast,
        [
            stored("Recorded", 3, json!({"amount": 1, "at": 0, "entry": 0})),
            stored("Recorded", 3, json!({"amount": 2, "at": 0, "entry": 0})),
        ]
    );
}

#[test]
fn raw_upcast_refuses_data_that_is_not_json() {
    let event = raw::RawEvent {
        name: "Recorded".into(),
        version: 1,
        data: b"{".to_vec(),
    };
    assert!(
        raw::upcast::<Ledger>(&event)
            .unwrap_err()
            .starts_with("Recorded v1: data is not JSON")
    );
}

#[test]
fn raw_initial_state_is_the_default_state_as_json() {
    assert_eq!(
        raw::initial_state::<Ledger>(),
        br#"{"total":0,"last_entry_at":null}"#
    );
}

#[test]
fn raw_handle_rejects_an_undecodable_state_before_the_command() {
    let command = RawCommand {
        name: "Nope".into(),
        data: Vec::new(),
    };
    let rejection = raw::handle::<Ledger>(&Context::default(), b"[]", &command).unwrap_err();
    assert_eq!(rejection.code, tally_sdk::INVALID_STATE);
}

#[test]
fn raw_events_print_their_data_as_text() {
    assert_eq!(
        format!("{:?}", stored("Cleared", 1, json!({}))),
        "Cleared v1 {}"
    );
}
