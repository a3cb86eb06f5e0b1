//! Group commit: the appends of one store handle are gathered by one task into batches,
//! each appended with one call of `tally_append` (one round trip, one commit). While a
//! batch is in the database, the next one gathers; a failed check fails only its own
//! append.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Pool;
use tally_store::{AppendResult, GlobalPosition};
use tokio::sync::{mpsc, oneshot};

use crate::append::{APPEND_SQL, AppendRequest, append_batch};
use crate::committed::CommittedEnd;
use crate::error::{PgStoreError, Result};

/// An append waiting for its batch.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request: AppendRequest,
    pub answer: oneshot::Sender<Result<AppendResult>>,
}

/// How big a batch may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub commands: usize,
    pub events: usize,
}

/// How the batches went: appends per batch is the group commit's gain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches sent (calls of `tally_append`).
    pub batches: u64,
    /// Appends in them.
    pub appends: u64,
}

/// The counters behind [`BatchStats`].
#[derive(Debug, Default)]
pub(crate) struct BatchCounters {
    batches: AtomicU64,
    appends: AtomicU64,
}

impl BatchCounters {
    pub fn count(&self, appends: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends as u64, Ordering::Relaxed);
    }

    pub fn get(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
        }
    }
}

/// Sends batches: one call of `tally_append` each. Counts them, and advances the
/// committed end past what they appended.
#[derive(Debug, Clone)]
pub(crate) struct Appender {
    pub pool: Pool,
    pub committed: Arc<CommittedEnd>,
    pub counters: Arc<BatchCounters>,
}

impl Appender {
    /// Appends `requests` (already validated) as one batch: the batch's error, or each
    /// request's result in order.
    pub async fn append(&self, requests: &[AppendRequest]) -> Result<Vec<Result<AppendResult>>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| PgStoreError::of_checkout(&e))?;
        let statement = client
            .prepare_cached(APPEND_SQL)
            .await
            .map_err(|e| PgStoreError::of_batch(&e))?;
        self.counters.count(requests.len());
        let results = append_batch(&**client, &statement, requests).await?;
        if let Some(end) = end_after(&results) {
            self.committed.advance(end);
        }
        Ok(results)
    }
}

/// The task that gathers queued appends into batches.
#[derive(Debug)]
pub(crate) struct Batcher {
    pub appender: Appender,
    pub limits: BatchLimits,
}

impl Batcher {
    /// Runs until every sender of `queue` is gone and the queue is empty.
    pub async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut carried = None;
        loop {
            let first = match carried.take() {
                Some(pending) => pending,
                None => match queue.recv().await {
                    Some(pending) => pending,
                    None => return,
                },
            };
            let batch = self.gather(first, &mut queue, &mut carried);
            self.commit(batch).await;
        }
    }

    /// `first` and whatever else is queued, within the limits; an append that would
    /// pass the event limit is `carried` to the next batch.
    fn gather(
        &self,
        first: Pending,
        queue: &mut mpsc::Receiver<Pending>,
        carried: &mut Option<Pending>,
    ) -> Vec<Pending> {
        let mut events = first.request.events.len();
        let mut batch = vec![first];
        while batch.len() < self.limits.commands {
            let Ok(next) = queue.try_recv() else { break };
            events += next.request.events.len();
            if events > self.limits.events {
                *carried = Some(next);
                break;
            }
            batch.push(next);
        }
        batch
    }

    /// Appends the batch and answers each of its appends.
    async fn commit(&self, batch: Vec<Pending>) {
        let (requests, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.request, pending.answer))
            .unzip();
        match self.appender.append(&requests).await {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    // The caller may have stopped waiting; its append stands.
                    let _ = answer.send(result);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, appends = requests.len(), "a batch of appends failed");
                for answer in answers {
                    let _ = answer.send(Err(copy_of_batch_error(&err)));
                }
            }
        }
    }
}

/// The end of the log after a batch: one past its last appended event, if it appended
/// any.
fn end_after(results: &[Result<AppendResult>]) -> Option<GlobalPosition> {
    results
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .filter(|result| !result.duplicate)
        .map(|result| result.last_position().next())
        .max()
}

/// The error of a whole batch, for each of its appends.
fn copy_of_batch_error(err: &PgStoreError) -> PgStoreError {
    match err {
        PgStoreError::OutcomeUnknown(reason) => PgStoreError::OutcomeUnknown(reason.clone()),
        PgStoreError::Closed => PgStoreError::Closed,
        other => PgStoreError::Unavailable(other.to_string()),
    }
}
