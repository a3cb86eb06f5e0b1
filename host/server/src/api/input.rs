//! Extractors that turn bad input into clear [`ApiError`]s: JSON bodies (415, 413,
//! 400), query strings and path ids (400).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;

/// A JSON request body: `Content-Type: application/json`, within the body limit,
/// parsed into `T` (unknown fields refused where `T` says so).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = media_type(request.headers()).is_some_and(|media| {
            media.eq_ignore_ascii_case("application/json")
                || (media.starts_with("application/") && media.ends_with("+json"))
        });
        if !is_json {
            return Err(unsupported_media_type(
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let bytes = body_bytes(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-body",
                    format!("the body is not a valid request: {error}"),
                )
            })
    }
}

/// The media type of the `Content-Type` header, without its parameters; `None` when
/// the header is absent or empty. A value that is not text is kept as `?`, which no
/// accepted type matches.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().unwrap_or("?");
    let media = value.split(';').next().unwrap_or_default().trim();
    (!media.is_empty()).then_some(media)
}

fn unsupported_media_type(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        message,
    )
}

/// Refuses (415) a raw body sent with a `Content-Type` other than one of `accepted`
/// (compared case-insensitively, parameters ignored). A body sent without one is taken
/// as it is: an unstated type is not a wrong one.
pub fn check_media_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(media) if !accepted.iter().any(|a| a.eq_ignore_ascii_case(media)) => {
            Err(unsupported_media_type(format!(
                "the body must be sent as {}, not `{}`",
                accepted.join(" or "),
                truncate(media, 80)
            )))
        }
        _ => Ok(()),
    }
}

/// The raw body, within the body limit (413 beyond it) and the body timeout (408
/// after it).
pub async fn body_bytes(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let timeout = state.limits().body_read_timeout;
    let Ok(read) = tokio::time::timeout(timeout, Bytes::from_request(request, state)).await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        ));
    };
    read.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(failed)
            if failed.status() == StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "the request body is larger than this service accepts",
            )
        }
        other => ApiError::bad_request(format!("cannot read the request body: {other}")),
    })
}

/// A query string parsed into `T`.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from_str(query).map(QueryParams)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("the query string is malformed"))?,
    )
    .map(|query| query.0)
    .map_err(|error| ApiError::bad_request(format!("bad query parameters: {}", error.body_text())))
}

/// Path segments: an aggregate type and, for routes that have one, an aggregate id,
/// validated (length and characters) before anything else runs.
pub struct AggregatePath {
    /// The aggregate type (kebab-case).
    pub aggregate_type: String,
    /// The aggregate id, when the route has one.
    pub aggregate_id: Option<String>,
}

impl FromRequestParts<AppState> for AggregatePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|error| {
                    ApiError::bad_request(format!("bad path: {}", error.body_text()))
                })?;
        let max = state.limits().max_id_len;
        let mut path = AggregatePath {
            aggregate_type: String::new(),
            aggregate_id: None,
        };
        for (name, value) in params {
            match name.as_str() {
                "aggregate_type" => {
                    check_type(&value)?;
                    path.aggregate_type = value;
                }
                "aggregate_id" => {
                    check_id(&value, max)?;
                    path.aggregate_id = Some(value);
                }
                _ => {}
            }
        }
        Ok(path)
    }
}

/// The documented form of an aggregate type in a path, as [`check_type`] takes it:
/// routes with only a type declare these parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TypeParams {
    /// The aggregate type: kebab-case, at most 64 bytes.
    #[param(
        pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$",
        max_length = 64,
        example = "bank-account"
    )]
    pub aggregate_type: String,
}

/// The documented form of an aggregate type and id in a path, as [`check_type`] and
/// [`check_id`] take them.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AggregateParams {
    /// The aggregate type: kebab-case, at most 64 bytes.
    #[param(
        pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$",
        max_length = 64,
        example = "bank-account"
    )]
    pub aggregate_type: String,
    /// The aggregate id: ASCII letters, digits and `._-:@+=`, at most 256 bytes (the
    /// default of `--max-id-len`); `.` and `..` alone are refused.
    #[param(
        pattern = r"^[A-Za-z0-9._:@+=-]+$",
        min_length = 1,
        max_length = 256,
        example = "alice"
    )]
    pub aggregate_id: String,
}

impl AggregatePath {
    /// The aggregate id (routes with one only).
    pub fn id(&self) -> &str {
        self.aggregate_id.as_deref().unwrap_or_default()
    }
}

/// Aggregate types are kebab-case, at most 64 bytes (as plugins declare them).
pub fn check_type(value: &str) -> Result<(), ApiError> {
    let kebab = !value.is_empty()
        && value.len() <= 64
        && value.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if kebab {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-aggregate-type",
            "an aggregate type is kebab-case (lowercase letters, digits and single dashes), \
             at most 64 bytes",
        ))
    }
}

/// Aggregate ids and command ids: 1 to `max` bytes of letters, digits and `._-:@+=`.
/// Never a path: ids never name files, and `.`/`..` alone are refused as well.
pub fn check_id(value: &str, max: usize) -> Result<(), ApiError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-:@+=".contains(&b);
    let ok = !value.is_empty()
        && value.len() <= max
        && value.bytes().all(allowed)
        && value != "."
        && value != "..";
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-id",
            format!(
                "an id is 1 to {max} bytes of ASCII letters, digits and `._-:@+=`, got {:?}",
                truncate(value, 80)
            ),
        ))
    }
}

fn truncate(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_names() {
        for good in ["alice", "acc-1", "a.b_c:d@e+f=g", "A1"] {
            assert!(check_id(good, 256).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a\0b", "é", &"x".repeat(257)] {
            assert!(check_id(bad, 256).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn types_are_kebab_case() {
        assert!(check_type("bank-account").is_ok());
        for bad in ["", "Bank", "bank_account", "-a", "a--b", "../x"] {
            assert!(check_type(bad).is_err(), "{bad:?}");
        }
    }
}
