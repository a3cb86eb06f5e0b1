//! The [`Projection`] trait a read-model plugin implements, the [`Envelope`] each
//! event arrives in, and [`Documents`], the read model it writes.
//!
//! A projection folds the events of some aggregate types into JSON documents kept
//! by the host in the projection's named tables. [`export_projection!`] turns a
//! type implementing [`Projection`] into the `tally:projection` component, and
//! [`testing::projection`](crate::testing::projection) runs it natively on an
//! in-memory read model.

pub(crate) mod check;
pub(crate) mod component;
mod documents;
pub(crate) mod wire;

use serde::de::DeserializeOwned;

pub use documents::Documents;
// Public only through `__private::projection_wire` (the module is private).
pub use documents::{DocumentStore, MemoryDocuments};

/// A read model folded from events: [`apply`](Self::apply) writes what one event
/// changes through [`Documents`].
///
/// A projection keeps no state of its own between events: everything it knows is in
/// its documents, which the host keeps, so `Self` is usually a unit struct. Events
/// are a serde enum in serde's default (externally tagged) representation, decoded
/// as an aggregate decodes its events: the variant name is the event name and the
/// variant's fields are its JSON data. Fields the enum does not declare are ignored,
/// so a projection names only what it reads; `#[serde(default)]` fills a field that
/// older schemas lack.
///
/// The host delivers events already upcast to the current schemas of the active
/// plugin of their aggregate type, in log order, each exactly once. The SDK
/// passes on only the events of [`AGGREGATE_TYPES`](Self::AGGREGATE_TYPES) and, if
/// [`EVENTS`](Self::EVENTS) is not empty, of those names. An event that does not
/// decode into [`Event`](Self::Event) fails the batch with an error naming it and its
/// position.
pub trait Projection {
    /// What the projection reads: a serde enum, one variant per event name it
    /// handles.
    type Event: DeserializeOwned;

    /// Projection name in kebab-case, e.g. `account-summary`.
    const NAME: &'static str;

    /// Projection version (semver); usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// One human-readable sentence about the read model.
    const DESCRIPTION: &'static str;

    /// The aggregate types whose events it reads, kebab-case (at least one).
    const AGGREGATE_TYPES: &'static [&'static str];

    /// The event names it reads; empty means every event of those types, and then
    /// [`Event`](Self::Event) must decode every one of them, including events a later
    /// plugin version adds. Listing the names keeps a new event from failing the
    /// projection. Each name must be a variant of `Event`.
    const EVENTS: &'static [&'static str] = &[];

    /// The tables of its read model, kebab-case (at least one). [`Documents`]
    /// refuses any other table.
    const TABLES: &'static [&'static str];

    /// Applies one event to the read model. Must be deterministic: the same
    /// documents and event give the same writes; time comes only from
    /// [`Envelope::timestamp_ms`]. An error fails the whole batch (nothing of it is
    /// kept) and stops the projection at that event.
    fn apply(envelope: Envelope<Self::Event>, docs: &mut Documents<'_>) -> Result<(), String>;
}

/// One event with its place in the log, as a projection receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<E> {
    /// Position in the global log, from 0; strictly increasing.
    pub position: u64,
    /// Aggregate type of the stream, e.g. `bank-account`.
    pub aggregate_type: String,
    /// Aggregate id of the stream.
    pub aggregate_id: String,
    /// The event's version in its stream: the first event is 1.
    pub stream_version: u64,
    /// Event name, the variant name of `event`.
    pub name: String,
    /// Schema version of the event's data (the current one of its plugin).
    pub schema_version: u32,
    /// When the event was stored: milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
    /// The decoded event.
    pub event: E,
}

/// Exports a [`Projection`] type as the plugin's `tally:projection/projection`
/// component interface. Use it once, in the projection crate's `lib.rs`:
///
/// ```text
/// tally_sdk::export_projection!(AccountSummary);
/// ```
///
/// As for [`export!`](crate::export), the crate must have `crate-type = ["cdylib",
/// "rlib"]`, and the macro expands to nothing on non-wasm targets, where the crate is
/// an ordinary library for its [`testing::projection`](crate::testing::projection)
/// tests.
#[macro_export]
macro_rules! export_projection {
    ($projection:ty) => {
        // Only a wasm build is a component; on a native target (tests) the
        // component's export symbols would not even link in a cdylib.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type TallyProjectionComponent = $crate::__private::ProjectionComponent<$projection>;
            $crate::__private::projection_bindings::__export_tally_projection!(
                TallyProjectionComponent with_types_in $crate::__private::projection_bindings
            );
        };
    };
}
