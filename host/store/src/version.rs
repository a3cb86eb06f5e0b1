//! The store's numbers, each a type of its own so that one is never taken for another:
//! [`StreamVersion`] (how far a stream is), [`GlobalPosition`] (where an event is in the
//! whole log) and [`SchemaVersion`] (the shape of an event's data). The conventions are
//! written down here, once; the crate documentation and `FORMAT.md` point here.

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// A stream's version: the number of events in it, 0 for a stream with none.
///
/// An event's version is its stream's version once the event is appended: the first
/// event of a stream has version 1, and versions are dense (1, 2, 3, ...). So "the
/// stream is at version `n`", "the stream has `n` events" and "its last event has
/// version `n`" say the same. This is the version the runtime, the HTTP API and plugins
/// see (`expected_version`, `Context::stream_version`). The envelopes on disk store the
/// event's version minus one (`FORMAT.md`); only the codec converts.
///
/// Serializes as a plain integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamVersion(u64);

impl StreamVersion {
    /// The version of a stream with no events.
    pub const ZERO: StreamVersion = StreamVersion(0);
    /// The version of a stream's first event.
    pub const FIRST: StreamVersion = StreamVersion(1);

    /// The version of a stream with `events` events.
    pub const fn new(events: u64) -> StreamVersion {
        StreamVersion(events)
    }

    /// The number: the events in the stream at this version.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version of the event appended next to a stream at this version.
    pub const fn next(self) -> StreamVersion {
        StreamVersion(self.0 + 1)
    }

    /// The events appended after `earlier` up to this version. `earlier` must not be
    /// later than this version.
    pub fn events_since(self, earlier: StreamVersion) -> u64 {
        assert!(
            earlier <= self,
            "version {earlier} is not at or before version {self}"
        );
        self.0 - earlier.0
    }
}

/// The version `events` events later.
impl Add<u64> for StreamVersion {
    type Output = StreamVersion;

    fn add(self, events: u64) -> StreamVersion {
        StreamVersion(self.0 + events)
    }
}

impl AddAssign<u64> for StreamVersion {
    fn add_assign(&mut self, events: u64) {
        self.0 += events;
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event's position in the global log: dense from 0 across the whole store, in
/// append order (the first event ever appended is at 0, the next at 1, ...).
///
/// The log's end ([`EventStore::end_position`](crate::EventStore::end_position)) is the
/// position the next event will get, which is also the number of events stored. Not to
/// be confused with [`tally_wal::Position`], the byte offset of a record in the
/// write-ahead log's segments: the index maps one to the other.
///
/// Serializes as a plain integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GlobalPosition(u64);

impl GlobalPosition {
    /// The position of the first event of the log.
    pub const START: GlobalPosition = GlobalPosition(0);

    /// Position `position` (counted from 0).
    pub const fn new(position: u64) -> GlobalPosition {
        GlobalPosition(position)
    }

    /// The number: the events before this position.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The position right after this one.
    pub const fn next(self) -> GlobalPosition {
        GlobalPosition(self.0 + 1)
    }

    /// The events from `earlier` up to (not including) this position. `earlier` must
    /// not be later than this position.
    pub fn events_since(self, earlier: GlobalPosition) -> u64 {
        assert!(
            earlier <= self,
            "position {earlier} is not at or before position {self}"
        );
        self.0 - earlier.0
    }
}

/// The position `events` events later.
impl Add<u64> for GlobalPosition {
    type Output = GlobalPosition;

    fn add(self, events: u64) -> GlobalPosition {
        GlobalPosition(self.0 + events)
    }
}

impl AddAssign<u64> for GlobalPosition {
    fn add_assign(&mut self, events: u64) {
        self.0 += events;
    }
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The version of an event's data schema, as the plugin that decided the event
/// describes it; a plugin upcasts events of older schema versions. It crosses the plugin
/// contract (`wit/`) as a plain `u32`.
///
/// Serializes as a plain integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SchemaVersion(u32);

impl SchemaVersion {
    /// Schema version 1: what [`NewEvent::new`](crate::NewEvent::new) gives an event.
    pub const FIRST: SchemaVersion = SchemaVersion(1);

    /// Schema version `version`.
    pub const fn new(version: u32) -> SchemaVersion {
        SchemaVersion(version)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_version_counts_events() {
        let version = StreamVersion::ZERO.next();
        assert_eq!(version, StreamVersion::FIRST);
        assert_eq!(version + 2, StreamVersion::new(3));
        assert_eq!(StreamVersion::new(7).events_since(StreamVersion::new(3)), 4);
        assert_eq!(version.to_string(), "1");
    }

    #[test]
    fn the_numbers_serialize_as_plain_integers() {
        let numbers = (
            StreamVersion::new(3),
            GlobalPosition::new(9),
            SchemaVersion::new(2),
        );
        let json = serde_json::to_string(&numbers).unwrap();
        assert_eq!(json, "[3,9,2]");
        let back: (StreamVersion, GlobalPosition, SchemaVersion) =
            serde_json::from_str(&json).unwrap();
        assert_eq!(back, numbers);
    }

    #[test]
    #[should_panic(expected = "not at or before")]
    fn events_since_a_later_version_is_a_bug() {
        StreamVersion::new(2).events_since(StreamVersion::new(3));
    }
}
