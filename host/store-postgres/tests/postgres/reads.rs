//! Stream reads, the log by position, time travel, stream listings, snapshots.

use bytes::Bytes;
use tally_store::{ExpectedVersion, GlobalPosition, StreamRead, StreamVersion};
use tally_store_postgres::PgStoreError;

use crate::{database_or_skip, events, no_command, stream};

#[tokio::test]
async fn streams_read_forward_backward_and_up_to_a_position() {
    let database = database_or_skip!();
    let store = database.open().await;
    let (a, b) = (stream("a"), stream("b"));
    // a: positions 0, 1, 4, 5; b: 2, 3.
    store
        .append(&a, ExpectedVersion::Any, events("A", 2), no_command())
        .await
        .unwrap();
    store
        .append(&b, ExpectedVersion::Any, events("B", 2), no_command())
        .await
        .unwrap();
    store
        .append(&a, ExpectedVersion::Any, events("A", 2), no_command())
        .await
        .unwrap();

    let positions = |events: Vec<tally_store::RecordedEvent>| -> Vec<u64> {
        events.iter().map(|e| e.position.get()).collect()
    };
    let forward = store
        .read_stream(&a, StreamRead::forward(StreamVersion::new(2), 10))
        .await
        .unwrap();
    assert_eq!(positions(forward), [1, 4, 5]);
    let capped = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 2))
        .await
        .unwrap();
    assert_eq!(positions(capped), [0, 1]);
    let backward = store
        .read_stream(&a, StreamRead::backward(3))
        .await
        .unwrap();
    assert_eq!(positions(backward), [5, 4, 1]);
    let back_then = store
        .read_stream(&a, StreamRead::backward(10).up_to(GlobalPosition::new(3)))
        .await
        .unwrap();
    assert_eq!(positions(back_then), [1, 0]);
    let forward_then = store
        .read_stream(
            &a,
            StreamRead::forward(StreamVersion::FIRST, 10).up_to(GlobalPosition::new(4)),
        )
        .await
        .unwrap();
    assert_eq!(positions(forward_then), [0, 1, 4]);
    let none = store
        .read_stream(&stream("none"), StreamRead::backward(10))
        .await
        .unwrap();
    assert!(none.is_empty());

    let all = store.read_all(GlobalPosition::new(2), 3).await.unwrap();
    assert_eq!(positions(all.clone()), [2, 3, 4]);
    assert_eq!(all[0].stream, b);
    assert_eq!(all[0].version, StreamVersion::FIRST);
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_position_at_a_time_is_the_last_event_at_or_before_it() {
    let database = database_or_skip!();
    let store = database.open().await;
    let a = stream("a");
    let first = store
        .append(&a, ExpectedVersion::Any, events("E", 2), no_command())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = store
        .append(&a, ExpectedVersion::Any, events("E", 1), no_command())
        .await
        .unwrap();
    assert!(second.timestamp_ms > first.timestamp_ms);

    assert_eq!(
        store
            .position_at_time(first.timestamp_ms - 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.position_at_time(first.timestamp_ms).await.unwrap(),
        Some(GlobalPosition::new(1))
    );
    assert_eq!(
        store
            .position_at_time(second.timestamp_ms + 1000)
            .await
            .unwrap(),
        Some(GlobalPosition::new(2))
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn streams_are_listed_by_type_in_creation_order() {
    let database = database_or_skip!();
    let store = database.open().await;
    for id in ["z", "a", "m"] {
        store
            .append(
                &stream(id),
                ExpectedVersion::Any,
                events("E", 1),
                no_command(),
            )
            .await
            .unwrap();
    }
    let other = tally_store::StreamId::new("order", "o-1");
    store
        .append(&other, ExpectedVersion::Any, events("E", 2), no_command())
        .await
        .unwrap();

    let listed = store.list_streams("account", 1, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|(s, _)| &*s.aggregate_id).collect();
    assert_eq!(ids, ["a", "m"]);
    assert_eq!(store.count_streams("account").await.unwrap(), 3);
    assert_eq!(store.aggregate_types().await.unwrap(), ["account", "order"]);
    assert_eq!(
        store.list_streams("order", 0, 10).await.unwrap(),
        [(other, StreamVersion::new(2))]
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_latest_snapshot_per_stream_and_tag_is_kept() {
    let database = database_or_skip!();
    let store = database.open().await;
    let a = stream("a");
    store
        .append(&a, ExpectedVersion::Any, events("E", 3), no_command())
        .await
        .unwrap();

    assert!(store.latest_snapshot(&a, "v1").await.unwrap().is_none());
    store
        .save_snapshot(&a, StreamVersion::new(2), "v1", Bytes::from_static(b"two"))
        .await
        .unwrap();
    store
        .save_snapshot(
            &a,
            StreamVersion::new(3),
            "v2",
            Bytes::from_static(b"three"),
        )
        .await
        .unwrap();
    // An older snapshot than the one kept is ignored.
    store
        .save_snapshot(&a, StreamVersion::FIRST, "v1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    let v1 = store.latest_snapshot(&a, "v1").await.unwrap().unwrap();
    assert_eq!(
        (v1.version, v1.data.as_ref()),
        (StreamVersion::new(2), &b"two"[..])
    );
    let v2 = store.latest_snapshot(&a, "v2").await.unwrap().unwrap();
    assert_eq!(v2.version, StreamVersion::new(3));
    store
        .save_snapshot(&a, StreamVersion::new(3), "v1", Bytes::from_static(b"3"))
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_snapshot(&a, "v1")
            .await
            .unwrap()
            .unwrap()
            .version,
        StreamVersion::new(3)
    );

    for version in [0, 4] {
        let err = store
            .save_snapshot(&a, StreamVersion::new(version), "v1", Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(err, PgStoreError::InvalidInput(_)), "{err}");
    }
    assert!(matches!(
        store
            .save_snapshot(&a, StreamVersion::FIRST, "", Bytes::new())
            .await,
        Err(PgStoreError::InvalidInput(_))
    ));
    store.close().await.unwrap();
}
