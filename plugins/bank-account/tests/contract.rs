//! What bank-account v1 shows the host besides its rules: its state JSON and the
//! schema version of each event it writes. (How the SDK encodes, decodes and upcasts
//! is tested in the SDK.)

use bank_account::{BankAccount, Command, Event};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};

#[test]
fn the_initial_state_is_an_unopened_empty_account() {
    assert_eq!(
        given::<BankAccount>([]).state_json(),
        json!({"balance": 0, "open": false, "closed": false})
    );
}

#[test]
fn state_json_shows_balance_open_and_closed() {
    let scenario = given::<BankAccount>([
        Event::AccountOpened {
            initial_balance: 100,
        },
        Event::MoneyDeposited { amount: 25 },
        Event::MoneyWithdrawn { amount: 5 },
    ]);
    assert_eq!(
        scenario.state_json(),
        json!({"balance": 120, "open": true, "closed": false})
    );
}

#[test]
fn a_closed_account_shows_as_closed_and_not_open() {
    let scenario = given::<BankAccount>([
        Event::AccountOpened {
            initial_balance: 10,
        },
        Event::MoneyWithdrawn { amount: 10 },
        Event::AccountClosed,
    ]);
    assert_eq!(
        scenario.state_json(),
        json!({"balance": 0, "open": false, "closed": true})
    );
}

#[test]
fn every_event_is_written_at_schema_version_1() {
    let opened = Event::AccountOpened { initial_balance: 0 };
    let cases = [
        (
            vec![],
            Command::OpenAccount { initial_balance: 7 },
            stored("AccountOpened", 1, json!({"initial_balance": 7})),
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
