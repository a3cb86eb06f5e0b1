//! The state cache: one [`Slot`] per aggregate in memory, bounded by bytes.
//!
//! A slot serialises the commands of its aggregate (a fair, FIFO async mutex) and
//! holds the aggregate's state as of the last command. The map is split into shards
//! by hash, each with its own lock, recency order and byte budget (the total budget
//! divided evenly). Eviction drops least recently used slots that nobody is using:
//! a slot is handed out only under its shard's lock, so a slot whose only reference
//! is the shard's is idle and stays idle while the lock is held.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use tally_store::StreamId;
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
    pub version: u64,
    pub state: Vec<u8>,
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
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// Counts an append queued through this slot.
    pub fn begin_append(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts an answered append; a failure marks the cached state stale.
    pub fn end_append(&self, failure: Option<&tally_store::StoreError>) {
        if let Some(error) = failure {
            *self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some((error.to_string(), error.is_storage_full()));
            self.stale.store(true, Ordering::Release);
        }
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
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
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Waits until every append queued through this slot has been answered.
    pub async fn wait_settled(&self) {
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
        if let Some(slot) = shard.slots.get(stream) {
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
    /// idle slots while the shard is over its budget.
    pub fn account(&self, stream: &StreamId, slot: &Slot, state_len: usize) {
        let size =
            SLOT_OVERHEAD + stream.aggregate_id.len() + stream.aggregate_type.len() + state_len;
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
        while shard.bytes > self.shard_budget {
            let idle = shard
                .slots
                .iter()
                .rev()
                .take(EVICTION_SCAN)
                .find(|(_, candidate)| Arc::strong_count(candidate) == 1)
                .map(|(key, _)| key.clone());
            let Some(key) = idle else { break };
            if let Some(evicted) = shard.slots.pop(&key) {
                shard.bytes -= evicted.accounted.load(Ordering::Relaxed);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Slots and bytes in memory.
    pub fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(slots, bytes), shard| {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            (slots + shard.slots.len(), bytes + shard.bytes)
        })
    }
}
