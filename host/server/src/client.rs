//! The CLI's client of a running service: one method per endpoint, errors as the
//! service's `{"error": {...}}` turned into [`ClientError`].

use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An error answer or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The service could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
}

/// A client of one service.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client"),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// `GET path?query`.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(path)).query(query)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self
            .authorize(request)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| ClientError::Transport(error.to_string()))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|error| {
            ClientError::Transport(format!("unreadable answer from {}: {error}", self.base))
        })
    }

    /// `POST /v1/aggregates/{type}/{id}/commands`.
    pub async fn send_command(
        &self,
        aggregate_type: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let path = aggregate_path(aggregate_type, id, "/commands");
        self.send(self.http.post(self.url(&path)).json(body)).await
    }

    /// `GET /v1/aggregates/{type}/{id}` with optional time travel.
    pub async fn state(
        &self,
        aggregate_type: &str,
        id: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.get(&aggregate_path(aggregate_type, id, ""), query)
            .await
    }

    /// `GET /v1/aggregates/{type}/{id}/events`.
    pub async fn aggregate_events(
        &self,
        aggregate_type: &str,
        id: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.get(&aggregate_path(aggregate_type, id, "/events"), query)
            .await
    }

    /// `GET /v1/events`.
    pub async fn events(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.get("/v1/events", query).await
    }

    /// `POST /v1/plugins` with a component.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let request = self
            .http
            .post(self.url("/v1/plugins"))
            .query(query)
            .header("content-type", "application/wasm")
            .body(bytes);
        self.send(request).await
    }

    /// `GET /v1/plugins`.
    pub async fn plugins(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url("/v1/plugins"))).await
    }

    /// `POST /v1/plugins/{name}/activate` or `/rollback` (an aggregate type or a
    /// projection).
    pub async fn switch(
        &self,
        aggregate_type: &str,
        action: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/plugins/{}/{action}", segment(aggregate_type));
        self.send(self.http.post(self.url(&path)).query(query))
            .await
    }

    /// `GET path?query` of the read side (`/v1/projections...`).
    pub async fn projections(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.get(path, query).await
    }

    /// `POST /v1/projections/{name}/rebuild`: the projection's status with the build.
    pub async fn projection_rebuild(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/projections/{}/rebuild", segment(name));
        self.send(self.http.post(self.url(&path))).await
    }

    /// `POST /v1/projections/{name}/{action}` (`retry` or `skip`).
    pub async fn projection_action(&self, name: &str, action: &str) -> Result<(), ClientError> {
        let path = format!("/v1/projections/{}/{action}", segment(name));
        let request = self.authorize(self.http.post(self.url(&path)));
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        Err(api_error(
            status,
            &response.bytes().await.unwrap_or_default(),
        ))
    }

    /// `GET /v1/subscribe`: calls `each` with every event until the stream ends or
    /// `each` returns false.
    pub async fn follow(
        &self,
        query: &[(&str, String)],
        mut each: impl FnMut(Value) -> bool,
    ) -> Result<(), ClientError> {
        let response = self
            .http
            .get(self.url("/v1/subscribe"))
            .query(query)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(api_error(
                status,
                &response.bytes().await.unwrap_or_default(),
            ));
        }
        let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
        while let Some(event) = events.next().await {
            let event = event.map_err(|error| ClientError::Transport(error.to_string()))?;
            let value: Value = serde_json::from_str(&event.data)
                .map_err(|error| ClientError::Transport(error.to_string()))?;
            if !each(value) {
                break;
            }
        }
        Ok(())
    }

    /// The error for a request that got no answer: the address, the reason (the
    /// innermost cause, e.g. "Connection refused"), and what to do about it.
    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let mut reason: &dyn std::error::Error = error;
        while let Some(source) = reason.source() {
            reason = source;
        }
        let advice = if error.is_connect() {
            "; is the service running? Start it with `tally serve` (or `make run` in a \
             checkout), or give its address with --url or TALLY_URL"
        } else {
            ""
        };
        ClientError::Transport(format!(
            "cannot reach the service at {} ({reason}){advice}",
            self.base
        ))
    }
}

/// An error answer as a [`ClientError`]: the service's `{"error": {...}}`, or the body
/// as it is when it is not that shape.
fn api_error(status: u16, body: &[u8]) -> ClientError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| {
        parsed["error"][name]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    };
    ClientError::Api {
        status,
        code: field("code"),
        message: with_hint(status, field("message")),
    }
}

/// An error answer's message, with what to do about it where the status says: a 401
/// names the token's flag and variable.
fn with_hint(status: u16, message: String) -> String {
    if status == 401 {
        format!("{message} (give the admin token with --token or TALLY_ADMIN_TOKEN)")
    } else {
        message
    }
}

/// The path of an aggregate's resource: `/v1/aggregates/{type}/{id}` then `rest`.
fn aggregate_path(aggregate_type: &str, id: &str, rest: &str) -> String {
    format!(
        "/v1/aggregates/{}/{}{rest}",
        segment(aggregate_type),
        segment(id)
    )
}

/// A path segment, percent-encoded (ids are validated by the service anyway).
pub(crate) fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:@+=".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
