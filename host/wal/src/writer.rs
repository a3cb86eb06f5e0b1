//! The writer thread and group commit.
//!
//! Appenders encode their frames on their own task, queue them and wait. One thread takes
//! everything queued, writes it as groups (one `pwrite` per group) and, under
//! [`FsyncPolicy::Always`], issues one fsync for all of it before answering every
//! appender. Appends that arrive during the fsync queue up and form the next group, so
//! the fsync never holds them up and N concurrent appends cost far fewer than N fsyncs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest the writer waits for answered appenders to come back before the next write.
const MAX_LINGER: Duration = Duration::from_micros(200);

/// Groups like the one just written that a step of zeros ahead of the data holds at least
/// (see [`WalConfig::zero_ahead`](crate::WalConfig::zero_ahead)).
const GROUPS_OF_ZEROS: u64 = 8;

/// Largest step of zeros that the size of the group just written asks for (one huge batch
/// must not make the next fsync write a segment's worth of zeros).
const MAX_GROUP_STEP: u64 = 8 << 20;

/// Zeros written per `pwrite`: the writer's buffer of zeros is this big.
const ZEROS_PER_WRITE: usize = 1 << 20;

use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::config::{FsyncPolicy, WalConfig};
use crate::error::{Result, WalError};
use crate::format::{GROUP_HEADER_LEN, GroupHeader, SEGMENT_HEADER_LEN};
use crate::record::Position;
use crate::recovery::ActiveSegment;
use crate::segment::{SegmentFiles, create_segment, segment_path};
use crate::vfs::{LockGuard, VfsFile};

/// State shared by the [`crate::Wal`] handles, its readers and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: WalConfig,
    queue: Mutex<Queue>,
    work_ready: Condvar,
    /// End of the readable log: readers never read at or past it. It moves forward when
    /// data becomes durable (under [`FsyncPolicy::Os`], when it is written). The writer
    /// owns the sender, so the channel closes when the writer stops.
    pub visible: watch::Receiver<Position>,
    /// The oldest segment still on disk.
    pub first_segment: AtomicU64,
    /// The segment appends go to.
    pub active_segment: AtomicU64,
    /// Room for queued bytes ([`WalConfig::max_pending_bytes`]).
    pub room: Semaphore,
    /// Open read handles of segments.
    pub files: SegmentFiles,
    /// Serialises `delete_segments_before` calls.
    pub deleting: Mutex<()>,
    /// Set when a write (or segment rotation) failed: appends are refused until
    /// [`crate::Wal::resume`], so the log stays a prefix of the order of submission.
    pub stalled: Mutex<Option<Stall>>,
}

/// Why appends are refused after a failed write.
#[derive(Debug, Clone)]
pub(crate) struct Stall {
    pub kind: std::io::ErrorKind,
    pub message: String,
}

#[derive(Debug, Default)]
struct Queue {
    requests: Vec<Request>,
    closing: bool,
    /// Whether the writer is waiting on `work_ready` (only then do submitters wake it).
    writer_waiting: bool,
}

/// Work for the writer thread.
#[derive(Debug)]
pub(crate) enum Request {
    /// Write these encoded frames contiguously, in one group, and answer with the
    /// position of the first.
    Append {
        frames: Bytes,
        count: u32,
        reply: oneshot::Sender<Result<Position>>,
    },
    /// Make everything queued before this request durable.
    Sync { reply: oneshot::Sender<Result<()>> },
}

impl Shared {
    pub fn new(
        config: WalConfig,
        first_segment: u64,
        visible: watch::Receiver<Position>,
    ) -> Shared {
        let room = Semaphore::new(config.max_pending_bytes.min(Semaphore::MAX_PERMITS));
        let active = visible.borrow().segment_id;
        Shared {
            config,
            queue: Mutex::new(Queue::default()),
            work_ready: Condvar::new(),
            visible,
            first_segment: AtomicU64::new(first_segment),
            active_segment: AtomicU64::new(active),
            room,
            files: SegmentFiles::default(),
            deleting: Mutex::new(()),
            stalled: Mutex::new(None),
        }
    }

    /// Queues a request for the writer, or fails if the log is closing.
    pub fn submit(&self, request: Request) -> Result<()> {
        let mut queue = self.queue.lock().expect("queue poisoned");
        if queue.closing {
            return Err(WalError::Closed);
        }
        queue.requests.push(request);
        let wake = queue.writer_waiting;
        drop(queue);
        if wake {
            self.work_ready.notify_one();
        }
        Ok(())
    }

    /// Asks the writer to finish the queued work and stop.
    pub fn close(&self) {
        self.queue.lock().expect("queue poisoned").closing = true;
        self.work_ready.notify_one();
        self.room.close();
    }

    /// Permits for `bytes` of queue room (a request larger than the whole room takes all
    /// of it).
    pub fn permits_for(&self, bytes: usize) -> u32 {
        let max = self.config.max_pending_bytes.min(Semaphore::MAX_PERMITS);
        bytes.clamp(1, max).min(u32::MAX as usize) as u32
    }
}

/// The thread that owns the active segment.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    segment: ActiveSegment,
    path: PathBuf,
    /// Bytes of the active segment a completed fsync covers.
    synced: u64,
    /// Largest `synced_offset` written into a group header of the active segment.
    evidenced: u64,
    /// When the oldest unsynced write happened (for [`FsyncPolicy::Batch`]).
    unsynced_since: Option<Instant>,
    /// Set after a failed fsync: the writer refuses all further work.
    poisoned: Option<String>,
    /// Appends answered after the last sync (see `wait_for_work`).
    last_answered: usize,
    /// How long the last fsync took.
    last_sync: Duration,
    /// End of the zeros written ahead of the data in the active segment
    /// ([`WalConfig::zero_ahead`](crate::WalConfig::zero_ahead)).
    zeroed: u64,
    /// [`ZEROS_PER_WRITE`] zeros, allocated at the first step.
    zeros: Vec<u8>,
    visible: watch::Sender<Position>,
    buf: Vec<u8>,
    /// The group being written and the answers owed after the sync: kept between
    /// batches, so that their room is allocated once rather than regrown per batch.
    group: Vec<Request>,
    owed: Vec<Owed>,
    _lock: LockGuard,
}

/// Answers owed for one group once its fsync completes.
struct Owed {
    reply: oneshot::Sender<Result<Position>>,
    position: Position,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        segment: ActiveSegment,
        visible: watch::Sender<Position>,
        lock: LockGuard,
    ) -> Writer {
        let path = segment_path(&shared.config.dir, segment.id);
        shared.files.insert(segment.id, segment.file.clone());
        Writer {
            synced: segment.end,
            evidenced: segment.end,
            zeroed: segment.end,
            shared,
            path,
            segment,
            unsynced_since: None,
            poisoned: None,
            last_answered: 0,
            last_sync: Duration::ZERO,
            zeros: Vec::new(),
            visible,
            buf: Vec::new(),
            group: Vec::new(),
            owed: Vec::new(),
            _lock: lock,
        }
    }

    /// Runs until the log is closed; returns the outcome of the final sync.
    pub fn run(mut self) -> Result<()> {
        let mut batch = Vec::new();
        loop {
            let closing = self.wait_for_work(&mut batch);
            if !batch.is_empty() {
                self.process(&mut batch);
                continue;
            }
            if closing {
                return self.shut_down();
            }
            // The Batch window elapsed with nothing new to write.
            if let Err(err) = self.sync() {
                tracing::error!(error = %err, "timed fsync failed");
            }
        }
    }

    fn policy(&self) -> FsyncPolicy {
        self.shared.config.fsync_policy
    }

    /// Waits until there are requests (moved into `batch`), the log is closing, or the
    /// Batch window of the oldest unsynced write has elapsed.
    ///
    /// Under `Always`, appenders answered after a sync come back a moment later; taking
    /// the queue at once would split them into two half-size groups that take turns, each
    /// append waiting two syncs. So the writer lingers (at most a fifth of the last sync's
    /// time, and at most [`MAX_LINGER`]) until as many requests as it last answered are
    /// queued.
    fn wait_for_work(&mut self, batch: &mut Vec<Request>) -> bool {
        let linger_until = Instant::now() + self.linger();
        let mut queue = self.shared.queue.lock().expect("queue poisoned");
        loop {
            let queued = queue.requests.len();
            if queued > 0
                && (queued >= self.last_answered || queue.closing || Instant::now() >= linger_until)
            {
                std::mem::swap(&mut queue.requests, batch);
                return queue.closing;
            }
            if queue.closing {
                return true;
            }
            let deadline = match (self.policy(), self.unsynced_since) {
                _ if queued > 0 => Some(linger_until),
                (FsyncPolicy::Batch(window), Some(since)) => Some(since + window),
                _ => None,
            };
            queue.writer_waiting = true;
            match deadline {
                None => {
                    queue = self.shared.work_ready.wait(queue).expect("queue poisoned");
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline && queued == 0 {
                        queue.writer_waiting = false;
                        return false;
                    }
                    queue = self
                        .shared
                        .work_ready
                        .wait_timeout(queue, deadline.saturating_duration_since(now))
                        .expect("queue poisoned")
                        .0;
                }
            }
            queue.writer_waiting = false;
        }
    }

    /// How long to wait for the appenders just answered to come back (see `wait_for_work`).
    fn linger(&self) -> Duration {
        if self.policy() != FsyncPolicy::Always || self.last_answered <= 1 {
            return Duration::ZERO;
        }
        (self.last_sync / 5).min(MAX_LINGER)
    }

    /// Writes every append of `batch` in groups, syncs as the policy says, and answers.
    fn process(&mut self, batch: &mut Vec<Request>) {
        let (mut group, mut owed) = (
            std::mem::take(&mut self.group),
            std::mem::take(&mut self.owed),
        );
        let mut syncs = Vec::new();
        let mut released_permits = 0usize;
        let mut requests = batch.drain(..).peekable();
        while requests.peek().is_some() {
            let mut body = 0usize;
            let mut limit = self.shared.config.max_group_size;
            while let Some(request) = requests.peek() {
                if let Request::Append { frames, .. } = request {
                    if body == 0 {
                        limit = limit.min(self.group_room(frames.len()));
                    } else if body + frames.len() > limit {
                        break;
                    }
                    body += frames.len();
                    released_permits += self.shared.permits_for(frames.len()) as usize;
                }
                match requests.next().expect("peeked") {
                    Request::Sync { reply } => syncs.push(reply),
                    append => group.push(append),
                }
            }
            if !group.is_empty() {
                self.write_group(&mut group, body, &mut owed);
            }
        }
        drop(requests);

        // Under Batch, a queue that never empties must not postpone the timed sync.
        let window_passed = match (self.policy(), self.unsynced_since) {
            (FsyncPolicy::Batch(window), Some(since)) => since.elapsed() >= window,
            _ => false,
        };
        let synced = if self.policy() == FsyncPolicy::Always || !syncs.is_empty() || window_passed {
            self.sync()
        } else {
            self.after_unsynced_write();
            Ok(())
        };
        self.last_answered = owed.len();
        for Owed { reply, position } in owed.drain(..) {
            let _ = reply.send(match &synced {
                Ok(()) => Ok(position),
                Err(err) => Err(err.duplicate()),
            });
        }
        for reply in syncs {
            let _ = reply.send(synced.as_ref().map(|_| ()).map_err(WalError::duplicate));
        }
        self.shared.room.add_permits(released_permits);
        (self.group, self.owed) = (group, owed);
    }

    /// Bytes of frames a group whose first append has `first` bytes can hold without
    /// growing its segment past `max_segment_size`: the room left in the active segment,
    /// or in a fresh one when that first append does not fit there (`try_write_group`
    /// then rotates). The first append always fits a fresh segment (`WalConfig::validate`).
    fn group_room(&self, first: usize) -> usize {
        let max = self.shared.config.max_segment_size;
        let header = GROUP_HEADER_LEN as u64;
        let mut end = self.segment.end;
        if end + header + first as u64 > max && end > SEGMENT_HEADER_LEN {
            end = SEGMENT_HEADER_LEN;
        }
        usize::try_from(max.saturating_sub(end + header)).unwrap_or(usize::MAX)
    }

    /// Writes one group (leaving `group` empty); appenders are answered at once on
    /// failure, else put in `owed` (under `Always`, answered after the fsync) or answered
    /// now.
    fn write_group(&mut self, group: &mut Vec<Request>, body: usize, owed: &mut Vec<Owed>) {
        let outcome = self.try_write_group(group, body);
        if outcome.is_ok() && self.policy() == FsyncPolicy::Os {
            // Under `Os` written data is readable: publish it before answering, so that an
            // appender can read its own record as soon as `append` returns.
            self.publish();
        }
        let mut offset_in_body = 0u64;
        for request in group.drain(..) {
            let Request::Append {
                frames,
                reply,
                count: _,
            } = request
            else {
                unreachable!("groups hold appends only");
            };
            match &outcome {
                Err(err) => {
                    let _ = reply.send(Err(err.duplicate()));
                }
                Ok(group_start) => {
                    let position = Position {
                        segment_id: self.segment.id,
                        offset: group_start + GROUP_HEADER_LEN as u64 + offset_in_body,
                    };
                    offset_in_body += frames.len() as u64;
                    if self.policy() == FsyncPolicy::Always {
                        owed.push(Owed { reply, position });
                    } else {
                        let _ = reply.send(Ok(position));
                    }
                }
            }
        }
    }

    /// Rotates if needed and writes the group; returns the group's start offset.
    fn try_write_group(&mut self, group: &[Request], body: usize) -> Result<u64> {
        if let Some(reason) = &self.poisoned {
            return Err(WalError::Poisoned(reason.clone()));
        }
        if let Some(stall) = self.shared.stalled.lock().expect("stall poisoned").clone() {
            return Err(WalError::Stalled {
                kind: stall.kind,
                message: stall.message,
            });
        }
        let result = self.rotate_and_write(group, body);
        if let Err(err) = &result {
            let kind = match err {
                WalError::Io { source, .. } => source.kind(),
                _ => std::io::ErrorKind::Other,
            };
            // A write cut short (a full disk) may have left bytes past the end of the
            // data: cut them, so that the log stays exactly what was written whole
            // (shrinking needs no space). Recovery would cut them too, as a torn tail.
            if let Err(error) = self.segment.file.set_len(self.segment.end) {
                tracing::warn!(%error, "cannot cut a failed write off the active segment");
            }
            *self.shared.stalled.lock().expect("stall poisoned") = Some(Stall {
                kind,
                message: err.to_string(),
            });
        }
        result
    }

    fn rotate_and_write(&mut self, group: &[Request], body: usize) -> Result<u64> {
        let size = (GROUP_HEADER_LEN + body) as u64;
        if self.segment.end + size > self.shared.config.max_segment_size
            && self.segment.end > SEGMENT_HEADER_LEN
        {
            self.rotate()?;
        }
        let count = group
            .iter()
            .map(|request| match request {
                Request::Append { count, .. } => *count,
                Request::Sync { .. } => 0,
            })
            .sum();
        let header = GroupHeader {
            body_len: body as u32,
            record_count: count,
            synced_offset: self.synced,
            segment_id: self.segment.id,
        };
        self.buf.clear();
        self.buf.extend_from_slice(&header.encode());
        for request in group {
            if let Request::Append { frames, .. } = request {
                self.buf.extend_from_slice(frames);
            }
        }
        assert_eq!(
            self.buf.len() as u64,
            size,
            "a group is its header followed by its requests' frames, back to back"
        );
        let start = self.segment.end;
        debug_assert!(
            start + size <= self.shared.config.max_segment_size || start == SEGMENT_HEADER_LEN,
            "a group fits in its segment unless it starts one"
        );
        self.segment
            .file
            .write_all_at(&self.buf, start)
            .map_err(|e| WalError::io("writing", &self.path, e))?;
        self.segment.end += size;
        self.evidenced = self.evidenced.max(self.synced);
        debug_assert!(
            self.synced <= self.segment.end,
            "nothing past the data is synced"
        );
        self.write_zeros_ahead(size);
        if let Some(observer) = &self.shared.config.observer {
            observer.group_written(count, size);
        }
        Ok(start)
    }

    /// Under [`FsyncPolicy::Always`], keeps zeros written ahead of the data
    /// ([`WalConfig::zero_ahead`](crate::WalConfig::zero_ahead)), so that appends land on
    /// space the file system already counts as written. Only ever past the end of the
    /// data. (Under `Batch` and `Os` a sync covers many writes, and its one commit of
    /// newly written space costs little beside them.)
    ///
    /// A step is at least [`GROUPS_OF_ZEROS`] times the group just written (up to
    /// [`MAX_GROUP_STEP`]), so that large groups do not reach the end of the zeros on every
    /// fsync. A failure is only logged: the zeros are an optimisation, and a disk that is
    /// really failing fails the next write.
    fn write_zeros_ahead(&mut self, group_bytes: u64) {
        let configured = self.shared.config.zero_ahead;
        if configured == 0 || self.policy() != FsyncPolicy::Always {
            return;
        }
        let for_groups = group_bytes
            .saturating_mul(GROUPS_OF_ZEROS)
            .min(MAX_GROUP_STEP);
        let step = configured.max(for_groups);
        let end = self.segment.end;
        if end.saturating_add(step / 2) <= self.zeroed {
            return;
        }
        let mut at = self.zeroed.max(end);
        let to = end
            .saturating_add(step)
            .min(self.shared.config.max_segment_size);
        if self.zeros.is_empty() {
            self.zeros = vec![0; ZEROS_PER_WRITE];
        }
        while at < to {
            let len = (to - at).min(ZEROS_PER_WRITE as u64) as usize;
            if let Err(error) = self.segment.file.write_all_at(&self.zeros[..len], at) {
                tracing::debug!(%error, path = %self.path.display(), "zeros ahead of the data not written");
                break;
            }
            at += len as u64;
        }
        // Also after a failure: the next attempt comes a step later, not on every write.
        self.zeroed = self.zeroed.max(to);
    }

    /// After a write that is not synced now: publish it (`Os`) or start the Batch timer.
    fn after_unsynced_write(&mut self) {
        match self.policy() {
            FsyncPolicy::Os => self.publish(),
            FsyncPolicy::Batch(_) => {
                if self.segment.end > self.synced && self.unsynced_since.is_none() {
                    self.unsynced_since = Some(Instant::now());
                }
            }
            FsyncPolicy::Always => {}
        }
    }

    /// Makes everything written durable and visible.
    fn sync(&mut self) -> Result<()> {
        self.flush_to_disk()?;
        self.unsynced_since = None;
        self.publish();
        self.write_marker();
        Ok(())
    }

    /// `fdatasync` of the active segment if it has unsynced bytes; a failure poisons the log.
    fn flush_to_disk(&mut self) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(WalError::Poisoned(reason.clone()));
        }
        if self.segment.end > self.synced {
            let started = Instant::now();
            if let Err(err) = self.segment.file.sync_data() {
                let reason = format!("fsync of {} failed: {err}", self.path.display());
                tracing::error!("{reason}");
                self.poisoned = Some(reason.clone());
                return Err(WalError::Poisoned(reason));
            }
            let bytes = self.segment.end - self.synced;
            self.synced = self.segment.end;
            self.last_sync = started.elapsed();
            if let Some(observer) = &self.shared.config.observer {
                observer.synced(self.last_sync, bytes);
            }
        }
        Ok(())
    }

    /// After an fsync, writes an empty group recording how far the segment is durable (not
    /// synced itself). Without it, damage to groups that the fsync covered but no later group
    /// vouches for would look like a torn tail to recovery and be cut. Skipped when the
    /// segment has no room left (segments never outgrow the limit) or nothing new is covered.
    fn write_marker(&mut self) {
        let fits =
            self.segment.end + GROUP_HEADER_LEN as u64 <= self.shared.config.max_segment_size;
        if self.evidenced >= self.synced || !fits {
            return;
        }
        let marker = GroupHeader {
            body_len: 0,
            record_count: 0,
            synced_offset: self.synced,
            segment_id: self.segment.id,
        };
        match self
            .segment
            .file
            .write_all_at(&marker.encode(), self.segment.end)
        {
            Ok(()) => {
                self.segment.end += GROUP_HEADER_LEN as u64;
                self.evidenced = self.synced;
            }
            // Only evidence for recovery is lost; the next group's header carries it again.
            // A marker cut short (a full disk) is cut off, so the log ends with whole groups.
            Err(err) => {
                tracing::warn!(error = %err, "writing a sync marker failed");
                if let Err(error) = self.segment.file.set_len(self.segment.end) {
                    tracing::warn!(%error, "cannot cut a failed marker off the active segment");
                }
            }
        }
    }

    /// Lets readers see everything up to the end of the active segment.
    fn publish(&self) {
        debug_assert!(
            self.policy() == FsyncPolicy::Os || self.synced == self.segment.end,
            "readers see only durable data unless the policy leaves syncing to the OS"
        );
        let end = Position {
            segment_id: self.segment.id,
            offset: self.segment.end,
        };
        self.visible.send_if_modified(|visible| {
            let moved = *visible < end;
            if moved {
                *visible = end;
            }
            moved
        });
    }

    /// Seals the active segment (cut to its data, synced) and starts the next one.
    fn rotate(&mut self) -> Result<()> {
        let config = &self.shared.config;
        let file = &self.segment.file;
        let end = self.segment.end;
        let seal = || -> std::io::Result<()> {
            if file.size()? > end {
                file.set_len(end)?;
            }
            file.sync_data()
        };
        if let Err(err) = seal() {
            let reason = format!("sealing {} failed: {err}", self.path.display());
            self.poisoned = Some(reason.clone());
            return Err(WalError::Poisoned(reason));
        }
        self.synced = end;
        self.shared.files.sealed(self.segment.id, end);
        let next = self.segment.id + 1;
        let allocate = config.preallocate.then_some(config.max_segment_size);
        let file: Arc<dyn VfsFile> =
            create_segment(config.vfs.as_ref(), &config.dir, next, allocate)?;
        self.shared.files.insert(next, file.clone());
        self.segment = ActiveSegment {
            id: next,
            file,
            end: SEGMENT_HEADER_LEN,
        };
        self.path = segment_path(&self.shared.config.dir, next);
        self.synced = SEGMENT_HEADER_LEN;
        self.evidenced = SEGMENT_HEADER_LEN;
        self.zeroed = SEGMENT_HEADER_LEN;
        self.unsynced_since = None;
        self.shared.active_segment.store(next, Ordering::Release);
        self.publish();
        Ok(())
    }

    /// Final sync, including the marker that records that everything before it is durable,
    /// so that recovery can tell later damage there from a torn tail.
    fn shut_down(mut self) -> Result<()> {
        // The sync writes the marker; the second flush makes the marker durable too.
        self.sync()?;
        self.flush_to_disk()
    }
}
