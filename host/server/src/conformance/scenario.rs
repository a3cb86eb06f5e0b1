//! The files of a conformance suite (`tests/conformance/README.md` describes them):
//! `describe.json`, what the plugin must say it is, and scenario files, each a list of
//! given events, a command and what must come of it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The name of the file with the expected `describe` answer.
pub const DESCRIBE_FILE: &str = "describe.json";

/// What `describe` must answer; commands and events in any order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedInfo {
    /// The aggregate type, exactly.
    pub aggregate_type: String,
    /// Every command name.
    pub commands: Vec<String>,
    /// Every event name with the schema version the plugin writes.
    pub events: Vec<ExpectedSchema>,
}

/// An event name with its current schema version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSchema {
    /// Event name.
    pub name: String,
    /// Schema version.
    pub version: u32,
}

/// A scenario file: a description for people and the scenarios.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// What the file covers, for people (not checked).
    #[serde(default, rename = "description")]
    pub _description: String,
    /// The scenarios, run in order, each from the initial state.
    pub scenarios: Vec<Scenario>,
}

/// Given stored events, when a command (optional), then an outcome, then a state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it checks, unique in its file.
    pub name: String,
    /// The stream's events as stored, at any schema version: each is upcast, then
    /// all are applied.
    #[serde(default)]
    pub given: Vec<Payload>,
    /// The command, decided against the state after `given`.
    pub when: Option<Payload>,
    /// What must come of the command (or, without one, of folding `given`).
    pub then: Option<Then>,
    /// `state-json` afterwards: after the events on success, else after `given`.
    pub state: Option<Value>,
    /// The call context's aggregate id.
    #[serde(default = "default_aggregate_id")]
    pub aggregate_id: String,
    /// The call context's clock.
    #[serde(default = "default_now_ms")]
    pub now_ms: u64,
}

/// A command (no `version`) or an event (with one): a name and its data, given as
/// a JSON value or, where the exact bytes matter (duplicate keys, numbers beyond
/// i64, text that is not JSON), as `data_text`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Command or event name.
    pub name: String,
    /// An event's schema version.
    pub version: Option<u32>,
    /// The data as a JSON value (`{}` when neither this nor `data_text` is given).
    pub data: Option<Value>,
    /// The data as exact text, sent as it is.
    pub data_text: Option<String>,
}

/// The outcome a scenario expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Then {
    /// The command is accepted with exactly these events (name, version, data as a
    /// JSON value), in this order; none is a valid answer.
    Events(Vec<Payload>),
    /// The command is refused with this rejection code.
    Rejection(String),
    /// Without a command: folding `given` fails with `err` from this function,
    /// `upcast` or `apply` (not a trap).
    Error(Stage),
}

/// A function of the fold that can refuse an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `upcast`.
    Upcast,
    /// `apply`.
    Apply,
}

impl Payload {
    /// The data bytes to send: `data_text` as it is, else the compact JSON of `data`.
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.data_text, &self.data) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(value)) => serde_json::to_vec(value).expect("a JSON value serializes"),
            (None, None) => b"{}".to_vec(),
        }
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = self.bytes();
        let data = String::from_utf8_lossy(&data);
        match self.version {
            Some(version) => write!(f, "{} v{version} {data}", self.name),
            None => write!(f, "{} {data}", self.name),
        }
    }
}

fn default_aggregate_id() -> String {
    "conformance-1".to_owned()
}

fn default_now_ms() -> u64 {
    // 2026-01-01T00:00:00Z.
    1_767_225_600_000
}

/// The scenario files of `dir` (every `*.json` but `describe.json`), by name.
pub fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_json = path.extension().is_some_and(|ext| ext == "json");
        if is_json && path.file_name().is_some_and(|name| name != DESCRIBE_FILE) {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "{} has no scenario files (*.json)",
        dir.display()
    );
    Ok(files)
}

/// Reads and checks a scenario file: each scenario's parts must fit together.
pub fn read_scenarios(path: &Path) -> anyhow::Result<ScenarioFile> {
    let file: ScenarioFile = read_json(path)?;
    for scenario in &file.scenarios {
        check_shape(scenario)
            .map_err(|error| anyhow::anyhow!("{}: {}: {error}", path.display(), scenario.name))?;
    }
    Ok(file)
}

/// Reads `describe.json` of `dir`, if there is one.
pub fn read_expected_info(dir: &Path) -> anyhow::Result<Option<ExpectedInfo>> {
    let path = dir.join(DESCRIBE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// Parses a JSON file into `T`, the error naming the file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    serde_json::from_slice(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

/// Refuses a scenario whose parts do not fit: an event without a version, a command
/// with one, an outcome of a command without a command, data given twice.
fn check_shape(scenario: &Scenario) -> Result<(), String> {
    for event in &scenario.given {
        check_payload(event, true)?;
    }
    if let Some(command) = &scenario.when {
        check_payload(command, false)?;
    }
    let misfit = match (&scenario.when, &scenario.then) {
        (Some(_), Some(Then::Error(_))) => "`then.error` is for a scenario without `when`",
        (None, Some(Then::Events(_) | Then::Rejection(_))) => {
            "`then.events` and `then.rejection` need a `when`"
        }
        (Some(_), None) => "a scenario with `when` needs a `then`",
        _ => "",
    };
    if !misfit.is_empty() {
        return Err(misfit.to_owned());
    }
    if let Some(Then::Events(events)) = &scenario.then {
        for event in events {
            check_payload(event, true)?;
            if event.data_text.is_some() {
                return Err(format!(
                    "expected event {}: give its `data` as a JSON value",
                    event.name
                ));
            }
        }
    }
    Ok(())
}

/// An event has a version, a command has none; data is given at most once.
fn check_payload(payload: &Payload, is_event: bool) -> Result<(), String> {
    if payload.data.is_some() && payload.data_text.is_some() {
        return Err(format!(
            "{}: give `data` or `data_text`, not both",
            payload.name
        ));
    }
    match (is_event, payload.version) {
        (true, None) => Err(format!("event {} has no `version`", payload.name)),
        (false, Some(_)) => Err(format!("command {} has a `version`", payload.name)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(json: &str) -> Scenario {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn data_is_sent_as_text_as_json_or_as_an_empty_object() {
        let payload = |json: &str| serde_json::from_str::<Payload>(json).unwrap().bytes();
        assert_eq!(
            payload(r#"{"name": "A", "data_text": " {\"a\":1,\"a\":2}"}"#),
            br#" {"a":1,"a":2}"#
        );
        assert_eq!(payload(r#"{"name": "A", "data": {"a": 1}}"#), br#"{"a":1}"#);
        assert_eq!(payload(r#"{"name": "A", "data_text": ""}"#), b"");
        assert_eq!(payload(r#"{"name": "A"}"#), b"{}");
    }

    #[test]
    fn scenarios_whose_parts_do_not_fit_are_refused() {
        let cases = [
            (r#"{"name": "s", "when": {"name": "A"}}"#, "needs a `then`"),
            (
                r#"{"name": "s", "then": {"rejection": "x"}}"#,
                "need a `when`",
            ),
            (
                r#"{"name": "s", "when": {"name": "A"}, "then": {"error": "apply"}}"#,
                "without `when`",
            ),
            (
                r#"{"name": "s", "given": [{"name": "E"}]}"#,
                "event E has no `version`",
            ),
            (
                r#"{"name": "s", "when": {"name": "A", "version": 1}, "then": {"events": []}}"#,
                "command A has a `version`",
            ),
            (
                r#"{"name": "s", "when": {"name": "A", "data": {}, "data_text": "{}"}, "then": {"events": []}}"#,
                "not both",
            ),
            (
                r#"{"name": "s", "when": {"name": "A"}, "then": {"events": [{"name": "E", "version": 1, "data_text": "{}"}]}}"#,
                "as a JSON value",
            ),
        ];
        for (json, error) in cases {
            let refused = check_shape(&scenario(json)).unwrap_err();
            assert!(refused.contains(error), "{json}: {refused}");
        }
    }

    #[test]
    fn a_scenario_that_fits_passes_the_shape_check() {
        let json = r#"{"name": "s", "given": [{"name": "E", "version": 2}], "when": {"name": "A"}, "then": {"rejection": "x"}}"#;
        assert_eq!(check_shape(&scenario(json)), Ok(()));
        assert_eq!(
            check_shape(&scenario(r#"{"name": "s", "then": {"error": "upcast"}}"#)),
            Ok(())
        );
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let error = serde_json::from_str::<Scenario>(r#"{"name": "s", "sate": {}}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `sate`"),
            "{error}"
        );
    }
}
