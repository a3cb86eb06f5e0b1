//! `tally plugin test`, the real binary: the reference plugins pass their conformance
//! suites (`tests/conformance/bank-account/v1` and `v2`), and a plugin that breaks
//! them fails with the scenario named and what was expected against what came.

use std::path::Path;
use std::process::{Command, Output};

use tally_test_support::components;

/// This checkout's bank-account suite of major version `major`.
fn suite(major: u32) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/conformance/bank-account")
        .join(format!("v{major}"));
    dir.to_str().expect("a UTF-8 path").to_owned()
}

/// Runs `tally plugin test ARGS`.
fn plugin_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["plugin", "test"])
        .args(args)
        .output()
        .expect("tally runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that the run passed every check, showing its output if not.
fn assert_passed(output: &Output) {
    let text = stdout(output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
}

/// Asserts that the run failed and that `line` is one of its lines.
fn assert_failed_with(output: &Output, line: &str) {
    let text = stdout(output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.lines().any(|got| got == line),
        "no line {line:?} in:\n{text}"
    );
}

#[test]
fn bank_account_v1_passes_the_v1_suite() {
    let output = plugin_test(&[components::BANK_ACCOUNT_V1, "--scenarios", &suite(1)]);
    assert_passed(&output);
    let text = stdout(&output);
    for file in [
        "describe",
        "rules.json",
        "wire.json",
        "malformed.json",
        "events.json",
    ] {
        assert!(text.contains(&format!("ok      {file}")), "{file}:\n{text}");
    }
}

#[test]
fn without_scenarios_the_checkout_suite_of_the_major_version_is_used() {
    let output = plugin_test(&[components::BANK_ACCOUNT_V2]);
    assert_passed(&output);
    assert!(
        stdout(&output).contains("bank-account/v2"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn bank_account_v2_fails_the_v1_suite_naming_each_difference() {
    let output = plugin_test(&[components::BANK_ACCOUNT_V2, "--scenarios", &suite(1)]);
    assert_failed_with(
        &output,
        r#"FAILED  describe: expected events ["AccountClosed v1", "AccountOpened v1", "MoneyDeposited v1", "MoneyWithdrawn v1"], got ["AccountClosed v1", "AccountOpened v2", "MoneyDeposited v1", "MoneyWithdrawn v1"]"#,
    );
    assert_failed_with(
        &output,
        r#"FAILED  rules.json: OpenAccount opens with the initial balance: expected events [AccountOpened v1 {"initial_balance":100}], got [AccountOpened v2 {"currency":"USD","initial_balance":100}]"#,
    );
    assert_failed_with(
        &output,
        r#"FAILED  events.json: an event newer than the plugin is refused: given: expected upcast to refuse an event, got a state"#,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("checks failed"), "{stderr}");
}

/// A suite for the counter of `test-contract-v1`, a plugin written without the SDK
/// that reads its data leniently: the malformed inputs must be `invalid-command`.
const COUNTER_SUITE: &str = r#"{
  "scenarios": [
    {
      "name": "Add adds",
      "when": {"name": "Add", "data": {"amount": 5}},
      "then": {"events": [{"name": "Added", "version": 1, "data": {"amount": 5}}]},
      "state": {"total": 5}
    },
    {
      "name": "a duplicate field",
      "when": {"name": "Add", "data_text": "{\"amount\": 1, \"amount\": 2}"},
      "then": {"rejection": "invalid-command"},
      "state": {"total": 0}
    },
    {
      "name": "an unknown field",
      "when": {"name": "Add", "data": {"amount": 1, "extra": 1}},
      "then": {"rejection": "invalid-command"}
    },
    {
      "name": "data that is not JSON",
      "when": {"name": "Add", "data_text": "not json"},
      "then": {"rejection": "invalid-command"}
    }
  ]
}"#;

#[test]
fn a_plugin_that_reads_malformed_commands_leniently_fails_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("malformed.json"), COUNTER_SUITE).unwrap();
    let scenarios = dir.path().to_str().unwrap();
    let output = plugin_test(&[components::TEST_CONTRACT_V1, "--scenarios", scenarios]);
    assert_failed_with(&output, "ok      malformed.json: Add adds");
    assert_failed_with(
        &output,
        r#"FAILED  malformed.json: a duplicate field: expected rejection "invalid-command", got events [Added v1 {"amount":2}]"#,
    );
    assert_failed_with(
        &output,
        r#"FAILED  malformed.json: an unknown field: expected rejection "invalid-command", got events [Added v1 {"amount":1}]"#,
    );
    assert_failed_with(
        &output,
        r#"FAILED  malformed.json: data that is not JSON: expected rejection "invalid-command", got rejection "invalid-amount" (add a positive whole amount)"#,
    );
    assert!(stdout(&output).contains("4 checks: 1 passed, 3 failed"));
}

#[test]
fn a_scenario_whose_parts_do_not_fit_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let misfit = r#"{"scenarios": [{"name": "no outcome", "when": {"name": "Deposit"}}]}"#;
    std::fs::write(dir.path().join("bad.json"), misfit).unwrap();
    let scenarios = dir.path().to_str().unwrap();
    let output = plugin_test(&[components::BANK_ACCOUNT_V1, "--scenarios", scenarios]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.json: no outcome: a scenario with `when` needs a `then`"),
        "{stderr}"
    );
}

#[test]
fn a_component_without_a_suite_is_told_to_give_one() {
    let output = plugin_test(&[components::TEST_CONTRACT_V1]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no conformance suite for counter 1.0.0")
            && stderr.contains("--scenarios DIR"),
        "{stderr}"
    );
}
