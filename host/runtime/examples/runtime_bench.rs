//! `runtime_bench`: how fast `tally-runtime` runs commands through a WebAssembly plugin,
//! beside the same logic compiled natively on the same store, measured in one run.
//!
//! ```text
//! cargo run --release -p tally-runtime --example runtime_bench -- --json
//! cargo run --release -p tally-runtime --example runtime_bench -- --quick
//! ```
//!
//! | figure | how |
//! | --- | --- |
//! | `fsync_floor_per_s` | a plain loop of one 1 KiB `pwrite` then `fdatasync` in the data directory (preallocated file): the disk's floor |
//! | `wasm_commands_per_s` | 256 tokio tasks send `Deposit` commands to random accounts of 10,000 (opened first, not timed) through `Runtime::execute` and bank-account v1, `FsyncPolicy::Always`; durable commands per second |
//! | `native_commands_per_s` | the same workload through [`NativeRuntime`]: the same store, a per-aggregate lock and cached state, the pipeline's submit-then-release order, and bank-account's rules compiled into this program |
//! | `fold_events_per_s` | `Runtime::state` of one account with 1,000,000 events (100,000 with `--quick`) on a freshly opened runtime without snapshots (cold cache) |
//! | `fold_native_events_per_s` / `fold_read_events_per_s` | the same events read from the store and folded natively / only read |
//! | `naive_commands_per_s` | the recipe's approach: per command, read the whole log (100,000 events; 10,000 with `--quick`) with `read_all`, fold it through the plugin, handle, append |
//! | `swap_activate_ms` | `activate` of bank-account v2 over v1 (compiled and installed before) with no load; the verification folds all 10,000 accounts |
//! | `swap_pause_ms` / `steady_max_ms` | the longest command latency of 64 tasks sending deposits, in a window where v2 is activated in the middle / in an equal window without a swap |
//! | `instantiate_ondemand_us` / `instantiate_pooling_us` | a fresh instance (store, instantiate, first call, drop) minus a warm call, on a raw wasmtime engine configured like the runtime's, without and with the pooling allocator |
//!
//! Progress goes to stderr; stdout gets a table and, with `--json`, one JSON line last.
//! `--only SECTION` (fsync, commands, fold, naive, swap, pooling) runs one part, for
//! profiling.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Parser;
use serde::Serialize;
use tally_plugin_contract_tests::components;
use tally_runtime::tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, StreamRead,
    Submitted,
};
use tally_runtime::{
    ActivateOptions, Command, Context, EngineConfig, Event, ExecuteOptions, InstallOptions,
    LoadedPlugin, PluginEngine, Runtime, RuntimeConfig,
};
use tally_wal::FsyncPolicy;

/// Measures tally-runtime: commands through the plugin beside native code, folds, swaps.
#[derive(Debug, Parser)]
#[command(name = "runtime_bench")]
struct Args {
    /// After the table, print one JSON line with every figure.
    #[arg(long)]
    json: bool,
    /// A short run (1 s windows, 100,000-event fold, 10,000-event naive log).
    #[arg(long)]
    quick: bool,
    /// Directory in which the working directory is made (default: the target directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run only one section: fsync, commands, fold, naive, swap or pooling (or wasm-os: the
    /// plugin command path with `FsyncPolicy::Os`, for profiling).
    #[arg(long)]
    only: Option<String>,
    /// Timed folds of the large account (each on a freshly opened runtime); the best counts.
    #[arg(long, default_value_t = 2)]
    fold_rounds: u32,
    /// Diagnosis: activate v2 under load without the verification fold.
    #[arg(long, hide = true)]
    swap_skip_verify: bool,
    /// Diagnosis: print the activation's start (CLOCK_MONOTONIC) to match a `perf -k mono` trace.
    #[arg(long, hide = true)]
    trace: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    fsync_floor_per_s: u64,
    wasm_commands_per_s: u64,
    native_commands_per_s: u64,
    native_ratio: f64,
    commands_vs_fsync: f64,
    wasm_os_commands_per_s: u64,
    native_os_commands_per_s: u64,
    native_os_ratio: f64,
    fold_events: u64,
    fold_events_per_s: u64,
    fold_ms: f64,
    fold_native_events_per_s: u64,
    fold_read_events_per_s: u64,
    naive_log_events: u64,
    naive_commands_per_s: f64,
    naive_command_ms: f64,
    swap_activate_ms: f64,
    swap_verified_streams: u64,
    swap_verified_events: u64,
    swap_verify_ms: u64,
    verify_ms_per_million_events: f64,
    rollback_ms: f64,
    swap_under_load_activate_ms: f64,
    swap_pause_ms: f64,
    swap_p99_ms: f64,
    swap_window_commands: u64,
    steady_max_ms: f64,
    steady_p99_ms: f64,
    steady_window_commands: u64,
    swap_window_s: f64,
    steady_window_s: f64,
    instantiate_ondemand_us: f64,
    instantiate_pooling_us: f64,
    instantiate_only_ondemand_us: f64,
    instantiate_only_pooling_us: f64,
    warm_call_us: f64,
    pooling_saving_per_command_ns: f64,
    measure_s: f64,
    quick: bool,
}

const ACCOUNTS: u64 = 10_000;
const WRITERS: u64 = 256;
const SWAP_WRITERS: u64 = 64;
const TYPE: &str = "bank-account";

fn main() -> Result<()> {
    let args = Args::parse();
    let only = args.only.as_deref();
    let run = |section: &str| only.is_none_or(|only| only == section);
    if let Some(only) = only
        && ![
            "fsync", "commands", "wasm-os", "fold", "naive", "swap", "pooling",
        ]
        .contains(&only)
    {
        bail!("unknown section {only}");
    }
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&base)?;
    let work = tempfile::tempdir_in(&base).context("making the working directory")?;
    let measure = if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    let (fold_events, naive_events, naive_commands) = if args.quick {
        (100_000, 10_000, 10)
    } else {
        (1_000_000, 100_000, 5)
    };
    let v1 = std::fs::read(components::BANK_ACCOUNT_V1).context("bank-account v1")?;
    let v2 = std::fs::read(components::BANK_ACCOUNT_V2).context("bank-account v2")?;
    let mut report = Report {
        measure_s: measure.as_secs_f64(),
        quick: args.quick,
        fold_events,
        naive_log_events: naive_events,
        ..Report::default()
    };

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        if run("fsync") || run("commands") {
            eprintln!("fsync floor: 1 KiB pwrite + fdatasync loop ...");
            let floor = fsync_floor(work.path(), measure / 2)?;
            report.fsync_floor_per_s = floor as u64;
        }
        if run("commands") {
            eprintln!("native: 256 tasks over {ACCOUNTS} accounts, Always ...");
            let dir = work.path().join("native");
            let native = native_commands(StoreConfig::new(&dir), measure).await?;
            // Each store preallocates its logs: keep one at a time on disk.
            std::fs::remove_dir_all(&dir)?;
            eprintln!("wasm: 256 tasks over {ACCOUNTS} accounts, Always ...");
            let dir = work.path().join("wasm");
            let (wasm, runtime) = wasm_commands(RuntimeConfig::new(&dir), &v1, measure).await?;
            runtime.close().await?;
            drop(runtime);
            std::fs::remove_dir_all(&dir)?;
            // The same without an fsync per group (FsyncPolicy::Os): what the CPU allows.
            eprintln!("native and wasm again with FsyncPolicy::Os ...");
            let dir = work.path().join("native-os");
            report.native_os_commands_per_s = native_commands(building(&dir), measure).await?;
            std::fs::remove_dir_all(&dir)?;
            let dir = work.path().join("wasm-os");
            let mut config = RuntimeConfig::new(&dir);
            config.store.wal.fsync_policy = FsyncPolicy::Os;
            let (wasm_os, runtime) = wasm_commands(config, &v1, measure).await?;
            runtime.close().await?;
            drop(runtime);
            std::fs::remove_dir_all(&dir)?;
            report.wasm_os_commands_per_s = wasm_os;
            report.native_os_ratio = wasm_os as f64 / report.native_os_commands_per_s.max(1) as f64;
            // Measured again after the plugin runs, so that drift of the disk shows.
            let floor = fsync_floor(work.path(), measure / 2)?;
            eprintln!(
                "fsync floor before {} /s, after {floor:.0} /s",
                report.fsync_floor_per_s
            );
            report.fsync_floor_per_s = ((report.fsync_floor_per_s as f64 + floor) / 2.0) as u64;
            report.native_commands_per_s = native;
            report.wasm_commands_per_s = wasm;
            report.native_ratio = wasm as f64 / native.max(1) as f64;
            report.commands_vs_fsync = wasm as f64 / report.fsync_floor_per_s.max(1) as f64;
        }
        if only == Some("wasm-os") {
            // For profiling the command path without the disk.
            let mut config = RuntimeConfig::new(work.path().join("wasm-os"));
            config.store.wal.fsync_policy = FsyncPolicy::Os;
            let (rate, runtime) = wasm_commands(config, &v1, measure * 2).await?;
            runtime.close().await?;
            report.wasm_os_commands_per_s = rate;
        }
        if run("fold") {
            let rounds = args.fold_rounds.max(1);
            fold(
                &work.path().join("fold"),
                &v1,
                fold_events,
                rounds,
                &mut report,
            )
            .await?;
            std::fs::remove_dir_all(work.path().join("fold"))?;
        }
        if run("naive") {
            naive(
                &work.path().join("naive"),
                &v1,
                naive_events,
                naive_commands,
                &mut report,
            )
            .await?;
            std::fs::remove_dir_all(work.path().join("naive"))?;
        }
        if run("swap") {
            let diagnosis = (args.swap_skip_verify, args.trace);
            let plugins = (v1.as_slice(), v2.as_slice());
            swap(
                &work.path().join("swap"),
                plugins,
                measure,
                diagnosis,
                &mut report,
            )
            .await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    drop(tokio);
    if run("pooling") {
        pooling(&v1, if args.quick { 2_000 } else { 10_000 }, &mut report)?;
    }

    print_table(&report);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn print_table(r: &Report) {
    let row = |name: &str, value: String| println!("{name:<40} {value:>16}");
    println!("{:<40} {:>16}", "figure", "value");
    row("fsync_floor_per_s", r.fsync_floor_per_s.to_string());
    row("wasm_commands_per_s", r.wasm_commands_per_s.to_string());
    row("native_commands_per_s", r.native_commands_per_s.to_string());
    row(
        "native_ratio (wasm / native)",
        format!("{:.2}", r.native_ratio),
    );
    row("commands_vs_fsync", format!("{:.1}", r.commands_vs_fsync));
    row(
        "wasm_os_commands_per_s (no fsync)",
        r.wasm_os_commands_per_s.to_string(),
    );
    row(
        "native_os_commands_per_s (no fsync)",
        r.native_os_commands_per_s.to_string(),
    );
    row("native_os_ratio", format!("{:.2}", r.native_os_ratio));
    row(
        &format!("fold_events_per_s ({} events)", r.fold_events),
        r.fold_events_per_s.to_string(),
    );
    row("fold_ms", format!("{:.1}", r.fold_ms));
    row(
        "fold_native_events_per_s",
        r.fold_native_events_per_s.to_string(),
    );
    row(
        "fold_read_events_per_s (read only)",
        r.fold_read_events_per_s.to_string(),
    );
    row(
        &format!("naive_commands_per_s ({} events)", r.naive_log_events),
        format!("{:.1}", r.naive_commands_per_s),
    );
    row("naive_command_ms", format!("{:.1}", r.naive_command_ms));
    row("swap_activate_ms", format!("{:.1}", r.swap_activate_ms));
    row(
        "swap verified streams / events",
        format!("{} / {}", r.swap_verified_streams, r.swap_verified_events),
    );
    row("swap_verify_ms", r.swap_verify_ms.to_string());
    row(
        "verify_ms_per_million_events",
        format!("{:.0}", r.verify_ms_per_million_events),
    );
    row("rollback_ms", format!("{:.1}", r.rollback_ms));
    row(
        "swap_under_load_activate_ms",
        format!("{:.1}", r.swap_under_load_activate_ms),
    );
    row(
        "swap_pause_ms (max latency)",
        format!("{:.2}", r.swap_pause_ms),
    );
    row("swap_p99_ms", format!("{:.2}", r.swap_p99_ms));
    row("steady_max_ms", format!("{:.2}", r.steady_max_ms));
    row("steady_p99_ms", format!("{:.2}", r.steady_p99_ms));
    row(
        "commands in swap / steady window",
        format!("{} / {}", r.swap_window_commands, r.steady_window_commands),
    );
    row(
        "swap / steady window s",
        format!("{:.2} / {:.2}", r.swap_window_s, r.steady_window_s),
    );
    row(
        "instantiate_ondemand_us",
        format!("{:.1}", r.instantiate_ondemand_us),
    );
    row(
        "instantiate_pooling_us",
        format!("{:.1}", r.instantiate_pooling_us),
    );
    row(
        "instantiate only (no call, no drop) us",
        format!(
            "{:.1} / {:.1}",
            r.instantiate_only_ondemand_us, r.instantiate_only_pooling_us
        ),
    );
    row(
        "warm_call_us (initial-state)",
        format!("{:.2}", r.warm_call_us),
    );
    row(
        "pooling saving per command ns",
        format!("{:.1}", r.pooling_saving_per_command_ns),
    );
    if r.instantiate_ondemand_us > 0.0 {
        println!(
            "pooling allocator: saves {:.1} us per instantiation; with recycling after {} calls \
             that is {:.1} ns per command: {}",
            r.instantiate_ondemand_us - r.instantiate_pooling_us,
            EngineConfig::default().max_calls_per_instance,
            r.pooling_saving_per_command_ns,
            if r.pooling_saving_per_command_ns.abs() < 100.0 {
                "it does not pay off for the command path"
            } else {
                "worth switching"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// The disk's floor.

/// 1 KiB `pwrite` + `fdatasync` per round for `duration` on a preallocated file; rounds/s.
fn fsync_floor(dir: &Path, duration: Duration) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-floor");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    const SLOTS: u64 = 1024;
    file.write_all_at(&vec![0u8; (SLOTS * 1024) as usize], 0)?;
    file.sync_all()?;
    let block = [7u8; 1024];
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < duration {
        file.write_all_at(&block, (rounds % SLOTS) * 1024)?;
        file.sync_data()?;
        rounds += 1;
    }
    let rate = rounds as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

// ---------------------------------------------------------------------------------------
// Command throughput.

fn deposit() -> Command {
    Command {
        name: "Deposit".into(),
        data: br#"{"amount":1}"#.to_vec(),
    }
}

fn open_account() -> Command {
    Command {
        name: "OpenAccount".into(),
        data: br#"{"initial_balance":0}"#.to_vec(),
    }
}

fn account_id(n: u64) -> String {
    format!("acc-{n}")
}

/// A small LCG: each task picks its accounts from its own sequence.
fn next_account(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) % ACCOUNTS
}

/// Runs `tasks` tasks calling `call` with random accounts until stopped; counts the calls
/// finished in a `measure` window after a quarter-second warm-up, per second.
async fn drive<F, Fut>(tasks: u64, measure: Duration, call: F) -> Result<u64>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (count, stop, call) = (count.clone(), stop.clone(), call.clone());
        handles.push(tokio::spawn(async move {
            let mut seed = task + 1;
            while !stop.load(Ordering::Relaxed) {
                call(next_account(&mut seed)).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    let done = count.load(Ordering::Relaxed) - before;
    let rate = done as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await??;
    }
    Ok(rate as u64)
}

/// Runs `call` once for each account, from 256 tasks (untimed setup).
async fn for_each_account<F, Fut>(call: F) -> Result<()>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..WRITERS {
        let (next, call) = (next.clone(), call.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let account = next.fetch_add(1, Ordering::Relaxed);
                if account >= ACCOUNTS {
                    return Ok::<_, anyhow::Error>(());
                }
                call(account).await?;
            }
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

async fn open_runtime(config: RuntimeConfig, plugin: &[u8]) -> Result<Runtime> {
    let (runtime, _) = Runtime::open(config).await?;
    runtime
        .install_plugin(
            plugin.to_vec(),
            InstallOptions {
                activate: true,
                ..InstallOptions::default()
            },
        )
        .await?;
    Ok(runtime)
}

/// Opens the accounts through the runtime (untimed), then measures deposits from `tasks`.
async fn wasm_commands(
    config: RuntimeConfig,
    plugin: &[u8],
    measure: Duration,
) -> Result<(u64, Runtime)> {
    let runtime = open_runtime(config, plugin).await?;
    let opener = runtime.clone();
    for_each_account(move |account| {
        let runtime = opener.clone();
        async move {
            let id = account_id(account);
            runtime
                .execute(TYPE, &id, open_account(), ExecuteOptions::default())
                .await?;
            Ok(())
        }
    })
    .await?;
    let worker = runtime.clone();
    let rate = drive(WRITERS, measure, move |account| {
        let runtime = worker.clone();
        async move {
            let id = account_id(account);
            runtime
                .execute(TYPE, &id, deposit(), ExecuteOptions::default())
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok((rate, runtime))
}

async fn native_commands(config: StoreConfig, measure: Duration) -> Result<u64> {
    let (store, _) = EventStore::open(config).await?;
    let native = Arc::new(NativeRuntime::new(store.clone()));
    let opener = native.clone();
    for_each_account(move |account| {
        let native = opener.clone();
        async move {
            native
                .execute(&account_id(account), &open_account())
                .await?;
            Ok(())
        }
    })
    .await?;
    let worker = native.clone();
    let rate = drive(WRITERS, measure, move |account| {
        let native = worker.clone();
        async move {
            native.execute(&account_id(account), &deposit()).await?;
            Ok(())
        }
    })
    .await?;
    drop(native);
    store.close().await?;
    Ok(rate)
}

/// The cached state of one aggregate in [`NativeRuntime`].
struct NativeCached {
    /// Events folded (the runtime's versions: 0 before the first event).
    version: u64,
    state: Vec<u8>,
}

type NativeSlot = Arc<tokio::sync::Mutex<Option<NativeCached>>>;

/// The runtime's command pipeline with bank-account compiled in: a slot per aggregate
/// (a FIFO async lock, in sharded maps) holding the cached state; the command is decided
/// under the lock, its events are queued with `submit` at the expected version, the lock
/// is released, and the answer waits for durability. So the one difference from
/// `Runtime::execute` is the plugin call (and its hand-off to a plugin thread).
struct NativeRuntime {
    store: EventStore,
    shards: Vec<Mutex<HashMap<String, NativeSlot>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl NativeRuntime {
    fn new(store: EventStore) -> NativeRuntime {
        NativeRuntime {
            store,
            shards: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    fn slot(&self, id: &str) -> NativeSlot {
        let mut hasher = self.hasher.build_hasher();
        id.hash(&mut hasher);
        let shard = std::hash::Hasher::finish(&hasher) as usize % self.shards.len();
        let mut map = self.shards[shard].lock().expect("shard lock");
        map.entry(id.to_owned()).or_default().clone()
    }

    /// Executes a command; returns the aggregate's version after it.
    async fn execute(&self, id: &str, command: &Command) -> Result<u64> {
        let stream = StreamId::new(TYPE, id);
        let slot = self.slot(id);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let (version, state) = native_fold(&self.store, &stream).await?;
            *guard = Some(NativeCached { version, state });
        }
        let cached = guard.as_mut().expect("loaded");
        let events = match bank_account::handle(&cached.state, &command.name, &command.data) {
            Ok(events) => events,
            Err(rejection) => bail!("rejected: {} {}", rejection.code, rejection.message),
        };
        let state = bank_account::apply(
            &cached.state,
            events
                .iter()
                .map(|(name, data)| (name.as_str(), data.as_slice())),
        )
        .map_err(anyhow::Error::msg)?;
        let expected = match cached.version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version - 1),
        };
        let count = events.len() as u64;
        let new_events = events
            .into_iter()
            .map(|(name, data)| NewEvent::new(name, data))
            .collect();
        let submitted = self
            .store
            .submit(&stream, expected, new_events, AppendOptions::default())
            .await?;
        let Submitted::Queued(queued) = submitted else {
            bail!("no command id, no duplicate");
        };
        cached.version += count;
        cached.state = state;
        drop(guard);
        let result = queued.durable().await?;
        Ok(result.last_version() + 1)
    }
}

/// The state of `stream` folded natively from the store; (version, state).
async fn native_fold(store: &EventStore, stream: &StreamId) -> Result<(u64, Vec<u8>)> {
    let mut state = bank_account::initial_state();
    let mut version = 0u64;
    let page = store.config().max_read_count;
    loop {
        let events = store
            .read_stream(stream, StreamRead::forward(version, page))
            .await?;
        let read = events.len();
        for chunk in events.chunks(512) {
            state = bank_account::apply(
                &state,
                chunk
                    .iter()
                    .map(|event| (event.name.as_str(), event.data.as_ref())),
            )
            .map_err(anyhow::Error::msg)?;
        }
        version += read as u64;
        if read < page {
            return Ok((version, state));
        }
    }
}

/// bank-account v1 compiled natively. It mirrors `plugins/bank-account/src/lib.rs` (the
/// rules: open once, positive amounts, no overdraft, close only when empty) and the SDK's
/// wire handling in `guest-sdk/src/raw.rs` and `codec.rs` (state as the struct's serde
/// JSON; command and event data parsed to a `serde_json::Value`, then to the enum;
/// events encoded through a `Value`), so that native and plugin do the same JSON work.
mod bank_account {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    #[derive(Serialize, Deserialize)]
    enum Command {
        OpenAccount { initial_balance: i64 },
        Deposit { amount: i64 },
        Withdraw { amount: i64 },
        CloseAccount,
    }

    #[derive(Serialize, Deserialize)]
    enum Event {
        AccountOpened { initial_balance: i64 },
        MoneyDeposited { amount: i64 },
        MoneyWithdrawn { amount: i64 },
        AccountClosed,
    }

    #[derive(Default, Serialize, Deserialize)]
    struct BankAccount {
        balance: i64,
        open: bool,
        closed: bool,
    }

    /// A refusal: a stable code and a message.
    pub struct Rejection {
        pub code: &'static str,
        pub message: String,
    }

    fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }

    impl BankAccount {
        fn require_open(&self) -> Result<(), Rejection> {
            if self.closed {
                return Err(reject("account-closed", "the account is closed"));
            }
            if !self.open {
                return Err(reject(
                    "account-not-open",
                    "the account has not been opened",
                ));
            }
            Ok(())
        }

        fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
            match command {
                Command::OpenAccount { initial_balance } => {
                    if self.closed {
                        return Err(reject(
                            "account-closed",
                            "a closed account cannot be reopened",
                        ));
                    }
                    if self.open {
                        return Err(reject(
                            "account-already-open",
                            "the account is already open",
                        ));
                    }
                    if initial_balance < 0 {
                        return Err(reject(
                            "invalid-amount",
                            format!("initial balance must not be negative, got {initial_balance}"),
                        ));
                    }
                    Ok(vec![Event::AccountOpened { initial_balance }])
                }
                Command::Deposit { amount } => {
                    self.require_open()?;
                    require_positive(amount)?;
                    if self.balance.checked_add(amount).is_none() {
                        return Err(reject(
                            "invalid-amount",
                            format!(
                                "depositing {amount} would overflow the balance {}",
                                self.balance
                            ),
                        ));
                    }
                    Ok(vec![Event::MoneyDeposited { amount }])
                }
                Command::Withdraw { amount } => {
                    self.require_open()?;
                    require_positive(amount)?;
                    if amount > self.balance {
                        return Err(reject(
                            "insufficient-funds",
                            format!("cannot withdraw {amount}: the balance is {}", self.balance),
                        ));
                    }
                    Ok(vec![Event::MoneyWithdrawn { amount }])
                }
                Command::CloseAccount => {
                    self.require_open()?;
                    if self.balance != 0 {
                        return Err(reject(
                            "balance-not-zero",
                            format!(
                                "the balance is {}; withdraw it before closing",
                                self.balance
                            ),
                        ));
                    }
                    Ok(vec![Event::AccountClosed])
                }
            }
        }

        fn apply(&mut self, event: Event) {
            match event {
                Event::AccountOpened { initial_balance } => {
                    self.open = true;
                    self.balance = initial_balance;
                }
                Event::MoneyDeposited { amount } => {
                    self.balance = self.balance.checked_add(amount).expect("checked");
                }
                Event::MoneyWithdrawn { amount } => {
                    self.balance = self.balance.checked_sub(amount).expect("checked");
                }
                Event::AccountClosed => {
                    self.open = false;
                    self.closed = true;
                }
            }
        }
    }

    fn require_positive(amount: i64) -> Result<(), Rejection> {
        if amount <= 0 {
            return Err(reject(
                "invalid-amount",
                format!("amount must be above zero, got {amount}"),
            ));
        }
        Ok(())
    }

    /// As the SDK's `parse_data`: blank means no data.
    fn parse_data(data: &[u8]) -> Result<Value, String> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(data).map_err(|error| format!("data is not JSON: {error}"))
    }

    /// As the SDK's `from_named`.
    fn from_named<T: DeserializeOwned>(name: &str, data: Value) -> Result<T, String> {
        let no_data = match &data {
            Value::Null => true,
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        let tagged = Value::Object(Map::from_iter([(name.to_owned(), data)]));
        match serde_json::from_value(tagged) {
            Ok(value) => Ok(value),
            Err(error) => {
                if no_data && let Ok(value) = serde_json::from_value(Value::String(name.to_owned()))
                {
                    return Ok(value);
                }
                Err(error.to_string())
            }
        }
    }

    /// As the SDK's `encode_event`: name and JSON data through a `Value`.
    fn encode_event(event: &Event) -> (String, Vec<u8>) {
        match serde_json::to_value(event).expect("events serialize") {
            Value::String(name) => (name, b"{}".to_vec()),
            Value::Object(map) => {
                let (name, data) = map.into_iter().next().expect("one entry");
                (name, serde_json::to_vec(&data).expect("a Value serializes"))
            }
            other => panic!("not an enum variant: {other}"),
        }
    }

    fn decode_state(state: &[u8]) -> Result<BankAccount, String> {
        serde_json::from_slice(state).map_err(|error| format!("state cannot be decoded: {error}"))
    }

    pub fn initial_state() -> Vec<u8> {
        serde_json::to_vec(&BankAccount::default()).expect("state serializes")
    }

    /// `handle`: the events (name, JSON data) a command produces, or its rejection.
    pub fn handle(
        state: &[u8],
        name: &str,
        data: &[u8],
    ) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
        let state =
            decode_state(state).map_err(|error| reject("invalid-state", error.to_string()))?;
        let invalid = |error: String| reject("invalid-command", format!("command {name}: {error}"));
        let command = from_named(name, parse_data(data).map_err(invalid)?).map_err(invalid)?;
        let events = state.handle(command)?;
        Ok(events.iter().map(encode_event).collect())
    }

    /// `apply`: folds events (name, JSON data) into the state.
    pub fn apply<'a>(
        state: &[u8],
        events: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Vec<u8>, String> {
        let mut state = decode_state(state)?;
        for (index, (name, data)) in events.enumerate() {
            let event = from_named(name, parse_data(data)?)
                .map_err(|error| format!("event {index} of the batch: {name}: {error}"))?;
            state.apply(event);
        }
        Ok(serde_json::to_vec(&state).expect("state serializes"))
    }
}

// ---------------------------------------------------------------------------------------
// Rehydration.

/// A store config for building logs fast (`Os`: flushed on close).
fn building(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.wal.fsync_policy = FsyncPolicy::Os;
    config
}

/// Makes a runtime in `dir` with one account `id` opened through bank-account v1, then
/// appends deposits straight to the store (batches of 1,000, the plugin's exact event
/// JSON) until the account has `events` events.
async fn build_account(dir: &Path, plugin: &[u8], id: &str, events: u64) -> Result<()> {
    let mut config = RuntimeConfig::new(dir);
    config.snapshot_every = 0;
    let runtime = open_runtime(config, plugin).await?;
    runtime
        .execute(TYPE, id, open_account(), ExecuteOptions::default())
        .await?;
    runtime.close().await?;
    drop(runtime);

    let (store, _) = EventStore::open(building(dir)).await?;
    let stream = StreamId::new(TYPE, id);
    let remaining = Arc::new(AtomicU64::new(events - 1));
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (store, stream, remaining) = (store.clone(), stream.clone(), remaining.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let taken = remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        (left > 0).then(|| left.saturating_sub(1_000))
                    })
                    .map_or(0, |left| left.min(1_000));
                if taken == 0 {
                    return Ok::<_, anyhow::Error>(());
                }
                let batch = (0..taken)
                    .map(|_| NewEvent::new("MoneyDeposited", r#"{"amount":1}"#))
                    .collect();
                store
                    .append(
                        &stream,
                        ExpectedVersion::Any,
                        batch,
                        AppendOptions::default(),
                    )
                    .await?;
            }
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let version = store.stream_version(&stream).context("the stream exists")?;
    ensure!(version + 1 == events, "built {} events", version + 1);
    store.close().await?;
    Ok(())
}

async fn fold(
    dir: &Path,
    plugin: &[u8],
    events: u64,
    rounds: u32,
    report: &mut Report,
) -> Result<()> {
    eprintln!("fold: building an account of {events} events ...");
    build_account(dir, plugin, "big", events).await?;
    let mut best = f64::MAX;
    for round in 0..rounds {
        eprintln!(
            "fold: Runtime::state on a fresh runtime (round {}) ...",
            round + 1
        );
        let mut config = RuntimeConfig::new(dir);
        config.snapshot_every = 0;
        let (runtime, _) = Runtime::open(config).await?;
        let started = Instant::now();
        let state = runtime.state(TYPE, "big").await?.context("the account")?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("fold: {:.0} ms", seconds * 1e3);
        best = best.min(seconds);
        ensure!(state.version == events, "folded {} events", state.version);
        let expected = format!("\"balance\":{}", events - 1);
        ensure!(
            state.state_json.contains(&expected),
            "state {}",
            state.state_json
        );
        if round == 0 {
            let store = runtime.store();
            let stream = StreamId::new(TYPE, "big");
            eprintln!("fold: reading alone, and folding natively ...");
            let started = Instant::now();
            let mut version = 0u64;
            let page = store.config().max_read_count;
            loop {
                let read = store
                    .read_stream(&stream, StreamRead::forward(version, page))
                    .await?;
                version += read.len() as u64;
                if read.len() < page {
                    break;
                }
            }
            ensure!(version == events);
            report.fold_read_events_per_s =
                (events as f64 / started.elapsed().as_secs_f64()) as u64;
            let started = Instant::now();
            let (version, state) = native_fold(store, &stream).await?;
            report.fold_native_events_per_s =
                (events as f64 / started.elapsed().as_secs_f64()) as u64;
            ensure!(version == events);
            ensure!(String::from_utf8(state)?.contains(&expected));
        }
        runtime.close().await?;
    }
    report.fold_ms = best * 1e3;
    report.fold_events_per_s = (events as f64 / best) as u64;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The recipe's naive approach.

/// Per command: read the whole log with `read_all`, fold the account's events through the
/// plugin (a `LoadedPlugin` instance, batches of 512), `handle`, `apply`, append.
async fn naive(
    dir: &Path,
    plugin_bytes: &[u8],
    events: u64,
    commands: u64,
    report: &mut Report,
) -> Result<()> {
    eprintln!("naive: building a log of {events} events ...");
    build_account(dir, plugin_bytes, "naive", events).await?;
    let engine = PluginEngine::new(EngineConfig {
        cache_dir: Some(dir.join("compile-cache")),
        ..EngineConfig::default()
    })?;
    let bytes = plugin_bytes.to_vec();
    let plugin = tokio::task::spawn_blocking(move || LoadedPlugin::load(&engine, &bytes)).await??;
    let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
    let stream = StreamId::new(TYPE, "naive");
    eprintln!("naive: {commands} commands, each folding the whole log ...");
    let started = Instant::now();
    for _ in 0..commands {
        let mut log = Vec::new();
        let page = store.config().max_read_count;
        let mut position = 0;
        loop {
            let read = store.read_all(position, page).await?;
            let Some(last) = read.last() else { break };
            position = last.position + 1;
            log.extend(read.into_iter().filter(|event| event.stream == stream));
        }
        let plugin = plugin.clone();
        let id = stream.aggregate_id.clone();
        let (version, decided) = tokio::task::spawn_blocking(move || {
            let mut instance = plugin.instance();
            let mut state = instance.initial_state()?;
            let version = log.len() as u64;
            for chunk in log.chunks(512) {
                let events: Vec<Event> = chunk
                    .iter()
                    .map(|event| Event {
                        name: event.name.clone(),
                        version: event.schema_version,
                        data: event.data.to_vec(),
                    })
                    .collect();
                state = instance
                    .apply(&state, &events)?
                    .map_err(anyhow::Error::msg)?;
            }
            let context = Context {
                aggregate_id: id,
                stream_version: version,
                now_ms: 0,
            };
            let decided = instance
                .handle(&context, &state, &deposit())?
                .map_err(|rejection| anyhow::anyhow!("rejected: {}", rejection.code))?;
            instance
                .apply(&state, &decided)?
                .map_err(anyhow::Error::msg)?;
            Ok::<_, anyhow::Error>((version, decided))
        })
        .await??;
        let new_events = decided
            .into_iter()
            .map(|event| NewEvent::new(event.name, event.data).with_schema_version(event.version))
            .collect();
        store
            .append(
                &stream,
                ExpectedVersion::Exact(version - 1),
                new_events,
                AppendOptions::default(),
            )
            .await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    store.close().await?;
    report.naive_commands_per_s = commands as f64 / seconds;
    report.naive_command_ms = seconds * 1e3 / commands as f64;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hot swap.

/// One command's latency, by when it started (from the run's start).
#[derive(Clone, Copy)]
struct Sample {
    started: Duration,
    latency: Duration,
}

async fn swap(
    dir: &Path,
    (v1, v2): (&[u8], &[u8]),
    measure: Duration,
    (swap_skip_verify, trace): (bool, bool),
    report: &mut Report,
) -> Result<()> {
    eprintln!("swap: opening {ACCOUNTS} accounts, a little load ...");
    let (_, runtime) = wasm_commands(RuntimeConfig::new(dir), v1, measure / 4).await?;
    eprintln!("swap: installing v2 (compiled, not active) ...");
    runtime
        .install_plugin(v2.to_vec(), InstallOptions::default())
        .await?;

    eprintln!("swap: activating v2 with no load ...");
    let started = Instant::now();
    let activation = runtime
        .activate(TYPE, "2.0.0", ActivateOptions::default())
        .await?;
    report.swap_activate_ms = started.elapsed().as_secs_f64() * 1e3;
    report.swap_verified_streams = activation.activation.verified_streams.unwrap_or(0);
    report.swap_verified_events = activation.verified_events;
    report.swap_verify_ms = activation.verify_ms;
    report.verify_ms_per_million_events =
        activation.verify_ms as f64 * 1e6 / activation.verified_events.max(1) as f64;
    eprintln!("swap: rolling back to v1 ...");
    let started = Instant::now();
    runtime.rollback(TYPE, ActivateOptions::default()).await?;
    report.rollback_ms = started.elapsed().as_secs_f64() * 1e3;

    // 64 tasks depositing continuously, latencies recorded.
    eprintln!(
        "swap: {SWAP_WRITERS} tasks; a steady window, then one with v2 activated in the middle ..."
    );
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for task in 0..SWAP_WRITERS {
        let (runtime, stop) = (runtime.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut seed = task + 1_000;
            let mut samples = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let id = account_id(next_account(&mut seed));
                let started = Instant::now();
                runtime
                    .execute(TYPE, &id, deposit(), ExecuteOptions::default())
                    .await?;
                samples.push(Sample {
                    started: started - origin,
                    latency: started.elapsed(),
                });
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    // Warm-up, then the steady window, then the swap window (v2 activated after half of
    // `measure`). Both last `window`: `measure` plus three times the unloaded activation
    // (activation under load takes longer); the swap window is longer if it has to be.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = measure + Duration::from_secs_f64(3.0 * report.swap_activate_ms / 1e3);
    let steady_start = origin.elapsed();
    tokio::time::sleep(window).await;
    let swap_start = origin.elapsed();
    let steady = (steady_start, swap_start);
    tokio::time::sleep(measure / 2).await;
    let activate_start = origin.elapsed();
    if trace {
        eprintln!("swap: activation starts at {:?}", Instant::now());
    }
    runtime
        .activate(
            TYPE,
            "2.0.0",
            ActivateOptions {
                skip_verify: swap_skip_verify,
                ..ActivateOptions::default()
            },
        )
        .await?;
    let activate_end = origin.elapsed();
    report.swap_under_load_activate_ms = (activate_end - activate_start).as_secs_f64() * 1e3;
    let rest = (swap_start + window).saturating_sub(origin.elapsed());
    tokio::time::sleep(rest.max(measure / 4)).await;
    let swap_end = origin.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for handle in handles {
        samples.extend(handle.await??);
    }
    let window = |(from, to): (Duration, Duration)| {
        let mut latencies: Vec<Duration> = samples
            .iter()
            .filter(|sample| sample.started >= from && sample.started < to)
            .map(|sample| sample.latency)
            .collect();
        latencies.sort_unstable();
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        let max = latencies.last().copied().map_or(0.0, ms);
        let p99 = latencies
            .get(latencies.len() * 99 / 100)
            .copied()
            .map_or(0.0, ms);
        (max, p99, latencies.len() as u64)
    };
    let (steady_max, steady_p99, steady_count) = window(steady);
    let (swap_max, swap_p99, swap_count) = window((swap_start, swap_end));
    // Where the slow commands of the swap window were, relative to the activation.
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let slow: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.started >= swap_start && sample.latency > Duration::from_millis(50))
        .collect();
    eprintln!(
        "swap: activation {:.0}..{:.0} ms into the window; {} commands over 50 ms",
        ms(activate_start - swap_start),
        ms(activate_end - swap_start),
        slow.len()
    );
    for sample in slow.iter().take(8) {
        eprintln!(
            "  started {:.0} ms, took {:.1} ms",
            ms(sample.started.saturating_sub(swap_start)),
            ms(sample.latency)
        );
    }
    // Throughput per 100 ms around the activation.
    let mut buckets = Vec::new();
    let mut from = swap_start;
    while from < swap_end {
        let to = from + Duration::from_millis(100);
        let count = samples
            .iter()
            .filter(|sample| {
                let done = sample.started + sample.latency;
                done >= from && done < to
            })
            .count();
        buckets.push(count);
        from = to;
    }
    eprintln!("swap: commands done per 100 ms: {buckets:?}");
    report.steady_max_ms = steady_max;
    report.steady_p99_ms = steady_p99;
    report.steady_window_commands = steady_count;
    report.swap_pause_ms = swap_max;
    report.swap_p99_ms = swap_p99;
    report.swap_window_commands = swap_count;
    report.swap_window_s = (swap_end - swap_start).as_secs_f64();
    report.steady_window_s = (steady.1 - steady.0).as_secs_f64();
    runtime.close().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pooling allocator.

mod raw {
    //! A raw wasmtime engine configured like `tally-runtime`'s (component model, epoch
    //! interruption, optimised code, the same WASI context and store limits), with the
    //! default on-demand allocator or the pooling allocator.

    use std::time::Instant;

    use anyhow::Result;
    use tally_plugin_contract_tests::bindings::PluginPre;
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{
        Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Store,
        StoreLimits, StoreLimitsBuilder,
    };
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    pub struct Guest {
        wasi: WasiCtx,
        table: ResourceTable,
        limits: StoreLimits,
    }

    impl WasiView for Guest {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    pub struct Figures {
        /// Store, instantiate, first `initial-state`, drop; minus a warm call.
        pub cycle_us: f64,
        /// Store and instantiate only.
        pub instantiate_us: f64,
        /// A warm `initial-state` call.
        pub warm_call_us: f64,
    }

    fn new_store(engine: &Engine) -> Store<Guest> {
        let wasi = WasiCtx::builder()
            .stdout(MemoryOutputPipe::new(64 << 10))
            .stderr(MemoryOutputPipe::new(64 << 10))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(64 << 20)
            .table_elements(1 << 20)
            .build();
        let mut store = Store::new(
            engine,
            Guest {
                wasi,
                table: ResourceTable::new(),
                limits,
            },
        );
        store.limiter(|guest| &mut guest.limits);
        store.set_epoch_deadline(1_000_000);
        store
    }

    pub fn measure(bytes: &[u8], pooling: bool, rounds: u32) -> Result<Figures> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed);
        if pooling {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(64)
                .total_core_instances(256)
                .total_memories(64)
                .total_tables(128)
                .max_memory_size(64 << 20);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, bytes)?;
        let mut linker = Linker::<Guest>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;

        let cycle = |rounds: u32| -> Result<f64> {
            let started = Instant::now();
            for _ in 0..rounds {
                let mut store = new_store(&engine);
                let plugin = pre.instantiate(&mut store)?;
                plugin
                    .tally_aggregate_aggregate()
                    .call_initial_state(&mut store)?;
            }
            Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds))
        };
        cycle(rounds / 10)?; // warm-up
        let full = cycle(rounds)?;

        let mut stores = Vec::with_capacity(50);
        let mut instantiate = 0.0;
        let mut done = 0u32;
        while done < rounds {
            let started = Instant::now();
            for _ in 0..50 {
                let mut store = new_store(&engine);
                pre.instantiate(&mut store)?;
                stores.push(store);
            }
            instantiate += started.elapsed().as_secs_f64() * 1e6;
            stores.clear();
            done += 50;
        }
        let instantiate_us = instantiate / f64::from(done);

        let mut store = new_store(&engine);
        let plugin = pre.instantiate(&mut store)?;
        let aggregate = plugin.tally_aggregate_aggregate();
        for _ in 0..1_000 {
            aggregate.call_initial_state(&mut store)?;
        }
        let started = Instant::now();
        for _ in 0..rounds {
            aggregate.call_initial_state(&mut store)?;
        }
        let warm_call_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        Ok(Figures {
            cycle_us: full - warm_call_us,
            instantiate_us,
            warm_call_us,
        })
    }
}

fn pooling(plugin: &[u8], rounds: u32, report: &mut Report) -> Result<()> {
    eprintln!("pooling: {rounds} instantiations, on-demand allocator ...");
    let on_demand = raw::measure(plugin, false, rounds)?;
    eprintln!("pooling: {rounds} instantiations, pooling allocator ...");
    let pooled = raw::measure(plugin, true, rounds)?;
    report.instantiate_ondemand_us = on_demand.cycle_us;
    report.instantiate_pooling_us = pooled.cycle_us;
    report.instantiate_only_ondemand_us = on_demand.instantiate_us;
    report.instantiate_only_pooling_us = pooled.instantiate_us;
    report.warm_call_us = (on_demand.warm_call_us + pooled.warm_call_us) / 2.0;
    // A command makes two calls (handle, apply): an instance serves calls / 2 commands.
    let calls = EngineConfig::default().max_calls_per_instance as f64;
    report.pooling_saving_per_command_ns =
        (on_demand.cycle_us - pooled.cycle_us) * 1e3 / calls * 2.0;
    Ok(())
}
