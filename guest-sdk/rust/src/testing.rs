//! Given/when/then tests for an [`Aggregate`], run natively with `cargo test`.
//!
//! Every step goes through the same encode/decode path the component runs: given
//! events are encoded and applied, the command is encoded and handled (with `handle`
//! and with `decide`, which must agree), the result is decoded. A test therefore also
//! checks that commands, events and state survive their JSON form. Every scenario
//! first checks the aggregate's [`EVENT_VERSIONS`](Aggregate::EVENT_VERSIONS) and
//! [`UPCASTERS`](Aggregate::UPCASTERS) against its event enum, as `describe` does in
//! the component, so a misspelt event name there fails the plugin's tests.
//!
//! ```text
//! given::<BankAccount>([Event::AccountOpened { initial_balance: 100 }])
//!     .when(Command::Withdraw { amount: 150 })
//!     .then_rejects("insufficient-funds");
//! ```
//!
//! Projections have their given/then harness in [`projection`].

pub mod projection;

use std::fmt::Debug;

use crate::aggregate::{Aggregate, Context, Rejection};
use crate::schema::assert_schema;
pub use crate::wire::RawEvent;
use crate::wire::{self, RawCommand};

/// Starts a scenario from the events already in the stream (current schemas).
///
/// # Panics
/// If the aggregate's `EVENT_VERSIONS` or `UPCASTERS` do not fit its event enum.
#[track_caller]
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
    assert_schema::<A>();
    let events: Vec<RawEvent> = events
        .into_iter()
        .map(|event| wire::encode_event::<A>(&event))
        .collect();
    Scenario::from_raw(events)
}

/// Starts a scenario from stored events of any schema version: each is upcast,
/// then applied, as the host does on rehydration.
///
/// # Panics
/// If an event cannot be upcast or applied, or if the aggregate's `EVENT_VERSIONS` or
/// `UPCASTERS` do not fit its event enum.
#[track_caller]
pub fn given_stored<A: Aggregate>(events: impl IntoIterator<Item = RawEvent>) -> Scenario<A> {
    assert_schema::<A>();
    let mut current = Vec::new();
    for event in events {
        match wire::upcast::<A>(&event) {
            Ok(upcast) => current.extend(upcast),
            Err(error) => panic!(
                "given: stored event {} v{} cannot be upcast: {error}",
                event.name, event.version
            ),
        }
    }
    Scenario::from_raw(current)
}

/// A stored event with JSON data, for [`given_stored`], [`upcast`] and
/// [`Outcome::then_raw_events`].
pub fn stored(name: &str, version: u32, data: serde_json::Value) -> RawEvent {
    RawEvent {
        name: name.to_owned(),
        version,
        data: serde_json::to_vec(&data).expect("JSON value serializes"),
    }
}

/// What the host's `upcast` makes of one stored event: the events it becomes at
/// their current schema versions (the same event if it is current), or why it cannot
/// be upcast. For tests of the aggregate's [`UPCASTERS`](Aggregate::UPCASTERS).
///
/// # Panics
/// If the aggregate's `EVENT_VERSIONS` or `UPCASTERS` do not fit its event enum.
#[track_caller]
pub fn upcast<A: Aggregate>(event: &RawEvent) -> Result<Vec<RawEvent>, String> {
    assert_schema::<A>();
    wire::upcast::<A>(event)
}

/// The stream before the command: its state and a call context.
pub struct Scenario<A> {
    state: Vec<u8>,
    ctx: Context,
    _aggregate: std::marker::PhantomData<A>,
}

impl<A: Aggregate> Scenario<A> {
    #[track_caller]
    fn from_raw(events: Vec<RawEvent>) -> Self {
        let state = wire::apply::<A>(&wire::initial_state::<A>(), &events)
            .unwrap_or_else(|error| panic!("given: events cannot be applied: {error}"));
        let ctx = Context {
            aggregate_id: "test-aggregate".to_owned(),
            stream_version: events.len() as u64,
            now_ms: 1_700_000_000_000,
        };
        Self {
            state,
            ctx,
            _aggregate: std::marker::PhantomData,
        }
    }

    /// Replaces the call context (by default: id `test-aggregate`, the number of
    /// given events as stream version, a fixed clock).
    pub fn with_context(mut self, ctx: Context) -> Self {
        self.ctx = ctx;
        self
    }

    /// The state after the given events.
    pub fn state(&self) -> A {
        wire::decode_state(&self.state).expect("the harness only holds states it encoded")
    }

    /// The state after the given events, as `state-json` renders it.
    pub fn state_json(&self) -> serde_json::Value {
        let json =
            wire::state_json::<A>(&self.state).expect("the harness only holds states it encoded");
        serde_json::from_slice(&json).expect("state_json is JSON")
    }

    /// Handles a typed command.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let command = wire::encode_command::<A>(&command);
        self.when_raw_command(command)
    }

    /// Handles a command given as its name and JSON data text, as a client could
    /// send it, including malformed ones.
    pub fn when_raw(self, name: &str, data: &str) -> Outcome<A> {
        self.when_raw_command(RawCommand {
            name: name.to_owned(),
            data: data.as_bytes().to_vec(),
        })
    }

    #[track_caller]
    fn when_raw_command(self, command: RawCommand) -> Outcome<A> {
        let result = wire::handle::<A>(&self.ctx, &self.state, &command);
        // Hosts decide commands with `decide`: it must answer as `handle` and then
        // `apply` of the events do.
        let decided = wire::decide::<A>(&self.ctx, &self.state, &command);
        match (&result, decided) {
            (Ok(events), Ok((decided_events, decided_state))) => {
                assert_eq!(
                    &decided_events, events,
                    "decide's events differ from handle's"
                );
                let applied = wire::apply::<A>(&self.state, events).unwrap_or_else(|error| {
                    panic!("the produced events cannot be applied: {error}")
                });
                assert_eq!(
                    decided_state, applied,
                    "decide's state differs from apply's of the same events"
                );
            }
            (Err(rejection), Err(decided)) => {
                assert_eq!(&decided, rejection, "decide rejected otherwise than handle");
            }
            (handled, decided) => {
                panic!("handle answered {handled:?}, but decide answered {decided:?}")
            }
        }
        Outcome {
            state: self.state,
            result,
            _aggregate: std::marker::PhantomData,
        }
    }
}

/// What `handle` answered.
pub struct Outcome<A> {
    state: Vec<u8>,
    result: Result<Vec<RawEvent>, Rejection>,
    _aggregate: std::marker::PhantomData<A>,
}

impl<A: Aggregate> Outcome<A> {
    /// Asserts that the command produced exactly `expected`, and returns the state
    /// after applying them.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
    {
        let events = match self.result {
            Ok(events) => events,
            Err(rejection) => panic!("expected events, but the command was rejected: {rejection}"),
        };
        let decoded: Vec<A::Event> = events
            .iter()
            .map(|event| {
                wire::decode_event::<A>(event)
                    .unwrap_or_else(|error| panic!("event does not decode: {error}"))
            })
            .collect();
        let expected: Vec<A::Event> = expected.into_iter().collect();
        assert_eq!(decoded, expected, "events differ");
        let state = wire::apply::<A>(&self.state, &events)
            .unwrap_or_else(|error| panic!("the produced events cannot be applied: {error}"));
        wire::decode_state(&state).expect("apply returns a state it encoded")
    }

    /// Asserts that the command produced exactly these stored events (names,
    /// versions and JSON data), and returns them.
    #[track_caller]
    pub fn then_raw_events(self, expected: impl IntoIterator<Item = RawEvent>) -> Vec<RawEvent> {
        let events = match self.result {
            Ok(events) => events,
            Err(rejection) => panic!("expected events, but the command was rejected: {rejection}"),
        };
        let as_json = |events: &[RawEvent]| -> Vec<(String, u32, serde_json::Value)> {
            events
                .iter()
                .map(|event| {
                    let data = serde_json::from_slice(&event.data).expect("event data is JSON");
                    (event.name.clone(), event.version, data)
                })
                .collect()
        };
        let expected: Vec<RawEvent> = expected.into_iter().collect();
        assert_eq!(as_json(&events), as_json(&expected), "events differ");
        events
    }

    /// Asserts that the command was rejected with `code`, and returns the
    /// rejection (to check its message).
    #[track_caller]
    pub fn then_rejects(self, code: &str) -> Rejection {
        match self.result {
            Ok(events) => panic!("expected rejection {code}, but the command produced {events:?}"),
            Err(rejection) => {
                assert_eq!(
                    rejection.code, code,
                    "wrong rejection code (message: {})",
                    rejection.message
                );
                rejection
            }
        }
    }
}
