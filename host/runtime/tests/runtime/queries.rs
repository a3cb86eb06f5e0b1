//! Reads: time travel, stored and upcast events, aggregate lists, subscriptions.

use tally_runtime::tally_store::LogSubscription;
use tally_runtime::tally_store::SubscriptionFilter;
use tally_runtime::{At, EventView, GlobalPosition, SchemaVersion, StreamVersion};
use tally_test_support::components;

use crate::{bank, install, send};

#[tokio::test]
async fn state_at_a_position_or_time_shows_the_past() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(&runtime, "t", "OpenAccount", r#"{"initial_balance":100}"#)
        .await
        .unwrap();
    let deposit = send(&runtime, "t", "Deposit", r#"{"amount":50}"#)
        .await
        .unwrap();
    let middle = deposit.events[0].position;
    // The millisecond clock must move on before the last event.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    send(&runtime, "t", "Withdraw", r#"{"amount":120}"#)
        .await
        .unwrap();

    let then = runtime
        .state_at("bank-account", "t", At::Position(middle))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(then.version.get(), 2);
    let json: serde_json::Value = serde_json::from_str(&then.state_json).unwrap();
    assert_eq!(json["balance"], 150);

    let by_time = runtime
        .state_at(
            "bank-account",
            "t",
            At::TimeMs(deposit.events[0].timestamp_ms),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_time.version.get(), 2);
    let before = runtime
        .state_at("bank-account", "t", At::TimeMs(1))
        .await
        .unwrap();
    assert!(before.is_none());
    let now = runtime.state("bank-account", "t").await.unwrap().unwrap();
    assert_eq!(now.version.get(), 3);
    assert!(
        runtime
            .state("bank-account", "nobody")
            .await
            .unwrap()
            .is_none()
    );
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn events_are_shown_as_stored_or_upcast_and_aggregates_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    for id in ["a1", "a2", "a3"] {
        send(&runtime, id, "OpenAccount", r#"{"initial_balance":7}"#)
            .await
            .unwrap();
    }
    send(&runtime, "a2", "Deposit", r#"{"amount":1}"#)
        .await
        .unwrap();
    let (page, total) = runtime.aggregates("bank-account", 1, 10).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page,
        vec![
            ("a2".to_owned(), StreamVersion::new(2)),
            ("a3".to_owned(), StreamVersion::new(1))
        ]
    );

    install(&runtime, components::BANK_ACCOUNT_V2).await;
    let stored = runtime
        .events(
            "bank-account",
            "a2",
            StreamVersion::FIRST,
            100,
            EventView::Stored,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].name.as_str(), stored[0].schema_version),
        ("AccountOpened", SchemaVersion::new(1))
    );
    let current = runtime
        .events(
            "bank-account",
            "a2",
            StreamVersion::FIRST,
            100,
            EventView::Current,
        )
        .await
        .unwrap();
    assert_eq!(
        (current[0].name.as_str(), current[0].schema_version),
        ("AccountOpened", SchemaVersion::new(2))
    );
    assert_eq!(current[0].position, stored[0].position);
    let data: serde_json::Value = serde_json::from_slice(&current[0].data).unwrap();
    assert_eq!(data["currency"], "USD");
    assert_eq!(current[1], stored[1], "MoneyDeposited is current already");
    let from_two = runtime
        .events(
            "bank-account",
            "a2",
            StreamVersion::new(2),
            100,
            EventView::Stored,
        )
        .await
        .unwrap();
    assert_eq!(from_two.len(), 1);
    assert_eq!(from_two[0].version.get(), 2);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn a_subscription_sees_appended_events_of_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let filter = SubscriptionFilter {
        aggregate_type: Some("bank-account".into()),
        ..SubscriptionFilter::default()
    };
    let mut subscription = runtime.subscribe(GlobalPosition::START, filter);
    send(&runtime, "s", "OpenAccount", r#"{"initial_balance":1}"#)
        .await
        .unwrap();
    send(&runtime, "s", "Deposit", r#"{"amount":1}"#)
        .await
        .unwrap();
    let first = subscription.next().await.unwrap();
    let second = subscription.next().await.unwrap();
    assert_eq!(
        (first.name.as_str(), second.name.as_str()),
        ("AccountOpened", "MoneyDeposited")
    );
    runtime.close().await.unwrap();
}
