//! [`NativeRules`]: rules compiled into the host decide in place of the plugin, and
//! the rest of the pipeline stays the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tally_runtime::{
    Command, Context, Decision, Event, NativeRules, Rejection, Runtime, RuntimeConfig,
};

use crate::{account, bank, config, rejection_code, send};

/// Deposits 7 whatever the command says, leaving the state bytes as they were, and
/// refuses `Withdraw`; counts its calls.
#[derive(Debug, Default)]
struct Sevens {
    calls: AtomicUsize,
}

impl NativeRules for Sevens {
    fn decide(&self, _context: &Context, state: &[u8], command: &Command) -> Decision {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if command.name == "Withdraw" {
            return Err(Rejection {
                code: "refused-natively".into(),
                message: "these rules refuse withdrawals".into(),
            });
        }
        let event = Event {
            name: "MoneyDeposited".into(),
            version: 1,
            data: br#"{"amount":7}"#.to_vec(),
        };
        Ok((vec![event], state.to_vec()))
    }
}

fn with_rules(dir: &std::path::Path, aggregate_type: &str, rules: Arc<Sevens>) -> RuntimeConfig {
    let mut config = config(dir);
    config.native_rules =
        HashMap::from([(aggregate_type.to_owned(), rules as Arc<dyn NativeRules>)]);
    config
}

#[tokio::test]
async fn native_rules_decide_their_type_and_the_plugin_folds_what_they_appended() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(
        &runtime,
        "alice",
        "OpenAccount",
        r#"{"initial_balance":100}"#,
    )
    .await
    .unwrap();
    runtime.close().await.unwrap();
    drop(runtime);

    let rules = Arc::new(Sevens::default());
    let (runtime, _) = Runtime::open(with_rules(dir.path(), "bank-account", rules.clone()))
        .await
        .unwrap();
    // The rules decide: 7 whatever the amount, appended durably at the next version.
    let outcome = send(&runtime, "alice", "Deposit", r#"{"amount":500}"#)
        .await
        .unwrap();
    assert_eq!(outcome.version.get(), 2);
    assert_eq!(outcome.events[0].name, "MoneyDeposited");
    assert_eq!(&outcome.events[0].data[..], br#"{"amount":7}"#);
    // Their rejection is the command's, and appends nothing.
    let refused = send(&runtime, "alice", "Withdraw", r#"{"amount":1}"#).await;
    assert_eq!(rejection_code(refused.unwrap_err()), "refused-natively");
    assert_eq!(rules.calls.load(Ordering::SeqCst), 2);
    runtime.close().await.unwrap();
    drop(runtime);

    // Without the rules, the plugin folds the log: 100 + 7, at version 2.
    let (runtime, _) = Runtime::open(config(dir.path())).await.unwrap();
    assert_eq!(account(&runtime, "alice").await["balance"], 107);
    let state = runtime
        .state("bank-account", "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.version.get(), 2);
    runtime.close().await.unwrap();
}

#[tokio::test]
async fn native_rules_of_another_type_leave_the_plugin_deciding() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Arc::new(Sevens::default());
    let (runtime, _) = Runtime::open(with_rules(dir.path(), "other-type", rules.clone()))
        .await
        .unwrap();
    crate::install(&runtime, tally_test_support::components::BANK_ACCOUNT_V1).await;
    send(&runtime, "bob", "OpenAccount", r#"{"initial_balance":100}"#)
        .await
        .unwrap();
    send(&runtime, "bob", "Deposit", r#"{"amount":500}"#)
        .await
        .unwrap();
    assert_eq!(account(&runtime, "bob").await["balance"], 600);
    assert_eq!(rules.calls.load(Ordering::SeqCst), 0);
    runtime.close().await.unwrap();
}
