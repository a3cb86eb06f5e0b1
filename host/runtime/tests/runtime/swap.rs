//! Hot swap: v2 activated over v1 while commands flow, upcasting, rollback, restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tally_runtime::{
    ActivateOptions, CommandError, PluginError, Runtime, SchemaVersion, StreamVersion,
};
use tally_test_support::components;

use crate::{VERIFY, account, bank, install, open, rejection_code, send};

async fn install_v2(runtime: &Runtime) {
    let report = install(runtime, components::BANK_ACCOUNT_V2).await;
    let activation = report.activation.expect("activated");
    assert_eq!(activation.activation.version.to_string(), "2.0.0");
    assert_eq!(activation.activation.previous.unwrap().to_string(), "1.0.0");
}

/// Sends commands for `accounts` accounts from 32 tasks until `stop`; returns the
/// commands accepted. Any failure other than a business rejection fails the test.
async fn load(runtime: &Runtime, accounts: u64, stop: Arc<AtomicBool>) -> u64 {
    let accepted = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32u64)
        .map(|task| {
            let (runtime, stop, accepted) = (runtime.clone(), stop.clone(), accepted.clone());
            tokio::spawn(async move {
                let mut i = task;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("acc-{}", (i * 7919) % accounts);
                    let (name, data) = if i % 3 == 0 {
                        ("Withdraw", r#"{"amount":3}"#)
                    } else {
                        ("Deposit", r#"{"amount":2}"#)
                    };
                    match send(&runtime, &id, name, data).await {
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(CommandError::Rejected(rejection)) => {
                            assert_eq!(rejection.code, "insufficient-funds");
                        }
                        Err(other) => panic!("command failed during the swap: {other}"),
                    }
                    i += 32;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
    accepted.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_is_activated_under_load_without_a_failed_command() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    let accounts = 1_000;
    for i in 0..accounts {
        send(
            &runtime,
            &format!("acc-{i}"),
            "OpenAccount",
            r#"{"initial_balance":10}"#,
        )
        .await
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = {
        let (runtime, stop) = (runtime.clone(), stop.clone());
        tokio::spawn(async move { load(&runtime, accounts, stop).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    install_v2(&runtime).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let accepted = load_task.await.unwrap();
    assert!(accepted > 0);

    // v1-era accounts read through v2's upcaster.
    let state = account(&runtime, "acc-1").await;
    assert_eq!(state["currency"], "USD");
    // Every balance is the fold of its stored events.
    for i in (0..accounts).step_by(97) {
        let id = format!("acc-{i}");
        let events = runtime
            .events(
                "bank-account",
                &id,
                StreamVersion::FIRST,
                10_000,
                Default::default(),
            )
            .await
            .unwrap();
        let mut balance = 0i64;
        for event in &events {
            let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
            match event.name.as_str() {
                "AccountOpened" => balance = data["initial_balance"].as_i64().unwrap(),
                "MoneyDeposited" => balance += data["amount"].as_i64().unwrap(),
                "MoneyWithdrawn" => balance -= data["amount"].as_i64().unwrap(),
                other => panic!("unexpected event {other}"),
            }
        }
        assert_eq!(account(&runtime, &id).await["balance"], balance, "{id}");
    }

    // v2's rules apply now.
    send(
        &runtime,
        "rich",
        "OpenAccount",
        r#"{"initial_balance":2000000}"#,
    )
    .await
    .unwrap();
    let error = send(&runtime, "rich", "Withdraw", r#"{"amount":1500000}"#)
        .await
        .unwrap_err();
    assert_eq!(rejection_code(error), "withdrawal-limit-exceeded");

    // An AccountOpened at schema 2 is stored: v1 cannot read it.
    let error = runtime.rollback("bank-account", VERIFY).await.unwrap_err();
    assert!(
        matches!(&error, PluginError::UnknownSchema { event, schema_version, .. } if event == "AccountOpened" && *schema_version == SchemaVersion::new(2)),
        "{error:?}"
    );
    assert_eq!(
        runtime.plugins()[0].active.as_ref().unwrap().to_string(),
        "2.0.0"
    );

    // A restart comes up with the same versions, from the compile cache, same states.
    let before = account(&runtime, "acc-500").await;
    runtime.close().await.unwrap();
    let runtime = open(dir.path()).await;
    let plugins = runtime.plugins();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].active.as_ref().unwrap().to_string(), "2.0.0");
    assert_eq!(plugins[0].installed.len(), 2);
    assert_eq!(plugins[0].history.len(), 2);
    let stats = runtime.stats();
    assert!(
        stats
            .plugins
            .iter()
            .all(|plugin| plugin.compiled_from_cache),
        "{stats:?}"
    );
    assert_eq!(account(&runtime, "acc-500").await, before);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn rollback_works_while_no_v2_schema_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(&runtime, "r", "OpenAccount", r#"{"initial_balance":10}"#)
        .await
        .unwrap();
    install_v2(&runtime).await;
    // MoneyDeposited is at schema 1 in both versions.
    send(&runtime, "r", "Deposit", r#"{"amount":5}"#)
        .await
        .unwrap();
    assert_eq!(account(&runtime, "r").await["currency"], "USD");

    let report = runtime.rollback("bank-account", VERIFY).await.unwrap();
    assert!(report.activation.rollback);
    assert_eq!(report.activation.version.to_string(), "1.0.0");
    assert_eq!(report.activation.verified_streams, Some(1));
    let outcome = send(&runtime, "r", "Deposit", r#"{"amount":5}"#)
        .await
        .unwrap();
    assert_eq!(outcome.plugin_version.to_string(), "1.0.0");
    let state = account(&runtime, "r").await;
    assert_eq!(state["balance"], 20);
    assert!(
        state.get("currency").is_none(),
        "v1 has no currency: {state}"
    );
    // Nothing earlier to roll back to.
    let error = runtime.rollback("bank-account", VERIFY).await.unwrap_err();
    assert!(
        matches!(error, PluginError::NothingToRollBack(_)),
        "{error:?}"
    );

    // Forward again by activation, then a forced rollback past v2-schema events.
    runtime
        .activate("bank-account", "2.0.0", VERIFY)
        .await
        .unwrap();
    send(&runtime, "r2", "OpenAccount", r#"{"initial_balance":1}"#)
        .await
        .unwrap();
    assert!(runtime.rollback("bank-account", VERIFY).await.is_err());
    let forced = ActivateOptions {
        force: true,
        skip_verify: true,
    };
    let report = runtime.rollback("bank-account", forced).await.unwrap();
    assert!(report.activation.forced);
    assert_eq!(runtime.plugins()[0].history.len(), 5);
    runtime.close().await.unwrap();
}
