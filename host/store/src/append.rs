//! The append path: checking expected versions and command ids, assigning positions and
//! versions, queueing to the WAL in order, and committing to the index in that order.
//!
//! Appends are checked and queued under one short lock (the [`Sequencer`]), against the
//! index plus the appends still in flight; the WAL then group-commits them. One committer
//! task awaits the WAL's answers in queue order and adds each durable append to the index,
//! so the index only ever holds durable events, in position order. If a write fails, the
//! WAL refuses everything queued after it; the store refuses new appends until those have
//! drained, then forgets the in-flight assignments and resumes.

use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tally_wal::{AppendTicket, FsyncPolicy, Record, Wal};
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec::EnvelopeRef;
use crate::error::{Result, StoreError};
use crate::event::{
    AppendOptions, AppendResult, CommandFingerprint, ExpectedVersion, NewEvent, StreamId,
};
use crate::index::{AppendCommand, Index, IndexedEvent};
use crate::version::{GlobalPosition, StreamVersion};

/// The state shared by the store handle and its committer task.
#[derive(Debug)]
pub(crate) struct Core {
    pub wal: Wal,
    pub index: RwLock<Index>,
    pub sequencer: Mutex<Sequencer>,
    /// The index's end position (one past the last durable event).
    pub committed: watch::Sender<GlobalPosition>,
    /// Set by `close`: subscriptions end.
    pub closed: AtomicBool,
}

/// Assignments of appends that are queued but not yet durable.
#[derive(Debug)]
pub(crate) struct Sequencer {
    /// The position the next append starts at.
    next_position: GlobalPosition,
    /// The version each stream with appends in flight reaches once they are durable.
    pending_versions: HashMap<Arc<StreamId>, StreamVersion>,
    /// Command ids of appends in flight; duplicates wait for the first one's outcome.
    pending_commands: HashMap<String, watch::Receiver<Option<bool>>>,
    /// Timestamp of the last queued append (timestamps never decrease).
    last_timestamp_ms: u64,
    in_flight: usize,
    /// Set after a failed write, until the appends in flight have drained.
    stalled: Option<Stall>,
    /// Where queued appends go to the committer; `None` once the store is closing.
    queue: Option<mpsc::UnboundedSender<Queued>>,
}

#[derive(Debug, Clone)]
struct Stall {
    reason: String,
    storage_full: bool,
}

impl Sequencer {
    pub fn new(
        next_position: GlobalPosition,
        last_timestamp_ms: u64,
        queue: mpsc::UnboundedSender<Queued>,
    ) -> Sequencer {
        Sequencer {
            next_position,
            pending_versions: HashMap::default(),
            pending_commands: HashMap::default(),
            last_timestamp_ms,
            in_flight: 0,
            stalled: None,
            queue: Some(queue),
        }
    }
}

impl Sequencer {
    /// Refuses appends once the store is closing, and while the appends queued after a
    /// failed write drain.
    fn check_accepting(&self) -> Result<()> {
        if self.queue.is_none() {
            return Err(StoreError::Closed);
        }
        if let Some(stall) = &self.stalled {
            return Err(StoreError::Unavailable {
                reason: stall.reason.clone(),
                storage_full: stall.storage_full,
            });
        }
        Ok(())
    }

    /// What sequencing relies on: positions are assigned past the durable ones, densely,
    /// so with nothing in flight the next position is the index's end.
    fn assert_in_step_with(&self, index: &Index) {
        debug_assert!(
            self.next_position >= index.end(),
            "the next position {} is behind the durable end {}",
            self.next_position,
            index.end()
        );
        debug_assert!(
            self.in_flight > 0 || self.next_position == index.end(),
            "nothing is in flight, yet the next position {} is not the durable end {}",
            self.next_position,
            index.end()
        );
    }

    /// What an earlier append with the command id of `options` decides, if there is
    /// one: wait for it while it is in flight, or its result once durable. An id used
    /// for another command (another stream, or another fingerprint) is refused.
    fn earlier_append(
        &self,
        index: &Index,
        stream: &StreamId,
        options: &AppendOptions,
    ) -> Result<Option<Earlier>> {
        let Some(command_id) = &options.command_id else {
            return Ok(None);
        };
        if let Some(waiting) = self.pending_commands.get(command_id) {
            return Ok(Some(Earlier::InFlight(waiting.clone())));
        }
        let Some(entry) = index.command(command_id) else {
            return Ok(None);
        };
        if entry.is_other_command(stream, options.command_fingerprint) {
            return Err(StoreError::CommandIdReused {
                command_id: command_id.clone(),
                stream: (*entry.stream).clone(),
            });
        }
        let mut result = entry.result.clone();
        result.duplicate = true;
        Ok(Some(Earlier::Durable(result)))
    }

    /// The stream's shared key (the index's, when it has the stream, so that the append
    /// path clones no strings) and its version, counting the appends in flight.
    fn stream_version(&self, index: &Index, stream: &StreamId) -> (Arc<StreamId>, StreamVersion) {
        if let Some((key, pending)) = self.pending_versions.get_key_value(stream) {
            debug_assert!(
                index
                    .stream(stream)
                    .is_none_or(|entry| entry.version() <= *pending),
                "the appends in flight to {stream} continue its durable events"
            );
            return (key.clone(), *pending);
        }
        match index.stream_entry(stream) {
            Some((key, entry)) => (key.clone(), entry.version()),
            None => (Arc::new(stream.clone()), StreamVersion::ZERO),
        }
    }

    /// Where an append of `count` events to a stream at version `actual` goes: the next
    /// positions, the stream's next versions, a timestamp no earlier than the last one.
    fn assignment(&self, actual: StreamVersion, count: u64) -> AppendResult {
        AppendResult {
            first_position: self.next_position,
            first_version: actual.next(),
            count,
            timestamp_ms: now_ms().max(self.last_timestamp_ms),
            duplicate: false,
        }
    }

    /// Records a queued append's assignment and hands the append to the committer;
    /// returns where its answer will come.
    fn record(
        &mut self,
        stream: Arc<StreamId>,
        assigned: AppendResult,
        ticket: AppendTicket,
        options: &AppendOptions,
    ) -> Result<oneshot::Receiver<Result<AppendResult>>> {
        self.last_timestamp_ms = assigned.timestamp_ms;
        self.next_position += assigned.count;
        self.pending_versions
            .insert(stream.clone(), assigned.last_version());
        self.in_flight += 1;
        let command = options.command_id.as_ref().map(|command_id| {
            let (done, waiting) = watch::channel(None);
            self.pending_commands.insert(command_id.clone(), waiting);
            Box::new(CommandInFlight {
                id: command_id.clone(),
                fingerprint: options.command_fingerprint,
                done,
            })
        });
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            ticket,
            append: Waiting {
                stream,
                result: assigned,
                command,
                reply,
            },
        };
        // Sent under the sequencer lock, so the committer sees appends in queue order.
        let queue = self.queue.as_ref().expect("checked by check_accepting");
        queue.send(queued).map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }

    /// Forgets a durable append's in-flight assignments: its stream's pending version
    /// (unless a later append to the stream is in flight) and its command id.
    fn retire_durable(&mut self, append: &Waiting) {
        if self.pending_versions.get(&append.stream) == Some(&append.result.last_version()) {
            self.pending_versions.remove(&append.stream);
        }
        if let Some(command) = &append.command {
            self.pending_commands.remove(&command.id);
        }
    }
}

/// The WAL records of an append assigned `assigned`: one envelope per event.
fn encode_append(
    stream: &StreamId,
    events: &[NewEvent],
    options: &AppendOptions,
    assigned: &AppendResult,
) -> Vec<Record> {
    (0..events.len())
        .map(|i| {
            let envelope = EnvelopeRef::for_append(
                stream,
                events,
                i,
                options,
                assigned.first_position,
                assigned.first_version,
                assigned.timestamp_ms,
            );
            Record::new(envelope.encode())
        })
        .collect()
}

/// The index's view of a durable append's events (into `events`): the positions and
/// versions assigned to them, and where the log put them, one record per event.
fn indexed_events(
    result: &AppendResult,
    wal_positions: &[tally_wal::Position],
    events: &mut Vec<IndexedEvent>,
) {
    debug_assert_eq!(
        wal_positions.len() as u64,
        result.count,
        "the log holds one record per event of an append"
    );
    events.clear();
    events.extend(wal_positions.iter().enumerate().map(|(i, wal_position)| {
        let (position, version) = result.event_at(i as u64);
        IndexedEvent {
            position,
            version,
            wal_position: *wal_position,
        }
    }));
}

/// The answer to one append's caller: made under the sequencer lock, sent after it.
struct Answer {
    command_done: Option<watch::Sender<Option<bool>>>,
    reply: oneshot::Sender<Result<AppendResult>>,
    outcome: Result<AppendResult>,
}

impl Answer {
    /// Wakes the appends of the same command id waiting for this one, and answers the
    /// caller.
    fn send(self) {
        if let Some(done) = self.command_done {
            done.send_replace(Some(self.outcome.is_ok()));
        }
        let _ = self.reply.send(self.outcome);
    }
}

/// An append queued to the WAL, waiting for the committer.
#[derive(Debug)]
pub(crate) struct Queued {
    ticket: AppendTicket,
    append: Waiting,
}

/// What the committer needs of a queued append besides its WAL answer.
#[derive(Debug)]
struct Waiting {
    stream: Arc<StreamId>,
    result: AppendResult,
    /// Boxed: the command's fields would make up most of every queued append, which
    /// the committer moves around, also for appends without one.
    command: Option<Box<CommandInFlight>>,
    reply: oneshot::Sender<Result<AppendResult>>,
}

/// The command of an append in flight that has a command id.
#[derive(Debug)]
struct CommandInFlight {
    id: String,
    fingerprint: Option<CommandFingerprint>,
    /// Tells the appends of the same command id waiting for this one its outcome.
    done: watch::Sender<Option<bool>>,
}

impl Waiting {
    /// The append's command, as the index retains it, if it has a command id.
    fn command(&self) -> Option<AppendCommand<'_>> {
        let command = self.command.as_deref()?;
        Some(AppendCommand {
            id: &command.id,
            fingerprint: command.fingerprint,
        })
    }
}

/// A queued append with its WAL answer.
#[derive(Debug)]
struct Settled {
    append: Waiting,
    answer: tally_wal::Result<Vec<tally_wal::Position>>,
}

impl Queued {
    /// Waits for the WAL's answer.
    async fn settle(self) -> Settled {
        Settled {
            answer: self.ticket.wait().await,
            append: self.append,
        }
    }

    /// The append with its WAL answer if it has come; itself back if not.
    fn try_settle(self) -> std::result::Result<Settled, Queued> {
        let Queued { ticket, append } = self;
        match ticket.try_wait() {
            Ok(answer) => Ok(Settled { append, answer }),
            Err(ticket) => Err(Queued { ticket, append }),
        }
    }
}

/// Limits an append is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_events: usize,
    pub max_event_size: usize,
    pub max_name_len: usize,
}

/// Checks an append's input; the error says what is wrong.
pub(crate) fn validate(
    stream: &StreamId,
    events: &[NewEvent],
    options: &AppendOptions,
    limits: Limits,
) -> Result<()> {
    let invalid = |message: String| Err(StoreError::InvalidInput(message));
    if events.is_empty() {
        return invalid("an append needs at least one event".into());
    }
    if events.len() > limits.max_events {
        return invalid(format!(
            "{} events in one append exceed the limit of {}",
            events.len(),
            limits.max_events
        ));
    }
    let names = [
        ("aggregate type", Some(&*stream.aggregate_type)),
        ("aggregate id", Some(&*stream.aggregate_id)),
        ("command id", options.command_id.as_deref()),
        ("correlation id", options.correlation_id.as_deref()),
        ("causation id", options.causation_id.as_deref()),
    ];
    for (what, value) in names {
        if let Some(value) = value {
            check_name(what, value, limits.max_name_len)?;
        }
    }
    for event in events {
        check_name("event name", &event.name, limits.max_name_len)?;
        let size = event.data.len() + event.metadata.len();
        if size > limits.max_event_size {
            return invalid(format!(
                "event {} of {size} bytes exceeds the limit of {} bytes",
                event.name, limits.max_event_size
            ));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&event.data).is_err() {
            return invalid(format!("the data of event {} is not JSON", event.name));
        }
        if !event.metadata.is_empty()
            && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&event.metadata)
                .is_err()
        {
            return invalid(format!(
                "the metadata of event {} is not a JSON object",
                event.name
            ));
        }
    }
    Ok(())
}

fn check_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::InvalidInput(format!("the {what} is empty")));
    }
    if value.len() > max {
        return Err(StoreError::InvalidInput(format!(
            "the {what} is {} bytes long; the limit is {max}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(format!(
            "the {what} contains control characters"
        )));
    }
    Ok(())
}

/// An earlier append with the same command id (and the same command).
pub(crate) enum Earlier {
    /// Durable: its result, marked `duplicate`.
    Durable(AppendResult),
    /// In flight: its outcome comes on the channel (`Some(true)` once durable).
    InFlight(watch::Receiver<Option<bool>>),
}

impl From<Earlier> for Decision {
    fn from(earlier: Earlier) -> Decision {
        match earlier {
            Earlier::Durable(result) => Decision::Duplicate(result),
            Earlier::InFlight(outcome) => Decision::WaitFor(outcome),
        }
    }
}

/// What the sequencer decided for one append.
pub(crate) enum Decision {
    /// Queued; the reply comes from the committer.
    Queued(oneshot::Receiver<Result<AppendResult>>),
    /// An earlier append with the same command id: its result.
    Duplicate(AppendResult),
    /// An append with the same command id is in flight: wait for it, then try again.
    WaitFor(watch::Receiver<Option<bool>>),
}

impl Core {
    /// What an earlier append with the command id of `options` decides for an append
    /// to `stream`, without queueing anything: `None` when there is none.
    pub fn earlier(&self, stream: &StreamId, options: &AppendOptions) -> Result<Option<Earlier>> {
        let sequencer = self.sequencer.lock().expect("sequencer poisoned");
        let index = self.index.read().expect("index poisoned");
        sequencer.earlier_append(&index, stream, options)
    }

    /// Checks and queues an append. Must be called with room reserved in the WAL.
    pub fn sequence(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
        options: &AppendOptions,
        reservation: tally_wal::Reservation,
    ) -> Result<Decision> {
        let mut sequencer = self.sequencer.lock().expect("sequencer poisoned");
        sequencer.check_accepting()?;
        let index = self.index.read().expect("index poisoned");
        sequencer.assert_in_step_with(&index);
        if let Some(earlier) = sequencer.earlier_append(&index, stream, options)? {
            return Ok(earlier.into());
        }
        let (key, actual) = sequencer.stream_version(&index, stream);
        drop(index);
        if !expected.matches(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        let assigned = sequencer.assignment(actual, events.len() as u64);
        let records = encode_append(stream, events, options, &assigned);
        let ticket = self.wal.enqueue_batch(&records, reservation)?;
        let answer = sequencer.record(key, assigned, ticket, options)?;
        Ok(Decision::Queued(answer))
    }

    /// The committer: commits queued appends in queue order, in batches. It waits for the
    /// oldest append's WAL answer, takes every queued append after it that the WAL has
    /// answered too (a group commit answers many at once), and commits them together:
    /// one index lock and one sequencer lock per batch rather than per append, so that the
    /// one task every append passes through does little per append and seldom contends
    /// with the appends being sequenced. At most `max_batch` appends per batch
    /// ([`StoreConfig::max_commit_batch`](crate::StoreConfig::max_commit_batch)).
    pub async fn run_committer(
        self: Arc<Core>,
        mut queue: mpsc::UnboundedReceiver<Queued>,
        max_batch: usize,
    ) {
        let mut batch = Vec::new();
        let mut unanswered: Option<Queued> = None;
        loop {
            let oldest = match unanswered.take() {
                Some(queued) => queued,
                None => match queue.recv().await {
                    Some(queued) => queued,
                    None => break,
                },
            };
            batch.push(oldest.settle().await);
            while batch.len() < max_batch {
                let Ok(queued) = queue.try_recv() else { break };
                match queued.try_settle() {
                    Ok(settled) => batch.push(settled),
                    Err(queued) => {
                        unanswered = Some(queued);
                        break;
                    }
                }
            }
            self.await_durable(&mut batch).await;
            self.commit_batch(&mut batch);
            let end = self.index.read().expect("index poisoned").end();
            self.committed.send_if_modified(|committed| {
                let moved = *committed != end;
                *committed = end;
                moved
            });
        }
    }

    /// Under `Batch` or `Os` the WAL answers at the write; the index (and so every reader
    /// and subscription) takes only durable events: waits until the batch is durable.
    async fn await_durable(&self, batch: &mut [Settled]) {
        if self.wal.config().fsync_policy == FsyncPolicy::Always {
            return;
        }
        let last = batch
            .iter()
            .rev()
            .find_map(|settled| settled.answer.as_ref().ok()?.last().copied());
        let Some(last) = last else { return };
        // `wait_durable` fails only when the log closed under it.
        if self.wal.wait_durable(last).await.is_err() {
            for settled in batch.iter_mut().filter(|settled| settled.answer.is_ok()) {
                settled.answer = Err(tally_wal::WalError::Closed);
            }
        }
    }

    /// Commits a batch of answered appends in order (durable ones to the index, failed
    /// ones stall the store), retires their in-flight assignments and answers their callers.
    fn commit_batch(&self, batch: &mut Vec<Settled>) {
        let added = self.add_to_index(batch);
        let answers = {
            let mut sequencer = self.sequencer.lock().expect("sequencer poisoned");
            let answers: Vec<Answer> = batch
                .drain(..)
                .zip(added)
                .map(|(settled, added)| self.retire(&mut sequencer, settled, added))
                .collect();
            self.resume_if_drained(&mut sequencer);
            answers
        };
        for answer in answers {
            answer.send();
        }
    }

    /// Adds the durable appends of a batch to the index, under one lock; for each append,
    /// whether the index took it (failed appends are not added).
    fn add_to_index(&self, batch: &[Settled]) -> Vec<Result<(), &'static str>> {
        let mut index = self.index.write().expect("index poisoned");
        let mut events = Vec::new();
        let added: Vec<_> = batch
            .iter()
            .map(|settled| {
                let Ok(wal_positions) = &settled.answer else {
                    return Ok(());
                };
                let append = &settled.append;
                indexed_events(&append.result, wal_positions, &mut events);
                index.add_append(
                    &append.stream,
                    &events,
                    append.command(),
                    append.result.timestamp_ms,
                )
            })
            .collect();
        drop(index);
        debug_assert!(
            added.iter().all(Result::is_ok),
            "the sequencer assigns positions and versions that continue the index densely: {added:?}"
        );
        self.assert_durable(batch);
        added
    }

    /// The index never runs ahead of the durable end of the log (checked in debug
    /// builds).
    fn assert_durable(&self, batch: &[Settled]) {
        if !cfg!(debug_assertions) {
            return;
        }
        let last = batch
            .iter()
            .rev()
            .find_map(|settled| settled.answer.as_ref().ok()?.last().copied());
        if let Some(last) = last {
            debug_assert!(
                last < self.wal.durable_end(),
                "an event at {last} is indexed before the log is durable there"
            );
        }
    }

    /// Retires one answered append's in-flight assignment (under the sequencer lock) and
    /// makes its caller's answer: its result once durable and indexed; a failure stalls
    /// the store.
    fn retire(
        &self,
        sequencer: &mut Sequencer,
        settled: Settled,
        added: Result<(), &str>,
    ) -> Answer {
        let Settled { append, answer } = settled;
        sequencer.in_flight -= 1;
        let outcome = match answer {
            Ok(_) => {
                sequencer.retire_durable(&append);
                match added {
                    Ok(()) => Ok(append.result),
                    Err(reason) => {
                        // The sequencer assigned something the index cannot take: a
                        // bug, never data.
                        tracing::error!(stream = %append.stream, reason, "durable append does not fit the index");
                        self.stall(sequencer, format!("index out of step: {reason}"), false);
                        Err(StoreError::Corrupt(reason.to_string()))
                    }
                }
            }
            Err(err) => {
                if sequencer.stalled.is_none() {
                    tracing::warn!(error = %err, "append failed; refusing appends until in-flight ones drain");
                }
                self.stall(sequencer, err.to_string(), err.is_storage_full());
                Err(StoreError::Wal(err))
            }
        };
        Answer {
            command_done: append.command.map(|command| command.done),
            reply: append.reply,
            outcome,
        }
    }

    fn stall(&self, sequencer: &mut Sequencer, reason: String, storage_full: bool) {
        if sequencer.stalled.is_none() {
            sequencer.stalled = Some(Stall {
                reason,
                storage_full,
            });
        }
    }

    /// Once nothing is in flight after a failure: the index is the truth again.
    fn resume_if_drained(&self, sequencer: &mut Sequencer) {
        if sequencer.stalled.is_none() || sequencer.in_flight > 0 {
            return;
        }
        let end = self.index.read().expect("index poisoned").end();
        sequencer.next_position = end;
        sequencer.pending_versions.clear();
        sequencer.pending_commands.clear();
        sequencer.stalled = None;
        self.wal.resume();
        tracing::info!(end = end.get(), "appends resumed");
    }
}

impl Core {
    /// Refuses further appends; the committer ends once the queued ones are committed.
    pub fn stop_appends(&self) {
        self.sequencer.lock().expect("sequencer poisoned").queue = None;
    }

    /// Wakes every subscription so that it sees the store closed.
    pub fn close_subscriptions(&self) {
        self.closed.store(true, Ordering::Release);
        self.committed.send_modify(|_| {});
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
