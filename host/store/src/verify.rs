//! Offline verification of a store directory (what `tally verify DATA_DIR [--repair]` runs).
//!
//! Both logs are scanned with [`tally_wal::verify_records`] (the scan `open` does, changing
//! nothing), every event envelope is decoded and checked exactly as opening the store
//! rebuilds its index ([`IndexBuilder`]), and every snapshot record is decoded. With
//! `repair`, a damaged log is cut where `open` with [`WalConfig::repair`] cuts it.

use std::path::Path;

use tally_wal::{Position, RecoveryInfo, VerifyReport, VerifyStatus, Wal, WalConfig};

use crate::append::now_ms;
use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::rebuild::IndexBuilder;
use crate::snapshot;

/// Which log of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLog {
    /// The event log, `<dir>/events`.
    Events,
    /// The snapshot log, `<dir>/snapshots`.
    Snapshots,
}

impl StoreLog {
    /// The log's directory name in the store directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            StoreLog::Events => "events",
            StoreLog::Snapshots => "snapshots",
        }
    }
}

/// How far [`verify`] is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// The log being scanned (the event log first).
    pub log: StoreLog,
    /// Bytes of that log scanned so far.
    pub scanned: u64,
    /// Total bytes of that log's segment files.
    pub total: u64,
}

/// A record that the log keeps intact but the store cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProblem {
    /// The log it is in.
    pub log: StoreLog,
    /// The WAL position of the record where it was found (`None`: the log ends inside an
    /// append).
    pub position: Option<Position>,
    /// What is wrong (the message `EventStore::open` fails with).
    pub reason: String,
}

/// What [`verify`] found (and, with `repair`, did).
#[derive(Debug, Clone)]
pub struct StoreVerifyReport {
    /// The event log's scan (before any repair).
    pub events: VerifyReport,
    /// The snapshot log's scan (before any repair).
    pub snapshots: VerifyReport,
    /// Events decoded and checked (those the event log keeps).
    pub event_count: u64,
    /// Streams among them.
    pub streams: usize,
    /// Snapshot records decoded.
    pub snapshot_count: u64,
    /// The first record the store cannot use (an undecodable envelope, a gap in positions
    /// or versions, an incomplete append, an undecodable snapshot), in the records the logs
    /// keep. `EventStore::open` fails on it; `repair` does not remove it (the log itself is
    /// intact there).
    pub problem: Option<StoreProblem>,
    /// With `repair`, what opening the event log with [`WalConfig::repair`] cut, when it
    /// was not clean: `bytes_truncated` bytes cut, `valid_records` records kept.
    pub events_repair: Option<RecoveryInfo>,
    /// The same for the snapshot log.
    pub snapshots_repair: Option<RecoveryInfo>,
}

impl StoreVerifyReport {
    /// Whether both logs are intact and every record is usable: `EventStore::open` would
    /// succeed without cutting anything.
    pub fn is_clean(&self) -> bool {
        self.events.status == VerifyStatus::Clean
            && self.snapshots.status == VerifyStatus::Clean
            && self.problem.is_none()
    }

    /// Whether `EventStore::open` succeeds on the directory as it now is (after a repair,
    /// if one was done).
    pub fn opens(&self) -> bool {
        let log_ok = |report: &VerifyReport, repair: &Option<RecoveryInfo>| {
            report.opens() || repair.is_some()
        };
        log_ok(&self.events, &self.events_repair)
            && log_ok(&self.snapshots, &self.snapshots_repair)
            && self.problem.is_none()
    }
}

/// Verifies the store in `dir` with the default configuration (see [`verify_with`]).
pub async fn verify(
    dir: &Path,
    repair: bool,
    progress: impl FnMut(VerifyProgress) + Send + 'static,
) -> Result<StoreVerifyReport> {
    verify_with(StoreConfig::new(dir), repair, progress).await
}

/// Verifies the store whose logs `config` names: scans both logs as opening them would (every
/// checksum), decodes every event envelope and checks that positions and versions are
/// dense and appends complete (the checks of `EventStore::open`), and decodes every
/// snapshot. Without `repair` nothing on disk is changed. With `repair`, a log that is not
/// clean (corrupt, or with a torn tail) is opened with [`WalConfig::repair`] and closed
/// again, which cuts it at its first damage; the report says what was cut.
///
/// A store that is open (in this or another process) fails with
/// [`tally_wal::WalError::Locked`]. `progress` is called as each log is scanned.
pub async fn verify_with(
    config: StoreConfig,
    repair: bool,
    mut progress: impl FnMut(VerifyProgress) + Send + 'static,
) -> Result<StoreVerifyReport> {
    let events_config = config.wal.clone();
    let snapshots_config = config.snapshot_wal.clone();
    let retention = config.command_retention;
    let scan_configs = (events_config.clone(), snapshots_config.clone());
    let scanned = tokio::task::spawn_blocking(move || {
        let (events_config, snapshots_config) = scan_configs;
        scan(&events_config, &snapshots_config, retention, &mut progress)
    })
    .await
    .expect("verification task panicked")?;
    let mut report = scanned;

    if repair {
        if report.events.status != VerifyStatus::Clean {
            report.events_repair = Some(repair_log(events_config).await?);
        }
        if report.snapshots.status != VerifyStatus::Clean {
            report.snapshots_repair = Some(repair_log(snapshots_config).await?);
        }
    }
    Ok(report)
}

/// Opens a log with repair (cutting it at its first damage) and closes it.
async fn repair_log(config: WalConfig) -> Result<RecoveryInfo> {
    let (wal, info) = Wal::open(WalConfig {
        repair: true,
        ..config
    })
    .await?;
    wal.close().await?;
    Ok(info)
}

/// Scans both logs (blocking).
fn scan(
    events_config: &WalConfig,
    snapshots_config: &WalConfig,
    retention: crate::CommandRetention,
    progress: &mut (impl FnMut(VerifyProgress) + Send),
) -> Result<StoreVerifyReport> {
    let mut builder = Some(IndexBuilder::new(retention));
    let mut problem: Option<StoreProblem> = None;
    let mut event_count = 0;
    let events = tally_wal::verify_records(
        events_config,
        &mut |scanned, total| {
            progress(VerifyProgress {
                log: StoreLog::Events,
                scanned,
                total,
            })
        },
        &mut |position, record| {
            // After the first problem, later records are not checked against the index.
            let Some(index) = builder.as_mut() else {
                return;
            };
            match index.push(&record.value, position) {
                Ok(()) => event_count += 1,
                Err(err) => {
                    problem = Some(StoreProblem {
                        log: StoreLog::Events,
                        position: Some(position),
                        reason: corrupt_reason(err),
                    });
                    builder = None;
                }
            }
        },
    )?;
    let mut streams = 0;
    if let Some(builder) = builder {
        match builder.finish(now_ms()) {
            Ok(index) => streams = index.streams_len(),
            Err(err) => {
                problem = Some(StoreProblem {
                    log: StoreLog::Events,
                    position: None,
                    reason: corrupt_reason(err),
                })
            }
        }
    }

    let mut snapshot_count = 0;
    let mut snapshot_problem = None;
    let snapshots = tally_wal::verify_records(
        snapshots_config,
        &mut |scanned, total| {
            progress(VerifyProgress {
                log: StoreLog::Snapshots,
                scanned,
                total,
            })
        },
        &mut |position, record| {
            if snapshot_problem.is_some() {
                return;
            }
            match snapshot::decode(&record.value) {
                Ok(_) => snapshot_count += 1,
                Err(reason) => {
                    snapshot_problem = Some(StoreProblem {
                        log: StoreLog::Snapshots,
                        position: Some(position),
                        reason: format!("snapshot at {position}: {reason}"),
                    })
                }
            }
        },
    )?;
    Ok(StoreVerifyReport {
        events,
        snapshots,
        event_count,
        streams,
        snapshot_count,
        problem: problem.or(snapshot_problem),
        events_repair: None,
        snapshots_repair: None,
    })
}

fn corrupt_reason(err: StoreError) -> String {
    match err {
        StoreError::Corrupt(reason) => reason,
        other => other.to_string(),
    }
}
