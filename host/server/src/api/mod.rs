//! The HTTP API under `/v1`, health and readiness, metrics and the OpenAPI document.
//!
//! Handlers are grouped by resource: [`commands`], [`queries`], [`stream`] (Server-Sent
//! Events), [`plugins`] (admin: aggregate plugins and projections), [`projections`]
//! (the read side). Shared pieces: [`AppState`], the [`error::ApiError`]
//! answer, and the [`input`] extractors that validate bodies and path ids.

pub mod auth;
pub mod commands;
pub mod error;
pub mod input;
pub mod plugins;
pub mod projections;
pub mod queries;
pub mod stream;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tally_projections::Projections;
use tally_runtime::Runtime;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::metrics::Metrics;
use auth::AdminToken;
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
    /// Most live event streams (`/v1/subscribe`) open at once; more are answered 503
    /// `too-many-subscribers`.
    pub max_subscribers: usize,
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
            max_subscribers: 10_000,
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
    projections: OnceLock<Projections>,
    metrics: Metrics,
    admin_token: Option<AdminToken>,
    limits: ApiLimits,
    shutdown: CancellationToken,
    subscriber_slots: stream::SubscriberSlots,
    install_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// State for a service whose runtime is set once recovery is done.
    pub fn new(
        metrics: Metrics,
        admin_token: Option<AdminToken>,
        limits: ApiLimits,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            inner: Arc::new(StateInner {
                runtime: OnceLock::new(),
                projections: OnceLock::new(),
                metrics,
                admin_token,
                subscriber_slots: stream::SubscriberSlots::new(limits.max_subscribers),
                limits,
                shutdown,
                install_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Sets the runtime: the service is ready.
    pub fn set_runtime(&self, runtime: Runtime) {
        let _ = self.inner.runtime.set(runtime);
    }

    /// Sets the projections, started once the runtime is open.
    pub fn set_projections(&self, projections: Projections) {
        let _ = self.inner.projections.set(projections);
    }

    /// The projections, or 503 `starting` while recovering.
    pub fn projections(&self) -> Result<&Projections, ApiError> {
        self.inner.projections.get().ok_or_else(ApiError::starting)
    }

    /// The runtime, or 503 `starting` while recovering.
    pub fn runtime(&self) -> Result<&Runtime, ApiError> {
        self.inner.runtime.get().ok_or_else(ApiError::starting)
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The places for live event streams (`ApiLimits::max_subscribers`).
    pub fn subscriber_slots(&self) -> &stream::SubscriberSlots {
        &self.inner.subscriber_slots
    }

    /// Held by an upload while it checks the component's name and installs it, so
    /// that an aggregate plugin and a projection of one name cannot both get in.
    pub fn install_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.install_lock
    }

    /// The limits.
    pub fn limits(&self) -> &ApiLimits {
        &self.inner.limits
    }

    /// Cancelled when the service shuts down (ends live streams).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Whether the request carries the admin token, or no token is configured (then every
    /// caller is admin). Admin callers also see the system streams (`$tally-plugins`).
    pub fn is_admin(&self, headers: &axum::http::HeaderMap) -> bool {
        self.check_admin(headers).is_ok()
    }

    /// Refuses an admin request without the configured token (when one is set).
    pub fn check_admin(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.inner.admin_token else {
            return Ok(());
        };
        match auth::bearer_token(headers) {
            Some(given) if token.matches(given) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
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
        projections::list,
        projections::document,
        projections::table,
        projections::rebuild,
        projections::retry,
        projections::skip,
        stream::subscribe,
        plugins::install,
        plugins::list,
        plugins::activate,
        plugins::rollback,
        healthz,
        readyz,
        metrics_text,
        openapi,
    ),
    // Schemas referenced only from query parameters are not collected by themselves.
    components(schemas(error::ErrorBody, queries::ViewParam)),
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
        .route("/v1/projections/{name}/rebuild", post(projections::rebuild))
        .route("/v1/projections/{name}/retry", post(projections::retry))
        .route("/v1/projections/{name}/skip", post(projections::skip))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
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
        .route("/v1/projections", get(projections::list))
        .route("/v1/projections/{name}/{table}", get(projections::table))
        .route(
            "/v1/projections/{name}/{table}/{key}",
            get(projections::document),
        )
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .merge(plugin_routes)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        // Both fallbacks answer in the JSON error shape, as every other error does; the
        // 405 one applies to the routes above, so it stays after the last of them.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /openapi.json")
}

/// A known path asked with a method it does not have. The router adds the `Allow`
/// header, listing the methods it has.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{method} is not allowed on {}; the Allow header lists the methods that are",
            uri.path()
        ),
    )
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: recovery is done and commands are served.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
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
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 500, description = "The metrics could not be rendered (`internal`)", body = error::ErrorBody),
    )
)]
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

/// This document: the API in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
