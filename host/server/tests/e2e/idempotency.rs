//! Command ids over HTTP: a retry of a command answers its first result, marked
//! `duplicate`; the id given to another command is refused with 409
//! `command-id-reused`, never answered as a silent success; both also after a restart.

use serde_json::{Value, json};

use crate::Service;

/// Opens account `ann` with 1000, under command id `c-1`.
fn open_ann() -> Value {
    json!({"type": "OpenAccount", "data": {"initial_balance": 1000}, "command_id": "c-1"})
}

/// Sends `body` to account `ann` with command id `c-1` in the `Idempotency-Key` header.
async fn with_header(service: &Service, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(service.path("/v1/aggregates/bank-account/ann/commands"))
        .header("idempotency-key", "c-1")
        .json(&body)
        .send()
        .await
        .expect("send command");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Asserts the answer is 409 `command-id-reused` naming `c-1`.
fn assert_reused((status, body): (u16, Value)) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "command-id-reused", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("c-1"), "{body}");
}

/// Retries `ann`'s opening (answered as `first`) and reuses its id for other commands,
/// in the body and in the header; nothing is appended.
async fn retry_and_reuse(service: &Service, first: &Value) {
    let end = service.end_position().await;
    let (status, retry) = service.command("bank-account", "ann", open_ann()).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["events"], first["events"]);
    let deposit = json!({"type": "Deposit", "data": {"amount": 100}, "command_id": "c-1"});
    assert_reused(service.command("bank-account", "ann", deposit).await);
    let other_data = json!({"type": "OpenAccount", "data": {"initial_balance": 5}});
    assert_reused(with_header(service, other_data).await);
    let (status, retry) = with_header(service, open_ann_by_header()).await;
    assert_eq!(
        (status, &retry["duplicate"]),
        (200, &json!(true)),
        "{retry}"
    );
    assert_eq!(service.end_position().await, end);
    assert_eq!(service.balance("ann").await, 1000);
}

/// `ann`'s opening, its command id left to the header.
fn open_ann_by_header() -> Value {
    json!({"type": "OpenAccount", "data": {"initial_balance": 1000}})
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, first) = service.command("bank-account", "ann", open_ann()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    retry_and_reuse(&service, &first).await;
    service.stop();

    let service = Service::start(dir.path(), &[]).await;
    retry_and_reuse(&service, &first).await;
    service.stop();
}
