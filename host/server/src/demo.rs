//! `tally demo`: the README's tour, run by itself against a service it starts in a
//! temporary directory, printed as a transcript.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::client::Client;
use crate::config::{ServeArgs, ServeConfig};
use crate::in_process::{InProcessService, built_component};

/// Runs the tour with the components in `plugins` (default: the ones built in this
/// checkout).
pub async fn run(plugins: Option<PathBuf>) -> anyhow::Result<()> {
    let v1 = built_component(plugins.as_deref(), "bank_account.wasm")?;
    let v2 = built_component(plugins.as_deref(), "bank_account_v2.wasm")?;
    let dir = tempfile::tempdir()?;
    let service = start_service(dir.path()).await?;
    let tour = Tour::new(service.url());
    println!(
        "Tally demo: a service on {}, data in {}\n",
        tour.url,
        dir.path().display()
    );
    tour.install_v1(&v1).await?;
    tour.send_commands().await?;
    tour.refuse_overdraft().await?;
    tour.read_balance().await?;
    tour.follow_events().await?;
    tour.install_v2(&v2).await?;
    tour.read_upcast_state().await?;
    tour.show_history().await?;
    service.stop().await?;
    println!("\nDone: the service shut down cleanly; the data directory is removed.");
    Ok(())
}

/// A service with its data in `dir`, on a free local port.
async fn start_service(dir: &Path) -> anyhow::Result<InProcessService> {
    let config = ServeConfig::resolve(ServeArgs {
        data_dir: Some(dir.join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        ..ServeArgs::default()
    })?;
    InProcessService::start(config).await
}

/// The tour's steps against one service: each prints the CLI and curl commands it
/// stands for, does it, and shows the answer.
struct Tour {
    url: String,
    client: Client,
}

impl Tour {
    fn new(url: String) -> Tour {
        let client = Client::new(&url, None);
        Tour { url, client }
    }

    /// Installs and activates bank-account v1.
    async fn install_v1(&self, v1: &Path) -> anyhow::Result<()> {
        step(
            "Install bank-account v1 and activate it",
            "tally plugin install bank_account.wasm --activate",
            &format!(
                "curl -X POST --data-binary @bank_account.wasm -H 'content-type: application/wasm' '{}/v1/plugins?activate=true'",
                self.url
            ),
        );
        let installed = self.install_active(v1).await?;
        show(&format!(
            "installed {} {}",
            installed["installed"]["aggregate_type"], installed["installed"]["version"]
        ));
        Ok(())
    }

    /// Opens alice's account, deposits and withdraws.
    async fn send_commands(&self) -> anyhow::Result<()> {
        let commands = [
            ("OpenAccount", json!({"initial_balance": 1000})),
            ("Deposit", json!({"amount": 500})),
            ("Withdraw", json!({"amount": 200})),
        ];
        for (name, data) in &commands {
            let body = json!({"type": name, "data": data});
            step(
                &format!("{name} on alice"),
                &format!("tally send bank-account alice {name} '{data}'"),
                &format!(
                    "curl -X POST -H 'content-type: application/json' -d '{body}' {}/v1/aggregates/bank-account/alice/commands",
                    self.url
                ),
            );
            let answer = self
                .client
                .send_command("bank-account", "alice", &body)
                .await?;
            show(&format!(
                "version {} <- {}",
                answer["version"], answer["events"][0]["type"]
            ));
        }
        Ok(())
    }

    /// Withdraws more than the balance: the plugin refuses.
    async fn refuse_overdraft(&self) -> anyhow::Result<()> {
        step(
            "An overdraft is refused",
            "tally send bank-account alice Withdraw '{\"amount\":5000}'",
            "(422 insufficient-funds)",
        );
        let overdraft = json!({"type": "Withdraw", "data": {"amount": 5000}});
        match self
            .client
            .send_command("bank-account", "alice", &overdraft)
            .await
        {
            Err(error) => show(&error.to_string()),
            Ok(answer) => anyhow::bail!("an overdraft was accepted: {answer}"),
        }
        Ok(())
    }

    /// Reads alice's state: the balance the commands left.
    async fn read_balance(&self) -> anyhow::Result<()> {
        let state = self.read_alice("Read alice").await?;
        show(&format!("version {}: {}", state["version"], state["state"]));
        anyhow::ensure!(
            state["state"]["balance"] == json!(1300),
            "expected a balance of 1300: {state}"
        );
        Ok(())
    }

    /// Follows the live event stream for the three events so far.
    async fn follow_events(&self) -> anyhow::Result<()> {
        step(
            "Follow the events",
            "tally events --follow",
            &format!(
                "curl -N {}/v1/subscribe?aggregate_type=bank-account",
                self.url
            ),
        );
        let mut seen = 0;
        self.client
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
        Ok(())
    }

    /// Installs and activates bank-account v2 while the service runs.
    async fn install_v2(&self, v2: &Path) -> anyhow::Result<()> {
        step(
            "Install bank-account v2 live (currency, withdrawal limit)",
            "tally plugin install bank_account_v2.wasm --activate",
            "curl -X POST --data-binary @bank_account_v2.wasm ... '/v1/plugins?activate=true'",
        );
        let installed = self.install_active(v2).await?;
        show(&format!(
            "{} {} active; verified {} events in {} ms",
            installed["installed"]["aggregate_type"],
            installed["installed"]["version"],
            installed["activation"]["verified_events"],
            installed["activation"]["verify_ms"]
        ));
        Ok(())
    }

    /// Reads alice's state again: v2 upcasts the events v1 wrote.
    async fn read_upcast_state(&self) -> anyhow::Result<()> {
        let state = self
            .read_alice("Read alice again: v1 events upcast by v2")
            .await?;
        show(&format!(
            "plugin {}: {}",
            state["plugin_version"], state["state"]
        ));
        anyhow::ensure!(
            state["state"]["currency"] == json!("USD"),
            "expected currency USD: {state}"
        );
        Ok(())
    }

    /// Shows the activations of bank-account, v1 then v2.
    async fn show_history(&self) -> anyhow::Result<()> {
        let plugins = self.client.plugins().await?;
        let history: Vec<Value> = plugins["plugins"][0]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        step(
            "The activation history",
            "tally plugin list",
            &format!("curl {}/v1/plugins", self.url),
        );
        for activation in history {
            show(&format!(
                "{} active from position {}",
                activation["version"], activation["position"]
            ));
        }
        Ok(())
    }

    /// Uploads the component at `path` and activates it.
    async fn install_active(&self, path: &Path) -> anyhow::Result<Value> {
        let bytes = std::fs::read(path)?;
        Ok(self
            .client
            .install(bytes, &[("activate", "true".into())])
            .await?)
    }

    /// A step titled `title` that reads alice's state.
    async fn read_alice(&self, title: &str) -> anyhow::Result<Value> {
        step(
            title,
            "tally state bank-account alice",
            &format!("curl {}/v1/aggregates/bank-account/alice", self.url),
        );
        Ok(self.client.state("bank-account", "alice", &[]).await?)
    }
}

/// Prints a step's title and the CLI and curl commands it stands for.
fn step(title: &str, cli: &str, curl: &str) {
    println!("== {title}\n   $ {cli}\n   $ {curl}");
}

/// Prints what a step gave.
fn show(text: &str) {
    println!("   -> {text}");
}
