//! Decoders never panic: random bytes and damaged valid encodings (flipped bytes, cuts,
//! extensions, splices) fed to the frame, segment header and group header decoders and to
//! recovery itself (`Wal::open` of a damaged log on disk) give a value or an error, never a
//! panic or a hang, and never an allocation sized by a damaged length field. On every
//! damaged log, `verify` predicts exactly what `open` does, and changes nothing.
//!
//! A counting allocator records the largest single allocation of the test binary; the
//! tests assert it stays far below what a length field could claim (up to 4 GiB).
//! `PROPTEST_CASES` raises the number of cases.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tally_test_support::{copy_dir, proptest_config, segment_files, single_worker_runtime};
use tally_wal::format::{
    FrameError, GROUP_HEADER_LEN, GroupHeader, MAX_FRAME_BODY, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SegmentHeader, check_frame, decode_frame, encode_frame, get_varint,
};
use tally_wal::{Record, RecoveryInfo, VerifyStatus, Wal, WalConfig, WalError, verify};

/// Records the largest single allocation made by this test binary.
struct CountingAllocator;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is `System`'s too.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Far above what the decoders and recovery legitimately need here (recovery reads in
/// 4 MiB chunks), far below what a damaged length field can claim.
const ALLOCATION_LIMIT: usize = 64 * 1024 * 1024;

fn assert_no_absurd_allocation() -> Result<(), TestCaseError> {
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    prop_assert!(
        largest <= ALLOCATION_LIMIT,
        "an allocation of {largest} bytes was made"
    );
    Ok(())
}

/// A damage to a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at (offset modulo length) with a non-zero mask.
    Flip { at: usize, mask: u8 },
    /// Overwrite the byte at (offset modulo length).
    Set { at: usize, value: u8 },
    /// Overwrite four bytes with a little-endian u32 (a length field gone wild).
    SetU32 { at: usize, value: u32 },
    /// Keep only the first (offset modulo length + 1) bytes.
    Truncate { at: usize },
    /// Append bytes.
    Extend { bytes: Vec<u8> },
    /// Copy `len` bytes from one offset over another.
    Splice { from: usize, to: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => (
            any::<usize>(),
            prop_oneof![Just(u32::MAX), Just(1 << 30), Just((1 << 30) + 1), any::<u32>()]
        )
            .prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => vec(any::<u8>(), 1..64).prop_map(|bytes| Mutation::Extend { bytes }),
        1 => (any::<usize>(), any::<usize>(), 1..64usize)
            .prop_map(|(from, to, len)| Mutation::Splice { from, to, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Extend { bytes: more } = mutation {
            bytes.extend_from_slice(more);
        }
        return;
    }
    let len = bytes.len();
    match *mutation {
        Mutation::Flip { at, mask } => bytes[at % len] ^= mask,
        Mutation::Set { at, value } => bytes[at % len] = value,
        Mutation::SetU32 { at, value } => {
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at % len + i) {
                    *slot = byte;
                }
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % len),
        Mutation::Extend { bytes: ref more } => bytes.extend_from_slice(more),
        Mutation::Splice { from, to, len: n } => {
            let from = from % len;
            let to = to % len;
            let n = n.min(len - from).min(len - to);
            bytes.copy_within(from..from + n, to);
        }
    }
}

/// A record with a value of the given content.
fn record() -> impl Strategy<Value = Record> {
    vec(any::<u8>(), 0..340).prop_map(Record::new)
}

fn encoded(record: &Record) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(record, &mut out);
    out.to_vec()
}

/// Checks one frame decode: an `Ok` describes a frame inside the buffer.
fn check_frame_outcome(buf: &[u8]) -> Result<(), TestCaseError> {
    match check_frame(buf, MAX_FRAME_BODY) {
        Ok(layout) => {
            prop_assert!(layout.value_start <= layout.len);
            prop_assert!(layout.len <= buf.len());
            // The reserved key length of a frame that passes is 0.
            let key_len = get_varint(&buf[RECORD_HEADER_LEN + 1..]).map(|(len, _)| len);
            prop_assert_eq!(key_len, Some(0));
            let (record, len) = decode_frame(&Bytes::copy_from_slice(buf), MAX_FRAME_BODY)
                .map_err(|e| TestCaseError::fail(format!("check passed, decode failed: {e:?}")))?;
            prop_assert_eq!(len, layout.len);
            prop_assert_eq!(&record.value[..], &buf[layout.value_start..layout.len]);
        }
        Err(FrameError::Incomplete { needed }) => {
            // Whatever is claimed, the decoder asks for at most a header plus the limit.
            prop_assert!(needed > buf.len());
            prop_assert!(needed as u64 <= RECORD_HEADER_LEN as u64 + MAX_FRAME_BODY);
        }
        Err(FrameError::Invalid(reason)) => prop_assert!(!reason.is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn frames_from_random_bytes(bytes in vec(any::<u8>(), 0..600)) {
        check_frame_outcome(&bytes)?;
        let _ = get_varint(&bytes);
        assert_no_absurd_allocation()?;
    }

    #[test]
    fn damaged_frames(record in record(), mutations in vec(mutation(), 1..4)) {
        let mut bytes = encoded(&record);
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_frame_outcome(&bytes)?;
        // Damage is noticed: a frame that still decodes is the original one or ends
        // before the damage (a cut or an extension past its end).
        if let Ok((decoded, _)) = decode_frame(&Bytes::from(bytes), MAX_FRAME_BODY) {
            let only_past_end = mutations.iter().all(|m| matches!(m, Mutation::Extend { .. }));
            if only_past_end {
                prop_assert_eq!(decoded, record);
            }
        }
        assert_no_absurd_allocation()?;
    }

    #[test]
    fn headers_from_random_and_damaged_bytes(
        raw in vec(any::<u8>(), 0..80),
        segment_id in any::<u64>(),
        body_len in any::<u32>(),
        record_count in any::<u32>(),
        synced_offset in any::<u64>(),
        mutations in vec(mutation(), 0..3),
    ) {
        let _ = SegmentHeader::decode(&raw);
        let _ = GroupHeader::decode(&raw);

        let segment = SegmentHeader { segment_id };
        let mut bytes = segment.encode().to_vec();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        match SegmentHeader::decode(&bytes) {
            Ok(decoded) if mutations.is_empty() => prop_assert_eq!(decoded, segment),
            Ok(_) => prop_assert!(bytes.len() >= SEGMENT_HEADER_LEN as usize),
            Err(reason) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(!mutations.is_empty());
            }
        }

        let group = GroupHeader { body_len, record_count, synced_offset, segment_id };
        let mut bytes = group.encode().to_vec();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        match GroupHeader::decode(&bytes) {
            Ok(decoded) if mutations.is_empty() => prop_assert_eq!(decoded, group),
            Ok(_) => prop_assert!(bytes.len() >= GROUP_HEADER_LEN),
            Err(reason) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(!mutations.is_empty());
            }
        }
    }
}

#[test]
fn a_length_prefix_of_4_gib_is_refused_not_allocated() {
    for claimed in [u32::MAX, 1 << 31, (1 << 30) + 1] {
        let mut frame = claimed.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 60]);
        assert_eq!(
            check_frame(&frame, MAX_FRAME_BODY),
            Err(FrameError::Invalid("record frame length exceeds the limit"))
        );
    }
    // At the limit the decoder only reports how much it would need.
    let mut frame = (MAX_FRAME_BODY as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&[0; 60]);
    assert!(matches!(
        check_frame(&frame, MAX_FRAME_BODY),
        Err(FrameError::Incomplete { .. })
    ));
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) <= ALLOCATION_LIMIT);
}

// Recovery of damaged logs on disk.

/// Small segments, so that the base log spans several of them.
fn tiny_config(dir: &Path) -> WalConfig {
    WalConfig {
        max_segment_size: 8 * 1024,
        max_record_size: 2 * 1024,
        max_batch_size: 4 * 1024,
        ..common::small_config(dir)
    }
}

/// A closed log of 60 records over several preallocated segments, written once.
fn base_log() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        single_worker_runtime().block_on(async {
            let (wal, _) = Wal::open(tiny_config(dir.path())).await.unwrap();
            for n in 0..60 {
                wal.append(&common::numbered(n)).await.unwrap();
            }
            wal.close().await.unwrap();
        });
        dir
    })
    .path()
}

/// A damage to the files of a log.
#[derive(Debug, Clone)]
enum FileDamage {
    /// Mutate segment (index modulo count).
    Mutate { segment: usize, mutation: Mutation },
    /// Remove segment (index modulo count).
    Remove { segment: usize },
    /// Replace segment (index modulo count) with random bytes.
    Replace { segment: usize, bytes: Vec<u8> },
}

fn file_damage() -> impl Strategy<Value = FileDamage> {
    prop_oneof![
        12 => (any::<usize>(), mutation())
            .prop_map(|(segment, mutation)| FileDamage::Mutate { segment, mutation }),
        1 => any::<usize>().prop_map(|segment| FileDamage::Remove { segment }),
        1 => (any::<usize>(), vec(any::<u8>(), 0..200))
            .prop_map(|(segment, bytes)| FileDamage::Replace { segment, bytes }),
    ]
}

/// Opening within this long is not a hang (the log is a few dozen KiB).
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// What one `Wal::open` did: recovered (and closed again), or refused as corrupt (the file
/// and offset). Anything else fails the case.
async fn open_outcome(
    config: WalConfig,
) -> Result<Result<RecoveryInfo, (PathBuf, u64)>, TestCaseError> {
    match tokio::time::timeout(OPEN_TIMEOUT, Wal::open(config)).await {
        Err(_) => Err(TestCaseError::fail("Wal::open hung")),
        Ok(Ok((wal, info))) => {
            wal.close()
                .await
                .map_err(|e| TestCaseError::fail(format!("close after open: {e}")))?;
            Ok(Ok(info))
        }
        Ok(Err(WalError::Corrupt {
            file,
            offset,
            reason,
        })) => {
            prop_assert!(!reason.is_empty());
            Ok(Err((file, offset)))
        }
        Ok(Err(other)) => Err(TestCaseError::fail(format!(
            "expected Ok or Corrupt, got {other}"
        ))),
    }
}

/// Every file of the directory and its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn recovery_of_damaged_logs(damages in vec(file_damage(), 1..4), repair in any::<bool>()) {
        let base = base_log();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base, dir.path());
        for damage in &damages {
            let paths = segment_files(dir.path());
            if paths.is_empty() {
                break;
            }
            match damage {
                FileDamage::Mutate { segment, mutation } => {
                    let path = &paths[segment % paths.len()];
                    let mut bytes = std::fs::read(path).unwrap();
                    apply(&mut bytes, mutation);
                    std::fs::write(path, bytes).unwrap();
                }
                FileDamage::Remove { segment } => {
                    std::fs::remove_file(&paths[segment % paths.len()]).unwrap();
                }
                FileDamage::Replace { segment, bytes } => {
                    std::fs::write(&paths[segment % paths.len()], bytes).unwrap();
                }
            }
        }
        // `verify` predicts what `open` does, and changes nothing.
        let config = tiny_config(dir.path());
        let before = files(dir.path());
        let report = verify(&config, &mut |_, _| {})
            .map_err(|e| TestCaseError::fail(format!("verify failed: {e}")))?;
        prop_assert!(files(dir.path()) == before, "verify changed the directory");
        let config = WalConfig { repair, ..config };
        single_worker_runtime().block_on(async {
            let first = open_outcome(config.clone()).await?;
            match (&report.status, &first) {
                (VerifyStatus::Corrupt { file, offset, bytes_cut, .. }, Ok(info)) => {
                    prop_assert!(repair, "open accepted what verify called corrupt");
                    prop_assert_eq!(info.repaired.as_ref().map(|r| (&r.file, r.offset)), Some((file, *offset)));
                    prop_assert_eq!(info.bytes_truncated, *bytes_cut);
                }
                (VerifyStatus::Corrupt { file, offset, .. }, Err(at)) => {
                    prop_assert!(!repair, "open with repair failed");
                    prop_assert_eq!((file, *offset), (&at.0, at.1));
                }
                (VerifyStatus::TornTail { bytes, .. }, Ok(info)) => {
                    prop_assert_eq!(info.bytes_truncated, *bytes);
                }
                (VerifyStatus::Clean, Ok(info)) => prop_assert_eq!(info.bytes_truncated, 0),
                (status, Err(at)) => {
                    return Err(TestCaseError::fail(format!(
                        "verify said {status:?}, open failed at {at:?}"
                    )));
                }
            }
            if let Ok(info) = first {
                prop_assert_eq!(info.valid_records, report.records);
                // What one open accepted, the next accepts unchanged.
                let again = open_outcome(WalConfig { repair: false, ..config }).await?;
                prop_assert_eq!(again.map(|info| info.valid_records), Ok(report.records));
            }
            Ok(())
        })?;
        assert_no_absurd_allocation()?;
    }
}
