//! [`EventLog`] for [`PostgresEventStore`]: each method delegates to the store's own,
//! and [`PgStoreError`] becomes the interface's [`LogError`].

use bytes::Bytes;
use tally_store::{
    AppendOptions, AppendResult, EventLog, ExpectedVersion, GlobalPosition, LogError, LogResult,
    LogSubscription, NewEvent, RecordedEvent, Snapshot, StreamId, StreamRead, StreamVersion,
    SubscriptionFilter,
};

use crate::error::PgStoreError;
use crate::store::PostgresEventStore;
use crate::subscription::Subscription;

impl From<PgStoreError> for LogError {
    fn from(err: PgStoreError) -> LogError {
        match err {
            PgStoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => LogError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            },
            PgStoreError::CommandIdReused { command_id, stream } => {
                LogError::CommandIdReused { command_id, stream }
            }
            PgStoreError::InvalidInput(message) => LogError::InvalidInput(message),
            PgStoreError::Closed => LogError::Closed,
            PgStoreError::Unavailable(reason) => LogError::Unavailable {
                reason,
                storage_full: false,
            },
            PgStoreError::OutcomeUnknown(message) => LogError::OutcomeUnknown(message),
            PgStoreError::Corrupt(message) => LogError::Corrupt(message),
            err @ (PgStoreError::Database(_)
            | PgStoreError::Pool(_)
            | PgStoreError::Migration(_)) => LogError::Backend(Box::new(err)),
        }
    }
}

impl EventLog for PostgresEventStore {
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
        Ok(PostgresEventStore::append(self, stream, expected, events, options).await?)
    }

    async fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> LogResult<Option<AppendResult>> {
        Ok(PostgresEventStore::earlier_append(self, stream, options).await?)
    }

    async fn command_result(
        &self,
        command_id: &str,
    ) -> LogResult<Option<(StreamId, AppendResult)>> {
        Ok(PostgresEventStore::command_result(self, command_id).await?)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> LogResult<Vec<RecordedEvent>> {
        Ok(PostgresEventStore::read_stream(self, stream, read).await?)
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> LogResult<Vec<RecordedEvent>> {
        Ok(PostgresEventStore::read_all(self, from_position, max_count).await?)
    }

    async fn position_at_time(&self, timestamp_ms: u64) -> LogResult<Option<GlobalPosition>> {
        Ok(PostgresEventStore::position_at_time(self, timestamp_ms).await?)
    }

    async fn end_position(&self) -> LogResult<GlobalPosition> {
        Ok(PostgresEventStore::end_position(self).await?)
    }

    async fn wait_committed(&self, end: GlobalPosition) -> LogResult<()> {
        Ok(PostgresEventStore::wait_committed(self, end).await?)
    }

    async fn stream_version(&self, stream: &StreamId) -> LogResult<StreamVersion> {
        Ok(PostgresEventStore::stream_version(self, stream).await?)
    }

    async fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> LogResult<Vec<(StreamId, StreamVersion)>> {
        Ok(PostgresEventStore::list_streams(self, aggregate_type, skip, max_count).await?)
    }

    async fn count_streams(&self, aggregate_type: &str) -> LogResult<usize> {
        let count = PostgresEventStore::count_streams(self, aggregate_type).await?;
        usize::try_from(count)
            .map_err(|_| LogError::Corrupt(format!("{count} streams do not fit a usize")))
    }

    async fn aggregate_types(&self) -> LogResult<Vec<String>> {
        Ok(PostgresEventStore::aggregate_types(self).await?)
    }

    fn subscribe(&self, from_position: GlobalPosition, filter: SubscriptionFilter) -> Subscription {
        PostgresEventStore::subscribe(self, from_position, filter)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> LogResult<()> {
        Ok(PostgresEventStore::save_snapshot(self, stream, version, tag, data).await?)
    }

    async fn latest_snapshot(&self, stream: &StreamId, tag: &str) -> LogResult<Option<Snapshot>> {
        Ok(PostgresEventStore::latest_snapshot(self, stream, tag).await?)
    }

    async fn close(self) -> LogResult<()> {
        Ok(PostgresEventStore::close(self).await?)
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
