//! The `Runtime` against the real plugin components: commands, queries, hot swap,
//! restarts and hostile plugins. One test binary, so that the components are
//! compiled once per run (into a compile cache shared by the runtimes of the tests).

mod admin;
mod commands;
mod hostile;
#[cfg(feature = "native-rules")]
mod native_rules;
mod queries;
mod swap;

use std::path::Path;
use std::time::Duration;

use tally_runtime::{
    ActivateOptions, Command, CommandError, Context, EngineConfig, Event, ExecuteOptions,
    InstallOptions, InstallReport, Outcome, Runtime, RuntimeConfig,
};
use tally_test_support::components;
/// The bytes of a built component.
pub use tally_test_support::components::bytes as component;

tally_test_support::call_builders!(Command, Event, Context);

/// CPU limit per plugin call in these tests: far above what a call takes in a
/// debug build (the memory bomb must reach the memory limit first, also on a loaded
/// machine), short enough for the endless-loop tests.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1000);

/// A test configuration for a runtime in `dir`: unoptimised plugin code (wasmtime is
/// unoptimised here), the shared compile cache, a short CPU limit.
pub fn config(dir: &Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(dir);
    config.engine = EngineConfig {
        call_timeout: CALL_TIMEOUT,
        optimize: false,
        cache_dir: Some(components::compile_cache().to_owned()),
        ..EngineConfig::default()
    };
    config
}

/// A runtime in `dir` with the test configuration.
pub async fn open(dir: &Path) -> Runtime {
    Runtime::open(config(dir)).await.expect("open runtime").0
}

/// Installs and activates a component.
pub async fn install(runtime: &Runtime, path: &str) -> InstallReport {
    runtime
        .install_plugin(
            component(path),
            InstallOptions {
                activate: true,
                ..InstallOptions::default()
            },
        )
        .await
        .expect("install")
}

/// A runtime in `dir` with bank-account v1 active.
pub async fn bank(dir: &Path) -> Runtime {
    let runtime = open(dir).await;
    install(&runtime, components::BANK_ACCOUNT_V1).await;
    runtime
}

/// Sends a bank-account command without options.
pub async fn send(
    runtime: &Runtime,
    id: &str,
    name: &str,
    data: &str,
) -> Result<Outcome, CommandError> {
    runtime
        .execute(
            "bank-account",
            id,
            command(name, data),
            ExecuteOptions::default(),
        )
        .await
}

/// The state JSON of a bank account.
pub async fn account(runtime: &Runtime, id: &str) -> serde_json::Value {
    let state = runtime
        .state("bank-account", id)
        .await
        .expect("state")
        .expect("the account exists");
    serde_json::from_str(&state.state_json).expect("state JSON")
}

/// The code of a rejection (panics on any other error).
pub fn rejection_code(error: CommandError) -> String {
    match error {
        CommandError::Rejected(rejection) => rejection.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Activation with the default checks.
pub const VERIFY: ActivateOptions = ActivateOptions {
    skip_verify: false,
    force: false,
};
