//! `verify` reports what `open` would do (keep, cut a torn tail, or fail on corruption with
//! a file and offset) and changes nothing on disk.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{numbered, read_all, reopen_and_read, small_config};
use tally_test_support::{copy_dir, flip_bit};
use tally_wal::format::GROUP_HEADER_LEN;
use tally_wal::{
    Position, Record, VerifyReport, VerifyStatus, Wal, WalConfig, WalError, segment_path, verify,
    verify_records,
};

/// Appends 300 records one by one (several segments), closes, returns them.
async fn write_log(dir: &Path) -> Vec<(Record, Position)> {
    let (wal, _) = Wal::open(small_config(dir)).await.unwrap();
    let mut appended = Vec::new();
    for n in 0..300 {
        let record = numbered(n);
        let position = wal.append(&record).await.unwrap();
        appended.push((record, position));
    }
    wal.close().await.unwrap();
    assert!(appended.last().unwrap().1.segment_id >= 2);
    appended
}

/// Every file of the directory and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Verifies, checking that nothing changed on disk and that progress ended at the total.
fn verify_unchanged(config: &WalConfig) -> VerifyReport {
    let before = snapshot(&config.dir);
    let mut last = (0, u64::MAX);
    let mut records = Vec::new();
    let report = verify_records(
        config,
        &mut |scanned, total| {
            assert!(scanned <= total);
            last = (scanned, total);
        },
        &mut |position, record| records.push((record, position)),
    )
    .unwrap();
    assert_eq!(
        snapshot(&config.dir),
        before,
        "verify changed the directory"
    );
    assert_eq!(last, (report.file_bytes, report.file_bytes));
    assert_eq!(records.len() as u64, report.records);
    assert_eq!(records.last().map(|(_, at)| *at), report.last_record);
    report
}

#[tokio::test]
async fn a_clean_log_verifies_clean_and_matches_open() {
    let dir = tempfile::tempdir().unwrap();
    let appended = write_log(dir.path()).await;
    let config = small_config(dir.path());
    let mut seen = Vec::new();
    let report = verify_records(&config, &mut |_, _| {}, &mut |at, record| {
        seen.push((record, at))
    })
    .unwrap();
    assert_eq!(
        seen, appended,
        "verify hands on exactly the records appended"
    );
    let report_again = verify_unchanged(&config);
    assert_eq!(report, report_again);
    assert_eq!(report.status, VerifyStatus::Clean);
    assert!(report.opens());
    assert_eq!(report.records, appended.len() as u64);
    assert_eq!(report.first_segment, Some(0));
    assert_eq!(report.segments, appended.last().unwrap().1.segment_id + 1);
    assert_eq!(report.last_record, Some(appended.last().unwrap().1));

    let (wal, info) = Wal::open(config.clone()).await.unwrap();
    assert_eq!(info.valid_records, report.records);
    assert_eq!(Some(wal.durable_end()), report.durable_end);
    wal.close().await.unwrap();
}

#[tokio::test]
async fn an_empty_or_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let report = verify(&small_config(dir.path()), &mut |_, _| {}).unwrap();
    assert_eq!(report.status, VerifyStatus::Clean);
    assert_eq!((report.segments, report.records), (0, 0));
    assert_eq!(report.durable_end, None);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let missing = dir.path().join("nothing-here");
    let err = verify(&small_config(&missing), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, WalError::Io { .. }), "{err}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_torn_tail_is_reported_as_open_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let appended = write_log(dir.path()).await;
    let config = small_config(dir.path());
    let clean = verify(&config, &mut |_, _| {}).unwrap();
    let end = clean.durable_end.unwrap();
    // Cut into the close marker (the last group): the unfinished write of a crash.
    let path = segment_path(dir.path(), end.segment_id);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(end.offset - 5).unwrap();
    drop(file);

    let report = verify_unchanged(&config);
    let marker = end.offset - GROUP_HEADER_LEN as u64;
    let VerifyStatus::TornTail {
        file,
        offset,
        bytes,
    } = report.status.clone()
    else {
        panic!("expected a torn tail, got {:?}", report.status);
    };
    assert_eq!((file, offset), (path.clone(), marker));
    // Up to the last non-zero byte of what is left of the marker.
    assert!(bytes > 0 && bytes <= GROUP_HEADER_LEN as u64 - 5, "{bytes}");
    assert!(report.opens());
    assert_eq!(report.records, appended.len() as u64);
    assert_eq!(
        report.durable_end,
        Some(Position {
            segment_id: end.segment_id,
            offset: marker
        })
    );

    let (recovered, info) = reopen_and_read(config.clone()).await;
    assert_eq!(info.bytes_truncated, bytes);
    assert_eq!(recovered, appended);
    assert_eq!(
        verify(&config, &mut |_, _| {}).unwrap().status,
        VerifyStatus::Clean
    );
}

#[tokio::test]
async fn a_flipped_byte_is_reported_with_the_file_and_offset_open_names() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    // One damage in an older segment, one in the middle of the newest.
    let newest = appended.last().unwrap().1.segment_id;
    for segment in [1, newest] {
        let in_segment: Vec<_> = appended
            .iter()
            .filter(|(_, at)| at.segment_id == segment)
            .collect();
        let victim = in_segment[in_segment.len() / 2].1;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        let path = segment_path(dir.path(), segment);
        flip_bit(&path, victim.offset + 20, 4);
        let config = small_config(dir.path());

        let report = verify_unchanged(&config);
        let VerifyStatus::Corrupt {
            file,
            offset,
            reason,
            bytes_cut,
        } = &report.status
        else {
            panic!("expected corruption, got {:?}", report.status);
        };
        assert!(!report.opens());
        assert_eq!((file, *offset), (&path, victim.offset));
        assert!(!reason.is_empty());
        assert!(*bytes_cut > 0);

        // `open` names the same file and offset.
        match Wal::open(config.clone()).await.unwrap_err() {
            WalError::Corrupt {
                file: open_file,
                offset: open_offset,
                reason: open_reason,
            } => assert_eq!(
                (&open_file, open_offset, &open_reason),
                (file, *offset, reason)
            ),
            other => panic!("expected corruption, got {other}"),
        }

        // The repair keeps exactly what verify counted, and cuts what it said.
        let repair = WalConfig {
            repair: true,
            ..config.clone()
        };
        let (wal, info) = Wal::open(repair).await.unwrap();
        assert_eq!(info.valid_records, report.records);
        assert_eq!(info.bytes_truncated, *bytes_cut);
        assert_eq!(Some(wal.durable_end()), report.durable_end);
        let kept = read_all(&wal).await;
        wal.close().await.unwrap();
        assert_eq!(kept[..], appended[..kept.len()]);
        assert_eq!(kept.len() as u64, report.records);

        let after = verify_unchanged(&config);
        assert_eq!(after.status, VerifyStatus::Clean);
        assert_eq!(after.records, report.records);
    }
}

#[tokio::test]
async fn a_missing_segment_and_a_bad_header_are_corruption() {
    let source = tempfile::tempdir().unwrap();
    write_log(source.path()).await;

    let dir = tempfile::tempdir().unwrap();
    copy_dir(source.path(), dir.path());
    std::fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    let report = verify_unchanged(&small_config(dir.path()));
    assert!(
        matches!(&report.status, VerifyStatus::Corrupt { file, offset: 0, .. } if *file == segment_path(dir.path(), 1)),
        "{report:?}"
    );
    assert_eq!(report.durable_end.unwrap().segment_id, 0);

    let dir = tempfile::tempdir().unwrap();
    copy_dir(source.path(), dir.path());
    flip_bit(&segment_path(dir.path(), 0), 13, 2);
    let report = verify_unchanged(&small_config(dir.path()));
    assert!(
        matches!(&report.status, VerifyStatus::Corrupt { file, offset: 0, .. } if *file == segment_path(dir.path(), 0)),
        "{report:?}"
    );
    assert_eq!((report.records, report.durable_end), (0, None));
}

#[tokio::test]
async fn an_open_log_cannot_be_verified() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).await.unwrap();
    wal.append(&numbered(1)).await.unwrap();
    let err = verify(&config, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("already open"), "{err}");
    wal.close().await.unwrap();
    assert_eq!(verify(&config, &mut |_, _| {}).unwrap().records, 1);
}
