//! `tally-server`, the `tally` binary: Tally's service and command line.
//!
//! - [`serve`]: the HTTP service (`tally serve`): commands, state and events under
//!   `/v1` ([`api`]), a live event stream (SSE), plugin administration with hot
//!   swap, Prometheus [`metrics`], graceful shutdown. Settings: [`config`].
//! - [`cli`]: the command line; the client commands use [`client`] against a
//!   running service; `tally verify` ([`verify`]) checks a data directory offline;
//!   `tally plugin new` ([`scaffold`]) creates a plugin crate; `tally plugin test`
//!   ([`conformance`]) checks a component against a conformance suite; `tally demo`
//!   ([`demo`]) runs the README's tour by itself, with the service started
//!   [`in_process`] (as the benchmark does).
//!
//! The benchmark is a crate of its own (`host/bench`, the `tally-bench` binary), so that
//! the service depends on no plugin and not on the guest SDK.

pub mod api;
pub mod cli;
mod cli_projection;
pub mod client;
pub mod config;
pub mod conformance;
pub mod demo;
pub mod http_server;
pub mod in_process;
pub mod metrics;
pub mod scaffold;
pub mod serve;
pub mod verify;
