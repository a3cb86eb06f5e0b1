//! `tally serve`: listen at once (health answers during recovery), open the runtime,
//! install the plugins directory, serve until SIGTERM or SIGINT, then shut down
//! gracefully: stop accepting, finish in-flight requests, end live streams, flush
//! and close the log.
//!
//! The plugins directory holds aggregate plugins and projections alike. The aggregate
//! plugins go in first, then the projections, whose events those plugins upcast.
//!
//! A plugins directory given at start must be read whole: one that is missing or
//! unreadable, or a component in it that cannot be read or installed, stops the start
//! with an error naming the path and the reason (a service reporting ready without the
//! plugins it was told to serve would answer every command of their types with 404).
//! With `--watch` the service is already serving when a later file fails: that failure
//! is logged and the service keeps the plugins it has; the file is tried again once it
//! changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tally_projections::{ProjectionError, ProjectionInstallOptions, Projections};
use tally_runtime::{
    InstallError, InstallOptions, LoadedPlugin, PluginError, Runtime, StoreOpenReport,
};
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
    if let Some(dir) = &config.plugins {
        // Before the log's recovery, which can take a while: a wrong path fails at once.
        plugin_files(dir)?;
    }
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
    log_store_opened(&report);
    let mut watched = HashMap::new();
    let projections = match start_plugins(&runtime, &config, &mut watched).await {
        Ok(projections) => projections,
        Err(error) => {
            shutdown.cancel();
            let _ = server.await;
            runtime.close().await?;
            return Err(error);
        }
    };
    state.set_projections(projections.clone());
    state.set_runtime(runtime.clone());
    tracing::info!("ready");
    if let (true, Some(dir)) = (config.watch, config.plugins.clone()) {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(WATCH_INTERVAL) => {
                        install_changes(&runtime, &projections, &dir, &mut watched).await;
                    }
                }
            }
        });
    }

    let served = server.await;
    tracing::info!("stopped accepting; stopping the projections");
    if let Ok(projections) = state.projections() {
        // Their projectors read the log: they stop, and release their read models,
        // before it closes.
        projections.close().await;
    }
    tracing::info!("closing the log");
    runtime.close().await?;
    tracing::info!("shut down cleanly");
    served?;
    Ok(())
}

/// The `.wasm` files of the plugins directory `dir`, in name order.
/// Logs what opening the event store found.
fn log_store_opened(report: &StoreOpenReport) {
    match report {
        StoreOpenReport::Embedded(report) => tracing::info!(
            events = report.events,
            streams = report.streams,
            snapshots = report.snapshots,
            retained_command_ids = report.retained_commands,
            torn_tail_bytes_cut = report.events_recovery.bytes_truncated,
            segments = report.events_recovery.segments_scanned,
            open_ms = report.open_ms,
            "recovered the event log"
        ),
        StoreOpenReport::Postgres(report) => tracing::info!(
            events = report.end.get(),
            migrations_applied = report.migrations_applied.len(),
            open_ms = report.open_ms,
            "opened the event store on PostgreSQL"
        ),
    }
}

fn plugin_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let unreadable = || format!("cannot read the plugins directory {}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(unreadable)? {
        let path = entry.with_context(unreadable)?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// At start, after the log's recovery: installs the aggregate plugins of the plugins
/// directory, opens the projections, then installs the directory's projections.
/// `seen` remembers what was installed, for `--watch`.
async fn start_plugins(
    runtime: &Runtime,
    config: &ServeConfig,
    seen: &mut HashMap<PathBuf, FileStamp>,
) -> anyhow::Result<Projections> {
    let projection_names = ProjectionNames::OnDisk(&config.projections.dir);
    let components = match &config.plugins {
        Some(dir) => install_all(runtime, dir, &projection_names, seen).await?,
        None => Vec::new(),
    };
    let projections = Projections::open(runtime.clone(), config.projections.clone())
        .await
        .map_err(|error| anyhow::anyhow!("cannot start the projections: {error}"))?;
    for component in &components {
        if let Err(error) = install_projection(&projections, component).await {
            projections.close().await;
            return Err(error);
        }
    }
    Ok(projections)
}

/// At start: installs and activates every aggregate plugin of `dir`, in name order;
/// the first file that cannot be read or installed is the error. Returns the other
/// components, for the projections.
async fn install_all(
    runtime: &Runtime,
    dir: &Path,
    projection_names: &ProjectionNames<'_>,
    seen: &mut HashMap<PathBuf, FileStamp>,
) -> anyhow::Result<Vec<Component>> {
    let mut components = Vec::new();
    for path in plugin_files(dir)? {
        components.extend(install_file(runtime, &path, projection_names, seen).await?);
    }
    Ok(components)
}

/// With `--watch`: installs every new or changed `.wasm` file of `dir`, aggregate
/// plugins (activated) first, then projections. The service is serving already, so a
/// failure is logged and the others still go in; a file that failed is tried again
/// once it changes.
async fn install_changes(
    runtime: &Runtime,
    projections: &Projections,
    dir: &Path,
    seen: &mut HashMap<PathBuf, FileStamp>,
) {
    let files = match plugin_files(dir) {
        Ok(files) => files,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "plugins directory not read");
            return;
        }
    };
    let mut components = Vec::new();
    let projection_names = ProjectionNames::Open(projections);
    for path in files {
        match install_file(runtime, &path, &projection_names, seen).await {
            Ok(component) => components.extend(component),
            Err(error) => tracing::error!(error = format!("{error:#}"), "plugin not installed"),
        }
    }
    for component in &components {
        if let Err(error) = install_projection(projections, component).await {
            tracing::error!(error = format!("{error:#}"), "projection not installed");
        }
    }
}

/// When a file was last seen: its modification time and size.
type FileStamp = (SystemTime, u64);

/// A component of the plugins directory that is not an aggregate plugin, for the
/// projections.
struct Component {
    /// The file.
    path: PathBuf,
    /// Its bytes.
    bytes: Vec<u8>,
    /// Why it is not an aggregate plugin.
    not_aggregate: String,
}

/// The names projections have, which an aggregate plugin of the directory may not
/// take (the two kinds share one namespace, as the upload API checks too).
enum ProjectionNames<'a> {
    /// At start, before the projections open: their folders in the projections
    /// directory.
    OnDisk(&'a Path),
    /// Once they are open.
    Open(&'a Projections),
}

impl ProjectionNames<'_> {
    fn contains(&self, name: &str) -> bool {
        match self {
            ProjectionNames::OnDisk(dir) => dir.join(name).is_dir(),
            ProjectionNames::Open(projections) => projections.contains(name),
        }
    }
}

/// Installs and activates the aggregate plugin at `path`, unless `seen` has it as it
/// is now. A version not newer than the active one is skipped, not an error (the
/// directory may hold an older build than one installed through the API). A component
/// of another world is returned, for the projections. An aggregate type that is a
/// projection's name is refused.
async fn install_file(
    runtime: &Runtime,
    path: &Path,
    projection_names: &ProjectionNames<'_>,
    seen: &mut HashMap<PathBuf, FileStamp>,
) -> anyhow::Result<Option<Component>> {
    if !changed(path, seen)? {
        return Ok(None);
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read plugin {}", path.display()))?;
    if let Some(aggregate_type) = aggregate_type_of(runtime, &bytes).await
        && projection_names.contains(&aggregate_type)
    {
        anyhow::bail!(
            "cannot install plugin {}: {aggregate_type:?} is the name of a projection; an \
             aggregate type cannot have it (aggregate types and projections share one \
             namespace)",
            path.display()
        );
    }
    let options = InstallOptions {
        activate: true,
        ..InstallOptions::default()
    };
    match runtime.install_plugin(bytes.clone(), options).await {
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
        Err(PluginError::Install(InstallError::WrongWorld(not_aggregate))) => {
            return Ok(Some(Component {
                path: path.to_owned(),
                bytes,
                not_aggregate,
            }));
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot install plugin {}", path.display()));
        }
    }
    Ok(None)
}

/// The aggregate type `bytes` describes itself as, if it is an aggregate plugin at all
/// (installing it says what is wrong with one that is not).
async fn aggregate_type_of(runtime: &Runtime, bytes: &[u8]) -> Option<String> {
    let engine = runtime.engine().clone();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        LoadedPlugin::load(&engine, &bytes)
            .ok()
            .map(|plugin| plugin.info().aggregate_type.clone())
    })
    .await
    .ok()
    .flatten()
}

/// Whether the file at `path` is new or changed since `seen` last had it; `seen` has
/// it as it is now afterwards.
fn changed(path: &Path, seen: &mut HashMap<PathBuf, FileStamp>) -> anyhow::Result<bool> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read plugin {}", path.display()))?;
    let stamp = (
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    );
    Ok(seen.insert(path.to_owned(), stamp) != Some(stamp))
}

/// Installs and activates a component of the plugins directory as a projection, as
/// an aggregate plugin is: a version older than the active one and not installed yet
/// is skipped, not an error. A projection's version becomes active once its read
/// model has caught up (a first version at once).
async fn install_projection(
    projections: &Projections,
    component: &Component,
) -> anyhow::Result<()> {
    let file = component.path.display();
    let options = ProjectionInstallOptions {
        activate: true,
        ..ProjectionInstallOptions::default()
    };
    match projections.install_with(&component.bytes, options).await {
        Ok(installed) => tracing::info!(
            %file,
            projection = %installed.info.name,
            version = %installed.info.version,
            already_installed = installed.already_installed,
            "projection installed and activated (a newer version takes over once caught up)"
        ),
        Err(ProjectionError::VersionNotNewer {
            name,
            version,
            installed,
        }) => tracing::info!(
            %file,
            projection = %name,
            %version,
            %installed,
            "projection skipped: a newer version is active"
        ),
        Err(ProjectionError::Install(InstallError::NotAProjection(not_projection))) => {
            anyhow::bail!(
                "cannot install plugin {file}: neither an aggregate plugin ({}) nor a \
                 projection ({not_projection})",
                component.not_aggregate
            );
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot install projection {file}"));
        }
    }
    Ok(())
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
