//! Plugin administration: upload, list, activate, roll back. Every endpoint needs
//! the admin token when one is configured.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tally_projections::ProjectionError;
use tally_runtime::{
    ActivateOptions, Activation, ActivationReport, GlobalPosition, InstallError, InstallOptions,
    InstallReport, PluginError, PluginStatus,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::input::{
    AggregatePath, QueryParams, TypeParams, body_bytes, check_media_type, check_type,
};
use super::projections::{ProjectionBody, projection_body};

/// How an uploaded component is installed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstallQuery {
    /// Activate it once installed (default false).
    pub activate: Option<bool>,
    /// When activating: fold every stream under it first (default true).
    pub verify: Option<bool>,
    /// Install a version not newer than the active one; switch despite unknown schemas.
    pub force: Option<bool>,
    /// Refuse the component unless it describes this aggregate type.
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
    /// The projection and its status (a projection: it builds its read model in the
    /// background and, if an older version is active, takes over once caught up).
    pub projection: Option<ProjectionBody>,
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
    let options = InstallOptions {
        aggregate_type: query.aggregate_type,
        activate: query.activate.unwrap_or(false),
        force: query.force.unwrap_or(false),
        skip_verify: !query.verify.unwrap_or(true),
    };
    let report = match runtime.install_plugin(bytes.to_vec(), options).await {
        Err(PluginError::Install(InstallError::WrongWorld(aggregate_world))) => {
            return install_projection(&state, &bytes, aggregate_world);
        }
        report => report?,
    };
    let InstallReport {
        installed,
        already_installed,
        activation,
    } = report;
    Ok(Json(InstallResponse {
        kind: PluginKind::Aggregate,
        installed: Some(version_body(&installed)),
        already_installed,
        activation: activation.map(activation_response),
        projection: None,
    }))
}

/// Installs a component that is not an aggregate plugin as a projection; if it is not
/// a projection either, the answer says what each world lacks.
fn install_projection(
    state: &AppState,
    bytes: &[u8],
    aggregate_world: String,
) -> Result<Json<InstallResponse>, ApiError> {
    let projections = state.projections()?;
    let info = match projections.install(bytes) {
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
    let status = projections
        .list()
        .into_iter()
        .find(|status| status.info.name == info.name)
        .expect("an installed projection is listed");
    Ok(Json(InstallResponse {
        kind: PluginKind::Projection,
        installed: None,
        already_installed: false,
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
    /// Fold every stream under the target first (default true).
    pub verify: Option<bool>,
    /// Switch even when stored events have schemas the target does not know.
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

/// Activates an installed version (after verifying it, by default).
#[utoipa::path(
    post,
    path = "/v1/plugins/{aggregate_type}/activate",
    params(TypeParams, ActivateQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ActivationResponse),
        (status = 400, description = "No or bad version, bad type (`invalid-aggregate-type`) or query (`bad-request`)", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "Unknown type or version", body = ErrorBody),
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
) -> Result<Json<ActivationResponse>, ApiError> {
    let runtime = state.runtime()?;
    let version = query
        .version
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("give the version to activate: ?version=2.0.0"))?;
    let report = runtime
        .activate(&path.aggregate_type, version, query.options())
        .await?;
    Ok(Json(activation_response(report)))
}

/// Returns to the version active before the current one.
#[utoipa::path(
    post,
    path = "/v1/plugins/{aggregate_type}/rollback",
    params(TypeParams, ActivateQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ActivationResponse),
        (status = 400, description = "A version given, bad type (`invalid-aggregate-type`) or query (`bad-request`)", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "Unknown type", body = ErrorBody),
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
) -> Result<Json<ActivationResponse>, ApiError> {
    let runtime = state.runtime()?;
    if query.version.is_some() {
        return Err(ApiError::bad_request(
            "rollback takes no version: it returns to the previous one",
        ));
    }
    let report = runtime
        .rollback(&path.aggregate_type, query.options())
        .await?;
    Ok(Json(activation_response(report)))
}
