//! Helpers shared by the store's integration tests: appends without the boilerplate,
//! and the store's numbers from plain integers.
#![allow(dead_code)]

use std::path::Path;

use tally_store::{
    AppendOptions, AppendResult, EventStore, ExpectedVersion, GlobalPosition, NewEvent,
    StoreConfig, StreamId, StreamVersion,
};

/// A store in `dir` whose two logs have small, unpreallocated segments of
/// `segment_size` bytes (records up to a quarter of that, batches up to half), so
/// that a small log spans several segments and is cheap to copy.
pub fn small_segments(dir: &Path, segment_size: u64) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    for wal in [&mut config.wal, &mut config.snapshot_wal] {
        wal.max_segment_size = segment_size;
        wal.max_record_size = (segment_size / 4) as usize;
        wal.max_batch_size = (segment_size / 2) as usize;
        wal.preallocate = false;
    }
    config
}

/// Opens the store in `dir` with the default configuration.
pub async fn open(dir: &Path) -> EventStore {
    EventStore::open(StoreConfig::new(dir)).await.unwrap().0
}

/// A `MoneyDeposited` event of `amount`.
pub fn deposit(amount: u64) -> NewEvent {
    NewEvent::new("MoneyDeposited", format!(r#"{{"amount":{amount}}}"#))
}

/// Appends `events` to `stream` without options; panics if the append fails.
pub async fn append(
    store: &EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendResult {
    store
        .append(stream, expected, events, AppendOptions::default())
        .await
        .unwrap_or_else(|error| panic!("appending to {stream}: {error}"))
}

/// Appends one event named `name` with empty JSON data (see [`append`]).
pub async fn append_one(
    store: &EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    name: &str,
) -> AppendResult {
    append(store, stream, expected, vec![NewEvent::new(name, "{}")]).await
}

/// The expectation that the stream is at version `n` (0: that it has no events).
pub fn exact(n: u64) -> ExpectedVersion {
    ExpectedVersion::Exact(StreamVersion::new(n))
}

/// Stream version `n`.
pub fn version(n: u64) -> StreamVersion {
    StreamVersion::new(n)
}

/// Global position `n`.
pub fn position(n: u64) -> GlobalPosition {
    GlobalPosition::new(n)
}
