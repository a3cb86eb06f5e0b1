//! Panics reach the host as one readable line on the guest's stderr.
//!
//! In a component a panic aborts, and the host only sees the trap
//! `wasm trap: wasm 'unreachable' instruction executed`. Before every exported call
//! the SDK installs a panic hook that first writes
//!
//! ```text
//! tally-plugin-panic: <message> (at <file>:<line>:<column>)
//! ```
//!
//! as a single line to stderr (newlines in the message escaped as `\n`). A host that
//! captures the guest's stderr finds the line by [`PANIC_MARKER`], which the host
//! takes from the same crate (`tally-wit`); see wit/README.md.

use std::io::Write;
use std::panic::PanicHookInfo;
use std::sync::Once;

use tally_wit::PANIC_MARKER;

/// Installs the panic hook, once per instance.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| std::panic::set_hook(Box::new(report)));
}

/// The panic hook: one marked line on stderr.
fn report(info: &PanicHookInfo<'_>) {
    let line = panic_line(info);
    // Nothing better can be done if stderr is gone; the trap still happens.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Formats the marked line for a panic.
fn panic_line(info: &PanicHookInfo<'_>) -> String {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic with a non-string payload");
    let location = info
        .location()
        .map(|location| {
            format!(
                " (at {}:{}:{})",
                location.file(),
                location.line(),
                location.column()
            )
        })
        .unwrap_or_default();
    format!("{PANIC_MARKER}{}{location}\n", one_line(message))
}

/// Escapes line breaks so that the report stays one line.
fn one_line(message: &str) -> String {
    message
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_escaped() {
        assert_eq!(one_line("a\nb\r\\c"), "a\\nb\\r\\\\c");
    }

    #[test]
    fn the_line_carries_marker_message_and_location() {
        // Capture the line the hook would print for a real panic on this thread;
        // panics of tests running in parallel threads are left alone.
        let line = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen = line.clone();
        let this_test = std::thread::current().id();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == this_test {
                *seen.lock().unwrap() = panic_line(info);
            }
        }));
        let result = std::panic::catch_unwind(|| panic!("balance {} overflowed\nbadly", 7));
        std::panic::set_hook(previous);
        assert!(result.is_err());
        let line = line.lock().unwrap().clone();
        assert!(
            line.starts_with("tally-plugin-panic: balance 7 overflowed\\nbadly (at "),
            "{line}"
        );
        assert!(line.contains("panic.rs:"), "{line}");
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
    }
}
