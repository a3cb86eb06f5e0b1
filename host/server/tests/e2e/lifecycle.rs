//! The recipe over HTTP across restarts, SIGTERM under load, a plugins directory
//! that refuses the start, and one that holds a projection (at start, or dropped in
//! under `--watch`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tally_test_support::components;

use crate::{Service, bank, serve_command};

/// Runs `tally serve` with `--plugins plugins` on a new data directory in `dir` until it
/// exits; its exit status and what it wrote to stderr. Panics if it still runs after a
/// minute: it started instead of refusing to.
fn serve_with_plugins(dir: &Path, plugins: &Path) -> (ExitStatus, String) {
    let mut child = serve_command(&dir.join("data"), plugins, &[])
        .spawn()
        .expect("start tally serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tally serve is still running; log:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

/// A plugins directory `plugins` in `dir` holding `components`, each a component's
/// path and its file name there.
fn plugins_dir(dir: &Path, components: &[(&str, &str)]) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for (component, file) in components {
        std::fs::copy(component, plugins.join(file)).unwrap();
    }
    plugins
}

#[test]
fn a_missing_plugins_directory_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-plugins-here");
    let (status, stderr) = serve_with_plugins(dir.path(), &missing);
    assert!(!status.success(), "{status}: {stderr}");
    let reason = format!(
        "error: cannot read the plugins directory {}: No such file or directory",
        missing.display()
    );
    assert!(stderr.contains(&reason), "{stderr}");
}

#[test]
fn a_component_that_does_not_install_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dir(
        dir.path(),
        &[(components::BANK_ACCOUNT_V1, "bank_account.wasm")],
    );
    let broken = plugins.join("broken.wasm");
    std::fs::write(&broken, b"not a component").unwrap();
    let (status, stderr) = serve_with_plugins(dir.path(), &plugins);
    assert!(!status.success(), "{status}: {stderr}");
    let reason = format!(
        "error: cannot install plugin {}: not a WebAssembly binary",
        broken.display()
    );
    assert!(stderr.contains(&reason), "{stderr}");
    assert!(!stderr.contains(r#""message":"ready""#), "{stderr}");
}

#[tokio::test]
async fn an_aggregate_plugin_named_like_a_projection_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // test-name-clash is a projection named `bank-account`.
    let plugins = plugins_dir(
        dir.path(),
        &[(components::TEST_NAME_CLASH, "name_clash.wasm")],
    );
    let service = Service::start_with_plugins(&dir.path().join("data"), &plugins, &[]).await;
    let (status, list) = service.get("/v1/projections").await;
    assert_eq!(
        list["projections"][0]["name"], "bank-account",
        "{status}: {list}"
    );
    service.stop();

    let aggregate = plugins.join("bank_account.wasm");
    std::fs::copy(components::BANK_ACCOUNT_V1, &aggregate).unwrap();
    let (status, stderr) = serve_with_plugins(dir.path(), &plugins);
    assert!(!status.success(), "{status}: {stderr}");
    let reason = format!(
        "error: cannot install plugin {}: \"bank-account\" is the name of a projection",
        aggregate.display()
    );
    assert!(stderr.contains(&reason), "{stderr}");
}

#[tokio::test]
async fn a_projection_in_the_plugins_directory_is_installed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // `account_summary.wasm` comes first in name order; the aggregate plugin still
    // goes in first.
    let plugins = plugins_dir(
        dir.path(),
        &[
            (components::ACCOUNT_SUMMARY, "account_summary.wasm"),
            (components::BANK_ACCOUNT_V1, "bank_account.wasm"),
        ],
    );
    let data = dir.path().join("data");
    let service = Service::start_with_plugins(&data, &plugins, &[]).await;
    let (status, list) = service.get("/v1/projections").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["projections"][0]["name"], "account-summary", "{list}");
    let (status, opened) = service
        .command(
            "bank-account",
            "alice",
            bank("OpenAccount", json!({"initial_balance": 100})),
        )
        .await;
    assert_eq!(status, 200, "{opened}");
    let alice = format!(
        "/v1/projections/account-summary/accounts/alice?min_position={}",
        opened["position"]
    );
    let (status, document) = service.get(&alice).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["document"]["balance"], 100, "{document}");
    service.stop();

    // Started again with the same directory: installing the same components again
    // changes nothing, and the read model is kept.
    let service = Service::start_with_plugins(&data, &plugins, &[]).await;
    let (status, list) = service.get("/v1/projections").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["projections"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    let (status, document) = service.get(&alice).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["document"]["balance"], 100, "{document}");
    service.stop();
}

#[tokio::test]
async fn with_watch_a_projection_dropped_in_the_plugins_directory_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dir(
        dir.path(),
        &[(components::BANK_ACCOUNT_V1, "bank_account.wasm")],
    );
    let data = dir.path().join("data");
    let service = Service::start_with_plugins(&data, &plugins, &["--watch"]).await;
    std::fs::copy(
        components::ACCOUNT_SUMMARY,
        plugins.join("account_summary.wasm"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = service.get("/v1/projections").await;
        if list["projections"][0]["name"] == "account-summary" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the projection was not installed: {list}; log:\n{}",
            service.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.stop();
}

#[tokio::test]
async fn the_recipe_over_http_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, body) = service
        .command(
            "bank-account",
            "alice",
            bank("OpenAccount", json!({"initial_balance": 1000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["events"][0]["type"], "AccountOpened");
    let (status, _) = service
        .command(
            "bank-account",
            "alice",
            bank("Deposit", json!({"amount": 500})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(service.balance("alice").await, 1500);
    service.stop();

    let service = Service::start(dir.path(), &[]).await;
    assert_eq!(
        service.balance("alice").await,
        1500,
        "recovered from the log"
    );
    let (status, _) = service
        .command(
            "bank-account",
            "alice",
            bank("Withdraw", json!({"amount": 200})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = service
        .command(
            "bank-account",
            "alice",
            bank("Withdraw", json!({"amount": 2000})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("insufficient-funds"))
    );
    assert_eq!(service.balance("alice").await, 1300);
    let log = service.log.lock().unwrap().clone();
    assert!(log.contains("recovered the event log"), "{log}");
    service.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_keeps_every_acknowledged_command() {
    let dir = tempfile::tempdir().unwrap();
    let service = Arc::new(Service::start(dir.path(), &[]).await);
    for i in 0..8 {
        let (status, _) = service
            .command(
                "bank-account",
                &format!("t{i}"),
                bank("OpenAccount", json!({"initial_balance": 0})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (service, stop) = (service.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let command_id = format!("c{client}-{n}");
                    let body = json!({
                        "type": "Deposit",
                        "data": {"amount": 1},
                        "command_id": command_id,
                    });
                    let response = reqwest::Client::new()
                        .post(service.path(&format!(
                            "/v1/aggregates/bank-account/t{}/commands",
                            client % 8
                        )))
                        .json(&body)
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status() == 200 => acknowledged.push(command_id),
                        // Refused while shutting down, or the connection closed: not acknowledged.
                        Ok(_) | Err(_) => {}
                    }
                    n += 1;
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    crate::signal(service.pid(), "TERM");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    let service = Arc::into_inner(service).expect("clients are done");
    service.stop();

    let service = Service::start(dir.path(), &[]).await;
    let mut total = 0;
    for i in 0..8 {
        total += service.balance(&format!("t{i}")).await;
    }
    assert!(
        total >= acknowledged.len() as i64,
        "{total} < {}",
        acknowledged.len()
    );
    // Each acknowledged command id is stored: retrying it is a duplicate.
    for command_id in acknowledged.iter().step_by(37) {
        let client: usize = command_id[1..command_id.find('-').unwrap()]
            .parse()
            .unwrap();
        let (status, body) = service
            .command(
                "bank-account",
                &format!("t{}", client % 8),
                json!({"type": "Deposit", "data": {"amount": 1}, "command_id": command_id}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["duplicate"], true,
            "{command_id} was acknowledged but not stored"
        );
    }
    service.stop();
}
