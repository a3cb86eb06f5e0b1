//! What bank-account v2 shows the host besides its rules: its state JSON and the
//! schema version of each event it writes. (How the SDK encodes, decodes and upcasts
//! is tested in the SDK.)

use bank_account_v2::{BankAccount, Command, Event};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};

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

#[test]
fn account_opened_is_written_at_schema_version_2_and_the_others_at_1() {
    let opened = Event::AccountOpened {
        initial_balance: 0,
        currency: "EUR".to_owned(),
    };
    let open = Command::OpenAccount {
        initial_balance: 7,
        currency: Some("EUR".to_owned()),
    };
    let cases = [
        (
            vec![],
            open,
            stored(
                "AccountOpened",
                2,
                json!({"initial_balance": 7, "currency": "EUR"}),
            ),
        ),
        (
            vec![opened.clone()],
            Command::Deposit { amount: 3 },
            stored("MoneyDeposited", 1, json!({"amount": 3})),
        ),
        (
            vec![opened.clone(), Event::MoneyDeposited { amount: 3 }],
            Command::Withdraw { amount: 3 },
            stored("MoneyWithdrawn", 1, json!({"amount": 3})),
        ),
        (
            vec![opened],
            Command::CloseAccount,
            stored("AccountClosed", 1, json!({})),
        ),
    ];
    for (history, command, written) in cases {
        given::<BankAccount>(history)
            .when(command)
            .then_raw_events([written]);
    }
}
