//! Helpers shared by the log's integration tests (those shared with other crates' tests
//! are in `tally-test-support`).
#![allow(dead_code)]

use std::path::Path;

use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig};

/// A config for tests: small segments so that rotation happens often.
pub fn small_config(dir: &Path) -> WalConfig {
    WalConfig {
        max_segment_size: 64 * 1024,
        max_record_size: 16 * 1024,
        max_batch_size: 32 * 1024,
        fsync_policy: FsyncPolicy::Always,
        ..WalConfig::new(dir)
    }
}

/// A record whose value is derived from `n` (its eight bytes, then text naming it), so
/// that a reader can check it.
pub fn numbered(n: u64) -> Record {
    let text = format!("value-{n}-").repeat((n % 7 + 1) as usize * 10);
    Record::new([&n.to_le_bytes()[..], text.as_bytes()].concat())
}

/// Every record of the log, in order, with its position.
pub async fn read_all(wal: &Wal) -> Vec<(Record, Position)> {
    let mut reader = wal.read_from(Position::START).await.unwrap();
    let mut out = Vec::new();
    while let Some(entry) = reader.next_record().await.unwrap() {
        out.push(entry);
    }
    out
}

/// The records of a freshly opened log in `dir`.
pub async fn reopen_and_read(
    config: WalConfig,
) -> (Vec<(Record, Position)>, tally_wal::RecoveryInfo) {
    let (wal, info) = Wal::open(config).await.unwrap();
    let all = read_all(&wal).await;
    wal.close().await.unwrap();
    (all, info)
}
