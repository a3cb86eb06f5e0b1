//! What is this store's own about appends: an invalid one never reaches the database.
//! Versions, expected versions, atomic appends and idempotency are the conformance
//! suite's (`conformance.rs`).

use tally_store::{ExpectedVersion, NewEvent};
use tally_store_postgres::PgStoreError;

use crate::{database_or_skip, no_command, stream};

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
