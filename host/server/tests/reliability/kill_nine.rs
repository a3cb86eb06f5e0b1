//! SIGKILL under HTTP load: 32 clients send `Deposit` commands with unique command ids
//! to a set of accounts through the real server (durable fsync, the default); the
//! server is killed with SIGKILL once a seeded-random number of commands has been
//! acknowledged, restarted on the same data directory, and checked, round after round.
//!
//! After every restart:
//! - every acknowledged (200) command id is there exactly once: retrying it answers
//!   `duplicate: true`, and exactly one event of its account carries it;
//! - every command id that was not acknowledged (its connection was cut) is applied at
//!   most once: retrying it applies it if the kill had lost it, and afterwards exactly
//!   one event carries it;
//! - every balance equals the fold of its stored events, and the sum of the amounts
//!   of all commands sent to it (each now applied exactly once).
//!
//! `TALLY_KILL_ROUNDS` (default 20) sets the rounds, `TALLY_KILL_SEED` the seed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Rng, Service, account_events, deposit, env_number, fold_balance, open_account};
use crate::{check_account_events, seed_from_env, state_balance};

/// Accounts the clients deposit to.
const ACCOUNTS: usize = 16;
/// Concurrent clients.
const CLIENTS: usize = 32;
/// The kill comes after 1 to this many acknowledged commands (seeded).
const MAX_ACKED_BEFORE_KILL: u64 = 150;

/// One command sent.
#[derive(Debug, Clone)]
struct Sent {
    account: usize,
    command_id: String,
    amount: i64,
    /// Answered 200 before the kill.
    acked: bool,
}

fn account_name(index: usize) -> String {
    format!("k{index}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_command_and_applies_none_twice() {
    let seed = seed_from_env("TALLY_KILL_SEED");
    let rounds = env_number("TALLY_KILL_ROUNDS", 20);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut history: Vec<Sent> = Vec::new();
    let mut last_round: Vec<Sent> = Vec::new();
    let (mut acked_total, mut cut_total, mut cut_applied) = (0usize, 0usize, 0usize);

    for round in 0..=rounds {
        let service = Service::start(dir.path(), &[]).await;
        let http = reqwest::Client::new();
        if round == 0 {
            for account in 0..ACCOUNTS {
                open_account(&http, &service.url, &account_name(account)).await;
            }
        } else {
            cut_applied +=
                retry_last_round(&http, &service.url, &last_round, &history, &mut rng).await;
            history.append(&mut last_round);
            check_every_account(&http, &service.url, &history, round).await;
        }
        if round == rounds {
            service.stop();
            break;
        }
        last_round = load_then_kill(service, round, &mut rng).await;
        acked_total += last_round.iter().filter(|sent| sent.acked).count();
        cut_total += last_round.iter().filter(|sent| !sent.acked).count();
    }
    eprintln!(
        "kill -9: {rounds} rounds survived in {:.1?} (seed {seed}): {acked_total} commands \
         acknowledged, {cut_total} cut by the kill, of which {cut_applied} had been applied",
        started.elapsed()
    );
}

/// Runs the clients until a seeded number of acknowledgements, then SIGKILLs the
/// server mid-load; returns every command sent.
async fn load_then_kill(service: Service, round: u64, rng: &mut Rng) -> Vec<Sent> {
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url) = (http.clone(), service.url.clone());
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut rng = Rng::new(rng.next_u64());
        clients.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let account = rng.below(ACCOUNTS as u64) as usize;
                let amount = rng.range(1, 1000) as i64;
                let command_id = format!("r{round}-c{client}-{n}");
                let answer =
                    deposit(&http, &url, &account_name(account), &command_id, amount).await;
                let ok = match answer {
                    Ok((200, body)) => {
                        assert_eq!(body["duplicate"], false, "{command_id}: {body}");
                        acked.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Ok((status, body)) => {
                        panic!(
                            "{command_id}: a deposit the server answered failed: {status} {body}"
                        )
                    }
                    // No (complete) answer: the kill cut it.
                    Err(_) => false,
                };
                sent.push(Sent {
                    account,
                    command_id,
                    amount,
                    acked: ok,
                });
                if !ok {
                    break;
                }
            }
            sent
        }));
    }
    let threshold = rng.range(1, MAX_ACKED_BEFORE_KILL);
    let jitter = Duration::from_micros(rng.below(20_000));
    let waiting = Instant::now();
    while acked.load(Ordering::Relaxed) < threshold {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "round {round}: only {} of {threshold} commands acknowledged in 120 s",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(jitter).await;
    service.kill();
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.expect("a client failed"));
    }
    sent
}

/// Retries every command of the last round (and a sample of older acknowledged ones);
/// returns how many of the cut commands turned out to have been applied.
async fn retry_last_round(
    http: &reqwest::Client,
    url: &str,
    last_round: &[Sent],
    history: &[Sent],
    rng: &mut Rng,
) -> usize {
    let mut retries: Vec<Sent> = last_round.to_vec();
    let older: Vec<&Sent> = history.iter().filter(|sent| sent.acked).collect();
    for _ in 0..older.len().min(CLIENTS) {
        retries.push((*rng.pick(&older)).clone());
    }
    let chunk = retries.len().div_ceil(CLIENTS).max(1);
    let mut workers = Vec::new();
    for part in retries.chunks(chunk) {
        let (http, url, part) = (http.clone(), url.to_owned(), part.to_vec());
        workers.push(tokio::spawn(async move {
            let mut applied_before = 0;
            for sent in part {
                let (status, body) = deposit(
                    &http,
                    &url,
                    &account_name(sent.account),
                    &sent.command_id,
                    sent.amount,
                )
                .await
                .expect("the restarted server answers");
                assert_eq!(status, 200, "retrying {sent:?}: {body}");
                let duplicate = body["duplicate"].as_bool().expect("duplicate");
                if sent.acked {
                    assert!(
                        duplicate,
                        "acknowledged {sent:?} was lost by the kill: the retry applied it again: {body}"
                    );
                } else if duplicate {
                    applied_before += 1;
                }
                let events = body["events"].as_array().expect("events");
                assert_eq!(events.len(), 1, "{body}");
                assert_eq!(events[0]["data"]["amount"], sent.amount, "{body}");
                assert_eq!(
                    events[0]["command_id"].as_str(),
                    Some(sent.command_id.as_str()),
                    "{body}"
                );
            }
            applied_before
        }));
    }
    let mut applied_before = 0;
    for worker in workers {
        applied_before += worker.await.expect("a retry failed");
    }
    applied_before
}

/// Every command sent so far is in its account exactly once, and every balance is the
/// fold of its events and the sum of its commands.
async fn check_every_account(http: &reqwest::Client, url: &str, history: &[Sent], round: u64) {
    let mut expected: Vec<HashMap<&str, i64>> = vec![HashMap::new(); ACCOUNTS];
    for sent in history {
        expected[sent.account].insert(&sent.command_id, sent.amount);
    }
    for (account, expected) in expected.iter().enumerate() {
        let name = account_name(account);
        let events = account_events(http, url, &name).await;
        check_account_events(&name, &events, expected, round);
        let folded = fold_balance(&events);
        assert_eq!(folded, expected.values().sum::<i64>(), "{name}");
        assert_eq!(state_balance(http, url, &name).await, folded, "{name}");
    }
}
