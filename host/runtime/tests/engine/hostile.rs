//! Hostile plugins fail only their call, with a typed error, and the next call
//! runs on a fresh instance.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tally_runtime::{CallError, EngineConfig, LoadedPlugin, PluginInstance};
use tally_test_support::components;

use crate::{CALL_TIMEOUT, command, context, engine, plugin, test_config};

/// Harmless `Touch` works: the instance (or its replacement) serves again.
fn touch_works(instance: &mut PluginInstance) {
    let state = instance.initial_state().unwrap();
    let events = instance
        .handle(&context("h", 0), &state, &command("Touch", "{}"))
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "Touched");
}

fn hostile_call(instance: &mut PluginInstance, name: &str) -> CallError {
    let state = instance.initial_state().unwrap();
    instance
        .handle(&context("h", 0), &state, &command(name, "{}"))
        .unwrap_err()
}

#[test]
fn an_endless_loop_times_out_and_the_next_call_gets_a_fresh_instance() {
    let hostile = plugin(components::TEST_HOSTILE);
    let mut instance = hostile.instance();
    let started = Instant::now();
    let error = hostile_call(&mut instance, "Spin");
    let elapsed = started.elapsed();
    assert_eq!(
        error,
        CallError::Timeout {
            limit: CALL_TIMEOUT
        }
    );
    assert!(error.to_string().contains("CPU limit"), "{error}");
    assert!(elapsed >= CALL_TIMEOUT, "{elapsed:?}");

    assert_eq!(
        instance.calls_on_current_instance(),
        0,
        "the looping instance is gone"
    );
    let before = hostile.instantiations();
    touch_works(&mut instance);
    assert!(hostile.instantiations() > before);
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    // A CPU limit far above the time the bomb takes on a loaded machine, so that it
    // is the memory limit that stops it, whatever else runs.
    let engine = tally_runtime::PluginEngine::new(EngineConfig {
        call_timeout: std::time::Duration::from_secs(30),
        ..test_config()
    })
    .unwrap();
    let hostile = LoadedPlugin::load(&engine, &crate::bytes(components::TEST_HOSTILE)).unwrap();
    let mut instance = hostile.instance();
    let error = hostile_call(&mut instance, "MemoryBomb");
    assert_eq!(
        error,
        CallError::MemoryLimit {
            limit: EngineConfig::default().memory_limit
        }
    );
    touch_works(&mut instance);
}

#[test]
fn a_100_mb_event_hits_the_memory_limit() {
    let mut instance = plugin(components::TEST_HOSTILE).instance();
    let error = hostile_call(&mut instance, "BigEvent");
    assert!(matches!(error, CallError::MemoryLimit { .. }), "{error:?}");
    touch_works(&mut instance);
}

#[test]
fn a_100_mb_event_is_returned_when_the_limit_allows_it() {
    // With room for the event (and its serialisation), and time to build it in
    // this unoptimised build, the plugin's answer is lifted into the host: the
    // memory limit is what bounds answers.
    let engine = tally_runtime::PluginEngine::new(EngineConfig {
        memory_limit: 512 << 20,
        call_timeout: std::time::Duration::from_secs(30),
        ..test_config()
    })
    .unwrap();
    let hostile = LoadedPlugin::load(&engine, &crate::bytes(components::TEST_HOSTILE)).unwrap();
    let mut instance = hostile.instance();
    let state = instance.initial_state().unwrap();
    let events = instance
        .handle(&context("h", 0), &state, &command("BigEvent", "{}"))
        .unwrap()
        .unwrap();
    assert_eq!(events[0].name, "Big");
    assert!(
        events[0].data.len() > 100_000_000,
        "{}",
        events[0].data.len()
    );
}

#[test]
fn a_panic_in_apply_carries_the_plugins_message() {
    let mut instance = plugin(components::TEST_HOSTILE).instance();
    let state = instance.initial_state().unwrap();
    let events = instance
        .handle(&context("h", 0), &state, &command("Doom", "{}"))
        .unwrap()
        .unwrap();
    assert_eq!(events[0].name, "Doomed");
    let error = instance.apply(&state, &events).unwrap_err();
    let CallError::Panic { message, location } = &error else {
        panic!("expected a panic, got {error:?}");
    };
    assert_eq!(message, "test-hostile cannot apply a doomed event");
    let location = location.as_deref().unwrap_or_default();
    assert!(location.contains("lib.rs:"), "{location}");
    assert!(
        !error.to_string().contains("lib.rs"),
        "the error's text names no source file: {error}"
    );
    touch_works(&mut instance);
}

#[test]
fn a_panic_in_handle_carries_the_plugins_message() {
    let mut instance = plugin(components::TEST_PANIC).instance();
    let state = instance.initial_state().unwrap();
    let error = instance
        .handle(
            &context("p", 0),
            &state,
            &command("Explode", r#"{"reason": "line one\nline two"}"#),
        )
        .unwrap_err();
    let CallError::Panic { message, .. } = &error else {
        panic!("expected a panic, got {error:?}");
    };
    assert_eq!(
        message,
        "test-panic was told to explode: line one\\nline two"
    );
    assert!(
        error.to_string().starts_with("plugin panicked: "),
        "{error}"
    );
    touch_works(&mut instance);
}

#[test]
fn a_failed_instance_never_returns_to_the_pool() {
    let hostile = LoadedPlugin::load(engine(), &crate::bytes(components::TEST_HOSTILE)).unwrap();
    assert_eq!(hostile.idle_instances(), 1, "the describe instance");
    let mut instance = hostile.instance();
    let state = instance.initial_state().unwrap();
    let events = instance
        .handle(&context("h", 0), &state, &command("Doom", "{}"))
        .unwrap()
        .unwrap();
    assert!(instance.apply(&state, &events).is_err());
    drop(instance);
    assert_eq!(hostile.idle_instances(), 0);
}

/// Collects the events `tally_runtime::plugin_output` emits on this thread.
#[derive(Default, Clone)]
struct Collector {
    lines: Arc<Mutex<Vec<String>>>,
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Collector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "tally_runtime::plugin_output" {
            let mut fields = Fields(format!("{} ", event.metadata().level()));
            event.record(&mut fields);
            self.lines.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn plugin_output_goes_to_tracing_with_the_plugin_named() {
    let collector = Collector::default();
    let mut instance = plugin(components::TEST_HOSTILE).instance();
    let state = instance.initial_state().unwrap();
    tracing::subscriber::with_default(collector.clone(), || {
        let events = instance
            .handle(&context("h", 0), &state, &command("Chatter", "{}"))
            .unwrap()
            .unwrap();
        assert_eq!(events[0].name, "Touched");
    });
    let lines = collector.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, level, stream) in [(&lines[0], "INFO", "stdout"), (&lines[1], "WARN", "stderr")] {
        assert!(line.starts_with(level), "{line}");
        assert!(line.contains("message=test-hostile says hello"), "{line}");
        assert!(line.contains("aggregate_type=\"test-hostile\""), "{line}");
        assert!(line.contains("version=\"0.1.0\""), "{line}");
        assert!(line.contains(&format!("stream=\"{stream}\"")), "{line}");
    }
}
