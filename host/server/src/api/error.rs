//! [`ApiError`]: every error answer, as `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_runtime::tally_store::LogError;
use tally_runtime::{
    CallError, CommandError, InstallError, PluginError, RuntimeError, StreamVersion,
};
use utoipa::ToSchema;

/// An error answer: an HTTP status, a stable kebab-case code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable, machine-readable, kebab-case.
    pub code: String,
    /// For people.
    pub message: String,
    /// For `version-conflict`: the aggregate's actual version.
    pub actual_version: Option<StreamVersion>,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, kebab-case: e.g. `insufficient-funds`,
    /// `version-conflict`, `plugin-timeout`, `storage-full`.
    pub code: String,
    /// For people.
    pub message: String,
    /// For `version-conflict`: the aggregate's actual version.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub actual_version: Option<StreamVersion>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            actual_version: None,
        }
    }

    /// 400 `bad-request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    /// 404 `not-found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 503 `starting`: recovery has not finished.
    pub fn starting() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "the service is recovering its log; try again shortly",
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs `Authorization: Bearer <admin token>`",
        )
    }

    /// The outcome label of a command that failed this way, for metrics.
    pub fn outcome(&self) -> &'static str {
        match self.status.as_u16() {
            422 => "rejected",
            409 => "conflict",
            400..=499 => "invalid",
            503 => "unavailable",
            _ => "failed",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                actual_version: self.actual_version,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> ApiError {
        let message = error.to_string();
        match error {
            CommandError::UnknownAggregateType(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown-aggregate-type", message)
            }
            CommandError::Invalid(_) => ApiError::bad_request(message),
            CommandError::Rejected(rejection) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                &rejection.code,
                rejection.message,
            ),
            CommandError::WrongExpectedVersion { actual, .. } => ApiError {
                actual_version: Some(actual),
                ..ApiError::new(StatusCode::CONFLICT, "version-conflict", message)
            },
            CommandError::CommandIdReused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "command-id-reused", message)
            }
            CommandError::Plugin { error, .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                plugin_code(&error),
                message,
            ),
            CommandError::Rehydrate { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin-fold-failed",
                message,
            ),
            CommandError::Store(error) => error.into(),
            CommandError::Closed => shutting_down(),
        }
    }
}

/// The code of a failed plugin call.
pub fn plugin_code(error: &CallError) -> &'static str {
    match error {
        CallError::Trap { .. } | CallError::Instantiate { .. } => "plugin-trap",
        CallError::Panic { .. } => "plugin-panic",
        CallError::Timeout { .. } => "plugin-timeout",
        CallError::MemoryLimit { .. } => "plugin-memory",
        CallError::Invalid(_) => "plugin-invalid",
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting-down",
        "the service is shutting down",
    )
}

impl From<LogError> for ApiError {
    fn from(error: LogError) -> ApiError {
        let message = error.to_string();
        if error.is_storage_full() {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-full", message);
        }
        match error {
            LogError::InvalidInput(_) => ApiError::bad_request(message),
            LogError::CommandIdReused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "command-id-reused", message)
            }
            LogError::Unavailable { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            LogError::OutcomeUnknown(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "outcome-unknown", message)
            }
            LogError::Closed => shutting_down(),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage-error", message),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> ApiError {
        match error {
            RuntimeError::UnknownAggregateType(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown-aggregate-type",
                error.to_string(),
            ),
            RuntimeError::Store(error) => error.into(),
            RuntimeError::Command(error) => (*error).into(),
            RuntimeError::Invalid(message) => ApiError::bad_request(message),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

/// The code of a refused component.
pub fn install_code(error: &InstallError) -> &'static str {
    match error {
        InstallError::NotWasm(_) => "not-wasm",
        InstallError::NotAComponent => "not-a-component",
        InstallError::InvalidComponent(_) => "invalid-component",
        InstallError::WrongWorld(_) | InstallError::NotAProjection(_) => "wrong-world",
        InstallError::Describe(_) => "describe-failed",
        InstallError::InvalidInfo(_) => "invalid-plugin-info",
        InstallError::AggregateTypeMismatch { .. } => "aggregate-type-mismatch",
    }
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match &error {
            PluginError::Install(install) => (StatusCode::BAD_REQUEST, install_code(install)),
            PluginError::NotNewer { .. } => (StatusCode::CONFLICT, "version-not-newer"),
            PluginError::VersionExists { .. } => (StatusCode::CONFLICT, "version-exists"),
            PluginError::UnknownAggregateType(_) => {
                (StatusCode::NOT_FOUND, "unknown-aggregate-type")
            }
            PluginError::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "unknown-version"),
            PluginError::NothingToRollBack(_) => (StatusCode::CONFLICT, "nothing-to-roll-back"),
            PluginError::UnknownSchema { .. } => (StatusCode::CONFLICT, "unknown-schema"),
            PluginError::VerifyFailed { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "verification-failed")
            }
            PluginError::Store(store) if store.is_storage_full() => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage-full")
            }
            PluginError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
            PluginError::Io(_) | PluginError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "storage-error")
            }
        };
        ApiError::new(status, code, message)
    }
}
