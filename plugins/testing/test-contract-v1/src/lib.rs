//! A counter written straight against `wit/v1.0.0` (tally:aggregate@1.0.0) with
//! wit-bindgen, as plugins were built before contract 1.1.0 added `decide`. Hosts
//! must keep loading it and run its commands with `handle` then `apply`.
//!
//! Aggregate type `counter`: command `Add {"amount": n}` (n > 0, else rejected with
//! `invalid-amount`) records event `Added {"amount": n}` (version 1); the state is
//! `{"total": n}`.

#[allow(missing_docs, clippy::all)] // generated code
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/v1.0.0",
        world: "tally:aggregate/plugin",
    });
}

use bindings::exports::tally::aggregate::aggregate::{
    Command, Context, Event, EventSchema, Guest, Json, PluginInfo, Rejection, State,
};
use serde_json::{Value, json};

struct Counter;

fn total(state: &[u8]) -> Result<u64, String> {
    let state: Value = serde_json::from_slice(state).map_err(|error| error.to_string())?;
    state["total"]
        .as_u64()
        .ok_or_else(|| format!("state without a total: {state}"))
}

fn encode(total: u64) -> State {
    json!({ "total": total }).to_string().into_bytes()
}

fn amount(data: &[u8]) -> Option<u64> {
    let data: Value = serde_json::from_slice(data).ok()?;
    data["amount"].as_u64()
}

impl Guest for Counter {
    fn describe() -> PluginInfo {
        PluginInfo {
            aggregate_type: "counter".into(),
            version: "1.0.0".into(),
            description: "Adds up amounts; built against tally:aggregate@1.0.0.".into(),
            commands: vec!["Add".into()],
            events: vec![EventSchema {
                name: "Added".into(),
                version: 1,
            }],
        }
    }

    fn initial_state() -> State {
        encode(0)
    }

    fn handle(_ctx: Context, state: State, command: Command) -> Result<Vec<Event>, Rejection> {
        let reject = |code: &str, message: String| Rejection {
            code: code.into(),
            message,
        };
        total(&state).map_err(|error| reject("invalid-state", error))?;
        if command.name != "Add" {
            return Err(reject(
                "invalid-command",
                format!("unknown command {}", command.name),
            ));
        }
        match amount(&command.data) {
            Some(amount) if amount > 0 => Ok(vec![Event {
                name: "Added".into(),
                version: 1,
                data: json!({ "amount": amount }).to_string().into_bytes(),
            }]),
            _ => Err(reject(
                "invalid-amount",
                "add a positive whole amount".into(),
            )),
        }
    }

    fn apply(state: State, events: Vec<Event>) -> Result<State, String> {
        let mut sum = total(&state)?;
        for event in events {
            let amount = amount(&event.data)
                .filter(|_| event.name == "Added" && event.version == 1)
                .ok_or_else(|| format!("unknown event {} v{}", event.name, event.version))?;
            sum += amount;
        }
        Ok(encode(sum))
    }

    fn upcast(event: Event) -> Result<Vec<Event>, String> {
        Ok(vec![event])
    }

    fn state_json(state: State) -> Result<Json, String> {
        total(&state).map(|_| state)
    }
}

bindings::export!(Counter with_types_in bindings);
