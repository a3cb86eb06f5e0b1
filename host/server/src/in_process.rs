//! Tally inside another program on this machine, as `tally demo` and the benchmark run
//! it: the plugin components built in this checkout, and the service started on this
//! process's async runtime.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;

/// Where `make plugins` puts the components in this checkout.
pub const BUILT_PLUGINS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../plugins/target/wasm32-wasip2/release"
);

/// How long [`InProcessService::start`] waits between two readiness checks.
const READY_POLL: Duration = Duration::from_millis(50);

/// How many readiness checks [`InProcessService::start`] makes before giving up (a
/// minute in all).
const READY_POLLS: u32 = 1200;

/// The path of the component `name` in `dir` (default: [`BUILT_PLUGINS`]); when it is
/// missing, an error that says how to build it.
pub fn built_component(dir: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.unwrap_or(Path::new(BUILT_PLUGINS)).join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build the plugins with `make plugins` (or give --plugins DIR)",
        path.display()
    );
    Ok(path)
}

/// A service running on this process's async runtime until
/// [`stop`](InProcessService::stop).
pub struct InProcessService {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessService {
    /// Starts the service of `config` and returns once it is ready (recovered, its
    /// plugins installed).
    pub async fn start(config: ServeConfig) -> anyhow::Result<InProcessService> {
        let shutdown = CancellationToken::new();
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(crate::serve::run(
            config,
            shutdown.clone(),
            move |address| {
                let _ = address_tx.send(address);
            },
        ));
        let Ok(address) = address_rx.await else {
            // The service ended before it listened (say, its plugins directory is
            // missing): its error says why.
            return Err(ended(task).await);
        };
        let service = InProcessService {
            address,
            shutdown,
            task,
        };
        if let Err(not_ready) = service.wait_ready().await {
            if service.task.is_finished() {
                return Err(ended(service.task).await);
            }
            return Err(not_ready);
        }
        Ok(service)
    }

    /// The address the service listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The service's base URL, `http://ADDRESS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Shuts the service down gracefully and waits until it has (the log closed).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }

    /// Asks `/readyz` until it answers with success.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let readyz = format!("{}/readyz", self.url());
        for _ in 0..READY_POLLS {
            anyhow::ensure!(
                !self.task.is_finished(),
                "the service ended before it was ready"
            );
            if reqwest::get(&readyz)
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        anyhow::bail!("the service at {} did not become ready", self.address)
    }
}

/// The error of a service task that ended before it was ready.
async fn ended(task: JoinHandle<anyhow::Result<()>>) -> anyhow::Error {
    match task.await {
        Ok(Err(error)) => error,
        Ok(Ok(())) => anyhow::anyhow!("the service stopped before it was ready"),
        Err(join) => join.into(),
    }
}
