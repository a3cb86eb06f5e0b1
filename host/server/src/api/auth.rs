//! The admin token: who may administer plugins and read the system streams.
//!
//! The service keeps only a SHA-256 digest of the configured token. A request's bearer
//! token is hashed the same way and the two digests are compared in constant time, so
//! neither the length of the token nor how much of a guess was right shows in the time
//! an answer takes. The admin routes check the token in a layer that runs before any
//! of their input is read: a caller without it learns nothing about what it sent.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The configured admin token, kept as its digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// Fewest bytes a token may have: shorter ones are guessed too easily.
    pub const MIN_BYTES: usize = 16;

    /// The token, or why it is refused (shorter than [`MIN_BYTES`](Self::MIN_BYTES)).
    pub fn new(token: &str) -> Result<AdminToken, String> {
        if token.len() < Self::MIN_BYTES {
            return Err(format!(
                "the admin token has {} bytes; use at least {} (for example `openssl rand -hex 16`)",
                token.len(),
                Self::MIN_BYTES
            ));
        }
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `given` is the token, compared in constant time over the digests.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme's name is
/// case-insensitive (RFC 7235, section 2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Whether an aggregate type is a system stream's (the plugin registry's
/// `$tally-plugins`): system types start with `$`, which no plugin's type can.
pub fn is_system_type(aggregate_type: &str) -> bool {
    aggregate_type.starts_with('$')
}

/// Whether a read of the log may include the system streams: only an admin caller's
/// (any caller's when no token is configured). Asking for a system type by name
/// without the token is 401; otherwise their events are left out of the answer.
pub fn system_streams_visible(
    state: &AppState,
    headers: &HeaderMap,
    requested_type: Option<&str>,
) -> Result<bool, ApiError> {
    if state.is_admin(headers) {
        return Ok(true);
    }
    match requested_type {
        Some(requested) if is_system_type(requested) => Err(ApiError::unauthorized()),
        _ => Ok(false),
    }
}

/// The admin routes' layer: 401 without the token, before the route reads its input.
///
/// The refused request's body is read and dropped, up to the API's `max_body_bytes`
/// (1 MiB by default), so that a client still sending an upload of ordinary size gets
/// the 401 rather than a connection closed under it; a larger body is not read on,
/// and its connection closes.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Err(refused) = state.check_admin(request.headers()) {
        let most = state.limits().max_body_bytes;
        let _ = axum::body::to_bytes(request.into_body(), most).await;
        return Err(refused);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc"] {
            assert_eq!(bearer_token(&headers(value)), Some("abc"), "{value}");
        }
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_token_matches() {
        let token = AdminToken::new("0123456789abcdef").unwrap();
        assert!(token.matches("0123456789abcdef"));
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeF",
        ] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn short_tokens_are_refused_with_a_reason() {
        let error = AdminToken::new("s3cret").unwrap_err();
        assert!(error.contains("6 bytes") && error.contains("16"), "{error}");
        assert!(!format!("{:?}", AdminToken::new("0123456789abcdef").unwrap()).contains('0'));
    }
}
