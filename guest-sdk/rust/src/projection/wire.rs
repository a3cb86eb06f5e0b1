//! The projection's exported functions on plain Rust types: what the component
//! runs minus the WIT type conversions, and what
//! [`testing::projection`](crate::testing::projection) drives natively.

use crate::codec::decode_named;
use crate::projection::check::assert_projection;
use crate::projection::{DocumentStore, Documents, Envelope, Projection};

/// An event as the host delivers it to a projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEnvelope {
    /// Position in the global log.
    pub position: u64,
    /// Aggregate type of the stream.
    pub aggregate_type: String,
    /// Aggregate id of the stream.
    pub aggregate_id: String,
    /// The event's version in its stream, from 1.
    pub stream_version: u64,
    /// Event name.
    pub name: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// When the event was stored, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// UTF-8 JSON text of the event's fields.
    pub data: Vec<u8>,
}

/// What `describe` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionInfo {
    /// [`Projection::NAME`].
    pub name: String,
    /// [`Projection::VERSION`].
    pub version: String,
    /// [`Projection::DESCRIPTION`].
    pub description: String,
    /// [`Projection::AGGREGATE_TYPES`].
    pub aggregate_types: Vec<String>,
    /// [`Projection::EVENTS`].
    pub events: Vec<String>,
    /// [`Projection::TABLES`].
    pub tables: Vec<String>,
}

/// `describe`: the projection's identity and what it reads and writes.
///
/// # Panics
/// If the projection's constants are malformed (see `check`): the host calls
/// `describe` when it installs a projection, so such a projection is never installed.
pub fn describe<P: Projection>() -> ProjectionInfo {
    assert_projection::<P>();
    let owned = |names: &[&str]| names.iter().map(|&name| name.to_owned()).collect();
    ProjectionInfo {
        name: P::NAME.to_owned(),
        version: P::VERSION.to_owned(),
        description: P::DESCRIPTION.to_owned(),
        aggregate_types: owned(P::AGGREGATE_TYPES),
        events: owned(P::EVENTS),
        tables: owned(P::TABLES),
    }
}

/// `apply`: applies a batch event by event to the documents in `store`. The first
/// event that does not decode or that the projection refuses ends the batch with
/// `Err("<position>: <message>")` and writes nothing to `store`. A batch that applies
/// writes each document it changed to `store` once, at its end.
pub fn apply<P: Projection>(
    events: Vec<RawEnvelope>,
    store: &mut dyn DocumentStore,
) -> Result<(), String> {
    let mut docs = Documents::new(store, P::TABLES);
    for event in events.into_iter().filter(is_read_by::<P>) {
        let position = event.position;
        let envelope = decode::<P>(event).map_err(|error| format!("{position}: {error}"))?;
        P::apply(envelope, &mut docs).map_err(|error| format!("{position}: {error}"))?;
    }
    docs.finish();
    Ok(())
}

/// Whether `P` declares `event`'s aggregate type and name. The host delivers only
/// those; the check keeps anything else from reaching `apply` all the same, and
/// lets tests give a projection a log with other events in it.
fn is_read_by<P: Projection>(event: &RawEnvelope) -> bool {
    P::AGGREGATE_TYPES.contains(&event.aggregate_type.as_str())
        && (P::EVENTS.is_empty() || P::EVENTS.contains(&event.name.as_str()))
}

/// Decodes an envelope's data into `P::Event`, as an aggregate decodes its events.
fn decode<P: Projection>(event: RawEnvelope) -> Result<Envelope<P::Event>, String> {
    let decoded = decode_named(&event.name, &event.data).map_err(|error| {
        format!(
            "event {} v{} of {} {:?} (stream version {}) cannot be decoded: {error}",
            event.name,
            event.schema_version,
            event.aggregate_type,
            event.aggregate_id,
            event.stream_version
        )
    })?;
    Ok(Envelope {
        position: event.position,
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        stream_version: event.stream_version,
        name: event.name,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        event: decoded,
    })
}
