//! The inputs of a plugin call, built the same way for every set of bindings.
//!
//! The host's `Command`, `Event` and `Context` (`tally_runtime`) and the contract tests'
//! own bindings of the same WIT records are different Rust types with the same fields;
//! [`call_builders!`](crate::call_builders) writes the builders once for any of them.

/// The `now_ms` of every test call context: 2026-01-01T00:00:00Z.
pub const NOW_MS: u64 = 1_767_225_600_000;

/// Defines `command`, `event` and `context` in the calling module for the given
/// `Command`, `Event` and `Context` types (the WIT records of `tally:aggregate`):
///
/// - `command(name, data)`: a command with JSON data given as text;
/// - `event(name, version, data)`: an event with JSON data given as text;
/// - `context(id, stream_version)`: a call context for aggregate `id` at
///   `stream_version`, at [`NOW_MS`](crate::NOW_MS).
///
/// ```ignore
/// use tally_runtime::{Command, Context, Event};
/// tally_test_support::call_builders!(Command, Event, Context);
/// ```
#[macro_export]
macro_rules! call_builders {
    ($command:ident, $event:ident, $context:ident) => {
        /// A command with JSON data given as text.
        #[allow(dead_code)]
        pub fn command(name: &str, data: &str) -> $command {
            $command {
                name: name.to_owned(),
                data: data.as_bytes().to_vec(),
            }
        }

        /// An event with JSON data given as text.
        #[allow(dead_code)]
        pub fn event(name: &str, version: u32, data: &str) -> $event {
            $event {
                name: name.to_owned(),
                version,
                data: data.as_bytes().to_vec(),
            }
        }

        /// A call context for aggregate `id` at `stream_version`.
        #[allow(dead_code)]
        pub fn context(id: &str, stream_version: u64) -> $context {
            $context {
                aggregate_id: id.to_owned(),
                stream_version,
                now_ms: $crate::NOW_MS,
            }
        }
    };
}
