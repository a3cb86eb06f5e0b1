//! The [`EventStore`] handle: open, append, read, subscribe, snapshots, close.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use tally_wal::{Position, RecoveryInfo, Wal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::append::{Core, Decision, Earlier, Limits, Sequencer, now_ms, validate};
use crate::codec;
use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::event::{
    AppendOptions, AppendResult, EventRef, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use crate::index::{Index, StreamEntry};
use crate::live::{Fanout, Pacing, ReaderSettings, SubscriptionStats, run_reader};
use crate::rebuild::IndexBuilder;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::subscription::{Subscription, SubscriptionFilter};
use crate::version::{GlobalPosition, StreamVersion};

/// What opening the store found.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// What the event log's recovery did.
    pub events_recovery: RecoveryInfo,
    /// What the snapshot log's recovery did.
    pub snapshots_recovery: RecoveryInfo,
    /// Events in the store.
    pub events: u64,
    /// Streams in the store.
    pub streams: usize,
    /// Command ids retained for idempotency.
    pub retained_commands: usize,
    /// Snapshots kept (the latest per stream and tag).
    pub snapshots: usize,
    /// How long opening took, in milliseconds.
    pub open_ms: u64,
}

/// Which events of a stream to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    /// Read towards higher versions (`false`: towards lower ones).
    pub forward: bool,
    /// The version of the first event to read (the first event of a stream has version
    /// 1); `None` means the first (forward) or the last (backward).
    pub from_version: Option<StreamVersion>,
    /// Most events to return (capped by the store's `max_read_count`).
    pub max_count: usize,
    /// Only events at or before this global position (time travel).
    pub up_to_position: Option<GlobalPosition>,
}

impl StreamRead {
    /// Forward from the event of `version` (from the first event when `version` is 0
    /// or 1), at most `max_count` events.
    pub fn forward(version: StreamVersion, max_count: usize) -> StreamRead {
        StreamRead {
            forward: true,
            from_version: Some(version),
            max_count,
            up_to_position: None,
        }
    }

    /// Backward from the last event, at most `max_count` events.
    pub fn backward(max_count: usize) -> StreamRead {
        StreamRead {
            forward: false,
            from_version: None,
            max_count,
            up_to_position: None,
        }
    }

    /// The same read, limited to events at or before global `position`.
    pub fn up_to(mut self, position: GlobalPosition) -> StreamRead {
        self.up_to_position = Some(position);
        self
    }
}

/// What [`EventStore::submit`] did with an append.
#[derive(Debug)]
pub enum Submitted {
    /// An append with the same command id is durable already: its result (marked
    /// `duplicate`); nothing was queued.
    Duplicate(AppendResult),
    /// Queued in the log; await its outcome.
    Queued(QueuedAppend),
}

/// An append queued by [`EventStore::submit`], not yet known to be durable.
#[derive(Debug)]
#[must_use = "an append's outcome is known only once it is awaited"]
pub struct QueuedAppend {
    answer: tokio::sync::oneshot::Receiver<Result<AppendResult>>,
}

impl QueuedAppend {
    /// Waits until the append is durable (or failed).
    pub async fn durable(self) -> Result<AppendResult> {
        self.answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// An event store. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: StoreConfig,
    core: Arc<Core>,
    committer: Mutex<Option<JoinHandle<()>>>,
    snapshots: SnapshotStore,
    /// The shared live reader's broadcast, which live subscriptions receive.
    fanout: Fanout,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without `close`: the committer ends once the queued appends are committed, and
        // with it the last reference to the event log, which then closes.
        self.core.stop_appends();
    }
}

impl EventStore {
    /// Opens (creating if needed) the store's two logs (`config.wal.dir` and
    /// `config.snapshot_wal.dir`), rebuilding its index from the
    /// event log. Fails with a clear error if another process has it open.
    pub async fn open(config: StoreConfig) -> Result<(EventStore, OpenReport)> {
        let started = Instant::now();
        if config.max_read_count == 0
            || config.max_events_per_append == 0
            || config.max_commit_batch == 0
            || config.subscription_page == 0
            || config.live_pages == 0
        {
            return Err(StoreError::InvalidInput(
                "max_read_count, max_events_per_append, max_commit_batch, subscription_page \
                 and live_pages must be at least 1"
                    .into(),
            ));
        }
        let (wal, events_recovery) = Wal::open(config.wal.clone()).await?;
        let index = rebuild_index(&wal, &config).await?;
        let (snapshots, snapshots_recovery) = SnapshotStore::open(
            config.snapshot_wal.clone(),
            config.snapshot_compaction_bytes,
        )
        .await?;

        let report = OpenReport {
            events_recovery,
            snapshots_recovery,
            events: index.end().get(),
            streams: index.streams_len(),
            retained_commands: index.retained_commands(),
            snapshots: snapshots.len(),
            open_ms: started.elapsed().as_millis() as u64,
        };
        let (queue, queued) = mpsc::unbounded_channel();
        let sequencer = Sequencer::new(index.end(), index.last_timestamp_ms(), queue);
        let core = Arc::new(Core {
            wal,
            committed: watch::Sender::new(index.end()),
            closed: AtomicBool::new(false),
            index: RwLock::new(index),
            sequencer: Mutex::new(sequencer),
        });
        let committer = tokio::spawn(core.clone().run_committer(queued, config.max_commit_batch));
        let pacing = Pacing {
            per_subscriber: config.live_pacing_per_subscriber,
        };
        let (fanout, live) = Fanout::new(config.live_pages, pacing);
        let committed = core.committed.subscribe();
        let store = EventStore {
            inner: Arc::new(Inner {
                config,
                core,
                committer: Mutex::new(Some(committer)),
                snapshots,
                fanout,
            }),
        };
        store.start_live_reader(committed, live);
        Ok((store, report))
    }

    /// Starts the shared live reader (`live.rs`), which holds the store only weakly.
    fn start_live_reader(
        &self,
        committed: watch::Receiver<GlobalPosition>,
        live: tokio::sync::broadcast::Sender<Arc<crate::subscription::EventPage>>,
    ) {
        let fanout = &self.inner.fanout;
        let config = &self.inner.config;
        let settings = ReaderSettings {
            page: config.subscription_page,
            pacing: fanout.pacing(),
            pages: fanout.live_pages_counter(),
        };
        let reader = tokio::spawn(run_reader(
            Arc::downgrade(&self.inner),
            committed,
            live,
            settings,
        ));
        fanout.set_reader(reader);
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Appends `events` to `stream` atomically, if the stream's version is `expected`.
    /// Returns once the events are durable (under the default `FsyncPolicy::Always`).
    /// With a command id that was appended before, returns that append's result and
    /// appends nothing.
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> Result<AppendResult> {
        match self.submit(stream, expected, events, options).await? {
            Submitted::Duplicate(result) => Ok(result),
            Submitted::Queued(queued) => queued.durable().await,
        }
    }

    /// The first half of [`append`](Self::append): checks the append and queues it in
    /// the log, returning as soon as its position and versions are assigned, before it
    /// is durable. Await [`QueuedAppend::durable`] for the outcome.
    ///
    /// Queued appends are written in queue order and the log stays a prefix of the
    /// queue: if one fails, every append queued after it fails too. So a caller may
    /// queue an append that builds on one still in flight (for example with
    /// `ExpectedVersion::Exact` of the version the first one will reach: the check
    /// counts appends in flight) and learn of a failure of either from its own result.
    pub async fn submit(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> Result<Submitted> {
        let config = &self.inner.config;
        let limits = Limits {
            max_events: config.max_events_per_append,
            max_event_size: config.max_event_size,
            max_name_len: config.max_name_len,
        };
        validate(stream, &events, &options, limits)?;
        let core = &self.inner.core;
        // The encoded size does not depend on positions or versions (fixed width), so room
        // can be reserved before the sequencer assigns them.
        let size = encoded_size(core.wal.config(), stream, &events, &options)?;
        loop {
            let reservation = core.wal.reserve(size).await?;
            let decision = core.sequence(stream, expected, &events, &options, reservation)?;
            match decision {
                Decision::Duplicate(result) => return Ok(Submitted::Duplicate(result)),
                Decision::Queued(answer) => return Ok(Submitted::Queued(QueuedAppend { answer })),
                Decision::WaitFor(first) => {
                    // The same command id is in flight: its outcome decides.
                    in_flight_outcome(first).await?;
                }
            }
        }
    }

    /// What an earlier append with the command id of `options` means for an append to
    /// `stream` with these options, found before the events of the append are made:
    /// its result (marked `duplicate`) when it is the same command;
    /// [`StoreError::CommandIdReused`] when the id was used for another command (another
    /// stream, or another [fingerprint](AppendOptions::command_fingerprint)); `None`
    /// when no append with the id is retained. While an append with the id is in
    /// flight, waits for its outcome (one that fails leaves the id unused).
    ///
    /// [`submit`](Self::submit) decides the same way when it appends; asking first lets
    /// a caller answer a retry without deciding its command again, against a state
    /// that already includes the first attempt's events.
    pub async fn earlier_append(
        &self,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> Result<Option<AppendResult>> {
        loop {
            match self.inner.core.earlier(stream, options)? {
                None => return Ok(None),
                Some(Earlier::Durable(result)) => return Ok(Some(result)),
                Some(Earlier::InFlight(first)) => {
                    if !in_flight_outcome(first).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The stream and result of the retained append with this command id, if any
    /// (only durable appends; see [`CommandRetention`](crate::CommandRetention)).
    pub fn command_result(&self, command_id: &str) -> Option<(StreamId, AppendResult)> {
        self.index().command(command_id).map(|entry| {
            let mut result = entry.result.clone();
            result.duplicate = true;
            ((*entry.stream).clone(), result)
        })
    }

    /// Waits until every event before global position `end` is durable and readable.
    pub async fn wait_committed(&self, end: GlobalPosition) -> Result<()> {
        let core = &self.inner.core;
        let mut committed = core.committed.subscribe();
        loop {
            if core.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            if *committed.borrow_and_update() >= end {
                return Ok(());
            }
            committed.changed().await.map_err(|_| StoreError::Closed)?;
        }
    }

    /// The stream's version: its number of durable events (0 when it has none). O(1).
    pub fn stream_version(&self, stream: &StreamId) -> StreamVersion {
        self.index()
            .stream(stream)
            .map_or(StreamVersion::ZERO, StreamEntry::version)
    }

    /// The version `stream` had just before global `position`: its events before it.
    pub(crate) fn version_before(
        &self,
        stream: &StreamId,
        position: GlobalPosition,
    ) -> StreamVersion {
        self.index()
            .stream(stream)
            .map_or(StreamVersion::ZERO, |entry| entry.version_before(position))
    }

    /// The position the next appended event will get (the number of events stored).
    pub fn end_position(&self) -> GlobalPosition {
        self.index().end()
    }

    /// Streams of an aggregate type in creation order with their versions: at most
    /// `max_count` from the `skip`-th on.
    pub fn list_streams(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> Vec<(StreamId, StreamVersion)> {
        self.index()
            .streams_of_type(aggregate_type, skip, max_count)
    }

    /// Number of streams of an aggregate type.
    pub fn count_streams(&self, aggregate_type: &str) -> usize {
        self.index().stream_count(aggregate_type)
    }

    /// Aggregate types with at least one stream.
    pub fn aggregate_types(&self) -> Vec<String> {
        self.index().aggregate_types()
    }

    /// Reads events of one stream; the cost is proportional to the events read.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<Vec<RecordedEvent>> {
        let positions = self.stream_positions(stream, &read);
        self.read_positions(&positions).await
    }

    /// Reads events of one stream as [`read_stream`](Self::read_stream) does, handing
    /// each to `visit` borrowed from where it is stored rather than building a
    /// [`RecordedEvent`]: for readers that turn events into something else at once
    /// (folds), it saves the copies and allocations of the owned form.
    pub async fn read_stream_with<T, F>(
        &self,
        stream: &StreamId,
        read: StreamRead,
        mut visit: F,
    ) -> Result<Vec<T>>
    where
        F: FnMut(EventRef<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let positions = self.stream_positions(stream, &read);
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let wal_positions = self.wal_positions(&positions)?;
        let mut expected = positions.into_iter();
        // After a corrupt event the read fails: the visitor sees nothing past it.
        let mut failed = false;
        let visited = self
            .inner
            .core
            .wal
            .read_many_with(wal_positions, move |value| {
                let position = expected.next().expect("one record per position");
                if failed {
                    return Err(StoreError::Corrupt(format!(
                        "event {position} not read: an earlier event is corrupt"
                    )));
                }
                let envelope = codec::parse(value).map_err(|e| {
                    failed = true;
                    StoreError::Corrupt(format!("event {position}: {e}"))
                })?;
                if envelope.position != position {
                    failed = true;
                    return Err(StoreError::Corrupt(format!(
                        "the index points event {position} at event {}",
                        envelope.position
                    )));
                }
                Ok(visit(EventRef {
                    position,
                    version: envelope.version,
                    name: envelope.name,
                    schema_version: envelope.schema_version,
                    timestamp_ms: envelope.timestamp_ms,
                    data: envelope.data,
                }))
            })
            .await?;
        visited.into_iter().collect()
    }

    /// The global positions of the events of `stream` that `read` selects.
    fn stream_positions(&self, stream: &StreamId, read: &StreamRead) -> Vec<GlobalPosition> {
        let max = read.max_count.min(self.inner.config.max_read_count);
        let index = self.index();
        let Some(entry) = index.stream(stream) else {
            return Vec::new();
        };
        let up_to = read.up_to_position;
        let at_or_before = |position: &GlobalPosition| up_to.is_none_or(|up_to| *position <= up_to);
        if read.forward {
            let from = read.from_version.unwrap_or(StreamVersion::FIRST);
            entry
                .positions_from(from)
                .iter()
                .copied()
                .take_while(at_or_before)
                .take(max)
                .collect()
        } else {
            let through = read.from_version.unwrap_or(entry.version());
            entry
                .positions_through(through)
                .iter()
                .rev()
                .copied()
                .filter(at_or_before)
                .take(max)
                .collect()
        }
    }

    /// Reads the global log forward from `from_position`, at most `max_count` events.
    pub async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let max = max_count.min(self.inner.config.max_read_count) as u64;
        let end = self.end_position().get();
        let from = from_position.get();
        let positions: Vec<GlobalPosition> = (from..end.min(from.saturating_add(max)))
            .map(GlobalPosition::new)
            .collect();
        self.read_positions(&positions).await
    }

    /// The last position whose event was appended at or before `timestamp_ms`, for
    /// time-travel reads; `None` if every event is later. O(log n) reads.
    pub async fn position_at_time(&self, timestamp_ms: u64) -> Result<Option<GlobalPosition>> {
        // Timestamps never decrease along the log: binary search for the first later one.
        let (mut low, mut high) = (0u64, self.end_position().get());
        while low < high {
            let middle = low + (high - low) / 2;
            let event = self
                .read_positions(&[GlobalPosition::new(middle)])
                .await?
                .pop()
                .expect("one event");
            if event.timestamp_ms <= timestamp_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        // `low` events are at or before the time: the last of them is the answer.
        Ok(low.checked_sub(1).map(GlobalPosition::new))
    }

    /// Reads events by global position, checking each against the index.
    pub(crate) async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let wal_positions = self.wal_positions(positions)?;
        let records = self.inner.core.wal.read_many(wal_positions).await?;
        let mut last_stream = None;
        records
            .iter()
            .zip(positions)
            .map(|(record, position)| {
                let decoded = codec::decode_after(&record.value, &mut last_stream)
                    .map_err(|e| StoreError::Corrupt(format!("event {position}: {e}")))?;
                if decoded.event.position != *position {
                    return Err(StoreError::Corrupt(format!(
                        "the index points event {position} at event {}",
                        decoded.event.position
                    )));
                }
                Ok(decoded.event)
            })
            .collect()
    }

    /// Where the events at global `positions` are in the log.
    fn wal_positions(&self, positions: &[GlobalPosition]) -> Result<Vec<Position>> {
        let index = self.index();
        positions
            .iter()
            .map(|position| {
                index.wal_position(*position).ok_or_else(|| {
                    StoreError::InvalidInput(format!("no event at position {position}"))
                })
            })
            .collect()
    }

    /// A subscription from `from_position`: the events already stored (catch-up), then
    /// live ones as they become durable, with no gap or duplicate between the two.
    pub fn subscribe(
        &self,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> Subscription {
        Subscription::new(self.clone(), from_position, filter)
    }

    /// How the subscriptions fare: how many are live, how often one fell behind the
    /// live broadcast, pages read and broadcast.
    pub fn subscription_stats(&self) -> SubscriptionStats {
        self.inner.fanout.stats()
    }

    /// Saves a snapshot of `stream` at `version` (the state after its first `version`
    /// events: at least one, at most the stream's durable ones), tagged with the encoding
    /// of `data` (the host uses the plugin's identity). Only the latest per stream and
    /// tag is kept.
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> Result<()> {
        let current = self.stream_version(stream);
        if version == StreamVersion::ZERO || version > current {
            return Err(StoreError::InvalidInput(format!(
                "cannot snapshot {stream} at version {version}: its version is {current}"
            )));
        }
        check_tag(tag, self.inner.config.max_name_len)?;
        self.inner.snapshots.save(stream, version, tag, data).await
    }

    /// The latest snapshot of `stream` with exactly this `tag`, if it is not ahead of the
    /// stream's durable events. A snapshot can outlive events it includes (a log cut by
    /// a repair, or an unsynced tail lost in a crash under `FsyncPolicy::Os`); such a
    /// snapshot is not used, so that a state is never ahead of the log.
    pub async fn latest_snapshot(&self, stream: &StreamId, tag: &str) -> Result<Option<Snapshot>> {
        let snapshot = self.inner.snapshots.latest(stream, tag).await?;
        let current = self.stream_version(stream);
        Ok(snapshot.filter(|snapshot| {
            let usable = snapshot.version <= current;
            if !usable {
                tracing::warn!(%stream, tag, snapshot = %snapshot.version, %current, "a snapshot is ahead of its stream; not used");
            }
            usable
        }))
    }

    /// Waits for appends in flight, flushes both logs and closes them. Other handles and
    /// subscriptions fail with [`StoreError::Closed`] from then on.
    pub async fn close(self) -> Result<()> {
        let core = &self.inner.core;
        core.stop_appends();
        let committer = self
            .inner
            .committer
            .lock()
            .expect("committer poisoned")
            .take();
        if let Some(committer) = committer {
            committer.await.map_err(|_| StoreError::Closed)?;
        }
        core.close_subscriptions();
        self.inner.fanout.stop().await;
        self.inner.snapshots.close().await?;
        core.wal.clone().close().await?;
        Ok(())
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.core.index.read().expect("index poisoned")
    }

    /// A handle from a weak reference to a store, if the store is still there.
    pub(crate) fn upgrade(inner: &Weak<Inner>) -> Option<EventStore> {
        inner.upgrade().map(|inner| EventStore { inner })
    }

    /// Whether `close` has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner
            .core
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// One past the last durable event, as the committer last announced it.
    pub(crate) fn committed_end(&self) -> GlobalPosition {
        *self.inner.core.committed.borrow()
    }

    /// The live broadcast and the subscriptions' counters.
    pub(crate) fn fanout(&self) -> &Fanout {
        &self.inner.fanout
    }
}

fn check_tag(tag: &str, max: usize) -> Result<()> {
    if tag.is_empty() || tag.len() > max {
        return Err(StoreError::InvalidInput(format!(
            "a snapshot tag must be 1 to {max} bytes long"
        )));
    }
    Ok(())
}

/// Waits for the outcome of an append in flight: whether it became durable.
async fn in_flight_outcome(mut outcome: watch::Receiver<Option<bool>>) -> Result<bool> {
    let settled = outcome
        .wait_for(Option::is_some)
        .await
        .map_err(|_| StoreError::Closed)?;
    Ok(*settled == Some(true))
}

/// Bytes the append's records take in the WAL, checked against the WAL's limits. The
/// size does not depend on positions or versions (they are fixed-width).
fn encoded_size(
    wal: &tally_wal::WalConfig,
    stream: &StreamId,
    events: &[NewEvent],
    options: &AppendOptions,
) -> Result<usize> {
    let mut total = 0usize;
    for (i, event) in events.iter().enumerate() {
        let envelope = codec::EnvelopeRef::for_append(
            stream,
            events,
            i,
            options,
            GlobalPosition::START,
            StreamVersion::FIRST,
            0,
        );
        let size = tally_wal::format::frame_len_of(envelope.encoded_len());
        if size > wal.max_record_size {
            return Err(StoreError::InvalidInput(format!(
                "event {} takes {size} bytes; the log's max_record_size is {}",
                event.name, wal.max_record_size
            )));
        }
        total += size;
    }
    if total > wal.max_batch_size {
        return Err(StoreError::InvalidInput(format!(
            "the append takes {total} bytes; the log's max_batch_size is {}",
            wal.max_batch_size
        )));
    }
    Ok(total)
}

/// Rebuilds the index by reading the whole event log, checking that positions and
/// versions are dense and that every append is complete.
async fn rebuild_index(wal: &Wal, config: &StoreConfig) -> Result<Index> {
    let mut builder = IndexBuilder::new(config.command_retention);
    let mut reader = wal.read_from(Position::START).await?;
    while let Some((record, wal_position)) = reader.next_record().await? {
        builder.push(&record.value, wal_position)?;
    }
    builder.finish(now_ms())
}
