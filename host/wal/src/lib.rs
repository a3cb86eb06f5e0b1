//! `tally-wal`: Tally's write-ahead log.
//!
//! A directory of segment files holding checksummed records, appended through one writer
//! thread that group-commits: concurrent appends share one write and one fsync. The API
//! follows nori-wal's shape:
//!
//! ```no_run
//! # async fn demo() -> tally_wal::Result<()> {
//! use tally_wal::{Position, Record, Wal, WalConfig};
//!
//! let (wal, recovery) = Wal::open(WalConfig::new("/tmp/tally-wal-demo")).await?;
//! println!("recovered {} records", recovery.valid_records);
//! let position = wal.append(&Record::new("opened")).await?; // durable now
//! let mut reader = wal.read_from(Position::START).await?;
//! while let Some((record, at)) = reader.next_record().await? {
//!     println!("{at}: {:?}", record.value);
//! }
//! assert_eq!(wal.read_at(position).await?.value, "opened");
//! wal.close().await
//! # }
//! ```
//!
//! What it guarantees, beyond nori-wal:
//! - group commit under [`FsyncPolicy::Always`]; a timer under [`FsyncPolicy::Batch`];
//! - `append_batch` is atomic across a crash;
//! - recovery cuts a torn tail with `ftruncate` and fails on corruption with the file and
//!   offset (or cuts there with [`WalConfig::repair`]); a preallocated zero tail is not
//!   corruption;
//! - readers cross segments, follow the tail, and read records up to the configured limit;
//! - a lock file keeps a second `open` out; the directory is fsynced after every change;
//! - [`verify()`] reports what `open` would find (clean, torn tail, or corruption with the
//!   file and offset) without changing anything, for offline checks.
//!
//! The on-disk format is in `FORMAT.md`. All file I/O goes through [`vfs::Vfs`], so tests
//! can substitute a disk that loses unsynced writes.

mod config;
mod cursor;
mod error;
pub mod format;
mod reader;
mod record;
mod recovery;
mod segment;
mod verify;
pub mod vfs;
mod wal;
mod writer;

pub use config::{FsyncPolicy, WalConfig, WalObserver};
pub use error::{Result, WalError};
pub use reader::WalReader;
pub use record::{Position, Record};
pub use recovery::{CorruptionReport, RecoveryInfo};
pub use segment::segment_path;
pub use verify::{VerifyReport, VerifyStatus, verify, verify_records};
pub use wal::{AppendTicket, Reservation, Wal};
