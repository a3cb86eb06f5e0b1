//! The errors of the [`Runtime`](crate::Runtime).

use crate::{CallError, InstallError, Rejection};
use tally_store::{GlobalPosition, LogError, SchemaVersion, StreamVersion};

/// Why a command was not applied. Nothing was appended when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No plugin is active for the aggregate type.
    #[error("unknown aggregate type `{0}`: no plugin is active for it")]
    UnknownAggregateType(String),
    /// The aggregate id, command id or command is unusable.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The plugin refused the command (a business rule): an answer, not a failure.
    #[error("rejected ({}): {}", .0.code, .0.message)]
    Rejected(Rejection),
    /// The aggregate is not at the version the caller expected.
    #[error("wrong expected version: expected {expected}, the aggregate is at {actual}")]
    WrongExpectedVersion {
        /// What the caller expected.
        expected: StreamVersion,
        /// The aggregate's version.
        actual: StreamVersion,
    },
    /// The command id was used before for another command: for another aggregate, or
    /// for another command name or data (told by the command's fingerprint). A retry of
    /// the same command is not an error: it answers the first outcome, as a duplicate.
    #[error("command id {command_id} was already used for another command, on {stream}")]
    CommandIdReused {
        /// The command id.
        command_id: String,
        /// The aggregate it was used for (`type/id`).
        stream: String,
    },
    /// The plugin failed (trap, panic, CPU or memory limit, contract violation).
    #[error("plugin {aggregate_type} {version} failed: {error}")]
    Plugin {
        /// The aggregate type.
        aggregate_type: String,
        /// The plugin version that failed.
        version: semver::Version,
        /// What happened.
        error: CallError,
    },
    /// The aggregate's stored events cannot be folded by the active plugin.
    #[error("cannot rebuild {stream} with plugin {version}: {message}")]
    Rehydrate {
        /// The aggregate (`type/id`).
        stream: String,
        /// The active plugin version.
        version: semver::Version,
        /// The plugin's error.
        message: String,
    },
    /// The store refused or failed the append (see [`LogError::is_storage_full`]).
    #[error(transparent)]
    Store(#[from] LogError),
    /// The runtime is closing or closed.
    #[error("the runtime is closed")]
    Closed,
}

impl CommandError {
    /// Whether the disk ran out of space: retry once space is freed.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, CommandError::Store(error) if error.is_storage_full())
    }
}

/// Why installing, activating or rolling back a plugin failed. The active version
/// keeps serving when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component was refused at load.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The version is not newer than the active one.
    #[error(
        "{aggregate_type} {version} is not newer than the active version {active} \
         (use force to install it anyway)"
    )]
    NotNewer {
        /// The aggregate type.
        aggregate_type: String,
        /// The version offered.
        version: semver::Version,
        /// The active version.
        active: semver::Version,
    },
    /// The same version is installed with other bytes.
    #[error(
        "{aggregate_type} {version} is already installed with other contents \
         (sha256 {installed}); give the new build a new version"
    )]
    VersionExists {
        /// The aggregate type.
        aggregate_type: String,
        /// The version.
        version: semver::Version,
        /// Hex SHA-256 of the installed component.
        installed: String,
    },
    /// No such aggregate type has plugins installed.
    #[error("no plugin is installed for aggregate type `{0}`")]
    UnknownAggregateType(String),
    /// The version is not installed.
    #[error("{aggregate_type} {version} is not installed")]
    UnknownVersion {
        /// The aggregate type.
        aggregate_type: String,
        /// The version asked for.
        version: String,
    },
    /// Rollback without an earlier version to return to.
    #[error("{0} has no earlier active version to roll back to")]
    NothingToRollBack(String),
    /// Stored events have schemas the target version does not know.
    #[error(
        "{aggregate_type} {target} does not know schema version {schema_version} of event \
         {event}, which is stored (first at position {position}); use force to switch anyway"
    )]
    UnknownSchema {
        /// The aggregate type.
        aggregate_type: String,
        /// The version that was to become active.
        target: semver::Version,
        /// The event name.
        event: String,
        /// Its stored schema version.
        schema_version: SchemaVersion,
        /// Position of the first such event.
        position: GlobalPosition,
    },
    /// Verification: a stream could not be folded under the new version.
    #[error("verification failed: {aggregate_type} {version} cannot fold {stream}: {message}")]
    VerifyFailed {
        /// The aggregate type.
        aggregate_type: String,
        /// The version being verified.
        version: semver::Version,
        /// The stream (`type/id`).
        stream: String,
        /// What failed.
        message: String,
    },
    /// Storing the component failed.
    #[error("cannot store the plugin component: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LogError),
    /// The runtime is closing or closed.
    #[error("the runtime is closed")]
    Closed,
}

/// Why the runtime could not open, or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] LogError),
    /// The plugin engine could not start.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
    /// An installed plugin could not be restored at open.
    #[error("cannot restore installed plugin {what}: {message}")]
    Restore {
        /// Which plugin (type, version, file).
        what: String,
        /// Why.
        message: String,
    },
    /// Reading or creating the data directory failed.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// No plugin is active for the aggregate type.
    #[error("unknown aggregate type `{0}`: no plugin is active for it")]
    UnknownAggregateType(String),
    /// A plugin failed while folding or rendering a state.
    #[error(transparent)]
    Command(#[from] Box<CommandError>),
    /// An argument is unusable.
    #[error("invalid request: {0}")]
    Invalid(String),
}
