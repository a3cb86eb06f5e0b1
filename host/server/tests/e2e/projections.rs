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

const ADMIN_TOKEN: &str = "projection-admin-token-0123456789";

/// `POST path` with the admin token.
async fn admin_post(service: &Service, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(service.path(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

/// account-summary's status, once `done` holds for it.
async fn summary_once(
    service: &Service,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (status, list) = service.get("/v1/projections").await;
        assert_eq!(status, 200, "{list}");
        let summary = list["projections"][0].clone();
        if done(&summary) {
            return summary;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "account-summary never {what}: {summary}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether account-summary is at `version` with nothing building, caught up.
fn settled_at(version: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |summary| {
        summary["version"] == version
            && summary["building"].is_null()
            && summary["state"] == "live"
            && summary["lag_events"] == 0
    }
}

/// Runs the CLI against `service` with the admin token; returns its stdout, asserting
/// it succeeded.
fn cli(service: &Service, args: &[&str]) -> String {
    let output = std::process::Command::new(TALLY)
        .args(args)
        .args(["--url", &service.url, "--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tally {args:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The projection lifecycle through the admin API and the CLI: install stores, the
/// shared plugin routes activate and roll back (each a blue/green build), the rolled-back
/// version survives a restart, and `rebuild` (admin only) builds the active version
/// again.
#[tokio::test]
async fn a_projection_is_activated_rolled_back_and_rebuilt_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--admin-token", ADMIN_TOKEN]).await;
    for id in ["alice", "bob"] {
        let (status, body) = service
            .command(
                "bank-account",
                id,
                bank("OpenAccount", json!({"initial_balance": 10})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, v1) = service
        .install(components::ACCOUNT_SUMMARY, "", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["projection"]["version"], "1.0.0", "{v1}");
    // A later version is stored, not built, until it is activated.
    let (status, v2) = service
        .install(components::TEST_SUMMARY_V2, "", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(
        (
            &v2["projection"]["version"],
            &v2["projection"]["building"],
            &v2["projection"]["installed"]
        ),
        (&json!("1.0.0"), &json!(null), &json!(["1.0.0", "2.0.0"])),
        "{v2}"
    );

    let (status, activated) = admin_post(
        &service,
        "/v1/plugins/account-summary/activate?version=2.0.0",
    )
    .await;
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["kind"], "projection", "{activated}");
    let building = &activated["projection"]["building"];
    assert_eq!(
        (&building["version"], &building["reason"]),
        (&json!("2.0.0"), &json!("activate")),
        "{activated}"
    );
    for field in ["events_done", "lag_events", "generation", "position"] {
        assert!(building[field].is_u64(), "{field}: {activated}");
    }
    let summary = summary_once(&service, "activated 2.0.0", settled_at("2.0.0")).await;
    assert_eq!(summary["previous"], "1.0.0", "{summary}");
    // The build's progress is documented.
    let (_, document) = service.get("/openapi.json").await;
    let properties = &document["components"]["schemas"]["BuildingBody"]["properties"];
    for field in [
        "events_done",
        "lag_events",
        "events_per_second",
        "eta_ms",
        "reason",
    ] {
        assert!(properties[field].is_object(), "{field}: {properties}");
    }

    let (status, rolled_back) = admin_post(&service, "/v1/plugins/account-summary/rollback").await;
    assert_eq!(status, 200, "{rolled_back}");
    assert_eq!(
        rolled_back["projection"]["building"]["reason"], "rollback",
        "{rolled_back}"
    );
    summary_once(&service, "rolled back to 1.0.0", settled_at("1.0.0")).await;

    // The rolled-back version is still active after a restart.
    service.stop();
    let service = Service::start(dir.path(), &["--admin-token", ADMIN_TOKEN]).await;
    let summary = summary_once(&service, "resumed", settled_at("1.0.0")).await;
    assert_eq!(summary["previous"], "2.0.0", "{summary}");
    let generation = summary["generation"].as_u64().unwrap();

    // `rebuild` is an admin action.
    let response = reqwest::Client::new()
        .post(service.path("/v1/projections/account-summary/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, rebuilding) =
        admin_post(&service, "/v1/projections/account-summary/rebuild").await;
    assert_eq!(status, 202, "{rebuilding}");
    assert_eq!(
        (
            &rebuilding["building"]["reason"],
            &rebuilding["building"]["version"]
        ),
        (&json!("rebuild"), &json!("1.0.0")),
        "{rebuilding}"
    );
    let summary = summary_once(&service, "rebuilt", |summary| {
        settled_at("1.0.0")(summary) && summary["generation"] != generation
    })
    .await;
    assert_eq!(
        summary["previous"], "2.0.0",
        "a rebuild keeps the previous version"
    );
    let (_, alice) = service
        .get("/v1/projections/account-summary/accounts/alice")
        .await;
    assert_eq!(alice["document"]["balance"], 10, "{alice}");

    // The CLI: rebuild, activate and roll back, each waiting for its build.
    let rebuilt = cli(
        &service,
        &["projection", "rebuild", "account-summary", "--wait"],
    );
    assert!(
        rebuilt.contains("account-summary 1.0.0: rebuilt, active at position"),
        "{rebuilt}"
    );
    let activated = cli(
        &service,
        &["plugin", "activate", "account-summary", "2.0.0", "--wait"],
    );
    assert!(
        activated.contains("account-summary 2.0.0: activated, active at position"),
        "{activated}"
    );
    let listed = cli(&service, &["projection", "list"]);
    assert!(
        listed.contains("account-summary 2.0.0: live") && listed.contains("previous 1.0.0"),
        "{listed}"
    );
    let rolled_back = cli(
        &service,
        &["plugin", "rollback", "account-summary", "--wait"],
    );
    assert!(
        rolled_back.contains("account-summary 1.0.0: rolled back, active at position"),
        "{rolled_back}"
    );
    let unknown = std::process::Command::new(TALLY)
        .args(["plugin", "activate", "account-summary", "9.0.0", "--wait"])
        .args(["--url", &service.url, "--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown-version"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    service.stop();
}

/// Aggregate types and projections share one namespace, so that
/// `/v1/plugins/{name}/activate` and `rollback` mean one thing: a projection named like
/// an installed aggregate type is refused, and so is an aggregate plugin whose type is
/// an installed projection's name; the shared routes reach the projection.
#[tokio::test]
async fn aggregate_types_and_projections_share_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, refused) = service.install(components::TEST_NAME_CLASH, "", None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("name-taken")),
        "{refused}"
    );
    let (_, list) = service.get("/v1/projections").await;
    assert_eq!(list["projections"], json!([]), "{list}");
    service.stop();

    let dir = tempfile::tempdir().unwrap();
    let no_plugins = tempfile::tempdir().unwrap();
    let service = Service::start_with_plugins(dir.path(), no_plugins.path(), &[]).await;
    let (status, installed) = service.install(components::TEST_NAME_CLASH, "", None).await;
    assert_eq!(status, 200, "{installed}");
    assert_eq!(
        installed["projection"]["name"], "bank-account",
        "{installed}"
    );
    let (status, refused) = service.install(components::BANK_ACCOUNT_V1, "", None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("name-taken")),
        "{refused}"
    );
    let (_, plugins) = service.get("/v1/plugins").await;
    assert_eq!(plugins["plugins"], json!([]), "{plugins}");
    let response = reqwest::Client::new()
        .post(service.path("/v1/plugins/bank-account/activate?version=1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (&answer["kind"], &answer["projection"]["name"]),
        (&json!("projection"), &json!("bank-account")),
        "{answer}"
    );
    let response = reqwest::Client::new()
        .post(service.path("/v1/plugins/bank-account/rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "nothing-to-roll-back", "{answer}");
    service.stop();
}
