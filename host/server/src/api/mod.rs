//! The HTTP API under `/v1`, health and readiness, metrics and the OpenAPI document.
//!
//! Handlers are grouped by resource: [`commands`], [`queries`], [`stream`] (Server-Sent
//! Events), [`plugins`] (admin). Shared pieces: [`AppState`], the [`error::ApiError`]
//! answer, and the [`input`] extractors that validate bodies and path ids.

pub mod commands;
pub mod error;
pub mod input;
pub mod plugins;
pub mod queries;
pub mod stream;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tally_runtime::Runtime;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::metrics::Metrics;
use error::ApiError;

/// Limits of the API, each configurable (`tally serve --help`).
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body (commands), bytes.
    pub max_body_bytes: usize,
    /// Largest plugin upload, bytes.
    pub max_plugin_bytes: usize,
    /// Most events or ids one page returns.
    pub max_page: usize,
    /// Longest aggregate type or id in a path, bytes.
    pub max_id_len: usize,
    /// Time a client has to send a request's headers; the connection is closed
    /// after it (also an idle keep-alive connection's time to its next request).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once the handler reads it;
    /// answered 408 after it.
    pub body_read_timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_body_bytes: 1 << 20,
            max_plugin_bytes: 64 << 20,
            max_page: 1_000,
            max_id_len: 256,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    runtime: OnceLock<Runtime>,
    metrics: Metrics,
    admin_token: Option<String>,
    limits: ApiLimits,
    shutdown: CancellationToken,
}

impl AppState {
    /// State for a service whose runtime is set once recovery is done.
    pub fn new(
        metrics: Metrics,
        admin_token: Option<String>,
        limits: ApiLimits,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            inner: Arc::new(StateInner {
                runtime: OnceLock::new(),
                metrics,
                admin_token,
                limits,
                shutdown,
            }),
        }
    }

    /// Sets the runtime: the service is ready.
    pub fn set_runtime(&self, runtime: Runtime) {
        let _ = self.inner.runtime.set(runtime);
    }

    /// The runtime, or 503 `starting` while recovering.
    pub fn runtime(&self) -> Result<&Runtime, ApiError> {
        self.inner.runtime.get().ok_or_else(ApiError::starting)
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The limits.
    pub fn limits(&self) -> &ApiLimits {
        &self.inner.limits
    }

    /// Cancelled when the service shuts down (ends live streams).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The runtime for an admin request: 401 without the configured token (when one is
    /// set), else as [`runtime`](AppState::runtime).
    pub fn admin_runtime(&self, headers: &axum::http::HeaderMap) -> Result<&Runtime, ApiError> {
        self.check_admin(headers)?;
        self.runtime()
    }

    /// Refuses an admin request without the configured token (when one is set).
    pub fn check_admin(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.inner.admin_token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The OpenAPI document of the API, generated from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tally",
        description = "Event sourcing with domain logic in WebAssembly plugins: commands, \
                       state, events, a live event stream and plugin administration."
    ),
    paths(
        commands::execute,
        queries::state,
        queries::aggregates,
        queries::aggregate_events,
        queries::all_events,
        stream::subscribe,
        plugins::install,
        plugins::list,
        plugins::activate,
        plugins::rollback,
        healthz,
        readyz,
        metrics_text,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the admin token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    let plugin_routes = Router::new()
        .route("/v1/plugins", post(plugins::install).get(plugins::list))
        .route(
            "/v1/plugins/{aggregate_type}/activate",
            post(plugins::activate),
        )
        .route(
            "/v1/plugins/{aggregate_type}/rollback",
            post(plugins::rollback),
        )
        .layer(DefaultBodyLimit::max(limits.max_plugin_bytes));
    Router::new()
        .route(
            "/v1/aggregates/{aggregate_type}/{aggregate_id}/commands",
            post(commands::execute),
        )
        .route(
            "/v1/aggregates/{aggregate_type}/{aggregate_id}",
            get(queries::state),
        )
        .route("/v1/aggregates/{aggregate_type}", get(queries::aggregates))
        .route(
            "/v1/aggregates/{aggregate_type}/{aggregate_id}/events",
            get(queries::aggregate_events),
        )
        .route("/v1/events", get(queries::all_events))
        .route("/v1/subscribe", get(stream::subscribe))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .merge(plugin_routes)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /openapi.json")
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: recovery is done and commands are served.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "Still recovering, or shutting down", body = error::ErrorBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.runtime()?;
    if state.shutdown().is_cancelled() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the service is shutting down",
        ));
    }
    Ok("ready\n")
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    let runtime = state.runtime().ok();
    match state.metrics().render(runtime) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error).into_response()
        }
    }
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
