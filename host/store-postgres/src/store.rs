//! The [`PostgresEventStore`] handle: open (migrations), append (group commit), reads,
//! time travel, subscriptions, snapshots, close.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tally_store::{
    AppendOptions, AppendResult, ExpectedVersion, GlobalPosition, NewEvent, RecordedEvent,
    Snapshot, StreamId, StreamRead, StreamVersion, SubscriptionFilter,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::append::{AppendRequest, Limits, check_name, validate};
use crate::batcher::{Appender, BatchCounters, BatchLimits, BatchStats, Batcher, Pending};
use crate::committed::{Committed, CommittedEnd};
use crate::config::PostgresConfig;
use crate::convert::select_events;
use crate::convert::{
    events_from_rows, from_db, limit, position_from_db, position_to_db, to_db, version_from_db,
    version_to_db,
};
use crate::error::{PgStoreError, Result};
use crate::listener::{END_SQL, Listener};
use crate::migrations::{self, AppliedMigration, MigrationVersion};
use crate::subscription::Subscription;

/// What opening the store found and did.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// The migrations applied by this open (none when the schema was current).
    pub migrations_applied: Vec<MigrationVersion>,
    /// Where the log ended: the number of events stored.
    pub end: GlobalPosition,
    /// How long opening took, in milliseconds.
    pub open_ms: u64,
}

/// An event store in a PostgreSQL database. Cheap to clone; clones share the pool and
/// the batcher. Several processes may open the same database: appends, reads and
/// subscriptions of all of them see one log.
#[derive(Debug, Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: PostgresConfig,
    pool: Pool,
    /// The batcher's queue; `None` once closed.
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    batcher: Mutex<Option<JoinHandle<()>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    committed: Arc<CommittedEnd>,
    appender: Appender,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without `close`: the batcher ends once the queue is empty (its sender is
        // dropped with this), the listener once it sees the store closed.
        self.committed.close();
    }
}

impl PostgresEventStore {
    /// Connects, applies the schema's missing migrations and starts the batcher and
    /// the listener.
    pub async fn open(config: PostgresConfig) -> Result<(PostgresEventStore, OpenReport)> {
        let started = Instant::now();
        config.check()?;
        let pool = build_pool(&config)?;
        let (migrations_applied, end) = prepare_database(&pool).await?;
        let committed = Arc::new(CommittedEnd::new(end));
        let (queue, queued) = mpsc::channel(config.max_queued_appends);
        let appender = Appender {
            pool: pool.clone(),
            committed: committed.clone(),
            counters: Arc::new(BatchCounters::default()),
        };
        let batcher = Batcher {
            appender: appender.clone(),
            limits: BatchLimits {
                commands: config.max_batch_commands,
                events: config.max_batch_events,
            },
        };
        let listener = Listener {
            connection: config.connection.clone(),
            committed: committed.clone(),
            poll_interval: config.poll_interval,
        };
        let store = PostgresEventStore {
            inner: Arc::new(Inner {
                config,
                pool,
                queue: Mutex::new(Some(queue)),
                batcher: Mutex::new(Some(tokio::spawn(batcher.run(queued)))),
                listener: Mutex::new(Some(tokio::spawn(listener.run()))),
                committed,
                appender,
            }),
        };
        let report = OpenReport {
            migrations_applied,
            end,
            open_ms: started.elapsed().as_millis() as u64,
        };
        Ok((store, report))
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// Appends `events` to `stream` atomically, if the stream's version is `expected`.
    /// Returns once the events are committed. Concurrent appends through this handle
    /// (and its clones) share a batch: one round trip and one commit. With a command id
    /// that was appended before, returns that append's result (marked `duplicate`) and
    /// appends nothing.
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> Result<AppendResult> {
        let request = AppendRequest::new(stream.clone(), expected, events, options);
        validate(&request, self.limits())?;
        let sender = self.queue_sender()?;
        let (answer, outcome) = oneshot::channel();
        sender
            .send(Pending { request, answer })
            .await
            .map_err(|_| PgStoreError::Closed)?;
        outcome.await.map_err(|_| PgStoreError::Closed)?
    }

    /// Appends `requests` as one batch, now, bypassing the queue: one call of
    /// `tally_append`, one transaction, each request checked on its own (after the ones
    /// before it in the batch). The outer error is the batch's; the inner results are
    /// each request's, in order (an invalid request is refused without being sent).
    pub async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendResult>>> {
        if self.inner.committed.get().closed {
            return Err(PgStoreError::Closed);
        }
        let limits = self.limits();
        let checks: Vec<Result<()>> = requests.iter().map(|r| validate(r, limits)).collect();
        let valid: Vec<AppendRequest> = requests
            .into_iter()
            .zip(&checks)
            .filter_map(|(request, check)| check.is_ok().then_some(request))
            .collect();
        let appended = self.inner.appender.append(&valid).await?;
        Ok(merge_results(checks, appended))
    }

    /// How the group commit went: batches and the appends in them.
    pub fn batch_stats(&self) -> BatchStats {
        self.inner.appender.counters.get()
    }

    /// What an earlier append with the command id of `options` means for an append to
    /// `stream`: its result (marked `duplicate`) when it is the same command;
    /// [`PgStoreError::CommandIdReused`] when the id was used for another command;
    /// `None` when no append has the id.
    pub async fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> Result<Option<AppendResult>> {
        let Some(command_id) = &options.command_id else {
            return Ok(None);
        };
        let Some((earlier, result, fingerprint)) = self.command(command_id).await? else {
            return Ok(None);
        };
        let same_fingerprint = match (fingerprint, &options.command_fingerprint) {
            (Some(earlier), Some(now)) => earlier == now.as_bytes(),
            _ => true,
        };
        if earlier != *stream || !same_fingerprint {
            return Err(PgStoreError::CommandIdReused {
                command_id: command_id.clone(),
                stream: earlier,
            });
        }
        Ok(Some(result))
    }

    /// The stream and result (marked `duplicate`) of the append with this command id,
    /// if any.
    pub async fn command_result(
        &self,
        command_id: &str,
    ) -> Result<Option<(StreamId, AppendResult)>> {
        let found = self.command(command_id).await?;
        Ok(found.map(|(stream, result, _)| (stream, result)))
    }

    /// The append with this command id: its stream, result and fingerprint.
    async fn command(
        &self,
        command_id: &str,
    ) -> Result<Option<(StreamId, AppendResult, Option<Vec<u8>>)>> {
        let rows = self
            .query(
                "SELECT aggregate_type, aggregate_id, first_position, first_version, \
                 event_count, timestamp_ms, fingerprint FROM tally_commands WHERE command_id = $1",
                &[&command_id],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let stream = StreamId::new(row.try_get::<_, &str>(0)?, row.try_get::<_, &str>(1)?);
        let result = AppendResult {
            first_position: position_from_db(row.try_get(2)?)?,
            first_version: version_from_db(row.try_get(3)?)?,
            count: from_db(row.try_get(4)?, "event count")?,
            timestamp_ms: from_db(row.try_get(5)?, "timestamp")?,
            duplicate: true,
        };
        Ok(Some((stream, result, row.try_get(6)?)))
    }

    /// Waits until every event before global position `end` is committed and readable
    /// here.
    pub async fn wait_committed(&self, end: GlobalPosition) -> Result<()> {
        let mut committed = self.inner.committed.subscribe();
        let reached = committed
            .wait_for(|c: &Committed| c.closed || c.end >= end)
            .await
            .map_err(|_| PgStoreError::Closed)?;
        if reached.end >= end {
            Ok(())
        } else {
            Err(PgStoreError::Closed)
        }
    }

    /// The end of the log as this process last learnt it (its own batches, and the
    /// notifications of the others'): every event before it is committed. Never ahead
    /// of [`end_position`](Self::end_position).
    pub fn committed_end(&self) -> GlobalPosition {
        self.inner.committed.get().end
    }

    /// The position the next appended event will get (the number of events stored),
    /// read from the database.
    pub async fn end_position(&self) -> Result<GlobalPosition> {
        let rows = self.query(END_SQL, &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| PgStoreError::Corrupt("tally_log_head has no row".into()))?;
        let end = position_from_db(row.try_get(0)?)?;
        self.inner.committed.advance(end);
        Ok(end)
    }

    /// The stream's version: its number of events (0 when it has none).
    pub async fn stream_version(&self, stream: &StreamId) -> Result<StreamVersion> {
        let rows = self
            .query(
                "SELECT version FROM tally_streams WHERE aggregate_type = $1 AND aggregate_id = $2",
                &[&&*stream.aggregate_type, &&*stream.aggregate_id],
            )
            .await?;
        match rows.first() {
            Some(row) => version_from_db(row.try_get(0)?),
            None => Ok(StreamVersion::ZERO),
        }
    }

    /// Streams of an aggregate type in creation order with their versions: at most
    /// `max_count` from the `skip`-th on.
    pub async fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> Result<Vec<(StreamId, StreamVersion)>> {
        let skip = to_db(skip as u64, "skip")?;
        let max = limit(max_count, self.inner.config.max_read_count);
        let rows = self
            .query(
                "SELECT aggregate_id, version FROM tally_streams WHERE aggregate_type = $1 \
                 ORDER BY first_position OFFSET $2 LIMIT $3",
                &[&aggregate_type, &skip, &max],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let stream = StreamId::new(aggregate_type, row.try_get::<_, &str>(0)?);
                Ok((stream, version_from_db(row.try_get(1)?)?))
            })
            .collect()
    }

    /// Number of streams of an aggregate type.
    pub async fn count_streams(&self, aggregate_type: &str) -> Result<u64> {
        let rows = self
            .query(
                "SELECT count(*) FROM tally_streams WHERE aggregate_type = $1",
                &[&aggregate_type],
            )
            .await?;
        let count = rows.first().map_or(Ok(0), |row| row.try_get(0))?;
        from_db(count, "stream count")
    }

    /// Aggregate types with at least one stream, in name order.
    pub async fn aggregate_types(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT DISTINCT aggregate_type FROM tally_streams ORDER BY aggregate_type",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(Into::into))
            .collect()
    }

    /// Reads events of one stream, forward or backward, optionally only those at or
    /// before a global position (time travel). One indexed query.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<Vec<RecordedEvent>> {
        let max = limit(read.max_count, self.inner.config.max_read_count);
        let up_to = read.up_to_position.map(position_to_db).transpose()?;
        let (sql, from) = if read.forward {
            let from = read.from_version.unwrap_or(StreamVersion::FIRST);
            (READ_FORWARD, version_to_db(from)?)
        } else {
            let from = read.from_version.map_or(Ok(i64::MAX), version_to_db)?;
            (READ_BACKWARD, from)
        };
        let rows = self
            .query(
                sql,
                &[
                    &&*stream.aggregate_type,
                    &&*stream.aggregate_id,
                    &from,
                    &up_to,
                    &max,
                ],
            )
            .await?;
        events_from_rows(&rows)
    }

    /// Reads the global log forward from `from_position`, at most `max_count` events.
    /// Positions are dense and become visible only in commit order, so the events
    /// returned are always the next ones: a later read never finds one before them.
    pub async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let max = limit(max_count, self.inner.config.max_read_count);
        let from = position_to_db(from_position)?;
        let rows = self.query(READ_ALL, &[&from, &max]).await?;
        events_from_rows(&rows)
    }

    /// The events in `[from, end)` that pass `filter`, at most `max`, in position
    /// order: a subscription's page.
    pub(crate) async fn read_page(
        &self,
        from: GlobalPosition,
        end: GlobalPosition,
        filter: &SubscriptionFilter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let stream = filter.stream.as_ref();
        let stream_type = stream.map(|s| &*s.aggregate_type);
        let stream_id = stream.map(|s| &*s.aggregate_id);
        let rows = self
            .query(
                READ_PAGE,
                &[
                    &position_to_db(from)?,
                    &position_to_db(end)?,
                    &filter.aggregate_type.as_deref(),
                    &stream_type,
                    &stream_id,
                    &filter.event_name.as_deref(),
                    &limit(max, self.inner.config.max_read_count),
                ],
            )
            .await?;
        events_from_rows(&rows)
    }

    /// The last position whose event was appended at or before `timestamp_ms`, for
    /// time-travel reads; `None` if every event is later. One indexed query.
    pub async fn position_at_time(&self, timestamp_ms: u64) -> Result<Option<GlobalPosition>> {
        let timestamp = to_db(timestamp_ms, "timestamp")?;
        let rows = self
            .query(
                "SELECT position FROM tally_events WHERE timestamp_ms <= $1 \
                 ORDER BY timestamp_ms DESC, position DESC LIMIT 1",
                &[&timestamp],
            )
            .await?;
        rows.first()
            .map(|row| position_from_db(row.try_get(0)?))
            .transpose()
    }

    /// A subscription from `from_position`: the events already committed (catch-up),
    /// then new ones as they are committed, by this process or any other.
    pub fn subscribe(
        &self,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> Subscription {
        Subscription::new(self.clone(), from_position, filter)
    }

    /// Saves a snapshot of `stream` at `version` (at least one event, at most the
    /// stream's), tagged with the encoding of `data`. Only the latest per stream and tag
    /// is kept: an older one than the kept one is ignored.
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> Result<()> {
        check_name("snapshot tag", tag, self.inner.config.max_name_len)?;
        let current = self.stream_version(stream).await?;
        if version == StreamVersion::ZERO || version > current {
            return Err(PgStoreError::InvalidInput(format!(
                "cannot snapshot {stream} at version {version}: its version is {current}"
            )));
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO tally_snapshots AS s (aggregate_type, aggregate_id, tag, version, data) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (aggregate_type, aggregate_id, tag) \
                 DO UPDATE SET version = excluded.version, data = excluded.data \
                 WHERE s.version <= excluded.version",
            )
            .await?;
        let version = version_to_db(version)?;
        client
            .execute(
                &statement,
                &[
                    &&*stream.aggregate_type,
                    &&*stream.aggregate_id,
                    &tag,
                    &version,
                    &&*data,
                ],
            )
            .await?;
        Ok(())
    }

    /// The latest snapshot of `stream` with exactly this `tag`.
    pub async fn latest_snapshot(&self, stream: &StreamId, tag: &str) -> Result<Option<Snapshot>> {
        let rows = self
            .query(
                "SELECT version, data FROM tally_snapshots \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND tag = $3",
                &[&&*stream.aggregate_type, &&*stream.aggregate_id, &tag],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            stream: stream.clone(),
            version: version_from_db(row.try_get(0)?)?,
            tag: tag.to_owned(),
            data: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(1)?),
        }))
    }

    /// Keeps a plugin component under the hex SHA-256 of its bytes (which the caller
    /// computed); storing the same component again changes nothing.
    pub async fn save_component(&self, sha256: &str, component: &[u8]) -> Result<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO tally_components (sha256, component) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .await?;
        client.execute(&statement, &[&sha256, &component]).await?;
        Ok(())
    }

    /// The plugin component stored under `sha256`, if there is one.
    pub async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT component FROM tally_components WHERE sha256 = $1")
            .await
            .map_err(PgStoreError::of_read)?;
        let row = client
            .query_opt(&statement, &[&sha256])
            .await
            .map_err(PgStoreError::of_read)?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    /// The migrations the database has applied, in order (for `tally migrate`).
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>> {
        let client = self.client().await?;
        migrations::applied(&client).await
    }

    /// Waits for the appends queued, stops the listener and closes the pool. Other
    /// handles and subscriptions fail with [`PgStoreError::Closed`] from then on.
    pub async fn close(self) -> Result<()> {
        let inner = &self.inner;
        drop(lock(&inner.queue).take());
        let batcher = lock(&inner.batcher).take();
        if let Some(batcher) = batcher {
            batcher.await.map_err(|_| PgStoreError::Closed)?;
        }
        inner.committed.close();
        let listener = lock(&inner.listener).take();
        if let Some(listener) = listener {
            // It may be waiting for a connection to a database that is gone.
            listener.abort();
            let _ = listener.await;
        }
        inner.pool.close();
        Ok(())
    }

    /// The limits an append is checked against.
    fn limits(&self) -> Limits {
        let config = &self.inner.config;
        Limits {
            max_events: config.max_events_per_append,
            max_event_size: config.max_event_size,
            max_name_len: config.max_name_len,
        }
    }

    /// The batcher's queue, unless the store is closed.
    fn queue_sender(&self) -> Result<mpsc::Sender<Pending>> {
        lock(&self.inner.queue).clone().ok_or(PgStoreError::Closed)
    }

    /// The committed end, for subscriptions.
    pub(crate) fn committed(&self) -> &CommittedEnd {
        &self.inner.committed
    }

    /// A connection from the pool; [`PgStoreError::Unavailable`] when none can be made.
    async fn client(&self) -> Result<deadpool_postgres::Client> {
        if self.inner.committed.get().closed {
            return Err(PgStoreError::Closed);
        }
        self.inner
            .pool
            .get()
            .await
            .map_err(|err| PgStoreError::of_checkout(&err))
    }

    /// Runs the read `sql` (prepared once per connection) on a connection from the
    /// pool; [`PgStoreError::Unavailable`] when the database is out of reach.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(PgStoreError::of_read)?;
        client
            .query(&statement, params)
            .await
            .map_err(PgStoreError::of_read)
    }
}

/// The events of a stream from `$3` up, at or before `$4`.
const READ_FORWARD: &str = concat!(
    select_events!(),
    "WHERE aggregate_type = $1 AND aggregate_id = $2 AND version >= $3 \
     AND ($4::bigint IS NULL OR position <= $4) ORDER BY version LIMIT $5"
);

/// The events of a stream from `$3` down, at or before `$4`.
const READ_BACKWARD: &str = concat!(
    select_events!(),
    "WHERE aggregate_type = $1 AND aggregate_id = $2 AND version <= $3 \
     AND ($4::bigint IS NULL OR position <= $4) ORDER BY version DESC LIMIT $5"
);

/// The log from `$1` on.
const READ_ALL: &str = concat!(
    select_events!(),
    "WHERE position >= $1 ORDER BY position LIMIT $2"
);

/// The events of `[$1, $2)` that pass a subscription's filter.
const READ_PAGE: &str = concat!(
    select_events!(),
    "WHERE position >= $1 AND position < $2 \
     AND ($3::text IS NULL OR aggregate_type = $3) \
     AND ($4::text IS NULL OR (aggregate_type = $4 AND aggregate_id = $5)) \
     AND ($6::text IS NULL OR name = $6) ORDER BY position LIMIT $7"
);

fn build_pool(config: &PostgresConfig) -> Result<Pool> {
    let manager = Manager::from_config(
        config.connection.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .build()
        .map_err(|e| PgStoreError::Unavailable(e.to_string()))
}

/// Applies the migrations; returns them and where the log ends.
async fn prepare_database(pool: &Pool) -> Result<(Vec<MigrationVersion>, GlobalPosition)> {
    let mut client = pool.get().await?;
    let applied = migrations::migrate(&mut client).await?;
    let row = client.query_one(END_SQL, &[]).await?;
    Ok((applied, position_from_db(row.try_get(0)?)?))
}

/// The results of a batch's requests in order: the refusal of an invalid one, or the
/// database's answer to a valid one (`appended`, in the order of the valid ones).
fn merge_results(
    checks: Vec<Result<()>>,
    appended: Vec<Result<AppendResult>>,
) -> Vec<Result<AppendResult>> {
    let mut appended = appended.into_iter();
    checks
        .into_iter()
        .map(|check| {
            check.and_then(|()| {
                appended.next().unwrap_or_else(|| {
                    Err(PgStoreError::Corrupt(
                        "tally_append answered fewer commands".into(),
                    ))
                })
            })
        })
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
