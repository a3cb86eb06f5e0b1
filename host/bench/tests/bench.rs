//! `tally-bench all --quick --json` runs every suite end to end (on the debug build:
//! a smoke run) and reports every figure. The figures are checked for presence and
//! sign only: tests never assert on time.

use std::path::Path;
use std::process::Command;

use tally_test_support::components;

/// Every key of `tally-bench all`, suite by suite.
const KEYS: &[&str] = &[
    // wal
    "fsync_limit_per_s",
    "fsync_limit_before_per_s",
    "fsync_limit_after_per_s",
    "always_1_per_s",
    "always_1_vs_fsync",
    "always_16_per_s",
    "always_16_vs_fsync",
    "always_1_no_zeros_per_s",
    "always_16_no_zeros_per_s",
    "always_256_per_s",
    "always_256_vs_fsync",
    "group_256_limit_per_s",
    "always_256_vs_group_limit",
    "batch_5ms_256_per_s",
    "os_1_per_s",
    "recovery_mib_per_s",
    "scan_mib_per_s",
    "log_mib",
    "log_file_mib",
    // store
    "append_256_per_s",
    "append_256_commit_batch_1_per_s",
    "wal_always_256_per_s",
    "append_vs_wal",
    "read_stream_10k_ms",
    "read_stream_events",
    "open_1m_ms",
    "rss_1m_mib",
    "rss_bytes_per_event",
    "log_events",
    // fold
    "fold_events_per_s",
    "fold_ms",
    "fold_native_events_per_s",
    "fold_vs_native",
    "fold_read_events_per_s",
    "fold_events",
    // commands
    "fsync_floor_per_s",
    "wasm_commands_per_s",
    "native_commands_per_s",
    "native_ratio",
    "wasm_cpu_us_per_command",
    "native_cpu_us_per_command",
    "cpu_ratio",
    "bare_native_commands_per_s",
    "bare_native_ratio",
    "bare_native_cpu_us_per_command",
    "commands_vs_fsync",
    "wasm_os_commands_per_s",
    "native_os_commands_per_s",
    "native_os_ratio",
    "naive_commands_per_s",
    "naive_command_ms",
    "naive_log_events",
    "wasm_vs_naive",
    // http
    "http_commands_per_s",
    "http_p50_ms",
    "http_p90_ms",
    "http_p99_ms",
    "http_p999_ms",
    "http_max_ms",
    "http_inprocess_commands_per_s",
    "http_vs_inprocess",
    // hot
    "hot_commands_per_s",
    "hot_p50_ms",
    "hot_p99_ms",
    "hot_max_ms",
    "hot_fsync_floor_per_s",
    "hot_commands_per_fsync",
    // swap
    "swap_activate_ms",
    "swap_verified_streams",
    "swap_verified_events",
    "swap_verify_ms",
    "verify_ms_per_million_events",
    "rollback_ms",
    "swap_under_load_activate_ms",
    "swap_pause_ms",
    "swap_p99_ms",
    "swap_fsync_max_ms",
    "steady_max_ms",
    "steady_p99_ms",
    "steady_fsync_max_ms",
    "swap_window_commands",
    "steady_window_commands",
    "swap_window_s",
    "steady_window_s",
    // fanout
    "fanout_subscribers",
    "fanout_base_commands_per_s",
    "fanout_base_p99_ms",
    "fanout_live_commands_per_s",
    "fanout_live_p99_ms",
    "fanout_rate_ratio",
    "fanout_deliveries_per_s",
    "fanout_base_rss_mib",
    "fanout_live_rss_mib",
    "fanout_rss_added_mib",
    "fanout_base_threads",
    "fanout_live_threads",
    "fanout_delivered_events",
    "fanout_catch_up_subscribers",
    "fanout_catch_up_events",
    "fanout_catch_up_s",
    "fanout_catch_up_peak_rss_mib",
    "fanout_catch_up_threads",
    // projection
    "projection_catchup_events_per_s",
    "projection_catchup_cpu_us_per_event",
    "projection_native_events_per_s",
    "projection_native_cpu_us_per_event",
    "projection_plugin_events_per_s",
    "projection_plugin_cpu_us_per_event",
    "projection_read_events_per_s",
    "projection_read_cpu_us_per_event",
    "projection_commit_events_per_s",
    "projection_commit_cpu_us_per_event",
    "projection_catchup_s",
    "projection_commit_batch_ms",
    "projection_catchup_vs_native",
    "projection_plugin_vs_native",
    "projection_catchup_vs_plugin",
    "projection_events",
    "projection_accounts",
    "projection_lag_p50_ms",
    "projection_lag_p99_ms",
    "projection_lag_max_ms",
    "projection_lag_samples",
    "projection_live_applied_per_s",
    "projection_live_commands_per_s",
    "projection_base_commands_per_s",
    "projection_live_vs_base",
    "projection_live_cpu_us_per_command",
    "projection_base_cpu_us_per_command",
    "projection_lag_64_p50_ms",
    "projection_lag_64_p99_ms",
    "projection_lag_64_max_ms",
    "projection_live_64_commands_per_s",
];

#[test]
fn bench_all_quick_reports_every_figure() {
    let plugins = Path::new(components::BANK_ACCOUNT_V1)
        .parent()
        .expect("the components' directory");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_tally-bench"))
        .args(["all", "--quick", "--json", "--plugins"])
        .arg(plugins)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("tally-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tally-bench failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a JSON line");
    let figures: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    let figures = figures.as_object().expect("a JSON object");
    for key in KEYS {
        let value = figures
            .get(*key)
            .unwrap_or_else(|| panic!("{key} is missing:\n{stdout}"));
        let number = value
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {value}"));
        assert!(number > 0.0, "{key} is {number}, not positive:\n{stdout}");
    }
    for key in figures.keys() {
        assert!(
            KEYS.contains(&key.as_str()),
            "{key} is not in the expected list"
        );
    }
    // Every suite removed its working data.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the directory")
        .map(|entry| entry.expect("an entry").file_name())
        .filter(|name| {
            name.to_string_lossy().starts_with("tally-bench-")
                && name != "tally-bench-compile-cache"
        })
        .collect();
    assert!(left.is_empty(), "working data left behind: {left:?}");
}
