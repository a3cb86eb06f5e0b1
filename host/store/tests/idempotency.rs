//! Command ids with command fingerprints: a retry (the same fingerprint) answers the
//! first append's result, a reuse of the id for another command is refused, also
//! while the first append is in flight and after a reopen; appends written before
//! fingerprints were kept (envelope version 1) take a repeated id for a retry.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use common::{deposit, exact, open, position};
use tally_store::tally_wal::format::put_varint;
use tally_store::tally_wal::{FsyncPolicy, Record, Wal};
use tally_store::{
    AppendOptions, AppendResult, CommandFingerprint, EventStore, ExpectedVersion, StoreConfig,
    StoreError, StreamId, StreamRead, StreamVersion, Submitted,
};

/// A fingerprint made of `n`.
fn fingerprint(n: u8) -> CommandFingerprint {
    CommandFingerprint::new([n; CommandFingerprint::LEN])
}

/// Options with command id `id` and the fingerprint made of `n`.
fn command(id: &str, n: u8) -> AppendOptions {
    AppendOptions::command(id).with_fingerprint(fingerprint(n))
}

/// Appends one deposit of `amount` to `stream` with `options`.
async fn deposit_with(
    store: &EventStore,
    stream: &StreamId,
    amount: u64,
    options: AppendOptions,
) -> tally_store::Result<AppendResult> {
    store
        .append(stream, ExpectedVersion::Any, vec![deposit(amount)], options)
        .await
}

/// Whether `result` is a refusal of command id `id`, used for `stream`.
fn is_reuse(result: &tally_store::Result<AppendResult>, id: &str, stream: &StreamId) -> bool {
    matches!(
        result,
        Err(StoreError::CommandIdReused { command_id, stream: used_for })
            if command_id == id && used_for == stream
    )
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused_also_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("bank-account", "acc-1");
    let first = deposit_with(&store, &a, 1, command("c-1", 1))
        .await
        .unwrap();
    let retry = deposit_with(&store, &a, 1, command("c-1", 1))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, first.first_position);
    let reuse = deposit_with(&store, &a, 2, command("c-1", 2)).await;
    assert!(is_reuse(&reuse, "c-1", &a), "{reuse:?}");
    assert_eq!(
        reuse.unwrap_err().to_string(),
        "command id c-1 was already used for another command, on bank-account/acc-1"
    );
    // An append without a fingerprint cannot be told apart: taken for a retry.
    let unknown = deposit_with(&store, &a, 2, AppendOptions::command("c-1")).await;
    assert!(unknown.unwrap().duplicate);
    assert_eq!(store.end_position(), position(1));
    store.close().await.unwrap();

    let store = open(dir.path()).await;
    let retry = deposit_with(&store, &a, 1, command("c-1", 1))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, first.first_position);
    let reuse = deposit_with(&store, &a, 2, command("c-1", 2)).await;
    assert!(is_reuse(&reuse, "c-1", &a), "{reuse:?}");
    assert_eq!(store.end_position(), position(1));
    store.close().await.unwrap();
}

#[tokio::test]
async fn racing_appends_of_one_command_id_for_two_commands_append_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = StreamId::new("bank-account", "acc-1");
    let mut tasks = Vec::new();
    for n in 0..16u8 {
        let (store, a) = (store.clone(), a.clone());
        let which = 1 + n % 2;
        tasks.push(tokio::spawn(async move {
            let result = deposit_with(&store, &a, u64::from(which), command("same", which)).await;
            (which, result)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let originals: Vec<u8> = results
        .iter()
        .filter(|(_, result)| result.as_ref().is_ok_and(|result| !result.duplicate))
        .map(|(which, _)| *which)
        .collect();
    assert_eq!(originals.len(), 1, "{results:?}");
    let applied = originals[0];
    for (which, result) in &results {
        if *which == applied {
            assert_eq!(result.as_ref().unwrap().first_position, position(0));
        } else {
            assert!(is_reuse(result, "same", &a), "{result:?}");
        }
    }
    assert_eq!(store.end_position(), position(1));
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_earlier_append_is_found_before_appending_once_the_one_in_flight_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    // The batch window keeps the first append in flight for a while.
    config.wal.fsync_policy = FsyncPolicy::Batch(Duration::from_millis(300));
    let (store, _) = EventStore::open(config).await.unwrap();
    let a = StreamId::new("bank-account", "acc-1");
    let events = vec![deposit(1)];
    let submitted = store
        .submit(&a, ExpectedVersion::Any, events, command("c-1", 1))
        .await
        .unwrap();
    let Submitted::Queued(queued) = submitted else {
        panic!("the first append with c-1 is no duplicate")
    };
    let (same, other) = (command("c-1", 1), command("c-1", 2));
    let (retry, reuse) = tokio::join!(
        store.earlier_append(&a, &same),
        store.earlier_append(&a, &other),
    );
    // Answered only once the first append is durable.
    assert!(store.command_result("c-1").is_some());
    let first = queued.durable().await.unwrap();
    let retry = retry
        .unwrap()
        .expect("the first append is the same command");
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_position, retry.count),
        (first.first_position, 1)
    );
    assert!(is_reuse(&reuse.map(|_| first.clone()), "c-1", &a));
    let elsewhere = store
        .earlier_append(&StreamId::new("bank-account", "acc-2"), &command("c-1", 1))
        .await;
    assert!(is_reuse(&elsewhere.map(|_| first.clone()), "c-1", &a));
    let unused = store.earlier_append(&a, &command("c-2", 1)).await.unwrap();
    assert_eq!(unused, None);
    let no_id = store.earlier_append(&a, &AppendOptions::default()).await;
    assert_eq!(no_id.unwrap(), None);
    store.close().await.unwrap();
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The envelope of an event appended alone, as a store wrote it before command
/// fingerprints (version 1 in `FORMAT.md`): the event at global `position`, the first
/// of its stream, with `command_id`.
fn version_1_envelope(position: u64, stream: &StreamId, command_id: &str, data: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(1);
    out.put_u64_le(position);
    // The stream version minus one: the first event of its stream.
    out.put_u64_le(0);
    out.put_u64_le(now_ms());
    out.put_u32_le(1);
    // The only event of its append.
    out.put_u32_le(0);
    out.put_u32_le(1);
    let name = "MoneyDeposited";
    for field in [
        stream.aggregate_type.as_bytes(),
        stream.aggregate_id.as_bytes(),
        name.as_bytes(),
        command_id.as_bytes(),
        b"",
        b"",
        b"",
    ] {
        put_varint(&mut out, field.len() as u64);
        out.put_slice(field);
    }
    out.put_slice(data.as_bytes());
    out.freeze()
}

/// Writes `envelopes` to the event log of the store in `dir`, one append each.
async fn write_event_log(dir: &std::path::Path, envelopes: Vec<Bytes>) {
    let (wal, _) = Wal::open(StoreConfig::new(dir).wal).await.unwrap();
    for envelope in envelopes {
        wal.append_batch(&[Record::new(envelope)]).await.unwrap();
    }
    wal.close().await.unwrap();
}

#[tokio::test]
async fn a_command_id_written_before_fingerprints_takes_a_repeat_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let a = StreamId::new("bank-account", "acc-1");
    let b = StreamId::new("bank-account", "acc-2");
    write_event_log(
        dir.path(),
        vec![
            version_1_envelope(0, &a, "c-1", r#"{"amount":1}"#),
            version_1_envelope(1, &b, "", r#"{"amount":2}"#),
        ],
    )
    .await;

    let store = open(dir.path()).await;
    assert_eq!(store.end_position(), position(2));
    // The old append has no fingerprint: any command with its id is taken for a retry.
    let repeat = deposit_with(&store, &a, 9, command("c-1", 9))
        .await
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.first_position, position(0));
    // Another stream still tells a reuse.
    let reuse = deposit_with(&store, &b, 9, command("c-1", 9)).await;
    assert!(is_reuse(&reuse, "c-1", &a), "{reuse:?}");
    // New appends continue the old log, with fingerprints.
    let new = store
        .append(&a, exact(1), vec![deposit(3)], command("c-2", 3))
        .await
        .unwrap();
    assert_eq!(new.first_position, position(2));
    store.close().await.unwrap();

    let store = open(dir.path()).await;
    let reuse = deposit_with(&store, &a, 4, command("c-2", 4)).await;
    assert!(is_reuse(&reuse, "c-2", &a), "{reuse:?}");
    assert!(
        deposit_with(&store, &a, 9, command("c-1", 9))
            .await
            .unwrap()
            .duplicate
    );
    let events = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 10))
        .await
        .unwrap();
    let data: Vec<&[u8]> = events.iter().map(|event| &event.data[..]).collect();
    assert_eq!(data, [&br#"{"amount":1}"#[..], br#"{"amount":3}"#]);
    store.close().await.unwrap();
    let report = tally_store::verify(dir.path(), false, |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.event_count, 3);
}
