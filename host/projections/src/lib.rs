//! `tally-projections`: Tally's read side.
//!
//! A projection is a WebAssembly component of the `tally:projection/plugin` world
//! (`wit/projection/projection.wit`, loaded by `tally-runtime`'s [`LoadedProjection`](tally_runtime::LoadedProjection)):
//! it folds the events of some aggregate types into JSON documents in named tables.
//! This crate runs them:
//!
//! - [`ReadModel`]: one projection version's documents and checkpoint in a redb file;
//!   a batch's documents and its checkpoint commit in one transaction, so every event
//!   is applied exactly once across crashes.
//! - [`Projector`]: the task that feeds a projection durable events in log order,
//!   upcast to the current schemas of their active plugins, batch by batch; a failure
//!   is pinned to one event and stops the projection, `faulted`, until `retry` or `skip`.
//! - [`Projections`]: the installed projections and their lifecycle (install, activate,
//!   roll back, rebuild: each new read model built blue/green beside the one serving,
//!   and the active version recorded durably), queried by document or by key-ordered
//!   page, optionally waiting until a position is applied (read your writes).

mod error;
mod projector;
mod read_model;
mod record;
mod service;

pub use error::ProjectionError;
pub use projector::{
    Control, ControlAt, Fault, Progress, ProjectionState, Projector, ProjectorConfig,
};
pub use read_model::{Commit, Page, ReadModel, Snapshot};
pub use record::BuildReason;
pub use service::{
    BuildStatus, InstalledProjection, ProjectionInstallOptions, ProjectionStatus, Projections,
    ProjectionsConfig, RATE_WINDOW, Throughput,
};
