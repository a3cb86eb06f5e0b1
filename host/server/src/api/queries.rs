//! Reads: an aggregate's state (now or in the past), the aggregates of a type, an
//! aggregate's events, the global log.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tally_runtime::tally_store::{EventLog, RecordedEvent};
use tally_runtime::{At, EventView, GlobalPosition, StreamVersion};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{is_system_type, system_streams_visible};
use super::commands::{EventBody, raw_json};
use super::error::{ApiError, ErrorBody};
use super::input::{AggregateParams, AggregatePath, QueryParams, TypeParams, check_type};

/// Time travel for `GET /v1/aggregates/{type}/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// The state as of this global position (events at or before it).
    #[param(value_type = Option<u64>)]
    pub at_position: Option<GlobalPosition>,
    /// The state as of this time, ms since the Unix epoch.
    pub at_time: Option<u64>,
}

/// An aggregate's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateResponse {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// Events folded.
    #[schema(value_type = u64)]
    pub version: StreamVersion,
    /// The state, as the plugin renders it.
    #[schema(value_type = Object)]
    pub state: Box<RawValue>,
    /// The plugin version that folded it.
    pub plugin_version: String,
}

/// The state of an aggregate (durable events only), now or at a position or time.
#[utoipa::path(
    get,
    path = "/v1/aggregates/{aggregate_type}/{aggregate_id}",
    params(
        AggregateParams,
        StateQuery
    ),
    responses(
        (status = 200, body = StateResponse),
        (status = 400, description = "Bad type or id (`invalid-aggregate-type`, `invalid-id`) or query (`bad-request`)", body = ErrorBody),
        (status = 404, description = "Unknown aggregate type, or no events (then)", body = ErrorBody),
        (status = 500, description = "The plugin failed to fold the events, or the store failed", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `unavailable`", body = ErrorBody),
    )
)]
pub async fn state(
    State(state): State<AppState>,
    path: AggregatePath,
    QueryParams(query): QueryParams<StateQuery>,
) -> Result<Json<StateResponse>, ApiError> {
    let runtime = state.runtime()?;
    let (aggregate_type, id) = (&path.aggregate_type, path.id());
    let found = match (query.at_position, query.at_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give at_position or at_time, not both",
            ));
        }
        (Some(position), None) => {
            runtime
                .state_at(aggregate_type, id, At::Position(position))
                .await?
        }
        (None, Some(time)) => {
            runtime
                .state_at(aggregate_type, id, At::TimeMs(time))
                .await?
        }
        (None, None) => runtime.state(aggregate_type, id).await?,
    };
    let found =
        found.ok_or_else(|| ApiError::not_found(format!("{aggregate_type}/{id} has no events")))?;
    Ok(Json(StateResponse {
        aggregate_type: aggregate_type.clone(),
        aggregate_id: id.to_owned(),
        version: found.version,
        state: raw_json(found.state_json.as_bytes()),
        plugin_version: found.plugin_version.to_string(),
    }))
}

/// Paging of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items to skip (default 0).
    pub skip: Option<usize>,
    /// Most items to return (default and maximum: the service's page limit).
    pub limit: Option<usize>,
}

/// The aggregates of a type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AggregatesResponse {
    /// The aggregate type.
    pub aggregate_type: String,
    /// Aggregates of the type in all.
    pub total: usize,
    /// This page, in creation order.
    pub aggregates: Vec<AggregateSummary>,
    /// `skip` for the next page, if there is one.
    pub next_skip: Option<usize>,
}

/// An aggregate id and its version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AggregateSummary {
    /// The aggregate id.
    pub id: String,
    /// Events stored.
    #[schema(value_type = u64)]
    pub version: StreamVersion,
}

/// Lists the aggregate ids of a type with their versions, in creation order.
#[utoipa::path(
    get,
    path = "/v1/aggregates/{aggregate_type}",
    params(TypeParams, PageQuery),
    responses(
        (status = 200, body = AggregatesResponse),
        (status = 400, description = "Bad type (`invalid-aggregate-type`) or query (`bad-request`)", body = ErrorBody),
        (status = 404, description = "Unknown aggregate type", body = ErrorBody),
        (status = 503, description = "`starting`", body = ErrorBody),
    )
)]
pub async fn aggregates(
    State(state): State<AppState>,
    path: AggregatePath,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<AggregatesResponse>, ApiError> {
    let runtime = state.runtime()?;
    let aggregate_type = path.aggregate_type;
    let skip = query.skip.unwrap_or(0);
    let limit = page_limit(&state, query.limit)?;
    let (page, total) = runtime.aggregates(&aggregate_type, skip, limit).await?;
    if total == 0 && runtime.active_version(&aggregate_type).is_none() {
        return Err(unknown_type(&aggregate_type));
    }
    let next = skip + page.len();
    Ok(Json(AggregatesResponse {
        aggregate_type,
        total,
        next_skip: (next < total).then_some(next),
        aggregates: page
            .into_iter()
            .map(|(id, version)| AggregateSummary { id, version })
            .collect(),
    }))
}

fn unknown_type(aggregate_type: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown-aggregate-type",
        format!(
            "no plugin is installed for aggregate type `{aggregate_type}` and it has no events"
        ),
    )
}

pub(super) fn page_limit(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    let max = state.limits().max_page;
    match limit {
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(limit) => Ok(limit.min(max)),
        None => Ok(max),
    }
}

/// Which events of an aggregate.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// First version to return (default 1, the first event).
    #[param(value_type = Option<u64>)]
    pub from_version: Option<StreamVersion>,
    /// Most events to return.
    pub limit: Option<usize>,
    /// `stored` (default): as stored; `current`: upcast to the active plugin's schemas.
    pub view: Option<ViewParam>,
}

/// How events are shown.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ViewParam {
    /// As stored.
    Stored,
    /// Upcast to the active plugin's schemas.
    Current,
}

/// A page of events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsResponse {
    /// The events.
    pub events: Vec<EventBody>,
    /// For an aggregate: `from_version` of the next page, if there may be one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub next_from_version: Option<StreamVersion>,
    /// For the global log: `from_position` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub next_from_position: Option<GlobalPosition>,
    /// For the global log: the position the next appended event will get.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub end_position: Option<GlobalPosition>,
}

/// The events of an aggregate, paged by version, as stored or upcast.
#[utoipa::path(
    get,
    path = "/v1/aggregates/{aggregate_type}/{aggregate_id}/events",
    params(
        AggregateParams,
        EventsQuery
    ),
    responses(
        (status = 200, body = EventsResponse),
        (status = 400, description = "Bad type or id (`invalid-aggregate-type`, `invalid-id`) or query (`bad-request`)", body = ErrorBody),
        (status = 404, description = "Unknown aggregate type (view=current)", body = ErrorBody),
        (status = 500, description = "An upcast failed, or the store failed", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `unavailable`", body = ErrorBody),
    )
)]
pub async fn aggregate_events(
    State(state): State<AppState>,
    path: AggregatePath,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Json<EventsResponse>, ApiError> {
    let runtime = state.runtime()?;
    let from = query.from_version.unwrap_or(StreamVersion::FIRST);
    let limit = page_limit(&state, query.limit)?;
    let view = match query.view {
        Some(ViewParam::Current) => EventView::Current,
        _ => EventView::Stored,
    };
    let events = runtime
        .events(&path.aggregate_type, path.id(), from, limit, view)
        .await?;
    let next_from_version = events.last().map(|event| event.version.next());
    Ok(Json(EventsResponse {
        events: events.into_iter().map(EventBody::from_stored).collect(),
        next_from_version,
        next_from_position: None,
        end_position: None,
    }))
}

/// Which events of the global log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// First position to scan (default 0).
    #[param(value_type = Option<u64>)]
    pub from_position: Option<GlobalPosition>,
    /// Most events to scan.
    pub limit: Option<usize>,
    /// Only events of this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only events of this name.
    pub event_type: Option<String>,
}

/// The global log, paged by position, optionally filtered. The system streams (the
/// plugin registry's `$tally-plugins` events) are included only for an admin caller;
/// asking for a system type without the admin token is 401.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(LogQuery),
    responses(
        (status = 200, body = EventsResponse),
        (status = 400, description = "Bad query (`bad-request`, `invalid-aggregate-type`)", body = ErrorBody),
        (status = 401, description = "A system type asked for without the admin token", body = ErrorBody),
        (status = 500, description = "The store failed (`storage-error`)", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `unavailable`", body = ErrorBody),
    )
)]
pub async fn all_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<LogQuery>,
) -> Result<Json<EventsResponse>, ApiError> {
    let runtime = state.runtime()?;
    let requested_type = query.aggregate_type.as_deref();
    let system_visible = system_streams_visible(&state, &headers, requested_type)?;
    if let Some(aggregate_type) = requested_type
        && aggregate_type != tally_runtime::Runtime::REGISTRY_TYPE
    {
        check_type(aggregate_type)?;
    }
    let from = query.from_position.unwrap_or(GlobalPosition::START);
    let limit = page_limit(&state, query.limit)?;
    let scanned = runtime.store().read_all(from, limit).await?;
    let next = scanned.last().map_or(from, |event| event.position.next());
    let events = scanned
        .into_iter()
        .filter(|event| system_visible || !is_system_type(&event.stream.aggregate_type))
        .filter(|event| {
            query
                .aggregate_type
                .as_ref()
                .is_none_or(|t| **t == *event.stream.aggregate_type)
                && query.event_type.as_ref().is_none_or(|e| *e == event.name)
        })
        .map(log_event)
        .collect();
    Ok(Json(EventsResponse {
        events,
        next_from_version: None,
        next_from_position: Some(next),
        end_position: Some(runtime.store().end_position().await?),
    }))
}

/// An event of the global log, with its aggregate.
pub fn log_event(event: RecordedEvent) -> EventBody {
    EventBody {
        position: event.position,
        aggregate_type: Some(event.stream.aggregate_type.to_string()),
        aggregate_id: Some(event.stream.aggregate_id.to_string()),
        version: event.version,
        event_type: event.name,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        command_id: event.command_id,
        data: raw_json(&event.data),
    }
}
