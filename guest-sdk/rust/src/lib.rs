//! `tally-sdk`: write a Tally aggregate plugin as plain Rust.
//!
//! A plugin is a type that implements [`Aggregate`]: serde enums for its commands and
//! events, `handle` to decide and `apply` to evolve. [`export!`] turns that type into
//! the `tally:aggregate` WebAssembly component (`cargo build --release --target
//! wasm32-wasip2`), and [`testing`] checks its rules natively with given/when/then.
//! The WIT bindings stay inside this crate: a plugin author never sees them.
//!
//! A read model is a [`Projection`] the same way: a serde enum of the events it reads
//! and `apply`, which writes JSON [`Documents`]; [`export_projection!`] makes it the
//! `tally:projection` component and [`testing::projection`] checks it natively.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tally_sdk::{Aggregate, Context, Rejection};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { value: i64 }
//!
//! #[derive(Serialize, Deserialize)]
//! enum Command { Add { by: i64 } }
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Event { Added { by: i64 } }
//!
//! impl Aggregate for Counter {
//!     type Command = Command;
//!     type Event = Event;
//!     const AGGREGATE_TYPE: &'static str = "counter";
//!     const VERSION: &'static str = "1.0.0";
//!     const DESCRIPTION: &'static str = "Counts.";
//!
//!     fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
//!         let Command::Add { by } = command;
//!         if by <= 0 {
//!             return Err(Rejection::new("invalid-amount", "add a positive number"));
//!         }
//!         Ok(vec![Event::Added { by }])
//!     }
//!
//!     fn apply(&mut self, event: Event) {
//!         let Event::Added { by } = event;
//!         self.value += by;
//!     }
//! }
//!
//! // In a plugin crate: tally_sdk::export!(Counter);
//!
//! use tally_sdk::testing::given;
//! given::<Counter>([Event::Added { by: 1 }])
//!     .when(Command::Add { by: 2 })
//!     .then_events([Event::Added { by: 2 }]);
//! given::<Counter>([]).when(Command::Add { by: 0 }).then_rejects("invalid-amount");
//! ```
//!
//! # Schema versions
//!
//! [`Aggregate::EVENT_VERSIONS`] and [`Aggregate::UPCASTERS`] name events by their
//! wire names. The names of an enum's variants are known only to serde, at run time,
//! so the SDK checks the two tables at the component's `describe` (which the host
//! calls when it installs the plugin) and at the start of every [`testing`]
//! scenario: a misspelt name fails the plugin's tests with a message naming the bad
//! entry (and, for a name that is not a variant, the event variants), instead of
//! writing events at the wrong version or leaving stored events without an upcaster.
//!
//! # Features
//!
//! - `call-arena` (default): the plugin's global allocator is the SDK's call arena.
//!   The buffers of one call (its arguments, the decoded command, the encoded events
//!   and state, its results) are bumped out of one 64 KiB block, which rewinds as soon
//!   as nothing in it is live; what does not fit goes to the system allocator. On the
//!   bank-account plugin this makes `decide` about a seventh faster and a fold about a
//!   quarter faster. It costs the 64 KiB block, taken at the first allocation and
//!   kept for the instance's life; and an allocation that outlives its call (a cache
//!   in a `static`) stops the block from rewinding until it is freed, so later calls
//!   fill the rest of the block and then go to the system allocator: slower, never
//!   wrong. It applies to `wasm32` builds without threads only; native builds (tests)
//!   keep the system allocator. Projection components use it alike: an `apply`
//!   call frees its batch and documents by its end, so the block rewinds. To choose
//!   another global allocator, depend on the SDK with `default-features = false`.

// The generated bindings name their runtime `tally_sdk::...` so that plugin crates
// need no direct dependency on wit-bindgen; this makes that path valid here too.
extern crate self as tally_sdk;

mod aggregate;
// Compiled where it is the global allocator, and for its own tests.
#[cfg(any(
    test,
    all(
        feature = "call-arena",
        target_family = "wasm",
        not(target_feature = "atomics")
    )
))]
mod arena;
mod codec;
mod component;
mod introspect;
mod panic;
mod projection;
mod schema;
pub mod testing;
mod upcast;
mod wire;

pub use aggregate::{Aggregate, Context, Rejection};
pub use projection::{Documents, Envelope, Projection};
/// Re-exported so that upcasters and tests use the same `serde_json` as the SDK.
pub use serde_json;
pub use upcast::{JsonEvent, Upcaster};

/// Rejection code the SDK returns when a command's name is unknown or its data does
/// not fit the command type (wrong field types, missing fields, not JSON, and unless
/// [`Aggregate::DENY_UNKNOWN_FIELDS`] is off, fields the command does not have).
pub const INVALID_COMMAND: &str = "invalid-command";

/// Rejection code the SDK returns when the state bytes given to `handle` cannot be
/// decoded (they were not produced by this plugin version).
pub const INVALID_STATE: &str = "invalid-state";

/// Exports an [`Aggregate`] type as the plugin's `tally:aggregate/aggregate`
/// component interface. Use it once, in the plugin crate's `lib.rs`:
///
/// ```text
/// tally_sdk::export!(BankAccount);
/// ```
///
/// The crate must have `crate-type = ["cdylib", "rlib"]` (cdylib for the component,
/// rlib for native tests). The macro expands to nothing on non-wasm targets, where
/// the plugin is an ordinary library for its given/when/then tests.
#[macro_export]
macro_rules! export {
    ($aggregate:ty) => {
        // Only a wasm build is a component; on a native target (tests) the
        // component's export symbols would not even link in a cdylib.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type TallyPluginComponent = $crate::__private::Component<$aggregate>;
            $crate::__private::bindings::__export_tally_plugin!(
                TallyPluginComponent with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Implementation details; not part of the public API, and free to change.
#[doc(hidden)]
pub mod __private {
    /// What [`export!`](crate::export) expands to.
    pub use crate::component::{Component, bindings};
    /// What [`export_projection!`](crate::export_projection) expands to.
    pub use crate::projection::component::{ProjectionComponent, bindings as projection_bindings};
    /// The runtime path of the generated bindings.
    pub use wit_bindgen;

    /// The wire layer: the exported functions on plain Rust types (names, versions
    /// and JSON bytes), as the component runs them. For the SDK's own tests and for
    /// running a plugin's logic natively on wire data (the benchmark's reference);
    /// plugin tests use [`testing`](crate::testing).
    pub mod wire {
        pub use crate::wire::{
            EventSchema, PluginInfo, RawCommand, RawEvent, apply, decide, describe, handle,
            initial_state, state_json, upcast,
        };
    }

    /// The projection's wire layer, as [`wire`] is the aggregate's: for the SDK's own
    /// tests and for running a projection's logic natively over an in-memory read
    /// model (the benchmark's reference); projection tests use
    /// [`testing::projection`](crate::testing::projection).
    pub mod projection_wire {
        pub use crate::projection::wire::{ProjectionInfo, RawEnvelope, apply, describe};
        pub use crate::projection::{DocumentStore, MemoryDocuments};
    }
}
