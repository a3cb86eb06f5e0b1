//! The types of the [`Runtime`](crate::Runtime) API: configuration, options and answers.
//!
//! Versions count events: an aggregate with `n` events is at version `n` (0 before its
//! first event), and the event that brought it there has version `n`. This is the
//! `stream-version` the plugin's `handle` sees (`wit/aggregate.wit`), and the store's
//! [`StreamVersion`] (its documentation has the conventions of the store's numbers).

#[cfg(feature = "native-rules")]
use std::collections::HashMap;
use std::path::{Path, PathBuf};
#[cfg(feature = "native-rules")]
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tally_store::{GlobalPosition, SchemaVersion, StoreConfig, StreamVersion};
use tally_store_postgres::PostgresConfig;

use crate::{Command, Context, Decision, EngineConfig};

/// Configuration of a [`Runtime`](crate::Runtime). Every limit has a default
/// ([`RuntimeConfig::new`]). Each directory is named once, by the part that uses it:
/// the store's logs ([`StoreConfig`]), the installed components
/// ([`plugin_dir`](Self::plugin_dir)) and the compile cache
/// ([`EngineConfig::cache_dir`]).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Installed plugin components and their registry files. [`RuntimeConfig::new`]:
    /// `<dir>/plugins`.
    pub plugin_dir: PathBuf,
    /// The embedded event store's settings ([`RuntimeConfig::new`]: `<dir>/events` and
    /// `<dir>/snapshots`), used unless [`postgres`](Self::postgres) is set.
    pub store: StoreConfig,
    /// The PostgreSQL database to keep the events in instead of the embedded store.
    /// Default: none (the embedded store).
    pub postgres: Option<PostgresConfig>,
    /// The plugin engine's limits ([`RuntimeConfig::new`]: compile cache in
    /// `<dir>/compile-cache`).
    pub engine: EngineConfig,
    /// Bytes of aggregate states kept in memory (state plus key plus bookkeeping).
    /// Default **256 MiB**. States beyond it are evicted least recently used first
    /// and rebuilt from snapshot and log when needed.
    pub state_cache_bytes: usize,
    /// A snapshot of an aggregate's state is written after this many events since its
    /// last one, so rebuilding a state never folds much more than this many events.
    /// Default **1,000**; 0 turns snapshots off.
    pub snapshot_every: u64,
    /// Events passed to the plugin's `apply` per call when rebuilding a state.
    /// Default **512**.
    pub fold_batch: usize,
    /// After a plugin version exceeds its CPU limit, its calls run on the blocking
    /// thread pool for this long, so a plugin that loops forever cannot occupy the
    /// threads serving other aggregate types. Default **10 s**.
    pub isolate_after_timeout: Duration,
    /// Threads that run plugin calls. Default: **two per core**. The calls are
    /// CPU-bound, but the threads share the cores with tokio's workers and the log
    /// writer; under load, more runnable plugin threads give the plugin stage (where
    /// commands queue) a larger share of the CPUs. On 2 cores, two per core ran
    /// durable commands 4-8 % faster than one per core, and a single hot aggregate
    /// no slower; four per core made the hot aggregate about 10 % slower
    /// (docs/decisions/004-two-plugin-threads-per-core.md).
    pub plugin_threads: usize,
    /// Rules compiled into the host that decide the commands of an aggregate type in
    /// place of its active plugin's `decide` (see [`NativeRules`]). Default: none.
    /// Only with the cargo feature `native-rules`, which only the benchmark enables.
    #[cfg(feature = "native-rules")]
    pub native_rules: HashMap<String, Arc<dyn NativeRules>>,
}

/// An aggregate type's command rules compiled into the host: [`Runtime::execute`]
/// calls them on the calling thread in place of the active plugin's `decide`, and
/// does everything else as usual (the slot, the state cache, the append, the
/// outcome). The plugin still folds, upcasts and renders the state, so the rules must
/// read and write its state bytes, and their answers are not checked against its
/// description. This exists to measure what the plugin call costs (the native
/// reference of `tally-bench commands`), not to deploy logic: it is public only with
/// the cargo feature `native-rules`.
///
/// [`Runtime::execute`]: crate::Runtime::execute
pub trait NativeRules: Send + Sync + std::fmt::Debug {
    /// Decides `command` against `state`, as the plugin's `decide` would.
    fn decide(&self, context: &Context, state: &[u8], command: &Command) -> Decision;
}

impl RuntimeConfig {
    /// The default configuration for a runtime whose data is in `dir`.
    pub fn new(dir: impl AsRef<Path>) -> RuntimeConfig {
        let dir = dir.as_ref();
        RuntimeConfig {
            plugin_dir: dir.join("plugins"),
            store: StoreConfig::new(dir),
            postgres: None,
            engine: EngineConfig {
                cache_dir: Some(dir.join("compile-cache")),
                ..EngineConfig::default()
            },
            state_cache_bytes: 256 << 20,
            snapshot_every: 1_000,
            fold_batch: 512,
            isolate_after_timeout: Duration::from_secs(10),
            plugin_threads: 2 * std::thread::available_parallelism().map_or(1, usize::from),
            #[cfg(feature = "native-rules")]
            native_rules: HashMap::new(),
        }
    }
}

/// How [`Runtime::install_plugin`](crate::Runtime::install_plugin) installs a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Refuse the component unless it describes this aggregate type.
    pub aggregate_type: Option<String>,
    /// Activate it once installed (see [`ActivateOptions`]).
    pub activate: bool,
    /// Skip the check that the version is newer than the active one, and (when
    /// activating) the schema check of a downgrade.
    pub force: bool,
    /// When activating: skip the verification fold.
    pub skip_verify: bool,
}

/// How [`Runtime::activate`](crate::Runtime::activate) and
/// [`Runtime::rollback`](crate::Runtime::rollback) switch versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivateOptions {
    /// Skip folding every stream of the type under the new version first.
    pub skip_verify: bool,
    /// Switch even when stored events have schema versions the target does not know.
    pub force: bool,
}

/// Options of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecuteOptions {
    /// Idempotency key: a command id already applied returns that command's outcome
    /// (marked duplicate) and applies nothing, when the command is the same (aggregate,
    /// command name and data bytes); the id given to another command is refused with
    /// [`CommandError::CommandIdReused`](crate::CommandError::CommandIdReused).
    pub command_id: Option<String>,
    /// The aggregate must be at exactly this version (0: it has no events).
    pub expected_version: Option<StreamVersion>,
    /// Stored with the events.
    pub correlation_id: Option<String>,
    /// Stored with the events.
    pub causation_id: Option<String>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The aggregate's version after the command.
    pub version: StreamVersion,
    /// The events the command appended (none for a command that changed nothing).
    pub events: Vec<StoredEvent>,
    /// The command id was applied before: these are that command's events.
    pub duplicate: bool,
    /// The plugin version that decided the command (the active one for a duplicate).
    pub plugin_version: semver::Version,
}

/// An event of an aggregate, as stored or upcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global position in the log (from 0).
    pub position: GlobalPosition,
    /// The aggregate's version this event produced (from 1).
    pub version: StreamVersion,
    /// Event name.
    pub name: String,
    /// Schema version of `data`.
    pub schema_version: SchemaVersion,
    /// When it was appended, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The command id it was appended with, if any.
    pub command_id: Option<String>,
    /// The event's fields, JSON.
    pub data: Bytes,
}

/// The state of one aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateState {
    /// The aggregate's version (events folded).
    pub version: StreamVersion,
    /// The state rendered by the plugin's `state-json`: a JSON object.
    pub state_json: String,
    /// The plugin version that folded it.
    pub plugin_version: semver::Version,
}

/// A point in the log for [`Runtime::state_at`](crate::Runtime::state_at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Events at or before this global position.
    Position(GlobalPosition),
    /// Events appended at or before this time, milliseconds since the Unix epoch.
    TimeMs(u64),
}

/// How [`Runtime::events`](crate::Runtime::events) shows events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventView {
    /// As stored.
    #[default]
    Stored,
    /// Upcast to the active plugin's current schemas (an event may become several,
    /// or none; each keeps the position and version of the stored one).
    Current,
}

/// An installed plugin version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPlugin {
    /// What the plugin describes.
    pub info: crate::PluginInfo,
    /// The version of the plugin contract (`tally:aggregate`) the host uses with it:
    /// 1.1.0 when it exports `decide`, else 1.0.0.
    pub contract: semver::Version,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When it was installed, milliseconds since the Unix epoch.
    pub installed_at_ms: u64,
}

/// One switch of the active version of an aggregate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The version that became active.
    pub version: semver::Version,
    /// The version active before, if any.
    pub previous: Option<semver::Version>,
    /// Global position of the activation record in the log: commands appended after
    /// it ran on this version.
    pub position: GlobalPosition,
    /// When, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// A rollback rather than an activation.
    pub rollback: bool,
    /// Checks were skipped with `force`.
    pub forced: bool,
    /// Streams folded by the verification (`None`: skipped).
    pub verified_streams: Option<u64>,
}

/// The plugins of one aggregate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The version serving commands, if any.
    pub active: Option<semver::Version>,
    /// Installed versions, oldest version first.
    pub installed: Vec<InstalledPlugin>,
    /// Activations and rollbacks, oldest first.
    pub history: Vec<Activation>,
}

/// What [`Runtime::activate`](crate::Runtime::activate) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationReport {
    /// The activation as recorded.
    pub activation: Activation,
    /// Events folded by the verification.
    pub verified_events: u64,
    /// How long the verification took, in milliseconds.
    pub verify_ms: u64,
}
