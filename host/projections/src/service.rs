//! [`Projections`]: the installed projections, their lifecycle, and their queries.
//!
//! On disk, under the projections directory, each projection has a folder named for it
//! holding its components (`<version>.wasm`), its read models, and the record of which
//! version is active (`active.json`; see the `record` module). At start the recorded
//! active version resumes from its checkpoint.
//!
//! The lifecycle mirrors aggregate plugins':
//!
//! - **install** stores a component. A projection's first version becomes active at once
//!   and catches up while it serves; a later one waits to be activated.
//! - **activate** builds a version's read model in the background (blue/green): from its
//!   kept read model's checkpoint if it is the previously active version, else from the
//!   start of the log into a fresh read model. The active version keeps serving and
//!   following the log. Once the build has caught up, the active version's projector is
//!   stopped, the build reaches the position where it stopped, the record is written,
//!   and queries switch to the build: a query never sees a read model behind one it was
//!   served before, nor one half built.
//! - **rollback** activates the previously active version the same way.
//! - **rebuild** builds the active version again from the start of the log into a fresh
//!   read model, the same way.
//!
//! After an activation or a rollback the version that was active is the previous one,
//! and its read model is kept (open, not following the log) for a rollback; the read
//! model of the version previous before is deleted. After a rebuild the previous
//! version stays as it was, and the replaced read model is deleted. One build runs at a
//! time: activating, rolling back or rebuilding while a build runs gives it up (asking
//! for the same build again changes nothing), and activating the active version gives
//! up a build without starting another.
//!
//! [`Projections::close`] stops every projector and returns once their read model files
//! are released, so that the same directory can be opened again at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tally_runtime::tally_store::EventLog;
use tally_runtime::{GlobalPosition, LoadedProjection, ProjectionInfo, Runtime, RuntimeError};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ProjectionError;
use crate::projector::{Control, ControlAt, Progress, ProjectionState, Projector, ProjectorConfig};
use crate::read_model::{Page, ReadModel, Snapshot};
use crate::record::{
    BuildReason, Record, Slot, delete_model, delete_other_models, installed_versions,
    record_of_old_folder, write_atomically,
};

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

/// How a component is installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectionInstallOptions {
    /// Activate it once stored (see [`Projections::activate`]).
    pub activate: bool,
    /// Install a version older than the active one.
    pub force: bool,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledProjection {
    /// What the component describes itself as.
    pub info: ProjectionInfo,
    /// The same component was installed already: nothing was stored.
    pub already_installed: bool,
}

/// How fast a projection version goes through the log, and when it will have caught up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    /// Events of the log it went through since its projector started (every event,
    /// also those of aggregate types it does not read).
    pub events_done: u64,
    /// Events per second over the last [`RATE_WINDOW`]; `None` until it has run for a
    /// moment.
    pub events_per_second: Option<f64>,
    /// When it will have caught up at that rate: zero once it has, `None` while the
    /// rate is unknown or zero (e.g. a faulted projection).
    pub eta: Option<Duration>,
}

/// A version being built beside the active one, as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildStatus {
    /// Its version.
    pub version: semver::Version,
    /// Its read model's generation.
    pub generation: u64,
    /// Why it is built.
    pub reason: BuildReason,
    /// Where it is.
    pub progress: Progress,
    /// Events in the log it has not reached yet.
    pub lag_events: u64,
    /// Its pace and when it will have caught up.
    pub throughput: Throughput,
}

/// A projection's status, as `GET /v1/projections` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// What the active version describes itself as (name, version, tables, ...).
    pub info: ProjectionInfo,
    /// Where the active version is.
    pub progress: Progress,
    /// Events in the log it has not reached yet.
    pub lag_events: u64,
    /// How old the last event it applied is, in ms, while it is behind (0 once it has
    /// caught up; `None` while behind with no event applied since the start).
    pub lag_ms: Option<u64>,
    /// The active read model's generation: each build makes a new one.
    pub generation: u64,
    /// The active version's pace and when it will have caught up.
    pub throughput: Throughput,
    /// The installed versions, oldest first.
    pub installed: Vec<semver::Version>,
    /// The version active before, whose read model is kept for a rollback.
    pub previous: Option<semver::Version>,
    /// The version building its read model, if any.
    pub building: Option<BuildStatus>,
}

/// The span over which a pace is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The shortest span a pace is given for.
const RATE_MIN_SPAN: Duration = Duration::from_millis(200);
/// Progress samples are kept at most this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The longest [`Projections::close`] and a start wait for a read model file to be
/// released by projector work that is still finishing (a plugin call runs to its end
/// or its CPU limit).
const RELEASE_WAIT: Duration = Duration::from_secs(60);

/// The installed projections: see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    config: ProjectionsConfig,
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Serialises activations, rollbacks, rebuilds and promotions.
    admin: tokio::sync::Mutex<()>,
    /// Serialises installs (components and first records).
    files: Mutex<()>,
    /// Bumped whenever a projection's active version changes: wakes the reads that
    /// wait for a position.
    swaps: watch::Sender<u64>,
    /// Parent of every projector's stop.
    stop: CancellationToken,
    /// Projectors, progress samplers, promotions.
    tasks: TaskTracker,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One projection: its active version, the kept previous one, and a build.
#[derive(Clone)]
struct Entry {
    folder: PathBuf,
    installed: BTreeSet<semver::Version>,
    active: Arc<Running>,
    previous: Option<Kept>,
    building: Option<Build>,
    next_generation: u64,
}

impl Entry {
    fn record(&self) -> Record {
        Record {
            active: self.active.slot(),
            previous: self.previous.as_ref().map(|kept| kept.slot.clone()),
            building: self
                .building
                .as_ref()
                .map(|build| (build.running.slot(), build.reason)),
            next_generation: self.next_generation,
        }
    }
}

/// The read model of the previously active version, kept open for a rollback.
#[derive(Clone)]
struct Kept {
    slot: Slot,
    model: ReadModel,
}

/// A version being built, and why.
#[derive(Clone)]
struct Build {
    running: Arc<Running>,
    reason: BuildReason,
}

/// A projection version with its projector running.
struct Running {
    projection: LoadedProjection,
    model: ReadModel,
    generation: u64,
    progress: watch::Receiver<Progress>,
    control: mpsc::Sender<ControlAt>,
    rate: Arc<Mutex<Rate>>,
    /// Stops the projector (also when the version is dropped).
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Running {
    fn version(&self) -> &semver::Version {
        &self.projection.info().version
    }

    fn slot(&self) -> Slot {
        Slot {
            version: self.version().clone(),
            generation: self.generation,
        }
    }

    fn checkpoint(&self) -> GlobalPosition {
        self.progress.borrow().checkpoint
    }

    /// Its progress, lag and pace against the log's `end`, at `now`.
    fn measure(&self, end: GlobalPosition, now: Instant) -> (Progress, u64, Throughput) {
        let progress = self.progress.borrow().clone();
        let lag_events = end.events_since(progress.checkpoint);
        let rate = self
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let throughput = rate.throughput(now, progress.checkpoint.get(), lag_events);
        (progress, lag_events, throughput)
    }

    /// Waits until its projector has ended (its progress sender is gone). Only after
    /// `stop` was cancelled does that happen soon.
    async fn ended(&self) {
        let mut progress = self.progress.clone();
        while progress.changed().await.is_ok() {}
    }
}

/// The pace of a projector, from samples of its checkpoint: see [`Throughput`].
#[derive(Debug, Clone)]
struct Rate {
    /// The checkpoint its projector started from.
    start: u64,
    /// `(when, checkpoint)`, oldest first, at least [`SAMPLE_EVERY`] apart; the oldest
    /// is the newest at or before the window's start, if one is that old.
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn new(at: Instant, checkpoint: u64) -> Rate {
        Rate {
            start: checkpoint,
            samples: VecDeque::from([(at, checkpoint)]),
        }
    }

    /// Records that the checkpoint was `checkpoint` at `at`.
    fn record(&mut self, at: Instant, checkpoint: u64) {
        if let Some(&(last, _)) = self.samples.back()
            && at.saturating_duration_since(last) < SAMPLE_EVERY
        {
            return;
        }
        self.samples.push_back((at, checkpoint));
        while self.samples.len() > 2 && self.samples[1].0 + RATE_WINDOW <= at {
            self.samples.pop_front();
        }
    }

    /// Events per second from the sample at the window's start (or the oldest) to
    /// `checkpoint` at `now`.
    fn per_second(&self, now: Instant, checkpoint: u64) -> Option<f64> {
        let window_start = now.checked_sub(RATE_WINDOW);
        let base = self
            .samples
            .iter()
            .rev()
            .find(|(at, _)| window_start.is_some_and(|start| *at <= start))
            .or(self.samples.front())?;
        let span = now.saturating_duration_since(base.0);
        if span < RATE_MIN_SPAN {
            return None;
        }
        Some(checkpoint.saturating_sub(base.1) as f64 / span.as_secs_f64())
    }

    fn throughput(&self, now: Instant, checkpoint: u64, lag_events: u64) -> Throughput {
        let events_per_second = self.per_second(now, checkpoint);
        let eta = if lag_events == 0 {
            Some(Duration::ZERO)
        } else {
            events_per_second
                .filter(|rate| *rate > 0.0)
                .map(|rate| Duration::from_secs_f64(lag_events as f64 / rate))
        };
        Throughput {
            events_done: checkpoint.saturating_sub(self.start),
            events_per_second,
            eta,
        }
    }
}

/// How a read's wait for a position ended.
enum Wait {
    /// The projection reached it (true), or faulted before it (false).
    Reached(bool),
    /// The active version changed: look again.
    Swapped,
    /// The projector stopped.
    Ended,
}

/// How a promotion attempt ended.
enum Promotion {
    /// The build is active.
    Done,
    /// The build is no longer wanted (given up, or the projections closed).
    Gone,
    /// The build faulted before it reached the active version: wait until it is live
    /// again.
    NotYet,
}

impl Projections {
    /// Opens the projections directory and starts the recorded active version of each
    /// projection from its checkpoint (and its build, if one was under way).
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
                admin: tokio::sync::Mutex::new(()),
                files: Mutex::new(()),
                swaps: watch::Sender::new(0),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                closed: AtomicBool::new(false),
            }),
        };
        let dir = projections.inner.config.dir.clone();
        let io = |source| ProjectionError::Io {
            action: "read",
            path: dir.clone(),
            source,
        };
        let mut folders = Vec::new();
        for folder in std::fs::read_dir(&dir).map_err(io)? {
            let folder = folder.map_err(io)?.path();
            if folder.is_dir() {
                folders.push(folder);
            }
        }
        folders.sort();
        for folder in folders {
            projections.open_folder(&folder).await?;
        }
        Ok(projections)
    }

    /// Starts the projection of `folder` as its record says (or, with no record, its
    /// newest version).
    async fn open_folder(&self, folder: &Path) -> Result<(), ProjectionError> {
        let Some(name) = folder.file_name().and_then(|name| name.to_str()) else {
            return Ok(());
        };
        let installed = installed_versions(folder)?;
        let read = Record::read(folder)?;
        let Some(mut record) = read
            .clone()
            .or_else(|| record_of_old_folder(folder, &installed))
        else {
            return Ok(());
        };
        if !installed.contains(&record.active.version) {
            return Err(invalid_data(
                folder,
                format!(
                    "the active version {}'s component is missing",
                    record.active.version
                ),
            ));
        }
        if self.is_aggregate_type(name) {
            tracing::error!(projection = %name, "not started: an aggregate type has its name (aggregate types and projections share one namespace)");
            return Ok(());
        }
        record.previous = record.previous.filter(|previous| {
            installed.contains(&previous.version) && folder.join(previous.model_file()).is_file()
        });
        record.building = record.building.filter(|(building, _)| {
            installed.contains(&building.version) && *building != record.active
        });

        let model = open_model(&folder.join(record.active.model_file())).await?;
        let projection = self.load_component(folder, name, &record.active.version)?;
        let active = self.start(projection, model, record.active.generation)?;
        let previous = match &record.previous {
            Some(slot) => Some(Kept {
                slot: slot.clone(),
                model: open_model(&folder.join(slot.model_file())).await?,
            }),
            None => None,
        };
        let building = match &record.building {
            Some((slot, reason)) => {
                let kept = previous.as_ref().filter(|kept| kept.slot == *slot);
                let model = match kept {
                    Some(kept) => kept.model.clone(),
                    None => open_model(&folder.join(slot.model_file())).await?,
                };
                let projection = self.load_component(folder, name, &slot.version)?;
                Some(Build {
                    running: self.start(projection, model, slot.generation)?,
                    reason: *reason,
                })
            }
            None => None,
        };
        let newest_generation = [Some(&record.active), record.previous.as_ref()]
            .into_iter()
            .chain([record.building.as_ref().map(|(slot, _)| slot)])
            .flatten()
            .map(|slot| slot.generation)
            .max()
            .unwrap_or(0);
        let entry = Entry {
            folder: folder.to_owned(),
            installed,
            active,
            previous,
            building,
            next_generation: record.next_generation.max(newest_generation + 1),
        };
        let record = entry.record();
        if read.as_ref() != Some(&record) {
            record.write(folder)?;
        }
        delete_other_models(folder, &record.model_files());
        let build = entry.building.as_ref().map(|build| build.running.clone());
        self.entries_mut().insert(name.to_owned(), entry);
        if let Some(build) = build {
            tracing::info!(projection = %name, version = %build.version(), "resuming a build");
            self.promote_when_caught_up(name.to_owned(), build);
        }
        Ok(())
    }

    /// Installs a projection component: stores it; a projection's first version
    /// becomes active at once and catches up. Installing a stored component again
    /// changes nothing. Returns its description.
    pub fn install(&self, bytes: &[u8]) -> Result<ProjectionInfo, ProjectionError> {
        self.store(bytes, false).map(|installed| installed.info)
    }

    /// Installs a projection component as [`install`](Self::install) does, and with
    /// `options.activate` activates it (see [`activate`](Self::activate)).
    pub async fn install_with(
        &self,
        bytes: &[u8],
        options: ProjectionInstallOptions,
    ) -> Result<InstalledProjection, ProjectionError> {
        let installed = self.store(bytes, options.force)?;
        if options.activate {
            let info = &installed.info;
            self.activate(&info.name, &info.version.to_string()).await?;
        }
        Ok(installed)
    }

    /// Stores a component; a first version becomes active.
    fn store(&self, bytes: &[u8], force: bool) -> Result<InstalledProjection, ProjectionError> {
        self.check_open()?;
        let projection = LoadedProjection::load(self.inner.runtime.engine(), bytes)?;
        let info = projection.info().clone();
        if self.is_aggregate_type(&info.name) {
            return Err(ProjectionError::NameTaken(info.name));
        }
        let _files = self
            .inner
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let folder = self.inner.config.dir.join(&info.name);
        let component = folder.join(format!("{}.wasm", info.version));
        let active = self
            .entries()
            .get(&info.name)
            .map(|entry| entry.active.version().clone());
        let already_installed = match std::fs::read(&component) {
            Ok(stored) if stored == bytes => true,
            Ok(_) => {
                return Err(ProjectionError::VersionExists {
                    name: info.name,
                    version: info.version,
                });
            }
            Err(_) => false,
        };
        if !already_installed {
            if let Some(active) = active
                .clone()
                .filter(|active| info.version < *active && !force)
            {
                return Err(ProjectionError::VersionNotNewer {
                    name: info.name,
                    version: info.version,
                    installed: active,
                });
            }
            write_atomically(&component, bytes)?;
            tracing::info!(projection = %info.name, version = %info.version, "projection installed");
        }
        if active.is_some() {
            if let Some(entry) = self.entries_mut().get_mut(&info.name) {
                entry.installed.insert(info.version.clone());
            }
            return Ok(InstalledProjection {
                info,
                already_installed,
            });
        }
        // The first version: active at once, from the start of the log.
        let slot = Slot {
            version: info.version.clone(),
            generation: 1,
        };
        let path = folder.join(slot.model_file());
        delete_model(&path);
        let model = ReadModel::open(&path)?;
        let entry = Entry {
            folder: folder.clone(),
            installed: installed_versions(&folder)?,
            active: self.start(projection, model, slot.generation)?,
            previous: None,
            building: None,
            next_generation: slot.generation + 1,
        };
        entry.record().write(&folder)?;
        tracing::info!(projection = %info.name, version = %info.version, "projection active");
        self.entries_mut().insert(info.name.clone(), entry);
        Ok(InstalledProjection {
            info,
            already_installed,
        })
    }

    /// Makes installed `version` of projection `name` the active one: builds its read
    /// model beside the active one (from its kept read model if it is the previously
    /// active version, else from the start of the log) and switches to it once it has
    /// caught up. Returns at once, with the status showing the build. Activating the
    /// active version gives up a build in progress, if any, and changes nothing else.
    pub async fn activate(
        &self,
        name: &str,
        version: &str,
    ) -> Result<ProjectionStatus, ProjectionError> {
        let _admin = self.admin().await?;
        let entry = self.entry(name)?;
        let version = semver::Version::parse(version)
            .ok()
            .filter(|version| entry.installed.contains(version))
            .ok_or_else(|| ProjectionError::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
            })?;
        self.switch(name, entry, version, BuildReason::Activate)
            .await?;
        self.status(name)
    }

    /// Activates the previously active version of projection `name` as
    /// [`activate`](Self::activate) does: from its kept read model's checkpoint.
    pub async fn rollback(&self, name: &str) -> Result<ProjectionStatus, ProjectionError> {
        let _admin = self.admin().await?;
        let entry = self.entry(name)?;
        let Some(previous) = entry
            .previous
            .as_ref()
            .map(|kept| kept.slot.version.clone())
        else {
            return Err(ProjectionError::NothingToRollBack(name.to_owned()));
        };
        self.switch(name, entry, previous, BuildReason::Rollback)
            .await?;
        self.status(name)
    }

    /// Rebuilds the active version of projection `name` from the start of the log into
    /// a fresh read model, beside the one serving, and switches to it once it has
    /// caught up. A rebuild already under way goes on.
    pub async fn rebuild(&self, name: &str) -> Result<ProjectionStatus, ProjectionError> {
        let _admin = self.admin().await?;
        let entry = self.entry(name)?;
        let rebuilding = entry
            .building
            .as_ref()
            .is_some_and(|build| build.reason == BuildReason::Rebuild);
        if !rebuilding {
            self.give_up_build(name).await?;
            let version = entry.active.version().clone();
            self.build(name, version, None, BuildReason::Rebuild)
                .await?;
        }
        self.status(name)
    }

    /// Builds `version` for an activation or a rollback, unless it is active or
    /// being built already.
    async fn switch(
        &self,
        name: &str,
        entry: Entry,
        version: semver::Version,
        reason: BuildReason,
    ) -> Result<(), ProjectionError> {
        let building_it = entry.building.as_ref().is_some_and(|build| {
            build.reason != BuildReason::Rebuild && *build.running.version() == version
        });
        if building_it {
            return Ok(());
        }
        self.give_up_build(name).await?;
        if version == *entry.active.version() {
            return Ok(());
        }
        let kept = entry
            .previous
            .filter(|previous| previous.slot.version == version);
        self.build(name, version, kept, reason).await
    }

    /// Starts building `version` of `name` into `kept` (resuming it) or into a fresh
    /// read model, records it, and promotes it once it has caught up.
    async fn build(
        &self,
        name: &str,
        version: semver::Version,
        kept: Option<Kept>,
        reason: BuildReason,
    ) -> Result<(), ProjectionError> {
        let mut entry = self.entry(name)?;
        let folder = entry.folder.clone();
        let fresh = kept.is_none();
        let (slot, model) = match kept {
            Some(kept) => (kept.slot, kept.model),
            None => {
                let slot = Slot {
                    version: version.clone(),
                    generation: entry.next_generation,
                };
                entry.next_generation += 1;
                let path = folder.join(slot.model_file());
                delete_model(&path);
                (slot, ReadModel::open(&path)?)
            }
        };
        let path = model.path().to_owned();
        let projection = self.load_component(&folder, name, &version)?;
        let running = self.start(projection, model, slot.generation)?;
        entry.building = Some(Build {
            running: running.clone(),
            reason,
        });
        if let Err(error) = entry.record().write(&folder) {
            drop(running);
            if fresh {
                delete_model(&path);
            }
            return Err(error);
        }
        if let Some(current) = self.entries_mut().get_mut(name) {
            current.building = entry.building;
            current.next_generation = entry.next_generation;
        }
        tracing::info!(projection = %name, %version, generation = slot.generation, reason = reason.as_str(), "building a read model");
        self.promote_when_caught_up(name.to_owned(), running);
        Ok(())
    }

    /// Gives up the build of `name` in progress, if any: records it, stops its
    /// projector and deletes its read model (unless it is the kept previous one).
    async fn give_up_build(&self, name: &str) -> Result<(), ProjectionError> {
        let mut entry = self.entry(name)?;
        let Some(build) = entry.building.take() else {
            return Ok(());
        };
        entry.record().write(&entry.folder)?;
        if let Some(current) = self.entries_mut().get_mut(name) {
            current.building = None;
        }
        let running = build.running;
        tracing::info!(projection = %name, version = %running.version(), reason = build.reason.as_str(), "build given up");
        running.stop.cancel();
        running.ended().await;
        let kept = entry
            .previous
            .as_ref()
            .is_some_and(|kept| kept.slot == running.slot());
        if !kept {
            let path = entry.folder.join(running.slot().model_file());
            drop(running);
            delete_model(&path);
        }
        Ok(())
    }

    /// Promotes `build` once it has caught up, in a task: see [`Self::promote`].
    fn promote_when_caught_up(&self, name: String, build: Arc<Running>) {
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut progress = build.progress.clone();
        self.inner.tasks.spawn(async move {
            loop {
                let live = progress
                    .wait_for(|progress| progress.state == ProjectionState::Live)
                    .await
                    .is_ok();
                let Some(inner) = inner.upgrade().filter(|_| live) else {
                    return;
                };
                let projections = Projections { inner };
                match projections.promote(&name, &build).await {
                    Ok(Promotion::Done | Promotion::Gone) => return,
                    Ok(Promotion::NotYet) => {}
                    Err(error) => {
                        tracing::error!(projection = %name, %error, "the build could not be made active");
                        return;
                    }
                }
            }
        });
    }

    /// Makes `build`, caught up, the active version of `name`: stops the active
    /// version's projector, waits until the build has reached the position where it
    /// stopped, records the switch, switches, and deletes the read model no longer kept.
    async fn promote(
        &self,
        name: &str,
        build: &Arc<Running>,
    ) -> Result<Promotion, ProjectionError> {
        let Ok(_admin) = self.admin().await else {
            return Ok(Promotion::Gone);
        };
        let Ok(entry) = self.entry(name) else {
            return Ok(Promotion::Gone);
        };
        let Some(reason) = entry
            .building
            .as_ref()
            .filter(|current| Arc::ptr_eq(&current.running, build))
            .map(|current| current.reason)
        else {
            return Ok(Promotion::Gone);
        };
        let old = entry.active.clone();
        old.stop.cancel();
        old.ended().await;
        let stopped_at = old.checkpoint();
        let mut progress = build.progress.clone();
        let reached = tokio::select! {
            reached = progress.wait_for(|progress| {
                progress.checkpoint >= stopped_at || progress.state == ProjectionState::Faulted
            }) => reached.is_ok_and(|progress| progress.checkpoint >= stopped_at),
            () = self.inner.stop.cancelled() => return Ok(Promotion::Gone),
        };
        if !reached {
            tracing::warn!(projection = %name, version = %build.version(), "the build stopped before it reached the active version, which goes on");
            self.restart_active(name, &old)?;
            return Ok(Promotion::NotYet);
        }
        let (previous, stale) = match reason {
            BuildReason::Activate | BuildReason::Rollback => {
                let stale = entry
                    .previous
                    .clone()
                    .filter(|previous| previous.slot != build.slot());
                let previous = Kept {
                    slot: old.slot(),
                    model: old.model.clone(),
                };
                (Some(previous), stale)
            }
            BuildReason::Rebuild => {
                let stale = Kept {
                    slot: old.slot(),
                    model: old.model.clone(),
                };
                (entry.previous.clone(), Some(stale))
            }
        };
        let next = Entry {
            active: build.clone(),
            previous,
            building: None,
            ..entry
        };
        if let Err(error) = next.record().write(&next.folder) {
            self.restart_active(name, &old)?;
            return Err(error);
        }
        if let Some(current) = self.entries_mut().get_mut(name) {
            current.active = next.active;
            current.previous = next.previous;
            current.building = None;
        }
        self.inner.swaps.send_modify(|swaps| *swaps += 1);
        tracing::info!(projection = %name, version = %build.version(), generation = build.generation, reason = reason.as_str(), position = %stopped_at, "the built read model is active");
        drop(old);
        if let Some(stale) = stale {
            drop(stale.model);
            delete_model(&next.folder.join(stale.slot.model_file()));
        }
        Ok(Promotion::Done)
    }

    /// Starts the projector of `old`, stopped for a promotion that did not happen,
    /// again over the same read model.
    fn restart_active(&self, name: &str, old: &Arc<Running>) -> Result<(), ProjectionError> {
        let restarted = self.start(old.projection.clone(), old.model.clone(), old.generation)?;
        if let Some(entry) = self.entries_mut().get_mut(name)
            && Arc::ptr_eq(&entry.active, old)
        {
            entry.active = restarted;
        }
        self.inner.swaps.send_modify(|swaps| *swaps += 1);
        Ok(())
    }

    /// Whether a projection of that name is installed.
    pub fn contains(&self, name: &str) -> bool {
        self.entries().contains_key(name)
    }

    /// Every projection's status, by name.
    pub fn list(&self) -> Vec<ProjectionStatus> {
        let end = self.inner.runtime.store().known_end();
        let now = Instant::now();
        self.entries()
            .values()
            .map(|entry| status_of(entry, end, now))
            .collect()
    }

    /// The status of projection `name`.
    pub fn status(&self, name: &str) -> Result<ProjectionStatus, ProjectionError> {
        let end = self.inner.runtime.store().known_end();
        Ok(status_of(&self.entry(name)?, end, Instant::now()))
    }

    /// The active version's read model of projection `name`, once it has applied
    /// every event before `min_position` (waiting up to the configured `max_wait`,
    /// across a switch to a new read model).
    pub async fn snapshot(
        &self,
        name: &str,
        table: &str,
        min_position: Option<GlobalPosition>,
    ) -> Result<Snapshot, ProjectionError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.max_wait;
        loop {
            let mut swaps = self.inner.swaps.subscribe();
            let running = self.active(name)?;
            let info = running.projection.info();
            if !info.tables.iter().any(|t| t == table) {
                return Err(ProjectionError::UnknownTable {
                    projection: name.to_owned(),
                    table: table.to_owned(),
                    tables: info.tables.join(", "),
                });
            }
            let Some(wanted) = min_position else {
                return running.model.snapshot();
            };
            let end = self
                .inner
                .runtime
                .store()
                .end_position()
                .await
                .map_err(RuntimeError::from)?;
            if wanted > end {
                return Err(ProjectionError::BeyondLog { wanted, end });
            }
            let mut progress = running.progress.clone();
            let waited = tokio::time::timeout_at(deadline, async {
                let waited = tokio::select! {
                    reached = progress.wait_for(|progress| {
                        progress.checkpoint >= wanted || progress.state == ProjectionState::Faulted
                    }) => match reached {
                        Ok(progress) => Wait::Reached(progress.checkpoint >= wanted),
                        Err(_) => Wait::Ended,
                    },
                    _ = swaps.changed() => Wait::Swapped,
                };
                if let Wait::Ended = waited {
                    // Its projector stopped for a switch: wait for the version that
                    // replaces it.
                    let _ = swaps.changed().await;
                    return Wait::Swapped;
                }
                waited
            })
            .await;
            match waited {
                Ok(Wait::Reached(true)) => return running.model.snapshot(),
                Ok(Wait::Swapped) => continue,
                _ => {
                    return Err(ProjectionError::NotYet {
                        projection: name.to_owned(),
                        wanted,
                        reached: running.checkpoint(),
                    });
                }
            }
        }
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

    /// Asks a faulted projection to apply its failed event again: the active version
    /// if it is faulted, else the version being built.
    pub async fn retry(&self, name: &str) -> Result<(), ProjectionError> {
        self.control(name, Control::Retry).await
    }

    /// Asks a faulted projection to pass over its failed event: the active version if
    /// it is faulted, else the version being built.
    pub async fn skip(&self, name: &str) -> Result<(), ProjectionError> {
        self.control(name, Control::Skip).await
    }

    /// Sends `control` about the fault the active version (or else the build) is at.
    async fn control(&self, name: &str, control: Control) -> Result<(), ProjectionError> {
        let entry = self.entry(name)?;
        let faulted_at = |running: &Running| {
            let progress = running.progress.borrow();
            progress
                .fault
                .as_ref()
                .filter(|_| progress.state == ProjectionState::Faulted)
                .map(|fault| fault.position)
        };
        let building = entry.building.as_ref().map(|build| &build.running);
        let faulted = [Some(&entry.active), building]
            .into_iter()
            .flatten()
            .find_map(|running| faulted_at(running).map(|position| (running, position)));
        let Some((running, position)) = faulted else {
            return Err(ProjectionError::NotFaulted(name.to_owned()));
        };
        let sent = running.control.send((control, position)).await;
        sent.map_err(|_| ProjectionError::NotFaulted(name.to_owned()))
    }

    /// Stops every projector and returns once they have released their read model
    /// files. Afterwards nothing is installed, activated or served.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.stop.cancel();
        // Administrative work under way ends (it sees the stop or the flag).
        drop(self.inner.admin.lock().await);
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        let entries = std::mem::take(&mut *self.entries_mut());
        let mut files = Vec::new();
        for entry in entries.values() {
            files.push(entry.active.model.path().to_owned());
            files.extend(
                entry
                    .previous
                    .iter()
                    .map(|kept| kept.model.path().to_owned()),
            );
            files.extend(
                entry
                    .building
                    .iter()
                    .map(|build| build.running.model.path().to_owned()),
            );
        }
        drop(entries);
        for file in files {
            wait_released(&file).await;
        }
        tracing::info!("projections closed");
    }

    /// Loads a component and starts its projector over `model`.
    fn start(
        &self,
        projection: LoadedProjection,
        model: ReadModel,
        generation: u64,
    ) -> Result<Arc<Running>, ProjectionError> {
        let (projector, progress, control) = Projector::new(
            self.inner.runtime.clone(),
            projection.clone(),
            model.clone(),
            self.inner.config.projector,
        )?;
        // Where it starts, before it can move.
        let rate = Arc::new(Mutex::new(Rate::new(
            Instant::now(),
            progress.borrow().checkpoint.get(),
        )));
        let stop = self.inner.stop.child_token();
        self.inner
            .tasks
            .spawn(projector.run(stop.clone().cancelled_owned()));
        self.inner
            .tasks
            .spawn(sample(progress.clone(), rate.clone(), stop.clone()));
        Ok(Arc::new(Running {
            projection,
            model,
            generation,
            progress,
            control,
            rate,
            stop,
        }))
    }

    /// Loads `version` of projection `name` from `folder`.
    fn load_component(
        &self,
        folder: &Path,
        name: &str,
        version: &semver::Version,
    ) -> Result<LoadedProjection, ProjectionError> {
        let path = folder.join(format!("{version}.wasm"));
        let bytes = std::fs::read(&path).map_err(|source| ProjectionError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let projection = LoadedProjection::load(self.inner.runtime.engine(), &bytes)?;
        let info = projection.info();
        if info.name != name || info.version != *version {
            return Err(invalid_data(
                &path,
                format!("the component describes {} {}", info.name, info.version),
            ));
        }
        Ok(projection)
    }

    /// Whether an aggregate type of that name has plugins installed.
    fn is_aggregate_type(&self, name: &str) -> bool {
        self.inner
            .runtime
            .plugins()
            .iter()
            .any(|plugin| plugin.aggregate_type == name)
    }

    fn check_open(&self) -> Result<(), ProjectionError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ProjectionError::Closed);
        }
        Ok(())
    }

    /// The administrative lock, unless the projections are closed.
    async fn admin(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, ProjectionError> {
        let admin = self.inner.admin.lock().await;
        self.check_open()?;
        Ok(admin)
    }

    fn active(&self, name: &str) -> Result<Arc<Running>, ProjectionError> {
        self.entries()
            .get(name)
            .map(|entry| entry.active.clone())
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
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

/// A projection's status against the log's `end`, at `now`.
fn status_of(entry: &Entry, end: GlobalPosition, now: Instant) -> ProjectionStatus {
    let (progress, lag_events, throughput) = entry.active.measure(end, now);
    ProjectionStatus {
        info: entry.active.projection.info().clone(),
        lag_ms: lag_ms(lag_events, progress.last_event_ms),
        progress,
        lag_events,
        generation: entry.active.generation,
        throughput,
        installed: entry.installed.iter().cloned().collect(),
        previous: entry
            .previous
            .as_ref()
            .map(|kept| kept.slot.version.clone()),
        building: entry.building.as_ref().map(|build| {
            let (progress, lag_events, throughput) = build.running.measure(end, now);
            BuildStatus {
                version: build.running.version().clone(),
                generation: build.running.generation,
                reason: build.reason,
                progress,
                lag_events,
                throughput,
            }
        }),
    }
}

/// Samples a projector's checkpoint into `rate` whenever it moves, until it stops.
async fn sample(
    mut progress: watch::Receiver<Progress>,
    rate: Arc<Mutex<Rate>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = stop.cancelled() => return,
        }
        let checkpoint = progress.borrow_and_update().checkpoint.get();
        rate.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(Instant::now(), checkpoint);
    }
}

/// Opens the read model at `path` once no earlier projector of this process holds it.
async fn open_model(path: &Path) -> Result<ReadModel, ProjectionError> {
    wait_released(path).await;
    ReadModel::open(path)
}

/// Waits (up to [`RELEASE_WAIT`]) until the read model file at `path` is not open in
/// this process: a projector that was stopped may still be finishing a plugin call
/// that reads it.
async fn wait_released(path: &Path) {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match redb::Database::open(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                tracing::warn!(path = %path.display(), "read model still open");
                return;
            }
            _ => return,
        }
    }
}

fn invalid_data(path: &Path, message: String) -> ProjectionError {
    ProjectionError::Io {
        action: "read",
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_pace_is_unknown_for_a_moment_then_measured_over_the_window() {
        let t0 = Instant::now();
        let mut rate = Rate::new(t0, 100);
        assert_eq!(rate.per_second(t0 + Duration::from_millis(50), 150), None);
        // 1,000 events a second for 20 s, sampled every 500 ms.
        for n in 1..=40u64 {
            rate.record(t0 + SECOND * n as u32 / 2, 100 + n * 500);
        }
        let now = t0 + 20 * SECOND;
        let throughput = rate.throughput(now, 20_100, 5_000);
        assert_eq!(throughput.events_done, 20_000);
        let per_second = throughput.events_per_second.unwrap();
        assert!((per_second - 1_000.0).abs() < 1e-6, "{per_second}");
        assert_eq!(throughput.eta, Some(5 * SECOND));
        assert!(
            rate.samples.len() <= 22,
            "old samples are dropped: {}",
            rate.samples.len()
        );
    }

    #[test]
    fn the_pace_follows_a_change_of_speed_within_the_window() {
        let t0 = Instant::now();
        let mut rate = Rate::new(t0, 0);
        // 100 events/s for 30 s, then 1,000 events/s for 20 s.
        let mut checkpoint = 0;
        for n in 1..=50u64 {
            checkpoint += if n <= 30 { 100 } else { 1_000 };
            rate.record(t0 + SECOND * n as u32, checkpoint);
        }
        let per_second = rate.per_second(t0 + 50 * SECOND, checkpoint).unwrap();
        assert!((per_second - 1_000.0).abs() < 1e-6, "{per_second}");
    }

    #[test]
    fn a_stalled_projector_has_no_pace_and_no_estimate() {
        let t0 = Instant::now();
        let mut rate = Rate::new(t0, 0);
        rate.record(t0 + SECOND, 5_000);
        // Nothing since: a fault, say.
        let throughput = rate.throughput(t0 + 30 * SECOND, 5_000, 100);
        assert_eq!(throughput.events_per_second, Some(0.0));
        assert_eq!(throughput.eta, None);
        // Caught up: nothing left to wait for.
        assert_eq!(
            rate.throughput(t0 + 30 * SECOND, 5_000, 0).eta,
            Some(Duration::ZERO)
        );
    }
}
