//! Subscriptions follow the appends of every host: every event once, in order, from the
//! table, also those appended by another store on the same database. Catch-up, live,
//! filters and close on one store are the conformance suite's (`conformance.rs`).

use std::time::Duration;

use tally_store::{ExpectedVersion, GlobalPosition, SubscriptionFilter};

use crate::{database_or_skip, events, no_command, stream};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_subscription_catches_up_then_follows_appends_of_every_host() {
    let database = database_or_skip!();
    let store = database.open().await;
    let other_host = database.open().await;
    store
        .append(
            &stream("a"),
            ExpectedVersion::Any,
            events("E", 5),
            no_command(),
        )
        .await
        .unwrap();

    let mut subscription = store.subscribe(GlobalPosition::new(1), SubscriptionFilter::default());
    for position in 1..5 {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.position, GlobalPosition::new(position));
    }
    // Live: one append here, then some by the other host, which only a notification (or
    // the poll) tells this store about.
    store
        .append(
            &stream("b"),
            ExpectedVersion::Any,
            events("E", 1),
            no_command(),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        other_host
            .append(
                &stream("c"),
                ExpectedVersion::Any,
                events("E", 2),
                no_command(),
            )
            .await
            .unwrap();
    }
    for position in 5..12 {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.position, GlobalPosition::new(position));
    }
    assert_eq!(subscription.position(), GlobalPosition::new(12));
    store.wait_committed(GlobalPosition::new(12)).await.unwrap();
    other_host.close().await.unwrap();
    store.close().await.unwrap();
}
