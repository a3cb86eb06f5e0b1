//! `POST /v1/aggregates/{type}/{id}/commands`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tally_runtime::{
    Command, ExecuteOptions, GlobalPosition, Outcome, SchemaVersion, StoredEvent, StreamVersion,
};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::input::{AggregateParams, AggregatePath, JsonBody, check_id};

/// A command for one aggregate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The command name, e.g. `Deposit`.
    #[serde(rename = "type")]
    pub command_type: String,
    /// The command's fields, e.g. `{"amount": 500}` (default `null`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Box<RawValue>>,
    /// Idempotency key (the `Idempotency-Key` header works too): a command id
    /// already applied returns that command's result, marked `duplicate`.
    pub command_id: Option<String>,
    /// The aggregate must be at exactly this version (0: no events yet), else 409.
    #[schema(value_type = Option<u64>)]
    pub expected_version: Option<StreamVersion>,
    /// Stored with the events.
    pub correlation_id: Option<String>,
    /// Stored with the events.
    pub causation_id: Option<String>,
}

/// What a command did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandResponse {
    /// The aggregate's version after the command (events stored).
    #[schema(value_type = u64)]
    pub version: StreamVersion,
    /// The appended events.
    pub events: Vec<EventBody>,
    /// The command id was applied before: these are that command's events.
    pub duplicate: bool,
    /// The plugin version that decided.
    pub plugin_version: String,
    /// The log position right after the command's last event (absent when it appended
    /// none): give it as `min_position` to a projection read to see the command's
    /// effect there.
    #[schema(value_type = Option<u64>)]
    pub position: Option<GlobalPosition>,
}

/// An event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventBody {
    /// Global position in the log (from 0): the SSE id.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
    /// Aggregate type (global log and stream only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// Aggregate id (global log and stream only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// The aggregate version it produced (from 1).
    #[schema(value_type = u64)]
    pub version: StreamVersion,
    /// Event name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data`.
    #[schema(value_type = u32)]
    pub schema_version: SchemaVersion,
    /// When it was appended, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The command id it was appended with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The event's fields.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl EventBody {
    /// An event of a known aggregate.
    pub fn from_stored(event: StoredEvent) -> EventBody {
        EventBody {
            position: event.position,
            aggregate_type: None,
            aggregate_id: None,
            version: event.version,
            event_type: event.name,
            schema_version: event.schema_version,
            timestamp_ms: event.timestamp_ms,
            command_id: event.command_id,
            data: raw_json(&event.data),
        }
    }
}

/// Stored event data as raw JSON (the store only accepts JSON; anything else is
/// shown as a JSON string rather than breaking the answer).
pub fn raw_json(data: &[u8]) -> Box<RawValue> {
    std::str::from_utf8(data)
        .ok()
        .and_then(|text| RawValue::from_string(text.to_owned()).ok())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(data);
            RawValue::from_string(serde_json::to_string(&text).expect("a string serialises"))
                .expect("a JSON string")
        })
}

impl From<Outcome> for CommandResponse {
    fn from(outcome: Outcome) -> CommandResponse {
        CommandResponse {
            version: outcome.version,
            position: outcome.events.last().map(|event| event.position.next()),
            events: outcome
                .events
                .into_iter()
                .map(EventBody::from_stored)
                .collect(),
            duplicate: outcome.duplicate,
            plugin_version: outcome.plugin_version.to_string(),
        }
    }
}

/// Executes a command through the aggregate type's active plugin; answers once the
/// events are durable.
#[utoipa::path(
    post,
    path = "/v1/aggregates/{aggregate_type}/{aggregate_id}/commands",
    params(
        AggregateParams,
        ("Idempotency-Key" = Option<String>, Header, description = "Command id for idempotency"),
    ),
    request_body = CommandRequest,
    responses(
        (status = 200, description = "Applied (or a duplicate of an applied command id)", body = CommandResponse),
        (status = 400, description = "Malformed request: body (`malformed-body`), type or id in the path (`invalid-aggregate-type`, `invalid-id`), ids or command type (`invalid-id`, `bad-request`)", body = ErrorBody),
        (status = 404, description = "Unknown aggregate type", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time (`request-timeout`)", body = ErrorBody),
        (status = 409, description = "`version-conflict` (with `actual_version`), or `command-id-reused`: the command id was used for another command (another aggregate, command type or data); a retry of the same command answers 200 with `duplicate`", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Rejected by the plugin: its code, e.g. `insufficient-funds`, or `invalid-command` for an unknown command or data that does not fit it", body = ErrorBody),
        (status = 500, description = "Plugin failure (`plugin-trap`, `plugin-panic`, `plugin-timeout`, `plugin-memory`, `plugin-invalid`, `plugin-fold-failed`) or `storage-error`", body = ErrorBody),
        (status = 503, description = "`storage-full`, `unavailable`, `starting`, `shutting-down`", body = ErrorBody),
    )
)]
pub async fn execute(
    State(state): State<AppState>,
    path: AggregatePath,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CommandRequest>,
) -> Result<Json<CommandResponse>, ApiError> {
    let started = Instant::now();
    let result = run(&state, &path, &headers, request).await;
    let known_type = state
        .runtime()
        .is_ok_and(|runtime| runtime.active_version(&path.aggregate_type).is_some());
    let label = if known_type {
        path.aggregate_type.as_str()
    } else {
        "unknown"
    };
    let metrics = state.metrics();
    match &result {
        Ok(response) => {
            metrics.command_done(label, "ok", started.elapsed());
            for event in &response.events {
                if !response.duplicate {
                    metrics.event_appended(label, &event.event_type);
                }
            }
        }
        Err(error) => metrics.command_done(label, error.outcome(), started.elapsed()),
    }
    result.map(Json)
}

async fn run(
    state: &AppState,
    path: &AggregatePath,
    headers: &HeaderMap,
    request: CommandRequest,
) -> Result<CommandResponse, ApiError> {
    let runtime = state.runtime()?;
    let max = state.limits().max_id_len;
    let header_id = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("the Idempotency-Key header is not text"))?
                .to_owned(),
        ),
        None => None,
    };
    let command_id = match (request.command_id, header_id) {
        (Some(body), Some(header)) if body != header => {
            return Err(ApiError::bad_request(
                "command_id and the Idempotency-Key header differ",
            ));
        }
        (body, header) => body.or(header),
    };
    for id in [&command_id, &request.correlation_id, &request.causation_id]
        .into_iter()
        .flatten()
    {
        check_id(id, max)?;
    }
    if request.command_type.is_empty() || request.command_type.len() > max {
        return Err(ApiError::bad_request(format!(
            "the command type must be 1 to {max} bytes"
        )));
    }
    let data = request
        .data
        .map_or_else(|| b"null".to_vec(), |raw| raw.get().as_bytes().to_vec());
    let command = Command {
        name: request.command_type,
        data,
    };
    let options = ExecuteOptions {
        command_id,
        expected_version: request.expected_version,
        correlation_id: request.correlation_id,
        causation_id: request.causation_id,
    };
    let outcome = runtime
        .execute(&path.aggregate_type, path.id(), command, options)
        .await?;
    Ok(outcome.into())
}
