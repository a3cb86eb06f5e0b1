//! `tally-wit`: what both sides of the `tally:aggregate` contract share besides the WIT.
//!
//! The contract is the WIT in this directory (`aggregate.wit`, and `v1.0.0/` as
//! released); guests and hosts generate their bindings from it by path. A few rules of
//! the contract are not types and so cannot be in the WIT: their constants live here,
//! and the guest SDK (`tally-sdk`) and the host (`tally-runtime`) both take them from
//! this crate, so that the two sides cannot drift apart. The rules themselves are
//! written down in `wit/README.md`.

/// The prefix of the stderr line by which a plugin reports a panic.
///
/// A panic aborts a component, and the host sees only an `unreachable` trap. So before
/// it aborts, a plugin built with the SDK writes one line to its stderr:
///
/// ```text
/// tally-plugin-panic: <message> (at <file>:<line>:<column>)
/// ```
///
/// with line breaks in the message escaped as `\n` (and `\` as `\\`). After a trap, the
/// host takes the last line of the guest's stderr that starts with this marker as the
/// panic message.
pub const PANIC_MARKER: &str = "tally-plugin-panic: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panic_marker_is_the_one_wit_readme_documents() {
        let readme = include_str!("../README.md");
        let documented = format!("`{PANIC_MARKER}`");
        assert!(
            readme.contains(&documented),
            "wit/README.md does not mention {documented}"
        );
    }
}
