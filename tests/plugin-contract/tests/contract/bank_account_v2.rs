//! bank-account v2 across the boundary: upcasting a stream written by v1 (the hot
//! swap path), currencies and the withdrawal limit.

use serde_json::json;
use tally_plugin_contract_tests::{
    Event, PluginInstance, command, components, context, data_json, event,
};

fn load(path: &'static str) -> PluginInstance {
    PluginInstance::load(path).unwrap()
}

/// Writes a stream with v1: open 2,000,000 then deposit 500.
fn stream_written_by_v1() -> Vec<Event> {
    let mut v1 = load(components::BANK_ACCOUNT_V1);
    let mut state = v1.initial_state().unwrap();
    let mut stream = Vec::new();
    for (name, data) in [
        ("OpenAccount", r#"{"initial_balance": 2000000}"#),
        ("Deposit", r#"{"amount": 500}"#),
    ] {
        let ctx = context("acc-7", stream.len() as u64);
        let events = v1
            .handle(&ctx, &state, &command(name, data))
            .unwrap()
            .unwrap();
        state = v1.apply(&state, &events).unwrap().unwrap();
        stream.extend(events);
    }
    stream
}

#[test]
fn v2_upcasts_a_v1_account_opened_to_schema_2_in_us_dollars() {
    let mut v2 = load(components::BANK_ACCOUNT_V2);
    let upcast = v2
        .upcast(&event("AccountOpened", 1, r#"{"initial_balance": 42}"#))
        .unwrap()
        .unwrap();
    assert_eq!(upcast.len(), 1);
    assert_eq!(
        (upcast[0].name.as_str(), upcast[0].version),
        ("AccountOpened", 2)
    );
    assert_eq!(
        data_json(&upcast[0]),
        json!({"initial_balance": 42, "currency": "USD"})
    );
}

#[test]
fn a_stream_written_by_v1_rehydrates_in_v2_and_obeys_v2_rules() {
    let stream = stream_written_by_v1();
    let mut v2 = load(components::BANK_ACCOUNT_V2);
    let mut current = Vec::new();
    for stored in &stream {
        current.extend(v2.upcast(stored).unwrap().unwrap());
    }
    assert_eq!(
        current
            .iter()
            .map(|e| (e.name.as_str(), e.version))
            .collect::<Vec<_>>(),
        [("AccountOpened", 2), ("MoneyDeposited", 1)]
    );
    let initial = v2.initial_state().unwrap();
    let state = v2.apply(&initial, &current).unwrap().unwrap();
    assert_eq!(
        v2.state_json(&state).unwrap().unwrap(),
        json!({"balance": 2_000_500, "open": true, "closed": false, "currency": "USD"})
    );

    let ctx = context("acc-7", stream.len() as u64);
    let over_limit = v2
        .handle(&ctx, &state, &command("Withdraw", r#"{"amount": 1000001}"#))
        .unwrap();
    assert_eq!(over_limit.unwrap_err().code, "withdrawal-limit-exceeded");
    let within = v2
        .handle(&ctx, &state, &command("Withdraw", r#"{"amount": 1000000}"#))
        .unwrap()
        .unwrap();
    assert_eq!(
        (within[0].name.as_str(), data_json(&within[0])),
        ("MoneyWithdrawn", json!({"amount": 1_000_000}))
    );
}

#[test]
fn v2_opens_accounts_in_a_currency_and_refuses_unknown_codes() {
    let mut v2 = load(components::BANK_ACCOUNT_V2);
    let state = v2.initial_state().unwrap();
    let ctx = context("acc-8", 0);

    let events = v2
        .handle(
            &ctx,
            &state,
            &command(
                "OpenAccount",
                r#"{"initial_balance": 5, "currency": "EUR"}"#,
            ),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (events[0].name.as_str(), events[0].version),
        ("AccountOpened", 2)
    );
    assert_eq!(
        data_json(&events[0]),
        json!({"initial_balance": 5, "currency": "EUR"})
    );
    let opened = v2.apply(&state, &events).unwrap().unwrap();
    assert_eq!(
        v2.state_json(&opened).unwrap().unwrap()["currency"],
        json!("EUR")
    );

    let default = v2
        .handle(
            &ctx,
            &state,
            &command("OpenAccount", r#"{"initial_balance": 5}"#),
        )
        .unwrap()
        .unwrap();
    assert_eq!(data_json(&default[0])["currency"], json!("USD"));

    let bad = v2
        .handle(
            &ctx,
            &state,
            &command(
                "OpenAccount",
                r#"{"initial_balance": 5, "currency": "EURO"}"#,
            ),
        )
        .unwrap();
    assert_eq!(bad.unwrap_err().code, "invalid-currency");
}

#[test]
fn v2_keeps_the_v1_rules() {
    let mut v2 = load(components::BANK_ACCOUNT_V2);
    let initial = v2.initial_state().unwrap();
    let opened = v2
        .apply(
            &initial,
            &[event(
                "AccountOpened",
                2,
                r#"{"initial_balance": 100, "currency": "GBP"}"#,
            )],
        )
        .unwrap()
        .unwrap();
    let cases = [
        (&initial, "Withdraw", r#"{"amount": 1}"#, "account-not-open"),
        (
            &opened,
            "OpenAccount",
            r#"{"initial_balance": 1}"#,
            "account-already-open",
        ),
        (
            &opened,
            "Withdraw",
            r#"{"amount": 101}"#,
            "insufficient-funds",
        ),
        (&opened, "Withdraw", r#"{"amount": -1}"#, "invalid-amount"),
        (&opened, "CloseAccount", "{}", "balance-not-zero"),
        (&opened, "Deposit", r#"{"amount": true}"#, "invalid-command"),
    ];
    for (state, name, data, code) in cases {
        let rejection = v2
            .handle(&context("acc-9", 1), state, &command(name, data))
            .unwrap()
            .unwrap_err();
        assert_eq!(rejection.code, code, "{name} {data}: {}", rejection.message);
    }
}
