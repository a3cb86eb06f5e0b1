//! [`Projector`]: the task that feeds one projection version the log, batch by batch.
//!
//! It reads durable events from its checkpoint in log order (a page at a time, so its
//! memory is bounded by the batch size), keeps those of the projection's aggregate
//! types, upcasts them to the current schemas of their active plugins, keeps those it
//! reads by name, and calls `apply` on a blocking thread. The batch's writes and the
//! new checkpoint (past every event read, kept or not) commit in one transaction.
//!
//! When a batch fails, nothing of it is written and the projector goes over the same
//! events again one stored event at a time, so the failure is pinned to one event: the
//! projection stops there, `faulted`, with the event and the message, and waits for an
//! administrator's `retry` or `skip`. Queries keep answering from the last good state.

use std::sync::Arc;
use std::time::Instant;

use tally_runtime::tally_store::RecordedEvent;
use tally_runtime::{
    DocumentWrites, EventEnvelope, GlobalPosition, LoadedProjection, ProjectionInstance, Runtime,
};
use tokio::sync::{mpsc, watch};

use crate::error::ProjectionError;
use crate::read_model::ReadModel;

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
    /// Most stored events per batch (one `apply` call, one transaction).
    pub batch_events: usize,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_events: 1_000,
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
    /// the log is closed.
    async fn step(
        &mut self,
        instance: &mut Option<ProjectionInstance>,
    ) -> Result<bool, ProjectionError> {
        if self.progress.borrow().state == ProjectionState::Faulted {
            return self.await_control().await;
        }
        let from = self.checkpoint();
        let count = if from < self.one_by_one_until {
            1
        } else {
            self.config.batch_events
        };
        let events = self.runtime.store().read_all(from, count).await;
        let Ok(events) = events else {
            return Ok(false);
        };
        let Some(last) = events.last() else {
            self.set_state(ProjectionState::Live);
            return Ok(self
                .runtime
                .store()
                .wait_committed(from.next())
                .await
                .is_ok());
        };
        let next = last.position.next();
        let last_event_ms = last.timestamp_ms;
        match self.apply(instance, events).await {
            Ok((writes, applied)) => {
                self.commit(&writes, next, applied, 0)?;
                self.progress
                    .send_modify(|progress| progress.last_event_ms = Some(last_event_ms));
            }
            Err(BatchFailure::Fatal(error)) => return Err(error),
            Err(BatchFailure::Projection(message)) if count > 1 => {
                tracing::warn!(projection = %self.name(), %message, "batch failed; going over it one event at a time");
                self.one_by_one_until = next;
            }
            Err(BatchFailure::Projection(message)) => self.fault(from, message).await,
        }
        Ok(true)
    }

    /// Upcasts and applies `events`: the writes and the number of events applied.
    async fn apply(
        &self,
        instance: &mut Option<ProjectionInstance>,
        events: Vec<RecordedEvent>,
    ) -> Result<(DocumentWrites, u64), BatchFailure> {
        let info = self.projection.info();
        let ours: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|event| {
                info.aggregate_types
                    .iter()
                    .any(|t| **t == *event.stream.aggregate_type)
            })
            .collect();
        if ours.is_empty() {
            return Ok((DocumentWrites::default(), 0));
        }
        let envelopes: Vec<EventEnvelope> = self
            .runtime
            .current_envelopes(ours)
            .await
            .map_err(|error| BatchFailure::Projection(error.to_string()))?
            .into_iter()
            .filter(|envelope| info.reads(&envelope.aggregate_type, &envelope.name))
            .collect();
        if envelopes.is_empty() {
            return Ok((DocumentWrites::default(), 0));
        }
        let applied = envelopes.len() as u64;
        let snapshot = self.model.snapshot().map_err(BatchFailure::Fatal)?;
        let mut taken = instance.take().expect("the projector holds its instance");
        let (taken, answer) = tokio::task::spawn_blocking(move || {
            let answer = taken.apply(&envelopes, Arc::new(snapshot));
            (taken, answer)
        })
        .await
        .expect("a projection call does not panic the host");
        *instance = Some(taken);
        match answer {
            Ok(Ok(writes)) => Ok((writes, applied)),
            Ok(Err(message)) => Err(BatchFailure::Projection(message)),
            Err(error) => Err(BatchFailure::Projection(error.to_string())),
        }
    }

    /// Commits a batch and publishes the new checkpoint.
    fn commit(
        &mut self,
        writes: &DocumentWrites,
        next: GlobalPosition,
        applied: u64,
        skipped: u64,
    ) -> Result<(), ProjectionError> {
        let started = Instant::now();
        self.model.commit(writes, next, skipped)?;
        tracing::trace!(projection = %self.name(), %next, documents = writes.len(), micros = started.elapsed().as_micros() as u64, "batch committed");
        let end = self.runtime.store().end_position();
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
                self.commit(&DocumentWrites::default(), fault.position.next(), 0, 1)?;
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
