//! `tally projection ...`: the read side from the command line, and the progress bar
//! of a projection's build that `projection rebuild`, `plugin install --activate` and
//! `plugin activate|rollback` show with `--wait`.

use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::cli::{ClientArgs, ProjectionCommand, connect, print};
use crate::client::{Client, segment};

/// How often a wait asks the service how far the build is.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Runs a `tally projection` subcommand.
pub async fn run(command: ProjectionCommand) -> anyhow::Result<()> {
    match command {
        ProjectionCommand::List { client } => list(&client).await,
        ProjectionCommand::Get {
            name,
            table,
            key,
            min_position,
            client,
        } => {
            let path = format!(
                "/v1/projections/{}/{}/{}",
                segment(&name),
                segment(&table),
                segment(&key)
            );
            let query: Vec<_> = min_position
                .map(|position| ("min_position", position.to_string()))
                .into_iter()
                .collect();
            let answer = connect(&client).projections(&path, &query).await?;
            print(&client, &answer, |answer| {
                serde_json::to_string_pretty(&answer["document"]).unwrap_or_default()
            });
            Ok(())
        }
        ProjectionCommand::Query {
            name,
            table,
            prefix,
            after,
            limit,
            client,
        } => {
            let path = format!("/v1/projections/{}/{}", segment(&name), segment(&table));
            let query: Vec<_> = [
                prefix.map(|prefix| ("prefix", prefix)),
                after.map(|after| ("after", after)),
                limit.map(|limit| ("limit", limit.to_string())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let answer = connect(&client).projections(&path, &query).await?;
            print(&client, &answer, page_text);
            Ok(())
        }
        ProjectionCommand::Rebuild { name, wait, client } => rebuild(&client, &name, wait).await,
        ProjectionCommand::Retry { name, client } => action(&client, &name, "retry").await,
        ProjectionCommand::Skip { name, client } => action(&client, &name, "skip").await,
    }
}

/// `tally projection list`: one line per projection.
async fn list(client: &ClientArgs) -> anyhow::Result<()> {
    let answer = connect(client).projections("/v1/projections", &[]).await?;
    print(client, &answer, |answer| {
        answer["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(projection_line)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// A projection's lines: name, version, state, position, lag, the version a rollback
/// returns to, its fault if any, and a build in progress with its pace.
fn projection_line(projection: &Value) -> String {
    let mut line = format!(
        "{} {}: {} at position {} ({} events behind)",
        projection["name"].as_str().unwrap_or("?"),
        projection["version"].as_str().unwrap_or("?"),
        projection["state"].as_str().unwrap_or("?"),
        projection["position"],
        projection["lag_events"]
    );
    if let Some(previous) = projection["previous"].as_str() {
        line += &format!("; previous {previous}");
    }
    line += &fault_lines(projection);
    if let Some(building) = projection["building"].as_object() {
        line += &format!(
            "\n  building {} ({}): {} at position {}, {} of {} events, {}",
            building["version"].as_str().unwrap_or("?"),
            building["reason"].as_str().unwrap_or("?"),
            building["state"].as_str().unwrap_or("?"),
            building["position"],
            building["events_done"],
            build_length(&Value::Object(building.clone())),
            pace(&Value::Object(building.clone())),
        );
        line += &fault_lines(&Value::Object(building.clone())).replace("\n  ", "\n    ");
    }
    line
}

/// `\n  failed at position P (event): message`, if `version` (a projection or its
/// build) is faulted.
fn fault_lines(version: &Value) -> String {
    let Some(fault) = version["fault"].as_object() else {
        return String::new();
    };
    format!(
        "\n  failed at position {} ({}): {}",
        fault["position"],
        fault["event"].as_str().unwrap_or("?"),
        fault["message"].as_str().unwrap_or("?")
    )
}

/// The events a build goes through in all: those done and those left.
fn build_length(building: &Value) -> u64 {
    building["events_done"].as_u64().unwrap_or(0) + building["lag_events"].as_u64().unwrap_or(0)
}

/// `N events/s, about T left`, as far as the service knows them.
fn pace(version: &Value) -> String {
    let rate = version["events_per_second"].as_f64().map_or_else(
        || "? events/s".to_owned(),
        |rate| format!("{rate:.0} events/s"),
    );
    match version["eta_ms"].as_u64() {
        Some(0) => format!("{rate}, caught up"),
        Some(ms) => format!("{rate}, about {} left", duration_text(ms)),
        None => rate,
    }
}

/// `850 ms`, `12 s`, `3 min 20 s`.
fn duration_text(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{} s", ms / 1_000),
        _ => format!("{} min {} s", ms / 60_000, ms / 1_000 % 60),
    }
}

/// A page: `key document` lines, then where the next page starts.
fn page_text(answer: &Value) -> String {
    let mut lines: Vec<String> = answer["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            format!(
                "{} {}",
                entry["key"].as_str().unwrap_or("?"),
                entry["document"]
            )
        })
        .collect();
    if let Some(next) = answer["next_after"].as_str() {
        lines.push(format!("(more: --after {next})"));
    }
    lines.join("\n")
}

/// `tally projection rebuild`: starts the rebuild; with `wait`, follows it to its end.
async fn rebuild(client: &ClientArgs, name: &str, wait: bool) -> anyhow::Result<()> {
    let answer = connect(client).projection_rebuild(name).await?;
    if wait {
        let done = wait_for_build(client, &answer).await?;
        print(client, &done, |done| built_text("rebuilt", done));
    } else {
        print(client, &answer, |answer| {
            format!(
                "{name}: rebuilding {} (follow it with `tally projection list`)",
                answer["building"]["version"].as_str().unwrap_or("?")
            )
        });
    }
    Ok(())
}

/// `NAME VERSION: done, active at position P (read model generation G)`.
pub(crate) fn built_text(done: &str, projection: &Value) -> String {
    format!(
        "{} {}: {done}, active at position {} (read model generation {})",
        projection["name"].as_str().unwrap_or("?"),
        projection["version"].as_str().unwrap_or("?"),
        projection["position"],
        projection["generation"]
    )
}

/// Follows the build that `projection` (a projection's status, as an install,
/// activation, rollback or rebuild answered) shows, with a progress bar on stderr,
/// until the version it builds is active and caught up; with no build, until the active
/// version has caught up. Returns the projection's status then. A build that faults,
/// or is given up for another, is an error.
pub(crate) async fn wait_for_build(
    client: &ClientArgs,
    projection: &Value,
) -> anyhow::Result<Value> {
    let name = projection["name"]
        .as_str()
        .context("the answer names no projection")?
        .to_owned();
    let target = projection["building"]["generation"]
        .as_u64()
        .or_else(|| projection["generation"].as_u64())
        .context("the answer has no read model generation")?;
    let bar = if client.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} events, {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let http = connect(client);
    let outcome = follow_build(&http, &name, target, &bar).await;
    bar.finish_and_clear();
    outcome
}

async fn follow_build(
    http: &Client,
    name: &str,
    target: u64,
    bar: &ProgressBar,
) -> anyhow::Result<Value> {
    loop {
        let answer = http.projections("/v1/projections", &[]).await?;
        let projection = answer["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|projection| projection["name"] == name)
            .with_context(|| format!("projection {name} is no longer installed"))?
            .clone();
        let building = &projection["building"];
        let (version, length, done) = if building["generation"] == target {
            (
                building,
                build_length(building),
                building["events_done"].as_u64(),
            )
        } else if projection["generation"] == target {
            if projection["state"] == "live" {
                return Ok(projection);
            }
            let position = projection["position"].as_u64().unwrap_or(0);
            let length = position + projection["lag_events"].as_u64().unwrap_or(0);
            (&projection, length, Some(position))
        } else {
            anyhow::bail!(
                "the build of {name} was given up: another activation, rollback or rebuild \
                 replaced it (see `tally projection list`)"
            );
        };
        if version["state"] == "faulted" {
            anyhow::bail!(
                "the build of {name} {} is faulted:{} (fix it, then `tally projection retry` \
                 or `skip`)",
                version["version"].as_str().unwrap_or("?"),
                fault_lines(version).trim_start_matches('\n')
            );
        }
        bar.set_prefix(format!(
            "{name} {}",
            version["version"].as_str().unwrap_or("?")
        ));
        bar.set_length(length);
        bar.set_position(done.unwrap_or(0));
        bar.set_message(pace(version));
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `tally projection retry|skip`.
async fn action(client: &ClientArgs, name: &str, action: &str) -> anyhow::Result<()> {
    connect(client).projection_action(name, action).await?;
    println!("{name}: {action} accepted");
    Ok(())
}
