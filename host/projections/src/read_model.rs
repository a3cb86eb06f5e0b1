//! [`ReadModel`]: one projection version's documents and checkpoint, in one redb file.
//!
//! Two tables: `documents`, keyed by `(table, key)`, holding JSON; and `progress`,
//! holding the checkpoint (the next global position to apply) and the count of events
//! skipped by an administrator. A batch's documents and its checkpoint are written in
//! one redb write transaction. A commit is [`Commit::Durable`] (redb's `Immediate`:
//! fsynced before `commit` returns) or [`Commit::Deferred`] (redb's `None`: visible to
//! readers at once, on disk with the next durable commit). After a crash redb opens at
//! its last durable transaction, so the documents are always the fold of exactly the
//! events before the checkpoint: never one applied twice, never one skipped. Deferring
//! only moves that checkpoint back, to be applied again from the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use tally_runtime::{DocumentSource, DocumentWrites, GlobalPosition};

use crate::error::ProjectionError;

/// Documents: `(table, key)` to JSON.
const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
/// Progress: [`CHECKPOINT`] and [`SKIPPED`] to numbers.
const PROGRESS: TableDefinition<&str, u64> = TableDefinition::new("progress");
/// The next global position to apply.
const CHECKPOINT: &str = "checkpoint";
/// Events skipped by `skip` so far.
const SKIPPED: &str = "skipped";

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// On disk when `commit` returns (an fsync).
    Durable,
    /// Visible to readers when `commit` returns; on disk with the next durable commit
    /// (or lost in a crash before it, with its checkpoint).
    Deferred,
}

/// A read model: see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct ReadModel {
    db: Arc<Database>,
    path: PathBuf,
}

impl ReadModel {
    /// Opens the read model at `path`, creating an empty one (checkpoint 0) if missing.
    pub fn open(path: &Path) -> Result<ReadModel, ProjectionError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| storage(path, error))?;
        }
        let db = Database::create(path).map_err(|error| storage(path, error))?;
        let model = ReadModel {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        model.create_tables()?;
        Ok(model)
    }

    /// The file it lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates both tables so that readers never find them missing.
    fn create_tables(&self) -> Result<(), ProjectionError> {
        let txn = self.db.begin_write().map_err(|e| self.storage(e))?;
        txn.open_table(DOCUMENTS).map_err(|e| self.storage(e))?;
        txn.open_table(PROGRESS).map_err(|e| self.storage(e))?;
        txn.commit().map_err(|e| self.storage(e))
    }

    /// The next global position to apply.
    pub fn checkpoint(&self) -> Result<GlobalPosition, ProjectionError> {
        self.snapshot()?.checkpoint()
    }

    /// Writes a batch's documents and moves the checkpoint to `checkpoint`, in one
    /// transaction committed as `commit` says. `skipped` counts events passed over by
    /// an administrator.
    pub fn commit(
        &self,
        writes: &DocumentWrites,
        checkpoint: GlobalPosition,
        skipped: u64,
        commit: Commit,
    ) -> Result<(), ProjectionError> {
        let mut txn = self.db.begin_write().map_err(|e| self.storage(e))?;
        if commit == Commit::Deferred {
            txn.set_durability(Durability::None)
                .map_err(|e| self.storage(e))?;
        }
        {
            let mut progress = txn.open_table(PROGRESS).map_err(|e| self.storage(e))?;
            let previous = progress
                .get(CHECKPOINT)
                .map_err(|e| self.storage(e))?
                .map_or(0, |value| value.value());
            assert!(
                checkpoint.get() >= previous,
                "a checkpoint never moves back ({previous} to {checkpoint})"
            );
            progress
                .insert(CHECKPOINT, checkpoint.get())
                .map_err(|e| self.storage(e))?;
            if skipped > 0 {
                let before = progress
                    .get(SKIPPED)
                    .map_err(|e| self.storage(e))?
                    .map_or(0, |value| value.value());
                progress
                    .insert(SKIPPED, before + skipped)
                    .map_err(|e| self.storage(e))?;
            }
            let mut documents = txn.open_table(DOCUMENTS).map_err(|e| self.storage(e))?;
            for (key, data) in writes.iter() {
                let at = (key.table.as_str(), key.key.as_str());
                match data {
                    Some(data) => documents.insert(at, data).map(drop),
                    None => documents.remove(at).map(drop),
                }
                .map_err(|e| self.storage(e))?;
            }
        }
        txn.commit().map_err(|e| self.storage(e))
    }

    /// Puts every deferred commit on disk: an empty durable transaction.
    pub fn make_durable(&self) -> Result<(), ProjectionError> {
        let txn = self.db.begin_write().map_err(|e| self.storage(e))?;
        txn.commit().map_err(|e| self.storage(e))
    }

    /// A consistent view of the read model as last committed.
    pub fn snapshot(&self) -> Result<Snapshot, ProjectionError> {
        let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| self.storage(e))?;
        let progress = txn.open_table(PROGRESS).map_err(|e| self.storage(e))?;
        Ok(Snapshot {
            documents,
            progress,
            path: self.path.clone(),
        })
    }

    fn storage(&self, error: impl std::fmt::Display) -> ProjectionError {
        storage(&self.path, error)
    }
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn storage(path: &Path, error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Storage {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// A read model as of one committed transaction: documents and checkpoint agree.
pub struct Snapshot {
    documents: ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    progress: ReadOnlyTable<&'static str, u64>,
    path: PathBuf,
}

/// One page of a table, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Keys with their documents (JSON).
    pub documents: Vec<(String, Vec<u8>)>,
    /// The key to pass as `after` for the next page, if there may be one.
    pub next_after: Option<String>,
}

impl Snapshot {
    /// The next global position to apply, as of this snapshot.
    pub fn checkpoint(&self) -> Result<GlobalPosition, ProjectionError> {
        self.progress_value(CHECKPOINT).map(GlobalPosition::new)
    }

    /// Events skipped by an administrator so far.
    pub fn skipped(&self) -> Result<u64, ProjectionError> {
        self.progress_value(SKIPPED)
    }

    fn progress_value(&self, name: &str) -> Result<u64, ProjectionError> {
        let value = self
            .progress
            .get(name)
            .map_err(|error| storage(&self.path, error))?;
        Ok(value.map_or(0, |value| value.value()))
    }

    /// The document at `key` in `table`.
    pub fn document(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, ProjectionError> {
        let found = self
            .documents
            .get((table, key))
            .map_err(|error| storage(&self.path, error))?;
        Ok(found.map(|document| document.value().to_vec()))
    }

    /// Up to `limit` documents of `table` whose keys start with `prefix`, after the
    /// key `after` (exclusive) if given, in key order.
    pub fn page(
        &self,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ProjectionError> {
        let start = after.map_or(prefix, |after| after.max(prefix));
        let range = self
            .documents
            .range((table, start)..)
            .map_err(|error| storage(&self.path, error))?;
        let mut documents = Vec::new();
        for entry in range {
            let (key, value) = entry.map_err(|error| storage(&self.path, error))?;
            let (entry_table, entry_key) = key.value();
            if entry_table != table || !entry_key.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|after| entry_key <= after) {
                continue;
            }
            if documents.len() == limit {
                let next_after = documents.last().map(|(key, _): &(String, _)| key.clone());
                return Ok(Page {
                    documents,
                    next_after,
                });
            }
            documents.push((entry_key.to_owned(), value.value().to_vec()));
        }
        Ok(Page {
            documents,
            next_after: None,
        })
    }
}

impl DocumentSource for Snapshot {
    fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.document(table, key).map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_runtime::DocumentWrites;

    fn open() -> (tempfile::TempDir, ReadModel) {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(&dir.path().join("p").join("1.0.0.redb")).unwrap();
        (dir, model)
    }

    #[test]
    fn a_new_read_model_is_empty_at_position_zero() {
        let (_dir, model) = open();
        assert_eq!(model.checkpoint().unwrap(), GlobalPosition::START);
        assert_eq!(model.snapshot().unwrap().document("t", "k").unwrap(), None);
    }

    #[test]
    fn documents_and_checkpoint_survive_reopening() {
        let (dir, model) = open();
        model
            .commit(
                &DocumentWrites::default(),
                GlobalPosition::new(7),
                2,
                Commit::Durable,
            )
            .unwrap();
        drop(model);
        let model = ReadModel::open(&dir.path().join("p").join("1.0.0.redb")).unwrap();
        let snapshot = model.snapshot().unwrap();
        assert_eq!(snapshot.checkpoint().unwrap(), GlobalPosition::new(7));
        assert_eq!(snapshot.skipped().unwrap(), 2);
    }

    #[test]
    #[should_panic(expected = "never moves back")]
    fn the_checkpoint_never_moves_back() {
        let (_dir, model) = open();
        let none = DocumentWrites::default();
        model
            .commit(&none, GlobalPosition::new(5), 0, Commit::Deferred)
            .unwrap();
        model
            .commit(&none, GlobalPosition::new(4), 0, Commit::Deferred)
            .unwrap();
    }

    /// Set in the child process of the test below: the read model's path.
    const CHILD_MODEL: &str = "TALLY_READ_MODEL_CHILD";

    #[test]
    fn deferred_commits_are_visible_at_once_and_on_disk_once_made_durable() {
        if let Some(path) = std::env::var_os(CHILD_MODEL) {
            commit_then_die(Path::new(&path));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.redb");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "read_model::tests::deferred_commits_are_visible_at_once_and_on_disk_once_made_durable",
                "--nocapture",
            ])
            .env(CHILD_MODEL, &path)
            .status()
            .unwrap();
        assert!(!status.success(), "the child dies mid-way: {status}");
        let model = ReadModel::open(&path).unwrap();
        let snapshot = model.snapshot().unwrap();
        assert_eq!(
            snapshot.checkpoint().unwrap(),
            GlobalPosition::new(5),
            "what was made durable survives the crash, the deferred commit after it does not"
        );
        assert_eq!(
            snapshot.document("t", "k").unwrap().as_deref(),
            Some(&b"5"[..])
        );
    }

    /// In the child: two deferred commits made durable, a third deferred one, then an
    /// abort (no destructor runs, nothing more is written).
    fn commit_then_die(path: &Path) -> ! {
        let model = ReadModel::open(path).unwrap();
        for position in [3, 5, 9] {
            let mut writes = DocumentWrites::default();
            let key = tally_runtime::DocumentKey {
                table: "t".into(),
                key: "k".into(),
            };
            writes.put(key, position.to_string().into_bytes());
            let checkpoint = GlobalPosition::new(position);
            model
                .commit(&writes, checkpoint, 0, Commit::Deferred)
                .unwrap();
            assert_eq!(model.checkpoint().unwrap(), checkpoint, "visible at once");
            if position == 5 {
                model.make_durable().unwrap();
            }
        }
        std::process::abort();
    }
}
