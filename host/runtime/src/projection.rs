//! Projection plugins: components of the `tally:projection/plugin` world
//! (`wit/projection/projection.wit`) that fold events into documents.
//!
//! A [`LoadedProjection`] is loaded, sandboxed and limited like an aggregate plugin
//! (the same engine, WASI granting nothing, CPU deadline and memory limit per call).
//! Its `apply` reaches the read model only through the `documents` import, which the
//! host serves from a [`Batch`]: reads come from the batch's earlier writes, else from
//! the [`DocumentSource`] the caller gives (the committed read model); writes are
//! collected into [`DocumentWrites`], which the caller commits, with its checkpoint,
//! only when `apply` succeeded. A projection can touch only the tables it declared.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::cache::{CacheStatus, load_or_compile};
use crate::engine::PluginEngine;
use crate::instance::{CallError, GuestState, Live, error_chain};
use crate::output::Label;
use crate::plugin::{
    InstallError, check_header, check_imports, is_kebab_case, parse_version, pool_has_room,
};

/// Host bindings of the `tally:projection/plugin` world.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/projection",
        world: "tally:projection/plugin",
        imports: { default: trappable },
        additional_derives: [PartialEq, Eq],
    });
}

use bindings::tally::projection::{documents, types};

pub use types::EventEnvelope;

/// The exports of one live projection instance.
type Exports = bindings::Plugin;

/// Adds the `documents` import (served from [`GuestState::batch`]) to the engine's
/// linker. Aggregate plugins do not import it; only a projection's calls use it.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    bindings::Plugin::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)
}

/// What a projection's `describe` said, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionInfo {
    /// Projection name, kebab-case.
    pub name: String,
    /// Projection version.
    pub version: semver::Version,
    /// One human-readable sentence.
    pub description: String,
    /// The aggregate types whose events it reads (at least one, kebab-case).
    pub aggregate_types: Vec<String>,
    /// The event names it reads; empty means every event of those types.
    pub events: Vec<String>,
    /// The tables of its read model (at least one, kebab-case).
    pub tables: Vec<String>,
}

impl ProjectionInfo {
    /// Whether the projection reads events named `name` of `aggregate_type`.
    pub fn reads(&self, aggregate_type: &str, name: &str) -> bool {
        self.aggregate_types.iter().any(|t| t == aggregate_type)
            && (self.events.is_empty() || self.events.iter().any(|e| e == name))
    }
}

/// A document's place: its table and key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentKey {
    /// The table, one the projection declared.
    pub table: String,
    /// The key within the table.
    pub key: String,
}

/// The committed read model, as a batch reads it.
pub trait DocumentSource: Send + Sync {
    /// The document at `key` in `table`, or why it cannot be read.
    fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
}

/// What a batch changed: the last write of each document, `None` for a deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentWrites {
    changes: BTreeMap<DocumentKey, Option<Vec<u8>>>,
}

impl DocumentWrites {
    /// Each changed document with its new JSON, or `None` if deleted, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&DocumentKey, Option<&[u8]>)> {
        self.changes
            .iter()
            .map(|(key, data)| (key, data.as_deref()))
    }

    /// Sets the document at `key` to `data` (JSON).
    pub fn put(&mut self, key: DocumentKey, data: Vec<u8>) {
        self.changes.insert(key, Some(data));
    }

    /// Deletes the document at `key`.
    pub fn delete(&mut self, key: DocumentKey) {
        self.changes.insert(key, None);
    }

    /// The batch's own version of the document at `key`: `Some(None)` if it deleted
    /// it, `None` if the batch did not touch it.
    pub fn get(&self, key: &DocumentKey) -> Option<Option<&[u8]>> {
        self.changes.get(key).map(Option::as_deref)
    }

    /// Documents changed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Limits of what a projection may write, part of [`EngineConfig`](crate::EngineConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest document, bytes of JSON.
    pub max_document_bytes: usize,
    /// Longest key, bytes.
    pub max_key_bytes: usize,
}

/// The read model as one `apply` call sees it: the committed documents under the
/// batch's own writes.
pub(crate) struct Batch {
    source: Arc<dyn DocumentSource>,
    tables: Arc<[String]>,
    limits: DocumentLimits,
    writes: DocumentWrites,
}

impl Batch {
    fn document_key(&self, table: String, key: String) -> wasmtime::Result<DocumentKey> {
        if !self.tables.contains(&table) {
            wasmtime::bail!(
                "the projection used table {table:?}, which it does not declare (its tables: {})",
                self.tables.join(", ")
            );
        }
        if key.is_empty() || key.len() > self.limits.max_key_bytes {
            wasmtime::bail!(
                "a document key must have 1 to {} bytes; got {} in table {table:?}",
                self.limits.max_key_bytes,
                key.len()
            );
        }
        Ok(DocumentKey { table, key })
    }

    fn check_document(&self, key: &DocumentKey, data: &[u8]) -> wasmtime::Result<()> {
        if data.len() > self.limits.max_document_bytes {
            wasmtime::bail!(
                "document {}/{} has {} bytes, over the limit of {}",
                key.table,
                key.key,
                data.len(),
                self.limits.max_document_bytes
            );
        }
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(data) {
            wasmtime::bail!("document {}/{} is not JSON: {error}", key.table, key.key);
        }
        Ok(())
    }
}

impl GuestState {
    fn batch(&mut self) -> wasmtime::Result<&mut Batch> {
        self.batch
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("documents are only reachable during `apply`"))
    }
}

impl types::Host for GuestState {}

impl documents::Host for GuestState {
    fn get(&mut self, table: String, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let batch = self.batch()?;
        let key = batch.document_key(table, key)?;
        if let Some(written) = batch.writes.get(&key) {
            return Ok(written.map(<[u8]>::to_vec));
        }
        batch
            .source
            .get(&key.table, &key.key)
            .map_err(|error| wasmtime::format_err!("cannot read the read model: {error}"))
    }

    fn put(&mut self, table: String, key: String, data: Vec<u8>) -> wasmtime::Result<()> {
        let batch = self.batch()?;
        let key = batch.document_key(table, key)?;
        batch.check_document(&key, &data)?;
        batch.writes.put(key, data);
        Ok(())
    }

    fn delete(&mut self, table: String, key: String) -> wasmtime::Result<()> {
        let batch = self.batch()?;
        let key = batch.document_key(table, key)?;
        batch.writes.delete(key);
        Ok(())
    }
}

/// A projection plugin that passed its checks: compiled (or loaded from the compile
/// cache), linked, described. Cheap to clone.
#[derive(Clone)]
pub struct LoadedProjection {
    inner: Arc<ProjectionInner>,
}

struct ProjectionInner {
    engine: PluginEngine,
    instance_pre: InstancePre<GuestState>,
    indices: bindings::PluginIndices,
    info: ProjectionInfo,
    tables: Arc<[String]>,
    label: Label,
    cache_status: CacheStatus,
    instantiations: AtomicU64,
    idle: Mutex<Vec<Live<Exports>>>,
}

impl LoadedProjection {
    /// Validates, compiles and describes `bytes`. Refuses, with a typed
    /// [`InstallError`], what is not a component of the projection world and a
    /// description that breaks the contract.
    pub fn load(engine: &PluginEngine, bytes: &[u8]) -> Result<Self, InstallError> {
        check_header(bytes)?;
        check_imports(bytes).map_err(InstallError::NotAProjection)?;
        let (component, cache_status) = load_or_compile(engine, bytes)
            .map_err(|error| InstallError::InvalidComponent(error_chain(&error)))?;
        let wrong_world =
            |error: wasmtime::Error| InstallError::NotAProjection(error_chain(&error));
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let indices = bindings::PluginIndices::new(&instance_pre).map_err(wrong_world)?;
        let mut live = instantiate(engine, &instance_pre, &indices, Label::undescribed())
            .map_err(InstallError::Describe)?;
        let wire = live
            .call(engine, "describe", |plugin, store| {
                plugin.tally_projection_projection().call_describe(store)
            })
            .map_err(InstallError::Describe)?;
        let info = check_info(wire)?;
        let label = Label {
            aggregate_type: Arc::from(info.name.as_str()),
            version: Arc::from(info.version.to_string()),
        };
        live.relabel(label.clone());
        let inner = ProjectionInner {
            engine: engine.clone(),
            instance_pre,
            indices,
            tables: info.tables.clone().into(),
            info,
            label,
            cache_status,
            instantiations: AtomicU64::new(1),
            idle: Mutex::new(Vec::new()),
        };
        let projection = LoadedProjection {
            inner: Arc::new(inner),
        };
        projection.inner.put_back(live);
        tracing::info!(
            projection = &*projection.inner.label.aggregate_type,
            version = &*projection.inner.label.version,
            cache = ?cache_status,
            "projection loaded"
        );
        Ok(projection)
    }

    /// What the projection's `describe` said, checked.
    pub fn info(&self) -> &ProjectionInfo {
        &self.inner.info
    }

    /// Whether the compiled code came from the compile cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.inner.cache_status
    }

    /// Instances created so far (including the one that ran `describe`).
    pub fn instantiations(&self) -> u64 {
        self.inner.instantiations.load(Ordering::Relaxed)
    }

    /// An instance to call: an idle one from the pool, or a fresh one on first use.
    pub fn instance(&self) -> ProjectionInstance {
        let live = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        ProjectionInstance {
            projection: self.inner.clone(),
            live,
        }
    }
}

impl std::fmt::Debug for LoadedProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedProjection")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl ProjectionInner {
    /// The engine's limits on documents.
    fn limits(&self) -> DocumentLimits {
        let config = self.engine.config();
        DocumentLimits {
            max_document_bytes: config.max_document_bytes,
            max_key_bytes: config.max_document_key_bytes,
        }
    }

    /// Returns a healthy instance to the pool, unless it is due for recycling or the
    /// pool is full.
    fn put_back(&self, live: Live<Exports>) {
        if !live.reusable(&self.engine) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if pool_has_room(&idle, &live, self.engine.config()) {
            idle.push(live);
        }
    }
}

/// An instance of a [`LoadedProjection`]: calls are sync, on the calling thread, each
/// under a fresh CPU deadline; a failed instance is replaced on the next call.
/// Dropping it returns a healthy instance to the projection's pool.
pub struct ProjectionInstance {
    projection: Arc<ProjectionInner>,
    live: Option<Live<Exports>>,
}

impl ProjectionInstance {
    /// Calls `apply` with `events` (in log order, at current schemas) over the read
    /// model `source`: the documents the batch wrote, or the projection's error.
    pub fn apply(
        &mut self,
        events: &[EventEnvelope],
        source: Arc<dyn DocumentSource>,
    ) -> Result<Result<DocumentWrites, String>, CallError> {
        debug_assert!(
            events
                .windows(2)
                .all(|pair| pair[0].position <= pair[1].position),
            "a batch is in log order"
        );
        let batch = Batch {
            source,
            tables: self.projection.tables.clone(),
            limits: self.projection.limits(),
            writes: DocumentWrites::default(),
        };
        self.call("apply", move |plugin, store| {
            store.data_mut().batch = Some(batch);
            let answer = plugin
                .tally_projection_projection()
                .call_apply(&mut *store, events);
            let batch = store.data_mut().batch.take();
            let writes = batch.map(|batch| batch.writes).unwrap_or_default();
            answer.map(|answer| answer.map(|()| writes))
        })
    }

    fn call<R>(
        &mut self,
        function: &'static str,
        call: impl FnOnce(&Exports, &mut wasmtime::Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let projection = &self.projection;
        let engine = &projection.engine;
        if self.live.is_none() {
            projection.instantiations.fetch_add(1, Ordering::Relaxed);
            self.live = Some(instantiate(
                engine,
                &projection.instance_pre,
                &projection.indices,
                projection.label.clone(),
            )?);
        }
        let live = self.live.as_mut().expect("an instance was just created");
        let result = live.call(engine, function, call);
        if !live.reusable(engine) {
            self.live = None;
        }
        result
    }
}

impl Drop for ProjectionInstance {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            self.projection.put_back(live);
        }
    }
}

/// A fresh instance of a projection component.
fn instantiate(
    engine: &PluginEngine,
    instance_pre: &InstancePre<GuestState>,
    indices: &bindings::PluginIndices,
    label: Label,
) -> Result<Live<Exports>, CallError> {
    Live::instantiate_with(engine, instance_pre, label, |store, instance| {
        Ok(Ok(indices.load(store, instance)?))
    })
}

/// Table names a projection may not declare: `/v1/projections/{name}/{table}` would
/// collide with the admin actions `/v1/projections/{name}/rebuild`, `.../retry` and
/// `.../skip`.
pub const RESERVED_TABLES: &[&str] = &["rebuild", "retry", "skip"];

/// Validates `describe`'s answer.
fn check_info(wire: types::ProjectionInfo) -> Result<ProjectionInfo, InstallError> {
    let invalid = |message: String| Err(InstallError::InvalidInfo(message));
    if !is_kebab_case(&wire.name) {
        return invalid(format!(
            "projection name {:?} is not kebab-case (e.g. `account-summary`)",
            wire.name
        ));
    }
    let version = parse_version(&wire.version)?;
    check_names("aggregate type", &wire.aggregate_types, true)?;
    check_names("table", &wire.tables, true)?;
    if let Some(reserved) = wire
        .tables
        .iter()
        .find(|table| RESERVED_TABLES.contains(&table.as_str()))
    {
        return invalid(format!(
            "table name {reserved:?} is reserved (the admin actions of the API use it)"
        ));
    }
    if wire.events.iter().any(String::is_empty) {
        return invalid("an event name is empty".into());
    }
    Ok(ProjectionInfo {
        name: wire.name,
        version,
        description: wire.description,
        aggregate_types: wire.aggregate_types,
        events: wire.events,
        tables: wire.tables,
    })
}

/// Checks a list of kebab-case names: at least one when `required`, none repeated.
fn check_names(what: &str, names: &[String], required: bool) -> Result<(), InstallError> {
    if required && names.is_empty() {
        return Err(InstallError::InvalidInfo(format!(
            "a projection needs at least one {what}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !is_kebab_case(name) || !seen.insert(name) {
            return Err(InstallError::InvalidInfo(format!(
                "{what} {name:?} is not kebab-case or is repeated"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, tables: &[&str]) -> types::ProjectionInfo {
        types::ProjectionInfo {
            name: name.into(),
            version: "1.0.0".into(),
            description: "d".into(),
            aggregate_types: vec!["bank-account".into()],
            events: vec![],
            tables: tables.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn descriptions_are_checked() {
        assert!(check_info(wire("account-summary", &["accounts", "totals"])).is_ok());
        for bad in [
            wire("Account", &["accounts"]),
            wire("summary", &[]),
            wire("summary", &["a", "a"]),
            wire("summary", &["Bad_Table"]),
            wire("summary", &["skip"]),
            types::ProjectionInfo {
                version: "one".into(),
                ..wire("summary", &["a"])
            },
            types::ProjectionInfo {
                aggregate_types: vec![],
                ..wire("summary", &["a"])
            },
        ] {
            assert!(
                matches!(check_info(bad.clone()), Err(InstallError::InvalidInfo(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_projection_reads_its_types_and_events() {
        let mut info = check_info(wire("summary", &["a"])).unwrap();
        assert!(info.reads("bank-account", "MoneyDeposited"));
        assert!(!info.reads("shopping-cart", "MoneyDeposited"));
        info.events = vec!["AccountOpened".into()];
        assert!(info.reads("bank-account", "AccountOpened"));
        assert!(!info.reads("bank-account", "MoneyDeposited"));
    }
}
