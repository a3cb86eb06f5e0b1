//! The schema's migrations: applied once at open, listed, a newer schema refused.

use tally_store_postgres::{MigrationVersion, PgStoreError, PostgresEventStore, migrations};

use crate::database_or_skip;

#[tokio::test]
async fn migrations_apply_once_and_are_listed() {
    let database = database_or_skip!();
    let (store, report) = PostgresEventStore::open(database.config()).await.unwrap();
    let known: Vec<MigrationVersion> = migrations().iter().map(|m| m.version).collect();
    assert_eq!(report.migrations_applied, known);
    // Two more hosts opening at once: they wait for each other, and apply nothing.
    let (second, third) = tokio::join!(
        PostgresEventStore::open(database.config()),
        PostgresEventStore::open(database.config())
    );
    let (second, report) = second.unwrap();
    assert!(report.migrations_applied.is_empty());
    let (third, report) = third.unwrap();
    assert!(report.migrations_applied.is_empty());

    let applied = store.applied_migrations().await.unwrap();
    let listed: Vec<(MigrationVersion, &str)> = applied
        .iter()
        .map(|m| (m.version, m.name.as_str()))
        .collect();
    let expected: Vec<(MigrationVersion, &str)> =
        migrations().iter().map(|m| (m.version, m.name)).collect();
    assert_eq!(listed, expected);
    for store in [store, second, third] {
        store.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let database = database_or_skip!();
    let store = database.open().await;
    store.close().await.unwrap();
    let client = database.connect().await;
    client
        .execute(
            "INSERT INTO tally_schema_migrations (version, name) VALUES (9999, 'from the future')",
            &[],
        )
        .await
        .unwrap();
    let err = PostgresEventStore::open(database.config())
        .await
        .unwrap_err();
    assert!(matches!(err, PgStoreError::Migration(_)), "{err}");
}
