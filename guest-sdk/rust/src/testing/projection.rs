//! Given/then tests for a [`Projection`], run natively with `cargo test` on an
//! in-memory read model.
//!
//! Events are given as the host delivers them: aggregate type, aggregate id, event
//! name and JSON data (current schemas). The harness numbers them as a log does
//! (positions from 0, stream versions from 1 per stream, a fixed clock one second
//! apart) and applies each batch through the same decode path the component runs,
//! keeping nothing of a batch that fails, as the host does. It also applies every
//! batch one event at a time and checks that the documents are the same: the host
//! batches as it likes, so a projection must not depend on where batches end. Every
//! scenario first checks the projection's constants, as `describe` does.
//!
//! ```
//! use serde::Deserialize;
//! use tally_sdk::serde_json::json;
//! use tally_sdk::testing::projection::given_events;
//! use tally_sdk::{Documents, Envelope, Projection};
//!
//! #[derive(Deserialize)]
//! enum Event { Added { by: i64 } }
//!
//! struct Totals;
//!
//! impl Projection for Totals {
//!     type Event = Event;
//!     const NAME: &'static str = "totals";
//!     const VERSION: &'static str = "1.0.0";
//!     const DESCRIPTION: &'static str = "The sum of every counter.";
//!     const AGGREGATE_TYPES: &'static [&'static str] = &["counter"];
//!     const TABLES: &'static [&'static str] = &["totals"];
//!
//!     fn apply(envelope: Envelope<Event>, docs: &mut Documents<'_>) -> Result<(), String> {
//!         let Event::Added { by } = envelope.event;
//!         docs.update("totals", "all", |sum: Option<i64>| Some(sum.unwrap_or(0) + by))
//!     }
//! }
//!
//! given_events::<Totals>([
//!     ("counter", "c-1", "Added", json!({"by": 2})),
//!     ("counter", "c-2", "Added", json!({"by": 3})),
//! ])
//! .then_document("totals", "all", json!(5))
//! .when_events([("counter", "c-1", "Added", json!({"by": "x"}))])
//! .then_fails("2: event Added v1 of counter \"c-1\"")
//! .then_table("totals", [("all", json!(5))]);
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde_json::Value;

use crate::projection::check::assert_projection;
use crate::projection::wire::{self, RawEnvelope};
use crate::projection::{MemoryDocuments, Projection};

/// The clock of the first event: 2023-11-14T22:13:20Z.
const FIRST_TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// Milliseconds between two events' default timestamps.
const TIMESTAMP_STEP_MS: u64 = 1_000;

/// An event to give a projection: `(aggregate_type, aggregate_id, name, data)`,
/// with its place in the log filled in by the harness unless set here.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenEvent {
    aggregate_type: String,
    aggregate_id: String,
    name: String,
    data: Value,
    schema_version: u32,
    position: Option<u64>,
    timestamp_ms: Option<u64>,
}

/// An event of aggregate `aggregate_id` of type `aggregate_type`, named `name`, with
/// JSON `data` in its current schema; the same as the tuple
/// `(aggregate_type, aggregate_id, name, data)`, with builder methods for the rest.
pub fn event(aggregate_type: &str, aggregate_id: &str, name: &str, data: Value) -> GivenEvent {
    GivenEvent {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        name: name.to_owned(),
        data,
        schema_version: 1,
        position: None,
        timestamp_ms: None,
    }
}

impl GivenEvent {
    /// Stores the event at `timestamp_ms` (by default one second after the
    /// previous event's default, from 2023-11-14T22:13:20Z).
    pub fn at_ms(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Puts the event at `position` in the log (by default the one after the
    /// previous event's); positions must increase, and may skip, as events of
    /// other aggregate types come between.
    pub fn at_position(mut self, position: u64) -> Self {
        self.position = Some(position);
        self
    }

    /// The schema version of the event's data (by default 1).
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }
}

impl From<(&str, &str, &str, Value)> for GivenEvent {
    fn from((aggregate_type, aggregate_id, name, data): (&str, &str, &str, Value)) -> Self {
        event(aggregate_type, aggregate_id, name, data)
    }
}

/// Starts a scenario by applying `events`, as one batch, to an empty read model.
///
/// # Panics
/// If the projection's constants are malformed, if positions do not increase, or
/// if the projection writes other documents when the batch is applied one event at
/// a time.
#[track_caller]
pub fn given_events<P: Projection>(
    events: impl IntoIterator<Item = impl Into<GivenEvent>>,
) -> Projected<P> {
    assert_projection::<P>();
    let projected = Projected {
        docs: MemoryDocuments::default(),
        log: Log::default(),
        failure: None,
        _projection: PhantomData,
    };
    projected.apply_batch(events)
}

/// The read model after the batches applied so far, and whether the last one failed.
pub struct Projected<P> {
    docs: MemoryDocuments,
    log: Log,
    /// The error of the last batch, until [`then_fails`](Projected::then_fails)
    /// checks it.
    failure: Option<String>,
    _projection: PhantomData<P>,
}

impl<P: Projection> Projected<P> {
    /// Applies `events` as one more batch, after those applied so far.
    ///
    /// # Panics
    /// If the previous batch failed and [`then_fails`](Self::then_fails) did not
    /// check it, and as [`given_events`].
    #[track_caller]
    pub fn when_events(self, events: impl IntoIterator<Item = impl Into<GivenEvent>>) -> Self {
        self.expect_success();
        self.apply_batch(events)
    }

    /// Asserts that the document at `key` in `table` is `expected`.
    #[track_caller]
    pub fn then_document(self, table: &str, key: &str, expected: Value) -> Self {
        match self.document(table, key) {
            Some(document) => assert_eq!(document, expected, "document {key:?} of table {table}"),
            None => {
                panic!("document {key:?} of table {table}: expected {expected}, but there is none")
            }
        }
        self
    }

    /// Asserts that there is no document at `key` in `table`.
    #[track_caller]
    pub fn then_no_document(self, table: &str, key: &str) -> Self {
        if let Some(document) = self.document(table, key) {
            panic!("document {key:?} of table {table}: expected none, but it is {document}");
        }
        self
    }

    /// Asserts that `table` holds exactly the documents `expected`, as (key, JSON).
    #[track_caller]
    pub fn then_table<K: Into<String>>(
        self,
        table: &str,
        expected: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        let expected: BTreeMap<String, Value> = expected
            .into_iter()
            .map(|(key, value)| (key.into(), value))
            .collect();
        let actual: BTreeMap<String, Value> = self.table(table).into_iter().collect();
        assert_eq!(actual, expected, "documents of table {table}");
        self
    }

    /// Asserts that the last batch failed with an error containing `expected`
    /// (errors read `<position>: <message>`). The read model is as it was before
    /// that batch: nothing of a failed batch is kept, and the next batch takes its
    /// place in the log.
    #[track_caller]
    pub fn then_fails(mut self, expected: &str) -> Self {
        match self.failure.take() {
            Some(error) => assert!(
                error.contains(expected),
                "the batch failed with {error:?}, which does not contain {expected:?}"
            ),
            None => panic!("expected the batch to fail with {expected:?}, but it applied"),
        }
        self
    }

    /// The document at `key` in `table`, if there is one.
    ///
    /// # Panics
    /// If the last batch failed unchecked, or `table` is not one of the projection's.
    #[track_caller]
    pub fn document(&self, table: &str, key: &str) -> Option<Value> {
        self.table(table)
            .into_iter()
            .find_map(|(stored, document)| (stored == key).then_some(document))
    }

    /// Every document of `table`, as (key, JSON) in key order.
    ///
    /// # Panics
    /// If the last batch failed unchecked, or `table` is not one of the projection's.
    #[track_caller]
    pub fn table(&self, table: &str) -> Vec<(String, Value)> {
        self.expect_success();
        assert!(
            P::TABLES.contains(&table),
            "table {table:?} is not one of the projection's TABLES {:?}",
            P::TABLES
        );
        self.docs
            .table(table)
            .map(|(key, data)| (key.to_owned(), parse_document(table, key, data)))
            .collect()
    }

    /// Numbers `events` and applies them, as one batch and one event at a time.
    #[track_caller]
    fn apply_batch(mut self, events: impl IntoIterator<Item = impl Into<GivenEvent>>) -> Self {
        let mut log = self.log.clone();
        let batch: Vec<RawEnvelope> = events
            .into_iter()
            .map(|event| log.append(event.into()))
            .collect();
        let mut whole = self.docs.clone();
        let result = wire::apply::<P>(batch.clone(), &mut whole);
        let one_by_one = self.apply_one_by_one(batch);
        assert_same_outcome(&result, &whole, &one_by_one);
        // A failed batch leaves no trace: neither its documents nor its events, so
        // the next batch is numbered as if it came first.
        match result {
            Ok(()) => {
                self.docs = whole;
                self.log = log;
            }
            Err(error) => self.failure = Some(error),
        }
        self
    }

    /// Applies each event as a batch of its own, from the current documents.
    fn apply_one_by_one(&self, batch: Vec<RawEnvelope>) -> Result<MemoryDocuments, String> {
        let mut docs = self.docs.clone();
        for event in batch {
            wire::apply::<P>(vec![event], &mut docs)?;
        }
        Ok(docs)
    }

    /// Panics if the last batch failed and no `then_fails` checked it.
    #[track_caller]
    fn expect_success(&self) {
        if let Some(error) = &self.failure {
            panic!("the batch failed: {error}");
        }
    }
}

/// Panics unless a batch applied whole and one event at a time ends the same: the
/// same documents, or the same error.
#[track_caller]
fn assert_same_outcome(
    whole: &Result<(), String>,
    whole_docs: &MemoryDocuments,
    one_by_one: &Result<MemoryDocuments, String>,
) {
    match (whole, one_by_one) {
        (Ok(()), Ok(docs)) => assert_eq!(
            all_documents(whole_docs),
            all_documents(docs),
            "the batch applied at once (left) and one event at a time (right) writes different \
             documents: a projection must keep its state in its documents only"
        ),
        (Err(error), Err(alone)) => assert_eq!(
            error, alone,
            "the batch applied at once (left) and one event at a time (right) fails differently"
        ),
        (whole, one_by_one) => panic!(
            "the batch applied at once answers {whole:?}, but one event at a time {:?}",
            one_by_one.as_ref().map(|_| ())
        ),
    }
}

/// Every document as (table, key, JSON), to compare and show.
fn all_documents(docs: &MemoryDocuments) -> Vec<(String, String, Value)> {
    docs.iter()
        .map(|(table, key, data)| {
            (
                table.to_owned(),
                key.to_owned(),
                parse_document(table, key, data),
            )
        })
        .collect()
}

/// A stored document's JSON; [`Documents`](crate::Documents) stores only JSON.
fn parse_document(table: &str, key: &str, data: &[u8]) -> Value {
    serde_json::from_slice(data)
        .unwrap_or_else(|error| panic!("document {key:?} of table {table} is not JSON: {error}"))
}

/// What the log has numbered so far: the next position and each stream's version.
#[derive(Clone, Default)]
struct Log {
    next_position: u64,
    streams: BTreeMap<(String, String), u64>,
}

impl Log {
    /// Gives `event` its position, stream version and timestamp.
    #[track_caller]
    fn append(&mut self, event: GivenEvent) -> RawEnvelope {
        let position = event.position.unwrap_or(self.next_position);
        assert!(
            position >= self.next_position,
            "given event {} at position {position}: positions must increase (the next is at \
             least {})",
            event.name,
            self.next_position
        );
        self.next_position = position + 1;
        let stream = (event.aggregate_type.clone(), event.aggregate_id.clone());
        let stream_version = self.streams.entry(stream).or_default();
        *stream_version += 1;
        RawEnvelope {
            position,
            stream_version: *stream_version,
            timestamp_ms: event
                .timestamp_ms
                .unwrap_or(FIRST_TIMESTAMP_MS + position * TIMESTAMP_STEP_MS),
            data: serde_json::to_vec(&event.data).expect("a JSON value serializes"),
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            name: event.name,
            schema_version: event.schema_version,
        }
    }
}
