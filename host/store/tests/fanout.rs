//! Live subscriptions share one reader of the log: many subscribers get every event once,
//! in order, without reading the log themselves; a subscriber that falls behind the
//! broadcast catches up from the log with no gap or duplicate; the switch from catch-up to
//! live has no gap or duplicate while appends go on (seeded, replayable:
//! `TALLY_FANOUT_SEED`, rounds `TALLY_FANOUT_ROUNDS`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::{append, append_one, position};
use tally_store::{
    EventEncoder, EventStore, ExpectedVersion, GlobalPosition, NewEvent, RecordedEvent,
    StoreConfig, StreamId, Subscription, SubscriptionFilter,
};
use tally_test_support::{Rng, env_number, seed_from_env};

/// How long a test waits for an event before it calls the subscription stuck.
const PATIENCE: Duration = Duration::from_secs(30);

async fn open(config: StoreConfig) -> EventStore {
    EventStore::open(config).await.unwrap().0
}

/// The next `count` events' positions, waiting at most [`PATIENCE`] for each.
async fn positions(subscription: &mut Subscription, count: usize) -> Vec<u64> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let event = tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .expect("the next event in time")
            .unwrap();
        seen.push(event.position.get());
    }
    seen
}

/// Polls `subscription` on a log with nothing new for it, so that it joins the live
/// broadcast; checks that it did.
async fn go_live(subscription: &mut Subscription) {
    let waited = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await;
    assert!(waited.is_err(), "nothing to deliver yet: {waited:?}");
    assert!(subscription.is_live());
}

/// Waits until `subscriptions` subscriptions receive the live broadcast.
async fn until_live(store: &EventStore, subscriptions: usize) {
    for _ in 0..3000 {
        if store.subscription_stats().live >= subscriptions {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{subscriptions} subscriptions did not go live: {:?}",
        store.subscription_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_live_subscribers_get_every_event_from_one_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(StoreConfig::new(dir.path())).await;
    let stream = StreamId::new("acct", "a");
    for _ in 0..10 {
        append_one(&store, &stream, ExpectedVersion::Any, "Before").await;
    }
    const SUBSCRIBERS: usize = 200;
    const LIVE_EVENTS: u64 = 300;
    let mut readers = Vec::new();
    for i in 0..SUBSCRIBERS {
        // Half catch up from the start, half start at the end.
        let from = if i % 2 == 0 { 0 } else { 10 };
        let mut subscription = store.subscribe(position(from), SubscriptionFilter::default());
        let count = (10 - from + LIVE_EVENTS) as usize;
        readers.push(tokio::spawn(async move {
            let seen = positions(&mut subscription, count).await;
            (from, seen, subscription.is_live())
        }));
    }
    // Wait for every subscriber to be live (the catch-up happened before).
    tokio::time::sleep(Duration::from_millis(50)).await;
    until_live(&store, SUBSCRIBERS).await;
    let pages_read_to_catch_up = store.subscription_stats().catch_up_pages;
    for i in 0..LIVE_EVENTS {
        let events = vec![NewEvent::new("Live", format!(r#"{{"i":{i}}}"#))];
        append(&store, &stream, ExpectedVersion::Any, events).await;
    }
    for reader in readers {
        let (from, seen, live) = reader.await.unwrap();
        let expected: Vec<u64> = (from..10 + LIVE_EVENTS).collect();
        assert_eq!(seen, expected, "every event once, in order");
        assert!(live);
    }
    let stats = store.subscription_stats();
    assert_eq!(
        stats.catch_up_pages, pages_read_to_catch_up,
        "live subscribers read nothing from the log: {stats:?}"
    );
    assert!(
        stats.live_pages <= LIVE_EVENTS,
        "each event is read once by the shared reader: {stats:?}"
    );
    assert_eq!(stats.lagged, 0);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_catches_up_from_the_log_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.live_pages = 2;
    config.subscription_page = 3;
    let store = open(config).await;
    let stream = StreamId::new("acct", "slow");
    let mut slow = store.subscribe(GlobalPosition::START, SubscriptionFilter::default());
    go_live(&mut slow).await;
    // One append at a time, pages of at most three: far more than two pages while it
    // does not read.
    for _ in 0..41 {
        append_one(&store, &stream, ExpectedVersion::Any, "While asleep").await;
    }
    assert_eq!(positions(&mut slow, 41).await, (0..41).collect::<Vec<_>>());
    assert!(store.subscription_stats().lagged >= 1);
    // Live again afterwards.
    append_one(&store, &stream, ExpectedVersion::Any, "After").await;
    assert_eq!(positions(&mut slow, 1).await, vec![41]);
    assert_eq!(slow.position(), position(42));
    store.close().await.unwrap();
}

/// Counts its calls: an encoding made once per live page is made once however many
/// subscribers share the page.
struct CountingEncoder;

static ENCODED_EVENTS: AtomicUsize = AtomicUsize::new(0);

impl EventEncoder for CountingEncoder {
    fn encode(event: &RecordedEvent, out: &mut Vec<u8>) {
        ENCODED_EVENTS.fetch_add(1, Ordering::Relaxed);
        out.extend_from_slice(format!("{};", event.position).as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_share_each_live_page_and_its_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(StoreConfig::new(dir.path())).await;
    let stream = StreamId::new("acct", "shared");
    let filter = SubscriptionFilter::default();
    let mut first = store.subscribe(GlobalPosition::START, filter.clone());
    let mut second = store.subscribe(GlobalPosition::START, filter);
    // Both go live on an empty log, then one append of three events is one page.
    go_live(&mut first).await;
    go_live(&mut second).await;
    let waiting = tokio::spawn(async move {
        let a = first.next_delivery().await.unwrap();
        let b = second.next_delivery().await.unwrap();
        (a, b)
    });
    let events = (0..3).map(|i| NewEvent::new("E", format!("{i}"))).collect();
    append(&store, &stream, ExpectedVersion::Any, events).await;
    let (a, b) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(std::ptr::eq(a.page(), b.page()), "one page, shared");
    let every_event = 0..3;
    assert_eq!(a.runs(), std::slice::from_ref(&every_event));
    let before = ENCODED_EVENTS.load(Ordering::Relaxed);
    let encoded = a.page().encoded::<CountingEncoder>();
    assert_eq!(&encoded.range(0..3)[..], b"0;1;2;");
    assert_eq!(&encoded.range(1..2)[..], b"1;");
    assert_eq!(
        &b.page().encoded::<CountingEncoder>().range(2..3)[..],
        b"2;"
    );
    assert_eq!(ENCODED_EVENTS.load(Ordering::Relaxed) - before, 3);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_live_subscribers_get_only_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(StoreConfig::new(dir.path())).await;
    let by_type = SubscriptionFilter {
        aggregate_type: Some("b".into()),
        ..SubscriptionFilter::default()
    };
    let by_name = SubscriptionFilter {
        event_name: Some("Odd".into()),
        ..SubscriptionFilter::default()
    };
    let mut typed = store.subscribe(GlobalPosition::START, by_type);
    let mut named = store.subscribe(GlobalPosition::START, by_name);
    go_live(&mut typed).await;
    go_live(&mut named).await;
    let readers = tokio::spawn(async move {
        (
            positions(&mut typed, 10).await,
            positions(&mut named, 10).await,
        )
    });
    for i in 0..20u64 {
        let stream = StreamId::new(if i % 4 < 2 { "a" } else { "b" }, "x");
        let name = if i % 2 == 1 { "Odd" } else { "Even" };
        append_one(&store, &stream, ExpectedVersion::Any, name).await;
    }
    let (typed, named) = readers.await.unwrap();
    let expected_typed: Vec<u64> = (0..20).filter(|i| i % 4 >= 2).collect();
    let expected_named: Vec<u64> = (0..20).filter(|i| i % 2 == 1).collect();
    assert_eq!(typed, expected_typed);
    assert_eq!(named, expected_named);
    store.close().await.unwrap();
}

/// One round of the switch property: a log of `before` events; a subscriber from a random
/// position while a writer appends random batches; small pages, a small broadcast and
/// sometimes pacing, so that catch-up, the switch, lags and gaps all happen. The subscriber must see exactly
/// the log from its position, in order.
async fn switch_round(rng: &mut Rng) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.subscription_page = rng.range(1, 8) as usize;
    config.live_pages = rng.range(1, 4) as usize;
    // Sometimes paced: one subscriber then waits 1.5 or 3 ms between wake-ups.
    config.live_pacing_per_subscriber = Duration::from_micros(*rng.pick(&[0, 1_500, 3_000]));
    let store = open(config).await;
    let streams: Vec<StreamId> = (0..3)
        .map(|i| StreamId::new("acct", format!("s{i}")))
        .collect();
    let before = rng.range(0, 40);
    for _ in 0..before {
        append_one(&store, rng.pick(&streams), ExpectedVersion::Any, "Before").await;
    }
    let batches: Vec<(usize, u64, bool)> = (0..rng.range(1, 30))
        .map(|_| (rng.below(3) as usize, rng.range(1, 4), rng.percent(30)))
        .collect();
    let total = before + batches.iter().map(|(_, count, _)| count).sum::<u64>();
    let from = rng.range(0, before);
    let mut subscription = store.subscribe(position(from), SubscriptionFilter::default());
    let writer = {
        let (store, streams) = (store.clone(), streams.clone());
        tokio::spawn(async move {
            for (stream, count, pause) in batches {
                let events = (0..count).map(|_| NewEvent::new("During", "{}")).collect();
                append(&store, &streams[stream], ExpectedVersion::Any, events).await;
                if pause {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let mut seen = Vec::new();
    while (seen.len() as u64) < total - from {
        if rng.percent(10) {
            // A slow reader now and then: the broadcast moves on without it.
            tokio::time::sleep(Duration::from_millis(rng.range(1, 5))).await;
        }
        if rng.percent(50) {
            let delivery = tokio::time::timeout(PATIENCE, subscription.next_delivery())
                .await
                .expect("a delivery in time")
                .unwrap();
            seen.extend(delivery.events().map(|event| event.position.get()));
        } else {
            seen.extend(positions(&mut subscription, 1).await);
        }
    }
    writer.await.unwrap();
    assert_eq!(
        seen,
        (from..total).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(subscription.position(), position(total));
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_from_catch_up_to_live_has_no_gap_or_duplicate_under_appends() {
    let seed = seed_from_env("TALLY_FANOUT_SEED");
    let rounds = env_number("TALLY_FANOUT_ROUNDS", 30);
    let mut rng = Rng::new(seed);
    for round in 0..rounds {
        eprintln!("round {round}");
        switch_round(&mut rng).await;
    }
}
