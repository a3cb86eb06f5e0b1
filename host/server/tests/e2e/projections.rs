//! The read side over HTTP: a projection installed through the plugin API, its
//! documents read back with read-your-writes, its status, and the CLI.

use serde_json::json;
use tally_test_support::components;

use crate::{Service, TALLY, bank};

#[tokio::test]
async fn a_projection_is_installed_queried_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, body) = service
        .command(
            "bank-account",
            "alice",
            bank("OpenAccount", json!({"initial_balance": 100})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The plugin API tells a projection component from an aggregate plugin.
    let (status, installed) = service.install(components::ACCOUNT_SUMMARY, "", None).await;
    assert_eq!(status, 200, "{installed}");
    assert_eq!(installed["kind"], "projection", "{installed}");
    assert_eq!(
        installed["projection"]["name"], "account-summary",
        "{installed}"
    );

    // Read your writes: the command's position, given as min_position.
    let (status, deposit) = service
        .command(
            "bank-account",
            "alice",
            bank("Deposit", json!({"amount": 50})),
        )
        .await;
    assert_eq!(status, 200, "{deposit}");
    let position = deposit["position"]
        .as_u64()
        .expect("a command's answer has its position");
    assert_eq!(
        position,
        deposit["events"][0]["position"].as_u64().unwrap() + 1
    );
    let path = format!("/v1/projections/account-summary/accounts/alice?min_position={position}");
    let (status, alice) = service.get(&path).await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["document"]["balance"], 150, "{alice}");
    assert!(alice["position"].as_u64().unwrap() >= position, "{alice}");

    let (status, list) = service.get("/v1/projections").await;
    assert_eq!(status, 200, "{list}");
    let summary = &list["projections"][0];
    assert_eq!(
        (summary["name"].as_str(), summary["state"].as_str()),
        (Some("account-summary"), Some("live")),
        "{list}"
    );
    let (status, page) = service
        .get("/v1/projections/account-summary/accounts?prefix=al&limit=10")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["documents"][0]["key"], "alice", "{page}");

    // Clear errors for what is not there, and for a position no command gave.
    for (path, code) in [
        ("/v1/projections/nothing/accounts/alice", "not-found"),
        (
            "/v1/projections/account-summary/no-table/alice",
            "not-found",
        ),
        (
            "/v1/projections/account-summary/accounts/nobody",
            "not-found",
        ),
    ] {
        let (status, body) = service.get(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}: {body}"
        );
    }
    let far = "/v1/projections/account-summary/accounts/alice?min_position=1000000";
    let (status, body) = service.get(far).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("position-beyond-log")),
        "{body}"
    );

    // The CLI shows it.
    let output = std::process::Command::new(TALLY)
        .args(["projection", "list", "--url", &service.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("account-summary 1.0.0: live"), "{text}");

    // After a restart it is still installed, resumes from its checkpoint, and
    // installing the same component again changes nothing.
    service.stop();
    let service = Service::start(dir.path(), &[]).await;
    let (status, again) = service.install(components::ACCOUNT_SUMMARY, "", None).await;
    assert_eq!(status, 200, "{again}");
    let (status, deposit) = service
        .command(
            "bank-account",
            "alice",
            bank("Deposit", json!({"amount": 1})),
        )
        .await;
    assert_eq!(status, 200, "{deposit}");
    let path = format!(
        "/v1/projections/account-summary/accounts/alice?min_position={}",
        deposit["position"]
    );
    let (_, alice) = service.get(&path).await;
    assert_eq!(alice["document"]["balance"], 151, "{alice}");
    let (_, totals) = service
        .get("/v1/projections/account-summary/totals/all")
        .await;
    assert_eq!(totals["document"]["accounts_open"], 1, "{totals}");
    service.stop();
}
