//! `tally-bench fold`: rehydration speed: `Runtime::state` of one account with many
//! events on a freshly opened runtime without snapshots (cold state cache), through the
//! bank-account plugin, beside the same events read and folded natively and only read
//! (formerly part of the `runtime_bench` example).
//!
//! The account has 1,000,000 events (20,000 with `--quick`); two timed rounds (one with
//! `--quick`), each on a freshly opened runtime; the best counts.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use tally_runtime::tally_store::{EventStore, StreamId, StreamRead, StreamVersion};
use tally_runtime::{Runtime, RuntimeConfig};

use super::native::native_fold;
use super::report::Report;
use super::setup::{self, TYPE};
use super::{BenchOptions, Progress};

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let (events, rounds) = if options.quick {
        (20_000u64, 1)
    } else {
        (1_000_000, 2)
    };
    let work = options.work_dir("fold")?;
    let dir = work.path().join("fold");
    let v1 = setup::component_bytes(options, "bank_account.wasm")?;
    progress.set(&format!("fold: building an account of {events} events"));
    setup::build_account(options, &dir, &v1, "big", events).await?;

    let mut best = f64::MAX;
    let mut references = References::default();
    for round in 0..rounds {
        progress.set(&format!(
            "fold: Runtime::state on a fresh runtime (round {} of {rounds})",
            round + 1
        ));
        let runtime = fresh_runtime(options, &dir).await?;
        best = best.min(time_plugin_fold(&runtime, events).await?);
        if round == 0 {
            progress.set("fold: reading alone, and folding natively");
            references = References::measure(embedded_store(&runtime)?, events).await?;
        }
        runtime.close().await?;
    }
    let mut report = report(events, best, &references);
    for other in &options.other_plugins {
        let other_events = events.min(OTHER_PLUGIN_EVENTS);
        let per_s = other_plugin_fold(options, progress, work.path(), other, other_events).await?;
        report.add(
            &format!("fold_{}_events_per_s", other.name),
            &format!(
                "  rehydrate one account of {other_events} events through the {} build",
                other.name
            ),
            per_s.round(),
            "/s",
        );
    }
    work.close()?;
    Ok(report)
}

/// Events of the account a `--plugin` build folds: an interpreter folds tens to
/// hundreds of thousands of events a second, so fewer than the Rust plugin's.
const OTHER_PLUGIN_EVENTS: u64 = 100_000;

/// Events per second of `other`'s fold of an account of `events` events, built for it
/// in a directory of its own under `work`.
async fn other_plugin_fold(
    options: &BenchOptions,
    progress: &Progress,
    work: &Path,
    other: &crate::OtherPlugin,
    events: u64,
) -> Result<f64> {
    let dir = work.join(format!("fold-{}", other.name));
    progress.set(&format!(
        "fold: building an account of {events} events for the {} build",
        other.name
    ));
    setup::build_account(options, &dir, &other.bytes()?, "big", events).await?;
    progress.set(&format!(
        "fold: Runtime::state through the {} build",
        other.name
    ));
    let runtime = fresh_runtime(options, &dir).await?;
    let seconds = time_plugin_fold(&runtime, events).await?;
    runtime.close().await?;
    Ok(events as f64 / seconds)
}

/// A runtime on the data in `dir` without snapshots: a cold state cache.
async fn fresh_runtime(options: &BenchOptions, dir: &Path) -> Result<Runtime> {
    let mut config = RuntimeConfig::new(dir);
    config.snapshot_every = 0;
    config.engine.cache_dir = Some(options.compile_cache());
    let (runtime, _) = Runtime::open(config).await?;
    Ok(runtime)
}

/// The big account's state, as every fold of its deposits must end.
fn expected_balance(events: u64) -> String {
    format!("\"balance\":{}", events - 1)
}

/// Seconds `Runtime::state` takes to fold the big account of `events` events through
/// the plugin; checks the state it gives.
async fn time_plugin_fold(runtime: &Runtime, events: u64) -> Result<f64> {
    let started = Instant::now();
    let state = runtime.state(TYPE, "big").await?.context("the account")?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        state.version == StreamVersion::new(events),
        "folded {} events",
        state.version
    );
    ensure!(
        state.state_json.contains(&expected_balance(events)),
        "state {}",
        state.state_json
    );
    Ok(seconds)
}

/// The references beside the plugin's fold: the big account's events only read, and
/// read and folded natively; events per second.
#[derive(Debug, Default)]
struct References {
    read_per_s: f64,
    native_per_s: f64,
}

/// The embedded store under `runtime`: the references read it directly.
fn embedded_store(runtime: &Runtime) -> Result<&EventStore> {
    runtime
        .store()
        .embedded()
        .ok_or_else(|| anyhow::anyhow!("the fold benchmark runs on the embedded store"))
}

impl References {
    /// Reads, then natively folds, the big account of `events` events in `store`.
    async fn measure(store: &EventStore, events: u64) -> Result<References> {
        let stream = StreamId::new(TYPE, "big");
        let read_per_s = time_read(store, &stream, events).await?;
        let started = Instant::now();
        let (version, state) = native_fold(store, &stream).await?;
        let native_per_s = events as f64 / started.elapsed().as_secs_f64();
        ensure!(version.get() == events, "folded {version} events natively");
        ensure!(
            String::from_utf8(state)?.contains(&expected_balance(events)),
            "native state"
        );
        Ok(References {
            read_per_s,
            native_per_s,
        })
    }
}

/// Events per second of reading the whole `stream` (borrowed, page by page).
async fn time_read(store: &EventStore, stream: &StreamId, events: u64) -> Result<f64> {
    let started = Instant::now();
    let mut version = StreamVersion::ZERO;
    let page = store.config().max_read_count;
    loop {
        let read = store
            .read_stream_with(stream, StreamRead::forward(version.next(), page), |event| {
                event.data.len()
            })
            .await?;
        version += read.len() as u64;
        if read.len() < page {
            break;
        }
    }
    ensure!(version.get() == events, "read {version} events");
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// The plugin's fold (the best of the rounds, `best` seconds) beside the references.
fn report(events: u64, best: f64, references: &References) -> Report {
    let per_s = events as f64 / best;
    let mut report = Report::default();
    report.add(
        "fold_events_per_s",
        &format!("rehydrate one account of {events} events through the plugin"),
        per_s.round(),
        "/s",
    );
    report.add("fold_ms", "  time of that fold", best * 1e3, "ms");
    report.add(
        "fold_native_events_per_s",
        "  the same events read and folded natively",
        references.native_per_s.round(),
        "/s",
    );
    report.add(
        "fold_vs_native",
        "  plugin / native",
        per_s / references.native_per_s.max(1e-9),
        "x",
    );
    report.add(
        "fold_read_events_per_s",
        "  the same events only read (borrowed, no read-ahead)",
        references.read_per_s.round(),
        "/s",
    );
    report.add("fold_events", "  events of that account", events as f64, "");
    report
}
