//! `decide` (contract 1.1.0) answers exactly as `handle` followed by `apply` of the
//! events it returned: same events, same state, same rejections.

use tally_plugin_contract_tests::{PluginInstance, command, components, context};

/// Commands in order, accepted and refused, for an account `acc-1`.
const SCRIPT: &[(&str, &str)] = &[
    ("Deposit", r#"{"amount": 5}"#),
    ("OpenAccount", r#"{"initial_balance": 100}"#),
    ("OpenAccount", r#"{"initial_balance": 1}"#),
    ("Deposit", r#"{"amount": 250}"#),
    ("Deposit", r#"{"amount": "lots"}"#),
    ("Withdraw", r#"{"amount": 1000}"#),
    ("Withdraw", r#"{"amount": 350}"#),
    ("Transfer", r#"{"amount": 1}"#),
    ("CloseAccount", "{}"),
    ("Deposit", r#"{"amount": 1}"#),
];

/// Runs [`SCRIPT`] through `decide` and through `handle` + `apply`, side by side,
/// and returns how many commands were accepted and rejected.
fn decide_matches_handle_then_apply(path: &'static str) -> (usize, usize) {
    let mut plugin = PluginInstance::load(path).unwrap();
    let mut state = plugin.initial_state().unwrap();
    let (mut version, mut accepted, mut rejected) = (0, 0, 0);
    for &(name, data) in SCRIPT {
        let ctx = context("acc-1", version);
        let command = command(name, data);
        let decided = plugin.decide(&ctx, &state, &command).unwrap();
        match plugin.handle(&ctx, &state, &command).unwrap() {
            Ok(events) => {
                let folded = plugin.apply(&state, &events).unwrap().unwrap();
                assert_eq!(
                    decided,
                    Ok((events.clone(), folded.clone())),
                    "{name} {data}"
                );
                version += events.len() as u64;
                state = folded;
                accepted += 1;
            }
            Err(rejection) => {
                assert_eq!(decided, Err(rejection), "{name} {data}");
                rejected += 1;
            }
        }
    }
    (accepted, rejected)
}

#[test]
fn bank_account_v1_decides_as_handle_then_apply() {
    assert_eq!(
        decide_matches_handle_then_apply(components::BANK_ACCOUNT_V1),
        (4, 6)
    );
}

#[test]
fn bank_account_v2_decides_as_handle_then_apply() {
    // v2 opens accounts in US dollars by default and keeps v1's rules.
    assert_eq!(
        decide_matches_handle_then_apply(components::BANK_ACCOUNT_V2),
        (4, 6)
    );
}
