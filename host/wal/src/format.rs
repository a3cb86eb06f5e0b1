//! The on-disk format: segment headers, group headers and record frames.
//!
//! `host/wal/FORMAT.md` describes the same layout byte by byte; keep the two in step.
//! Everything here is pure: it encodes into and decodes from byte slices, and never
//! touches a file.

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::Record;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TALLYWAL";
/// The segment format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header; the first group starts at this offset.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// First four bytes of a group header (`"TGRP"` little-endian).
pub const GROUP_MAGIC: u32 = u32::from_le_bytes(*b"TGRP");
/// Length of a group header.
pub const GROUP_HEADER_LEN: usize = 32;
/// Length of a record frame header (`len` and `crc`).
pub const RECORD_HEADER_LEN: usize = 8;
/// Bytes of a written frame's body before the value: `flags` (0) and the reserved key
/// length (the varint 0, one byte).
const RECORD_PREFIX_LEN: usize = 2;
/// Largest record body a frame can describe; below [`GROUP_MAGIC`] so that the first
/// four bytes of a frame always tell a group header from a record.
pub const MAX_FRAME_BODY: u64 = 1 << 30;

/// The decoded header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's id; it must match the id in the file name.
    pub segment_id: u64,
}

impl SegmentHeader {
    /// Encodes the header into its 32 on-disk bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.segment_id.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a segment header, saying what is wrong when it is invalid.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
        if bytes.len() < SEGMENT_HEADER_LEN as usize {
            return Err("segment header is shorter than 32 bytes");
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic");
        }
        let crc = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&bytes[0..28]) {
            return Err("segment header checksum mismatch");
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err("unsupported segment format version");
        }
        Ok(SegmentHeader {
            segment_id: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
        })
    }
}

/// The decoded header of a group: the unit of one write to a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    /// Bytes of record frames that follow the header.
    pub body_len: u32,
    /// Number of record frames in the body.
    pub record_count: u32,
    /// Bytes of this segment that a completed fsync covered when the group was written.
    pub synced_offset: u64,
    /// The segment the group belongs to.
    pub segment_id: u64,
}

impl GroupHeader {
    /// Encodes the header into its 32 on-disk bytes.
    pub fn encode(&self) -> [u8; GROUP_HEADER_LEN] {
        let mut out = [0u8; GROUP_HEADER_LEN];
        out[0..4].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
        out[8..12].copy_from_slice(&self.body_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.record_count.to_le_bytes());
        out[16..24].copy_from_slice(&self.synced_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_id.to_le_bytes());
        let crc = crc32c::crc32c(&out[8..32]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a group header, saying what is wrong when it is invalid.
    pub fn decode(bytes: &[u8]) -> Result<GroupHeader, &'static str> {
        if bytes.len() < GROUP_HEADER_LEN {
            return Err("group header is cut short");
        }
        if read_u32(bytes, 0) != GROUP_MAGIC {
            return Err("bad group magic");
        }
        if read_u32(bytes, 4) != crc32c::crc32c(&bytes[8..32]) {
            return Err("group header checksum mismatch");
        }
        Ok(GroupHeader {
            body_len: read_u32(bytes, 8),
            record_count: read_u32(bytes, 12),
            synced_offset: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            segment_id: u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")),
        })
    }
}

/// Reads a little-endian `u32` at `at`.
pub fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Size of a record's frame on disk.
pub fn frame_len(record: &Record) -> usize {
    frame_len_of(record.value.len())
}

/// Size on disk of the frame of a record with a value of this length.
pub fn frame_len_of(value_len: usize) -> usize {
    RECORD_HEADER_LEN + RECORD_PREFIX_LEN + value_len
}

fn body_len(record: &Record) -> usize {
    frame_len(record) - RECORD_HEADER_LEN
}

/// Appends the frame of `record` to `out`.
///
/// Layout: `len: u32` (body length), `crc: u32` (CRC32C of `len` then body), then the body:
/// `flags: u8` (0), `key_len: varint` (reserved, always 0), value.
pub fn encode_frame(record: &Record, out: &mut BytesMut) {
    let body_len = body_len(record) as u32;
    out.reserve(RECORD_HEADER_LEN + body_len as usize);
    let start = out.len();
    out.put_u32_le(body_len);
    out.put_u32_le(0);
    out.put_u8(0);
    put_varint(out, 0);
    out.put_slice(&record.value);
    let crc = frame_crc(&out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn frame_crc(body: &[u8]) -> u32 {
    let len = (body.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), body)
}

/// Why a record frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes are available than the frame needs.
    Incomplete {
        /// Bytes the whole frame needs.
        needed: usize,
    },
    /// The frame is damaged; the string says how.
    Invalid(&'static str),
}

/// Decodes the record frame at the start of `buf`, returning the record and the frame length.
///
/// `buf` is a shared buffer, so the record's value is a zero-copy slice of it.
pub fn decode_frame(buf: &Bytes, max_body: u64) -> Result<(Record, usize), FrameError> {
    let frame = check_frame(buf, max_body)?;
    let record = Record {
        value: buf.slice(frame.value_start..frame.len),
    };
    Ok((record, frame.len))
}

/// Where the value of a checked frame is, relative to its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Offset of the value.
    pub value_start: usize,
    /// Length of the whole frame (the end of the value).
    pub len: usize,
}

/// Checks the record frame at the start of `buf` (length, checksum, flags, and the
/// reserved key length, which must be 0) without copying anything.
pub fn check_frame(buf: &[u8], max_body: u64) -> Result<FrameLayout, FrameError> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Incomplete {
            needed: RECORD_HEADER_LEN,
        });
    }
    let body_len = read_u32(buf, 0) as usize;
    if body_len == 0 {
        return Err(FrameError::Invalid("zero-length record frame"));
    }
    if body_len as u64 > max_body {
        return Err(FrameError::Invalid("record frame length exceeds the limit"));
    }
    let total = RECORD_HEADER_LEN + body_len;
    if buf.len() < total {
        return Err(FrameError::Incomplete { needed: total });
    }
    let body = &buf[RECORD_HEADER_LEN..total];
    if read_u32(buf, 4) != frame_crc(body) {
        return Err(FrameError::Invalid("record checksum mismatch"));
    }
    if body[0] != 0 {
        return Err(FrameError::Invalid("unknown record flags"));
    }
    let (key_len, varint_size) =
        get_varint(&body[1..]).ok_or(FrameError::Invalid("bad key length varint"))?;
    if key_len != 0 {
        return Err(FrameError::Invalid("reserved key length is not zero"));
    }
    Ok(FrameLayout {
        value_start: RECORD_HEADER_LEN + 1 + varint_size,
        len: total,
    })
}

/// Number of bytes the LEB128 varint of `value` takes.
pub fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Appends the LEB128 varint of `value` to `out`.
pub fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Decodes a LEB128 varint of at most 10 bytes, returning it and its size.
pub fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_every_single_bit_flip() {
        let record = Record::new(&b"some value"[..]);
        let mut out = BytesMut::new();
        encode_frame(&record, &mut out);
        assert_eq!(out.len(), frame_len(&record));
        let bytes = out.clone().freeze();
        let (decoded, len) = decode_frame(&bytes, MAX_FRAME_BODY).unwrap();
        assert_eq!(decoded, record);
        assert_eq!(len, bytes.len());
        for bit in 0..bytes.len() * 8 {
            let mut damaged = out.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let result = decode_frame(&damaged.freeze(), MAX_FRAME_BODY);
            assert!(
                !matches!(result, Ok((ref r, _)) if *r == record),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn a_cut_frame_is_incomplete_not_invalid() {
        let record = Record::new(vec![7u8; 300]);
        let mut out = BytesMut::new();
        encode_frame(&record, &mut out);
        for cut in 0..out.len() {
            let prefix = Bytes::copy_from_slice(&out[..cut]);
            assert!(matches!(
                decode_frame(&prefix, MAX_FRAME_BODY),
                Err(FrameError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn a_non_zero_reserved_key_length_is_invalid_despite_a_valid_checksum() {
        // flags 0, key length 3 (reserved: must be 0), then 3 + 5 bytes.
        let mut body = vec![0u8, 3];
        body.extend_from_slice(b"keyvalue");
        let mut frame = BytesMut::new();
        frame.put_u32_le(body.len() as u32);
        frame.put_u32_le(frame_crc(&body));
        frame.put_slice(&body);
        let frame = frame.freeze();
        let refused = FrameError::Invalid("reserved key length is not zero");
        assert_eq!(check_frame(&frame, MAX_FRAME_BODY), Err(refused));
        assert_eq!(decode_frame(&frame, MAX_FRAME_BODY), Err(refused));
    }

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let header = SegmentHeader { segment_id: 42 };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        let mut damaged = bytes;
        damaged[13] ^= 0x10;
        assert!(SegmentHeader::decode(&damaged).is_err());

        let group = GroupHeader {
            body_len: 1000,
            record_count: 3,
            synced_offset: 4096,
            segment_id: 42,
        };
        let bytes = group.encode();
        assert_eq!(GroupHeader::decode(&bytes), Ok(group));
        let mut damaged = bytes;
        damaged[20] ^= 0x01;
        assert!(GroupHeader::decode(&damaged).is_err());
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value));
            assert_eq!(get_varint(&out), Some((value, out.len())));
        }
    }
}
