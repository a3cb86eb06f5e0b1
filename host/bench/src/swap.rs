//! `tally-bench swap`: hot swap of bank-account v1 to v2 (formerly part of the
//! `runtime_bench` example).
//!
//! | figure | how |
//! | --- | --- |
//! | `swap_activate_ms` | `activate` of v2 over v1 (compiled and installed before: a cached compile) with no load; the verification folds all 10,000 accounts |
//! | `rollback_ms` | `rollback` to v1 right after |
//! | `swap_pause_ms` / `steady_max_ms` | the longest command latency of 64 tasks sending deposits, in a window where v2 is activated in the middle / in an equal window without a swap (p99 beside each) |
//! | `swap_fsync_max_ms` / `steady_fsync_max_ms` | the longest `fdatasync` of the log that ended in each window: a command cannot be answered before the fsync that makes it durable, so a pause this long is the disk's |

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use tally_runtime::tally_store::tally_wal::WalObserver;
use tally_runtime::{
    ActivateOptions, ActivationReport, ExecuteOptions, InstallOptions, Runtime, RuntimeConfig,
};

use super::report::Report;
use super::setup::{self, TYPE, account_id, deposit, next_account};
use super::{ACCOUNTS, BenchOptions, Progress};

/// Tasks sending deposits around the swap.
const SWAP_WRITERS: u64 = 64;

/// One command's latency, by when it started (from the run's start).
#[derive(Clone, Copy)]
struct Sample {
    started: Duration,
    latency: Duration,
}

/// The log's fsyncs: when each ended and how long it took.
#[derive(Debug, Default)]
struct Fsyncs {
    ended: Mutex<Vec<(Instant, Duration)>>,
}

impl Fsyncs {
    /// The longest fsync that ended in `[from, to)` (times from `origin`), in ms.
    fn longest_ms(&self, origin: Instant, (from, to): (Duration, Duration)) -> f64 {
        let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        ended
            .iter()
            .filter(|(at, _)| {
                let at = at.saturating_duration_since(origin);
                at >= from && at < to
            })
            .map(|(_, took)| took.as_secs_f64() * 1e3)
            .fold(0.0, f64::max)
    }
}

impl WalObserver for Fsyncs {
    fn group_written(&self, _records: u32, _bytes: u64) {}

    fn synced(&self, duration: Duration, _bytes: u64) {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        ended.push((Instant::now(), duration));
    }
}

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let measure = options.case_window();
    let work = options.work_dir("swap")?;
    let v1 = setup::component_bytes(options, "bank_account.wasm")?;
    let v2 = setup::component_bytes(options, "bank_account_v2.wasm")?;
    let mut report = Report::default();

    let fsyncs = Arc::new(Fsyncs::default());
    let runtime = open_with_v2_installed(options, work.path(), &v1, v2, &fsyncs, progress).await?;
    let activate_ms = swap_without_load(&runtime, &mut report, progress).await?;
    let windows = swap_under_load(&runtime, measure, activate_ms, progress).await?;
    runtime.close().await?;
    drop(runtime);
    work.close()?;

    add_window_figures(&mut report, &windows, &fsyncs);
    report.note(windows.slow_commands_note());
    Ok(report)
}

/// A runtime in `dir` with v1 active over [`ACCOUNTS`] opened accounts (after a little
/// load), v2 installed beside it, and the log's fsyncs reported to `fsyncs`.
async fn open_with_v2_installed(
    options: &BenchOptions,
    dir: &Path,
    v1: &[u8],
    v2: Vec<u8>,
    fsyncs: &Arc<Fsyncs>,
    progress: &Progress,
) -> Result<Runtime> {
    progress.set(&format!("swap: opening {ACCOUNTS} accounts, a little load"));
    let mut config = RuntimeConfig::new(dir.join("swap"));
    config.store.wal.observer = Some(fsyncs.clone());
    let measure = options.case_window();
    let (_, runtime) = setup::wasm_commands(options, config, v1, SWAP_WRITERS, measure / 4).await?;
    progress.set("swap: installing v2 (compiled, not active)");
    runtime
        .install_plugin(v2, InstallOptions::default())
        .await?;
    Ok(runtime)
}

/// Activates v2 with no load, then rolls back to v1; reports both. Returns how long
/// the activation took, in ms.
async fn swap_without_load(
    runtime: &Runtime,
    report: &mut Report,
    progress: &Progress,
) -> Result<f64> {
    progress.set("swap: activating v2 with no load");
    let started = Instant::now();
    let activation = runtime
        .activate(TYPE, "2.0.0", ActivateOptions::default())
        .await?;
    let activate_ms = started.elapsed().as_secs_f64() * 1e3;
    add_activation_figures(report, &activation, activate_ms);
    progress.set("swap: rolling back to v1");
    let started = Instant::now();
    runtime.rollback(TYPE, ActivateOptions::default()).await?;
    report.add(
        "rollback_ms",
        "roll back to v1",
        started.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    Ok(activate_ms)
}

/// The unloaded activation: its time and what its verification covered.
fn add_activation_figures(report: &mut Report, activation: &ActivationReport, activate_ms: f64) {
    report.add(
        "swap_activate_ms",
        &format!("activate v2 (cached compile, no load, verifies {ACCOUNTS} accounts)"),
        activate_ms,
        "ms",
    );
    report.add(
        "swap_verified_streams",
        "  streams verified",
        activation.activation.verified_streams.unwrap_or(0) as f64,
        "",
    );
    report.add(
        "swap_verified_events",
        "  events verified",
        activation.verified_events as f64,
        "",
    );
    report.add(
        "swap_verify_ms",
        "  verification",
        activation.verify_ms as f64,
        "ms",
    );
    report.add(
        "verify_ms_per_million_events",
        "  verification per million events",
        activation.verify_ms as f64 * 1e6 / activation.verified_events.max(1) as f64,
        "ms",
    );
}

/// The two loaded windows: every command's latency, and when each window and the
/// activation in the second began and ended (times from `origin`).
struct LoadedWindows {
    origin: Instant,
    samples: Vec<Sample>,
    steady: (Duration, Duration),
    swap: (Duration, Duration),
    activation: (Duration, Duration),
}

/// Max, p99 and count of the command latencies of one window.
struct WindowLatency {
    max_ms: f64,
    p99_ms: f64,
    commands: u64,
}

impl LoadedWindows {
    /// The commands that started in `[from, to)`.
    fn started_in(&self, (from, to): (Duration, Duration)) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |sample| sample.started >= from && sample.started < to)
    }

    /// The latencies of the commands that started in `window`.
    fn latency(&self, window: (Duration, Duration)) -> WindowLatency {
        let mut latencies: Vec<Duration> = self
            .started_in(window)
            .map(|sample| sample.latency)
            .collect();
        latencies.sort_unstable();
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        WindowLatency {
            max_ms: latencies.last().copied().map_or(0.0, ms),
            p99_ms: latencies
                .get(latencies.len() * 99 / 100)
                .copied()
                .map_or(0.0, ms),
            commands: latencies.len() as u64,
        }
    }

    /// When the activation ran and how the slow commands of the swap window fell.
    fn slow_commands_note(&self) -> String {
        let swap_start = self.swap.0;
        let slow = self
            .started_in(self.swap)
            .filter(|sample| sample.latency > Duration::from_millis(50))
            .count();
        let slowest_start = self
            .started_in(self.swap)
            .max_by_key(|sample| sample.latency)
            .map_or(Duration::ZERO, |sample| sample.started - swap_start);
        format!(
            "swap: activation {:.0}..{:.0} ms into the swap window; {slow} commands over 50 ms in \
             it; the slowest started {:.0} ms into it",
            (self.activation.0 - swap_start).as_secs_f64() * 1e3,
            (self.activation.1 - swap_start).as_secs_f64() * 1e3,
            slowest_start.as_secs_f64() * 1e3,
        )
    }
}

/// 64 tasks deposit continuously, latencies recorded: after a warm-up, a steady
/// window, then a window with v2 activated after half of `measure`. Both last
/// `measure` plus three times the unloaded activation (`activate_ms`: activation under
/// load takes longer); the swap window is longer if it has to be.
async fn swap_under_load(
    runtime: &Runtime,
    measure: Duration,
    activate_ms: f64,
    progress: &Progress,
) -> Result<LoadedWindows> {
    progress.set(&format!(
        "swap: {SWAP_WRITERS} tasks; a steady window, then one with v2 activated in the middle"
    ));
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..SWAP_WRITERS)
        .map(|task| tokio::spawn(depositor(runtime.clone(), task, origin, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = measure + Duration::from_secs_f64(3.0 * activate_ms / 1e3);
    let steady_start = origin.elapsed();
    tokio::time::sleep(window).await;
    let swap_start = origin.elapsed();
    tokio::time::sleep(measure / 2).await;
    let activate_start = origin.elapsed();
    runtime
        .activate(TYPE, "2.0.0", ActivateOptions::default())
        .await?;
    let activate_end = origin.elapsed();
    let rest = (swap_start + window).saturating_sub(origin.elapsed());
    tokio::time::sleep(rest.max(measure / 4)).await;
    let swap_end = origin.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for handle in handles {
        samples.extend(handle.await??);
    }
    Ok(LoadedWindows {
        origin,
        samples,
        steady: (steady_start, swap_start),
        swap: (swap_start, swap_end),
        activation: (activate_start, activate_end),
    })
}

/// One depositing task: deposits to random accounts until `stop`, each command's
/// latency recorded by when it started (from `origin`).
async fn depositor(
    runtime: Runtime,
    task: u64,
    origin: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Sample>> {
    let mut seed = task + 1_000;
    let mut samples = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        let id = account_id(next_account(&mut seed));
        let started = Instant::now();
        runtime
            .execute(TYPE, &id, deposit(), ExecuteOptions::default())
            .await?;
        samples.push(Sample {
            started: started - origin,
            latency: started.elapsed(),
        });
    }
    Ok(samples)
}

/// The loaded windows' figures: the activation under load, and each window's
/// latencies, longest fsync, commands and length.
fn add_window_figures(report: &mut Report, windows: &LoadedWindows, fsyncs: &Fsyncs) {
    let steady = windows.latency(windows.steady);
    let swap = windows.latency(windows.swap);
    let length = |(from, to): (Duration, Duration)| (to - from).as_secs_f64();
    report.add(
        "swap_under_load_activate_ms",
        &format!("activate v2 under load ({SWAP_WRITERS} tasks depositing)"),
        (windows.activation.1 - windows.activation.0).as_secs_f64() * 1e3,
        "ms",
    );
    report.add(
        "swap_pause_ms",
        "  max command latency, window with the swap",
        swap.max_ms,
        "ms",
    );
    report.add(
        "swap_p99_ms",
        "  p99 latency, window with the swap",
        swap.p99_ms,
        "ms",
    );
    report.add(
        "swap_fsync_max_ms",
        "  longest fsync of the log, window with the swap",
        fsyncs.longest_ms(windows.origin, windows.swap),
        "ms",
    );
    report.add(
        "steady_max_ms",
        "  max command latency, window without",
        steady.max_ms,
        "ms",
    );
    report.add(
        "steady_fsync_max_ms",
        "  longest fsync of the log, window without",
        fsyncs.longest_ms(windows.origin, windows.steady),
        "ms",
    );
    report.add(
        "steady_p99_ms",
        "  p99 latency, window without",
        steady.p99_ms,
        "ms",
    );
    report.add(
        "swap_window_commands",
        "  commands in the swap window",
        swap.commands as f64,
        "",
    );
    report.add(
        "steady_window_commands",
        "  commands in the steady window",
        steady.commands as f64,
        "",
    );
    report.add(
        "swap_window_s",
        "  length of the swap window",
        length(windows.swap),
        "s",
    );
    report.add(
        "steady_window_s",
        "  length of the steady window",
        length(windows.steady),
        "s",
    );
}
