//! Opening a log: finding its segments, checking every group, and telling a torn tail
//! (cut off) from corruption (an error, or a cut when repair is asked for).
//!
//! The rule: damage is a torn tail only if the last, unfinished writes could have caused
//! it, meaning it lies in the newest segment and no later group header proves that an
//! fsync had covered it (each group header records how much of its segment was durable
//! when it was written). Anything else is corruption.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::WalConfig;
use crate::cursor::FileCursor;
use crate::error::{Result, WalError};
use crate::format::{
    FrameError, GROUP_HEADER_LEN, GROUP_MAGIC, GroupHeader, MAX_FRAME_BODY, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SegmentHeader, check_frame, read_u32,
};
use crate::record::{Position, Record};
use crate::segment::{Entry, classify, create_segment, segment_path};
use crate::vfs::{OpenMode, VfsFile, read_up_to};

/// Smallest chunk recovery reads at a time.
const MIN_SCAN_CHUNK: usize = 4 * 1024 * 1024;

/// What `Wal::open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Records found intact (and kept).
    pub valid_records: u64,
    /// Segment files read.
    pub segments_scanned: u64,
    /// Bytes of data cut off: a torn tail, or (with repair) everything from the first
    /// corrupt record on. A preallocated zero tail is not counted.
    pub bytes_truncated: u64,
    /// Position of the last intact record; `None` when the log is empty.
    pub last_valid_position: Option<Position>,
    /// Whether corruption was found (and, since `open` succeeded, repaired by a cut).
    pub corruption_detected: bool,
    /// What the corruption was, when one was repaired.
    pub repaired: Option<CorruptionReport>,
}

/// Where corruption was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptionReport {
    /// The damaged segment file.
    pub file: PathBuf,
    /// Byte offset of the first damaged frame.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// The segment new appends go to, as recovery left it.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub id: u64,
    pub file: Arc<dyn VfsFile>,
    /// End of the valid data, where the next group is written.
    pub end: u64,
}

/// The outcome of recovery: what was found, and where writing resumes.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub info: RecoveryInfo,
    pub first_segment: u64,
    pub active: ActiveSegment,
}

#[derive(Debug, Clone, Copy)]
struct Damage {
    offset: u64,
    reason: &'static str,
}

#[derive(Debug)]
struct SegmentScan {
    header_ok: bool,
    /// End of the last intact group.
    end: u64,
    records: u64,
    last_record: Option<u64>,
    damage: Option<Damage>,
}

/// Calls made while a log is scanned: progress, and the records found intact.
#[derive(Default)]
pub(crate) struct ScanHooks<'a> {
    /// Called with (bytes scanned, total bytes of the segment files).
    progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// Called with every record of every intact group before the first damage, in order:
    /// exactly the records that `open` keeps (or keeps after a repair).
    records: Option<&'a mut dyn FnMut(Position, Record)>,
    total: u64,
    /// Bytes of the segments scanned before the current one.
    done: u64,
    /// What `progress` was last told.
    reported: u64,
}

/// Progress is reported at most once per this many bytes (and at each segment's end).
const PROGRESS_STEP: u64 = 1024 * 1024;

impl<'a> ScanHooks<'a> {
    /// Hooks calling `progress` and `records`.
    pub fn new(
        progress: &'a mut dyn FnMut(u64, u64),
        records: &'a mut dyn FnMut(Position, Record),
    ) -> ScanHooks<'a> {
        ScanHooks {
            progress: Some(progress),
            records: Some(records),
            ..ScanHooks::default()
        }
    }

    fn report(&mut self, in_segment: u64, force: bool) {
        let scanned = (self.done + in_segment).min(self.total);
        if let Some(progress) = self.progress.as_mut()
            && (force || scanned >= self.reported + PROGRESS_STEP)
        {
            self.reported = scanned;
            progress(scanned, self.total);
        }
    }
}

/// A segment a scan read and whose data (up to `scan.end`) is kept.
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    pub id: u64,
    pub path: PathBuf,
    /// The open file; kept for the newest scanned segment only, so a scan of many
    /// segments holds one descriptor at a time.
    file: Option<Arc<dyn VfsFile>>,
    pub len: u64,
    scan: SegmentScan,
}

impl ScannedSegment {
    /// The open file of the newest scanned segment.
    fn file(&self) -> &Arc<dyn VfsFile> {
        self.file
            .as_ref()
            .expect("the newest scanned segment keeps its file")
    }

    /// End of the segment's intact data.
    pub fn end(&self) -> u64 {
        self.scan.end
    }

    /// Records in the segment's intact data.
    pub fn records(&self) -> u64 {
        self.scan.records
    }

    /// Offset of the segment's last intact record.
    pub fn last_record(&self) -> Option<u64> {
        self.scan.last_record
    }

    /// The newest scanned segment as the one the writer goes on with, after its
    /// intact data.
    fn active(&self) -> ActiveSegment {
        ActiveSegment {
            id: self.id,
            file: self.file().clone(),
            end: self.scan.end,
        }
    }
}

/// What a scan concluded about the log.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every segment is intact up to its end (or a zero tail).
    Clean,
    /// The newest segment (the last scanned) has a torn tail from its `end()` to
    /// `data_end`; `open` cuts it.
    Torn { data_end: u64 },
    /// Corruption: `open` fails, or with repair cuts the log.
    Corrupt {
        report: CorruptionReport,
        /// Whether the last scanned segment is the damaged one (its header is intact, so it
        /// is kept up to its `end()`); otherwise the damage is a bad header or a missing
        /// segment, and the scanned segments all precede it.
        keep_damaged: bool,
        /// Index (in `ids`) of the first segment a repair removes whole.
        removed_from: usize,
    },
}

/// What a read-only scan of a log directory found. It changes nothing on disk.
#[derive(Debug)]
pub(crate) struct LogScan {
    /// Ids of the segment files, in order.
    pub ids: Vec<u64>,
    /// Segments being created when the last process stopped (`open` removes them).
    pub temporaries: Vec<PathBuf>,
    /// The segments whose data is kept, in order.
    pub segments: Vec<ScannedSegment>,
    /// Segment files read (the kept ones, plus one with a bad header).
    pub segments_read: u64,
    /// Total bytes of the segment files; measured only when asked for.
    pub total_bytes: u64,
    pub verdict: Verdict,
}

/// Scans the log in `config.dir` exactly as `open` recovers it, but read-only: every group
/// of every segment is checked, and the damage (if any) classified. Files are opened with
/// `mode` (the handles of kept segments are returned). With `measure`, the size of every
/// segment file is summed first (for progress and reports).
pub(crate) fn scan_log(
    config: &WalConfig,
    mode: OpenMode,
    measure: bool,
    hooks: &mut ScanHooks<'_>,
) -> Result<LogScan> {
    let (ids, temporaries) = list_segments(config)?;
    let total_bytes = if measure {
        total_size(config, &ids)?
    } else {
        0
    };
    hooks.total = total_bytes;
    let mut log = LogScan {
        ids,
        temporaries,
        segments: Vec::new(),
        segments_read: 0,
        total_bytes,
        verdict: Verdict::Clean,
    };
    for index in 0..log.ids.len() {
        if let Some(verdict) = missing_segment(config, &log.ids, index) {
            log.verdict = verdict;
            break;
        }
        if scan_one_segment(config, mode, hooks, &mut log, index)? == Scanned::Stop {
            break;
        }
    }
    Ok(log)
}

/// The segment ids in the directory, in order, and the temporary files of segments
/// being created.
fn list_segments(config: &WalConfig) -> Result<(Vec<u64>, Vec<PathBuf>)> {
    let dir = &config.dir;
    let names = config
        .vfs
        .list_dir(dir)
        .map_err(|e| WalError::io("listing", dir, e))?;
    let mut ids = Vec::new();
    let mut temporaries = Vec::new();
    for name in names {
        match classify(&name) {
            Entry::Segment(id) => ids.push(id),
            Entry::Temporary => temporaries.push(dir.join(&name)),
            Entry::Other => {}
        }
    }
    ids.sort_unstable();
    Ok((ids, temporaries))
}

/// The summed size of the segment files `ids`.
pub(crate) fn total_size(config: &WalConfig, ids: &[u64]) -> Result<u64> {
    let mut total = 0;
    for &id in ids {
        let path = segment_path(&config.dir, id);
        let file = config
            .vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| WalError::io("opening", &path, e))?;
        total += file.size().map_err(|e| WalError::io("reading", &path, e))?;
    }
    Ok(total)
}

/// Corruption if the segment before `ids[index]` is missing (ids must be contiguous).
fn missing_segment(config: &WalConfig, ids: &[u64], index: usize) -> Option<Verdict> {
    let id = ids[index];
    let previous = *ids.get(index.checked_sub(1)?)?;
    if id == previous + 1 {
        return None;
    }
    let missing = previous + 1;
    Some(Verdict::Corrupt {
        report: CorruptionReport {
            file: segment_path(&config.dir, missing),
            offset: 0,
            reason: format!("segment {missing} is missing between {previous} and {id}"),
        },
        keep_damaged: false,
        removed_from: index,
    })
}

/// Whether a scan goes on to the next segment.
#[derive(Debug, PartialEq, Eq)]
enum Scanned {
    Continue,
    Stop,
}

/// Scans segment `log.ids[index]`: keeps it in `log` when its header is intact, and
/// stops the scan at corruption.
fn scan_one_segment(
    config: &WalConfig,
    mode: OpenMode,
    hooks: &mut ScanHooks<'_>,
    log: &mut LogScan,
    index: usize,
) -> Result<Scanned> {
    let id = log.ids[index];
    let is_newest = index + 1 == log.ids.len();
    let path = segment_path(&config.dir, id);
    let file = config
        .vfs
        .open(&path, mode)
        .map_err(|e| WalError::io("opening", &path, e))?;
    let len = file.size().map_err(|e| WalError::io("reading", &path, e))?;
    let scan = scan_segment(&file, id, len, config, hooks)
        .map_err(|e| WalError::io("reading", &path, e))?;
    log.segments_read += 1;
    hooks.done += len;
    hooks.report(0, true);

    let corruption = match scan.damage {
        Some(damage) if is_newest && scan.header_ok => {
            match classify_tail(&file, id, len, &scan, damage)
                .map_err(|e| WalError::io("reading", &path, e))?
            {
                Tail::Clean => None,
                Tail::Torn { data_end } => {
                    log.verdict = Verdict::Torn { data_end };
                    None
                }
                Tail::Corrupt(damage) => Some(damage),
            }
        }
        damage => damage,
    };
    let header_ok = scan.header_ok;
    if header_ok {
        keep_segment(log, id, path.clone(), file, len, scan);
    }
    let Some(damage) = corruption else {
        return Ok(Scanned::Continue);
    };
    log.verdict = Verdict::Corrupt {
        report: CorruptionReport {
            file: path,
            offset: damage.offset,
            reason: damage.reason.to_string(),
        },
        keep_damaged: header_ok,
        removed_from: if header_ok { index + 1 } else { index },
    };
    Ok(Scanned::Stop)
}

/// Adds a scanned segment to the kept ones; only the newest keeps its file open.
fn keep_segment(
    log: &mut LogScan,
    id: u64,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    len: u64,
    scan: SegmentScan,
) {
    if let Some(previous) = log.segments.last_mut() {
        debug_assert_eq!(previous.id + 1, id, "kept segments are contiguous");
        previous.file = None;
    }
    log.segments.push(ScannedSegment {
        id,
        path,
        file: Some(file),
        len,
        scan,
    });
}

/// Recovers the log in `config.dir`. The caller holds the directory lock.
pub(crate) fn recover(config: &WalConfig) -> Result<Recovered> {
    let log = scan_log(
        config,
        OpenMode::ReadWrite,
        false,
        &mut ScanHooks::default(),
    )?;
    remove_temporaries(config, &log.temporaries)?;
    let mut info = RecoveryInfo {
        segments_scanned: log.segments_read,
        ..RecoveryInfo::default()
    };
    let Some(&first_segment) = log.ids.first() else {
        return start_empty_log(config, info);
    };
    for segment in &log.segments {
        count(&mut info, segment);
    }
    let mut segments = log.segments;
    let newest = segments.pop();
    match log.verdict {
        Verdict::Clean => {}
        Verdict::Torn { data_end } => {
            let torn = newest
                .as_ref()
                .expect("a torn tail is in a scanned segment");
            cut_torn_tail(config, &mut info, torn, data_end)?;
        }
        Verdict::Corrupt {
            report,
            keep_damaged,
            removed_from,
        } => {
            if !config.repair {
                return Err(WalError::Corrupt {
                    file: report.file,
                    offset: report.offset,
                    reason: report.reason,
                });
            }
            if keep_damaged {
                let damaged = newest.as_ref().expect("the damaged segment was scanned");
                info.bytes_truncated += damaged.len - damaged.scan.end;
                truncate(damaged.file(), damaged.scan.end, config)
                    .map_err(|e| WalError::io("truncating", &damaged.path, e))?;
            }
            let kept = newest.as_ref().map(ScannedSegment::active);
            let removed = &log.ids[removed_from..];
            return cut(config, removed, report, kept, info, first_segment);
        }
    }
    let newest = newest.expect("at least one segment was scanned");
    finish(config, info, first_segment, newest.active())
}

/// Removes the files of segments that were being created when the last process stopped.
fn remove_temporaries(config: &WalConfig, temporaries: &[PathBuf]) -> Result<()> {
    let vfs = config.vfs.as_ref();
    for path in temporaries {
        vfs.remove_file(path)
            .map_err(|e| WalError::io("removing", path, e))?;
    }
    if !temporaries.is_empty() {
        vfs.sync_dir(&config.dir)
            .map_err(|e| WalError::io("syncing directory", &config.dir, e))?;
    }
    Ok(())
}

/// A directory with no segment: creates segment 0 and writes from its start.
fn start_empty_log(config: &WalConfig, info: RecoveryInfo) -> Result<Recovered> {
    let file = create_segment(config.vfs.as_ref(), &config.dir, 0, allocation(config))?;
    Ok(Recovered {
        info,
        first_segment: 0,
        active: ActiveSegment {
            id: 0,
            file,
            end: SEGMENT_HEADER_LEN,
        },
    })
}

/// Cuts the newest segment's torn tail (from its intact end to `data_end`).
fn cut_torn_tail(
    config: &WalConfig,
    info: &mut RecoveryInfo,
    torn: &ScannedSegment,
    data_end: u64,
) -> Result<()> {
    assert!(
        data_end >= torn.scan.end,
        "a torn tail ends after the intact data"
    );
    info.bytes_truncated += data_end - torn.scan.end;
    truncate(torn.file(), torn.scan.end, config)
        .map_err(|e| WalError::io("truncating", &torn.path, e))?;
    tracing::warn!(
        file = %torn.path.display(),
        offset = torn.scan.end,
        bytes = data_end - torn.scan.end,
        "cut a torn tail"
    );
    Ok(())
}

/// Restores the active segment's preallocation and hands it to the writer.
fn finish(
    config: &WalConfig,
    info: RecoveryInfo,
    first_segment: u64,
    active: ActiveSegment,
) -> Result<Recovered> {
    let path = segment_path(&config.dir, active.id);
    if config.preallocate {
        preallocate(&active.file, config.max_segment_size)
            .map_err(|e| WalError::io("preallocating", &path, e))?;
    }
    // What recovery found may still be only in the page cache (the last process was killed
    // before its fsync): make it durable before anything is written after it, which will
    // claim it is.
    active
        .file
        .sync_data()
        .map_err(|e| WalError::io("syncing", &path, e))?;
    Ok(Recovered {
        info,
        first_segment,
        active,
    })
}

fn allocation(config: &WalConfig) -> Option<u64> {
    config.preallocate.then_some(config.max_segment_size)
}

fn count(info: &mut RecoveryInfo, segment: &ScannedSegment) {
    info.valid_records += segment.scan.records;
    if let Some(offset) = segment.scan.last_record {
        info.last_valid_position = Some(Position {
            segment_id: segment.id,
            offset,
        });
    }
}

/// Repairs by removing the segments in `later` (their bytes count as truncated) and
/// continuing from `kept` (or a fresh segment when nothing before the damage is left).
fn cut(
    config: &WalConfig,
    later: &[u64],
    report: CorruptionReport,
    kept: Option<ActiveSegment>,
    mut info: RecoveryInfo,
    first_segment: u64,
) -> Result<Recovered> {
    if !config.repair {
        return Err(WalError::Corrupt {
            file: report.file,
            offset: report.offset,
            reason: report.reason,
        });
    }
    let vfs = config.vfs.as_ref();
    let dir = &config.dir;
    for &id in later {
        let path = segment_path(dir, id);
        if let Ok(file) = vfs.open(&path, OpenMode::Read) {
            info.bytes_truncated += file.size().unwrap_or(0);
        }
        vfs.remove_file(&path)
            .map_err(|e| WalError::io("removing", &path, e))?;
    }
    vfs.sync_dir(dir)
        .map_err(|e| WalError::io("syncing directory", dir, e))?;
    tracing::warn!(
        file = %report.file.display(),
        offset = report.offset,
        reason = %report.reason,
        "repaired a corrupt log by cutting it"
    );
    info.corruption_detected = true;
    info.repaired = Some(report);
    let (active, first_segment) = match kept {
        Some(active) => (active, first_segment),
        None => {
            let id = later.first().copied().unwrap_or(first_segment);
            let file = create_segment(vfs, dir, id, allocation(config))?;
            let active = ActiveSegment {
                id,
                file,
                end: SEGMENT_HEADER_LEN,
            };
            (active, id)
        }
    };
    finish(config, info, first_segment, active)
}

/// Cuts the file at `end`, restores its preallocation and makes the cut durable.
fn truncate(file: &Arc<dyn VfsFile>, end: u64, config: &WalConfig) -> std::io::Result<()> {
    file.set_len(end)?;
    if config.preallocate {
        preallocate(file, config.max_segment_size)?;
    }
    file.sync_data()
}

/// Preallocates the active segment, but only as an optimisation: on a full disk the
/// log still opens (reads are served; appends fail until there is room).
fn preallocate(file: &Arc<dyn VfsFile>, size: u64) -> std::io::Result<()> {
    match file.allocate(size) {
        Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
            tracing::warn!(%error, "the disk is full: the active segment is not preallocated");
            Ok(())
        }
        other => other,
    }
}

/// Reads every group of a segment, checking every checksum, until the end or the first
/// damage.
fn scan_segment(
    file: &Arc<dyn VfsFile>,
    id: u64,
    len: u64,
    config: &WalConfig,
    hooks: &mut ScanHooks<'_>,
) -> std::io::Result<SegmentScan> {
    let mut scan = SegmentScan {
        header_ok: false,
        end: SEGMENT_HEADER_LEN,
        records: 0,
        last_record: None,
        damage: None,
    };
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let read = read_up_to(file.as_ref(), &mut header, 0)?;
    match SegmentHeader::decode(&header[..read]) {
        Ok(header) if header.segment_id == id => scan.header_ok = true,
        Ok(_) => {
            scan.damage = Some(Damage {
                offset: 0,
                reason: "segment header names another segment id",
            });
            return Ok(scan);
        }
        Err(reason) => {
            scan.damage = Some(Damage { offset: 0, reason });
            return Ok(scan);
        }
    }

    let chunk = config.read_buffer_size.max(MIN_SCAN_CHUNK);
    let mut cursor = FileCursor::new(file.clone(), SEGMENT_HEADER_LEN, len, chunk);
    // The records of the group being checked, handed on once the whole group is intact.
    let mut group = hooks.records.is_some().then(Vec::new);
    while cursor.remaining() > 0 {
        match scan_group(&mut cursor, id, len, group.as_mut())? {
            Ok((records, last_record)) => {
                scan.end = cursor.pos();
                scan.records += records;
                scan.last_record = last_record.or(scan.last_record);
                if let (Some(visit), Some(group)) = (hooks.records.as_mut(), group.as_mut()) {
                    for (offset, record) in group.drain(..) {
                        let position = Position {
                            segment_id: id,
                            offset,
                        };
                        visit(position, record);
                    }
                }
                hooks.report(scan.end, false);
            }
            Err(damage) => {
                scan.damage = Some(damage);
                break;
            }
        }
    }
    Ok(scan)
}

/// Checks the group at the cursor; on success the cursor is past it.
fn scan_group(
    cursor: &mut FileCursor,
    id: u64,
    len: u64,
    mut records: Option<&mut Vec<(u64, Record)>>,
) -> std::io::Result<Result<(u64, Option<u64>), Damage>> {
    if let Some(records) = records.as_mut() {
        records.clear();
    }
    let group_start = cursor.pos();
    let damage = |offset, reason| Ok(Err(Damage { offset, reason }));
    if !cursor.fill(GROUP_HEADER_LEN)? {
        return damage(group_start, "group header cut short");
    }
    let header = match GroupHeader::decode(cursor.bytes()) {
        Ok(header) => header,
        Err(reason) => return damage(group_start, reason),
    };
    if header.segment_id != id {
        return damage(group_start, "group header names another segment");
    }
    let body_end = group_start + GROUP_HEADER_LEN as u64 + u64::from(header.body_len);
    if body_end > len {
        return damage(group_start, "group extends past the end of the file");
    }
    cursor.advance(GROUP_HEADER_LEN);
    let mut last_record = None;
    for _ in 0..header.record_count {
        let frame_start = cursor.pos();
        let room = body_end - frame_start;
        if room < RECORD_HEADER_LEN as u64 || !cursor.fill(RECORD_HEADER_LEN)? {
            return damage(
                frame_start,
                "group holds fewer records than its header says",
            );
        }
        let frame_len = RECORD_HEADER_LEN as u64 + u64::from(read_u32(cursor.bytes(), 0));
        if frame_len > room {
            return damage(frame_start, "record extends past its group");
        }
        if !cursor.fill(frame_len as usize)? {
            return damage(frame_start, "record cut short");
        }
        match check_frame(cursor.bytes(), MAX_FRAME_BODY) {
            Ok(layout) => {
                if let Some(records) = records.as_mut() {
                    let frame = cursor.buffered();
                    let record = Record::new(frame.slice(layout.value_start..layout.len));
                    records.push((frame_start, record));
                }
            }
            Err(FrameError::Invalid(reason)) => return damage(frame_start, reason),
            Err(FrameError::Incomplete { .. }) => return damage(frame_start, "record cut short"),
        }
        last_record = Some(frame_start);
        cursor.advance(frame_len as usize);
    }
    if cursor.pos() != body_end {
        return damage(group_start, "group length does not match its records");
    }
    Ok(Ok((u64::from(header.record_count), last_record)))
}

enum Tail {
    /// Only zeros follow the intact data (nothing, or a preallocated tail).
    Clean,
    /// Damage the unfinished last writes explain; data (non-zero bytes) ends at `data_end`.
    Torn { data_end: u64 },
    /// Damage that a completed fsync had covered.
    Corrupt(Damage),
}

/// Decides what the damage at the end of the newest segment is. Reads what follows the
/// intact data, skipping holes and preallocated space the file system reports as such.
fn classify_tail(
    file: &Arc<dyn VfsFile>,
    id: u64,
    len: u64,
    scan: &SegmentScan,
    damage: Damage,
) -> std::io::Result<Tail> {
    let magic = GROUP_MAGIC.to_le_bytes();
    let mut data_end = scan.end;
    let mut chunk = vec![0u8; MIN_SCAN_CHUNK];
    let mut pos = scan.end;
    while pos < len {
        match file.next_data(pos)? {
            Some(data) if data < len => pos = data,
            _ => break,
        }
        let want = (len - pos).min(chunk.len() as u64) as usize;
        let read = read_up_to(file.as_ref(), &mut chunk[..want], pos)?;
        if read == 0 {
            break;
        }
        let bytes = &chunk[..read];
        if let Some(last) = last_non_zero(bytes) {
            data_end = pos + last as u64 + 1;
        }
        for at in memchr::memmem::find_iter(bytes, &magic) {
            let offset = pos + at as u64;
            let mut header = [0u8; GROUP_HEADER_LEN];
            let got = read_up_to(file.as_ref(), &mut header, offset)?;
            if let Ok(group) = GroupHeader::decode(&header[..got])
                && group.segment_id == id
                && group.synced_offset > scan.end
            {
                return Ok(Tail::Corrupt(damage));
            }
        }
        // The magic may straddle two chunks: overlap by its length minus one.
        pos += (read.saturating_sub(magic.len() - 1)).max(1) as u64;
    }
    if data_end == scan.end {
        Ok(Tail::Clean)
    } else {
        Ok(Tail::Torn { data_end })
    }
}

/// Index of the last non-zero byte, comparing eight bytes at a time.
fn last_non_zero(bytes: &[u8]) -> Option<usize> {
    let words = bytes.len() / 8;
    let tail = &bytes[words * 8..];
    if let Some(at) = tail.iter().rposition(|&b| b != 0) {
        return Some(words * 8 + at);
    }
    let word = bytes[..words * 8]
        .chunks_exact(8)
        .rposition(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) != 0)?;
    let at = bytes[word * 8..word * 8 + 8]
        .iter()
        .rposition(|&b| b != 0)?;
    Some(word * 8 + at)
}
