//! Plugin administration: upload, list, activate, roll back. Every endpoint needs
//! the admin token when one is configured.
//!
//! Aggregate plugins and projections go through the same routes: an uploaded component
//! is installed as whichever it is, and `/v1/plugins/{name}/activate` and `rollback`
//! switch the versions of the aggregate type or the projection of that name. The two
//! share one namespace, so a name is never both: installing a projection named like an
//! aggregate type, or an aggregate plugin whose type is a projection's name, is refused
//! (409 `name-taken`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tally_projections::{ProjectionError, ProjectionInstallOptions};
use tally_runtime::{
    ActivateOptions, Activation, ActivationReport, GlobalPosition, InstallError, InstallOptions,
    InstallReport, LoadedPlugin, PluginStatus,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::input::{AggregatePath, QueryParams, body_bytes, check_media_type, check_type};
use super::projections::{ProjectionBody, projection_body};

/// How an uploaded component is installed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstallQuery {
    /// Activate it once installed (default false). A projection's first version is
    /// active at once anyway; a later one is built beside the active one and becomes
    /// active once it has caught up.
    pub activate: Option<bool>,
    /// When activating an aggregate plugin: fold every stream under it first (default
    /// true).
    pub verify: Option<bool>,
    /// Install a version not newer than the active one; switch despite unknown schemas
    /// (aggregate plugins).
    pub force: Option<bool>,
    /// Refuse the component unless it describes this aggregate type (aggregate
    /// plugins).
    pub aggregate_type: Option<String>,
}

/// An installed plugin version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginVersionBody {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The version.
    pub version: String,
    /// One sentence from the plugin.
    pub description: String,
    /// Commands it handles.
    pub commands: Vec<String>,
    /// Events with their current schema versions.
    pub events: Vec<EventSchemaBody>,
    /// The plugin contract version the host uses with it: `1.1.0` (commands in one
    /// `decide` call) or `1.0.0` (`handle` then `apply`).
    pub contract: String,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// Component size in bytes.
    pub size: u64,
    /// When it was installed, ms since the Unix epoch.
    pub installed_at_ms: u64,
}

/// An event name and schema version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventSchemaBody {
    /// Event name.
    pub name: String,
    /// Schema version.
    pub version: u32,
}

/// One activation or rollback.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivationBody {
    /// The version that became active.
    pub version: String,
    /// The version active before.
    pub previous: Option<String>,
    /// Position of the activation record in the log.
    #[schema(value_type = u64)]
    pub position: GlobalPosition,
    /// When, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// A rollback.
    pub rollback: bool,
    /// Checks were skipped with `force`.
    pub forced: bool,
    /// Streams folded by the verification (absent: skipped).
    pub verified_streams: Option<u64>,
}

/// The result of an activation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivationResponse {
    /// The activation as recorded.
    pub activation: ActivationBody,
    /// Events folded by the verification.
    pub verified_events: u64,
    /// Verification time, ms.
    pub verify_ms: u64,
}

/// The result of an upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstallResponse {
    /// What the component is: an aggregate plugin or a projection.
    pub kind: PluginKind,
    /// The installed version (an aggregate plugin).
    pub installed: Option<PluginVersionBody>,
    /// The same component was installed already.
    pub already_installed: bool,
    /// The activation, when asked for (an aggregate plugin).
    pub activation: Option<ActivationResponse>,
    /// The projection and its status (a projection: a first version is active at
    /// once and catches up; a later one, when activated, builds its read model in the
    /// background, shown in `building`, and takes over once caught up).
    pub projection: Option<ProjectionBody>,
}

/// The answer of an activation or a rollback: an aggregate plugin's activation, done,
/// or a projection's status with the build that will make the version active.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SwitchResponse {
    /// An aggregate plugin: the activation as recorded.
    Aggregate(ActivationResponse),
    /// A projection: the build under way.
    Projection(Box<ProjectionSwitchResponse>),
}

/// A projection's activation or rollback: the version is active once its read model
/// has caught up (`projection.building`); nothing is built when it is active already.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectionSwitchResponse {
    /// Always `projection`.
    pub kind: PluginKind,
    /// The projection's status.
    pub projection: ProjectionBody,
}

/// The two kinds of plugin a component can be.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// `tally:aggregate/plugin`: an aggregate type's commands, events and upcasters.
    Aggregate,
    /// `tally:projection/plugin`: a read model folded from events.
    Projection,
}

/// The plugins of one aggregate type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginTypeBody {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The active version.
    pub active: Option<String>,
    /// Installed versions, oldest first.
    pub installed: Vec<PluginVersionBody>,
    /// Activations and rollbacks, oldest first.
    pub history: Vec<ActivationBody>,
}

/// Every aggregate type's plugins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginsResponse {
    /// By aggregate type.
    pub plugins: Vec<PluginTypeBody>,
}

fn version_body(installed: &tally_runtime::InstalledPlugin) -> PluginVersionBody {
    let info = &installed.info;
    PluginVersionBody {
        aggregate_type: info.aggregate_type.clone(),
        version: info.version.to_string(),
        description: info.description.clone(),
        commands: info.commands.clone(),
        events: info
            .events
            .iter()
            .map(|event| EventSchemaBody {
                name: event.name.clone(),
                version: event.version,
            })
            .collect(),
        contract: installed.contract.to_string(),
        sha256: installed.sha256.clone(),
        size: installed.size,
        installed_at_ms: installed.installed_at_ms,
    }
}

fn activation_body(activation: Activation) -> ActivationBody {
    ActivationBody {
        version: activation.version.to_string(),
        previous: activation.previous.map(|version| version.to_string()),
        position: activation.position,
        timestamp_ms: activation.timestamp_ms,
        rollback: activation.rollback,
        forced: activation.forced,
        verified_streams: activation.verified_streams,
    }
}

fn activation_response(report: ActivationReport) -> ActivationResponse {
    ActivationResponse {
        activation: activation_body(report.activation),
        verified_events: report.verified_events,
        verify_ms: report.verify_ms,
    }
}

fn type_body(status: PluginStatus) -> PluginTypeBody {
    PluginTypeBody {
        aggregate_type: status.aggregate_type,
        active: status.active.map(|version| version.to_string()),
        installed: status.installed.iter().map(version_body).collect(),
        history: status.history.into_iter().map(activation_body).collect(),
    }
}

/// The media types a plugin upload may be sent as (or with no `Content-Type` at all):
/// `application/wasm`, what `tally plugin install` and the README send, or the generic
/// `application/octet-stream`.
pub const COMPONENT_MEDIA_TYPES: [&str; 2] = ["application/wasm", "application/octet-stream"];

/// A plugin component: the bytes of a `.wasm` file, sent as they are.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ComponentBytes(pub Vec<u8>);

/// Uploads a plugin component (the body: the `.wasm` bytes), optionally activating
/// it. Commands keep flowing during the install and the swap.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    params(InstallQuery),
    request_body(
        description = "The component's bytes",
        content(
            (inline(ComponentBytes) = "application/wasm"),
            (inline(ComponentBytes) = "application/octet-stream"),
        ),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = InstallResponse),
        (status = 400, description = "Not a plugin component (`not-wasm`, `not-a-component`, `wrong-world`, `aggregate-type-mismatch`, ...) or a bad query (`bad-request`, `invalid-aggregate-type`)", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time (`request-timeout`)", body = ErrorBody),
        (status = 409, description = "`version-not-newer`, `version-exists`, `unknown-schema`", body = ErrorBody),
        (status = 413, description = "The component is larger than the upload limit (`body-too-large`)", body = ErrorBody),
        (status = 415, description = "A `Content-Type` other than `application/wasm` or `application/octet-stream` (`unsupported-media-type`)", body = ErrorBody),
        (status = 422, description = "`verification-failed`: a stream does not fold under the new version", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `storage-full`", body = ErrorBody),
    )
)]
pub async fn install(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<InstallQuery>,
    request: Request,
) -> Result<Json<InstallResponse>, ApiError> {
    let runtime = state.runtime()?.clone();
    if let Some(aggregate_type) = &query.aggregate_type {
        check_type(aggregate_type)?;
    }
    check_media_type(request.headers(), &COMPONENT_MEDIA_TYPES)?;
    let bytes = body_bytes(request, &state).await?;
    // One install at a time, so that the name checks below cannot race.
    let _installing = state.install_lock().lock().await;
    let engine = runtime.engine().clone();
    let component = bytes.clone();
    let described = tokio::task::spawn_blocking(move || {
        LoadedPlugin::load(&engine, &component).map(|plugin| plugin.info().aggregate_type.clone())
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })?;
    match described {
        Err(InstallError::WrongWorld(aggregate_world)) => {
            return install_projection(&state, &bytes, aggregate_world, &query).await;
        }
        Ok(aggregate_type) if state.projections()?.contains(&aggregate_type) => {
            return Err(name_taken(&aggregate_type));
        }
        // Anything else is the runtime's to report.
        _ => {}
    }
    let options = InstallOptions {
        aggregate_type: query.aggregate_type,
        activate: query.activate.unwrap_or(false),
        force: query.force.unwrap_or(false),
        skip_verify: !query.verify.unwrap_or(true),
    };
    let InstallReport {
        installed,
        already_installed,
        activation,
    } = runtime.install_plugin(bytes.to_vec(), options).await?;
    Ok(Json(InstallResponse {
        kind: PluginKind::Aggregate,
        installed: Some(version_body(&installed)),
        already_installed,
        activation: activation.map(activation_response),
        projection: None,
    }))
}

/// 409 `name-taken`: an aggregate plugin whose type is a projection's name.
fn name_taken(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "name-taken",
        format!(
            "{name:?} is the name of a projection; an aggregate type cannot have it \
             (aggregate types and projections share one namespace)"
        ),
    )
}

/// Installs a component that is not an aggregate plugin as a projection; if it is not
/// a projection either, the answer says what each world lacks.
async fn install_projection(
    state: &AppState,
    bytes: &[u8],
    aggregate_world: String,
    query: &InstallQuery,
) -> Result<Json<InstallResponse>, ApiError> {
    let projections = state.projections()?;
    let options = ProjectionInstallOptions {
        activate: query.activate.unwrap_or(false),
        force: query.force.unwrap_or(false),
    };
    let installed = match projections.install_with(bytes, options).await {
        Err(ProjectionError::Install(InstallError::NotAProjection(projection_world))) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "wrong-world",
                format!(
                    "neither an aggregate plugin ({aggregate_world}) nor a projection \
                     ({projection_world})"
                ),
            ));
        }
        installed => installed?,
    };
    let status = projections.status(&installed.info.name)?;
    Ok(Json(InstallResponse {
        kind: PluginKind::Projection,
        installed: None,
        already_installed: installed.already_installed,
        activation: None,
        projection: Some(projection_body(status)),
    }))
}

/// Installed plugin versions, the active one and the activation history, by type.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = PluginsResponse),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 503, description = "`starting`", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<PluginsResponse>, ApiError> {
    let runtime = state.runtime()?;
    Ok(Json(PluginsResponse {
        plugins: runtime.plugins().into_iter().map(type_body).collect(),
    }))
}

/// How to switch versions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivateQuery {
    /// The version to activate (activate only).
    pub version: Option<String>,
    /// Fold every stream under the target first (default true; aggregate plugins).
    pub verify: Option<bool>,
    /// Switch even when stored events have schemas the target does not know
    /// (aggregate plugins).
    pub force: Option<bool>,
}

impl ActivateQuery {
    fn options(&self) -> ActivateOptions {
        ActivateOptions {
            skip_verify: !self.verify.unwrap_or(true),
            force: self.force.unwrap_or(false),
        }
    }
}

/// Activates an installed version. An aggregate plugin's is verified first (by
/// default) and active when the answer comes. A projection's is built beside the active
/// one (from its kept read model if it was the previously active version, else from
/// the start of the log) and becomes active once it has caught up: the answer shows the
/// build, `GET /v1/projections` its progress.
#[utoipa::path(
    post,
    path = "/v1/plugins/{aggregate_type}/activate",
    params(
        ("aggregate_type" = String, Path, description = "The aggregate type or projection name: kebab-case, at most 64 bytes", pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64, example = "bank-account"),
        ActivateQuery,
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SwitchResponse),
        (status = 400, description = "No or bad version, bad type (`invalid-aggregate-type`) or query (`bad-request`)", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "Unknown type, projection or version", body = ErrorBody),
        (status = 409, description = "`unknown-schema`", body = ErrorBody),
        (status = 422, description = "`verification-failed`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `storage-full`", body = ErrorBody),
    )
)]
pub async fn activate(
    State(state): State<AppState>,
    path: AggregatePath,
    QueryParams(query): QueryParams<ActivateQuery>,
) -> Result<Json<SwitchResponse>, ApiError> {
    let runtime = state.runtime()?;
    let version = query
        .version
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("give the version to activate: ?version=2.0.0"))?;
    let projections = state.projections()?;
    if projections.contains(&path.aggregate_type) {
        let status = projections.activate(&path.aggregate_type, version).await?;
        return Ok(Json(projection_switch(status)));
    }
    let report = runtime
        .activate(&path.aggregate_type, version, query.options())
        .await?;
    Ok(Json(SwitchResponse::Aggregate(activation_response(report))))
}

/// Returns to the version active before the current one: for a projection, the way
/// `activate` does, from the previous version's kept read model.
#[utoipa::path(
    post,
    path = "/v1/plugins/{aggregate_type}/rollback",
    params(
        ("aggregate_type" = String, Path, description = "The aggregate type or projection name: kebab-case, at most 64 bytes", pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64, example = "bank-account"),
        ActivateQuery,
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SwitchResponse),
        (status = 400, description = "A version given, bad type (`invalid-aggregate-type`) or query (`bad-request`)", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "Unknown type or projection", body = ErrorBody),
        (status = 409, description = "`unknown-schema` or `nothing-to-roll-back`", body = ErrorBody),
        (status = 422, description = "`verification-failed`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "`starting`, `shutting-down`, `storage-full`", body = ErrorBody),
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    path: AggregatePath,
    QueryParams(query): QueryParams<ActivateQuery>,
) -> Result<Json<SwitchResponse>, ApiError> {
    let runtime = state.runtime()?;
    if query.version.is_some() {
        return Err(ApiError::bad_request(
            "rollback takes no version: it returns to the previous one",
        ));
    }
    let projections = state.projections()?;
    if projections.contains(&path.aggregate_type) {
        let status = projections.rollback(&path.aggregate_type).await?;
        return Ok(Json(projection_switch(status)));
    }
    let report = runtime
        .rollback(&path.aggregate_type, query.options())
        .await?;
    Ok(Json(SwitchResponse::Aggregate(activation_response(report))))
}

fn projection_switch(status: tally_projections::ProjectionStatus) -> SwitchResponse {
    SwitchResponse::Projection(Box::new(ProjectionSwitchResponse {
        kind: PluginKind::Projection,
        projection: projection_body(status),
    }))
}
