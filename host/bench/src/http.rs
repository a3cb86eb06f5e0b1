//! `tally-bench http`: durable deposits over HTTP from N connections, against a
//! service the bench starts (or `--url`), beside the same load in-process.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::report::Report;
use super::{ACCOUNTS, BenchOptions, Progress, load, setup};
use tally_server::config::{ServeArgs, ServeConfig};

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
    let shutdown = CancellationToken::new();
    let (address, service) = match &options.url {
        Some(url) => {
            let url = reqwest::Url::parse(url)?;
            let address = url
                .socket_addrs(|| Some(80))?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("cannot resolve {url}"))?;
            (address, None)
        }
        None => {
            progress.set("http: starting a service");
            let plugins = work.path().join("plugins");
            std::fs::create_dir_all(&plugins)?;
            std::fs::copy(
                options.component("bank_account.wasm")?,
                plugins.join("bank_account.wasm"),
            )?;
            let config = ServeConfig::resolve(ServeArgs {
                data_dir: Some(work.path().join("data")),
                listen: Some("127.0.0.1:0".parse()?),
                plugins: Some(plugins),
                compile_cache: Some(options.compile_cache()),
                ..ServeArgs::default()
            })?;
            let (address_tx, address_rx) = tokio::sync::oneshot::channel();
            let service = tokio::spawn(tally_server::serve::run(
                config,
                shutdown.clone(),
                move |address| {
                    let _ = address_tx.send(address);
                },
            ));
            let address = address_rx.await?;
            wait_ready(address).await?;
            (address, Some(service))
        }
    };
    let prefix = format!("bench-{}", std::process::id());
    let path = move |i: u64| {
        format!(
            "/v1/aggregates/bank-account/{prefix}-{}/commands",
            i % ACCOUNTS
        )
    };

    progress.set(&format!("http: opening {ACCOUNTS} accounts"));
    let opened = {
        let path = path.clone();
        load::run_count(
            CONNECTIONS,
            ACCOUNTS,
            |_| HttpConnection::connect(address),
            move |mut connection: HttpConnection, i| {
                let path = path(i);
                async move {
                    let answer = connection
                        .post_json(&path, command("OpenAccount", r#"{"initial_balance":0}"#))
                        .await;
                    (
                        connection,
                        answer.and_then(|(status, body)| expect_ok(status, &body)),
                    )
                }
            },
        )
        .await?
    };
    anyhow::ensure!(
        opened.errors == 0,
        "opening accounts failed: {:?}",
        opened.first_error
    );

    progress.set(&format!("http: {CONNECTIONS} connections for {window:?}"));
    let http = load::run(
        CONNECTIONS,
        window,
        |_| HttpConnection::connect(address),
        move |mut connection: HttpConnection, worker, n| {
            let path = path(worker as u64 * 7_919 + n * 31);
            async move {
                let answer = connection
                    .post_json(&path, command("Deposit", r#"{"amount":1}"#))
                    .await;
                (
                    connection,
                    answer.and_then(|(status, body)| expect_ok(status, &body)),
                )
            }
        },
    )
    .await?;
    shutdown.cancel();
    if let Some(service) = service {
        service.await??;
    }
    anyhow::ensure!(
        http.errors == 0,
        "HTTP commands failed: {:?}",
        http.first_error
    );

    progress.set(&format!("http: the same load in-process for {window:?}"));
    let in_process = setup::in_process_deposits(
        options,
        &work.path().join("in-process"),
        CONNECTIONS,
        window,
    )
    .await?;

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
    Ok(report)
}

fn expect_ok(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(body)))
    }
}

async fn wait_ready(address: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..1200 {
        if reqwest::get(format!("http://{address}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the service at {address} did not become ready")
}
