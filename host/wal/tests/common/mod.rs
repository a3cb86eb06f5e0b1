//! Helpers shared by the integration tests.
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

/// A record whose key and value are derived from `n`, so that a reader can check it.
pub fn numbered(n: u64) -> Record {
    let value = format!("value-{n}-").repeat((n % 7 + 1) as usize * 10);
    Record::put(n.to_le_bytes().to_vec(), value.into_bytes())
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

/// Copies every file of `from` into the empty directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Flips one bit of the file at `offset`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
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

/// A small seeded generator (splitmix64) for kill moments and crash points, so a failing
/// seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
