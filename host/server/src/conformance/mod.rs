//! `tally plugin test COMPONENT [--scenarios DIR]`: checks an aggregate component
//! against a conformance suite, with no service: the component is loaded into
//! `tally-runtime`'s engine in this process and called as the service calls it.
//!
//! A suite is a directory of JSON files (`tests/conformance/README.md` describes
//! them): `describe.json`, what `describe` must answer, and scenario files, each a
//! list of given events, a command and the events or rejection code and the state
//! that must come of it. Each check's result is printed on a line of its own; any
//! failure says what was expected and what came, and fails the command.

mod check;
mod scenario;

use std::path::{Path, PathBuf};

use tally_runtime::{EngineConfig, LoadedPlugin, PluginEngine};

pub use check::Failure;
use scenario::{read_expected_info, read_scenarios, scenario_files};

/// This checkout's conformance suites, one folder per aggregate type and major
/// version: `bank-account/v1`.
pub const CHECKOUT_SUITES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance");

/// One check of a suite and its result.
#[derive(Debug)]
pub struct CheckResult {
    /// `describe`, or `FILE: SCENARIO`.
    pub name: String,
    /// Passed, or why not.
    pub outcome: Result<(), Failure>,
}

/// What a suite made of a component.
#[derive(Debug)]
pub struct Report {
    /// Every check, in the order run.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|result| result.outcome.is_err())
    }
}

/// `tally plugin test`: loads `component`, runs the suite of `scenarios` (default:
/// this checkout's suite of its aggregate type and major version), prints each
/// result, and fails if any check did.
pub fn run(component: &Path, scenarios: Option<&Path>) -> anyhow::Result<()> {
    let plugin = load(component)?;
    let dir = match scenarios {
        Some(dir) => dir.to_path_buf(),
        None => default_suite(&plugin)?,
    };
    let info = plugin.info();
    println!(
        "{} {} (contract {}) against {}",
        info.aggregate_type,
        info.version,
        plugin.contract(),
        dir.display()
    );
    let report = run_suite(&plugin, &dir)?;
    for result in &report.results {
        println!("{}", result_line(result));
    }
    let failed = report.failures().count();
    println!(
        "{} checks: {} passed, {failed} failed",
        report.results.len(),
        report.results.len() - failed
    );
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} checks failed",
        report.results.len()
    );
    Ok(())
}

/// Reads and loads the component, as the service would install it.
pub fn load(component: &Path) -> anyhow::Result<LoadedPlugin> {
    let bytes = std::fs::read(component)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", component.display()))?;
    let engine = PluginEngine::new(EngineConfig::default())?;
    LoadedPlugin::load(&engine, &bytes)
        .map_err(|error| anyhow::anyhow!("{} is refused: {error}", component.display()))
}

/// The checkout's suite for the plugin: `<type>/v<major>`.
fn default_suite(plugin: &LoadedPlugin) -> anyhow::Result<PathBuf> {
    let info = plugin.info();
    let dir = Path::new(CHECKOUT_SUITES)
        .join(&info.aggregate_type)
        .join(format!("v{}", info.version.major));
    dir.canonicalize().map_err(|error| {
        anyhow::anyhow!(
            "no conformance suite for {} {} at {} ({error}): give one with --scenarios DIR",
            info.aggregate_type,
            info.version,
            dir.display()
        )
    })
}

/// Runs the suite in `dir` against `plugin`: `describe.json` first if there is one,
/// then every scenario of every file, each on the plugin's instance (a fresh one
/// after a failed call).
pub fn run_suite(plugin: &LoadedPlugin, dir: &Path) -> anyhow::Result<Report> {
    let mut results = Vec::new();
    if let Some(expected) = read_expected_info(dir)? {
        results.push(CheckResult {
            name: "describe".to_owned(),
            outcome: check::check_describe(plugin, &expected),
        });
    }
    let mut instance = plugin.instance();
    for path in scenario_files(dir)? {
        let file = read_scenarios(&path)?;
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        for scenario in &file.scenarios {
            results.push(CheckResult {
                name: format!("{file_name}: {}", scenario.name),
                outcome: check::run_scenario(plugin.info(), &mut instance, scenario),
            });
        }
    }
    Ok(Report { results })
}

/// `ok      NAME` or `FAILED  NAME: why`.
fn result_line(result: &CheckResult) -> String {
    match &result.outcome {
        Ok(()) => format!("ok      {}", result.name),
        Err(failure) => format!("FAILED  {}: {failure}", result.name),
    }
}
