//! Reliability tests against the real `tally` binary: SIGKILL under HTTP
//! load, a full disk, an HTTP fuzzer, a soak, and hosts on PostgreSQL losing a host or
//! the primary's machine. `docs/RELIABILITY.md` lists what each
//! one asserts and the environment variables that make them run longer.

mod failover;
mod full_disk;
mod fuzz;
mod kill_nine;
mod projection_kill;
mod soak;

#[path = "../common/mod.rs"]
mod common;

pub use common::*;

use std::collections::HashMap;

use serde_json::{Value, json};

/// Sends `Deposit { amount }` to bank account `account` with command id `command_id`;
/// `Err` when no complete answer came back (connection refused or cut).
pub async fn deposit(
    http: &reqwest::Client,
    url: &str,
    account: &str,
    command_id: &str,
    amount: i64,
) -> Result<(u16, Value), reqwest::Error> {
    let body = json!({"type": "Deposit", "data": {"amount": amount}, "command_id": command_id});
    let response = http
        .post(format!(
            "{url}/v1/aggregates/bank-account/{account}/commands"
        ))
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// Every event of bank account `account`, read page by page with `next_from_version`.
pub async fn account_events(http: &reqwest::Client, url: &str, account: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let response = http
            .get(format!(
                "{url}/v1/aggregates/bank-account/{account}/events?from_version={from}&limit=500"
            ))
            .send()
            .await
            .expect("GET events");
        assert_eq!(response.status(), 200, "events of {account}");
        let page: Value = response.json().await.expect("events JSON");
        let batch = page["events"].as_array().expect("events").clone();
        if batch.is_empty() {
            return events;
        }
        from = page["next_from_version"]
            .as_u64()
            .expect("next_from_version with a non-empty page");
        events.extend(batch);
    }
}

/// The balance a bank account's events add up to (the fold, done by hand).
pub fn fold_balance(events: &[Value]) -> i64 {
    events
        .iter()
        .map(|event| {
            let data = &event["data"];
            match event["type"].as_str().expect("event type") {
                "AccountOpened" => data["initial_balance"].as_i64().expect("initial_balance"),
                "MoneyDeposited" => data["amount"].as_i64().expect("amount"),
                "MoneyWithdrawn" => -data["amount"].as_i64().expect("amount"),
                _ => 0,
            }
        })
        .sum()
}

/// The balance the service reports for a bank account.
pub async fn state_balance(http: &reqwest::Client, url: &str, account: &str) -> i64 {
    let response = http
        .get(format!("{url}/v1/aggregates/bank-account/{account}"))
        .send()
        .await
        .expect("GET state");
    assert_eq!(response.status(), 200, "state of {account}");
    let body: Value = response.json().await.expect("state JSON");
    body["state"]["balance"].as_i64().expect("balance")
}

/// Opens bank account `account` with a zero balance (idempotently, by command id).
pub async fn open_account(http: &reqwest::Client, url: &str, account: &str) {
    let body = json!({
        "type": "OpenAccount",
        "data": {"initial_balance": 0},
        "command_id": format!("open-{account}"),
    });
    let response = http
        .post(format!(
            "{url}/v1/aggregates/bank-account/{account}/commands"
        ))
        .json(&body)
        .send()
        .await
        .expect("open account");
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
}

/// The account's events are its opening and exactly one deposit per command of
/// `expected` (command id to amount), nothing else.
pub fn check_account_events(
    name: &str,
    events: &[Value],
    expected: &HashMap<&str, i64>,
    round: u64,
) {
    let mut seen: HashMap<&str, Vec<&Value>> = HashMap::new();
    for event in events {
        let id = event["command_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: an event without a command id: {event}"));
        seen.entry(id).or_default().push(event);
    }
    let open_id = format!("open-{name}");
    assert_eq!(
        seen.get(open_id.as_str()).map(Vec::len),
        Some(1),
        "{name} opened once"
    );
    for (id, amount) in expected {
        let carrying = seen.get(id).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            carrying.len(),
            1,
            "round {round}: {name}: command {id} is carried by {} events",
            carrying.len()
        );
        assert_eq!(carrying[0]["type"], "MoneyDeposited");
        assert_eq!(carrying[0]["data"]["amount"], *amount, "{id}");
    }
    assert_eq!(
        events.len(),
        expected.len() + 1,
        "round {round}: {name} has events no command accounts for"
    );
}
