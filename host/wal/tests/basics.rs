//! Appending, reading across segments, following the tail, limits and the lock file.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{numbered, read_all, small_config};
use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig, WalError};

#[tokio::test]
async fn appended_records_read_back_in_order_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, info) = Wal::open(small_config(dir.path())).await.unwrap();
    assert_eq!(info.valid_records, 0);
    let mut positions = Vec::new();
    for n in 0..500 {
        positions.push(wal.append(&numbered(n)).await.unwrap());
    }
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase"
    );
    assert!(positions.last().unwrap().segment_id >= 3, "the log rotated");
    let all = read_all(&wal).await;
    assert_eq!(all.len(), 500);
    for (n, (record, position)) in all.iter().enumerate() {
        assert_eq!(*record, numbered(n as u64));
        assert_eq!(*position, positions[n]);
        assert_eq!(wal.read_at(*position).await.unwrap(), *record);
    }
    wal.close().await.unwrap();

    let (wal, info) = Wal::open(small_config(dir.path())).await.unwrap();
    assert_eq!(info.valid_records, 500);
    assert_eq!(info.bytes_truncated, 0);
    assert!(!info.corruption_detected);
    assert_eq!(info.last_valid_position, positions.last().copied());
    let next = wal.append(&numbered(500)).await.unwrap();
    assert!(next > *positions.last().unwrap());
    assert_eq!(read_all(&wal).await.len(), 501);
}

#[tokio::test]
async fn a_batch_gets_consecutive_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).await.unwrap();
    let batch: Vec<Record> = (0..10).map(numbered).collect();
    let positions = wal.append_batch(&batch).await.unwrap();
    assert_eq!(positions.len(), 10);
    let all = read_all(&wal).await;
    let read: Vec<Record> = all.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(read, batch);
    assert_eq!(all.iter().map(|(_, p)| *p).collect::<Vec<_>>(), positions);
    assert!(matches!(
        wal.append_batch(&[]).await,
        Err(WalError::EmptyBatch)
    ));
}

#[tokio::test]
async fn a_reader_follows_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).await.unwrap();
    wal.append(&numbered(0)).await.unwrap();
    let mut reader = wal.read_from(Position::START).await.unwrap();
    assert_eq!(reader.next_record().await.unwrap().unwrap().0, numbered(0));
    assert!(reader.next_record().await.unwrap().is_none());

    let writer = wal.clone();
    let appender = tokio::spawn(async move {
        for n in 1..300 {
            writer.append(&numbered(n)).await.unwrap();
        }
    });
    for n in 1..300 {
        let (record, _) = tokio::time::timeout(Duration::from_secs(30), reader.wait_next_record())
            .await
            .expect("the reader saw the next record")
            .unwrap();
        assert_eq!(record, numbered(n));
    }
    appender.await.unwrap();
    assert!(reader.next_record().await.unwrap().is_none());
}

#[tokio::test]
async fn batch_policy_makes_data_durable_without_another_append() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync_policy: FsyncPolicy::Batch(Duration::from_millis(5)),
        ..small_config(dir.path())
    };
    let (wal, _) = Wal::open(config).await.unwrap();
    let position = wal.append(&numbered(1)).await.unwrap();
    // Readers see only durable data; nothing else is appended or synced, so only the
    // timer can make the record visible.
    let mut reader = wal.read_from(Position::START).await.unwrap();
    let (record, at) = tokio::time::timeout(Duration::from_secs(30), reader.wait_next_record())
        .await
        .expect("the batch timer synced the record")
        .unwrap();
    assert_eq!((record, at), (numbered(1), position));
}

#[tokio::test]
async fn the_largest_record_round_trips_and_a_larger_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path());
    let max = config.max_record_size;
    assert!(max >= 16 * 1024 * 1024);
    let (wal, _) = Wal::open(config).await.unwrap();
    // Frame overhead: 8-byte header, flags byte, reserved key length (a one-byte varint 0).
    let largest = Record::new(Bytes::from(vec![0xab; max - 10]));
    let at = wal.append(&largest).await.unwrap();
    let too_large = Record::new(Bytes::from(vec![0xcd; max - 9]));
    let refused = wal.append(&too_large).await.unwrap_err();
    assert!(
        matches!(refused, WalError::RecordTooLarge { .. }),
        "{refused}"
    );
    let refused = wal
        .append_batch(&[numbered(1), too_large.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WalError::RecordTooLarge { .. }),
        "{refused}"
    );
    let all = read_all(&wal).await;
    assert_eq!(all.len(), 1, "nothing of the refused appends was written");
    assert_eq!(all[0].0, largest);
    assert_eq!(wal.read_at(at).await.unwrap(), largest);
    wal.close().await.unwrap();
    let (_wal, info) = Wal::open(WalConfig::new(dir.path())).await.unwrap();
    assert_eq!(info.valid_records, 1);
}

#[tokio::test]
async fn the_lock_file_refuses_a_second_open_until_the_first_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).await.unwrap();
    let second = Wal::open(small_config(dir.path())).await.unwrap_err();
    assert!(matches!(second, WalError::Locked { .. }), "{second}");
    assert!(second.to_string().contains("already open"));
    wal.close().await.unwrap();
    Wal::open(small_config(dir.path())).await.unwrap();
}

#[tokio::test]
async fn many_concurrent_appenders_rotate_without_tiny_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..50 {
                positions.push(wal.append(&numbered(task * 1000 + i)).await.unwrap());
            }
            positions
        }));
    }
    let mut count = 0;
    for task in tasks {
        count += task.await.unwrap().len();
    }
    let all = read_all(&wal).await;
    assert_eq!(all.len(), count);
    // Every sealed segment is at least half full: rotation happens only when the next
    // group does not fit.
    let last = all.last().unwrap().1.segment_id;
    for id in 0..last {
        let len = std::fs::metadata(tally_wal::segment_path(dir.path(), id))
            .unwrap()
            .len();
        assert!(len > 32 * 1024, "segment {id} is only {len} bytes");
    }
}

#[tokio::test]
async fn deleted_segments_are_gone_and_reading_starts_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).await.unwrap();
    let mut positions = Vec::new();
    for n in 0..400 {
        positions.push(wal.append(&numbered(n)).await.unwrap());
    }
    let cut = positions[200];
    let removed = wal.delete_segments_before(cut).await.unwrap();
    assert_eq!(removed, cut.segment_id);
    assert!(!tally_wal::segment_path(dir.path(), 0).exists());
    let all = read_all(&wal).await;
    assert_eq!(all.first().unwrap().1.segment_id, cut.segment_id);
    assert_eq!(all.last().unwrap().0, numbered(399));
    assert!(matches!(
        wal.read_at(positions[0]).await,
        Err(WalError::SegmentDeleted(_))
    ));
    wal.close().await.unwrap();
    let (wal, info) = Wal::open(small_config(dir.path())).await.unwrap();
    assert_eq!(info.valid_records as usize, all.len());
    assert_eq!(read_all(&wal).await.len(), all.len());
}
