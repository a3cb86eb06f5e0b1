//! A damaged envelope that the WAL accepts (its frame checksum recomputed after the damage)
//! must be refused by the store's decoder: `EventStore::open` returns `StoreError::Corrupt`
//! (or opens, when the damage leaves a consistent log), and never panics. The same for the
//! snapshot log. `PROPTEST_CASES` raises the number of cases.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StoreError, StreamId,
};
use tally_test_support::{proptest_config, segment_files, single_worker_runtime};

/// Small, unpreallocated segments: the logs are a few KiB, cheap to copy per case.
fn config(dir: &Path) -> StoreConfig {
    common::small_segments(dir, 64 * 1024)
}

/// A closed store with single- and multi-event appends to a few streams, command ids,
/// metadata, and snapshots; written once.
fn base_store() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        single_worker_runtime().block_on(async {
            let (store, _) = EventStore::open(config(dir.path())).await.unwrap();
            for n in 0..12u64 {
                let stream = StreamId::new("account", format!("a{}", n % 3));
                let events = (0..=n % 3)
                    .map(|i| {
                        NewEvent::new("Deposited", format!(r#"{{"amount":{}}}"#, n * 10 + i))
                            .with_metadata(r#"{"user":"ann"}"#)
                    })
                    .collect();
                let options = AppendOptions::command(format!("cmd-{n}"));
                store
                    .append(&stream, ExpectedVersion::Any, events, options)
                    .await
                    .unwrap();
                if n % 4 == 3 {
                    let version = store.stream_version(&stream);
                    store
                        .save_snapshot(&stream, version, "test@1", Bytes::from(vec![n as u8; 20]))
                        .await
                        .unwrap();
                }
            }
            store.close().await.unwrap();
        });
        dir
    })
    .path()
}

/// Where a record's value lies in a segment file, and where its frame starts.
#[derive(Debug, Clone, Copy)]
struct ValueAt {
    frame: usize,
    value_start: usize,
    value_end: usize,
}

/// The values of every record of a segment file (format in `host/wal/FORMAT.md`).
fn record_values(bytes: &[u8]) -> Vec<ValueAt> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut values = Vec::new();
    let mut at = 32;
    while at + 32 <= bytes.len() && &bytes[at..at + 4] == b"TGRP" {
        let body_len = u32_at(at + 8);
        let count = u32_at(at + 12);
        let mut frame = at + 32;
        for _ in 0..count {
            let len = u32_at(frame);
            // flags (1 byte), an empty key (varint 0, 1 byte), then the value.
            assert_eq!(&bytes[frame + 8..frame + 10], &[0, 0], "a store record");
            values.push(ValueAt {
                frame,
                value_start: frame + 10,
                value_end: frame + 8 + len,
            });
            frame += 8 + len;
        }
        at += 32 + body_len;
    }
    values
}

/// Recomputes the checksum of the frame at `frame` (CRC32C of `len` then the body).
fn fix_frame_crc(bytes: &mut [u8], frame: usize) {
    let len = u32::from_le_bytes(bytes[frame..frame + 4].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[frame..frame + 4]),
        &bytes[frame + 8..frame + 8 + len],
    );
    bytes[frame + 4..frame + 8].copy_from_slice(&crc.to_le_bytes());
}

/// An in-place damage of a value: (kind, offset, value). Offsets are taken modulo the
/// value's length; the length never changes, so the WAL's framing stays valid.
fn damage() -> impl Strategy<Value = (u8, usize, u64)> {
    (0..4u8, any::<usize>(), any::<u64>())
}

fn apply(value: &mut [u8], (kind, at, new): (u8, usize, u64)) {
    let at = at % value.len();
    match kind {
        // Flip bits of one byte.
        0 => value[at] ^= (new as u8) | 1,
        // Overwrite eight bytes (a position, version or timestamp).
        1 => {
            for (slot, byte) in value[at..].iter_mut().zip(new.to_le_bytes()) {
                *slot = byte;
            }
        }
        // A length varint claiming a huge length (0xff bytes continue, the last ends it).
        2 => {
            let n = (new % 10) as usize + 1;
            for (i, slot) in value[at..].iter_mut().take(n).enumerate() {
                *slot = if i + 1 == n { 0x0f } else { 0xff };
            }
        }
        // Copy a part of the value over another.
        _ => {
            let to = (new as usize) % value.len();
            let n = 12.min(value.len() - at).min(value.len() - to);
            value.copy_within(at..at + n, to);
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn a_damaged_record_with_a_valid_checksum_is_refused_not_a_panic(
        snapshots in any::<bool>(),
        record in any::<usize>(),
        damages in vec(damage(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for log in ["events", "snapshots"] {
            std::fs::create_dir(dir.path().join(log)).unwrap();
            for path in segment_files(&base_store().join(log)) {
                std::fs::copy(&path, dir.path().join(log).join(path.file_name().unwrap()))
                    .unwrap();
            }
        }
        let log = dir.path().join(if snapshots { "snapshots" } else { "events" });
        let path = segment_files(&log).remove(0);
        let mut bytes = std::fs::read(&path).unwrap();
        let values = record_values(&bytes);
        prop_assert!(!values.is_empty());
        let at = values[record % values.len()];
        for &damage in &damages {
            apply(&mut bytes[at.value_start..at.value_end], damage);
        }
        fix_frame_crc(&mut bytes, at.frame);
        std::fs::write(&path, &bytes).unwrap();

        single_worker_runtime().block_on(async {
            match EventStore::open(config(dir.path())).await {
                Ok((store, _)) => store.close().await.unwrap(),
                Err(StoreError::Corrupt(reason)) => prop_assert!(!reason.is_empty()),
                Err(other) => {
                    return Err(TestCaseError::fail(format!("expected Corrupt, got {other}")));
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn a_wrong_position_with_a_valid_checksum_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    for log in ["events", "snapshots"] {
        std::fs::create_dir(dir.path().join(log)).unwrap();
        for path in segment_files(&base_store().join(log)) {
            std::fs::copy(&path, dir.path().join(log).join(path.file_name().unwrap())).unwrap();
        }
    }
    let path = segment_files(&dir.path().join("events")).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = record_values(&bytes)[2];
    // The global position follows the envelope version byte.
    bytes[at.value_start + 1] ^= 0x40;
    fix_frame_crc(&mut bytes, at.frame);
    std::fs::write(&path, &bytes).unwrap();
    let err = single_worker_runtime()
        .block_on(EventStore::open(config(dir.path())))
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
}
