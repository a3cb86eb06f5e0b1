//! The account-summary read model, given bank-account histories as the host delivers
//! them: under bank-account v1 (no currency), under v2 (a currency on
//! `AccountOpened`, schema version 2), and across the swap from one to the other.

use account_summary::{ACCOUNTS, ALL, AccountSummary, TOTALS};
use tally_sdk::serde_json::{Value, json};
use tally_sdk::testing::projection::{GivenEvent, event, given_events};

/// The timestamp the harness gives the event at `position`.
fn at(position: u64) -> u64 {
    1_700_000_000_000 + position * 1_000
}

/// A bank-account event of account `id`.
fn bank(id: &str, name: &str, data: Value) -> GivenEvent {
    event("bank-account", id, name, data)
}

/// `AccountOpened` as bank-account v1 writes it: no currency.
fn opened_v1(id: &str, initial_balance: i64) -> GivenEvent {
    bank(
        id,
        "AccountOpened",
        json!({"initial_balance": initial_balance}),
    )
}

/// `AccountOpened` as bank-account v2 delivers it, at schema version 2.
fn opened_v2(id: &str, initial_balance: i64, currency: &str) -> GivenEvent {
    let data = json!({"initial_balance": initial_balance, "currency": currency});
    bank(id, "AccountOpened", data).schema_version(2)
}

fn deposited(id: &str, amount: i64) -> GivenEvent {
    bank(id, "MoneyDeposited", json!({"amount": amount}))
}

fn withdrawn(id: &str, amount: i64) -> GivenEvent {
    bank(id, "MoneyWithdrawn", json!({"amount": amount}))
}

fn closed(id: &str) -> GivenEvent {
    bank(id, "AccountClosed", json!({}))
}

/// The `accounts` document of an account whose latest event is at `position`.
fn account(balance: i64, currency: &str, open: bool, position: u64) -> Value {
    json!({
        "balance": balance,
        "currency": currency,
        "open": open,
        "closed": !open,
        "last_activity_ms": at(position),
        "last_position": position,
    })
}

#[test]
fn a_v1_history_is_summarised_in_us_dollars() {
    given_events::<AccountSummary>([
        opened_v1("a", 100),
        deposited("a", 50),
        opened_v1("b", 0),
        withdrawn("a", 30),
    ])
    .then_table(
        ACCOUNTS,
        [
            ("a", account(120, "USD", true, 3)),
            ("b", account(0, "USD", true, 2)),
        ],
    )
    .then_table(
        TOTALS,
        [(
            ALL,
            json!({"accounts_open": 2, "balance_by_currency": {"USD": 120}}),
        )],
    );
}

#[test]
fn a_v2_history_keeps_a_total_per_currency() {
    given_events::<AccountSummary>([
        opened_v2("eur-1", 1_000, "EUR"),
        opened_v2("usd-1", 500, "USD"),
        opened_v2("eur-2", 250, "EUR"),
        withdrawn("eur-1", 400),
        deposited("usd-1", 5),
    ])
    .then_document(ACCOUNTS, "eur-1", account(600, "EUR", true, 3))
    .then_document(ACCOUNTS, "usd-1", account(505, "USD", true, 4))
    .then_document(
        TOTALS,
        ALL,
        json!({"accounts_open": 3, "balance_by_currency": {"EUR": 850, "USD": 505}}),
    );
}

#[test]
fn the_swap_from_v1_to_v2_keeps_v1_accounts_in_us_dollars() {
    // Under v1, then v2 is activated: the host delivers the remaining events, and
    // v1 events it has not delivered yet, upcast to v2 (currency USD).
    given_events::<AccountSummary>([opened_v1("old", 300), deposited("old", 20)])
        .when_events([
            opened_v2("upcast", 40, "USD"),
            opened_v2("new", 1_000, "GBP"),
            withdrawn("old", 320),
            closed("old"),
        ])
        .then_document(ACCOUNTS, "old", account(0, "USD", false, 5))
        .then_document(ACCOUNTS, "upcast", account(40, "USD", true, 2))
        .then_document(
            TOTALS,
            ALL,
            json!({"accounts_open": 2, "balance_by_currency": {"GBP": 1_000, "USD": 40}}),
        );
}

#[test]
fn a_v1_history_summarises_as_its_upcast_v2_history() {
    let v1 = [opened_v1("a", 70), deposited("a", 30), opened_v1("b", 5)];
    let v2 = [
        opened_v2("a", 70, "USD"),
        deposited("a", 30),
        opened_v2("b", 5, "USD"),
    ];
    let summary = |events: [GivenEvent; 3]| {
        let projected = given_events::<AccountSummary>(events);
        (projected.table(ACCOUNTS), projected.table(TOTALS))
    };
    assert_eq!(summary(v1), summary(v2));
}

#[test]
fn a_closed_account_stays_listed_and_no_longer_counts_as_open() {
    given_events::<AccountSummary>([opened_v2("a", 10, "EUR"), withdrawn("a", 10), closed("a")])
        .then_document(ACCOUNTS, "a", account(0, "EUR", false, 2))
        .then_document(
            TOTALS,
            ALL,
            json!({"accounts_open": 0, "balance_by_currency": {"EUR": 0}}),
        );
}

#[test]
fn the_last_activity_is_the_accounts_latest_event() {
    given_events::<AccountSummary>([
        opened_v1("a", 1).at_ms(5_000),
        opened_v1("b", 1).at_position(40).at_ms(6_000),
        deposited("a", 1).at_position(41).at_ms(9_000),
    ])
    .then_document(
        ACCOUNTS,
        "a",
        json!({"balance": 2, "currency": "USD", "open": true, "closed": false,
               "last_activity_ms": 9_000, "last_position": 41}),
    );
}

#[test]
fn other_aggregate_types_are_not_read() {
    given_events::<AccountSummary>([
        opened_v1("a", 1),
        event("loyalty-card", "a", "MoneyDeposited", json!({"amount": 99})),
    ])
    .then_document(ACCOUNTS, "a", account(1, "USD", true, 0));
}

#[test]
fn nothing_before_the_first_account_means_no_documents() {
    given_events::<AccountSummary>([event("loyalty-card", "c", "Issued", json!({}))])
        .then_table(ACCOUNTS, Vec::<(&str, Value)>::new())
        .then_no_document(TOTALS, ALL);
}

#[test]
fn money_for_an_account_never_opened_stops_the_projection() {
    given_events::<AccountSummary>([opened_v1("a", 1)])
        .when_events([deposited("a", 1), deposited("ghost", 5)])
        .then_fails("2: account \"ghost\" was never opened")
        .then_document(ACCOUNTS, "a", account(1, "USD", true, 0));
}

#[test]
fn an_event_that_does_not_decode_names_itself_and_its_position() {
    given_events::<AccountSummary>([opened_v1("a", 1), deposited("a", 1)])
        .when_events([bank("a", "MoneyDeposited", json!({"amount": "five"}))])
        .then_fails("2: event MoneyDeposited v1 of bank-account \"a\" (stream version 3)")
        .then_no_document(ACCOUNTS, "b");
}

#[test]
fn an_account_opened_twice_stops_the_projection() {
    given_events::<AccountSummary>([opened_v1("a", 1), opened_v1("a", 2)])
        .then_fails("1: account \"a\" is opened a second time")
        .then_table(ACCOUNTS, Vec::<(&str, Value)>::new());
}
