//! Command data over HTTP: a field the command does not have is refused with 422
//! `invalid-command` naming it, rather than dropped; nothing is appended.

use serde_json::json;

use crate::{Service, bank};

#[tokio::test]
async fn an_unknown_field_in_command_data_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let open = bank("OpenAccount", json!({"initial_balance": 100}));
    let (status, body) = service.command("bank-account", "dan", open).await;
    assert_eq!(status, 200, "{body}");
    let end = service.end_position().await;

    let extra = bank("Deposit", json!({"amount": 100, "extra": 1}));
    let (status, body) = service.command("bank-account", "dan", extra).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid-command", "{body}");
    assert_eq!(
        body["error"]["message"],
        r#"Deposit: unknown field "extra" (expected "amount")"#
    );
    let missing = bank("Deposit", json!({}));
    let (status, body) = service.command("bank-account", "dan", missing).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        r#"Deposit: missing field "amount""#
    );
    assert_eq!(service.end_position().await, end);
    assert_eq!(service.balance("dan").await, 100);
    service.stop();
}
