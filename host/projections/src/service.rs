//! [`Projections`]: the installed projections, their projectors and their queries.
//!
//! On disk, under the projections directory, each projection has a folder named for it
//! holding, per installed version, the component (`<version>.wasm`) and its read model
//! (`<version>.redb`). At start the newest version of each is active and resumes from
//! its checkpoint. Installing a newer version builds its read model in the background
//! (blue/green): the active version keeps serving and following the log, and the new
//! one takes over atomically once it has caught up. The previous version's files stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tally_runtime::{GlobalPosition, LoadedProjection, ProjectionInfo, Runtime};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::ProjectionError;
use crate::projector::{Control, ControlAt, Progress, ProjectionState, Projector, ProjectorConfig};
use crate::read_model::{Page, ReadModel, Snapshot};

/// Settings of the projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionsConfig {
    /// Where components and read models live (the data directory's `projections/`).
    pub dir: PathBuf,
    /// How projectors batch.
    pub projector: ProjectorConfig,
    /// Longest a read with a `min_position` waits for the projection to reach it.
    /// Default **5 s**.
    pub max_wait: Duration,
}

impl ProjectionsConfig {
    /// Defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ProjectionsConfig {
        ProjectionsConfig {
            dir: dir.into(),
            projector: ProjectorConfig::default(),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// A projection's status, as `GET /v1/projections` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// What it describes itself as (name, version, tables, ...).
    pub info: ProjectionInfo,
    /// Where the active version is.
    pub progress: Progress,
    /// Events in the log it has not reached yet.
    pub lag_events: u64,
    /// How old the last event it applied is, in ms, while it is behind (0 once it has
    /// caught up; `None` while behind with no event applied since the start).
    pub lag_ms: Option<u64>,
    /// A newer version building its read model, with its progress.
    pub building: Option<(semver::Version, Progress)>,
}

/// The installed projections: see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    config: ProjectionsConfig,
    entries: RwLock<BTreeMap<String, Entry>>,
}

/// One projection: the active version and, during a rebuild, the next one.
#[derive(Clone)]
struct Entry {
    active: Arc<Running>,
    building: Option<Arc<Running>>,
}

/// A projection version with its projector running.
struct Running {
    projection: LoadedProjection,
    model: ReadModel,
    progress: watch::Receiver<Progress>,
    control: mpsc::Sender<ControlAt>,
    /// Stops the projector when the version is dropped.
    _stop: DropGuard,
}

impl Projections {
    /// Opens the projections directory and starts the newest version of each
    /// projection from its checkpoint.
    pub async fn open(
        runtime: Runtime,
        config: ProjectionsConfig,
    ) -> Result<Projections, ProjectionError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| ProjectionError::Io {
            action: "create",
            path: config.dir.clone(),
            source,
        })?;
        let projections = Projections {
            inner: Arc::new(Inner {
                runtime,
                config,
                entries: RwLock::new(BTreeMap::new()),
            }),
        };
        for component in newest_components(&projections.inner.config.dir)? {
            let bytes = std::fs::read(&component).map_err(|source| ProjectionError::Io {
                action: "read",
                path: component.clone(),
                source,
            })?;
            let running = projections.start(&bytes)?;
            let name = running.projection.info().name.clone();
            projections.entries_mut().insert(
                name,
                Entry {
                    active: running,
                    building: None,
                },
            );
        }
        Ok(projections)
    }

    /// Installs a projection component. A first version becomes active at once and
    /// catches up; a newer version builds its read model beside the active one and
    /// takes over when it has caught up. Installing the active version's component
    /// again changes nothing. Returns its description.
    pub fn install(&self, bytes: &[u8]) -> Result<ProjectionInfo, ProjectionError> {
        let projection = LoadedProjection::load(self.inner.runtime.engine(), bytes)?;
        let info = projection.info().clone();
        let component = self.file(&info, "wasm");
        let installed = self
            .entry(&info.name)
            .ok()
            .map(|entry| entry.active.projection.info().version.clone());
        if let Some(installed) = installed.filter(|installed| *installed >= info.version) {
            if installed == info.version && std::fs::read(&component).ok().as_deref() == Some(bytes)
            {
                return Ok(info);
            }
            return Err(ProjectionError::VersionNotNewer {
                name: info.name,
                version: info.version,
                installed,
            });
        }
        write_atomically(&component, bytes)?;
        let running = self.start(bytes)?;
        let mut entries = self.entries_mut();
        match entries.get_mut(&info.name) {
            Some(entry) => {
                entry.building = Some(running.clone());
                drop(entries);
                self.promote_when_caught_up(info.name.clone(), running);
            }
            None => {
                entries.insert(
                    info.name.clone(),
                    Entry {
                        active: running,
                        building: None,
                    },
                );
            }
        }
        Ok(info)
    }

    /// Every projection's status, by name.
    pub fn list(&self) -> Vec<ProjectionStatus> {
        let end = self.inner.runtime.store().end_position();
        self.entries()
            .values()
            .map(|entry| {
                let progress = entry.active.progress.borrow().clone();
                let lag_events = end.events_since(progress.checkpoint);
                ProjectionStatus {
                    info: entry.active.projection.info().clone(),
                    lag_events,
                    lag_ms: lag_ms(lag_events, progress.last_event_ms),
                    progress,
                    building: entry.building.as_ref().map(|building| {
                        (
                            building.projection.info().version.clone(),
                            building.progress.borrow().clone(),
                        )
                    }),
                }
            })
            .collect()
    }

    /// The active version's read model of projection `name`, once it has applied
    /// every event before `min_position` (waiting up to the configured `max_wait`).
    pub async fn snapshot(
        &self,
        name: &str,
        table: &str,
        min_position: Option<GlobalPosition>,
    ) -> Result<Snapshot, ProjectionError> {
        let running = self.entry(name)?.active;
        let info = running.projection.info();
        if !info.tables.iter().any(|t| t == table) {
            return Err(ProjectionError::UnknownTable {
                projection: name.to_owned(),
                table: table.to_owned(),
                tables: info.tables.join(", "),
            });
        }
        if let Some(wanted) = min_position {
            self.wait_for(name, &running, wanted).await?;
        }
        running.model.snapshot()
    }

    /// One document of a projection's table, with the read model it was read from.
    pub async fn document(
        &self,
        name: &str,
        table: &str,
        key: &str,
        min_position: Option<GlobalPosition>,
    ) -> Result<(Option<Vec<u8>>, GlobalPosition), ProjectionError> {
        let snapshot = self.snapshot(name, table, min_position).await?;
        Ok((snapshot.document(table, key)?, snapshot.checkpoint()?))
    }

    /// A page of a projection's table in key order, with the position it reflects.
    pub async fn page(
        &self,
        name: &str,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        min_position: Option<GlobalPosition>,
    ) -> Result<(Page, GlobalPosition), ProjectionError> {
        let snapshot = self.snapshot(name, table, min_position).await?;
        Ok((
            snapshot.page(table, prefix, after, limit)?,
            snapshot.checkpoint()?,
        ))
    }

    /// Asks a faulted projection to apply its failed event again.
    pub async fn retry(&self, name: &str) -> Result<(), ProjectionError> {
        self.control(name, Control::Retry).await
    }

    /// Asks a faulted projection to pass over its failed event.
    pub async fn skip(&self, name: &str) -> Result<(), ProjectionError> {
        self.control(name, Control::Skip).await
    }

    /// Sends `control` about the fault the projection is at now.
    async fn control(&self, name: &str, control: Control) -> Result<(), ProjectionError> {
        let running = self.entry(name)?.active;
        let faulted_at = {
            let progress = running.progress.borrow();
            progress
                .fault
                .as_ref()
                .filter(|_| progress.state == ProjectionState::Faulted)
                .map(|fault| fault.position)
        };
        let Some(position) = faulted_at else {
            return Err(ProjectionError::NotFaulted(name.to_owned()));
        };
        let sent = running.control.send((control, position)).await;
        sent.map_err(|_| ProjectionError::NotFaulted(name.to_owned()))
    }

    /// Waits until `running` has applied every event before `wanted`: at once an error
    /// for a position past the end of the log, and no wait for a faulted projection.
    async fn wait_for(
        &self,
        name: &str,
        running: &Running,
        wanted: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        let end = self.inner.runtime.store().end_position();
        if wanted > end {
            return Err(ProjectionError::BeyondLog { wanted, end });
        }
        let mut progress = running.progress.clone();
        let reached = tokio::time::timeout(
            self.inner.config.max_wait,
            progress.wait_for(|progress| {
                progress.checkpoint >= wanted || progress.state == ProjectionState::Faulted
            }),
        )
        .await;
        let reached = reached.map(|result| result.map(|progress| progress.checkpoint >= wanted));
        match reached {
            Ok(Ok(true)) => Ok(()),
            _ => Err(ProjectionError::NotYet {
                projection: name.to_owned(),
                wanted,
                reached: running.progress.borrow().checkpoint,
            }),
        }
    }

    /// Loads a component and starts its projector over its read model.
    fn start(&self, bytes: &[u8]) -> Result<Arc<Running>, ProjectionError> {
        let projection = LoadedProjection::load(self.inner.runtime.engine(), bytes)?;
        let model = ReadModel::open(&self.file(projection.info(), "redb"))?;
        let (projector, progress, control) = Projector::new(
            self.inner.runtime.clone(),
            projection.clone(),
            model.clone(),
            self.inner.config.projector,
        )?;
        let stop = CancellationToken::new();
        tokio::spawn(projector.run(stop.clone().cancelled_owned()));
        Ok(Arc::new(Running {
            projection,
            model,
            progress,
            control,
            _stop: stop.drop_guard(),
        }))
    }

    /// Makes `running` the active version of `name` once it has caught up.
    fn promote_when_caught_up(&self, name: String, running: Arc<Running>) {
        let projections = self.clone();
        let mut progress = running.progress.clone();
        tokio::spawn(async move {
            let caught_up = progress
                .wait_for(|progress| progress.state == ProjectionState::Live)
                .await
                .is_ok();
            let mut entries = projections.entries_mut();
            let Some(entry) = entries.get_mut(&name) else {
                return;
            };
            let still_building = entry
                .building
                .as_ref()
                .is_some_and(|building| Arc::ptr_eq(building, &running));
            if caught_up && still_building {
                tracing::info!(projection = %name, version = %running.projection.info().version, "rebuilt read model is active");
                entry.active = running;
                entry.building = None;
            }
        });
    }

    fn file(&self, info: &ProjectionInfo, extension: &str) -> PathBuf {
        self.inner
            .config
            .dir
            .join(&info.name)
            .join(format!("{}.{extension}", info.version))
    }

    fn entry(&self, name: &str) -> Result<Entry, ProjectionError> {
        self.entries()
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
    }

    fn entries(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entries_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A projection's lag in time: none once caught up, else the age of the last event
/// it applied.
fn lag_ms(lag_events: u64, last_event_ms: Option<u64>) -> Option<u64> {
    if lag_events == 0 {
        return Some(0);
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    last_event_ms.map(|at| now_ms.saturating_sub(at))
}

/// The newest `<version>.wasm` in each projection's folder under `dir`.
fn newest_components(dir: &Path) -> Result<Vec<PathBuf>, ProjectionError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ProjectionError::Io {
            action: "read",
            path,
            source,
        }
    };
    let mut newest = Vec::new();
    for folder in std::fs::read_dir(dir).map_err(io(dir))? {
        let folder = folder.map_err(io(dir))?.path();
        if !folder.is_dir() {
            continue;
        }
        let mut versions = Vec::new();
        for file in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let file = file.map_err(io(&folder))?.path();
            let version = file
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".wasm"))
                .and_then(|stem| semver::Version::parse(stem).ok());
            versions.extend(version.map(|version| (version, file)));
        }
        newest.extend(versions.into_iter().max().map(|(_, file)| file));
    }
    Ok(newest)
}

/// Writes `bytes` to `path` through a temporary file, fsynced, then renamed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProjectionError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| ProjectionError::Io {
            action,
            path,
            source,
        }
    };
    let parent = path.parent().expect("a projection file is in a folder");
    std::fs::create_dir_all(parent).map_err(io("create"))?;
    let temporary = path.with_extension("wasm.partial");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary).map_err(io("create"))?;
        file.write_all(bytes).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
    }
    std::fs::rename(&temporary, path).map_err(io("rename"))?;
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync"))
}
