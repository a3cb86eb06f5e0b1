//! The command line: `tally serve`, the client commands that talk to a running
//! service, and the offline and local tools (`verify`, `plugin new`, `demo`).

use std::future::Future;
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
    Serve(Box<ServeArgs>),
    /// Send a command: `tally send bank-account alice Deposit '{"amount":500}'`.
    Send(SendArgs),
    /// Show an aggregate's state, now or in the past.
    State(StateArgs),
    /// Show events: an aggregate's, or the global log; `--follow` streams live ones.
    Events(EventsArgs),
    /// Manage plugins.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Read projections, rebuild one, handle a faulted one (install, activate and roll
    /// them back with `plugin install|activate|rollback`).
    Projection {
        /// What to do.
        #[command(subcommand)]
        command: ProjectionCommand,
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

/// The aggregate a client command is about.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregateArgs {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub id: String,
}

/// `tally send`: the command and where to send it.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The aggregate.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// Command name.
    pub command: String,
    /// Command data, JSON (default `null`).
    pub data: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    pub command_id: Option<String>,
    /// Fail unless the aggregate is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
    /// The service and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `tally state`: the aggregate, and the moment to see it at.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The aggregate.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// As of this global position.
    #[arg(long, conflicts_with = "at_time")]
    pub at_position: Option<u64>,
    /// As of this time: RFC 3339 (`2026-12-03T13:00:00Z`) or ms since the Unix epoch.
    #[arg(long, value_parser = parse_time_ms)]
    pub at_time: Option<u64>,
    /// The service and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `tally events`: whose events, from where, and whether to keep following.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Aggregate type (with ID: that aggregate's events).
    pub aggregate_type: Option<String>,
    /// Aggregate id.
    pub id: Option<String>,
    /// Keep streaming new events (global log, filtered by TYPE if given).
    #[arg(long)]
    pub follow: bool,
    /// First position (global log) or version (aggregate) to show.
    #[arg(long)]
    pub from: Option<u64>,
    /// Most events to show; with --follow, stop after this many.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Show events upcast to the active plugin's schemas (aggregate events).
    #[arg(long)]
    pub current: bool,
    /// The service and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `tally plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload a component.
    Install(InstallArgs),
    /// Installed versions, the active one, the history.
    List {
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Activate an installed version (of an aggregate plugin or a projection).
    Activate {
        /// Aggregate type or projection name.
        aggregate_type: String,
        /// Version.
        version: String,
        /// How to switch, and the service.
        #[command(flatten)]
        switch: SwitchArgs,
    },
    /// Return to the previously active version (of an aggregate plugin or a
    /// projection).
    Rollback {
        /// Aggregate type or projection name.
        aggregate_type: String,
        /// How to switch, and the service.
        #[command(flatten)]
        switch: SwitchArgs,
    },
    /// Create a plugin crate: one command, one event, a given/when/then test; with
    /// --projection, a read model: one table, a given/then test.
    New {
        /// Crate name, and the aggregate type (or with --projection the projection
        /// name), kebab-case.
        name: String,
        /// Create a projection over the events of one aggregate type instead.
        #[arg(long)]
        projection: bool,
        /// With --projection: the aggregate type whose events it reads; the code reads
        /// the `Recorded` events of a crate from `tally plugin new TYPE` [default:
        /// counter].
        #[arg(long, value_name = "TYPE", requires = "projection")]
        aggregate_type: Option<String>,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The language to write it in: `rust` (aggregate plugins and projections),
        /// `python` or `js` (aggregate plugins) [default: rust].
        #[arg(long, value_enum, default_value_t)]
        lang: crate::scaffold::Language,
        /// The SDK to depend on: the tally-sdk crate, or the Python or JavaScript SDK's
        /// folder [default: this checkout's guest-sdk/<lang>].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Check an aggregate component against a conformance suite, with no service:
    /// each scenario's result, and a non-zero exit on any failure.
    Test {
        /// The component (`.wasm`).
        component: PathBuf,
        /// The suite's folder [default: this checkout's
        /// tests/conformance/TYPE/vMAJOR].
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
    },
}

/// `tally projection ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionCommand {
    /// Every projection: version, state, position, lag.
    List {
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One document.
    Get {
        /// Projection name.
        name: String,
        /// Table.
        table: String,
        /// Document key.
        key: String,
        /// Wait until the projection has applied every event before this position.
        #[arg(long)]
        min_position: Option<u64>,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Documents of a table in key order.
    Query {
        /// Projection name.
        name: String,
        /// Table.
        table: String,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only keys after this one.
        #[arg(long)]
        after: Option<String>,
        /// Most documents.
        #[arg(long)]
        limit: Option<usize>,
        /// The service and the output format.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Rebuild the active version's read model from the start of the log, beside the
    /// one serving; it takes over once it has caught up.
    Rebuild {
        /// Projection name.
        name: String,
        /// Wait until the rebuilt read model is active, showing its progress.
        #[arg(long)]
        wait: bool,
        /// The service.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Apply a faulted projection's failed event again.
    Retry {
        /// Projection name.
        name: String,
        /// The service.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pass over a faulted projection's failed event.
    Skip {
        /// Projection name.
        name: String,
        /// The service.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `tally plugin install`: the component and what to do with it.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The `.wasm` component.
    pub file: PathBuf,
    /// Activate it.
    #[arg(long)]
    pub activate: bool,
    /// Skip the verification fold when activating.
    #[arg(long)]
    pub no_verify: bool,
    /// Install an older version or switch despite unknown schemas.
    #[arg(long)]
    pub force: bool,
    /// With --activate, for a projection: wait until the version is active with its
    /// read model caught up, showing its progress.
    #[arg(long, requires = "activate")]
    pub wait: bool,
    /// The service and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How `tally plugin activate` and `rollback` switch versions.
#[derive(Debug, Clone, clap::Args)]
pub struct SwitchArgs {
    /// Skip the verification fold.
    #[arg(long)]
    pub no_verify: bool,
    /// Switch despite unknown schemas.
    #[arg(long)]
    pub force: bool,
    /// For a projection: wait until the version is active with its read model caught
    /// up, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// The service and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run_to_exit_code(run(cli.command))
}

/// Runs `work` to its end on a new multi-threaded async runtime, as a binary's `main`
/// does: an error (with its causes) goes to stderr, and the exit code says whether it
/// worked.
pub fn run_to_exit_code<T>(work: impl Future<Output = anyhow::Result<T>>) -> ExitCode {
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
    match runtime.block_on(work) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => crate::serve::serve(*args).await,
        Command::Send(args) => send(&args).await,
        Command::State(args) => state(&args).await,
        Command::Events(args) => events(args).await,
        Command::Plugin { command } => plugin(command).await,
        Command::Projection { command } => crate::cli_projection::run(command).await,
        Command::Verify {
            data_dir,
            repair,
            yes,
            json,
        } => crate::verify::run(&data_dir, repair, yes, json).await,
        Command::Demo { plugins } => crate::demo::run(plugins).await,
    }
}

/// `tally send`: sends the command, prints the aggregate's new version and events.
async fn send(args: &SendArgs) -> anyhow::Result<()> {
    let body = command_body(args)?;
    let answer = connect(&args.client)
        .send_command(&args.aggregate.aggregate_type, &args.aggregate.id, &body)
        .await?;
    print(&args.client, &answer, |answer| {
        sent_text(&args.aggregate.aggregate_type, &args.aggregate.id, answer)
    });
    Ok(())
}

/// The request body of `tally send`: the command's name and data (`null` if none), its
/// idempotency key and expected version if given.
fn command_body(args: &SendArgs) -> anyhow::Result<Value> {
    let data: Value = match &args.data {
        Some(text) => serde_json::from_str(text)
            .map_err(|error| anyhow::anyhow!("DATA is not JSON: {error}"))?,
        None => Value::Null,
    };
    let mut body = json!({ "type": args.command, "data": data });
    if let Some(command_id) = &args.command_id {
        body["command_id"] = json!(command_id);
    }
    if let Some(version) = args.expected_version {
        body["expected_version"] = json!(version);
    }
    Ok(body)
}

/// What `tally send` prints of the service's answer.
fn sent_text(aggregate_type: &str, id: &str, answer: &Value) -> String {
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
}

/// `tally state`: prints the aggregate's state, now or as of a position or time.
async fn state(args: &StateArgs) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(position) = args.at_position {
        query.push(("at_position", position.to_string()));
    }
    if let Some(time) = args.at_time {
        query.push(("at_time", time.to_string()));
    }
    let answer = connect(&args.client)
        .state(&args.aggregate.aggregate_type, &args.aggregate.id, &query)
        .await?;
    print(&args.client, &answer, |answer| {
        format!(
            "{}/{} at version {} (plugin {}):\n{}",
            args.aggregate.aggregate_type,
            args.aggregate.id,
            answer["version"],
            answer["plugin_version"].as_str().unwrap_or("?"),
            serde_json::to_string_pretty(&answer["state"]).unwrap_or_default()
        )
    });
    Ok(())
}

/// `tally events`: prints an aggregate's events or the global log's, or follows the
/// live stream.
async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let client = connect(&args.client);
    let json_output = args.client.json;
    if args.follow {
        anyhow::ensure!(
            args.id.is_none(),
            "--follow streams the global log: give no ID"
        );
        let query = global_log_query(args.aggregate_type, args.from);
        return follow(&client, &query, args.limit, json_output).await;
    }
    let mut query = Vec::new();
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = match (args.aggregate_type, args.id) {
        (Some(aggregate_type), Some(id)) => {
            query.push(("from_version", args.from.unwrap_or(1).to_string()));
            if args.current {
                query.push(("view", "current".to_owned()));
            }
            aggregate_events(&client, &aggregate_type, &id, &query).await?
        }
        (aggregate_type, None) => {
            query.extend(global_log_query(aggregate_type, args.from));
            client.events(&query).await?
        }
        (None, Some(_)) => unreachable!("clap fills TYPE before ID"),
    };
    for event in answer["events"].as_array().into_iter().flatten() {
        println!("{}", event_line(event, json_output));
    }
    Ok(())
}

/// `tally events --follow`: prints the events the query selects, catch-up then live,
/// until the stream ends or `limit` events were printed.
async fn follow(
    client: &Client,
    query: &[(&str, String)],
    limit: Option<usize>,
    json_output: bool,
) -> anyhow::Result<()> {
    if limit == Some(0) {
        return Ok(());
    }
    let mut left = limit;
    client
        .follow(query, |event| {
            println!("{}", event_line(&event, json_output));
            left = left.map(|left| left - 1);
            left != Some(0)
        })
        .await?;
    Ok(())
}

/// A moment given on the command line, as ms since the Unix epoch: an RFC 3339 time
/// (`2026-12-03T13:00:00Z`, `2026-12-03T14:00:00+01:00`) or a number of ms.
fn parse_time_ms(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| {
        format!("{text:?} is neither an RFC 3339 time (2026-12-03T13:00:00Z) nor ms since the epoch: {error}")
    })?;
    u64::try_from(time.timestamp_millis()).map_err(|_| format!("{text:?} is before the Unix epoch"))
}

/// The query of the global log from position `from` (default 0), of `aggregate_type`
/// only if given.
fn global_log_query(
    aggregate_type: Option<String>,
    from: Option<u64>,
) -> Vec<(&'static str, String)> {
    let mut query = vec![("from_position", from.unwrap_or(0).to_string())];
    if let Some(aggregate_type) = aggregate_type {
        query.push(("aggregate_type", aggregate_type));
    }
    query
}

/// One aggregate's events, each marked with the aggregate's type and id as the
/// global log's are.
async fn aggregate_events(
    client: &Client,
    aggregate_type: &str,
    id: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let mut answer = client.aggregate_events(aggregate_type, id, query).await?;
    for event in answer["events"].as_array_mut().into_iter().flatten() {
        event["aggregate_type"] = json!(aggregate_type);
        event["aggregate_id"] = json!(id);
    }
    Ok(answer)
}

/// One event as `tally events` prints it: its JSON, or a line of text.
fn event_line(event: &Value, json_output: bool) -> String {
    if json_output {
        return event.to_string();
    }
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

async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Install(args) => install(&args).await,
        PluginCommand::List { client } => list(&client).await,
        PluginCommand::Activate {
            aggregate_type,
            version,
            switch,
        } => switch_version(&switch, &aggregate_type, "activate", Some(version)).await,
        PluginCommand::Rollback {
            aggregate_type,
            switch,
        } => switch_version(&switch, &aggregate_type, "rollback", None).await,
        PluginCommand::New {
            name,
            projection,
            aggregate_type,
            dir,
            lang,
            sdk,
        } => new_plugin(
            name,
            scaffold_kind(projection, aggregate_type),
            dir,
            lang,
            sdk,
        ),
        PluginCommand::Test {
            component,
            scenarios,
        } => {
            // Plugin calls block (WASI's output is flushed synchronously, which must
            // not happen on the runtime's threads).
            tokio::task::spawn_blocking(move || {
                crate::conformance::run(&component, scenarios.as_deref())
            })
            .await
            .map_err(|error| anyhow::anyhow!("the conformance run stopped: {error}"))?
        }
    }
}

/// `tally plugin install`: uploads the component, prints what was installed.
async fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", args.file.display()))?;
    let query = vec![
        ("activate", args.activate.to_string()),
        ("verify", (!args.no_verify).to_string()),
        ("force", args.force.to_string()),
    ];
    let answer = connect(&args.client).install(bytes, &query).await?;
    if args.wait && answer["kind"] == "projection" {
        let done =
            crate::cli_projection::wait_for_build(&args.client, &answer["projection"]).await?;
        print(&args.client, &done, |done| {
            crate::cli_projection::built_text("installed", done)
        });
        return Ok(());
    }
    print(&args.client, &answer, installed_text);
    Ok(())
}

/// What `tally plugin install` prints of the service's answer.
fn installed_text(answer: &Value) -> String {
    if answer["kind"] == "projection" {
        let projection = &answer["projection"];
        let installed: Vec<&str> = projection["installed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut text = format!(
            "installed projection {} (versions {}); {} is active: {} at position {}",
            projection["name"].as_str().unwrap_or("?"),
            installed.join(", "),
            projection["version"].as_str().unwrap_or("?"),
            projection["state"].as_str().unwrap_or("?"),
            projection["position"]
        );
        if let Some(building) = projection["building"].as_object() {
            text += &format!(
                "; building {} (active once caught up)",
                building["version"].as_str().unwrap_or("?")
            );
        }
        return text;
    }
    let installed = &answer["installed"];
    let sha256 = installed["sha256"].as_str().unwrap_or("?");
    let mut text = format!(
        "installed {} {} (sha256 {})",
        installed["aggregate_type"].as_str().unwrap_or("?"),
        installed["version"].as_str().unwrap_or("?"),
        &sha256[..12.min(sha256.len())]
    );
    if let Some(activation) = answer.get("activation").filter(|a| !a.is_null()) {
        text += &format!(
            "; active now (verified {} events in {} ms)",
            activation["verified_events"], activation["verify_ms"]
        );
    }
    text
}

/// `tally plugin list`: prints every aggregate type's plugins.
async fn list(client: &ClientArgs) -> anyhow::Result<()> {
    let answer = connect(client).plugins().await?;
    print(client, &answer, |answer| {
        let text: String = answer["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(plugin_type_text)
            .collect();
        text.trim_end().to_owned()
    });
    Ok(())
}

/// One aggregate type's lines of `tally plugin list`: the active version, the installed
/// ones, the activations.
fn plugin_type_text(plugin: &Value) -> String {
    let mut text = format!(
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
    text
}

/// `tally plugin activate` / `rollback`: switches versions and prints the activation.
async fn switch_version(
    args: &SwitchArgs,
    aggregate_type: &str,
    action: &str,
    version: Option<String>,
) -> anyhow::Result<()> {
    let mut query = vec![
        ("verify", (!args.no_verify).to_string()),
        ("force", args.force.to_string()),
    ];
    query.extend(version.map(|version| ("version", version)));
    let answer = connect(&args.client)
        .switch(aggregate_type, action, &query)
        .await?;
    if answer["kind"] == "projection" {
        let projection = &answer["projection"];
        if args.wait {
            let done = crate::cli_projection::wait_for_build(&args.client, projection).await?;
            let what = if action == "rollback" {
                "rolled back"
            } else {
                "activated"
            };
            print(&args.client, &done, |done| {
                crate::cli_projection::built_text(what, done)
            });
        } else {
            print(&args.client, &answer, |_| {
                projection_switch_line(projection)
            });
        }
        return Ok(());
    }
    print(&args.client, &answer, |answer| {
        activation_line(aggregate_type, answer)
    });
    Ok(())
}

/// What `tally plugin activate|rollback` prints of a projection's answer: the build,
/// or that nothing is built.
fn projection_switch_line(projection: &Value) -> String {
    let name = projection["name"].as_str().unwrap_or("?");
    match projection["building"].as_object() {
        Some(building) => format!(
            "{name}: building {} beside {}; active once caught up (follow it with `tally \
             projection list`, or give --wait)",
            building["version"].as_str().unwrap_or("?"),
            projection["version"].as_str().unwrap_or("?")
        ),
        None => format!(
            "{name}: {} is active",
            projection["version"].as_str().unwrap_or("?")
        ),
    }
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

/// What `tally plugin new` creates: with `--projection`, a projection over
/// `aggregate_type` (by default the example's, `counter`); else an aggregate plugin.
fn scaffold_kind(projection: bool, aggregate_type: Option<String>) -> crate::scaffold::Kind {
    if !projection {
        return crate::scaffold::Kind::Aggregate;
    }
    crate::scaffold::Kind::Projection {
        aggregate_type: aggregate_type
            .unwrap_or_else(|| crate::scaffold::DEFAULT_AGGREGATE_TYPE.to_owned()),
    }
}

/// `tally plugin new`: creates the plugin `name` of `kind` in `language` in `dir`
/// (default `./NAME`) against the guest SDK `sdk` (default: this checkout's).
fn new_plugin(
    name: String,
    kind: crate::scaffold::Kind,
    dir: Option<PathBuf>,
    language: crate::scaffold::Language,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => checkout_sdk(language)?,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let what = match kind {
        crate::scaffold::Kind::Aggregate => "plugin",
        crate::scaffold::Kind::Projection { .. } => "projection",
    };
    let scaffold = crate::scaffold::Scaffold {
        name: name.clone(),
        kind,
        dir: dir.clone(),
        sdk: crate::scaffold::SdkSource::Path(sdk),
        language,
    };
    let files = crate::scaffold::generate(&scaffold)?;
    println!("created {what} {name} in {}:", dir.display());
    for file in files {
        println!("  {}", file.display());
    }
    let next = match language {
        crate::scaffold::Language::Rust => {
            "cargo test && cargo build --release --target wasm32-wasip2"
        }
        crate::scaffold::Language::Python => "./build.sh && .venv/bin/pytest",
        crate::scaffold::Language::Js => "npm install && npm test && npm run build",
    };
    println!("next: cd {} && {next} (see its README.md)", dir.display());
    Ok(())
}

/// This checkout's guest SDK for `language`.
fn checkout_sdk(language: crate::scaffold::Language) -> anyhow::Result<PathBuf> {
    let folder = language.sdk_folder();
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk"))
        .join(folder)
        .canonicalize()
        .map_err(|error| {
            anyhow::anyhow!("cannot find this checkout's guest-sdk/{folder} (give --sdk): {error}")
        })
}

pub(crate) fn connect(args: &ClientArgs) -> Client {
    Client::new(&args.url, args.token.clone())
}

/// Prints the answer as JSON or as the text `human` makes of it.
pub(crate) fn print(args: &ClientArgs, answer: &Value, human: impl FnOnce(&Value) -> String) {
    if args.json {
        println!("{answer}");
    } else {
        println!("{}", human(answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_epoch_ms() {
        assert_eq!(parse_time_ms("1764766800000"), Ok(1_764_766_800_000));
        assert_eq!(parse_time_ms("2025-12-03T13:00:00Z"), Ok(1_764_766_800_000));
        assert_eq!(
            parse_time_ms("2025-12-03T14:00:00.5+01:00"),
            Ok(1_764_766_800_500)
        );
        for bad in ["yesterday", "2025-12-03", "1969-12-31T23:59:59Z", "-5"] {
            let error = parse_time_ms(bad).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }
}
