//! The harness shared by the end-to-end and reliability test binaries: the real
//! `tally` binary, started on an ephemeral port in a given data directory with
//! bank-account v1 installed, driven over HTTP; plus (from `tally-test-support`) a
//! seeded random generator and environment knobs for the long runs.
//!
//! Each binary includes it with `#[path = "../common/mod.rs"] mod common;`, and not
//! every binary uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tally_test_support::components;
pub use tally_test_support::{Rng, env_number, seed_from_env};

/// The binary under test.
pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// A directory holding bank-account v1 as `bank_account.wasm`.
pub fn v1_plugins_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            components::BANK_ACCOUNT_V1,
            dir.path().join("bank_account.wasm"),
        )
        .expect("copy v1");
        dir
    })
    .path()
}

/// A running `tally serve`.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Everything it logged so far (JSON lines).
    pub log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

/// `tally serve` on `data_dir` with the plugins directory `plugins` and `extra`
/// flags, on an ephemeral port, logging JSON lines to a piped stderr.
pub fn serve_command(data_dir: &Path, plugins: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(TALLY);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--plugins")
        .arg(plugins)
        .arg("--compile-cache")
        .arg(components::compile_cache())
        .arg("--log-format")
        .arg("json")
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

impl Service {
    /// Starts the service on `data_dir` with bank-account v1 and `extra` flags, and
    /// waits until it is ready.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Service {
        Service::start_with_plugins(data_dir, v1_plugins_dir(), extra).await
    }

    /// Like [`Service::start`], with the plugins directory `plugins`.
    pub async fn start_with_plugins(data_dir: &Path, plugins: &Path, extra: &[&str]) -> Service {
        Service::try_start_with_plugins(data_dir, plugins, extra)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`Service::start`], but a service that exits or never gets ready is an
    /// `Err` with its log.
    pub async fn try_start(data_dir: &Path, extra: &[&str]) -> Result<Service, String> {
        Service::try_start_with_plugins(data_dir, v1_plugins_dir(), extra).await
    }

    /// Like [`Service::try_start`], with the plugins directory `plugins`.
    pub async fn try_start_with_plugins(
        data_dir: &Path,
        plugins: &Path,
        extra: &[&str],
    ) -> Result<Service, String> {
        let mut child = serve_command(data_dir, plugins, extra)
            .spawn()
            .expect("start tally serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(entry) = serde_json::from_str::<Value>(&line)
                        && entry["fields"]["message"] == "listening"
                    {
                        let _ = address_tx.send(
                            entry["fields"]["address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        );
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the service did not listen; log:\n{}",
                log.lock().unwrap()
            ));
        };
        let mut service = Service {
            child,
            url: format!("http://{address}"),
            data_dir: data_dir.to_owned(),
            log,
            http: reqwest::Client::new(),
        };
        for _ in 0..1200 {
            if let Ok(response) = service.http.get(service.path("/readyz")).send().await
                && response.status() == 200
            {
                return Ok(service);
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                // Let the log reader take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!(
                    "the service exited ({status}) before it was ready; log:\n{}",
                    service.log.lock().unwrap()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "the service did not become ready; log:\n{}",
            service.log.lock().unwrap()
        ))
    }

    /// The URL of `path`.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(self) {
        let log = self.log.clone();
        let status = self.terminate();
        assert!(
            status.success(),
            "exit {status}; log:\n{}",
            log.lock().unwrap()
        );
    }

    /// Sends SIGTERM and waits for the exit, whatever its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().expect("wait")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }

    /// Sends a command; returns the status and body.
    pub async fn command(&self, aggregate_type: &str, id: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.path(&format!("/v1/aggregates/{aggregate_type}/{id}/commands")))
            .json(&body)
            .send()
            .await
            .expect("send command");
        status_and_json(response).await
    }

    /// GET `path`; returns the status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.path(path)).send().await.expect("GET");
        status_and_json(response).await
    }

    /// Uploads a component (admin).
    pub async fn install(&self, component: &str, query: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.path(&format!("/v1/plugins?{query}")))
            .header("content-type", "application/wasm")
            .body(std::fs::read(component).expect("component"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        status_and_json(request.send().await.expect("install")).await
    }

    /// Events in the log.
    pub async fn end_position(&self) -> u64 {
        let (status, body) = self.get("/v1/events?limit=1").await;
        assert_eq!(status, 200, "{body}");
        body["end_position"].as_u64().expect("end_position")
    }

    /// A bank account's balance.
    pub async fn balance(&self, id: &str) -> i64 {
        let (status, body) = self.get(&format!("/v1/aggregates/bank-account/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["state"]["balance"].as_i64().expect("balance")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal with `kill`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A bank-account command body.
pub fn bank(command: &str, data: Value) -> Value {
    json!({ "type": command, "data": data })
}
