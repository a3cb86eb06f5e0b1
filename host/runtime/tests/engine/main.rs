//! The plugin engine (`PluginEngine`, `LoadedPlugin`, `PluginInstance`) against the real
//! plugin components (built from `plugins/` by the contract tests' build script), one
//! module per area. One test binary, so that each component is compiled once per run.

mod cache;
mod calls;
mod contract;
mod describe;
mod forged;
mod hostile;
mod install;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tally_runtime::{Command, Context, EngineConfig, Event, LoadedPlugin, PluginEngine};

/// CPU limit of the shared test engine: short, so that the endless loop test is
/// quick, yet far above what a plugin call takes even in a debug build.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(300);

/// Test configuration: unoptimised code (wasmtime itself is unoptimised here),
/// a short CPU limit, default memory limit.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        call_timeout: CALL_TIMEOUT,
        optimize: false,
        ..EngineConfig::default()
    }
}

/// The engine shared by the tests of this binary (no compile cache).
pub fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(test_config()).expect("engine"))
}

/// Reads a built component.
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Loads a component into the shared engine, once per binary.
pub fn plugin(path: &'static str) -> LoadedPlugin {
    static LOADED: OnceLock<Mutex<HashMap<&'static str, LoadedPlugin>>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap();
    loaded
        .entry(path)
        .or_insert_with(|| LoadedPlugin::load(engine(), &bytes(path)).expect("load"))
        .clone()
}

/// A command with JSON data given as text.
pub fn command(name: &str, data: &str) -> Command {
    Command {
        name: name.to_owned(),
        data: data.as_bytes().to_vec(),
    }
}

/// An event with JSON data given as text.
pub fn event(name: &str, version: u32, data: &str) -> Event {
    Event {
        name: name.to_owned(),
        version,
        data: data.as_bytes().to_vec(),
    }
}

/// A call context for aggregate `id` at `stream_version`.
pub fn context(id: &str, stream_version: u64) -> Context {
    Context {
        aggregate_id: id.to_owned(),
        stream_version,
        now_ms: 1_767_225_600_000,
    }
}

/// JSON text as a string, for comparisons.
pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}
