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

use bytes::Bytes;
use tally_wal::{AppendTicket, FsyncPolicy, Record, Wal};
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec::EnvelopeRef;
use crate::error::{Result, StoreError};
use crate::event::{AppendOptions, AppendResult, ExpectedVersion, NewEvent, StreamId};
use crate::index::{Index, IndexedEvent};

/// The state shared by the store handle and its committer task.
#[derive(Debug)]
pub(crate) struct Core {
    pub wal: Wal,
    pub index: RwLock<Index>,
    pub sequencer: Mutex<Sequencer>,
    /// The index's end position (one past the last durable event).
    pub committed: watch::Sender<u64>,
    /// Set by `close`: subscriptions end.
    pub closed: AtomicBool,
}

/// Assignments of appends that are queued but not yet durable.
#[derive(Debug)]
pub(crate) struct Sequencer {
    /// The position the next append starts at.
    next_position: u64,
    /// Last version assigned to each stream with appends in flight.
    pending_versions: HashMap<Arc<StreamId>, u64>,
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
        next_position: u64,
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
    command_id: Option<String>,
    command_done: Option<watch::Sender<Option<bool>>>,
    reply: oneshot::Sender<Result<AppendResult>>,
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
        if sequencer.queue.is_none() {
            return Err(StoreError::Closed);
        }
        if let Some(stall) = &sequencer.stalled {
            return Err(StoreError::Unavailable {
                reason: stall.reason.clone(),
                storage_full: stall.storage_full,
            });
        }
        let index = self.index.read().expect("index poisoned");
        if let Some(command_id) = &options.command_id {
            if let Some(waiting) = sequencer.pending_commands.get(command_id) {
                return Ok(Decision::WaitFor(waiting.clone()));
            }
            if let Some(entry) = index.command(command_id) {
                if *entry.stream != *stream {
                    return Err(StoreError::CommandIdReused {
                        command_id: command_id.clone(),
                        stream: (*entry.stream).clone(),
                    });
                }
                let mut result = entry.result.clone();
                result.duplicate = true;
                return Ok(Decision::Duplicate(result));
            }
        }
        // One shared key for the stream (the index's, when it has the stream), so the
        // append path clones no strings.
        let (key, actual) = match sequencer.pending_versions.get_key_value(stream) {
            Some((key, version)) => (key.clone(), Some(*version)),
            None => match index.stream_entry(stream) {
                Some((key, entry)) => (key.clone(), entry.version()),
                None => (Arc::new(stream.clone()), None),
            },
        };
        drop(index);
        let matches = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(version) => actual == Some(version),
        };
        if !matches {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual,
            });
        }

        let timestamp_ms = now_ms().max(sequencer.last_timestamp_ms);
        let first_position = sequencer.next_position;
        let first_version = actual.map_or(0, |version| version + 1);
        let count = events.len() as u64;
        let records: Vec<Record> = (0..events.len())
            .map(|i| {
                let envelope = EnvelopeRef::for_append(
                    stream,
                    events,
                    i,
                    options,
                    first_position,
                    first_version,
                    timestamp_ms,
                );
                Record::put(Bytes::new(), envelope.encode())
            })
            .collect();
        let ticket = self.wal.enqueue_batch(&records, reservation)?;

        sequencer.last_timestamp_ms = timestamp_ms;
        sequencer.next_position += count;
        sequencer
            .pending_versions
            .insert(key.clone(), first_version + count - 1);
        sequencer.in_flight += 1;
        let command_done = options.command_id.as_ref().map(|command_id| {
            let (done, waiting) = watch::channel(None);
            sequencer
                .pending_commands
                .insert(command_id.clone(), waiting);
            done
        });
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            ticket,
            append: Waiting {
                stream: key,
                result: AppendResult {
                    first_position,
                    first_version,
                    count,
                    timestamp_ms,
                    duplicate: false,
                },
                command_id: options.command_id.clone(),
                command_done,
                reply,
            },
        };
        // Sent under the sequencer lock, so the committer sees appends in queue order.
        let queue = sequencer.queue.as_ref().expect("checked above");
        queue.send(queued).map_err(|_| StoreError::Closed)?;
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
        let mut added = Vec::with_capacity(batch.len());
        {
            let mut index = self.index.write().expect("index poisoned");
            let mut events = Vec::new();
            for settled in batch.iter() {
                added.push(match &settled.answer {
                    Ok(wal_positions) => {
                        let result = &settled.append.result;
                        events.clear();
                        events.extend(wal_positions.iter().enumerate().map(|(i, wal_position)| {
                            IndexedEvent {
                                position: result.first_position + i as u64,
                                version: result.first_version + i as u64,
                                wal_position: *wal_position,
                            }
                        }));
                        index.add_append(
                            &settled.append.stream,
                            &events,
                            settled.append.command_id.as_deref(),
                            result.timestamp_ms,
                        )
                    }
                    Err(_) => Ok(()),
                });
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut sequencer = self.sequencer.lock().expect("sequencer poisoned");
            for (settled, added) in batch.drain(..).zip(added) {
                let Settled {
                    append:
                        Waiting {
                            stream,
                            result,
                            command_id,
                            command_done,
                            reply,
                        },
                    answer,
                } = settled;
                sequencer.in_flight -= 1;
                let outcome = match answer {
                    Ok(_) => {
                        if sequencer.pending_versions.get(&stream) == Some(&result.last_version()) {
                            sequencer.pending_versions.remove(&stream);
                        }
                        if let Some(command_id) = &command_id {
                            sequencer.pending_commands.remove(command_id);
                        }
                        match added {
                            Ok(()) => Ok(result),
                            Err(reason) => {
                                // The sequencer assigned something the index cannot take: a
                                // bug, never data.
                                tracing::error!(%stream, reason, "durable append does not fit the index");
                                self.stall(
                                    &mut sequencer,
                                    format!("index out of step: {reason}"),
                                    false,
                                );
                                Err(StoreError::Corrupt(reason.to_string()))
                            }
                        }
                    }
                    Err(err) => {
                        if sequencer.stalled.is_none() {
                            tracing::warn!(error = %err, "append failed; refusing appends until in-flight ones drain");
                        }
                        self.stall(&mut sequencer, err.to_string(), err.is_storage_full());
                        Err(StoreError::Wal(err))
                    }
                };
                answers.push((command_done, reply, outcome));
            }
            self.resume_if_drained(&mut sequencer);
        }
        for (command_done, reply, outcome) in answers {
            if let Some(done) = command_done {
                done.send_replace(Some(outcome.is_ok()));
            }
            let _ = reply.send(outcome);
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
        tracing::info!(end, "appends resumed");
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
