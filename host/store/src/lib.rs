//! `tally-store`: Tally's event store on [`tally_wal`].
//!
//! Every aggregate has a stream; every event has a dense global position and a dense
//! version in its stream. The numbers have types of their own, with one convention each:
//!
//! - [`StreamVersion`]: a stream's version is its number of events (0: none), and an
//!   event's version is the stream's version once it is appended, so the first event of a
//!   stream has version 1. The runtime, the HTTP API and plugins use the same numbers.
//! - [`GlobalPosition`]: an event's place in the whole log, from 0 in append order; the
//!   log's end is the position the next event gets (the number of events stored).
//! - [`SchemaVersion`]: the schema version of an event's data (1 unless a plugin says
//!   otherwise).
//!
//! Appends are atomic, checked against an expected version,
//! idempotent by command id (also across restarts; a [`CommandFingerprint`] tells a
//! retry from a reuse of the id for another command), and group-committed through the
//! WAL.
//! Reads of a stream cost in proportion to that stream; subscriptions catch up and then
//! follow live, delivering only durable events; snapshots are tagged by state encoding.
//!
//! ```no_run
//! # async fn demo() -> tally_store::Result<()> {
//! use tally_store::{
//!     AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, StreamVersion,
//! };
//!
//! let (store, _report) = EventStore::open(StoreConfig::new("data/store")).await?;
//! let account = StreamId::new("bank-account", "acc-1");
//! let opened = NewEvent::new("AccountOpened", r#"{"initial_balance":100}"#);
//! // The stream must have no events yet.
//! let expected = ExpectedVersion::Exact(StreamVersion::ZERO);
//! let result = store
//!     .append(&account, expected, vec![opened], AppendOptions::command("c-1"))
//!     .await?;
//! assert_eq!(result.last_version(), StreamVersion::FIRST);
//! store.close().await
//! # }
//! ```
//!
//! [`EventLog`] is the interface the embedded store shares with the one on PostgreSQL
//! (`tally-store-postgres`); with the feature `testing`, the module `testing` is the
//! conformance suite both run.
//!
//! [`verify()`] checks a store directory offline (both logs, every envelope), optionally
//! cutting a damaged log. The envelope format is in `FORMAT.md`.

mod append;
mod codec;
mod config;
mod error;
mod event;
mod index;
mod live;
mod log;
mod rebuild;
mod snapshot;
mod store;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;
mod version;

pub use config::StoreConfig;
pub use error::{Result, StoreError};
pub use event::{
    AppendOptions, AppendResult, CommandFingerprint, EventRef, ExpectedVersion, NewEvent,
    RecordedEvent, StreamId,
};
pub use index::CommandRetention;
pub use live::{CATCH_UP_READS, SubscriptionStats};
pub use log::{EventLog, LogError, LogResult, LogSubscription};
pub use snapshot::Snapshot;
pub use store::{EventStore, OpenReport, QueuedAppend, StreamRead, Submitted};
pub use subscription::{
    Delivery, EncodedEvents, EventEncoder, EventPage, Subscription, SubscriptionFilter,
};
/// Re-exported: the store's configuration embeds the log's.
pub use tally_wal;
pub use verify::{StoreLog, StoreProblem, StoreVerifyReport, VerifyProgress, verify, verify_with};
pub use version::{GlobalPosition, SchemaVersion, StreamVersion};
