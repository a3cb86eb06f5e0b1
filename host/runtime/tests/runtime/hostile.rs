//! Hostile plugins through the runtime: each fails only its own command, with a
//! clear error; nothing is appended; other aggregates keep working.

use tally_runtime::{CallError, CommandError, ExecuteOptions, Runtime};
use tally_test_support::components;

use crate::{account, bank, command, install, send};

async fn hostile(runtime: &Runtime, id: &str, name: &str) -> Result<(), CommandError> {
    runtime
        .execute(
            "test-hostile",
            id,
            command(name, "null"),
            ExecuteOptions::default(),
        )
        .await
        .map(|_| ())
}

fn plugin_error(error: CommandError) -> CallError {
    match error {
        CommandError::Plugin { error, .. } => error,
        other => panic!("expected a plugin failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_commands_fail_alone_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    install(&runtime, components::TEST_HOSTILE).await;
    install(&runtime, components::TEST_PANIC).await;
    send(&runtime, "safe", "OpenAccount", r#"{"initial_balance":1}"#)
        .await
        .unwrap();
    hostile(&runtime, "h", "Touch").await.unwrap();
    let end = runtime.store().known_end();

    let timeout = plugin_error(hostile(&runtime, "h", "Spin").await.unwrap_err());
    assert!(matches!(timeout, CallError::Timeout { .. }), "{timeout:?}");
    let memory = plugin_error(hostile(&runtime, "h", "MemoryBomb").await.unwrap_err());
    assert!(
        matches!(memory, CallError::MemoryLimit { .. }),
        "{memory:?}"
    );
    let doomed = plugin_error(hostile(&runtime, "h", "Doom").await.unwrap_err());
    assert!(
        matches!(&doomed, CallError::Panic { message, .. } if message.contains("cannot apply a doomed event")),
        "{doomed:?}"
    );
    // 100 MB of event data cannot be built within the 64 MiB memory limit.
    let big = plugin_error(hostile(&runtime, "h", "BigEvent").await.unwrap_err());
    assert!(matches!(big, CallError::MemoryLimit { .. }), "{big:?}");
    // An event whose JSON does not decode back (NaN is written as `null`) would
    // break every replay of the stream: `decide` refuses it before it is stored.
    let nan = plugin_error(hostile(&runtime, "h", "NotANumber").await.unwrap_err());
    assert!(
        matches!(&nan, CallError::Panic { message, .. } if message.contains("does not decode back")),
        "{nan:?}"
    );
    let explode = runtime
        .execute(
            "test-panic",
            "p",
            command("Explode", r#"{"reason":"testing"}"#),
            ExecuteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&plugin_error(explode), CallError::Panic { message, .. } if message.contains("testing")),
    );
    assert_eq!(
        runtime.store().known_end(),
        end,
        "no failed command appended"
    );

    // While the spinning plugin is isolated, everything else keeps working.
    let spinning = {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                assert!(hostile(&runtime, "h2", "Spin").await.is_err());
            }
        })
    };
    for _ in 0..20 {
        send(&runtime, "safe", "Deposit", r#"{"amount":1}"#)
            .await
            .unwrap();
    }
    spinning.await.unwrap();
    hostile(&runtime, "h", "Touch").await.unwrap();
    assert_eq!(account(&runtime, "safe").await["balance"], 21);
    let stats = runtime.stats();
    let hostile_stats = stats
        .plugins
        .iter()
        .find(|plugin| plugin.aggregate_type == "test-hostile")
        .unwrap();
    assert_eq!(hostile_stats.timed_out, 4);
    assert_eq!(hostile_stats.memory_limited, 2);
    assert_eq!(hostile_stats.accepted, 2);
    runtime.close().await.unwrap();
}

/// The host freezes the wall clock a plugin can read: the context's `now-ms` is the only
/// time, so replays fold the same.
#[tokio::test]
async fn the_system_clock_a_plugin_reads_is_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = crate::open(dir.path()).await;
    install(&runtime, components::TEST_HOSTILE).await;
    let outcome = runtime
        .execute(
            "test-hostile",
            "c",
            command("Clock", "null"),
            ExecuteOptions::default(),
        )
        .await
        .unwrap();
    let data: serde_json::Value = serde_json::from_slice(&outcome.events[0].data).unwrap();
    assert_eq!(data["unix_ms"], 0, "{data}");
    runtime.close().await.unwrap();
}
