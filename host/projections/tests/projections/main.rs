//! Projections against the real components: the account-summary projection over the
//! bank-account plugin, through a real runtime and log, (in [`hostile`]) a projection
//! that misbehaves on purpose, and (in [`lifecycle`]) installs, activations,
//! rollbacks, rebuilds and restarts.

mod hostile;
mod lifecycle;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tally_projections::{ProjectionState, Projections, ProjectionsConfig};
use tally_runtime::{
    Command, EngineConfig, ExecuteOptions, InstallOptions, Outcome, Runtime, RuntimeConfig,
};
use tally_test_support::components;

/// The engine of these tests: unoptimised plugin code (wasmtime is unoptimised here)
/// and the shared compile cache.
pub(crate) fn engine_config() -> EngineConfig {
    EngineConfig {
        optimize: false,
        cache_dir: Some(components::compile_cache().to_owned()),
        ..EngineConfig::default()
    }
}

/// A runtime configuration in `dir` with `engine`.
pub(crate) fn runtime_config(dir: &Path, engine: EngineConfig) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(dir);
    config.engine = engine;
    config
}

/// A runtime in `dir` with bank-account v1 active, on the engine of these tests.
async fn bank(dir: &Path) -> Runtime {
    bank_on(dir, engine_config()).await
}

/// A runtime in `dir` with bank-account v1 active, on `engine`.
pub(crate) async fn bank_on(dir: &Path, engine: EngineConfig) -> Runtime {
    let config = runtime_config(dir, engine);
    let runtime = Runtime::open(config).await.expect("open runtime").0;
    install(&runtime, components::BANK_ACCOUNT_V1).await;
    runtime
}

async fn install(runtime: &Runtime, component: &str) {
    runtime
        .install_plugin(
            components::bytes(component),
            InstallOptions {
                activate: true,
                ..InstallOptions::default()
            },
        )
        .await
        .expect("install");
}

/// Sends a bank-account command; panics unless it is accepted.
pub(crate) async fn send(runtime: &Runtime, id: &str, name: &str, data: Value) -> Outcome {
    let command = Command {
        name: name.into(),
        data: data.to_string().into_bytes(),
    };
    runtime
        .execute("bank-account", id, command, ExecuteOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{name} {id}: {error}"))
}

async fn projections(runtime: &Runtime, dir: &Path) -> Projections {
    Projections::open(
        runtime.clone(),
        ProjectionsConfig::new(dir.join("projections")),
    )
    .await
    .expect("open projections")
}

/// The document at `key`, once the projection has applied every event so far.
async fn document(
    projections: &Projections,
    runtime: &Runtime,
    table: &str,
    key: &str,
) -> Option<Value> {
    let end = runtime.store().known_end();
    let (document, at) = projections
        .document("account-summary", table, key, Some(end))
        .await
        .expect("document");
    assert!(at >= end, "the answer reflects position {at}, not {end}");
    document.map(|bytes| serde_json::from_slice(&bytes).expect("JSON"))
}

#[tokio::test]
async fn the_summary_follows_the_log_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "alice",
        "OpenAccount",
        json!({"initial_balance": 100}),
    )
    .await;
    send(&runtime, "alice", "Deposit", json!({"amount": 50})).await;
    send(
        &runtime,
        "bob",
        "OpenAccount",
        json!({"initial_balance": 7}),
    )
    .await;

    // Installed after the events: it catches up.
    let projections = projections(&runtime, dir.path()).await;
    let info = projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .expect("install the projection");
    assert_eq!(info.name, "account-summary");
    let alice = document(&projections, &runtime, "accounts", "alice")
        .await
        .expect("alice");
    assert_eq!(alice["balance"], 150, "{alice}");
    let totals = document(&projections, &runtime, "totals", "all")
        .await
        .expect("totals");
    assert_eq!(totals["accounts_open"], 2, "{totals}");

    // Live: a new command shows up once applied.
    send(&runtime, "bob", "Withdraw", json!({"amount": 5})).await;
    let bob = document(&projections, &runtime, "accounts", "bob")
        .await
        .expect("bob");
    assert_eq!(bob["balance"], 2, "{bob}");
    let status = projections.list();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].lag_events, 0);

    // After a restart it resumes from its checkpoint: nothing applied twice.
    let checkpoint = status[0].progress.checkpoint;
    projections.close().await;
    let projections = self::projections(&runtime, dir.path()).await;
    let resumed = projections.list();
    assert_eq!(resumed[0].progress.checkpoint, checkpoint);
    send(&runtime, "alice", "Deposit", json!({"amount": 1})).await;
    let alice = document(&projections, &runtime, "accounts", "alice")
        .await
        .expect("alice");
    assert_eq!(alice["balance"], 151, "{alice}");
    assert_eq!(projections.list()[0].progress.state, ProjectionState::Live);
}

#[tokio::test]
async fn pages_are_in_key_order_with_a_prefix_and_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    for id in ["b-2", "a-1", "b-1", "b-3", "c-1"] {
        send(&runtime, id, "OpenAccount", json!({"initial_balance": 1})).await;
    }
    let projections = projections(&runtime, dir.path()).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    let end = runtime.store().known_end();
    let page = |after: Option<&'static str>| {
        let projections = projections.clone();
        async move {
            let (page, _) = projections
                .page("account-summary", "accounts", "b-", after, 2, Some(end))
                .await
                .unwrap();
            let keys: Vec<String> = page.documents.into_iter().map(|(key, _)| key).collect();
            (keys, page.next_after)
        }
    };
    assert_eq!(
        page(None).await,
        (vec!["b-1".into(), "b-2".into()], Some("b-2".into()))
    );
    assert_eq!(page(Some("b-2")).await, (vec!["b-3".into()], None));
    let missing = projections
        .document("account-summary", "no-such-table", "x", None)
        .await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn v1_events_read_as_v2_after_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "alice",
        "OpenAccount",
        json!({"initial_balance": 10}),
    )
    .await;
    install(&runtime, components::BANK_ACCOUNT_V2).await;
    let projections = projections(&runtime, dir.path()).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    let alice = document(&projections, &runtime, "accounts", "alice")
        .await
        .expect("alice");
    assert_eq!(alice["currency"], "USD", "{alice}");
    assert_eq!(alice["balance"], 10, "{alice}");
}

/// A newer version, once activated, builds its read model beside the active one while
/// commands flow: reads keep coming from a complete model (their position never goes
/// back), and once the new version takes over it has every event, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_rebuilds_beside_the_active_one_and_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    for n in 0..50 {
        send(
            &runtime,
            &format!("r{}", n % 5),
            if n < 5 { "OpenAccount" } else { "Deposit" },
            if n < 5 {
                json!({"initial_balance": 0})
            } else {
                json!({"amount": 1})
            },
        )
        .await;
    }
    let projections = projections(&runtime, dir.path()).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    document(&projections, &runtime, "totals", "all").await;

    let load = {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            for n in 0..200 {
                send(
                    &runtime,
                    &format!("r{}", n % 5),
                    "Deposit",
                    json!({"amount": 1}),
                )
                .await;
            }
        })
    };
    projections
        .install(&components::bytes(components::TEST_SUMMARY_V2))
        .expect("install the newer version");
    let stored = projections.list().remove(0);
    assert_eq!(stored.info.version.major, 1, "installing does not activate");
    assert!(stored.building.is_none(), "{stored:?}");
    projections
        .activate("account-summary", "2.0.0")
        .await
        .expect("activate the newer version");
    let mut last_position = tally_runtime::GlobalPosition::START;
    let mut saw_building = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = projections.list().remove(0);
        saw_building |= status.building.is_some();
        let (_, position) = projections
            .document("account-summary", "totals", "all", None)
            .await
            .unwrap();
        assert!(
            position >= last_position,
            "a read went back from {last_position} to {position}"
        );
        last_position = position;
        if status.info.version.major == 2 && load.is_finished() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new version never took over: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    load.await.unwrap();
    assert!(
        saw_building,
        "the new version was seen building beside the active one"
    );
    for n in 0..5 {
        let id = format!("r{n}");
        let account = document(&projections, &runtime, "accounts", &id)
            .await
            .expect("account");
        // 9 deposits of 1 before the install, 40 during it.
        assert_eq!(account["balance"], 49, "{id}: {account}");
    }
}
