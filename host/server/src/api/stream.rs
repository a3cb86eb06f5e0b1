//! `GET /v1/subscribe`: the log as Server-Sent Events, catch-up then live.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tally_runtime::GlobalPosition;
use tally_runtime::tally_store::SubscriptionFilter;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::input::{QueryParams, check_type};
use super::queries::log_event;
use crate::metrics::SubscriptionGuard;

/// Where a subscription starts and what it receives.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubscribeQuery {
    /// First position to deliver (default 0). A `Last-Event-ID` header overrides it:
    /// delivery resumes right after that position.
    #[param(value_type = Option<u64>)]
    pub from_position: Option<GlobalPosition>,
    /// Only events of this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only events of this name.
    pub event_type: Option<String>,
}

/// Server-Sent Events: every stored event from `from_position` (catch-up), then
/// live ones as they become durable. Each message's `id` is the event's position
/// and its `data` the event as JSON; reconnecting with `Last-Event-ID` resumes with
/// no gap and no duplicate.
#[utoipa::path(
    get,
    path = "/v1/subscribe",
    params(
        SubscribeQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<SubscribeQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let runtime = state.runtime()?;
    if let Some(aggregate_type) = &query.aggregate_type
        && aggregate_type != tally_runtime::Runtime::REGISTRY_TYPE
    {
        check_type(aggregate_type)?;
    }
    let from = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|last| GlobalPosition::new(last).next())
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a position"))?,
        None => query.from_position.unwrap_or(GlobalPosition::START),
    };
    let filter = SubscriptionFilter {
        aggregate_type: query.aggregate_type,
        stream: None,
        event_name: query.event_type,
    };
    let subscription = runtime.subscribe(from, filter);
    let guard = state.metrics().subscription_opened(from);
    let events = stream::unfold(
        (subscription, guard),
        |(mut subscription, guard): (_, SubscriptionGuard)| async move {
            let event = subscription.next().await.ok()?;
            guard.delivered(event.position);
            let id = event.position.to_string();
            let body = serde_json::to_string(&log_event(event)).expect("events serialise");
            let message = Event::default().id(id).data(body);
            Some((Ok(message), (subscription, guard)))
        },
    );
    let shutdown = state.shutdown().clone().cancelled_owned();
    Ok(Sse::new(events.take_until(shutdown))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
