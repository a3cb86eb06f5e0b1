//! Measures the plugin engine on the real bank-account v1 component: compile time,
//! load time from the compile cache, fresh instantiation, and the steady-state
//! cost of a deposit decided by one `decide` call (contract 1.1.0) beside a
//! `handle` + `apply` pair (how a 1.0.0 plugin decides). Run it optimised:
//!
//! ```text
//! cargo run --release -p tally-runtime --example engine_measure
//! ```
//!
//! The last line is the numbers as JSON.

use std::time::{Duration, Instant};

use tally_runtime::{Command, Context, EngineConfig, LoadedPlugin, PluginEngine, PluginInstance};
use tally_test_support::components;

fn deposit_call(version: u64) -> (Context, Command) {
    let ctx = Context {
        aggregate_id: "acc-1".into(),
        stream_version: version,
        now_ms: 0,
    };
    let command = Command {
        name: "Deposit".into(),
        data: br#"{"amount":1}"#.to_vec(),
    };
    (ctx, command)
}

/// `decide` of a deposit on an open account.
fn decide_deposit(instance: &mut PluginInstance, state: &[u8], version: u64) -> Vec<u8> {
    let (ctx, command) = deposit_call(version);
    let (_, state) = instance
        .decide(&ctx, state, &command)
        .expect("decide")
        .expect("accepted");
    state
}

/// `handle` of a deposit on an open account, then `apply` of its event.
fn deposit(instance: &mut PluginInstance, state: &[u8], version: u64) -> Vec<u8> {
    let (ctx, command) = deposit_call(version);
    let events = instance
        .handle(&ctx, state, &command)
        .expect("handle")
        .expect("accepted");
    instance
        .apply(state, &events)
        .expect("apply")
        .expect("applied")
}

fn opened(instance: &mut PluginInstance) -> Vec<u8> {
    let state = instance.initial_state().expect("initial state");
    let ctx = Context {
        aggregate_id: "acc-1".into(),
        stream_version: 0,
        now_ms: 0,
    };
    let command = Command {
        name: "OpenAccount".into(),
        data: br#"{"initial_balance":0}"#.to_vec(),
    };
    let events = instance
        .handle(&ctx, &state, &command)
        .expect("handle")
        .expect("accepted");
    instance
        .apply(&state, &events)
        .expect("apply")
        .expect("applied")
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(components::BANK_ACCOUNT_V1)?;
    let cache = tempfile::tempdir()?;
    let config = EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    };

    let started = Instant::now();
    let compiled = LoadedPlugin::load(&PluginEngine::new(config.clone())?, &bytes)?;
    let compile = started.elapsed();
    drop(compiled);

    let engine = PluginEngine::new(config.clone())?;
    let started = Instant::now();
    let plugin = LoadedPlugin::load(&engine, &bytes)?;
    let cached_load = started.elapsed();
    assert_eq!(plugin.cache_status(), tally_runtime::CacheStatus::Hit);

    // Steady state: one instance, handle + apply pairs.
    let mut instance = plugin.instance();
    let mut state = opened(&mut instance);
    let pairs = 200_000_u64;
    let started = Instant::now();
    for version in 1..=pairs {
        state = deposit(&mut instance, &state, version);
    }
    let pair = started.elapsed() / pairs as u32;
    let started = Instant::now();
    for version in pairs + 1..=2 * pairs {
        state = decide_deposit(&mut instance, &state, version);
    }
    let decide = started.elapsed() / pairs as u32;

    // Fresh instances: every call on a new one (recycled after each call).
    let fresh_engine = PluginEngine::new(EngineConfig {
        max_calls_per_instance: 1,
        ..config
    })?;
    let fresh = LoadedPlugin::load(&fresh_engine, &bytes)?;
    let mut instance = fresh.instance();
    let rounds = 2_000_u32;
    let started = Instant::now();
    for _ in 0..rounds {
        instance.initial_state()?;
    }
    let fresh_call = started.elapsed() / rounds;
    let mut warm = plugin.instance();
    let started = Instant::now();
    for _ in 0..rounds {
        warm.initial_state()?;
    }
    let warm_call = started.elapsed() / rounds;
    let instantiate = fresh_call.saturating_sub(warm_call);

    println!(
        "compile (cache miss):        {:>10.1} ms",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "load from compile cache:     {:>10.1} ms",
        cached_load.as_secs_f64() * 1e3
    );
    println!(
        "instantiate (no pooling):    {:>10.1} us",
        micros(instantiate)
    );
    println!(
        "initial-state call (warm):   {:>10.2} us",
        micros(warm_call)
    );
    println!("handle + apply pair:         {:>10.2} us", micros(pair));
    println!("decide:                      {:>10.2} us", micros(decide));
    println!(
        "{{\"compile_ms\":{:.2},\"cache_load_ms\":{:.2},\"instantiate_us\":{:.1},\"initial_state_call_us\":{:.3},\"handle_apply_pair_us\":{:.3},\"decide_us\":{:.3}}}",
        compile.as_secs_f64() * 1e3,
        cached_load.as_secs_f64() * 1e3,
        micros(instantiate),
        micros(warm_call),
        micros(pair),
        micros(decide)
    );
    Ok(())
}
