//! The wire layer: the plugin's exported functions on plain Rust types, exactly what
//! the component runs minus the WIT type conversions. The component adapter and
//! [`testing`](crate::testing) drive these. They are not part of a plugin author's
//! API; the SDK's own tests and the benchmark's native reference reach them through
//! the hidden `tally_sdk::__private::wire`.

use serde_json::Value;

use crate::aggregate::{Aggregate, Context, Rejection};
use crate::codec::{decode_command, decode_named, parse_data, to_named};
use crate::introspect::variant_names;
use crate::schema::assert_schema;
use crate::upcast::{JsonEvent, upcast_event};
use crate::{INVALID_COMMAND, INVALID_STATE};

/// A command as the host sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// Command name, the variant name of [`Aggregate::Command`].
    pub name: String,
    /// UTF-8 JSON text of the variant's fields.
    pub data: Vec<u8>,
}

/// An event as the host stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Event name, the variant name of [`Aggregate::Event`].
    pub name: String,
    /// Schema version `data` is written in.
    pub version: u32,
    /// UTF-8 JSON text of the variant's fields.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RawCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, String::from_utf8_lossy(&self.data))
    }
}

impl std::fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} v{} {}",
            self.name,
            self.version,
            String::from_utf8_lossy(&self.data)
        )
    }
}

/// An event name with its current schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchema {
    /// Event name.
    pub name: String,
    /// Current schema version.
    pub version: u32,
}

/// What `describe` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// [`Aggregate::AGGREGATE_TYPE`].
    pub aggregate_type: String,
    /// [`Aggregate::VERSION`].
    pub version: String,
    /// [`Aggregate::DESCRIPTION`].
    pub description: String,
    /// Variant names of [`Aggregate::Command`].
    pub commands: Vec<String>,
    /// Variant names of [`Aggregate::Event`] with their current versions.
    pub events: Vec<EventSchema>,
}

/// `describe`: the plugin's identity, commands and event schemas.
///
/// # Panics
/// If [`Aggregate::EVENT_VERSIONS`] or [`Aggregate::UPCASTERS`] do not fit the event
/// enum (a misspelt event name, say): the message names the bad entry. The host calls
/// `describe` when it installs a plugin, so such a plugin is never installed.
pub fn describe<A: Aggregate>() -> PluginInfo {
    assert_schema::<A>();
    PluginInfo {
        aggregate_type: A::AGGREGATE_TYPE.to_owned(),
        version: A::VERSION.to_owned(),
        description: A::DESCRIPTION.to_owned(),
        commands: variant_names::<A::Command>()
            .iter()
            .map(|&name| name.to_owned())
            .collect(),
        events: variant_names::<A::Event>()
            .iter()
            .map(|&name| EventSchema {
                name: name.to_owned(),
                version: event_version::<A>(name),
            })
            .collect(),
    }
}

/// `initial-state`: the encoded [`Default`] state.
pub fn initial_state<A: Aggregate>() -> Vec<u8> {
    encode_state(&A::default())
}

/// `handle`: decodes the state and command, decides, encodes the events.
///
/// An undecodable command (or one with a field it does not have, unless
/// [`Aggregate::DENY_UNKNOWN_FIELDS`] is off) is rejected with [`INVALID_COMMAND`],
/// an undecodable state with [`INVALID_STATE`].
pub fn handle<A: Aggregate>(
    ctx: &Context,
    state: &[u8],
    command: &RawCommand,
) -> Result<Vec<RawEvent>, Rejection> {
    let state: A = decode_state(state).map_err(|error| Rejection::new(INVALID_STATE, error))?;
    let command = decode_aggregate_command::<A>(command)?;
    let events = state.handle(ctx, command)?;
    Ok(events.iter().map(encode_event::<A>).collect())
}

/// `decide`: [`handle`], then [`apply`] of its events, in one pass: the state is
/// decoded and encoded once, and there is one call instead of two. The events are
/// folded as they will be stored, decoded back from their JSON, so the state is the
/// one a replay of the log rebuilds; an event that does not decode back (a
/// serialization that does not round-trip, such as a NaN) panics, and so is never
/// stored.
pub fn decide<A: Aggregate>(
    ctx: &Context,
    state: &[u8],
    command: &RawCommand,
) -> Result<(Vec<RawEvent>, Vec<u8>), Rejection> {
    let mut state: A = decode_state(state).map_err(|error| Rejection::new(INVALID_STATE, error))?;
    let command = decode_aggregate_command::<A>(command)?;
    let events: Vec<RawEvent> = state
        .handle(ctx, command)?
        .iter()
        .map(encode_event::<A>)
        .collect();
    for event in &events {
        let stored = decode_event::<A>(event).unwrap_or_else(|error| {
            panic!(
                "{}: handle returned an event that does not decode back from its JSON: {error}",
                A::AGGREGATE_TYPE
            )
        });
        state.apply(stored);
    }
    Ok((events, encode_state(&state)))
}

/// `apply`: folds events (current schema versions, stream order) into the state.
pub fn apply<A: Aggregate>(state: &[u8], events: &[RawEvent]) -> Result<Vec<u8>, String> {
    let mut state: A = decode_state(state)?;
    for (index, event) in events.iter().enumerate() {
        let event = decode_event::<A>(event)
            .map_err(|error| format!("event {index} of the batch: {error}"))?;
        state.apply(event);
    }
    Ok(encode_state(&state))
}

/// `upcast`: lifts one stored event to the current schema versions.
pub fn upcast<A: Aggregate>(event: &RawEvent) -> Result<Vec<RawEvent>, String> {
    let data = parse_data(&event.data)
        .map_err(|error| format!("{} v{}: {error}", event.name, event.version))?;
    let event = JsonEvent {
        name: event.name.clone(),
        version: event.version,
        data,
    };
    let known = variant_names::<A::Event>();
    let current = |name: &str| known.contains(&name).then(|| event_version::<A>(name));
    let upcast = upcast_event(event, A::UPCASTERS, current)?;
    Ok(upcast
        .into_iter()
        .map(|event| RawEvent {
            name: event.name,
            version: event.version,
            data: json_bytes(&event.data),
        })
        .collect())
}

/// `state-json`: the state rendered by [`Aggregate::state_json`].
pub fn state_json<A: Aggregate>(state: &[u8]) -> Result<Vec<u8>, String> {
    let state: A = decode_state(state)?;
    Ok(json_bytes(&state.state_json()))
}

/// The schema version the plugin writes for `event`.
fn event_version<A: Aggregate>(event: &str) -> u32 {
    A::EVENT_VERSIONS
        .iter()
        .find(|(name, _)| *name == event)
        .map_or(1, |&(_, version)| version)
}

/// Encodes a typed event with its name and current version.
pub(crate) fn encode_event<A: Aggregate>(event: &A::Event) -> RawEvent {
    let (name, data) = to_named(event).unwrap_or_else(|error| {
        panic!("{}: an event cannot be encoded: {error}", A::AGGREGATE_TYPE)
    });
    let version = event_version::<A>(&name);
    RawEvent {
        name,
        version,
        data,
    }
}

/// Decodes an event that must be at its current schema version.
pub(crate) fn decode_event<A: Aggregate>(event: &RawEvent) -> Result<A::Event, String> {
    let current = event_version::<A>(&event.name);
    if event.version != current {
        return Err(format!(
            "{} v{} is not at the current schema version v{current}; upcast it first",
            event.name, event.version
        ));
    }
    decode_named(&event.name, &event.data)
        .map_err(|error| format!("{} v{}: {error}", event.name, event.version))
}

/// Encodes a typed command the way a client would send it.
pub(crate) fn encode_command<A: Aggregate>(command: &A::Command) -> RawCommand {
    let (name, data) = to_named(command).unwrap_or_else(|error| {
        panic!(
            "{}: a command cannot be encoded: {error}",
            A::AGGREGATE_TYPE
        )
    });
    RawCommand { name, data }
}

/// Decodes a command, rejecting it with [`INVALID_COMMAND`] when it does not fit (an
/// unknown field too, unless the aggregate allows them): the message names the
/// command and the field.
fn decode_aggregate_command<A: Aggregate>(command: &RawCommand) -> Result<A::Command, Rejection> {
    decode_command(&command.name, &command.data, A::DENY_UNKNOWN_FIELDS)
        .map_err(|message| Rejection::new(INVALID_COMMAND, message))
}

/// Decodes state bytes written by [`encode_state`].
pub(crate) fn decode_state<A: Aggregate>(state: &[u8]) -> Result<A, String> {
    serde_json::from_slice(state).map_err(|error| format!("state cannot be decoded: {error}"))
}

/// Encodes the state as its serde JSON.
pub(crate) fn encode_state<A: Aggregate>(state: &A) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_else(|error| {
        panic!(
            "{}: the state cannot be encoded: {error}",
            A::AGGREGATE_TYPE
        )
    })
}

/// A JSON value as UTF-8 bytes.
fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a serde_json::Value always serializes")
}
