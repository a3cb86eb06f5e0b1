//! `tally-bench wal`: how fast `tally-wal` appends, recovers and scans, beside the
//! disk's own fsync floor measured in the same run (formerly the `wal_bench` example).
//!
//! Every record is a 1 KiB value (a frame of 1,034 bytes).
//!
//! | figure | how |
//! | --- | --- |
//! | `fsync_limit_per_s` | a plain loop of one 1 KiB `pwrite` then `fdatasync`, on a fresh preallocated file: the floor a log that syncs every append cannot beat without group commit. Sampled before and after the `Always` cases (fsync latency drifts); the figure is their mean |
//! | `always_N_per_s` | `N` tokio tasks (1, 16, 256), each appending in a loop with `FsyncPolicy::Always`; acknowledged (durable) appends per second |
//! | `always_N_no_zeros_per_s` | the log without zeros written ahead of the data, as before commit c6d209d (docs/decisions/002-zeros-ahead-of-the-data.md): `N` = 1 and 16 with `WalConfig::zero_ahead` 0, so that appends land on preallocated space the file system has not yet recorded as written |
//! | `group_256_limit_per_s` | a reference, not a target: the same plain loop writing one full group of 256 encoded records per `fdatasync`, times 256 |
//! | `batch_5ms_256_per_s` | 256 appending tasks with `FsyncPolicy::Batch(5 ms)` |
//! | `os_1_per_s` | one task with `FsyncPolicy::Os` |
//! | `recovery_mib_per_s` | `Wal::open` of a closed log of at least 256 MiB (64 MiB with `--quick`), warm cache: one untimed open first |
//! | `scan_mib_per_s` | a reader from `Position::START` over that log, every record decoded and checked |
//!
//! Each throughput case runs on a fresh log, warms up, then counts acknowledged appends
//! for a fixed time (3 s; 1 s with `--quick`). Recovery and scan repeat a fixed number of
//! rounds and divide the log's data bytes by the time taken.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tally_runtime::tally_store::tally_wal::format::{GROUP_HEADER_LEN, frame_len};
use tally_runtime::tally_store::tally_wal::{
    FsyncPolicy, Position, Record, Wal, WalConfig, segment_path,
};

use super::report::Report;
use super::{BenchOptions, Progress};

/// Bytes of every record's value.
const RECORD_BYTES: usize = 1024;
/// Appenders of the largest concurrent case, and records per group in its ceiling.
const GROUP: usize = 256;
/// Records per `append_batch` when the recovery log is written.
const LOG_BATCH: usize = 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// How long and how big each measurement is.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: Duration,
    measure: Duration,
    /// Bytes of records (values) the recovery log holds at least.
    log_bytes: u64,
    /// Timed opens and scans of the recovery log.
    rounds: u32,
}

impl Plan {
    fn new(options: &BenchOptions) -> Plan {
        if options.quick {
            Plan {
                warmup: Duration::from_millis(250),
                measure: options.case_window(),
                log_bytes: 64 << 20,
                rounds: 2,
            }
        } else {
            Plan {
                warmup: Duration::from_millis(500),
                measure: options.case_window(),
                log_bytes: 256 << 20,
                rounds: 3,
            }
        }
    }
}

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let plan = Plan::new(options);
    let work = options.work_dir("wal")?;
    let mut report = Report::default();
    describe_disk(work.path(), &mut report);
    let appends = measure_appends(work.path(), &plan, progress).await?;
    let log = recovery_and_scan(&work.path().join("log"), &plan, progress).await?;
    work.close().context("removing the working directory")?;

    add_always_figures(&mut report, &appends);
    add_reference_figures(&mut report, &appends);
    add_log_figures(&mut report, &log, options.quick);
    report.note(format!(
        "wal: {RECORD_BYTES} B records; {:.2} s per case after {:.2} s warm-up; {} recovery/scan rounds",
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        plan.rounds
    ));
    Ok(report)
}

/// What the throughput cases measured: appends (or, for the floors, syncs) per second.
#[derive(Debug)]
struct AppendFigures {
    floor_before: f64,
    floor_after: f64,
    always_1: f64,
    always_16: f64,
    always_256: f64,
    no_zeros_1: f64,
    no_zeros_16: f64,
    /// One full group of 256 records per sync, times 256.
    group_limit: f64,
    batch_256: f64,
    os_1: f64,
}

impl AppendFigures {
    /// The fsync floor: the mean of the samples before and after the Always cases.
    fn fsync_floor(&self) -> f64 {
        (self.floor_before + self.floor_after) / 2.0
    }

    /// `rate` over the fsync floor.
    fn vs_fsync(&self, rate: f64) -> f64 {
        rate / self.fsync_floor().max(1e-9)
    }
}

/// Runs the throughput cases, each on a fresh log in `dir`.
async fn measure_appends(dir: &Path, plan: &Plan, progress: &Progress) -> Result<AppendFigures> {
    let always = |name: &'static str, tasks: usize, zero_ahead: u64| {
        let policy = FsyncPolicy::Always;
        appenders_with(dir, name, policy, tasks, zero_ahead, plan, progress)
    };
    let zeros = WalConfig::default().zero_ahead;
    // The disk's fsync latency drifts (a virtual disk's especially): sample the floor
    // before and after the Always cases and compare them with the mean.
    let floor_before = fsync_floor(dir, plan, "fsync_limit_before", RECORD_BYTES, progress).await?;
    let always_1 = always("always_1", 1, zeros).await?;
    let always_16 = always("always_16", 16, zeros).await?;
    let always_256 = always("always_256", GROUP, zeros).await?;
    // Side by side, the log as before commit c6d209d: no zeros written ahead of the
    // data, so every fsync also commits the file system's record of newly written
    // preallocated space.
    let no_zeros_1 = always("always_1_no_zeros", 1, 0).await?;
    let no_zeros_16 = always("always_16_no_zeros", 16, 0).await?;
    // What 256 appenders could reach at best: one full group of 256 records per sync.
    let group_bytes = GROUP_HEADER_LEN + GROUP * frame_len(&bench_record(0));
    let group_syncs = fsync_floor(dir, plan, "group_256_limit", group_bytes, progress).await?;
    let floor_after = fsync_floor(dir, plan, "fsync_limit_after", RECORD_BYTES, progress).await?;
    let batch = FsyncPolicy::Batch(Duration::from_millis(5));
    let batch_256 = appenders(dir, "batch_5ms_256", batch, GROUP, plan, progress).await?;
    let os_1 = appenders(dir, "os_1", FsyncPolicy::Os, 1, plan, progress).await?;
    Ok(AppendFigures {
        floor_before,
        floor_after,
        always_1,
        always_16,
        always_256,
        no_zeros_1,
        no_zeros_16,
        group_limit: group_syncs * GROUP as f64,
        batch_256,
        os_1,
    })
}

/// The fsync floor and the Always cases beside it.
fn add_always_figures(report: &mut Report, appends: &AppendFigures) {
    report.add(
        "fsync_limit_per_s",
        "fsync floor (1 KiB write+fdatasync loop, mean)",
        appends.fsync_floor().round(),
        "/s",
    );
    report.add(
        "fsync_limit_before_per_s",
        "  sampled before the always cases",
        appends.floor_before.round(),
        "/s",
    );
    report.add(
        "fsync_limit_after_per_s",
        "  sampled after them",
        appends.floor_after.round(),
        "/s",
    );
    let always = |report: &mut Report, case: &str, label: &str, rate: f64| {
        report.add(&format!("{case}_per_s"), label, rate.round(), "/s");
        let vs_fsync = appends.vs_fsync(rate);
        report.add(
            &format!("{case}_vs_fsync"),
            "  vs the fsync floor",
            vs_fsync,
            "x",
        );
    };
    always(
        report,
        "always_1",
        "Always, 1 appender (1 KiB records)",
        appends.always_1,
    );
    always(
        report,
        "always_16",
        "Always, 16 appenders",
        appends.always_16,
    );
    report.add(
        "always_1_no_zeros_per_s",
        "  no zeros ahead (zero_ahead 0, as before c6d209d), 1 appender",
        appends.no_zeros_1.round(),
        "/s",
    );
    report.add(
        "always_16_no_zeros_per_s",
        "  no zeros ahead (zero_ahead 0, as before c6d209d), 16 appenders",
        appends.no_zeros_16.round(),
        "/s",
    );
    always(
        report,
        "always_256",
        "Always, 256 appenders",
        appends.always_256,
    );
}

/// The group ceiling of 256 appenders, and the cases that do not sync every group.
fn add_reference_figures(report: &mut Report, appends: &AppendFigures) {
    report.add(
        "group_256_limit_per_s",
        "reference: one 256-record group per fdatasync, x256",
        appends.group_limit.round(),
        "/s",
    );
    report.add(
        "always_256_vs_group_limit",
        "  always_256 / group_256_limit",
        appends.always_256 / appends.group_limit.max(1e-9),
        "x",
    );
    report.add(
        "batch_5ms_256_per_s",
        "Batch(5 ms), 256 appenders",
        appends.batch_256.round(),
        "/s",
    );
    report.add("os_1_per_s", "Os, 1 appender", appends.os_1.round(), "/s");
}

/// Recovery and scan speed, and the size of the log they read.
fn add_log_figures(report: &mut Report, log: &LogFigures, quick: bool) {
    let size = if quick {
        "quick: 64 MiB log"
    } else {
        "256 MiB log"
    };
    report.add(
        "recovery_mib_per_s",
        &format!("recovery (reopen, warm cache; {size})"),
        (log.recovery_mib_per_s * 10.0).round() / 10.0,
        "MiB/s",
    );
    report.add(
        "scan_mib_per_s",
        "scan (reader over the log)",
        (log.scan_mib_per_s * 10.0).round() / 10.0,
        "MiB/s",
    );
    report.add(
        "log_mib",
        "  data bytes of the log",
        log.data_bytes as f64 / MIB,
        "MiB",
    );
    report.add(
        "log_file_mib",
        "  its segment files (with the preallocated tail)",
        log.file_bytes as f64 / MIB,
        "MiB",
    );
}

/// Notes what file system the run is on, warning when it is not a real disk.
fn describe_disk(dir: &Path, report: &mut Report) {
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
    report.note(format!("wal: file system {name}, {free:.1} GiB free"));
    if matches!(kind, TMPFS | RAMFS) {
        report.note(
            "wal: WARNING: this is memory, not a disk: fsync costs nothing here (give --dir)",
        );
    }
    if free < 4.0 {
        report.note("wal: WARNING: the run writes a few GiB; free space is short");
    }
}

/// The record every throughput case appends (a 1 KiB value).
fn bench_record(index: u64) -> Record {
    let value: Vec<u8> = (0..RECORD_BYTES)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(index) as u8)
        .collect();
    Record::new(value)
}

/// The physical floor: syncs per second of a plain loop writing `write_bytes` then
/// calling `fdatasync`, measured on a blocking thread.
async fn fsync_floor(
    dir: &Path,
    plan: &Plan,
    label: &'static str,
    write_bytes: usize,
    progress: &Progress,
) -> Result<f64> {
    let (dir, plan) = (dir.to_path_buf(), *plan);
    progress.set(&format!(
        "wal: {label}: {write_bytes} B pwrite + fdatasync loop"
    ));
    tokio::task::spawn_blocking(move || fsync_loop(&dir, &plan, label, write_bytes))
        .await
        .context("the fsync loop panicked")?
}

/// A plain `std::fs` loop of one `pwrite` of `write_bytes` and one `fdatasync`, appending
/// to a fresh preallocated file (as the log's segments are). Returns syncs per second.
fn fsync_loop(dir: &Path, plan: &Plan, label: &str, write_bytes: usize) -> Result<f64> {
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
    Ok(syncs as f64 / elapsed.as_secs_f64())
}

/// `tasks` tokio tasks append to a fresh log with `policy` in a loop; returns the
/// acknowledged appends per second over the measured window.
async fn appenders(
    dir: &Path,
    name: &str,
    policy: FsyncPolicy,
    tasks: usize,
    plan: &Plan,
    progress: &Progress,
) -> Result<f64> {
    appenders_with(
        dir,
        name,
        policy,
        tasks,
        WalConfig::default().zero_ahead,
        plan,
        progress,
    )
    .await
}

/// [`appenders`] with [`WalConfig::zero_ahead`] set to `zero_ahead`.
async fn appenders_with(
    dir: &Path,
    name: &str,
    policy: FsyncPolicy,
    tasks: usize,
    zero_ahead: u64,
    plan: &Plan,
    progress: &Progress,
) -> Result<f64> {
    progress.set(&format!(
        "wal: {name}: {tasks} appender(s), {policy:?}, zero_ahead {zero_ahead}"
    ));
    let dir = dir.join(name);
    let (wal, _) = Wal::open(WalConfig {
        dir: dir.clone(),
        fsync_policy: policy,
        zero_ahead,
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
    Ok((after - before) as f64 / elapsed.as_secs_f64())
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
async fn recovery_and_scan(dir: &Path, plan: &Plan, progress: &Progress) -> Result<LogFigures> {
    let config = WalConfig {
        dir: dir.to_path_buf(),
        fsync_policy: FsyncPolicy::Os,
        ..WalConfig::default()
    };
    let batches = plan.log_bytes.div_ceil((LOG_BATCH * RECORD_BYTES) as u64);
    let records = batches * LOG_BATCH as u64;
    progress.set(&format!(
        "wal: writing a log of {records} records ({:.0} MiB)",
        (records * RECORD_BYTES as u64) as f64 / MIB,
    ));
    let (wal, _) = Wal::open(config.clone()).await?;
    let batch: Vec<Record> = (0..LOG_BATCH as u64).map(bench_record).collect();
    for _ in 0..batches {
        wal.append_batch(&batch).await?;
    }
    wal.close().await?;

    let segments = segment_lengths(dir)?;
    let file_bytes: u64 = segments.iter().map(|(_, len)| len).sum();
    progress.set("wal: warming the cache with one open");
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
        progress.set(&format!(
            "wal: recovery and scan, round {round} of {}",
            plan.rounds
        ));
        let started = Instant::now();
        let (wal, info) = Wal::open(config.clone()).await?;
        let opened = started.elapsed();
        ensure!(info.valid_records == records, "recovery lost records");

        let started = Instant::now();
        let mut reader = wal.read_from(Position::START).await?;
        let mut seen = 0u64;
        while let Some((record, _)) = reader.next_record().await? {
            if record.value.len() != RECORD_BYTES {
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
