//! Segment files: their names, their creation, and a cache of open read handles.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::error::{Result, WalError};
use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::vfs::{MappedFile, OpenMode, Vfs, VfsFile};

const SEGMENT_SUFFIX: &str = ".wal";
const TEMP_SUFFIX: &str = ".wal.tmp";
/// Name of the lock file in the log directory.
pub const LOCK_FILE: &str = "LOCK";

/// Path of segment `id` in `dir`: twenty zero-padded digits, so names sort by id.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

fn temp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{TEMP_SUFFIX}"))
}

/// What a directory entry is to the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A segment with this id.
    Segment(u64),
    /// A segment that was being created when the process stopped.
    Temporary,
    /// Anything else (the lock file, foreign files): left alone.
    Other,
}

/// Classifies a file name in the log directory.
pub fn classify(name: &str) -> Entry {
    if name.ends_with(TEMP_SUFFIX) {
        return Entry::Temporary;
    }
    match name.strip_suffix(SEGMENT_SUFFIX) {
        Some(digits) if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().map_or(Entry::Other, Entry::Segment)
        }
        _ => Entry::Other,
    }
}

/// Creates segment `id` atomically: the header is written and synced in a temporary file
/// (preallocated to `allocate` bytes when given), which is then renamed into place and the
/// directory synced. A crash leaves either no segment or a complete header.
pub fn create_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    id: u64,
    allocate: Option<u64>,
) -> Result<Arc<dyn VfsFile>> {
    let temp = temp_path(dir, id);
    let path = segment_path(dir, id);
    // A failed earlier attempt (say, on a full disk) may have left the temporary file.
    match vfs.remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(WalError::io("removing", &temp, e)),
    }
    let file = vfs
        .open(&temp, OpenMode::CreateNew)
        .map_err(|e| WalError::io("creating", &temp, e))?;
    let header = SegmentHeader { segment_id: id };
    file.write_all_at(&header.encode(), 0)
        .map_err(|e| WalError::io("writing", &temp, e))?;
    if let Some(len) = allocate
        && let Err(e) = file.allocate(len.max(SEGMENT_HEADER_LEN))
    {
        // Give the space back rather than leave a half-made segment behind.
        let _ = vfs.remove_file(&temp);
        return Err(WalError::io("preallocating", &temp, e));
    }
    file.sync_data()
        .map_err(|e| WalError::io("syncing", &temp, e))?;
    vfs.rename(&temp, &path)
        .map_err(|e| WalError::io("renaming", &temp, e))?;
    if let Err(e) = vfs.sync_dir(dir) {
        // The writer goes on in the previous segment: this one must not stay the newest.
        let _ = vfs.remove_file(&path);
        return Err(WalError::io("syncing directory", dir, e));
    }
    Ok(file)
}

/// Open read handles and memory maps of segments, shared by readers, keyed by segment id.
#[derive(Debug, Default)]
pub struct SegmentFiles {
    open: RwLock<HashMap<u64, Arc<dyn VfsFile>>>,
    maps: RwLock<HashMap<u64, Arc<MappedFile>>>,
    /// Final lengths of segments sealed by this process (a map made before sealing may be
    /// longer than the file now is).
    sealed_lens: RwLock<HashMap<u64, u64>>,
}

impl SegmentFiles {
    /// The handle of segment `id`, opened on first use.
    pub fn get(&self, vfs: &dyn Vfs, dir: &Path, id: u64) -> Result<Arc<dyn VfsFile>> {
        if let Some(file) = self.open.read().expect("segment cache poisoned").get(&id) {
            return Ok(file.clone());
        }
        let path = segment_path(dir, id);
        let file = vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| WalError::io("opening", &path, e))?;
        let mut open = self.open.write().expect("segment cache poisoned");
        Ok(open.entry(id).or_insert(file).clone())
    }

    /// A memory map of segment `id` covering at least `needed` bytes, with the length of
    /// the segment's data when it is sealed (read under the same lock as the map, so a map
    /// made before the segment was cut never lends its longer length). `None` when the file
    /// system has no maps or the file is shorter (then read with `read_at`).
    pub fn map(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        id: u64,
        needed: u64,
    ) -> Result<Option<(Arc<MappedFile>, Option<u64>)>> {
        {
            let maps = self.maps.read().expect("segment cache poisoned");
            if let Some(map) = maps.get(&id)
                && map.len() >= needed
            {
                return Ok(Some((map.clone(), self.sealed_len(id))));
            }
        }
        let file = self.get(vfs, dir, id)?;
        let path = segment_path(dir, id);
        let Some(map) = file.map().map_err(|e| WalError::io("mapping", &path, e))? else {
            return Ok(None);
        };
        if map.len() < needed {
            return Ok(None);
        }
        let map = Arc::new(map);
        let mut maps = self.maps.write().expect("segment cache poisoned");
        maps.insert(id, map.clone());
        Ok(Some((map, self.sealed_len(id))))
    }

    /// Records that segment `id` was sealed (cut to `len` bytes of data) and drops its map:
    /// the next read maps it again at its final length.
    pub fn sealed(&self, id: u64, len: u64) {
        self.sealed_lens
            .write()
            .expect("segment cache poisoned")
            .insert(id, len);
        self.maps
            .write()
            .expect("segment cache poisoned")
            .remove(&id);
    }

    /// The length segment `id` was sealed at by this process, if it was.
    pub fn sealed_len(&self, id: u64) -> Option<u64> {
        self.sealed_lens
            .read()
            .expect("segment cache poisoned")
            .get(&id)
            .copied()
    }

    /// Registers a handle the writer already has open.
    pub fn insert(&self, id: u64, file: Arc<dyn VfsFile>) {
        self.open
            .write()
            .expect("segment cache poisoned")
            .insert(id, file);
    }

    /// Forgets the handles of segments below `id`.
    pub fn forget_before(&self, id: u64) {
        self.open
            .write()
            .expect("segment cache poisoned")
            .retain(|segment, _| *segment >= id);
        self.maps
            .write()
            .expect("segment cache poisoned")
            .retain(|segment, _| *segment >= id);
        self.sealed_lens
            .write()
            .expect("segment cache poisoned")
            .retain(|segment, _| *segment >= id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_files_are_ignored() {
        let path = segment_path(Path::new("/x"), 42);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "00000000000000000042.wal");
        assert_eq!(classify(name), Entry::Segment(42));
        assert_eq!(classify("00000000000000000042.wal.tmp"), Entry::Temporary);
        assert_eq!(classify("LOCK"), Entry::Other);
        assert_eq!(classify("42.wal"), Entry::Other);
    }
}
