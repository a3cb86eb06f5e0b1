//! The epoch ticker thread lives exactly as long as the engine (and the plugins
//! loaded into it). A binary of its own: it counts the process's threads.

use std::time::{Duration, Instant};

use tally_runtime::{EngineConfig, EngineError, PluginEngine};

/// Waits up to 5 s for the number of ticker threads to become `expected`: a new
/// thread names itself once it runs, a joined one may be listed a moment longer.
fn await_tickers(expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tickers() != expected {
        assert!(
            Instant::now() < deadline,
            "{} ticker threads, expected {expected}",
            tickers()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Threads named like the ticker (`tally-epoch-ticker`, truncated to 15 bytes by
/// the kernel).
fn tickers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "tally-epoch-tic")
        .count()
}

#[test]
fn the_ticker_thread_stops_when_the_last_engine_handle_drops() {
    assert_eq!(tickers(), 0);
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    assert!(engine.ticker_running());
    await_tickers(1);
    let clone = engine.clone();
    drop(engine);
    assert!(clone.ticker_running());
    await_tickers(1);
    drop(clone);
    await_tickers(0);
}

#[test]
fn unusable_configurations_are_refused() {
    let zero_tick = PluginEngine::new(EngineConfig {
        epoch_tick: Duration::ZERO,
        ..EngineConfig::default()
    });
    assert!(matches!(zero_tick, Err(EngineError::Config(_))));
    let no_calls = PluginEngine::new(EngineConfig {
        max_calls_per_instance: 0,
        ..EngineConfig::default()
    });
    assert!(matches!(no_calls, Err(EngineError::Config(_))));
}
