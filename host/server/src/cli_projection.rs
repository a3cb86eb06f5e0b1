//! `tally projection ...`: the read side from the command line.

use serde_json::Value;

use crate::cli::{ClientArgs, ProjectionCommand, connect, print};
use crate::client::segment;

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

/// A projection's line: name, version, state, position, lag, and its fault if any.
fn projection_line(projection: &Value) -> String {
    let mut line = format!(
        "{} {}: {} at position {} ({} events behind)",
        projection["name"].as_str().unwrap_or("?"),
        projection["version"].as_str().unwrap_or("?"),
        projection["state"].as_str().unwrap_or("?"),
        projection["position"],
        projection["lag_events"]
    );
    if let Some(fault) = projection["fault"].as_object() {
        line += &format!(
            "\n  failed at position {} ({}): {}",
            fault["position"],
            fault["event"].as_str().unwrap_or("?"),
            fault["message"].as_str().unwrap_or("?")
        );
    }
    if let Some(building) = projection["building"].as_object() {
        line += &format!(
            "\n  building {}: {} at position {}",
            building["version"].as_str().unwrap_or("?"),
            building["state"].as_str().unwrap_or("?"),
            building["position"]
        );
    }
    line
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

/// `tally projection retry|skip`.
async fn action(client: &ClientArgs, name: &str, action: &str) -> anyhow::Result<()> {
    connect(client).projection_action(name, action).await?;
    println!("{name}: {action} accepted");
    Ok(())
}
