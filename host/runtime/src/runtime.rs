//! [`Runtime`]: the event store, the plugin registry and the state cache together.
//! Commands are in `pipeline.rs`, plugin administration in `admin.rs`; this module
//! opens and closes the runtime and answers queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tally_store::{
    EventLog, GlobalPosition, LogSubscription, RecordedEvent, StreamId, StreamRead, StreamVersion,
    SubscriptionFilter,
};
use tokio::sync::Notify;

use crate::api::{AggregateState, At, EventView, PluginStatus, RuntimeConfig, StoredEvent};
use crate::backend::{BackendSubscription, StoreBackend, StoreOpenReport};
use crate::error::{CommandError, RuntimeError};
use crate::fold::{FoldError, FoldLimit, Folded, fold_stream};
use crate::registry::{PluginVersion, REGISTRY_TYPE, Registry, TypeEntry};
use crate::state_cache::{Cached, Slot, SlotState, StateCache};
use crate::workers::PluginWorkers;
use crate::{EngineConfig, PluginEngine};

/// Tally's runtime: executes commands through the active plugin of each aggregate
/// type against the event store, keeps states in a bounded cache, and installs,
/// activates and rolls back plugin versions while commands flow.
///
/// Cheap to clone: clones share the runtime. Call [`close`](Self::close) to finish
/// in-flight commands and flush the log.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: RuntimeConfig,
    pub store: StoreBackend,
    pub registry: Registry,
    pub cache: StateCache,
    pub counters: RuntimeCounters,
    /// Commands and admin operations running.
    running: AtomicUsize,
    /// Woken when `running` drops to zero while closing.
    stopped: Notify,
    /// Set by `close`: no new operation starts.
    closing: AtomicBool,
    closed: AtomicBool,
}

/// Counters of the runtime, read by [`Runtime::stats`].
#[derive(Debug, Default)]
pub(crate) struct RuntimeCounters {
    pub rehydrations: AtomicU64,
    pub rehydrate_micros: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub snapshot_failures: AtomicU64,
}

/// Figures of a running runtime (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Every installed plugin version.
    pub plugins: Vec<PluginStats>,
    /// Aggregates in the state cache.
    pub cached_aggregates: usize,
    /// Bytes the state cache accounts for.
    pub cache_bytes: usize,
    /// Commands that found their state in the cache.
    pub cache_hits: u64,
    /// Commands and queries that had to rebuild a state.
    pub cache_misses: u64,
    /// States evicted from the cache for room.
    pub cache_evictions: u64,
    /// States rebuilt from snapshot and log.
    pub rehydrations: u64,
    /// Time spent rebuilding them, in microseconds.
    pub rehydrate_micros: u64,
    /// Snapshots written.
    pub snapshots_written: u64,
    /// Snapshots that failed to be written (the next one is tried as usual).
    pub snapshot_failures: u64,
}

/// Figures of one plugin version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStats {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The version.
    pub version: semver::Version,
    /// Whether it is the active version.
    pub active: bool,
    /// Whether its compiled code came from the compile cache when it was loaded.
    pub compiled_from_cache: bool,
    /// Commands it accepted.
    pub accepted: u64,
    /// Commands it rejected.
    pub rejected: u64,
    /// Calls that trapped (or could not instantiate).
    pub trapped: u64,
    /// Calls that panicked.
    pub panicked: u64,
    /// Calls that exceeded the CPU limit.
    pub timed_out: u64,
    /// Calls that exceeded the memory limit.
    pub memory_limited: u64,
    /// Answers against the contract.
    pub invalid: u64,
}

/// Held while a command or admin operation runs; [`Runtime::close`] waits for all.
pub(crate) struct Running<'a>(&'a Inner);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let inner = self.0;
        if inner.running.fetch_sub(1, Ordering::SeqCst) == 1 && inner.closing.load(Ordering::SeqCst)
        {
            inner.stopped.notify_waiters();
        }
    }
}

impl Runtime {
    /// Opens the runtime in the directories `config` names: recovers the event store, restores every
    /// installed plugin version (from the compile cache when it has them) and the
    /// active ones.
    pub async fn open(config: RuntimeConfig) -> Result<(Runtime, StoreOpenReport), RuntimeError> {
        let started = Instant::now();
        if config.fold_batch == 0 {
            return Err(RuntimeError::Invalid(
                "fold_batch must be at least 1".into(),
            ));
        }
        let engine_config: EngineConfig = config.engine.clone();
        let engine = tokio::task::spawn_blocking(move || PluginEngine::new(engine_config))
            .await
            .map_err(|e| RuntimeError::Invalid(e.to_string()))??;
        let (store, report) = StoreBackend::open(&config).await?;
        // Registry records from here on are followed once the runtime is up (taken
        // before the registry is read, so that none falls between the two).
        let registry_end = store.known_end();
        let workers = PluginWorkers::start(config.plugin_threads)?;
        let registry = match Registry::open(
            config.plugin_dir.clone(),
            engine,
            Arc::new(workers),
            config.isolate_after_timeout,
            &store,
        )
        .await
        {
            Ok(registry) => registry,
            Err(error) => {
                let _ = store.close().await;
                return Err(error);
            }
        };
        let cache = StateCache::new(config.state_cache_bytes);
        let runtime = Runtime {
            inner: Arc::new(Inner {
                config,
                store,
                registry,
                cache,
                counters: RuntimeCounters::default(),
                running: AtomicUsize::new(0),
                stopped: Notify::new(),
                closing: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        };
        if runtime.inner.store.postgres().is_some() {
            runtime.follow_registry(registry_end);
        }
        tracing::info!(
            store = runtime.inner.store.kind(),
            events = report.events(),
            plugins = runtime.inner.registry.entries().len(),
            open_ms = started.elapsed().as_millis() as u64,
            "runtime open"
        );
        Ok((runtime, report))
    }

    /// Follows the registry's records in the shared log from `from` on, applying those
    /// of other hosts (installs and activations), until the store closes.
    fn follow_registry(&self, from: GlobalPosition) {
        let filter = SubscriptionFilter {
            aggregate_type: Some(REGISTRY_TYPE.to_owned()),
            ..SubscriptionFilter::default()
        };
        let mut records = self.inner.store.subscribe(from, filter);
        let runtime = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Ok(record) = records.next().await {
                let Some(inner) = runtime.upgrade() else {
                    return;
                };
                if let Err(error) = inner.registry.follow(&inner.store, &record).await {
                    tracing::error!(
                        %error,
                        position = %record.position,
                        "cannot apply a registry record of another host"
                    );
                }
            }
        });
    }

    /// The configuration the runtime was opened with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The plugin engine, which projections are loaded into as well.
    pub fn engine(&self) -> &PluginEngine {
        self.inner.registry.engine()
    }

    /// The event store, for reads the runtime does not wrap (the global log).
    pub fn store(&self) -> &StoreBackend {
        &self.inner.store
    }

    /// Counts an operation as running; `None` once the runtime is closing.
    pub(crate) fn enter(&self) -> Option<Running<'_>> {
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        let guard = Running(&self.inner);
        // Counted before looking: `close` sets `closing`, then waits for zero.
        (!self.inner.closing.load(Ordering::SeqCst)).then_some(guard)
    }

    /// The type entry with an active plugin, for commands and queries.
    pub(crate) fn active_type(
        &self,
        aggregate_type: &str,
    ) -> Option<(Arc<TypeEntry>, Arc<PluginVersion>)> {
        let entry = self.inner.registry.get(aggregate_type)?;
        let active = entry.active()?;
        Some((entry, active))
    }

    /// The active plugin version of an aggregate type, if any. Cheap.
    pub fn active_version(&self, aggregate_type: &str) -> Option<semver::Version> {
        self.active_type(aggregate_type)
            .map(|(_, active)| active.version().clone())
    }

    /// The version and state JSON of an aggregate, from durable events only, under the
    /// active plugin; `None` when it has no events.
    pub async fn state(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<AggregateState>, RuntimeError> {
        let (_, plugin) = self
            .active_type(aggregate_type)
            .ok_or_else(|| RuntimeError::UnknownAggregateType(aggregate_type.to_owned()))?;
        let stream = StreamId::new(aggregate_type, aggregate_id);
        let durable_version = self.inner.store.stream_version(&stream).await?;
        if durable_version == StreamVersion::ZERO {
            return Ok(None);
        }
        let slot = self.inner.cache.slot(&stream);
        let folded = {
            let mut guard = slot.state.lock().await;
            if slot.settled() {
                // Everything in the cache is durable: use it (and warm it), unless the
                // store has events it lacks (another host appended them).
                if guard
                    .cached
                    .as_ref()
                    .is_some_and(|cached| cached.version < durable_version)
                {
                    slot.mark_stale();
                }
                self.ensure_state(&mut guard, &slot, &stream, &plugin)
                    .await
                    .map_err(Box::new)?;
                let cached = guard.cached.as_ref().expect("ensured");
                Some(Folded {
                    version: cached.version,
                    state: cached.state.to_vec(),
                    snapshot_version: StreamVersion::ZERO,
                })
            } else {
                None
            }
        };
        let folded = match folded {
            Some(folded) => folded,
            // Appends are in flight: fold the durable events alone.
            None => {
                self.fold(
                    &plugin,
                    &stream,
                    FoldLimit {
                        up_to_position: None,
                        use_snapshot: true,
                    },
                )
                .await?
            }
        };
        Ok(Some(self.render(&plugin, folded).await?))
    }

    /// The state of an aggregate as it was at a position or time; `None` when it had
    /// no events then.
    pub async fn state_at(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        at: At,
    ) -> Result<Option<AggregateState>, RuntimeError> {
        let (_, plugin) = self
            .active_type(aggregate_type)
            .ok_or_else(|| RuntimeError::UnknownAggregateType(aggregate_type.to_owned()))?;
        let position = match at {
            At::Position(position) => position,
            At::TimeMs(time) => match self.inner.store.position_at_time(time).await? {
                Some(position) => position,
                None => return Ok(None),
            },
        };
        let stream = StreamId::new(aggregate_type, aggregate_id);
        let limit = FoldLimit {
            up_to_position: Some(position),
            use_snapshot: false,
        };
        let folded = self.fold(&plugin, &stream, limit).await?;
        if folded.version == StreamVersion::ZERO {
            return Ok(None);
        }
        Ok(Some(self.render(&plugin, folded).await?))
    }

    /// Events of an aggregate from `from_version` (the first event is version 1; 0 reads
    /// from the first too), at most `max_count` (capped by the store's
    /// `max_read_count`), as stored or upcast to the active plugin's schemas.
    pub async fn events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: StreamVersion,
        max_count: usize,
        view: EventView,
    ) -> Result<Vec<StoredEvent>, RuntimeError> {
        let stream = StreamId::new(aggregate_type, aggregate_id);
        let read = StreamRead::forward(from_version, max_count);
        let stored = self.inner.store.read_stream(&stream, read).await?;
        match view {
            EventView::Stored => Ok(stored.into_iter().map(stored_event).collect()),
            EventView::Current => {
                let (_, plugin) = self
                    .active_type(aggregate_type)
                    .ok_or_else(|| RuntimeError::UnknownAggregateType(aggregate_type.to_owned()))?;
                crate::current::upcast_events(&plugin, stored).await
            }
        }
    }

    /// Aggregate ids of a type in creation order with their versions: at most
    /// `max_count` from the `skip`-th on, and the total.
    pub async fn aggregates(
        &self,
        aggregate_type: &str,
        skip: usize,
        max_count: usize,
    ) -> Result<(Vec<(String, StreamVersion)>, usize), RuntimeError> {
        let store = &self.inner.store;
        let max_count = max_count.min(store.max_read_count());
        let page = store
            .list_streams(aggregate_type, skip, max_count)
            .await?
            .into_iter()
            .map(|(stream, version)| (stream.aggregate_id.to_string(), version))
            .collect();
        Ok((page, store.count_streams(aggregate_type).await?))
    }

    /// A subscription to the log from `from_position`: catch-up, then live durable
    /// events. The registry's own streams (`$tally-plugins`) are included unless the
    /// filter names an aggregate type.
    pub fn subscribe(
        &self,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> BackendSubscription {
        self.inner.store.subscribe(from_position, filter)
    }

    /// Every aggregate type with plugins: installed versions, the active one and
    /// the activation history.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.inner
            .registry
            .entries()
            .iter()
            .map(|entry| entry.status())
            .filter(|status| !status.installed.is_empty())
            .collect()
    }

    /// The aggregate type of the registry's streams in the log.
    pub const REGISTRY_TYPE: &'static str = REGISTRY_TYPE;

    /// Figures for metrics.
    pub fn stats(&self) -> RuntimeStats {
        let inner = &self.inner;
        let mut plugins = Vec::new();
        for entry in inner.registry.entries() {
            let active = entry.active();
            for version in entry.installed_versions() {
                let counters = &version.counters;
                let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
                plugins.push(PluginStats {
                    aggregate_type: entry.name.clone(),
                    version: version.version().clone(),
                    active: active.as_ref().is_some_and(|a| Arc::ptr_eq(a, &version)),
                    compiled_from_cache: version.plugin.cache_status() == crate::CacheStatus::Hit,
                    accepted: load(&counters.handled),
                    rejected: load(&counters.rejected),
                    trapped: load(&counters.trapped),
                    panicked: load(&counters.panicked),
                    timed_out: load(&counters.timed_out),
                    memory_limited: load(&counters.memory_limited),
                    invalid: load(&counters.invalid),
                });
            }
        }
        let (cached_aggregates, cache_bytes) = inner.cache.usage();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RuntimeStats {
            plugins,
            cached_aggregates,
            cache_bytes,
            cache_hits: load(&inner.cache.counters.hits),
            cache_misses: load(&inner.cache.counters.misses),
            cache_evictions: load(&inner.cache.counters.evictions),
            rehydrations: load(&inner.counters.rehydrations),
            rehydrate_micros: load(&inner.counters.rehydrate_micros),
            snapshots_written: load(&inner.counters.snapshots_written),
            snapshot_failures: load(&inner.counters.snapshot_failures),
        }
    }

    /// Stops taking commands, waits for those in flight, and closes the store
    /// (flushing the log). Later calls fail with `Closed`.
    pub async fn close(&self) -> Result<(), RuntimeError> {
        self.inner.closing.store(true, Ordering::SeqCst);
        loop {
            let stopped = self.inner.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if self.inner.running.load(Ordering::SeqCst) == 0 {
                break;
            }
            stopped.await;
        }
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.store.clone().close().await?;
        tracing::info!("runtime closed");
        Ok(())
    }

    /// Makes sure the slot holds the aggregate's state under `plugin`: keeps a
    /// cached state folded by it, otherwise rebuilds from snapshot and log once the
    /// slot's appends in flight are answered.
    pub(crate) async fn ensure_state(
        &self,
        guard: &mut SlotState,
        slot: &Slot,
        stream: &StreamId,
        plugin: &Arc<PluginVersion>,
    ) -> Result<(), CommandError> {
        let stale = slot.take_stale();
        let usable = !stale
            && guard
                .cached
                .as_ref()
                .is_some_and(|cached| Arc::ptr_eq(&cached.plugin, plugin));
        let counters = &self.inner.cache.counters;
        if usable {
            counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        guard.cached = None;
        slot.wait_settled().await;
        slot.take_stale();
        guard.cached = Some(self.rebuild_state(stream, plugin).await?);
        Ok(())
    }

    /// Rebuilds the state of `stream` under `plugin` from snapshot and log, counted
    /// and timed as a rehydration.
    async fn rebuild_state(
        &self,
        stream: &StreamId,
        plugin: &Arc<PluginVersion>,
    ) -> Result<Cached, CommandError> {
        let started = Instant::now();
        let limit = FoldLimit {
            up_to_position: None,
            use_snapshot: true,
        };
        let folded = self.fold_command(plugin, stream, limit).await?;
        let micros = started.elapsed().as_micros() as u64;
        let counters = &self.inner.counters;
        counters.rehydrations.fetch_add(1, Ordering::Relaxed);
        counters
            .rehydrate_micros
            .fetch_add(micros, Ordering::Relaxed);
        Ok(Cached {
            plugin: plugin.clone(),
            since_snapshot: folded.events_since_snapshot(),
            version: folded.version,
            state: Bytes::from(folded.state),
        })
    }

    /// Folds `stream` under `plugin` with the configured batch size.
    async fn fold_command(
        &self,
        plugin: &Arc<PluginVersion>,
        stream: &StreamId,
        limit: FoldLimit,
    ) -> Result<Folded, CommandError> {
        let batch = self.inner.config.fold_batch;
        fold_stream(&self.inner.store, plugin, stream, limit, batch)
            .await
            .map_err(|error| fold_failure(plugin, stream, error))
    }

    async fn fold(
        &self,
        plugin: &Arc<PluginVersion>,
        stream: &StreamId,
        limit: FoldLimit,
    ) -> Result<Folded, RuntimeError> {
        self.fold_command(plugin, stream, limit)
            .await
            .map_err(|error| Box::new(error).into())
    }

    async fn render(
        &self,
        plugin: &Arc<PluginVersion>,
        folded: Folded,
    ) -> Result<AggregateState, RuntimeError> {
        let state = folded.state;
        let json = plugin
            .run(move |instance| instance.state_json(&state))
            .await
            .map_err(|error| plugin_failure(plugin, error))?
            .map_err(|message| {
                RuntimeError::Command(Box::new(CommandError::Plugin {
                    aggregate_type: plugin.installed.info.aggregate_type.clone(),
                    version: plugin.version().clone(),
                    error: crate::CallError::Invalid(format!("state-json failed: {message}")),
                }))
            })?;
        Ok(AggregateState {
            version: folded.version,
            state_json: String::from_utf8(json).expect("checked to be UTF-8"),
            plugin_version: plugin.version().clone(),
        })
    }
}

/// A failed plugin call as a [`CommandError`].
pub(crate) fn plugin_error(plugin: &PluginVersion, error: crate::CallError) -> CommandError {
    CommandError::Plugin {
        aggregate_type: plugin.installed.info.aggregate_type.clone(),
        version: plugin.version().clone(),
        error,
    }
}

pub(crate) fn plugin_failure(plugin: &PluginVersion, error: crate::CallError) -> RuntimeError {
    RuntimeError::Command(Box::new(plugin_error(plugin, error)))
}

/// A failed fold as a [`CommandError`].
pub(crate) fn fold_failure(
    plugin: &PluginVersion,
    stream: &StreamId,
    error: FoldError,
) -> CommandError {
    match error {
        FoldError::Call(error) => plugin_error(plugin, error),
        FoldError::Store(error) => CommandError::Store(error),
        FoldError::Refused(message) => CommandError::Rehydrate {
            stream: stream.to_string(),
            version: plugin.version().clone(),
            message,
        },
    }
}

/// A recorded event in the runtime's terms.
pub(crate) fn stored_event(event: RecordedEvent) -> StoredEvent {
    StoredEvent {
        position: event.position,
        version: event.version,
        name: event.name,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        command_id: event.command_id,
        data: event.data,
    }
}
