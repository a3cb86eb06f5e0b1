//! [`ProjectionError`]: why a projection operation failed.

use std::path::PathBuf;

use tally_runtime::{GlobalPosition, InstallError, RuntimeError};

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The component is not a valid projection.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// No projection of that name is installed.
    #[error("no projection named {0:?}")]
    UnknownProjection(String),
    /// The projection has no table of that name.
    #[error("projection {projection:?} has no table {table:?} (its tables: {tables})")]
    UnknownTable {
        /// The projection.
        projection: String,
        /// The table asked for.
        table: String,
        /// The tables it has, comma-separated.
        tables: String,
    },
    /// This version (or a newer one) of the projection is already installed.
    #[error("projection {name} {version} is not newer than the installed {installed}")]
    VersionNotNewer {
        /// The projection.
        name: String,
        /// The version offered.
        version: semver::Version,
        /// The newest installed version.
        installed: semver::Version,
    },
    /// Another component of that version of the projection is installed already.
    #[error("projection {name} {version} is installed already, with other bytes")]
    VersionExists {
        /// The projection.
        name: String,
        /// The version offered.
        version: semver::Version,
    },
    /// The projection has no installed version of that number.
    #[error("projection {name:?} has no installed version {version:?}")]
    UnknownVersion {
        /// The projection.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// `rollback` of a projection with no previously active version kept.
    #[error("projection {0:?} has no previously active version to roll back to")]
    NothingToRollBack(String),
    /// Aggregate types and projections share one namespace (the routes
    /// `/v1/plugins/{name}/activate` and `rollback` serve both): the name is taken.
    #[error("{0:?} is the name of an aggregate type; a projection cannot have it")]
    NameTaken(String),
    /// The projections are closed (the service is shutting down).
    #[error("the projections are closed")]
    Closed,
    /// A read asked for a position the projection did not reach within the wait.
    #[error("projection {projection:?} reached position {reached}, not {wanted}, within the wait")]
    NotYet {
        /// The projection.
        projection: String,
        /// The position asked for.
        wanted: GlobalPosition,
        /// The position it reached.
        reached: GlobalPosition,
    },
    /// A read asked for a position past the end of the log: no command's answer gives
    /// one, so it is a mistake, not something to wait for.
    #[error(
        "position {wanted} is past the end of the log ({end}); give a position from a command's answer"
    )]
    BeyondLog {
        /// The position asked for.
        wanted: GlobalPosition,
        /// The end of the log.
        end: GlobalPosition,
    },
    /// `retry` or `skip` of a projection that is not faulted.
    #[error("projection {0:?} is not faulted")]
    NotFaulted(String),
    /// The read model's file failed.
    #[error("read model {}: {message}", path.display())]
    Storage {
        /// The read model's file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Reading or upcasting the log failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A file of the projections directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
