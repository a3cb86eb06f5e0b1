//! A failed write (here, a full disk) stalls the log: every append queued after it fails
//! too, so the log stays a prefix of what was queued, until `resume`. Nothing is lost and
//! nothing half-written remains.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{numbered, read_all, small_config};
use tally_wal::vfs::FaultyVfs;
use tally_wal::{Wal, WalConfig, WalError};

#[tokio::test]
async fn a_full_disk_fails_appends_cleanly_until_space_returns_and_the_log_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = FaultyVfs::default();
    let full = vfs.full.clone();
    let vfs = Arc::new(vfs);
    let config = || WalConfig {
        vfs: vfs.clone(),
        ..small_config(dir.path())
    };
    let (wal, _) = Wal::open(config()).await.unwrap();
    let kept = wal.append(&numbered(1)).await.unwrap();

    full.store(true, Ordering::Relaxed);
    let err = wal.append(&numbered(2)).await.unwrap_err();
    assert!(err.is_storage_full(), "{err}");
    assert!(matches!(err, WalError::Io { .. }), "{err}");

    // Space is back, but the log stays stalled until told to resume.
    full.store(false, Ordering::Relaxed);
    let err = wal.append(&numbered(3)).await.unwrap_err();
    assert!(matches!(err, WalError::Stalled { .. }), "{err}");
    assert!(err.is_storage_full(), "{err}");

    wal.resume();
    let after = wal.append(&numbered(4)).await.unwrap();
    assert!(after > kept);
    let records: Vec<_> = read_all(&wal).await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(records, vec![numbered(1), numbered(4)]);
    wal.close().await.unwrap();

    let (wal, info) = Wal::open(config()).await.unwrap();
    assert!(!info.corruption_detected);
    assert_eq!(info.valid_records, 2);
    assert_eq!(read_all(&wal).await.len(), 2);
}

#[tokio::test]
async fn only_acknowledged_appends_remain_after_a_full_disk_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = FaultyVfs::default();
    let full = vfs.full.clone();
    let config = WalConfig {
        vfs: Arc::new(vfs),
        ..small_config(dir.path())
    };
    let (wal, _) = Wal::open(config).await.unwrap();
    let mut appended = 0;
    // Fill the first segment, so that failures and recovery span a rotation.
    while wal.durable_end().segment_id == 0 {
        wal.append(&numbered(appended)).await.unwrap();
        appended += 1;
    }
    let before = read_all(&wal).await.len();
    full.store(true, Ordering::Relaxed);
    let mut failures = 0;
    for n in 0..50 {
        if wal.append(&numbered(1000 + n)).await.is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0);
    full.store(false, Ordering::Relaxed);
    wal.resume();
    wal.append(&numbered(5000)).await.unwrap();
    let all = read_all(&wal).await;
    assert_eq!(all.last().unwrap().0, numbered(5000));
    assert_eq!(all.len(), before + 50 - failures + 1);
}
