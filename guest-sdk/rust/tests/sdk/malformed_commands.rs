//! Commands that do not fit the command type are rejected with `invalid-command`,
//! never a trap, and never reach `handle`; the message names the command and the
//! field as the client wrote them. Fields a command does not have are refused
//! unless the aggregate opts out.

use serde::{Deserialize, Serialize};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};
use tally_sdk::{Aggregate, Context, INVALID_COMMAND, Rejection, Upcaster};

use crate::ledger::{Command, Event, Ledger, recorded};

/// The ledger with [`Aggregate::DENY_UNKNOWN_FIELDS`] off.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct LenientLedger(Ledger);

impl Aggregate for LenientLedger {
    type Command = Command;
    type Event = Event;
    const AGGREGATE_TYPE: &'static str = "lenient-ledger";
    const VERSION: &'static str = Ledger::VERSION;
    const DESCRIPTION: &'static str = "Adds up amounts, whatever else a command brings.";
    const EVENT_VERSIONS: &'static [(&'static str, u32)] = Ledger::EVENT_VERSIONS;
    const UPCASTERS: &'static [Upcaster] = Ledger::UPCASTERS;
    const DENY_UNKNOWN_FIELDS: bool = false;

    fn handle(&self, ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        self.0.handle(ctx, command)
    }

    fn apply(&mut self, event: Event) {
        self.0.apply(event);
    }
}

#[test]
fn an_unknown_field_is_invalid_and_named() {
    let rejection = given::<Ledger>([])
        .when_raw("Record", r#"{"amount": 100, "extra": 1}"#)
        .then_rejects(INVALID_COMMAND);
    assert_eq!(
        rejection.message,
        r#"Record: unknown field "extra" (expected one of "amount", "memo")"#
    );
}

#[test]
fn a_misspelt_optional_field_is_invalid_rather_than_lost() {
    let rejection = given::<Ledger>([])
        .when_raw("Record", r#"{"amount": 100, "mmeo": "rent"}"#)
        .then_rejects(INVALID_COMMAND);
    assert!(
        rejection.message.contains(r#"unknown field "mmeo""#),
        "{}",
        rejection.message
    );
}

#[test]
fn a_command_without_fields_refuses_data() {
    let rejection = given::<Ledger>([recorded(4, 1, 1)])
        .when_raw("Wipe", r#"{"all": true}"#)
        .then_rejects(INVALID_COMMAND);
    assert_eq!(
        rejection.message,
        "Wipe: takes no data (no data, null or {}), got an object"
    );
}

#[test]
fn an_aggregate_may_take_unknown_fields() {
    given::<LenientLedger>([])
        .when_raw("Record", r#"{"amount": 100, "extra": 1}"#)
        .then_events([recorded(100, 1_700_000_000_000, 1)]);
    // The other checks stay.
    given::<LenientLedger>([])
        .when_raw("Record", r#"{"extra": 1}"#)
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn an_unknown_command_name_is_invalid() {
    let rejection = given::<Ledger>([])
        .when_raw("Transfer", r#"{"amount": 5}"#)
        .then_rejects(INVALID_COMMAND);
    assert_eq!(
        rejection.message,
        r#"unknown command "Transfer" (expected one of "Record", "Wipe")"#
    );
}

#[test]
fn a_wrong_field_type_is_invalid_in_the_terms_of_json() {
    let rejection = given::<Ledger>([])
        .when_raw("Record", r#"{"amount": "five"}"#)
        .then_rejects(INVALID_COMMAND);
    assert_eq!(
        rejection.message,
        r#"Record: invalid type: string "five", expected i64"#
    );
    let rejection = given::<Ledger>([])
        .when_raw("Record", "[5]")
        .then_rejects(INVALID_COMMAND);
    assert_eq!(
        rejection.message,
        "Record: takes its fields as a JSON object, got an array"
    );
}

#[test]
fn a_wrong_field_type_is_invalid() {
    for data in [
        r#"{"amount": "five"}"#,
        r#"{"amount": 1.5}"#,
        r#"{"amount": null}"#,
        r#"[5]"#,
    ] {
        given::<Ledger>([])
            .when_raw("Record", data)
            .then_rejects(INVALID_COMMAND);
    }
}

#[test]
fn an_optional_field_of_the_wrong_type_is_invalid() {
    given::<Ledger>([])
        .when_raw("Record", r#"{"amount": 1, "memo": 978}"#)
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn an_optional_field_may_be_null_or_absent() {
    for data in [r#"{"amount": 1, "memo": null}"#, r#"{"amount": 1}"#] {
        given::<Ledger>([])
            .when_raw("Record", data)
            .then_events([recorded(1, 1_700_000_000_000, 1)]);
    }
}

#[test]
fn an_amount_beyond_i64_is_invalid() {
    given::<Ledger>([])
        .when_raw("Record", r#"{"amount": 9223372036854775808}"#)
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn a_number_in_a_string_is_invalid() {
    given::<Ledger>([])
        .when_raw("Record", r#"{"amount": "1000001"}"#)
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn a_missing_field_is_invalid() {
    let rejection = given::<Ledger>([])
        .when_raw("Record", r#"{"memo": "rent"}"#)
        .then_rejects(INVALID_COMMAND);
    assert_eq!(rejection.message, r#"Record: missing field "amount""#);
}

#[test]
fn missing_data_for_a_command_with_fields_is_invalid() {
    given::<Ledger>([])
        .when_raw("Record", "")
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn data_that_is_not_json_is_invalid() {
    given::<Ledger>([])
        .when_raw("Record", "amount=5")
        .then_rejects(INVALID_COMMAND);
}

#[test]
fn a_command_without_fields_takes_empty_or_no_data() {
    for data in ["{}", "", "null"] {
        // The command decodes, so the rule answers, not the decoder.
        given::<Ledger>([recorded(4, 1, 1)])
            .when_raw("Wipe", data)
            .then_events([Event::Cleared]);
    }
}

#[test]
fn well_formed_raw_data_is_handled_like_the_typed_command() {
    given::<Ledger>([])
        .when_raw("Record", r#"{"amount": 7}"#)
        .then_raw_events([stored(
            "Recorded",
            3,
            json!({"amount": 7, "at": 1_700_000_000_000u64, "entry": 1}),
        )]);
}
