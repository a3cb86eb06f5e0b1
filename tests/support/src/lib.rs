//! What Tally's test binaries share, written once.
//!
//! - [`crash`]: the harness of the crash tests that kill a copy of themselves with
//!   SIGKILL at random moments (`host/wal/tests/crash.rs`, `host/store/tests/crash.rs`).
//! - [`Rng`], [`env_number`], [`seed_from_env`]: seeded, replayable randomness and the
//!   environment knobs of the long runs.
//! - [`copy_dir`], [`flip_bit`], [`segment_files`]: damage and snapshots of logs
//!   on disk.
//! - [`proptest_config`], [`single_worker_runtime`]: the settings of the property tests.
//! - [`call_builders!`]: the builders of a plugin call's inputs, for the host's types and
//!   for a test's own bindings of the same WIT records.
//! - `components` (feature `components`): the plugin components, built from `plugins/`
//!   for wasm32-wasip2 by this crate's build script.
//! - `postgres` (feature `postgres`): a PostgreSQL server per test binary and a
//!   database per test.
//! - `postgres_cluster` (feature `postgres`): a primary and its synchronous streaming
//!   replica, to lose the primary and fail over.
//!
//! Only ever a dev-dependency: no product crate depends on it.

mod calls;
pub mod crash;
mod env;
mod fs;
mod rng;
mod runner;

#[cfg(feature = "components")]
pub mod components;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_cluster;

pub use calls::NOW_MS;
pub use env::{env_number, seed_from_env};
pub use fs::{copy_dir, flip_bit, segment_files};
pub use rng::Rng;
pub use runner::{proptest_config, single_worker_runtime};
