//! Contract tests of the Tally plugins across the WebAssembly boundary.
//!
//! `tally-test-support` builds `plugins/` for wasm32-wasip2; [`components`] holds the
//! paths of the built components, and [`PluginInstance`] runs one in wasmtime the way the
//! host does: bindings generated from the same `wit/`, WASI linked (std guests need
//! it), the guest's stderr captured so that a panic can be read back. The tests in
//! `tests/` pin the contract described in `wit/README.md`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tally_wit::PANIC_MARKER;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, OptLevel, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use tally_test_support::components;

/// Host bindings for the `tally:aggregate` world, generated from `wit/`.
#[allow(missing_docs)] // generated code
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tally:aggregate/plugin",
        additional_derives: [PartialEq],
    });
}

pub use bindings::exports::tally::aggregate::aggregate::{
    Command, Context, Event, PluginInfo, Rejection,
};

/// What `decide` answered: the events with the state after them, or a rejection.
pub type Decided = Result<(Vec<Event>, Vec<u8>), Rejection>;

/// How much guest stderr is kept per instance.
const STDERR_CAPACITY: usize = 64 * 1024;

/// The store data of one instance: WASI with nothing granted but a captured stderr.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The engine shared by all tests of a test binary.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        // The tests check behaviour, not speed: skip Cranelift's optimisations,
        // which cost seconds per component in an unoptimised test build.
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::None);
        Engine::new(&config).expect("a default-feature engine with opt-level none")
    })
}

/// Compiles a component once per test binary.
fn component(path: &'static str) -> wasmtime::Result<Component> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Component>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("component cache lock");
    if let Some(component) = cache.get(path) {
        return Ok(component.clone());
    }
    let component =
        Component::from_file(engine(), path).with_context(|| format!("compile {path}"))?;
    cache.insert(path, component.clone());
    Ok(component)
}

/// One instance of a plugin component, called through the generated bindings.
pub struct PluginInstance {
    store: Store<GuestState>,
    plugin: bindings::Plugin,
    stderr: MemoryOutputPipe,
}

impl PluginInstance {
    /// Instantiates the component at `path` (one of [`components`]).
    pub fn load(path: &'static str) -> wasmtime::Result<Self> {
        let component = component(path)?;
        let mut linker = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let mut store = Store::new(
            engine(),
            GuestState {
                wasi,
                table: ResourceTable::new(),
            },
        );
        let plugin = bindings::Plugin::instantiate(&mut store, &component, &linker)
            .with_context(|| format!("instantiate {path}"))?;
        Ok(Self {
            store,
            plugin,
            stderr,
        })
    }

    /// Calls `describe`.
    pub fn describe(&mut self) -> wasmtime::Result<PluginInfo> {
        self.plugin
            .tally_aggregate_aggregate()
            .call_describe(&mut self.store)
    }

    /// Calls `initial-state`.
    pub fn initial_state(&mut self) -> wasmtime::Result<Vec<u8>> {
        self.plugin
            .tally_aggregate_aggregate()
            .call_initial_state(&mut self.store)
    }

    /// Calls `handle`. The outer error is a trap; the inner one a rejection.
    pub fn handle(
        &mut self,
        ctx: &Context,
        state: &[u8],
        command: &Command,
    ) -> wasmtime::Result<Result<Vec<Event>, Rejection>> {
        self.plugin.tally_aggregate_aggregate().call_handle(
            &mut self.store,
            ctx,
            &state.to_vec(),
            command,
        )
    }

    /// Calls `decide` (contract 1.1.0): the events and the state after them, or
    /// a rejection.
    pub fn decide(
        &mut self,
        ctx: &Context,
        state: &[u8],
        command: &Command,
    ) -> wasmtime::Result<Decided> {
        let answer = self.plugin.tally_aggregate_aggregate().call_decide(
            &mut self.store,
            ctx,
            &state.to_vec(),
            command,
        )?;
        Ok(answer.map(|decision| (decision.events, decision.state)))
    }

    /// Calls `apply`.
    pub fn apply(
        &mut self,
        state: &[u8],
        events: &[Event],
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        self.plugin
            .tally_aggregate_aggregate()
            .call_apply(&mut self.store, &state.to_vec(), events)
    }

    /// Calls `upcast`.
    pub fn upcast(&mut self, event: &Event) -> wasmtime::Result<Result<Vec<Event>, String>> {
        self.plugin
            .tally_aggregate_aggregate()
            .call_upcast(&mut self.store, event)
    }

    /// Calls `state-json` and parses the JSON.
    pub fn state_json(
        &mut self,
        state: &[u8],
    ) -> wasmtime::Result<Result<serde_json::Value, String>> {
        match self
            .plugin
            .tally_aggregate_aggregate()
            .call_state_json(&mut self.store, &state.to_vec())?
        {
            Ok(json) => Ok(Ok(
                serde_json::from_slice(&json).context("state-json returned invalid JSON")?
            )),
            Err(error) => Ok(Err(error)),
        }
    }

    /// Everything the guest wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// The message of the last panic the guest reported on stderr, if any.
    pub fn panic_message(&self) -> Option<String> {
        self.stderr()
            .lines()
            .filter_map(|line| line.strip_prefix(PANIC_MARKER))
            .next_back()
            .map(str::to_owned)
    }
}

tally_test_support::call_builders!(Command, Event, Context);

/// An event's data parsed as JSON.
pub fn data_json(event: &Event) -> serde_json::Value {
    serde_json::from_slice(&event.data).expect("event data is JSON")
}
