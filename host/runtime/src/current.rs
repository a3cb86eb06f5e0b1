//! Stored events in the current schemas of their aggregate type's active plugin: an
//! aggregate's events read upcast ([`EventView::Current`](crate::EventView)), and the
//! events a projection reads ([`Runtime::current_envelopes`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tally_store::{RecordedEvent, SchemaVersion};

use crate::api::StoredEvent;
use crate::error::{CommandError, RuntimeError};
use crate::fold::{FoldError, WireEvent, WireEvents};
use crate::registry::PluginVersion;
use crate::runtime::{Runtime, plugin_failure};
use crate::{Event, EventEnvelope};

/// A stored event upcast: the index of the stored event it came from (one stored
/// event may become several current ones, or none) and the current event.
type Upcast = (usize, Event);

impl Runtime {
    /// Events of the log as a projection reads them: each upcast to the current
    /// schemas of its aggregate type's active plugin, in log order; an event that
    /// upcasts into several keeps its position for each. Fails on an event of a
    /// type without an active plugin, and on one its plugin cannot upcast.
    pub async fn current_envelopes(
        &self,
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<EventEnvelope>, RuntimeError> {
        let mut by_type: BTreeMap<Arc<str>, Vec<RecordedEvent>> = BTreeMap::new();
        for event in events {
            by_type
                .entry(event.stream.aggregate_type.clone())
                .or_default()
                .push(event);
        }
        let mut envelopes = Vec::new();
        for (aggregate_type, events) in by_type {
            let (_, plugin) = self
                .active_type(&aggregate_type)
                .ok_or_else(|| RuntimeError::UnknownAggregateType(aggregate_type.to_string()))?;
            // Events already at the plugin's current schemas are what upcasting would
            // give: no plugin job (nor its wait for a plugin thread) when all are.
            if events.iter().all(|event| is_current(&plugin, event)) {
                envelopes.extend(events.into_iter().map(current_envelope));
                continue;
            }
            let upcast = upcast_all(&plugin, &events).await?;
            envelopes.extend(
                upcast
                    .into_iter()
                    .map(|(index, event)| envelope(&events[index], event)),
            );
        }
        // Stable: the events one stored event became keep their order.
        envelopes.sort_by_key(|envelope| envelope.position);
        Ok(envelopes)
    }
}

/// Whether `stored` is at `plugin`'s current schema version of its event, so that
/// upcasting leaves it as it is (as [`WireEvent`] marks it not stale).
fn is_current(plugin: &PluginVersion, stored: &RecordedEvent) -> bool {
    plugin.plugin.event_version(&stored.name) == Some(stored.schema_version)
}

/// A stored event already at its current schema, as [`envelope`] would make it.
fn current_envelope(stored: RecordedEvent) -> EventEnvelope {
    EventEnvelope {
        position: stored.position.get(),
        aggregate_type: stored.stream.aggregate_type.to_string(),
        aggregate_id: stored.stream.aggregate_id.to_string(),
        stream_version: stored.version.get(),
        name: stored.name,
        schema_version: stored.schema_version.get(),
        timestamp_ms: stored.timestamp_ms,
        data: stored.data.to_vec(),
    }
}

/// An upcast event with the place of the stored event it came from.
fn envelope(stored: &RecordedEvent, event: Event) -> EventEnvelope {
    EventEnvelope {
        position: stored.position.get(),
        aggregate_type: stored.stream.aggregate_type.to_string(),
        aggregate_id: stored.stream.aggregate_id.to_string(),
        stream_version: stored.version.get(),
        name: event.name,
        schema_version: event.version,
        timestamp_ms: stored.timestamp_ms,
        data: event.data,
    }
}

/// Upcasts stored events to `plugin`'s current schemas, in one plugin job; each event
/// it gives keeps the position and version of the stored one.
pub(crate) async fn upcast_events(
    plugin: &Arc<PluginVersion>,
    stored: Vec<RecordedEvent>,
) -> Result<Vec<StoredEvent>, RuntimeError> {
    let upcast = upcast_all(plugin, &stored).await?;
    Ok(upcast
        .into_iter()
        .map(|(index, event)| {
            let stored = &stored[index];
            StoredEvent {
                position: stored.position,
                version: stored.version,
                name: event.name,
                schema_version: SchemaVersion::new(event.version),
                timestamp_ms: stored.timestamp_ms,
                command_id: stored.command_id.clone(),
                data: event.data.into(),
            }
        })
        .collect())
}

/// Upcasts `stored` (events of `plugin`'s type) in one plugin job. A refusal names
/// the stream of the event the plugin could not upcast.
async fn upcast_all(
    plugin: &Arc<PluginVersion>,
    stored: &[RecordedEvent],
) -> Result<Vec<Upcast>, RuntimeError> {
    let wire: Vec<WireEvents> = stored
        .iter()
        .map(|event| WireEvents::new([WireEvent::from_recorded(plugin, event.clone())]))
        .collect();
    let upcast = plugin
        .run(move |instance| {
            let mut out = Vec::with_capacity(wire.len());
            for (index, event) in wire.into_iter().enumerate() {
                match event.into_current(instance) {
                    Ok(current) => out.extend(current.into_iter().map(|event| (index, event))),
                    Err(FoldError::Call(error)) => return Err(error),
                    Err(other) => return Ok(Err((index, other.message()))),
                }
            }
            Ok(Ok(out))
        })
        .await
        .map_err(|error| plugin_failure(plugin, error))?;
    upcast.map_err(|(index, message)| {
        Box::new(CommandError::Rehydrate {
            stream: stored[index].stream.to_string(),
            version: plugin.version().clone(),
            message,
        })
        .into()
    })
}
