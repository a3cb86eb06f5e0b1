//! The binary envelope of an event in a WAL record (layout in `host/store/FORMAT.md`).
//!
//! Strings and byte fields are LEB128-length-prefixed; only the payload is JSON.
//!
//! This module is the one place where a [`StreamVersion`] meets its encoding on disk
//! ([`version_to_disk`], [`version_from_disk`]): envelopes and snapshot records store an
//! event's version minus one, as the format always has, so that existing logs read the same.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tally_wal::format::{get_varint, put_varint, varint_len};

use crate::event::{AppendOptions, CommandFingerprint, NewEvent, RecordedEvent, StreamId};
use crate::version::{GlobalPosition, SchemaVersion, StreamVersion};

/// The envelope format version this crate writes: 2 added the command fingerprint.
pub const ENVELOPE_VERSION: u8 = 2;

/// The first envelope format version, still read: it has no command fingerprint field.
const ENVELOPE_VERSION_1: u8 = 1;

/// How a stream version is stored: the version minus one (the first event of a stream
/// is stored as 0). Only versions of events (at least 1) are stored.
pub fn version_to_disk(version: StreamVersion) -> u64 {
    version
        .get()
        .checked_sub(1)
        .expect("only versions of events (from 1) are stored")
}

/// The stream version stored as `stored` (see [`version_to_disk`]).
pub fn version_from_disk(stored: u64) -> Result<StreamVersion, DecodeError> {
    stored
        .checked_add(1)
        .map(StreamVersion::new)
        .ok_or(DecodeError("stream version out of range"))
}

/// Every field of one event's envelope, borrowed: what is encoded, and what parsing a
/// record gives back without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeRef<'a> {
    pub position: GlobalPosition,
    pub version: StreamVersion,
    pub timestamp_ms: u64,
    pub schema_version: SchemaVersion,
    /// Index of the event within its append.
    pub index_in_append: u32,
    /// Number of events in its append.
    pub append_len: u32,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub name: &'a str,
    pub command_id: &'a str,
    /// What the command asked for: only on the first event of an append with a command
    /// id, and never in a version 1 envelope.
    pub command_fingerprint: Option<CommandFingerprint>,
    pub correlation_id: &'a str,
    pub causation_id: &'a str,
    pub metadata: &'a [u8],
    pub data: &'a [u8],
}

/// A decoded envelope: the event plus where it sits in its append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub event: RecordedEvent,
    pub index_in_append: u32,
    pub append_len: u32,
}

fn str_len(s: &[u8]) -> usize {
    varint_len(s.len() as u64) + s.len()
}

impl<'a> EnvelopeRef<'a> {
    /// The envelope of event `index` of an append of `events` to `stream`, where the
    /// append starts at `first_position` and `first_version`.
    #[allow(clippy::too_many_arguments)]
    pub fn for_append(
        stream: &'a StreamId,
        events: &'a [NewEvent],
        index: usize,
        options: &'a AppendOptions,
        first_position: GlobalPosition,
        first_version: StreamVersion,
        timestamp_ms: u64,
    ) -> EnvelopeRef<'a> {
        let event = &events[index];
        EnvelopeRef {
            position: first_position + index as u64,
            version: first_version + index as u64,
            timestamp_ms,
            schema_version: event.schema_version,
            index_in_append: index as u32,
            append_len: events.len() as u32,
            aggregate_type: &stream.aggregate_type,
            aggregate_id: &stream.aggregate_id,
            name: &event.name,
            command_id: options.command_id.as_deref().unwrap_or(""),
            command_fingerprint: fingerprint_of_event(options, index),
            correlation_id: options.correlation_id.as_deref().unwrap_or(""),
            causation_id: options.causation_id.as_deref().unwrap_or(""),
            metadata: &event.metadata,
            data: &event.data,
        }
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        1 + 8 * 3
            + 4 * 3
            + str_len(self.aggregate_type.as_bytes())
            + str_len(self.aggregate_id.as_bytes())
            + str_len(self.name.as_bytes())
            + str_len(self.command_id.as_bytes())
            + str_len(self.correlation_id.as_bytes())
            + str_len(self.causation_id.as_bytes())
            + str_len(self.fingerprint_bytes())
            + str_len(self.metadata)
            + self.data.len()
    }

    /// The command fingerprint field's bytes: empty for none.
    fn fingerprint_bytes(&self) -> &[u8] {
        self.command_fingerprint
            .as_ref()
            .map_or(&[], |fingerprint| fingerprint.as_bytes())
    }

    /// Encodes the envelope.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(ENVELOPE_VERSION);
        out.put_u64_le(self.position.get());
        out.put_u64_le(version_to_disk(self.version));
        out.put_u64_le(self.timestamp_ms);
        out.put_u32_le(self.schema_version.get());
        out.put_u32_le(self.index_in_append);
        out.put_u32_le(self.append_len);
        for field in [
            self.aggregate_type.as_bytes(),
            self.aggregate_id.as_bytes(),
            self.name.as_bytes(),
            self.command_id.as_bytes(),
            self.correlation_id.as_bytes(),
            self.causation_id.as_bytes(),
            self.fingerprint_bytes(),
            self.metadata,
        ] {
            put_varint(&mut out, field.len() as u64);
            out.put_slice(field);
        }
        out.put_slice(self.data);
        out.freeze()
    }
}

/// The fingerprint the envelope of event `index` of an append carries: the command's,
/// on the first event only (every event of an append has the same command, and the
/// index reads it from the first), and only with a command id.
fn fingerprint_of_event(options: &AppendOptions, index: usize) -> Option<CommandFingerprint> {
    let first_with_id = index == 0 && options.command_id.is_some();
    options.command_fingerprint.filter(|_| first_with_id)
}

/// Why an envelope could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable event envelope: {0}")]
pub struct DecodeError(pub &'static str);

/// Decodes an envelope; `data` and `metadata` are zero-copy slices of `bytes`.
#[cfg(test)]
pub fn decode(bytes: &Bytes) -> Result<Decoded, DecodeError> {
    decode_after(bytes, &mut None)
}

/// [`decode`], sharing the stream id with the event decoded before (`last`) when both
/// are in the same stream, as all events of a stream read are; `last` becomes this
/// event's stream.
pub fn decode_after(bytes: &Bytes, last: &mut Option<StreamId>) -> Result<Decoded, DecodeError> {
    let fields = parse(bytes)?;
    let owned = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let stream = match last {
        Some(stream)
            if *stream.aggregate_id == *fields.aggregate_id
                && *stream.aggregate_type == *fields.aggregate_type =>
        {
            stream.clone()
        }
        _ => {
            let stream = StreamId::new(fields.aggregate_type, fields.aggregate_id);
            *last = Some(stream.clone());
            stream
        }
    };
    Ok(Decoded {
        event: RecordedEvent {
            position: fields.position,
            stream,
            version: fields.version,
            name: fields.name.to_string(),
            schema_version: fields.schema_version,
            timestamp_ms: fields.timestamp_ms,
            command_id: owned(fields.command_id),
            correlation_id: owned(fields.correlation_id),
            causation_id: owned(fields.causation_id),
            metadata: bytes.slice_ref(fields.metadata),
            data: bytes.slice_ref(fields.data),
        },
        index_in_append: fields.index_in_append,
        append_len: fields.append_len,
    })
}

/// Parses an envelope without copying (what rebuilding the index on open uses).
pub fn parse(bytes: &[u8]) -> Result<EnvelopeRef<'_>, DecodeError> {
    let mut cursor = bytes;
    if cursor.len() < 1 + 8 * 3 + 4 * 3 {
        return Err(DecodeError("envelope is too short"));
    }
    let envelope_version = cursor.get_u8();
    if envelope_version != ENVELOPE_VERSION && envelope_version != ENVELOPE_VERSION_1 {
        return Err(DecodeError("unknown envelope version"));
    }
    let position = GlobalPosition::new(cursor.get_u64_le());
    let version = version_from_disk(cursor.get_u64_le())?;
    let timestamp_ms = cursor.get_u64_le();
    let schema_version = SchemaVersion::new(cursor.get_u32_le());
    let index_in_append = cursor.get_u32_le();
    let append_len = cursor.get_u32_le();
    let aggregate_type = take_str(&mut cursor)?;
    let aggregate_id = take_str(&mut cursor)?;
    let name = take_str(&mut cursor)?;
    let command_id = take_str(&mut cursor)?;
    let correlation_id = take_str(&mut cursor)?;
    let causation_id = take_str(&mut cursor)?;
    let command_fingerprint = match envelope_version {
        ENVELOPE_VERSION_1 => None,
        _ => take_fingerprint(&mut cursor)?,
    };
    let metadata = take(&mut cursor)?;
    Ok(EnvelopeRef {
        position,
        version,
        timestamp_ms,
        schema_version,
        index_in_append,
        append_len,
        aggregate_type,
        aggregate_id,
        name,
        command_id,
        command_fingerprint,
        correlation_id,
        causation_id,
        metadata,
        data: cursor,
    })
}

/// The command fingerprint field: empty for none, else exactly its bytes.
fn take_fingerprint(cursor: &mut &[u8]) -> Result<Option<CommandFingerprint>, DecodeError> {
    let field = take(cursor)?;
    if field.is_empty() {
        return Ok(None);
    }
    let bytes = field
        .try_into()
        .map_err(|_| DecodeError("command fingerprint of the wrong size"))?;
    Ok(Some(CommandFingerprint::new(bytes)))
}

fn take<'a>(cursor: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let (len, size) = get_varint(cursor).ok_or(DecodeError("bad length varint"))?;
    let len = usize::try_from(len).map_err(|_| DecodeError("field length overflows"))?;
    let rest = &cursor[size..];
    if len > rest.len() {
        return Err(DecodeError("field runs past the envelope"));
    }
    let (field, rest) = rest.split_at(len);
    *cursor = rest;
    Ok(field)
}

fn take_str<'a>(cursor: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(take(cursor)?).map_err(|_| DecodeError("field is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let stream = StreamId::new("bank-account", "acc-1");
        let envelope = EnvelopeRef {
            position: GlobalPosition::new(42),
            version: StreamVersion::new(7),
            timestamp_ms: 1_700_000_000_000,
            schema_version: SchemaVersion::new(2),
            index_in_append: 1,
            append_len: 3,
            aggregate_type: &stream.aggregate_type,
            aggregate_id: &stream.aggregate_id,
            name: "MoneyDeposited",
            command_id: "cmd-9",
            command_fingerprint: Some(CommandFingerprint::new([7; 32])),
            correlation_id: "",
            causation_id: "cause",
            metadata: br#"{"user":"ann"}"#,
            data: br#"{"amount":500}"#,
        };
        let bytes = envelope.encode();
        assert_eq!(bytes.len(), envelope.encoded_len());
        let fields = parse(&bytes).unwrap();
        assert_eq!(
            (
                fields.position.get(),
                fields.version.get(),
                fields.index_in_append,
                fields.append_len
            ),
            (42, 7, 1, 3)
        );
        assert_eq!(
            (fields.aggregate_type, fields.aggregate_id),
            ("bank-account", "acc-1")
        );
        assert_eq!(fields.command_id, "cmd-9");
        assert_eq!(
            fields.command_fingerprint,
            Some(CommandFingerprint::new([7; 32]))
        );
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.index_in_append, 1);
        assert_eq!(decoded.append_len, 3);
        let event = decoded.event;
        assert_eq!(event.position, GlobalPosition::new(42));
        assert_eq!(event.version, StreamVersion::new(7));
        assert_eq!(event.stream, stream);
        assert_eq!(event.name, "MoneyDeposited");
        assert_eq!(event.schema_version, SchemaVersion::new(2));
        assert_eq!(event.command_id.as_deref(), Some("cmd-9"));
        assert_eq!(event.correlation_id, None);
        assert_eq!(event.causation_id.as_deref(), Some("cause"));
        assert_eq!(&event.metadata[..], br#"{"user":"ann"}"#);
        assert_eq!(&event.data[..], br#"{"amount":500}"#);
        for cut in 0..bytes.len() - envelope.data.len() {
            assert!(decode(&bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_first_event_of_a_stream_is_stored_as_version_zero() {
        let stream = StreamId::new("t", "a");
        let events = [NewEvent::new("E", "{}")];
        let options = AppendOptions::default();
        let first = GlobalPosition::new(5);
        let envelope = EnvelopeRef::for_append(
            &stream,
            &events,
            0,
            &options,
            first,
            StreamVersion::FIRST,
            1,
        );
        let bytes = envelope.encode();
        // The version byte, the position, then the stream version (FORMAT.md).
        assert_eq!(bytes[9..17], 0u64.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap().version, StreamVersion::FIRST);
        let mut last = bytes.to_vec();
        last[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            parse(&last),
            Err(DecodeError("stream version out of range"))
        );
    }

    /// A version 1 envelope, laid out as the format had it before the fingerprint: the
    /// version 2 fields less the fingerprint.
    fn version_1(envelope: &EnvelopeRef) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(1);
        out.put_u64_le(envelope.position.get());
        out.put_u64_le(version_to_disk(envelope.version));
        out.put_u64_le(envelope.timestamp_ms);
        out.put_u32_le(envelope.schema_version.get());
        out.put_u32_le(envelope.index_in_append);
        out.put_u32_le(envelope.append_len);
        for field in [
            envelope.aggregate_type.as_bytes(),
            envelope.aggregate_id.as_bytes(),
            envelope.name.as_bytes(),
            envelope.command_id.as_bytes(),
            envelope.correlation_id.as_bytes(),
            envelope.causation_id.as_bytes(),
            envelope.metadata,
        ] {
            put_varint(&mut out, field.len() as u64);
            out.put_slice(field);
        }
        out.put_slice(envelope.data);
        out.freeze()
    }

    #[test]
    fn only_the_first_event_of_an_append_with_a_command_id_carries_the_fingerprint() {
        let stream = StreamId::new("t", "a");
        let events = [NewEvent::new("E", "{}"), NewEvent::new("F", "{}")];
        let fingerprint = CommandFingerprint::new([3; 32]);
        let with_id = AppendOptions::command("c-1").with_fingerprint(fingerprint);
        let without_id = AppendOptions {
            command_fingerprint: Some(fingerprint),
            ..AppendOptions::default()
        };
        let carried = |options: &AppendOptions, index| {
            let envelope = EnvelopeRef::for_append(
                &stream,
                &events,
                index,
                options,
                GlobalPosition::START,
                StreamVersion::FIRST,
                1,
            );
            let bytes = envelope.encode();
            assert_eq!(bytes.len(), envelope.encoded_len());
            parse(&bytes).unwrap().command_fingerprint
        };
        assert_eq!(carried(&with_id, 0), Some(fingerprint));
        assert_eq!(carried(&with_id, 1), None);
        assert_eq!(carried(&without_id, 0), None);
    }

    #[test]
    fn a_version_1_envelope_reads_without_a_fingerprint() {
        let stream = StreamId::new("bank-account", "acc-1");
        let events = [NewEvent::new("MoneyDeposited", r#"{"amount":5}"#)];
        let options = AppendOptions::command("c-1");
        let envelope = EnvelopeRef::for_append(
            &stream,
            &events,
            0,
            &options,
            GlobalPosition::new(3),
            StreamVersion::new(2),
            1_700_000_000_000,
        );
        let old = version_1(&envelope);
        assert_eq!(parse(&old).unwrap(), envelope);
        let decoded = decode(&old).unwrap().event;
        assert_eq!(decoded.command_id.as_deref(), Some("c-1"));
        assert_eq!(&decoded.data[..], br#"{"amount":5}"#);
        // What is written now is version 2.
        assert_eq!(envelope.encode()[0], ENVELOPE_VERSION);
        let mut unknown = old.to_vec();
        unknown[0] = 3;
        assert_eq!(
            parse(&unknown),
            Err(DecodeError("unknown envelope version"))
        );
    }

    #[test]
    fn a_fingerprint_of_the_wrong_size_is_undecodable() {
        let stream = StreamId::new("t", "a");
        let events = [NewEvent::new("E", "{}")];
        let options = AppendOptions::default();
        let envelope = EnvelopeRef::for_append(
            &stream,
            &events,
            0,
            &options,
            GlobalPosition::START,
            StreamVersion::FIRST,
            1,
        );
        let mut bytes = envelope.encode().to_vec();
        // The empty fingerprint field is the byte before the metadata's length (0) and
        // the data (`{}`): make it a one-byte field.
        let at = bytes.len() - 4;
        assert_eq!(bytes[at..], [0, 0, b'{', b'}']);
        bytes.splice(at..at + 1, [1, 9]);
        assert_eq!(
            parse(&bytes),
            Err(DecodeError("command fingerprint of the wrong size"))
        );
    }

    mod never_panics {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        fn string() -> impl Strategy<Value = String> {
            proptest::string::string_regex(".{0,12}").expect("a valid regex")
        }

        /// A valid envelope's bytes.
        fn envelope() -> impl Strategy<Value = Vec<u8>> {
            (
                (any::<u64>(), 1..=u64::MAX, any::<(u64, u32, u32, u32)>()),
                vec(string(), 6),
                proptest::option::of(any::<[u8; 32]>()),
                vec(any::<u8>(), 0..40),
                vec(any::<u8>(), 0..80),
            )
                .prop_map(|(numbers, strings, fingerprint, metadata, data)| {
                    let (position, version, (timestamp_ms, schema_version, index, len)) = numbers;
                    EnvelopeRef {
                        position: GlobalPosition::new(position),
                        version: StreamVersion::new(version),
                        timestamp_ms,
                        schema_version: SchemaVersion::new(schema_version),
                        index_in_append: index,
                        append_len: len,
                        aggregate_type: &strings[0],
                        aggregate_id: &strings[1],
                        name: &strings[2],
                        command_id: &strings[3],
                        command_fingerprint: fingerprint.map(CommandFingerprint::new),
                        correlation_id: &strings[4],
                        causation_id: &strings[5],
                        metadata: &metadata,
                        data: &data,
                    }
                    .encode()
                    .to_vec()
                })
        }

        /// A damage: (kind, offset, value); offsets are taken modulo the length.
        fn damage() -> impl Strategy<Value = (u8, usize, u64)> {
            (0..5u8, any::<usize>(), any::<u64>())
        }

        fn damaged(mut bytes: Vec<u8>, damages: &[(u8, usize, u64)]) -> Vec<u8> {
            for &(kind, at, value) in damages {
                let len = bytes.len().max(1);
                match kind {
                    // Flip a byte.
                    0 if !bytes.is_empty() => bytes[at % len] ^= (value as u8) | 1,
                    // Cut.
                    1 => bytes.truncate(at % len),
                    // Extend.
                    2 => bytes.extend_from_slice(&value.to_le_bytes()),
                    // A length varint claiming up to 2^64 - 1 bytes.
                    3 if !bytes.is_empty() => {
                        let mut varint = BytesMut::new();
                        put_varint(&mut varint, value);
                        let at = at % len;
                        bytes.splice(at..(at + varint.len()).min(bytes.len()), varint);
                    }
                    // Splice a part of itself elsewhere.
                    _ if !bytes.is_empty() => {
                        let from = at % len;
                        let to = (value as usize) % len;
                        let n = 16.min(len - from).min(len - to);
                        bytes.copy_within(from..from + n, to);
                    }
                    _ => {}
                }
            }
            bytes
        }

        /// Decoding gives a value whose fields lie within the input, or an error.
        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            let shared = Bytes::copy_from_slice(bytes);
            match (parse(bytes), decode(&shared)) {
                (Ok(fields), Ok(decoded)) => {
                    let strings = fields.aggregate_type.len()
                        + fields.aggregate_id.len()
                        + fields.name.len()
                        + fields.command_id.len()
                        + fields.correlation_id.len()
                        + fields.causation_id.len();
                    prop_assert!(
                        strings + fields.metadata.len() + fields.data.len() <= bytes.len()
                    );
                    prop_assert_eq!(decoded.event.position, fields.position);
                    prop_assert_eq!(&decoded.event.data[..], fields.data);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (parsed, decoded) => {
                    return Err(TestCaseError::fail(format!(
                        "parse and decode disagree: {parsed:?} / {decoded:?}"
                    )));
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 512,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn random_bytes(bytes in vec(any::<u8>(), 0..200)) {
                check(&bytes)?;
            }

            #[test]
            fn damaged_envelopes(bytes in envelope(), damages in vec(damage(), 1..4)) {
                check(&bytes)?;
                check(&damaged(bytes, &damages))?;
            }
        }
    }
}
