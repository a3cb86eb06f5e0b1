//! Install and activation errors: each is clear, and the active version keeps serving.

use tally_runtime::{InstallError, InstallOptions, PluginError};
use tally_test_support::components;

use crate::{VERIFY, account, bank, component, send};

fn activate() -> InstallOptions {
    InstallOptions {
        activate: true,
        ..InstallOptions::default()
    }
}

#[tokio::test]
async fn bad_components_are_refused_and_v1_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank(dir.path()).await;
    send(&runtime, "k", "OpenAccount", r#"{"initial_balance":5}"#)
        .await
        .unwrap();

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let error = runtime
        .install_plugin(random, activate())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PluginError::Install(InstallError::NotWasm(_))),
        "{error:?}"
    );

    let core_module = wat::parse_str("(module)").unwrap();
    let error = runtime
        .install_plugin(core_module, activate())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PluginError::Install(InstallError::NotAComponent)),
        "{error:?}"
    );

    // The impostor claims to be bank-account; installed for another type it is refused.
    let error = runtime
        .install_plugin(
            component(components::TEST_IMPOSTOR),
            InstallOptions {
                aggregate_type: Some("test-panic".into()),
                ..activate()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            PluginError::Install(InstallError::AggregateTypeMismatch { .. })
        ),
        "{error:?}"
    );
    // As bank-account 9.0.0 it installs, but cannot fold the stored accounts.
    let error = runtime
        .install_plugin(component(components::TEST_IMPOSTOR), activate())
        .await
        .unwrap_err();
    let PluginError::VerifyFailed { stream, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(stream, "bank-account/k");
    assert!(error.to_string().contains("AccountOpened"), "{error}");

    // Same version, same bytes: fine. An older version than the active: refused.
    let again = runtime
        .install_plugin(component(components::BANK_ACCOUNT_V1), activate())
        .await
        .unwrap();
    assert!(again.already_installed);
    install_v2(&runtime).await;
    let plugins = runtime.plugins();
    assert_eq!(plugins[0].active.as_ref().unwrap().to_string(), "2.0.0");

    let error = runtime
        .activate("bank-account", "7.7.7", VERIFY)
        .await
        .unwrap_err();
    assert!(
        matches!(error, PluginError::UnknownVersion { .. }),
        "{error:?}"
    );
    let error = runtime
        .activate("nothing", "1.0.0", VERIFY)
        .await
        .unwrap_err();
    assert!(
        matches!(error, PluginError::UnknownAggregateType(_)),
        "{error:?}"
    );

    assert_eq!(account(&runtime, "k").await["balance"], 5);
    send(&runtime, "k", "Deposit", r#"{"amount":1}"#)
        .await
        .unwrap();
    runtime.close().await.unwrap();
}

async fn install_v2(runtime: &tally_runtime::Runtime) {
    runtime
        .install_plugin(component(components::BANK_ACCOUNT_V2), activate())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_older_version_than_the_active_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = crate::open(dir.path()).await;
    runtime
        .install_plugin(component(components::BANK_ACCOUNT_V2), activate())
        .await
        .unwrap();
    let error = runtime
        .install_plugin(component(components::BANK_ACCOUNT_V1), activate())
        .await
        .unwrap_err();
    assert!(matches!(error, PluginError::NotNewer { .. }), "{error:?}");
    assert!(error.to_string().contains("force"), "{error}");
    let forced = runtime
        .install_plugin(
            component(components::BANK_ACCOUNT_V1),
            InstallOptions {
                force: true,
                ..InstallOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(forced.activation.is_none());
    assert_eq!(runtime.plugins()[0].installed.len(), 2);
    assert_eq!(
        runtime.plugins()[0].active.as_ref().unwrap().to_string(),
        "2.0.0"
    );
    runtime.close().await.unwrap();
}
