//! The WIT side: bindings generated from `wit/` and the adapter that exports any
//! [`Aggregate`] through them. Only [`export!`](crate::export) uses this module.

use std::marker::PhantomData;

use crate::aggregate::{self, Aggregate};
use crate::{panic, wire};

/// Bindings for the `tally:aggregate` world, generated from the repository's `wit/`.
#[allow(missing_docs, clippy::all)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "tally:aggregate/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_tally_plugin",
        runtime_path: "tally_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::exports::tally::aggregate::aggregate as wit;

/// The component for aggregate `A`: implements the generated `Guest` trait by
/// converting WIT values and calling the `wire` functions.
pub struct Component<A>(PhantomData<A>);

impl<A: Aggregate> wit::Guest for Component<A> {
    fn describe() -> wit::PluginInfo {
        panic::install_hook();
        let info = wire::describe::<A>();
        wit::PluginInfo {
            aggregate_type: info.aggregate_type,
            version: info.version,
            description: info.description,
            commands: info.commands,
            events: info
                .events
                .into_iter()
                .map(|event| wit::EventSchema {
                    name: event.name,
                    version: event.version,
                })
                .collect(),
        }
    }

    fn initial_state() -> wit::State {
        panic::install_hook();
        wire::initial_state::<A>()
    }

    fn handle(
        ctx: wit::Context,
        state: wit::State,
        command: wit::Command,
    ) -> Result<Vec<wit::Event>, wit::Rejection> {
        panic::install_hook();
        let (ctx, command) = from_wit_call(ctx, command);
        wire::handle::<A>(&ctx, &state, &command)
            .map(|events| events.into_iter().map(to_wit_event).collect())
            .map_err(to_wit_rejection)
    }

    fn decide(
        ctx: wit::Context,
        state: wit::State,
        command: wit::Command,
    ) -> Result<wit::Decision, wit::Rejection> {
        panic::install_hook();
        let (ctx, command) = from_wit_call(ctx, command);
        wire::decide::<A>(&ctx, &state, &command)
            .map(|(events, state)| wit::Decision {
                events: events.into_iter().map(to_wit_event).collect(),
                state,
            })
            .map_err(to_wit_rejection)
    }

    fn apply(state: wit::State, events: Vec<wit::Event>) -> Result<wit::State, String> {
        panic::install_hook();
        let events: Vec<wire::RawEvent> = events.into_iter().map(from_wit_event).collect();
        wire::apply::<A>(&state, &events)
    }

    fn upcast(event: wit::Event) -> Result<Vec<wit::Event>, String> {
        panic::install_hook();
        let events = wire::upcast::<A>(&from_wit_event(event))?;
        Ok(events.into_iter().map(to_wit_event).collect())
    }

    fn state_json(state: wit::State) -> Result<wit::Json, String> {
        panic::install_hook();
        wire::state_json::<A>(&state)
    }
}

fn from_wit_call(
    ctx: wit::Context,
    command: wit::Command,
) -> (aggregate::Context, wire::RawCommand) {
    let ctx = aggregate::Context {
        aggregate_id: ctx.aggregate_id,
        stream_version: ctx.stream_version,
        now_ms: ctx.now_ms,
    };
    let command = wire::RawCommand {
        name: command.name,
        data: command.data,
    };
    (ctx, command)
}

fn to_wit_rejection(rejection: aggregate::Rejection) -> wit::Rejection {
    wit::Rejection {
        code: rejection.code,
        message: rejection.message,
    }
}

fn to_wit_event(event: wire::RawEvent) -> wit::Event {
    wit::Event {
        name: event.name,
        version: event.version,
        data: event.data,
    }
}

fn from_wit_event(event: wit::Event) -> wire::RawEvent {
    wire::RawEvent {
        name: event.name,
        version: event.version,
        data: event.data,
    }
}
