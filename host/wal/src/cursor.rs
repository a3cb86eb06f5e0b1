//! A forward cursor over a byte range of a file, read in chunks.
//!
//! Recovery and readers stream through segments with it, so memory stays bounded by the
//! chunk size (or by the largest single frame) whatever the segment size.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::vfs::{VfsFile, read_up_to};

/// Reads `[pos, limit)` of a file forward, keeping one chunk in memory.
#[derive(Debug)]
pub struct FileCursor {
    file: Arc<dyn VfsFile>,
    /// The buffered bytes; `chunk[0]` is at file offset `chunk_start`.
    chunk: Bytes,
    chunk_start: u64,
    pos: u64,
    limit: u64,
    chunk_size: usize,
}

impl FileCursor {
    /// A cursor at `pos` that never reads at or past `limit`.
    pub fn new(file: Arc<dyn VfsFile>, pos: u64, limit: u64, chunk_size: usize) -> FileCursor {
        FileCursor {
            file,
            chunk: Bytes::new(),
            chunk_start: pos,
            pos,
            limit,
            chunk_size,
        }
    }

    /// The file the cursor reads.
    pub fn file(&self) -> Arc<dyn VfsFile> {
        self.file.clone()
    }

    /// The file offset of the cursor.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Raises the limit (a reader following a growing segment).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = self.limit.max(limit);
    }

    /// Bytes between the cursor and the limit.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.pos)
    }

    /// The buffered bytes from the cursor on (a cheap shared slice).
    pub fn buffered(&self) -> Bytes {
        let from = (self.pos - self.chunk_start) as usize;
        self.chunk.slice(from.min(self.chunk.len())..)
    }

    /// The buffered bytes from the cursor on, borrowed (no reference count touched).
    pub fn bytes(&self) -> &[u8] {
        let from = (self.pos - self.chunk_start) as usize;
        &self.chunk[from.min(self.chunk.len())..]
    }

    /// Makes at least `needed` bytes from the cursor available in [`Self::buffered`],
    /// reading more of the file if necessary. Returns `false` when the limit or the end of
    /// the file comes first (then all that is there is buffered).
    pub fn fill(&mut self, needed: usize) -> io::Result<bool> {
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if chunk_end.saturating_sub(self.pos) >= needed as u64 {
            return Ok(true);
        }
        let want = (self.chunk_size.max(needed) as u64).min(self.remaining()) as usize;
        let mut buf = match std::mem::take(&mut self.chunk).try_into_mut() {
            // Reused as it is: `resize` below then zeroes only what it adds.
            Ok(reusable) => reusable,
            Err(_) => BytesMut::new(),
        };
        buf.resize(want, 0);
        let read = read_up_to(self.file.as_ref(), &mut buf, self.pos)?;
        buf.truncate(read);
        self.chunk = buf.freeze();
        self.chunk_start = self.pos;
        Ok(read >= needed)
    }

    /// Moves the cursor `n` bytes forward.
    pub fn advance(&mut self, n: usize) {
        self.pos += n as u64;
    }
}
