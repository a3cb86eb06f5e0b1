//! The test binary's PostgreSQL server (`tally_test_support::postgres`), with this
//! store's configuration and handle on each test's database.

use std::time::Duration;

use tally_store_postgres::{PostgresConfig, PostgresEventStore};

/// A database of one test.
pub struct TestDatabase {
    /// Its connection string.
    pub connection: String,
}

/// A fresh database on this binary's server; `None` (after saying so) when PostgreSQL is
/// not installed and this is not CI.
pub async fn database() -> Option<TestDatabase> {
    let database = tally_test_support::postgres::database().await?;
    Some(TestDatabase {
        connection: database.connection,
    })
}

impl TestDatabase {
    /// The store's default configuration for this database, with a short poll interval.
    pub fn config(&self) -> PostgresConfig {
        let mut config = PostgresConfig::new(&self.connection).expect("a valid connection string");
        config.poll_interval = Duration::from_millis(200);
        config
    }

    /// The store on this database.
    pub async fn open(&self) -> PostgresEventStore {
        let (store, _report) = PostgresEventStore::open(self.config())
            .await
            .expect("the store opens");
        store
    }

    /// A plain connection to this database (its driver runs on a task).
    pub async fn connect(&self) -> tokio_postgres::Client {
        tally_test_support::postgres::connect(&self.connection).await
    }
}
