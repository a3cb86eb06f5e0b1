//! What is stored ([`Record`]) and where it is stored ([`Position`]).

use std::fmt;

use bytes::Bytes;

/// One entry of the log: an opaque value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's value (may be empty).
    pub value: Bytes,
}

impl Record {
    /// A record holding `value`.
    pub fn new(value: impl Into<Bytes>) -> Record {
        Record {
            value: value.into(),
        }
    }
}

/// Where a record lives: its segment and the byte offset of its frame in that segment.
///
/// Positions order records: a later append always has a greater position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The segment's id (segments are numbered from 0 upwards).
    pub segment_id: u64,
    /// Byte offset of the record's frame within the segment file.
    pub offset: u64,
}

impl Position {
    /// The start of the log: reading from here starts at the oldest record still kept.
    pub const START: Position = Position {
        segment_id: 0,
        offset: 0,
    };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment_id, self.offset)
    }
}
