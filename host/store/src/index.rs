//! The in-memory index of durable events: where each event is in the WAL, each stream's
//! events by version, the streams of each aggregate type, and retained command ids.
//!
//! It is rebuilt from the WAL on open. Memory: 8 bytes per event for its WAL position, 8
//! bytes per event in its stream's version list, plus per stream its id (twice the string
//! lengths plus about 100 bytes) and per retained command id about 160 bytes (its entry,
//! with the command's fingerprint) plus its length (in one buffer for all ids; see
//! [`CommandIndex`]).

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::Arc;

use tally_wal::Position;

use crate::event::{AppendResult, CommandFingerprint, StreamId};
use crate::version::{GlobalPosition, StreamVersion};

/// Packs a WAL position into 8 bytes: 24 bits of segment id, 40 bits of offset.
pub fn pack(position: Position) -> u64 {
    debug_assert!(position.segment_id < 1 << 24 && position.offset < 1 << 40);
    (position.segment_id << 40) | position.offset
}

/// Unpacks a WAL position packed by [`pack`].
pub fn unpack(packed: u64) -> Position {
    Position {
        segment_id: packed >> 40,
        offset: packed & ((1 << 40) - 1),
    }
}

/// One stream's events in version order: `positions[i]` is the global position of the
/// event that brought the stream from version `i` to `i + 1`.
#[derive(Debug, Default)]
pub struct StreamEntry {
    positions: Vec<GlobalPosition>,
}

impl StreamEntry {
    /// The stream's version: its number of events.
    pub fn version(&self) -> StreamVersion {
        StreamVersion::new(self.positions.len() as u64)
    }

    /// The global positions of the events from version `first` on (all of them when
    /// `first` is 0 or 1).
    pub fn positions_from(&self, first: StreamVersion) -> &[GlobalPosition] {
        // The events before the event of version `first` number `first - 1`.
        let before = first.get().saturating_sub(1).min(self.version().get());
        &self.positions[before as usize..]
    }

    /// The global positions of the events up to and including version `last`.
    pub fn positions_through(&self, last: StreamVersion) -> &[GlobalPosition] {
        let through = last.min(self.version()).get();
        &self.positions[..through as usize]
    }

    /// The stream's version just before global `position`: its events before it.
    pub fn version_before(&self, position: GlobalPosition) -> StreamVersion {
        StreamVersion::new(self.positions.partition_point(|at| *at < position) as u64)
    }
}

/// A retained command id and what its append did.
#[derive(Debug, Clone)]
pub struct CommandEntry {
    pub stream: Arc<StreamId>,
    pub result: AppendResult,
    /// What the command asked for; `None` for an append given none, or written before
    /// the log kept fingerprints.
    pub fingerprint: Option<CommandFingerprint>,
}

impl CommandEntry {
    /// Whether an append to `stream` with `fingerprint` under this entry's command id
    /// is another command than this entry's: it is for another stream, or both
    /// fingerprints are known and differ. Without a fingerprint on either side only
    /// the stream can tell, and the append is taken for a retry.
    pub fn is_other_command(
        &self,
        stream: &StreamId,
        fingerprint: Option<CommandFingerprint>,
    ) -> bool {
        let other_fingerprint = self
            .fingerprint
            .zip(fingerprint)
            .is_some_and(|(earlier, this)| earlier != this);
        *self.stream != *stream || other_fingerprint
    }
}

/// The command id of an append and its command's fingerprint, as the index keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendCommand<'a> {
    pub id: &'a str,
    pub fingerprint: Option<CommandFingerprint>,
}

/// How long command ids are remembered for idempotency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRetention {
    /// At most this many command ids (the oldest are forgotten first).
    pub max_count: usize,
    /// Command ids older than this many milliseconds are forgotten.
    pub max_age_ms: u64,
}

/// Retained command ids in append order.
///
/// The ids' bytes are kept together in one buffer, not in an allocation each: these
/// entries live for hours to days, and one small long-lived allocation per command,
/// made between the short-lived buffers of requests (16 to 32 KiB for a page of
/// events), pins the allocator's free memory around it, so that glibc's arenas keep
/// growing, by some KiB per retained id, while little of them is in use
/// (`docs/RELIABILITY.md`, "Memory per command").
#[derive(Debug)]
struct CommandIndex<S = foldhash::fast::RandomState> {
    retention: CommandRetention,
    /// Retained appends in append order: `entries[i]` has sequence number `first + i`.
    entries: VecDeque<Retained>,
    /// Sequence number of `entries[0]`.
    first: u64,
    /// The bytes of the retained ids, concatenated in append order.
    text: VecDeque<u8>,
    /// Offset (counted since the index was created) of `text[0]`.
    text_first: u64,
    /// Hash of an id -> sequence number of the latest entry with that hash; older ones
    /// with the same hash are chained through [`Retained::previous`].
    by_hash: HashMap<u64, u64>,
    hasher: S,
}

/// One retained command id.
#[derive(Debug)]
struct Retained {
    /// Offset of the id in [`CommandIndex::text`] (counted since the index was created).
    start: u64,
    len: u32,
    hash: u64,
    /// Sequence number of the previous entry with the same hash (it may be forgotten).
    previous: Option<u64>,
    entry: CommandEntry,
}

impl<S: std::hash::BuildHasher> CommandIndex<S> {
    fn new(retention: CommandRetention, hasher: S) -> CommandIndex<S> {
        CommandIndex {
            retention,
            entries: VecDeque::new(),
            first: 0,
            text: VecDeque::new(),
            text_first: 0,
            by_hash: HashMap::default(),
            hasher,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sequence number of the retained entry of `id`.
    fn find(&self, id: &str, hash: u64) -> Option<u64> {
        let mut next = self.by_hash.get(&hash).copied();
        while let Some(sequence) = next.filter(|sequence| *sequence >= self.first) {
            let retained = &self.entries[(sequence - self.first) as usize];
            let start = (retained.start - self.text_first) as usize;
            if retained.hash == hash
                && retained.len as usize == id.len()
                && self
                    .text
                    .range(start..start + id.len())
                    .eq(id.as_bytes().iter())
            {
                return Some(sequence);
            }
            next = retained.previous;
        }
        None
    }

    fn get(&self, id: &str) -> Option<&CommandEntry> {
        let sequence = self.find(id, self.hasher.hash_one(id))?;
        Some(&self.entries[(sequence - self.first) as usize].entry)
    }

    fn insert(&mut self, id: &str, entry: CommandEntry) {
        let timestamp = entry.result.timestamp_ms;
        let hash = self.hasher.hash_one(id);
        match self.find(id, hash) {
            Some(sequence) => self.entries[(sequence - self.first) as usize].entry = entry,
            None => {
                let sequence = self.first + self.entries.len() as u64;
                let previous = self.by_hash.insert(hash, sequence);
                self.entries.push_back(Retained {
                    start: self.text_first + self.text.len() as u64,
                    len: u32::try_from(id.len()).expect("command ids are short"),
                    hash,
                    previous,
                    entry,
                });
                self.text.extend(id.as_bytes());
            }
        }
        self.prune(timestamp);
    }

    /// Forgets ids beyond the count bound or older than the age bound at `now_ms`.
    fn prune(&mut self, now_ms: u64) {
        let oldest_kept = now_ms.saturating_sub(self.retention.max_age_ms);
        while let Some(front) = self.entries.front() {
            let too_many = self.entries.len() > self.retention.max_count;
            let too_old = front.entry.result.timestamp_ms < oldest_kept;
            if !too_many && !too_old {
                break;
            }
            let front = self.entries.pop_front().expect("front exists");
            // Forgotten oldest first: older entries with this hash are gone already, so
            // the hash's latest entry is this one or a newer one.
            if self.by_hash.get(&front.hash) == Some(&self.first) {
                self.by_hash.remove(&front.hash);
            }
            self.first += 1;
            self.text.drain(..front.len as usize);
            self.text_first += u64::from(front.len);
        }
    }
}

/// The index of durable events.
#[derive(Debug)]
pub struct Index {
    /// WAL position (packed) of each event, by global position.
    events: Vec<u64>,
    streams: HashMap<Arc<StreamId>, StreamEntry>,
    /// Streams of each aggregate type, in creation order.
    types: HashMap<Arc<str>, Vec<Arc<StreamId>>>,
    commands: CommandIndex,
    last_timestamp_ms: u64,
}

/// One event of an append, as the index needs it.
#[derive(Debug, Clone, Copy)]
pub struct IndexedEvent {
    pub position: GlobalPosition,
    pub version: StreamVersion,
    pub wal_position: Position,
}

impl Index {
    /// An empty index.
    pub fn new(retention: CommandRetention) -> Index {
        Index {
            events: Vec::new(),
            streams: HashMap::default(),
            types: HashMap::default(),
            commands: CommandIndex::new(retention, Default::default()),
            last_timestamp_ms: 0,
        }
    }

    /// The position the next event will get (the number of events).
    pub fn end(&self) -> GlobalPosition {
        GlobalPosition::new(self.events.len() as u64)
    }

    /// Timestamp of the last event (0 when empty).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// Adds one durable append. Positions and versions must continue densely: the
    /// append's events take the next global positions and the stream's next versions.
    pub fn add_append(
        &mut self,
        key: &Arc<StreamId>,
        events: &[IndexedEvent],
        command: Option<AppendCommand<'_>>,
        timestamp_ms: u64,
    ) -> Result<(), &'static str> {
        let first = events.first().ok_or("an append has at least one event")?;
        let version = self
            .stream(key)
            .map_or(StreamVersion::ZERO, StreamEntry::version);
        let dense = events.iter().enumerate().all(|(i, event)| {
            event.position == self.end() + i as u64 && event.version == version.next() + i as u64
        });
        if !dense {
            return Err("global positions or stream versions are not dense");
        }
        let entry = match self.streams.get_mut(&**key) {
            Some(entry) => entry,
            None => self.new_stream(key),
        };
        entry
            .positions
            .extend(events.iter().map(|event| event.position));
        self.events
            .extend(events.iter().map(|event| pack(event.wal_position)));
        self.last_timestamp_ms = self.last_timestamp_ms.max(timestamp_ms);
        if let Some(command) = command {
            let result = AppendResult {
                first_position: first.position,
                first_version: first.version,
                count: events.len() as u64,
                timestamp_ms,
                duplicate: false,
            };
            self.retain_command(command, key, result);
        }
        Ok(())
    }

    /// A new stream's entry, empty, listed under its aggregate type.
    fn new_stream(&mut self, key: &Arc<StreamId>) -> &mut StreamEntry {
        self.types
            .entry(key.aggregate_type.clone())
            .or_default()
            .push(key.clone());
        self.streams.entry(key.clone()).or_default()
    }

    /// Remembers what the append of `command` did, for idempotency.
    fn retain_command(
        &mut self,
        command: AppendCommand<'_>,
        stream: &Arc<StreamId>,
        result: AppendResult,
    ) {
        let entry = CommandEntry {
            stream: stream.clone(),
            result,
            fingerprint: command.fingerprint,
        };
        self.commands.insert(command.id, entry);
    }

    /// Forgets command ids older than the age bound at `now_ms`.
    pub fn prune_commands(&mut self, now_ms: u64) {
        self.commands.prune(now_ms);
    }

    /// The retained append of `command_id`.
    pub fn command(&self, command_id: &str) -> Option<&CommandEntry> {
        self.commands.get(command_id)
    }

    /// Number of retained command ids.
    pub fn retained_commands(&self) -> usize {
        self.commands.len()
    }

    /// The stream's entry.
    pub fn stream(&self, stream: &StreamId) -> Option<&StreamEntry> {
        self.streams.get(stream)
    }

    /// The stream's shared key and entry.
    pub fn stream_entry(&self, stream: &StreamId) -> Option<(&Arc<StreamId>, &StreamEntry)> {
        self.streams.get_key_value(stream)
    }

    /// The WAL position of the event at global `position`.
    pub fn wal_position(&self, position: GlobalPosition) -> Option<Position> {
        let index = usize::try_from(position.get()).ok()?;
        self.events.get(index).map(|packed| unpack(*packed))
    }

    /// Streams of an aggregate type in creation order, from index `from`, at most `max`.
    pub fn streams_of_type(
        &self,
        aggregate_type: &str,
        from: usize,
        max: usize,
    ) -> Vec<(StreamId, StreamVersion)> {
        let Some(streams) = self.types.get(aggregate_type) else {
            return Vec::new();
        };
        streams
            .iter()
            .skip(from)
            .take(max)
            .map(|stream| ((**stream).clone(), self.streams[stream].version()))
            .collect()
    }

    /// Number of streams of an aggregate type.
    pub fn stream_count(&self, aggregate_type: &str) -> usize {
        self.types.get(aggregate_type).map_or(0, Vec::len)
    }

    /// Every aggregate type with at least one stream.
    pub fn aggregate_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.types.keys().map(|key| key.to_string()).collect();
        types.sort();
        types
    }

    /// Number of streams.
    pub fn streams_len(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_positions_round_trip() {
        for position in [
            Position::START,
            Position {
                segment_id: 3,
                offset: 128 * 1024 * 1024,
            },
            Position {
                segment_id: (1 << 24) - 1,
                offset: (1 << 40) - 1,
            },
        ] {
            assert_eq!(unpack(pack(position)), position);
        }
    }

    #[test]
    fn command_ids_are_forgotten_by_count_and_by_age() {
        let retention = CommandRetention {
            max_count: 3,
            max_age_ms: 1_000,
        };
        let mut index = Index::new(retention);
        let stream = Arc::new(StreamId::new("t", "a"));
        for n in 0..5u64 {
            let event = IndexedEvent {
                position: GlobalPosition::new(n),
                version: StreamVersion::new(n + 1),
                wal_position: Position {
                    segment_id: 0,
                    offset: 32 + n * 100,
                },
            };
            let id = format!("c{n}");
            let command = AppendCommand {
                id: &id,
                fingerprint: None,
            };
            index
                .add_append(&stream, &[event], Some(command), 10_000 + n * 100)
                .unwrap();
        }
        assert_eq!(index.retained_commands(), 3);
        assert!(index.command("c1").is_none());
        assert_eq!(
            index.command("c4").unwrap().result.first_position,
            GlobalPosition::new(4)
        );
        // Forgets ids appended before now - max_age: c2 (10_200) but not c3 (10_300).
        index.prune_commands(11_250);
        assert!(index.command("c2").is_none());
        assert!(index.command("c3").is_some());
    }

    /// Hashes every id alike, so that every lookup walks a chain of colliding ids.
    #[derive(Default)]
    struct Collide;

    impl std::hash::BuildHasher for Collide {
        type Hasher = Collide;
        fn build_hasher(&self) -> Collide {
            Collide
        }
    }

    impl std::hash::Hasher for Collide {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn retained_ids_are_told_apart_when_their_hashes_collide() {
        let mut commands = CommandIndex::new(
            CommandRetention {
                max_count: 4,
                max_age_ms: u64::MAX,
            },
            Collide,
        );
        let stream = Arc::new(StreamId::new("t", "a"));
        let entry = |first_position| CommandEntry {
            stream: stream.clone(),
            result: AppendResult {
                first_position: GlobalPosition::new(first_position),
                first_version: StreamVersion::new(first_position + 1),
                count: 1,
                timestamp_ms: 1,
                duplicate: false,
            },
            fingerprint: None,
        };
        // Ids that are prefixes of each other.
        for (n, id) in ["c", "c1", "c10", "x"].iter().enumerate() {
            commands.insert(id, entry(n as u64));
        }
        // An id retained again replaces its entry in place.
        commands.insert("c1", entry(10));
        assert_eq!(commands.len(), 4);
        assert_eq!(commands.get("c1").unwrap().result.first_position.get(), 10);
        // A fifth id: the oldest ("c") is forgotten.
        commands.insert("c1x", entry(4));
        assert_eq!(commands.len(), 4);
        assert!(commands.get("c").is_none());
        assert_eq!(commands.get("c1").unwrap().result.first_position.get(), 10);
        assert_eq!(commands.get("c10").unwrap().result.first_position.get(), 2);
        assert_eq!(commands.get("x").unwrap().result.first_position.get(), 3);
        assert_eq!(commands.get("c1x").unwrap().result.first_position.get(), 4);
        assert!(commands.get("c100").is_none());
        // Many more: the bytes of forgotten ids are dropped, lookups stay exact.
        for n in 0..1_000u64 {
            commands.insert(&format!("id-{n}"), entry(100 + n));
        }
        assert_eq!(commands.len(), 4);
        assert!(commands.text.len() <= 4 * "id-999".len());
        assert!(commands.get("id-995").is_none());
        for n in 996..1_000u64 {
            assert_eq!(
                commands
                    .get(&format!("id-{n}"))
                    .unwrap()
                    .result
                    .first_position
                    .get(),
                100 + n
            );
        }
    }

    #[test]
    fn only_another_stream_or_another_known_fingerprint_is_another_command() {
        let stream = StreamId::new("t", "a");
        let entry = |fingerprint| CommandEntry {
            stream: Arc::new(stream.clone()),
            result: AppendResult {
                first_position: GlobalPosition::START,
                first_version: StreamVersion::FIRST,
                count: 1,
                timestamp_ms: 1,
                duplicate: false,
            },
            fingerprint,
        };
        let (one, two) = (
            CommandFingerprint::new([1; 32]),
            CommandFingerprint::new([2; 32]),
        );
        let other_stream = StreamId::new("t", "b");
        assert!(!entry(Some(one)).is_other_command(&stream, Some(one)));
        assert!(entry(Some(one)).is_other_command(&stream, Some(two)));
        assert!(entry(Some(one)).is_other_command(&other_stream, Some(one)));
        // An entry written without a fingerprint, or an append given none: a retry.
        assert!(!entry(None).is_other_command(&stream, Some(two)));
        assert!(!entry(Some(one)).is_other_command(&stream, None));
        assert!(entry(None).is_other_command(&other_stream, None));
    }

    #[test]
    fn gaps_in_positions_or_versions_are_refused() {
        let mut index = Index::new(CommandRetention {
            max_count: 10,
            max_age_ms: 10,
        });
        let stream = Arc::new(StreamId::new("t", "a"));
        let at = |position, version| IndexedEvent {
            position: GlobalPosition::new(position),
            version: StreamVersion::new(version),
            wal_position: Position::START,
        };
        assert!(index.add_append(&stream, &[at(0, 0)], None, 1).is_err());
        index.add_append(&stream, &[at(0, 1)], None, 1).unwrap();
        assert!(index.add_append(&stream, &[at(2, 2)], None, 1).is_err());
        assert!(index.add_append(&stream, &[at(1, 3)], None, 1).is_err());
        index
            .add_append(&stream, &[at(1, 2), at(2, 3)], None, 1)
            .unwrap();
        assert_eq!(
            index.stream(&stream).unwrap().version(),
            StreamVersion::new(3)
        );
    }
}
