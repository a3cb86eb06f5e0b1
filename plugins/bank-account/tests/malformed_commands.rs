//! Commands that do not fit the command type are rejected with `invalid-command`,
//! never a trap.

use bank_account::BankAccount;
use tally_sdk::testing::given;

#[test]
fn an_unknown_command_name_is_invalid() {
    let rejection = given::<BankAccount>([])
        .when_raw("Transfer", r#"{"amount": 5}"#)
        .then_rejects("invalid-command");
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
        given::<BankAccount>([])
            .when_raw("Deposit", data)
            .then_rejects("invalid-command");
    }
}

#[test]
fn an_amount_beyond_i64_is_invalid() {
    given::<BankAccount>([])
        .when_raw("Deposit", r#"{"amount": 9223372036854775808}"#)
        .then_rejects("invalid-command");
}

#[test]
fn a_missing_field_is_invalid() {
    let rejection = given::<BankAccount>([])
        .when_raw("OpenAccount", "{}")
        .then_rejects("invalid-command");
    assert!(
        rejection
            .message
            .contains("missing field `initial_balance`"),
        "{}",
        rejection.message
    );
}

#[test]
fn missing_data_for_a_command_with_fields_is_invalid() {
    given::<BankAccount>([])
        .when_raw("Withdraw", "")
        .then_rejects("invalid-command");
}

#[test]
fn data_that_is_not_json_is_invalid() {
    given::<BankAccount>([])
        .when_raw("Deposit", "amount=5")
        .then_rejects("invalid-command");
}

#[test]
fn a_command_without_fields_takes_empty_or_no_data() {
    for data in ["{}", "", "null"] {
        // The command decodes, so the rule answers, not the decoder.
        given::<BankAccount>([])
            .when_raw("CloseAccount", data)
            .then_rejects("account-not-open");
    }
}

#[test]
fn well_formed_raw_data_is_handled_like_the_typed_command() {
    given::<BankAccount>([])
        .when_raw("OpenAccount", r#"{"initial_balance": 7}"#)
        .then_raw_events([tally_sdk::testing::stored(
            "AccountOpened",
            1,
            tally_sdk::serde_json::json!({"initial_balance": 7}),
        )]);
}
