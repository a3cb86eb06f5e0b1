//! Hostile projections: test-hostile-projection misbehaves on some bank-account
//! deposits (by amount). Each misbehaviour stops that projection alone, at exactly
//! that event, with a message that says what happened; what it applied before stays
//! and is queried; commands and other projections keep going; `retry` applies the
//! event again and `skip` passes over it. Components that are not projections are
//! refused, and a fault in the middle of the log survives a restart with every event
//! applied exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tally_projections::{
    Fault, ProjectionError, ProjectionState, ProjectionStatus, Projections, ProjectionsConfig,
};
use tally_runtime::{
    EngineConfig, GlobalPosition, InstallError, InstallOptions, PluginError, Runtime,
};
use tally_test_support::components;

use crate::{bank_on, engine_config, runtime_config, send};

/// The hostile projection's name.
const HOSTILE: &str = "test-hostile-projection";
/// Its table, and the document there counting the deposits it applied.
const DOCS: &str = "docs";
const COUNT: &str = "count";

/// Deposit amounts on which it misbehaves (see the plugin's constants).
const SPIN: i64 = 13;
const MEMORY_BOMB: i64 = 14;
const BIG_DOCUMENT: i64 = 15;
const UNDECLARED: i64 = 16;
const ERROR: i64 = 17;
const PANIC: i64 = 18;
const NOT_JSON: i64 = 19;
const LONG_KEY: i64 = 20;

/// CPU limit per call: far above what a call takes in a debug build (the memory bomb
/// must reach the memory limit first, also on a loaded machine), short enough for the
/// endless loop to be stopped quickly.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// Memory limit per instance: ample for the projections, quickly reached by the bomb.
const MEMORY_LIMIT: usize = 16 << 20;
/// Largest document: far above what account-summary writes, below the hostile
/// projection's 64 KiB document.
const MAX_DOCUMENT_BYTES: usize = 16 << 10;

/// How long a test waits for a projection to get somewhere. Generous: only a failing
/// test waits this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// The engine of these tests: short CPU limit, small memory and document limits.
fn engine() -> EngineConfig {
    EngineConfig {
        call_timeout: CALL_TIMEOUT,
        memory_limit: MEMORY_LIMIT,
        max_document_bytes: MAX_DOCUMENT_BYTES,
        ..engine_config()
    }
}

/// The projections of `runtime` in `dir`, with reads that wait up to [`DEADLINE`].
async fn open_projections(runtime: &Runtime, dir: &Path) -> Result<Projections, ProjectionError> {
    let config = ProjectionsConfig {
        max_wait: DEADLINE,
        ..ProjectionsConfig::new(dir.join("projections"))
    };
    Projections::open(runtime.clone(), config).await
}

/// Projections with account-summary and the hostile projection installed.
async fn both_projections(runtime: &Runtime, dir: &Path) -> Projections {
    let projections = open_projections(runtime, dir)
        .await
        .expect("open projections");
    for component in [
        components::ACCOUNT_SUMMARY,
        components::TEST_HOSTILE_PROJECTION,
    ] {
        projections
            .install(&components::bytes(component))
            .expect("install a projection");
    }
    projections
}

/// Deposits `amount` into account `id`: the event's position.
async fn deposit(runtime: &Runtime, id: &str, amount: i64) -> GlobalPosition {
    let outcome = send(runtime, id, "Deposit", json!({ "amount": amount })).await;
    outcome.events[0].position
}

/// Opens account `id` with nothing in it.
async fn open_account(runtime: &Runtime, id: &str) {
    send(runtime, id, "OpenAccount", json!({"initial_balance": 0})).await;
}

/// The status of projection `name`.
fn status(projections: &Projections, name: &str) -> ProjectionStatus {
    projections
        .list()
        .into_iter()
        .find(|status| status.info.name == name)
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// The status of projection `name`, once `done` holds for it; panics after
/// [`DEADLINE`] naming `what` was awaited.
async fn wait_until(
    projections: &Projections,
    name: &str,
    what: &str,
    done: impl Fn(&ProjectionStatus) -> bool,
) -> ProjectionStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = status(projections, name);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name} never {what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The hostile projection's fault, once it is faulted after `attempts` failures.
async fn faulted(projections: &Projections, attempts: u32) -> Fault {
    let status = wait_until(projections, HOSTILE, "faulted", |status| {
        status.progress.state == ProjectionState::Faulted
            && status.progress.fault.as_ref().map(|fault| fault.attempts) == Some(attempts)
    })
    .await;
    status
        .progress
        .fault
        .expect("a faulted projection has its fault")
}

/// Waits until projection `name` is live with every event of the log applied.
async fn caught_up(projections: &Projections, runtime: &Runtime, name: &str) -> ProjectionStatus {
    let end = runtime.store().known_end();
    wait_until(projections, name, "caught up", |status| {
        status.progress.state == ProjectionState::Live && status.progress.checkpoint >= end
    })
    .await
}

/// The hostile projection's count of deposits, without waiting, with the position
/// the read model reflects.
async fn count(
    projections: &Projections,
    min_position: Option<GlobalPosition>,
) -> (u64, GlobalPosition) {
    let (document, at) = projections
        .document(HOSTILE, DOCS, COUNT, min_position)
        .await
        .expect("read the count");
    let count = document.map_or(0, |bytes| {
        serde_json::from_slice::<u64>(&bytes).expect("the count is a number")
    });
    (count, at)
}

/// Account `id` in account-summary, once it has applied every event so far.
async fn summary_account(projections: &Projections, runtime: &Runtime, id: &str) -> Value {
    let end = runtime.store().known_end();
    let (document, _) = projections
        .document("account-summary", "accounts", id, Some(end))
        .await
        .expect("account-summary keeps answering");
    serde_json::from_slice(&document.expect("the account's document")).expect("JSON")
}

/// Asserts that `fault` is at `position`, names the deposit of account `id`, and that
/// its message has each of `fragments`.
fn assert_fault(fault: &Fault, position: GlobalPosition, id: &str, fragments: &[&str]) {
    assert_eq!(fault.position, position, "{fault:?}");
    assert_eq!(
        fault.event,
        format!("bank-account/{id} MoneyDeposited"),
        "{fault:?}"
    );
    for fragment in fragments {
        assert!(
            fault.message.contains(fragment),
            "{fragment:?} is not in {fault:?}"
        );
    }
}

/// The life of one misbehaviour: deposits before and after the hostile one, already in
/// the log when the projections are installed (so it fails inside a batch first); the
/// fault pinned to it; reads, commands and account-summary carrying on; `retry`
/// failing again; `skip` passing over it, and the projection live again.
async fn contained(amount: i64, fragments: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine()).await;
    open_account(&runtime, "a").await;
    deposit(&runtime, "a", 1).await;
    deposit(&runtime, "a", 2).await;
    let hostile = deposit(&runtime, "a", amount).await;
    deposit(&runtime, "a", 3).await;
    let projections = both_projections(&runtime, dir.path()).await;

    let fault = faulted(&projections, 1).await;
    assert_fault(&fault, hostile, "a", fragments);
    // The deposits before it are in the read model, which answers at its checkpoint.
    assert_eq!(count(&projections, Some(hostile)).await, (2, hostile));

    // Commands keep flowing, and account-summary applies them.
    deposit(&runtime, "a", 4).await;
    deposit(&runtime, "a", 5).await;
    let account = summary_account(&projections, &runtime, "a").await;
    assert_eq!(account["balance"], 15 + amount, "{account}");
    let status = status(&projections, HOSTILE);
    assert_eq!(status.progress.fault.as_ref(), Some(&fault));
    assert_eq!(status.progress.checkpoint, hostile);
    assert_eq!(status.lag_events, 4, "the hostile deposit, 3, 4 and 5");
    assert_eq!(count(&projections, None).await, (2, hostile));

    // `retry` applies it again: a deterministic failure fails the same way.
    projections.retry(HOSTILE).await.expect("retry");
    let again = faulted(&projections, 2).await;
    assert_eq!(
        Fault {
            attempts: 1,
            ..again
        },
        fault
    );

    // `skip` passes over it, and only it.
    projections.skip(HOSTILE).await.expect("skip");
    caught_up(&projections, &runtime, HOSTILE).await;
    let end = runtime.store().known_end();
    assert_eq!(count(&projections, None).await, (5, end));
    let snapshot = projections.snapshot(HOSTILE, DOCS, None).await.unwrap();
    assert_eq!(snapshot.skipped().unwrap(), 1);
    let retried = projections.retry(HOSTILE).await.unwrap_err();
    assert!(
        matches!(retried, ProjectionError::NotFaulted(_)),
        "{retried}"
    );

    // Live again: the next deposit is applied.
    let next = deposit(&runtime, "a", 6).await;
    assert_eq!(count(&projections, Some(next.next())).await.0, 6);
    runtime.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_the_cpu_limit() {
    contained(SPIN, &["CPU limit of 1s"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    contained(
        MEMORY_BOMB,
        &[&format!("memory limit of {MEMORY_LIMIT} bytes")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_size_limit_is_refused() {
    let limit =
        format!("document docs/big has 65536 bytes, over the limit of {MAX_DOCUMENT_BYTES}");
    contained(BIG_DOCUMENT, &[&limit]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_it_did_not_declare_is_refused() {
    contained(
        UNDECLARED,
        &["table \"audit\", which it does not declare (its tables: docs)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_is_not_json_is_refused() {
    contained(NOT_JSON, &["document docs/broken is not JSON"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_the_limit_is_refused() {
    contained(
        LONG_KEY,
        &["a document key must have 1 to 1024 bytes; got 4096"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_of_the_projection_is_its_message() {
    contained(ERROR, &["test-hostile-projection refuses this deposit"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_with_its_message() {
    contained(
        PANIC,
        &[
            "panicked",
            "test-hostile-projection cannot apply this deposit",
        ],
    )
    .await;
}

/// An aggregate plugin is no projection, and a projection no aggregate plugin: each is
/// refused with the error that says so, and nothing is installed.
#[tokio::test]
async fn a_component_of_the_other_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine()).await;
    let projections = open_projections(&runtime, dir.path()).await.unwrap();
    for aggregate in [components::BANK_ACCOUNT_V1, components::TEST_HOSTILE] {
        let refused = projections
            .install(&components::bytes(aggregate))
            .unwrap_err();
        assert!(
            matches!(
                refused,
                ProjectionError::Install(InstallError::NotAProjection(_))
            ),
            "{aggregate}: {refused:?}"
        );
    }
    assert!(projections.list().is_empty());
    let options = InstallOptions {
        activate: true,
        ..InstallOptions::default()
    };
    let bytes = components::bytes(components::TEST_HOSTILE_PROJECTION);
    let refused = runtime.install_plugin(bytes, options).await.unwrap_err();
    assert!(
        matches!(refused, PluginError::Install(InstallError::WrongWorld(_))),
        "{refused:?}"
    );
    runtime.close().await.unwrap();
}

/// Opens the runtime and projections in `dir` again, once the projections are closed
/// (their read models released).
async fn restart(runtime: Runtime, projections: Projections, dir: &Path) -> (Runtime, Projections) {
    projections.close().await;
    runtime.close().await.unwrap();
    let runtime = Runtime::open(runtime_config(dir, engine()))
        .await
        .expect("reopen")
        .0;
    let projections = open_projections(&runtime, dir)
        .await
        .expect("reopen projections");
    (runtime, projections)
}

/// A fault in the middle of the log is where a restart resumes: the events before it
/// are not applied again, it faults again on the same event, and after `skip` every
/// other event is applied once, also across a second restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_mid_log_survives_a_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine()).await;
    let projections = both_projections(&runtime, dir.path()).await;
    open_account(&runtime, "a").await;
    open_account(&runtime, "b").await;
    deposit(&runtime, "a", 1).await;
    deposit(&runtime, "b", 2).await;
    let hostile = deposit(&runtime, "b", ERROR).await;
    deposit(&runtime, "a", 3).await;
    let fault = faulted(&projections, 1).await;
    assert_fault(&fault, hostile, "b", &["refuses this deposit"]);
    assert_eq!(count(&projections, None).await, (2, hostile));

    let (runtime, projections) = restart(runtime, projections, dir.path()).await;
    let resumed = faulted(&projections, 1).await;
    assert_eq!(resumed, fault);
    assert_eq!(count(&projections, None).await, (2, hostile));
    deposit(&runtime, "b", 4).await;
    projections.skip(HOSTILE).await.expect("skip");
    caught_up(&projections, &runtime, HOSTILE).await;
    assert_eq!(count(&projections, None).await.0, 4);

    let (runtime, projections) = restart(runtime, projections, dir.path()).await;
    let end = runtime.store().known_end();
    assert_eq!(count(&projections, None).await, (4, end));
    let next = deposit(&runtime, "a", 5).await;
    assert_eq!(count(&projections, Some(next.next())).await.0, 5);
    let summary = summary_account(&projections, &runtime, "b").await;
    assert_eq!(summary["balance"], 2 + ERROR + 4, "{summary}");
    runtime.close().await.unwrap();
}

/// `skip` passes over the event it was asked for, and no other: a second `skip` sent
/// before the projector took the first (a double click) does not pass over the next
/// fault, which nobody has seen yet. Single-threaded, so that both reach the projector
/// before it runs.
#[tokio::test]
async fn a_second_skip_does_not_pass_over_the_next_fault() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine()).await;
    open_account(&runtime, "a").await;
    deposit(&runtime, "a", 1).await;
    let first = deposit(&runtime, "a", ERROR).await;
    deposit(&runtime, "a", 2).await;
    let second = deposit(&runtime, "a", PANIC).await;
    deposit(&runtime, "a", 3).await;
    let projections = both_projections(&runtime, dir.path()).await;
    assert_eq!(faulted(&projections, 1).await.position, first);

    projections.skip(HOSTILE).await.expect("skip");
    // Still faulted at `first` as far as the service knows: accepted, or refused if
    // the projector already moved on; either way it is about `first`.
    let _ = projections.skip(HOSTILE).await;
    // Faulted past `first`, or (were the second `skip` taken) past `second` too.
    let status = wait_until(
        &projections,
        HOSTILE,
        "got past the first fault",
        |status| {
            let progress = &status.progress;
            (progress.state == ProjectionState::Faulted && progress.checkpoint > first)
                || progress.checkpoint > second
        },
    )
    .await;
    assert_eq!(
        status.progress.state,
        ProjectionState::Faulted,
        "{status:?}"
    );
    assert_fault(
        &status.progress.fault.unwrap(),
        second,
        "a",
        &["cannot apply this deposit"],
    );
    assert_eq!(count(&projections, None).await, (2, second));
    let snapshot = projections.snapshot(HOSTILE, DOCS, None).await.unwrap();
    assert_eq!(snapshot.skipped().unwrap(), 1);
    runtime.close().await.unwrap();
}
