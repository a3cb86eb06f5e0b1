//! What several suites need: a runtime with bank-account v1 and its accounts, and
//! the in-process deposit load.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tally_runtime::tally_store::tally_wal::FsyncPolicy;
use tally_runtime::tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId,
};
use tally_runtime::{Command, ExecuteOptions, InstallOptions, Runtime, RuntimeConfig};

use super::load::{self, LoadResult, Schedule};
use super::{ACCOUNTS, BenchOptions};

/// A runtime in `dir` (durable appends) with bank-account v1 active.
pub async fn bank_runtime(options: &BenchOptions, dir: &Path) -> anyhow::Result<Runtime> {
    let mut config = RuntimeConfig::new(dir);
    config.engine.cache_dir = Some(options.compile_cache());
    let (runtime, _) = Runtime::open(config).await?;
    let component = std::fs::read(options.component("bank_account.wasm")?)?;
    let install = InstallOptions {
        activate: true,
        ..InstallOptions::default()
    };
    runtime.install_plugin(component, install).await?;
    Ok(runtime)
}

/// A bank-account command.
pub fn command(name: &str, data: &str) -> Command {
    Command {
        name: name.to_owned(),
        data: data.as_bytes().to_vec(),
    }
}

/// Sends one bank-account command through the runtime, as a load request's outcome.
pub async fn send(runtime: &Runtime, id: &str, name: &str, data: &str) -> Result<(), String> {
    runtime
        .execute(
            "bank-account",
            id,
            command(name, data),
            ExecuteOptions::default(),
        )
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Opens accounts `acc-0` .. `acc-{count-1}` with `balance`, 64 at a time.
pub async fn open_accounts(runtime: &Runtime, count: u64, balance: i64) -> anyhow::Result<()> {
    let runtime = runtime.clone();
    let data = format!(r#"{{"initial_balance":{balance}}}"#);
    let opened = load::run(
        64,
        Schedule::count(count),
        |_| async { Ok(()) },
        move |(), _, i| {
            let (runtime, data) = (runtime.clone(), data.clone());
            async move {
                let outcome = send(&runtime, &format!("acc-{i}"), "OpenAccount", &data).await;
                ((), outcome)
            }
        },
    )
    .await?;
    opened.ensure_no_errors("opening accounts")
}

/// Durable deposits over [`ACCOUNTS`] accounts from `tasks` tasks for `window`,
/// through the runtime in `dir`.
pub async fn in_process_deposits(
    options: &BenchOptions,
    dir: &Path,
    tasks: usize,
    window: Duration,
) -> anyhow::Result<LoadResult> {
    let runtime = bank_runtime(options, dir).await?;
    open_accounts(&runtime, ACCOUNTS, 0).await?;
    let load_runtime = runtime.clone();
    let result = load::run(
        tasks,
        Schedule::for_duration(window),
        |_| async { Ok(()) },
        move |(), worker, n| {
            let runtime = load_runtime.clone();
            async move {
                let id = format!("acc-{}", (worker as u64 * 7_919 + n * 31) % ACCOUNTS);
                let outcome = send(&runtime, &id, "Deposit", r#"{"amount":1}"#).await;
                ((), outcome)
            }
        },
    )
    .await?;
    runtime.close().await?;
    result.ensure_no_errors("in-process commands")?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// The wal, store and runtime suites' shared pieces (from the former `*_bench` examples).

/// The aggregate type of bank-account.
pub const TYPE: &str = "bank-account";

/// A bank-account deposit of 1.
pub fn deposit() -> Command {
    command("Deposit", r#"{"amount":1}"#)
}

/// A bank-account opening with a zero balance.
pub fn open_account() -> Command {
    command("OpenAccount", r#"{"initial_balance":0}"#)
}

/// The id of account `n`.
pub fn account_id(n: u64) -> String {
    format!("acc-{n}")
}

/// A small LCG: each task picks its accounts (of [`ACCOUNTS`]) from its own sequence.
pub fn next_account(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) % ACCOUNTS
}

/// The bytes of a built component (`bank_account.wasm`, `bank_account_v2.wasm`).
pub fn component_bytes(options: &BenchOptions, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = options.component(name)?;
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A store config for building logs fast (`FsyncPolicy::Os`: flushed on close).
pub fn building(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.wal.fsync_policy = FsyncPolicy::Os;
    config
}

/// What a measured window gave.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Operations finished per second.
    pub per_s: f64,
    /// CPU time of the whole process (every thread: the async runtime's, the plugin
    /// threads', the log writer's) per operation finished, in microseconds.
    pub cpu_us_per_op: f64,
}

/// CPU time the process has used so far, on all its threads.
fn process_cpu_time() -> Duration {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(spent.tv_sec as u64, spent.tv_nsec as u32)
}

/// Lets `count` warm up for a quarter of a second, counts for `measure`, then sets
/// `stop`; returns the count per second over the measured window, and the process's CPU
/// time per count in it.
pub async fn measure_rate(count: &AtomicU64, stop: &AtomicBool, measure: Duration) -> Rate {
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = count.load(Ordering::Relaxed);
    let (started, cpu_before) = (Instant::now(), process_cpu_time());
    tokio::time::sleep(measure).await;
    let done = count.load(Ordering::Relaxed) - before;
    let (elapsed, cpu) = (started.elapsed(), process_cpu_time() - cpu_before);
    stop.store(true, Ordering::Relaxed);
    Rate {
        per_s: done as f64 / elapsed.as_secs_f64(),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
    }
}

/// Runs `tasks` tasks calling `call` with random accounts until stopped; the calls
/// finished per second (and the CPU time per call) in a `measure` window after a
/// quarter-second warm-up.
pub async fn drive<F, Fut>(tasks: u64, measure: Duration, call: F) -> anyhow::Result<Rate>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
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
            anyhow::Ok(())
        }));
    }
    let rate = measure_rate(&count, &stop, measure).await;
    for handle in handles {
        handle.await??;
    }
    Ok(rate)
}

/// Runs `call` once for each of [`ACCOUNTS`] accounts, from 256 tasks (untimed setup).
pub async fn for_each_account<F, Fut>(call: F) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..256 {
        let (next, call) = (next.clone(), call.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let account = next.fetch_add(1, Ordering::Relaxed);
                if account >= ACCOUNTS {
                    return anyhow::Ok(());
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

/// Opens a runtime with `config` (and the bench's compile cache) and installs and
/// activates `plugin`.
pub async fn open_runtime(
    options: &BenchOptions,
    mut config: RuntimeConfig,
    plugin: &[u8],
) -> anyhow::Result<Runtime> {
    config.engine.cache_dir = Some(options.compile_cache());
    let (runtime, _) = Runtime::open(config).await?;
    let install = InstallOptions {
        activate: true,
        ..InstallOptions::default()
    };
    runtime.install_plugin(plugin.to_vec(), install).await?;
    Ok(runtime)
}

/// Opens [`ACCOUNTS`] accounts through a runtime with `config` and `plugin` (untimed),
/// then measures durable deposits from `tasks` tasks over them; the rate and the runtime.
pub async fn wasm_commands(
    options: &BenchOptions,
    config: RuntimeConfig,
    plugin: &[u8],
    tasks: u64,
    measure: Duration,
) -> anyhow::Result<(Rate, Runtime)> {
    let runtime = open_runtime(options, config, plugin).await?;
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
    let rate = drive(tasks, measure, move |account| {
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

/// Makes a runtime in `dir` with one account `id` opened through `plugin`, then appends
/// deposits straight to the store (batches of 1,000, the plugin's exact event JSON)
/// until the account has `events` events. Snapshots are off.
pub async fn build_account(
    options: &BenchOptions,
    dir: &Path,
    plugin: &[u8],
    id: &str,
    events: u64,
) -> anyhow::Result<()> {
    let mut config = RuntimeConfig::new(dir);
    config.snapshot_every = 0;
    let runtime = open_runtime(options, config, plugin).await?;
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
                    return anyhow::Ok(());
                }
                append_deposits(&store, &stream, taken, r#"{"amount":1}"#).await?;
            }
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let version = store.stream_version(&stream);
    anyhow::ensure!(version.get() == events, "built {version} events");
    store.close().await?;
    Ok(())
}

/// Appends `count` `MoneyDeposited` events with `data` to `stream` in one batch, at
/// whatever version the stream is.
pub async fn append_deposits(
    store: &EventStore,
    stream: &StreamId,
    count: u64,
    data: &'static str,
) -> anyhow::Result<()> {
    let batch = (0..count)
        .map(|_| NewEvent::new("MoneyDeposited", data))
        .collect();
    store
        .append(
            stream,
            ExpectedVersion::Any,
            batch,
            AppendOptions::default(),
        )
        .await?;
    Ok(())
}
