//! `GET /v1/subscribe`: the log as Server-Sent Events, catch-up then live.
//!
//! Each client is one store [`Subscription`]: it catches up by reading the log a page at a
//! time, then shares the store's one live reader with every other subscriber. The SSE
//! text of a live page is made once for all of them ([`EventPage::encoded`] with
//! [`SseEncoder`]); a client's share of it is slices of that text, written as they are.
//! So a live event costs one read and one encoding however many clients listen, and each
//! client a write of the bytes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde::Serialize;
use serde_json::value::RawValue;
use tally_runtime::tally_store::{
    Delivery, EventEncoder, EventPage, RecordedEvent, SubscriptionFilter,
};
use tally_runtime::{BackendSubscription, GlobalPosition, SchemaVersion, StreamVersion};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use utoipa::IntoParams;

use super::AppState;
use super::auth::{is_system_type, system_streams_visible};
use super::error::{ApiError, ErrorBody};
use super::input::{QueryParams, check_type};
use super::queries::log_event;
use crate::metrics::SubscriptionGuard;

/// After this long without an event, a comment line keeps the connection (and any proxy
/// on the way) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The comment sent to keep a quiet stream open.
const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// Where a subscription starts and what it receives.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
/// no gap and no duplicate. A `Last-Event-ID` that is not a position, or is the last
/// possible one (nothing can follow it), is 400.
///
/// The system streams (the plugin registry's `$tally-plugins` events) are delivered
/// only to an admin caller (with the admin token, or any caller when no token is
/// configured); other callers never see them, and asking for a system type by name
/// without the token is 401.
///
/// At most `--max-subscribers` streams are open at once; beyond that the answer is 503
/// `too-many-subscribers`.
#[utoipa::path(
    get,
    path = "/v1/subscribe",
    params(
        SubscribeQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream"),
        (status = 400, description = "Bad query (`bad-request`, `invalid-aggregate-type`) or `Last-Event-ID`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a system stream asked for without the admin token", body = ErrorBody),
        (status = 503, description = "`starting`, or `too-many-subscribers` (at `--max-subscribers`)", body = ErrorBody),
    )
)]

pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<SubscribeQuery>,
) -> Result<Response, ApiError> {
    let runtime = state.runtime()?;
    let requested_type = query.aggregate_type.as_deref();
    let system_visible = system_streams_visible(&state, &headers, requested_type)?;
    if let Some(aggregate_type) = requested_type
        && aggregate_type != tally_runtime::Runtime::REGISTRY_TYPE
    {
        check_type(aggregate_type)?;
    }
    let from = start_position(&headers, query.from_position)?;
    let slot = state.subscriber_slots().take().inspect_err(|_| {
        state.metrics().subscription_refused();
    })?;
    let filter = SubscriptionFilter {
        aggregate_type: query.aggregate_type,
        stream: None,
        event_name: query.event_type,
    };
    let messages = Messages {
        subscription: runtime.subscribe(from, filter),
        guard: state.metrics().subscription_opened(from),
        _slot: slot,
        system_visible,
        ready: VecDeque::new(),
        keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        sent_since_keep_alive: false,
    };
    let shutdown = state.shutdown().clone().cancelled_owned();
    Ok(event_stream(messages.into_stream().take_until(shutdown)))
}

/// Where delivery starts: right after `Last-Event-ID` when the client sends it, else at
/// `from_position` (default 0).
fn start_position(
    headers: &HeaderMap,
    from_position: Option<GlobalPosition>,
) -> Result<GlobalPosition, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(from_position.unwrap_or(GlobalPosition::START));
    };
    let last: u64 = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a position (a number)"))?;
    // The position after the last possible one does not exist: wrapping to 0 would
    // replay the whole log.
    last.checked_add(1)
        .map(GlobalPosition::new)
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID is the last possible position"))
}

/// The response: `text/event-stream` with the stream's bytes as they come.
fn event_stream(body: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The open streams, at most `--max-subscribers`: a slot is taken for each and given back
/// when its connection ends.
#[derive(Debug, Clone)]
pub struct SubscriberSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

impl SubscriberSlots {
    /// Room for `max` streams at once.
    pub fn new(max: usize) -> SubscriberSlots {
        SubscriberSlots {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot, or 503 `too-many-subscribers` when all are taken.
    pub fn take(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-subscribers",
                format!(
                    "{} event streams are open, the most this service takes; try again later",
                    self.max
                ),
            )
        })
    }
}

/// The SSE messages of one client: its subscription and what it holds while open.
struct Messages {
    subscription: BackendSubscription,
    guard: SubscriptionGuard,
    /// Given back when the client goes.
    _slot: OwnedSemaphorePermit,
    /// Whether the client sees the system streams.
    system_visible: bool,
    /// Bytes of the last delivery not handed to the connection yet.
    ready: VecDeque<Bytes>,
    /// Fires after [`KEEP_ALIVE`]; re-armed each time.
    keep_alive: Pin<Box<Sleep>>,
    sent_since_keep_alive: bool,
}

impl Messages {
    /// The bytes to send, in order, until the subscription ends.
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        stream::unfold(self, |mut messages| async move {
            let bytes = messages.next_bytes().await?;
            Some((Ok(bytes), messages))
        })
    }

    /// The next bytes: SSE messages of the next delivery, or a keep-alive comment after
    /// a quiet [`KEEP_ALIVE`]; `None` once the store is closed.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                self.sent_since_keep_alive = true;
                return Some(bytes);
            }
            // Both reads are cancel-safe: a keep-alive in between loses nothing.
            tokio::select! {
                delivered = next_events(&mut self.subscription) => self.take(delivered?),
                () = &mut self.keep_alive => {
                    self.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
                    if !std::mem::take(&mut self.sent_since_keep_alive) {
                        return Some(Bytes::from_static(KEEP_ALIVE_COMMENT));
                    }
                }
            }
        }
    }

    /// Queues the SSE text of the delivered events the client may see.
    fn take(&mut self, delivered: Delivered) {
        match delivered {
            Delivered::Page(delivery) => self.take_page(&delivery),
            Delivered::One(event) => self.take_one(&event),
        }
    }

    /// Queues the SSE text of one event, if the client may see it.
    fn take_one(&mut self, event: &RecordedEvent) {
        self.guard.delivered(event.position);
        if self.system_visible || !is_system_type(&event.stream.aggregate_type) {
            let mut text = Vec::new();
            SseEncoder::encode(event, &mut text);
            self.ready.push_back(Bytes::from(text));
        }
    }

    /// Queues the SSE text of the events of a shared page the client may see.
    fn take_page(&mut self, delivery: &Delivery) {
        self.guard.delivered(delivery.last().position);
        let encoded = delivery.page().encoded::<SseEncoder>();
        for run in delivery.runs() {
            for visible in visible_runs(delivery.page(), run.clone(), self.system_visible) {
                self.ready.push_back(encoded.range(visible));
            }
        }
    }
}

/// What a subscription delivered: a shared live page (the embedded store) or one
/// event (PostgreSQL).
enum Delivered {
    Page(Delivery),
    One(RecordedEvent),
}

/// The next delivery of `subscription`; `None` once the store is closed. Cancel-safe.
async fn next_events(subscription: &mut BackendSubscription) -> Option<Delivered> {
    match subscription {
        BackendSubscription::Embedded(subscription) => {
            subscription.next_delivery().await.ok().map(Delivered::Page)
        }
        BackendSubscription::Postgres(subscription) => {
            subscription.next().await.ok().map(Delivered::One)
        }
    }
}

/// The parts of `run` (indices into `page`) the client may see: all of it, or the
/// stretches between system events.
fn visible_runs(
    page: &EventPage,
    run: std::ops::Range<usize>,
    system_visible: bool,
) -> Vec<std::ops::Range<usize>> {
    if system_visible {
        return vec![run];
    }
    let events = page.events();
    let mut visible = Vec::new();
    let mut start = run.start;
    for i in run.clone() {
        if is_system_type(&events[i].stream.aggregate_type) {
            if start < i {
                visible.push(start..i);
            }
            start = i + 1;
        }
    }
    if start < run.end {
        visible.push(start..run.end);
    }
    visible
}

/// An event as an SSE message: `id: <position>`, its JSON on `data:` lines, a blank line.
/// The JSON is [`log_event`]'s, written from the event as it is (catch-up pages are
/// encoded once per subscriber, so this is on the catch-up's path).
pub struct SseEncoder;

impl EventEncoder for SseEncoder {
    fn encode(event: &RecordedEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(event.position.to_string().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let start = out.len();
        match serde_json::from_slice::<&RawValue>(&event.data) {
            Ok(data) => serde_json::to_writer(&mut *out, &EventJson::of(event, data)),
            // Not JSON (the store takes only JSON): as the other reads show it.
            Err(_) => serde_json::to_writer(&mut *out, &log_event(event.clone())),
        }
        .expect("events serialise");
        if out[start..]
            .iter()
            .any(|byte| matches!(byte, b'\n' | b'\r'))
        {
            let json = out.split_off(start);
            out.truncate(start - b"data: ".len());
            data_lines(&json, out);
        } else {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

/// JSON with line breaks (stored data is raw JSON and may hold some) as `data:` lines:
/// each line of a message needs its own (the client joins them with a newline, which
/// JSON reads as whitespace).
fn data_lines(json: &[u8], out: &mut Vec<u8>) {
    for line in json.split(|byte| matches!(byte, b'\n' | b'\r')) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// [`EventBody`](super::commands::EventBody) borrowed from a stored event: the same
/// fields in the same order, so the same JSON, without copying the event.
#[derive(Serialize)]
struct EventJson<'a> {
    position: GlobalPosition,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: StreamVersion,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: SchemaVersion,
    timestamp_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<&'a str>,
    data: &'a RawValue,
}

impl<'a> EventJson<'a> {
    fn of(event: &'a RecordedEvent, data: &'a RawValue) -> EventJson<'a> {
        EventJson {
            position: event.position,
            aggregate_type: &event.stream.aggregate_type,
            aggregate_id: &event.stream.aggregate_id,
            version: event.version,
            event_type: &event.name,
            schema_version: event.schema_version,
            timestamp_ms: event.timestamp_ms,
            command_id: event.command_id.as_deref(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_runtime::tally_store::StreamId;

    fn event(data: &str, command_id: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            position: GlobalPosition::new(41),
            stream: StreamId::new("bank-account", "a\"b"),
            version: StreamVersion::new(3),
            name: "MoneyDeposited".into(),
            schema_version: SchemaVersion::new(2),
            timestamp_ms: 1_700_000_000_000,
            data: data.to_owned().into(),
            metadata: Default::default(),
            command_id: command_id.map(str::to_owned),
            correlation_id: None,
            causation_id: None,
        }
    }

    fn encoded(event: &RecordedEvent) -> String {
        let mut out = Vec::new();
        SseEncoder::encode(event, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_message_carries_the_same_json_as_the_other_reads() {
        for event in [event(r#"{"amount":5}"#, Some("c-1")), event("[1, 2]", None)] {
            let json = serde_json::to_string(&log_event(event.clone())).unwrap();
            assert_eq!(encoded(&event), format!("id: 41\ndata: {json}\n\n"));
        }
    }

    #[test]
    fn line_breaks_in_the_data_become_data_lines() {
        let message = encoded(&event("{\"amount\":\r\n5}", None));
        assert!(message.starts_with("id: 41\ndata: {"), "{message}");
        assert!(
            message.contains("\"amount\":\ndata: \ndata: 5}"),
            "{message}"
        );
        assert!(message.ends_with("}\n\n"), "{message}");
        assert_eq!(message.matches("\n\n").count(), 1, "one message: {message}");
    }
}
