//! The conformance suite of [`EventLog`]: every store semantic, written once and run
//! against each store (feature `testing`).
//!
//! A store's test binary implements [`Harness`] (how to open the store under test) and
//! expands [`event_log_conformance!`](crate::event_log_conformance) with a function that
//! returns the harness, or `None` to skip (a database that is not installed). Each case
//! is one `#[tokio::test]` of that binary, named as the function here.
//!
//! The cases panic on a failed check, as tests do.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::event::{
    AppendOptions, CommandFingerprint, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use crate::log::{EventLog, LogError, LogSubscription};
use crate::store::StreamRead;
use crate::subscription::SubscriptionFilter;
use crate::version::{GlobalPosition, StreamVersion};

/// How long a case waits for a subscription's event before it fails.
const WAIT: Duration = Duration::from_secs(30);

/// Opens the store under test.
pub trait Harness: Send + Sync {
    /// The store.
    type Log: EventLog;

    /// The store under test: empty at the first call; after a close, the same store
    /// again (a restart, or another host).
    fn open(&self) -> impl Future<Output = Self::Log> + Send;
}

/// One `#[tokio::test]` per conformance case, each opening its store through the
/// [`Harness`] that `$harness().await` returns (`None`: the case returns at once).
#[macro_export]
macro_rules! event_log_conformance {
    ($harness:path) => {
        $crate::event_log_conformance!(@cases $harness;
            versions_count_events_and_the_expected_version_is_checked,
            a_multi_event_append_is_all_or_nothing,
            a_retry_is_answered_with_the_first_result_and_a_reused_id_is_refused,
            a_failed_append_leaves_its_command_id_unused,
            invalid_appends_are_refused,
            the_log_is_read_in_position_order_with_no_gaps,
            streams_read_forward_backward_and_up_to_a_position,
            the_position_at_a_time_is_the_last_event_at_or_before_it,
            streams_are_listed_by_type_in_creation_order,
            the_latest_snapshot_per_stream_and_tag_is_kept,
            a_subscription_catches_up_then_goes_live,
            a_filtered_subscription_moves_past_what_it_skips,
            a_subscription_ends_when_its_store_closes,
        );
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                if let Some(harness) = $harness().await {
                    $crate::testing::$case(&harness).await;
                }
            }
        )*
    };
}

/// A stream of the suite's aggregate type.
fn stream(id: &str) -> StreamId {
    StreamId::new("account", id)
}

/// `count` events named `name`, with data `{"n": i}`.
fn events(name: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| NewEvent::new(name, format!(r#"{{"n":{i}}}"#)))
        .collect()
}

/// Options with no command id.
fn no_command() -> AppendOptions {
    AppendOptions::default()
}

/// `ExpectedVersion::Exact` of `version`.
fn exact(version: u64) -> ExpectedVersion {
    ExpectedVersion::Exact(StreamVersion::new(version))
}

/// A fingerprint of every byte `byte`.
fn fingerprint(byte: u8) -> CommandFingerprint {
    CommandFingerprint::new([byte; CommandFingerprint::LEN])
}

/// The global positions of `events`.
fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.get()).collect()
}

/// Appends `count` events named `name` to `stream` with no expectation and no command.
async fn append_any<L: EventLog>(log: &L, stream: &StreamId, name: &str, count: usize) {
    log.append(
        stream,
        ExpectedVersion::Any,
        events(name, count),
        no_command(),
    )
    .await
    .unwrap_or_else(|e| panic!("appending to {stream}: {e}"));
}

/// The next event of `subscription`, failing the case after [`WAIT`].
async fn next_event<S: LogSubscription>(subscription: &mut S) -> RecordedEvent {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("an event within the wait")
        .expect("the subscription delivers")
}

/// Versions count events from 1; `Exact` and `Any` expectations are checked.
pub async fn versions_count_events_and_the_expected_version_is_checked<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let account = stream("a");
    let first = log
        .append(&account, exact(0), events("Opened", 1), no_command())
        .await
        .unwrap();
    assert_eq!(first.first_version, StreamVersion::FIRST);
    assert_eq!(first.first_position, GlobalPosition::START);

    // "No stream yet" again: the stream has an event now.
    let err = log
        .append(&account, exact(0), events("Opened", 1), no_command())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { actual, .. } if actual == StreamVersion::FIRST),
        "{err}"
    );
    let any = log
        .append(
            &account,
            ExpectedVersion::Any,
            events("Deposited", 2),
            no_command(),
        )
        .await
        .unwrap();
    assert_eq!((any.first_version.get(), any.count), (2, 2));
    assert_eq!(any.first_position, GlobalPosition::new(1));
    let err = log
        .append(&account, exact(2), events("Deposited", 1), no_command())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { .. }),
        "{err}"
    );
    log.append(&account, exact(3), events("Deposited", 1), no_command())
        .await
        .unwrap();
    assert_eq!(
        log.stream_version(&account).await.unwrap(),
        StreamVersion::new(4)
    );
    assert_eq!(
        log.stream_version(&stream("none")).await.unwrap(),
        StreamVersion::ZERO
    );
    assert_eq!(log.end_position().await.unwrap(), GlobalPosition::new(4));
    log.close().await.unwrap();
}

/// A multi-event append is stored whole, with one timestamp, or not at all.
pub async fn a_multi_event_append_is_all_or_nothing<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let account = stream("a");
    let result = log
        .append(&account, exact(0), events("E", 3), no_command())
        .await
        .unwrap();
    assert_eq!(result.count, 3);

    // Refused whole: nothing of it is stored.
    let err = log
        .append(&account, exact(1), events("Late", 5), no_command())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { .. }),
        "{err}"
    );
    let stored = log
        .read_stream(&account, StreamRead::forward(StreamVersion::FIRST, 100))
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    for (i, event) in stored.iter().enumerate() {
        assert_eq!(event.version, StreamVersion::new(i as u64 + 1));
        assert_eq!(event.position, GlobalPosition::new(i as u64));
        assert_eq!(
            event.timestamp_ms, result.timestamp_ms,
            "one append, one timestamp"
        );
        assert_eq!(event.data, format!(r#"{{"n":{i}}}"#).as_bytes());
    }
    assert_eq!(log.end_position().await.unwrap(), GlobalPosition::new(3));
    log.close().await.unwrap();
}

/// A retry by command id answers the first result, also after a reopen; the id used
/// for another command (another fingerprint, another stream) is refused.
pub async fn a_retry_is_answered_with_the_first_result_and_a_reused_id_is_refused<H: Harness>(
    harness: &H,
) {
    let log = harness.open().await;
    let account = stream("a");
    let options = AppendOptions::command("c-1").with_fingerprint(fingerprint(1));
    let first = log
        .append(&account, exact(0), events("Opened", 2), options.clone())
        .await
        .unwrap();
    assert!(!first.duplicate);

    // The same command again, even with a stale expected version: the first result.
    let retry = log
        .append(&account, exact(0), events("Opened", 2), options.clone())
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_position, retry.first_version, retry.count),
        (first.first_position, first.first_version, first.count)
    );
    assert_eq!(retry.timestamp_ms, first.timestamp_ms);
    assert_eq!(log.end_position().await.unwrap(), GlobalPosition::new(2));

    let other = AppendOptions::command("c-1").with_fingerprint(fingerprint(2));
    check_reuse_refused(&log, &account, &options, &other).await;
    check_earlier_append(&log, &account, &options, &other, first.first_position).await;

    // Durable: the store opened again (a restart, another host) answers the same.
    log.close().await.unwrap();
    let again = harness.open().await;
    let retry = again
        .append(&account, exact(0), events("Opened", 2), options)
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, first.first_position);
    again.close().await.unwrap();
}

/// The id of `options` (appended to `account`) is refused with another fingerprint
/// (`other`) and on another stream, and nothing is written.
async fn check_reuse_refused<L: EventLog>(
    log: &L,
    account: &StreamId,
    options: &AppendOptions,
    other: &AppendOptions,
) {
    let err = log
        .append(
            account,
            ExpectedVersion::Any,
            events("Deposited", 1),
            other.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LogError::CommandIdReused { command_id, stream } if command_id == "c-1" && stream == account),
        "{err}"
    );
    let err = log
        .append(
            &stream("b"),
            ExpectedVersion::Any,
            events("Opened", 1),
            options.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::CommandIdReused { .. }), "{err}");
    assert_eq!(log.end_position().await.unwrap(), GlobalPosition::new(2));
}

/// Asked before deciding, as the runtime does: the earlier append of `options`, a
/// reuse for `other`, nothing for an unknown id; and the command's result by id.
async fn check_earlier_append<L: EventLog>(
    log: &L,
    account: &StreamId,
    options: &AppendOptions,
    other: &AppendOptions,
    first_position: GlobalPosition,
) {
    let earlier = log.earlier_append(account, options).await.unwrap().unwrap();
    assert!(earlier.duplicate);
    assert_eq!(earlier.first_position, first_position);
    assert!(matches!(
        log.earlier_append(account, other).await,
        Err(LogError::CommandIdReused { .. })
    ));
    let unknown = AppendOptions::command("c-2");
    assert_eq!(log.earlier_append(account, &unknown).await.unwrap(), None);
    let (on, result) = log.command_result("c-1").await.unwrap().unwrap();
    assert_eq!((&on, result.count), (account, 2));
    assert!(result.duplicate);
    assert!(log.command_result("c-2").await.unwrap().is_none());
}

/// An append refused by its expected version leaves its command id free.
pub async fn a_failed_append_leaves_its_command_id_unused<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let account = stream("a");
    let options = AppendOptions::command("c-1");
    let refused = log
        .append(&account, exact(5), events("E", 1), options.clone())
        .await;
    assert!(matches!(
        refused,
        Err(LogError::WrongExpectedVersion { .. })
    ));
    let result = log
        .append(&account, exact(0), events("E", 1), options)
        .await
        .unwrap();
    assert!(!result.duplicate);
    log.close().await.unwrap();
}

/// No events, data that is not JSON, a name with a NUL: refused, nothing written.
pub async fn invalid_appends_are_refused<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let account = stream("a");
    let invalid = [
        vec![],
        vec![NewEvent::new("E", "not json")],
        vec![NewEvent::new("E\0", "{}")],
    ];
    for events in invalid {
        let err = log
            .append(&account, ExpectedVersion::Any, events, no_command())
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::InvalidInput(_)), "{err}");
    }
    assert_eq!(log.end_position().await.unwrap(), GlobalPosition::START);
    log.close().await.unwrap();
}

/// Pages of the log follow each other: positions dense from 0, in append order, each
/// event with its stream's version, up to the end and no further.
pub async fn the_log_is_read_in_position_order_with_no_gaps<H: Harness>(harness: &H) {
    let log = harness.open().await;
    // Appends of 1, 2, 3 and 1 events to each of three streams: 7 events each.
    for count in [1, 2, 3, 1] {
        for id in ["a", "b", "c"] {
            append_any(&log, &stream(id), "E", count).await;
        }
    }
    let end = log.end_position().await.unwrap();
    assert_eq!(end, GlobalPosition::new(21));
    log.wait_committed(end).await.unwrap();

    let mut read = Vec::new();
    let mut from = GlobalPosition::START;
    loop {
        let page = log.read_all(from, 5).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 5);
        from = last.position.next();
        read.extend(page);
    }
    assert_eq!(positions(&read), (0..21).collect::<Vec<u64>>());
    for id in ["a", "b", "c"] {
        let versions: Vec<u64> = read
            .iter()
            .filter(|e| e.stream == stream(id))
            .map(|e| e.version.get())
            .collect();
        assert_eq!(versions, (1..=7).collect::<Vec<u64>>(), "stream {id}");
    }
    assert!(log.read_all(end, 10).await.unwrap().is_empty());
    log.close().await.unwrap();
}

/// Stream reads forward from a version, backward from the last event, capped, up to a
/// position (time travel); a stream with no events reads empty.
pub async fn streams_read_forward_backward_and_up_to_a_position<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let (a, b) = (stream("a"), stream("b"));
    // a: positions 0, 1, 4, 5; b: 2, 3.
    append_any(&log, &a, "A", 2).await;
    append_any(&log, &b, "B", 2).await;
    append_any(&log, &a, "A", 2).await;

    let read = |read: StreamRead| {
        let (log, a) = (log.clone(), a.clone());
        async move { positions(&log.read_stream(&a, read).await.unwrap()) }
    };
    assert_eq!(
        read(StreamRead::forward(StreamVersion::new(2), 10)).await,
        [1, 4, 5]
    );
    assert_eq!(
        read(StreamRead::forward(StreamVersion::FIRST, 2)).await,
        [0, 1]
    );
    assert_eq!(read(StreamRead::backward(3)).await, [5, 4, 1]);
    let back_then = StreamRead::backward(10).up_to(GlobalPosition::new(3));
    assert_eq!(read(back_then).await, [1, 0]);
    let forward_then = StreamRead::forward(StreamVersion::FIRST, 10).up_to(GlobalPosition::new(4));
    assert_eq!(read(forward_then).await, [0, 1, 4]);
    let none = log
        .read_stream(&stream("none"), StreamRead::backward(10))
        .await
        .unwrap();
    assert!(none.is_empty());

    let versions = log
        .read_stream_with(&a, StreamRead::backward(10), |event| event.version.get())
        .await
        .unwrap();
    assert_eq!(versions, [4, 3, 2, 1]);

    let all = log.read_all(GlobalPosition::new(2), 3).await.unwrap();
    assert_eq!(positions(&all), [2, 3, 4]);
    assert_eq!(all[0].stream, b);
    assert_eq!(all[0].version, StreamVersion::FIRST);
    log.close().await.unwrap();
}

/// The position at a time is the last event appended at or before it.
pub async fn the_position_at_a_time_is_the_last_event_at_or_before_it<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let a = stream("a");
    assert_eq!(log.position_at_time(u64::MAX >> 2).await.unwrap(), None);
    let first = log
        .append(&a, ExpectedVersion::Any, events("E", 2), no_command())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = log
        .append(&a, ExpectedVersion::Any, events("E", 1), no_command())
        .await
        .unwrap();
    assert!(second.timestamp_ms > first.timestamp_ms);

    let at = |time: u64| {
        let log = log.clone();
        async move { log.position_at_time(time).await.unwrap() }
    };
    assert_eq!(at(first.timestamp_ms - 1).await, None);
    assert_eq!(at(first.timestamp_ms).await, Some(GlobalPosition::new(1)));
    assert_eq!(
        at(second.timestamp_ms - 1).await,
        Some(GlobalPosition::new(1))
    );
    assert_eq!(
        at(second.timestamp_ms + 1000).await,
        Some(GlobalPosition::new(2))
    );
    log.close().await.unwrap();
}

/// Streams are listed per aggregate type in creation order, with their versions.
pub async fn streams_are_listed_by_type_in_creation_order<H: Harness>(harness: &H) {
    let log = harness.open().await;
    for id in ["z", "a", "m"] {
        append_any(&log, &stream(id), "E", 1).await;
    }
    let other = StreamId::new("order", "o-1");
    append_any(&log, &other, "E", 2).await;

    let listed = log.list_streams("account", 1, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|(s, _)| &*s.aggregate_id).collect();
    assert_eq!(ids, ["a", "m"]);
    assert_eq!(log.count_streams("account").await.unwrap(), 3);
    assert_eq!(log.count_streams("nothing").await.unwrap(), 0);
    assert_eq!(log.aggregate_types().await.unwrap(), ["account", "order"]);
    assert_eq!(
        log.list_streams("order", 0, 10).await.unwrap(),
        [(other, StreamVersion::new(2))]
    );
    log.close().await.unwrap();
}

/// Only the latest snapshot per stream and tag is kept (an older one is ignored); a
/// snapshot at version 0, past the stream, or with an empty tag is refused.
pub async fn the_latest_snapshot_per_stream_and_tag_is_kept<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let a = stream("a");
    append_any(&log, &a, "E", 3).await;

    assert!(log.latest_snapshot(&a, "v1").await.unwrap().is_none());
    let save = |version: u64, tag: &'static str, data: &'static [u8]| {
        let (log, a) = (log.clone(), a.clone());
        async move {
            log.save_snapshot(
                &a,
                StreamVersion::new(version),
                tag,
                Bytes::from_static(data),
            )
            .await
        }
    };
    save(2, "v1", b"two").await.unwrap();
    save(3, "v2", b"three").await.unwrap();
    // An older snapshot than the one kept is ignored.
    save(1, "v1", b"one").await.unwrap();
    let v1 = log.latest_snapshot(&a, "v1").await.unwrap().unwrap();
    assert_eq!(
        (v1.version, v1.data.as_ref()),
        (StreamVersion::new(2), &b"two"[..])
    );
    assert_eq!((&v1.stream, v1.tag.as_str()), (&a, "v1"));
    let v2 = log.latest_snapshot(&a, "v2").await.unwrap().unwrap();
    assert_eq!(v2.version, StreamVersion::new(3));
    save(3, "v1", b"3").await.unwrap();
    let v1 = log.latest_snapshot(&a, "v1").await.unwrap().unwrap();
    assert_eq!(
        (v1.version, v1.data.as_ref()),
        (StreamVersion::new(3), &b"3"[..])
    );

    for version in [0, 4] {
        let err = save(version, "v1", b"").await.unwrap_err();
        assert!(matches!(err, LogError::InvalidInput(_)), "{err}");
    }
    assert!(matches!(
        save(1, "", b"").await,
        Err(LogError::InvalidInput(_))
    ));
    log.close().await.unwrap();
}

/// A subscription from a position catches up on what is stored, then delivers new
/// appends as they become durable: every event once, in position order.
pub async fn a_subscription_catches_up_then_goes_live<H: Harness>(harness: &H) {
    let log = harness.open().await;
    append_any(&log, &stream("a"), "E", 5).await;

    let mut subscription = log.subscribe(GlobalPosition::new(1), SubscriptionFilter::default());
    for position in 1..5 {
        let event = next_event(&mut subscription).await;
        assert_eq!(event.position, GlobalPosition::new(position));
    }
    assert_eq!(subscription.position(), GlobalPosition::new(5));
    // Live: appends after the subscription caught up.
    let appending = {
        let log = log.clone();
        tokio::spawn(async move {
            for id in ["b", "c", "d"] {
                append_any(&log, &stream(id), "E", 2).await;
            }
        })
    };
    for position in 5..11 {
        let event = next_event(&mut subscription).await;
        assert_eq!(event.position, GlobalPosition::new(position));
    }
    appending.await.expect("the appends end");
    assert_eq!(subscription.position(), GlobalPosition::new(11));
    log.wait_committed(GlobalPosition::new(11)).await.unwrap();
    log.close().await.unwrap();
}

/// A filtered subscription delivers only its stream's events and moves past the
/// others.
pub async fn a_filtered_subscription_moves_past_what_it_skips<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let filter = SubscriptionFilter {
        stream: Some(stream("b")),
        ..SubscriptionFilter::default()
    };
    let mut subscription = log.subscribe(GlobalPosition::START, filter);
    append_any(&log, &stream("a"), "E", 3).await;
    append_any(&log, &stream("b"), "E", 1).await;
    append_any(&log, &stream("a"), "E", 2).await;
    let event = next_event(&mut subscription).await;
    assert_eq!(
        (event.position, event.stream),
        (GlobalPosition::new(3), stream("b"))
    );
    // Nothing more for it: it waits, having examined the rest.
    let more = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(more.is_err(), "no event past the filter");
    assert_eq!(subscription.position(), GlobalPosition::new(6));
    log.close().await.unwrap();
}

/// A subscription waiting for events fails with `Closed` when its store closes.
pub async fn a_subscription_ends_when_its_store_closes<H: Harness>(harness: &H) {
    let log = harness.open().await;
    let mut subscription = log.subscribe(GlobalPosition::START, SubscriptionFilter::default());
    let waiting = tokio::spawn(async move { subscription.next().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.close().await.unwrap();
    let outcome = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the subscription ends within the wait")
        .expect("the subscription's task ends");
    assert!(matches!(outcome, Err(LogError::Closed)), "{outcome:?}");
}
