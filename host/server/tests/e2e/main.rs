//! End-to-end tests: the real `tally` binary, started on an ephemeral port in a
//! temporary data directory, driven over HTTP (and through its CLI).

mod api;
mod cli;
mod command_data;
mod idempotency;
mod lifecycle;
mod openapi;
mod plugins;
mod postgres;
mod projections;
mod stream;

#[path = "../common/mod.rs"]
mod common;

pub use common::*;
