//! The files of one projection's folder: its components, its read models, and the
//! record (`active.json`) of which version is active, which was active before it, and
//! which is being built.
//!
//! ```text
//! projections/<name>/
//!     1.0.0.wasm  2.0.0.wasm      installed components, by version
//!     1.0.0.g1.redb  2.0.0.g3.redb  read models, by version and generation
//!     active.json                 the record
//! ```
//!
//! Every build gets a read model of a new generation, so that a version can be built
//! again into a fresh file while its current read model serves. Generation 0 is the
//! name read models had before there were generations, `<version>.redb`, kept so that
//! an older data directory opens as it was. The record is written through a temporary
//! file, fsynced, renamed, and the folder fsynced: after a crash it is the old record or
//! the new one, never a mix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ProjectionError;

/// The record's file name in a projection's folder.
pub(crate) const RECORD_FILE: &str = "active.json";

/// Why a version is being built beside the active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildReason {
    /// An administrator activated another version.
    Activate,
    /// An administrator rolled back to the previously active version.
    Rollback,
    /// An administrator rebuilt the active version from the start of the log.
    Rebuild,
}

impl BuildReason {
    /// Its name in the API: `activate`, `rollback`, `rebuild`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildReason::Activate => "activate",
            BuildReason::Rollback => "rollback",
            BuildReason::Rebuild => "rebuild",
        }
    }
}

/// A version with one of its read models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub version: semver::Version,
    pub generation: u64,
}

impl Slot {
    /// The read model's file name: `<version>.g<generation>.redb`, or `<version>.redb`
    /// for generation 0.
    pub fn model_file(&self) -> String {
        if self.generation == 0 {
            format!("{}.redb", self.version)
        } else {
            format!("{}.g{}.redb", self.version, self.generation)
        }
    }
}

/// What `active.json` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The version queries are served from.
    pub active: Slot,
    /// The version active before it, whose read model is kept for a rollback.
    pub previous: Option<Slot>,
    /// The version being built beside the active one, and why.
    pub building: Option<(Slot, BuildReason)>,
    /// The generation the next fresh read model gets.
    pub next_generation: u64,
}

/// The record as JSON.
#[derive(Serialize, Deserialize)]
struct RecordFile {
    active: SlotFile,
    previous: Option<SlotFile>,
    building: Option<BuildFile>,
    next_generation: u64,
}

#[derive(Serialize, Deserialize)]
struct SlotFile {
    version: String,
    generation: u64,
}

#[derive(Serialize, Deserialize)]
struct BuildFile {
    version: String,
    generation: u64,
    reason: BuildReason,
}

impl Record {
    /// Reads the record of the projection folder `folder`, if it has one.
    pub fn read(folder: &Path) -> Result<Option<Record>, ProjectionError> {
        let path = folder.join(RECORD_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ProjectionError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let invalid = |message: String| ProjectionError::Io {
            action: "read",
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        };
        let file: RecordFile =
            serde_json::from_slice(&bytes).map_err(|error| invalid(error.to_string()))?;
        let slot = |version: &str, generation| {
            semver::Version::parse(version)
                .map(|version| Slot {
                    version,
                    generation,
                })
                .map_err(|error| invalid(format!("version {version:?}: {error}")))
        };
        Ok(Some(Record {
            active: slot(&file.active.version, file.active.generation)?,
            previous: file
                .previous
                .map(|previous| slot(&previous.version, previous.generation))
                .transpose()?,
            building: file
                .building
                .map(|building| {
                    slot(&building.version, building.generation).map(|s| (s, building.reason))
                })
                .transpose()?,
            next_generation: file.next_generation,
        }))
    }

    /// Writes the record into `folder`, durably (see the module documentation).
    pub fn write(&self, folder: &Path) -> Result<(), ProjectionError> {
        let slot = |slot: &Slot| SlotFile {
            version: slot.version.to_string(),
            generation: slot.generation,
        };
        let file = RecordFile {
            active: slot(&self.active),
            previous: self.previous.as_ref().map(slot),
            building: self.building.as_ref().map(|(building, reason)| BuildFile {
                version: building.version.to_string(),
                generation: building.generation,
                reason: *reason,
            }),
            next_generation: self.next_generation,
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("a record serializes");
        bytes.push(b'\n');
        write_atomically(&folder.join(RECORD_FILE), &bytes)
    }

    /// The read model files it refers to.
    pub fn model_files(&self) -> BTreeSet<String> {
        let mut files = BTreeSet::from([self.active.model_file()]);
        files.extend(self.previous.iter().map(Slot::model_file));
        files.extend(self.building.iter().map(|(slot, _)| slot.model_file()));
        files
    }
}

/// The versions of the components (`<version>.wasm`) in `folder`.
pub(crate) fn installed_versions(
    folder: &Path,
) -> Result<BTreeSet<semver::Version>, ProjectionError> {
    let io = |source| ProjectionError::Io {
        action: "read",
        path: folder.to_owned(),
        source,
    };
    let mut versions = BTreeSet::new();
    for file in std::fs::read_dir(folder).map_err(io)? {
        let file = file.map_err(io)?.path();
        let version = file
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wasm"))
            .and_then(|stem| semver::Version::parse(stem).ok());
        versions.extend(version);
    }
    Ok(versions)
}

/// The record of a folder written before there were records: the newest version is
/// active, with its read model `<version>.redb`; the one below it is the previous, if
/// its read model is there.
pub(crate) fn record_of_old_folder(
    folder: &Path,
    installed: &BTreeSet<semver::Version>,
) -> Option<Record> {
    let mut newest_first = installed.iter().rev();
    let active = Slot {
        version: newest_first.next()?.clone(),
        generation: 0,
    };
    let previous = newest_first
        .next()
        .map(|version| Slot {
            version: version.clone(),
            generation: 0,
        })
        .filter(|previous| folder.join(previous.model_file()).is_file());
    Some(Record {
        active,
        previous,
        building: None,
        next_generation: 1,
    })
}

/// Deletes the read model files (`*.redb`) of `folder` that `keep` does not name: those
/// of builds given up, or replaced, before a crash let them be deleted.
pub(crate) fn delete_other_models(folder: &Path, keep: &BTreeSet<String>) {
    let Ok(files) = std::fs::read_dir(folder) else {
        return;
    };
    for file in files.flatten() {
        let name = file.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".redb") && !keep.contains(name) {
            delete_model(&file.path());
        }
    }
}

/// Deletes the read model file at `path`; a failure is logged, not an error (a file
/// left behind is deleted at the next start).
pub(crate) fn delete_model(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "read model deleted"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "read model not deleted");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced, then renamed; then
/// fsyncs the folder.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProjectionError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| ProjectionError::Io {
            action,
            path,
            source,
        }
    };
    let parent = path.parent().expect("a projection file is in a folder");
    std::fs::create_dir_all(parent).map_err(io("create"))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary).map_err(io("create"))?;
        file.write_all(bytes).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
    }
    std::fs::rename(&temporary, path).map_err(io("rename"))?;
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(version: &str, generation: u64) -> Slot {
        Slot {
            version: semver::Version::parse(version).unwrap(),
            generation,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), None);
        let record = Record {
            active: slot("2.0.0", 3),
            previous: Some(slot("1.0.0", 0)),
            building: Some((slot("2.0.0", 4), BuildReason::Rebuild)),
            next_generation: 5,
        };
        record.write(dir.path()).unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), Some(record.clone()));
        assert_eq!(
            record.model_files(),
            BTreeSet::from([
                "2.0.0.g3.redb".to_owned(),
                "1.0.0.redb".to_owned(),
                "2.0.0.g4.redb".to_owned(),
            ])
        );
        assert!(!dir.path().join("active.json.partial").exists());
    }

    #[test]
    fn an_old_folder_has_its_newest_version_active() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.0.0.redb"), b"").unwrap();
        let installed = BTreeSet::from([
            semver::Version::new(0, 9, 0),
            semver::Version::new(1, 0, 0),
            semver::Version::new(2, 0, 0),
        ]);
        let record = record_of_old_folder(dir.path(), &installed).unwrap();
        assert_eq!(record.active, slot("2.0.0", 0));
        assert_eq!(record.previous, Some(slot("1.0.0", 0)));
        std::fs::remove_file(dir.path().join("1.0.0.redb")).unwrap();
        let record = record_of_old_folder(dir.path(), &installed).unwrap();
        assert_eq!(record.previous, None, "no read model is kept for 1.0.0");
    }
}
