//! [`LoadedPlugin`]: a validated, compiled plugin and its instance pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tally_store::SchemaVersion;

use crate::EventSchema;
use crate::bindings::exports::tally::aggregate::aggregate::PluginInfo as WireInfo;
use crate::cache::{CacheStatus, load_or_compile};
use crate::config::EngineConfig;
use crate::engine::PluginEngine;
use crate::instance::{CallError, Live, PluginInstance, Prepared, error_chain};
use crate::output::Label;

/// What a plugin is, from its `describe`, checked: a kebab-case aggregate type, a
/// semver version, unique command and event names, event versions from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Aggregate type in kebab-case, e.g. `bank-account`.
    pub aggregate_type: String,
    /// Plugin version.
    pub version: semver::Version,
    /// One human-readable sentence.
    pub description: String,
    /// Every command name `handle` accepts.
    pub commands: Vec<String>,
    /// Every event name with the schema version the plugin writes.
    pub events: Vec<EventSchema>,
}

impl PluginInfo {
    /// The current schema version of event `name`, if the plugin knows it.
    pub fn event_version(&self, name: &str) -> Option<u32> {
        self.events
            .iter()
            .find(|event| event.name == name)
            .map(|event| event.version)
    }
}

/// Why bytes were refused as a plugin. Nothing is installed when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bytes are not a WebAssembly binary at all.
    #[error("not a WebAssembly binary: {0}")]
    NotWasm(String),
    /// A core WebAssembly module rather than a component.
    #[error(
        "a core WebAssembly module, not a component: a plugin must be a component of \
         the tally:aggregate/plugin world (build it for wasm32-wasip2)"
    )]
    NotAComponent,
    /// A component binary that does not validate or compile.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// A valid component of another world: it imports something the host does not
    /// provide, or lacks the exports of `tally:aggregate/aggregate@1.0.0` (which
    /// every 1.x plugin has).
    #[error("not a component of the tally:aggregate/plugin world: {0}")]
    WrongWorld(String),
    /// A valid component that is not a projection: it imports something the host
    /// does not provide, or lacks the exports of `tally:projection/projection@1.0.0`.
    #[error("not a component of the tally:projection/plugin world: {0}")]
    NotAProjection(String),
    /// Instantiating the plugin or calling its `describe` failed.
    #[error("describe failed: {0}")]
    Describe(#[source] CallError),
    /// `describe` answered, but with information that breaks the contract.
    #[error("invalid plugin info: {0}")]
    InvalidInfo(String),
    /// The plugin describes another aggregate type than the one expected.
    #[error("the plugin describes aggregate type `{found}`, but `{expected}` was expected")]
    AggregateTypeMismatch {
        /// The type the caller is installing for.
        expected: String,
        /// The type the plugin's `describe` claims.
        found: String,
    },
}

/// A plugin that passed installation checks: compiled (or loaded from the compile
/// cache), pre-instantiated against the host's linker, described.
///
/// Cheap to clone (a shared handle); instances are taken with
/// [`instance`](Self::instance) and return to a small pool when dropped.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub(crate) engine: PluginEngine,
    pub(crate) prepared: Prepared,
    pub(crate) info: PluginInfo,
    /// Aggregate type and version, for logs.
    pub(crate) label: Label,
    /// Instances created so far (including the one that ran `describe`).
    pub(crate) instantiations: AtomicU64,
    /// Current schema version per event name, to check what the plugin returns.
    pub(crate) event_versions: HashMap<String, u32>,
    cache_status: CacheStatus,
    idle: Mutex<Vec<Live>>,
}

impl LoadedPlugin {
    /// Validates, compiles and describes `bytes`.
    ///
    /// Refuses, with a typed [`InstallError`]: bytes that are not WebAssembly, a
    /// core module, an invalid component, a component of another world, a
    /// `describe` that traps or exceeds a limit, and a description that breaks the
    /// contract (aggregate type not kebab-case, version not semver, duplicate or
    /// empty names, event versions below 1).
    pub fn load(engine: &PluginEngine, bytes: &[u8]) -> Result<Self, InstallError> {
        check_header(bytes)?;
        check_imports(bytes).map_err(InstallError::WrongWorld)?;
        let (component, cache_status) = load_or_compile(engine, bytes)
            .map_err(|error| InstallError::InvalidComponent(error_chain(&error)))?;
        let prepared = Prepared::new(engine, &component)
            .map_err(|error| InstallError::WrongWorld(error_chain(&error)))?;

        let mut live = Live::instantiate(engine, &prepared, Label::undescribed()).map_err(
            |error| match error {
                CallError::Invalid(mistyped) => InstallError::WrongWorld(mistyped),
                other => InstallError::Describe(other),
            },
        )?;
        let wire = live
            .call(engine, "describe", |exports, store| {
                exports
                    .plugin
                    .tally_aggregate_aggregate()
                    .call_describe(store)
            })
            .map_err(InstallError::Describe)?;
        let info = check_info(wire)?;
        let label = Label {
            aggregate_type: Arc::from(info.aggregate_type.as_str()),
            version: Arc::from(info.version.to_string()),
        };
        live.relabel(label.clone());

        let event_versions = info
            .events
            .iter()
            .map(|event| (event.name.clone(), event.version))
            .collect();
        let inner = PluginInner {
            engine: engine.clone(),
            prepared,
            info,
            label,
            instantiations: AtomicU64::new(1),
            event_versions,
            cache_status,
            idle: Mutex::new(Vec::new()),
        };
        let plugin = Self {
            inner: Arc::new(inner),
        };
        if live.reusable(engine) {
            plugin.inner.put_back(live);
        }
        tracing::info!(
            aggregate_type = &*plugin.inner.label.aggregate_type,
            version = &*plugin.inner.label.version,
            cache = ?cache_status,
            "plugin loaded"
        );
        Ok(plugin)
    }

    /// [`load`](Self::load), and refuses a plugin that describes another aggregate
    /// type than `expected` (e.g. a new version of `bank-account` that claims to
    /// be something else, or an impostor claiming `bank-account`).
    pub fn load_as(
        engine: &PluginEngine,
        bytes: &[u8],
        expected: &str,
    ) -> Result<Self, InstallError> {
        let plugin = Self::load(engine, bytes)?;
        if plugin.info().aggregate_type != expected {
            return Err(InstallError::AggregateTypeMismatch {
                expected: expected.to_owned(),
                found: plugin.info().aggregate_type.clone(),
            });
        }
        Ok(plugin)
    }

    /// What the plugin's `describe` said, checked.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// The schema version this plugin writes for event `name` (`None`: it does not
    /// describe the event). O(1).
    pub fn event_version(&self, name: &str) -> Option<SchemaVersion> {
        let described = self.inner.event_versions.get(name).copied();
        described.map(SchemaVersion::new)
    }

    /// Whether the plugin exports `decide` (contract 1.1.0): commands then take one
    /// call instead of `handle` and `apply`.
    pub fn exports_decide(&self) -> bool {
        self.inner.prepared.exports_decide()
    }

    /// The version of the plugin contract the host uses with this plugin: 1.1.0 when
    /// it exports `decide`, else 1.0.0.
    pub fn contract(&self) -> semver::Version {
        if self.exports_decide() {
            semver::Version::new(1, 1, 0)
        } else {
            semver::Version::new(1, 0, 0)
        }
    }

    /// Whether the compiled code came from the compile cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.inner.cache_status
    }

    /// The engine the plugin was loaded into.
    pub fn engine(&self) -> &PluginEngine {
        &self.inner.engine
    }

    /// Takes an instance: an idle one from the pool, or a new one instantiated
    /// lazily by its first call. Dropping it returns a healthy instance to the pool.
    pub fn instance(&self) -> PluginInstance {
        let live = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        PluginInstance::new(self.inner.clone(), live)
    }

    /// Number of wasmtime instances created for this plugin so far, including the
    /// one that ran `describe` at load (for diagnostics and tests).
    pub fn instantiations(&self) -> u64 {
        self.inner.instantiations.load(Ordering::Relaxed)
    }

    /// Bytes of linear memory the idle instances of the pool hold.
    pub fn idle_memory_bytes(&self) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(Live::memory_bytes)
            .sum()
    }

    /// Number of idle instances in the pool (for diagnostics and tests).
    pub fn idle_instances(&self) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.inner.info)
            .field("cache_status", &self.inner.cache_status)
            .finish_non_exhaustive()
    }
}

impl PluginInner {
    /// Returns a healthy instance to the pool, unless the pool is full.
    pub(crate) fn put_back(&self, live: Live) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if pool_has_room(&idle, &live, self.engine.config()) {
            idle.push(live);
        }
    }
}

/// Whether `live` may join the idle instances `idle`: within both the count and the
/// memory the pool may hold.
pub(crate) fn pool_has_room<X>(idle: &[Live<X>], live: &Live<X>, config: &EngineConfig) -> bool {
    let held: usize = idle.iter().map(Live::memory_bytes).sum();
    idle.len() < config.max_idle_instances
        && held.saturating_add(live.memory_bytes()) <= config.max_idle_memory
}

/// Checks the WebAssembly preamble: magic, then version and layer (core module:
/// version 1, layer 0; component: layer 1).
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), InstallError> {
    let Some(preamble) = bytes.get(..8) else {
        return Err(InstallError::NotWasm(format!(
            "{} bytes, shorter than the 8-byte preamble",
            bytes.len()
        )));
    };
    if &preamble[..4] != b"\0asm" {
        return Err(InstallError::NotWasm(
            "the `\\0asm` magic number is missing".into(),
        ));
    }
    match [preamble[6], preamble[7]] {
        [0, 0] => Err(InstallError::NotAComponent),
        [1, 0] => Ok(()),
        layer => Err(InstallError::NotWasm(format!(
            "unknown binary layer {layer:?}"
        ))),
    }
}

/// Refuses, before compiling, a component that imports an interface the host never
/// provides: the message names them.
pub(crate) fn check_imports(bytes: &[u8]) -> Result<(), String> {
    let unprovided = crate::imports::unprovided_imports(bytes);
    if unprovided.is_empty() {
        return Ok(());
    }
    Err(format!(
        "it imports {}, which the host does not provide (it links WASI 0.2 with every \
         capability denied, and tally:projection for projections); build it for the \
         plugin world without them (componentize-js: `-d http fetch-event clocks random`)",
        unprovided.join(", ")
    ))
}

/// Validates `describe`'s answer.
fn check_info(wire: WireInfo) -> Result<PluginInfo, InstallError> {
    let invalid = |message: String| Err(InstallError::InvalidInfo(message));
    if !is_kebab_case(&wire.aggregate_type) {
        return invalid(format!(
            "aggregate type {:?} is not kebab-case (e.g. `bank-account`)",
            wire.aggregate_type
        ));
    }
    let version = parse_version(&wire.version)?;
    let mut seen = std::collections::HashSet::new();
    for command in &wire.commands {
        if command.is_empty() || !seen.insert(command.as_str()) {
            return invalid(format!("command name {command:?} is empty or repeated"));
        }
    }
    seen.clear();
    for event in &wire.events {
        if event.name.is_empty() || !seen.insert(event.name.as_str()) {
            return invalid(format!("event name {:?} is empty or repeated", event.name));
        }
        if event.version == 0 {
            return invalid(format!(
                "event {} has schema version 0; versions start at 1",
                event.name
            ));
        }
    }
    Ok(PluginInfo {
        aggregate_type: wire.aggregate_type,
        version,
        description: wire.description,
        commands: wire.commands,
        events: wire.events,
    })
}

/// A `describe`'s version, which must be semver.
pub(crate) fn parse_version(text: &str) -> Result<semver::Version, InstallError> {
    semver::Version::parse(text).map_err(|error| {
        InstallError::InvalidInfo(format!("version {text:?} is not semver: {error}"))
    })
}

/// `[a-z0-9]+(-[a-z0-9]+)*`.
pub(crate) fn is_kebab_case(text: &str) -> bool {
    !text.is_empty()
        && text.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case() {
        for good in ["bank-account", "a", "v2-x9"] {
            assert!(is_kebab_case(good), "{good}");
        }
        for bad in ["", "Bank", "bank_account", "-a", "a-", "a--b", "a b"] {
            assert!(!is_kebab_case(bad), "{bad}");
        }
    }

    #[test]
    fn headers() {
        assert!(matches!(
            check_header(b"\0asm"),
            Err(InstallError::NotWasm(_))
        ));
        assert!(matches!(
            check_header(b"MZ\x90\0\x03\0\0\0"),
            Err(InstallError::NotWasm(_))
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(InstallError::NotAComponent)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    fn wire(aggregate_type: &str, version: &str) -> WireInfo {
        WireInfo {
            aggregate_type: aggregate_type.into(),
            version: version.into(),
            description: "d".into(),
            commands: vec!["A".into()],
            events: vec![EventSchema {
                name: "E".into(),
                version: 1,
            }],
        }
    }

    #[test]
    fn info_checks() {
        assert!(check_info(wire("x", "1.2.3")).is_ok());
        for (aggregate_type, version) in [("", "1.0.0"), ("X", "1.0.0"), ("x", "1"), ("x", "")] {
            let error = check_info(wire(aggregate_type, version)).unwrap_err();
            assert!(matches!(error, InstallError::InvalidInfo(_)), "{error}");
        }
        let mut repeated = wire("x", "1.0.0");
        repeated.commands.push("A".into());
        assert!(check_info(repeated).is_err());
        let mut zero = wire("x", "1.0.0");
        zero.events[0].version = 0;
        assert!(check_info(zero).is_err());
    }
}
