//! A projection named `bank-account`, the name of the reference aggregate type. The
//! host's admin routes `/v1/plugins/{name}/activate` and `rollback` serve aggregate
//! types and projections alike, so the two share one namespace: the tests install this
//! projection where the aggregate type is installed (refused), and the aggregate plugin
//! where this projection is installed (refused). It counts the deposits it reads.

use serde::Deserialize;
use tally_sdk::{Documents, Envelope, Projection};

/// The projection's only table.
pub const DOCS: &str = "docs";

/// The document of [`DOCS`] counting the deposits applied: a JSON number.
pub const COUNT: &str = "count";

/// The bank-account event the projection reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Event {
    /// Money was added.
    MoneyDeposited {
        /// Amount added.
        amount: i64,
    },
}

/// The projection that takes an aggregate type's name.
pub struct TestNameClash;

impl Projection for TestNameClash {
    type Event = Event;

    const NAME: &'static str = "bank-account";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Counts deposits under the name of an aggregate type; for host tests only.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["bank-account"];
    const EVENTS: &'static [&'static str] = &["MoneyDeposited"];
    const TABLES: &'static [&'static str] = &[DOCS];

    fn apply(_envelope: Envelope<Event>, docs: &mut Documents<'_>) -> Result<(), String> {
        docs.update(DOCS, COUNT, |count: Option<u64>| {
            Some(count.unwrap_or(0) + 1)
        })
    }
}

tally_sdk::export_projection!(TestNameClash);
