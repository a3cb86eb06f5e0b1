//! Offline verification: the scan `open` does, without changing anything.
//!
//! [`verify`] reads every group of every segment and classifies the damage exactly as
//! recovery does (it runs the same scan), but it never truncates, removes or creates a
//! file: it reports what `open` would do instead. Repairing is `open` with
//! [`WalConfig::repair`].

use std::path::PathBuf;

use crate::config::WalConfig;
use crate::error::{Result, WalError};
use crate::record::{Position, Record};
use crate::recovery::{LogScan, ScanHooks, ScannedSegment, Verdict, scan_log, total_size};
use crate::segment::LOCK_FILE;
use crate::vfs::{LockGuard, OpenMode};

/// What [`verify`] found in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files in the directory.
    pub segments: u64,
    /// The oldest segment; `None` when the directory holds no segment.
    pub first_segment: Option<u64>,
    /// Intact records before any damage: what `open` keeps (with repair, after the cut).
    pub records: u64,
    /// Bytes of intact data (segment headers, groups and records) in the kept segments.
    pub bytes: u64,
    /// Total size of the segment files (preallocated space included).
    pub file_bytes: u64,
    /// The end of the intact data: where `open` (with repair, if needed) resumes writing.
    /// `None` when no segment would be kept (an empty directory, or a damaged first
    /// segment header).
    pub durable_end: Option<Position>,
    /// Position of the last intact record; `None` when there is none.
    pub last_record: Option<Position>,
    /// Whether the log is intact, and if not, what `open` would do about it.
    pub status: VerifyStatus,
}

impl VerifyReport {
    /// Whether `open` would succeed without `repair` (the log is clean or has a torn tail).
    pub fn opens(&self) -> bool {
        !matches!(self.status, VerifyStatus::Corrupt { .. })
    }
}

/// The state of a log, as [`verify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyStatus {
    /// Every record is intact (only zeros, if anything, follow the data).
    Clean,
    /// The newest segment ends in a torn write, which `open` cuts silently.
    TornTail {
        /// The segment file.
        file: PathBuf,
        /// Where the cut would be: the end of the last intact group.
        offset: u64,
        /// Bytes of data the cut would remove.
        bytes: u64,
    },
    /// Damage a crash cannot explain: `open` fails with [`WalError::Corrupt`] naming the
    /// same file and offset; with [`WalConfig::repair`] it cuts the log at `durable_end`.
    Corrupt {
        /// The damaged (or missing) segment file.
        file: PathBuf,
        /// Byte offset of the first damage in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
        /// Bytes a repair would remove: the rest of the damaged segment and every later
        /// segment file (preallocated space included).
        bytes_cut: u64,
    },
}

/// Verifies the log in `config.dir` without modifying it (see [`verify_records`]).
///
/// `progress` is called with (bytes scanned, total bytes of the segment files), at most
/// about once per MiB and once at the end of each segment.
pub fn verify(config: &WalConfig, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    verify_records(config, progress, &mut |_, _| {})
}

/// Verifies the log in `config.dir` exactly as [`crate::Wal::open`] would recover it, but
/// modifies nothing: no cut, no removal, no new segment, no lock file. Blocking: call it
/// from a blocking thread in async code.
///
/// `records` is called with every record `open` would keep, in log order (a group's
/// records only once the whole group is found intact). `progress` is called as in
/// [`verify`]. Only `dir`, `vfs` and `read_buffer_size` of the configuration matter.
///
/// While verifying, the directory's lock is held if the lock file exists (so no `open`
/// changes the log meanwhile); a log that is open fails with [`WalError::Locked`]. A
/// missing directory fails with [`WalError::Io`].
pub fn verify_records(
    config: &WalConfig,
    progress: &mut dyn FnMut(u64, u64),
    records: &mut dyn FnMut(Position, Record),
) -> Result<VerifyReport> {
    let _lock = lock_if_present(config)?;
    let log = scan_log(
        config,
        OpenMode::Read,
        true,
        &mut ScanHooks::new(&mut *progress, records),
    )?;
    let mut report = VerifyReport {
        segments: log.ids.len() as u64,
        first_segment: log.ids.first().copied(),
        records: 0,
        bytes: 0,
        file_bytes: log.total_bytes,
        durable_end: None,
        last_record: None,
        status: VerifyStatus::Clean,
    };
    add_kept_segments(&mut report, &log);
    report.status = status_of(config, log.verdict, &log.segments, &log.ids)?;
    progress(log.total_bytes, log.total_bytes);
    Ok(report)
}

/// Holds the directory's lock while verifying if the lock file exists: an open log holds
/// it (then this fails with [`WalError::Locked`]); without one, no process has the log open.
fn lock_if_present(config: &WalConfig) -> Result<Option<LockGuard>> {
    let dir = &config.dir;
    let names = config
        .vfs
        .list_dir(dir)
        .map_err(|e| WalError::io("listing", dir, e))?;
    if !names.iter().any(|name| name == LOCK_FILE) {
        return Ok(None);
    }
    let lock = dir.join(LOCK_FILE);
    let held = config.vfs.lock(&lock).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            WalError::Locked {
                dir: dir.clone(),
                lock: lock.clone(),
            }
        } else {
            WalError::io("locking", &lock, e)
        }
    })?;
    Ok(Some(held))
}

/// Adds the records, bytes and ends of the segments an `open` would keep.
fn add_kept_segments(report: &mut VerifyReport, log: &LogScan) {
    for segment in &log.segments {
        report.records += segment.records();
        report.bytes += segment.end();
        report.durable_end = Some(Position {
            segment_id: segment.id,
            offset: segment.end(),
        });
        if let Some(offset) = segment.last_record() {
            report.last_record = Some(Position {
                segment_id: segment.id,
                offset,
            });
        }
    }
}

/// What `open` would do about the scan's verdict, and how many bytes a repair would cut.
fn status_of(
    config: &WalConfig,
    verdict: Verdict,
    segments: &[ScannedSegment],
    ids: &[u64],
) -> Result<VerifyStatus> {
    Ok(match verdict {
        Verdict::Clean => VerifyStatus::Clean,
        Verdict::Torn { data_end } => {
            let torn = segments
                .last()
                .expect("a torn tail is in a scanned segment");
            VerifyStatus::TornTail {
                file: torn.path.clone(),
                offset: torn.end(),
                bytes: data_end - torn.end(),
            }
        }
        Verdict::Corrupt {
            report: corruption,
            keep_damaged,
            removed_from,
        } => {
            let mut bytes_cut = total_size(config, &ids[removed_from..])?;
            if keep_damaged {
                let damaged = segments.last().expect("the damaged segment was scanned");
                bytes_cut += damaged.len - damaged.end();
            }
            VerifyStatus::Corrupt {
                file: corruption.file,
                offset: corruption.offset,
                reason: corruption.reason,
                bytes_cut,
            }
        }
    })
}
