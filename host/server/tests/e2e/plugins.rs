//! Plugin administration over HTTP while commands flow; hostile plugins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use tally_test_support::components;

use crate::{Service, bank};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_is_uploaded_and_activated_under_load_without_a_failed_command() {
    let dir = tempfile::tempdir().unwrap();
    let service = Arc::new(Service::start(dir.path(), &[]).await);
    let accounts = 50;
    for i in 0..accounts {
        let (status, _) = service
            .command(
                "bank-account",
                &format!("u{i}"),
                bank("OpenAccount", json!({"initial_balance": 100})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (service, stop, accepted) = (service.clone(), stop.clone(), accepted.clone());
            tokio::spawn(async move {
                let mut n = client;
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = service
                        .command(
                            "bank-account",
                            &format!("u{}", n % accounts),
                            bank("Deposit", json!({"amount": 1})),
                        )
                        .await;
                    assert_eq!(status, 200, "a command failed during the swap: {body}");
                    accepted.fetch_add(1, Ordering::Relaxed);
                    n += 16;
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, body) = service
        .install(components::BANK_ACCOUNT_V2, "activate=true", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["activation"]["activation"]["version"], "2.0.0");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(accepted.load(Ordering::Relaxed) > 0);
    let (_, state) = service.get("/v1/aggregates/bank-account/u7").await;
    assert_eq!(state["plugin_version"], "2.0.0");
    assert_eq!(state["state"]["currency"], "USD");
    let (_, plugins) = service.get("/v1/plugins").await;
    let history = plugins["plugins"][0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    // v1 is older than the active version: refused unless forced.
    let (status, body) = service
        .install(components::BANK_ACCOUNT_V1, "activate=true", None)
        .await;
    assert_eq!(status, 200, "same bytes as installed: {body}");
    let (status, body) = service
        .install(components::BANK_ACCOUNT_V2, "activate=true", None)
        .await;
    assert_eq!(
        (status, body["already_installed"].as_bool()),
        (200, Some(true))
    );
    let (status, body) = service
        .install(components::TEST_IMPOSTOR, "aggregate_type=test-panic", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("aggregate-type-mismatch"))
    );
    let response = reqwest::Client::new()
        .post(service.path("/v1/plugins"))
        .body(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 9])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not-wasm");
    let service = Arc::into_inner(service).unwrap();
    service.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_times_out_does_not_stop_other_types() {
    let dir = tempfile::tempdir().unwrap();
    let service = Arc::new(Service::start(dir.path(), &["--call-timeout-ms", "200"]).await);
    let (status, _) = service
        .install(components::TEST_HOSTILE, "activate=true", None)
        .await;
    assert_eq!(status, 200);
    service
        .command(
            "bank-account",
            "ok",
            bank("OpenAccount", json!({"initial_balance": 0})),
        )
        .await;
    let spinning: Vec<_> = (0..4)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    let (status, body) = service
                        .command("test-hostile", &format!("h{i}"), bank("Spin", json!(null)))
                        .await;
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (500, Some("plugin-timeout"))
                    );
                }
            })
        })
        .collect();
    for _ in 0..30 {
        let (status, body) = service
            .command("bank-account", "ok", bank("Deposit", json!({"amount": 1})))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for task in spinning {
        task.await.unwrap();
    }
    assert_eq!(service.balance("ok").await, 30);
    let service = Arc::into_inner(service).unwrap();
    service.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_contract_1_0_serves_beside_a_1_1_one() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, body) = service
        .install(components::TEST_CONTRACT_V1, "activate=true", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["installed"]["contract"], "1.0.0");
    for amount in [5, 7] {
        let (status, body) = service
            .command("counter", "c-1", bank("Add", json!({ "amount": amount })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = service
        .command("counter", "c-1", bank("Add", json!({ "amount": 0 })))
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, state) = service.get("/v1/aggregates/counter/c-1").await;
    assert_eq!(state["state"]["total"], 12);
    let (status, _) = service
        .command(
            "bank-account",
            "a-1",
            bank("OpenAccount", json!({"initial_balance": 10})),
        )
        .await;
    assert_eq!(status, 200);

    let (_, plugins) = service.get("/v1/plugins").await;
    let contract = |aggregate_type: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|plugin| plugin["aggregate_type"] == aggregate_type)
            .map(|plugin| plugin["installed"][0]["contract"].clone())
    };
    assert_eq!(contract("counter"), Some(json!("1.0.0")));
    assert_eq!(contract("bank-account"), Some(json!("1.1.0")));
    service.stop();
}
