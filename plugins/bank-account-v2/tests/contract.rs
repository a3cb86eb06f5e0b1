//! What bank-account v2 tells the host: describe and state JSON.

use bank_account_v2::{BankAccount, Event};
use tally_sdk::raw::{self, EventSchema};
use tally_sdk::serde_json::json;
use tally_sdk::testing::given;

#[test]
fn describe_reports_version_2_and_account_opened_at_schema_2() {
    let info = raw::describe::<BankAccount>();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, "2.0.0");
    assert_eq!(
        info.commands,
        ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    );
    let events: Vec<EventSchema> = [
        ("AccountOpened", 2),
        ("MoneyDeposited", 1),
        ("MoneyWithdrawn", 1),
        ("AccountClosed", 1),
    ]
    .into_iter()
    .map(|(name, version)| EventSchema {
        name: name.to_owned(),
        version,
    })
    .collect();
    assert_eq!(info.events, events);
}

#[test]
fn state_json_adds_the_currency() {
    let scenario = given::<BankAccount>([Event::AccountOpened {
        initial_balance: 7,
        currency: "JPY".to_owned(),
    }]);
    assert_eq!(
        scenario.state_json(),
        json!({"balance": 7, "open": true, "closed": false, "currency": "JPY"})
    );
}

#[test]
fn the_currency_is_null_before_opening() {
    assert_eq!(
        given::<BankAccount>([]).state_json(),
        json!({"balance": 0, "open": false, "closed": false, "currency": null})
    );
}
