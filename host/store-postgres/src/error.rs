//! The errors of the PostgreSQL store.

use tally_store::{ExpectedVersion, StreamId, StreamVersion};

/// Everything that can go wrong in a [`PostgresEventStore`](crate::PostgresEventStore).
///
/// The first four mean what the embedded store's [`tally_store::StoreError`] variants of
/// the same names mean; the others are the database's.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    /// The stream's version is not the expected one; nothing was written.
    #[error(
        "wrong expected version for stream {stream}: expected {expected}, actual version {actual}"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked.
        actual: StreamVersion,
    },
    /// The command id was used before for another command (another stream, or another
    /// fingerprint). Nothing was written.
    #[error("command id {command_id} was already used for another command, on {stream}")]
    CommandIdReused {
        /// The command id.
        command_id: String,
        /// The stream it was used for.
        stream: StreamId,
    },
    /// The append, read or snapshot is invalid; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store was closed.
    #[error("the event store is closed")]
    Closed,
    /// The database could not be reached (no connection could be made, or the
    /// connection was lost during a read), or refused the batch: nothing of it was
    /// written.
    #[error("the database refused or could not be reached: {0}")]
    Unavailable(String),
    /// The connection was lost after an append was sent: it may or may not have been
    /// committed. Sending it again with the same command id answers which, and applies
    /// it at most once.
    #[error("the outcome of the append is unknown (the connection was lost): {0}")]
    OutcomeUnknown(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool while opening the store (later, it is
    /// [`PgStoreError::Unavailable`]).
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database's schema cannot be used: it is newer than this build knows, or a
    /// migration failed.
    #[error("schema migration: {0}")]
    Migration(String),
    /// The database holds something the store never writes (a negative position, an
    /// unknown outcome code).
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}

impl PgStoreError {
    /// The error for a whole batch whose statement failed with `err`: refused by the
    /// server (a database error: rolled back, nothing written), or cut off (the outcome is
    /// unknown).
    pub(crate) fn of_batch(err: &tokio_postgres::Error) -> PgStoreError {
        if err.as_db_error().is_some() {
            PgStoreError::Unavailable(err.to_string())
        } else {
            PgStoreError::OutcomeUnknown(err.to_string())
        }
    }

    /// The error of a read whose statement failed with `err`: the database out of reach
    /// (the connection lost, the server shutting down or not accepting connections, as
    /// in a failover) is [`PgStoreError::Unavailable`], to be tried again; anything else
    /// is the statement's own failure.
    pub(crate) fn of_read(err: tokio_postgres::Error) -> PgStoreError {
        if is_out_of_reach(&err) {
            PgStoreError::Unavailable(err.to_string())
        } else {
            PgStoreError::Database(err)
        }
    }

    /// The error of a connection that the pool could not give: none could be made
    /// (the database is out of reach), so nothing was sent.
    pub(crate) fn of_checkout(err: &deadpool_postgres::PoolError) -> PgStoreError {
        PgStoreError::Unavailable(format!("no database connection: {err}"))
    }
}

/// Whether `err` means the database is out of reach rather than that it refused the
/// statement: the connection closed, a connection exception (SQLSTATE class 08), or
/// the server shutting down or not accepting connections yet (57P01, 57P02, 57P03).
fn is_out_of_reach(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    err.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
    })
}

/// The result type of the PostgreSQL store.
pub type Result<T, E = PgStoreError> = std::result::Result<T, E>;
