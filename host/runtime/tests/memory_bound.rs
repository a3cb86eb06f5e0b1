//! Host memory stays bounded while plugins try to exhaust it. A binary of its own
//! so that no other test's allocations blur the process's peak resident memory.

use tally_runtime::{CallError, Command, Context, EngineConfig, Event, LoadedPlugin, PluginEngine};
use tally_test_support::components;

tally_test_support::call_builders!(Command, Event, Context);

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

#[test]
fn memory_bombs_and_huge_events_leave_host_memory_bounded() {
    let limit = EngineConfig::default().memory_limit;
    let engine = PluginEngine::new(EngineConfig {
        optimize: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let hostile =
        LoadedPlugin::load(&engine, &components::bytes(components::TEST_HOSTILE)).unwrap();
    let mut instance = hostile.instance();
    let state = instance.initial_state().unwrap();
    let ctx = context("bomb", 0);
    let baseline_peak = status_kib("VmHWM");

    for round in 0..5 {
        for name in ["MemoryBomb", "BigEvent"] {
            let command = command(name, "{}");
            let error = instance.handle(&ctx, &state, &command).unwrap_err();
            assert_eq!(
                error,
                CallError::MemoryLimit { limit },
                "{name}, round {round}"
            );
        }
    }

    // Each failed instance is dropped before the next call, so ten rounds of
    // 64 MiB cost at most one instance's worth of memory at a time.
    let peak_growth_kib = status_kib("VmHWM").saturating_sub(baseline_peak);
    let bound_kib = (2 * limit / 1024) as u64;
    eprintln!(
        "peak resident growth: {} MiB (bound {} MiB)",
        peak_growth_kib / 1024,
        bound_kib / 1024
    );
    assert!(
        peak_growth_kib < bound_kib,
        "{peak_growth_kib} KiB >= {bound_kib} KiB"
    );

    // And the memory is given back: resident memory now is well under the peak.
    drop(instance);
    let resident = status_kib("VmRSS");
    assert!(
        resident < baseline_peak + (limit / 1024 / 2) as u64,
        "resident {resident} KiB, baseline peak {baseline_peak} KiB"
    );
}
