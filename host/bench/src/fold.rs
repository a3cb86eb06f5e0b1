//! `tally-bench fold`: rehydration speed: `Runtime::state` of one account with many
//! events on a freshly opened runtime without snapshots (cold state cache), through the
//! bank-account plugin, beside the same events read and folded natively and only read
//! (formerly part of the `runtime_bench` example).
//!
//! The account has 1,000,000 events (20,000 with `--quick`); two timed rounds (one with
//! `--quick`), each on a freshly opened runtime; the best counts.

use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use tally_runtime::tally_store::{StreamId, StreamRead};
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
    let (mut read_per_s, mut native_per_s) = (0.0, 0.0);
    for round in 0..rounds {
        progress.set(&format!(
            "fold: Runtime::state on a fresh runtime (round {} of {rounds})",
            round + 1
        ));
        let mut config = RuntimeConfig::new(&dir);
        config.snapshot_every = 0;
        config.engine.cache_dir = Some(options.compile_cache());
        let (runtime, _) = Runtime::open(config).await?;
        let started = Instant::now();
        let state = runtime.state(TYPE, "big").await?.context("the account")?;
        best = best.min(started.elapsed().as_secs_f64());
        ensure!(state.version == events, "folded {} events", state.version);
        let expected = format!("\"balance\":{}", events - 1);
        ensure!(
            state.state_json.contains(&expected),
            "state {}",
            state.state_json
        );
        if round == 0 {
            progress.set("fold: reading alone, and folding natively");
            let store = runtime.store();
            let stream = StreamId::new(TYPE, "big");
            let started = Instant::now();
            let mut version = 0u64;
            let page = store.config().max_read_count;
            loop {
                let read = store
                    .read_stream_with(&stream, StreamRead::forward(version, page), |event| {
                        event.data.len()
                    })
                    .await?;
                version += read.len() as u64;
                if read.len() < page {
                    break;
                }
            }
            ensure!(version == events, "read {version} events");
            read_per_s = events as f64 / started.elapsed().as_secs_f64();
            let started = Instant::now();
            let (version, state) = native_fold(store, &stream).await?;
            native_per_s = events as f64 / started.elapsed().as_secs_f64();
            ensure!(version == events, "folded {version} events natively");
            ensure!(
                String::from_utf8(state)?.contains(&expected),
                "native state"
            );
        }
        runtime.close().await?;
    }
    work.close()?;

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
        native_per_s.round(),
        "/s",
    );
    report.add(
        "fold_vs_native",
        "  plugin / native",
        per_s / native_per_s.max(1e-9),
        "x",
    );
    report.add(
        "fold_read_events_per_s",
        "  the same events only read (borrowed, no read-ahead)",
        read_per_s.round(),
        "/s",
    );
    report.add("fold_events", "  events of that account", events as f64, "");
    Ok(report)
}
