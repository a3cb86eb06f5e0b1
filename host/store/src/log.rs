//! [`EventLog`]: the one interface of an event store, with an implementation for the
//! embedded [`EventStore`] here and one for the PostgreSQL store in
//! `tally-store-postgres`.
//!
//! The interface holds what the runtime asks of a store: appends checked against an
//! expected version and idempotent by command id, stream reads (forward, backward, up to
//! a position), the log by position, the position at a time, the end of the log and the
//! wait for it, stream versions and listings, catch-up-then-live subscriptions,
//! snapshots, and close. Every method that may have to ask a database is `async`, even
//! where the embedded store answers from memory (`stream_version`, `end_position`,
//! `command_result`, the listings): one signature fits both, and an embedded answer is a
//! future that is ready at once.
//!
//! The methods return `impl Future + Send` (native `async fn` in traits, with the `Send`
//! bound spelled out so that callers can spawn them); implementations write `async fn`.
//! The trait is not object-safe: a caller that picks a store at run time wraps the two
//! in an enum that implements the trait. `docs/decisions/015-postgres-event-store.md`
//! ("The interface") says why.
//!
//! Errors are one type, [`LogError`]: the semantic failures both stores share, the
//! transient and unknown outcomes, and the backend's own failure as a source.

use std::error::Error as StdError;
use std::future::Future;

use bytes::Bytes;

use crate::error::StoreError;
use crate::event::{
    AppendOptions, AppendResult, EventRef, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use crate::snapshot::Snapshot;
use crate::store::{EventStore, StreamRead};
use crate::subscription::{Subscription, SubscriptionFilter};
use crate::version::{GlobalPosition, StreamVersion};

/// What can go wrong in an [`EventLog`], whichever store it is.
///
/// The first four variants mean the same on every store; the others say whether
/// anything of the call may have been written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The stream's version is not the expected one; nothing was written.
    #[error(
        "wrong expected version for stream {stream}: expected {expected}, actual version {actual}"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked.
        actual: StreamVersion,
    },
    /// The command id was used before for another command (another stream, or another
    /// fingerprint). Nothing was written.
    #[error("command id {command_id} was already used for another command, on {stream}")]
    CommandIdReused {
        /// The command id.
        command_id: String,
        /// The stream it was used for.
        stream: StreamId,
    },
    /// The append, read or snapshot is invalid; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store was closed.
    #[error("the event store is closed")]
    Closed,
    /// The store refuses for now (a failed write draining, a database out of reach);
    /// nothing of the call was written.
    #[error("the store is not accepting appends right now: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
        /// Whether the failure was a full disk.
        storage_full: bool,
    },
    /// The append was sent but its outcome is unknown (the connection was lost): sending
    /// it again with the same command id answers which, and applies it at most once.
    #[error("the outcome of the append is unknown: {0}")]
    OutcomeUnknown(String),
    /// The store holds something it never writes, or contradicts itself.
    #[error("corrupt event store: {0}")]
    Corrupt(String),
    /// Any other failure of the store underneath (the log's I/O, a statement, a
    /// connection pool), kept as the source.
    #[error(transparent)]
    Backend(Box<dyn StdError + Send + Sync>),
}

impl LogError {
    /// Whether the error is the disk running out of space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            LogError::Unavailable { storage_full, .. } => *storage_full,
            LogError::Backend(source) => source
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_storage_full),
            _ => false,
        }
    }
}

impl From<StoreError> for LogError {
    fn from(err: StoreError) -> LogError {
        match err {
            StoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => LogError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            },
            StoreError::CommandIdReused { command_id, stream } => {
                LogError::CommandIdReused { command_id, stream }
            }
            StoreError::InvalidInput(message) => LogError::InvalidInput(message),
            StoreError::Closed => LogError::Closed,
            StoreError::Unavailable {
                reason,
                storage_full,
            } => LogError::Unavailable {
                reason,
                storage_full,
            },
            StoreError::Corrupt(message) => LogError::Corrupt(message),
            err @ StoreError::Wal(_) => LogError::Backend(Box::new(err)),
        }
    }
}

/// The result type of an [`EventLog`].
pub type LogResult<T> = std::result::Result<T, LogError>;

/// An event store, embedded or on a database: see the module documentation. Cheap to
/// clone; clones share the store.
pub trait EventLog: Clone + Send + Sync + 'static {
    /// A subscription of this store.
    type Subscription: LogSubscription;

    /// Most events one read returns, whatever a caller asks for.
    fn max_read_count(&self) -> usize;

    /// Appends `events` to `stream` atomically, if the stream's version is `expected`.
    /// Returns once the events are durable. With a command id that was appended before,
    /// returns that append's result (marked `duplicate`) and appends nothing; with an id
    /// used for another command, fails with [`LogError::CommandIdReused`].
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> impl Future<Output = LogResult<AppendResult>> + Send;

    /// What an earlier append with the command id of `options` means for an append to
    /// `stream`: its result (marked `duplicate`) when it is the same command,
    /// [`LogError::CommandIdReused`] when the id was used for another command, `None`
    /// when no append has the id.
    fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> impl Future<Output = LogResult<Option<AppendResult>>> + Send;

    /// The stream and result (marked `duplicate`) of the durable append with this
    /// command id, if the store keeps it.
    fn command_result(
        &self,
        command_id: &str,
    ) -> impl Future<Output = LogResult<Option<(StreamId, AppendResult)>>> + Send;

    /// Reads events of one stream as `read` selects them.
    fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> impl Future<Output = LogResult<Vec<RecordedEvent>>> + Send;

    /// Reads events of one stream as [`read_stream`](Self::read_stream) does, handing
    /// each to `visit` as an [`EventRef`]. A store that can lend events from where they
    /// lie overrides it to save the owned copies.
    fn read_stream_with<T, F>(
        &self,
        stream: &StreamId,
        read: StreamRead,
        mut visit: F,
    ) -> impl Future<Output = LogResult<Vec<T>>> + Send
    where
        F: FnMut(EventRef<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let events = self.read_stream(stream, read);
        async move {
            let events = events.await?;
            Ok(events.iter().map(|event| visit(event_ref(event))).collect())
        }
    }

    /// Reads the global log forward from `from_position`, at most `max_count` events:
    /// always the next ones (a later read never finds an event before them).
    fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> impl Future<Output = LogResult<Vec<RecordedEvent>>> + Send;

    /// The last position whose event was appended at or before `timestamp_ms`; `None`
    /// if every event is later.
    fn position_at_time(
        &self,
        timestamp_ms: u64,
    ) -> impl Future<Output = LogResult<Option<GlobalPosition>>> + Send;

    /// The position the next appended event will get (the number of events stored).
    fn end_position(&self) -> impl Future<Output = LogResult<GlobalPosition>> + Send;

    /// Waits until every event before global position `end` is durable and readable
    /// through this handle.
    fn wait_committed(&self, end: GlobalPosition) -> impl Future<Output = LogResult<()>> + Send;

    /// The stream's version: its number of events (0 when it has none).
    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = LogResult<StreamVersion>> + Send;

    /// Streams of an aggregate type in creation order with their versions: at most
    /// `max_count` from the `skip`-th on (a store may cap it at
    /// [`max_read_count`](Self::max_read_count)).
    fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> impl Future<Output = LogResult<Vec<(StreamId, StreamVersion)>>> + Send;

    /// Number of streams of an aggregate type.
    fn count_streams(&self, aggregate_type: &str) -> impl Future<Output = LogResult<usize>> + Send;

    /// Aggregate types with at least one stream, in name order.
    fn aggregate_types(&self) -> impl Future<Output = LogResult<Vec<String>>> + Send;

    /// A subscription from `from_position`: the events already durable (catch-up), then
    /// new ones as they become durable, with no gap or duplicate between the two.
    fn subscribe(
        &self,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> Self::Subscription;

    /// Saves a snapshot of `stream` at `version` (at least one event, at most the
    /// stream's), tagged with the encoding of `data`. Only the latest per stream and tag
    /// is kept: one older than the kept one is ignored.
    fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> impl Future<Output = LogResult<()>> + Send;

    /// The latest snapshot of `stream` with exactly this `tag`, never ahead of the
    /// stream.
    fn latest_snapshot(
        &self,
        stream: &StreamId,
        tag: &str,
    ) -> impl Future<Output = LogResult<Option<Snapshot>>> + Send;

    /// Waits for the appends in flight and closes the store. Other handles and
    /// subscriptions fail with [`LogError::Closed`] from then on.
    fn close(self) -> impl Future<Output = LogResult<()>> + Send;
}

/// A subscription of an [`EventLog`]: a cursor over global positions.
pub trait LogSubscription: Send + 'static {
    /// The next matching durable event, waiting for one if the subscription has caught
    /// up. Fails with [`LogError::Closed`] once the store is closed.
    fn next(&mut self) -> impl Future<Output = LogResult<RecordedEvent>> + Send;

    /// The position after the last event examined: resuming from here misses nothing.
    fn position(&self) -> GlobalPosition;
}

/// `event` borrowed as an [`EventRef`].
fn event_ref(event: &RecordedEvent) -> EventRef<'_> {
    EventRef {
        position: event.position,
        version: event.version,
        name: &event.name,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        data: &event.data,
    }
}

impl EventLog for EventStore {
    type Subscription = Subscription;

    fn max_read_count(&self) -> usize {
        self.config().max_read_count
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> LogResult<AppendResult> {
        Ok(EventStore::append(self, stream, expected, events, options).await?)
    }

    async fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> LogResult<Option<AppendResult>> {
        Ok(EventStore::earlier_append(self, stream, options).await?)
    }

    async fn command_result(
        &self,
        command_id: &str,
    ) -> LogResult<Option<(StreamId, AppendResult)>> {
        Ok(EventStore::command_result(self, command_id))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> LogResult<Vec<RecordedEvent>> {
        Ok(EventStore::read_stream(self, stream, read).await?)
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
        Ok(EventStore::read_stream_with(self, stream, read, visit).await?)
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> LogResult<Vec<RecordedEvent>> {
        Ok(EventStore::read_all(self, from_position, max_count).await?)
    }

    async fn position_at_time(&self, timestamp_ms: u64) -> LogResult<Option<GlobalPosition>> {
        Ok(EventStore::position_at_time(self, timestamp_ms).await?)
    }

    async fn end_position(&self) -> LogResult<GlobalPosition> {
        Ok(EventStore::end_position(self))
    }

    async fn wait_committed(&self, end: GlobalPosition) -> LogResult<()> {
        Ok(EventStore::wait_committed(self, end).await?)
    }

    async fn stream_version(&self, stream: &StreamId) -> LogResult<StreamVersion> {
        Ok(EventStore::stream_version(self, stream))
    }

    async fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> LogResult<Vec<(StreamId, StreamVersion)>> {
        Ok(EventStore::list_streams(
            self,
            aggregate_type,
            skip,
            max_count,
        ))
    }

    async fn count_streams(&self, aggregate_type: &str) -> LogResult<usize> {
        Ok(EventStore::count_streams(self, aggregate_type))
    }

    async fn aggregate_types(&self) -> LogResult<Vec<String>> {
        Ok(EventStore::aggregate_types(self))
    }

    fn subscribe(&self, from_position: GlobalPosition, filter: SubscriptionFilter) -> Subscription {
        EventStore::subscribe(self, from_position, filter)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> LogResult<()> {
        Ok(EventStore::save_snapshot(self, stream, version, tag, data).await?)
    }

    async fn latest_snapshot(&self, stream: &StreamId, tag: &str) -> LogResult<Option<Snapshot>> {
        Ok(EventStore::latest_snapshot(self, stream, tag).await?)
    }

    async fn close(self) -> LogResult<()> {
        Ok(EventStore::close(self).await?)
    }
}

impl LogSubscription for Subscription {
    async fn next(&mut self) -> LogResult<RecordedEvent> {
        Ok(Subscription::next(self).await?)
    }

    fn position(&self) -> GlobalPosition {
        Subscription::position(self)
    }
}
