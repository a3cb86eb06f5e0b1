//! `tally-bench commands`: durable commands per second through the bank-account plugin
//! (`Runtime::execute`), beside the same logic compiled natively into the same runtime,
//! beside that logic in a bare pipeline, and beside the recipe's approach of re-folding
//! the whole log per command (formerly part of the `runtime_bench` example).
//!
//! The native reference of issue 5's target ("wasm commands at least 0.7 of native") is
//! `native_commands_per_s`: the commands go through the same `Runtime::execute`, store
//! and log, and only the logic differs (the plugin, or its source compiled in as
//! [`NativeRules`](tally_runtime::NativeRules)), so the ratio is the price of running
//! the logic as a sandboxed plugin. The bare pipeline (`bare_native_*`) also leaves out
//! the runtime's bookkeeping; it is kept as a lower bound on native cost.
//!
//! | figure | how |
//! | --- | --- |
//! | `fsync_floor_per_s` | a plain loop of one 1 KiB `pwrite` then `fdatasync` (preallocated file), before and after the command runs; their mean |
//! | `wasm_commands_per_s` | 256 tasks send `Deposit` commands to random accounts of 10,000 (opened first, not timed) through `Runtime::execute` and bank-account v1, `FsyncPolicy::Always`; the median of 3 rounds (1 with `--quick`), each on a new store |
//! | `native_commands_per_s` / `native_ratio` | the same workload through `Runtime::execute` with bank-account's rules compiled in as `NativeRules`: the whole pipeline but the plugin call, in rounds alternating with the plugin's; their median, and the plugin's rate over it |
//! | `bare_native_commands_per_s` / `bare_native_ratio` | the same workload through [`NativeRuntime`] (the pipeline's shape without the runtime's bookkeeping), in the same alternating rounds |
//! | `*_cpu_us_per_command` / `cpu_ratio` | the process's CPU time (all threads) over each durable round's window divided by the commands finished in it; medians of the rounds; `cpu_ratio` is native's over the plugin's. Steadier than the rates, which also depend on how groups form around the fsyncs |
//! | `wasm_os_commands_per_s` / `native_os_commands_per_s` | the plugin and the native rules in `Runtime::execute` again with `FsyncPolicy::Os`: what the CPU allows |
//! | `naive_commands_per_s` | per command, read the whole log (100,000 events; 10,000 with `--quick`) with `read_all`, fold it through the plugin, handle, append |

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tally_runtime::tally_store::tally_wal::FsyncPolicy;
use tally_runtime::tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId,
};
use tally_runtime::{Context, EngineConfig, Event, LoadedPlugin, PluginEngine, RuntimeConfig};

use super::native::{BankAccountRules, NativeRuntime};
use super::report::Report;
use super::setup::{self, Rate, TYPE, account_id, deposit, open_account};
use super::{ACCOUNTS, BenchOptions, Progress};

/// Concurrent command senders.
const WRITERS: u64 = 256;

/// Rounds of the durable cases (bare native, native rules in the runtime, plugin),
/// alternating; `--quick` runs one. The durable figures move by a third between runs
/// on a small machine (with `Always`, groups grow while an fsync is in flight), so each
/// is the median.
const DURABLE_ROUNDS: usize = 3;

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> Result<Report> {
    let measure = options.case_window();
    let work = options.work_dir("commands")?;
    let v1 = setup::component_bytes(options, "bank_account.wasm")?;

    progress.set("commands: fsync floor (1 KiB pwrite + fdatasync loop)");
    let floor_before = super::fsync_floor(work.path(), measure / 2)?;
    let rounds = if options.quick { 1 } else { DURABLE_ROUNDS };
    let (mut bares, mut natives, mut wasms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        progress.set(&format!(
            "commands: bare native, 256 tasks over {ACCOUNTS} accounts, Always (round {round} of {rounds})"
        ));
        let dir = work.path().join("bare-native");
        let bare = bare_native_commands(StoreConfig::new(&dir), measure).await?;
        progress.set(&format!(
            "commands: bare native round {round}: {:.0}/s, {:.2} us of CPU per command",
            bare.per_s, bare.cpu_us_per_op
        ));
        bares.push(bare);
        // Each store preallocates its logs: keep one at a time on disk.
        std::fs::remove_dir_all(&dir)?;
        let label = format!("native rules in Runtime::execute, Always (round {round} of {rounds})");
        let config = native_rules_config(work.path().join("native"));
        natives.push(runtime_round(options, progress, config, &v1, measure, &label).await?);
        let label = format!("wasm, Always (round {round} of {rounds})");
        let config = RuntimeConfig::new(work.path().join("wasm"));
        wasms.push(runtime_round(options, progress, config, &v1, measure, &label).await?);
    }
    let per_s = |rates: &[Rate]| rates.iter().map(|rate| rate.per_s).collect::<Vec<_>>();
    let cpu = |rates: &[Rate]| {
        rates
            .iter()
            .map(|rate| rate.cpu_us_per_op)
            .collect::<Vec<_>>()
    };
    let (native, wasm, bare) = (
        median(&per_s(&natives)),
        median(&per_s(&wasms)),
        median(&per_s(&bares)),
    );
    let (native_cpu, wasm_cpu, bare_cpu) = (
        median(&cpu(&natives)),
        median(&cpu(&wasms)),
        median(&cpu(&bares)),
    );
    // The same without an fsync per group (FsyncPolicy::Os): what the CPU allows.
    let mut config = native_rules_config(work.path().join("native-os"));
    config.store.wal.fsync_policy = FsyncPolicy::Os;
    let label = "native rules in Runtime::execute with FsyncPolicy::Os";
    let native_os = runtime_round(options, progress, config, &v1, measure, label).await?;
    let mut config = RuntimeConfig::new(work.path().join("wasm-os"));
    config.store.wal.fsync_policy = FsyncPolicy::Os;
    let label = "wasm with FsyncPolicy::Os";
    let wasm_os = runtime_round(options, progress, config, &v1, measure, label).await?;
    // Measured again after the plugin runs, so that drift of the disk shows.
    let floor_after = super::fsync_floor(work.path(), measure / 2)?;
    let floor = (floor_before + floor_after) / 2.0;

    let (naive_events, naive_count) = if options.quick {
        (10_000, 10)
    } else {
        (100_000, 5)
    };
    progress.set(&format!(
        "commands: naive, {naive_count} commands each folding a log of {naive_events} events"
    ));
    let naive_seconds = naive(
        options,
        &work.path().join("naive"),
        &v1,
        naive_events,
        naive_count,
    )
    .await?;
    work.close()?;
    let naive_per_s = naive_count as f64 / naive_seconds;

    let mut report = Report::default();
    report.note(format!(
        "durable rounds, plugin / native rules in Runtime::execute / bare native: {} (medians reported)",
        wasms
            .iter()
            .zip(&natives)
            .zip(&bares)
            .map(|((wasm, native), bare)| format!(
                "{:.0} / {:.0} / {:.0}",
                wasm.per_s, native.per_s, bare.per_s
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let cpu_us = |micros: f64| (micros * 100.0).round() / 100.0;
    report.add(
        "fsync_floor_per_s",
        "fsync floor (1 KiB write+fdatasync loop)",
        floor.round(),
        "/s",
    );
    report.add(
        "wasm_commands_per_s",
        "durable commands through the plugin (256 tasks)",
        wasm.round(),
        "/s",
    );
    report.add(
        "native_commands_per_s",
        "  the same logic compiled into Runtime::execute (all but the plugin call)",
        native.round(),
        "/s",
    );
    report.add(
        "native_ratio",
        "  plugin / native",
        wasm / native.max(1e-9),
        "x",
    );
    report.add(
        "wasm_cpu_us_per_command",
        "  CPU per command through the plugin (whole process)",
        cpu_us(wasm_cpu),
        "us",
    );
    report.add(
        "native_cpu_us_per_command",
        "  CPU per command natively",
        cpu_us(native_cpu),
        "us",
    );
    report.add(
        "cpu_ratio",
        "  native CPU / plugin CPU per command",
        native_cpu / wasm_cpu.max(1e-9),
        "x",
    );
    report.add(
        "bare_native_commands_per_s",
        "  the same logic in a bare pipeline (no runtime bookkeeping)",
        bare.round(),
        "/s",
    );
    report.add(
        "bare_native_ratio",
        "  plugin / bare native",
        wasm / bare.max(1e-9),
        "x",
    );
    report.add(
        "bare_native_cpu_us_per_command",
        "  CPU per command in the bare pipeline",
        cpu_us(bare_cpu),
        "us",
    );
    report.add(
        "commands_vs_fsync",
        "  plugin / fsync floor",
        wasm / floor.max(1e-9),
        "x",
    );
    report.add(
        "wasm_os_commands_per_s",
        "commands through the plugin, FsyncPolicy::Os",
        wasm_os.per_s.round(),
        "/s",
    );
    report.add(
        "native_os_commands_per_s",
        "  natively in Runtime::execute, FsyncPolicy::Os",
        native_os.per_s.round(),
        "/s",
    );
    report.add(
        "native_os_ratio",
        "  plugin / native",
        wasm_os.per_s / native_os.per_s.max(1e-9),
        "x",
    );
    report.add(
        "naive_commands_per_s",
        &format!("recipe: re-fold the whole log per command ({naive_events} events)"),
        naive_per_s,
        "/s",
    );
    report.add(
        "naive_command_ms",
        "  per command",
        naive_seconds * 1e3 / naive_count as f64,
        "ms",
    );
    report.add(
        "naive_log_events",
        "  events of that log",
        naive_events as f64,
        "",
    );
    report.add(
        "wasm_vs_naive",
        "plugin commands / recipe commands",
        wasm / naive_per_s.max(1e-9),
        "x",
    );
    Ok(report)
}

/// One durable round through `Runtime::execute` in a new runtime of `config` with
/// `plugin` active; the runtime's directory is removed after it (each store
/// preallocates its logs: one at a time on disk).
async fn runtime_round(
    options: &BenchOptions,
    progress: &Progress,
    config: RuntimeConfig,
    plugin: &[u8],
    measure: Duration,
    label: &str,
) -> Result<Rate> {
    progress.set(&format!(
        "commands: {label}: 256 tasks over {ACCOUNTS} accounts"
    ));
    let dir = config.dir.clone();
    let (rate, runtime) = setup::wasm_commands(options, config, plugin, WRITERS, measure).await?;
    progress.set(&format!(
        "commands: {label}: {:.0}/s, {:.2} us of CPU per command",
        rate.per_s, rate.cpu_us_per_op
    ));
    runtime.close().await?;
    drop(runtime);
    std::fs::remove_dir_all(&dir)?;
    Ok(rate)
}

/// The median of `values` (the mean of the middle two for an even count); 0 if empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A runtime config in `dir` that decides bank-account commands with the plugin's
/// source compiled in ([`BankAccountRules`]) instead of the plugin.
fn native_rules_config(dir: std::path::PathBuf) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(dir);
    config
        .native_rules
        .insert(TYPE.to_owned(), Arc::new(BankAccountRules));
    config
}

/// Opens the accounts through [`NativeRuntime`] (untimed), then measures deposits.
async fn bare_native_commands(config: StoreConfig, measure: Duration) -> Result<Rate> {
    let (store, _) = EventStore::open(config).await?;
    let native = Arc::new(NativeRuntime::new(store.clone()));
    let opener = native.clone();
    setup::for_each_account(move |account| {
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
    let rate = setup::drive(WRITERS, measure, move |account| {
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

/// The recipe's naive approach. Per command: read the whole log with `read_all`, fold
/// the account's events through the plugin (a `LoadedPlugin` instance, batches of 512),
/// `handle`, `apply`, append. Returns the seconds `commands` commands took.
async fn naive(
    options: &BenchOptions,
    dir: &Path,
    plugin_bytes: &[u8],
    events: u64,
    commands: u64,
) -> Result<f64> {
    setup::build_account(options, dir, plugin_bytes, "naive", events).await?;
    let engine = PluginEngine::new(EngineConfig {
        cache_dir: Some(options.compile_cache()),
        ..EngineConfig::default()
    })?;
    let bytes = plugin_bytes.to_vec();
    let plugin = tokio::task::spawn_blocking(move || LoadedPlugin::load(&engine, &bytes)).await??;
    let (store, _) = EventStore::open(StoreConfig::new(dir)).await?;
    let stream = StreamId::new(TYPE, "naive");
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
                aggregate_id: id.to_string(),
                stream_version: version,
                now_ms: 0,
            };
            let decided = instance
                .handle(&context, &state, &deposit())?
                .map_err(|rejection| anyhow::anyhow!("rejected: {}", rejection.code))?;
            instance
                .apply(&state, &decided)?
                .map_err(anyhow::Error::msg)?;
            anyhow::Ok((version, decided))
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
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
