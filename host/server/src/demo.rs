//! `tally demo`: the README's tour, run by itself against a service it starts in a
//! temporary directory, printed as a transcript.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::{ServeArgs, ServeConfig};

/// Where `make plugins` puts the components in this checkout.
const BUILT_PLUGINS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../plugins/target/wasm32-wasip2/release"
);

/// Runs the tour.
pub async fn run(plugins: Option<PathBuf>) -> anyhow::Result<()> {
    let plugins = plugins.unwrap_or_else(|| PathBuf::from(BUILT_PLUGINS));
    let v1 = component(&plugins, "bank_account.wasm")?;
    let v2 = component(&plugins, "bank_account_v2.wasm")?;
    let dir = tempfile::tempdir()?;
    let config = ServeConfig::resolve(ServeArgs {
        data_dir: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        ..ServeArgs::default()
    })?;
    let shutdown = CancellationToken::new();
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let service = tokio::spawn(crate::serve::run(
        config,
        shutdown.clone(),
        move |address| {
            let _ = address_tx.send(address);
        },
    ));
    let address = address_rx.await?;
    let url = format!("http://{address}");
    let client = Client::new(&url, None);
    wait_ready(&client, &url).await?;

    println!(
        "Tally demo: a service on {url}, data in {}\n",
        dir.path().display()
    );
    step(
        "Install bank-account v1 and activate it",
        "tally plugin install bank_account.wasm --activate",
        &format!(
            "curl -X POST --data-binary @bank_account.wasm -H 'content-type: application/wasm' '{url}/v1/plugins?activate=true'"
        ),
    );
    let installed = client
        .install(std::fs::read(&v1)?, &[("activate", "true".into())])
        .await?;
    show(&format!(
        "installed {} {}",
        installed["installed"]["aggregate_type"], installed["installed"]["version"]
    ));

    let commands = [
        ("OpenAccount", json!({"initial_balance": 1000})),
        ("Deposit", json!({"amount": 500})),
        ("Withdraw", json!({"amount": 200})),
    ];
    for (name, data) in &commands {
        step(
            &format!("{name} on alice"),
            &format!("tally send bank-account alice {name} '{data}'"),
            &format!(
                "curl -X POST -H 'content-type: application/json' -d '{}' {url}/v1/aggregates/bank-account/alice/commands",
                json!({"type": name, "data": data})
            ),
        );
        let answer = client
            .send_command(
                "bank-account",
                "alice",
                &json!({"type": name, "data": data}),
            )
            .await?;
        show(&format!(
            "version {} <- {}",
            answer["version"], answer["events"][0]["type"]
        ));
    }

    step(
        "An overdraft is refused",
        "tally send bank-account alice Withdraw '{\"amount\":5000}'",
        "(422 insufficient-funds)",
    );
    match client
        .send_command(
            "bank-account",
            "alice",
            &json!({"type": "Withdraw", "data": {"amount": 5000}}),
        )
        .await
    {
        Err(error) => show(&error.to_string()),
        Ok(answer) => anyhow::bail!("an overdraft was accepted: {answer}"),
    }

    step(
        "Read alice",
        "tally state bank-account alice",
        &format!("curl {url}/v1/aggregates/bank-account/alice"),
    );
    let state = client.state("bank-account", "alice", &[]).await?;
    show(&format!("version {}: {}", state["version"], state["state"]));
    anyhow::ensure!(
        state["state"]["balance"] == json!(1300),
        "expected a balance of 1300: {state}"
    );

    step(
        "Follow the events",
        "tally events --follow",
        &format!("curl -N {url}/v1/subscribe?aggregate_type=bank-account"),
    );
    let mut seen = 0;
    client
        .follow(&[("aggregate_type", "bank-account".into())], |event| {
            show(&format!(
                "#{} {} {}",
                event["position"],
                event["type"].as_str().unwrap_or("?"),
                event["data"]
            ));
            seen += 1;
            seen < 3
        })
        .await?;

    step(
        "Install bank-account v2 live (currency, withdrawal limit)",
        "tally plugin install bank_account_v2.wasm --activate",
        "curl -X POST --data-binary @bank_account_v2.wasm ... '/v1/plugins?activate=true'",
    );
    let installed = client
        .install(std::fs::read(&v2)?, &[("activate", "true".into())])
        .await?;
    show(&format!(
        "{} {} active; verified {} events in {} ms",
        installed["installed"]["aggregate_type"],
        installed["installed"]["version"],
        installed["activation"]["verified_events"],
        installed["activation"]["verify_ms"]
    ));

    step(
        "Read alice again: v1 events upcast by v2",
        "tally state bank-account alice",
        &format!("curl {url}/v1/aggregates/bank-account/alice"),
    );
    let state = client.state("bank-account", "alice", &[]).await?;
    show(&format!(
        "plugin {}: {}",
        state["plugin_version"], state["state"]
    ));
    anyhow::ensure!(
        state["state"]["currency"] == json!("USD"),
        "expected currency USD: {state}"
    );

    let plugins = client.plugins().await?;
    let history: Vec<Value> = plugins["plugins"][0]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    step(
        "The activation history",
        "tally plugin list",
        &format!("curl {url}/v1/plugins"),
    );
    for activation in history {
        show(&format!(
            "{} active from position {}",
            activation["version"], activation["position"]
        ));
    }

    shutdown.cancel();
    service.await??;
    println!("\nDone: the service shut down cleanly; the data directory is removed.");
    Ok(())
}

fn component(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build the plugins with `make plugins` (or give --plugins DIR)",
        path.display()
    );
    Ok(path)
}

async fn wait_ready(client: &Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if reqwest::get(format!("{url}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = client;
    anyhow::bail!("the service did not become ready")
}

fn step(title: &str, cli: &str, curl: &str) {
    println!("== {title}\n   $ {cli}\n   $ {curl}");
}

fn show(text: &str) {
    println!("   -> {text}");
}
