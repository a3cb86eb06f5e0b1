//! How a PostgreSQL store is configured.

use std::time::Duration;

use crate::error::{PgStoreError, Result};

/// Configuration of a [`PostgresEventStore`](crate::PostgresEventStore).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Where the database is: a libpq connection string or URL
    /// (`postgres://user@host:port/db`). Several hosts with
    /// `target_session_attrs=read-write` follow the primary after a failover.
    pub connection: tokio_postgres::Config,
    /// Most connections in the pool (appends take one per batch, reads one per read,
    /// each subscription one per page it reads). Default 8; at least 2.
    pub pool_size: usize,
    /// Most commands appended in one batch: one call of `tally_append`, one transaction,
    /// one commit. Default 256; at least 1.
    pub max_batch_commands: usize,
    /// Most events in one batch (a batch always takes at least one command, however
    /// many events it has). Default 4,096; at least 1.
    pub max_batch_events: usize,
    /// Most appends waiting for a batch; more wait for room. Default 4,096; at least 1.
    pub max_queued_appends: usize,
    /// Most events in one append. Default 1,000 (as the embedded store).
    pub max_events_per_append: usize,
    /// Largest event (data plus metadata) in bytes. Default 1 MiB (as the embedded store).
    pub max_event_size: usize,
    /// Longest aggregate type, aggregate id, event name, command id or snapshot tag, in
    /// bytes. Default 256 (as the embedded store).
    pub max_name_len: usize,
    /// Most events one read returns. Default 10,000 (as the embedded store).
    pub max_read_count: usize,
    /// Most events a subscription reads at a time. Default 128 (as the embedded store).
    pub subscription_page: usize,
    /// How often the committed end is read when no notification came: notifications
    /// are lost while the listening connection is down. Default 1 s.
    pub poll_interval: Duration,
}

impl PostgresConfig {
    /// The default configuration for the database at `connection` (a libpq connection
    /// string or URL).
    pub fn new(connection: &str) -> Result<PostgresConfig> {
        let connection = connection
            .parse()
            .map_err(|e| PgStoreError::InvalidInput(format!("connection string: {e}")))?;
        Ok(PostgresConfig {
            connection,
            pool_size: 8,
            max_batch_commands: 256,
            max_batch_events: 4096,
            max_queued_appends: 4096,
            max_events_per_append: 1_000,
            max_event_size: 1024 * 1024,
            max_name_len: 256,
            max_read_count: 10_000,
            subscription_page: 128,
            poll_interval: Duration::from_secs(1),
        })
    }

    /// Checks the limits: each at least 1, the pool at least 2 (the batches and the
    /// reads must not wait for each other forever).
    pub(crate) fn check(&self) -> Result<()> {
        let limits = [
            self.max_batch_commands,
            self.max_batch_events,
            self.max_queued_appends,
            self.max_events_per_append,
            self.max_event_size,
            self.max_name_len,
            self.max_read_count,
            self.subscription_page,
        ];
        if limits.contains(&0) || self.pool_size < 2 || self.poll_interval.is_zero() {
            return Err(PgStoreError::InvalidInput(
                "every limit must be at least 1, the pool at least 2, the poll interval above 0"
                    .into(),
            ));
        }
        Ok(())
    }
}
