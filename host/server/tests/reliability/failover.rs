//! Losing a machine loses nothing acknowledged: two hosts share one database on a
//! PostgreSQL primary with a synchronous streaming replica
//! (`tally_test_support::postgres_cluster`), through a connection string that names
//! both nodes with `target_session_attrs=read-write`. 16 clients send `Deposit`
//! commands with command ids, half of them through each host; a command that gets no
//! complete answer or a 503 (`outcome-unknown`, `unavailable`) is sent again with the
//! same id, through the other host, until it is acknowledged. Any other answer fails
//! the test: losing a machine is not a failure of the store (500).
//!
//! Round after round, once a seeded number of commands has been acknowledged, a
//! machine is lost under that load:
//! - even rounds: one host (the two take turns) is killed with SIGKILL and started
//!   again on its data directory;
//! - odd rounds: every process of the primary's node is killed at once (SIGKILL) and
//!   its directory deleted; the test promotes the replica, as an operator's failover
//!   tool would, and builds a new replica from it with `pg_basebackup` on the lost
//!   node's port, so that every odd round fails over again.
//!
//! The load goes on until both hosts have acknowledged commands again (they reconnected
//! to the new primary, or came back), then stops. After every round:
//! - every acknowledged command id is there exactly once: retrying it answers
//!   `duplicate: true`, and exactly one event of its account carries it; a first
//!   attempt is never answered `duplicate`;
//! - every command whose answers were lost until the load stopped is applied at most
//!   once: retrying it applies it if the fault lost it, and afterwards exactly one event
//!   carries it;
//! - every balance, read through each host, equals the fold of its events and the sum
//!   of the deposits sent to it (each now applied exactly once).
//!
//! At the end, an activation of bank-account v2 through one host reaches the other: its
//! follower of the plugin registry lived through the failovers.
//!
//! `TALLY_FAILOVER_ROUNDS` (default 10) sets the rounds, `TALLY_FAILOVER_SEED` the seed.
//! Without PostgreSQL the test fails under `CI=true` and is skipped loudly elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_test_support::components;
use tally_test_support::postgres_cluster::Cluster;
use tokio::task::JoinHandle;

use crate::{Rng, Service, account_events, deposit, env_number, fold_balance, open_account};
use crate::{check_account_events, seed_from_env, state_balance, v1_plugins_dir};

/// Accounts the clients deposit to.
const ACCOUNTS: usize = 16;
/// Concurrent clients, half of them sending through each host first.
const CLIENTS: usize = 16;
/// The fault comes after 1 to this many acknowledged commands (seeded).
const MAX_ACKED_BEFORE_FAULT: u64 = 150;
/// After the fault, the load goes on until each host has acknowledged this many more.
const ACKED_AFTER_FAULT: u64 = 20;
/// The pause before a command is sent again.
const RETRY_DELAY: Duration = Duration::from_millis(20);
/// A request unanswered for this long counts as an answer lost (and is sent again).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A round whose load makes no progress for this long fails (a host that never
/// comes back would otherwise hang the test).
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// One command, sent until it was acknowledged or the load stopped.
#[derive(Debug, Clone)]
struct Sent {
    account: usize,
    command_id: String,
    amount: i64,
    /// Some attempt was answered 200.
    acked: bool,
}

/// What a round does.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Host `n` is killed (SIGKILL) and started again on its data directory.
    KillHost(usize),
    /// The primary's machine is lost; the replica is promoted and a new replica built.
    LosePrimary,
}

impl Fault {
    /// Odd rounds lose the primary; even rounds kill a host, each host in turn.
    fn of_round(round: u64) -> Fault {
        if round % 2 == 1 {
            Fault::LosePrimary
        } else {
            Fault::KillHost((round / 2 % 2) as usize)
        }
    }
}

/// What the clients and the checks saw, for the report.
#[derive(Debug, Default)]
struct Counts {
    /// Commands acknowledged during the load.
    acked: usize,
    /// Of them, the ones acknowledged by a second or later attempt.
    retried: usize,
    /// Of them, the ones whose retry answered `duplicate`: an attempt whose answer was
    /// lost had been applied.
    applied_unseen: usize,
    /// Attempts without a complete answer (connection refused or cut, timeout).
    answers_lost: usize,
    /// 503 answers by error code: how many, and the first one's message.
    errors: BTreeMap<String, (usize, String)>,
    /// Commands not acknowledged when the load stopped.
    cut: usize,
    /// Of them, the ones whose retry after the round answered `duplicate`.
    cut_applied: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.acked += other.acked;
        self.retried += other.retried;
        self.applied_unseen += other.applied_unseen;
        self.answers_lost += other.answers_lost;
        self.cut += other.cut;
        self.cut_applied += other.cut_applied;
        for (error, (count, message)) in other.errors {
            self.errors.entry(error).or_insert((0, message)).0 += count;
        }
    }

    /// Counts a 503 answer.
    fn error(&mut self, status: u16, body: &Value) {
        let code = body["error"]["code"].as_str().unwrap_or("?");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let entry = self.errors.entry(format!("{status} {code}"));
        entry.or_insert((0, message.to_owned())).0 += 1;
    }
}

fn account_name(index: usize) -> String {
    format!("f{index}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_machine_loses_no_acknowledged_command_and_applies_none_twice() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let seed = seed_from_env("TALLY_FAILOVER_SEED");
    let rounds = env_number("TALLY_FAILOVER_ROUNDS", 10);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut hosts = Hosts::start(cluster.connection()).await;
    let http = http_client();
    for account in 0..ACCOUNTS {
        open_account(&http, &hosts.url(0), &account_name(account)).await;
    }
    let mut history: Vec<Sent> = Vec::new();
    let mut counts = Counts::default();
    for round in 0..rounds {
        let load = Load::start(round, hosts.urls.clone(), &mut rng);
        load.wait_for_acknowledged(rng.range(1, MAX_ACKED_BEFORE_FAULT), round)
            .await;
        inflict(Fault::of_round(round), &mut cluster, &mut hosts).await;
        load.wait_for_each_host(ACKED_AFTER_FAULT, round).await;
        let (mut sent, round_counts) = load.stop().await;
        counts.add(round_counts);
        let urls = hosts.urls();
        counts.cut_applied += retry_round(&http, &urls, &sent, &history, &mut rng).await;
        history.append(&mut sent);
        check_every_account(&http, &urls, &history, round).await;
    }
    hosts.check_an_activation_reaches_the_other_host().await;
    let failovers = rounds / 2;
    eprintln!(
        "failover: {rounds} rounds ({failovers} primaries lost and replicas promoted, \
         {} hosts killed) survived in {:.1?} (seed {seed}): {} commands \
         acknowledged under load, {} of them after a retry, {} of those already applied by \
         an attempt whose answer was lost; {} answers lost; 503 answers: {:?}; {} commands \
         cut by the end of the load, of which {} had been applied",
        rounds - failovers,
        started.elapsed(),
        counts.acked,
        counts.retried,
        counts.applied_unseen,
        counts.answers_lost,
        counts.errors,
        counts.cut,
        counts.cut_applied,
    );
}

/// Does what `fault` says to the hosts or the cluster.
async fn inflict(fault: Fault, cluster: &mut Cluster, hosts: &mut Hosts) {
    match fault {
        Fault::KillHost(host) => {
            hosts.kill(host);
            hosts.restart(host).await;
        }
        Fault::LosePrimary => cluster.fail_over().await,
    }
}

/// An HTTP client whose requests give up after [`REQUEST_TIMEOUT`].
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// The two hosts, each with a data directory of its own, on one connection string.
/// The first installs bank-account v1 from its plugins directory; the second has none
/// of its own and loads it from the database.
struct Hosts {
    connection: String,
    services: [Option<Service>; 2],
    dirs: [tempfile::TempDir; 2],
    plugins: [PathBuf; 2],
    _empty_plugins: tempfile::TempDir,
    /// The hosts' URLs as the clients see them (a restarted host listens on a new
    /// port).
    urls: Arc<Mutex<[String; 2]>>,
}

impl Hosts {
    async fn start(connection: String) -> Hosts {
        let empty = tempfile::tempdir().expect("an empty plugins directory");
        let mut hosts = Hosts {
            connection,
            services: [None, None],
            dirs: [0, 1].map(|_| tempfile::tempdir().expect("a data directory")),
            plugins: [v1_plugins_dir().to_owned(), empty.path().to_owned()],
            _empty_plugins: empty,
            urls: Arc::new(Mutex::new([String::new(), String::new()])),
        };
        hosts.restart(0).await;
        hosts.restart(1).await;
        hosts
    }

    /// Starts host `host` on its data directory and tells the clients its URL.
    async fn restart(&mut self, host: usize) {
        let store = ["--store", self.connection.as_str()];
        let service =
            Service::start_with_plugins(self.dirs[host].path(), &self.plugins[host], &store).await;
        self.urls.lock().unwrap()[host] = service.url.clone();
        self.services[host] = Some(service);
    }

    /// Kills host `host` with SIGKILL.
    fn kill(&mut self, host: usize) {
        self.services[host].take().expect("a running host").kill();
    }

    /// Activates bank-account v2 through the first host and waits until the second
    /// has it active: the second's follower of the registry's records lived through
    /// the failovers.
    async fn check_an_activation_reaches_the_other_host(&self) {
        let [first, second] = [0, 1].map(|host| self.services[host].as_ref().expect("a host"));
        let (status, body) = first
            .install(components::BANK_ACCOUNT_V2, "activate=true", None)
            .await;
        assert_eq!(status, 200, "{body}");
        let started = Instant::now();
        loop {
            let (status, plugins) = second.get("/v1/plugins").await;
            assert_eq!(status, 200, "{plugins}");
            if plugins["plugins"][0]["active"] == "2.0.0" {
                return;
            }
            assert!(
                started.elapsed() < STALL_LIMIT,
                "the second host never followed the activation of v2: {plugins}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, host: usize) -> String {
        self.urls.lock().unwrap()[host].clone()
    }

    fn urls(&self) -> [String; 2] {
        self.urls.lock().unwrap().clone()
    }
}

/// The clients of one round, running until stopped.
struct Load {
    /// Commands acknowledged by each host.
    acked: Arc<[AtomicU64; 2]>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<(Vec<Sent>, Counts)>>,
}

/// What a client needs to send its commands.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    urls: Arc<Mutex<[String; 2]>>,
    acked: Arc<[AtomicU64; 2]>,
    stop: Arc<AtomicBool>,
    /// The host it sends each command through first.
    home: usize,
}

impl Load {
    /// Starts the clients of round `round`, with seeds from `rng`.
    fn start(round: u64, urls: Arc<Mutex<[String; 2]>>, rng: &mut Rng) -> Load {
        let acked = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let http = http_client();
        let clients = (0..CLIENTS)
            .map(|index| {
                let client = Client {
                    http: http.clone(),
                    urls: urls.clone(),
                    acked: acked.clone(),
                    stop: stop.clone(),
                    home: index % 2,
                };
                let prefix = format!("r{round}-c{index}");
                tokio::spawn(client.run(prefix, Rng::new(rng.next_u64())))
            })
            .collect();
        Load {
            acked,
            stop,
            clients,
        }
    }

    fn acknowledged(&self) -> [u64; 2] {
        [0, 1].map(|host| self.acked[host].load(Ordering::Relaxed))
    }

    /// Waits until `count` commands are acknowledged in all.
    async fn wait_for_acknowledged(&self, count: u64, round: u64) {
        self.wait_until(round, |acked| acked[0] + acked[1] >= count)
            .await;
    }

    /// Waits until each host has acknowledged `count` more commands than now.
    async fn wait_for_each_host(&self, count: u64, round: u64) {
        let now = self.acknowledged();
        self.wait_until(round, |acked| {
            acked[0] >= now[0] + count && acked[1] >= now[1] + count
        })
        .await;
    }

    /// Waits until `done` holds of the acknowledgements; fails when they stall.
    async fn wait_until(&self, round: u64, done: impl Fn([u64; 2]) -> bool) {
        let mut last = self.acknowledged();
        let mut since = Instant::now();
        while !done(self.acknowledged()) {
            let acked = self.acknowledged();
            if acked != last {
                (last, since) = (acked, Instant::now());
            }
            assert!(
                since.elapsed() < STALL_LIMIT,
                "round {round}: no command acknowledged in {STALL_LIMIT:?} \
                 (acknowledged by each host: {acked:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients after their current attempt; returns every command sent.
    async fn stop(self) -> (Vec<Sent>, Counts) {
        self.stop.store(true, Ordering::Relaxed);
        let mut sent = Vec::new();
        let mut counts = Counts::default();
        for client in self.clients {
            let (client_sent, client_counts) = client.await.expect("a client failed");
            sent.extend(client_sent);
            counts.add(client_counts);
        }
        (sent, counts)
    }
}

impl Client {
    /// Sends deposits with ids `{prefix}-{n}` until stopped.
    async fn run(self, prefix: String, mut rng: Rng) -> (Vec<Sent>, Counts) {
        let mut sent = Vec::new();
        let mut counts = Counts::default();
        for n in 0.. {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let mut command = Sent {
                account: rng.below(ACCOUNTS as u64) as usize,
                command_id: format!("{prefix}-{n}"),
                amount: rng.range(1, 1000) as i64,
                acked: false,
            };
            command.acked = self.send_until_acknowledged(&command, &mut counts).await;
            counts.cut += usize::from(!command.acked);
            sent.push(command);
        }
        (sent, counts)
    }

    /// Sends `command` through its home host, and again through the other host after
    /// every lost answer or 503, until it is acknowledged (`true`) or the load stops.
    async fn send_until_acknowledged(&self, command: &Sent, counts: &mut Counts) -> bool {
        let mut host = self.home;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let url = self.urls.lock().unwrap()[host].clone();
            let account = account_name(command.account);
            let answer = deposit(
                &self.http,
                &url,
                &account,
                &command.command_id,
                command.amount,
            )
            .await;
            match answer {
                Ok((200, body)) => {
                    let duplicate = check_answer(command, &body);
                    assert!(
                        attempt > 1 || !duplicate,
                        "{}: the first attempt was answered as a duplicate: {body}",
                        command.command_id
                    );
                    counts.acked += 1;
                    counts.retried += usize::from(attempt > 1);
                    counts.applied_unseen += usize::from(duplicate);
                    self.acked[host].fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                // The store out of reach, or the outcome unknown: to be sent again.
                Ok((503, body)) => counts.error(503, &body),
                Ok((status, body)) => {
                    panic!("{}: a deposit failed: {status} {body}", command.command_id)
                }
                Err(_) => counts.answers_lost += 1,
            }
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            host = 1 - host;
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}

/// Checks a 200 answer to `command`: one event, with its amount and command id.
/// Returns whether it was answered as a duplicate.
fn check_answer(command: &Sent, body: &Value) -> bool {
    let events = body["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{command:?}: {body}");
    assert_eq!(events[0]["data"]["amount"], command.amount, "{body}");
    assert_eq!(
        events[0]["command_id"].as_str(),
        Some(command.command_id.as_str()),
        "{body}"
    );
    body["duplicate"].as_bool().expect("duplicate")
}

/// Retries every command of the round (and a sample of older acknowledged ones)
/// through both hosts: an acknowledged one must answer `duplicate`. Returns how many
/// of the commands not acknowledged had been applied.
async fn retry_round(
    http: &reqwest::Client,
    urls: &[String; 2],
    round: &[Sent],
    history: &[Sent],
    rng: &mut Rng,
) -> usize {
    let mut retries: Vec<Sent> = round.to_vec();
    let older: Vec<&Sent> = history.iter().filter(|sent| sent.acked).collect();
    for _ in 0..older.len().min(CLIENTS) {
        retries.push((*rng.pick(&older)).clone());
    }
    let chunk = retries.len().div_ceil(CLIENTS).max(1);
    let mut workers = Vec::new();
    for (index, part) in retries.chunks(chunk).enumerate() {
        let (http, url, part) = (http.clone(), urls[index % 2].clone(), part.to_vec());
        workers.push(tokio::spawn(async move {
            let mut applied_before = 0;
            for sent in part {
                applied_before += usize::from(retry(&http, &url, &sent).await);
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

/// Sends `sent` again: it must be applied exactly once by now. Returns whether a cut
/// command had been applied before.
async fn retry(http: &reqwest::Client, url: &str, sent: &Sent) -> bool {
    let account = account_name(sent.account);
    let (status, body) = deposit(http, url, &account, &sent.command_id, sent.amount)
        .await
        .expect("the host answers a retry");
    assert_eq!(status, 200, "retrying {sent:?}: {body}");
    let duplicate = check_answer(sent, &body);
    assert!(
        duplicate || !sent.acked,
        "acknowledged {sent:?} was lost: its retry applied it again: {body}"
    );
    duplicate && !sent.acked
}

/// Every command sent so far is in its account exactly once, and every balance, read
/// through each host, is the fold of its events and the sum of its commands.
async fn check_every_account(
    http: &reqwest::Client,
    urls: &[String; 2],
    history: &[Sent],
    round: u64,
) {
    let mut expected: Vec<HashMap<&str, i64>> = vec![HashMap::new(); ACCOUNTS];
    for sent in history {
        expected[sent.account].insert(&sent.command_id, sent.amount);
    }
    for (account, expected) in expected.iter().enumerate() {
        let name = account_name(account);
        let events = account_events(http, &urls[account % 2], &name).await;
        check_account_events(&name, &events, expected, round);
        let folded = fold_balance(&events);
        assert_eq!(folded, expected.values().sum::<i64>(), "{name}");
        for url in urls {
            assert_eq!(
                state_balance(http, url, &name).await,
                folded,
                "{name} at {url}"
            );
        }
    }
}
