//! `wal_bench`: how fast `tally-wal` appends, recovers and scans, measured against the
//! disk's own fsync floor, in one run on one disk.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --release -p tally-wal --example wal_bench -- --json
//! cargo run --release -p tally-wal --example wal_bench -- --quick      # under a minute
//! cargo run --release -p tally-wal --example wal_bench -- --dir /mnt/disk
//! ```
//!
//! Every record is 1 KiB (a 16-byte key and a 1,008-byte value). What it measures:
//!
//! | figure | how |
//! | --- | --- |
//! | `fsync_limit_per_s` | a plain `std::fs` loop of one 1 KiB `pwrite` then `fdatasync`, on a fresh preallocated file: the physical floor a log that syncs every append cannot beat without group commit. Sampled before and after the `Always` cases (fsync latency drifts); the figure is their mean |
//! | `always_N_per_s` | `N` tokio tasks (1, 16, 256) on a multi-thread runtime, each appending in a loop with [`FsyncPolicy::Always`]; acknowledged (durable) appends per second |
//! | `group_256_limit_per_s` | a reference, not a target: the same plain loop writing one full group of 256 encoded records (about 259 KiB) per `fdatasync`, times 256: the most that 256 appenders, each waiting for its own append, could get from this disk |
//! | `batch_5ms_256_per_s` | 256 appending tasks as for `always_256`, with `FsyncPolicy::Batch(5 ms)` |
//! | `os_1_per_s` | one task with [`FsyncPolicy::Os`] |
//! | `recovery_mib_per_s` | `Wal::open` of a closed log of at least 256 MiB (64 MiB with `--quick`), warm cache: one untimed open first |
//! | `scan_mib_per_s` | a reader from [`Position::START`] over that log, every record decoded and checked |
//!
//! Each throughput case runs on a fresh log, warms up briefly, then counts acknowledged
//! appends for a fixed time (3 s; 1 s with `--quick`). Recovery and scan repeat a fixed
//! number of rounds and divide the log's data bytes (segment bytes up to the end of the
//! data, so not the preallocated zero tail of the newest segment) by the time taken.
//!
//! The run works in a fresh directory made inside `--dir` (default: the build profile's
//! target directory, which is on a real disk, whereas `/tmp` is a tmpfs on some machines)
//! and removes it at the end; it says on stderr which file system that is. Progress goes to stderr; stdout gets a table and, with `--json`, one JSON line last.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use serde::Serialize;
use tally_wal::format::{GROUP_HEADER_LEN, frame_len};
use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig, segment_path};

/// Bytes of key plus value in every record.
const RECORD_BYTES: usize = 1024;
/// Bytes of each record's key.
const KEY_BYTES: usize = 16;
/// Appenders of the largest concurrent case, and records per group in its ceiling.
const GROUP: usize = 256;
/// Records per `append_batch` when the recovery log is written.
const LOG_BATCH: usize = 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Measures tally-wal's append throughput (against the disk's fsync floor), recovery and
/// scan speed. Progress goes to stderr; a table (and with --json a JSON line) to stdout.
#[derive(Debug, Parser)]
#[command(name = "wal_bench", long_about = None)]
struct Args {
    /// After the table, print one JSON line with every figure.
    #[arg(long)]
    json: bool,
    /// A short run (about 1 s per case, a 64 MiB recovery log): under a minute in all.
    #[arg(long)]
    quick: bool,
    /// Directory in which the benchmark makes its working directory (removed at the end).
    /// Default: the target directory the benchmark was built into.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds each throughput case is measured (default 3; 1 with --quick).
    #[arg(long)]
    secs: Option<f64>,
}

/// How long and how big each measurement is.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: Duration,
    measure: Duration,
    /// Bytes of records (key plus value) the recovery log holds at least.
    log_bytes: u64,
    /// Timed opens and scans of the recovery log.
    rounds: u32,
}

impl Plan {
    fn new(args: &Args) -> Result<Plan> {
        let mut plan = if args.quick {
            Plan {
                warmup: Duration::from_millis(250),
                measure: Duration::from_secs(1),
                log_bytes: 64 << 20,
                rounds: 2,
            }
        } else {
            Plan {
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(3),
                log_bytes: 256 << 20,
                rounds: 3,
            }
        };
        if let Some(secs) = args.secs {
            ensure!(
                secs > 0.0 && secs.is_finite(),
                "--secs must be a positive number"
            );
            plan.measure = Duration::from_secs_f64(secs);
        }
        Ok(plan)
    }
}

/// The final JSON line: rates per second unless the name says otherwise.
#[derive(Debug, Serialize)]
struct Report {
    fsync_limit_per_s: u64,
    /// The floor measured before and after the Always cases (`fsync_limit_per_s` is their
    /// mean).
    fsync_limit_samples_per_s: [u64; 2],
    always_1_per_s: u64,
    always_16_per_s: u64,
    always_256_per_s: u64,
    batch_5ms_256_per_s: u64,
    os_1_per_s: u64,
    recovery_mib_per_s: f64,
    scan_mib_per_s: f64,
    always_1_vs_fsync: f64,
    always_16_vs_fsync: f64,
    always_256_vs_fsync: f64,
    /// Records per second of a plain loop that writes one full group of 256 records (as
    /// the log encodes them) and fdatasyncs it: the ceiling for 256 appenders on this disk.
    group_256_limit_per_s: u64,
    always_256_vs_group_limit: f64,
    /// Key plus value bytes of every record.
    record_bytes: usize,
    /// Warm-up before each throughput case, in seconds.
    warmup_s: f64,
    /// Measured time of each throughput case, in seconds.
    measure_s: f64,
    /// Data bytes of the recovery/scan log, in MiB.
    log_mib: f64,
    /// Bytes of its segment files (with the newest one's preallocated tail), in MiB.
    log_file_mib: f64,
    /// Timed opens and scans of the log.
    recovery_rounds: u32,
    quick: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let plan = Plan::new(&args)?;
    let base = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_base()?,
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let work = tempfile::Builder::new()
        .prefix("wal-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("making a working directory in {}", base.display()))?;
    describe_disk(work.path());
    eprintln!(
        "wal_bench: {} run in {}: {} B records, {:.2} s warm-up + {:.2} s per case",
        if args.quick { "quick" } else { "full" },
        work.path().display(),
        RECORD_BYTES,
        plan.warmup.as_secs_f64(),
        plan.measure.as_secs_f64(),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(async {
        let dir = work.path();
        // The disk's fsync latency drifts (a virtual disk's especially): sample the floor
        // before and after the Always cases and compare them with the mean.
        let floor_before = fsync_floor(dir, &plan, "fsync_limit_before", RECORD_BYTES).await?;
        let always_1 = appenders(dir, "always_1", FsyncPolicy::Always, 1, &plan).await?;
        let always_16 = appenders(dir, "always_16", FsyncPolicy::Always, 16, &plan).await?;
        let always_256 = appenders(dir, "always_256", FsyncPolicy::Always, GROUP, &plan).await?;
        // What 256 appenders could reach at best: one full group of 256 records per sync.
        let group_bytes = GROUP_HEADER_LEN + GROUP * frame_len(&bench_record(0));
        let group_syncs = fsync_floor(dir, &plan, "group_256_limit", group_bytes).await?;
        let group_limit = group_syncs * GROUP as u64;
        let floor_after = fsync_floor(dir, &plan, "fsync_limit_after", RECORD_BYTES).await?;
        let fsync = (floor_before + floor_after).div_ceil(2);
        let batch = FsyncPolicy::Batch(Duration::from_millis(5));
        let batch_256 = appenders(dir, "batch_5ms_256", batch, GROUP, &plan).await?;
        let os_1 = appenders(dir, "os_1", FsyncPolicy::Os, 1, &plan).await?;
        let log = recovery_and_scan(&dir.join("log"), &plan).await?;
        let ratio = |rate: u64| round(rate as f64 / fsync.max(1) as f64, 2);
        anyhow::Ok(Report {
            fsync_limit_per_s: fsync,
            fsync_limit_samples_per_s: [floor_before, floor_after],
            always_1_per_s: always_1,
            always_16_per_s: always_16,
            always_256_per_s: always_256,
            batch_5ms_256_per_s: batch_256,
            os_1_per_s: os_1,
            recovery_mib_per_s: round(log.recovery_mib_per_s, 1),
            scan_mib_per_s: round(log.scan_mib_per_s, 1),
            always_1_vs_fsync: ratio(always_1),
            always_16_vs_fsync: ratio(always_16),
            always_256_vs_fsync: ratio(always_256),
            group_256_limit_per_s: group_limit,
            always_256_vs_group_limit: round(always_256 as f64 / group_limit.max(1) as f64, 2),
            record_bytes: RECORD_BYTES,
            warmup_s: plan.warmup.as_secs_f64(),
            measure_s: plan.measure.as_secs_f64(),
            log_mib: round(log.data_bytes as f64 / MIB, 1),
            log_file_mib: round(log.file_bytes as f64 / MIB, 1),
            recovery_rounds: plan.rounds,
            quick: args.quick,
        })
    })?;
    drop(runtime);
    work.close().context("removing the working directory")?;

    print_table(&report);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// The directory holding the build profile's output (`target/release` for a release
/// build): on the same disk as the target directory, which is a real one.
fn default_base() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the benchmark's own path")?;
    // <target>/<profile>/examples/wal_bench
    match exe.parent().and_then(Path::parent) {
        Some(profile_dir) => Ok(profile_dir.to_path_buf()),
        None => std::env::current_dir().context("finding the current directory"),
    }
}

/// Says on stderr what file system the run is on, warning when it is not a real disk.
fn describe_disk(dir: &Path) {
    const TMPFS: i128 = 0x0102_1994;
    const RAMFS: i128 = 0x8584_58f6;
    const OVERLAYFS: i128 = 0x794c_7630;
    let kind = match rustix::fs::statfs(dir) {
        Ok(stat) => i128::from(stat.f_type),
        Err(_) => return,
    };
    let name = match kind {
        0xEF53 => "ext2/3/4".to_string(),
        0x5846_5342 => "xfs".to_string(),
        0x9123_683E => "btrfs".to_string(),
        TMPFS => "tmpfs".to_string(),
        RAMFS => "ramfs".to_string(),
        OVERLAYFS => "overlayfs".to_string(),
        other => format!("type {other:#x}"),
    };
    let free = rustix::fs::statvfs(dir)
        .map(|stat| stat.f_bavail.saturating_mul(stat.f_frsize) as f64 / MIB / 1024.0)
        .unwrap_or(f64::NAN);
    eprintln!("wal_bench: file system {name}, {free:.1} GiB free");
    if matches!(kind, TMPFS | RAMFS) {
        eprintln!("wal_bench: WARNING: this is memory, not a disk: fsync costs nothing here");
    }
    if free < 4.0 {
        eprintln!("wal_bench: WARNING: the run writes a few GiB; free space is short");
    }
}

/// The record every throughput case appends (1 KiB of key plus value).
fn bench_record(index: u64) -> Record {
    let key = format!("key-{index:012}");
    debug_assert_eq!(key.len(), KEY_BYTES);
    let value: Vec<u8> = (0..RECORD_BYTES - KEY_BYTES)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(index) as u8)
        .collect();
    Record::put(Bytes::from(key), Bytes::from(value))
}

/// The physical floor: syncs per second of a plain loop writing `write_bytes` then
/// calling `fdatasync`, measured on a blocking thread.
async fn fsync_floor(
    dir: &Path,
    plan: &Plan,
    label: &'static str,
    write_bytes: usize,
) -> Result<u64> {
    let (dir, plan) = (dir.to_path_buf(), *plan);
    eprintln!("  {label}: {write_bytes} B pwrite + fdatasync loop ...");
    let rate = tokio::task::spawn_blocking(move || fsync_loop(&dir, &plan, label, write_bytes))
        .await
        .context("the fsync loop panicked")??;
    eprintln!("  {label}: {} syncs/s", thousands(rate));
    Ok(rate)
}

/// A plain `std::fs` loop of one `pwrite` of `write_bytes` and one `fdatasync`, appending
/// to a fresh preallocated file (as the log's segments are). Returns syncs per second.
fn fsync_loop(dir: &Path, plan: &Plan, label: &str, write_bytes: usize) -> Result<u64> {
    const FILE_SIZE: u64 = 1 << 30;
    let path = dir.join(format!("{label}.dat"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, FILE_SIZE) {
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(FILE_SIZE)?,
        other => other.with_context(|| format!("preallocating {}", path.display()))?,
    }
    file.sync_all()?;

    let block = vec![0xA5u8; write_bytes];
    let mut offset = 0u64;
    let mut write_and_sync = |file: &File| -> std::io::Result<()> {
        if offset + write_bytes as u64 > FILE_SIZE {
            offset = 0;
        }
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        offset += write_bytes as u64;
        Ok(())
    };
    let warm_until = Instant::now() + plan.warmup;
    while Instant::now() < warm_until {
        write_and_sync(&file)?;
    }
    let start = Instant::now();
    let until = start + plan.measure;
    let mut syncs = 0u64;
    while Instant::now() < until {
        write_and_sync(&file)?;
        syncs += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(per_second(syncs, elapsed))
}

/// `tasks` tokio tasks append to a fresh log with `policy` in a loop; returns the
/// acknowledged appends per second over the measured window.
async fn appenders(
    dir: &Path,
    name: &str,
    policy: FsyncPolicy,
    tasks: usize,
    plan: &Plan,
) -> Result<u64> {
    eprintln!("  {name}: {tasks} appender(s), {policy:?} ...");
    let dir = dir.join(name);
    let (wal, _) = Wal::open(WalConfig {
        dir: dir.clone(),
        fsync_policy: policy,
        ..WalConfig::default()
    })
    .await
    .with_context(|| format!("opening a log in {}", dir.display()))?;
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (wal, acked, stop) = (wal.clone(), acked.clone(), stop.clone());
        let record = bench_record(task as u64);
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                wal.append(&record).await?;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }

    tokio::time::sleep(plan.warmup).await;
    let (before, start) = (acked.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(plan.measure).await;
    let (after, elapsed) = (acked.load(Ordering::Relaxed), start.elapsed());
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.context("an appender task panicked")??;
    }
    wal.close().await?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let rate = per_second(after - before, elapsed);
    eprintln!("  {name}: {} /s", thousands(rate));
    Ok(rate)
}

/// What the recovery and scan rounds measured.
#[derive(Debug)]
struct LogFigures {
    recovery_mib_per_s: f64,
    scan_mib_per_s: f64,
    /// Segment bytes up to the end of the data (what recovery and the scan must cover).
    data_bytes: u64,
    /// Bytes of the segment files, with the newest segment's preallocated tail.
    file_bytes: u64,
}

/// Writes a log of at least `plan.log_bytes` of records, closes it, then times `open`
/// (recovery) and a full reader scan, `plan.rounds` times each, after one untimed open.
async fn recovery_and_scan(dir: &Path, plan: &Plan) -> Result<LogFigures> {
    let config = WalConfig {
        dir: dir.to_path_buf(),
        fsync_policy: FsyncPolicy::Os,
        ..WalConfig::default()
    };
    let batches = plan.log_bytes.div_ceil((LOG_BATCH * RECORD_BYTES) as u64);
    let records = batches * LOG_BATCH as u64;
    eprintln!(
        "  log: writing {} records ({:.0} MiB) in batches of {LOG_BATCH}, FsyncPolicy::Os ...",
        thousands(records),
        (records * RECORD_BYTES as u64) as f64 / MIB,
    );
    let started = Instant::now();
    let (wal, _) = Wal::open(config.clone()).await?;
    let batch: Vec<Record> = (0..LOG_BATCH as u64).map(bench_record).collect();
    for _ in 0..batches {
        wal.append_batch(&batch).await?;
    }
    wal.close().await?;
    eprintln!(
        "  log: written and closed in {:.2} s ({:.0} MiB/s of records)",
        started.elapsed().as_secs_f64(),
        (records * RECORD_BYTES as u64) as f64 / MIB / started.elapsed().as_secs_f64(),
    );

    let segments = segment_lengths(dir)?;
    let file_bytes: u64 = segments.iter().map(|(_, len)| len).sum();
    eprintln!(
        "  log: {} segment file(s), {:.1} MiB on disk; warming the cache with one open ...",
        segments.len(),
        file_bytes as f64 / MIB
    );
    let (wal, info) = Wal::open(config.clone()).await?;
    ensure!(
        info.valid_records == records,
        "recovery found {} records, {records} were written",
        info.valid_records
    );
    wal.close().await?;

    let (mut open_time, mut scan_time) = (Duration::ZERO, Duration::ZERO);
    let mut data_bytes = 0u64;
    for round in 1..=plan.rounds {
        let started = Instant::now();
        let (wal, info) = Wal::open(config.clone()).await?;
        let opened = started.elapsed();
        ensure!(info.valid_records == records, "recovery lost records");

        let started = Instant::now();
        let mut reader = wal.read_from(Position::START).await?;
        let mut seen = 0u64;
        while let Some((record, _)) = reader.next_record().await? {
            if record.key.len() + record.value.len() != RECORD_BYTES {
                bail!("the scan read a record of the wrong size");
            }
            seen += 1;
        }
        let scanned = started.elapsed();
        ensure!(
            seen == records,
            "the scan read {seen} records, {records} were written"
        );
        let end = reader.position();
        wal.close().await?;

        // Sealed segments end where their data does; the newest ends where the scan did.
        data_bytes = segments
            .iter()
            .filter(|(id, _)| *id < end.segment_id)
            .map(|(_, len)| len)
            .sum::<u64>()
            + end.offset;
        eprintln!(
            "  round {round}: open {:.3} s ({:.0} MiB/s), scan {:.3} s ({:.0} MiB/s)",
            opened.as_secs_f64(),
            data_bytes as f64 / MIB / opened.as_secs_f64(),
            scanned.as_secs_f64(),
            data_bytes as f64 / MIB / scanned.as_secs_f64(),
        );
        open_time += opened;
        scan_time += scanned;
    }
    let total = data_bytes as f64 * f64::from(plan.rounds) / MIB;
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(LogFigures {
        recovery_mib_per_s: total / open_time.as_secs_f64(),
        scan_mib_per_s: total / scan_time.as_secs_f64(),
        data_bytes,
        file_bytes,
    })
}

/// The segment files of the log in `dir`: id and length, in id order.
fn segment_lengths(dir: &Path) -> Result<Vec<(u64, u64)>> {
    let mut segments = Vec::new();
    for id in 0.. {
        let path = segment_path(dir, id);
        match std::fs::metadata(&path) {
            Ok(meta) => segments.push((id, meta.len())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }
    ensure!(
        !segments.is_empty(),
        "no segment files in {}",
        dir.display()
    );
    Ok(segments)
}

fn print_table(report: &Report) {
    let floor = report.fsync_limit_per_s;
    let ratio = |rate: u64| format!("{:.1}x", rate as f64 / floor.max(1) as f64);
    let rows: Vec<(&str, String, String)> = vec![
        ("fsync_limit (write+fdatasync)", per_s(floor), String::new()),
        (
            "always_1",
            per_s(report.always_1_per_s),
            ratio(report.always_1_per_s),
        ),
        (
            "always_16",
            per_s(report.always_16_per_s),
            ratio(report.always_16_per_s),
        ),
        (
            "always_256",
            per_s(report.always_256_per_s),
            ratio(report.always_256_per_s),
        ),
        (
            "group_256_limit (reference)",
            per_s(report.group_256_limit_per_s),
            ratio(report.group_256_limit_per_s),
        ),
        (
            "batch_5ms_256",
            per_s(report.batch_5ms_256_per_s),
            String::new(),
        ),
        ("os_1", per_s(report.os_1_per_s), String::new()),
        ("recovery", mib_s(report.recovery_mib_per_s), String::new()),
        ("scan", mib_s(report.scan_mib_per_s), String::new()),
    ];
    println!(
        "tally-wal benchmark: {} B records, {:.2} s per case after {:.2} s warm-up; \
         log of {:.1} MiB ({:.1} MiB of files){}",
        report.record_bytes,
        report.measure_s,
        report.warmup_s,
        report.log_mib,
        report.log_file_mib,
        if report.quick {
            " [--quick: smaller log than the 256 MiB of a full run]"
        } else {
            ""
        },
    );
    println!("{:<30} {:>18} {:>16}", "case", "figure", "vs fsync floor");
    for (name, figure, vs) in rows {
        println!("{name:<30} {figure:>18} {vs:>16}");
    }
    let [before, after] = report.fsync_limit_samples_per_s;
    println!(
        "fsync floor samples: {} before, {} after the always_* cases; \
         always_256 reached {:.0}% of group_256_limit (256 records per fdatasync)",
        per_s(before),
        per_s(after),
        report.always_256_vs_group_limit * 100.0,
    );
    let yes_no = |ok: bool| if ok { "met" } else { "MISSED" };
    let always = report.always_256_per_s;
    println!(
        "targets: always_256 >= 25x floor: {}; always_256 >= 200,000/s: {}; \
         recovery >= 1,000 MiB/s: {}; scan >= 1,000 MiB/s: {}",
        yes_no(always >= floor.saturating_mul(25)),
        yes_no(always >= 200_000),
        yes_no(report.recovery_mib_per_s >= 1000.0),
        yes_no(report.scan_mib_per_s >= 1000.0),
    );
}

fn per_second(count: u64, elapsed: Duration) -> u64 {
    (count as f64 / elapsed.as_secs_f64()).round() as u64
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn per_s(rate: u64) -> String {
    format!("{} /s", thousands(rate))
}

fn mib_s(rate: f64) -> String {
    format!("{rate:.1} MiB/s")
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
