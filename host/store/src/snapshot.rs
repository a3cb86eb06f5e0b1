//! Snapshots: the latest state of a stream under a tag, kept in a log of their own.
//!
//! One write-ahead log holds every snapshot (not one file per snapshot), so millions of
//! streams cost nothing in files, and a snapshot is as crash-safe as an event. An in-memory
//! map points at the latest snapshot per stream and tag. Older snapshots become dead bytes;
//! once dead bytes outgrow both a threshold and the live ones, the live snapshots of the
//! older segments are written again at the end and those segments deleted.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tally_wal::format::{get_varint, put_varint};
use tally_wal::{Position, Record, RecoveryInfo, Wal, WalConfig};

use crate::codec::{version_from_disk, version_to_disk};
use crate::error::{Result, StoreError};
use crate::event::StreamId;
use crate::version::StreamVersion;

/// A snapshot of a stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream.
    pub stream: StreamId,
    /// The stream version the state includes: the events folded into it (at least 1).
    pub version: StreamVersion,
    /// Identifies the state's encoding (the host uses the plugin's identity).
    pub tag: String,
    /// The state.
    pub data: Bytes,
}

const SNAPSHOT_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy)]
struct Entry {
    version: StreamVersion,
    at: Position,
    size: u64,
}

#[derive(Debug, Default)]
struct Map {
    latest: HashMap<(StreamId, String), Entry>,
    live_bytes: u64,
    dead_bytes: u64,
}

impl Map {
    /// Records a snapshot; returns whether it is now the latest of its stream and tag.
    fn insert(&mut self, key: (StreamId, String), entry: Entry) -> bool {
        match self.latest.get(&key) {
            Some(existing) if existing.version > entry.version => {
                self.dead_bytes += entry.size;
                false
            }
            Some(existing) => {
                self.dead_bytes += existing.size;
                self.live_bytes = self.live_bytes - existing.size + entry.size;
                self.latest.insert(key, entry);
                true
            }
            None => {
                self.live_bytes += entry.size;
                self.latest.insert(key, entry);
                true
            }
        }
    }
}

/// The snapshot log and its map.
#[derive(Debug)]
pub(crate) struct SnapshotStore {
    wal: Wal,
    map: Mutex<Map>,
    compaction_bytes: u64,
    compacting: tokio::sync::Mutex<()>,
    /// Saves hold it shared from their append until their map entry is in; compaction holds
    /// it exclusively, so it never deletes a segment holding a save it has not seen.
    gate: tokio::sync::RwLock<()>,
}

impl SnapshotStore {
    pub async fn open(
        config: WalConfig,
        compaction_bytes: u64,
    ) -> Result<(SnapshotStore, RecoveryInfo)> {
        let (wal, recovery) = Wal::open(config).await?;
        let mut map = Map::default();
        let mut reader = wal.read_from(Position::START).await?;
        while let Some((record, at)) = reader.next_record().await? {
            let snapshot = decode(&record.value)
                .map_err(|reason| StoreError::Corrupt(format!("snapshot at {at}: {reason}")))?;
            let entry = Entry {
                version: snapshot.version,
                at,
                size: record.value.len() as u64,
            };
            map.insert((snapshot.stream, snapshot.tag), entry);
        }
        let store = SnapshotStore {
            wal,
            map: Mutex::new(map),
            compaction_bytes,
            compacting: tokio::sync::Mutex::new(()),
            gate: tokio::sync::RwLock::new(()),
        };
        Ok((store, recovery))
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("snapshot map poisoned").latest.len()
    }

    pub async fn save(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        tag: &str,
        data: Bytes,
    ) -> Result<()> {
        let value = encode(stream, version, tag, &data);
        let size = value.len() as u64;
        let gate = self.gate.read().await;
        let at = match self.wal.append(&Record::new(value)).await {
            Ok(at) => at,
            Err(err) => {
                // Snapshots do not depend on each other's order: once this failure is
                // answered, later saves may go ahead (say, when space is back).
                self.wal.resume();
                return Err(err.into());
            }
        };
        let compact = {
            let _gate = gate;
            let mut map = self.map.lock().expect("snapshot map poisoned");
            map.insert(
                (stream.clone(), tag.to_string()),
                Entry { version, at, size },
            );
            map.dead_bytes > self.compaction_bytes && map.dead_bytes > map.live_bytes
        };
        if compact {
            self.compact().await?;
        }
        Ok(())
    }

    pub async fn latest(&self, stream: &StreamId, tag: &str) -> Result<Option<Snapshot>> {
        let key = (stream.clone(), tag.to_string());
        // A compaction may move the snapshot between the lookup and the read: look again.
        for _ in 0..3 {
            let entry = self
                .map
                .lock()
                .expect("snapshot map poisoned")
                .latest
                .get(&key)
                .copied();
            let Some(entry) = entry else {
                return Ok(None);
            };
            match self.wal.read_at(entry.at).await {
                Ok(record) => {
                    let snapshot = decode(&record.value).map_err(|reason| {
                        StoreError::Corrupt(format!("snapshot at {}: {reason}", entry.at))
                    })?;
                    if snapshot.stream != *stream || snapshot.tag != tag {
                        return Err(StoreError::Corrupt(format!(
                            "snapshot at {} belongs to {}",
                            entry.at, snapshot.stream
                        )));
                    }
                    return Ok(Some(snapshot));
                }
                Err(tally_wal::WalError::SegmentDeleted(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Unavailable {
            reason: "snapshot log is being compacted".into(),
            storage_full: false,
        })
    }

    /// Writes the live snapshots of all but the active segment again, then deletes those
    /// segments.
    async fn compact(&self) -> Result<()> {
        let Ok(_compacting) = self.compacting.try_lock() else {
            return Ok(());
        };
        let _exclusive = self.gate.write().await;
        let cutoff = self.wal.durable_end().segment_id;
        let old: Vec<((StreamId, String), Entry)> = {
            let map = self.map.lock().expect("snapshot map poisoned");
            map.latest
                .iter()
                .filter(|(_, entry)| entry.at.segment_id < cutoff)
                .map(|(key, entry)| (key.clone(), *entry))
                .collect()
        };
        for (key, entry) in old {
            let record = self.wal.read_at(entry.at).await?;
            let at = self.wal.append(&record).await?;
            let mut map = self.map.lock().expect("snapshot map poisoned");
            // Replace only if no newer snapshot was saved meanwhile.
            if let Some(current) = map.latest.get_mut(&key)
                && current.at == entry.at
            {
                current.at = at;
            }
        }
        let removed = self
            .wal
            .delete_segments_before(Position {
                segment_id: cutoff,
                offset: 0,
            })
            .await?;
        let mut map = self.map.lock().expect("snapshot map poisoned");
        map.dead_bytes = 0;
        tracing::info!(removed, "compacted the snapshot log");
        Ok(())
    }

    pub async fn close(&self) -> Result<()> {
        self.wal.clone().close().await?;
        Ok(())
    }
}

fn encode(stream: &StreamId, version: StreamVersion, tag: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(SNAPSHOT_VERSION);
    out.put_u64_le(version_to_disk(version));
    for field in [
        stream.aggregate_type.as_bytes(),
        stream.aggregate_id.as_bytes(),
        tag.as_bytes(),
    ] {
        put_varint(&mut out, field.len() as u64);
        out.put_slice(field);
    }
    out.put_slice(data);
    out.freeze()
}

/// Decodes a snapshot record (layout in `host/store/FORMAT.md`).
pub(crate) fn decode(bytes: &Bytes) -> Result<Snapshot, &'static str> {
    let mut cursor = bytes.clone();
    if cursor.remaining() < 9 || cursor.get_u8() != SNAPSHOT_VERSION {
        return Err("unknown snapshot format");
    }
    let version = version_from_disk(cursor.get_u64_le()).map_err(|error| error.0)?;
    let mut take = || -> Result<String, &'static str> {
        let (len, size) = get_varint(&cursor).ok_or("bad length")?;
        cursor.advance(size);
        let len = usize::try_from(len).map_err(|_| "bad length")?;
        if len > cursor.len() {
            return Err("field runs past the snapshot");
        }
        String::from_utf8(cursor.split_to(len).to_vec()).map_err(|_| "field is not UTF-8")
    };
    let aggregate_type = take()?;
    let aggregate_id = take()?;
    let tag = take()?;
    Ok(Snapshot {
        stream: StreamId {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        },
        version,
        tag,
        data: cursor,
    })
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// Decoding gives a snapshot whose fields lie within the input, or an error.
    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(snapshot) = decode(&Bytes::copy_from_slice(bytes)) {
            let fields = snapshot.stream.aggregate_type.len()
                + snapshot.stream.aggregate_id.len()
                + snapshot.tag.len()
                + snapshot.data.len();
            prop_assert!(9 + fields <= bytes.len());
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
        fn decoding_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..120)) {
            check(&bytes)?;
        }

        #[test]
        fn decoding_damaged_snapshots_never_panics(
            version in (1..=u64::MAX).prop_map(StreamVersion::new),
            aggregate_id in "[a-z0-9-]{0,12}",
            tag in ".{0,8}",
            data in vec(any::<u8>(), 0..64),
            // (kind, offset, value): flip, cut, extend, or a length varint claiming `value`.
            damages in vec((0..4u8, any::<usize>(), any::<u64>()), 1..4),
        ) {
            let stream = StreamId::new("account", aggregate_id);
            let encoded = encode(&stream, version, &tag, &data);
            let decoded = decode(&encoded).expect("a valid snapshot decodes");
            prop_assert_eq!((decoded.stream, decoded.version, decoded.tag), (stream, version, tag));
            prop_assert_eq!(&decoded.data[..], &data[..]);

            let mut bytes = encoded.to_vec();
            for &(kind, at, value) in &damages {
                let at = at % bytes.len().max(1);
                match kind {
                    0 if !bytes.is_empty() => bytes[at] ^= (value as u8) | 1,
                    1 => bytes.truncate(at),
                    2 => bytes.extend_from_slice(&value.to_le_bytes()),
                    _ if !bytes.is_empty() => {
                        let mut varint = BytesMut::new();
                        put_varint(&mut varint, value);
                        bytes.splice(at..(at + varint.len()).min(bytes.len()), varint);
                    }
                    _ => {}
                }
            }
            check(&bytes)?;
        }
    }
}
