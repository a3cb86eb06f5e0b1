//! After a process crash, recovery accepts the unsynced groups still in the page cache.
//! The first group the new process writes claims in its header that they are durable, so
//! `open` must make them durable first (one fsync); otherwise a power loss before the new
//! process's first fsync could leave the new group without the old one, and recovery would
//! then fail on a state a real disk can produce.

use tally_test_support::copy_dir;
use tally_wal::format::GROUP_HEADER_LEN;
use tally_wal::{FsyncPolicy, Record, Wal, WalConfig, segment_path};

fn config(dir: &std::path::Path, policy: FsyncPolicy) -> WalConfig {
    WalConfig {
        max_segment_size: 64 * 1024,
        max_record_size: 8 * 1024,
        max_batch_size: 16 * 1024,
        fsync_policy: policy,
        ..WalConfig::new(dir)
    }
}

#[tokio::test]
async fn unsynced_data_recovered_after_a_kill_is_not_claimed_durable() {
    let a = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let power_lost = tempfile::tempdir().unwrap();

    // Process A: r1 durable, r2 only written (in the page cache) when A is killed.
    let (wal, _) = Wal::open(config(a.path(), FsyncPolicy::Os)).await.unwrap();
    let p1 = wal.append(&Record::new("r1")).await.unwrap();
    wal.sync().await.unwrap();
    let p2 = wal.append(&Record::new("r2")).await.unwrap();
    copy_dir(a.path(), crashed.path()); // SIGKILL: what the OS has is what B sees
    drop(wal);

    // Process B reopens; its first append writes a group. Power fails during its fsync,
    // after the disk persisted B's group but not A's unsynced r2 group.
    let (wal, _) = Wal::open(config(crashed.path(), FsyncPolicy::Always))
        .await
        .unwrap();
    let p3 = wal.append(&Record::new("r3")).await.unwrap();
    copy_dir(crashed.path(), power_lost.path());
    drop(wal);
    let path = segment_path(power_lost.path(), p2.segment_id);
    let mut bytes = std::fs::read(&path).unwrap();
    let r2_group = (p2.offset - GROUP_HEADER_LEN as u64) as usize
        ..(p3.offset - GROUP_HEADER_LEN as u64) as usize;
    bytes[r2_group].fill(0);
    std::fs::write(&path, bytes).unwrap();

    // Opening B made everything it recovered durable (r2 included) before B wrote r3, so
    // a disk without r2 but with r3 is not a crash state any more: it is corruption, and
    // open says so.
    let err = Wal::open(config(power_lost.path(), FsyncPolicy::Always))
        .await
        .unwrap_err();
    assert!(matches!(err, tally_wal::WalError::Corrupt { .. }), "{err}");
    let _ = p1;
}

#[tokio::test]
async fn opening_a_log_makes_what_recovery_found_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(dir.path(), FsyncPolicy::Os))
        .await
        .unwrap();
    wal.append(&Record::new("unsynced")).await.unwrap();
    drop(wal);
    let vfs = std::sync::Arc::new(tally_wal::vfs::FaultyVfs::default());
    let syncs = vfs.syncs.clone();
    let (wal, info) = Wal::open(WalConfig {
        vfs: vfs.clone(),
        ..config(dir.path(), FsyncPolicy::Always)
    })
    .await
    .unwrap();
    assert_eq!(info.valid_records, 1);
    assert!(
        syncs.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "open synced the recovered segment"
    );
    wal.close().await.unwrap();
}
