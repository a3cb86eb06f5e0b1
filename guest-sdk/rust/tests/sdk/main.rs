//! The SDK's behaviour, on `Ledger` (`ledger.rs`), a small aggregate defined here:
//! the given/when/then harness, the exported functions on wire data, the
//! `invalid-command` rule, and the checks of the schema tables; and projections over
//! `Ledger`'s events (`projection_subjects.rs`). The plugins' own tests only test
//! their domain rules.

mod harness;
mod ledger;
mod malformed_commands;
mod projection;
mod projection_subjects;
mod schema_tables;
mod wire;
