//! Rebuilding states: stored events, upcast to the plugin's current schemas, folded
//! through `apply` in batches, from the latest snapshot or from the start.

use std::sync::Arc;

use tally_store::{EventStore, RecordedEvent, StoreError, StreamId, StreamRead};

use crate::registry::PluginVersion;
use crate::{CallError, Event, PluginInstance};

/// Why a fold failed.
#[derive(Debug)]
pub(crate) enum FoldError {
    /// A plugin call failed.
    Call(CallError),
    /// The plugin answered with an error (it cannot read an event or a state).
    Refused(String),
    /// Reading the store failed.
    Store(StoreError),
}

impl FoldError {
    pub fn message(&self) -> String {
        match self {
            FoldError::Call(error) => error.to_string(),
            FoldError::Refused(message) => message.clone(),
            FoldError::Store(error) => error.to_string(),
        }
    }
}

impl From<StoreError> for FoldError {
    fn from(error: StoreError) -> Self {
        FoldError::Store(error)
    }
}

impl From<CallError> for FoldError {
    fn from(error: CallError) -> Self {
        FoldError::Call(error)
    }
}

/// A state at a version (events folded).
#[derive(Debug, Clone)]
pub(crate) struct Folded {
    pub version: u64,
    pub state: Vec<u8>,
    /// The version of the snapshot the fold started from (0: the initial state).
    pub snapshot_version: u64,
}

/// Where a fold stops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldLimit {
    /// Only events at or before this global position.
    pub up_to_position: Option<u64>,
    /// Start from the latest snapshot of the plugin version's tag.
    pub use_snapshot: bool,
}

/// Folds `stream` under `plugin`: from its latest snapshot (if allowed and present)
/// or its initial state, through every later event (or those up to a position).
pub(crate) async fn fold_stream(
    store: &EventStore,
    plugin: &Arc<PluginVersion>,
    stream: &StreamId,
    limit: FoldLimit,
    batch: usize,
) -> Result<Folded, FoldError> {
    let snapshot = if limit.use_snapshot && limit.up_to_position.is_none() {
        store.latest_snapshot(stream, &plugin.tag).await?
    } else {
        None
    };
    let mut folded = match snapshot {
        Some(snapshot) => Folded {
            version: snapshot.version + 1,
            state: snapshot.data.to_vec(),
            snapshot_version: snapshot.version + 1,
        },
        None => Folded {
            version: 0,
            state: plugin.run(|instance| instance.initial_state()).await?,
            snapshot_version: 0,
        },
    };
    let page = store.config().max_read_count;
    loop {
        let mut read = StreamRead::forward(folded.version, page);
        read.up_to_position = limit.up_to_position;
        let events = store.read_stream(stream, read).await?;
        if events.is_empty() {
            return Ok(folded);
        }
        let read_count = events.len() as u64;
        for chunk in chunks(events, batch.max(1)) {
            let count = chunk.len() as u64;
            folded.state = apply_stored(plugin, std::mem::take(&mut folded.state), chunk).await?;
            folded.version += count;
        }
        if read_count < page as u64 {
            return Ok(folded);
        }
    }
}

/// Splits `events` into owned chunks of at most `size`.
fn chunks(mut events: Vec<RecordedEvent>, size: usize) -> Vec<Vec<RecordedEvent>> {
    let mut chunks = Vec::with_capacity(events.len().div_ceil(size));
    while events.len() > size {
        let rest = events.split_off(size);
        chunks.push(events);
        events = rest;
    }
    chunks.push(events);
    chunks
}

/// Upcasts stored events and folds them into `state` in one `apply` call.
async fn apply_stored(
    plugin: &Arc<PluginVersion>,
    state: Vec<u8>,
    stored: Vec<RecordedEvent>,
) -> Result<Vec<u8>, FoldError> {
    let plugin_handle = plugin.clone();
    plugin
        .run(move |instance| {
            let events = match to_current(&plugin_handle, instance, stored) {
                Ok(events) => events,
                Err(FoldError::Call(error)) => return Err(error),
                Err(other) => return Ok(Err(other.message())),
            };
            instance.apply(&state, &events)
        })
        .await?
        .map_err(FoldError::Refused)
}

/// Stored events in the plugin's current schemas: events already current pass
/// through; others go through `upcast`.
pub(crate) fn to_current(
    plugin: &PluginVersion,
    instance: &mut PluginInstance,
    stored: Vec<RecordedEvent>,
) -> Result<Vec<Event>, FoldError> {
    let mut events = Vec::with_capacity(stored.len());
    for event in stored {
        let current = plugin.plugin.event_version(&event.name);
        let wire = Event {
            name: event.name,
            version: event.schema_version,
            data: event.data.to_vec(),
        };
        if current == Some(wire.version) {
            events.push(wire);
            continue;
        }
        match instance.upcast(&wire)? {
            Ok(upcast) => events.extend(upcast),
            Err(message) => {
                return Err(FoldError::Refused(format!(
                    "cannot upcast {} (schema version {}) at version {}: {message}",
                    wire.name,
                    wire.version,
                    event.version + 1
                )));
            }
        }
    }
    Ok(events)
}
