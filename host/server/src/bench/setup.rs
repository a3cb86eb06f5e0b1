//! What several suites need: a runtime with bank-account v1 and its accounts, and
//! the in-process deposit load.

use std::path::Path;
use std::time::Duration;

use tally_runtime::{Command, ExecuteOptions, InstallOptions, Runtime, RuntimeConfig};

use super::load::{self, LoadResult};
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

/// Opens accounts `acc-0` .. `acc-{count-1}` with `balance`, 64 at a time.
pub async fn open_accounts(runtime: &Runtime, count: u64, balance: i64) -> anyhow::Result<()> {
    let runtime = runtime.clone();
    let data = format!(r#"{{"initial_balance":{balance}}}"#);
    let opened = load::run_count(
        64,
        count,
        |_| async { Ok(()) },
        move |(), i| {
            let (runtime, data) = (runtime.clone(), data.clone());
            async move {
                let outcome = runtime
                    .execute(
                        "bank-account",
                        &format!("acc-{i}"),
                        command("OpenAccount", &data),
                        ExecuteOptions::default(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string());
                ((), outcome)
            }
        },
    )
    .await?;
    anyhow::ensure!(
        opened.errors == 0,
        "opening accounts failed: {:?}",
        opened.first_error
    );
    Ok(())
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
        window,
        |_| async { Ok(()) },
        move |(), worker, n| {
            let runtime = load_runtime.clone();
            async move {
                let id = format!("acc-{}", (worker as u64 * 7_919 + n * 31) % ACCOUNTS);
                let outcome = runtime
                    .execute(
                        "bank-account",
                        &id,
                        command("Deposit", r#"{"amount":1}"#),
                        ExecuteOptions::default(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string());
                ((), outcome)
            }
        },
    )
    .await?;
    runtime.close().await?;
    anyhow::ensure!(
        result.errors == 0,
        "in-process commands failed: {:?}",
        result.first_error
    );
    Ok(result)
}
