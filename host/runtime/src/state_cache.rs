//! The state cache: one [`Slot`] per aggregate in memory, bounded by bytes.
//!
//! A slot serialises the commands of its aggregate (a fair, FIFO async mutex) and
//! holds the aggregate's state as of the last command. The map is split into shards
//! by hash, each with its own lock, recency order and byte budget (the total budget
//! divided evenly). Eviction drops idle slots in least recently used order, with a
//! second chance (CLOCK): a command only marks its slot as referenced, instead of
//! relinking the shard's recency list on every command; eviction moves a marked (or
//! busy) slot back to the recent end and clears its mark. A slot is handed out only
//! under its shard's lock, so a slot whose only reference is the shard's is idle and
//! stays idle while the lock is held.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use lru::LruCache;
use tally_store::{StreamId, StreamVersion};
use tokio::sync::Notify;

use crate::registry::PluginVersion;

/// Bytes a slot costs beyond its state and key (the slot, map entry, locks).
const SLOT_OVERHEAD: usize = 256;
/// Most idle-slot candidates looked at per eviction, from the least recent end.
const EVICTION_SCAN: usize = 16;

/// The state of one aggregate as of its last command, under the plugin version that
/// folded it.
pub(crate) struct Cached {
    pub plugin: Arc<PluginVersion>,
    /// Events folded (including appends queued but not yet durable).
    pub version: StreamVersion,
    /// Shared, not copied, with a plugin call deciding against it.
    pub state: Bytes,
    /// Events since the last snapshot (or since the start).
    pub since_snapshot: u64,
}

/// What a slot's lock guards.
#[derive(Default)]
pub(crate) struct SlotState {
    pub cached: Option<Cached>,
}

/// One aggregate in memory.
pub(crate) struct Slot {
    pub state: tokio::sync::Mutex<SlotState>,
    /// Appends queued through this slot and not yet answered.
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    settled: Notify,
    /// An append through this slot failed or was refused as out of date: the cached
    /// state may include events that are not in the log.
    stale: AtomicBool,
    /// Bytes this slot was last accounted for in its shard.
    accounted: AtomicUsize,
    /// Used since eviction last looked at it (its second chance).
    referenced: AtomicBool,
    /// Someone waits in [`Slot::wait_settled`]: answered appends must wake them.
    watched: AtomicBool,
    /// The last failed append through this slot: its error, and whether it was a
    /// full disk.
    last_failure: std::sync::Mutex<Option<(String, bool)>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: tokio::sync::Mutex::new(SlotState::default()),
            in_flight: AtomicUsize::new(0),
            settled: Notify::new(),
            stale: AtomicBool::new(false),
            accounted: AtomicUsize::new(0),
            referenced: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// Counts an append queued through this slot.
    pub fn begin_append(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts an answered append; a failure marks the cached state stale.
    pub fn end_append(&self, failure: Option<&tally_store::LogError>) {
        if let Some(error) = failure {
            *self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some((error.to_string(), error.is_storage_full()));
            self.stale.store(true, Ordering::Release);
        }
        // Sequentially consistent with `wait_settled`'s store and load: either this
        // sees the waiter's mark, or the waiter sees the count at zero.
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && self.watched.load(Ordering::SeqCst)
        {
            self.settled.notify_waiters();
        }
    }

    /// The error of the last failed append through this slot.
    pub fn last_failure(&self) -> Option<String> {
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failure.as_ref().map(|(error, _)| error.clone())
    }

    /// Whether the last failed append through this slot failed for a full disk.
    pub fn last_failure_was_storage_full(&self) -> bool {
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failure.as_ref().is_some_and(|(_, full)| *full)
    }

    /// Marks the cached state as possibly ahead of the log.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Takes the stale mark (true if it was set).
    pub fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::AcqRel)
    }

    /// Whether no append is in flight.
    pub fn settled(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Waits until every append queued through this slot has been answered.
    pub async fn wait_settled(&self) {
        // Set before looking at `in_flight` (see `end_append`), so that an append
        // answered after the look sees the mark and wakes this waiter.
        self.watched.store(true, Ordering::SeqCst);
        loop {
            // Registered before looking, so a wake-up between the two is not lost.
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.settled() {
                return;
            }
            notified.await;
        }
    }
}

struct Shard {
    slots: LruCache<StreamId, Arc<Slot>>,
    bytes: usize,
}

/// Counters of the cache, read by [`crate::Runtime::stats`].
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
}

/// The slots of every aggregate in memory.
pub(crate) struct StateCache {
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
    hasher: foldhash::fast::FixedState,
    pub counters: CacheCounters,
}

impl StateCache {
    /// A cache of at most about `budget` bytes.
    pub fn new(budget: usize) -> StateCache {
        let shards = (std::thread::available_parallelism().map_or(4, usize::from) * 8)
            .next_power_of_two()
            .clamp(8, 256);
        StateCache::with_shards(budget, shards)
    }

    /// A cache of about `budget` bytes in `shards` shards (a power of two).
    fn with_shards(budget: usize, shards: usize) -> StateCache {
        StateCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        slots: LruCache::unbounded(),
                        bytes: 0,
                    })
                })
                .collect(),
            shard_budget: budget / shards,
            hasher: foldhash::fast::FixedState::default(),
            counters: CacheCounters::default(),
        }
    }

    fn shard(&self, stream: &StreamId) -> &Mutex<Shard> {
        let index = self.hasher.hash_one(stream) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// The slot of `stream`, created empty if it is not in memory.
    pub fn slot(&self, stream: &StreamId) -> Arc<Slot> {
        let mut shard = self
            .shard(stream)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = shard.slots.peek(stream) {
            slot.referenced.store(true, Ordering::Relaxed);
            return slot.clone();
        }
        let slot = Arc::new(Slot::new());
        shard.slots.put(stream.clone(), slot.clone());
        shard.bytes += SLOT_OVERHEAD + stream.aggregate_id.len() + stream.aggregate_type.len();
        slot.accounted.store(
            SLOT_OVERHEAD + stream.aggregate_id.len() + stream.aggregate_type.len(),
            Ordering::Relaxed,
        );
        slot
    }

    /// Records the slot's current size (its state is `state_len` bytes) and evicts
    /// idle slots while the shard is over its budget. Nothing to do (and no lock taken)
    /// when the size did not change.
    pub fn account(&self, stream: &StreamId, slot: &Slot, state_len: usize) {
        let size =
            SLOT_OVERHEAD + stream.aggregate_id.len() + stream.aggregate_type.len() + state_len;
        if slot.accounted.load(Ordering::Relaxed) == size {
            return;
        }
        let mut shard = self
            .shard(stream)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A slot evicted while in use is no longer counted in its shard.
        if !shard
            .slots
            .peek(stream)
            .is_some_and(|held| std::ptr::eq(&**held, slot))
        {
            return;
        }
        let before = slot.accounted.swap(size, Ordering::Relaxed);
        shard.bytes = shard.bytes + size - before;
        while shard.bytes > self.shard_budget && self.evict_one(&mut shard) {}
    }

    /// Evicts the least recently used idle slot without a second chance, looking at
    /// no more than [`EVICTION_SCAN`] slots; false if none was found. The slots looked
    /// at and kept (referenced or busy) move to the recent end, their mark cleared.
    fn evict_one(&self, shard: &mut Shard) -> bool {
        for _ in 0..EVICTION_SCAN {
            let Some((key, candidate)) = shard.slots.pop_lru() else {
                return false;
            };
            let referenced = candidate.referenced.swap(false, Ordering::Relaxed);
            // The shard's reference, now held here, is the only one: idle.
            if Arc::strong_count(&candidate) == 1 && !referenced {
                shard.bytes -= candidate.accounted.load(Ordering::Relaxed);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            shard.slots.put(key, candidate);
        }
        false
    }

    /// Slots and bytes in memory.
    pub fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(slots, bytes), shard| {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            (slots + shard.slots.len(), bytes + shard.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(cache: &StateCache, stream: &StreamId) -> bool {
        let shard = cache.shard(stream).lock().unwrap();
        shard.slots.contains(stream)
    }

    /// Takes a slot and accounts a 10-byte state for it, as a command does.
    fn command(cache: &StateCache, stream: &StreamId) {
        let slot = cache.slot(stream);
        cache.account(stream, &slot, 10);
    }

    #[test]
    fn eviction_gives_a_referenced_slot_a_second_chance() {
        // One shard with room for three slots of 268 bytes (256 overhead + key + state).
        let cache = StateCache::with_shards(900, 1);
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| StreamId::new("t", id));
        for stream in [&a, &b, &c] {
            command(&cache, stream);
        }
        // A command on `a`, the least recent, marks it.
        command(&cache, &a);
        // `d` takes the shard over budget: `a` gets its second chance, `b` goes.
        command(&cache, &d);
        assert!(contains(&cache, &a));
        assert!(!contains(&cache, &b));
        assert!(contains(&cache, &c) && contains(&cache, &d));
        assert_eq!(cache.counters.evictions.load(Ordering::Relaxed), 1);
        assert_eq!(cache.usage(), (3, 3 * 268));
    }

    #[test]
    fn a_slot_in_use_is_never_evicted() {
        let cache = StateCache::with_shards(600, 1);
        let [a, b, c] = ["a", "b", "c"].map(|id| StreamId::new("t", id));
        let held = cache.slot(&a);
        cache.account(&a, &held, 10);
        command(&cache, &b);
        // Over budget: `a` is the least recent and unmarked, but a command holds it.
        command(&cache, &c);
        assert!(contains(&cache, &a));
        assert!(!contains(&cache, &b));
        drop(held);
    }

    #[test]
    fn an_unchanged_size_is_not_accounted_again() {
        let cache = StateCache::with_shards(10_000, 1);
        let a = StreamId::new("t", "a");
        command(&cache, &a);
        let before = cache.usage();
        command(&cache, &a);
        assert_eq!(cache.usage(), before);
        assert_eq!(before, (1, 268));
    }
}
