//! [`StoreBackend`]: the event store the runtime was opened on, the embedded log or
//! PostgreSQL, chosen at start and dispatched statically (the [`EventLog`] trait is
//! not object-safe; `docs/decisions/015-postgres-event-store.md` says why).
//!
//! Besides the interface, the backend answers what only the runtime asks: the
//! pipeline's [`submit`](StoreBackend::submit) (queued now, durable later), the
//! limits it checks names against, and the embedded store itself where a caller uses
//! what only it has (its shared live pages, its counters).

use bytes::Bytes;
use tally_store::{
    AppendOptions, AppendResult, EventLog, EventRef, EventStore, ExpectedVersion, GlobalPosition,
    LogResult, LogSubscription, NewEvent, QueuedAppend, RecordedEvent, Snapshot, StreamId,
    StreamRead, StreamVersion, Submitted, Subscription, SubscriptionFilter,
};
use tally_store_postgres::PostgresEventStore;

use crate::api::RuntimeConfig;
use crate::error::RuntimeError;

/// The event store under the runtime. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded write-ahead-log store in the data directory (the default).
    Embedded(EventStore),
    /// A PostgreSQL database, which several hosts may share.
    Postgres(PostgresEventStore),
}

/// A subscription of a [`StoreBackend`].
#[derive(Debug)]
pub enum BackendSubscription {
    /// Of the embedded store: it also delivers shared live pages.
    Embedded(Subscription),
    /// Of PostgreSQL.
    Postgres(tally_store_postgres::Subscription),
}

/// What [`StoreBackend::submit`] did with an append.
#[derive(Debug)]
pub enum Submission {
    /// The append is in the store's order: appends submitted later come after it.
    Queued(PendingAppend),
    /// The command id was appended before by the same command: its first result.
    Duplicate(AppendResult),
}

/// An append in the store's order, durable or on its way.
#[derive(Debug)]
pub enum PendingAppend {
    /// Queued in the embedded log, durable once it syncs.
    Queued(QueuedAppend),
    /// Already durable (PostgreSQL answers an append once it committed).
    Durable(AppendResult),
}

impl PendingAppend {
    /// Waits until the append is durable: its result, or why it failed (then every
    /// append submitted after it to the embedded log failed too).
    pub async fn durable(self) -> LogResult<AppendResult> {
        match self {
            PendingAppend::Queued(queued) => Ok(queued.durable().await?),
            PendingAppend::Durable(result) => Ok(result),
        }
    }
}

/// What opening the store found and did.
#[derive(Debug, Clone)]
pub enum StoreOpenReport {
    /// The embedded store's recovery (boxed: it is ten times the other's size).
    Embedded(Box<tally_store::OpenReport>),
    /// PostgreSQL's migrations and end.
    Postgres(tally_store_postgres::OpenReport),
}

impl StoreOpenReport {
    /// The number of events stored.
    pub fn events(&self) -> u64 {
        match self {
            StoreOpenReport::Embedded(report) => report.events,
            StoreOpenReport::Postgres(report) => report.end.get(),
        }
    }
}

impl StoreBackend {
    /// Opens the store `config` names: PostgreSQL when it has a connection, else the
    /// embedded store.
    pub async fn open(
        config: &RuntimeConfig,
    ) -> Result<(StoreBackend, StoreOpenReport), RuntimeError> {
        Ok(match &config.postgres {
            Some(postgres) => {
                let (store, report) = PostgresEventStore::open(postgres.clone())
                    .await
                    .map_err(tally_store::LogError::from)?;
                (
                    StoreBackend::Postgres(store),
                    StoreOpenReport::Postgres(report),
                )
            }
            None => {
                let (store, report) = EventStore::open(config.store.clone())
                    .await
                    .map_err(tally_store::LogError::from)?;
                (
                    StoreBackend::Embedded(store),
                    StoreOpenReport::Embedded(Box::new(report)),
                )
            }
        })
    }

    /// What the store is, for logs and metrics: `embedded` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreBackend::Embedded(_) => "embedded",
            StoreBackend::Postgres(_) => "postgres",
        }
    }

    /// The embedded store, when it is the one.
    pub fn embedded(&self) -> Option<&EventStore> {
        match self {
            StoreBackend::Embedded(store) => Some(store),
            StoreBackend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when it is the one.
    pub fn postgres(&self) -> Option<&PostgresEventStore> {
        match self {
            StoreBackend::Embedded(_) => None,
            StoreBackend::Postgres(store) => Some(store),
        }
    }

    /// The end of the log as this host last saw it, without asking a database: every
    /// event before it is durable and readable. PostgreSQL's moves with this host's
    /// appends and with notifications of other hosts' (at most a poll interval late).
    pub fn known_end(&self) -> GlobalPosition {
        match self {
            StoreBackend::Embedded(store) => store.end_position(),
            StoreBackend::Postgres(store) => store.committed_end(),
        }
    }

    /// Longest aggregate type, aggregate id, event name or command id the store takes.
    pub fn max_name_len(&self) -> usize {
        match self {
            StoreBackend::Embedded(store) => store.config().max_name_len,
            StoreBackend::Postgres(store) => store.config().max_name_len,
        }
    }

    /// Puts an append in the store's order and returns once it is there, so that the
    /// caller may decide the stream's next command against the state after it. The
    /// embedded log answers before it syncs, and fails every append queued after one
    /// that fails; PostgreSQL answers once the append committed (its batches are
    /// gathered across callers, so the round trip is shared, not saved).
    pub async fn submit(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> LogResult<Submission> {
        match self {
            StoreBackend::Embedded(store) => {
                match store.submit(stream, expected, events, options).await? {
                    Submitted::Queued(queued) => {
                        Ok(Submission::Queued(PendingAppend::Queued(queued)))
                    }
                    Submitted::Duplicate(result) => Ok(Submission::Duplicate(result)),
                }
            }
            StoreBackend::Postgres(store) => {
                let result = store.append(stream, expected, events, options).await?;
                Ok(if result.duplicate {
                    Submission::Duplicate(result)
                } else {
                    Submission::Queued(PendingAppend::Durable(result))
                })
            }
        }
    }
}

/// Calls the same method on whichever store `self` is, converting its error.
macro_rules! dispatch {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            StoreBackend::Embedded($store) => $call,
            StoreBackend::Postgres($store) => $call,
        }
    };
}

impl EventLog for StoreBackend {
    type Subscription = BackendSubscription;

    fn max_read_count(&self) -> usize {
        dispatch!(self, store => EventLog::max_read_count(store))
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> LogResult<AppendResult> {
        dispatch!(self, store => EventLog::append(store, stream, expected, events, options).await)
    }

    async fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> LogResult<Option<AppendResult>> {
        dispatch!(self, store => EventLog::earlier_append(store, stream, options).await)
    }

    async fn command_result(
        &self,
        command_id: &str,
    ) -> LogResult<Option<(StreamId, AppendResult)>> {
        dispatch!(self, store => EventLog::command_result(store, command_id).await)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> LogResult<Vec<RecordedEvent>> {
        dispatch!(self, store => EventLog::read_stream(store, stream, read).await)
    }

    async fn read_stream_with<T, F>(
        &self,
        stream: &StreamId,
        read: StreamRead,
        visit: F,
    ) -> LogResult<Vec<T>>
    where
        F: FnMut(EventRef<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        dispatch!(self, store => EventLog::read_stream_with(store, stream, read, visit).await)
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> LogResult<Vec<RecordedEvent>> {
        dispatch!(self, store => EventLog::read_all(store, from_position, max_count).await)
    }

    async fn position_at_time(&self, timestamp_ms: u64) -> LogResult<Option<GlobalPosition>> {
        dispatch!(self, store => EventLog::position_at_time(store, timestamp_ms).await)
    }

    async fn end_position(&self) -> LogResult<GlobalPosition> {
        dispatch!(self, store => EventLog::end_position(store).await)
    }

    async fn wait_committed(&self, end: GlobalPosition) -> LogResult<()> {
        dispatch!(self, store => EventLog::wait_committed(store, end).await)
    }

    async fn stream_version(&self, stream: &StreamId) -> LogResult<StreamVersion> {
        dispatch!(self, store => EventLog::stream_version(store, stream).await)
    }

    async fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> LogResult<Vec<(StreamId, StreamVersion)>> {
        dispatch!(self, store => EventLog::list_streams(store, aggregate_type, skip, max_count).await)
    }

    async fn count_streams(&self, aggregate_type: &str) -> LogResult<usize> {
        dispatch!(self, store => EventLog::count_streams(store, aggregate_type).await)
    }

    async fn aggregate_types(&self) -> LogResult<Vec<String>> {
        dispatch!(self, store => EventLog::aggregate_types(store).await)
    }

    fn subscribe(
        &self,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> BackendSubscription {
        match self {
            StoreBackend::Embedded(store) => {
                BackendSubscription::Embedded(EventLog::subscribe(store, from_position, filter))
            }
            StoreBackend::Postgres(store) => {
                BackendSubscription::Postgres(EventLog::subscribe(store, from_position, filter))
            }
        }
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> LogResult<()> {
        dispatch!(self, store => EventLog::save_snapshot(store, stream, version, tag, data).await)
    }

    async fn latest_snapshot(&self, stream: &StreamId, tag: &str) -> LogResult<Option<Snapshot>> {
        dispatch!(self, store => EventLog::latest_snapshot(store, stream, tag).await)
    }

    async fn close(self) -> LogResult<()> {
        match self {
            StoreBackend::Embedded(store) => EventLog::close(store).await,
            StoreBackend::Postgres(store) => EventLog::close(store).await,
        }
    }
}

impl LogSubscription for BackendSubscription {
    async fn next(&mut self) -> LogResult<RecordedEvent> {
        match self {
            BackendSubscription::Embedded(subscription) => {
                LogSubscription::next(subscription).await
            }
            BackendSubscription::Postgres(subscription) => {
                LogSubscription::next(subscription).await
            }
        }
    }

    fn position(&self) -> GlobalPosition {
        match self {
            BackendSubscription::Embedded(subscription) => LogSubscription::position(subscription),
            BackendSubscription::Postgres(subscription) => LogSubscription::position(subscription),
        }
    }
}
