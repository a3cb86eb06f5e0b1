//! A closed-loop load generator: N workers, each sending its next request as soon as
//! the previous one is answered, for a fixed time; latencies in a histogram.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What a load run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests answered successfully.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Latency of successful requests, microseconds.
    pub latency_us: Histogram<u64>,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadResult {
    /// An error naming `what` and the first failure, unless every request succeeded.
    pub fn ensure_no_errors(&self, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.errors == 0, "{what} failed: {:?}", self.first_error);
        Ok(())
    }

    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in milliseconds (`quantile` in 0..=1).
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The longest latency in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Which request a worker sends next, if any.
pub enum Schedule {
    /// Every worker counts its own requests until the deadline.
    Until(Instant),
    /// Request indices `0..total` handed out once each.
    Count {
        /// Requests in all.
        total: u64,
        /// The next index to hand out.
        next: AtomicU64,
    },
}

impl Schedule {
    /// Requests for `duration` from now: each worker's `n`-th request has index `n`.
    pub fn for_duration(duration: Duration) -> Schedule {
        Schedule::Until(Instant::now() + duration)
    }

    /// Exactly `total` requests, index `i` for each `i` in `0..total`, each sent once.
    pub fn count(total: u64) -> Schedule {
        Schedule::Count {
            total,
            next: AtomicU64::new(0),
        }
    }

    /// The index of a worker's next request (`n`: requests it sent so far).
    fn next(&self, n: u64) -> Option<u64> {
        match self {
            Schedule::Until(deadline) => (Instant::now() < *deadline).then_some(n),
            Schedule::Count { total, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                (index < *total).then_some(index)
            }
        }
    }
}

/// Runs `workers` loops as `schedule` says, as fast as requests are answered. Each
/// worker gets its own state from `setup` (a connection, say) and calls
/// `request(state, worker, index)` for each request, which hands the state back with
/// the outcome; the workers' tallies are merged.
pub async fn run<S, Setup, SetupFut, Request, RequestFut>(
    workers: usize,
    schedule: Schedule,
    setup: Setup,
    request: Request,
) -> anyhow::Result<LoadResult>
where
    S: Send + 'static,
    Setup: Fn(usize) -> SetupFut,
    SetupFut: Future<Output = anyhow::Result<S>>,
    Request: Fn(S, usize, u64) -> RequestFut + Clone + Send + Sync + 'static,
    RequestFut: Future<Output = (S, Result<(), String>)> + Send,
{
    let mut states = Vec::with_capacity(workers);
    for worker in 0..workers {
        states.push(setup(worker).await?);
    }
    let schedule = Arc::new(schedule);
    let started = Instant::now();
    let tasks: Vec<_> = states
        .into_iter()
        .enumerate()
        .map(|(worker, state)| {
            let (request, schedule) = (request.clone(), schedule.clone());
            tokio::spawn(async move {
                let mut tally = LoadResult::empty();
                let mut state = Some(state);
                let mut sent_so_far = 0;
                while let Some(index) = schedule.next(sent_so_far) {
                    let sent = Instant::now();
                    let (back, outcome) =
                        request(state.take().expect("state"), worker, index).await;
                    state = Some(back);
                    tally.record(outcome, sent.elapsed());
                    sent_so_far += 1;
                }
                tally
            })
        })
        .collect();
    let mut result = LoadResult::empty();
    for task in tasks {
        result.merge(task.await?)?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

impl LoadResult {
    fn empty() -> LoadResult {
        LoadResult {
            ok: 0,
            errors: 0,
            first_error: None,
            latency_us: histogram(),
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, outcome: Result<(), String>, latency: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let micros = latency.as_micros() as u64;
                self.latency_us.saturating_record(micros.max(1));
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    fn merge(&mut self, other: LoadResult) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_us.add(other.latency_us)?;
        Ok(())
    }
}
