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
    // Pages are read one ahead: the next page is read while the plugin folds this one.
    let page = store.config().max_read_count;
    let read_page = |from: u64| {
        let (store, stream) = (store.clone(), stream.clone());
        let mut read = StreamRead::forward(from, page);
        read.up_to_position = limit.up_to_position;
        tokio::spawn(async move { store.read_stream(&stream, read).await })
    };
    let mut next = Some(read_page(folded.version));
    while let Some(reading) = next.take() {
        let events = reading
            .await
            .map_err(|join| FoldError::Refused(format!("reading the stream failed: {join}")))??;
        if events.len() == page {
            next = Some(read_page(folded.version + page as u64));
        }
        let mut events = events.into_iter();
        loop {
            let chunk: Vec<RecordedEvent> = events.by_ref().take(batch.max(1)).collect();
            if chunk.is_empty() {
                break;
            }
            let count = chunk.len() as u64;
            folded.state = apply_stored(plugin, std::mem::take(&mut folded.state), chunk).await?;
            folded.version += count;
        }
    }
    Ok(folded)
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

/// Folds many short streams, each from its initial state through all `events`
/// given, in one plugin job (one hand-off to a worker thread for the lot, one
/// `initial-state` call): verification folds every stream of a type, and separate
/// jobs per stream would cost more than the folding. Returns the states in order,
/// or the index of the first stream that failed and why.
pub(crate) async fn fold_short_streams(
    plugin: &Arc<PluginVersion>,
    streams: Vec<Vec<RecordedEvent>>,
    batch: usize,
) -> Result<Vec<Folded>, (usize, FoldError)> {
    let handle = plugin.clone();
    let answer = plugin
        .run(move |instance| {
            let initial = instance.initial_state()?;
            let mut folded = Vec::with_capacity(streams.len());
            for (index, events) in streams.into_iter().enumerate() {
                let version = events.len() as u64;
                let mut state = initial.clone();
                let mut events = events.into_iter();
                loop {
                    let chunk: Vec<RecordedEvent> = events.by_ref().take(batch.max(1)).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    let current = match to_current(&handle, instance, chunk) {
                        Ok(current) => current,
                        Err(FoldError::Call(error)) => return Ok(Err((index, Ok(error)))),
                        Err(other) => return Ok(Err((index, Err(other.message())))),
                    };
                    state = match instance.apply(&state, &current) {
                        Ok(Ok(state)) => state,
                        Ok(Err(message)) => return Ok(Err((index, Err(message)))),
                        Err(error) => return Ok(Err((index, Ok(error)))),
                    };
                }
                folded.push(Folded {
                    version,
                    state,
                    snapshot_version: 0,
                });
            }
            Ok(Ok(folded))
        })
        .await
        .map_err(|error| (0, FoldError::Call(error)))?;
    answer.map_err(|(index, error)| {
        let error = match error {
            Ok(call) => {
                plugin.note_failure(&call);
                FoldError::Call(call)
            }
            Err(message) => FoldError::Refused(message),
        };
        (index, error)
    })
}
