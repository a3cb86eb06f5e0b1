//! Streams, expected versions, atomic appends, idempotency by command id.

use tally_store::{
    AppendOptions, CommandFingerprint, ExpectedVersion, GlobalPosition, NewEvent, StreamRead,
    StreamVersion,
};
use tally_store_postgres::PgStoreError;

use crate::{database_or_skip, events, exact, no_command, stream};

#[tokio::test]
async fn versions_count_events_and_the_expected_version_is_checked() {
    let database = database_or_skip!();
    let store = database.open().await;
    let account = stream("a");

    let first = store
        .append(&account, exact(0), events("Opened", 1), no_command())
        .await
        .unwrap();
    assert_eq!(first.first_version, StreamVersion::FIRST);
    assert_eq!(first.first_position, GlobalPosition::START);

    // "No stream yet" again: the stream has an event now.
    let err = store
        .append(&account, exact(0), events("Opened", 1), no_command())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgStoreError::WrongExpectedVersion { actual, .. } if actual == StreamVersion::FIRST),
        "{err}"
    );
    let any = store
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
    let err = store
        .append(&account, exact(2), events("Deposited", 1), no_command())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgStoreError::WrongExpectedVersion { .. }),
        "{err}"
    );
    store
        .append(&account, exact(3), events("Deposited", 1), no_command())
        .await
        .unwrap();
    assert_eq!(
        store.stream_version(&account).await.unwrap(),
        StreamVersion::new(4)
    );
    assert_eq!(store.end_position().await.unwrap(), GlobalPosition::new(4));
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_multi_event_append_is_all_or_nothing() {
    let database = database_or_skip!();
    let store = database.open().await;
    let account = stream("a");
    let result = store
        .append(&account, exact(0), events("E", 3), no_command())
        .await
        .unwrap();
    assert_eq!(result.count, 3);

    // Refused whole: nothing of it is stored.
    let err = store
        .append(&account, exact(1), events("Late", 5), no_command())
        .await
        .unwrap_err();
    assert!(matches!(err, PgStoreError::WrongExpectedVersion { .. }));
    let stored = store
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
    store.close().await.unwrap();
}

fn fingerprint(byte: u8) -> CommandFingerprint {
    CommandFingerprint::new([byte; CommandFingerprint::LEN])
}

#[tokio::test]
async fn a_retry_is_answered_with_the_first_result_and_a_reused_id_is_refused() {
    let database = database_or_skip!();
    let store = database.open().await;
    let account = stream("a");
    let options = AppendOptions::command("c-1").with_fingerprint(fingerprint(1));
    let first = store
        .append(&account, exact(0), events("Opened", 2), options.clone())
        .await
        .unwrap();
    assert!(!first.duplicate);

    // The same command again, even with a stale expected version: the first result.
    let retry = store
        .append(&account, exact(0), events("Opened", 2), options.clone())
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_position, retry.first_version, retry.count),
        (first.first_position, first.first_version, first.count)
    );
    assert_eq!(retry.timestamp_ms, first.timestamp_ms);
    assert_eq!(store.end_position().await.unwrap(), GlobalPosition::new(2));

    // The id for another command: another fingerprint, or another stream.
    let other = AppendOptions::command("c-1").with_fingerprint(fingerprint(2));
    let err = store
        .append(
            &account,
            ExpectedVersion::Any,
            events("Deposited", 1),
            other.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PgStoreError::CommandIdReused { command_id, stream } if command_id == "c-1" && *stream == account),
        "{err}"
    );
    let err = store
        .append(
            &stream("b"),
            ExpectedVersion::Any,
            events("Opened", 1),
            options.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PgStoreError::CommandIdReused { .. }), "{err}");
    assert_eq!(store.end_position().await.unwrap(), GlobalPosition::new(2));

    // Asked before deciding, as the runtime does.
    let earlier = store
        .earlier_append(&account, &options)
        .await
        .unwrap()
        .unwrap();
    assert!(earlier.duplicate);
    assert_eq!(earlier.first_position, first.first_position);
    assert!(matches!(
        store.earlier_append(&account, &other).await,
        Err(PgStoreError::CommandIdReused { .. })
    ));
    let unknown = AppendOptions::command("c-2");
    assert_eq!(
        store.earlier_append(&account, &unknown).await.unwrap(),
        None
    );
    let (on, result) = store.command_result("c-1").await.unwrap().unwrap();
    assert_eq!((on, result.count), (account.clone(), 2));

    // Durable: another store on the database (a restart, another host) answers the same.
    store.close().await.unwrap();
    let again = database.open().await;
    let retry = again
        .append(&account, exact(0), events("Opened", 2), options)
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, first.first_position);
    again.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_append_leaves_its_command_id_unused() {
    let database = database_or_skip!();
    let store = database.open().await;
    let account = stream("a");
    let options = AppendOptions::command("c-1");
    assert!(
        store
            .append(&account, exact(5), events("E", 1), options.clone())
            .await
            .is_err()
    );
    let result = store
        .append(&account, exact(0), events("E", 1), options)
        .await
        .unwrap();
    assert!(!result.duplicate);
    store.close().await.unwrap();
}

#[tokio::test]
async fn invalid_appends_are_refused_before_the_database() {
    let database = database_or_skip!();
    let store = database.open().await;
    let account = stream("a");
    let invalid = [
        vec![],
        vec![NewEvent::new("E", "not json")],
        vec![NewEvent::new("E\0", "{}")],
    ];
    for events in invalid {
        let err = store
            .append(&account, ExpectedVersion::Any, events, no_command())
            .await
            .unwrap_err();
        assert!(matches!(err, PgStoreError::InvalidInput(_)), "{err}");
    }
    assert_eq!(store.batch_stats().batches, 0);
    store.close().await.unwrap();
}
