//! `store_bench`: how fast `tally-store` appends, reads a stream and opens, beside the raw
//! WAL measured in the same run on the same disk.
//!
//! ```text
//! cargo run --release -p tally-store --example store_bench -- --json
//! cargo run --release -p tally-store --example store_bench -- --quick
//! ```
//!
//! | figure | how |
//! | --- | --- |
//! | `append_256_per_s` | 256 tasks append single events to random streams of 10,000 with `FsyncPolicy::Always`; durable appends per second |
//! | `wal_always_256_per_s` | 256 tasks append records of the same encoded size straight to a `tally-wal` log with `Always` |
//! | `read_stream_10k_ms` | reading a 10,000-event stream whose events are spread through a log of 1,000,000 events (100,000 with `--quick`; then the stream has 1,000 events) |
//! | `open_1m_ms` | opening that store (warm cache), in a fresh process |
//! | `rss_1m_mib` | the resident memory of that process after the open |
//!
//! Progress goes to stderr; stdout gets a table and, with `--json`, one JSON line last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use serde::Serialize;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, StreamRead,
};
use tally_wal::{FsyncPolicy, Record, Wal, WalConfig};

/// Measures tally-store beside tally-wal.
#[derive(Debug, Parser)]
#[command(name = "store_bench")]
struct Args {
    /// After the table, print one JSON line with every figure.
    #[arg(long)]
    json: bool,
    /// A short run (1 s per throughput case, a 100,000-event log).
    #[arg(long)]
    quick: bool,
    /// Directory in which the working directory is made (default: the target directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: open the store in DIR, then print `open_ms rss_kib` (run in a child).
    #[arg(long, hide = true)]
    measure_open: Option<PathBuf>,
    /// Only build the large store in DIR and exit (for profiling the open).
    #[arg(long)]
    build_only: Option<PathBuf>,
    /// Only time reading the spread-out stream of the store in DIR (built by --build-only).
    #[arg(long)]
    read_only: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    append_256_per_s: u64,
    wal_always_256_per_s: u64,
    append_vs_wal: f64,
    read_stream_10k_ms: f64,
    read_stream_events: u64,
    open_1m_ms: u64,
    rss_1m_mib: f64,
    log_events: u64,
    rss_bytes_per_event: f64,
    measure_s: f64,
}

const STREAMS: u64 = 10_000;
const WRITERS: u64 = 256;

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(dir) = &args.measure_open {
        return runtime.block_on(measure_open(dir));
    }
    let (log_events, hot_events) = if args.quick {
        (100_000, 1_000)
    } else {
        (1_000_000, 10_000)
    };
    if let Some(dir) = &args.build_only {
        runtime.block_on(build_log(dir, log_events, hot_events))?;
        return Ok(());
    }
    if let Some(dir) = &args.read_only {
        let ms = runtime.block_on(async {
            let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
            let ms = time_stream_read(&store, &StreamId::new("account", "hot"), hot_events).await?;
            store.close().await?;
            Ok::<_, anyhow::Error>(ms)
        })?;
        println!("read_stream ({hot_events} events) ms: {ms:.2}");
        return Ok(());
    }
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&base)?;
    let work = tempfile::tempdir_in(&base).context("making the working directory")?;
    let measure = if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    let (log_events, hot_events) = if args.quick {
        (100_000, 1_000)
    } else {
        (1_000_000, 10_000)
    };

    let report = runtime.block_on(async {
        eprintln!("store: 256 writers over {STREAMS} streams, Always ...");
        let (append, record_size) = store_appends(&work.path().join("append"), measure).await?;
        eprintln!("wal: 256 writers, records of {record_size} bytes, Always ...");
        let wal = wal_appends(&work.path().join("wal"), measure, record_size).await?;
        eprintln!("building a store of {log_events} events ...");
        let big = work.path().join("big");
        let hot = build_log(&big, log_events, hot_events).await?;
        let (store, _) = EventStore::open(StoreConfig::new(&big)).await?;
        let best = time_stream_read(&store, &hot, hot_events).await?;
        store.close().await?;
        Ok::<_, anyhow::Error>((append, wal, best, big))
    })?;
    let (append, wal, read_ms, big) = report;

    eprintln!("opening the store in a fresh process ...");
    measure_open_in_child(&big)?; // warm the cache
    let (open_ms, rss_kib) = measure_open_in_child(&big)?;
    let rss_mib = rss_kib as f64 / 1024.0;
    let report = Report {
        append_256_per_s: append,
        wal_always_256_per_s: wal,
        append_vs_wal: append as f64 / wal.max(1) as f64,
        read_stream_10k_ms: read_ms,
        read_stream_events: hot_events,
        open_1m_ms: open_ms,
        rss_1m_mib: rss_mib,
        log_events,
        rss_bytes_per_event: rss_kib as f64 * 1024.0 / log_events as f64,
        measure_s: measure.as_secs_f64(),
    };
    println!("{:<34} {:>14}", "figure", "value");
    println!("{:<34} {:>14}", "append_256_per_s", report.append_256_per_s);
    println!(
        "{:<34} {:>14}",
        "wal_always_256_per_s", report.wal_always_256_per_s
    );
    println!("{:<34} {:>14.2}", "append_vs_wal", report.append_vs_wal);
    println!(
        "{:<34} {:>14.2}",
        format!("read_stream ({hot_events} events) ms"),
        report.read_stream_10k_ms
    );
    println!(
        "{:<34} {:>14}",
        format!("open ({log_events} events) ms"),
        report.open_1m_ms
    );
    println!("{:<34} {:>14.1}", "rss after open MiB", report.rss_1m_mib);
    println!(
        "{:<34} {:>14.1}",
        "rss bytes per event", report.rss_bytes_per_event
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// The best of five timed reads of the whole `stream` (after one untimed read).
async fn time_stream_read(store: &EventStore, stream: &StreamId, events: u64) -> Result<f64> {
    store
        .read_stream(stream, StreamRead::forward(0, events as usize))
        .await?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let read = store
            .read_stream(stream, StreamRead::forward(0, events as usize))
            .await?;
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(read.len() as u64 == events, "read {} events", read.len());
    }
    Ok(best)
}

/// Durable single-event appends per second from 256 tasks; also returns the record size.
async fn store_appends(dir: &Path, measure: Duration) -> Result<(u64, usize)> {
    let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
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
                let event = NewEvent::new("MoneyDeposited", r#"{"amount":100}"#);
                store
                    .append(
                        &stream,
                        ExpectedVersion::Any,
                        vec![event],
                        AppendOptions::default(),
                    )
                    .await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let rate = measure_rate(&count, &stop, measure).await;
    for task in tasks {
        task.await??;
    }
    // The size of one such event's record, for the WAL comparison.
    let sample = store.read_all(0, 1).await?;
    let event = &sample[0];
    let record_size = 80 + event.stream.aggregate_id.len() + event.name.len() + event.data.len();
    store.close().await?;
    Ok((rate, record_size))
}

/// Durable appends per second of 256 tasks appending `record_size`-byte records to a WAL.
async fn wal_appends(dir: &Path, measure: Duration, record_size: usize) -> Result<u64> {
    let (wal, _) = Wal::open(WalConfig {
        fsync_policy: FsyncPolicy::Always,
        ..WalConfig::new(dir)
    })
    .await?;
    let record = Record::put(Bytes::new(), Bytes::from(vec![7u8; record_size]));
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
            Ok::<_, anyhow::Error>(())
        }));
    }
    let rate = measure_rate(&count, &stop, measure).await;
    for task in tasks {
        task.await??;
    }
    wal.close().await?;
    Ok(rate)
}

/// Lets the tasks warm up for a quarter of a second, counts for `measure`, then stops them.
async fn measure_rate(count: &AtomicU64, stop: &AtomicBool, measure: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    let done = count.load(Ordering::Relaxed) - before;
    let rate = done as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    rate as u64
}

/// Writes `events` events (fast, `FsyncPolicy::Os`) with `hot` of them in one stream spread
/// evenly through the log; returns that stream.
async fn build_log(dir: &Path, events: u64, hot: u64) -> Result<StreamId> {
    let mut config = StoreConfig::new(dir);
    config.wal.fsync_policy = FsyncPolicy::Os;
    let (store, _) = EventStore::open(config).await?;
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
                store
                    .append(
                        &hot_stream,
                        ExpectedVersion::Any,
                        vec![NewEvent::new("MoneyDeposited", r#"{"amount":1}"#)],
                        AppendOptions::default(),
                    )
                    .await?;
                // The other events of this stretch go to ordinary streams, 33 per append.
                let mut rest = per_hot - 1;
                let mut n = round * 31;
                while rest > 0 {
                    let count = rest.min(33);
                    let stream = StreamId::new("account", format!("acc-{}", n % STREAMS));
                    let batch = (0..count)
                        .map(|_| NewEvent::new("MoneyDeposited", r#"{"amount":100}"#))
                        .collect();
                    store
                        .append(
                            &stream,
                            ExpectedVersion::Any,
                            batch,
                            AppendOptions::default(),
                        )
                        .await?;
                    rest -= count;
                    n += 1;
                }
                round += tasks;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    anyhow::ensure!(
        store.end_position() == events,
        "built {} events",
        store.end_position()
    );
    store.close().await?;
    Ok(hot_stream)
}

fn measure_open_in_child(dir: &Path) -> Result<(u64, u64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--measure-open")
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "open in a child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let open_ms = fields.next().context("open_ms")??;
    let rss_kib = fields.next().context("rss")??;
    Ok((open_ms, rss_kib))
}

async fn measure_open(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let (store, report) = EventStore::open(StoreConfig::new(dir)).await?;
    let open_ms = started.elapsed().as_millis();
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
    println!("{open_ms} {rss_kib}");
    drop(store);
    Ok(())
}
