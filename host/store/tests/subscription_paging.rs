//! A stream-filtered subscription pages through the stream with pages no larger than
//! `StoreConfig::max_read_count`, so a small limit never makes it skip events.

use std::time::Duration;

mod common;

use common::append_one;
use tally_store::{
    EventStore, ExpectedVersion, GlobalPosition, StoreConfig, StreamId, SubscriptionFilter,
};

#[tokio::test]
async fn a_stream_subscription_delivers_every_event_with_a_small_read_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.max_read_count = 10;
    let (store, _) = EventStore::open(config).await.unwrap();
    let stream = StreamId::new("acct", "a");
    for _ in 0..30 {
        append_one(&store, &stream, ExpectedVersion::Any, "E").await;
    }
    let filter = SubscriptionFilter {
        stream: Some(stream.clone()),
        ..Default::default()
    };
    let mut subscription = store.subscribe(GlobalPosition::START, filter);
    let mut versions = Vec::new();
    while let Ok(Ok(event)) =
        tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
    {
        versions.push(event.version.get());
        if versions.len() == 30 {
            break;
        }
    }
    assert_eq!(versions, (1..=30).collect::<Vec<u64>>());
}
