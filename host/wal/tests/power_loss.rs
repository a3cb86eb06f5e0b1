//! Power-loss simulation: the log runs on a simulated disk that, at a crash point chosen by
//! a seed, loses every write and every directory change (create, rename, remove) that was
//! not fsynced, and may keep a prefix of the last unsynced write cut at a 512-byte sector
//! boundary. After the crash the log must open (a real disk could produce that state, so
//! recovery must not fail), keep every append acknowledged under `Always`, and show no
//! partial batch and nothing that was never appended.
//!
//! Every seed also runs against a harsher disk that keeps any subset of unsynced sectors
//! (the page cache writes back in any order).
//!
//! `TALLY_WAL_POWER_SEEDS` sets how many seeds run (default 1,000); a failing seed is
//! printed and `TALLY_WAL_POWER_SEED=<n>` replays just that one.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tally_test_support::Rng;
use tally_wal::vfs::{LockGuard, OpenMode, Vfs, VfsFile};
use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig, WalError};

const SECTOR: u64 = 512;

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct Disk {
    inodes: Vec<Inode>,
    current_dir: BTreeMap<PathBuf, usize>,
    durable_dir: BTreeMap<PathBuf, usize>,
    /// The most recent write not yet covered by an fsync of its file.
    last_unsynced_write: Option<(usize, u64, Vec<u8>)>,
    /// Every write not yet covered by an fsync of its file, in order.
    unsynced_writes: Vec<(usize, u64, Vec<u8>)>,
    /// Mutating operations so far; the one numbered `crash_at` does not happen.
    operations: u64,
    crash_at: u64,
    crashed: bool,
    /// Whether a crash keeps any subset of unsynced sectors, not just a prefix of the last
    /// write.
    scattered: bool,
}

impl Disk {
    /// Counts a mutating operation; fails it (and everything after) at the crash point.
    fn step(&mut self) -> io::Result<()> {
        if !self.crashed {
            self.operations += 1;
            if self.operations >= self.crash_at {
                self.crashed = true;
            }
        }
        if self.crashed {
            return Err(io::Error::other("simulated power loss"));
        }
        Ok(())
    }

    /// What the disk holds after the power came back: durable contents and directory
    /// entries, plus possibly a sector-aligned prefix of the last unsynced write.
    fn after_power_loss(&self, rng: &mut Rng) -> Disk {
        let mut image = Disk {
            inodes: self
                .inodes
                .iter()
                .map(|inode| Inode {
                    durable: inode.durable.clone(),
                    current: inode.durable.clone(),
                })
                .collect(),
            current_dir: self.durable_dir.clone(),
            durable_dir: self.durable_dir.clone(),
            last_unsynced_write: None,
            unsynced_writes: Vec::new(),
            operations: 0,
            crash_at: u64::MAX,
            crashed: false,
            scattered: false,
        };
        if self.scattered {
            // A harsher disk: every unsynced sector independently reached the platter or not
            // (the page cache writes back in any order), directory changes as before.
            for (inode, offset, data) in &self.unsynced_writes {
                let end = offset + data.len() as u64;
                let mut sector_start = *offset;
                while sector_start < end {
                    let sector_end = ((sector_start / SECTOR + 1) * SECTOR).min(end);
                    if rng.below(2) == 0 {
                        let file = &mut image.inodes[*inode];
                        for content in [&mut file.durable, &mut file.current] {
                            if content.len() < sector_end as usize {
                                content.resize(sector_end as usize, 0);
                            }
                            let from = (sector_start - offset) as usize;
                            let to = (sector_end - offset) as usize;
                            content[sector_start as usize..sector_end as usize]
                                .copy_from_slice(&data[from..to]);
                        }
                    }
                    sector_start = sector_end;
                }
            }
            return image;
        }
        if let Some((inode, offset, data)) = &self.last_unsynced_write
            && rng.below(2) == 0
        {
            // Keep the write up to a sector boundary inside it (or all of it).
            let end = offset + data.len() as u64;
            let first_boundary = (offset / SECTOR + 1) * SECTOR;
            let boundaries: Vec<u64> = (0..)
                .map(|k| first_boundary + k * SECTOR)
                .take_while(|b| *b < end)
                .chain(std::iter::once(end))
                .collect();
            let kept_end = boundaries[rng.below(boundaries.len() as u64) as usize];
            let kept = (kept_end - offset) as usize;
            let file = &mut image.inodes[*inode];
            for content in [&mut file.durable, &mut file.current] {
                let needed = (offset + kept as u64) as usize;
                if content.len() < needed {
                    content.resize(needed, 0);
                }
                content[*offset as usize..needed].copy_from_slice(&data[..kept]);
            }
        }
        image
    }
}

/// A simulated disk shared by the log's files.
#[derive(Debug, Clone, Default)]
struct SimVfs {
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: usize,
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk.lock().unwrap();
        Ok(disk
            .current_dir
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut disk = self.disk.lock().unwrap();
        let inode = match (mode, disk.current_dir.get(path)) {
            (OpenMode::CreateNew, Some(_)) => return Err(io::ErrorKind::AlreadyExists.into()),
            (OpenMode::CreateNew, None) => {
                disk.step()?;
                disk.inodes.push(Inode::default());
                let inode = disk.inodes.len() - 1;
                disk.current_dir.insert(path.to_path_buf(), inode);
                inode
            }
            (_, Some(inode)) => *inode,
            (_, None) => return Err(io::ErrorKind::NotFound.into()),
        };
        Ok(Arc::new(SimFile {
            disk: self.disk.clone(),
            inode,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        let inode = disk
            .current_dir
            .remove(from)
            .ok_or(io::ErrorKind::NotFound)?;
        disk.current_dir.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        disk.current_dir
            .remove(path)
            .map(|_| ())
            .ok_or(io::ErrorKind::NotFound.into())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        disk.durable_dir = disk.current_dir.clone();
        Ok(())
    }

    fn lock(&self, _path: &Path) -> io::Result<LockGuard> {
        Ok(Box::new(()))
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let disk = self.disk.lock().unwrap();
        let content = &disk.inodes[self.inode].current;
        let start = (offset as usize).min(content.len());
        let n = buf.len().min(content.len() - start);
        buf[..n].copy_from_slice(&content[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        let content = &mut disk.inodes[self.inode].current;
        let end = offset as usize + buf.len();
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset as usize..end].copy_from_slice(buf);
        disk.last_unsynced_write = Some((self.inode, offset, buf.to_vec()));
        disk.unsynced_writes
            .push((self.inode, offset, buf.to_vec()));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        let inode = &mut disk.inodes[self.inode];
        inode.durable = inode.current.clone();
        if matches!(disk.last_unsynced_write, Some((i, _, _)) if i == self.inode) {
            disk.last_unsynced_write = None;
        }
        let inode = self.inode;
        disk.unsynced_writes.retain(|(i, _, _)| *i != inode);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        disk.inodes[self.inode].current.resize(len as usize, 0);
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.step()?;
        let content = &mut disk.inodes[self.inode].current;
        if (content.len() as u64) < len {
            content.resize(len as usize, 0);
        }
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.disk.lock().unwrap().inodes[self.inode].current.len() as u64)
    }
}

fn config(vfs: &SimVfs, preallocate: bool) -> WalConfig {
    WalConfig {
        max_segment_size: 8 * 1024,
        max_record_size: 1024,
        max_batch_size: 2 * 1024,
        max_group_size: 2 * 1024,
        fsync_policy: FsyncPolicy::Always,
        preallocate,
        vfs: Arc::new(vfs.clone()),
        ..WalConfig::new("/sim/wal")
    }
}

/// A record whose value is its id `n/batch/batch_len/index` and a `;`, repeated: the id
/// read back from its start says what the whole value must be.
fn record(n: u64, batch: u64, batch_len: u64, index: u64) -> Record {
    let id = format!("{n}/{batch}/{batch_len}/{index}");
    Record::new(format!("{id};").repeat(1 + (n % 23) as usize))
}

/// The id a record read back starts with (what precedes its first `;`).
fn id_of(record: &Record) -> Result<String, String> {
    let value = String::from_utf8_lossy(&record.value);
    match value.split_once(';') {
        Some((id, _)) => Ok(id.to_string()),
        None => Err(format!("a record holds no id: {value:?}")),
    }
}

/// Runs one seed; returns a description of what went wrong, if anything.
async fn run_seed(seed: u64, scattered: bool) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let vfs = SimVfs::default();
    let preallocate = rng.below(2) == 0;
    {
        let mut disk = vfs.disk.lock().unwrap();
        disk.crash_at = 1 + rng.below(300);
        disk.scattered = scattered;
    }
    // Acknowledged appends: position -> record.
    let mut acked: BTreeMap<Position, Record> = BTreeMap::new();
    // Attempted appends: id -> record.
    let mut attempted: HashMap<String, Record> = HashMap::new();
    let mut deleted_before: Option<Position> = None;
    if let Ok((wal, _)) = Wal::open(config(&vfs, preallocate)).await {
        let mut n = 0u64;
        'workload: for _ in 0..200 {
            match rng.below(10) {
                0..=5 => {
                    n += 1;
                    let r = record(n, n, 1, 0);
                    attempted.insert(id_of(&r)?, r.clone());
                    match wal.append(&r).await {
                        Ok(position) => {
                            acked.insert(position, r);
                        }
                        Err(_) => break 'workload,
                    }
                }
                6..=8 => {
                    n += 1;
                    let len = 1 + rng.below(4);
                    let batch: Vec<Record> = (0..len).map(|i| record(n + i, n, len, i)).collect();
                    n += len;
                    for r in &batch {
                        attempted.insert(id_of(r)?, r.clone());
                    }
                    match wal.append_batch(&batch).await {
                        Ok(positions) => acked.extend(positions.into_iter().zip(batch)),
                        Err(_) => break 'workload,
                    }
                }
                _ => {
                    // Now and then drop old segments.
                    if let Some((&position, _)) = acked.iter().nth(acked.len() / 2)
                        && wal.delete_segments_before(position).await.is_ok()
                    {
                        let first = Position {
                            segment_id: wal.first_segment(),
                            offset: 0,
                        };
                        deleted_before = Some(first);
                    }
                }
            }
        }
        drop(wal);
    }

    let image = vfs.disk.lock().unwrap().after_power_loss(&mut rng);
    let after = SimVfs {
        disk: Arc::new(Mutex::new(image)),
    };
    let (wal, info) = match Wal::open(config(&after, preallocate)).await {
        Ok(opened) => opened,
        Err(err) => return Err(format!("open after the power loss failed: {err}")),
    };
    if info.corruption_detected {
        return Err(format!("a power loss was reported as corruption: {info:?}"));
    }
    let mut reader = wal
        .read_from(Position::START)
        .await
        .map_err(|e| e.to_string())?;
    let mut found: BTreeMap<Position, Record> = BTreeMap::new();
    let mut batches: HashMap<String, Vec<u64>> = HashMap::new();
    while let Some((r, position)) = reader.next_record().await.map_err(|e| e.to_string())? {
        let id = id_of(&r)?;
        match attempted.get(&id) {
            Some(expected) if *expected == r => {}
            _ => return Err(format!("record {id} at {position} was never appended")),
        }
        let parts: Vec<&str> = id.split('/').collect();
        batches
            .entry(format!("{}/{}", parts[1], parts[2]))
            .or_default()
            .push(parts[3].parse().unwrap());
        found.insert(position, r);
    }
    for (batch, indexes) in &batches {
        let len: usize = batch.split('/').nth(1).unwrap().parse().unwrap();
        // A batch is whole, unless the front of the log (deleted segments) cut its start.
        if indexes.len() != len && deleted_before.is_none() {
            return Err(format!("batch {batch} is partial: {indexes:?}"));
        }
    }
    for (position, r) in &acked {
        if deleted_before.is_some_and(|first| *position < first) {
            continue;
        }
        if found.get(position) != Some(r) {
            return Err(format!(
                "acknowledged record {} at {position} is missing",
                id_of(r)?
            ));
        }
    }
    // The log takes appends again.
    match wal.append(&record(1_000_000, 0, 1, 0)).await {
        Ok(_) | Err(WalError::RecordTooLarge { .. }) => {}
        Err(err) => return Err(format!("append after recovery failed: {err}")),
    }
    Ok(())
}

#[test]
fn every_acknowledged_append_survives_a_simulated_power_loss() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seeds: Vec<u64> = match std::env::var("TALLY_WAL_POWER_SEED") {
        Ok(seed) => vec![seed.parse().expect("TALLY_WAL_POWER_SEED is a number")],
        Err(_) => {
            let count = std::env::var("TALLY_WAL_POWER_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000u64);
            (0..count).collect()
        }
    };
    let mut failures = Vec::new();
    for seed in &seeds {
        for scattered in [false, true] {
            if let Err(reason) = runtime.block_on(run_seed(*seed, scattered)) {
                failures.push(format!(
                    "seed {seed} (scattered sectors: {scattered}): {reason}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (replay one with TALLY_WAL_POWER_SEED):\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}
