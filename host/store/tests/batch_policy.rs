//! Under `FsyncPolicy::Batch` (and `Os`) the WAL answers at the write, before the fsync.
//! The store still adds an append to its index (and so to reads and subscriptions) only
//! once it is durable, so an acknowledged event is readable and never taken back by a crash.

mod common;

use std::time::Duration;

use common::{append_one, exact};
use tally_store::{EventStore, StoreConfig, StreamId, StreamRead, StreamVersion};
use tally_wal::FsyncPolicy;

#[tokio::test]
async fn an_acknowledged_event_is_readable_under_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.wal.fsync_policy = FsyncPolicy::Batch(Duration::from_secs(2));
    let (store, _) = EventStore::open(config).await.unwrap();
    let stream = StreamId::new("acct", "a");
    append_one(&store, &stream, exact(0), "Opened").await;
    // The index already lists the event (subscriptions would be woken for it) ...
    assert_eq!(store.stream_version(&stream), StreamVersion::FIRST);
    // ... but reading it fails until the Batch timer has fsynced it.
    let read = store
        .read_stream(&stream, StreamRead::forward(StreamVersion::FIRST, 10))
        .await;
    assert!(
        read.is_ok(),
        "reading an acknowledged event failed: {read:?}"
    );
    store.close().await.unwrap();
}
