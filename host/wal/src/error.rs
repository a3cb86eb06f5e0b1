//! The errors of the log.

use std::io;
use std::path::PathBuf;

use crate::record::Position;

/// Everything that can go wrong in a [`crate::Wal`].
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done (for example `"writing"`).
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error; its kind tells a full disk (`StorageFull`) from others.
        source: io::Error,
    },
    /// Another open log (in this or another process) holds the directory's lock file.
    #[error("write-ahead log directory {dir} is already open (lock file {lock} is held)")]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// Data on disk is damaged where a crash could not have damaged it.
    #[error("corrupt write-ahead log: {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged segment file.
        file: PathBuf,
        /// Byte offset of the first damaged frame in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An append's record is larger than [`crate::WalConfig::max_record_size`].
    #[error("record of {size} bytes exceeds max_record_size ({max} bytes); nothing was written")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// An `append_batch` is larger than [`crate::WalConfig::max_batch_size`].
    #[error("batch of {size} bytes exceeds max_batch_size ({max} bytes); nothing was written")]
    BatchTooLarge {
        /// Encoded size of the batch.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// An `append_batch` with no records.
    #[error("append_batch needs at least one record")]
    EmptyBatch,
    /// The configuration is inconsistent.
    #[error("invalid write-ahead log configuration: {0}")]
    InvalidConfig(String),
    /// The log was closed.
    #[error("write-ahead log is closed")]
    Closed,
    /// An fsync failed: what reached the disk is unknown, so the log refuses further
    /// writes until it is reopened (and recovered).
    #[error("write-ahead log stopped after a failed fsync ({0}); reopen it to recover")]
    Poisoned(String),
    /// An earlier write failed (for example, the disk was full); appends are refused until
    /// [`crate::Wal::resume`] is called. Nothing of this append was written.
    #[error("write-ahead log refuses appends after a failed write ({message}); resume it to retry")]
    Stalled {
        /// The kind of the I/O error that stalled the log.
        kind: io::ErrorKind,
        /// What failed.
        message: String,
    },
    /// The position lies in a segment removed by `delete_segments_before`.
    #[error("position {0} lies in a deleted segment")]
    SegmentDeleted(Position),
    /// No durable record starts at the position.
    #[error("no durable record at position {0}")]
    NoRecord(Position),
}

impl WalError {
    /// Whether the error is the disk running out of space (the operation can be retried
    /// once space is freed; nothing was acknowledged).
    pub fn is_storage_full(&self) -> bool {
        match self {
            WalError::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            WalError::Stalled { kind, .. } => *kind == io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    /// A copy of the error for one more waiter (I/O errors keep their kind and message).
    pub(crate) fn duplicate(&self) -> WalError {
        match self {
            WalError::Io {
                operation,
                path,
                source,
            } => WalError::Io {
                operation,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            WalError::Poisoned(message) => WalError::Poisoned(message.clone()),
            WalError::Closed => WalError::Closed,
            WalError::Stalled { kind, message } => WalError::Stalled {
                kind: *kind,
                message: message.clone(),
            },
            other => WalError::Poisoned(other.to_string()),
        }
    }
}

/// The result type of the log.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
