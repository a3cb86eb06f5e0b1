//! The event model: streams, events to append, recorded events, expected versions.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::version::{GlobalPosition, SchemaVersion, StreamVersion};

/// A stream: the events of one aggregate, named by its type and id.
///
/// Cheap to clone (shared strings): every event read from a stream carries its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The aggregate type, e.g. `bank-account`.
    pub aggregate_type: Arc<str>,
    /// The aggregate's id within its type.
    pub aggregate_id: Arc<str>,
}

impl StreamId {
    /// The stream of aggregate `aggregate_id` of type `aggregate_type`.
    pub fn new(aggregate_type: impl Into<Arc<str>>, aggregate_id: impl Into<Arc<str>>) -> StreamId {
        StreamId {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// What the stream's version must be for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must be at exactly this version: have this many events.
    /// `Exact(StreamVersion::ZERO)` is how to say that the stream must have none.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` meets the expectation.
    pub fn matches(self, actual: StreamVersion) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::Exact(expected) => expected == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's name, e.g. `MoneyDeposited`.
    pub name: String,
    /// The schema version of `data`.
    pub schema_version: SchemaVersion,
    /// The event's payload: JSON (UTF-8).
    pub data: Bytes,
    /// Free-form metadata: a JSON object, or empty for none.
    pub metadata: Bytes,
}

impl NewEvent {
    /// An event with `name`, schema version 1, JSON `data` and no metadata.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> NewEvent {
        NewEvent {
            name: name.into(),
            schema_version: SchemaVersion::FIRST,
            data: data.into(),
            metadata: Bytes::new(),
        }
    }

    /// The same event with another schema version.
    pub fn with_schema_version(mut self, schema_version: SchemaVersion) -> NewEvent {
        self.schema_version = schema_version;
        self
    }

    /// The same event with metadata (a JSON object).
    pub fn with_metadata(mut self, metadata: impl Into<Bytes>) -> NewEvent {
        self.metadata = metadata.into();
        self
    }
}

/// What a command asked for, digested: kept with its command id so that a retry (the
/// same command sent again) can be told from a reuse of the id for another command.
///
/// The store treats it as 32 opaque bytes and only compares them; the caller makes it
/// (the runtime hashes the aggregate type and id, the command name and the command's
/// data with SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandFingerprint([u8; CommandFingerprint::LEN]);

impl CommandFingerprint {
    /// Its size in bytes.
    pub const LEN: usize = 32;

    /// The fingerprint made of `bytes`.
    pub const fn new(bytes: [u8; CommandFingerprint::LEN]) -> CommandFingerprint {
        CommandFingerprint(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; CommandFingerprint::LEN] {
        &self.0
    }
}

impl fmt::Debug for CommandFingerprint {
    /// The first bytes in hex: enough to tell two apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommandFingerprint(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("..)")
    }
}

/// Options of one append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// Makes the append idempotent: appending again with the same command id returns the
    /// first append's result and appends nothing.
    pub command_id: Option<String>,
    /// What the command of `command_id` asked for. When both the earlier append with the
    /// id and this one have a fingerprint and they differ, the id is being reused for
    /// another command: the append fails with
    /// [`StoreError::CommandIdReused`](crate::StoreError::CommandIdReused). Without a
    /// fingerprint on either side (say, an append written before fingerprints were
    /// kept), a repeated id is taken for a retry. Ignored without a command id.
    pub command_fingerprint: Option<CommandFingerprint>,
    /// Correlation id recorded on every event of the append.
    pub correlation_id: Option<String>,
    /// Causation id recorded on every event of the append.
    pub causation_id: Option<String>,
}

impl AppendOptions {
    /// Options with a command id.
    pub fn command(command_id: impl Into<String>) -> AppendOptions {
        AppendOptions {
            command_id: Some(command_id.into()),
            ..AppendOptions::default()
        }
    }

    /// The same options with the fingerprint of the command.
    pub fn with_fingerprint(mut self, fingerprint: CommandFingerprint) -> AppendOptions {
        self.command_fingerprint = Some(fingerprint);
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position: dense from 0 across the whole store, in append order.
    pub position: GlobalPosition,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// The stream's version once this event was appended (the first event's is 1).
    pub version: StreamVersion,
    /// The event's name.
    pub name: String,
    /// The schema version of `data`.
    pub schema_version: SchemaVersion,
    /// When it was appended: milliseconds since the Unix epoch (never decreasing along the log).
    pub timestamp_ms: u64,
    /// The command id of the append, if one was given.
    pub command_id: Option<String>,
    /// The correlation id, if one was given.
    pub correlation_id: Option<String>,
    /// The causation id, if one was given.
    pub causation_id: Option<String>,
    /// Free-form metadata (a JSON object), or empty.
    pub metadata: Bytes,
    /// The payload (JSON).
    pub data: Bytes,
}

/// A stored event borrowed from where it lies, as
/// [`EventStore::read_stream_with`](crate::EventStore::read_stream_with) hands it over:
/// the fields a fold needs, without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Global position.
    pub position: GlobalPosition,
    /// The stream's version once this event was appended (the first event's is 1).
    pub version: StreamVersion,
    /// The event's name.
    pub name: &'a str,
    /// The schema version of `data`.
    pub schema_version: SchemaVersion,
    /// When it was appended: milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The payload (JSON).
    pub data: &'a [u8],
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Position of the first appended event.
    pub first_position: GlobalPosition,
    /// Version of the first appended event: the stream's version before the append,
    /// plus one.
    pub first_version: StreamVersion,
    /// Number of events appended.
    pub count: u64,
    /// When they were appended (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
    /// Whether this is the result of an earlier append with the same command id (nothing
    /// was appended this time).
    pub duplicate: bool,
}

impl AppendResult {
    /// The stream's version after the append (the version of its last event).
    pub fn last_version(&self) -> StreamVersion {
        self.first_version + (self.count - 1)
    }

    /// The position of the last appended event.
    pub fn last_position(&self) -> GlobalPosition {
        self.first_position + (self.count - 1)
    }

    /// The position and version of the `index`-th appended event (from 0).
    pub fn event_at(&self, index: u64) -> (GlobalPosition, StreamVersion) {
        assert!(
            index < self.count,
            "event {index} of an append of {}",
            self.count
        );
        (self.first_position + index, self.first_version + index)
    }
}
