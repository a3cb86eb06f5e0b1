//! Optimistic concurrency under contention, and subscriptions that see every event exactly
//! once while writers append.

use std::collections::HashSet;
use std::time::Duration;

mod common;

use common::{append, position};
use proptest::prelude::*;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, GlobalPosition, NewEvent, StoreConfig, StoreError,
    StreamId, StreamRead, StreamVersion, SubscriptionFilter,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_racing_on_one_stream_win_each_version_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let stream = StreamId::new("t", "contended");
    const TASKS: u64 = 64;
    const WINS_EACH: u64 = 5;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            while (won.len() as u64) < WINS_EACH {
                let expected = ExpectedVersion::Exact(store.stream_version(&stream));
                let event = NewEvent::new("Tick", format!(r#"{{"task":{task}}}"#));
                match store
                    .append(&stream, expected, vec![event], AppendOptions::default())
                    .await
                {
                    Ok(result) => won.push(result.first_version.get()),
                    Err(StoreError::WrongExpectedVersion { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            won
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.unwrap());
    }
    versions.sort_unstable();
    let expected: Vec<u64> = (1..=TASKS * WINS_EACH).collect();
    assert_eq!(versions, expected, "each version won exactly once");
    let events = store
        .read_stream(&stream, StreamRead::forward(StreamVersion::FIRST, 10_000))
        .await
        .unwrap();
    assert_eq!(events.len() as u64, TASKS * WINS_EACH);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.version.get(), i as u64 + 1);
        assert_eq!(
            event.position,
            position(i as u64),
            "positions are dense too"
        );
    }
}

/// Runs writers that append `appends` (stream, events) concurrently while a subscription
/// from position 0 reads; checks the subscription saw every event once, in order.
async fn subscription_sees_everything(writers: Vec<Vec<(u8, u8)>>, filter_stream: Option<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let filter = SubscriptionFilter {
        stream: filter_stream.map(|s| StreamId::new("t", format!("s{s}"))),
        ..SubscriptionFilter::default()
    };
    let mut subscription = store.subscribe(GlobalPosition::START, filter.clone());
    let total: usize = writers
        .iter()
        .flatten()
        .filter(|(stream, _)| filter_stream.is_none_or(|s| s == *stream))
        .map(|(_, events)| *events as usize)
        .sum();
    let mut tasks = Vec::new();
    for (writer, appends) in writers.into_iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for (n, (stream, count)) in appends.into_iter().enumerate() {
                let stream = StreamId::new("t", format!("s{stream}"));
                let events = (0..count)
                    .map(|i| NewEvent::new("E", format!(r#"{{"w":{writer},"n":{n},"i":{i}}}"#)))
                    .collect();
                append(&store, &stream, ExpectedVersion::Any, events).await;
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut seen = Vec::new();
    while seen.len() < total {
        let event = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .expect("the subscription delivered the next event")
            .unwrap();
        assert!(filter.matches(&event));
        seen.push(event.position);
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in position order, no duplicate"
    );
    // Exactly the matching events of the log.
    let all = store.read_all(position(0), 100_000).await.unwrap();
    let expected: Vec<GlobalPosition> = all
        .iter()
        .filter(|e| filter.matches(e))
        .map(|e| e.position)
        .collect();
    assert_eq!(seen, expected);
    let unique: HashSet<GlobalPosition> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_subscription_from_zero_sees_every_event_once_in_order(
        writers in proptest::collection::vec(
            proptest::collection::vec((0u8..6, 1u8..4), 1..25),
            1..6,
        ),
        filter_stream in proptest::option::of(0u8..6),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(subscription_sees_everything(writers, filter_stream));
    }
}

#[tokio::test]
async fn a_subscription_ends_when_the_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let mut subscription = store.subscribe(GlobalPosition::START, SubscriptionFilter::default());
    let waiting = tokio::spawn(async move { subscription.next().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.close().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
}
