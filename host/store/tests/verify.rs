//! `tally_store::verify`: both logs scanned and every envelope checked without changing
//! anything; with repair, a damaged log is cut and the store opens with the prefix.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, GlobalPosition, NewEvent, RecordedEvent,
    StoreConfig, StoreError, StoreLog, StoreVerifyReport, StreamId, VerifyProgress, verify_with,
};
use tally_test_support::copy_dir;
use tally_wal::{Position, VerifyStatus, WalConfig, WalError, segment_path};

/// Small, unpreallocated segments, so the event log spans several.
fn config(dir: &Path) -> StoreConfig {
    common::small_segments(dir, 16 * 1024)
}

/// 120 appends of 1 to 3 events over 5 streams, a few snapshots; closed.
async fn write_store(dir: &Path) -> Vec<RecordedEvent> {
    let (store, _) = EventStore::open(config(dir)).await.unwrap();
    for n in 0..120u64 {
        let stream = StreamId::new("account", format!("a{}", n % 5));
        let events = (0..=n % 3)
            .map(|i| NewEvent::new("Deposited", format!(r#"{{"amount":{}}}"#, n * 10 + i)))
            .collect();
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                events,
                AppendOptions::command(format!("c{n}")),
            )
            .await
            .unwrap();
        if n % 30 == 29 {
            let version = store.stream_version(&stream);
            store
                .save_snapshot(&stream, version, "t@1", Bytes::from_static(b"state"))
                .await
                .unwrap();
        }
    }
    let all = store.read_all(GlobalPosition::START, 10_000).await.unwrap();
    store.close().await.unwrap();
    all
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for log in ["events", "snapshots"] {
        for entry in std::fs::read_dir(dir.join(log)).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Verifies without repair, checking that nothing changed and progress was reported.
async fn verify_unchanged(dir: &Path) -> StoreVerifyReport {
    let before = files(dir);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = seen.clone();
    let report = verify_with(config(dir), false, move |p: VerifyProgress| {
        progress.lock().unwrap().push(p)
    })
    .await
    .unwrap();
    assert!(files(dir) == before, "verify changed the store");
    let seen = seen.lock().unwrap();
    for log in [StoreLog::Events, StoreLog::Snapshots] {
        let last = seen
            .iter()
            .rfind(|p| p.log == log)
            .expect("progress of each log");
        assert_eq!(last.scanned, last.total);
    }
    report
}

fn copy_store(from: &Path, to: &Path) {
    for log in ["events", "snapshots"] {
        std::fs::create_dir(to.join(log)).unwrap();
        copy_dir(&from.join(log), &to.join(log));
    }
}

#[tokio::test]
async fn a_clean_store_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let events = write_store(dir.path()).await;
    let report = verify_unchanged(dir.path()).await;
    assert!(report.is_clean() && report.opens(), "{report:?}");
    assert_eq!(report.event_count, events.len() as u64);
    assert_eq!(report.events.records, events.len() as u64);
    assert_eq!(report.streams, 5);
    assert_eq!(report.snapshot_count, 4);
    assert!(report.events.segments > 1);
    let (store, open) = EventStore::open(config(dir.path())).await.unwrap();
    assert_eq!(open.events, report.event_count);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_torn_tail_is_reported_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let events = write_store(dir.path()).await;
    let end = verify_unchanged(dir.path())
        .await
        .events
        .durable_end
        .unwrap();
    let path = segment_path(&dir.path().join("events"), end.segment_id);
    // Cut into the close marker: a write a crash left unfinished.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(end.offset - 7)
        .unwrap();
    let report = verify_unchanged(dir.path()).await;
    assert!(
        matches!(&report.events.status, VerifyStatus::TornTail { file, .. } if *file == path),
        "{:?}",
        report.events.status
    );
    assert!(!report.is_clean() && report.opens());
    assert_eq!(report.event_count, events.len() as u64);

    let repaired = verify_with(config(dir.path()), true, |_| {}).await.unwrap();
    let info = repaired.events_repair.expect("the torn tail was cut");
    assert!(info.bytes_truncated > 0);
    assert!(repaired.snapshots_repair.is_none());
    assert!(verify_unchanged(dir.path()).await.is_clean());
}

#[tokio::test]
async fn a_flipped_byte_is_reported_as_open_reports_it_and_repair_keeps_the_prefix() {
    let source = tempfile::tempdir().unwrap();
    let events = write_store(source.path()).await;
    let dir = tempfile::tempdir().unwrap();
    copy_store(source.path(), dir.path());
    // A byte in the middle of segment 1 of the event log.
    let path = segment_path(&dir.path().join("events"), 1);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (len / 2) as usize;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();

    let report = verify_unchanged(dir.path()).await;
    let VerifyStatus::Corrupt {
        file,
        offset,
        reason,
        bytes_cut,
    } = report.events.status.clone()
    else {
        panic!("expected corruption, got {:?}", report.events.status);
    };
    assert_eq!(file, path);
    assert!(offset <= at as u64 && bytes_cut > 0);
    assert!(!report.opens());

    // `EventStore::open` names the same file and offset.
    match EventStore::open(config(dir.path())).await.unwrap_err() {
        StoreError::Wal(WalError::Corrupt {
            file: open_file,
            offset: open_offset,
            reason: open_reason,
        }) => assert_eq!(
            (open_file, open_offset, open_reason),
            (file, offset, reason)
        ),
        other => panic!("expected WAL corruption, got {other}"),
    }

    let repaired = verify_with(config(dir.path()), true, |_| {}).await.unwrap();
    assert!(repaired.opens());
    let info = repaired
        .events_repair
        .clone()
        .expect("the event log was cut");
    assert_eq!(info.bytes_truncated, bytes_cut);
    assert_eq!(info.valid_records, report.events.records);
    let cut = info.repaired.expect("the cut is reported");
    assert_eq!((cut.file, cut.offset), (path, offset));

    let (store, open) = EventStore::open(config(dir.path())).await.unwrap();
    assert_eq!(open.events, report.event_count);
    assert!(open.events > 0 && open.events < events.len() as u64);
    let kept = store.read_all(GlobalPosition::START, 10_000).await.unwrap();
    assert_eq!(kept[..], events[..kept.len()]);
    store.close().await.unwrap();
    assert!(verify_unchanged(dir.path()).await.is_clean());
}

#[tokio::test]
async fn an_envelope_the_wal_accepts_but_the_store_cannot_use_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path()).await;
    // Rewrite the global position of the third record (and fix its frame checksum).
    let path = segment_path(&dir.path().join("events"), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut positions = Vec::new();
    let events_config = WalConfig {
        dir: dir.path().join("events"),
        ..config(dir.path()).wal
    };
    tally_wal::verify_records(&events_config, &mut |_, _| {}, &mut |at, _| {
        positions.push(at)
    })
    .unwrap();
    assert_eq!(positions[2].segment_id, 0);
    let frame = positions[2].offset as usize;
    let len = u32::from_le_bytes(bytes[frame..frame + 4].try_into().unwrap()) as usize;
    // flags, empty key length, then the envelope: version byte, then the position.
    bytes[frame + 10 + 1] ^= 0x40;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[frame..frame + 4]),
        &bytes[frame + 8..frame + 8 + len],
    );
    bytes[frame + 4..frame + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();

    let report = verify_unchanged(dir.path()).await;
    assert_eq!(report.events.status, VerifyStatus::Clean);
    let problem = report.problem.clone().expect("the envelope is a problem");
    assert_eq!(problem.log, StoreLog::Events);
    assert_eq!(
        problem.position.map(|p: Position| (p.segment_id, p.offset)),
        Some((0, frame as u64))
    );
    assert!(!report.opens());
    match EventStore::open(config(dir.path())).await.unwrap_err() {
        StoreError::Corrupt(reason) => assert_eq!(reason, problem.reason),
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[tokio::test]
async fn an_open_store_cannot_be_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EventStore::open(config(dir.path())).await.unwrap();
    let err = verify_with(config(dir.path()), false, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Wal(WalError::Locked { .. })),
        "{err}"
    );
    let err = verify_with(config(dir.path()), true, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Wal(WalError::Locked { .. })));
    store.close().await.unwrap();
    assert!(verify_unchanged(dir.path()).await.is_clean());
}
