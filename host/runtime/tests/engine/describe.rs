//! Loading the reference plugins: `describe`, checked, becomes `PluginInfo`.

use tally_runtime::{InstallError, LoadedPlugin};
use tally_test_support::components;

use crate::{bytes, engine, plugin};

fn events(plugin: &LoadedPlugin) -> Vec<(String, u32)> {
    plugin
        .info()
        .events
        .iter()
        .map(|event| (event.name.clone(), event.version))
        .collect()
}

#[test]
fn bank_account_v1_describes_itself() {
    let v1 = plugin(components::BANK_ACCOUNT_V1);
    let info = v1.info();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, tally_runtime::semver::Version::new(1, 0, 0));
    assert!(
        info.description.contains("bank account"),
        "{}",
        info.description
    );
    assert_eq!(
        info.commands,
        ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    );
    assert_eq!(info.event_version("AccountOpened"), Some(1));
    assert_eq!(events(&v1).len(), 4);
}

#[test]
fn bank_account_v2_describes_itself_with_newer_schemas() {
    let v2 = plugin(components::BANK_ACCOUNT_V2);
    let info = v2.info();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, tally_runtime::semver::Version::new(2, 0, 0));
    assert_eq!(info.event_version("AccountOpened"), Some(2));
    assert!(info.version > plugin(components::BANK_ACCOUNT_V1).info().version);
}

#[test]
fn an_impostor_is_refused_when_installed_as_another_type() {
    let impostor = bytes(components::TEST_IMPOSTOR);
    let error = LoadedPlugin::load_as(engine(), &impostor, "test-panic").unwrap_err();
    match &error {
        InstallError::AggregateTypeMismatch { expected, found } => {
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("test-panic", "bank-account")
            );
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    assert!(error.to_string().contains("`bank-account`"), "{error}");

    // What it claims is all the host can know of it: the claim itself is checked
    // by the runtime's install (version ordering, history), not by loading.
    let loaded = plugin(components::TEST_IMPOSTOR);
    assert_eq!(loaded.info().aggregate_type, "bank-account");
    assert_eq!(loaded.info().commands, ["Pretend"]);
}

#[test]
fn a_plugin_loads_as_its_own_type() {
    let v1 = bytes(components::BANK_ACCOUNT_V1);
    let loaded = LoadedPlugin::load_as(engine(), &v1, "bank-account").unwrap();
    assert_eq!(loaded.info(), plugin(components::BANK_ACCOUNT_V1).info());
}
