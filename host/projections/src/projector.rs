//! [`Projector`]: the task that feeds one projection version the log, batch by batch.
//!
//! It reads durable events from its checkpoint in log order (a page at a time, so its
//! memory is bounded by the batch size), keeps those of the projection's aggregate
//! types, upcasts them to the current schemas of their active plugins, keeps those it
//! reads by name, and calls `apply` on a blocking thread. The batch's writes and the
//! new checkpoint (past every event read, kept or not) commit in one transaction.
//! While events keep coming, a commit is durable only once per
//! [`ProjectorConfig::durable_every`] (the others are on disk with the next durable
//! one): a crash costs applying those events again, never applying one twice. Before
//! it waits (for the log or an administrator) or stops, the projector makes every
//! commit durable.
//!
//! When a batch fails, nothing of it is written and the projector goes over the same
//! events again one stored event at a time, so the failure is pinned to one event: the
//! projection stops there, `faulted`, with the event and the message, and waits for an
//! administrator's `retry` or `skip`. Queries keep answering from the last good state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_runtime::tally_store::{EventLog, RecordedEvent};
use tally_runtime::{
    DocumentWrites, EventEnvelope, GlobalPosition, LoadedProjection, ProjectionInstance, Runtime,
};
use tokio::sync::{mpsc, watch};

use crate::error::ProjectionError;
use crate::read_model::{Commit, ReadModel};

/// Where a projection version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionState {
    /// Applying events the log already had.
    CatchingUp,
    /// Caught up: applying events as they become durable.
    Live,
    /// Stopped at an event it failed on (see [`Progress::fault`]).
    Faulted,
    /// Stopped: the service is shutting down or the log is closed.
    Stopped,
}

impl ProjectionState {
    /// Its name in the API: `catching-up`, `live`, `faulted`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionState::CatchingUp => "catching-up",
            ProjectionState::Live => "live",
            ProjectionState::Faulted => "faulted",
            ProjectionState::Stopped => "stopped",
        }
    }
}

/// The event a projection failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Its position in the log.
    pub position: GlobalPosition,
    /// Its aggregate type, id and name, e.g. `bank-account/alice MoneyDeposited`.
    pub event: String,
    /// What failed.
    pub message: String,
    /// How many times the event failed since the projector started: 1, and one more
    /// for each `retry` that failed again, so that a client can tell a retry that
    /// failed from one not yet attempted.
    pub attempts: u32,
}

/// How far a projection version is, published after every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Its state.
    pub state: ProjectionState,
    /// The next position to apply: every event before it is in the read model.
    pub checkpoint: GlobalPosition,
    /// Events applied (kept by the filter) since the projector started.
    pub applied: u64,
    /// When the last event it read was stored (ms since the Unix epoch), if it read one
    /// since it started.
    pub last_event_ms: Option<u64>,
    /// The event it failed on, when faulted.
    pub fault: Option<Fault>,
}

/// What an administrator asks of a faulted projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Apply the failed event again (after a fix elsewhere, e.g. a plugin activated).
    Retry,
    /// Pass over the failed event; the read model records that one was skipped.
    Skip,
}

/// A [`Control`] with the position of the fault it was asked about: the projector
/// takes it only while it is faulted there, so that a control sent twice (a second
/// `skip` before the first was taken) cannot pass over a later fault that nobody has
/// seen yet.
pub type ControlAt = (Control, GlobalPosition);

/// Settings of a projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// Most stored events per batch (one `apply` call, one transaction). Default
    /// **10,000**: a batch's documents are read, decoded, encoded and written once
    /// however many of its events touch them, so large batches pay.
    pub batch_events: usize,
    /// About how long one `apply` call should take: the projector sizes its batches
    /// from the time its last calls took per event, up to `batch_events`, so that a
    /// slow projection gets small batches (well inside the call's CPU deadline, and
    /// a live read does not wait behind a long batch). Default **10 ms**.
    pub batch_time: Duration,
    /// Longest time between durable commits while events keep coming: what a crash
    /// can make the projection apply again. Default **1 s**; zero makes every commit
    /// durable.
    pub durable_every: Duration,
    /// While live, how long the projector waits after a batch that emptied the log
    /// before it reads again, so that under load a batch gathers more events (a read
    /// model transaction per batch costs the same for 10 events as for 500). Adds up
    /// to this to the lag under load; none after an idle spell. Default **2 ms**.
    pub live_linger: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_events: 10_000,
            batch_time: Duration::from_millis(10),
            durable_every: Duration::from_secs(1),
            live_linger: Duration::from_millis(2),
        }
    }
}

/// One projection version being fed the log: see the module documentation.
pub struct Projector {
    runtime: Runtime,
    projection: LoadedProjection,
    model: ReadModel,
    config: ProjectorConfig,
    progress: watch::Sender<Progress>,
    control: mpsc::Receiver<ControlAt>,
    /// Until this position, batches hold one stored event (after a failed batch).
    one_by_one_until: GlobalPosition,
    /// Where the last fault was, and how many times the event there failed.
    last_fault: Option<(GlobalPosition, u32)>,
    /// When the read model was last made durable.
    last_durable: Instant,
    /// Whether a commit since then is not on disk yet.
    deferred: bool,
    /// The next batch, read while the last one applied.
    prefetched: Option<Prepared>,
    /// How long `apply` has taken per event.
    pace: Pace,
}

/// How long `apply` takes per event: a moving average over the last calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Pace {
    nanos_per_event: Option<f64>,
}

impl Pace {
    /// The weight of the newest call in the average.
    const NEWEST: f64 = 0.3;

    /// Counts a call that applied `events` in `took`.
    fn record(&mut self, events: u64, took: Duration) {
        if events == 0 {
            return;
        }
        let newest = took.as_nanos() as f64 / events as f64;
        let average = match self.nanos_per_event {
            Some(average) => average + Self::NEWEST * (newest - average),
            None => newest,
        };
        self.nanos_per_event = Some(average);
    }

    /// How many events fit in `time` at this pace: at least 1 and at most `most`
    /// (`most` before the first call).
    fn batch_size(&self, time: Duration, most: usize) -> usize {
        let Some(nanos) = self.nanos_per_event.filter(|nanos| *nanos > 0.0) else {
            return most;
        };
        let fits = (time.as_nanos() as f64 / nanos) as usize;
        fits.clamp(1, most.max(1))
    }
}

/// What `apply` made of a batch.
struct Applied {
    writes: DocumentWrites,
    /// The events the projection was given.
    events: u64,
    /// How long the call took.
    took: Duration,
}

/// A batch read from the log and made ready for `apply`.
struct Prepared {
    /// Where it starts.
    from: GlobalPosition,
    /// Whether it has that many: the log had more than it holds, maybe.
    full: bool,
    /// The position after the last stored event read (`from` if none was).
    next: GlobalPosition,
    /// When the last stored event read was stored.
    last_event_ms: Option<u64>,
    /// The projection's envelopes, or why they could not be made (upcasting failed).
    envelopes: Result<Vec<EventEnvelope>, String>,
}

impl Prepared {
    /// Whether the log had no event at `from`.
    fn is_empty(&self) -> bool {
        self.next == self.from
    }
}

/// What went wrong with one batch.
enum BatchFailure {
    /// The projection (or upcasting its events) failed: a fault, not an outage.
    Projection(String),
    /// The log or the read model failed: the projector stops.
    Fatal(ProjectionError),
}

impl Projector {
    /// A projector of `projection` into `model`, from the model's checkpoint; its
    /// progress is published on the returned receiver, and it takes `retry` and
    /// `skip`, each with the position of the fault it is about, on the returned sender.
    pub fn new(
        runtime: Runtime,
        projection: LoadedProjection,
        model: ReadModel,
        config: ProjectorConfig,
    ) -> Result<
        (
            Projector,
            watch::Receiver<Progress>,
            mpsc::Sender<ControlAt>,
        ),
        ProjectionError,
    > {
        let checkpoint = model.checkpoint()?;
        let (progress, watcher) = watch::channel(Progress {
            state: ProjectionState::CatchingUp,
            checkpoint,
            applied: 0,
            last_event_ms: None,
            fault: None,
        });
        let (control_sender, control) = mpsc::channel(4);
        let projector = Projector {
            runtime,
            projection,
            model,
            config,
            progress,
            control,
            one_by_one_until: GlobalPosition::START,
            last_fault: None,
            last_durable: Instant::now(),
            deferred: false,
            prefetched: None,
            pace: Pace::default(),
        };
        Ok((projector, watcher, control_sender))
    }

    /// Feeds the projection until the log closes, a storage failure, or `stop`.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut instance = Some(self.projection.instance());
        tokio::pin!(stop);
        loop {
            let step = tokio::select! {
                step = self.step(&mut instance) => step,
                () = &mut stop => Ok(false),
            };
            match step {
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    tracing::error!(projection = %self.name(), %error, "projection stopped");
                    break;
                }
            }
        }
        if let Err(error) = self.make_durable().await {
            tracing::error!(projection = %self.name(), %error, "the read model's last commits are not on disk");
        }
        self.progress
            .send_modify(|progress| progress.state = ProjectionState::Stopped);
    }

    fn name(&self) -> &str {
        &self.projection.info().name
    }

    fn checkpoint(&self) -> GlobalPosition {
        self.progress.borrow().checkpoint
    }

    /// One batch, one wait for the log, or one wait for an administrator; false once
    /// the log is closed. While a full batch applies, the next one is read and
    /// upcast.
    async fn step(
        &mut self,
        instance: &mut Option<ProjectionInstance>,
    ) -> Result<bool, ProjectionError> {
        if self.progress.borrow().state == ProjectionState::Faulted {
            self.make_durable().await?;
            return self.await_control().await;
        }
        let from = self.checkpoint();
        let one_by_one = from < self.one_by_one_until;
        let count = if one_by_one {
            1
        } else {
            self.pace
                .batch_size(self.config.batch_time, self.config.batch_events)
        };
        let prefetched = self
            .prefetched
            .take()
            .filter(|batch| batch.from == from && !one_by_one);
        let batch = match prefetched {
            Some(batch) => batch,
            None => match self.prepare(from, count).await {
                Some(batch) => batch,
                None => return Ok(false),
            },
        };
        if batch.is_empty() {
            self.make_durable().await?;
            self.set_state(ProjectionState::Live);
            return Ok(self
                .runtime
                .store()
                .wait_committed(from.next())
                .await
                .is_ok());
        }
        let (next, last_event_ms, full) = (batch.next, batch.last_event_ms, batch.full);
        let prefetch = full && !one_by_one;
        let (applied, prefetched) = tokio::join!(self.apply(instance, batch.envelopes), async {
            if prefetch {
                self.prepare(next, count).await
            } else {
                None
            }
        });
        self.prefetched = prefetched.filter(|batch| !batch.is_empty());
        match applied {
            Ok(Applied {
                writes,
                events,
                took,
            }) => {
                self.pace.record(events, took);
                self.commit(writes, next, events, 0).await?;
                self.progress
                    .send_modify(|progress| progress.last_event_ms = last_event_ms);
                if !full {
                    tokio::time::sleep(self.config.live_linger).await;
                }
            }
            Err(BatchFailure::Fatal(error)) => return Err(error),
            Err(BatchFailure::Projection(message)) if !one_by_one => {
                tracing::warn!(projection = %self.name(), %message, "batch failed; going over it one event at a time");
                self.one_by_one_until = next;
            }
            Err(BatchFailure::Projection(message)) => self.fault(from, message).await,
        }
        Ok(true)
    }

    /// Reads up to `count` stored events from `from` and makes them the projection's
    /// envelopes: those of its aggregate types, upcast to current schemas, those it
    /// reads by name. `None` once the log is closed.
    async fn prepare(&self, from: GlobalPosition, count: usize) -> Option<Prepared> {
        // The store reads no more than this at once: a batch that has it is full.
        let count = count.min(self.runtime.store().max_read_count());
        let events = self.runtime.store().read_all(from, count).await.ok()?;
        let Some(last) = events.last() else {
            return Some(Prepared {
                from,
                full: false,
                next: from,
                last_event_ms: None,
                envelopes: Ok(Vec::new()),
            });
        };
        let (next, last_event_ms) = (last.position.next(), Some(last.timestamp_ms));
        let full = events.len() == count;
        let info = self.projection.info();
        let ours: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|event| {
                info.aggregate_types
                    .iter()
                    .any(|t| **t == *event.stream.aggregate_type)
            })
            .collect();
        let envelopes = if ours.is_empty() {
            Ok(Vec::new())
        } else {
            self.runtime
                .current_envelopes(ours)
                .await
                .map(|envelopes| {
                    envelopes
                        .into_iter()
                        .filter(|envelope| info.reads(&envelope.aggregate_type, &envelope.name))
                        .collect()
                })
                .map_err(|error| error.to_string())
        };
        Some(Prepared {
            from,
            full,
            next,
            last_event_ms,
            envelopes,
        })
    }

    /// Applies a prepared batch's envelopes: the writes and the number of events
    /// applied.
    async fn apply(
        &self,
        instance: &mut Option<ProjectionInstance>,
        envelopes: Result<Vec<EventEnvelope>, String>,
    ) -> Result<Applied, BatchFailure> {
        let envelopes = envelopes.map_err(BatchFailure::Projection)?;
        let events = envelopes.len() as u64;
        if envelopes.is_empty() {
            return Ok(Applied {
                writes: DocumentWrites::default(),
                events,
                took: Duration::ZERO,
            });
        }
        let snapshot = self.model.snapshot().map_err(BatchFailure::Fatal)?;
        let mut taken = instance.take().expect("the projector holds its instance");
        let (taken, answer, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let answer = taken.apply(&envelopes, Arc::new(snapshot));
            (taken, answer, started.elapsed())
        })
        .await
        .expect("a projection call does not panic the host");
        *instance = Some(taken);
        match answer {
            Ok(Ok(writes)) => Ok(Applied {
                writes,
                events,
                took,
            }),
            Ok(Err(message)) => Err(BatchFailure::Projection(message)),
            Err(error) => Err(BatchFailure::Projection(error.to_string())),
        }
    }

    /// Commits a batch and publishes the new checkpoint.
    async fn commit(
        &mut self,
        writes: DocumentWrites,
        next: GlobalPosition,
        applied: u64,
        skipped: u64,
    ) -> Result<(), ProjectionError> {
        let started = Instant::now();
        let commit = if skipped > 0 || self.last_durable.elapsed() >= self.config.durable_every {
            Commit::Durable
        } else {
            Commit::Deferred
        };
        let documents = writes.len();
        let model = self.model.clone();
        off_the_runtime(move || model.commit(&writes, next, skipped, commit)).await?;
        match commit {
            Commit::Durable => self.made_durable(),
            Commit::Deferred => self.deferred = true,
        }
        tracing::trace!(projection = %self.name(), %next, documents, ?commit, micros = started.elapsed().as_micros() as u64, "batch committed");
        let end = self.runtime.store().known_end();
        self.progress.send_modify(|progress| {
            progress.checkpoint = next;
            progress.applied += applied;
            progress.fault = None;
            progress.state = if next >= end {
                ProjectionState::Live
            } else {
                ProjectionState::CatchingUp
            };
        });
        Ok(())
    }

    /// Puts the deferred commits on disk, if there are any.
    async fn make_durable(&mut self) -> Result<(), ProjectionError> {
        if self.deferred {
            let model = self.model.clone();
            off_the_runtime(move || model.make_durable()).await?;
            self.made_durable();
        }
        Ok(())
    }

    fn made_durable(&mut self) {
        self.last_durable = Instant::now();
        self.deferred = false;
    }

    /// Stops at the event at `position`, which failed with `message`.
    async fn fault(&mut self, position: GlobalPosition, message: String) {
        let event = match self.runtime.store().read_all(position, 1).await {
            Ok(events) => events.first().map_or_else(String::new, |event| {
                format!("{} {}", event.stream, event.name)
            }),
            Err(_) => String::new(),
        };
        let attempts = match self.last_fault {
            Some((at, failed)) if at == position => failed + 1,
            _ => 1,
        };
        self.last_fault = Some((position, attempts));
        tracing::error!(projection = %self.name(), %position, %event, %message, attempts, "projection faulted");
        self.progress.send_modify(|progress| {
            progress.state = ProjectionState::Faulted;
            progress.fault = Some(Fault {
                position,
                event,
                message,
                attempts,
            });
        });
    }

    /// Waits for `retry` or `skip` of the current fault; false if every sender is gone.
    async fn await_control(&mut self) -> Result<bool, ProjectionError> {
        let Some((control, asked_at)) = self.control.recv().await else {
            return Ok(false);
        };
        let Some(fault) = self.progress.borrow().fault.clone() else {
            return Ok(true);
        };
        if asked_at != fault.position {
            tracing::warn!(projection = %self.name(), ?control, %asked_at, position = %fault.position, "ignored a control sent for an earlier fault");
            return Ok(true);
        }
        match control {
            Control::Retry => self.set_state(ProjectionState::CatchingUp),
            Control::Skip => {
                tracing::warn!(projection = %self.name(), position = %fault.position, event = %fault.event, "event skipped by an administrator");
                self.commit(DocumentWrites::default(), fault.position.next(), 0, 1)
                    .await?;
            }
        }
        Ok(true)
    }

    fn set_state(&self, state: ProjectionState) {
        self.progress.send_if_modified(|progress| {
            let changed = progress.state != state;
            progress.state = state;
            if state != ProjectionState::Faulted {
                progress.fault = None;
            }
            changed
        });
    }
}

/// Runs `work` (redb's writes and fsyncs) on a blocking thread, not on the runtime's
/// workers. A panic in it goes on in the caller; if the runtime shuts down first, the
/// answer is [`ProjectionError::Closed`].
async fn off_the_runtime<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, ProjectionError> + Send + 'static,
) -> Result<R, ProjectionError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(answer) => answer,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ProjectionError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sized_from_the_pace_of_the_last_calls() {
        let mut pace = Pace::default();
        let time = Duration::from_millis(10);
        assert_eq!(pace.batch_size(time, 10_000), 10_000, "before any call");
        pace.record(1_000, Duration::from_millis(1));
        assert_eq!(pace.batch_size(time, 10_000), 10_000, "1 µs per event");
        assert_eq!(pace.batch_size(time, 4_000), 4_000);
        let mut slow = Pace::default();
        slow.record(10, Duration::from_millis(5));
        assert_eq!(slow.batch_size(time, 10_000), 20, "500 µs per event");
        slow.record(1, Duration::from_secs(1));
        assert_eq!(slow.batch_size(time, 10_000), 1, "never less than one");
        pace.record(0, Duration::from_secs(9));
        assert_eq!(
            pace.batch_size(time, 10_000),
            10_000,
            "no events, no change"
        );
    }

    #[test]
    fn the_pace_follows_the_newest_calls() {
        let mut pace = Pace::default();
        pace.record(100, Duration::from_micros(100));
        for _ in 0..20 {
            pace.record(100, Duration::from_micros(1_000));
        }
        let nanos = pace.nanos_per_event.unwrap();
        assert!((9_900.0..=10_000.0).contains(&nanos), "{nanos}");
    }
}
