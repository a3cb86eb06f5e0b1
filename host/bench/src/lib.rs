//! `tally-bench <suite> [--quick] [--json]`: reproducible performance suites. Every
//! figure stands beside a reference measured in the same run on the same machine
//! (the disk's raw fsync rate, native code, the in-process path), because machines
//! are shared and noisy. Progress goes to stderr; stdout gets a table and, with
//! `--json`, one final JSON line whose keys name each figure and ratio.
//!
//! A crate of its own, apart from the service: its native references compile the
//! bank-account plugin's source and the guest SDK into the host (through the runtime's
//! `native-rules` feature), which the service must never depend on.

pub mod commands;
pub mod fanout;
pub mod fold;
pub mod hot;
pub mod http;
pub mod load;
pub mod native;
pub mod projection;
pub mod report;
pub mod setup;
pub mod store;
pub mod swap;
pub mod wal;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

use report::Report;

/// Accounts of the deposit workloads.
pub const ACCOUNTS: u64 = 10_000;

/// The suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// The log: appends under Always (1/16/256 appenders), Batch(5 ms) and Os beside
    /// the disk's fsync floor; recovery and scan MiB/s.
    Wal,
    /// The event store: appends over 10,000 streams from 256 writers beside the log;
    /// stream read latency; open time and memory.
    Store,
    /// Rehydration: events/s folded through the bank-account plugin beside native code.
    Fold,
    /// Durable in-process commands/s through the plugin beside native code and beside
    /// re-folding the whole log per command.
    Commands,
    /// Durable deposits over HTTP from 64 connections, beside in-process.
    Http,
    /// 64 clients on one aggregate.
    Hot,
    /// Activation of a new plugin version, and command latency around a hot swap.
    Swap,
    /// Commands over HTTP with and without 2,000 live subscribers (SSE); the service's
    /// memory and threads; many subscribers catching up from position 0.
    Fanout,
    /// A projection (account-summary) catching up over 1,000,000 events beside the same
    /// logic natively and the plugin alone; its lag behind durable commands at full
    /// load, and the commands' rate with and without it.
    Projection,
    /// Every suite, then a summary.
    All,
}

/// Options of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Short windows (about a second each): a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON line with every figure last.
    #[arg(long)]
    pub json: bool,
    /// `http`: load this running service instead of starting one (it must have
    /// bank-account installed).
    #[arg(long)]
    pub url: Option<String>,
    /// Directory with bank_account.wasm and bank_account_v2.wasm [default: the
    /// plugins built in this checkout].
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// `commands` and `fold`: another build of bank-account 1.x to measure beside the
    /// Rust one in the same run, as `NAME=FILE` (`python=plugins/target/python/bank_account.wasm`);
    /// repeatable. Its figures are keyed by NAME.
    #[arg(long = "plugin", value_name = "NAME=FILE", value_parser = parse_other_plugin)]
    pub other_plugins: Vec<OtherPlugin>,
    /// Directory for the working data (a temporary directory inside it is removed
    /// after each suite) [default: the system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Internal (`store`, in a child process): open the store in DIR, print `open_ms
    /// rss_kib`.
    #[arg(long, hide = true, value_name = "DIR")]
    pub measure_open: Option<PathBuf>,
    /// `store`, for profiling: only build its large store in DIR.
    #[arg(long, hide = true, value_name = "DIR")]
    pub build_only: Option<PathBuf>,
    /// `store`, for profiling: only time reading the spread-out stream of the store in
    /// DIR (built by --build-only).
    #[arg(long, hide = true, value_name = "DIR")]
    pub read_only: Option<PathBuf>,
    /// Internal (`fanout`, in a child process): serve DIR's data with DIR's plugins,
    /// print the address, stop when stdin closes.
    #[arg(long, hide = true, value_name = "DIR")]
    pub serve_child: Option<PathBuf>,
}

impl BenchOptions {
    /// The measuring window of load figures.
    pub fn window(&self) -> Duration {
        if self.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        }
    }

    /// The window of each throughput case of the wal, store, fold, commands and swap
    /// suites (3 s, as the former benchmark examples measured; 1 s with `--quick`).
    pub fn case_window(&self) -> Duration {
        if self.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        }
    }

    /// The window of the fsync floor loop.
    pub fn floor_window(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(2)
        }
    }

    /// A fresh working directory for a suite, removed when dropped.
    pub fn work_dir(&self, suite: &str) -> anyhow::Result<tempfile::TempDir> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base)?;
        Ok(tempfile::Builder::new()
            .prefix(&format!("tally-bench-{suite}-"))
            .tempdir_in(base)?)
    }

    /// The compile cache shared by the suites (kept across runs).
    pub fn compile_cache(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("tally-bench-compile-cache")
    }

    /// The path of a built component, in `--plugins` or this checkout's plugins.
    pub fn component(&self, name: &str) -> anyhow::Result<PathBuf> {
        tally_server::in_process::built_component(self.plugins.as_deref(), name)
    }
}

/// A build of bank-account 1.x in another language, measured beside the Rust one.
#[derive(Debug, Clone)]
pub struct OtherPlugin {
    /// What its figures are keyed by (`python`, `js`): lowercase letters, digits, `_`.
    pub name: String,
    /// The component.
    pub path: PathBuf,
}

impl OtherPlugin {
    /// The component's bytes.
    pub fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.path)
            .map_err(|error| anyhow::anyhow!("--plugin {}: {error}", self.path.display()))
    }
}

/// `NAME=FILE` of `--plugin`.
fn parse_other_plugin(text: &str) -> Result<OtherPlugin, String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: give NAME=FILE, e.g. python=bank_account.wasm"))?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(format!(
            "{name:?}: a NAME is lowercase letters, digits and `_` (it names figures)"
        ));
    }
    Ok(OtherPlugin {
        name: name.to_owned(),
        path: PathBuf::from(path),
    })
}

/// A progress line on stderr (a spinner on a terminal, plain lines otherwise).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// Says what runs now.
    pub fn set(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_owned()),
            None => eprintln!("[bench] {message}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs a suite and prints its table (and JSON line).
pub async fn run(suite: Suite, options: BenchOptions) -> anyhow::Result<Report> {
    if let Some(dir) = &options.measure_open {
        store::measure_open(dir).await?;
        return Ok(Report::default());
    }
    if let Some(dir) = &options.build_only {
        store::build_only(&options, dir).await?;
        return Ok(Report::default());
    }
    if let Some(dir) = &options.read_only {
        store::read_only(&options, dir).await?;
        return Ok(Report::default());
    }
    if let Some(dir) = &options.serve_child {
        fanout::serve_child(&options, dir).await?;
        return Ok(Report::default());
    }
    let progress = Progress::new();
    let suites: Vec<Suite> = match suite {
        Suite::All => vec![
            Suite::Wal,
            Suite::Store,
            Suite::Fold,
            Suite::Commands,
            Suite::Http,
            Suite::Hot,
            Suite::Swap,
            Suite::Fanout,
            Suite::Projection,
        ],
        one => vec![one],
    };
    let mut all = Report::default();
    for suite in &suites {
        let started = Instant::now();
        let report = match suite {
            Suite::Wal => wal::run(&options, &progress).await?,
            Suite::Store => store::run(&options, &progress).await?,
            Suite::Fold => fold::run(&options, &progress).await?,
            Suite::Commands => commands::run(&options, &progress).await?,
            Suite::Http => http::run(&options, &progress).await?,
            Suite::Hot => hot::run(&options, &progress).await?,
            Suite::Swap => swap::run(&options, &progress).await?,
            Suite::Fanout => fanout::run(&options, &progress).await?,
            Suite::Projection => projection::run(&options, &progress).await?,
            Suite::All => unreachable!(),
        };
        progress.finish();
        let name = suite
            .to_possible_value()
            .expect("named")
            .get_name()
            .to_owned();
        report.print_table(&format!(
            "{name} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        all.extend(report);
    }
    if suites.len() > 1 {
        all.print_table("summary");
    }
    if options.json {
        println!("{}", all.json());
    }
    Ok(all)
}

/// The disk's floor for durable writes: one 1 KiB `pwrite` + `fdatasync` per round for
/// `duration`, on a preallocated file in `dir` (as the log's segments are); rounds/s.
pub fn fsync_floor(dir: &Path, duration: Duration) -> anyhow::Result<f64> {
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
