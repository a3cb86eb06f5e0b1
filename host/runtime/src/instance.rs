//! [`PluginInstance`]: typed, limited calls into one plugin instance.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tally_wit::PANIC_MARKER;
use wasmtime::component::{
    Component, ComponentExportIndex, Func, Instance, InstancePre, ResourceTable, TypedFunc,
};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Plugin, PluginIndices};
use crate::engine::PluginEngine;
use crate::output::{Label, Output};
use crate::plugin::{PluginInner, is_kebab_case};
use crate::{Command, Context, Event, Rejection};

/// Why a call into a plugin failed. Except for [`CallError::Invalid`], the
/// instance that failed has been thrown away; the next call on the same
/// [`PluginInstance`] runs on a fresh instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped (e.g. `unreachable`, out-of-bounds access) without a
    /// panic report.
    #[error("plugin trapped: {message}")]
    Trap {
        /// The trap, e.g. ``wasm trap: wasm `unreachable` instruction executed``.
        message: String,
    },
    /// The plugin panicked; the message is the one its panic hook reported on
    /// stderr (`tally-plugin-panic: <message> (at <file>:<line>:<column>)`). The
    /// location names a file of the machine that built the plugin, so it is kept
    /// apart: the error's text (what an API client sees) carries only the message,
    /// and the whole line is in the log with the plugin's other output.
    #[error("plugin panicked: {message}")]
    Panic {
        /// The panic message, as the plugin reported it.
        message: String,
        /// Where in the plugin's source it panicked (`<file>:<line>:<column>`).
        location: Option<String>,
    },
    /// The call ran past the CPU limit ([`EngineConfig::call_timeout`](crate::EngineConfig::call_timeout)).
    #[error("plugin exceeded its CPU limit of {limit:?} per call")]
    Timeout {
        /// The configured limit.
        limit: Duration,
    },
    /// The call failed after the plugin's memory hit the limit
    /// ([`EngineConfig::memory_limit`](crate::EngineConfig::memory_limit)).
    #[error("plugin exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A fresh instance could not be created.
    #[error("plugin could not be instantiated: {message}")]
    Instantiate {
        /// wasmtime's error.
        message: String,
    },
    /// The plugin answered, but against the contract: an event it does not
    /// describe or at another schema version than it describes, a rejection code
    /// that is not kebab-case, `state-json` that is not UTF-8. The instance is
    /// kept: it is the answer that is wrong, not the instance.
    #[error("plugin answered against the contract: {0}")]
    Invalid(String),
}

/// Store data of one instance: WASI granting nothing, captured output, limits, and
/// for a projection's `apply`, the batch its `documents` import reads and writes.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    pub(crate) batch: Option<crate::projection::Batch>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// wasmtime's [`StoreLimits`], plus a record of whether a memory growth was
/// refused during the current call, to tell a memory limit from another trap, and
/// the bytes of linear memory the instance holds.
struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
    /// Bytes of every linear memory of the instance, as grown so far.
    memory_bytes: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        match allowed {
            Ok(true) => self.memory_bytes += desired.saturating_sub(current),
            _ => self.memory_refused = true,
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A wall clock that always reads the Unix epoch.
struct FrozenWallClock;

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Table elements an instance may have: far more than a Rust plugin uses, few
/// enough (8 MiB of host memory) that a table cannot be grown into a bomb.
const TABLE_ELEMENTS_LIMIT: usize = 1 << 20;

/// What `decide` (tally:aggregate@1.1.0) returns for an accepted command.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
struct WireDecision {
    events: Vec<Event>,
    state: Vec<u8>,
}

/// What a plugin decided about a command: the events with the state after them, or
/// a rejection.
pub type Decision = Result<(Vec<Event>, Vec<u8>), Rejection>;

/// What `decide` returns.
type DecideResults = (Result<WireDecision, Rejection>,);

/// The `decide` export, type-checked against the contract when an instance is
/// created.
type DecideFunc = TypedFunc<(Context, Vec<u8>, Command), DecideResults>;

/// The same function called with borrowed arguments, which are lowered into the
/// guest straight from the caller's buffers. Its component types are those of
/// [`DecideFunc`]: wasmtime type-checks `&T` as `T` and `&[u8]` as `Vec<u8>`.
type DecideCall<'a> = TypedFunc<(&'a Context, &'a [u8], &'a Command), DecideResults>;

/// The exports of one live instance: the 1.0.0 functions every plugin has, and
/// `decide` (type-checked as [`DecideFunc`]) when the plugin was built against
/// 1.1.0 or later.
pub(crate) struct Exports {
    pub(crate) plugin: Plugin,
    decide: Option<Func>,
}

/// A plugin component prepared for instantiation: linked against the host's WASI,
/// its 1.0.0 exports found and type-checked, and where it exports `decide`.
pub(crate) struct Prepared {
    instance_pre: InstancePre<GuestState>,
    indices: PluginIndices,
    decide: Option<ComponentExportIndex>,
}

impl Prepared {
    /// Links `component`; an error means it is not a plugin of a 1.x contract (the
    /// message says what is missing or mistyped).
    pub(crate) fn new(engine: &PluginEngine, component: &Component) -> wasmtime::Result<Self> {
        let instance_pre = engine.linker().instantiate_pre(component)?;
        let indices = PluginIndices::new(&instance_pre)?;
        Ok(Self {
            instance_pre,
            indices,
            decide: decide_export(component),
        })
    }

    /// Whether the plugin exports `decide` (contract 1.1.0).
    pub(crate) fn exports_decide(&self) -> bool {
        self.decide.is_some()
    }
}

/// Where a component exports `decide`, if it does: in its `aggregate` interface at
/// 1.1.0 or a later, semver-compatible 1.x version.
fn decide_export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, "tally:aggregate/aggregate@1.1.0")?;
    component.get_export_index(Some(&interface), "decide")
}

/// A live wasmtime instance of a plugin, with its store: `X` is what the caller
/// looked up in the instance (an aggregate plugin's [`Exports`], a projection's).
pub(crate) struct Live<X = Exports> {
    store: Store<GuestState>,
    exports: X,
    stdout: Output,
    stderr: Output,
    label: Label,
    calls: u64,
    /// A call failed: never call this instance again.
    broken: bool,
}

impl Live<Exports> {
    /// Instantiates an aggregate plugin in a fresh store under the engine's limits.
    ///
    /// A `decide` export whose type is not the contract's is [`CallError::Invalid`]
    /// (a component of another world), found on the first instance, at load.
    pub(crate) fn instantiate(
        engine: &PluginEngine,
        prepared: &Prepared,
        label: Label,
    ) -> Result<Self, CallError> {
        Live::instantiate_with(engine, &prepared.instance_pre, label, |store, instance| {
            let plugin = prepared.indices.load(&mut *store, instance)?;
            Ok(decide_func(prepared, store, instance).map(|decide| Exports { plugin, decide }))
        })
    }
}

/// The `decide` function of an instance whose component exports it, checked to have
/// the contract's type.
fn decide_func(
    prepared: &Prepared,
    store: &mut Store<GuestState>,
    instance: &Instance,
) -> Result<Option<Func>, CallError> {
    let Some(index) = &prepared.decide else {
        return Ok(None);
    };
    instance
        .get_typed_func(store, index)
        .map(|typed: DecideFunc| Some(*typed.func()))
        .map_err(|error| {
            CallError::Invalid(format!(
                "`decide` does not have the type tally:aggregate@1.1.0 gives it: {}",
                error_chain(&error)
            ))
        })
}

impl<X> Live<X> {
    /// Bytes of linear memory the instance holds (what keeping it idle costs).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes
    }

    /// Instantiates a component in a fresh store under the engine's limits, then
    /// looks up its exports with `load`. An error of `load`'s outer result is a
    /// failed instantiation (classified like a call's); its inner error is returned
    /// as it is.
    pub(crate) fn instantiate_with(
        engine: &PluginEngine,
        instance_pre: &InstancePre<GuestState>,
        label: Label,
        load: impl FnOnce(&mut Store<GuestState>, &Instance) -> wasmtime::Result<Result<X, CallError>>,
    ) -> Result<Self, CallError> {
        let config = engine.config();
        let stdout = Output::new(config.output_capacity, false);
        let stderr = Output::new(config.output_capacity, true);
        let mut store = sandboxed_store(engine, &stdout, &stderr);
        let linked = instance_pre
            .instantiate(&mut store)
            .and_then(|instance| load(&mut store, &instance));
        let exports = match linked {
            Ok(exports) => exports?,
            Err(error) => {
                let stderr_text = stderr.forward(&label, true);
                let classified = classify(
                    error,
                    store.data().limits.memory_refused,
                    &stderr_text,
                    engine,
                );
                return Err(match classified {
                    CallError::Trap { message } => CallError::Instantiate { message },
                    other => other,
                });
            }
        };
        Ok(Self {
            store,
            exports,
            stdout,
            stderr,
            label,
            calls: 0,
            broken: false,
        })
    }

    /// Runs one call under a fresh CPU deadline, forwards the output, and turns
    /// a failure into a [`CallError`] (marking the instance broken).
    pub(crate) fn call<R>(
        &mut self,
        engine: &PluginEngine,
        function: &'static str,
        call: impl FnOnce(&X, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.store.set_epoch_deadline(engine.deadline_ticks());
        self.store.data_mut().limits.memory_refused = false;
        let result = call(&self.exports, &mut self.store);
        self.calls += 1;

        // After a failure, everything: the instance is dropped, and a panic report
        // is on stderr.
        let all = result.is_err();
        self.stdout.forward(&self.label, all);
        let stderr = self.stderr.forward(&self.label, all);

        result.map_err(|error| {
            self.broken = true;
            tracing::debug!(
                aggregate_type = &*self.label.aggregate_type,
                version = &*self.label.version,
                function,
                error = ?error,
                "plugin call failed"
            );
            classify(
                error,
                self.store.data().limits.memory_refused,
                &stderr,
                engine,
            )
        })
    }

    /// Whether the instance may serve another call: not broken, under the call
    /// budget.
    pub(crate) fn reusable(&self, engine: &PluginEngine) -> bool {
        !self.broken && self.calls < engine.config().max_calls_per_instance
    }

    /// Calls made on this instance so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls
    }

    /// Names the plugin in this instance's logs once it has described itself.
    pub(crate) fn relabel(&mut self, label: Label) {
        self.label = label;
    }
}

impl<X> Drop for Live<X> {
    fn drop(&mut self) {
        self.stdout.forward(&self.label, true);
        self.stderr.forward(&self.label, true);
    }
}

/// A store for one instance: WASI granting nothing, output into `stdout` and
/// `stderr`, the engine's memory limit and CPU deadline.
fn sandboxed_store(engine: &PluginEngine, stdout: &Output, stderr: &Output) -> Store<GuestState> {
    let config = engine.config();
    // Nothing granted: no preopens, environment, arguments, stdin or network; the
    // wall clock is frozen at the Unix epoch (the context's `now-ms` is the only
    // time a plugin may use, so folds are the same on every replay).
    let wasi = WasiCtx::builder()
        .wall_clock(FrozenWallClock)
        .stdout(stdout.pipe.clone())
        .stderr(stderr.pipe.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let limits = Limits {
        inner: StoreLimitsBuilder::new()
            .memory_size(config.memory_limit)
            .table_elements(TABLE_ELEMENTS_LIMIT)
            .build(),
        memory_refused: false,
        memory_bytes: 0,
    };
    let mut store = Store::new(
        engine.wasmtime(),
        GuestState {
            wasi,
            table: ResourceTable::new(),
            limits,
            batch: None,
        },
    );
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(engine.deadline_ticks());
    store
}

/// Turns wasmtime's error for a failed call into a [`CallError`].
fn classify(
    error: wasmtime::Error,
    memory_refused: bool,
    stderr: &[u8],
    engine: &PluginEngine,
) -> CallError {
    let config = engine.config();
    let trap = error.downcast_ref::<Trap>();
    if trap == Some(&Trap::Interrupt) {
        return CallError::Timeout {
            limit: config.call_timeout,
        };
    }
    if memory_refused {
        return CallError::MemoryLimit {
            limit: config.memory_limit,
        };
    }
    if let Some(line) = panic_line(stderr) {
        let (message, location) = split_location(&line);
        return CallError::Panic { message, location };
    }
    CallError::Trap {
        message: trap.map_or_else(|| error_chain(&error), ToString::to_string),
    }
}

/// What follows the marker on the last panic line in `stderr`, if any.
fn panic_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|line| {
            line.find(PANIC_MARKER)
                .map(|at| line[at + PANIC_MARKER.len()..].trim_end().to_owned())
        })
        .next_back()
}

/// Splits a panic report `<message> (at <location>)` into its message and location.
fn split_location(report: &str) -> (String, Option<String>) {
    let located = report
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" (at "));
    match located {
        Some((message, location)) => (message.to_owned(), Some(location.to_owned())),
        None => (report.to_owned(), None),
    }
}

/// An error and its causes on one line (first line of each; wasm backtraces are
/// left to the debug log).
pub(crate) fn error_chain(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .filter_map(|cause| cause.lines().next().map(str::to_owned))
        .filter(|cause| {
            !cause.is_empty() && !cause.starts_with("error while executing at wasm backtrace")
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// An instance of a [`LoadedPlugin`](crate::LoadedPlugin), taken with
/// [`LoadedPlugin::instance`](crate::LoadedPlugin::instance).
///
/// Calls are sync and run on the calling thread; each gets a fresh CPU deadline.
/// The outer `Result` of each call is the instance's fate ([`CallError`]); the
/// inner one, where there is one, is the plugin's answer (a rejection, or an error
/// string for input it cannot read). After a failed call the underlying wasmtime
/// instance is dropped and the next call instantiates a fresh one; after
/// [`EngineConfig::max_calls_per_instance`](crate::EngineConfig::max_calls_per_instance)
/// calls it is recycled the same way. Dropping a `PluginInstance` returns a
/// healthy underlying instance to the plugin's pool.
pub struct PluginInstance {
    plugin: Arc<PluginInner>,
    live: Option<Live>,
}

impl PluginInstance {
    pub(crate) fn new(plugin: Arc<PluginInner>, live: Option<Live>) -> Self {
        Self { plugin, live }
    }

    /// Calls `initial-state`: the state before any event.
    pub fn initial_state(&mut self) -> Result<Vec<u8>, CallError> {
        self.call("initial-state", |exports, store| {
            exports
                .plugin
                .tally_aggregate_aggregate()
                .call_initial_state(store)
        })
    }

    /// Calls `handle`: decides `command` against `state`. Checks that every
    /// returned event is one the plugin describes, at its current schema version,
    /// and that a rejection code is kebab-case.
    pub fn handle(
        &mut self,
        ctx: &Context,
        state: &[u8],
        command: &Command,
    ) -> Result<Result<Vec<Event>, Rejection>, CallError> {
        let state = state.to_vec();
        let answer = self.call("handle", |exports, store| {
            exports
                .plugin
                .tally_aggregate_aggregate()
                .call_handle(store, ctx, &state, command)
        })?;
        match &answer {
            Ok(events) => self.check_events("handle", events)?,
            Err(rejection) => check_rejection("handle", rejection)?,
        }
        Ok(answer)
    }

    /// Decides `command` against `state` and returns the events with the state
    /// after them: one call to `decide` when the plugin exports it (1.1.0), else
    /// `handle` and then `apply` of its events (1.0.0). Checks what `handle` checks;
    /// events that `apply` refuses are an [`CallError::Invalid`] answer.
    pub fn decide(
        &mut self,
        ctx: &Context,
        state: &[u8],
        command: &Command,
    ) -> Result<Decision, CallError> {
        if !self.plugin.prepared.exports_decide() {
            return self.handle_then_apply(ctx, state, command);
        }
        let answer = self.call("decide", |exports, store| {
            let decide = exports.decide.expect("looked up with the plugin");
            // SAFETY: `decide` was type-checked as `DecideFunc` when the instance
            // was created, and `DecideCall` has the same component types.
            let decide: DecideCall<'_> = unsafe { TypedFunc::new_unchecked(decide) };
            decide
                .call(store, (ctx, state, command))
                .map(|(answer,)| answer)
        })?;
        match answer {
            // No events: no change, whatever state came back (as `handle` + `apply`).
            Ok(decision) if decision.events.is_empty() => Ok(Ok((Vec::new(), state.to_vec()))),
            Ok(decision) => {
                self.check_events("decide", &decision.events)?;
                Ok(Ok((decision.events, decision.state)))
            }
            Err(rejection) => {
                check_rejection("decide", &rejection)?;
                Ok(Err(rejection))
            }
        }
    }

    fn handle_then_apply(
        &mut self,
        ctx: &Context,
        state: &[u8],
        command: &Command,
    ) -> Result<Decision, CallError> {
        let events = match self.handle(ctx, state, command)? {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if events.is_empty() {
            return Ok(Ok((events, state.to_vec())));
        }
        match self.apply(state, &events)? {
            Ok(state) => Ok(Ok((events, state))),
            Err(message) => Err(CallError::Invalid(format!(
                "apply refused the events handle returned: {message}"
            ))),
        }
    }

    /// Calls `apply`: folds `events` (at current schema versions) into `state`.
    pub fn apply(
        &mut self,
        state: &[u8],
        events: &[Event],
    ) -> Result<Result<Vec<u8>, String>, CallError> {
        let state = state.to_vec();
        self.call("apply", |exports, store| {
            exports
                .plugin
                .tally_aggregate_aggregate()
                .call_apply(store, &state, events)
        })
    }

    /// Calls `upcast`: rewrites a stored event into current schemas. Checks that
    /// every returned event is described, at its current schema version.
    pub fn upcast(&mut self, event: &Event) -> Result<Result<Vec<Event>, String>, CallError> {
        let answer = self.call("upcast", |exports, store| {
            exports
                .plugin
                .tally_aggregate_aggregate()
                .call_upcast(store, event)
        })?;
        if let Ok(events) = &answer {
            self.check_events("upcast", events)?;
        }
        Ok(answer)
    }

    /// Calls `state-json`: the state as UTF-8 JSON text (checked to be UTF-8).
    pub fn state_json(&mut self, state: &[u8]) -> Result<Result<Vec<u8>, String>, CallError> {
        let state = state.to_vec();
        let answer = self.call("state-json", |exports, store| {
            exports
                .plugin
                .tally_aggregate_aggregate()
                .call_state_json(store, &state)
        })?;
        if let Ok(json) = &answer
            && std::str::from_utf8(json).is_err()
        {
            return Err(CallError::Invalid(
                "state-json returned bytes that are not UTF-8".into(),
            ));
        }
        Ok(answer)
    }

    /// Calls made on the current underlying instance (0 when the next call will
    /// instantiate a fresh one).
    pub fn calls_on_current_instance(&self) -> u64 {
        self.live.as_ref().map_or(0, Live::calls)
    }

    /// Runs `call` on the live instance, instantiating one first if needed, and
    /// drops the instance if it failed or is due for recycling.
    fn call<R>(
        &mut self,
        function: &'static str,
        call: impl FnOnce(&Exports, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let engine = &self.plugin.engine;
        if self.live.is_none() {
            self.plugin.instantiations.fetch_add(1, Ordering::Relaxed);
            self.live = Some(Live::instantiate(
                engine,
                &self.plugin.prepared,
                self.plugin.label.clone(),
            )?);
        }
        let live = self.live.as_mut().expect("an instance was just created");
        let result = live.call(engine, function, call);
        if !live.reusable(engine) {
            self.live = None;
        }
        result
    }

    fn check_events(&self, function: &str, events: &[Event]) -> Result<(), CallError> {
        for event in events {
            match self.plugin.event_versions.get(event.name.as_str()) {
                Some(&version) if version == event.version => {}
                Some(&version) => {
                    return Err(CallError::Invalid(format!(
                        "{function} returned event {} at schema version {}, but the plugin \
                         describes version {version}",
                        event.name, event.version
                    )));
                }
                None => {
                    return Err(CallError::Invalid(format!(
                        "{function} returned event {:?}, which the plugin does not describe",
                        event.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A rejection code must be kebab-case.
fn check_rejection(function: &str, rejection: &Rejection) -> Result<(), CallError> {
    if is_kebab_case(&rejection.code) {
        return Ok(());
    }
    Err(CallError::Invalid(format!(
        "{function} rejected with code {:?}, which is not kebab-case",
        rejection.code
    )))
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        if let Some(live) = self.live.take()
            && live.reusable(&self.plugin.engine)
        {
            self.plugin.put_back(live);
        }
    }
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("aggregate_type", &&*self.plugin.label.aggregate_type)
            .field("version", &&*self.plugin.label.version)
            .field(
                "calls_on_current_instance",
                &self.calls_on_current_instance(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_panic_line_wins() {
        let stderr = b"noise\ntally-plugin-panic: first (at a.rs:1:1)\nmore\ntally-plugin-panic: second\\nline (at b.rs:2:3)\n";
        assert_eq!(
            panic_line(stderr).as_deref(),
            Some("second\\nline (at b.rs:2:3)")
        );
        assert_eq!(panic_line(b"memory allocation of 4 bytes failed\n"), None);
    }

    #[test]
    fn the_location_is_split_from_the_message() {
        assert_eq!(
            split_location("balance (at most 5) overflowed (at /home/ci/src/lib.rs:2:3)"),
            (
                "balance (at most 5) overflowed".to_owned(),
                Some("/home/ci/src/lib.rs:2:3".to_owned())
            )
        );
        assert_eq!(
            split_location("no location"),
            ("no location".to_owned(), None)
        );
    }
}
