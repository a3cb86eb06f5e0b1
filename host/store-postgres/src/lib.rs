//! `tally-store-postgres`: Tally's event store on PostgreSQL, for hosts that share one
//! database.
//!
//! [`PostgresEventStore`] keeps the semantics of the embedded store (`tally-store`), with
//! its types ([`StreamId`](tally_store::StreamId), [`GlobalPosition`](tally_store::GlobalPosition),
//! [`StreamVersion`](tally_store::StreamVersion), [`ExpectedVersion`](tally_store::ExpectedVersion),
//! [`RecordedEvent`](tally_store::RecordedEvent), ...) and its numbering:
//!
//! - **Global positions that a reader can never skip.** Positions are dense from 0 and
//!   become visible only in commit order: every append locks the one row of
//!   `tally_log_head` before it takes positions and holds it until it commits, so a
//!   transaction that commits later always has larger positions. A reader that has read
//!   up to a position never finds an event below it later
//!   (`docs/decisions/015-postgres-event-store.md`).
//! - **Streams**: per-stream versions, expected version `Any` or `Exact` (with
//!   `Exact(StreamVersion::ZERO)` for "no stream yet"), atomic multi-event appends.
//! - **Idempotency**: a command id is stored in the transaction of its events, with the
//!   command's fingerprint: a retry answers the first result, a reuse of the id for
//!   another command is refused ([`PgStoreError::CommandIdReused`]).
//! - **Group commit**: concurrent appends through one handle are gathered into one call
//!   of the SQL function `tally_append` (one round trip, one transaction, one commit),
//!   which checks each append on its own: a failed check fails only its append.
//! - **Reads**: a stream forward or backward, up to a position (time travel);
//!   the log by position; the position at a time; snapshots by stream and tag.
//! - **Subscriptions**: catch up, then live. `LISTEN`/`NOTIFY` only wakes readers up; they
//!   read every event from the table.
//! - **Migrations**: the schema is versioned ([`migrations()`]) and brought up to date
//!   at open, under an advisory lock, one transaction for all of them.
//!
//! The store implements [`tally_store::EventLog`], the interface it shares with the
//! embedded store (its errors become [`tally_store::LogError`]), and passes the same
//! conformance suite (`tally_store::testing`).
//!
//! The runtime runs on it with `tally serve --store postgres://...`; plugin components
//! are kept here too ([`PostgresEventStore::save_component`]), so that every host of
//! a cluster has them (`docs/CLUSTER.md`). A database out of reach (a failover) is
//! [`PgStoreError::Unavailable`], and subscriptions wait it out.
//!
//! Not done yet: no `tally migrate` (it will print [`migrations()`] and
//! [`PostgresEventStore::applied_migrations`]) and no copy from an embedded log. Command ids are kept forever (the embedded store
//! retains a bounded window). Connections are not encrypted (no TLS connector yet). Each
//! subscription reads its own pages (the embedded store shares one live reader among all
//! of them).
//!
//! ```no_run
//! # async fn demo() -> tally_store_postgres::Result<()> {
//! use tally_store::{AppendOptions, ExpectedVersion, NewEvent, StreamId, StreamVersion};
//! use tally_store_postgres::{PostgresConfig, PostgresEventStore};
//!
//! let config = PostgresConfig::new("postgres://tally@127.0.0.1:5432/tally")?;
//! let (store, _report) = PostgresEventStore::open(config).await?;
//! let account = StreamId::new("bank-account", "acc-1");
//! let opened = NewEvent::new("AccountOpened", r#"{"initial_balance":100}"#);
//! let expected = ExpectedVersion::Exact(StreamVersion::ZERO);
//! let result = store
//!     .append(&account, expected, vec![opened], AppendOptions::command("c-1"))
//!     .await?;
//! assert_eq!(result.last_version(), StreamVersion::FIRST);
//! store.close().await
//! # }
//! ```

mod append;
mod batcher;
mod committed;
mod config;
mod convert;
mod error;
mod listener;
mod log;
mod migrations;
mod store;
mod subscription;

pub use append::AppendRequest;
pub use batcher::BatchStats;
pub use config::PostgresConfig;
pub use error::{PgStoreError, Result};
pub use migrations::{AppliedMigration, Migration, MigrationVersion, migrations};
pub use store::{OpenReport, PostgresEventStore};
pub use subscription::Subscription;
