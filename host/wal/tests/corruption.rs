//! Damage a crash cannot explain is corruption: `open` fails naming the file and offset,
//! or, with `repair`, cuts the log there and says so. It is never skipped silently.

mod common;

use std::path::Path;

use common::{numbered, read_all, reopen_and_read, small_config};
use tally_test_support::{copy_dir, flip_bit};
use tally_wal::format::GROUP_HEADER_LEN;
use tally_wal::{Position, Record, Wal, WalConfig, WalError, segment_path};

/// Appends 400 records one by one under `Always` (spanning several segments), closes, and
/// returns them with their positions.
async fn write_log(dir: &Path) -> Vec<(Record, Position)> {
    let (wal, _) = Wal::open(small_config(dir)).await.unwrap();
    let mut appended = Vec::new();
    for n in 0..400 {
        let record = numbered(n);
        let position = wal.append(&record).await.unwrap();
        appended.push((record, position));
    }
    wal.close().await.unwrap();
    let newest = appended.last().unwrap().1.segment_id;
    assert!(newest >= 2, "the log spans several segments");
    appended
}

/// Opens a damaged copy of `source`, expecting corruption at `file` and `offset`; then
/// opens it with repair and checks that exactly the records before `offset` are kept.
async fn expect_corruption(
    source: &Path,
    appended: &[(Record, Position)],
    segment: u64,
    offset: u64,
    damage: impl Fn(&Path),
) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(source, dir.path());
    let path = segment_path(dir.path(), segment);
    damage(&path);

    let err = Wal::open(small_config(dir.path())).await.unwrap_err();
    match &err {
        WalError::Corrupt {
            file,
            offset: at,
            reason,
        } => {
            assert_eq!(file, &path, "{err}");
            assert_eq!(*at, offset, "{err}");
            assert!(!reason.is_empty());
        }
        other => panic!(
            "expected corruption at {}:{offset}, got {other}",
            path.display()
        ),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&offset.to_string()), "{message}");

    let repair = WalConfig {
        repair: true,
        ..small_config(dir.path())
    };
    let (recovered, info) = reopen_and_read(repair).await;
    assert!(info.corruption_detected);
    let report = info.repaired.expect("the repair is reported");
    assert_eq!((report.file, report.offset), (path.clone(), offset));
    let damaged_at = Position {
        segment_id: segment,
        offset,
    };
    let expected: Vec<_> = appended
        .iter()
        .filter(|(_, position)| *position < damaged_at)
        .cloned()
        .collect();
    // A damaged group header takes its record with it; a damaged record, its group.
    assert!(
        recovered.len() == expected.len() || recovered.len() + 1 == expected.len(),
        "kept {} records, {} were before the damage",
        recovered.len(),
        expected.len()
    );
    assert!(recovered[..] == expected[..recovered.len()]);
    assert!(info.bytes_truncated > 0);
    for later in segment + 1..=appended.last().unwrap().1.segment_id {
        assert!(
            !segment_path(dir.path(), later).exists(),
            "segment {later} was cut"
        );
    }

    // The repaired log is consistent: it reopens cleanly and takes appends.
    let (wal, info) = Wal::open(small_config(dir.path())).await.unwrap();
    assert!(!info.corruption_detected);
    assert_eq!(info.bytes_truncated, 0);
    wal.append(&numbered(10_000)).await.unwrap();
    assert_eq!(read_all(&wal).await.len(), recovered.len() + 1);
}

#[tokio::test]
async fn a_flipped_bit_in_an_older_segment_fails_open_with_file_and_offset() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    let position = appended
        .iter()
        .map(|(_, position)| *position)
        .find(|position| position.segment_id == 0 && position.offset > 2_000)
        .unwrap();
    // A bit in the record's value.
    expect_corruption(source.path(), &appended, 0, position.offset, |path| {
        flip_bit(path, position.offset + 40, 3)
    })
    .await;
    // A bit in the record's group header.
    let group = position.offset - GROUP_HEADER_LEN as u64;
    expect_corruption(source.path(), &appended, 0, group, |path| {
        flip_bit(path, group + 17, 0)
    })
    .await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_middle_of_the_newest_segment_fails_open() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    let newest = appended.last().unwrap().1.segment_id;
    let in_newest: Vec<_> = appended
        .iter()
        .filter(|(_, position)| position.segment_id == newest)
        .collect();
    assert!(in_newest.len() >= 10);
    let position = in_newest[in_newest.len() / 2].1;
    expect_corruption(source.path(), &appended, newest, position.offset, |path| {
        flip_bit(path, position.offset + 12, 6)
    })
    .await;
}

#[tokio::test]
async fn damage_to_the_last_record_after_a_clean_close_is_corruption_not_a_torn_tail() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    let (_, position) = *appended.last().unwrap();
    expect_corruption(
        source.path(),
        &appended,
        position.segment_id,
        position.offset,
        |path| flip_bit(path, position.offset + 9, 1),
    )
    .await;
}

/// Changes the body of the record frame at `offset` and gives the frame a valid checksum.
fn rewrite_frame(path: &Path, offset: u64, change: impl Fn(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    let start = offset as usize;
    let len: [u8; 4] = bytes[start..start + 4].try_into().unwrap();
    let body = start + 8..start + 8 + u32::from_le_bytes(len) as usize;
    change(&mut bytes[body.clone()]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &bytes[body]);
    bytes[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_non_zero_key_length_under_a_valid_checksum_is_corruption_not_a_torn_tail() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    // A record in the middle of the log, and the last one (after a clean close).
    for (_, position) in [&appended[appended.len() / 2], appended.last().unwrap()] {
        // The frame claims its first 8 value bytes as a key: body = flags, key length, ...
        let claim_a_key = |path: &Path| rewrite_frame(path, position.offset, |body| body[1] = 8);
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        claim_a_key(&segment_path(dir.path(), position.segment_id));
        let err = Wal::open(small_config(dir.path())).await.unwrap_err();
        assert!(
            err.to_string().contains("reserved key length is not zero"),
            "{err}"
        );
        expect_corruption(
            source.path(),
            &appended,
            position.segment_id,
            position.offset,
            claim_a_key,
        )
        .await;
    }
}

#[tokio::test]
async fn a_flipped_bit_in_a_segment_header_fails_open() {
    let source = tempfile::tempdir().unwrap();
    let appended = write_log(source.path()).await;
    let newest = appended.last().unwrap().1.segment_id;
    for segment in [1, newest] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        let path = segment_path(dir.path(), segment);
        flip_bit(&path, 13, 2);
        let err = Wal::open(small_config(dir.path())).await.unwrap_err();
        assert!(
            matches!(&err, WalError::Corrupt { file, offset: 0, .. } if *file == path),
            "{err}"
        );
        // Repair drops the segment with the bad header and everything after it.
        let repair = WalConfig {
            repair: true,
            ..small_config(dir.path())
        };
        let (recovered, info) = reopen_and_read(repair).await;
        assert!(info.corruption_detected);
        let expected = appended
            .iter()
            .filter(|(_, position)| position.segment_id < segment)
            .count();
        assert_eq!(recovered.len(), expected);
        assert!(!path.exists());
    }
}

#[tokio::test]
async fn a_missing_segment_in_the_middle_fails_open() {
    let source = tempfile::tempdir().unwrap();
    write_log(source.path()).await;
    std::fs::remove_file(segment_path(source.path(), 1)).unwrap();
    let err = Wal::open(small_config(source.path())).await.unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { file, .. } if *file == segment_path(source.path(), 1)),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn a_preallocated_zero_tail_is_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let config = || WalConfig {
        preallocate: true,
        ..small_config(dir.path())
    };
    let (wal, _) = Wal::open(config()).await.unwrap();
    wal.append(&numbered(1)).await.unwrap();
    // Dropped without close: no close marker, just data then the preallocated zeros.
    drop(wal);
    let len = std::fs::metadata(segment_path(dir.path(), 0))
        .unwrap()
        .len();
    assert_eq!(
        len,
        config().max_segment_size,
        "the segment is preallocated"
    );
    let (recovered, info) = reopen_and_read(config()).await;
    assert_eq!(recovered.len(), 1);
    assert!(!info.corruption_detected);
    assert_eq!(info.bytes_truncated, 0);
}
