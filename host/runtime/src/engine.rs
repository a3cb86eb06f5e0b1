//! [`PluginEngine`]: the process's wasmtime engine, its epoch ticker and linker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, OptLevel};

use crate::config::EngineConfig;
use crate::instance::GuestState;

/// Set (to anything) in the environment, this makes the engine write
/// `/tmp/perf-<pid>.map` as it compiles plugins, so that `perf` names their functions
/// (docs/BENCHMARKS.md, "Profiling").
pub const PERFMAP_VARIABLE: &str = "TALLY_WASM_PERFMAP";

/// Why a [`PluginEngine`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is unusable (a zero tick or call budget).
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// wasmtime refused the configuration or the WASI linker.
    #[error("wasmtime engine setup failed: {0}")]
    Wasmtime(String),
    /// The compile cache directory could not be created.
    #[error("cannot create compile cache directory {path}: {source}")]
    CacheDir {
        /// The configured directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
}

/// The plugin engine: one wasmtime `Engine` (create one per process), with epoch
/// interruption driven by a ticker thread, a linker providing WASI (p2, sync) to
/// plugins, and the compile cache settings.
///
/// Cheap to clone (a shared handle). The ticker thread stops when the last handle,
/// including those held by [`LoadedPlugin`](crate::LoadedPlugin)s, is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<GuestState>,
    config: EngineConfig,
    deadline_ticks: u64,
    ticker: Ticker,
}

/// The thread that advances the epoch; stops when `stop` is dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread, which then exits.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only loops on the channel; it cannot panic in practice,
            // and a panic there must not turn into a second panic here.
            let _ = thread.join();
        }
    }
}

impl PluginEngine {
    /// Creates the engine, the WASI linker and the ticker thread, and the cache
    /// directory if one is configured.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        if config.epoch_tick.is_zero() {
            return Err(EngineError::Config("epoch_tick must not be zero".into()));
        }
        if config.max_calls_per_instance == 0 {
            return Err(EngineError::Config(
                "max_calls_per_instance must be at least 1".into(),
            ));
        }
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::CacheDir {
                path: dir.clone(),
                source,
            })?;
        }

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(if config.optimize {
                OptLevel::Speed
            } else {
                OptLevel::None
            });
        if std::env::var_os(PERFMAP_VARIABLE).is_some() {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine =
            Engine::new(&wasm).map_err(|error| EngineError::Wasmtime(error.to_string()))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|error| EngineError::Wasmtime(error.to_string()))?;
        crate::projection::add_to_linker(&mut linker)
            .map_err(|error| EngineError::Wasmtime(error.to_string()))?;

        let ticker = start_ticker(&engine, &config)?;
        Ok(Self {
            inner: Arc::new(EngineInner {
                deadline_ticks: config.deadline_ticks(),
                engine,
                linker,
                config,
                ticker,
            }),
        })
    }

    /// The configuration the engine was created with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether the epoch ticker thread is running (it runs for the engine's whole
    /// life; exposed for diagnostics).
    pub fn ticker_running(&self) -> bool {
        self.inner
            .ticker
            .thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    pub(crate) fn linker(&self) -> &Linker<GuestState> {
        &self.inner.linker
    }

    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.inner.deadline_ticks
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Starts the thread that calls `increment_epoch` every tick until the returned
/// [`Ticker`] is dropped. It holds a clone of the wasmtime engine, not of the
/// [`PluginEngine`], so it never keeps the plugin engine alive.
fn start_ticker(engine: &Engine, config: &EngineConfig) -> Result<Ticker, EngineError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let engine = engine.clone();
    let tick = config.epoch_tick;
    let thread = std::thread::Builder::new()
        .name("tally-epoch-ticker".into())
        .spawn(move || {
            // Anything but a timeout (a message or the sender dropped) stops it.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                engine.increment_epoch();
            }
        })
        .map_err(EngineError::Ticker)?;
    Ok(Ticker {
        stop: Some(stop),
        thread: Some(thread),
    })
}
