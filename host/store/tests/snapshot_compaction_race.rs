//! Snapshot compaction never deletes a snapshot whose save is still finishing: a save
//! whose append landed in an old segment but whose map entry is not in yet is waited for
//! (saves hold a shared gate across append and insert; compaction takes it exclusively).
//!
//! The delay is made deterministic by polling the first `save_snapshot` future once (its
//! append is queued and written) and completing it only after compaction was triggered.

use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::{append_one, exact};
use tally_store::{EventStore, StoreConfig, StreamId, StreamVersion};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_while_compaction_runs_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.snapshot_wal.max_segment_size = 64 * 1024;
    config.snapshot_wal.max_record_size = 8 * 1024;
    config.snapshot_wal.max_batch_size = 16 * 1024;
    config.snapshot_compaction_bytes = 1;
    let (store, _) = EventStore::open(config).await.unwrap();
    let one = StreamId::new("acct", "one");
    let two = StreamId::new("acct", "two");
    for stream in [&one, &two] {
        append_one(&store, stream, exact(0), "Opened").await;
    }
    let state = Bytes::from(vec![1u8; 4000]);

    // The first save: its append is queued and written, but its task is not run again yet.
    let mut first = {
        let (store, one, state) = (store.clone(), one.clone(), state.clone());
        Box::pin(async move {
            store
                .save_snapshot(&one, StreamVersion::FIRST, "tag", state)
                .await
        })
    };
    let mut context = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut context).is_pending());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Other saves fill the segment, rotate the log and trigger compaction (on a task of
    // their own: compaction must wait for the first save to finish).
    let others = {
        let (store, two, state) = (store.clone(), two.clone(), state.clone());
        tokio::spawn(async move {
            for _ in 0..40 {
                store
                    .save_snapshot(&two, StreamVersion::FIRST, "tag", state.clone())
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Now the first save's task runs on and reports success.
    first.await.unwrap();
    others.await.unwrap();
    let latest = store.latest_snapshot(&one, "tag").await;
    assert!(
        matches!(latest, Ok(Some(ref snapshot)) if snapshot.data == state),
        "the acknowledged snapshot is gone: {latest:?}"
    );
    store.close().await.unwrap();
}
