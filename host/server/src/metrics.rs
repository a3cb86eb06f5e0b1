//! Prometheus metrics (`GET /metrics`): commands, latencies, appended events, the
//! log's fsyncs and groups, plugin calls and failures by version, rehydration, the
//! state cache, subscriptions and their lag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tally_runtime::tally_store::SubscriptionStats;
use tally_runtime::tally_store::tally_wal::WalObserver;
use tally_runtime::{GlobalPosition, PluginStats, Runtime, RuntimeStats};

/// Every metric of the service. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    commands: CommandMetrics,
    plugins: PluginMetrics,
    state: StateMetrics,
    subscriptions: SubscriptionMetrics,
    wal: Arc<WalMetrics>,
}

/// Commands, their latencies, and the events they appended.
struct CommandMetrics {
    total: IntCounterVec,
    seconds: HistogramVec,
    events: IntCounterVec,
}

/// Plugin calls by version and result, and which versions are active.
struct PluginMetrics {
    calls: IntCounterVec,
    active: IntGaugeVec,
}

/// Rehydration, snapshots and the state cache.
struct StateMetrics {
    rehydrations: IntCounter,
    rehydration_micros: IntCounter,
    snapshots: IntCounter,
    cache_aggregates: IntGauge,
    cache_bytes: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,
}

/// The log's end, and the open live event streams with how far each has got; how the
/// store's subscriptions fare (the shared live reader's pages, catch-up reads, lags).
struct SubscriptionMetrics {
    end_position: IntGauge,
    open: IntGauge,
    lag: IntGauge,
    refused: IntCounter,
    live: IntGauge,
    lagged: IntCounter,
    catch_up_pages: IntCounter,
    live_pages: IntCounter,
    positions: Mutex<HashMap<u64, Arc<AtomicU64>>>,
    next_id: AtomicU64,
}

/// The log writer's figures, fed by the WAL on its writer thread.
#[derive(Debug)]
pub struct WalMetrics {
    fsync_seconds: Histogram,
    group_records: Histogram,
    bytes_written: IntCounter,
}

impl WalObserver for WalMetrics {
    fn group_written(&self, records: u32, bytes: u64) {
        self.group_records.observe(f64::from(records));
        self.bytes_written.inc_by(bytes);
    }

    fn synced(&self, duration: Duration, _bytes: u64) {
        self.fsync_seconds.observe(duration.as_secs_f64());
    }
}

/// Registers `metric` with `registry` and gives it back.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, metric)
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(registry, Histogram::with_opts(opts).expect("valid metric"))
}

/// Latency buckets from 50 us to 10 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.5, 14).expect("valid buckets")
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            inner: Arc::new(Inner {
                commands: CommandMetrics::new(&registry),
                plugins: PluginMetrics::new(&registry),
                state: StateMetrics::new(&registry),
                subscriptions: SubscriptionMetrics::new(&registry),
                wal: Arc::new(WalMetrics::new(&registry)),
                registry,
            }),
        }
    }

    /// The observer to give the event log.
    pub fn wal_observer(&self) -> Arc<dyn WalObserver> {
        self.inner.wal.clone()
    }

    /// Counts a command and its latency.
    pub fn command_done(&self, aggregate_type: &str, outcome: &str, elapsed: Duration) {
        let commands = &self.inner.commands;
        commands
            .total
            .with_label_values(&[aggregate_type, outcome])
            .inc();
        commands
            .seconds
            .with_label_values(&[aggregate_type])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an appended event.
    pub fn event_appended(&self, aggregate_type: &str, event_type: &str) {
        self.inner
            .commands
            .events
            .with_label_values(&[aggregate_type, event_type])
            .inc();
    }

    /// Counts an open subscription until the guard is dropped.
    pub fn subscription_opened(&self, from: GlobalPosition) -> SubscriptionGuard {
        let (id, position) = self.inner.subscriptions.open(from);
        SubscriptionGuard {
            metrics: self.clone(),
            id,
            position,
        }
    }

    /// Counts a live event stream refused at the cap (`--max-subscribers`).
    pub fn subscription_refused(&self) {
        self.inner.subscriptions.refused.inc();
    }

    /// The text exposition, with the runtime's figures brought up to date.
    pub fn render(&self, runtime: Option<&Runtime>) -> Result<String, String> {
        if let Some(runtime) = runtime {
            self.update_from(runtime);
        }
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.inner.registry.gather(), &mut text)
            .map_err(|error| error.to_string())?;
        String::from_utf8(text).map_err(|error| error.to_string())
    }

    fn update_from(&self, runtime: &Runtime) {
        let stats = runtime.stats();
        self.inner.plugins.update(&stats.plugins);
        self.inner.state.update(&stats);
        let store = runtime.store();
        // The shared live pages are the embedded store's; PostgreSQL's subscriptions
        // each read their own.
        let stats = store
            .embedded()
            .map(|embedded| embedded.subscription_stats())
            .unwrap_or_default();
        self.inner
            .subscriptions
            .update(store.known_end().get(), stats);
    }
}

impl CommandMetrics {
    fn new(registry: &Registry) -> CommandMetrics {
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "tally_command_duration_seconds",
                "Time from receiving a command to answering it (durable), by aggregate type",
            )
            .buckets(latency_buckets()),
            &["aggregate_type"],
        )
        .expect("valid metric");
        CommandMetrics {
            total: counter_vec(
                registry,
                "tally_commands_total",
                "Commands by aggregate type and outcome (ok, rejected, conflict, invalid, failed, unavailable)",
                &["aggregate_type", "outcome"],
            ),
            seconds: register(registry, seconds),
            events: counter_vec(
                registry,
                "tally_events_appended_total",
                "Events appended by commands, by aggregate type and event type",
                &["aggregate_type", "event_type"],
            ),
        }
    }
}

impl PluginMetrics {
    fn new(registry: &Registry) -> PluginMetrics {
        let active = IntGaugeVec::new(
            Opts::new(
                "tally_plugin_active",
                "1 for the active plugin version of each aggregate type, 0 for other installed ones",
            ),
            &["aggregate_type", "version"],
        )
        .expect("valid metric");
        PluginMetrics {
            calls: counter_vec(
                registry,
                "tally_plugin_commands_total",
                "Commands decided by each plugin version, by result (accepted, rejected, trap, panic, timeout, memory, invalid)",
                &["aggregate_type", "version", "result"],
            ),
            active: register(registry, active),
        }
    }

    /// Brings the calls and the active flags up to the runtime's figures.
    fn update(&self, plugins: &[PluginStats]) {
        for plugin in plugins {
            let version = plugin.version.to_string();
            let labels =
                |result: &'static str| [plugin.aggregate_type.as_str(), version.as_str(), result];
            for (result, value) in [
                ("accepted", plugin.accepted),
                ("rejected", plugin.rejected),
                ("trap", plugin.trapped),
                ("panic", plugin.panicked),
                ("timeout", plugin.timed_out),
                ("memory", plugin.memory_limited),
                ("invalid", plugin.invalid),
            ] {
                catch_up(&self.calls.with_label_values(&labels(result)), value);
            }
            self.active
                .with_label_values(&[plugin.aggregate_type.as_str(), version.as_str()])
                .set(i64::from(plugin.active));
        }
    }
}

impl StateMetrics {
    fn new(registry: &Registry) -> StateMetrics {
        StateMetrics {
            rehydrations: counter(
                registry,
                "tally_rehydrations_total",
                "Aggregate states rebuilt from snapshot and log",
            ),
            rehydration_micros: counter(
                registry,
                "tally_rehydration_microseconds_total",
                "Time spent rebuilding aggregate states",
            ),
            snapshots: counter(
                registry,
                "tally_snapshots_written_total",
                "Snapshots written",
            ),
            cache_aggregates: gauge(
                registry,
                "tally_state_cache_aggregates",
                "Aggregate states in memory",
            ),
            cache_bytes: gauge(
                registry,
                "tally_state_cache_bytes",
                "Bytes of the state cache",
            ),
            cache_hits: counter(registry, "tally_state_cache_hits_total", "State cache hits"),
            cache_misses: counter(
                registry,
                "tally_state_cache_misses_total",
                "State cache misses (states rebuilt)",
            ),
            cache_evictions: counter(
                registry,
                "tally_state_cache_evictions_total",
                "States evicted from the cache for room",
            ),
        }
    }

    /// Brings the figures up to the runtime's.
    fn update(&self, stats: &RuntimeStats) {
        catch_up(&self.rehydrations, stats.rehydrations);
        catch_up(&self.rehydration_micros, stats.rehydrate_micros);
        catch_up(&self.snapshots, stats.snapshots_written);
        catch_up(&self.cache_hits, stats.cache_hits);
        catch_up(&self.cache_misses, stats.cache_misses);
        catch_up(&self.cache_evictions, stats.cache_evictions);
        self.cache_aggregates.set(stats.cached_aggregates as i64);
        self.cache_bytes.set(stats.cache_bytes as i64);
    }
}

impl SubscriptionMetrics {
    fn new(registry: &Registry) -> SubscriptionMetrics {
        SubscriptionMetrics {
            end_position: gauge(
                registry,
                "tally_log_end_position",
                "Events in the log (the position of the next one)",
            ),
            open: gauge(
                registry,
                "tally_subscriptions",
                "Open live event streams (SSE)",
            ),
            lag: gauge(
                registry,
                "tally_subscription_lag_events",
                "Events the slowest open subscription is behind the log's end",
            ),
            refused: counter(
                registry,
                "tally_subscriptions_refused_total",
                "Live event streams refused at the cap (--max-subscribers)",
            ),
            live: gauge(
                registry,
                "tally_subscriptions_live",
                "Subscriptions receiving the shared live reader's pages (the others are catching up from the log)",
            ),
            lagged: counter(
                registry,
                "tally_subscriptions_lagged_total",
                "Times a live subscription fell behind the live broadcast and went back to reading the log",
            ),
            catch_up_pages: counter(
                registry,
                "tally_subscription_catch_up_pages_total",
                "Pages subscriptions read from the log to catch up",
            ),
            live_pages: counter(
                registry,
                "tally_subscription_live_pages_total",
                "Pages the shared live reader read once and broadcast to every live subscription",
            ),
            positions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// Counts a subscription from `from`: its id, and the position it has got to.
    fn open(&self, from: GlobalPosition) -> (u64, Arc<AtomicU64>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let position = Arc::new(AtomicU64::new(from.get()));
        self.positions().insert(id, position.clone());
        self.open.inc();
        (id, position)
    }

    /// Forgets the subscription `id`.
    fn close(&self, id: u64) {
        self.positions().remove(&id);
        self.open.dec();
    }

    /// Sets the log's end, `end`, how far the slowest subscription is behind it, and the
    /// store's subscription figures.
    fn update(&self, end: u64, stats: SubscriptionStats) {
        self.live.set(stats.live as i64);
        catch_up(&self.lagged, stats.lagged);
        catch_up(&self.catch_up_pages, stats.catch_up_pages);
        catch_up(&self.live_pages, stats.live_pages);
        self.end_position.set(end as i64);
        let slowest = self
            .positions()
            .values()
            .map(|position| position.load(Ordering::Relaxed))
            .min();
        self.lag
            .set(slowest.map_or(0, |position| end.saturating_sub(position)) as i64);
    }

    /// The open subscriptions' positions, by id.
    fn positions(&self) -> MutexGuard<'_, HashMap<u64, Arc<AtomicU64>>> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl WalMetrics {
    fn new(registry: &Registry) -> WalMetrics {
        WalMetrics {
            fsync_seconds: histogram(
                registry,
                "tally_wal_fsync_duration_seconds",
                "Duration of each fdatasync of the event log",
                latency_buckets(),
            ),
            group_records: histogram(
                registry,
                "tally_wal_group_records",
                "Records per group written to the event log (group commit)",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            bytes_written: counter(
                registry,
                "tally_wal_bytes_written_total",
                "Bytes written to the event log",
            ),
        }
    }
}

/// Brings a counter up to a total kept elsewhere.
fn catch_up(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

/// An open subscription, for the subscription gauges.
pub struct SubscriptionGuard {
    metrics: Metrics,
    id: u64,
    position: Arc<AtomicU64>,
}

impl SubscriptionGuard {
    /// Records that the event at `position` was delivered.
    pub fn delivered(&self, position: GlobalPosition) {
        self.position
            .store(position.next().get(), Ordering::Relaxed);
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.metrics.inner.subscriptions.close(self.id);
    }
}
