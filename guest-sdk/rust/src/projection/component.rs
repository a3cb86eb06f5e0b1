//! The WIT side of projections: bindings generated from `wit/projection/`, the
//! adapter that exports any [`Projection`] through them, and the document store
//! that calls the host's `documents` import. Only
//! [`export_projection!`](crate::export_projection) uses this module.

use std::marker::PhantomData;

use crate::panic;
use crate::projection::wire::{self, RawEnvelope};
use crate::projection::{DocumentStore, Projection};

/// Bindings for the `tally:projection/plugin` world, generated from the repository's
/// `wit/projection/`.
#[allow(missing_docs, clippy::all)] // generated code
pub mod bindings {
    // The world is included under another name because wit-bindgen names the
    // crate-level export macro after the world, and `tally:aggregate/plugin` (the
    // aggregate bindings) already takes `plugin`. The component's imports and exports
    // are those of `tally:projection/plugin`: the same interfaces.
    wit_bindgen::generate!({
        path: "../../wit/projection",
        inline: "package tally:sdk;
            world projection-plugin { include tally:projection/plugin@1.0.0; }",
        world: "tally:sdk/projection-plugin",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_tally_projection",
        runtime_path: "tally_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::exports::tally::projection::projection as wit;
use bindings::tally::projection::documents as host;

/// The component for projection `P`: implements the generated `Guest` trait by
/// converting WIT values and calling the projection `wire` functions.
pub struct ProjectionComponent<P>(PhantomData<P>);

impl<P: Projection> wit::Guest for ProjectionComponent<P> {
    fn describe() -> wit::ProjectionInfo {
        panic::install_hook();
        let info = wire::describe::<P>();
        wit::ProjectionInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            aggregate_types: info.aggregate_types,
            events: info.events,
            tables: info.tables,
        }
    }

    fn apply(events: Vec<wit::EventEnvelope>) -> Result<(), String> {
        panic::install_hook();
        let events = events.into_iter().map(from_wit_envelope).collect();
        wire::apply::<P>(events, &mut HostDocuments)
    }
}

fn from_wit_envelope(event: wit::EventEnvelope) -> RawEnvelope {
    RawEnvelope {
        position: event.position,
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        stream_version: event.stream_version,
        name: event.name,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        data: event.data,
    }
}

/// The host's read model for the batch being applied, through the `documents`
/// import. The host scopes it to the batch: reads see the batch's earlier writes.
struct HostDocuments;

impl DocumentStore for HostDocuments {
    fn get(&self, table: &str, key: &str) -> Option<Vec<u8>> {
        host::get(table, key)
    }

    fn put(&mut self, table: &str, key: &str, data: &[u8]) {
        host::put(table, key, data);
    }

    fn delete(&mut self, table: &str, key: &str) {
        host::delete(table, key);
    }
}
