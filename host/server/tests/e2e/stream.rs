//! The live event stream: catch-up, live, reconnect with Last-Event-ID.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tally_test_support::components;

use crate::{Service, bank};

/// An admin token of the required length.
const ADMIN_TOKEN: &str = "stream-admin-token-0123456789";

/// Opens `/v1/subscribe` with `query`, the admin token if given, and `Last-Event-ID` if
/// given; the response, not yet read.
async fn open_stream(
    url: &str,
    query: &str,
    token: Option<&str>,
    last_id: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{url}/v1/subscribe?{query}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(last) = last_id {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.unwrap()
}

/// The next `count` events of an open stream: (position, aggregate type, event type).
async fn next_events(response: reqwest::Response, count: usize) -> Vec<(u64, String, String)> {
    let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let mut out = Vec::new();
    while out.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .expect("stream open")
            .expect("well-formed");
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        out.push((
            event.id.parse().expect("the id is a position"),
            data["aggregate_type"].as_str().unwrap().to_owned(),
            data["type"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

/// The status and error code of a refused stream.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("a JSON error");
    (status, body["error"]["code"].as_str().unwrap().to_owned())
}

/// Reads `count` events from `/v1/subscribe`, optionally resuming after `last_id`.
async fn read_events(
    url: &str,
    last_id: Option<u64>,
    count: usize,
) -> Vec<(u64, serde_json::Value)> {
    let mut request =
        reqwest::Client::new().get(format!("{url}/v1/subscribe?aggregate_type=bank-account"));
    if let Some(last) = last_id {
        request = request.header("Last-Event-ID", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let mut out = Vec::new();
    while out.len() < count {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .expect("stream open")
            .expect("well-formed");
        let id: u64 = event.id.parse().expect("the id is a position");
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["position"], id);
        out.push((id, data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_catch_up_and_live_events_and_resumes_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    service
        .command(
            "bank-account",
            "s",
            bank("OpenAccount", json!({"initial_balance": 0})),
        )
        .await;
    service
        .command("bank-account", "s", bank("Deposit", json!({"amount": 1})))
        .await;

    // Two stored (catch-up), then three live ones sent while the client listens.
    let listener = {
        let url = service.url.clone();
        tokio::spawn(async move { read_events(&url, None, 5).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for amount in 2..5 {
        service
            .command(
                "bank-account",
                "s",
                bank("Deposit", json!({"amount": amount})),
            )
            .await;
    }
    let first = listener.await.unwrap();
    let amounts: Vec<_> = first
        .iter()
        .skip(1)
        .map(|(_, e)| e["data"]["amount"].clone())
        .collect();
    assert_eq!(amounts, vec![json!(1), json!(2), json!(3), json!(4)]);

    // Disconnected after the third; meanwhile two more; resume after the third.
    service
        .command("bank-account", "s", bank("Deposit", json!({"amount": 5})))
        .await;
    service
        .command("bank-account", "s", bank("Deposit", json!({"amount": 6})))
        .await;
    let last_seen = first[2].0;
    let resumed = read_events(&service.url, Some(last_seen), 4).await;
    let ids: Vec<u64> = resumed.iter().map(|(id, _)| *id).collect();
    let expected: Vec<u64> = first[3..].iter().map(|(id, _)| *id).collect();
    assert_eq!(&ids[..2], &expected[..], "no gap, no duplicate");
    let amounts: Vec<_> = resumed
        .iter()
        .map(|(_, e)| e["data"]["amount"].clone())
        .collect();
    assert_eq!(amounts, vec![json!(3), json!(4), json!(5), json!(6)]);
    service.stop();
}

#[tokio::test]
async fn a_last_event_id_with_no_position_after_it_is_refused_rather_than_wrapped_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    // u64::MAX: the position after it would wrap to 0 and replay the whole log.
    for bad in [
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "seven",
        "",
    ] {
        let response = open_stream(&service.url, "", None, Some(bad)).await;
        assert_eq!(
            refusal(response).await,
            (400, "bad-request".into()),
            "{bad:?}"
        );
    }
    // The largest that has a position after it is fine (nothing there yet).
    let response = open_stream(&service.url, "", None, Some("18446744073709551614")).await;
    assert_eq!(response.status(), 200);
    service.stop();
}

#[tokio::test]
async fn system_streams_reach_only_admin_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--admin-token", ADMIN_TOKEN]).await;
    // Installing bank-account at start wrote the registry's events first in the log.
    let admin = open_stream(&service.url, "", Some(ADMIN_TOKEN), None).await;
    assert_eq!(admin.status(), 200);
    let first = next_events(admin, 1).await;
    assert_eq!(first[0].1, "$tally-plugins", "{first:?}");

    let asked = open_stream(&service.url, "aggregate_type=%24tally-plugins", None, None).await;
    assert_eq!(refusal(asked).await, (401, "unauthorized".into()));
    let wrong = open_stream(&service.url, "", Some("not-the-admin-token"), None).await;
    assert_eq!(wrong.status(), 200, "a wrong token is only not admin");

    // A public subscriber, live before more registry events and a deposit arrive.
    let public = open_stream(&service.url, "", None, None).await;
    assert_eq!(public.status(), 200);
    let reader = tokio::spawn(next_events(public, 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    service
        .command(
            "bank-account",
            "p",
            bank("OpenAccount", json!({"initial_balance": 0})),
        )
        .await;
    let (status, body) = service
        .install(
            components::BANK_ACCOUNT_V2,
            "activate=true",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service
        .command("bank-account", "p", bank("Deposit", json!({"amount": 1})))
        .await;
    let seen = reader.await.unwrap();
    let types: Vec<&str> = seen.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(types, ["bank-account", "bank-account"], "{seen:?}");
    assert_eq!(seen[1].2, "MoneyDeposited");
    assert!(
        seen[1].0 > seen[0].0 + 1,
        "the registry's events in between were left out: {seen:?}"
    );

    // The admin sees them, catch-up and all.
    let admin = open_stream(&service.url, "", Some(ADMIN_TOKEN), None).await;
    let all = next_events(admin, seen[1].0 as usize + 1).await;
    let registry = all.iter().filter(|(_, t, _)| t == "$tally-plugins").count();
    assert_eq!(registry, all.len() - 2, "{all:?}");
    service.stop();
}

#[tokio::test]
async fn subscribers_beyond_the_cap_are_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--max-subscribers", "2"]).await;
    let first = open_stream(&service.url, "", None, None).await;
    let second = open_stream(&service.url, "", None, None).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open_stream(&service.url, "", None, None).await;
    assert_eq!(refusal(third).await, (503, "too-many-subscribers".into()));
    let (_, metrics) = service.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains("tally_subscriptions_refused_total 1"),
        "{metrics}"
    );
    drop((first, second));
    service.stop();
}
