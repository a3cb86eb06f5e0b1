//! The plugin engine (`PluginEngine`, `LoadedPlugin`, `PluginInstance`) against the real
//! plugin components (built from `plugins/` by `tally-test-support`'s build script), one
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
pub use tally_test_support::components::bytes;

tally_test_support::call_builders!(Command, Event, Context);

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

/// Loads a component into the shared engine, once per binary.
pub fn plugin(path: &'static str) -> LoadedPlugin {
    static LOADED: OnceLock<Mutex<HashMap<&'static str, LoadedPlugin>>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap();
    loaded
        .entry(path)
        .or_insert_with(|| LoadedPlugin::load(engine(), &bytes(path)).expect("load"))
        .clone()
}

/// JSON text as a string, for comparisons.
pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}
