//! The recipe's scenarios, concurrency on one aggregate, idempotency, expected
//! versions, snapshots and the state cache.

use std::sync::Arc;
use std::time::Duration;

use tally_runtime::tally_store::EventLog;
use tally_runtime::tally_store::tally_wal::FsyncPolicy;
use tally_runtime::{CommandError, ExecuteOptions, Runtime, StreamVersion};

use tally_test_support::components;

use crate::{account, bank, command, config, open, rejection_code, send};

#[tokio::test]
async fn open_then_deposit_gives_the_sum() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let opened = send(
        &runtime,
        "alice",
        "OpenAccount",
        r#"{"initial_balance":1000}"#,
    )
    .await
    .unwrap();
    assert_eq!(opened.version.get(), 1);
    assert_eq!(opened.events[0].name, "AccountOpened");
    assert_eq!(opened.events[0].version.get(), 1);
    let deposited = send(&runtime, "alice", "Deposit", r#"{"amount":500}"#)
        .await
        .unwrap();
    assert_eq!(deposited.version.get(), 2);
    assert_eq!(deposited.events[0].name, "MoneyDeposited");
    assert_eq!(account(&runtime, "alice").await["balance"], 1500);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn a_restart_rebuilds_the_balance_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "bob",
        "OpenAccount",
        r#"{"initial_balance":2000}"#,
    )
    .await
    .unwrap();
    send(&runtime, "bob", "Deposit", r#"{"amount":1000}"#)
        .await
        .unwrap();
    send(&runtime, "bob", "Withdraw", r#"{"amount":500}"#)
        .await
        .unwrap();
    runtime.close().await.unwrap();

    let runtime = open(dir.path()).await;
    let state = runtime.state("bank-account", "bob").await.unwrap().unwrap();
    assert_eq!(state.version.get(), 3);
    let json: serde_json::Value = serde_json::from_str(&state.state_json).unwrap();
    assert_eq!(json["balance"], 2500);
    // And it keeps taking commands after the restart.
    let outcome = send(&runtime, "bob", "Withdraw", r#"{"amount":2500}"#)
        .await
        .unwrap();
    assert_eq!(outcome.version.get(), 4);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn an_overdraft_is_rejected_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "carol",
        "OpenAccount",
        r#"{"initial_balance":100}"#,
    )
    .await
    .unwrap();
    let end = runtime.store().known_end();
    let error = send(&runtime, "carol", "Withdraw", r#"{"amount":200}"#)
        .await
        .unwrap_err();
    assert_eq!(rejection_code(error), "insufficient-funds");
    assert_eq!(runtime.store().known_end(), end);
    assert_eq!(account(&runtime, "carol").await["balance"], 100);
    runtime.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_never_overdraw_and_versions_stay_dense() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "dave",
        "OpenAccount",
        r#"{"initial_balance":500}"#,
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let runtime = runtime.clone();
            tokio::spawn(
                async move { send(&runtime, "dave", "Withdraw", r#"{"amount":10}"#).await },
            )
        })
        .collect();
    let (mut accepted, mut rejected) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert_eq!(rejection_code(error), "insufficient-funds");
                rejected += 1;
            }
        }
    }
    assert_eq!((accepted, rejected), (50, 50));
    assert_eq!(account(&runtime, "dave").await["balance"], 0);
    let events = runtime
        .events(
            "bank-account",
            "dave",
            StreamVersion::FIRST,
            1000,
            Default::default(),
        )
        .await
        .unwrap();
    let versions: Vec<u64> = events.iter().map(|event| event.version.get()).collect();
    assert_eq!(versions, (1..=51).collect::<Vec<u64>>());
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn a_command_id_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "erin",
        "OpenAccount",
        r#"{"initial_balance":100}"#,
    )
    .await
    .unwrap();
    let options = ExecuteOptions {
        command_id: Some("withdraw-1".into()),
        ..ExecuteOptions::default()
    };
    let withdraw = || command("Withdraw", r#"{"amount":60}"#);
    let first = runtime
        .execute("bank-account", "erin", withdraw(), options.clone())
        .await
        .unwrap();
    assert!(!first.duplicate);
    // A retry would overdraw if it ran again; it returns the first outcome.
    let again = runtime
        .execute("bank-account", "erin", withdraw(), options.clone())
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.version, first.version);
    assert_eq!(again.events, first.events);
    assert_eq!(account(&runtime, "erin").await["balance"], 40);

    // The same id for another aggregate is an error, also after a restart.
    runtime.close().await.unwrap();
    let runtime = open(dir.path()).await;
    let again = runtime
        .execute("bank-account", "erin", withdraw(), options.clone())
        .await
        .unwrap();
    assert!(again.duplicate);
    send(
        &runtime,
        "frank",
        "OpenAccount",
        r#"{"initial_balance":100}"#,
    )
    .await
    .unwrap();
    let error = runtime
        .execute("bank-account", "frank", withdraw(), options)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CommandError::CommandIdReused { stream, .. } if stream == "bank-account/erin"),
        "{error:?}"
    );
    assert_eq!(account(&runtime, "erin").await["balance"], 40);
    runtime.close().await.unwrap();
}

/// Options with command id `id`.
fn with_id(id: &str) -> ExecuteOptions {
    ExecuteOptions {
        command_id: Some(id.into()),
        ..ExecuteOptions::default()
    }
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let first = runtime
        .execute("bank-account", "gina", open_gina(), with_id("c-1"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let end = runtime.store().known_end();
    retry_and_reuse_c1(&runtime, &first).await;
    assert_eq!(runtime.store().known_end(), end);
    runtime.close().await.unwrap();

    let runtime = open(dir.path()).await;
    retry_and_reuse_c1(&runtime, &first).await;
    assert_eq!(runtime.store().known_end(), end);
    assert_eq!(account(&runtime, "gina").await["balance"], 1000);
    runtime.close().await.unwrap();
}

/// The command that opened account gina.
fn open_gina() -> tally_runtime::Command {
    command("OpenAccount", r#"{"initial_balance":1000}"#)
}

/// Sends gina's opening again under `c-1` (a retry: the `first` outcome), then other
/// commands under `c-1` (refused as a reuse).
async fn retry_and_reuse_c1(runtime: &Runtime, first: &tally_runtime::Outcome) {
    let retry = runtime
        .execute("bank-account", "gina", open_gina(), with_id("c-1"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.events, first.events);
    for (name, data) in [
        ("Deposit", r#"{"amount":100}"#),
        ("OpenAccount", r#"{"initial_balance":5}"#),
    ] {
        let error = runtime
            .execute("bank-account", "gina", command(name, data), with_id("c-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                CommandError::CommandIdReused { command_id, stream }
                    if command_id == "c-1" && stream == "bank-account/gina"
            ),
            "{name} {data}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_while_the_first_attempt_is_in_flight_answers_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // The batch window keeps each append in flight for a while.
    config.store.wal.fsync_policy = FsyncPolicy::Batch(Duration::from_millis(300));
    let runtime = Runtime::open(config).await.unwrap().0;
    crate::install(&runtime, components::BANK_ACCOUNT_V1).await;
    let execute = |command| runtime.execute("bank-account", "hal", command, with_id("c-open"));
    let open_account = || command("OpenAccount", r#"{"initial_balance":100}"#);
    // Polled in this order, they queue for the aggregate's slot in this order. Decided
    // against the state after the first attempt's events, the retry would be refused
    // (the account is open), and the other command (an overdraft) too.
    let (first, retry, reuse) = tokio::join!(
        execute(open_account()),
        execute(open_account()),
        execute(command("Withdraw", r#"{"amount":1000}"#)),
    );
    let (first, retry, reuse) = (first.unwrap(), retry.unwrap(), reuse.unwrap_err());
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!(retry.events, first.events);
    assert!(
        matches!(&reuse, CommandError::CommandIdReused { command_id, .. } if command_id == "c-open"),
        "{reuse:?}"
    );
    assert_eq!(account(&runtime, "hal").await["balance"], 100);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn an_expected_version_is_checked_before_the_plugin_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let expecting = |version| ExecuteOptions {
        expected_version: Some(StreamVersion::new(version)),
        ..ExecuteOptions::default()
    };
    let open_account = command("OpenAccount", r#"{"initial_balance":10}"#);
    runtime
        .execute("bank-account", "gina", open_account, expecting(0))
        .await
        .unwrap();
    let deposit = || command("Deposit", r#"{"amount":5}"#);
    let error = runtime
        .execute("bank-account", "gina", deposit(), expecting(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CommandError::WrongExpectedVersion {
                expected: StreamVersion::ZERO,
                actual: StreamVersion::FIRST
            }
        ),
        "{error:?}"
    );
    let outcome = runtime
        .execute("bank-account", "gina", deposit(), expecting(1))
        .await
        .unwrap();
    assert_eq!(outcome.version.get(), 2);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_refused_before_the_plugin_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let end = runtime.store().known_end();
    let unknown = runtime
        .execute(
            "no-such-type",
            "x",
            command("A", "{}"),
            ExecuteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, CommandError::UnknownAggregateType(_)),
        "{unknown:?}"
    );
    for id in ["", "tab\there", &"x".repeat(300)] {
        let error = send(&runtime, id, "Deposit", r#"{"amount":1}"#)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CommandError::Invalid(_)),
            "{id:?}: {error:?}"
        );
    }
    let error = send(&runtime, "h", "Deposit", "not json")
        .await
        .unwrap_err();
    assert_eq!(rejection_code(error), "invalid-command");
    let error = send(&runtime, "h", "Teleport", "{}").await.unwrap_err();
    assert_eq!(rejection_code(error), "invalid-command");
    assert_eq!(runtime.store().known_end(), end);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn snapshots_bound_rebuilds_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.snapshot_every = 10;
    let (runtime, _) = Runtime::open(config.clone()).await.unwrap();
    crate::install(&runtime, tally_test_support::components::BANK_ACCOUNT_V1).await;
    send(&runtime, "ivan", "OpenAccount", r#"{"initial_balance":0}"#)
        .await
        .unwrap();
    for _ in 0..24 {
        send(&runtime, "ivan", "Deposit", r#"{"amount":2}"#)
            .await
            .unwrap();
    }
    // Snapshots are written in the background after the append is durable.
    let stream = tally_runtime::tally_store::StreamId::new("bank-account", "ivan");
    let mut snapshot = None;
    for _ in 0..200 {
        snapshot = runtime
            .store()
            .latest_snapshot(&stream, "bank-account@1.0.0")
            .await
            .unwrap();
        if snapshot.as_ref().is_some_and(|s| s.version.get() == 20) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        snapshot.expect("a snapshot").version.get(),
        20,
        "at 20 events"
    );
    assert!(runtime.stats().snapshots_written >= 2);
    runtime.close().await.unwrap();

    let (runtime, _) = Runtime::open(config).await.unwrap();
    assert_eq!(account(&runtime, "ivan").await["balance"], 48);
    let state = runtime
        .state("bank-account", "ivan")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.version.get(), 25);
    runtime.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_state_cache_evicts_and_rebuilds_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.state_cache_bytes = 16 << 10;
    let (runtime, _) = Runtime::open(config).await.unwrap();
    crate::install(&runtime, tally_test_support::components::BANK_ACCOUNT_V1).await;
    let runtime = Arc::new(runtime);
    let accounts = 300;
    for round in 0..3 {
        for i in 0..accounts {
            let id = format!("acc-{i}");
            if round == 0 {
                send(&runtime, &id, "OpenAccount", r#"{"initial_balance":0}"#)
                    .await
                    .unwrap();
            } else {
                send(
                    &runtime,
                    &id,
                    "Deposit",
                    &format!(r#"{{"amount":{}}}"#, i + 1),
                )
                .await
                .unwrap();
            }
        }
    }
    let stats = runtime.stats();
    assert!(stats.cache_evictions > 0, "{stats:?}");
    // Bounded: a shard may exceed its share only by slots in use when it was last
    // touched, and none is in use now that the loop is done.
    assert!(stats.cached_aggregates < accounts / 4, "{stats:?}");
    for i in [0, 150, 299] {
        let balance = account(&runtime, &format!("acc-{i}")).await["balance"].clone();
        assert_eq!(balance, 2 * (i + 1));
    }
    runtime.close().await.unwrap();
}

/// A full disk fails the commands whose appends were queued (also those decided on
/// top of a failed one), never leaves the cached state ahead of the log, and
/// commands succeed again once there is space, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_commands_cleanly_and_they_resume_after() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let vfs = tally_wal::vfs::FaultyVfs::default();
    let full = vfs.full.clone();
    let mut config = config(dir.path());
    config.store.wal.vfs = Arc::new(vfs);
    let (runtime, _) = Runtime::open(config).await.unwrap();
    crate::install(&runtime, tally_test_support::components::BANK_ACCOUNT_V1).await;
    send(&runtime, "f", "OpenAccount", r#"{"initial_balance":0}"#)
        .await
        .unwrap();

    full.store(true, Ordering::Relaxed);
    // Many commands on one aggregate: several are decided on top of appends still in
    // flight when the first write fails.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let runtime = runtime.clone();
            tokio::spawn(async move { send(&runtime, "f", "Deposit", r#"{"amount":1}"#).await })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        if let Err(error) = task.await.unwrap() {
            assert!(
                error.is_storage_full() || matches!(error, CommandError::Store(_)),
                "{error:?}"
            );
            failed += 1;
        }
    }
    assert!(failed > 0);
    let durable = runtime.state("bank-account", "f").await.unwrap().unwrap();

    full.store(false, Ordering::Relaxed);
    let mut outcome = None;
    for _ in 0..100 {
        // The store resumes once the failed writes have drained.
        match send(&runtime, "f", "Deposit", r#"{"amount":1}"#).await {
            Ok(done) => {
                outcome = Some(done);
                break;
            }
            Err(error) => assert!(matches!(error, CommandError::Store(_)), "{error:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let outcome = outcome.expect("commands succeed again");
    assert_eq!(outcome.version, durable.version + 1);
    let state = account(&runtime, "f").await;
    assert_eq!(
        state["balance"],
        durable.version.get() as i64,
        "one per durable deposit"
    );
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn a_plugin_built_against_contract_1_0_runs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = open(dir.path()).await;
    crate::install(&runtime, components::TEST_CONTRACT_V1).await;
    let add = |amount: u64| {
        runtime.execute(
            "counter",
            "c-1",
            command("Add", &format!(r#"{{"amount": {amount}}}"#)),
            ExecuteOptions::default(),
        )
    };
    assert_eq!(add(5).await.unwrap().version.get(), 1);
    assert_eq!(add(7).await.unwrap().version.get(), 2);
    assert_eq!(rejection_code(add(0).await.unwrap_err()), "invalid-amount");
    let state = runtime.state("counter", "c-1").await.unwrap().unwrap();
    assert_eq!(state.version.get(), 2);
    assert_eq!(state.state_json, r#"{"total":12}"#);
    runtime.close().await.unwrap();
}
