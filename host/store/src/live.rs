//! The shared live reader: one task follows the committed end of the log, reads every new
//! stretch of events once, and broadcasts it as an [`EventPage`] to all live
//! subscriptions.
//!
//! Before it, every subscription read each new event from the log itself: N subscribers
//! made N reads of every event, each on a blocking thread. Now a live subscription only
//! receives shared pages; it reads the log only while it catches up (from an old
//! position, or after falling more than the broadcast's capacity behind), a page at a
//! time and at most [`CATCH_UP_READS`] subscriptions at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit, broadcast, watch};
use tokio::task::JoinHandle;

use crate::error::{Result, StoreError};
use crate::store::Inner;
use crate::subscription::EventPage;
use crate::version::GlobalPosition;

/// Catch-up reads of the log that may run at once, over all subscriptions. Each read runs
/// on a blocking thread and holds a page in memory: without a bound, a thousand
/// subscriptions catching up at once took a thousand threads (tokio's blocking pool grows
/// to 512) and their pages. More than a few do not read faster on a machine's cores.
pub const CATCH_UP_READS: usize = 4;

/// What subscriptions cost and how they fare, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStats {
    /// Subscriptions receiving the shared live pages now (the others are catching up).
    pub live: usize,
    /// Times a live subscription fell more than the broadcast's capacity behind and went
    /// back to reading the log from its own position (nothing is lost).
    pub lagged: u64,
    /// Pages the subscriptions read from the log to catch up.
    pub catch_up_pages: u64,
    /// Pages the shared live reader broadcast.
    pub live_pages: u64,
}

/// The store's side of the broadcast: how subscriptions join it, and its counters.
#[derive(Debug)]
pub(crate) struct Fanout {
    /// Weak, so that the channel closes (and live subscriptions end) when the reader task,
    /// which holds the only sender, ends.
    sender: broadcast::WeakSender<Arc<EventPage>>,
    catch_up_reads: Semaphore,
    lagged: AtomicU64,
    catch_up_pages: AtomicU64,
    live_pages: Arc<AtomicU64>,
    reader: Mutex<Option<JoinHandle<()>>>,
    pacing: Pacing,
    /// Seeds of the subscriptions' [`Jitter`].
    seeds: AtomicU64,
}

impl Fanout {
    /// The broadcast of `capacity` pages, and its sender for [`run_reader`].
    pub fn new(capacity: usize, pacing: Pacing) -> (Fanout, broadcast::Sender<Arc<EventPage>>) {
        let (sender, _) = broadcast::channel(capacity);
        let fanout = Fanout {
            sender: sender.downgrade(),
            catch_up_reads: Semaphore::new(CATCH_UP_READS),
            lagged: AtomicU64::new(0),
            catch_up_pages: AtomicU64::new(0),
            live_pages: Arc::new(AtomicU64::new(0)),
            reader: Mutex::new(None),
            pacing,
            seeds: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        };
        (fanout, sender)
    }

    /// Keeps the reader task's handle, for [`stop`](Self::stop).
    pub fn set_reader(&self, reader: JoinHandle<()>) {
        *self.reader.lock().expect("reader poisoned") = Some(reader);
    }

    /// How often subscriptions are woken.
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// The counter of broadcast pages, for the reader task.
    pub fn live_pages_counter(&self) -> Arc<AtomicU64> {
        self.live_pages.clone()
    }

    /// A receiver of every page broadcast from now on; [`StoreError::Closed`] once the
    /// reader has stopped.
    pub fn join(&self) -> Result<broadcast::Receiver<Arc<EventPage>>> {
        let sender = self.sender.upgrade().ok_or(StoreError::Closed)?;
        Ok(sender.subscribe())
    }

    /// Waits for a turn to read the log for a catch-up.
    pub async fn catch_up_turn(&self) -> Result<SemaphorePermit<'_>> {
        let permit = self
            .catch_up_reads
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        self.catch_up_pages.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// A new subscription's spread of wake-ups.
    pub fn jitter(&self) -> Jitter {
        let seed = self
            .seeds
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        Jitter(seed | 1)
    }

    /// The interval between two wake-ups of a live subscription now ([`Pacing`]).
    pub fn wake_interval(&self) -> Option<Duration> {
        let live = self
            .sender
            .upgrade()
            .map_or(0, |sender| sender.receiver_count());
        self.pacing.subscriber_interval(live)
    }

    /// Counts a live subscription that fell behind the broadcast.
    pub fn count_lagged(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            live: self
                .sender
                .upgrade()
                .map_or(0, |sender| sender.receiver_count()),
            lagged: self.lagged.load(Ordering::Relaxed),
            catch_up_pages: self.catch_up_pages.load(Ordering::Relaxed),
            live_pages: self.live_pages.load(Ordering::Relaxed),
        }
    }

    /// Ends the reader task (the store is closing) and waits until it has: the
    /// broadcast closes, and live subscriptions end. Aborted rather than woken, since it
    /// may be in a pause of up to [`MAX_PAUSE`]; it holds nothing that needs a clean end.
    pub async fn stop(&self) {
        let reader = self.reader.lock().expect("reader poisoned").take();
        if let Some(reader) = reader {
            reader.abort();
            // Cancelled, or it had ended (or panicked): either way it is gone.
            let _ = reader.await;
        }
    }
}

/// The longest interval between two wake-ups of a live subscription.
const MAX_INTERVAL: Duration = Duration::from_millis(250);

/// Shorter waits are not taken: the timer's resolution is a millisecond.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// How often live subscriptions are woken and the shared reader broadcasts, by the
/// number of live subscriptions
/// ([`StoreConfig::live_pacing_per_subscriber`](crate::StoreConfig::live_pacing_per_subscriber)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub per_subscriber: Duration,
}

impl Pacing {
    /// The interval between two wake-ups of each of `subscribers` live subscriptions;
    /// `None`: wake on every broadcast.
    pub fn subscriber_interval(self, subscribers: usize) -> Option<Duration> {
        let interval = self
            .per_subscriber
            .saturating_mul(u32::try_from(subscribers).unwrap_or(u32::MAX))
            .min(MAX_INTERVAL);
        (interval >= MIN_WAIT).then_some(interval)
    }

    /// The reader's pause after a broadcast: an eighth of the subscribers' interval, so
    /// that a subscription finds a few pages at each wake-up, not hundreds (which would
    /// overflow the broadcast).
    fn reader_pause(self, subscribers: usize) -> Option<Duration> {
        let pause = self.subscriber_interval(subscribers)? / 8;
        (pause >= MIN_WAIT).then_some(pause)
    }
}

/// A subscription's random spread of its wake-ups (xorshift; no need for quality).
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// `interval` times a random factor from 0.75 to 1.25.
    pub fn spread(&mut self, interval: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let permille = 750 + (self.0 % 500) as u32;
        interval * permille / 1000
    }
}

/// How the shared live reader works.
#[derive(Debug)]
pub(crate) struct ReaderSettings {
    /// Most events per page.
    pub page: usize,
    /// Its pauses.
    pub pacing: Pacing,
    /// Counts the pages broadcast.
    pub pages: Arc<AtomicU64>,
}

/// The shared live reader. It follows `committed`, reads each stretch of newly committed
/// events (at most a page at a time), broadcasts it, then pauses in proportion to the
/// live subscriptions ([`Pacing`]). It holds
/// the store only weakly, so that a store dropped without `close` still closes; it ends
/// when the store is closed or gone, and with it the broadcast.
pub(crate) async fn run_reader(
    store: Weak<Inner>,
    mut committed: watch::Receiver<GlobalPosition>,
    sender: broadcast::Sender<Arc<EventPage>>,
    settings: ReaderSettings,
) {
    let mut next = *committed.borrow_and_update();
    while committed.changed().await.is_ok() {
        let end = *committed.borrow_and_update();
        let Some(store) = crate::store::EventStore::upgrade(&store) else {
            break;
        };
        if store.is_closed() {
            break;
        }
        if sender.receiver_count() == 0 {
            // Nobody listens: nothing to read. A subscription that joins later reads what
            // it missed from the log, as after any gap.
            next = end;
            continue;
        }
        next = broadcast_up_to(&store, &sender, next, end, &settings).await;
        // The store is not held during the pause: it may close meanwhile.
        drop(store);
        if let Some(pause) = settings.pacing.reader_pause(sender.receiver_count()) {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Reads the events from `next` to `end` in pages and broadcasts each; the position it got
/// to. After a failed read it skips to `end`: the subscriptions see the gap and read those
/// events from the log themselves, so each of them meets the error.
async fn broadcast_up_to(
    store: &crate::store::EventStore,
    sender: &broadcast::Sender<Arc<EventPage>>,
    mut next: GlobalPosition,
    end: GlobalPosition,
    settings: &ReaderSettings,
) -> GlobalPosition {
    while next < end {
        let count = (end.events_since(next) as usize).min(settings.page);
        let events = match store.read_all(next, count).await {
            Ok(events) if !events.is_empty() => events,
            Ok(_) => return end,
            Err(error) => {
                tracing::warn!(%error, position = %next, "the live reader cannot read the log; subscriptions read it themselves");
                return end;
            }
        };
        let page = EventPage::new(events);
        next = page.end();
        settings.pages.fetch_add(1, Ordering::Relaxed);
        // No receiver left is not an error: the next turn skips.
        let _ = sender.send(Arc::new(page));
    }
    next
}
