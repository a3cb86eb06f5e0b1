//! The PostgreSQL store against a real PostgreSQL: one server for this binary
//! (`server.rs`), a database per test. The semantics every store shares are the
//! conformance suite (`conformance.rs`); the modules beside it test what is this
//! store's own: the commit order of positions, group commit, migrations, several
//! hosts on one database, the database out of reach.

mod appends;
mod commit_order;
mod conformance;
mod group_commit;
mod migrations;
mod out_of_reach;
mod server;
mod subscriptions;

use tally_store::{AppendOptions, ExpectedVersion, NewEvent, StreamId};

/// The database of a test, or a return from the test when PostgreSQL is missing (and
/// this is not CI: there, `server::database` fails the test).
#[macro_export]
macro_rules! database_or_skip {
    () => {
        match $crate::server::database().await {
            Some(database) => database,
            None => return,
        }
    };
}

/// A stream of the tests' aggregate type.
pub fn stream(id: &str) -> StreamId {
    StreamId::new("account", id)
}

/// `count` events named `name`, with data `{"n": i}`.
pub fn events(name: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| NewEvent::new(name, format!(r#"{{"n":{i}}}"#)))
        .collect()
}

/// Options with no command id.
pub fn no_command() -> AppendOptions {
    AppendOptions::default()
}

/// `ExpectedVersion::Exact` of `version`.
pub fn exact(version: u64) -> ExpectedVersion {
    ExpectedVersion::Exact(tally_store::StreamVersion::new(version))
}
