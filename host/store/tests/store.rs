//! Appends, expected versions, idempotency, reads, time travel, snapshots and validation.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{append, deposit, exact, open, position, version};
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, SchemaVersion, StoreConfig, StoreError,
    StreamId, StreamRead, StreamVersion,
};

#[tokio::test]
async fn appends_get_dense_versions_and_positions_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("bank-account", "a");
    let b = StreamId::new("bank-account", "b");
    let first = append(&store, &a, exact(0), vec![deposit(1), deposit(2)]).await;
    assert_eq!(
        (first.first_position, first.first_version, first.count),
        (position(0), version(1), 2)
    );
    assert_eq!(first.last_version(), version(2));
    let second = append(&store, &b, ExpectedVersion::Any, vec![deposit(3)]).await;
    assert_eq!(
        (second.first_position, second.first_version),
        (position(2), version(1))
    );
    let third = append(&store, &a, exact(2), vec![deposit(4)]).await;
    assert_eq!(
        (third.first_position, third.first_version),
        (position(3), version(3))
    );
    assert_eq!(store.stream_version(&a), version(3));
    assert_eq!(
        store.stream_version(&StreamId::new("bank-account", "zzz")),
        StreamVersion::ZERO
    );
    store.close().await.unwrap();

    let (store, report) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(report.events, 4);
    assert_eq!(report.streams, 2);
    let events = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 100))
        .await
        .unwrap();
    let summary: Vec<(u64, u64)> = events
        .iter()
        .map(|e| (e.position.get(), e.version.get()))
        .collect();
    assert_eq!(summary, vec![(0, 1), (1, 2), (3, 3)]);
    assert_eq!(&events[2].data[..], br#"{"amount":4}"#);
    assert_eq!(events[2].stream, a);
    assert_eq!(events[2].name, "MoneyDeposited");
    let all = store.read_all(position(0), 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position.get()).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
    );
    assert_eq!(
        store.list_streams("bank-account", 0, 10),
        vec![(a.clone(), version(3)), (b.clone(), version(1))]
    );
    assert_eq!(
        store.list_streams("bank-account", 1, 10),
        vec![(b, version(1))]
    );
    assert!(store.list_streams("other", 0, 10).is_empty());
}

#[tokio::test]
async fn a_wrong_expected_version_fails_with_the_actual_one_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    append(&store, &a, exact(0), vec![deposit(1)]).await;
    for expected in [exact(0), exact(5)] {
        let err = store
            .append(&a, expected, vec![deposit(2)], AppendOptions::default())
            .await
            .unwrap_err();
        match err {
            StoreError::WrongExpectedVersion { actual, .. } => assert_eq!(actual, version(1)),
            other => panic!("expected a version conflict, got {other}"),
        }
    }
    let err = store
        .append(
            &StreamId::new("t", "new"),
            exact(1),
            vec![deposit(2)],
            AppendOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongExpectedVersion {
                actual: StreamVersion::ZERO,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "wrong expected version for stream t/new: expected version 1, actual version 0"
    );
    assert_eq!(store.end_position(), position(1));
}

#[tokio::test]
async fn the_same_command_id_appends_once_also_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let once = store
        .append(
            &a,
            ExpectedVersion::Any,
            vec![deposit(1), deposit(2)],
            AppendOptions::command("cmd-1"),
        )
        .await
        .unwrap();
    assert!(!once.duplicate);
    let again = store
        .append(
            &a,
            ExpectedVersion::Any,
            vec![deposit(1), deposit(2)],
            AppendOptions::command("cmd-1"),
        )
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(AppendResultKey::of(&again), AppendResultKey::of(&once));
    // Reusing the id on another stream is refused.
    let err = store
        .append(
            &StreamId::new("t", "b"),
            ExpectedVersion::Any,
            vec![deposit(1)],
            AppendOptions::command("cmd-1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { .. }), "{err}");
    store.close().await.unwrap();

    let store = open(dir.path()).await;
    let after = store
        .append(
            &a,
            exact(99),
            vec![deposit(1), deposit(2)],
            AppendOptions::command("cmd-1"),
        )
        .await
        .unwrap();
    assert!(after.duplicate);
    assert_eq!(AppendResultKey::of(&after), AppendResultKey::of(&once));
    assert_eq!(store.end_position(), position(2));
    let events = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 10))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].command_id.as_deref(), Some("cmd-1"));
}

#[tokio::test]
async fn concurrent_appends_with_one_command_id_append_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &a,
                    ExpectedVersion::Any,
                    vec![deposit(7)],
                    AppendOptions::command("same"),
                )
                .await
                .unwrap()
        }));
    }
    let mut originals = 0;
    for task in tasks {
        let result = task.await.unwrap();
        assert_eq!(result.first_position, position(0));
        originals += usize::from(!result.duplicate);
    }
    assert_eq!(originals, 1);
    assert_eq!(store.end_position(), position(1));
}

/// The parts of an append result that must be equal for a duplicate.
#[derive(Debug, PartialEq, Eq)]
struct AppendResultKey(u64, u64, u64, u64);

impl AppendResultKey {
    fn of(result: &tally_store::AppendResult) -> Self {
        AppendResultKey(
            result.first_position.get(),
            result.first_version.get(),
            result.count,
            result.timestamp_ms,
        )
    }
}

#[tokio::test]
async fn streams_read_forward_backward_paged_and_up_to_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let other = StreamId::new("t", "other");
    for n in 0..20 {
        append(&store, &a, ExpectedVersion::Any, vec![deposit(n)]).await;
        append(&store, &other, ExpectedVersion::Any, vec![deposit(n)]).await;
    }
    let versions = |events: Vec<tally_store::RecordedEvent>| {
        events.iter().map(|e| e.version.get()).collect::<Vec<_>>()
    };
    assert_eq!(
        versions(
            store
                .read_stream(&a, StreamRead::forward(version(6), 3))
                .await
                .unwrap()
        ),
        vec![6, 7, 8]
    );
    assert_eq!(
        versions(
            store
                .read_stream(&a, StreamRead::backward(3))
                .await
                .unwrap()
        ),
        vec![20, 19, 18]
    );
    let mut from_version = StreamRead::backward(2);
    from_version.from_version = Some(version(5));
    assert_eq!(
        versions(store.read_stream(&a, from_version).await.unwrap()),
        vec![5, 4]
    );
    // Version 0 reads from the first event, as version 1 does.
    assert_eq!(
        versions(
            store
                .read_stream(&a, StreamRead::forward(StreamVersion::ZERO, 2))
                .await
                .unwrap()
        ),
        vec![1, 2]
    );
    // Position of version 10 of `a` is 18: reading up to it stops there.
    let upto = store
        .read_stream(
            &a,
            StreamRead::forward(StreamVersion::FIRST, 100).up_to(position(18)),
        )
        .await
        .unwrap();
    assert_eq!(upto.last().unwrap().version, version(10));
    assert_eq!(
        versions(
            store
                .read_stream(&a, StreamRead::forward(version(31), 3))
                .await
                .unwrap()
        ),
        Vec::<u64>::new()
    );
    let page = store.read_all(position(10), 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position.get()).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    // Events of one read share their stream id, and each its own data.
    let read = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 100))
        .await
        .unwrap();
    assert!(read.iter().all(|event| event.stream == a));
    assert_eq!(read[3].data, Bytes::from(r#"{"amount":3}"#));
}

#[tokio::test]
async fn borrowed_reads_see_exactly_what_owned_reads_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let other = StreamId::new("t", "other");
    for n in 0..30 {
        let stream = if n % 3 == 0 { &other } else { &a };
        let noted = NewEvent::new("Noted", "{}").with_schema_version(SchemaVersion::new(2));
        append(
            &store,
            stream,
            ExpectedVersion::Any,
            vec![deposit(n), noted],
        )
        .await;
    }
    let reads = [
        StreamRead::forward(StreamVersion::FIRST, 1000),
        StreamRead::forward(version(8), 5),
        StreamRead::backward(4),
        StreamRead::forward(StreamVersion::FIRST, 1000).up_to(position(30)),
        StreamRead::forward(version(101), 5),
    ];
    for read in reads {
        let owned = store.read_stream(&a, read).await.unwrap();
        let borrowed = store
            .read_stream_with(&a, read, |event| {
                (
                    event.position,
                    event.version,
                    event.name.to_owned(),
                    event.schema_version,
                    event.timestamp_ms,
                    event.data.to_vec(),
                )
            })
            .await
            .unwrap();
        let expected: Vec<_> = owned
            .iter()
            .map(|event| {
                (
                    event.position,
                    event.version,
                    event.name.clone(),
                    event.schema_version,
                    event.timestamp_ms,
                    event.data.to_vec(),
                )
            })
            .collect();
        assert_eq!(borrowed, expected, "{read:?}");
    }
    let none = store
        .read_stream_with(
            &StreamId::new("t", "missing"),
            StreamRead::forward(StreamVersion::FIRST, 10),
            |_| (),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn time_travel_finds_the_last_position_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let first = append(&store, &a, ExpectedVersion::Any, vec![deposit(1)]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = append(&store, &a, ExpectedVersion::Any, vec![deposit(2)]).await;
    assert!(second.timestamp_ms > first.timestamp_ms);
    assert_eq!(
        store.position_at_time(first.timestamp_ms).await.unwrap(),
        Some(position(0))
    );
    assert_eq!(
        store.position_at_time(second.timestamp_ms).await.unwrap(),
        Some(position(1))
    );
    assert_eq!(
        store
            .position_at_time(first.timestamp_ms - 1)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    let cases: Vec<(StreamId, Vec<NewEvent>, &str)> = vec![
        (a.clone(), vec![], "at least one event"),
        (a.clone(), vec![NewEvent::new("E", "not json")], "not JSON"),
        (
            a.clone(),
            vec![NewEvent::new("", "{}")],
            "event name is empty",
        ),
        (
            a.clone(),
            vec![NewEvent::new("E", "{}").with_metadata("[1]")],
            "not a JSON object",
        ),
        (
            StreamId::new("", "x"),
            vec![NewEvent::new("E", "{}")],
            "aggregate type is empty",
        ),
        (
            StreamId::new("t", "x".repeat(300)),
            vec![NewEvent::new("E", "{}")],
            "limit is 256",
        ),
        (
            a.clone(),
            vec![NewEvent::new("E", Bytes::from(vec![b' '; 2 * 1024 * 1024]))],
            "exceeds the limit",
        ),
        (
            a.clone(),
            (0..1001).map(|_| NewEvent::new("E", "{}")).collect(),
            "exceed the limit",
        ),
    ];
    for (stream, events, message) in cases {
        let err = store
            .append(
                &stream,
                ExpectedVersion::Any,
                events,
                AppendOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
        assert!(
            err.to_string().contains(message),
            "{err} should mention {message}"
        );
    }
    assert_eq!(store.end_position(), position(0));
}

#[tokio::test]
async fn snapshots_return_the_latest_of_their_tag_only_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("t", "a");
    for n in 0..5 {
        append(&store, &a, ExpectedVersion::Any, vec![deposit(n)]).await;
    }
    store
        .save_snapshot(&a, version(3), "plugin@1", Bytes::from_static(b"v1-at-3"))
        .await
        .unwrap();
    store
        .save_snapshot(&a, version(5), "plugin@1", Bytes::from_static(b"v1-at-5"))
        .await
        .unwrap();
    store
        .save_snapshot(&a, version(4), "plugin@2", Bytes::from_static(b"v2-at-4"))
        .await
        .unwrap();
    // Beyond the stream's version, or before its first event: refused.
    for beyond in [version(6), StreamVersion::ZERO] {
        let err = store
            .save_snapshot(&a, beyond, "plugin@1", Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    }
    let latest = store
        .latest_snapshot(&a, "plugin@1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.version, &latest.data[..]),
        (version(5), &b"v1-at-5"[..])
    );
    assert!(
        store
            .latest_snapshot(&a, "plugin@3")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await.unwrap();

    let (store, report) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(report.snapshots, 2);
    let latest = store
        .latest_snapshot(&a, "plugin@2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.version, &latest.data[..]),
        (version(4), &b"v2-at-4"[..])
    );
}

#[tokio::test]
async fn a_snapshot_ahead_of_its_stream_is_not_used() {
    // A snapshot log whose snapshot includes three events, next to an event log where
    // the stream has one (as after losing an unsynced tail of the event log).
    let ahead = tempfile::tempdir().unwrap();
    let behind = tempfile::tempdir().unwrap();
    let a = StreamId::new("t", "a");
    for (dir, events) in [(&ahead, 3), (&behind, 1)] {
        let store = open(dir.path()).await;
        for n in 0..events {
            append(&store, &a, ExpectedVersion::Any, vec![deposit(n)]).await;
        }
        let at = store.stream_version(&a);
        store
            .save_snapshot(&a, at, "plugin@1", Bytes::from_static(b"state"))
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let snapshots = |dir: &tempfile::TempDir| dir.path().join("snapshots");
    std::fs::remove_dir_all(snapshots(&behind)).unwrap();
    std::fs::create_dir(snapshots(&behind)).unwrap();
    for entry in std::fs::read_dir(snapshots(&ahead)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "wal") {
            std::fs::copy(&path, snapshots(&behind).join(path.file_name().unwrap())).unwrap();
        }
    }
    let store = open(behind.path()).await;
    assert_eq!(store.stream_version(&a), version(1));
    assert!(
        store
            .latest_snapshot(&a, "plugin@1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn old_snapshots_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.snapshot_wal.max_segment_size = 128 * 1024 + 64 * 1024;
    config.snapshot_wal.max_record_size = 64 * 1024;
    config.snapshot_wal.max_batch_size = 64 * 1024;
    config.snapshot_compaction_bytes = 256 * 1024;
    let (store, _) = EventStore::open(config.clone()).await.unwrap();
    let streams: Vec<StreamId> = (0..4)
        .map(|n| StreamId::new("t", format!("s{n}")))
        .collect();
    for stream in &streams {
        append(&store, stream, ExpectedVersion::Any, vec![deposit(1)]).await;
    }
    let state = Bytes::from(vec![7u8; 8 * 1024]);
    for round in 0..200u64 {
        for stream in &streams {
            let tag = format!("tag{}", round % 2);
            store
                .save_snapshot(stream, StreamVersion::FIRST, &tag, state.clone())
                .await
                .unwrap();
        }
    }
    let files = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    // 200 rounds x 4 streams x 8 KiB = 6.4 MiB written; compaction keeps a few segments.
    assert!(files < 10, "{files} files in the snapshot log");
    for stream in &streams {
        for tag in ["tag0", "tag1"] {
            let snapshot = store.latest_snapshot(stream, tag).await.unwrap().unwrap();
            assert_eq!(snapshot.data, state);
        }
    }
    store.close().await.unwrap();
    let (store, report) = EventStore::open(config).await.unwrap();
    assert_eq!(report.snapshots, 8);
    assert!(
        store
            .latest_snapshot(&streams[0], "tag1")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path()).await;
    let err = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
}
