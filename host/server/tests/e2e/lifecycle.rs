//! The recipe over HTTP across restarts, SIGTERM under load, and a plugins directory
//! that refuses the start.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tally_test_support::components;

use crate::{Service, TALLY, bank};

/// Runs `tally serve` with `--plugins plugins` on a new data directory in `dir` until it
/// exits; its exit status and what it wrote to stderr. Panics if it still runs after a
/// minute: it started instead of refusing to.
fn serve_with_plugins(dir: &Path, plugins: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(TALLY)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--plugins")
        .arg(plugins)
        .arg("--compile-cache")
        .arg(components::compile_cache())
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        components::BANK_ACCOUNT_V1,
        plugins.join("bank_account.wasm"),
    )
    .unwrap();
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
