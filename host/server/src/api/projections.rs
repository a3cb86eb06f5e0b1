//! The read side: projections' status, their documents, and the admin actions on one:
//! `rebuild`, and `retry`/`skip` of a faulted one. Projections are installed,
//! activated and rolled back through the plugin routes (`POST /v1/plugins`,
//! `/v1/plugins/{name}/activate` and `rollback`), which tell a projection from an
//! aggregate plugin by its name (aggregate types and projections share one namespace).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tally_projections::{BuildStatus, Progress, ProjectionError, ProjectionStatus, Throughput};
use tally_runtime::GlobalPosition;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::commands::raw_json;
use super::error::{ApiError, ErrorBody, install_code};
use super::input::QueryParams;
use super::queries::page_limit;

/// Every projection with where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionsResponse {
    /// By name.
    pub projections: Vec<ProjectionBody>,
}

/// One projection's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectionBody {
    /// Its name.
    pub name: String,
    /// The active version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// The aggregate types it reads.
    pub aggregate_types: Vec<String>,
    /// The tables of its read model.
    pub tables: Vec<String>,
    /// `catching-up`, `live`, `faulted` or `stopped`.
    pub state: String,
    /// The next position it will apply: every event before it is in its documents.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
    /// Events in the log it has not reached.
    pub lag_events: u64,
    /// While it is behind, how old the last event it applied is, in ms (0 once caught
    /// up; absent while behind with nothing applied since the service started).
    pub lag_ms: Option<u64>,
    /// Events it applied since the service started.
    pub applied_events: u64,
    /// Events of the log per second it went through lately (absent for a moment after
    /// it starts).
    pub events_per_second: Option<f64>,
    /// Estimated ms until it has caught up at that pace (0 once caught up; absent while
    /// the pace is unknown or zero).
    pub eta_ms: Option<u64>,
    /// Its read model's generation: each build of a read model makes a new one.
    pub generation: u64,
    /// The installed versions, oldest first.
    pub installed: Vec<String>,
    /// The version active before this one, whose read model is kept: what `rollback`
    /// returns to.
    pub previous: Option<String>,
    /// The event it failed on, when faulted.
    pub fault: Option<FaultBody>,
    /// A version building its read model beside the active one (blue/green), if any.
    pub building: Option<BuildingBody>,
}

/// The event a projection failed on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FaultBody {
    /// Its position.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
    /// Its aggregate and name.
    pub event: String,
    /// What failed.
    pub message: String,
    /// Times it failed on this event since the service started (each `retry` that
    /// fails again adds one).
    pub attempts: u32,
}

/// A version being built beside the active one: it becomes active once it has caught
/// up.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BuildingBody {
    /// Its version.
    pub version: String,
    /// Why: `activate`, `rollback` or `rebuild`.
    pub reason: String,
    /// Its read model's generation.
    pub generation: u64,
    /// Its state: `catching-up`, `live` (about to become active), `faulted` (see
    /// `fault`; `retry` and `skip` apply to it while the active version is not
    /// faulted) or `stopped`.
    pub state: String,
    /// The next position it will apply.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
    /// Events of the log it went through since the build started (or resumed).
    pub events_done: u64,
    /// Events in the log it has not reached: `events_done + lag_events` is the whole
    /// build.
    pub lag_events: u64,
    /// Events per second it went through lately (absent for a moment after it starts).
    pub events_per_second: Option<f64>,
    /// Estimated ms until it has caught up at that pace (absent while the pace is
    /// unknown or zero).
    pub eta_ms: Option<u64>,
    /// The event it failed on, when faulted.
    pub fault: Option<FaultBody>,
}

fn fault_body(progress: &Progress) -> Option<FaultBody> {
    progress.fault.as_ref().map(|fault| FaultBody {
        position: fault.position,
        event: fault.event.clone(),
        message: fault.message.clone(),
        attempts: fault.attempts,
    })
}

/// A projection's status as the API shows it.
pub fn projection_body(status: ProjectionStatus) -> ProjectionBody {
    let info = status.info;
    ProjectionBody {
        name: info.name,
        version: info.version.to_string(),
        description: info.description,
        aggregate_types: info.aggregate_types,
        tables: info.tables,
        state: status.progress.state.as_str().to_owned(),
        position: status.progress.checkpoint,
        lag_events: status.lag_events,
        lag_ms: status.lag_ms,
        applied_events: status.progress.applied,
        events_per_second: events_per_second(&status.throughput),
        eta_ms: eta_ms(&status.throughput),
        generation: status.generation,
        installed: status
            .installed
            .iter()
            .map(|version| version.to_string())
            .collect(),
        previous: status.previous.map(|version| version.to_string()),
        fault: fault_body(&status.progress),
        building: status.building.map(building_body),
    }
}

fn building_body(build: BuildStatus) -> BuildingBody {
    BuildingBody {
        version: build.version.to_string(),
        reason: build.reason.as_str().to_owned(),
        generation: build.generation,
        state: build.progress.state.as_str().to_owned(),
        position: build.progress.checkpoint,
        events_done: build.throughput.events_done,
        lag_events: build.lag_events,
        events_per_second: events_per_second(&build.throughput),
        eta_ms: eta_ms(&build.throughput),
        fault: fault_body(&build.progress),
    }
}

/// The pace, to one decimal.
fn events_per_second(throughput: &Throughput) -> Option<f64> {
    throughput
        .events_per_second
        .map(|rate| (rate * 10.0).round() / 10.0)
}

fn eta_ms(throughput: &Throughput) -> Option<u64> {
    throughput.eta.map(|eta| eta.as_millis() as u64)
}

/// The installed projections: version, state, position, lag, and a build in progress
/// with its pace and estimated time to catch up.
#[utoipa::path(
    get,
    path = "/v1/projections",
    responses(
        (status = 200, body = ProjectionsResponse),
        (status = 503, description = "Still recovering", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ProjectionsResponse>, ApiError> {
    let projections = state.projections()?;
    Ok(Json(ProjectionsResponse {
        projections: projections
            .list()
            .into_iter()
            .map(projection_body)
            .collect(),
    }))
}

/// Read your writes: the position a read must reflect.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    /// Wait (up to the service's limit) until the projection has applied every event
    /// before this position, e.g. a command's `position`; 503 `not-yet` if it does not
    /// in time (at once when it is faulted); 400 `position-beyond-log` for a position
    /// past the end of the log.
    #[param(value_type = Option<u64>)]
    pub min_position: Option<GlobalPosition>,
}

/// One document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    /// Its key.
    pub key: String,
    /// The document (JSON).
    #[schema(value_type = Object)]
    pub document: Box<RawValue>,
    /// The read model reflects every event before this position.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
}

/// A projection's table and a key in it.
#[derive(Debug, Deserialize)]
pub struct DocumentPath {
    name: String,
    table: String,
    key: String,
}

/// One document of a projection's table.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/{table}/{key}",
    params(
        ("name" = String, Path, description = "Projection name"),
        ("table" = String, Path, description = "Table"),
        ("key" = String, Path, description = "Document key"),
        DocumentQuery,
    ),
    responses(
        (status = 200, body = DocumentResponse),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Unknown projection, table or document", body = ErrorBody),
        (status = 503, description = "`not-yet`: the projection did not reach `min_position` in time (it lags, or it is faulted)", body = ErrorBody),
    )
)]
pub async fn document(
    State(state): State<AppState>,
    Path(path): Path<DocumentPath>,
    QueryParams(query): QueryParams<DocumentQuery>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let projections = state.projections()?;
    let (document, position) = projections
        .document(&path.name, &path.table, &path.key, query.min_position)
        .await?;
    let document = document.ok_or_else(|| {
        ApiError::not_found(format!(
            "projection {} has no document {:?} in table {}",
            path.name, path.key, path.table
        ))
    })?;
    Ok(Json(DocumentResponse {
        key: path.key,
        document: raw_json(&document),
        position,
    }))
}

/// Which documents of a table.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only keys after this one (the previous page's `next_after`).
    pub after: Option<String>,
    /// Most documents to return.
    pub limit: Option<usize>,
    /// As for one document: wait until every event before this position is applied.
    #[param(value_type = Option<u64>)]
    pub min_position: Option<GlobalPosition>,
}

/// A page of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableResponse {
    /// Documents in key order.
    pub documents: Vec<DocumentEntry>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<String>,
    /// The read model reflects every event before this position.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
}

/// A document with its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentEntry {
    /// Its key.
    pub key: String,
    /// The document (JSON).
    #[schema(value_type = Object)]
    pub document: Box<RawValue>,
}

/// A projection and one of its tables.
#[derive(Debug, Deserialize)]
pub struct TablePath {
    name: String,
    table: String,
}

/// Documents of a projection's table in key order, by pages.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/{table}",
    params(
        ("name" = String, Path, description = "Projection name"),
        ("table" = String, Path, description = "Table"),
        TableQuery,
    ),
    responses(
        (status = 200, body = TableResponse),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Unknown projection or table", body = ErrorBody),
        (status = 503, description = "`not-yet`: the projection did not reach `min_position` in time (it lags, or it is faulted)", body = ErrorBody),
    )
)]
pub async fn table(
    State(state): State<AppState>,
    Path(path): Path<TablePath>,
    QueryParams(query): QueryParams<TableQuery>,
) -> Result<Json<TableResponse>, ApiError> {
    let projections = state.projections()?;
    let limit = page_limit(&state, query.limit)?;
    let (page, position) = projections
        .page(
            &path.name,
            &path.table,
            query.prefix.as_deref().unwrap_or_default(),
            query.after.as_deref(),
            limit,
            query.min_position,
        )
        .await?;
    Ok(Json(TableResponse {
        documents: page
            .documents
            .into_iter()
            .map(|(key, document)| DocumentEntry {
                key,
                document: raw_json(&document),
            })
            .collect(),
        next_after: page.next_after,
        position,
    }))
}

/// A projection's name.
#[derive(Debug, Deserialize)]
pub struct NamePath {
    name: String,
}

/// Rebuilds the active version's read model from the start of the log, beside the one
/// serving (blue/green): queries keep being answered from the current read model until
/// the new one has caught up, then from the new one. The answer shows the build; its
/// progress is in `GET /v1/projections`. A rebuild already under way goes on.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/rebuild",
    params(("name" = String, Path, description = "Projection name")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "The build is under way", body = ProjectionBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`", body = ErrorBody),
    )
)]
pub async fn rebuild(
    State(state): State<AppState>,
    Path(path): Path<NamePath>,
) -> Result<(StatusCode, Json<ProjectionBody>), ApiError> {
    let status = state.projections()?.rebuild(&path.name).await?;
    Ok((StatusCode::ACCEPTED, Json(projection_body(status))))
}

/// Applies a faulted projection's failed event again (the active version's, or else
/// the build's).
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/retry",
    params(("name" = String, Path, description = "Projection name")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "The projection goes on from its failed event"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not-faulted`", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Path(path): Path<NamePath>,
) -> Result<StatusCode, ApiError> {
    state.projections()?.retry(&path.name).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Passes over a faulted projection's failed event (the active version's, or else the
/// build's; recorded in its read model).
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/skip",
    params(("name" = String, Path, description = "Projection name")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "The projection goes on after its failed event"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not-faulted`", body = ErrorBody),
    )
)]
pub async fn skip(
    State(state): State<AppState>,
    Path(path): Path<NamePath>,
) -> Result<StatusCode, ApiError> {
    state.projections()?.skip(&path.name).await?;
    Ok(StatusCode::ACCEPTED)
}

impl From<ProjectionError> for ApiError {
    fn from(error: ProjectionError) -> ApiError {
        let message = error.to_string();
        match error {
            ProjectionError::UnknownProjection(_) | ProjectionError::UnknownTable { .. } => {
                ApiError::not_found(message)
            }
            ProjectionError::Install(install) => {
                ApiError::new(StatusCode::BAD_REQUEST, install_code(&install), message)
            }
            ProjectionError::VersionNotNewer { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version-not-newer", message)
            }
            ProjectionError::VersionExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version-exists", message)
            }
            ProjectionError::UnknownVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown-version", message)
            }
            ProjectionError::NothingToRollBack(_) => {
                ApiError::new(StatusCode::CONFLICT, "nothing-to-roll-back", message)
            }
            ProjectionError::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "name-taken", message)
            }
            ProjectionError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", message)
            }
            ProjectionError::BeyondLog { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "position-beyond-log", message)
            }
            ProjectionError::NotFaulted(_) => {
                ApiError::new(StatusCode::CONFLICT, "not-faulted", message)
            }
            ProjectionError::NotYet { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-yet", message)
            }
            ProjectionError::Runtime(error) => error.into(),
            ProjectionError::Storage { .. } | ProjectionError::Io { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage-error", message)
            }
        }
    }
}
