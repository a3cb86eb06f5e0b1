//! Stored v1 events work with v2: the `AccountOpened` v1 -> v2 upcaster.

use bank_account_v2::{BankAccount, Command, Event};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given_stored, stored, upcast};

#[test]
fn a_v1_account_opened_becomes_v2_in_us_dollars() {
    let upcast =
        upcast::<BankAccount>(&stored("AccountOpened", 1, json!({"initial_balance": 250})))
            .unwrap();
    assert_eq!(
        upcast,
        [stored(
            "AccountOpened",
            2,
            json!({"initial_balance": 250, "currency": "USD"})
        )]
    );
}

#[test]
fn a_v1_account_opened_that_is_not_an_object_cannot_be_upcast() {
    let error = upcast::<BankAccount>(&stored("AccountOpened", 1, json!([250]))).unwrap_err();
    assert!(error.contains("not a JSON object"), "{error}");
}

#[test]
fn a_v1_stream_rehydrates_and_keeps_its_rules_under_v2() {
    let scenario = given_stored::<BankAccount>([
        stored("AccountOpened", 1, json!({"initial_balance": 2_000_000})),
        stored("MoneyDeposited", 1, json!({"amount": 500})),
    ]);
    assert_eq!(
        scenario.state_json(),
        json!({"balance": 2_000_500, "open": true, "closed": false, "currency": "USD"})
    );
    scenario
        .when(Command::Withdraw { amount: 1_500_000 })
        .then_rejects("withdrawal-limit-exceeded");
}

#[test]
fn a_v1_stream_accepts_new_commands_under_v2() {
    given_stored::<BankAccount>([stored("AccountOpened", 1, json!({"initial_balance": 100}))])
        .when(Command::Withdraw { amount: 100 })
        .then_events([Event::MoneyWithdrawn { amount: 100 }]);
}
