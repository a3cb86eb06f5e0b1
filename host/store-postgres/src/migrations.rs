//! The schema's migrations: numbered, applied in order at open, recorded in
//! `tally_schema_migrations`, each in the transaction that records it.
//!
//! A migration is never changed once released; a change of the schema is a new one.

use std::fmt;

use tokio_postgres::Client;

use crate::error::{PgStoreError, Result};

/// A migration's number: migrations apply in this order, each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MigrationVersion(u32);

impl MigrationVersion {
    /// Migration `version`.
    pub const fn new(version: u32) -> MigrationVersion {
        MigrationVersion(version)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MigrationVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One change of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number.
    pub version: MigrationVersion,
    /// What it does, in a few words.
    pub name: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static str,
}

/// A migration as the database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its number.
    pub version: MigrationVersion,
    /// Its name when it was applied.
    pub name: String,
    /// When it was applied, milliseconds since the Unix epoch.
    pub applied_at_ms: u64,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: MigrationVersion::new(1),
        name: "event log, streams, command ids, snapshots, tally_append",
        sql: include_str!("migrations/0001_event_log.sql"),
    },
    Migration {
        version: MigrationVersion::new(2),
        name: "plugin components",
        sql: include_str!("migrations/0002_components.sql"),
    },
];

/// Every migration this build knows, in the order they apply.
pub fn migrations() -> &'static [Migration] {
    MIGRATIONS
}

/// The key of the advisory lock that keeps two hosts from migrating at once.
const MIGRATION_LOCK: i64 = 0x7461_6c6c_795f_6d67; // "tally_mg"

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tally_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// Applies the migrations the database lacks, in one transaction under an advisory
/// lock (hosts opening together wait for each other). Returns the ones applied now.
/// Fails if the database has a migration this build does not know: it was migrated by
/// a newer Tally.
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<MigrationVersion>> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction.batch_execute(CREATE_TABLE).await?;
    let row = transaction
        .query_one(
            "SELECT coalesce(max(version), 0) FROM tally_schema_migrations",
            &[],
        )
        .await?;
    let current = schema_version(row.try_get(0)?)?;
    check_known(current)?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        apply(&transaction, migration).await?;
        applied.push(migration.version);
    }
    transaction.commit().await?;
    Ok(applied)
}

/// Runs one migration and records it.
async fn apply(transaction: &tokio_postgres::Transaction<'_>, migration: &Migration) -> Result<()> {
    transaction
        .batch_execute(migration.sql)
        .await
        .map_err(|e| {
            PgStoreError::Migration(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.name
            ))
        })?;
    let version = i32::try_from(migration.version.get())
        .map_err(|_| PgStoreError::Migration(format!("migration {}", migration.version)))?;
    transaction
        .execute(
            "INSERT INTO tally_schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &migration.name],
        )
        .await?;
    tracing::info!(version = %migration.version, name = migration.name, "schema migration applied");
    Ok(())
}

/// Refuses a schema newer than every migration this build knows.
fn check_known(current: MigrationVersion) -> Result<()> {
    let latest = MIGRATIONS
        .last()
        .map_or(MigrationVersion::new(0), |m| m.version);
    if current > latest {
        return Err(PgStoreError::Migration(format!(
            "the database's schema is at migration {current}; this build knows up to {latest}"
        )));
    }
    Ok(())
}

fn schema_version(value: i32) -> Result<MigrationVersion> {
    u32::try_from(value)
        .map(MigrationVersion::new)
        .map_err(|_| PgStoreError::Corrupt(format!("migration number {value}")))
}

/// The migrations the database has applied, in order.
pub(crate) async fn applied(client: &Client) -> Result<Vec<AppliedMigration>> {
    let rows = client
        .query(
            "SELECT version, name, floor(extract(epoch FROM applied_at) * 1000)::bigint \
             FROM tally_schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let applied_at: i64 = row.try_get(2)?;
            Ok(AppliedMigration {
                version: schema_version(row.try_get(0)?)?,
                name: row.try_get(1)?,
                applied_at_ms: crate::convert::from_db(applied_at, "applied_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_1_without_gaps() {
        for (i, migration) in migrations().iter().enumerate() {
            assert_eq!(
                migration.version.get() as usize,
                i + 1,
                "{}",
                migration.name
            );
            assert!(!migration.sql.trim().is_empty());
        }
    }

    #[test]
    fn a_schema_newer_than_the_build_is_refused() {
        assert!(check_known(MigrationVersion::new(1)).is_ok());
        assert!(matches!(
            check_known(MigrationVersion::new(999)),
            Err(PgStoreError::Migration(_))
        ));
    }
}
