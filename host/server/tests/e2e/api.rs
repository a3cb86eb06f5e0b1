//! Status codes and bodies, nothing appended on failure, admin tokens, metrics and
//! the OpenAPI document.

use serde_json::json;
use tally_test_support::components;

use crate::{Service, bank};

#[tokio::test]
async fn every_status_code_has_its_body_and_failures_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        // A CPU limit that the memory bomb stays well inside on a loaded machine
        // (it must hit the memory limit first), short enough for the spin.
        &["--max-body-bytes", "4096", "--call-timeout-ms", "2000"],
    )
    .await;
    let (status, _) = service
        .install(components::TEST_HOSTILE, "activate=true", None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = service
        .command(
            "bank-account",
            "bob",
            bank("OpenAccount", json!({"initial_balance": 100})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let end = service.end_position().await;
    let http = reqwest::Client::new();
    let url = service.path("/v1/aggregates/bank-account/bob/commands");

    let expect = |status: u16, code: &str, answer: (u16, serde_json::Value)| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
        assert!(
            answer.1["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    let post = |body: String, content_type: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    expect(
        400,
        "malformed-body",
        post("{not json".into(), "application/json").await,
    );
    expect(
        400,
        "malformed-body",
        post(json!({"data": {}}).to_string(), "application/json").await,
    );
    expect(
        415,
        "unsupported-media-type",
        post(json!({"type": "Deposit"}).to_string(), "text/plain").await,
    );
    let big = json!({"type": "Deposit", "data": {"note": "x".repeat(10_000)}}).to_string();
    expect(413, "body-too-large", post(big, "application/json").await);
    expect(
        400,
        "invalid-id",
        service
            .command(
                "bank-account",
                "a%20b",
                bank("Deposit", json!({"amount": 1})),
            )
            .await,
    );
    expect(
        400,
        "invalid-aggregate-type",
        service
            .command("Bank", "x", bank("Deposit", json!({"amount": 1})))
            .await,
    );
    expect(
        404,
        "unknown-aggregate-type",
        service
            .command("no-such-type", "x", bank("Deposit", json!({"amount": 1})))
            .await,
    );
    expect(
        404,
        "not-found",
        service.get("/v1/aggregates/bank-account/nobody").await,
    );
    expect(404, "not-found", service.get("/v2/nothing").await);
    let conflict = service
        .command(
            "bank-account",
            "bob",
            json!({"type": "Deposit", "data": {"amount": 1}, "expected_version": 7}),
        )
        .await;
    assert_eq!(conflict.1["error"]["actual_version"], 1, "{}", conflict.1);
    expect(409, "version-conflict", conflict);
    expect(
        422,
        "insufficient-funds",
        service
            .command(
                "bank-account",
                "bob",
                bank("Withdraw", json!({"amount": 500})),
            )
            .await,
    );
    expect(
        422,
        "invalid-command",
        service
            .command("bank-account", "bob", bank("Teleport", json!({})))
            .await,
    );
    expect(
        500,
        "plugin-timeout",
        service
            .command("test-hostile", "h", bank("Spin", json!(null)))
            .await,
    );
    expect(
        500,
        "plugin-memory",
        service
            .command("test-hostile", "h", bank("MemoryBomb", json!(null)))
            .await,
    );
    let panic = service
        .command("test-hostile", "h", bank("Doom", json!(null)))
        .await;
    let message = panic.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot apply a doomed event") && !message.contains(".rs"),
        "a panic's answer carries its message and no source location: {message}"
    );
    expect(500, "plugin-panic", panic);
    assert_eq!(
        service.end_position().await,
        end,
        "no failed request appended"
    );

    // A duplicate is a 200 with the first answer, and appends nothing.
    let once = json!({"type": "Deposit", "data": {"amount": 5}, "command_id": "dep-1"});
    let (status, first) = service.command("bank-account", "bob", once.clone()).await;
    assert_eq!((status, first["duplicate"].as_bool()), (200, Some(false)));
    let end = service.end_position().await;
    let (status, again) = service.command("bank-account", "bob", once).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(again["events"], first["events"]);
    assert_eq!(service.end_position().await, end);
    expect(
        409,
        "command-id-reused",
        service
            .command("bank-account", "carol", json!({"type": "OpenAccount", "data": {"initial_balance": 1}, "command_id": "dep-1"}))
            .await,
    );
    service.stop();
}

/// The plugin registry's events are in the log, but a read without the admin token
/// leaves them out, and asking for them by name is 401.
async fn system_streams_are_for_admins(service: &Service, http: &reqwest::Client) {
    let registry_events = |body: &serde_json::Value| {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["aggregate_type"] == "$tally-plugins")
            .count()
    };
    let read = |path: &str, token: Option<&str>| {
        let mut request = http.get(service.path(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, admin) = read("/v1/events", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{admin}");
    assert!(registry_events(&admin) > 0, "{admin}");
    let (status, public) = read("/v1/events", None).await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(registry_events(&public), 0, "{public}");
    let (status, asked) = read("/v1/events?aggregate_type=%24tally-plugins", None).await;
    assert_eq!(status, 401, "{asked}");
}

/// An admin token of the required length.
const ADMIN_TOKEN: &str = "admin-token-0123456789";

#[tokio::test]
async fn admin_endpoints_need_the_token_and_metrics_follow_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--admin-token", ADMIN_TOKEN]).await;
    let http = reqwest::Client::new();
    // The token is checked before anything else of the request: a bad path or query
    // is not looked at (and so not answered 400) for a caller without it.
    for path in [
        "/v1/plugins/BAD/rollback",
        "/v1/plugins/bank-account/activate?nonsense=1",
    ] {
        let response = http.post(service.path(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    for token in [None, Some("wrong"), Some(&ADMIN_TOKEN[1..])] {
        let mut request = http.get(service.path("/v1/plugins"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let (status, body) = service
            .install(components::BANK_ACCOUNT_V2, "activate=true", token)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    let listed = http
        .get(service.path("/v1/plugins"))
        .header("authorization", format!("bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "the scheme is case-insensitive");
    system_streams_are_for_admins(&service, &http).await;

    let scrape = || async {
        let text = http
            .get(service.path("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
    };
    let value = |scrape: &prometheus_parse::Scrape,
                 name: &str,
                 label: Option<(&str, &str)>|
     -> f64 {
        scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == name)
            .filter(|sample| label.is_none_or(|(key, want)| sample.labels.get(key) == Some(want)))
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                _ => 0.0,
            })
            .sum()
    };
    let before = scrape().await;
    for i in 0..5 {
        let (status, _) = service
            .command(
                "bank-account",
                &format!("m{i}"),
                bank("OpenAccount", json!({"initial_balance": 1})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = service
        .command("bank-account", "m0", bank("Withdraw", json!({"amount": 9})))
        .await;
    assert_eq!(status, 422);
    let after = scrape().await;
    let ok = Some(("outcome", "ok"));
    assert_eq!(
        value(&after, "tally_commands_total", ok) - value(&before, "tally_commands_total", ok),
        5.0
    );
    let rejected = Some(("outcome", "rejected"));
    assert_eq!(
        value(&after, "tally_commands_total", rejected)
            - value(&before, "tally_commands_total", rejected),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tally_events_appended_total",
            Some(("event_type", "AccountOpened"))
        ),
        5.0
    );
    assert!(
        value(&after, "tally_wal_fsync_duration_seconds_count", None)
            > value(&before, "tally_wal_fsync_duration_seconds_count", None)
    );
    assert_eq!(
        value(&after, "tally_plugin_active", Some(("version", "1.0.0"))),
        1.0
    );
    assert!(value(&after, "tally_log_end_position", None) >= 5.0);
    service.stop();
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (status, document) = service.get("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/aggregates/{aggregate_type}/{aggregate_id}/commands",
        "/v1/aggregates/{aggregate_type}/{aggregate_id}",
        "/v1/aggregates/{aggregate_type}",
        "/v1/aggregates/{aggregate_type}/{aggregate_id}/events",
        "/v1/events",
        "/v1/subscribe",
        "/v1/plugins",
        "/v1/plugins/{aggregate_type}/activate",
        "/v1/plugins/{aggregate_type}/rollback",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(document["components"]["schemas"]["CommandRequest"].is_object());
    service.stop();
}

#[tokio::test]
async fn queries_page_and_travel_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    for id in ["q1", "q2", "q3"] {
        service
            .command(
                "bank-account",
                id,
                bank("OpenAccount", json!({"initial_balance": 10})),
            )
            .await;
    }
    let (_, deposit) = service
        .command("bank-account", "q2", bank("Deposit", json!({"amount": 5})))
        .await;
    service
        .command("bank-account", "q2", bank("Deposit", json!({"amount": 7})))
        .await;
    let (status, list) = service
        .get("/v1/aggregates/bank-account?skip=1&limit=1")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 3);
    assert_eq!(list["aggregates"], json!([{"id": "q2", "version": 3}]));
    assert_eq!(list["next_skip"], 2);
    let position = deposit["events"][0]["position"].as_u64().unwrap();
    let (_, past) = service
        .get(&format!(
            "/v1/aggregates/bank-account/q2?at_position={position}"
        ))
        .await;
    assert_eq!(
        (past["version"].as_u64(), past["state"]["balance"].as_i64()),
        (Some(2), Some(15))
    );
    let (_, events) = service
        .get("/v1/aggregates/bank-account/q2/events?from_version=2&limit=1")
        .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["version"], 2);
    assert_eq!(events["next_from_version"], 3);
    let (_, log) = service
        .get("/v1/events?aggregate_type=bank-account&event_type=MoneyDeposited")
        .await;
    let names: Vec<_> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["aggregate_id"].clone())
        .collect();
    assert_eq!(names, vec![json!("q2"), json!("q2")]);
    let (status, body) = service.get("/v1/events?limit=0").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad-request"))
    );
    let (status, body) = service
        .get("/v1/aggregates/bank-account/q2?at_position=1&at_time=2")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad-request"))
    );
    service.stop();
}

/// Connects to the service and sends `bytes`, then returns what the service answers
/// before it closes the connection (or `None` if it keeps it open for `patience`).
async fn send_and_wait_for_close(
    service: &Service,
    bytes: &[u8],
    patience: std::time::Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = service.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut answer)).await;
    // Closed (or reset) by the service within our patience.
    read.is_ok()
        .then(|| String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        &["--header-timeout-ms", "300", "--body-timeout-ms", "300"],
    )
    .await;
    let patience = std::time::Duration::from_secs(10);
    let before = service.end_position().await;

    // Headers that never end: the connection is closed, no request is served.
    let answer = send_and_wait_for_close(
        &service,
        b"POST /v1/aggregates/bank-account/slow/commands HTTP/1.1\r\nHost: x\r\n",
        patience,
    )
    .await;
    assert!(
        answer.is_some(),
        "the service kept a half-sent request open"
    );

    // A body that never arrives: 408 with the error body, and the connection closes.
    let answer = send_and_wait_for_close(
        &service,
        b"POST /v1/aggregates/bank-account/slow/commands HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"command\":",
        patience,
    )
    .await
    .expect("the service kept a request with a missing body open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request-timeout\""), "{answer}");

    // Nothing was appended, and the service still serves.
    assert_eq!(service.end_position().await, before);
    let (status, _) = service
        .command(
            "bank-account",
            "slow",
            bank("OpenAccount", json!({"initial_balance": 1})),
        )
        .await;
    assert_eq!(status, 200);
}
