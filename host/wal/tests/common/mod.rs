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

/// The real file system, counting data syncs, and able to act as a full disk.
#[derive(Debug, Default)]
pub struct CountingVfs {
    pub syncs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// While set, writes and preallocations fail with `StorageFull`.
    pub full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct CountingFile {
    inner: std::sync::Arc<dyn tally_wal::vfs::VfsFile>,
    syncs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingFile {
    fn check_space(&self) -> std::io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::ErrorKind::StorageFull.into());
        }
        Ok(())
    }
}

impl tally_wal::vfs::Vfs for CountingVfs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        tally_wal::vfs::OsVfs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        tally_wal::vfs::OsVfs.list_dir(dir)
    }
    fn open(
        &self,
        path: &Path,
        mode: tally_wal::vfs::OpenMode,
    ) -> std::io::Result<std::sync::Arc<dyn tally_wal::vfs::VfsFile>> {
        let inner = tally_wal::vfs::OsVfs.open(path, mode)?;
        Ok(std::sync::Arc::new(CountingFile {
            inner,
            syncs: self.syncs.clone(),
            full: self.full.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        tally_wal::vfs::OsVfs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        tally_wal::vfs::OsVfs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        tally_wal::vfs::OsVfs.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> std::io::Result<tally_wal::vfs::LockGuard> {
        tally_wal::vfs::OsVfs.lock(path)
    }
}

impl tally_wal::vfs::VfsFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.check_space()?;
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.check_space()?;
        self.inner.allocate(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
}
