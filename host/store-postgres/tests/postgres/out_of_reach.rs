//! The database out of reach, as in a failover or a restart: reads fail with
//! `Unavailable` (to be tried again, not a failure of the store), and a subscription
//! waits and reads on once the database is back instead of ending.
//!
//! Out of reach here: the store connects as a role of its own, which is then refused
//! (`NOLOGIN`) and its connections ended (`pg_terminate_backend`).

use std::time::Duration;

use tally_store::{
    ExpectedVersion, GlobalPosition, LogError, StreamRead, StreamVersion, SubscriptionFilter,
};
use tally_store_postgres::{PgStoreError, PostgresEventStore};

use crate::server::TestDatabase;
use crate::{database_or_skip, events, no_command, stream};

const WAIT: Duration = Duration::from_secs(30);

/// A role of a test's own (a superuser, so that it may do what the store does), which
/// the test can lock out of the database and let back in.
struct Role {
    name: String,
    admin: tokio_postgres::Client,
    connection: String,
}

impl Role {
    /// A new role named after `database`, which must hold the store's schema already.
    async fn new(database: &TestDatabase) -> Role {
        let admin = database.connect().await;
        let dbname = database
            .connection
            .split_whitespace()
            .find_map(|setting| setting.strip_prefix("dbname="))
            .expect("a dbname");
        let name = format!("reach_{dbname}");
        admin
            .batch_execute(&format!("CREATE ROLE {name} LOGIN SUPERUSER"))
            .await
            .expect("CREATE ROLE");
        let connection = database
            .connection
            .replace("user=tally", &format!("user={name}"));
        Role {
            name,
            admin,
            connection,
        }
    }

    /// The store, connected as this role.
    async fn open(&self) -> PostgresEventStore {
        let config = tally_store_postgres::PostgresConfig::new(&self.connection)
            .expect("a valid connection string");
        PostgresEventStore::open(config)
            .await
            .expect("the store opens")
            .0
    }

    /// Refuses the role's logins and ends its connections; returns once none is left
    /// (a connection whose login passed just before the refusal is ended in a later
    /// turn).
    async fn lock_out(&self) {
        self.admin
            .batch_execute(&format!("ALTER ROLE {} NOLOGIN", self.name))
            .await
            .expect("refuse the role's logins");
        loop {
            let row = self
                .admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE usename = $1",
                    &[&self.name],
                )
                .await
                .expect("end the role's connections");
            if row.get::<_, i64>(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lets the role log in again.
    async fn let_in(&self) {
        self.admin
            .batch_execute(&format!("ALTER ROLE {} LOGIN", self.name))
            .await
            .expect("let the role in");
    }
}

#[tokio::test]
async fn reads_fail_as_unavailable_while_the_database_is_out_of_reach() {
    let database = database_or_skip!();
    drop(database.open().await);
    let role = Role::new(&database).await;
    let store = role.open().await;
    let account = stream("a");
    store
        .append(&account, ExpectedVersion::Any, events("E", 2), no_command())
        .await
        .unwrap();
    role.lock_out().await;

    let read = store.read_stream(&account, StreamRead::forward(StreamVersion::FIRST, 10));
    let err = read.await.expect_err("the database is out of reach");
    assert!(matches!(err, PgStoreError::Unavailable(_)), "{err:?}");
    let err = store
        .stream_version(&account)
        .await
        .expect_err("out of reach");
    assert!(
        matches!(LogError::from(err), LogError::Unavailable { .. }),
        "the runtime is told to try again"
    );

    role.let_in().await;
    let read = store.read_stream(&account, StreamRead::forward(StreamVersion::FIRST, 10));
    assert_eq!(read.await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_subscription_reads_on_once_the_database_is_back() {
    let database = database_or_skip!();
    let writer = database.open().await;
    writer
        .append(
            &stream("a"),
            ExpectedVersion::Any,
            events("E", 3),
            no_command(),
        )
        .await
        .unwrap();
    let role = Role::new(&database).await;
    let reader = role.open().await;
    role.lock_out().await;

    // The reader knows the log ends at 3: its subscription reads a page at once, and
    // cannot while the role is locked out.
    let mut subscription = reader.subscribe(GlobalPosition::new(0), SubscriptionFilter::default());
    let first = tokio::spawn(async move {
        let event = subscription.next().await;
        (event, subscription)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !first.is_finished(),
        "the subscription ended while the database was out of reach: {:?}",
        first.await.map(|(event, _)| event)
    );

    role.let_in().await;
    let (event, mut subscription) = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(event.unwrap().position, GlobalPosition::new(0));
    for position in 1..3 {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.position, GlobalPosition::new(position));
    }
}
