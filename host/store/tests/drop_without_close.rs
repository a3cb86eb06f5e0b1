//! Dropping every `EventStore` handle without `close` ends the committer task, closes the
//! logs and releases their locks: the same process can open the store again.

use std::time::Duration;

use tally_store::{EventStore, StoreConfig};

#[tokio::test]
async fn dropping_the_store_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EventStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    drop(store);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reopened = EventStore::open(StoreConfig::new(dir.path())).await;
    assert!(reopened.is_ok(), "reopen after drop: {:?}", reopened.err());
}
