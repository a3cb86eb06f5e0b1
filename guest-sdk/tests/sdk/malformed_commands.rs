//! Commands that do not fit the command type are rejected with `invalid-command`,
//! never a trap, and never reach `handle`.

use tally_sdk::INVALID_COMMAND;
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};

use crate::ledger::{Event, Ledger, recorded};

#[test]
fn an_unknown_command_name_is_invalid() {
    let rejection = given::<Ledger>([])
        .when_raw("Transfer", r#"{"amount": 5}"#)
        .then_rejects(INVALID_COMMAND);
    assert!(
        rejection.message.contains("unknown variant `Transfer`"),
        "{}",
        rejection.message
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
    assert!(
        rejection.message.contains("missing field `amount`"),
        "{}",
        rejection.message
    );
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
