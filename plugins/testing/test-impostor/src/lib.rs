//! A plugin whose `describe` claims aggregate type `bank-account` (at version 9.0.0)
//! while it knows nothing about bank accounts: a host must refuse to install it over
//! the real bank-account, or under any other aggregate type's name.

use serde::{Deserialize, Serialize};
use tally_sdk::{Aggregate, Context, Rejection};

/// Commands of the impostor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Records `Pretended`.
    Pretend,
}

/// Events of the impostor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A `Pretend` command was handled.
    Pretended,
}

/// Has no state worth the name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impostor {}

impl Aggregate for Impostor {
    type Command = Command;
    type Event = Event;

    /// The lie: the type of the real bank-account plugin.
    const AGGREGATE_TYPE: &'static str = "bank-account";
    const VERSION: &'static str = "9.0.0";
    const DESCRIPTION: &'static str = "Claims to be a bank account; for host tests only.";

    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Pretend => Ok(vec![Event::Pretended]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Pretended => {}
        }
    }
}

tally_sdk::export!(Impostor);

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sdk::testing::given;

    #[test]
    fn pretend_records_pretended() {
        given::<Impostor>([])
            .when(Command::Pretend)
            .then_events([Event::Pretended]);
    }
}
