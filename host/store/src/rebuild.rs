//! Rebuilding the index from the event log's records: every envelope decoded, positions
//! and versions checked to be dense, every append complete. Opening the store and
//! [`crate::verify()`] both feed the log's records through an [`IndexBuilder`].

use std::sync::Arc;

use tally_wal::Position;

use crate::codec;
use crate::error::{Result, StoreError};
use crate::event::{CommandFingerprint, StreamId};
use crate::index::{AppendCommand, CommandRetention, Index, IndexedEvent};

/// Builds the index from the event log's records, given in log order.
#[derive(Debug)]
pub(crate) struct IndexBuilder {
    index: Index,
    append: PendingAppend,
}

impl IndexBuilder {
    /// An empty builder.
    pub fn new(retention: CommandRetention) -> IndexBuilder {
        IndexBuilder {
            index: Index::new(retention),
            append: PendingAppend::default(),
        }
    }

    /// Adds the record `value` found at `wal_position`; fails with [`StoreError::Corrupt`]
    /// when it cannot be decoded or does not continue the log densely.
    pub fn push(&mut self, value: &[u8], wal_position: Position) -> Result<()> {
        let append = &mut self.append;
        let fields = codec::parse(value)
            .map_err(|e| StoreError::Corrupt(format!("record at {wal_position}: {e}")))?;
        if fields.index_in_append as usize != append.events.len() {
            return Err(StoreError::Corrupt(format!(
                "record at {wal_position}: event {} of an append where {} was expected",
                fields.index_in_append,
                append.events.len()
            )));
        }
        if append.events.is_empty() {
            // The stream and command id are the same for every event of an append, and
            // the first event carries the command's fingerprint.
            append.stream = Arc::new(StreamId::new(fields.aggregate_type, fields.aggregate_id));
            append.command_id =
                (!fields.command_id.is_empty()).then(|| fields.command_id.to_string());
            append.command_fingerprint = fields.command_fingerprint;
            append.timestamp_ms = fields.timestamp_ms;
        }
        append.events.push(IndexedEvent {
            position: fields.position,
            version: fields.version,
            wal_position,
        });
        if fields.index_in_append + 1 == fields.append_len {
            self.index
                .add_append(
                    &append.stream,
                    &append.events,
                    append.command(),
                    append.timestamp_ms,
                )
                .map_err(|reason| {
                    StoreError::Corrupt(format!(
                        "append at position {} of {}: {reason}",
                        append.events[0].position, append.stream
                    ))
                })?;
            append.events.clear();
        }
        Ok(())
    }

    /// The index, once every record was pushed; fails if the last append is incomplete.
    /// Command ids older than the retention at `now_ms` are forgotten.
    pub fn finish(mut self, now_ms: u64) -> Result<Index> {
        if let Some(event) = self.append.events.first() {
            return Err(StoreError::Corrupt(format!(
                "the append starting at {} is incomplete",
                event.wal_position
            )));
        }
        self.index.prune_commands(now_ms);
        Ok(self.index)
    }
}

/// The events of one append read so far while rebuilding the index.
#[derive(Debug)]
struct PendingAppend {
    stream: Arc<StreamId>,
    command_id: Option<String>,
    command_fingerprint: Option<CommandFingerprint>,
    timestamp_ms: u64,
    events: Vec<IndexedEvent>,
}

impl PendingAppend {
    /// The append's command, if it has a command id.
    fn command(&self) -> Option<AppendCommand<'_>> {
        let id = self.command_id.as_deref()?;
        Some(AppendCommand {
            id,
            fingerprint: self.command_fingerprint,
        })
    }
}

impl Default for PendingAppend {
    fn default() -> PendingAppend {
        PendingAppend {
            stream: Arc::new(StreamId::new("", "")),
            command_id: None,
            command_fingerprint: None,
            timestamp_ms: 0,
            events: Vec::new(),
        }
    }
}
