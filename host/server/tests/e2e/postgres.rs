//! The service on PostgreSQL (`--store postgres://...`): two hosts, each with a data
//! directory of its own, share one database. What one host installs and appends, the
//! other serves; a host whose cached state another host moved past decides again
//! without the client seeing it; a command id is one command across hosts; a host
//! killed and started again loses nothing.
//!
//! The database is on this binary's PostgreSQL (`tally_test_support::postgres`): a
//! missing PostgreSQL fails the test under `CI=true` and skips it loudly elsewhere.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tally_test_support::{components, postgres};

use crate::{Service, bank};

/// A host on `connection`, in a data directory of its own, installing what is in
/// `plugins` (an empty directory: nothing of its own).
async fn host(connection: &str, plugins: &std::path::Path) -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a data directory");
    let service = Service::start_with_plugins(dir.path(), plugins, &["--store", connection]).await;
    (service, dir)
}

/// Every bank-account event of the log as `(position, aggregate id, event name)`.
async fn log_of(service: &Service) -> Vec<(u64, String, String)> {
    let (status, body) = service
        .get("/v1/events?limit=1000&aggregate_type=bank-account")
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["position"].as_u64().expect("a position"),
                event["aggregate_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                event["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_hosts_share_one_database() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let empty = tempfile::tempdir().expect("an empty plugins directory");
    let (first, _first_dir) = host(&database.connection, crate::v1_plugins_dir()).await;
    let open = bank("OpenAccount", json!({"initial_balance": 1000}));
    let (status, body) = first.command("bank-account", "ann", open).await;
    assert_eq!(status, 200, "{body}");

    // The second host has no component of its own: it loads the one the first
    // installed from the database, and serves the first host's events.
    let (second, second_dir) = host(&database.connection, empty.path()).await;
    assert!(
        second_dir.path().join("plugins").read_dir().is_ok(),
        "the component is kept in the second host's data directory"
    );
    assert_eq!(second.balance("ann").await, 1000);
    let (status, body) = second
        .command(
            "bank-account",
            "ann",
            bank("Deposit", json!({"amount": 50})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2, "{body}");

    // The first host's cached state is at version 1: the database refuses its append,
    // and it decides again on the state rebuilt from the log, unseen by the client.
    let (status, body) = first
        .command(
            "bank-account",
            "ann",
            bank("Withdraw", json!({"amount": 30})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 3, "{body}");
    assert_eq!(first.balance("ann").await, 1020);
    assert_eq!(second.balance("ann").await, 1020);

    // A caller's expected version is checked against the log, not a stale cache.
    let stale = json!({"type": "Deposit", "data": {"amount": 1}, "expected_version": 2});
    let (status, body) = second.command("bank-account", "ann", stale).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_command_id_is_one_command_across_hosts_and_restarts() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let empty = tempfile::tempdir().expect("an empty plugins directory");
    let (first, first_dir) = host(&database.connection, crate::v1_plugins_dir()).await;
    let (second, _second_dir) = host(&database.connection, empty.path()).await;
    let open =
        || json!({"type": "OpenAccount", "data": {"initial_balance": 7}, "command_id": "open-bo"});
    let (status, answer) = first.command("bank-account", "bo", open()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, retry) = second.command("bank-account", "bo", open()).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["events"], answer["events"]);
    let reused = json!({"type": "Deposit", "data": {"amount": 1}, "command_id": "open-bo"});
    let (status, body): (u16, Value) = second.command("bank-account", "bo", reused).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "command-id-reused", "{body}");

    // Killed without a chance to flush anything, then started on its data directory
    // again: what it acknowledged is in the database.
    for amount in 1..=5 {
        let deposit = bank("Deposit", json!({"amount": amount}));
        let (status, body) = first.command("bank-account", "bo", deposit).await;
        assert_eq!(status, 200, "{body}");
    }
    first.kill();
    let again = Service::start_with_plugins(
        first_dir.path(),
        crate::v1_plugins_dir(),
        &["--store", &database.connection],
    )
    .await;
    assert_eq!(again.balance("bo").await, 7 + 15);
    assert_eq!(second.balance("bo").await, 7 + 15);
    let log = log_of(&second).await;
    let positions: Vec<u64> = log.iter().map(|(position, ..)| *position).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "the log is in position order: {log:?}"
    );
    assert_eq!(log.len(), 6, "{log:?}");
}

#[tokio::test]
async fn an_activation_through_one_host_reaches_the_other() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let empty = tempfile::tempdir().expect("an empty plugins directory");
    let (first, _first_dir) = host(&database.connection, crate::v1_plugins_dir()).await;
    let (second, _second_dir) = host(&database.connection, empty.path()).await;
    let open = bank("OpenAccount", json!({"initial_balance": 5}));
    let (status, body) = second.command("bank-account", "cy", open).await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = second.get("/v1/aggregates/bank-account/cy").await;
    assert_eq!(state["plugin_version"], "1.0.0", "{state}");

    let (status, body) = first
        .install(components::BANK_ACCOUNT_V2, "activate=true", None)
        .await;
    assert_eq!(status, 200, "{body}");
    // The second host follows the registry's records in the shared log: it loads v2
    // from the database and switches, without verifying again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let history = loop {
        let (_, plugins) = second.get("/v1/plugins").await;
        let entry = &plugins["plugins"][0];
        if entry["active"] == "2.0.0" {
            break entry["history"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "v2 never became active: {plugins}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    let (_, state) = second.get("/v1/aggregates/bank-account/cy").await;
    assert_eq!(state["plugin_version"], "2.0.0", "{state}");
    let deposit = bank("Deposit", json!({"amount": 1}));
    let (status, body) = second.command("bank-account", "cy", deposit).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plugin_version"], "2.0.0", "{body}");
}
