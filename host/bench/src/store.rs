//! `tally-bench store`: how fast `tally-store` appends, reads a stream and opens, beside
//! the raw WAL measured in the same run on the same disk (formerly the `store_bench`
//! example).
//!
//! | figure | how |
//! | --- | --- |
//! | `append_256_per_s` | 256 tasks append single events to random streams of 10,000 with `FsyncPolicy::Always`; durable appends per second |
//! | `append_256_commit_batch_1_per_s` | the same with `StoreConfig::max_commit_batch` 1: the committer takes its locks once per append, as before commit 32ea1ba (docs/decisions/003-batching-committer.md) |
//! | `wal_always_256_per_s` | 256 tasks append records of the same encoded size straight to a `tally-wal` log with `Always` |
//! | `read_stream_10k_ms` | reading a 10,000-event stream whose events are spread through a log of 1,000,000 events (100,000 with `--quick`; then the stream has 1,000 events); the best of five |
//! | `open_1m_ms` | opening that store (warm cache), in a fresh process (`tally-bench store --measure-open DIR`) |
//! | `rss_1m_mib` | the resident memory of that process after the open |

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tally_runtime::tally_store::tally_wal::{FsyncPolicy, Record, Wal, WalConfig};
use tally_runtime::tally_store::{
    EventStore, GlobalPosition, StoreConfig, StreamId, StreamRead, StreamVersion,
};

use super::report::Report;
use super::{BenchOptions, Progress, setup};

/// Streams of the append workload.
const STREAMS: u64 = 10_000;
/// Concurrent appenders.
const WRITERS: u64 = 256;

/// Events of the large log and of its spread-out stream.
fn sizes(options: &BenchOptions) -> (u64, u64) {
    if options.quick {
        (100_000, 1_000)
    } else {
        (1_000_000, 10_000)
    }
}

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let measure = options.case_window();
    let (log_events, hot_events) = sizes(options);
    let work = options.work_dir("store")?;
    let appends = measure_appends(work.path(), measure, progress).await?;
    let big = measure_big_store(&work.path().join("big"), log_events, hot_events, progress).await?;
    work.close().context("removing the working directory")?;

    let mut report = Report::default();
    add_append_figures(&mut report, &appends);
    add_big_store_figures(&mut report, &big, log_events, hot_events);
    Ok(report)
}

/// Durable appends per second of 256 writers.
struct AppendRates {
    /// Single events to the store.
    store: f64,
    /// The same with `max_commit_batch` 1.
    store_unbatched: f64,
    /// Records of the same size straight to a WAL.
    wal: f64,
}

/// The append cases, one after the other, each in its own directory under `dir`,
/// removed after it.
async fn measure_appends(
    dir: &Path,
    measure: Duration,
    progress: &Progress,
) -> Result<AppendRates> {
    progress.set(&format!(
        "store: 256 writers over {STREAMS} streams, Always"
    ));
    let default_batch = StoreConfig::new(dir).max_commit_batch;
    let (store, record_size) = store_appends(&dir.join("append"), measure, default_batch).await?;
    std::fs::remove_dir_all(dir.join("append"))?;
    // Beside it, the committer as before commit 32ea1ba: the index and sequencer locks
    // taken once per append.
    progress.set(&format!(
        "store: 256 writers over {STREAMS} streams, Always, max_commit_batch 1"
    ));
    let (store_unbatched, _) = store_appends(&dir.join("append-1"), measure, 1).await?;
    std::fs::remove_dir_all(dir.join("append-1"))?;
    progress.set(&format!(
        "store: wal, 256 writers, records of {record_size} bytes, Always"
    ));
    let wal = wal_appends(&dir.join("wal"), measure, record_size).await?;
    std::fs::remove_dir_all(dir.join("wal"))?;
    Ok(AppendRates {
        store,
        store_unbatched,
        wal,
    })
}

/// What the large store gave: reading its spread-out stream, and opening it.
struct BigStoreFigures {
    read_ms: f64,
    open_ms: f64,
    /// Resident memory of the process that opened it.
    rss_kib: u64,
}

/// Builds a store of `log_events` events in `dir` with a stream of `hot_events` spread
/// through it, times reading that stream, then opening the store in a fresh process.
async fn measure_big_store(
    dir: &Path,
    log_events: u64,
    hot_events: u64,
    progress: &Progress,
) -> Result<BigStoreFigures> {
    progress.set(&format!("store: building a store of {log_events} events"));
    let hot = build_log(dir, log_events, hot_events).await?;
    progress.set(&format!("store: reading a stream of {hot_events} events"));
    let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
    let read_ms = time_stream_read(&store, &hot, hot_events).await?;
    store.close().await?;

    progress.set("store: opening the store in a fresh process");
    measure_open_in_child(dir).await?; // warm the cache
    let (open_ms, rss_kib) = measure_open_in_child(dir).await?;
    Ok(BigStoreFigures {
        read_ms,
        open_ms,
        rss_kib,
    })
}

/// The store's append rates beside the WAL's.
fn add_append_figures(report: &mut Report, appends: &AppendRates) {
    report.add(
        "append_256_per_s",
        "store: single-event appends, 256 writers, 10,000 streams",
        appends.store.round(),
        "/s",
    );
    report.add(
        "append_256_commit_batch_1_per_s",
        "  committer locks per append (max_commit_batch 1, as before 32ea1ba)",
        appends.store_unbatched.round(),
        "/s",
    );
    report.add(
        "wal_always_256_per_s",
        "  wal: same record size, Always, 256 writers",
        appends.wal.round(),
        "/s",
    );
    report.add(
        "append_vs_wal",
        "  store / wal",
        appends.store / appends.wal.max(1e-9),
        "x",
    );
}

/// The large store's read and open figures.
fn add_big_store_figures(
    report: &mut Report,
    big: &BigStoreFigures,
    log_events: u64,
    hot_events: u64,
) {
    report.add(
        "read_stream_10k_ms",
        &format!("read a {hot_events}-event stream spread through {log_events}"),
        big.read_ms,
        "ms",
    );
    report.add(
        "read_stream_events",
        "  events of that stream",
        hot_events as f64,
        "",
    );
    report.add(
        "open_1m_ms",
        &format!("open a store of {log_events} events (fresh process)"),
        big.open_ms,
        "ms",
    );
    report.add(
        "rss_1m_mib",
        "  resident memory after the open",
        big.rss_kib as f64 / 1024.0,
        "MiB",
    );
    report.add(
        "rss_bytes_per_event",
        "  resident bytes per event",
        big.rss_kib as f64 * 1024.0 / log_events as f64,
        "B",
    );
    report.add(
        "log_events",
        "  events of that store",
        log_events as f64,
        "",
    );
}

/// `tally-bench store --build-only DIR`: builds the large store in DIR (for profiling).
pub async fn build_only(options: &BenchOptions, dir: &Path) -> Result<()> {
    let (log_events, hot_events) = sizes(options);
    build_log(dir, log_events, hot_events).await?;
    println!("built {log_events} events in {}", dir.display());
    Ok(())
}

/// `tally-bench store --read-only DIR`: times reading the spread-out stream of the store
/// built by `--build-only`.
pub async fn read_only(options: &BenchOptions, dir: &Path) -> Result<()> {
    let (_, hot_events) = sizes(options);
    let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
    let ms = time_stream_read(&store, &StreamId::new("account", "hot"), hot_events).await?;
    store.close().await?;
    println!("read_stream ({hot_events} events) ms: {ms:.2}");
    Ok(())
}

/// `tally-bench store --measure-open DIR` (run in a child process): opens the store in
/// DIR, then prints `open_ms rss_kib`.
pub async fn measure_open(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let (store, report) = EventStore::open(StoreConfig::new(dir)).await?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("VmRSS")?
        .parse()?;
    eprintln!(
        "opened {} events, {} streams",
        report.events, report.streams
    );
    println!("{open_ms:.3} {rss_kib}");
    drop(store);
    Ok(())
}

/// Runs `tally-bench store --measure-open DIR` with this executable; (open ms, RSS KiB).
async fn measure_open_in_child(dir: &Path) -> Result<(f64, u64)> {
    let exe = std::env::current_exe().context("finding the tally-bench executable")?;
    let dir = dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["store", "--measure-open"])
            .arg(dir)
            .output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "open in a child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut fields = text.split_whitespace();
    let open_ms = fields.next().context("open_ms")?.parse()?;
    let rss_kib = fields.next().context("rss")?.parse()?;
    Ok((open_ms, rss_kib))
}

/// The best of five timed reads of the whole `stream` (after one untimed read).
async fn time_stream_read(store: &EventStore, stream: &StreamId, events: u64) -> Result<f64> {
    let whole = StreamRead::forward(StreamVersion::FIRST, events as usize);
    store.read_stream(stream, whole).await?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let read = store.read_stream(stream, whole).await?;
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(read.len() as u64 == events, "read {} events", read.len());
    }
    Ok(best)
}

/// Durable single-event appends per second from 256 tasks; also returns the record size.
async fn store_appends(
    dir: &Path,
    measure: Duration,
    max_commit_batch: usize,
) -> Result<(f64, usize)> {
    let (store, _) = EventStore::open(StoreConfig {
        max_commit_batch,
        ..StoreConfig::new(dir)
    })
    .await?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (store, count, stop) = (store.clone(), count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = writer;
            while !stop.load(Ordering::Relaxed) {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let stream = StreamId::new("account", format!("acc-{}", (n >> 33) % STREAMS));
                setup::append_deposits(&store, &stream, 1, r#"{"amount":100}"#).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let rate = setup::measure_rate(&count, &stop, measure).await.per_s;
    for task in tasks {
        task.await??;
    }
    // The size of one such event's record, for the WAL comparison.
    let sample = store.read_all(GlobalPosition::START, 1).await?;
    let event = &sample[0];
    let record_size = 80 + event.stream.aggregate_id.len() + event.name.len() + event.data.len();
    store.close().await?;
    Ok((rate, record_size))
}

/// Durable appends per second of 256 tasks appending `record_size`-byte records to a WAL.
async fn wal_appends(dir: &Path, measure: Duration, record_size: usize) -> Result<f64> {
    let (wal, _) = Wal::open(WalConfig {
        fsync_policy: FsyncPolicy::Always,
        ..WalConfig::new(dir)
    })
    .await?;
    let record = Record::new(vec![7u8; record_size]);
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (wal, count, stop, record) = (wal.clone(), count.clone(), stop.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                wal.append(&record).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let rate = setup::measure_rate(&count, &stop, measure).await.per_s;
    for task in tasks {
        task.await??;
    }
    wal.close().await?;
    Ok(rate)
}

/// Writes `events` events (fast, `FsyncPolicy::Os`) with `hot` of them in one stream
/// spread evenly through the log; returns that stream.
async fn build_log(dir: &Path, events: u64, hot: u64) -> Result<StreamId> {
    let (store, _) = EventStore::open(setup::building(dir)).await?;
    let hot_stream = StreamId::new("account", "hot");
    let per_hot = events / hot;
    let tasks = 8u64;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let hot_stream = hot_stream.clone();
        handles.push(tokio::spawn(async move {
            let mut round = task;
            while round < hot {
                setup::append_deposits(&store, &hot_stream, 1, r#"{"amount":1}"#).await?;
                // The other events of this stretch go to ordinary streams, 33 per append.
                let mut rest = per_hot - 1;
                let mut n = round * 31;
                while rest > 0 {
                    let count = rest.min(33);
                    let stream = StreamId::new("account", format!("acc-{}", n % STREAMS));
                    setup::append_deposits(&store, &stream, count, r#"{"amount":100}"#).await?;
                    rest -= count;
                    n += 1;
                }
                round += tasks;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    anyhow::ensure!(
        store.end_position().get() == events,
        "built {} events",
        store.end_position()
    );
    store.close().await?;
    Ok(hot_stream)
}
