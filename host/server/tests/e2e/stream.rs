//! The live event stream: catch-up, live, reconnect with Last-Event-ID.

use futures_util::StreamExt;
use serde_json::json;

use crate::{Service, bank};

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
