//! The conformance suite of `EventLog` (`tally_store::testing`) against the PostgreSQL
//! store, each case in a database of its own on this binary's server.

use tally_store::testing::Harness;
use tally_store_postgres::PostgresEventStore;

use crate::server::{self, TestDatabase};

/// A test's database; each open is another store on it (a restart, or another host).
pub struct Postgres {
    database: TestDatabase,
}

impl Harness for Postgres {
    type Log = PostgresEventStore;

    async fn open(&self) -> PostgresEventStore {
        self.database.open().await
    }
}

/// A fresh database, or `None` when PostgreSQL is missing and this is not CI (there,
/// `server::database` fails the case).
async fn postgres() -> Option<Postgres> {
    server::database()
        .await
        .map(|database| Postgres { database })
}

tally_store::event_log_conformance!(postgres);
