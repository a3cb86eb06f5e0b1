//! `tally-sdk`: write a Tally aggregate plugin as plain Rust.
//!
//! A plugin is a type that implements [`Aggregate`]: serde enums for its commands and
//! events, `handle` to decide and `apply` to evolve. [`export!`] turns that type into
//! the `tally:aggregate` WebAssembly component (`cargo build --release --target
//! wasm32-wasip2`), and [`testing`] checks its rules natively with given/when/then.
//! The WIT bindings stay inside this crate: a plugin author never sees them.
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

// The generated bindings name their runtime `tally_sdk::...` so that plugin crates
// need no direct dependency on wit-bindgen; this makes that path valid here too.
extern crate self as tally_sdk;

mod aggregate;
pub mod arena;
mod codec;
mod component;
mod introspect;
pub mod panic;
pub mod raw;
pub mod testing;
mod upcast;

pub use aggregate::{Aggregate, Context, Rejection};
/// Re-exported so that upcasters and tests use the same `serde_json` as the SDK.
pub use serde_json;
pub use upcast::{JsonEvent, Upcaster};

/// Rejection code the SDK returns when a command's name is unknown or its data does
/// not fit the command type (wrong field types, missing fields, not JSON).
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

/// Implementation details of [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::component::{Component, bindings};
    pub use wit_bindgen;
}
