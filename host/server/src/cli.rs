//! The command line: `tally serve`, the client commands that talk to a running
//! service, and the offline and local tools (`verify`, `plugin new`, `demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::Client;
use crate::config::ServeArgs;

/// Tally: event sourcing with domain logic in WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "tally", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a client command finds the service, and how it prints.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The service.
    #[arg(
        long,
        env = "TALLY_URL",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub url: String,
    /// Admin token (plugin commands).
    #[arg(long, env = "TALLY_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the service's JSON answers instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (HTTP API, live event stream, plugin admin, metrics).
    Serve(ServeArgs),
    /// Send a command: `tally send bank-account alice Deposit '{"amount":500}'`.
    Send {
        /// Aggregate type.
        aggregate_type: String,
        /// Aggregate id.
        id: String,
        /// Command name.
        command: String,
        /// Command data, JSON (default `null`).
        data: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        command_id: Option<String>,
        /// Fail unless the aggregate is at this version.
        #[arg(long)]
        expected_version: Option<u64>,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show an aggregate's state, now or in the past.
    State {
        /// Aggregate type.
        aggregate_type: String,
        /// Aggregate id.
        id: String,
        /// As of this global position.
        #[arg(long, conflicts_with = "at_time")]
        at_position: Option<u64>,
        /// As of this time (ms since the Unix epoch).
        #[arg(long)]
        at_time: Option<u64>,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show events: an aggregate's, or the global log; `--follow` streams live ones.
    Events {
        /// Aggregate type (with ID: that aggregate's events).
        aggregate_type: Option<String>,
        /// Aggregate id.
        id: Option<String>,
        /// Keep streaming new events (global log, filtered by TYPE if given).
        #[arg(long)]
        follow: bool,
        /// First position (global log) or version (aggregate) to show.
        #[arg(long)]
        from: Option<u64>,
        /// Most events to show (not with --follow).
        #[arg(long)]
        limit: Option<usize>,
        /// Show events upcast to the active plugin's schemas (aggregate events).
        #[arg(long)]
        current: bool,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Manage plugins.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Check a data directory offline (the service must be stopped).
    Verify {
        /// The data directory.
        data_dir: PathBuf,
        /// Cut the log at the first damage (asks first unless --yes).
        #[arg(long)]
        repair: bool,
        /// Do not ask before repairing.
        #[arg(long)]
        yes: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the whole tour (bank accounts, a live upgrade to v2) in a temporary
    /// directory and print a transcript.
    Demo {
        /// Directory with bank_account.wasm and bank_account_v2.wasm [default: the
        /// plugins built in this checkout].
        #[arg(long)]
        plugins: Option<PathBuf>,
    },
}

/// `tally plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload a component.
    Install {
        /// The `.wasm` component.
        file: PathBuf,
        /// Activate it.
        #[arg(long)]
        activate: bool,
        /// Skip the verification fold when activating.
        #[arg(long)]
        no_verify: bool,
        /// Install an older version or switch despite unknown schemas.
        #[arg(long)]
        force: bool,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Installed versions, the active one, the history.
    List {
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Activate an installed version.
    Activate {
        /// Aggregate type.
        aggregate_type: String,
        /// Version.
        version: String,
        /// Skip the verification fold.
        #[arg(long)]
        no_verify: bool,
        /// Switch despite unknown schemas.
        #[arg(long)]
        force: bool,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Return to the previously active version.
    Rollback {
        /// Aggregate type.
        aggregate_type: String,
        /// Skip the verification fold.
        #[arg(long)]
        no_verify: bool,
        /// Switch despite unknown schemas.
        #[arg(long)]
        force: bool,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a plugin crate: one command, one event, a given/when/then test.
    New {
        /// Aggregate type and crate name, kebab-case.
        name: String,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The tally-sdk crate to depend on [default: this checkout's guest-sdk].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => crate::serve::serve(args).await,
        Command::Send {
            aggregate_type,
            id,
            command,
            data,
            command_id,
            expected_version,
            client,
        } => {
            let data: Value = match data {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|error| anyhow::anyhow!("DATA is not JSON: {error}"))?,
                None => Value::Null,
            };
            let mut body = json!({ "type": command, "data": data });
            if let Some(command_id) = command_id {
                body["command_id"] = json!(command_id);
            }
            if let Some(version) = expected_version {
                body["expected_version"] = json!(version);
            }
            let answer = connect(&client)
                .send_command(&aggregate_type, &id, &body)
                .await?;
            print(&client, &answer, |answer| {
                let events: Vec<String> = answer["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|event| {
                        format!(
                            "{} {}",
                            event["type"].as_str().unwrap_or("?"),
                            event["data"]
                        )
                    })
                    .collect();
                let duplicate = if answer["duplicate"] == json!(true) {
                    " (duplicate)"
                } else {
                    ""
                };
                format!(
                    "{aggregate_type}/{id} is at version {}{duplicate}: {}",
                    answer["version"],
                    if events.is_empty() {
                        "no events".to_owned()
                    } else {
                        events.join(", ")
                    }
                )
            });
            Ok(())
        }
        Command::State {
            aggregate_type,
            id,
            at_position,
            at_time,
            client,
        } => {
            let mut query = Vec::new();
            if let Some(position) = at_position {
                query.push(("at_position", position.to_string()));
            }
            if let Some(time) = at_time {
                query.push(("at_time", time.to_string()));
            }
            let answer = connect(&client).state(&aggregate_type, &id, &query).await?;
            print(&client, &answer, |answer| {
                format!(
                    "{aggregate_type}/{id} at version {} (plugin {}):\n{}",
                    answer["version"],
                    answer["plugin_version"].as_str().unwrap_or("?"),
                    serde_json::to_string_pretty(&answer["state"]).unwrap_or_default()
                )
            });
            Ok(())
        }
        Command::Events {
            aggregate_type,
            id,
            follow,
            from,
            limit,
            current,
            client,
        } => events(aggregate_type, id, follow, from, limit, current, &client).await,
        Command::Plugin { command } => plugin(command).await,
        Command::Verify {
            data_dir,
            repair,
            yes,
            json,
        } => crate::verify::run(&data_dir, repair, yes, json).await,
        Command::Demo { plugins } => crate::demo::run(plugins).await,
    }
}

async fn events(
    aggregate_type: Option<String>,
    id: Option<String>,
    follow: bool,
    from: Option<u64>,
    limit: Option<usize>,
    current: bool,
    client_args: &ClientArgs,
) -> anyhow::Result<()> {
    let client = connect(client_args);
    let json_output = client_args.json;
    let line = move |event: &Value| {
        if json_output {
            event.to_string()
        } else {
            format!(
                "#{:<6} {}/{} v{} {} {}",
                event["position"],
                event["aggregate_type"].as_str().unwrap_or("-"),
                event["aggregate_id"].as_str().unwrap_or("-"),
                event["version"],
                event["type"].as_str().unwrap_or("?"),
                event["data"]
            )
        }
    };
    if follow {
        anyhow::ensure!(id.is_none(), "--follow streams the global log: give no ID");
        let mut query = vec![("from_position", from.unwrap_or(0).to_string())];
        if let Some(aggregate_type) = aggregate_type {
            query.push(("aggregate_type", aggregate_type));
        }
        client
            .follow(&query, |event| {
                println!("{}", line(&event));
                true
            })
            .await?;
        return Ok(());
    }
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = match (aggregate_type, id) {
        (Some(aggregate_type), Some(id)) => {
            query.push(("from_version", from.unwrap_or(1).to_string()));
            if current {
                query.push(("view", "current".to_owned()));
            }
            let mut answer = client
                .aggregate_events(&aggregate_type, &id, &query)
                .await?;
            for event in answer["events"].as_array_mut().into_iter().flatten() {
                event["aggregate_type"] = json!(aggregate_type);
                event["aggregate_id"] = json!(id);
            }
            answer
        }
        (aggregate_type, None) => {
            query.push(("from_position", from.unwrap_or(0).to_string()));
            if let Some(aggregate_type) = aggregate_type {
                query.push(("aggregate_type", aggregate_type));
            }
            client.events(&query).await?
        }
        (None, Some(_)) => unreachable!("clap fills TYPE before ID"),
    };
    for event in answer["events"].as_array().into_iter().flatten() {
        println!("{}", line(event));
    }
    Ok(())
}

async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Install {
            file,
            activate,
            no_verify,
            force,
            client,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", file.display()))?;
            let query = vec![
                ("activate", activate.to_string()),
                ("verify", (!no_verify).to_string()),
                ("force", force.to_string()),
            ];
            let answer = connect(&client).install(bytes, &query).await?;
            print(&client, &answer, |answer| {
                let installed = &answer["installed"];
                let mut text = format!(
                    "installed {} {} (sha256 {})",
                    installed["aggregate_type"].as_str().unwrap_or("?"),
                    installed["version"].as_str().unwrap_or("?"),
                    &installed["sha256"].as_str().unwrap_or("?")
                        [..12.min(installed["sha256"].as_str().unwrap_or("?").len())]
                );
                if let Some(activation) = answer.get("activation").filter(|a| !a.is_null()) {
                    text += &format!(
                        "; active now (verified {} events in {} ms)",
                        activation["verified_events"], activation["verify_ms"]
                    );
                }
                text
            });
            Ok(())
        }
        PluginCommand::List { client } => {
            let answer = connect(&client).plugins().await?;
            print(&client, &answer, |answer| {
                let mut text = String::new();
                for plugin in answer["plugins"].as_array().into_iter().flatten() {
                    text += &format!(
                        "{}: active {}\n",
                        plugin["aggregate_type"].as_str().unwrap_or("?"),
                        plugin["active"].as_str().unwrap_or("none")
                    );
                    for version in plugin["installed"].as_array().into_iter().flatten() {
                        text += &format!(
                            "  installed {} ({} bytes, contract {})\n",
                            version["version"].as_str().unwrap_or("?"),
                            version["size"],
                            version["contract"].as_str().unwrap_or("?")
                        );
                    }
                    for activation in plugin["history"].as_array().into_iter().flatten() {
                        let what = if activation["rollback"] == json!(true) {
                            "rolled back to"
                        } else {
                            "activated"
                        };
                        text += &format!(
                            "  {what} {} at position {}\n",
                            activation["version"].as_str().unwrap_or("?"),
                            activation["position"]
                        );
                    }
                }
                text.trim_end().to_owned()
            });
            Ok(())
        }
        PluginCommand::Activate {
            aggregate_type,
            version,
            no_verify,
            force,
            client,
        } => {
            let version = Some(version);
            switch(
                &client,
                &aggregate_type,
                "activate",
                version,
                no_verify,
                force,
            )
            .await
        }
        PluginCommand::Rollback {
            aggregate_type,
            no_verify,
            force,
            client,
        } => switch(&client, &aggregate_type, "rollback", None, no_verify, force).await,
        PluginCommand::New { name, dir, sdk } => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk"))
                    .canonicalize()
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "cannot find this checkout's guest-sdk (give --sdk): {error}"
                        )
                    })?,
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let scaffold = crate::scaffold::Scaffold {
                name: name.clone(),
                dir: dir.clone(),
                sdk: crate::scaffold::SdkSource::Path(sdk),
            };
            let files = crate::scaffold::generate(&scaffold)?;
            println!("created plugin {name} in {}:", dir.display());
            for file in files {
                println!("  {}", file.display());
            }
            println!(
                "next: cd {} && cargo test && cargo build --release --target wasm32-wasip2 (see its README.md)",
                dir.display()
            );
            Ok(())
        }
    }
}

/// `tally plugin activate` / `rollback`: switches versions and prints the activation.
async fn switch(
    client: &ClientArgs,
    aggregate_type: &str,
    action: &str,
    version: Option<String>,
    no_verify: bool,
    force: bool,
) -> anyhow::Result<()> {
    let mut query = vec![
        ("verify", (!no_verify).to_string()),
        ("force", force.to_string()),
    ];
    query.extend(version.map(|version| ("version", version)));
    let answer = connect(client)
        .switch(aggregate_type, action, &query)
        .await?;
    print(client, &answer, |answer| {
        activation_line(aggregate_type, answer)
    });
    Ok(())
}

fn activation_line(aggregate_type: &str, answer: &Value) -> String {
    let activation = &answer["activation"];
    format!(
        "{aggregate_type}: {} is active (was {}; verified {} events in {} ms)",
        activation["version"].as_str().unwrap_or("?"),
        activation["previous"].as_str().unwrap_or("none"),
        answer["verified_events"],
        answer["verify_ms"]
    )
}

fn connect(args: &ClientArgs) -> Client {
    Client::new(&args.url, args.token.clone())
}

/// Prints the answer as JSON or as the text `human` makes of it.
fn print(args: &ClientArgs, answer: &Value, human: impl FnOnce(&Value) -> String) {
    if args.json {
        println!("{answer}");
    } else {
        println!("{}", human(answer));
    }
}
