//! The [`Wal`] handle: open, append, sync, read, delete, close.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, watch};

use crate::config::WalConfig;
use crate::error::{Result, WalError};
use crate::format::{
    FrameLayout, MAX_FRAME_BODY, RECORD_HEADER_LEN, check_frame, encode_frame, frame_len, read_u32,
};
use crate::reader::{WalReader, run_blocking};
use crate::record::{Position, Record};
use crate::recovery::{RecoveryInfo, recover};
use crate::segment::{LOCK_FILE, segment_path};
use crate::vfs::{MappedFile, read_exact_at, read_up_to};
use crate::writer::{Request, Shared, Writer};

/// Room reserved in the writer's queue by [`Wal::reserve`]; given back if dropped unused.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    permits: u32,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.permits > 0 {
            self.shared.room.add_permits(self.permits as usize);
        }
    }
}

/// A queued batch (see [`Wal::enqueue_batch`]).
#[derive(Debug)]
pub struct AppendTicket {
    answer: oneshot::Receiver<Result<Position>>,
    offsets: Vec<u64>,
}

impl AppendTicket {
    /// Waits until the batch is written (durable under `Always`); returns its positions.
    pub async fn wait(self) -> Result<Vec<Position>> {
        let first = self.answer.await.map_err(|_| WalError::Closed)??;
        Ok(positions(first, self.offsets))
    }

    /// The answer if it has come, without waiting; the ticket back while the batch is
    /// not yet written (durable under `Always`).
    pub fn try_wait(mut self) -> std::result::Result<Result<Vec<Position>>, AppendTicket> {
        match self.answer.try_recv() {
            Ok(answer) => Ok(answer.map(|first| positions(first, self.offsets))),
            Err(oneshot::error::TryRecvError::Empty) => Err(self),
            Err(oneshot::error::TryRecvError::Closed) => Ok(Err(WalError::Closed)),
        }
    }
}

/// The positions of a batch's records: its first position plus each record's offset.
fn positions(first: Position, offsets: Vec<u64>) -> Vec<Position> {
    offsets
        .into_iter()
        .map(|offset| Position {
            segment_id: first.segment_id,
            offset: first.offset + offset,
        })
        .collect()
}

/// A write-ahead log. Cheap to clone: clones share the log; it is `Send + Sync`.
///
/// Appends from any number of tasks are group-committed by one writer thread. The log is
/// closed by [`Wal::close`], or when the last clone is dropped (which waits for queued
/// appends to be written and synced).
#[derive(Debug, Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(writer) = self.writer.lock().expect("writer handle poisoned").take()
            && let Ok(Err(err)) = writer.join()
        {
            tracing::error!(error = %err, "closing the write-ahead log failed");
        }
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `config.dir`, recovering it: every record's
    /// checksum is verified, a torn tail is cut, and corruption fails the open with the
    /// file and offset (or is cut when `config.repair` is set).
    pub async fn open(config: WalConfig) -> Result<(Wal, RecoveryInfo)> {
        config.validate()?;
        run_blocking(move || Wal::open_blocking(config)).await
    }

    fn open_blocking(config: WalConfig) -> Result<(Wal, RecoveryInfo)> {
        let vfs = config.vfs.clone();
        vfs.create_dir_all(&config.dir)
            .map_err(|e| WalError::io("creating", &config.dir, e))?;
        let lock_path = config.dir.join(LOCK_FILE);
        let lock = vfs.lock(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                WalError::Locked {
                    dir: config.dir.clone(),
                    lock: lock_path.clone(),
                }
            } else {
                WalError::io("locking", &lock_path, e)
            }
        })?;
        let recovered = recover(&config)?;
        let end = Position {
            segment_id: recovered.active.id,
            offset: recovered.active.end,
        };
        let (visible_tx, visible_rx) = watch::channel(end);
        let shared = Arc::new(Shared::new(config, recovered.first_segment, visible_rx));
        let writer = Writer::new(shared.clone(), recovered.active, visible_tx, lock);
        let handle = std::thread::Builder::new()
            .name("tally-wal-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| WalError::io("starting the writer thread for", &shared.config.dir, e))?;
        let wal = Wal {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        };
        Ok((wal, recovered.info))
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &WalConfig {
        &self.inner.shared.config
    }

    /// Appends one record and returns its position. Under [`crate::FsyncPolicy::Always`]
    /// it returns once the record is durable.
    pub async fn append(&self, record: &Record) -> Result<Position> {
        let positions = self.append_batch(std::slice::from_ref(record)).await?;
        Ok(positions[0])
    }

    /// Appends records as one unit: after a crash they are all present or all absent.
    /// Returns their positions, which are consecutive.
    pub async fn append_batch(&self, records: &[Record]) -> Result<Vec<Position>> {
        let size = self.checked_len(records)?;
        let reservation = self.reserve(size).await?;
        self.enqueue_batch(records, reservation)?.wait().await
    }

    /// Bytes `records` take on disk (their frames), checked against the limits.
    pub fn checked_len(&self, records: &[Record]) -> Result<usize> {
        if records.is_empty() {
            return Err(WalError::EmptyBatch);
        }
        let config = self.config();
        let mut size = 0usize;
        for record in records {
            let len = frame_len(record);
            if len > config.max_record_size {
                return Err(WalError::RecordTooLarge {
                    size: len,
                    max: config.max_record_size,
                });
            }
            size += len;
        }
        if size > config.max_batch_size || u32::try_from(records.len()).is_err() {
            return Err(WalError::BatchTooLarge {
                size,
                max: config.max_batch_size,
            });
        }
        Ok(size)
    }

    /// Waits for room for `bytes` (see [`Wal::checked_len`]) in the writer's queue
    /// ([`WalConfig::max_pending_bytes`]). Together with [`Wal::enqueue_batch`] this lets a
    /// caller wait for room first and then queue appends in an order it controls.
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation> {
        let shared = &self.inner.shared;
        let permits = shared.permits_for(bytes);
        shared
            .room
            .acquire_many(permits)
            .await
            .map_err(|_| WalError::Closed)?
            .forget();
        Ok(Reservation {
            shared: shared.clone(),
            permits,
        })
    }

    /// Queues `records` as one atomic batch without waiting. Batches appear in the log in
    /// the order of `enqueue_batch` calls; if one fails, every batch queued after it fails
    /// too (the log is stalled until [`Wal::resume`]), so the log is always a prefix of
    /// what was queued. The returned ticket tells when the batch is written (and durable
    /// under `Always`).
    pub fn enqueue_batch(
        &self,
        records: &[Record],
        reservation: Reservation,
    ) -> Result<AppendTicket> {
        let size = self.checked_len(records)?;
        let shared = &self.inner.shared;
        let needed = shared.permits_for(size);
        let mut reservation = reservation;
        if reservation.permits < needed {
            return Err(WalError::InvalidConfig(format!(
                "a reservation of {} bytes cannot hold a batch of {size} bytes",
                reservation.permits
            )));
        }
        // The writer gives back exactly what the batch needs; the rest goes back now.
        shared
            .room
            .add_permits((reservation.permits - needed) as usize);
        reservation.permits = 0;
        let mut frames = BytesMut::with_capacity(size);
        let mut offsets = Vec::with_capacity(records.len());
        for record in records {
            offsets.push(frames.len() as u64);
            encode_frame(record, &mut frames);
        }
        let (reply, answer) = oneshot::channel();
        let submitted = shared.submit(Request::Append {
            frames: frames.freeze(),
            count: records.len() as u32,
            reply,
        });
        if let Err(err) = submitted {
            shared.room.add_permits(needed as usize);
            return Err(err);
        }
        Ok(AppendTicket { answer, offsets })
    }

    /// Accepts appends again after a failed write stalled the log ([`WalError::Stalled`]).
    /// Call it once the appends queued before have all been answered.
    pub fn resume(&self) {
        *self.inner.shared.stalled.lock().expect("stall poisoned") = None;
    }

    /// Makes every record appended before this call durable.
    pub async fn sync(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.inner.shared.submit(Request::Sync { reply })?;
        answer.await.map_err(|_| WalError::Closed)?
    }

    /// Writes and syncs everything queued, then stops the log. Other clones fail with
    /// [`WalError::Closed`] from then on.
    pub async fn close(self) -> Result<()> {
        let inner = self.inner.clone();
        drop(self);
        inner.shared.close();
        let writer = inner.writer.lock().expect("writer handle poisoned").take();
        match writer {
            None => Ok(()),
            Some(writer) => {
                run_blocking(move || {
                    writer.join().unwrap_or_else(|_| {
                        Err(WalError::Poisoned("the writer thread panicked".into()))
                    })
                })
                .await
            }
        }
    }

    /// A reader from `position` ([`Position::START`] for the oldest record kept).
    pub async fn read_from(&self, position: Position) -> Result<WalReader> {
        WalReader::new(self.inner.shared.clone(), position)
    }

    /// Reads the durable record that starts at `position`.
    pub async fn read_at(&self, position: Position) -> Result<Record> {
        let mut records = self.read_many(vec![position]).await?;
        Ok(records.pop().expect("one position, one record"))
    }

    /// Reads the durable records that start at `positions`, in that order, on one blocking
    /// thread (cheaper than one `read_at` each).
    pub async fn read_many(&self, positions: Vec<Position>) -> Result<Vec<Record>> {
        let (shared, end) = self.readable(&positions)?;
        run_blocking(move || {
            // The records' values are copied into one buffer that they share: one
            // allocation per call rather than one per record.
            let mut buf = Vec::new();
            let mut copied = Vec::new();
            let ranges = positions
                .into_iter()
                .map(|position| {
                    read_record(&shared, position, end, &mut buf, |frame, layout| {
                        copy_value(frame, layout, &mut copied)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let copied = Bytes::from(copied);
            Ok(ranges
                .into_iter()
                .map(|range| Record::new(copied.slice(range)))
                .collect())
        })
        .await
    }

    /// Reads the durable records that start at `positions`, in that order, on one blocking
    /// thread, handing each record's value to `visit` where it lies (in the segment's
    /// memory map, or a read buffer) instead of copying it out: what a reader that
    /// turns records into something else wants.
    pub async fn read_many_with<T, F>(
        &self,
        positions: Vec<Position>,
        mut visit: F,
    ) -> Result<Vec<T>>
    where
        F: FnMut(&[u8]) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (shared, end) = self.readable(&positions)?;
        run_blocking(move || {
            let mut buf = Vec::new();
            positions
                .into_iter()
                .map(|position| {
                    read_record(&shared, position, end, &mut buf, |frame, layout| {
                        visit(&frame[layout.value_start..layout.len])
                    })
                })
                .collect()
        })
        .await
    }

    /// The log's state for reading `positions`, and its durable end; an error if one of
    /// them is deleted or not yet durable.
    fn readable(&self, positions: &[Position]) -> Result<(Arc<Shared>, Position)> {
        let shared = self.inner.shared.clone();
        let end = *shared.visible.borrow();
        let first = shared.first_segment.load(Ordering::Acquire);
        for &position in positions {
            if position.segment_id < first {
                return Err(WalError::SegmentDeleted(position));
            }
            if position >= end {
                return Err(WalError::NoRecord(position));
            }
        }
        Ok((shared, end))
    }

    /// Removes whole segments that end before `position`'s segment (never the segment
    /// being written to). Returns how many were removed.
    pub async fn delete_segments_before(&self, position: Position) -> Result<u64> {
        let shared = self.inner.shared.clone();
        run_blocking(move || {
            let _deleting = shared.deleting.lock().expect("delete lock poisoned");
            let config = &shared.config;
            let active = shared.active_segment.load(Ordering::Acquire);
            let limit = position.segment_id.min(active);
            let first = shared.first_segment.load(Ordering::Acquire);
            if limit <= first {
                return Ok(0);
            }
            // Move the start first so no new reader opens a segment being removed.
            shared.first_segment.store(limit, Ordering::Release);
            shared.files.forget_before(limit);
            // Oldest first, each removal made durable before the next: a crash leaves a
            // shorter log, never one with a gap.
            for id in first..limit {
                let path = segment_path(&config.dir, id);
                match config.vfs.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(WalError::io("removing", &path, e)),
                }
                config
                    .vfs
                    .sync_dir(&config.dir)
                    .map_err(|e| WalError::io("syncing directory", &config.dir, e))?;
            }
            Ok(limit - first)
        })
        .await
    }

    /// The end of the durable log: every record before it can be read.
    pub fn durable_end(&self) -> Position {
        *self.inner.shared.visible.borrow()
    }

    /// Waits until the record at `position` is durable (readable): at once under
    /// `Always` (append returns then), within the window under `Batch`, after the write
    /// under `Os`.
    pub async fn wait_durable(&self, position: Position) -> Result<()> {
        let mut visible = self.inner.shared.visible.clone();
        visible
            .wait_for(|end| *end > position)
            .await
            .map(|_| ())
            .map_err(|_| WalError::Closed)
    }

    /// The oldest segment still kept.
    pub fn first_segment(&self) -> u64 {
        self.inner.shared.first_segment.load(Ordering::Acquire)
    }
}

/// Bytes read at once when reading a record at a position (most records fit).
const READ_AHEAD: usize = 512;

/// Reads the record at `position` with one `pread` when it fits in [`READ_AHEAD`] bytes.
/// `end` is the durable end of the log: a frame that would reach past it, or past the
/// configured record limits, or past the end of the file, is no record (the position is
/// not the start of one), not an I/O error, and nothing is allocated for it.
/// `visit` gets the checked frame and its layout.
fn read_record<T>(
    shared: &Shared,
    position: Position,
    end: Position,
    buf: &mut Vec<u8>,
    visit: impl FnOnce(&[u8], &FrameLayout) -> T,
) -> Result<T> {
    let config = &shared.config;
    let largest = config.max_record_size.max(config.max_batch_size);
    // The log's bytes in this segment end at the durable end (active segment) or at the
    // segment's sealed length.
    let in_active = position.segment_id == end.segment_id;
    let Some(header_end) = position.offset.checked_add(RECORD_HEADER_LEN as u64) else {
        return Err(WalError::NoRecord(position));
    };
    let needed = if in_active { end.offset } else { header_end };
    let files = &shared.files;
    let mapped = files.map(
        config.vfs.as_ref(),
        &config.dir,
        position.segment_id,
        needed,
    );
    match mapped {
        Ok(Some((map, sealed_len))) => {
            let bound = match (in_active, sealed_len) {
                (true, _) => end.offset,
                (false, Some(len)) => len,
                // No sealed length: either the segment was sealed by an earlier process (its
                // file has not changed since, so the map is exactly as long), or it is being
                // deleted (`forget_before` dropped its length after moving the start).
                (false, None) => {
                    if position.segment_id < shared.first_segment.load(Ordering::Acquire) {
                        return Err(WalError::SegmentDeleted(position));
                    }
                    map.len()
                }
            };
            return read_mapped(&map, position, bound.min(map.len()), largest, visit);
        }
        Ok(None) => {}
        Err(err) => return Err(deleted_or(shared, position, err)),
    }
    let file = files
        .get(config.vfs.as_ref(), &config.dir, position.segment_id)
        .map_err(|err| deleted_or(shared, position, err))?;
    let path = || segment_path(&config.dir, position.segment_id);
    let size = file
        .size()
        .map_err(|e| WalError::io("reading", path(), e))?;
    if header_end > size {
        return Err(WalError::NoRecord(position));
    }
    buf.resize(READ_AHEAD, 0);
    let read = read_up_to(file.as_ref(), buf, position.offset)
        .map_err(|e| WalError::io("reading", path(), e))?;
    if read < RECORD_HEADER_LEN {
        return Err(WalError::NoRecord(position));
    }
    let body = read_u32(buf, 0) as usize;
    if body == 0 || body as u64 > MAX_FRAME_BODY || body > largest {
        return Err(WalError::NoRecord(position));
    }
    let frame_len = RECORD_HEADER_LEN + body;
    if in_active && position.offset.saturating_add(frame_len as u64) > end.offset {
        return Err(WalError::NoRecord(position));
    }
    if frame_len > read {
        buf.resize(frame_len, 0);
        read_exact_at(
            file.as_ref(),
            &mut buf[read..],
            position.offset + read as u64,
        )
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => WalError::NoRecord(position),
            _ => WalError::io("reading", path(), e),
        })?;
    }
    let frame = &buf[..frame_len];
    let layout = check_frame(frame, MAX_FRAME_BODY).map_err(|_| WalError::NoRecord(position))?;
    Ok(visit(frame, &layout))
}

/// Appends the value of the checked `frame` to `copied`; returns where it went there
/// (in the buffer of a `read_many`).
fn copy_value(frame: &[u8], layout: &FrameLayout, copied: &mut Vec<u8>) -> Range<usize> {
    let start = copied.len();
    copied.extend_from_slice(&frame[layout.value_start..layout.len]);
    start..copied.len()
}

/// Reads the record at `position` from a memory map, never looking at or past `bound`.
fn read_mapped<T>(
    map: &MappedFile,
    position: Position,
    bound: u64,
    largest: usize,
    visit: impl FnOnce(&[u8], &FrameLayout) -> T,
) -> Result<T> {
    let no_record = || WalError::NoRecord(position);
    if position.offset.saturating_add(RECORD_HEADER_LEN as u64) > bound {
        return Err(no_record());
    }
    let header = map
        .get(position.offset, RECORD_HEADER_LEN)
        .ok_or_else(no_record)?;
    let body = read_u32(header, 0) as usize;
    if body == 0 || body > largest {
        return Err(no_record());
    }
    let frame_len = RECORD_HEADER_LEN + body;
    if position.offset.saturating_add(frame_len as u64) > bound {
        return Err(no_record());
    }
    let frame = map.get(position.offset, frame_len).ok_or_else(no_record)?;
    let layout = check_frame(frame, MAX_FRAME_BODY).map_err(|_| no_record())?;
    Ok(visit(frame, &layout))
}

/// A segment that is gone because `delete_segments_before` removed it meanwhile is
/// [`WalError::SegmentDeleted`], not an I/O error.
fn deleted_or(shared: &Shared, position: Position, err: WalError) -> WalError {
    let deleted = position.segment_id < shared.first_segment.load(Ordering::Acquire);
    match err {
        WalError::Io { ref source, .. }
            if deleted && source.kind() == std::io::ErrorKind::NotFound =>
        {
            WalError::SegmentDeleted(position)
        }
        other => other,
    }
}
