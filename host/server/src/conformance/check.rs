//! Running one scenario against a plugin instance, and checking `describe`: every
//! call goes through `tally-runtime`, as the service makes it, and every difference
//! from the expected answer is a [`Failure`] that says what was expected and what
//! came.

use serde_json::Value;
use tally_runtime::{
    CallError, Command, Context, Event, LoadedPlugin, PluginInfo, PluginInstance, Rejection,
};

use super::scenario::{ExpectedInfo, ExpectedSchema, Payload, Scenario, Stage, Then};

/// Why a scenario failed: expected against got, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Checked<T = ()> = Result<T, Failure>;

/// A failure from a message.
fn fail<T>(message: impl Into<String>) -> Checked<T> {
    Err(Failure(message.into()))
}

/// A call that did not answer (trap, panic, limit): always a failure.
fn answered<T>(function: &str, answer: Result<T, CallError>) -> Checked<T> {
    answer.or_else(|error| fail(format!("{function} failed: {error}")))
}

/// Checks the plugin's `describe` against `expected`: the aggregate type exactly,
/// the commands and the events with their versions as sets.
pub fn check_describe(plugin: &LoadedPlugin, expected: &ExpectedInfo) -> Checked {
    let info = plugin.info();
    if info.aggregate_type != expected.aggregate_type {
        return fail(format!(
            "expected aggregate type {:?}, got {:?}",
            expected.aggregate_type, info.aggregate_type
        ));
    }
    let mut want = expected.commands.clone();
    let mut got = info.commands.clone();
    want.sort();
    got.sort();
    if want != got {
        return fail(format!("expected commands {want:?}, got {got:?}"));
    }
    check_event_schemas(info, &expected.events)
}

/// The events `describe` lists, with their versions, against the expected ones.
fn check_event_schemas(info: &PluginInfo, expected: &[ExpectedSchema]) -> Checked {
    let mut want: Vec<String> = expected.iter().map(schema_text).collect();
    let mut got: Vec<String> = info
        .events
        .iter()
        .map(|event| format!("{} v{}", event.name, event.version))
        .collect();
    want.sort();
    got.sort();
    if want != got {
        return fail(format!("expected events {want:?}, got {got:?}"));
    }
    Ok(())
}

fn schema_text(schema: &ExpectedSchema) -> String {
    format!("{} v{}", schema.name, schema.version)
}

/// Runs `scenario` on `instance` of the plugin `info` describes: folds the given
/// events, decides the command if there is one, and compares the outcome and the
/// state.
pub fn run_scenario(
    info: &PluginInfo,
    instance: &mut PluginInstance,
    scenario: &Scenario,
) -> Checked {
    let folded = fold(info, instance, &scenario.given)?;
    let state = match (&scenario.when, folded) {
        (None, Folded::Refused(stage, message)) => {
            return expect_refusal(scenario.then.as_ref(), stage, &message);
        }
        (Some(_), Folded::Refused(stage, message)) => {
            return fail(format!(
                "given: {} refused an event: {message}",
                stage_name(stage)
            ));
        }
        (None, Folded::State(state, _)) => {
            if let Some(Then::Error(stage)) = &scenario.then {
                return fail(format!(
                    "given: expected {} to refuse an event, got a state",
                    stage_name(*stage)
                ));
            }
            state
        }
        (Some(command), Folded::State(state, stream_version)) => {
            let ctx = Context {
                aggregate_id: scenario.aggregate_id.clone(),
                stream_version,
                now_ms: scenario.now_ms,
            };
            let then = scenario
                .then
                .as_ref()
                .expect("checked when the file was read");
            decide_and_check(instance, &ctx, &state, command, then)?
        }
    };
    match &scenario.state {
        Some(expected) => expect_state(instance, &state, expected),
        None => Ok(()),
    }
}

/// The given events folded: the state and the stream's version, or the function
/// that refused an event and its message.
enum Folded {
    State(Vec<u8>, u64),
    Refused(Stage, String),
}

/// Folds the stored events as the host does: each event that is not at the version
/// `describe` gives for its name (or has a name it does not give) is upcast, then all
/// are applied in one batch and, to check that the batch size does not matter, one
/// at a time too.
fn fold(info: &PluginInfo, instance: &mut PluginInstance, given: &[Payload]) -> Checked<Folded> {
    let mut current = Vec::new();
    for stored in given.iter().map(event) {
        if info.event_version(&stored.name) == Some(stored.version) {
            current.push(stored);
            continue;
        }
        match answered("upcast", instance.upcast(&stored))? {
            Ok(events) => current.extend(events),
            Err(message) => return Ok(Folded::Refused(Stage::Upcast, message)),
        }
    }
    let initial = answered("initial-state", instance.initial_state())?;
    let state = match answered("apply", instance.apply(&initial, &current))? {
        Ok(state) => state,
        Err(message) => return Ok(Folded::Refused(Stage::Apply, message)),
    };
    check_one_at_a_time(instance, &initial, &current, &state)?;
    Ok(Folded::State(state, given.len() as u64))
}

/// The events applied one call each must give the state the one batch gave.
fn check_one_at_a_time(
    instance: &mut PluginInstance,
    initial: &[u8],
    events: &[Event],
    batch_state: &[u8],
) -> Checked {
    let mut state = initial.to_vec();
    for event in events {
        state = match answered("apply", instance.apply(&state, std::slice::from_ref(event)))? {
            Ok(state) => state,
            Err(message) => {
                return fail(format!(
                    "given: apply refused {} alone but not in the batch: {message}",
                    event.name
                ));
            }
        };
    }
    let (one_by_one, batch) = (
        state_json(instance, &state)?,
        state_json(instance, batch_state)?,
    );
    if one_by_one != batch {
        return fail(format!(
            "given: applied one at a time the state is {one_by_one}, in one batch {batch}"
        ));
    }
    Ok(())
}

/// The outcome of a fold that was refused, against the expected one.
fn expect_refusal(then: Option<&Then>, stage: Stage, message: &str) -> Checked {
    match then {
        Some(Then::Error(expected)) if *expected == stage => Ok(()),
        Some(Then::Error(expected)) => fail(format!(
            "given: expected {} to refuse an event, but {} did: {message}",
            stage_name(*expected),
            stage_name(stage)
        )),
        _ => fail(format!(
            "given: {} refused an event: {message}",
            stage_name(stage)
        )),
    }
}

/// Decides `command` with `decide` (as the service does) and with `handle`, which
/// must agree, and checks the answer against `then`. Returns the state afterwards.
fn decide_and_check(
    instance: &mut PluginInstance,
    ctx: &Context,
    state: &[u8],
    command: &Payload,
    then: &Then,
) -> Checked<Vec<u8>> {
    let command = Command {
        name: command.name.clone(),
        data: command.bytes(),
    };
    let decided = answered("decide", instance.decide(ctx, state, &command))?;
    let handled = answered("handle", instance.handle(ctx, state, &command))?;
    check_agreement(&decided, &handled)?;
    match (then, decided) {
        (Then::Events(expected), Ok((events, after))) => {
            expect_events(expected, &events)?;
            check_decided_state(instance, state, &events, &after)?;
            Ok(after)
        }
        (Then::Rejection(expected), Err(rejection)) => {
            expect_code(expected, &rejection)?;
            Ok(state.to_vec())
        }
        (Then::Events(_), Err(rejection)) => fail(format!(
            "expected events, got rejection {:?} ({})",
            rejection.code, rejection.message
        )),
        (Then::Rejection(expected), Ok((events, _))) => fail(format!(
            "expected rejection {expected:?}, got events {}",
            events_text(&events)
        )),
        (Then::Error(_), _) => unreachable!("checked when the file was read"),
    }
}

/// `decide` must answer as `handle` does: the same events, or the same rejection.
fn check_agreement(
    decided: &Result<(Vec<Event>, Vec<u8>), Rejection>,
    handled: &Result<Vec<Event>, Rejection>,
) -> Checked {
    let agree = match (decided, handled) {
        (Ok((from_decide, _)), Ok(from_handle)) => from_decide == from_handle,
        (Err(from_decide), Err(from_handle)) => from_decide.code == from_handle.code,
        _ => false,
    };
    if agree {
        return Ok(());
    }
    fail(format!(
        "decide and handle disagree: decide {}, handle {}",
        answer_text(decided.as_ref().map(|(events, _)| events)),
        answer_text(handled.as_ref())
    ))
}

/// The state `decide` returned must be the one `apply` of its events gives.
fn check_decided_state(
    instance: &mut PluginInstance,
    before: &[u8],
    events: &[Event],
    decided: &[u8],
) -> Checked {
    let applied = match answered("apply", instance.apply(before, events))? {
        Ok(applied) => applied,
        Err(message) => return fail(format!("apply refused the events decided: {message}")),
    };
    let (decided, applied) = (
        state_json(instance, decided)?,
        state_json(instance, &applied)?,
    );
    if decided != applied {
        return fail(format!(
            "decide returned the state {decided}, apply of its events gives {applied}"
        ));
    }
    Ok(())
}

/// The events returned, against the expected ones: names, versions and data as
/// JSON values, in order.
fn expect_events(expected: &[Payload], got: &[Event]) -> Checked {
    let want: Vec<(String, u32, Value)> = expected.iter().map(expected_event).collect();
    let mut have = Vec::new();
    for event in got {
        let data = serde_json::from_slice(&event.data).or_else(|error| {
            fail(format!(
                "event {} has data that is not JSON ({error}): {}",
                event.name,
                String::from_utf8_lossy(&event.data)
            ))
        })?;
        have.push((event.name.clone(), event.version, data));
    }
    if want == have {
        return Ok(());
    }
    fail(format!(
        "expected events {}, got {}",
        triples_text(&want),
        triples_text(&have)
    ))
}

/// An expected event as name, version and data value.
fn expected_event(event: &Payload) -> (String, u32, Value) {
    let data = serde_json::from_slice(&event.bytes()).unwrap_or(Value::Null);
    (
        event.name.clone(),
        event.version.expect("checked when the file was read"),
        data,
    )
}

/// The rejection's code against the expected one.
fn expect_code(expected: &str, rejection: &Rejection) -> Checked {
    if rejection.code == expected {
        return Ok(());
    }
    fail(format!(
        "expected rejection {expected:?}, got rejection {:?} ({})",
        rejection.code, rejection.message
    ))
}

/// `state-json` of `state` against the expected value.
fn expect_state(instance: &mut PluginInstance, state: &[u8], expected: &Value) -> Checked {
    let got = state_json(instance, state)?;
    if &got == expected {
        return Ok(());
    }
    fail(format!("state: expected {expected}, got {got}"))
}

/// `state-json` as a JSON value.
fn state_json(instance: &mut PluginInstance, state: &[u8]) -> Checked<Value> {
    let json = match answered("state-json", instance.state_json(state))? {
        Ok(json) => json,
        Err(message) => return fail(format!("state-json refused the state: {message}")),
    };
    serde_json::from_slice(&json).or_else(|error| {
        fail(format!(
            "state-json is not JSON ({error}): {}",
            String::from_utf8_lossy(&json)
        ))
    })
}

/// The stored event a given payload stands for.
fn event(payload: &Payload) -> Event {
    Event {
        name: payload.name.clone(),
        version: payload.version.expect("checked when the file was read"),
        data: payload.bytes(),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Upcast => "upcast",
        Stage::Apply => "apply",
    }
}

/// Events as `[Name vN data, ...]`.
fn events_text(events: &[Event]) -> String {
    let events: Vec<String> = events
        .iter()
        .map(|event| {
            let data = String::from_utf8_lossy(&event.data);
            format!("{} v{} {data}", event.name, event.version)
        })
        .collect();
    format!("[{}]", events.join(", "))
}

/// Expected or parsed events as `[Name vN data, ...]`.
fn triples_text(events: &[(String, u32, Value)]) -> String {
    let events: Vec<String> = events
        .iter()
        .map(|(name, version, data)| format!("{name} v{version} {data}"))
        .collect();
    format!("[{}]", events.join(", "))
}

/// A command's answer: its events or its rejection code.
fn answer_text(answer: Result<&Vec<Event>, &Rejection>) -> String {
    match answer {
        Ok(events) => format!("events {}", events_text(events)),
        Err(rejection) => format!("rejection {:?}", rejection.code),
    }
}
