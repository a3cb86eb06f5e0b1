//! `tally-bench http`: durable deposits over HTTP from N connections, against a
//! service the bench starts (or `--url`), beside the same load in-process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tally_server::config::{ServeArgs, ServeConfig};
use tally_server::in_process::InProcessService;

use super::load::{LoadResult, Schedule};
use super::report::Report;
use super::{ACCOUNTS, BenchOptions, Progress, load, setup};

/// Connections of the HTTP load.
pub const CONNECTIONS: usize = 64;

/// One HTTP/1.1 connection.
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConnection {
    /// Connects to `address`.
    pub async fn connect(address: SocketAddr) -> anyhow::Result<HttpConnection> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(HttpConnection {
            sender,
            host: address.to_string(),
        })
    }

    /// POSTs a JSON body; returns the status and the body.
    pub async fn post_json(&mut self, path: &str, body: Bytes) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let request = hyper::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// A command request body.
fn command(name: &str, data: &str) -> Bytes {
    Bytes::from(format!(r#"{{"type":"{name}","data":{data}}}"#))
}

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> anyhow::Result<Report> {
    let window = options.window();
    let work = options.work_dir("http")?;
    let (address, service) = target(options, work.path(), progress).await?;
    let prefix = format!("bench-{}", std::process::id());
    open_accounts(address, &prefix, progress).await?;
    progress.set(&format!("http: {CONNECTIONS} connections for {window:?}"));
    let http = deposits(address, &prefix, CONNECTIONS, window).await?;
    if let Some(service) = service {
        service.stop().await?;
    }
    http.ensure_no_errors("HTTP commands")?;

    progress.set(&format!("http: the same load in-process for {window:?}"));
    let in_process = setup::in_process_deposits(
        options,
        &work.path().join("in-process"),
        CONNECTIONS,
        window,
    )
    .await?;
    Ok(report(&http, &in_process))
}

/// The service to load: the one at `--url`, or one started in-process with its data in
/// `work` (then it is returned, to be stopped).
async fn target(
    options: &BenchOptions,
    work: &Path,
    progress: &Progress,
) -> anyhow::Result<(SocketAddr, Option<InProcessService>)> {
    if let Some(url) = &options.url {
        return Ok((resolve(url)?, None));
    }
    progress.set("http: starting a service");
    let service = start_service(options, work).await?;
    Ok((service.address(), Some(service)))
}

/// The address of the service at `url`.
fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let url = reqwest::Url::parse(url)?;
    url.socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {url}"))
}

/// A service on a free local port with its data in `work` and bank-account v1
/// installed from its plugins directory.
async fn start_service(options: &BenchOptions, work: &Path) -> anyhow::Result<InProcessService> {
    let plugins = work.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(
        options.component("bank_account.wasm")?,
        plugins.join("bank_account.wasm"),
    )?;
    let config = ServeConfig::resolve(ServeArgs {
        data_dir: Some(work.join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        plugins: Some(plugins),
        compile_cache: Some(options.compile_cache()),
        ..ServeArgs::default()
    })?;
    InProcessService::start(config).await
}

/// Opens the [`ACCOUNTS`] accounts named with `prefix` over HTTP (untimed).
pub(crate) async fn open_accounts(
    address: SocketAddr,
    prefix: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.set(&format!("http: opening {ACCOUNTS} accounts"));
    let prefix = prefix.to_owned();
    let opened = load::run(
        CONNECTIONS,
        Schedule::count(ACCOUNTS),
        |_| HttpConnection::connect(address),
        move |connection: HttpConnection, _, i| {
            let body = command("OpenAccount", r#"{"initial_balance":0}"#);
            post_command(connection, command_path(&prefix, i), body)
        },
    )
    .await?;
    opened.ensure_no_errors("opening accounts")
}

/// Durable deposits over HTTP to the accounts named with `prefix`, from
/// `connections` connections for `window`.
pub(crate) async fn deposits(
    address: SocketAddr,
    prefix: &str,
    connections: usize,
    window: Duration,
) -> anyhow::Result<LoadResult> {
    let prefix = prefix.to_owned();
    load::run(
        connections,
        Schedule::for_duration(window),
        |_| HttpConnection::connect(address),
        move |connection: HttpConnection, worker, n| {
            let path = command_path(&prefix, worker as u64 * 7_919 + n * 31);
            post_command(connection, path, command("Deposit", r#"{"amount":1}"#))
        },
    )
    .await
}

/// The commands path of account `i` (of [`ACCOUNTS`]) named with `prefix`.
fn command_path(prefix: &str, i: u64) -> String {
    format!(
        "/v1/aggregates/bank-account/{prefix}-{}/commands",
        i % ACCOUNTS
    )
}

/// Posts the command `body` to `path`; the connection back, with the outcome (an
/// error unless the service answered 200).
async fn post_command(
    mut connection: HttpConnection,
    path: String,
    body: Bytes,
) -> (HttpConnection, Result<(), String>) {
    let answer = connection.post_json(&path, body).await;
    let outcome = answer.and_then(|(status, body)| expect_ok(status, &body));
    (connection, outcome)
}

/// The HTTP figures beside the in-process ones.
fn report(http: &LoadResult, in_process: &LoadResult) -> Report {
    let mut report = Report::default();
    report.add(
        "http_commands_per_s",
        "HTTP durable deposits (64 connections)",
        http.per_second(),
        "/s",
    );
    report.add(
        "http_p50_ms",
        "  latency p50",
        http.percentile_ms(0.50),
        "ms",
    );
    report.add(
        "http_p90_ms",
        "  latency p90",
        http.percentile_ms(0.90),
        "ms",
    );
    report.add(
        "http_p99_ms",
        "  latency p99",
        http.percentile_ms(0.99),
        "ms",
    );
    report.add(
        "http_p999_ms",
        "  latency p99.9",
        http.percentile_ms(0.999),
        "ms",
    );
    report.add("http_max_ms", "  latency max", http.max_ms(), "ms");
    report.add(
        "http_inprocess_commands_per_s",
        "in-process durable deposits (64 tasks)",
        in_process.per_second(),
        "/s",
    );
    report.add(
        "http_vs_inprocess",
        "HTTP / in-process",
        http.per_second() / in_process.per_second().max(1e-9),
        "x",
    );
    report
}

fn expect_ok(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(body)))
    }
}
