//! Model-based property test: the log behaves like a plain list of records.
//!
//! Random sequences of appends, batches, syncs, segment rotations (segments are small),
//! reopens (with `close`, by dropping the handle, and with another fsync policy and
//! preallocation), reader creations and reads, tail-following readers
//! (`wait_next_record`), `read_at`, `delete_segments_before`, bursts of concurrent
//! appenders and pipelined `reserve` + `enqueue_batch` calls run against a real [`Wal`]
//! in a fresh directory and against an in-memory model: the acknowledged records with
//! the positions their appends returned. After every operation:
//! - a full read from [`Position::START`] returns exactly the model's kept records at
//!   their positions, in strictly increasing position order;
//! - every acknowledged record is visible (`durable_end` covers it; under `Batch` once
//!   the timer has run);
//! - `read_at` returns the records just appended and the first and last kept ones, and
//!   answers `SegmentDeleted` for deleted positions and `NoRecord` inside a record and
//!   at or past the end;
//! - readers kept open across operations (following the tail, crossing segments, outliving
//!   deletions) return exactly the next records, or `SegmentDeleted` once their next record
//!   was deleted (or, before they opened any segment, their position was);
//! - appends the configuration must refuse (too large, empty batch) are refused and write
//!   nothing; a batch's positions are consecutive within one segment; each concurrent
//!   appender sees its own appends in order; pipelined batches land in queue order;
//! - `delete_segments_before` removes exactly the segments below
//!   `min(position.segment_id, active segment)`;
//! - no segment grows past `max_segment_size`;
//! - a reopen reports exactly the model's record count, segment count and last position,
//!   with nothing truncated and no corruption.
//!
//! Each case draws its segment size (16 to 64 KiB), fsync policy, preallocation, group,
//! queue and read-buffer limits. A failure prints the shrunk setup and operation list,
//! which replays the case (see `replay` and the regression tests at the end); set
//! `PROPTEST_CASES` to run more cases than the default 64.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tally_wal::format::SEGMENT_HEADER_LEN;
use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig, WalError, WalReader};

type CaseResult<T = ()> = Result<T, TestCaseError>;

/// Readers that stay open across operations.
const SLOTS: usize = 2;
/// Longest any single operation may take before the case fails as hung.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the `Batch` timer may take to make appended data visible.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// What a case is made of.

/// The configuration of one case.
#[derive(Debug, Clone)]
struct Setup {
    segment_kib: u64,
    policy: FsyncPolicy,
    preallocate: bool,
    /// `max_group_size` of a quarter segment instead of the default 4 MiB.
    small_groups: bool,
    /// `max_pending_bytes` of half a segment instead of the default 64 MiB.
    small_queue: bool,
    read_buffer_size: usize,
}

impl Setup {
    fn config(&self, dir: &Path) -> WalConfig {
        let segment = self.segment_kib * 1024;
        let defaults = WalConfig::new(dir);
        WalConfig {
            max_segment_size: segment,
            max_record_size: segment as usize / 4,
            max_batch_size: segment as usize / 2,
            fsync_policy: self.policy,
            preallocate: self.preallocate,
            max_group_size: if self.small_groups {
                segment as usize / 4
            } else {
                defaults.max_group_size
            },
            max_pending_bytes: if self.small_queue {
                segment as usize / 2
            } else {
                defaults.max_pending_bytes
            },
            read_buffer_size: self.read_buffer_size,
            ..defaults
        }
    }
}

/// A record to append: its value size. The bytes are derived from the record's serial
/// number, so every case is deterministic.
#[derive(Clone, Copy)]
struct Rec {
    value: Size,
}

#[derive(Debug, Clone, Copy)]
enum Size {
    Len(u16),
    /// The value that makes the frame exactly `max_record_size`, plus this many bytes
    /// (a positive delta must be refused).
    NearMax(i8),
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Size::Len(n) => write!(f, "v{n}"),
            Size::NearMax(delta) => write!(f, "vMAX{delta:+}"),
        }
    }
}

/// One append of a concurrent appender.
#[derive(Debug, Clone)]
enum Write {
    One(Rec),
    Batch(Vec<Rec>),
}

/// A fraction of a list's length (`len * n / 65536`): picks an element however long the
/// list is, and prints as a number that a replay can use.
#[derive(Debug, Clone, Copy)]
struct Ix(u16);

impl Ix {
    fn index(self, len: usize) -> usize {
        (len * usize::from(self.0)) >> 16
    }
}

/// A position to read at or delete before.
#[derive(Debug, Clone)]
enum Pick {
    /// A kept record's position.
    Kept(Ix),
    /// A deleted record's position (a kept one when nothing was deleted).
    Gone(Ix),
    /// One byte into a kept record.
    Inside(Ix),
    /// The durable end of the log.
    End,
    /// Far past the end of the log.
    Beyond,
}

/// Where a new reader starts.
#[derive(Debug, Clone)]
enum From {
    Start,
    Kept(Ix),
    Gone(Ix),
    End,
}

#[derive(Debug, Clone, Copy)]
enum Read {
    Count(u8),
    ToEnd,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Rec),
    AppendBatch(Vec<Rec>),
    Sync,
    /// Close (or just drop) the log and open it again.
    Reopen {
        close: bool,
        /// Reopen with the next fsync policy and preallocation flipped.
        reconfigure: bool,
    },
    CreateReader {
        slot: usize,
        from: From,
        read: Read,
    },
    Read {
        slot: usize,
        read: Read,
    },
    ReadAt(Pick),
    DeleteSegmentsBefore(Pick),
    /// Appenders running at once, each doing its writes in order.
    Concurrent(Vec<Vec<Write>>),
    /// A reader waits at the end of the log (`wait_next_record`) while these records are
    /// appended one by one.
    Follow(Vec<Rec>),
    /// Batches queued with `reserve` and `enqueue_batch` before any is waited for: they
    /// must land in the order they were queued.
    Pipelined(Vec<Vec<Rec>>),
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![3 => Just(16u64), 2 => Just(32), 1 => Just(64)],
        prop_oneof![
            Just(FsyncPolicy::Always),
            Just(FsyncPolicy::Batch(Duration::from_millis(1))),
            Just(FsyncPolicy::Os),
        ],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(1024 * 1024), Just(4096), Just(100)],
    )
        .prop_map(
            |(segment_kib, policy, preallocate, small_groups, small_queue, read_buffer_size)| {
                Setup {
                    segment_kib,
                    policy,
                    preallocate,
                    small_groups,
                    small_queue,
                    read_buffer_size,
                }
            },
        )
}

fn rec() -> impl Strategy<Value = Rec> {
    let value = prop_oneof![
        2 => Just(Size::Len(0)),
        5 => (1u16..64).prop_map(Size::Len),
        5 => (64u16..1024).prop_map(Size::Len),
        6 => (1024u16..4096).prop_map(Size::Len),
        2 => (-2i8..=2).prop_map(Size::NearMax),
    ];
    value.prop_map(|value| Rec { value })
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        3 => rec().prop_map(Write::One),
        1 => vec(rec(), 1..=6).prop_map(Write::Batch),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<u16>().prop_map(Ix).prop_map(Pick::Kept),
        2 => any::<u16>().prop_map(Ix).prop_map(Pick::Gone),
        1 => any::<u16>().prop_map(Ix).prop_map(Pick::Inside),
        1 => Just(Pick::End),
        1 => Just(Pick::Beyond),
    ]
}

fn from() -> impl Strategy<Value = From> {
    prop_oneof![
        3 => Just(From::Start),
        3 => any::<u16>().prop_map(Ix).prop_map(From::Kept),
        1 => any::<u16>().prop_map(Ix).prop_map(From::Gone),
        2 => Just(From::End),
    ]
}

fn read() -> impl Strategy<Value = Read> {
    prop_oneof![
        3 => (1u8..=20).prop_map(Read::Count),
        1 => Just(Read::ToEnd),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => rec().prop_map(Op::Append),
        8 => vec(rec(), 0..=8).prop_map(Op::AppendBatch),
        3 => Just(Op::Sync),
        3 => (any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(close, reconfigure)| Op::Reopen { close, reconfigure }),
        4 => (0..SLOTS, from(), read())
            .prop_map(|(slot, from, read)| Op::CreateReader { slot, from, read }),
        6 => (0..SLOTS, read()).prop_map(|(slot, read)| Op::Read { slot, read }),
        4 => pick().prop_map(Op::ReadAt),
        2 => pick().prop_map(Op::DeleteSegmentsBefore),
        3 => vec(vec(write(), 1..=6), 2..=6).prop_map(Op::Concurrent),
        2 => vec(rec(), 1..=10).prop_map(Op::Follow),
        2 => vec(vec(rec(), 0..=4), 1..=6).prop_map(Op::Pipelined),
    ]
}

// ---------------------------------------------------------------------------------------
// Records and the model.

/// Encoded size of a record frame: length and checksum, flags byte, reserved key length
/// (a one-byte varint 0), value. Computed here independently of the crate.
fn frame_len(value: usize) -> usize {
    8 + 1 + 1 + value
}

fn record_frame_len(record: &Record) -> usize {
    frame_len(record.value.len())
}

/// The record `spec` describes, its bytes derived from `serial`.
fn build(spec: Rec, serial: u64, max_record_size: usize) -> Record {
    let value_len = match spec.value {
        Size::Len(n) => usize::from(n),
        Size::NearMax(delta) => {
            (max_record_size - frame_len(0)).saturating_add_signed(isize::from(delta))
        }
    };
    let mut state = serial.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let value: Vec<u8> = (0..value_len).map(|_| next()).collect();
    Record::new(value)
}

/// A short description of a record for failure messages.
fn describe(record: &Record) -> String {
    format!(
        "record(value {} B, starts {:02x?})",
        record.value.len(),
        &record.value[..record.value.len().min(4)]
    )
}

/// Why an append must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    RecordTooLarge,
    BatchTooLarge,
    EmptyBatch,
}

/// What `append` (`batch == false`, one record) or `append_batch` must answer.
fn refusal(records: &[Record], batch: bool, config: &WalConfig) -> Option<Refusal> {
    if batch && records.is_empty() {
        return Some(Refusal::EmptyBatch);
    }
    let sizes: Vec<usize> = records.iter().map(record_frame_len).collect();
    if sizes.iter().any(|&size| size > config.max_record_size) {
        return Some(Refusal::RecordTooLarge);
    }
    if batch && sizes.iter().sum::<usize>() > config.max_batch_size {
        return Some(Refusal::BatchTooLarge);
    }
    None
}

fn refused_as(err: &WalError) -> Option<Refusal> {
    match err {
        WalError::RecordTooLarge { .. } => Some(Refusal::RecordTooLarge),
        WalError::BatchTooLarge { .. } => Some(Refusal::BatchTooLarge),
        WalError::EmptyBatch => Some(Refusal::EmptyBatch),
        _ => None,
    }
}

/// Checks an append's answer against the expected refusal; returns the positions of an
/// accepted append after checking that they are consecutive within one segment.
fn check_answer(
    records: &[Record],
    expected: Option<Refusal>,
    answer: Result<Vec<Position>, WalError>,
) -> CaseResult<Option<Vec<Position>>> {
    match (expected, answer) {
        (None, Ok(positions)) => {
            prop_assert_eq!(positions.len(), records.len(), "one position per record");
            for (i, pair) in positions.windows(2).enumerate() {
                let expected_next = Position {
                    segment_id: pair[0].segment_id,
                    offset: pair[0].offset + record_frame_len(&records[i]) as u64,
                };
                prop_assert_eq!(
                    pair[1],
                    expected_next,
                    "a batch's positions are consecutive in one segment"
                );
            }
            Ok(Some(positions))
        }
        (Some(refusal), Err(err)) if refused_as(&err) == Some(refusal) => Ok(None),
        (expected, answer) => Err(TestCaseError::fail(format!(
            "append of {} records: expected {}, got {:?}",
            records.len(),
            match expected {
                None => "success".to_string(),
                Some(refusal) => format!("{refusal:?}"),
            },
            answer.map_err(|e| e.to_string())
        ))),
    }
}

/// The in-memory model: what the log must hold.
#[derive(Debug, Default)]
struct Model {
    /// Every acknowledged record with its position, in log order.
    all: Vec<(Record, Position)>,
    /// `all[..kept_from]` lie in deleted segments.
    kept_from: usize,
    /// The oldest segment kept.
    first: u64,
    /// The segment appends go to.
    active: u64,
    /// Serial number of the next record built.
    serial: u64,
}

impl Model {
    fn kept(&self) -> &[(Record, Position)] {
        &self.all[self.kept_from..]
    }

    fn gone(&self) -> &[(Record, Position)] {
        &self.all[..self.kept_from]
    }

    /// Where the last acknowledged record ends.
    fn end(&self) -> Position {
        match self.all.last() {
            Some((record, position)) => Position {
                segment_id: position.segment_id,
                offset: position.offset + record_frame_len(record) as u64,
            },
            None => Position {
                segment_id: self.active,
                offset: SEGMENT_HEADER_LEN,
            },
        }
    }

    fn push(&mut self, record: Record, position: Position) -> CaseResult {
        if let Some((_, last)) = self.all.last() {
            prop_assert!(
                position > *last,
                "position {} of a new record is not after the last one, {}",
                position,
                last
            );
        }
        self.active = self.active.max(position.segment_id);
        self.all.push((record, position));
        Ok(())
    }

    fn forget_before(&mut self, segment: u64) {
        self.first = self.first.max(segment);
        while self.kept_from < self.all.len() && self.all[self.kept_from].1.segment_id < self.first
        {
            self.kept_from += 1;
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }
}

// ---------------------------------------------------------------------------------------
// Running a case.

/// A reader kept open across operations.
struct Slot {
    reader: WalReader,
    /// Index into `Model::all` of the record it must return next.
    next: usize,
    /// Whether it has returned a record yet.
    returned: bool,
}

struct Harness {
    config: WalConfig,
    wal: Option<Wal>,
    model: Model,
    readers: Vec<Option<Slot>>,
    /// Indices into `Model::all` of the records the last operation appended.
    fresh: Vec<usize>,
}

fn fail<T>(message: impl Into<String>) -> CaseResult<T> {
    Err(TestCaseError::fail(message.into()))
}

trait OrFail<T> {
    fn or_fail(self, what: &str) -> CaseResult<T>;
}

impl<T, E: fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> CaseResult<T> {
        self.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
    }
}

impl Harness {
    async fn open(config: WalConfig) -> CaseResult<Harness> {
        let (wal, info) = Wal::open(config.clone()).await.or_fail("first open")?;
        prop_assert_eq!(info.valid_records, 0);
        prop_assert_eq!(info.bytes_truncated, 0);
        prop_assert!(!info.corruption_detected);
        prop_assert_eq!(info.last_valid_position, None);
        Ok(Harness {
            config,
            wal: Some(wal),
            model: Model::default(),
            readers: (0..SLOTS).map(|_| None).collect(),
            fresh: Vec::new(),
        })
    }

    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("the log is open")
    }

    fn build(&mut self, spec: Rec) -> Record {
        let serial = self.model.next_serial();
        build(spec, serial, self.config.max_record_size)
    }

    fn accept(&mut self, records: Vec<Record>, positions: Vec<Position>) -> CaseResult {
        for (record, position) in records.into_iter().zip(positions) {
            self.fresh.push(self.model.all.len());
            self.model.push(record, position)?;
        }
        Ok(())
    }

    async fn apply(&mut self, op: &Op) -> CaseResult {
        self.fresh.clear();
        match op {
            Op::Append(spec) => {
                let record = self.build(*spec);
                let expected = refusal(std::slice::from_ref(&record), false, &self.config);
                let answer = self.wal().append(&record).await.map(|p| vec![p]);
                let records = vec![record];
                if let Some(positions) = check_answer(&records, expected, answer)? {
                    self.accept(records, positions)?;
                }
            }
            Op::AppendBatch(specs) => {
                let records: Vec<Record> = specs.iter().map(|spec| self.build(*spec)).collect();
                let expected = refusal(&records, true, &self.config);
                let answer = self.wal().append_batch(&records).await;
                if let Some(positions) = check_answer(&records, expected, answer)? {
                    self.accept(records, positions)?;
                }
            }
            Op::Sync => {
                self.wal().sync().await.or_fail("sync")?;
                let end = self.model.end();
                let durable = self.wal().durable_end();
                prop_assert!(
                    durable >= end,
                    "after sync the durable end {} is before the last record's end {}",
                    durable,
                    end
                );
            }
            Op::Reopen { close, reconfigure } => {
                if *reconfigure {
                    self.config.fsync_policy = match self.config.fsync_policy {
                        FsyncPolicy::Always => FsyncPolicy::Batch(Duration::from_millis(1)),
                        FsyncPolicy::Batch(_) => FsyncPolicy::Os,
                        FsyncPolicy::Os => FsyncPolicy::Always,
                    };
                    self.config.preallocate = !self.config.preallocate;
                }
                self.reopen(*close).await?;
            }
            Op::CreateReader { slot, from, read } => {
                self.create_reader(*slot, from).await?;
                self.read(*slot, *read).await?;
            }
            Op::Read { slot, read } => self.read(*slot, *read).await?,
            Op::ReadAt(pick) => self.read_at(pick).await?,
            Op::DeleteSegmentsBefore(pick) => self.delete_before(pick).await?,
            Op::Concurrent(tasks) => self.concurrent(tasks).await?,
            Op::Follow(specs) => self.follow(specs).await?,
            Op::Pipelined(batches) => self.pipelined(batches).await?,
        }
        Ok(())
    }

    async fn reopen(&mut self, close: bool) -> CaseResult {
        self.readers.iter_mut().for_each(|slot| *slot = None);
        let wal = self.wal.take().expect("open");
        if close {
            wal.close().await.or_fail("close")?;
        } else {
            drop(wal);
        }
        let (wal, info) = Wal::open(self.config.clone()).await.or_fail("reopen")?;
        self.wal = Some(wal);
        let model = &self.model;
        prop_assert_eq!(
            info.valid_records,
            model.kept().len() as u64,
            "valid_records"
        );
        prop_assert_eq!(info.bytes_truncated, 0, "bytes_truncated on a clean reopen");
        prop_assert!(!info.corruption_detected, "corruption on a clean reopen");
        prop_assert_eq!(info.repaired, None);
        prop_assert_eq!(
            info.last_valid_position,
            model.kept().last().map(|(_, p)| *p),
            "last_valid_position"
        );
        prop_assert_eq!(
            info.segments_scanned,
            model.active - model.first + 1,
            "segments_scanned"
        );
        Ok(())
    }

    /// Resolves a pick to a position and the model's record there, if any.
    fn resolve(&self, pick: &Pick) -> (Position, Option<usize>) {
        let model = &self.model;
        let kept = model.kept();
        match pick {
            Pick::Kept(index) if !kept.is_empty() => {
                let at = model.kept_from + index.index(kept.len());
                (model.all[at].1, Some(at))
            }
            Pick::Gone(index) if !model.gone().is_empty() => {
                let at = index.index(model.gone().len());
                (model.all[at].1, Some(at))
            }
            Pick::Gone(index) if !kept.is_empty() => {
                let at = model.kept_from + index.index(kept.len());
                (model.all[at].1, Some(at))
            }
            Pick::Inside(index) if !kept.is_empty() => {
                let position = kept[index.index(kept.len())].1;
                let inside = Position {
                    segment_id: position.segment_id,
                    offset: position.offset + 1,
                };
                (inside, None)
            }
            Pick::Beyond => (
                Position {
                    segment_id: u64::MAX,
                    offset: 0,
                },
                None,
            ),
            _ => (self.wal().durable_end(), None),
        }
    }

    async fn read_at(&mut self, pick: &Pick) -> CaseResult {
        let (position, at) = self.resolve(pick);
        let answer = self.wal().read_at(position).await;
        match (at, answer) {
            (Some(at), answer) if at < self.model.kept_from => {
                prop_assert!(
                    matches!(answer, Err(WalError::SegmentDeleted(p)) if p == position),
                    "read_at({}) of a deleted record answered {:?}",
                    position,
                    answer.map(|r| describe(&r)).map_err(|e| e.to_string())
                );
            }
            (Some(at), Ok(record)) if record == self.model.all[at].0 => {}
            (Some(at), answer) => {
                return fail(format!(
                    "read_at({position}) answered {:?}, the model has {}",
                    answer.map(|r| describe(&r)).map_err(|e| e.to_string()),
                    describe(&self.model.all[at].0)
                ));
            }
            (None, Err(WalError::NoRecord(p))) if p == position => {}
            (None, answer) => {
                return fail(format!(
                    "read_at({position}), where no record starts, answered {:?}",
                    answer.map(|r| describe(&r)).map_err(|e| e.to_string())
                ));
            }
        }
        Ok(())
    }

    async fn delete_before(&mut self, pick: &Pick) -> CaseResult {
        let (position, _) = self.resolve(pick);
        let previous_first = self.model.first;
        let limit = position.segment_id.min(self.model.active);
        let expected = limit.saturating_sub(previous_first);
        let removed = self
            .wal()
            .delete_segments_before(position)
            .await
            .or_fail("delete_segments_before")?;
        prop_assert_eq!(
            removed,
            expected,
            "delete_segments_before({}) with segments {}..={}",
            position,
            previous_first,
            self.model.active
        );
        self.model.forget_before(limit);
        for id in previous_first..self.model.first {
            let path = tally_wal::segment_path(&self.config.dir, id);
            prop_assert!(!path.exists(), "{} was not removed", path.display());
        }
        Ok(())
    }

    async fn create_reader(&mut self, slot: usize, from: &From) -> CaseResult {
        self.readers[slot] = None;
        let model = &self.model;
        let (position, next, deleted) = match from {
            From::Start => (Position::START, model.kept_from, false),
            From::Kept(index) | From::Gone(index) if model.all.is_empty() => {
                let _ = index;
                (Position::START, model.kept_from, false)
            }
            From::Gone(index) if model.kept_from > 0 => {
                let at = index.index(model.kept_from);
                (model.all[at].1, at, true)
            }
            From::Kept(index) | From::Gone(index) => {
                let at = model.kept_from + index.index(model.kept().len());
                (model.all[at].1, at, false)
            }
            From::End => (self.wal().durable_end(), model.all.len(), false),
        };
        let reader = self.wal().read_from(position).await;
        match (deleted, reader) {
            (false, Ok(reader)) => {
                self.readers[slot] = Some(Slot {
                    reader,
                    next,
                    returned: false,
                })
            }
            (true, Err(WalError::SegmentDeleted(p))) if p == position => {}
            (deleted, reader) => {
                return fail(format!(
                    "read_from({position}) (deleted: {deleted}) answered {:?}",
                    reader.map(|_| "a reader").map_err(|e| e.to_string())
                ));
            }
        }
        Ok(())
    }

    async fn read(&mut self, slot: usize, read: Read) -> CaseResult {
        let Some(mut state) = self.readers[slot].take() else {
            return Ok(());
        };
        let limit = match read {
            Read::Count(n) => usize::from(n),
            Read::ToEnd => usize::MAX,
        };
        let model = &self.model;
        let mut alive = true;
        for _ in 0..limit {
            let from = state.reader.position();
            let answer = state.reader.next_record().await;
            let expected = model.all.get(state.next);
            let deleted = state.next < model.kept_from;
            match (answer, expected) {
                (Ok(None), None) => break,
                (Ok(Some((record, position))), Some((want, at)))
                    if record == *want && position == *at =>
                {
                    state.next += 1;
                    state.returned = true;
                }
                // Its next record was deleted; or it was positioned in a segment deleted
                // since, before it ever opened that segment (it cannot tell whether the
                // segment held more records).
                (Err(WalError::SegmentDeleted(_)), _)
                    if deleted || (!state.returned && from.segment_id < model.first) =>
                {
                    alive = false;
                    break;
                }
                (answer, expected) => {
                    return fail(format!(
                        "reader in slot {slot} at {from} returned {:?}; the model expects {:?} \
                         (record {} of {}, deleted: {deleted})",
                        answer
                            .map(|r| r.map(|(record, p)| (p, describe(&record))))
                            .map_err(|e| e.to_string()),
                        expected.map(|(record, p)| (*p, describe(record))),
                        state.next,
                        model.all.len(),
                    ));
                }
            }
        }
        if alive {
            self.readers[slot] = Some(state);
        }
        Ok(())
    }

    async fn concurrent(&mut self, tasks: &[Vec<Write>]) -> CaseResult {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tasks.len()));
        let mut handles = Vec::new();
        let mut plans = Vec::new();
        for writes in tasks {
            let plan: Vec<(Vec<Record>, bool)> = writes
                .iter()
                .map(|write| match write {
                    Write::One(spec) => (vec![self.build(*spec)], false),
                    Write::Batch(specs) => {
                        (specs.iter().map(|spec| self.build(*spec)).collect(), true)
                    }
                })
                .collect();
            let wal = self.wal().clone();
            let barrier = barrier.clone();
            let work = plan.clone();
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut answers = Vec::new();
                for (records, batch) in &work {
                    answers.push(if *batch {
                        wal.append_batch(records).await
                    } else {
                        wal.append(&records[0]).await.map(|p| vec![p])
                    });
                }
                answers
            }));
            plans.push(plan);
        }
        let mut accepted = Vec::new();
        for (task, (handle, plan)) in handles.into_iter().zip(plans).enumerate() {
            let answers = handle.await.or_fail("appender task")?;
            let mut last: Option<Position> = None;
            for ((records, batch), answer) in plan.into_iter().zip(answers) {
                let expected = refusal(&records, batch, &self.config);
                if let Some(positions) = check_answer(&records, expected, answer)? {
                    if let (Some(last), Some(first)) = (last, positions.first()) {
                        prop_assert!(
                            *first > last,
                            "appender {} got {} after {}: its own order is broken",
                            task,
                            first,
                            last
                        );
                    }
                    last = positions.last().copied().or(last);
                    accepted.extend(records.into_iter().zip(positions));
                }
            }
        }
        accepted.sort_by_key(|(_, position)| *position);
        for pair in accepted.windows(2) {
            prop_assert!(
                pair[0].1 != pair[1].1,
                "two appends got position {}",
                pair[0].1
            );
        }
        let (records, positions) = accepted.into_iter().unzip();
        self.accept(records, positions)
    }

    async fn pipelined(&mut self, batches: &[Vec<Rec>]) -> CaseResult {
        let mut queued = Vec::new();
        for specs in batches {
            let records: Vec<Record> = specs.iter().map(|spec| self.build(*spec)).collect();
            let expected = refusal(&records, true, &self.config);
            let wal = self.wal();
            let ticket = match wal.checked_len(&records) {
                Ok(size) => {
                    let reservation = wal.reserve(size).await.or_fail("reserve")?;
                    Ok(wal
                        .enqueue_batch(&records, reservation)
                        .or_fail("enqueue_batch")?)
                }
                Err(err) => Err(err),
            };
            queued.push((records, expected, ticket));
        }
        for (records, expected, ticket) in queued {
            let answer = match ticket {
                Ok(ticket) => ticket.wait().await,
                Err(err) => Err(err),
            };
            if let Some(positions) = check_answer(&records, expected, answer)? {
                // `Model::push` checks that each batch lands after the ones queued before.
                self.accept(records, positions)?;
            }
        }
        Ok(())
    }

    async fn follow(&mut self, specs: &[Rec]) -> CaseResult {
        let records: Vec<Record> = specs.iter().map(|spec| self.build(*spec)).collect();
        let accepted = records
            .iter()
            .filter(|record| refusal(std::slice::from_ref(*record), false, &self.config).is_none())
            .count();
        let start = self.wal().durable_end();
        let mut reader = self.wal().read_from(start).await.or_fail("read_from")?;
        let follower = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..accepted {
                seen.push(reader.wait_next_record().await);
            }
            seen
        });
        let first = self.model.all.len();
        for record in records {
            let expected = refusal(std::slice::from_ref(&record), false, &self.config);
            let answer = self.wal().append(&record).await.map(|p| vec![p]);
            let records = vec![record];
            if let Some(positions) = check_answer(&records, expected, answer)? {
                self.accept(records, positions)?;
            }
        }
        let seen = follower.await.or_fail("follower task")?;
        for (at, seen) in (first..).zip(seen) {
            let (want, position) = &self.model.all[at];
            match seen {
                Ok((record, p)) if record == *want && p == *position => {}
                other => {
                    return fail(format!(
                        "a reader following the tail from {start} returned {:?}; the model \
                         expects {} at {position}",
                        other
                            .map(|(record, p)| (p, describe(&record)))
                            .map_err(|e| e.to_string()),
                        describe(want)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Waits, under `Batch`, for the timer to make every acknowledged record visible;
    /// under the other policies they must be visible already.
    async fn settle(&self) -> CaseResult {
        let end = self.model.end();
        let wal = self.wal();
        if let FsyncPolicy::Batch(_) = self.config.fsync_policy {
            let started = Instant::now();
            while wal.durable_end() < end {
                prop_assert!(
                    started.elapsed() < VISIBLE_TIMEOUT,
                    "the Batch timer did not make {} durable (durable end {})",
                    end,
                    wal.durable_end()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let durable = wal.durable_end();
        prop_assert!(
            durable >= end,
            "the durable end {} is before the last acknowledged record's end {}",
            durable,
            end
        );
        Ok(())
    }

    /// Checks the log against the model.
    async fn check(&self) -> CaseResult {
        self.settle().await?;
        let wal = self.wal();
        let model = &self.model;
        prop_assert_eq!(wal.durable_end().segment_id, model.active, "active segment");
        prop_assert_eq!(wal.first_segment(), model.first, "first segment");

        let mut reader = wal.read_from(Position::START).await.or_fail("read_from")?;
        let mut read = Vec::new();
        while let Some(entry) = reader.next_record().await.or_fail("full read")? {
            read.push(entry);
        }
        for pair in read.windows(2) {
            prop_assert!(
                pair[0].1 < pair[1].1,
                "positions do not increase: {} then {}",
                pair[0].1,
                pair[1].1
            );
        }
        let kept = model.kept();
        for (i, ((record, position), (want, at))) in read.iter().zip(kept).enumerate() {
            prop_assert!(
                position == at && record == want,
                "full read, record {}: read {} at {}, the model has {} at {}",
                i,
                describe(record),
                position,
                describe(want),
                at
            );
        }
        prop_assert_eq!(read.len(), kept.len(), "records in a full read");

        let mut probes = self.fresh.clone();
        probes.extend([model.kept_from, model.all.len().saturating_sub(1)]);
        for at in probes {
            if let Some((want, position)) = model.all.get(at).filter(|_| at >= model.kept_from) {
                let record = wal.read_at(*position).await.or_fail("read_at")?;
                prop_assert!(
                    record == *want,
                    "read_at({}) returned {}, the model has {}",
                    position,
                    describe(&record),
                    describe(want)
                );
            }
        }

        for id in model.first..=model.active {
            let path = tally_wal::segment_path(&self.config.dir, id);
            let len = std::fs::metadata(&path).or_fail("segment metadata")?.len();
            prop_assert!(
                len <= self.config.max_segment_size,
                "segment {} is {} bytes, over max_segment_size {}",
                id,
                len,
                self.config.max_segment_size
            );
        }
        Ok(())
    }

    /// Every kept record through `read_at`, then a final close and reopen.
    async fn finish(mut self) -> CaseResult {
        for (record, position) in self.model.kept() {
            let read = self.wal().read_at(*position).await.or_fail("read_at")?;
            prop_assert!(read == *record, "read_at({}) differs", position);
        }
        self.reopen(true).await?;
        self.check().await?;
        self.wal
            .take()
            .expect("open")
            .close()
            .await
            .or_fail("close")
    }
}

fn run_case(setup: &Setup, ops: &[Op]) -> CaseResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .or_fail("building the runtime")?;
    let dir = tempfile::tempdir().or_fail("creating a temporary directory")?;
    let config = setup.config(dir.path());
    runtime.block_on(async move {
        let mut harness = Harness::open(config).await?;
        for (step, op) in ops.iter().enumerate() {
            let outcome = tokio::time::timeout(OP_TIMEOUT, async {
                harness.apply(op).await?;
                harness.check().await
            })
            .await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return fail(format!("step {step} ({op:?}): {err}")),
                Err(_) => return fail(format!("step {step} ({op:?}) hung for {OP_TIMEOUT:?}")),
            }
        }
        tokio::time::timeout(OP_TIMEOUT, harness.finish())
            .await
            .or_fail("finishing")?
            .map_err(|err| TestCaseError::fail(format!("after the last step: {err}")))
    })
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        // Shrinking reruns whole cases (with real fsyncs): bound it.
        max_shrink_iters: 2048,
        max_shrink_time: 120_000,
        ..tally_test_support::proptest_config(64)
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_log_matches_an_in_memory_model(setup in setup(), ops in vec(op(), 1..=64)) {
        run_case(&setup, &ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Sequences that found bugs, replayed as plain tests.

fn replay(setup: Setup, ops: Vec<Op>) {
    if let Err(err) = run_case(&setup, &ops) {
        panic!("{err}\nsetup = {setup:#?}\nops = {ops:#?}");
    }
}

fn small_setup(policy: FsyncPolicy) -> Setup {
    Setup {
        segment_kib: 16,
        policy,
        preallocate: false,
        small_groups: false,
        small_queue: false,
        read_buffer_size: 1024 * 1024,
    }
}

const MAX: Rec = Rec {
    value: Size::NearMax(0),
};

/// A reader that had caught up with the tail of a segment skipped the records appended to
/// that segment before it was sealed (its cursor kept the old durable end as its limit).
#[test]
fn a_caught_up_reader_reads_the_rest_of_a_segment_sealed_since() {
    let small = Rec {
        value: Size::Len(100),
    };
    let ops = vec![
        Op::Append(MAX),
        Op::Append(MAX),
        Op::Append(MAX),
        Op::CreateReader {
            slot: 0,
            from: From::Start,
            read: Read::ToEnd,
        },
        Op::Append(small),
        Op::Append(MAX), // rotates
        Op::Read {
            slot: 0,
            read: Read::ToEnd,
        },
    ];
    replay(small_setup(FsyncPolicy::Always), ops);
}

/// The same, when the sealed segment has also been deleted: the reader had read all of it,
/// so it goes on with the next segment (a first fix, reopening the segment by its path,
/// failed here with `SegmentDeleted`).
#[test]
fn a_caught_up_reader_goes_on_past_a_segment_sealed_and_deleted_since() {
    let ops = vec![
        Op::Append(MAX),
        Op::Append(MAX),
        Op::Append(MAX),
        Op::CreateReader {
            slot: 0,
            from: From::Start,
            read: Read::ToEnd,
        },
        Op::Append(MAX), // rotates
        Op::DeleteSegmentsBefore(Pick::End),
        Op::Read {
            slot: 0,
            read: Read::ToEnd,
        },
    ];
    replay(small_setup(FsyncPolicy::Always), ops);
}

/// Under `Os`, `append` answered before the writer published the new end, so reading a
/// record right after its append could miss it (a race; a few hundred appends hit it).
#[test]
fn under_os_an_appended_record_is_readable_when_append_returns() {
    let ops = (0..300u16)
        .map(|n| {
            Op::Append(Rec {
                value: Size::Len(8 + n % 50),
            })
        })
        .collect();
    replay(small_setup(FsyncPolicy::Os), ops);
}

/// Concurrent appends combined into one group larger than the room in a segment grew it
/// far past `max_segment_size` (the group limit was only `max_group_size`).
#[test]
fn concurrent_groups_stay_within_max_segment_size() {
    let tasks: Vec<Vec<Write>> = (0..8)
        .map(|_| (0..5).map(|_| Write::Batch(vec![MAX, MAX])).collect())
        .collect();
    for policy in [FsyncPolicy::Always, FsyncPolicy::Os] {
        replay(small_setup(policy), vec![Op::Concurrent(tasks.clone())]);
    }
}

/// `read_at` where no record starts (inside a record or a group header) answered an I/O
/// error ("unexpected end of file") when the garbage length reached past the end of the
/// file, after allocating a buffer of that length (up to 1 GiB); it must answer
/// `NoRecord`. Every offset of a small log is tried.
#[test]
fn read_at_where_no_record_starts_is_no_record() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_setup(FsyncPolicy::Always).config(dir.path());
        let (wal, _) = Wal::open(config.clone()).await.unwrap();
        let mut starts = std::collections::HashMap::new();
        for serial in 0..12u64 {
            let spec = Rec {
                value: Size::Len((serial * 5 + serial * 37 % 300) as u16),
            };
            let record = build(spec, serial, config.max_record_size);
            starts.insert(wal.append(&record).await.unwrap(), record);
        }
        let end = wal.durable_end();
        for offset in SEGMENT_HEADER_LEN..end.offset {
            let position = Position {
                segment_id: end.segment_id,
                offset,
            };
            let answer = wal.read_at(position).await;
            match starts.get(&position) {
                Some(record) => assert_eq!(answer.unwrap(), *record),
                None => assert!(
                    matches!(answer, Err(WalError::NoRecord(p)) if p == position),
                    "read_at({position}) answered {:?}",
                    answer.map(|r| describe(&r))
                ),
            }
        }
        wal.close().await.unwrap();
    });
}
