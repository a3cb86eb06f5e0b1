//! Projections over `Ledger`'s events, the subjects of the projection tests:
//! `LedgerTotals` reads every event of the type, `RecordedOnly` lists one name,
//! `EventLog` writes down each envelope as it arrives, and the rest break a rule on
//! purpose.

use std::cell::Cell;

use serde::Deserialize;
use tally_sdk::serde_json::json;
use tally_sdk::{Documents, Envelope, Projection};

/// `Ledger`'s events, read in part: the fields a projection does not declare are
/// ignored.
#[derive(Debug, Deserialize)]
pub enum LedgerEvent {
    Recorded { amount: i64 },
    Cleared,
}

/// Per ledger, the sum of its amounts (`totals`); over all ledgers, how many amounts
/// were recorded (`counts`, key `recorded`). An amount of 0 is refused.
pub struct LedgerTotals;

impl Projection for LedgerTotals {
    type Event = LedgerEvent;
    const NAME: &'static str = "ledger-totals";
    const VERSION: &'static str = "1.2.0";
    const DESCRIPTION: &'static str = "Sums each ledger.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["ledger"];
    const TABLES: &'static [&'static str] = &["totals", "counts"];

    fn apply(envelope: Envelope<LedgerEvent>, docs: &mut Documents<'_>) -> Result<(), String> {
        let ledger = envelope.aggregate_id.as_str();
        match envelope.event {
            LedgerEvent::Recorded { amount: 0 } => Err(format!("ledger {ledger} recorded 0")),
            LedgerEvent::Recorded { amount } => {
                docs.update("totals", ledger, |total: Option<i64>| {
                    Some(total.unwrap_or(0) + amount)
                })?;
                docs.update("counts", "recorded", |count: Option<u64>| {
                    Some(count.unwrap_or(0) + 1)
                })
            }
            LedgerEvent::Cleared => {
                docs.delete("totals", ledger);
                Ok(())
            }
        }
    }
}

/// Only `Recorded`, with an enum that has no other variant.
#[derive(Debug, Deserialize)]
pub enum RecordedEvent {
    Recorded { amount: i64 },
}

/// Sums the amounts recorded per ledger, reading `Recorded` events only.
pub struct RecordedOnly;

impl Projection for RecordedOnly {
    type Event = RecordedEvent;
    const NAME: &'static str = "recorded-only";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Sums amounts.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["ledger"];
    const EVENTS: &'static [&'static str] = &["Recorded"];
    const TABLES: &'static [&'static str] = &["sums"];

    fn apply(envelope: Envelope<RecordedEvent>, docs: &mut Documents<'_>) -> Result<(), String> {
        let RecordedEvent::Recorded { amount } = envelope.event;
        docs.update("sums", &envelope.aggregate_id, |sum: Option<i64>| {
            Some(sum.unwrap_or(0) + amount)
        })
    }
}

/// Writes each envelope, without its event, under its position (`log`).
pub struct EventLog;

impl Projection for EventLog {
    type Event = LedgerEvent;
    const NAME: &'static str = "event-log";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Keeps every envelope.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["ledger", "other-ledger"];
    const TABLES: &'static [&'static str] = &["log"];

    fn apply(envelope: Envelope<LedgerEvent>, docs: &mut Documents<'_>) -> Result<(), String> {
        let entry = json!({
            "aggregate_type": envelope.aggregate_type,
            "aggregate_id": envelope.aggregate_id,
            "stream_version": envelope.stream_version,
            "name": envelope.name,
            "schema_version": envelope.schema_version,
            "timestamp_ms": envelope.timestamp_ms,
        });
        docs.put("log", &envelope.position.to_string(), &entry);
        Ok(())
    }
}

/// A projection over `LedgerEvent` with the given constants, whose `apply` writes
/// `1` at key `seen` of `$table`.
macro_rules! projection_with {
    ($name:ident, name: $projection:literal, version: $version:literal,
     types: $types:expr, events: $events:expr, tables: $tables:expr, writes: $table:literal) => {
        pub struct $name;

        impl Projection for $name {
            type Event = LedgerEvent;
            const NAME: &'static str = $projection;
            const VERSION: &'static str = $version;
            const DESCRIPTION: &'static str = "Breaks a rule.";
            const AGGREGATE_TYPES: &'static [&'static str] = $types;
            const EVENTS: &'static [&'static str] = $events;
            const TABLES: &'static [&'static str] = $tables;

            fn apply(_: Envelope<LedgerEvent>, docs: &mut Documents<'_>) -> Result<(), String> {
                docs.put($table, "seen", &1);
                Ok(())
            }
        }
    };
}

projection_with!(MisspeltEvent, name: "misspelt-event", version: "1.0.0",
    types: &["ledger"], events: &["Recorded", "Clear"], tables: &["t"], writes: "t");
projection_with!(NoTables, name: "no-tables", version: "1.0.0",
    types: &["ledger"], events: &[], tables: &[], writes: "t");
projection_with!(CamelName, name: "CamelName", version: "1.0.0",
    types: &["ledger"], events: &[], tables: &["t"], writes: "t");
projection_with!(LooseVersion, name: "loose-version", version: "1.0",
    types: &["ledger"], events: &[], tables: &["t"], writes: "t");
projection_with!(NoTypes, name: "no-types", version: "1.0.0",
    types: &[], events: &[], tables: &["t"], writes: "t");
projection_with!(UndeclaredTable, name: "undeclared-table", version: "1.0.0",
    types: &["ledger"], events: &[], tables: &["t"], writes: "audit");

thread_local! {
    /// Events `Forgetful` has applied on this thread: state outside its documents.
    static APPLIED: Cell<u64> = const { Cell::new(0) };
}

/// Numbers events with a counter kept outside its documents, which is wrong: the
/// numbers depend on what was applied before, not on the documents.
pub struct Forgetful;

impl Projection for Forgetful {
    type Event = LedgerEvent;
    const NAME: &'static str = "forgetful";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Keeps state outside its documents.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["ledger"];
    const TABLES: &'static [&'static str] = &["numbers"];

    fn apply(envelope: Envelope<LedgerEvent>, docs: &mut Documents<'_>) -> Result<(), String> {
        let number = APPLIED.with(|applied| {
            applied.set(applied.get() + 1);
            applied.get()
        });
        docs.put("numbers", &envelope.position.to_string(), &number);
        Ok(())
    }
}
