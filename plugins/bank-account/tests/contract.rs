//! What bank-account v1 tells the host: describe, initial state, state JSON,
//! upcasting and the apply checks.

use bank_account::{BankAccount, Event};
use tally_sdk::raw::{self, EventSchema};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};

#[test]
fn describe_names_the_aggregate_its_commands_and_its_events_at_version_1() {
    let info = raw::describe::<BankAccount>();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, "1.0.0");
    assert!(!info.description.is_empty());
    assert_eq!(
        info.commands,
        ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    );
    let events: Vec<EventSchema> = [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "AccountClosed",
    ]
    .into_iter()
    .map(|name| EventSchema {
        name: name.to_owned(),
        version: 1,
    })
    .collect();
    assert_eq!(info.events, events);
}

#[test]
fn the_initial_state_is_an_unopened_empty_account() {
    let state = raw::state_json::<BankAccount>(&raw::initial_state::<BankAccount>()).unwrap();
    let state: tally_sdk::serde_json::Value = tally_sdk::serde_json::from_slice(&state).unwrap();
    assert_eq!(state, json!({"balance": 0, "open": false, "closed": false}));
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
fn upcasting_a_current_event_returns_it_unchanged() {
    let event = stored("MoneyDeposited", 1, json!({"amount": 5}));
    assert_eq!(raw::upcast::<BankAccount>(&event).unwrap(), [event]);
}

#[test]
fn upcasting_an_event_from_a_newer_plugin_fails() {
    let event = stored(
        "AccountOpened",
        2,
        json!({"initial_balance": 5, "currency": "EUR"}),
    );
    let error = raw::upcast::<BankAccount>(&event).unwrap_err();
    assert!(error.contains("newer than this plugin"), "{error}");
}

#[test]
fn apply_refuses_an_event_not_at_its_current_version() {
    let event = stored(
        "AccountOpened",
        2,
        json!({"initial_balance": 5, "currency": "EUR"}),
    );
    let error =
        raw::apply::<BankAccount>(&raw::initial_state::<BankAccount>(), &[event]).unwrap_err();
    assert!(
        error.contains("not at the current schema version"),
        "{error}"
    );
}

#[test]
fn apply_refuses_an_unknown_event() {
    let event = stored("InterestPaid", 1, json!({"amount": 5}));
    let error =
        raw::apply::<BankAccount>(&raw::initial_state::<BankAccount>(), &[event]).unwrap_err();
    assert!(error.contains("unknown variant `InterestPaid`"), "{error}");
}

#[test]
fn apply_folds_a_batch_in_order() {
    let events = [
        stored("AccountOpened", 1, json!({"initial_balance": 10})),
        stored("MoneyWithdrawn", 1, json!({"amount": 10})),
        stored("AccountClosed", 1, json!({})),
    ];
    let state = raw::apply::<BankAccount>(&raw::initial_state::<BankAccount>(), &events).unwrap();
    let state = raw::state_json::<BankAccount>(&state).unwrap();
    assert_eq!(
        String::from_utf8(state).unwrap(),
        r#"{"balance":0,"closed":true,"open":false}"#
    );
}

#[test]
fn handle_rejects_state_bytes_it_cannot_read() {
    let ctx = tally_sdk::Context::default();
    let command = raw::RawCommand {
        name: "CloseAccount".to_owned(),
        data: b"{}".to_vec(),
    };
    let rejection = raw::handle::<BankAccount>(&ctx, b"not a state", &command).unwrap_err();
    assert_eq!(rejection.code, tally_sdk::INVALID_STATE);
}
