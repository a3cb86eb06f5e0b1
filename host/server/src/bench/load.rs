//! A closed-loop load generator: N workers, each sending its next request as soon as
//! the previous one is answered, for a fixed time; latencies in a histogram.

use std::future::Future;
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

/// Runs `workers` loops for `duration`. Each worker gets its own state from `setup`
/// (a connection, say) and calls `request(state, worker, n)` for its n-th request,
/// which hands the state back with the outcome.
pub async fn run<S, Setup, SetupFut, Request, RequestFut>(
    workers: usize,
    duration: Duration,
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
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = states
        .into_iter()
        .enumerate()
        .map(|(worker, state)| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latency = histogram();
                let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
                let mut n = 0;
                let mut state = Some(state);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let (back, outcome) = request(state.take().expect("state"), worker, n).await;
                    state = Some(back);
                    match outcome {
                        Ok(()) => {
                            ok += 1;
                            let micros = sent.elapsed().as_micros() as u64;
                            latency.saturating_record(micros.max(1));
                        }
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                    n += 1;
                }
                (ok, errors, first_error, latency)
            })
        })
        .collect();
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        latency_us: histogram(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (ok, errors, first_error, latency) = task.await?;
        result.ok += ok;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        result.latency_us.add(latency)?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

/// Sends exactly `total` requests from `workers` workers (request `i` for each `i`
/// in `0..total`, each sent once), as fast as they are answered; `request(state, i)`
/// hands the worker's state back with the outcome.
pub async fn run_count<S, Setup, SetupFut, Request, RequestFut>(
    workers: usize,
    total: u64,
    setup: Setup,
    request: Request,
) -> anyhow::Result<LoadResult>
where
    S: Send + 'static,
    Setup: Fn(usize) -> SetupFut,
    SetupFut: Future<Output = anyhow::Result<S>>,
    Request: Fn(S, u64) -> RequestFut + Clone + Send + Sync + 'static,
    RequestFut: Future<Output = (S, Result<(), String>)> + Send,
{
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut states = Vec::with_capacity(workers);
    for worker in 0..workers {
        states.push(setup(worker).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = states
        .into_iter()
        .map(|state| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
                let mut state = Some(state);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let sent = Instant::now();
                    let (back, outcome) = request(state.take().expect("state"), i).await;
                    state = Some(back);
                    match outcome {
                        Ok(()) => {
                            ok += 1;
                            latency.saturating_record((sent.elapsed().as_micros() as u64).max(1));
                        }
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                }
                (ok, errors, first_error, latency)
            })
        })
        .collect();
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        latency_us: histogram(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (ok, errors, first_error, latency) = task.await?;
        result.ok += ok;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        result.latency_us.add(latency)?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}
