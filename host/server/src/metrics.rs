//! Prometheus metrics (`GET /metrics`): commands, latencies, appended events, the
//! log's fsyncs and groups, plugin calls and failures by version, rehydration, the
//! state cache, subscriptions and their lag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tally_runtime::Runtime;
use tally_runtime::tally_store::tally_wal::WalObserver;

/// Every metric of the service. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    commands: IntCounterVec,
    command_seconds: HistogramVec,
    events: IntCounterVec,
    plugin_calls: IntCounterVec,
    plugin_active: IntGaugeVec,
    rehydrations: IntCounter,
    rehydration_micros: IntCounter,
    snapshots: IntCounter,
    cache_aggregates: IntGauge,
    cache_bytes: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,
    end_position: IntGauge,
    subscriptions: IntGauge,
    subscription_lag: IntGauge,
    open_subscriptions: Mutex<HashMap<u64, Arc<AtomicU64>>>,
    next_subscription: AtomicU64,
    wal: Arc<WalMetrics>,
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

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
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
        let command_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tally_command_duration_seconds",
                "Time from receiving a command to answering it (durable), by aggregate type",
            )
            .buckets(latency_buckets()),
            &["aggregate_type"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(command_seconds.clone()))
            .expect("unique metric");
        let plugin_active = IntGaugeVec::new(
            Opts::new(
                "tally_plugin_active",
                "1 for the active plugin version of each aggregate type, 0 for other installed ones",
            ),
            &["aggregate_type", "version"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(plugin_active.clone()))
            .expect("unique metric");
        let wal = Arc::new(WalMetrics {
            fsync_seconds: histogram(
                &registry,
                "tally_wal_fsync_duration_seconds",
                "Duration of each fdatasync of the event log",
                latency_buckets(),
            ),
            group_records: histogram(
                &registry,
                "tally_wal_group_records",
                "Records per group written to the event log (group commit)",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            bytes_written: counter(
                &registry,
                "tally_wal_bytes_written_total",
                "Bytes written to the event log",
            ),
        });
        Metrics {
            inner: Arc::new(Inner {
                commands: counter_vec(
                    &registry,
                    "tally_commands_total",
                    "Commands by aggregate type and outcome (ok, rejected, conflict, invalid, failed, unavailable)",
                    &["aggregate_type", "outcome"],
                ),
                command_seconds,
                events: counter_vec(
                    &registry,
                    "tally_events_appended_total",
                    "Events appended by commands, by aggregate type and event type",
                    &["aggregate_type", "event_type"],
                ),
                plugin_calls: counter_vec(
                    &registry,
                    "tally_plugin_commands_total",
                    "Commands decided by each plugin version, by result (accepted, rejected, trap, panic, timeout, memory, invalid)",
                    &["aggregate_type", "version", "result"],
                ),
                plugin_active,
                rehydrations: counter(
                    &registry,
                    "tally_rehydrations_total",
                    "Aggregate states rebuilt from snapshot and log",
                ),
                rehydration_micros: counter(
                    &registry,
                    "tally_rehydration_microseconds_total",
                    "Time spent rebuilding aggregate states",
                ),
                snapshots: counter(
                    &registry,
                    "tally_snapshots_written_total",
                    "Snapshots written",
                ),
                cache_aggregates: gauge(
                    &registry,
                    "tally_state_cache_aggregates",
                    "Aggregate states in memory",
                ),
                cache_bytes: gauge(
                    &registry,
                    "tally_state_cache_bytes",
                    "Bytes of the state cache",
                ),
                cache_hits: counter(
                    &registry,
                    "tally_state_cache_hits_total",
                    "State cache hits",
                ),
                cache_misses: counter(
                    &registry,
                    "tally_state_cache_misses_total",
                    "State cache misses (states rebuilt)",
                ),
                cache_evictions: counter(
                    &registry,
                    "tally_state_cache_evictions_total",
                    "States evicted from the cache for room",
                ),
                end_position: gauge(
                    &registry,
                    "tally_log_end_position",
                    "Events in the log (the position of the next one)",
                ),
                subscriptions: gauge(
                    &registry,
                    "tally_subscriptions",
                    "Open live event streams (SSE)",
                ),
                subscription_lag: gauge(
                    &registry,
                    "tally_subscription_lag_events",
                    "Events the slowest open subscription is behind the log's end",
                ),
                open_subscriptions: Mutex::new(HashMap::new()),
                next_subscription: AtomicU64::new(0),
                wal,
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
        let inner = &self.inner;
        inner
            .commands
            .with_label_values(&[aggregate_type, outcome])
            .inc();
        inner
            .command_seconds
            .with_label_values(&[aggregate_type])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an appended event.
    pub fn event_appended(&self, aggregate_type: &str, event_type: &str) {
        self.inner
            .events
            .with_label_values(&[aggregate_type, event_type])
            .inc();
    }

    /// Counts an open subscription until the guard is dropped.
    pub fn subscription_opened(&self, from: u64) -> SubscriptionGuard {
        let id = self.inner.next_subscription.fetch_add(1, Ordering::Relaxed);
        let position = Arc::new(AtomicU64::new(from));
        self.inner
            .open_subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, position.clone());
        self.inner.subscriptions.inc();
        SubscriptionGuard {
            metrics: self.clone(),
            id,
            position,
        }
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
        let inner = &self.inner;
        let stats = runtime.stats();
        for plugin in &stats.plugins {
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
                catch_up(
                    &inner.plugin_calls.with_label_values(&labels(result)),
                    value,
                );
            }
            inner
                .plugin_active
                .with_label_values(&[plugin.aggregate_type.as_str(), version.as_str()])
                .set(i64::from(plugin.active));
        }
        catch_up(&inner.rehydrations, stats.rehydrations);
        catch_up(&inner.rehydration_micros, stats.rehydrate_micros);
        catch_up(&inner.snapshots, stats.snapshots_written);
        catch_up(&inner.cache_hits, stats.cache_hits);
        catch_up(&inner.cache_misses, stats.cache_misses);
        catch_up(&inner.cache_evictions, stats.cache_evictions);
        inner.cache_aggregates.set(stats.cached_aggregates as i64);
        inner.cache_bytes.set(stats.cache_bytes as i64);
        let end = runtime.store().end_position();
        inner.end_position.set(end as i64);
        let slowest = inner
            .open_subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|position| position.load(Ordering::Relaxed))
            .min();
        inner
            .subscription_lag
            .set(slowest.map_or(0, |position| end.saturating_sub(position)) as i64);
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
    pub fn delivered(&self, position: u64) {
        self.position.store(position + 1, Ordering::Relaxed);
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let inner = &self.metrics.inner;
        inner
            .open_subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        inner.subscriptions.dec();
    }
}
