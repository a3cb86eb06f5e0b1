//! The plugin registry: installed versions per aggregate type, the active one, the
//! activation history, and how they are kept durable.
//!
//! Installed components are files `plugins/<sha256>.wasm` in the data directory,
//! written to a temporary name, fsynced and renamed before they are recorded. The
//! records themselves are events in the log, one stream per aggregate type:
//! `$tally-plugins/<aggregate type>` holds `PluginInstalled` and `PluginActivated`
//! events, so which version became active at which position is part of the history,
//! and a restart replays the stream to come up with the same versions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tally_store::{EventLog, NewEvent, RecordedEvent, StreamId, StreamRead, StreamVersion};

use crate::backend::StoreBackend;

use crate::api::{Activation, InstalledPlugin, PluginStatus};
use crate::error::RuntimeError;
use crate::workers::PluginWorkers;
use crate::{CallError, LoadedPlugin, PluginEngine, PluginInstance};

/// The aggregate type of the registry's streams (one per plugin aggregate type).
pub const REGISTRY_TYPE: &str = "$tally-plugins";
/// Event recording an installed component.
const INSTALLED: &str = "PluginInstalled";
/// Event recording an activation or rollback.
const ACTIVATED: &str = "PluginActivated";

/// `PluginInstalled` data.
#[derive(Debug, Serialize, Deserialize)]
struct InstalledRecord {
    version: String,
    sha256: String,
    size: u64,
}

/// `PluginActivated` data.
#[derive(Debug, Serialize, Deserialize)]
struct ActivatedRecord {
    version: String,
    previous: Option<String>,
    rollback: bool,
    forced: bool,
    verified_streams: Option<u64>,
}

/// Counters of one plugin version, read by [`crate::Runtime::stats`].
#[derive(Debug, Default)]
pub(crate) struct PluginCounters {
    pub handled: AtomicU64,
    pub rejected: AtomicU64,
    pub trapped: AtomicU64,
    pub panicked: AtomicU64,
    pub timed_out: AtomicU64,
    pub memory_limited: AtomicU64,
    pub invalid: AtomicU64,
}

impl PluginCounters {
    fn record_failure(&self, error: &CallError) {
        let counter = match error {
            CallError::Trap { .. } | CallError::Instantiate { .. } => &self.trapped,
            CallError::Panic { .. } => &self.panicked,
            CallError::Timeout { .. } => &self.timed_out,
            CallError::MemoryLimit { .. } => &self.memory_limited,
            CallError::Invalid(_) => &self.invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One installed version of a plugin.
pub(crate) struct PluginVersion {
    pub plugin: LoadedPlugin,
    pub installed: InstalledPlugin,
    /// Snapshot tag of states this version folds: `<type>@<version>`.
    pub tag: String,
    pub counters: PluginCounters,
    /// Until when (ms since the epoch) calls run on the blocking pool after a timeout.
    isolated_until_ms: AtomicU64,
    isolate_for: Duration,
    workers: Arc<PluginWorkers>,
}

impl PluginVersion {
    pub fn version(&self) -> &semver::Version {
        &self.plugin.info().version
    }

    /// Runs `call` on an instance of this version: on the plugin worker threads, or
    /// on tokio's blocking pool while the version is isolated after a timeout (so it
    /// cannot occupy the workers). Counts failures, and isolates the version when a
    /// call timed out.
    pub async fn run<R, F>(self: &Arc<Self>, call: F) -> Result<R, CallError>
    where
        F: FnOnce(&mut PluginInstance) -> Result<R, CallError> + Send + 'static,
        R: Send + 'static,
    {
        let plugin = self.plugin.clone();
        let job = move || call(&mut plugin.instance());
        let result = if self.isolated_until_ms.load(Ordering::Relaxed) > now_ms() {
            tokio::task::spawn_blocking(job).await.ok()
        } else {
            self.workers.run(job).await
        };
        let result = result.unwrap_or_else(|| {
            Err(CallError::Trap {
                message: "the host's plugin call panicked (a bug in Tally)".into(),
            })
        });
        if let Err(error) = &result {
            self.note_failure(error);
        }
        result
    }

    /// Counts a failed call; isolates the version after a timeout.
    pub fn note_failure(&self, error: &CallError) {
        self.counters.record_failure(error);
        if matches!(error, CallError::Timeout { .. }) {
            let until = now_ms() + self.isolate_for.as_millis() as u64;
            self.isolated_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(
                aggregate_type = %self.plugin.info().aggregate_type,
                version = %self.version(),
                seconds = self.isolate_for.as_secs_f64(),
                "plugin exceeded its CPU limit; its calls now run on the blocking pool"
            );
        }
    }
}

/// Everything about one aggregate type's plugins.
pub(crate) struct TypeEntry {
    pub name: String,
    active: RwLock<Option<Arc<PluginVersion>>>,
    installed: Mutex<BTreeMap<semver::Version, Arc<PluginVersion>>>,
    history: Mutex<Vec<Activation>>,
    /// Serialises installs, activations and rollbacks of this type.
    pub admin: tokio::sync::Mutex<()>,
}

impl TypeEntry {
    fn new(name: &str) -> TypeEntry {
        TypeEntry {
            name: name.to_owned(),
            active: RwLock::new(None),
            installed: Mutex::new(BTreeMap::new()),
            history: Mutex::new(Vec::new()),
            admin: tokio::sync::Mutex::new(()),
        }
    }

    /// The version serving commands.
    pub fn active(&self) -> Option<Arc<PluginVersion>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn installed(&self, version: &semver::Version) -> Option<Arc<PluginVersion>> {
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(version)
            .cloned()
    }

    pub fn installed_versions(&self) -> Vec<Arc<PluginVersion>> {
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub fn history(&self) -> Vec<Activation> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add_installed(&self, version: Arc<PluginVersion>) {
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(version.version().clone(), version);
    }

    fn set_active(&self, version: Arc<PluginVersion>, activation: Activation) {
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(version);
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(activation);
    }

    pub fn status(&self) -> PluginStatus {
        PluginStatus {
            aggregate_type: self.name.clone(),
            active: self.active().map(|active| active.version().clone()),
            installed: self
                .installed_versions()
                .iter()
                .map(|version| version.installed.clone())
                .collect(),
            history: self.history(),
        }
    }
}

/// The registry of every aggregate type.
pub(crate) struct Registry {
    dir: PathBuf,
    engine: PluginEngine,
    workers: Arc<PluginWorkers>,
    isolate_for: Duration,
    types: RwLock<HashMap<String, Arc<TypeEntry>>>,
}

impl Registry {
    /// Opens the registry in `dir` (the data directory's `plugins/`) and restores
    /// every installed version and activation recorded in `store`.
    pub async fn open(
        dir: PathBuf,
        engine: PluginEngine,
        workers: Arc<PluginWorkers>,
        isolate_for: Duration,
        store: &StoreBackend,
    ) -> Result<Registry, RuntimeError> {
        std::fs::create_dir_all(&dir)?;
        let registry = Registry {
            dir,
            engine,
            workers,
            isolate_for,
            types: RwLock::new(HashMap::new()),
        };
        for stream in registry_streams(store).await? {
            let entry = registry.entry(&stream.aggregate_id);
            let mut next = StreamVersion::FIRST;
            loop {
                let page = store
                    .read_stream(&stream, StreamRead::forward(next, usize::MAX))
                    .await?;
                let Some(last) = page.last() else { break };
                next = last.version.next();
                for event in &page {
                    registry.replay(store, &entry, event).await?;
                }
            }
        }
        Ok(registry)
    }

    /// Applies one registry record at open.
    async fn replay(
        &self,
        store: &StoreBackend,
        entry: &TypeEntry,
        event: &RecordedEvent,
    ) -> Result<(), RuntimeError> {
        let restore = |message: String| RuntimeError::Restore {
            what: format!("{} (record at position {})", entry.name, event.position),
            message,
        };
        match event.name.as_str() {
            INSTALLED => {
                let record: InstalledRecord =
                    serde_json::from_slice(&event.data).map_err(|e| restore(e.to_string()))?;
                let path = self.component_path(&record.sha256);
                let bytes = self
                    .component(store, &record.sha256)
                    .await
                    .map_err(restore)?;
                let engine = self.engine.clone();
                let name = entry.name.clone();
                let plugin = tokio::task::spawn_blocking(move || {
                    LoadedPlugin::load_as(&engine, &bytes, &name)
                })
                .await
                .map_err(|e| restore(e.to_string()))?
                .map_err(|e| restore(format!("{}: {e}", path.display())))?;
                entry.add_installed(self.version_of(
                    plugin,
                    &record.sha256,
                    record.size,
                    event.timestamp_ms,
                ));
            }
            ACTIVATED => {
                let record: ActivatedRecord =
                    serde_json::from_slice(&event.data).map_err(|e| restore(e.to_string()))?;
                let version =
                    semver::Version::parse(&record.version).map_err(|e| restore(e.to_string()))?;
                let target = entry
                    .installed(&version)
                    .ok_or_else(|| restore(format!("version {version} was never installed")))?;
                entry.set_active(target, activation_of(record, event)?);
            }
            other => return Err(restore(format!("unknown registry event {other}"))),
        }
        Ok(())
    }

    /// Applies a registry record read from the shared log, unless this host has it
    /// already (its own record, or one read at open): how a host follows the installs
    /// and activations of the other hosts on one database. Taken under the type's admin
    /// lock, so a record of this host's is applied by the operation that wrote it.
    pub async fn follow(
        &self,
        store: &StoreBackend,
        event: &RecordedEvent,
    ) -> Result<(), RuntimeError> {
        let entry = self.entry(&event.stream.aggregate_id);
        let _admin = entry.admin.lock().await;
        if already_applied(&entry, event) {
            return Ok(());
        }
        self.replay(store, &entry, event).await?;
        tracing::info!(
            aggregate_type = %entry.name,
            record = %event.name,
            position = %event.position,
            active = ?entry.active().map(|active| active.version().to_string()),
            "applied a registry record of another host"
        );
        Ok(())
    }

    fn version_of(
        &self,
        plugin: LoadedPlugin,
        sha256: &str,
        size: u64,
        installed_at_ms: u64,
    ) -> Arc<PluginVersion> {
        let info = plugin.info().clone();
        Arc::new(PluginVersion {
            tag: format!("{}@{}", info.aggregate_type, info.version),
            installed: InstalledPlugin {
                info,
                contract: plugin.contract(),
                sha256: sha256.to_owned(),
                size,
                installed_at_ms,
            },
            plugin,
            counters: PluginCounters::default(),
            isolated_until_ms: AtomicU64::new(0),
            isolate_for: self.isolate_for,
            workers: self.workers.clone(),
        })
    }

    /// The entry of `aggregate_type`, created if new.
    pub fn entry(&self, aggregate_type: &str) -> Arc<TypeEntry> {
        if let Some(entry) = self.get(aggregate_type) {
            return entry;
        }
        self.types
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(aggregate_type.to_owned())
            .or_insert_with(|| Arc::new(TypeEntry::new(aggregate_type)))
            .clone()
    }

    /// The entry of `aggregate_type`, if it has plugins.
    pub fn get(&self, aggregate_type: &str) -> Option<Arc<TypeEntry>> {
        self.types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(aggregate_type)
            .cloned()
    }

    /// Every aggregate type with plugins, by name.
    pub fn entries(&self) -> Vec<Arc<TypeEntry>> {
        let mut entries: Vec<_> = self
            .types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The component recorded with `sha256`: the file in the plugin directory, else
    /// (on PostgreSQL, installed through another host) the database's copy, which is
    /// then kept as the file. Either is checked against its SHA-256.
    async fn component(&self, store: &StoreBackend, sha256: &str) -> Result<Vec<u8>, String> {
        let path = self.component_path(sha256);
        let bytes = match (std::fs::read(&path), store.postgres()) {
            (Ok(bytes), _) => bytes,
            (Err(error), Some(database)) if error.kind() == std::io::ErrorKind::NotFound => {
                let stored = database
                    .component(sha256)
                    .await
                    .map_err(|e| format!("component {sha256} from the database: {e}"))?
                    .ok_or_else(|| format!("component {sha256} is not in the database"))?;
                if sha256_hex(&stored) == sha256 {
                    write_durably(&self.dir, &path, &stored).map_err(|e| e.to_string())?;
                }
                stored
            }
            (Err(error), _) => return Err(format!("{}: {error}", path.display())),
        };
        if sha256_hex(&bytes) != sha256 {
            return Err(format!(
                "{} does not match its SHA-256 (the component was changed)",
                path.display()
            ));
        }
        Ok(bytes)
    }

    fn component_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Stores the component durably and records the installation. Returns the new
    /// version (not yet active).
    pub async fn record_install(
        &self,
        store: &StoreBackend,
        entry: &TypeEntry,
        plugin: LoadedPlugin,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<Arc<PluginVersion>, crate::PluginError> {
        write_durably(&self.dir, &self.component_path(sha256), bytes)?;
        if let Some(database) = store.postgres() {
            // Before the record: a host that reads the record finds the component.
            database
                .save_component(sha256, bytes)
                .await
                .map_err(tally_store::LogError::from)?;
        }
        let record = InstalledRecord {
            version: plugin.info().version.to_string(),
            sha256: sha256.to_owned(),
            size: bytes.len() as u64,
        };
        let appended = store
            .append(
                &registry_stream(&entry.name),
                tally_store::ExpectedVersion::Any,
                vec![NewEvent::new(INSTALLED, to_json(&record))],
                Default::default(),
            )
            .await?;
        let version = self.version_of(plugin, sha256, record.size, appended.timestamp_ms);
        entry.add_installed(version.clone());
        Ok(version)
    }

    /// Records an activation durably, then makes `target` the active version.
    pub async fn record_activation(
        &self,
        store: &StoreBackend,
        entry: &TypeEntry,
        target: Arc<PluginVersion>,
        rollback: bool,
        forced: bool,
        verified_streams: Option<u64>,
    ) -> Result<Activation, crate::PluginError> {
        let record = ActivatedRecord {
            version: target.version().to_string(),
            previous: entry.active().map(|active| active.version().to_string()),
            rollback,
            forced,
            verified_streams,
        };
        let appended = store
            .append(
                &registry_stream(&entry.name),
                tally_store::ExpectedVersion::Any,
                vec![NewEvent::new(ACTIVATED, to_json(&record))],
                Default::default(),
            )
            .await?;
        let activation = Activation {
            version: target.version().clone(),
            previous: entry.active().map(|active| active.version().clone()),
            position: appended.first_position,
            timestamp_ms: appended.timestamp_ms,
            rollback,
            forced,
            verified_streams,
        };
        entry.set_active(target, activation.clone());
        Ok(activation)
    }
}

/// Whether `entry` already has what the registry record `event` says.
fn already_applied(entry: &TypeEntry, event: &RecordedEvent) -> bool {
    match event.name.as_str() {
        INSTALLED => serde_json::from_slice::<InstalledRecord>(&event.data)
            .ok()
            .and_then(|record| semver::Version::parse(&record.version).ok())
            .is_some_and(|version| entry.installed(&version).is_some()),
        ACTIVATED => entry
            .history()
            .iter()
            .any(|activation| activation.position == event.position),
        _ => false,
    }
}

fn activation_of(
    record: ActivatedRecord,
    event: &RecordedEvent,
) -> Result<Activation, RuntimeError> {
    let parse = |text: &str| {
        semver::Version::parse(text).map_err(|e| RuntimeError::Restore {
            what: format!("activation at position {}", event.position),
            message: e.to_string(),
        })
    };
    Ok(Activation {
        version: parse(&record.version)?,
        previous: record.previous.as_deref().map(parse).transpose()?,
        position: event.position,
        timestamp_ms: event.timestamp_ms,
        rollback: record.rollback,
        forced: record.forced,
        verified_streams: record.verified_streams,
    })
}

/// The registry's streams in the store, every page of the listing.
async fn registry_streams(store: &StoreBackend) -> Result<Vec<StreamId>, RuntimeError> {
    let page = store.max_read_count();
    let mut streams = Vec::new();
    loop {
        let listed = store
            .list_streams(REGISTRY_TYPE, streams.len(), page)
            .await?;
        if listed.is_empty() {
            return Ok(streams);
        }
        streams.extend(listed.into_iter().map(|(stream, _)| stream));
    }
}

/// The registry stream of an aggregate type.
pub(crate) fn registry_stream(aggregate_type: &str) -> StreamId {
    StreamId::new(REGISTRY_TYPE, aggregate_type)
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry records serialise")
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes `bytes` to `path` so that it survives a crash once this returns: a
/// temporary file, fsynced, renamed, and the directory fsynced.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    let temp = path.with_extension("wasm.tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
