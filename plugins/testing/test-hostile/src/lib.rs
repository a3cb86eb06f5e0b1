//! A plugin that misbehaves on command, for the host's sandbox tests: each command
//! but `Touch` attacks the host in one way (CPU, memory, a panic, a huge answer, an
//! event that does not decode back).
//! Only the host tests load it; it is never a real aggregate.

use serde::{Deserialize, Serialize};
use tally_sdk::{Aggregate, Context, Rejection};

mod attacks;

use attacks::{memory_bomb, spin};

/// The message `apply` panics with on a `Doomed` event, for tests to look for.
pub const APPLY_PANIC_MESSAGE: &str = "test-hostile cannot apply a doomed event";

/// Size of the event data `BigEvent` tries to return: 100 MB.
pub const BIG_EVENT_BYTES: usize = 100 * 1000 * 1000;

/// What `Chatter` writes to stdout and stderr (one line each).
pub const CHATTER_LINE: &str = "test-hostile says hello";

/// Commands of the hostile plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Harmless: records a `Touched` event.
    Touch,
    /// Never returns: spins forever inside `handle`.
    Spin,
    /// Allocates 1 MiB blocks and keeps them until allocation fails.
    MemoryBomb,
    /// Returns a `Doomed` event, which `apply` panics on.
    Doom,
    /// Returns one event whose data is about [`BIG_EVENT_BYTES`] long.
    BigEvent,
    /// Writes [`CHATTER_LINE`] to stdout and to stderr, then records `Touched`.
    Chatter,
    /// Reads the system clock (which the host freezes) into a `Clocked` event.
    Clock,
    /// Returns a `Measured` event holding NaN, which JSON writes as `null` and
    /// cannot read back: an event that a replay could not decode.
    NotANumber,
}

/// Events of the hostile plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A harmless command was handled.
    Touched,
    /// `apply` panics on this event.
    Doomed,
    /// An event with a huge payload.
    Big {
        /// [`BIG_EVENT_BYTES`] of `x`.
        blob: String,
    },
    /// What the system clock said, in ms since the Unix epoch.
    Clocked {
        /// `SystemTime::now()` as ms since the Unix epoch.
        unix_ms: u64,
    },
    /// A measurement; NaN does not survive its JSON.
    Measured {
        /// The value.
        value: f64,
    },
}

/// Counts harmless events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestHostile {
    /// Number of `Touched` events applied.
    pub touches: u64,
}

impl Aggregate for TestHostile {
    type Command = Command;
    type Event = Event;

    const AGGREGATE_TYPE: &'static str = "test-hostile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Misbehaves on command; for host sandbox tests only.";

    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Touch => Ok(vec![Event::Touched]),
            Command::Spin => spin(),
            Command::MemoryBomb => memory_bomb(),
            Command::Doom => Ok(vec![Event::Doomed]),
            Command::BigEvent => Ok(vec![Event::Big {
                blob: "x".repeat(std::hint::black_box(BIG_EVENT_BYTES)),
            }]),
            Command::Chatter => {
                println!("{CHATTER_LINE}");
                eprintln!("{CHATTER_LINE}");
                Ok(vec![Event::Touched])
            }
            Command::Clock => {
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_millis() as u64);
                Ok(vec![Event::Clocked { unix_ms }])
            }
            Command::NotANumber => Ok(vec![Event::Measured {
                value: std::hint::black_box(f64::NAN),
            }]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Touched => self.touches += 1,
            Event::Doomed => panic!("{APPLY_PANIC_MESSAGE}"),
            Event::Big { .. } | Event::Clocked { .. } | Event::Measured { .. } => {}
        }
    }
}

tally_sdk::export!(TestHostile);

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sdk::testing::given;

    #[test]
    fn touch_and_chatter_record_touched() {
        given::<TestHostile>([])
            .when(Command::Touch)
            .then_events([Event::Touched]);
        let state = given::<TestHostile>([Event::Touched])
            .when(Command::Chatter)
            .then_events([Event::Touched]);
        assert_eq!(state.touches, 2);
    }

    #[test]
    fn doom_returns_a_doomed_event() {
        let doomed = TestHostile::default()
            .handle(&Context::default(), Command::Doom)
            .unwrap();
        assert_eq!(doomed, vec![Event::Doomed]);
    }

    #[test]
    #[should_panic(expected = "test-hostile cannot apply a doomed event")]
    fn applying_doomed_panics() {
        TestHostile::default().apply(Event::Doomed);
    }
}
