//! `tally-bench hot`: 64 clients withdrawing from ONE account. Stores that rely on
//! optimistic retries collapse here; Tally serializes an aggregate's commands in
//! memory and pipelines their appends, so the bound is the plugin calls of one
//! aggregate in a row (and the group commit behind them), not conflicts.

use super::report::Report;
use super::{BenchOptions, Progress, load, setup};

/// Clients of the one aggregate.
pub const CLIENTS: usize = 64;

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> anyhow::Result<Report> {
    let window = options.window();
    let work = options.work_dir("hot")?;
    progress.set("hot: measuring the fsync floor");
    let floor = super::fsync_floor(work.path(), options.floor_window())?;
    progress.set(&format!(
        "hot: {CLIENTS} clients on one account for {window:?}"
    ));
    let runtime = setup::bank_runtime(options, &work.path().join("data")).await?;
    setup::open_accounts(&runtime, 1, 1_000_000_000_000).await?;
    let load_runtime = runtime.clone();
    let result = load::run(
        CLIENTS,
        load::Schedule::for_duration(window),
        |_| async { Ok(()) },
        move |(), _, _| {
            let runtime = load_runtime.clone();
            async move {
                let outcome = setup::send(&runtime, "acc-0", "Withdraw", r#"{"amount":1}"#).await;
                ((), outcome)
            }
        },
    )
    .await?;
    let state = runtime
        .state("bank-account", "acc-0")
        .await?
        .expect("the account exists");
    runtime.close().await?;
    result.ensure_no_errors("hot commands")?;
    anyhow::ensure!(
        state.version.get() == result.ok + 1,
        "the account has {} events after {} accepted withdrawals",
        state.version,
        result.ok
    );
    let mut report = Report::default();
    report.add(
        "hot_commands_per_s",
        "one account, 64 clients: durable commands",
        result.per_second(),
        "/s",
    );
    report.add(
        "hot_p50_ms",
        "  latency p50",
        result.percentile_ms(0.50),
        "ms",
    );
    report.add(
        "hot_p99_ms",
        "  latency p99",
        result.percentile_ms(0.99),
        "ms",
    );
    report.add("hot_max_ms", "  latency max", result.max_ms(), "ms");
    report.add(
        "hot_fsync_floor_per_s",
        "fsync floor (1 KiB write+fdatasync loop)",
        floor,
        "/s",
    );
    report.add(
        "hot_commands_per_fsync",
        "commands per fsync-floor interval",
        result.per_second() / floor.max(1e-9),
        "x",
    );
    Ok(report)
}
