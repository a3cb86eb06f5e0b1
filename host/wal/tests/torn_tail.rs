//! A crash can leave the newest segment cut anywhere, or zeroed from some point on. Recovery
//! must keep exactly the complete groups before the damage, lose no earlier record, cut
//! the rest with `ftruncate`, and accept appends afterwards.

mod common;

use std::path::Path;

use common::{numbered, reopen_and_read, small_config};
use tally_test_support::copy_dir;
use tally_wal::{Position, Record, Wal, WalConfig, segment_path};

/// Ways a crash leaves the end of a file.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The file ends at the cut.
    Cut,
    /// The file keeps its length but reads zeros from the cut on (a preallocated file).
    Zeroed,
}

/// Writes a log, then for every offset in `range` of the newest segment damages a copy
/// there and checks that recovery keeps exactly the records whose group ended before it.
async fn check_every_offset(
    config: impl Fn(&Path) -> WalConfig,
    appended: &[(Record, Position)],
    source: &Path,
    group_ends: &[u64],
    range: std::ops::Range<u64>,
    damage: Damage,
) {
    let newest = appended.last().unwrap().1.segment_id;
    for offset in range {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source, dir.path());
        let path = segment_path(dir.path(), newest);
        let mut bytes = std::fs::read(&path).unwrap();
        match damage {
            Damage::Cut => bytes.truncate(offset as usize),
            Damage::Zeroed => bytes[offset as usize..].fill(0),
        }
        std::fs::write(&path, &bytes).unwrap();

        let (recovered, info) = reopen_and_read(config(dir.path())).await;
        // Records survive exactly when their group ended at or before the damage.
        let kept = appended
            .iter()
            .zip(group_ends)
            .take_while(|((_, position), end)| position.segment_id < newest || **end <= offset)
            .count();
        assert_eq!(
            recovered.len(),
            kept,
            "{damage:?} at offset {offset}: recovered {} records, expected {kept}",
            recovered.len()
        );
        assert!(
            recovered == appended[..kept],
            "{damage:?} at offset {offset}: recovered records differ from those appended"
        );
        assert_eq!(info.valid_records, kept as u64);
        assert!(
            !info.corruption_detected,
            "{damage:?} at {offset} is not corruption"
        );
        let prefix_end = match kept.checked_sub(1) {
            Some(last) if appended[last].1.segment_id == newest => group_ends[last],
            _ => 0,
        };
        assert!(info.bytes_truncated <= offset.saturating_sub(prefix_end));

        // Appending continues after the cut, and survives another reopen.
        let (wal, _) = Wal::open(config(dir.path())).await.unwrap();
        wal.append(&numbered(9_999)).await.unwrap();
        wal.close().await.unwrap();
        let (after, info) = reopen_and_read(config(dir.path())).await;
        assert_eq!(info.bytes_truncated, 0);
        assert_eq!(
            after.len(),
            kept + 1,
            "{damage:?} at {offset}: append after recovery"
        );
        assert_eq!(after.last().unwrap().0, numbered(9_999));
    }
}

/// Fills a few segments with batches, then appends `singles` one by one (each its own
/// group under `Always`) and closes; returns the singles with each one's group end.
async fn write_singles(
    config: WalConfig,
    singles: &[Record],
) -> (Vec<(Record, Position)>, Vec<u64>) {
    let (wal, _) = Wal::open(config).await.unwrap();
    let mut appended = Vec::new();
    for chunk in 0..10u64 {
        let batch: Vec<Record> = (chunk * 20..chunk * 20 + 20).map(numbered).collect();
        let positions = wal.append_batch(&batch).await.unwrap();
        appended.extend(batch.into_iter().zip(positions));
    }
    for record in singles {
        let position = wal.append(record).await.unwrap();
        appended.push((record.clone(), position));
    }
    wal.close().await.unwrap();
    let mut ends: Vec<u64> = appended
        .iter()
        .map(|(record, position)| position.offset + tally_wal::format::frame_len(record) as u64)
        .collect();
    // A batch's records stand or fall together with the batch's group.
    for chunk in ends[..200].chunks_mut(20) {
        let group_end = *chunk.last().unwrap();
        chunk.fill(group_end);
    }
    (appended, ends)
}

/// A short record, so that every offset of a few records can be tried quickly.
fn short(n: u64) -> Record {
    Record::new(format!("short value {n}"))
}

#[tokio::test]
async fn cutting_the_newest_segment_anywhere_in_its_last_three_records_keeps_the_prefix() {
    for preallocate in [false, true] {
        let config = move |dir: &Path| WalConfig {
            preallocate,
            ..small_config(dir)
        };
        let source = tempfile::tempdir().unwrap();
        let singles: Vec<Record> = (0..5).map(short).collect();
        let (appended, ends) = write_singles(config(source.path()), &singles).await;
        let newest = appended.last().unwrap().1.segment_id;
        assert!(newest > 0, "the log spans several segments");
        let third_last = appended[appended.len() - 3].1;
        assert_eq!(third_last.segment_id, newest);
        // From the third-last record's group header to the end of the last record.
        let range = third_last.offset - tally_wal::format::GROUP_HEADER_LEN as u64
            ..*ends.last().unwrap() + 1;
        for damage in [Damage::Cut, Damage::Zeroed] {
            check_every_offset(
                config,
                &appended,
                source.path(),
                &ends,
                range.clone(),
                damage,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_batch_cut_anywhere_inside_is_gone_entirely() {
    let config = |dir: &Path| small_config(dir);
    let source = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(source.path())).await.unwrap();
    let mut appended = Vec::new();
    let mut ends = Vec::new();
    let first = short(1);
    let at = wal.append(&first).await.unwrap();
    ends.push(at.offset + tally_wal::format::frame_len(&first) as u64);
    appended.push((first, at));
    let batch: Vec<Record> = (2..7).map(short).collect();
    let positions = wal.append_batch(&batch).await.unwrap();
    let last = batch.last().unwrap();
    let batch_end = positions.last().unwrap().offset + tally_wal::format::frame_len(last) as u64;
    for (record, position) in batch.iter().zip(&positions) {
        appended.push((record.clone(), *position));
        // Every record of the batch stands or falls with the batch's group.
        ends.push(batch_end);
    }
    wal.close().await.unwrap();

    let batch_start = positions[0].offset - tally_wal::format::GROUP_HEADER_LEN as u64;
    for damage in [Damage::Cut, Damage::Zeroed] {
        check_every_offset(
            config,
            &appended,
            source.path(),
            &ends,
            batch_start..batch_end,
            damage,
        )
        .await;
    }
}
