//! How a log is configured: [`WalConfig`] and [`FsyncPolicy`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::WalError;
use crate::format::{GROUP_HEADER_LEN, MAX_FRAME_BODY, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::vfs::{OsVfs, Vfs};

/// When appended bytes are made durable with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `append` returns only once its record is durable. Concurrent appends share one
    /// write and one fsync (group commit).
    Always,
    /// `append` returns once its record is written to the OS; a timer makes it durable
    /// within the given window, even when no further append comes.
    Batch(Duration),
    /// `append` returns once written to the OS; durability is left to the OS (and to
    /// explicit [`crate::Wal::sync`] calls, segment rotation and close).
    Os,
}

/// Configuration of a [`crate::Wal`]. Build it with `WalConfig::new(dir)` or
/// `WalConfig { dir, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Directory holding the segment files and the lock file. Default `./wal`.
    pub dir: PathBuf,
    /// A segment is sealed and a new one started before it would grow past this many
    /// bytes. Default 128 MiB.
    pub max_segment_size: u64,
    /// When appends are made durable. Default [`FsyncPolicy::Always`].
    pub fsync_policy: FsyncPolicy,
    /// Reserve each segment's full size when creating it (`fallocate`), so appends do not
    /// grow the file. Default `true`.
    pub preallocate: bool,
    /// Bytes of zeros the writer keeps written ahead of the data in the active segment,
    /// in steps of this size, or of eight times the group just written (up to 8 MiB) when
    /// that is larger (a step is written when less than half of one is left; never past
    /// `max_segment_size`). Only under [`FsyncPolicy::Always`], where every group has its
    /// own fsync. Default 256 KiB; 0 writes none.
    ///
    /// File systems that preallocate with unwritten extents (ext4, XFS) record in their
    /// journal when such space is first written, and the fsync after that write waits for
    /// the journal commit; data written over zeros that were written earlier needs no
    /// commit. So the writer pays for the conversion once per step rather than on every
    /// fsync: on the project's machine (ext4) 16 KiB appends with an fsync each went from
    /// about 3,500 to 6,500 per second. The zeros read as the end of the log (like
    /// preallocated space), so the format does not change.
    pub zero_ahead: u64,
    /// Largest record (value plus frame overhead) accepted by `append`.
    /// Default 16 MiB; at most 1 GiB.
    pub max_record_size: usize,
    /// Largest `append_batch` in encoded bytes. A batch is written as one unit, so it must
    /// fit in one segment. Default 64 MiB.
    pub max_batch_size: usize,
    /// Appends waiting for the writer are combined into one write of at most this many
    /// bytes (a single larger batch is written alone). Default 4 MiB.
    pub max_group_size: usize,
    /// Bytes that may wait for the writer before further appends wait for room.
    /// Default 64 MiB.
    pub max_pending_bytes: usize,
    /// Size of a reader's read buffer. Default 1 MiB.
    pub read_buffer_size: usize,
    /// What `open` does on finding corruption: `false` (default) fails with an error naming
    /// the file and offset; `true` cuts the log at the first bad record and reports it in
    /// [`crate::RecoveryInfo`].
    pub repair: bool,
    /// The file system all I/O goes through. Default: the operating system's.
    pub vfs: Arc<dyn Vfs>,
    /// Told of every group written and every fsync, for metrics. Default: none.
    pub observer: Option<Arc<dyn WalObserver>>,
}

/// Receives the writer's figures as they happen (for metrics). Called on the writer
/// thread: implementations must be quick and must not block.
pub trait WalObserver: std::fmt::Debug + Send + Sync {
    /// A group of `records` records taking `bytes` bytes was written.
    fn group_written(&self, records: u32, bytes: u64);
    /// An fsync (`fdatasync`) made `bytes` more bytes durable in `duration`.
    fn synced(&self, duration: std::time::Duration, bytes: u64);
}

impl WalConfig {
    /// The default configuration for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            ..WalConfig::default()
        }
    }

    /// Checks that the limits are consistent with each other and with the format.
    pub(crate) fn validate(&self) -> Result<(), WalError> {
        let invalid = |message: String| Err(WalError::InvalidConfig(message));
        if self.max_record_size as u64 > MAX_FRAME_BODY {
            return invalid(format!(
                "max_record_size {} exceeds the format's limit of {MAX_FRAME_BODY} bytes",
                self.max_record_size
            ));
        }
        if self.max_record_size <= RECORD_HEADER_LEN + 1 {
            return invalid("max_record_size is too small to hold a record".into());
        }
        // A group's body length is a u32 on disk.
        if self.max_batch_size > u32::MAX as usize || self.max_group_size > u32::MAX as usize {
            return invalid("max_batch_size and max_group_size must be below 4 GiB".into());
        }
        // Positions are packed into 40 bits of offset by the store.
        if self.max_segment_size >= 1 << 40 {
            return invalid("max_segment_size must be below 1 TiB".into());
        }
        if self.max_batch_size < self.max_record_size {
            return invalid("max_batch_size must be at least max_record_size".into());
        }
        let needed = SEGMENT_HEADER_LEN + GROUP_HEADER_LEN as u64 + self.max_batch_size as u64;
        if self.max_segment_size < needed {
            return invalid(format!(
                "max_segment_size {} cannot hold the largest batch (needs at least {needed} bytes)",
                self.max_segment_size
            ));
        }
        if self.max_group_size == 0 || self.max_pending_bytes == 0 || self.read_buffer_size == 0 {
            return invalid(
                "max_group_size, max_pending_bytes and read_buffer_size must be > 0".into(),
            );
        }
        if let FsyncPolicy::Batch(window) = self.fsync_policy
            && window.is_zero()
        {
            return invalid("FsyncPolicy::Batch needs a window greater than zero".into());
        }
        Ok(())
    }
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            dir: PathBuf::from("wal"),
            max_segment_size: 128 * 1024 * 1024,
            fsync_policy: FsyncPolicy::Always,
            preallocate: true,
            zero_ahead: 256 * 1024,
            max_record_size: 16 * 1024 * 1024,
            max_batch_size: 64 * 1024 * 1024,
            max_group_size: 4 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            read_buffer_size: 1024 * 1024,
            repair: false,
            vfs: Arc::new(OsVfs),
            observer: None,
        }
    }
}
