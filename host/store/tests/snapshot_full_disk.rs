//! After a full disk, snapshot saves succeed again once space is back, without a restart
//! (the snapshot log is resumed after a failed save; snapshots do not depend on each
//! other's order).

use std::sync::Arc;
use std::sync::atomic::Ordering;

mod common;

use bytes::Bytes;
use common::{append_one, exact};
use tally_store::{EventStore, StoreConfig, StreamId, StreamVersion};
use tally_wal::vfs::FaultyVfs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_work_again_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = FaultyVfs::default();
    let full = vfs.full.clone();
    let mut config = StoreConfig::new(dir.path());
    config.snapshot_wal.vfs = Arc::new(vfs);
    let (store, _) = EventStore::open(config).await.unwrap();
    let a = StreamId::new("t", "a");
    append_one(&store, &a, exact(0), "E").await;

    full.store(true, Ordering::Relaxed);
    let err = store
        .save_snapshot(
            &a,
            StreamVersion::FIRST,
            "tag",
            Bytes::from_static(b"state"),
        )
        .await
        .unwrap_err();
    assert!(err.is_storage_full(), "{err}");

    full.store(false, Ordering::Relaxed);
    let saved = store
        .save_snapshot(
            &a,
            StreamVersion::FIRST,
            "tag",
            Bytes::from_static(b"state"),
        )
        .await;
    assert!(saved.is_ok(), "save after space came back: {saved:?}");
    store.close().await.unwrap();
}
