//! The errors of the store.

use crate::event::{ExpectedVersion, StreamId};
use crate::version::StreamVersion;

/// Everything that can go wrong in an [`crate::EventStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's version is not the expected one; nothing was written.
    #[error(
        "wrong expected version for stream {stream}: expected {expected}, actual version {actual}"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's actual version (including appends in flight).
        actual: StreamVersion,
    },
    /// The command id was used before for another command: an append to another
    /// stream, or one whose [command fingerprint](crate::AppendOptions::command_fingerprint)
    /// differs. Nothing was written.
    #[error("command id {command_id} was already used for another command, on {stream}")]
    CommandIdReused {
        /// The command id.
        command_id: String,
        /// The stream it was used for.
        stream: StreamId,
    },
    /// The append or its events are invalid; nothing was written.
    #[error("invalid append: {0}")]
    InvalidInput(String),
    /// An earlier write failed (for example, the disk is full); appends are refused until
    /// the writes in flight have drained. Nothing of this append was written.
    #[error("the store is not accepting appends right now: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
        /// Whether the failure was a full disk.
        storage_full: bool,
    },
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] tally_wal::WalError),
    /// An event in the log could not be decoded, or the log contradicts the index.
    #[error("corrupt event log: {0}")]
    Corrupt(String),
    /// The store was closed.
    #[error("the event store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the error is the disk running out of space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Wal(err) => err.is_storage_full(),
            StoreError::Unavailable { storage_full, .. } => *storage_full,
            _ => false,
        }
    }
}

/// The result type of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
