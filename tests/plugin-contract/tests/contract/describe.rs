//! `describe` across the boundary: identity, commands and event schemas.

use tally_plugin_contract_tests::{PluginInstance, components};

fn events(info: &tally_plugin_contract_tests::PluginInfo) -> Vec<(String, u32)> {
    info.events
        .iter()
        .map(|event| (event.name.clone(), event.version))
        .collect()
}

#[test]
fn bank_account_v1_describes_itself() {
    let info = PluginInstance::load(components::BANK_ACCOUNT_V1)
        .unwrap()
        .describe()
        .unwrap();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, "1.0.0");
    assert!(
        info.description.contains("bank account"),
        "{}",
        info.description
    );
    assert_eq!(
        info.commands,
        ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    );
    let expected = [
        ("AccountOpened", 1),
        ("MoneyDeposited", 1),
        ("MoneyWithdrawn", 1),
        ("AccountClosed", 1),
    ];
    assert_eq!(
        events(&info),
        expected.map(|(name, version)| (name.to_owned(), version))
    );
}

#[test]
fn bank_account_v2_describes_itself_with_account_opened_at_schema_2() {
    let info = PluginInstance::load(components::BANK_ACCOUNT_V2)
        .unwrap()
        .describe()
        .unwrap();
    assert_eq!(info.aggregate_type, "bank-account");
    assert_eq!(info.version, "2.0.0");
    assert_eq!(
        info.commands,
        ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    );
    let expected = [
        ("AccountOpened", 2),
        ("MoneyDeposited", 1),
        ("MoneyWithdrawn", 1),
        ("AccountClosed", 1),
    ];
    assert_eq!(
        events(&info),
        expected.map(|(name, version)| (name.to_owned(), version))
    );
}

#[test]
fn the_test_plugin_describes_itself() {
    let info = PluginInstance::load(components::TEST_PANIC)
        .unwrap()
        .describe()
        .unwrap();
    assert_eq!(info.aggregate_type, "test-panic");
    assert_eq!(info.commands, ["Touch", "Explode"]);
}
