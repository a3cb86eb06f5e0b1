//! How a store is configured.

use std::path::Path;
use std::time::Duration;

use tally_wal::WalConfig;

use crate::StoreLog;
use crate::index::CommandRetention;

/// Configuration of an [`crate::EventStore`]. Each log's directory is its
/// [`WalConfig::dir`], used as given.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The event log, in its own directory ([`StoreConfig::new`]: `<dir>/events`, with
    /// `FsyncPolicy::Always`).
    pub wal: WalConfig,
    /// The snapshot log, in its own directory ([`StoreConfig::new`]: `<dir>/snapshots`).
    pub snapshot_wal: WalConfig,
    /// How long command ids are remembered for idempotency. Default: the last 1,000,000
    /// command ids, and none older than 7 days. Each costs about 120 bytes plus its length.
    pub command_retention: CommandRetention,
    /// Most events in one append. Default 1,000.
    pub max_events_per_append: usize,
    /// Largest event (data plus metadata) in bytes. Default 1 MiB.
    pub max_event_size: usize,
    /// Longest aggregate type, aggregate id, event name or command id, in bytes. Default 256.
    pub max_name_len: usize,
    /// Most events one read returns. Default 10,000.
    pub max_read_count: usize,
    /// Snapshot log compaction starts once dead snapshot bytes exceed this and the live
    /// ones. Default 64 MiB.
    pub snapshot_compaction_bytes: u64,
    /// Most durable appends the committer adds to the index under one lock (it takes
    /// every queued append the log has answered, up to this many). Larger batches take
    /// the index and sequencer locks less often; smaller ones keep readers of the index
    /// waiting less. Default 256; at least 1.
    pub max_commit_batch: usize,
    /// Most events a subscription reads from the log at a time while it catches up, and
    /// most events in one page of the shared live reader. A catching-up subscription
    /// holds one page, so this bounds its memory (about a page of events twice: as read
    /// and as sent). Default 128; at least 1.
    pub subscription_page: usize,
    /// Pages of the shared live reader kept for live subscriptions that have not taken
    /// them yet (the broadcast's capacity). A subscription further behind than this
    /// leaves the broadcast and catches up from the log (counted as lagged). A page is
    /// dropped once every subscription has taken it, so this costs memory only while
    /// some subscription is behind: at most this many pages. Default 256; at least 1.
    pub live_pages: usize,
    /// How often live subscriptions are woken, per live subscription: with N live
    /// subscriptions, each is woken about once per N times this (at most 250 ms; not
    /// held back under 1 ms; each wait a random 0.75 to 1.25 times it, so that the
    /// wake-ups spread out), and takes every page broadcast meanwhile. The shared reader
    /// waits an eighth of that between broadcasts, gathering the events of many commits
    /// into one page. A wake-up ends in a write to the subscriber's client, which costs
    /// tens of microseconds: thousands of subscribers woken on every commit, all at once,
    /// took the CPU from the commands and queued them behind the burst. The cost is
    /// delivery latency: a live event reaches a subscriber up to about 1.4 intervals
    /// after it is durable (with 2,000 subscribers and the default, about 350 ms; with 200,
    /// 35 ms). Default 125 µs; zero: never held back.
    pub live_pacing_per_subscriber: Duration,
}

impl StoreConfig {
    /// The default configuration for a store in `dir`: the event log in `<dir>/events`,
    /// the snapshot log in `<dir>/snapshots`.
    pub fn new(dir: impl AsRef<Path>) -> StoreConfig {
        let dir = dir.as_ref();
        StoreConfig {
            wal: WalConfig::new(dir.join(StoreLog::Events.dir_name())),
            snapshot_wal: WalConfig::new(dir.join(StoreLog::Snapshots.dir_name())),
            command_retention: CommandRetention {
                max_count: 1_000_000,
                max_age_ms: 7 * 24 * 60 * 60 * 1000,
            },
            max_events_per_append: 1_000,
            max_event_size: 1024 * 1024,
            max_name_len: 256,
            max_read_count: 10_000,
            snapshot_compaction_bytes: 64 * 1024 * 1024,
            max_commit_batch: 256,
            subscription_page: 128,
            live_pages: 256,
            live_pacing_per_subscriber: Duration::from_micros(125),
        }
    }
}
