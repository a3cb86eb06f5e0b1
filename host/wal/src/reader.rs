//! Reading the log forward: [`WalReader`].

use std::sync::Arc;

use tokio::sync::watch;

use crate::cursor::FileCursor;
use crate::error::{Result, WalError};
use crate::format::{
    FrameError, GROUP_HEADER_LEN, GROUP_MAGIC, GroupHeader, MAX_FRAME_BODY, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, decode_frame, read_u32,
};
use crate::record::{Position, Record};
use crate::segment::segment_path;
use crate::writer::Shared;

/// Reads records in log order from a start position, across segments, up to the durable
/// end of the log; it can then follow the tail as more records become durable.
///
/// Every record's checksum is verified; damage is an error, never skipped.
#[derive(Debug)]
pub struct WalReader {
    shared: Arc<Shared>,
    visible: watch::Receiver<Position>,
    segment_id: u64,
    /// Offset of the next frame in the current segment.
    offset: u64,
    cursor: Option<FileCursor>,
    /// Whether the cursor's limit is its segment's final length (the segment was sealed
    /// when the cursor was opened), rather than the durable end of the active segment.
    sealed: bool,
}

impl WalReader {
    pub(crate) fn new(shared: Arc<Shared>, start: Position) -> Result<WalReader> {
        let first = shared
            .first_segment
            .load(std::sync::atomic::Ordering::Acquire);
        let (segment_id, offset) = if start.segment_id < first {
            if start != Position::START {
                return Err(WalError::SegmentDeleted(start));
            }
            (first, SEGMENT_HEADER_LEN)
        } else {
            (start.segment_id, start.offset.max(SEGMENT_HEADER_LEN))
        };
        let visible = shared.visible.clone();
        Ok(WalReader {
            shared,
            visible,
            segment_id,
            offset,
            cursor: None,
            sealed: false,
        })
    }

    /// Where the next record would be read from.
    pub fn position(&self) -> Position {
        Position {
            segment_id: self.segment_id,
            offset: self.offset,
        }
    }

    /// The next record and its position, or `None` when the reader has caught up with the
    /// durable end of the log (a later call returns records appended since).
    pub async fn next_record(&mut self) -> Result<Option<(Record, Position)>> {
        loop {
            let end = *self.visible.borrow_and_update();
            if self.position() >= end {
                return Ok(None);
            }
            if self.cursor.is_none() {
                self.open_segment(end).await?;
            }
            let cursor = self.cursor.as_mut().expect("opened above");
            if self.segment_id == end.segment_id {
                cursor.set_limit(end.offset);
            } else if !self.sealed {
                // The cursor was opened while its segment was the active one, so its
                // limit is the durable end of that time; the segment has been sealed
                // since: read up to its final length. The open handle is asked, not the
                // path, so this works even if the segment has been deleted meanwhile.
                let file = cursor.file();
                let path = segment_path(&self.shared.config.dir, self.segment_id);
                let len = run_blocking(move || {
                    file.size().map_err(|e| WalError::io("reading", &path, e))
                })
                .await?;
                cursor.set_limit(len);
                self.sealed = true;
            }
            if cursor.remaining() == 0 {
                if self.segment_id < end.segment_id {
                    self.segment_id += 1;
                    self.offset = SEGMENT_HEADER_LEN;
                    self.cursor = None;
                    continue;
                }
                return Ok(None);
            }
            if let Some((record, at)) = self.read_frame().await? {
                debug_assert!(at < end, "a reader never reads past the visible end");
                debug_assert!(
                    at < self.position(),
                    "a reader moves forward: the next record starts after this one"
                );
                return Ok(Some((record, at)));
            }
        }
    }

    /// Waits for the next record, following the tail of the log. Fails with
    /// [`WalError::Closed`] once the log is closed and every record has been read.
    pub async fn wait_next_record(&mut self) -> Result<(Record, Position)> {
        loop {
            if let Some(record) = self.next_record().await? {
                return Ok(record);
            }
            self.visible.changed().await.map_err(|_| WalError::Closed)?;
        }
    }

    async fn open_segment(&mut self, end: Position) -> Result<()> {
        let shared = self.shared.clone();
        let id = self.segment_id;
        let first = shared
            .first_segment
            .load(std::sync::atomic::Ordering::Acquire);
        if id < first {
            return Err(WalError::SegmentDeleted(self.position()));
        }
        let file = run_blocking(move || {
            let config = &shared.config;
            shared.files.get(config.vfs.as_ref(), &config.dir, id)
        })
        .await?;
        self.sealed = id != end.segment_id;
        let limit = if id == end.segment_id {
            end.offset
        } else {
            // A sealed segment: its length is final and its data ends where the file does.
            let probe = file.clone();
            let path = segment_path(&self.shared.config.dir, id);
            run_blocking(move || probe.size().map_err(|e| WalError::io("reading", &path, e)))
                .await?
        };
        self.cursor = Some(FileCursor::new(
            file,
            self.offset,
            limit,
            self.shared.config.read_buffer_size,
        ));
        Ok(())
    }

    /// Decodes the frame at the cursor: a record (returned) or a group header (skipped).
    async fn read_frame(&mut self) -> Result<Option<(Record, Position)>> {
        let at = self.offset;
        if !self.fill(RECORD_HEADER_LEN).await? {
            return Err(self.corrupt(at, "frame cut short"));
        }
        let cursor = self.cursor.as_mut().expect("open");
        let first_word = read_u32(cursor.bytes(), 0);
        if first_word == GROUP_MAGIC {
            if !self.fill(GROUP_HEADER_LEN).await? {
                return Err(self.corrupt(at, "group header cut short"));
            }
            let cursor = self.cursor.as_mut().expect("open");
            if let Err(reason) = GroupHeader::decode(cursor.bytes()) {
                return Err(self.corrupt(at, reason));
            }
            self.skip(GROUP_HEADER_LEN);
            return Ok(None);
        }
        let frame_len = RECORD_HEADER_LEN as u64 + u64::from(first_word);
        if u64::from(first_word) > MAX_FRAME_BODY || frame_len > cursor.remaining() {
            return Err(self.corrupt(at, "record extends past the durable end"));
        }
        if !self.fill(frame_len as usize).await? {
            return Err(self.corrupt(at, "record cut short"));
        }
        let cursor = self.cursor.as_mut().expect("open");
        match decode_frame(&cursor.buffered(), MAX_FRAME_BODY) {
            Ok((record, len)) => {
                let position = self.position();
                self.skip(len);
                Ok(Some((record, position)))
            }
            Err(FrameError::Invalid(reason)) => Err(self.corrupt(at, reason)),
            Err(FrameError::Incomplete { .. }) => Err(self.corrupt(at, "record cut short")),
        }
    }

    fn skip(&mut self, n: usize) {
        self.cursor.as_mut().expect("open").advance(n);
        self.offset += n as u64;
    }

    /// Buffers `n` bytes at the cursor, reading the file on a blocking thread when needed.
    async fn fill(&mut self, n: usize) -> Result<bool> {
        let cursor = self.cursor.as_mut().expect("open");
        if cursor.bytes().len() >= n {
            return Ok(true);
        }
        let mut cursor = self.cursor.take().expect("open");
        let path = segment_path(&self.shared.config.dir, self.segment_id);
        let (cursor, filled) = tokio::task::spawn_blocking(move || {
            let filled = cursor.fill(n);
            (cursor, filled)
        })
        .await
        .expect("reader I/O task panicked");
        self.cursor = Some(cursor);
        filled.map_err(|e| WalError::io("reading", path, e))
    }

    fn corrupt(&self, offset: u64, reason: &str) -> WalError {
        WalError::Corrupt {
            file: segment_path(&self.shared.config.dir, self.segment_id),
            offset,
            reason: reason.to_string(),
        }
    }
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking I/O task panicked")
}
