//! `tally-bench projection`: the account-summary projection (a read model as a
//! WebAssembly plugin, `tally-projections`) catching up over a large log, beside the
//! same logic compiled natively and the plugin alone; then its lag behind durable
//! commands, and what it costs the commands.
//!
//! The log: `projection_accounts` bank accounts (1,000) opened through bank-account v1,
//! then deposits of 1 appended straight to the store, one event per append and the
//! accounts taken in turn, in the plugin's exact JSON, up to `projection_events`
//! events (1,000,000; 50,000 with `--quick`). The projection reads every one of them.
//!
//! | figure | how |
//! | --- | --- |
//! | `projection_catchup_events_per_s` | `Projections::install` of account-summary on that log, until it has applied every event (`document(.., Some(end))` returns): the whole projector, reading the log, upcasting, the plugin's `apply` per batch over the redb read model while the next batch is read, and one redb transaction per batch (made durable once a second). Target: 500,000 /s |
//! | `projection_native_events_per_s` | the same batches (read and upcast beforehand, untimed) applied by account-summary's own source compiled into the bench, through the SDK's projection wire layer (`__private::projection_wire::apply`), into its in-memory store |
//! | `projection_plugin_events_per_s` | the same batches through the plugin (`ProjectionInstance::apply`) over an in-memory `DocumentSource`, each batch's writes merged into it: the sandbox's price, without storage |
//! | `projection_read_events_per_s` | reading the log (`read_all`, in the projector's largest batches) and making the envelopes (`Runtime::current_envelopes`), as the projector does |
//! | `projection_commit_events_per_s`, `projection_commit_batch_ms` | the plugin's writes of each batch committed to a scratch redb read model (`ReadModel::commit`, one transaction per batch, durable once a second as the projector does): storage alone |
//! | `projection_*_cpu_us_per_event` | the process's CPU time (all threads) over each of the above divided by the events: steadier than the rates on a shared machine |
//! | `projection_lag_*_ms` | 256 tasks send durable deposits through `Runtime::execute` with the projection live; every 64th answer, the time until `document(.., Some(position))` returns, `position` being past the command's last event. Target: p99 under 50 ms. `projection_live_applied_per_s`: the events the projection applied per second meanwhile |
//! | `projection_live_commands_per_s` / `projection_base_commands_per_s` | the commands' rate in that window, and in an equal window at the end with the projection stopped; CPU per command of each |
//! | `projection_lag_64_*_ms`, `projection_live_64_commands_per_s` | the same lag with 64 tasks, a load the projection keeps up with, in a window between those two |

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use account_summary::AccountSummary;
use anyhow::{Context as _, Result, ensure};
use hdrhistogram::Histogram;
use serde_json::Value;
use tally_projections::{Commit, ProjectionState, Projections, ProjectionsConfig, ReadModel};
use tally_runtime::tally_store::{EventLog, EventStore, StreamId};
use tally_runtime::{
    DocumentSource, DocumentWrites, EventEnvelope, ExecuteOptions, GlobalPosition,
    LoadedProjection, ProjectionInfo, Runtime, RuntimeConfig,
};
use tally_sdk::__private::projection_wire::{self, DocumentStore, MemoryDocuments, RawEnvelope};
use tokio::task::JoinHandle;

use super::report::Report;
use super::setup::{self, Rate, TYPE, account_id, deposit};
use super::{BenchOptions, Progress};

/// The projection's name, tables and the key of its totals.
const NAME: &str = "account-summary";
const ACCOUNTS_TABLE: &str = account_summary::ACCOUNTS;
const TOTALS_TABLE: &str = account_summary::TOTALS;
const ALL: &str = account_summary::ALL;

/// Accounts of the log.
const ACCOUNTS: u64 = 1_000;

/// Each account's opening balance.
const INITIAL_BALANCE: i64 = 1_000;

/// Concurrent command senders at full load (as `commands`).
const WRITERS: u64 = 256;

/// Concurrent command senders of the moderate load (as `http`).
const MODERATE_WRITERS: u64 = 64;

/// One command in this many is followed until the projection has applied it.
const SAMPLE_EVERY: u64 = 64;

/// Concurrent appenders while building the log.
const BUILDERS: u64 = 64;

/// Targets stated in docs/BENCHMARKS.md.
const CATCHUP_TARGET_PER_S: f64 = 500_000.0;
const LAG_P99_TARGET_MS: f64 = 50.0;

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let events: u64 = if options.quick { 50_000 } else { 1_000_000 };
    let work = options.work_dir("projection")?;
    let dir = work.path().join("data");
    let bank = setup::component_bytes(options, "bank_account.wasm")?;
    let summary = setup::component_bytes(options, "account_summary.wasm")?;

    progress.set(&format!(
        "projection: building a log of {events} events over {ACCOUNTS} accounts"
    ));
    build_log(options, &dir, &bank, events).await?;
    let mut config = RuntimeConfig::new(&dir);
    config.engine.cache_dir = Some(options.compile_cache());
    let (runtime, _) = Runtime::open(config).await?;
    let expected = Expected::of(events);

    progress.set(
        "projection: the same batches natively, through the plugin alone, and committed alone",
    );
    let scratch = work.path().join("scratch.redb");
    let parts = Parts::measure(&runtime, &summary, &scratch, &expected).await?;
    std::fs::remove_file(&scratch)?;

    progress.set(&format!(
        "projection: account-summary catching up over {events} events"
    ));
    let mut projections_config = ProjectionsConfig::new(work.path().join("projections"));
    projections_config.max_wait = Duration::from_secs(600);
    let projections = Projections::open(runtime.clone(), projections_config).await?;
    let catchup = catch_up(&runtime, &projections, &summary, &expected).await?;

    let window = options.window();
    progress.set(&format!(
        "projection: {WRITERS} tasks of durable deposits for {window:?} with the projection live"
    ));
    let live = live_window(&runtime, &projections, WRITERS, window, &expected, 0).await?;
    progress.set(&format!(
        "projection: {MODERATE_WRITERS} tasks of durable deposits for {window:?} with the projection live"
    ));
    let moderate = live_window(
        &runtime,
        &projections,
        MODERATE_WRITERS,
        window,
        &expected,
        live.deposits,
    )
    .await?;
    drop(projections);
    // The projector stops when its projections are dropped; let it finish its batch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    progress.set(&format!(
        "projection: the same deposits for {window:?} without the projection"
    ));
    let base = deposits(&runtime, WRITERS, window, None).await?;
    runtime.close().await?;
    drop(runtime);
    work.close()?;
    Ok(report(
        events, &parts, &catchup, &live, &moderate, &base.rate,
    ))
}

/// What the log must fold into.
struct Expected {
    /// Events in the log.
    events: u64,
    /// Deposits of 1 on each account.
    deposits_per_account: u64,
}

impl Expected {
    fn of(events: u64) -> Expected {
        Expected {
            events,
            deposits_per_account: events / ACCOUNTS - 1,
        }
    }

    /// The sum of every balance after `more` further deposits of 1.
    fn total_balance(&self, more: u64) -> i64 {
        (ACCOUNTS as i64) * (INITIAL_BALANCE + self.deposits_per_account as i64) + more as i64
    }

    /// Checks the totals document (JSON) after `more` further deposits.
    fn check_totals(&self, totals: &[u8], more: u64, what: &str) -> Result<()> {
        let totals: Value = serde_json::from_slice(totals)?;
        ensure!(
            totals["accounts_open"] == ACCOUNTS
                && totals["balance_by_currency"]["USD"] == self.total_balance(more),
            "{what}: totals {totals}, expected {ACCOUNTS} accounts and a balance of {}",
            self.total_balance(more)
        );
        Ok(())
    }

    /// Checks the document of account 0 (JSON) before any live deposit.
    fn check_account(&self, account: &[u8], what: &str) -> Result<()> {
        let account: Value = serde_json::from_slice(account)?;
        let balance = INITIAL_BALANCE + self.deposits_per_account as i64;
        ensure!(
            account["balance"] == balance && account["open"] == true,
            "{what}: account {account}, expected a balance of {balance}"
        );
        Ok(())
    }
}

/// Opens [`ACCOUNTS`] accounts through bank-account (`plugin`) in `dir`, then appends
/// deposits of 1 straight to the store, one per append, each task taking its accounts
/// in turn, until the log has `events` events.
async fn build_log(options: &BenchOptions, dir: &Path, plugin: &[u8], events: u64) -> Result<()> {
    ensure!(
        events.is_multiple_of(ACCOUNTS) && events > ACCOUNTS,
        "{events} events over {ACCOUNTS} accounts"
    );
    let mut config = RuntimeConfig::new(dir);
    config.snapshot_every = 0;
    let runtime = setup::open_runtime(options, config, plugin).await?;
    setup::open_accounts(&runtime, ACCOUNTS, INITIAL_BALANCE).await?;
    runtime.close().await?;
    drop(runtime);

    let (store, _) = EventStore::open(setup::building(dir)).await?;
    let rounds = events / ACCOUNTS - 1;
    let mut handles = Vec::new();
    for task in 0..BUILDERS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mine: Vec<StreamId> = (task..ACCOUNTS)
                .step_by(BUILDERS as usize)
                .map(|account| StreamId::new(TYPE, account_id(account)))
                .collect();
            for _ in 0..rounds {
                for stream in &mine {
                    setup::append_deposits(&store, stream, 1, r#"{"amount":1}"#).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    // The log also holds the plugin registry's events (bank-account installed and
    // activated), which the projection passes over.
    let end = store.end_position();
    ensure!(
        (events..events + 10).contains(&end.get()),
        "built {end} events"
    );
    store.close().await?;
    Ok(())
}

/// Time spent: wall-clock, and the process's CPU time (every thread).
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    wall: Duration,
    cpu: Duration,
}

impl Spent {
    /// Adds the time since `started`.
    fn add(&mut self, started: Started) {
        self.wall += started.wall.elapsed();
        self.cpu += process_cpu_time().saturating_sub(started.cpu);
    }

    /// Events per second over the wall-clock time.
    fn per_s(&self, events: u64) -> f64 {
        per_s(events, self.wall)
    }

    /// CPU microseconds per event, to hundredths.
    fn cpu_us_per(&self, events: u64) -> f64 {
        (self.cpu.as_secs_f64() * 1e8 / events.max(1) as f64).round() / 100.0
    }
}

/// When a timed piece started.
#[derive(Debug, Clone, Copy)]
struct Started {
    wall: Instant,
    cpu: Duration,
}

impl Started {
    fn now() -> Started {
        Started {
            wall: Instant::now(),
            cpu: process_cpu_time(),
        }
    }
}

/// CPU time the process has used so far, on all its threads.
fn process_cpu_time() -> Duration {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(spent.tv_sec as u64, spent.tv_nsec as u32)
}

/// The pieces of a catch-up measured apart over the same batches: reading and
/// upcasting, the logic natively, the plugin alone, and redb commits alone.
#[derive(Debug, Default)]
struct Parts {
    read: Spent,
    native: Spent,
    plugin: Spent,
    commit: Spent,
    batches: u64,
    events: u64,
    /// Documents the batches wrote, each counted once per batch.
    documents: u64,
}

impl Parts {
    /// Goes over the log of `runtime` in the projector's batches: each batch is read
    /// and upcast (timed as `read`), applied natively into memory (`native`), applied
    /// by the plugin `summary` over an in-memory read model (`plugin`), and its writes
    /// committed to a scratch read model at `scratch` (`commit`). Checks both
    /// in-memory read models against each other and `expected`.
    async fn measure(
        runtime: &Runtime,
        summary: &[u8],
        scratch: &Path,
        expected: &Expected,
    ) -> Result<Parts> {
        let projection = LoadedProjection::load(runtime.engine(), summary)?;
        let info = projection.info().clone();
        let mut instance = projection.instance();
        let mut model = Arc::new(MemoryModel::default());
        let mut native = MemoryDocuments::default();
        let committed = ReadModel::open(scratch)?;
        let mut commit_policy = CommitPolicy::new();
        let batch = tally_projections::ProjectorConfig::default().batch_events;
        let mut parts = Parts::default();
        let mut from = GlobalPosition::START;
        loop {
            let started = Started::now();
            let Some((next, envelopes)) = read_batch(runtime, &info, from, batch).await? else {
                break;
            };
            parts.read.add(started);
            parts.batches += 1;
            parts.events += envelopes.len() as u64;

            let owned = envelopes.clone();
            let started = Started::now();
            let raw = owned.into_iter().map(raw_envelope).collect();
            projection_wire::apply::<AccountSummary>(raw, &mut native)
                .map_err(anyhow::Error::msg)?;
            parts.native.add(started);

            let started = Started::now();
            let source: Arc<dyn DocumentSource> = model.clone();
            let writes = instance
                .apply(&envelopes, source)?
                .map_err(anyhow::Error::msg)?;
            parts.plugin.add(started);

            parts.documents += writes.len() as u64;
            let started = Started::now();
            committed.commit(&writes, next, 0, commit_policy.next())?;
            parts.commit.add(started);

            let started = Started::now();
            Arc::get_mut(&mut model)
                .context("the batch let go of the read model")?
                .merge(&writes);
            parts.plugin.add(started);
            from = next;
        }
        ensure!(
            parts.events == expected.events,
            "applied {} events of {}",
            parts.events,
            expected.events
        );
        model.check_same(&native)?;
        let totals = model.get(TOTALS_TABLE, ALL).map_err(anyhow::Error::msg)?;
        expected.check_totals(&totals.context("no totals")?, 0, "plugin alone")?;
        Ok(parts)
    }
}

/// The projector's choice of durable and deferred commits (a durable one per
/// `ProjectorConfig::durable_every`), for commits timed alone.
struct CommitPolicy {
    every: Duration,
    last_durable: Instant,
}

impl CommitPolicy {
    fn new() -> CommitPolicy {
        CommitPolicy {
            every: tally_projections::ProjectorConfig::default().durable_every,
            last_durable: Instant::now(),
        }
    }

    fn next(&mut self) -> Commit {
        if self.last_durable.elapsed() < self.every {
            return Commit::Deferred;
        }
        self.last_durable = Instant::now();
        Commit::Durable
    }
}

/// The next batch of the log from `from` (at most `batch` stored events), as the
/// projector makes it: the events of the projection's types, upcast, those it reads;
/// with the position after the batch. `None` at the end of the log.
async fn read_batch(
    runtime: &Runtime,
    info: &ProjectionInfo,
    from: GlobalPosition,
    batch: usize,
) -> Result<Option<(GlobalPosition, Vec<EventEnvelope>)>> {
    let events = runtime.store().read_all(from, batch).await?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let next = last.position.next();
    let ours = events
        .into_iter()
        .filter(|event| {
            info.aggregate_types
                .iter()
                .any(|t| **t == *event.stream.aggregate_type)
        })
        .collect();
    let envelopes = runtime
        .current_envelopes(ours)
        .await?
        .into_iter()
        .filter(|envelope| info.reads(&envelope.aggregate_type, &envelope.name))
        .collect();
    Ok(Some((next, envelopes)))
}

/// An envelope as the SDK's wire layer takes it.
fn raw_envelope(envelope: EventEnvelope) -> RawEnvelope {
    RawEnvelope {
        position: envelope.position,
        aggregate_type: envelope.aggregate_type,
        aggregate_id: envelope.aggregate_id,
        stream_version: envelope.stream_version,
        name: envelope.name,
        schema_version: envelope.schema_version,
        timestamp_ms: envelope.timestamp_ms,
        data: envelope.data,
    }
}

/// An in-memory read model for the plugin alone: documents by table and key.
#[derive(Debug, Default)]
struct MemoryModel {
    tables: HashMap<String, HashMap<String, Vec<u8>>>,
}

impl MemoryModel {
    /// Applies a batch's writes.
    fn merge(&mut self, writes: &DocumentWrites) {
        for (key, data) in writes.iter() {
            let table = self.tables.entry(key.table.clone()).or_default();
            match data {
                Some(data) => {
                    table.insert(key.key.clone(), data.to_vec());
                }
                None => {
                    table.remove(&key.key);
                }
            }
        }
    }

    /// Checks that `native` holds the same documents (every one of this model's, and
    /// as many as [`ACCOUNTS`] plus the totals).
    fn check_same(&self, native: &MemoryDocuments) -> Result<()> {
        let mut count = 0;
        for (table, documents) in &self.tables {
            for (key, document) in documents {
                let theirs = native.get(table, key);
                ensure!(
                    theirs.as_deref() == Some(document.as_slice()),
                    "{table}/{key}: the plugin wrote {}, native code {:?}",
                    String::from_utf8_lossy(document),
                    theirs.map(|theirs| String::from_utf8_lossy(&theirs).into_owned())
                );
                count += 1;
            }
        }
        ensure!(count == ACCOUNTS + 1, "{count} documents");
        Ok(())
    }
}

impl DocumentSource for MemoryModel {
    fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .tables
            .get(table)
            .and_then(|documents| documents.get(key))
            .cloned())
    }
}

/// Installs account-summary (`summary`) in `projections` and waits until it has
/// applied the whole log; checks its documents. Returns the time taken.
async fn catch_up(
    runtime: &Runtime,
    projections: &Projections,
    summary: &[u8],
    expected: &Expected,
) -> Result<Spent> {
    let end = runtime.store().known_end();
    let started = Started::now();
    projections.install(summary)?;
    let (totals, at) = projections
        .document(NAME, TOTALS_TABLE, ALL, Some(end))
        .await?;
    let mut spent = Spent::default();
    spent.add(started);
    ensure!(at >= end, "caught up to {at}, not {end}");
    let status = projections.list();
    let progress = &status.first().context("no projection")?.progress;
    ensure!(
        progress.checkpoint == end && progress.state == ProjectionState::Live,
        "the projection is at {} ({:?}), the log ends at {end}",
        progress.checkpoint,
        progress.state
    );
    expected.check_totals(&totals.context("no totals")?, 0, "caught up")?;
    let (account, _) = projections
        .document(NAME, ACCOUNTS_TABLE, &account_id(0), Some(end))
        .await?;
    expected.check_account(&account.context("no account")?, "caught up")?;
    Ok(spent)
}

/// What the window with the projection live measured.
struct Live {
    rate: Rate,
    /// From a command's answer until the projection has applied it, microseconds.
    lag_us: Histogram<u64>,
    /// How far behind the log the projection fell.
    backlog: Backlog,
    /// Deposits accepted so far, this window's and those before.
    deposits: u64,
}

/// Durable deposits from `tasks` tasks for `window` with the projection live, every
/// [`SAMPLE_EVERY`]th followed until applied; then checks that the totals count every
/// deposit, `before` of them made in earlier windows.
async fn live_window(
    runtime: &Runtime,
    projections: &Projections,
    tasks: u64,
    window: Duration,
    expected: &Expected,
    before: u64,
) -> Result<Live> {
    let sampler = Sampler {
        projections: projections.clone(),
        lag_us: Arc::new(Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?)),
        waits: Arc::default(),
        commands: Arc::default(),
    };
    let watching = watch_backlog(projections.clone());
    let done = deposits(runtime, tasks, window, Some(sampler.clone())).await?;
    let backlog = watching.stop().await?;
    let waits = std::mem::take(&mut *sampler.waits.lock().expect("waits"));
    for wait in waits {
        wait.await??;
    }
    let end = runtime.store().known_end();
    let (totals, _) = projections
        .document(NAME, TOTALS_TABLE, ALL, Some(end))
        .await?;
    let deposits = before + done.deposits;
    expected.check_totals(&totals.context("no totals")?, deposits, "live")?;
    let lag_us = sampler.lag_us.lock().expect("histogram").clone();
    ensure!(!lag_us.is_empty(), "no command was sampled");
    Ok(Live {
        rate: done.rate,
        lag_us,
        backlog,
        deposits,
    })
}

/// The projection's backlog over a window.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    /// The most events in the log not yet applied, sampled every 10 ms.
    max_events: u64,
    /// Events applied per second over the window.
    applied_per_s: f64,
}

/// A task sampling the projection's backlog until stopped.
struct BacklogWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Backlog>,
}

impl BacklogWatch {
    async fn stop(self) -> Result<Backlog> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Samples the (only) projection's backlog every 10 ms until stopped.
fn watch_backlog(projections: Projections) -> BacklogWatch {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let applied = || projections.list().first().map_or(0, |s| s.progress.applied);
        let (started, applied_before) = (Instant::now(), applied());
        let mut max_events = 0;
        while !stopped.load(Ordering::Relaxed) {
            let backlog = projections.list().first().map_or(0, |s| s.lag_events);
            max_events = max_events.max(backlog);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Backlog {
            max_events,
            applied_per_s: (applied() - applied_before) as f64 / started.elapsed().as_secs_f64(),
        }
    });
    BacklogWatch { stop, task }
}

/// Follows sampled commands until the projection has applied them.
#[derive(Clone)]
struct Sampler {
    projections: Projections,
    lag_us: Arc<Mutex<Histogram<u64>>>,
    waits: Arc<Mutex<Vec<JoinHandle<Result<()>>>>>,
    /// Commands answered so far.
    commands: Arc<AtomicU64>,
}

impl Sampler {
    /// Called with each command's answer: every [`SAMPLE_EVERY`]th, waits (in a task
    /// of its own) until the projection has applied everything before `next` and
    /// records the time since `answered`.
    fn answered(&self, id: String, next: GlobalPosition, answered: Instant) {
        if !self
            .commands
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY)
        {
            return;
        }
        let (projections, lag_us) = (self.projections.clone(), self.lag_us.clone());
        let wait = tokio::spawn(async move {
            projections
                .document(NAME, ACCOUNTS_TABLE, &id, Some(next))
                .await?;
            let micros = answered.elapsed().as_micros() as u64;
            lag_us
                .lock()
                .expect("histogram")
                .saturating_record(micros.max(1));
            Ok(())
        });
        self.waits.lock().expect("waits").push(wait);
    }
}

/// What a window of deposits did.
struct Deposits {
    rate: Rate,
    /// Deposits accepted, the warm-up's included.
    deposits: u64,
}

/// Durable deposits of 1 from `tasks` tasks over the accounts for `window` after a
/// warm-up, each answer given to `sampler` if any.
async fn deposits(
    runtime: &Runtime,
    tasks: u64,
    window: Duration,
    sampler: Option<Sampler>,
) -> Result<Deposits> {
    let deposits = Arc::new(AtomicU64::new(0));
    let (worker, counted) = (runtime.clone(), deposits.clone());
    let rate = setup::drive(tasks, window, move |account| {
        let (runtime, sampler, counted) = (worker.clone(), sampler.clone(), counted.clone());
        async move {
            let id = account_id(account % ACCOUNTS);
            let outcome = runtime
                .execute(TYPE, &id, deposit(), ExecuteOptions::default())
                .await?;
            counted.fetch_add(1, Ordering::Relaxed);
            if let Some(sampler) = sampler {
                let last = outcome
                    .events
                    .last()
                    .context("a deposit appends an event")?;
                sampler.answered(id, last.position.next(), Instant::now());
            }
            Ok(())
        }
    })
    .await?;
    Ok(Deposits {
        rate,
        deposits: deposits.load(Ordering::Relaxed),
    })
}

/// The figures of the window at moderate load.
fn add_moderate(report: &mut Report, moderate: &Live) {
    let lag_ms = |quantile: f64| moderate.lag_us.value_at_quantile(quantile) as f64 / 1e3;
    report.add(
        "projection_lag_64_p50_ms",
        &format!("live lag at moderate load, {MODERATE_WRITERS} tasks: p50"),
        lag_ms(0.50),
        "ms",
    );
    report.add("projection_lag_64_p99_ms", "  p99", lag_ms(0.99), "ms");
    report.add(
        "projection_lag_64_max_ms",
        "  max",
        moderate.lag_us.max() as f64 / 1e3,
        "ms",
    );
    report.add(
        "projection_live_64_commands_per_s",
        "  durable commands in that window",
        moderate.rate.per_s.round(),
        "/s",
    );
    report.note(format!(
        "moderate load: at most {} events of the log were not yet applied",
        moderate.backlog.max_events
    ));
}

/// Events per second of `events` in `time`.
fn per_s(events: u64, time: Duration) -> f64 {
    events as f64 / time.as_secs_f64().max(1e-9)
}

/// The figures.
fn report(
    events: u64,
    parts: &Parts,
    catchup: &Spent,
    live: &Live,
    moderate: &Live,
    base: &Rate,
) -> Report {
    let catchup_per_s = catchup.per_s(events);
    let native = parts.native.per_s(parts.events);
    let plugin = parts.plugin.per_s(parts.events);
    let lag_ms = |quantile: f64| live.lag_us.value_at_quantile(quantile) as f64 / 1e3;
    let mut report = Report::default();
    let mut add_part = |key: &str, label: &str, per_s: f64, spent: &Spent| {
        report.add(
            &format!("projection_{key}_events_per_s"),
            label,
            per_s.round(),
            "/s",
        );
        report.add(
            &format!("projection_{key}_cpu_us_per_event"),
            "    CPU per event (whole process)",
            spent.cpu_us_per(parts.events),
            "us",
        );
    };
    add_part(
        "catchup",
        &format!("account-summary catching up over {events} events (target 500,000)"),
        catchup_per_s,
        catchup,
    );
    add_part(
        "native",
        "  the same batches natively, into memory",
        native,
        &parts.native,
    );
    add_part(
        "plugin",
        "  the same batches through the plugin alone, into memory",
        plugin,
        &parts.plugin,
    );
    add_part(
        "read",
        "  reading the log and upcasting it alone",
        parts.read.per_s(parts.events),
        &parts.read,
    );
    add_part(
        "commit",
        "  committing the plugin's writes to redb alone",
        parts.commit.per_s(parts.events),
        &parts.commit,
    );
    report.add(
        "projection_catchup_s",
        "  time of the catch-up",
        catchup.wall.as_secs_f64(),
        "s",
    );
    report.add(
        "projection_commit_batch_ms",
        "  one redb commit (a batch of the projector's most events)",
        parts.commit.wall.as_secs_f64() * 1e3 / parts.batches.max(1) as f64,
        "ms",
    );
    report.add(
        "projection_catchup_vs_native",
        "  catch-up / native",
        catchup_per_s / native.max(1e-9),
        "x",
    );
    report.add(
        "projection_plugin_vs_native",
        "  plugin alone / native",
        plugin / native.max(1e-9),
        "x",
    );
    report.add(
        "projection_catchup_vs_plugin",
        "  catch-up / plugin alone",
        catchup_per_s / plugin.max(1e-9),
        "x",
    );
    report.add(
        "projection_events",
        "  events of the log",
        events as f64,
        "",
    );
    report.add(
        "projection_accounts",
        "  accounts of the log",
        ACCOUNTS as f64,
        "",
    );
    report.add(
        "projection_lag_p50_ms",
        &format!("live lag, command answered to applied, {WRITERS} tasks: p50"),
        lag_ms(0.50),
        "ms",
    );
    report.add(
        "projection_lag_p99_ms",
        "  p99 (target under 50 ms)",
        lag_ms(0.99),
        "ms",
    );
    report.add(
        "projection_lag_max_ms",
        "  max",
        live.lag_us.max() as f64 / 1e3,
        "ms",
    );
    report.add(
        "projection_lag_samples",
        &format!("  commands followed (one in {SAMPLE_EVERY})"),
        live.lag_us.len() as f64,
        "",
    );
    report.add(
        "projection_live_applied_per_s",
        "  events the projection applied per second in that window",
        live.backlog.applied_per_s.round(),
        "/s",
    );
    report.add(
        "projection_live_commands_per_s",
        "durable commands with the projection live",
        live.rate.per_s.round(),
        "/s",
    );
    report.add(
        "projection_base_commands_per_s",
        "  without the projection",
        base.per_s.round(),
        "/s",
    );
    report.add(
        "projection_live_vs_base",
        "  with / without",
        live.rate.per_s / base.per_s.max(1e-9),
        "x",
    );
    report.add(
        "projection_live_cpu_us_per_command",
        "  CPU per command with the projection live (whole process)",
        (live.rate.cpu_us_per_op * 100.0).round() / 100.0,
        "us",
    );
    report.add(
        "projection_base_cpu_us_per_command",
        "  CPU per command without",
        (base.cpu_us_per_op * 100.0).round() / 100.0,
        "us",
    );
    report.note(format!(
        "a batch of up to {} events (the projector's most) wrote {:.0} documents on average",
        tally_projections::ProjectorConfig::default().batch_events,
        parts.documents as f64 / parts.batches.max(1) as f64
    ));
    report.note(format!(
        "full load: at most {} events of the log were not yet applied (sampled every 10 ms)",
        live.backlog.max_events
    ));
    add_moderate(&mut report, moderate);
    let met = |yes: bool| if yes { "met" } else { "NOT met" };
    report.note(format!(
        "targets: catch-up at least {CATCHUP_TARGET_PER_S:.0} events/s ({}); live lag p99 under {LAG_P99_TARGET_MS:.0} ms at full load ({})",
        met(catchup_per_s >= CATCHUP_TARGET_PER_S),
        met(lag_ms(0.99) < LAG_P99_TARGET_MS)
    ));
    report
}
