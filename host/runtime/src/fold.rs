//! Rebuilding states: stored events, upcast to the plugin's current schemas, folded
//! through `apply` in batches, from the latest snapshot or from the start.

use std::sync::Arc;

use tally_store::{
    EventLog, EventRef, GlobalPosition, LogError, RecordedEvent, StreamId, StreamRead,
    StreamVersion,
};

use crate::backend::StoreBackend;

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
    Store(LogError),
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

impl From<LogError> for FoldError {
    fn from(error: LogError) -> Self {
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
    pub version: StreamVersion,
    pub state: Vec<u8>,
    /// The version of the snapshot the fold started from (0: the initial state).
    pub snapshot_version: StreamVersion,
}

impl Folded {
    /// The events folded since the snapshot the fold started from.
    pub fn events_since_snapshot(&self) -> u64 {
        self.version.events_since(self.snapshot_version)
    }
}

/// Where a fold stops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldLimit {
    /// Only events at or before this global position.
    pub up_to_position: Option<GlobalPosition>,
    /// Start from the latest snapshot of the plugin version's tag.
    pub use_snapshot: bool,
}

/// Folds `stream` under `plugin`: from its latest snapshot (if allowed and present)
/// or its initial state, through every later event (or those up to a position).
pub(crate) async fn fold_stream(
    store: &StoreBackend,
    plugin: &Arc<PluginVersion>,
    stream: &StreamId,
    limit: FoldLimit,
    batch: usize,
) -> Result<Folded, FoldError> {
    let mut folded = fold_start(store, plugin, stream, limit).await?;
    // Pages are read one ahead, and turned into `apply`'s batches there: the next page
    // is read and converted while the plugin folds this one.
    let page = store.max_read_count();
    let read_page = |from: StreamVersion| {
        let (store, stream, plugin) = (store.clone(), stream.clone(), plugin.clone());
        let mut read = StreamRead::forward(from, page);
        read.up_to_position = limit.up_to_position;
        tokio::spawn(async move {
            let events = store
                .read_stream_with(&stream, read, move |event| WireEvent::new(&plugin, event))
                .await?;
            Ok::<_, LogError>((events.len(), WireEvents::batches(events, batch)))
        })
    };
    let mut next = Some(read_page(folded.version.next()));
    while let Some(reading) = next.take() {
        let (read, batches) = reading
            .await
            .map_err(|join| FoldError::Refused(format!("reading the stream failed: {join}")))??;
        if read == page {
            next = Some(read_page(folded.version.next() + page as u64));
        }
        for events in batches {
            debug_assert_eq!(
                events.first_version(),
                Some(folded.version.next()),
                "a fold applies every event of {stream} once, in version order"
            );
            let count = events.stored_count();
            folded.state = apply_batch(plugin, std::mem::take(&mut folded.state), events).await?;
            folded.version += count;
        }
    }
    // Checked where the store answers from memory; on a database it would cost a query.
    debug_assert!(
        store
            .embedded()
            .is_none_or(|embedded| folded.version <= embedded.stream_version(stream)),
        "a fold of {stream} never gets ahead of its durable events"
    );
    Ok(folded)
}

/// Where a fold starts: the latest snapshot of the plugin version's tag (if allowed
/// and present), or the plugin's initial state.
async fn fold_start(
    store: &StoreBackend,
    plugin: &Arc<PluginVersion>,
    stream: &StreamId,
    limit: FoldLimit,
) -> Result<Folded, FoldError> {
    let snapshot = if limit.use_snapshot && limit.up_to_position.is_none() {
        store.latest_snapshot(stream, &plugin.tag).await?
    } else {
        None
    };
    Ok(match snapshot {
        Some(snapshot) => {
            debug_assert!(
                store
                    .embedded()
                    .is_none_or(|embedded| snapshot.version <= embedded.stream_version(stream)),
                "the store hands out no snapshot ahead of the stream {stream}"
            );
            Folded {
                version: snapshot.version,
                state: snapshot.data.to_vec(),
                snapshot_version: snapshot.version,
            }
        }
        None => Folded {
            version: StreamVersion::ZERO,
            state: plugin.run(|instance| instance.initial_state()).await?,
            snapshot_version: StreamVersion::ZERO,
        },
    })
}

/// Upcasts a batch and folds it into `state` in one `apply` call.
async fn apply_batch(
    plugin: &Arc<PluginVersion>,
    state: Vec<u8>,
    events: WireEvents,
) -> Result<Vec<u8>, FoldError> {
    plugin
        .run(move |instance| {
            let events = match events.into_current(instance) {
                Ok(events) => events,
                Err(FoldError::Call(error)) => return Err(error),
                Err(other) => return Ok(Err(other.message())),
            };
            instance.apply(&state, &events)
        })
        .await?
        .map_err(FoldError::Refused)
}

/// A stored event in the shape `apply` and `upcast` take, converted before the plugin
/// call (off the plugin's thread).
pub(crate) struct WireEvent {
    event: Event,
    /// Its version in the stream, for errors and checks.
    version: StreamVersion,
    /// Whether it is at an older schema version than the plugin's: it needs `upcast`.
    stale: bool,
}

impl WireEvent {
    /// Converts a stored event for `plugin`.
    pub(crate) fn new(plugin: &PluginVersion, stored: EventRef<'_>) -> WireEvent {
        WireEvent {
            stale: plugin.plugin.event_version(stored.name) != Some(stored.schema_version),
            version: stored.version,
            event: Event {
                name: stored.name.to_owned(),
                version: stored.schema_version.get(),
                data: stored.data.to_vec(),
            },
        }
    }

    /// Converts an owned stored event for `plugin`.
    pub(crate) fn from_recorded(plugin: &PluginVersion, stored: RecordedEvent) -> WireEvent {
        WireEvent {
            stale: plugin.plugin.event_version(&stored.name) != Some(stored.schema_version),
            version: stored.version,
            event: Event {
                name: stored.name,
                version: stored.schema_version.get(),
                data: stored.data.to_vec(),
            },
        }
    }
}

/// A batch of stored events for one `apply` call: events at the plugin's current
/// schema versions are ready; the others are marked for `upcast`.
pub(crate) struct WireEvents {
    events: Vec<Event>,
    /// The stream version of the first event.
    first_version: Option<StreamVersion>,
    /// Indexes into `events` of those at an older schema version, with their stream
    /// versions (for errors), in order.
    stale: Vec<(usize, StreamVersion)>,
}

impl WireEvents {
    /// A batch of `events`.
    pub(crate) fn new(events: impl IntoIterator<Item = WireEvent>) -> WireEvents {
        let mut wire = WireEvents {
            events: Vec::new(),
            first_version: None,
            stale: Vec::new(),
        };
        for event in events {
            wire.first_version.get_or_insert(event.version);
            if event.stale {
                wire.stale.push((wire.events.len(), event.version));
            }
            wire.events.push(event.event);
        }
        wire
    }

    /// The stream version of the batch's first event (`None` for an empty batch).
    pub(crate) fn first_version(&self) -> Option<StreamVersion> {
        self.first_version
    }

    /// `events` in batches of at most `batch`.
    pub(crate) fn batches(events: Vec<WireEvent>, batch: usize) -> Vec<WireEvents> {
        let mut events = events.into_iter().peekable();
        let mut batches = Vec::new();
        while events.peek().is_some() {
            batches.push(WireEvents::new(events.by_ref().take(batch.max(1))));
        }
        batches
    }

    /// Stored events in the batch (upcasting may turn them into more or fewer).
    pub(crate) fn stored_count(&self) -> u64 {
        self.events.len() as u64
    }

    /// The events in the plugin's current schemas: the stale ones go through
    /// `upcast` on `instance`.
    pub(crate) fn into_current(
        self,
        instance: &mut PluginInstance,
    ) -> Result<Vec<Event>, FoldError> {
        if self.stale.is_empty() {
            return Ok(self.events);
        }
        let mut current = Vec::with_capacity(self.events.len());
        let mut stale = self.stale.into_iter().peekable();
        for (index, event) in self.events.into_iter().enumerate() {
            let Some((_, version)) = stale.next_if(|&(at, _)| at == index) else {
                current.push(event);
                continue;
            };
            match instance.upcast(&event)? {
                Ok(upcast) => current.extend(upcast),
                Err(message) => {
                    return Err(FoldError::Refused(format!(
                        "cannot upcast {} (schema version {}) at version {version}: {message}",
                        event.name, event.version,
                    )));
                }
            }
        }
        Ok(current)
    }
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
    let streams: Vec<(StreamVersion, Vec<WireEvents>)> = streams
        .into_iter()
        .map(|events| {
            let version = events
                .last()
                .map_or(StreamVersion::ZERO, |event| event.version);
            debug_assert_eq!(
                version.get(),
                events.len() as u64,
                "a short stream is folded whole, from its first event"
            );
            let events = events
                .into_iter()
                .map(|event| WireEvent::from_recorded(plugin, event))
                .collect();
            (version, WireEvents::batches(events, batch))
        })
        .collect();
    let answer = plugin
        .run(move |instance| {
            let initial = instance.initial_state()?;
            let mut folded = Vec::with_capacity(streams.len());
            for (index, (version, batches)) in streams.into_iter().enumerate() {
                let mut state = initial.clone();
                for events in batches {
                    let current = match events.into_current(instance) {
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
                    snapshot_version: StreamVersion::ZERO,
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
