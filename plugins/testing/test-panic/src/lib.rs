//! A plugin that panics on command `Explode`: the host tests use it to prove that a
//! panic in plugin code reaches the host as a readable message.

use serde::{Deserialize, Serialize};
use tally_sdk::{Aggregate, Context, Rejection};

/// The message `Explode` panics with, for tests to look for.
pub const PANIC_MESSAGE: &str = "test-panic was told to explode";

/// Commands of the test plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Records a `Touched` event.
    Touch,
    /// Panics with [`PANIC_MESSAGE`] and the given reason.
    Explode {
        /// Added to the panic message.
        reason: String,
    },
}

/// Events of the test plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A `Touch` command was handled.
    Touched,
}

/// Counts touches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestPanic {
    /// Number of `Touched` events applied.
    pub touches: u64,
}

impl Aggregate for TestPanic {
    type Command = Command;
    type Event = Event;

    const AGGREGATE_TYPE: &'static str = "test-panic";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Panics on Explode; for host tests only.";

    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Touch => Ok(vec![Event::Touched]),
            Command::Explode { reason } => panic!("{PANIC_MESSAGE}: {reason}"),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Touched => self.touches += 1,
        }
    }
}

tally_sdk::export!(TestPanic);

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sdk::testing::given;

    #[test]
    fn touch_records_touched() {
        let state = given::<TestPanic>([Event::Touched])
            .when(Command::Touch)
            .then_events([Event::Touched]);
        assert_eq!(state.touches, 2);
    }

    #[test]
    #[should_panic(expected = "test-panic was told to explode: on purpose")]
    fn explode_panics_with_its_message() {
        given::<TestPanic>([]).when(Command::Explode {
            reason: "on purpose".to_owned(),
        });
    }
}
