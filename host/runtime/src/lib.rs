//! `tally-runtime`: the plugin engine of Tally.
//!
//! Domain logic arrives as WebAssembly components of the `tally:aggregate/plugin`
//! world (`wit/aggregate.wit`). This crate loads them into one sandboxed, limited
//! wasmtime engine and calls them with typed, sync calls:
//!
//! - [`PluginEngine`]: one per process. One wasmtime `Engine` with epoch
//!   interruption and a ticker thread (stopped when the last handle drops), the
//!   WASI linker, and an optional on-disk compile cache keyed by the SHA-256 of
//!   the component bytes and the engine's compatibility hash. Limits and the cache
//!   directory come from [`EngineConfig`].
//! - [`LoadedPlugin`]: a validated, compiled plugin. [`LoadedPlugin::load`] refuses
//!   bytes that are not a component of the plugin world with a typed
//!   [`InstallError`], calls `describe` and checks the answer ([`PluginInfo`]).
//! - [`PluginInstance`]: a checked-out instance of a plugin. Every call gets a CPU
//!   deadline and runs under the memory limit; a failure is a typed [`CallError`]
//!   (trap, panic with the plugin's message, timeout, memory limit, invalid
//!   answer). An instance that trapped is thrown away and the next call gets a
//!   fresh one; healthy instances return to a small per-plugin pool and are
//!   recycled after [`EngineConfig::max_calls_per_instance`] calls.
//!
//! # Sandbox
//!
//! A plugin gets WASI for its standard library only: no preopened directories, no
//! environment variables, no arguments, no sockets or name lookups, an empty stdin.
//! Its stdout and stderr are captured in bounded memory pipes
//! ([`EngineConfig::output_capacity`]) and forwarded line by line to `tracing`
//! (target `tally_runtime::plugin_output`, fields `aggregate_type`, `version`,
//! `stream`); stdout at `INFO`, stderr at `WARN`. A panic line written by the SDK's
//! hook (`tally-plugin-panic: ...`, see wit/README.md) becomes [`CallError::Panic`].
//!
//! Limits ([`EngineConfig`] documents the defaults):
//!
//! - **CPU**: each call (and each instantiation) must finish within
//!   [`EngineConfig::call_timeout`], enforced with epoch interruption: a ticker
//!   thread advances the engine's epoch every [`EngineConfig::epoch_tick`], so the
//!   effective limit is the timeout rounded up to a tick plus at most one tick.
//! - **Memory**: each instance's linear memory is capped at
//!   [`EngineConfig::memory_limit`] through wasmtime's `StoreLimits`; a growth
//!   beyond it fails in the guest, and the call that failed because of it reports
//!   [`CallError::MemoryLimit`]. This also bounds what a call can hand back to the
//!   host: results are lifted out of that memory.
//!
//! # Compile cache
//!
//! With [`EngineConfig::cache_dir`] set, compiled components are stored as
//! `<key>.cwasm` where `key` is the hex SHA-256 of a format tag, the engine's
//! `precompile_compatibility_hash()` and the component bytes. Each file starts
//! with a magic tag and the SHA-256 of the serialized artifact; an entry whose
//! checksum does not match, or that wasmtime refuses to deserialize, is
//! recompiled and rewritten, never trusted. [`LoadedPlugin::cache_status`] says
//! whether a load was a hit. The directory must be writable only by the host:
//! deserializing compiled code trusts its contents once the checksum matches.
//!
//! # Example
//!
//! ```no_run
//! use tally_runtime::{Command, Context, EngineConfig, LoadedPlugin, PluginEngine};
//!
//! let engine = PluginEngine::new(EngineConfig {
//!     cache_dir: Some("/var/lib/tally/compile-cache".into()),
//!     ..EngineConfig::default()
//! })?;
//! let bytes = std::fs::read("bank_account.wasm")?;
//! let plugin = LoadedPlugin::load(&engine, &bytes)?;
//! assert_eq!(plugin.info().aggregate_type, "bank-account");
//!
//! let mut instance = plugin.instance();
//! let state = instance.initial_state()?;
//! let ctx = Context { aggregate_id: "acc-1".into(), stream_version: 0, now_ms: 0 };
//! let command = Command { name: "OpenAccount".into(), data: br#"{"initial_balance":100}"#.to_vec() };
//! let events = instance.handle(&ctx, &state, &command)?.expect("accepted");
//! let state = instance.apply(&state, &events)?.expect("applied");
//! let json = instance.state_json(&state)?.expect("rendered");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admin;
mod api;
mod backend;
mod cache;
mod config;
mod current;
mod engine;
mod error;
mod fingerprint;
mod fold;
mod imports;
mod instance;
mod output;
mod pipeline;
mod plugin;
mod projection;
mod registry;
mod runtime;
mod state_cache;
mod workers;

pub use admin::InstallReport;
#[cfg(feature = "native-rules")]
pub use api::NativeRules;
pub use api::{
    ActivateOptions, Activation, ActivationReport, AggregateState, At, EventView, ExecuteOptions,
    InstallOptions, InstalledPlugin, Outcome, PluginStatus, RuntimeConfig, StoredEvent,
};
pub use backend::{BackendSubscription, PendingAppend, StoreBackend, StoreOpenReport, Submission};
pub use cache::CacheStatus;
pub use config::EngineConfig;
pub use engine::{EngineError, PluginEngine};
pub use error::{CommandError, PluginError, RuntimeError};
pub use instance::{CallError, Decision, PluginInstance};
pub use plugin::{InstallError, LoadedPlugin, PluginInfo};
pub use projection::{
    DocumentKey, DocumentLimits, DocumentSource, DocumentWrites, EventEnvelope, LoadedProjection,
    ProjectionInfo, ProjectionInstance,
};
pub use runtime::{PluginStats, Runtime, RuntimeStats};
/// Re-exported: [`PluginInfo::version`] is a [`semver::Version`].
pub use semver;
/// Re-exported: the runtime is built on the event store.
pub use tally_store;
/// Re-exported: the numbers of the runtime's API are the store's.
pub use tally_store::{GlobalPosition, SchemaVersion, StreamVersion};
pub use tally_store_postgres;

pub use bindings::exports::tally::aggregate::aggregate::{
    Command, Context, Event, EventSchema, Rejection,
};

/// Host bindings for the `tally:aggregate/plugin` world at 1.0.0, the functions
/// every plugin exports, generated from the frozen `wit/v1.0.0/`. They also bind
/// plugins built against later 1.x versions (wasmtime matches export names by
/// semver); what a later version adds, such as 1.1.0's `decide`, is looked up by
/// hand when a plugin exports it (see `instance.rs`).
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/v1.0.0",
        world: "tally:aggregate/plugin",
        additional_derives: [PartialEq, Eq],
    });
}

/// The pipeline shares engines and plugins across threads and moves instances
/// between them: keep these types `Send`/`Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<PluginEngine>();
    send_sync::<LoadedPlugin>();
    send::<PluginInstance>();
    send_sync::<Runtime>();
};
