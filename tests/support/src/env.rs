//! Numbers from the environment: how long a test runs, and the seed that replays it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The number in environment variable `name`, or `default` when it is not set.
///
/// Panics when it is set but not a number.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// The seed in environment variable `name`, or a fresh one from the clock; printed to
/// stderr either way so that a failing run can be repeated.
pub fn seed_from_env(name: &str) -> u64 {
    let seed = env_number(name, clock_seed());
    eprintln!("{name}={seed} (set it to repeat this run)");
    seed
}

/// A seed from the clock: the nanoseconds since the Unix epoch.
pub(crate) fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
}
