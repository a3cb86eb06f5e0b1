//! A full disk fails appends with a storage-full error and loses nothing; reads keep
//! working; once space is back, appends succeed again without a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;

mod common;

use common::{exact, position, version};
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, StreamRead,
    StreamVersion,
};
use tally_wal::vfs::FaultyVfs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_cleanly_while_the_disk_is_full_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = FaultyVfs::default();
    let full = vfs.full.clone();
    let mut config = StoreConfig::new(dir.path());
    config.wal.vfs = Arc::new(vfs);
    let (store, _) = EventStore::open(config.clone()).await.unwrap();
    let a = StreamId::new("t", "a");
    let event = || NewEvent::new("E", "{}");
    store
        .append(
            &a,
            ExpectedVersion::Any,
            vec![event()],
            AppendOptions::command("ok-1"),
        )
        .await
        .unwrap();

    full.store(true, Ordering::Relaxed);
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &a,
                    ExpectedVersion::Any,
                    vec![NewEvent::new("E", "{}")],
                    AppendOptions::command(format!("full-{n}")),
                )
                .await
        }));
    }
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(err.is_storage_full(), "{err}");
    }
    // Reads keep working.
    assert_eq!(
        store
            .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.stream_version(&a), version(1));

    full.store(false, Ordering::Relaxed);
    let result = store
        .append(&a, exact(1), vec![event()], AppendOptions::command("ok-2"))
        .await
        .unwrap();
    assert_eq!(
        (result.first_position, result.first_version),
        (position(1), version(2))
    );
    // A command that failed while the disk was full can be retried: it was never applied.
    let retried = store
        .append(
            &a,
            ExpectedVersion::Any,
            vec![event()],
            AppendOptions::command("full-3"),
        )
        .await
        .unwrap();
    assert!(!retried.duplicate);
    store.close().await.unwrap();

    let (store, report) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    assert!(!report.events_recovery.corruption_detected);
    assert_eq!(report.events, 3);
    let events = store
        .read_stream(&a, StreamRead::forward(StreamVersion::FIRST, 10))
        .await
        .unwrap();
    let commands: Vec<_> = events
        .iter()
        .map(|e| e.command_id.clone().unwrap())
        .collect();
    assert_eq!(commands, vec!["ok-1", "ok-2", "full-3"]);
}
