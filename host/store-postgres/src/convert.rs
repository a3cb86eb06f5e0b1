//! Between the store's numbers and rows and PostgreSQL's `bigint` columns.
//!
//! PostgreSQL has no unsigned integers: positions, versions, counts and timestamps are
//! `bigint`. A number beyond `i64::MAX` is refused on the way in; a negative one read
//! back is corruption (the schema's checks and the append function never write one).

use bytes::Bytes;
use tally_store::{GlobalPosition, RecordedEvent, SchemaVersion, StreamId, StreamVersion};
use tokio_postgres::Row;

use crate::error::{PgStoreError, Result};

/// The start of a query of events: the columns of `tally_events` that
/// [`event_from_row`] reads, in its order. A literal, for `concat!`.
macro_rules! select_events {
    () => {
        "SELECT position, aggregate_type, aggregate_id, version, name, schema_version, \
         timestamp_ms, command_id, correlation_id, causation_id, metadata, data \
         FROM tally_events "
    };
}
pub(crate) use select_events;

/// A number for a `bigint` column.
pub(crate) fn to_db(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| PgStoreError::InvalidInput(format!("{what} {value} is beyond i64::MAX")))
}

/// A number read from a `bigint` column.
pub(crate) fn from_db(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| PgStoreError::Corrupt(format!("{what} {value} read from the database")))
}

/// A global position for a `bigint` column.
pub(crate) fn position_to_db(position: GlobalPosition) -> Result<i64> {
    to_db(position.get(), "position")
}

/// A global position read from a `bigint` column.
pub(crate) fn position_from_db(value: i64) -> Result<GlobalPosition> {
    from_db(value, "position").map(GlobalPosition::new)
}

/// A stream version for a `bigint` column.
pub(crate) fn version_to_db(version: StreamVersion) -> Result<i64> {
    to_db(version.get(), "version")
}

/// A stream version read from a `bigint` column.
pub(crate) fn version_from_db(value: i64) -> Result<StreamVersion> {
    from_db(value, "version").map(StreamVersion::new)
}

/// A read count for a `LIMIT`: at most `max`.
pub(crate) fn limit(count: usize, max: usize) -> i64 {
    i64::try_from(count.min(max)).unwrap_or(i64::MAX)
}

/// The event of a row of [`select_events`].
pub(crate) fn event_from_row(row: &Row) -> Result<RecordedEvent> {
    let schema_version: i32 = row.try_get(5)?;
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| PgStoreError::Corrupt(format!("schema version {schema_version}")))?;
    Ok(RecordedEvent {
        position: position_from_db(row.try_get(0)?)?,
        stream: StreamId::new(row.try_get::<_, &str>(1)?, row.try_get::<_, &str>(2)?),
        version: version_from_db(row.try_get(3)?)?,
        name: row.try_get(4)?,
        schema_version: SchemaVersion::new(schema_version),
        timestamp_ms: from_db(row.try_get(6)?, "timestamp")?,
        command_id: row.try_get(7)?,
        correlation_id: row.try_get(8)?,
        causation_id: row.try_get(9)?,
        metadata: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(10)?),
        data: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(11)?),
    })
}

/// The events of `rows`.
pub(crate) fn events_from_rows(rows: &[Row]) -> Result<Vec<RecordedEvent>> {
    rows.iter().map(event_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_bigint_are_refused_and_negative_ones_are_corrupt() {
        assert_eq!(to_db(7, "position").unwrap(), 7);
        assert!(matches!(
            to_db(u64::MAX, "position"),
            Err(PgStoreError::InvalidInput(_))
        ));
        assert!(matches!(
            from_db(-1, "position"),
            Err(PgStoreError::Corrupt(_))
        ));
        assert_eq!(position_from_db(3).unwrap(), GlobalPosition::new(3));
    }

    #[test]
    fn a_limit_is_capped() {
        assert_eq!(limit(50, 10), 10);
        assert_eq!(limit(5, 10), 5);
    }
}
