//! Group commit: concurrent appenders under `Always` share fsyncs, and each append returns
//! only once durable.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{numbered, read_all};
use tally_wal::vfs::FaultyVfs;
use tally_wal::{FsyncPolicy, Wal, WalConfig};

#[test]
fn the_handle_is_send_sync_and_cheap_to_clone() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Wal>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_cost_far_fewer_fsyncs_than_appends() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = FaultyVfs::default();
    let syncs = vfs.syncs.clone();
    let config = WalConfig {
        fsync_policy: FsyncPolicy::Always,
        vfs: Arc::new(vfs),
        ..WalConfig::new(dir.path())
    };
    let (wal, _) = Wal::open(config).await.unwrap();
    let before = syncs.load(Ordering::Relaxed);
    const TASKS: u64 = 64;
    const EACH: u64 = 50;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let position = wal.append(&numbered(task * EACH + i)).await.unwrap();
                // Durable on return: the position is already visible to readers, which
                // only see synced data.
                assert!(position < wal.durable_end());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fsyncs = syncs.load(Ordering::Relaxed) - before;
    let appends = TASKS * EACH;
    println!("{appends} appends took {fsyncs} fsyncs");
    assert!(
        fsyncs * 4 <= appends,
        "{appends} concurrent appends took {fsyncs} fsyncs"
    );
    assert_eq!(read_all(&wal).await.len() as u64, appends);
}
