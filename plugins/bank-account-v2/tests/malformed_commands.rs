//! Commands that do not fit the v2 command type are rejected with
//! `invalid-command`.

use bank_account_v2::BankAccount;
use tally_sdk::testing::given;

#[test]
fn an_unknown_command_name_is_invalid() {
    given::<BankAccount>([])
        .when_raw("Transfer", r#"{"amount": 5}"#)
        .then_rejects("invalid-command");
}

#[test]
fn a_currency_that_is_not_a_string_is_invalid() {
    given::<BankAccount>([])
        .when_raw("OpenAccount", r#"{"initial_balance": 0, "currency": 978}"#)
        .then_rejects("invalid-command");
}

#[test]
fn a_null_currency_means_the_default() {
    given::<BankAccount>([])
        .when_raw("OpenAccount", r#"{"initial_balance": 0, "currency": null}"#)
        .then_raw_events([tally_sdk::testing::stored(
            "AccountOpened",
            2,
            tally_sdk::serde_json::json!({"initial_balance": 0, "currency": "USD"}),
        )]);
}

#[test]
fn a_missing_field_is_invalid() {
    let rejection = given::<BankAccount>([])
        .when_raw("OpenAccount", r#"{"currency": "EUR"}"#)
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
fn a_wrong_amount_type_is_invalid() {
    given::<BankAccount>([])
        .when_raw("Withdraw", r#"{"amount": "1000001"}"#)
        .then_rejects("invalid-command");
}
