//! The conformance suite of `EventLog` (`tally_store::testing`) against the embedded
//! store, each case in a store of its own in a temporary directory.

use tally_store::testing::Harness;
use tally_store::{EventStore, StoreConfig};
use tempfile::TempDir;

/// The embedded store in a temporary directory, opened again there after a close.
struct Embedded {
    dir: TempDir,
}

impl Harness for Embedded {
    type Log = EventStore;

    async fn open(&self) -> EventStore {
        let config = StoreConfig::new(self.dir.path());
        let (store, _report) = EventStore::open(config).await.expect("the store opens");
        store
    }
}

/// A fresh directory for a case.
async fn embedded() -> Option<Embedded> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Some(Embedded { dir })
}

tally_store::event_log_conformance!(embedded);
