//! `Ledger`: a small aggregate that uses every SDK feature, the subject of these
//! tests. It has a unit command under a renamed wire name, an optional command
//! field, an event at schema version 3 reached through a chain of upcasters, a
//! former event that an upcaster splits into current ones, and rules that read the
//! call context.

use serde::{Deserialize, Serialize};
use tally_sdk::serde_json::{Value, json};
use tally_sdk::{Aggregate, Context, JsonEvent, Rejection, Upcaster};

/// The state: a running total and when the last amount was recorded.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub total: i64,
    pub last_entry_at: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Command {
    Record {
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memo: Option<String>,
    },
    #[serde(rename = "Wipe")]
    Clear,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Recorded { amount: i64, at: u64, entry: u64 },
    Cleared,
}

fn recorded_v1_to_v2(mut data: Value) -> Result<Value, String> {
    data["at"] = json!(0);
    Ok(data)
}

fn recorded_v2_to_v3(mut data: Value) -> Result<Value, String> {
    data["entry"] = json!(0);
    Ok(data)
}

/// `Batch` (gone from the current events) held several amounts in one event.
fn split_batch(data: Value) -> Result<Vec<JsonEvent>, String> {
    let amounts = data["amounts"].as_array().ok_or("Batch without amounts")?;
    Ok(amounts
        .iter()
        .map(|amount| JsonEvent {
            name: "Recorded".into(),
            version: 1,
            data: json!({"amount": amount}),
        })
        .collect())
}

impl Aggregate for Ledger {
    type Command = Command;
    type Event = Event;
    const AGGREGATE_TYPE: &'static str = "ledger";
    const VERSION: &'static str = "3.1.0";
    const DESCRIPTION: &'static str = "Adds up amounts.";
    const EVENT_VERSIONS: &'static [(&'static str, u32)] = &[("Recorded", 3)];
    const UPCASTERS: &'static [Upcaster] = &[
        Upcaster::next("Recorded", 1, recorded_v1_to_v2),
        Upcaster::next("Recorded", 2, recorded_v2_to_v3),
        Upcaster::replace("Batch", 1, split_batch),
    ];

    fn handle(&self, ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Record { amount: 0, .. } => {
                Err(Rejection::new("zero-amount", "nothing to record"))
            }
            Command::Record { amount, .. } => Ok(vec![Event::Recorded {
                amount,
                at: ctx.now_ms,
                entry: ctx.stream_version + 1,
            }]),
            Command::Clear => Ok(vec![Event::Cleared]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Recorded { amount, at, .. } => {
                self.total += amount;
                self.last_entry_at = Some(at);
            }
            Event::Cleared => *self = Ledger::default(),
        }
    }
}

/// The command recording `amount`, without a memo.
pub fn record(amount: i64) -> Command {
    Command::Record { amount, memo: None }
}

/// The event recording `amount` at `at` as entry `entry`.
pub fn recorded(amount: i64, at: u64, entry: u64) -> Event {
    Event::Recorded { amount, at, entry }
}
