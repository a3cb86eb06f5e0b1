//! SIGKILL while a projection follows command load: 8 clients deposit to a set of
//! accounts with the account-summary projection installed; the server is killed with
//! SIGKILL after a seeded-random number of acknowledged commands, restarted on the same
//! data directory, and checked, round after round.
//!
//! After every restart, once the projection has caught up with the log:
//! - each account's document has the balance of the aggregate's state (a deposit
//!   applied twice by the projection, or skipped, would make them differ);
//! - the `totals` document's USD balance is the sum of the account balances, and its
//!   count of open accounts is the number of accounts;
//! - every acknowledged deposit is in the balances (the aggregate's state holds them
//!   all: checked by the command-level SIGKILL test, and here by the sum).
//!
//! `TALLY_PROJECTION_KILL_ROUNDS` (default 5) sets the rounds, `TALLY_KILL_SEED` the seed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tally_test_support::components;

use crate::{Rng, Service, deposit, env_number, open_account, seed_from_env, state_balance};

/// Accounts the clients deposit to.
const ACCOUNTS: usize = 8;
/// Concurrent clients.
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_leaves_the_projection_exact() {
    let seed = seed_from_env("TALLY_KILL_SEED");
    let rounds = env_number("TALLY_PROJECTION_KILL_ROUNDS", 5);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut acked_sum: i64 = 0;
    for round in 0..=rounds {
        let service = Service::start(dir.path(), &[]).await;
        if round == 0 {
            let (status, body) = service.install(components::ACCOUNT_SUMMARY, "", None).await;
            assert_eq!(status, 200, "{body}");
            for account in 0..ACCOUNTS {
                open_account(&http, &service.url, &format!("p{account}")).await;
            }
        } else {
            check_projection(&http, &service, acked_sum, round).await;
        }
        if round == rounds {
            service.stop();
            break;
        }
        let kill_after = 1 + rng.below(200);
        acked_sum += load_then_kill(service, round, kill_after).await;
    }
    eprintln!("projection under SIGKILL: {rounds} rounds, seed {seed}");
}

/// Deposits from [`CLIENTS`] clients until `kill_after` are acknowledged, then kills the
/// service; returns the sum of the acknowledged amounts.
async fn load_then_kill(service: Service, round: u64, kill_after: u64) -> i64 {
    let acked = Arc::new(AtomicU64::new(0));
    let acked_sum = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (url, acked, acked_sum) = (service.url.clone(), acked.clone(), acked_sum.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0u64.. {
                let account = format!("p{}", (client + n as usize) % ACCOUNTS);
                let id = format!("r{round}-c{client}-{n}");
                let amount = 1 + (n % 7);
                match deposit(&http, &url, &account, &id, amount as i64).await {
                    Ok((200, _)) => {
                        acked_sum.fetch_add(amount, Ordering::SeqCst);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    while acked.load(Ordering::SeqCst) < kill_after {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    service.kill();
    for client in clients {
        let _ = client.await;
    }
    acked_sum.load(Ordering::SeqCst) as i64
}

/// Waits for the projection to reach the end of the log, then compares every account
/// document with the aggregate's state and the totals with their sum.
async fn check_projection(http: &reqwest::Client, service: &Service, acked_sum: i64, round: u64) {
    let end = service.end_position().await;
    let mut sum = 0;
    for account in 0..ACCOUNTS {
        let account = format!("p{account}");
        let path = format!("/v1/projections/account-summary/accounts/{account}?min_position={end}");
        let (status, body) = service.get(&path).await;
        assert_eq!(status, 200, "round {round}, {account}: {body}");
        let projected = body["document"]["balance"].as_i64().expect("balance");
        let state = state_balance(http, &service.url, &account).await;
        assert_eq!(
            projected, state,
            "round {round}: {account} in the projection and in its state"
        );
        sum += state;
    }
    assert!(
        sum >= acked_sum,
        "round {round}: every acknowledged deposit is there ({sum} < {acked_sum})"
    );
    let path = format!("/v1/projections/account-summary/totals/all?min_position={end}");
    let (_, totals) = service.get(&path).await;
    let usd = &totals["document"]["balance_by_currency"]["USD"];
    assert_eq!(usd.as_i64(), Some(sum), "round {round}: {totals}");
    assert_eq!(
        totals["document"]["accounts_open"],
        Value::from(ACCOUNTS),
        "round {round}: {totals}"
    );
}
