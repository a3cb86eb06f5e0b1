//! `tally serve`: listen at once (health answers during recovery), open the runtime,
//! install the plugins directory, serve until SIGTERM or SIGINT, then shut down
//! gracefully: stop accepting, finish in-flight requests, end live streams, flush
//! and close the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tally_runtime::{InstallOptions, PluginError, Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::config::{LogFormat, ServeArgs, ServeConfig};
use crate::http_server::serve_http;
use crate::metrics::Metrics;

/// How often `--watch` looks at the plugins directory.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the service until a shutdown signal.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(args)?;
    init_logs(config.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    run(config, shutdown, |address| {
        tracing::info!(%address, "listening");
    })
    .await
}

/// Runs the service with `config` until `shutdown` is cancelled. `listening` is
/// called with the bound address (useful with port 0).
pub async fn run(
    mut config: ServeConfig,
    shutdown: CancellationToken,
    listening: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.listen))?;
    listening(listener.local_addr()?);
    let metrics = Metrics::new();
    config.runtime.store.wal.observer = Some(metrics.wal_observer());
    let state = AppState::new(
        metrics,
        config.admin_token.clone(),
        config.limits.clone(),
        shutdown.clone(),
    );
    let app = router(state.clone());
    let server = tokio::spawn(serve_http(
        listener,
        app,
        config.limits.header_read_timeout,
        shutdown.clone(),
    ));

    tracing::info!(data_dir = %config.data_dir.display(), "recovering");
    let opened = Runtime::open(config.runtime.clone()).await;
    let (runtime, report) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            shutdown.cancel();
            let _ = server.await;
            return Err(anyhow::anyhow!(
                "cannot open {}: {error}",
                config.data_dir.display()
            ));
        }
    };
    tracing::info!(
        events = report.events,
        streams = report.streams,
        snapshots = report.snapshots,
        retained_command_ids = report.retained_commands,
        torn_tail_bytes_cut = report.events_recovery.bytes_truncated,
        segments = report.events_recovery.segments_scanned,
        open_ms = report.open_ms,
        "recovered the event log"
    );
    let mut watched = HashMap::new();
    if let Some(dir) = &config.plugins {
        install_directory(&runtime, dir, &mut watched).await;
    }
    state.set_runtime(runtime.clone());
    tracing::info!("ready");
    if let (true, Some(dir)) = (config.watch, config.plugins.clone()) {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(WATCH_INTERVAL) => {
                        install_directory(&runtime, &dir, &mut watched).await;
                    }
                }
            }
        });
    }

    let served = server.await;
    tracing::info!("stopped accepting; closing the log");
    runtime.close().await?;
    tracing::info!("shut down cleanly");
    served?;
    Ok(())
}

/// Installs and activates every new or changed `.wasm` file of `dir`, in name order;
/// `seen` remembers what was installed (by modification time and size).
async fn install_directory(
    runtime: &Runtime,
    dir: &Path,
    seen: &mut HashMap<PathBuf, (SystemTime, u64)>,
) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect(),
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot read the plugins directory");
            return;
        }
    };
    files.sort();
    for path in files {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if seen.get(&path) == Some(&stamp) {
            continue;
        }
        seen.insert(path.clone(), stamp);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(file = %path.display(), %error, "cannot read plugin");
                continue;
            }
        };
        let options = InstallOptions {
            activate: true,
            ..InstallOptions::default()
        };
        match runtime.install_plugin(bytes, options).await {
            Ok(report) => tracing::info!(
                file = %path.display(),
                aggregate_type = %report.installed.info.aggregate_type,
                version = %report.installed.info.version,
                already_installed = report.already_installed,
                "plugin installed and active"
            ),
            Err(PluginError::NotNewer {
                aggregate_type,
                version,
                active,
            }) => tracing::info!(
                file = %path.display(),
                %aggregate_type,
                %version,
                %active,
                "plugin skipped: a newer version is active"
            ),
            Err(error) => {
                tracing::error!(file = %path.display(), %error, "plugin not installed");
            }
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
