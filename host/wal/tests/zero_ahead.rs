//! Zeros written ahead of the data (`WalConfig::zero_ahead`): the writer keeps a step of
//! zeros past the end of the data, only ever past it, never past the segment's size, and
//! the log reads, reopens and goes on appending as without them.
//!
//! Segments are not preallocated here, so a file is exactly as long as what was written
//! to it, and its length shows where the zeros end.

mod common;

use std::path::Path;

use common::{numbered, read_all, reopen_and_read, small_config};
use tally_wal::format::GROUP_HEADER_LEN;
use tally_wal::{FsyncPolicy, Position, Wal, WalConfig, segment_path};

const STEP: u64 = 16 * 1024;

fn config(dir: &Path, zero_ahead: u64) -> WalConfig {
    WalConfig {
        preallocate: false,
        zero_ahead,
        ..small_config(dir)
    }
}

fn file_len(dir: &Path, segment_id: u64) -> u64 {
    std::fs::metadata(segment_path(dir, segment_id))
        .unwrap()
        .len()
}

/// Appends records `from..to` and returns the position of the last.
async fn append_range(wal: &Wal, from: u64, to: u64) -> Position {
    let mut last = None;
    for n in from..to {
        last = Some(wal.append(&numbered(n)).await.unwrap());
    }
    last.unwrap()
}

#[tokio::test]
async fn a_step_of_zeros_follows_the_data_and_reads_as_its_end() {
    let (plain, zeroed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (without, _) = Wal::open(config(plain.path(), 0)).await.unwrap();
    let (with, _) = Wal::open(config(zeroed.path(), STEP)).await.unwrap();

    let first = append_range(&without, 0, 1).await;
    assert_eq!(append_range(&with, 0, 1).await, first);
    // The plain log ends with the sync marker written after the fsync, an empty group
    // header past the group; the zeros were written before it, right after the group.
    let first_group_end = file_len(plain.path(), first.segment_id) - GROUP_HEADER_LEN as u64;
    let last = append_range(&without, 1, 3).await;
    assert_eq!(append_range(&with, 1, 3).await, last);
    let data_end = file_len(plain.path(), last.segment_id);
    assert_eq!(
        file_len(zeroed.path(), last.segment_id),
        first_group_end + STEP,
        "the first write left a step of zeros past its end, and the next two (small \
         records, less than half a step) none"
    );
    let bytes = std::fs::read(segment_path(zeroed.path(), last.segment_id)).unwrap();
    assert!(bytes[data_end as usize..].iter().all(|&byte| byte == 0));
    assert_eq!(
        &bytes[..data_end as usize],
        &std::fs::read(segment_path(plain.path(), last.segment_id)).unwrap()[..],
        "the data is the same byte for byte"
    );
    assert_eq!(read_all(&with).await, read_all(&without).await);
    without.close().await.unwrap();
    with.close().await.unwrap();

    // Reopened, the zeros are the end of the log; appends go on right after the data.
    let (records, info) = reopen_and_read(config(zeroed.path(), STEP)).await;
    assert!(!info.corruption_detected);
    assert_eq!(records.len(), 3);
    let (with, _) = Wal::open(config(zeroed.path(), STEP)).await.unwrap();
    let next = with.append(&numbered(3)).await.unwrap();
    assert_eq!(next.segment_id, last.segment_id);
    assert!(
        next.offset < data_end + 1024,
        "{next:?} follows the data at {data_end}"
    );
    with.close().await.unwrap();
    let (records, info) = reopen_and_read(config(zeroed.path(), STEP)).await;
    assert!(!info.corruption_detected);
    let expected: Vec<_> = (0..4).map(numbered).collect();
    assert_eq!(
        records.into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        expected
    );
}

#[tokio::test]
async fn at_least_half_a_step_of_zeros_is_left_after_every_write() {
    let (plain, zeroed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (without, _) = Wal::open(config(plain.path(), 0)).await.unwrap();
    let (with, _) = Wal::open(config(zeroed.path(), STEP)).await.unwrap();
    let mut lengths = Vec::new();
    for n in 0..60 {
        let position = without.append(&numbered(n)).await.unwrap();
        assert_eq!(with.append(&numbered(n)).await.unwrap(), position);
        assert_eq!(position.segment_id, 0, "no rotation in this test");
        let data_end = file_len(plain.path(), 0);
        let len = file_len(zeroed.path(), 0);
        assert!(
            data_end + STEP / 2 <= len && len <= data_end + STEP,
            "after record {n}: data ends at {data_end}, zeros at {len}"
        );
        if lengths.last() != Some(&len) {
            lengths.push(len);
        }
    }
    assert!(
        lengths.len() >= 3,
        "60 records of about 300 bytes take several steps of 16 KiB: {lengths:?}"
    );
    without.close().await.unwrap();
    with.close().await.unwrap();
    let (records, info) = reopen_and_read(config(zeroed.path(), STEP)).await;
    assert!(!info.corruption_detected);
    assert_eq!(records.len(), 60);
}

#[tokio::test]
async fn zeros_never_pass_the_segment_size_and_a_sealed_segment_keeps_only_its_data() {
    let (plain, zeroed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A step larger than the segment: the zeros stop at the segment's size.
    let config_with = || config(zeroed.path(), 1 << 20);
    let max = config_with().max_segment_size;
    let (without, _) = Wal::open(config(plain.path(), 0)).await.unwrap();
    let (with, _) = Wal::open(config_with()).await.unwrap();
    let first = with.append(&numbered(0)).await.unwrap();
    without.append(&numbered(0)).await.unwrap();
    assert_eq!(file_len(zeroed.path(), first.segment_id), max);

    let mut n = 1;
    let last = loop {
        let position = with.append(&numbered(n)).await.unwrap();
        assert_eq!(without.append(&numbered(n)).await.unwrap(), position);
        n += 1;
        if position.segment_id > first.segment_id + 1 {
            break position;
        }
    };
    // Sealing cut the zeros off: sealed segments hold only their data.
    for sealed in first.segment_id..last.segment_id {
        assert_eq!(
            std::fs::read(segment_path(zeroed.path(), sealed)).unwrap(),
            std::fs::read(segment_path(plain.path(), sealed)).unwrap(),
            "sealed segment {sealed}"
        );
    }
    assert_eq!(file_len(zeroed.path(), last.segment_id), max);
    without.close().await.unwrap();
    with.close().await.unwrap();

    let (records, info) = reopen_and_read(config_with()).await;
    assert!(!info.corruption_detected);
    let expected: Vec<_> = (0..n).map(numbered).collect();
    assert_eq!(
        records.into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        expected
    );
}

#[tokio::test]
async fn only_always_writes_zeros_ahead() {
    for policy in [
        FsyncPolicy::Os,
        FsyncPolicy::Batch(std::time::Duration::from_millis(1)),
    ] {
        let (plain, zeroed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let with_policy = |dir: &Path, zero_ahead| WalConfig {
            fsync_policy: policy,
            ..config(dir, zero_ahead)
        };
        let (without, _) = Wal::open(with_policy(plain.path(), 0)).await.unwrap();
        let (with, _) = Wal::open(with_policy(zeroed.path(), STEP)).await.unwrap();
        let last = append_range(&without, 0, 3).await;
        append_range(&with, 0, 3).await;
        without.sync().await.unwrap();
        with.sync().await.unwrap();
        // The two logs may differ by a sync marker (the timed syncs of `Batch` come at
        // their own moments), never by a step of zeros.
        let (with_len, without_len) = (
            file_len(zeroed.path(), last.segment_id),
            file_len(plain.path(), last.segment_id),
        );
        assert!(
            with_len.abs_diff(without_len) <= 2 * GROUP_HEADER_LEN as u64,
            "{policy:?}: {with_len} against {without_len}"
        );
        without.close().await.unwrap();
        with.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_large_group_gets_eight_times_its_size_of_zeros_up_to_eight_mib() {
    use tally_wal::Record;
    use tally_wal::format::SEGMENT_HEADER_LEN;

    let config = |dir: &Path, zero_ahead| WalConfig {
        preallocate: false,
        zero_ahead,
        max_segment_size: 64 << 20,
        max_record_size: 1 << 20,
        max_batch_size: 4 << 20,
        ..WalConfig::new(dir)
    };
    // Records of 64 KiB in a batch of two ask for eight times the group (about 1 MiB);
    // a batch of four records of about 1 MiB would ask for 32 MiB and gets 8 MiB.
    for (record_bytes, records) in [(64 << 10, 2), (1000 << 10, 4)] {
        let (plain, zeroed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (without, _) = Wal::open(config(plain.path(), 0)).await.unwrap();
        let (with, _) = Wal::open(config(zeroed.path(), STEP)).await.unwrap();
        let batch = vec![Record::new(vec![7u8; record_bytes]); records];
        let first = without.append_batch(&batch).await.unwrap()[0];
        assert_eq!(with.append_batch(&batch).await.unwrap()[0], first);
        let group_end = file_len(plain.path(), first.segment_id) - GROUP_HEADER_LEN as u64;
        let group_bytes = group_end - SEGMENT_HEADER_LEN;
        let expected = (group_bytes * 8).min(8 << 20);
        assert_eq!(
            file_len(zeroed.path(), first.segment_id),
            group_end + expected,
            "a group of {group_bytes} bytes"
        );
        without.close().await.unwrap();
        with.close().await.unwrap();
        let (records_read, info) = reopen_and_read(config(zeroed.path(), STEP)).await;
        assert!(!info.corruption_detected);
        assert_eq!(records_read.len(), records);
    }
}
