//! A projection that misbehaves on purpose, for the host's projection sandbox tests.
//!
//! It reads bank-account deposits. A deposit of one of the amounts below attacks the
//! host in one way (CPU, memory, a document too large, a table it does not declare,
//! an error, a panic, a document that is not JSON, a key too long); any other deposit
//! is counted in the document [`COUNT`] of table [`DOCS`], so that tests can tell
//! which deposits were applied, and how many times.
//! Only the host tests load it; it is never a real read model.

use serde::Deserialize;
use tally_sdk::{Documents, Envelope, Projection};

#[path = "../../test-hostile/src/attacks.rs"]
mod attacks;

use attacks::{memory_bomb, spin};

/// The projection's only table.
pub const DOCS: &str = "docs";

/// The document of [`DOCS`] counting the deposits applied: a JSON number.
pub const COUNT: &str = "count";

/// Deposit amount on which `apply` loops forever.
pub const SPIN: i64 = 13;

/// Deposit amount on which `apply` allocates 1 MiB blocks until allocation fails.
pub const MEMORY_BOMB: i64 = 14;

/// Deposit amount on which `apply` puts a document of [`BIG_DOCUMENT_BYTES`] at
/// [`BIG_DOCUMENT_KEY`].
pub const BIG_DOCUMENT: i64 = 15;

/// Deposit amount on which `apply` puts a document into [`UNDECLARED_TABLE`].
pub const UNDECLARED: i64 = 16;

/// Deposit amount on which `apply` returns [`ERROR_MESSAGE`].
pub const ERROR: i64 = 17;

/// Deposit amount on which `apply` panics with [`PANIC_MESSAGE`].
pub const PANIC: i64 = 18;

/// Deposit amount on which `apply` puts [`NOT_JSON`] as a document.
pub const NOT_JSON_DOCUMENT: i64 = 19;

/// Deposit amount on which `apply` puts a document at a key of [`LONG_KEY_BYTES`].
pub const LONG_KEY: i64 = 20;

/// Bytes of the JSON of the document [`BIG_DOCUMENT`] puts: 64 KiB, above the small
/// limit the host tests set, far below the memory limit.
pub const BIG_DOCUMENT_BYTES: usize = 64 << 10;

/// Where [`BIG_DOCUMENT`] puts its document in [`DOCS`].
pub const BIG_DOCUMENT_KEY: &str = "big";

/// The table [`UNDECLARED`] writes to; not in the projection's `TABLES`.
pub const UNDECLARED_TABLE: &str = "audit";

/// What [`NOT_JSON_DOCUMENT`] puts at key `broken` of [`DOCS`].
pub const NOT_JSON: &[u8] = b"{not json";

/// Bytes of the key [`LONG_KEY`] writes at: above the host's default 1 KiB limit.
pub const LONG_KEY_BYTES: usize = 4 << 10;

/// The error `apply` returns on a deposit of [`ERROR`].
pub const ERROR_MESSAGE: &str = "test-hostile-projection refuses this deposit";

/// The message `apply` panics with on a deposit of [`PANIC`].
pub const PANIC_MESSAGE: &str = "test-hostile-projection cannot apply this deposit";

/// The bank-account event the projection reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Event {
    /// Money was added.
    MoneyDeposited {
        /// Amount added; some amounts make the projection misbehave.
        amount: i64,
    },
}

/// The hostile projection.
pub struct TestHostileProjection;

impl Projection for TestHostileProjection {
    type Event = Event;

    const NAME: &'static str = "test-hostile-projection";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Counts deposits and misbehaves on some amounts; for host sandbox tests only.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["bank-account"];
    const EVENTS: &'static [&'static str] = &["MoneyDeposited"];
    const TABLES: &'static [&'static str] = &[DOCS];

    fn apply(envelope: Envelope<Event>, docs: &mut Documents<'_>) -> Result<(), String> {
        let Event::MoneyDeposited { amount } = envelope.event;
        match amount {
            SPIN => spin(),
            MEMORY_BOMB => memory_bomb(),
            BIG_DOCUMENT => {
                // A JSON string: the quotes make up the last two bytes.
                let big = "x".repeat(std::hint::black_box(BIG_DOCUMENT_BYTES - 2));
                docs.put(DOCS, BIG_DOCUMENT_KEY, &big);
            }
            // The SDK's `Documents` refuses both with a panic before the host sees
            // them; the raw import reaches the host's own checks.
            UNDECLARED => put_unchecked(UNDECLARED_TABLE, "k", b"1"),
            NOT_JSON_DOCUMENT => put_unchecked(DOCS, "broken", NOT_JSON),
            LONG_KEY => docs.put(DOCS, &"k".repeat(LONG_KEY_BYTES), &1),
            ERROR => return Err(ERROR_MESSAGE.to_owned()),
            PANIC => panic!("{PANIC_MESSAGE}"),
            _ => docs.update(DOCS, COUNT, |count: Option<u64>| {
                Some(count.unwrap_or(0) + 1)
            })?,
        }
        Ok(())
    }
}

/// Calls the host's `documents.put` directly, past the SDK's checks. Only the
/// component has the import: natively it panics.
fn put_unchecked(table: &str, key: &str, data: &[u8]) {
    tally_sdk::__private::projection_bindings::tally::projection::documents::put(table, key, data);
}

tally_sdk::export_projection!(TestHostileProjection);

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sdk::serde_json::{Value, json};
    use tally_sdk::testing::projection::{GivenEvent, event, given_events};

    fn deposited(amount: i64) -> GivenEvent {
        event(
            "bank-account",
            "a",
            "MoneyDeposited",
            json!({ "amount": amount }),
        )
    }

    #[test]
    fn other_deposits_are_counted_and_other_events_ignored() {
        given_events::<TestHostileProjection>([
            deposited(1),
            event("bank-account", "a", "MoneyWithdrawn", json!({"amount": 1})),
            deposited(12),
            deposited(21),
        ])
        .then_document(DOCS, COUNT, json!(3));
    }

    #[test]
    fn an_error_fails_the_batch_with_the_message() {
        given_events::<TestHostileProjection>([deposited(1)])
            .when_events([deposited(ERROR)])
            .then_fails(&format!("1: {ERROR_MESSAGE}"))
            .then_document(DOCS, COUNT, json!(1));
    }

    #[test]
    fn the_big_document_has_the_size_announced() {
        let projected = given_events::<TestHostileProjection>([deposited(BIG_DOCUMENT)]);
        let big = projected
            .document(DOCS, BIG_DOCUMENT_KEY)
            .expect("the big document");
        let bytes = tally_sdk::serde_json::to_vec(&big).unwrap();
        assert_eq!(bytes.len(), BIG_DOCUMENT_BYTES);
        assert_eq!(projected.document(DOCS, COUNT), None::<Value>);
    }

    #[test]
    #[should_panic(expected = "test-hostile-projection cannot apply this deposit")]
    fn a_panic_deposit_panics() {
        given_events::<TestHostileProjection>([deposited(PANIC)]);
    }
}
