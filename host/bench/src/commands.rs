//! `tally-bench commands`: durable commands per second through the bank-account plugin
//! (`Runtime::execute`), beside the same logic compiled natively into the same runtime,
//! beside that logic in a bare pipeline, and beside the recipe's approach of re-folding
//! the whole log per command (formerly part of the `runtime_bench` example).
//!
//! The native reference of the target "wasm commands at least 0.7 of native" is
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
    AppendOptions, EventStore, ExpectedVersion, GlobalPosition, NewEvent, SchemaVersion,
    StoreConfig, StreamId, StreamVersion,
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
    let durable = durable_rounds(options, progress, work.path(), &v1, rounds).await?;
    let os = os_rounds(options, progress, work.path(), &v1).await?;
    // Measured again after the plugin runs, so that drift of the disk shows.
    let floor_after = super::fsync_floor(work.path(), measure / 2)?;
    let floor = (floor_before + floor_after) / 2.0;
    let naive = naive_case(options, progress, &work.path().join("naive"), &v1).await?;
    let others = other_plugin_rounds(options, progress, work.path()).await?;
    work.close()?;

    let mut report = Report::default();
    report.note(durable.note());
    add_durable_figures(&mut report, &durable, floor);
    add_os_figures(&mut report, &os);
    add_naive_figures(&mut report, &naive, durable.wasm().per_s);
    add_other_plugin_figures(&mut report, &others, &durable.wasm());
    Ok(report)
}

/// One durable round through each `--plugin` build, named.
async fn other_plugin_rounds(
    options: &BenchOptions,
    progress: &Progress,
    work: &Path,
) -> Result<Vec<(String, Rate)>> {
    let mut rates = Vec::new();
    for other in &options.other_plugins {
        let dir = work.join(format!("wasm-{}", other.name));
        let label = format!("wasm {}, Always", other.name);
        let config = RuntimeConfig::new(&dir);
        let bytes = other.bytes()?;
        let rate = runtime_round(
            options,
            progress,
            config,
            &dir,
            &bytes,
            options.case_window(),
            &label,
        );
        rates.push((other.name.clone(), rate.await?));
    }
    Ok(rates)
}

/// The `--plugin` builds' durable commands beside the Rust plugin's (`rust`).
fn add_other_plugin_figures(report: &mut Report, others: &[(String, Rate)], rust: &Medians) {
    for (name, rate) in others {
        report.add(
            &format!("wasm_{name}_commands_per_s"),
            &format!("durable commands through the {name} build of the plugin"),
            rate.per_s.round(),
            "/s",
        );
        report.add(
            &format!("wasm_{name}_cpu_us_per_command"),
            "  CPU per command (whole process)",
            cpu_us(rate.cpu_us_per_op),
            "us",
        );
        report.add(
            &format!("wasm_{name}_cpu_vs_rust"),
            "  its CPU per command / the Rust plugin's",
            rate.cpu_us_per_op / rust.cpu_us.max(1e-9),
            "x",
        );
    }
}

/// The durable rounds' rates of each pipeline, round by round.
#[derive(Debug, Default)]
struct DurableRounds {
    bares: Vec<Rate>,
    natives: Vec<Rate>,
    wasms: Vec<Rate>,
}

/// The medians of a pipeline's rounds: commands per second, CPU per command.
#[derive(Debug)]
struct Medians {
    per_s: f64,
    cpu_us: f64,
}

/// The medians of `rates`.
fn medians(rates: &[Rate]) -> Medians {
    let per_s: Vec<f64> = rates.iter().map(|rate| rate.per_s).collect();
    let cpu: Vec<f64> = rates.iter().map(|rate| rate.cpu_us_per_op).collect();
    Medians {
        per_s: median(&per_s),
        cpu_us: median(&cpu),
    }
}

impl DurableRounds {
    /// The bare native pipeline's medians.
    fn bare(&self) -> Medians {
        medians(&self.bares)
    }

    /// The medians of the native rules in `Runtime::execute`.
    fn native(&self) -> Medians {
        medians(&self.natives)
    }

    /// The plugin's medians.
    fn wasm(&self) -> Medians {
        medians(&self.wasms)
    }

    /// Every round's rates, plugin / native rules / bare native.
    fn note(&self) -> String {
        format!(
            "durable rounds, plugin / native rules in Runtime::execute / bare native: {} (medians reported)",
            self.wasms
                .iter()
                .zip(&self.natives)
                .zip(&self.bares)
                .map(|((wasm, native), bare)| format!(
                    "{:.0} / {:.0} / {:.0}",
                    wasm.per_s, native.per_s, bare.per_s
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// `rounds` durable rounds, each of bare native, native rules in the runtime and the
/// plugin in turn, with `FsyncPolicy::Always`, each on a new store in `work`.
async fn durable_rounds(
    options: &BenchOptions,
    progress: &Progress,
    work: &Path,
    plugin: &[u8],
    rounds: usize,
) -> Result<DurableRounds> {
    let measure = options.case_window();
    let mut durable = DurableRounds::default();
    for round in 1..=rounds {
        let of = format!("round {round} of {rounds}");
        let dir = work.join("bare-native");
        let bare = bare_round(progress, &dir, measure, round, rounds);
        durable.bares.push(bare.await?);
        let label = format!("native rules in Runtime::execute, Always ({of})");
        let dir = work.join("native");
        let config = native_rules_config(&dir);
        let native = runtime_round(options, progress, config, &dir, plugin, measure, &label);
        durable.natives.push(native.await?);
        let label = format!("wasm, Always ({of})");
        let dir = work.join("wasm");
        let config = RuntimeConfig::new(&dir);
        let wasm = runtime_round(options, progress, config, &dir, plugin, measure, &label);
        durable.wasms.push(wasm.await?);
    }
    Ok(durable)
}

/// One durable round through [`NativeRuntime`] on a new store in `dir`, removed after
/// it (each store preallocates its logs: keep one at a time on disk).
async fn bare_round(
    progress: &Progress,
    dir: &Path,
    measure: Duration,
    round: usize,
    rounds: usize,
) -> Result<Rate> {
    progress.set(&format!(
        "commands: bare native, 256 tasks over {ACCOUNTS} accounts, Always (round {round} of {rounds})"
    ));
    let bare = bare_native_commands(StoreConfig::new(dir), measure).await?;
    progress.set(&format!(
        "commands: bare native round {round}: {:.0}/s, {:.2} us of CPU per command",
        bare.per_s, bare.cpu_us_per_op
    ));
    std::fs::remove_dir_all(dir)?;
    Ok(bare)
}

/// The native rules and the plugin in `Runtime::execute` without an fsync per group
/// (`FsyncPolicy::Os`).
struct OsRates {
    native: Rate,
    wasm: Rate,
}

/// The same without an fsync per group (`FsyncPolicy::Os`): what the CPU allows.
async fn os_rounds(
    options: &BenchOptions,
    progress: &Progress,
    work: &Path,
    plugin: &[u8],
) -> Result<OsRates> {
    let measure = options.case_window();
    let dir = work.join("native-os");
    let mut config = native_rules_config(&dir);
    config.store.wal.fsync_policy = FsyncPolicy::Os;
    let label = "native rules in Runtime::execute with FsyncPolicy::Os";
    let native = runtime_round(options, progress, config, &dir, plugin, measure, label).await?;
    let dir = work.join("wasm-os");
    let mut config = RuntimeConfig::new(&dir);
    config.store.wal.fsync_policy = FsyncPolicy::Os;
    let label = "wasm with FsyncPolicy::Os";
    let wasm = runtime_round(options, progress, config, &dir, plugin, measure, label).await?;
    Ok(OsRates { native, wasm })
}

/// What the recipe's naive approach measured.
struct NaiveFigures {
    /// Events of the log each command re-folds.
    events: u64,
    commands: u64,
    seconds: f64,
}

impl NaiveFigures {
    fn per_s(&self) -> f64 {
        self.commands as f64 / self.seconds
    }
}

/// The recipe's naive approach on a log in `dir`: 10 commands over 10,000 events with
/// `--quick`, else 5 over 100,000.
async fn naive_case(
    options: &BenchOptions,
    progress: &Progress,
    dir: &Path,
    plugin: &[u8],
) -> Result<NaiveFigures> {
    let (events, commands) = if options.quick {
        (10_000, 10)
    } else {
        (100_000, 5)
    };
    progress.set(&format!(
        "commands: naive, {commands} commands each folding a log of {events} events"
    ));
    let seconds = naive(options, dir, plugin, events, commands).await?;
    Ok(NaiveFigures {
        events,
        commands,
        seconds,
    })
}

/// Rounds to hundredths of a microsecond.
fn cpu_us(micros: f64) -> f64 {
    (micros * 100.0).round() / 100.0
}

/// The durable medians beside each other and the fsync floor.
fn add_durable_figures(report: &mut Report, durable: &DurableRounds, floor: f64) {
    let (wasm, native, bare) = (durable.wasm(), durable.native(), durable.bare());
    report.add(
        "fsync_floor_per_s",
        "fsync floor (1 KiB write+fdatasync loop)",
        floor.round(),
        "/s",
    );
    report.add(
        "wasm_commands_per_s",
        "durable commands through the plugin (256 tasks)",
        wasm.per_s.round(),
        "/s",
    );
    report.add(
        "native_commands_per_s",
        "  the same logic compiled into Runtime::execute (all but the plugin call)",
        native.per_s.round(),
        "/s",
    );
    report.add(
        "native_ratio",
        "  plugin / native",
        wasm.per_s / native.per_s.max(1e-9),
        "x",
    );
    report.add(
        "wasm_cpu_us_per_command",
        "  CPU per command through the plugin (whole process)",
        cpu_us(wasm.cpu_us),
        "us",
    );
    report.add(
        "native_cpu_us_per_command",
        "  CPU per command natively",
        cpu_us(native.cpu_us),
        "us",
    );
    report.add(
        "cpu_ratio",
        "  native CPU / plugin CPU per command",
        native.cpu_us / wasm.cpu_us.max(1e-9),
        "x",
    );
    report.add(
        "bare_native_commands_per_s",
        "  the same logic in a bare pipeline (no runtime bookkeeping)",
        bare.per_s.round(),
        "/s",
    );
    report.add(
        "bare_native_ratio",
        "  plugin / bare native",
        wasm.per_s / bare.per_s.max(1e-9),
        "x",
    );
    report.add(
        "bare_native_cpu_us_per_command",
        "  CPU per command in the bare pipeline",
        cpu_us(bare.cpu_us),
        "us",
    );
    report.add(
        "commands_vs_fsync",
        "  plugin / fsync floor",
        wasm.per_s / floor.max(1e-9),
        "x",
    );
}

/// The `FsyncPolicy::Os` rates.
fn add_os_figures(report: &mut Report, os: &OsRates) {
    report.add(
        "wasm_os_commands_per_s",
        "commands through the plugin, FsyncPolicy::Os",
        os.wasm.per_s.round(),
        "/s",
    );
    report.add(
        "native_os_commands_per_s",
        "  natively in Runtime::execute, FsyncPolicy::Os",
        os.native.per_s.round(),
        "/s",
    );
    report.add(
        "native_os_ratio",
        "  plugin / native",
        os.wasm.per_s / os.native.per_s.max(1e-9),
        "x",
    );
}

/// The naive approach beside the plugin's durable commands (`wasm_per_s`).
fn add_naive_figures(report: &mut Report, naive: &NaiveFigures, wasm_per_s: f64) {
    report.add(
        "naive_commands_per_s",
        &format!(
            "recipe: re-fold the whole log per command ({} events)",
            naive.events
        ),
        naive.per_s(),
        "/s",
    );
    report.add(
        "naive_command_ms",
        "  per command",
        naive.seconds * 1e3 / naive.commands as f64,
        "ms",
    );
    report.add(
        "naive_log_events",
        "  events of that log",
        naive.events as f64,
        "",
    );
    report.add(
        "wasm_vs_naive",
        "plugin commands / recipe commands",
        wasm_per_s / naive.per_s().max(1e-9),
        "x",
    );
}

/// One durable round through `Runtime::execute` in a new runtime of `config` with
/// `plugin` active; its data directory `dir` is removed after it (each store
/// preallocates its logs: one at a time on disk).
async fn runtime_round(
    options: &BenchOptions,
    progress: &Progress,
    config: RuntimeConfig,
    dir: &Path,
    plugin: &[u8],
    measure: Duration,
    label: &str,
) -> Result<Rate> {
    progress.set(&format!(
        "commands: {label}: 256 tasks over {ACCOUNTS} accounts"
    ));
    let (rate, runtime) = setup::wasm_commands(options, config, plugin, WRITERS, measure).await?;
    progress.set(&format!(
        "commands: {label}: {:.0}/s, {:.2} us of CPU per command",
        rate.per_s, rate.cpu_us_per_op
    ));
    runtime.close().await?;
    drop(runtime);
    std::fs::remove_dir_all(dir)?;
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
fn native_rules_config(dir: &Path) -> RuntimeConfig {
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
        let mut position = GlobalPosition::START;
        loop {
            let read = store.read_all(position, page).await?;
            let Some(last) = read.last() else { break };
            position = last.position.next();
            log.extend(read.into_iter().filter(|event| event.stream == stream));
        }
        let plugin = plugin.clone();
        let id = stream.aggregate_id.clone();
        let (version, decided) = tokio::task::spawn_blocking(move || {
            let mut instance = plugin.instance();
            let mut state = instance.initial_state()?;
            let version = StreamVersion::new(log.len() as u64);
            for chunk in log.chunks(512) {
                let events: Vec<Event> = chunk
                    .iter()
                    .map(|event| Event {
                        name: event.name.clone(),
                        version: event.schema_version.get(),
                        data: event.data.to_vec(),
                    })
                    .collect();
                state = instance
                    .apply(&state, &events)?
                    .map_err(anyhow::Error::msg)?;
            }
            let context = Context {
                aggregate_id: id.to_string(),
                stream_version: version.get(),
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
            .map(|event| {
                NewEvent::new(event.name, event.data)
                    .with_schema_version(SchemaVersion::new(event.version))
            })
            .collect();
        store
            .append(
                &stream,
                ExpectedVersion::Exact(version),
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
