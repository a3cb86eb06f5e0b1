//! Soak: a sustained mixed load on the real server (commands, reads of every kind, a
//! long-lived live event stream, short reconnecting ones, the plugin list, metrics)
//! while the server's resident memory (`/proc/<pid>/status`) and open file descriptors
//! (`/proc/<pid>/fd`) are sampled every second.
//!
//! Asserted: both level off: the largest anonymous resident memory (`RssAnon`: the heap,
//! where a leak shows) of the last third of the run is at most max(1.5 x, +32 MiB) of
//! the largest of the first third (the warm-up), plus 64 bytes per event appended (the
//! index keeps about 33 bytes per event, and retained command ids cost more); the
//! descriptors at most 16 more; no request fails unexpectedly; the long-lived stream
//! delivers every bank-account event exactly once, in order. The total (`VmRSS`) is
//! printed, not asserted: it also counts the pages of the memory-mapped log that reads
//! touched, which grow with the log (about 48 MiB in a 300 s run) and are the page
//! cache's to reclaim.
//!
//! `TALLY_SOAK_SECONDS` (default 60) sets the duration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::{Rng, Service, bank, env_number, seed_from_env};

/// Accounts under load.
const ACCOUNTS: u64 = 32;

/// One sample of the server process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// `VmRSS`.
    rss_kib: u64,
    /// `RssAnon`.
    anon_kib: u64,
    /// `RssFile` (mapped files, the log included).
    file_kib: u64,
    fds: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count() as u64;
    Sample {
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        fds,
    }
}

/// Shared by the load tasks.
#[derive(Default)]
struct Tally {
    commands_ok: AtomicU64,
    commands_rejected: AtomicU64,
    reads: AtomicU64,
    reconnects: AtomicU64,
    streamed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, error: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(error);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_mixed_load_levels_off_in_memory_and_file_descriptors() {
    let seconds = env_number("TALLY_SOAK_SECONDS", 60);
    let seed = seed_from_env("TALLY_SOAK_SEED");
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let (pid, url) = (service.pid(), service.url.clone());
    for account in 0..ACCOUNTS {
        let (status, body) = service
            .command(
                "bank-account",
                &format!("s{account}"),
                bank("OpenAccount", json!({"initial_balance": 1_000})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let mut rng = Rng::new(seed);
    let mut tasks = Vec::new();

    let subscriber = {
        let (url, tally) = (url.clone(), tally.clone());
        tokio::spawn(async move { follow(&url, &tally).await })
    };
    for worker in 0..4 {
        let (http, url, tally, stop) = (http.clone(), url.clone(), tally.clone(), stop.clone());
        let mut rng = Rng::new(rng.next_u64());
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let account = rng.below(ACCOUNTS);
                let amount = rng.range(1, 100);
                let mut command = if rng.percent(75) {
                    bank("Deposit", json!({"amount": amount}))
                } else {
                    bank("Withdraw", json!({"amount": amount}))
                };
                if rng.percent(10) {
                    command["command_id"] = json!(format!("soak-{worker}-{n}"));
                }
                let answer = http
                    .post(format!(
                        "{url}/v1/aggregates/bank-account/s{account}/commands"
                    ))
                    .json(&command)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == 200 => {
                        tally.commands_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) if response.status() == 422 => {
                        tally.commands_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => tally.error(format!(
                        "command: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )),
                    Err(error) => tally.error(format!("command: {error}")),
                }
            }
        }));
    }
    for _ in 0..2 {
        let (http, url, tally, stop) = (http.clone(), url.clone(), tally.clone(), stop.clone());
        let mut rng = Rng::new(rng.next_u64());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let account = rng.below(ACCOUNTS);
                let path = match rng.below(7) {
                    0 | 1 => format!("/v1/aggregates/bank-account/s{account}"),
                    2 => format!(
                        "/v1/aggregates/bank-account/s{account}/events?from_version={}&limit=50",
                        rng.range(1, 100)
                    ),
                    3 => format!("/v1/events?from_position={}&limit=100", rng.below(5_000)),
                    4 => "/v1/aggregates/bank-account?limit=10".to_owned(),
                    5 => "/v1/plugins".to_owned(),
                    _ => "/metrics".to_owned(),
                };
                match http.get(format!("{url}{path}")).send().await {
                    Ok(response) if response.status() == 200 => {
                        // Read the body: a read is only done once it is delivered.
                        let _ = response.bytes().await;
                        tally.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => tally.error(format!("GET {path}: {}", response.status())),
                    Err(error) => tally.error(format!("GET {path}: {error}")),
                }
            }
        }));
    }
    {
        // Short-lived streams: connect, read a little, hang up (leaks would show in fds).
        let (http, url, tally, stop) = (http.clone(), url.clone(), tally.clone(), stop.clone());
        let mut rng = Rng::new(rng.next_u64());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let last = rng.below(1_000).to_string();
                let response = http
                    .get(format!("{url}/v1/subscribe"))
                    .header("Last-Event-ID", last)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 200 => {
                        let mut events =
                            eventsource_stream::Eventsource::eventsource(response.bytes_stream());
                        for _ in 0..rng.range(1, 50) {
                            let next =
                                tokio::time::timeout(Duration::from_millis(200), events.next());
                            if !matches!(next.await, Ok(Some(Ok(_)))) {
                                break;
                            }
                        }
                        tally.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => tally.error(format!("subscribe: {}", response.status())),
                    Err(error) => tally.error(format!("subscribe: {error}")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        samples.push(sample(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a load task failed");
    }

    // The long-lived stream catches up with every bank-account event.
    let expected = ACCOUNTS + tally.commands_ok.load(Ordering::Relaxed);
    let waiting = Instant::now();
    while tally.streamed.load(Ordering::Relaxed) < expected
        && waiting.elapsed() < Duration::from_secs(60)
        && !subscriber.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let streamed = tally.streamed.load(Ordering::Relaxed);
    subscriber.abort();

    let errors = tally.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "requests failed:\n{}", errors.join("\n"));
    assert_eq!(
        streamed, expected,
        "the live stream delivered {streamed} of {expected} events"
    );

    let third = samples.len() / 3;
    assert!(third >= 1, "too few samples: {samples:?}");
    let max =
        |samples: &[Sample], pick: fn(&Sample) -> u64| samples.iter().map(pick).max().unwrap_or(0);
    let (warm, late) = (&samples[..third], &samples[samples.len() - third..]);
    let (warm_anon, late_anon) = (max(warm, |s| s.anon_kib), max(late, |s| s.anon_kib));
    let (warm_fds, late_fds) = (max(warm, |s| s.fds), max(late, |s| s.fds));
    let (first, after_warm_up, last) = (samples[0], samples[third], samples[samples.len() - 1]);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let commands_ok = tally.commands_ok.load(Ordering::Relaxed);
    eprintln!(
        "soak: {seconds} s, {commands_ok} commands ok, {} rejected, {} reads, {} stream \
         reconnects, {streamed} events streamed; MiB at start / after warm-up / end: \
         VmRSS {:.1} / {:.1} / {:.1}, RssAnon {:.1} / {:.1} / {:.1}, RssFile {:.1} / {:.1} / \
         {:.1}; RssAnon max first third {:.1}, last third {:.1}; fds {} / {} / {} (max first \
         third {warm_fds}, last third {late_fds})",
        tally.commands_rejected.load(Ordering::Relaxed),
        tally.reads.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed),
        mib(first.rss_kib),
        mib(after_warm_up.rss_kib),
        mib(last.rss_kib),
        mib(first.anon_kib),
        mib(after_warm_up.anon_kib),
        mib(last.anon_kib),
        mib(first.file_kib),
        mib(after_warm_up.file_kib),
        mib(last.file_kib),
        mib(warm_anon),
        mib(late_anon),
        first.fds,
        after_warm_up.fds,
        last.fds,
    );
    let series: Vec<String> = samples
        .iter()
        .step_by(10)
        .map(|s| format!("{:.0}/{:.0}", mib(s.anon_kib), mib(s.rss_kib)))
        .collect();
    eprintln!("soak: RssAnon/VmRSS MiB every 10 s: {}", series.join(" "));
    let per_event_kib = commands_ok * 64 / 1024;
    let allowed_anon = (warm_anon * 3 / 2).max(warm_anon + 32 * 1024) + per_event_kib;
    assert!(
        late_anon <= allowed_anon,
        "anonymous memory keeps growing: {late_anon} KiB late vs {warm_anon} KiB warm \
         (allowed {allowed_anon}); samples {samples:?}"
    );
    assert!(
        late_fds <= warm_fds + 16,
        "file descriptors keep growing: {late_fds} late vs {warm_fds} warm; samples {samples:?}"
    );
    service.stop();
}

/// Follows the live stream of bank-account events from the start, checking that
/// positions only go up; counts them in `tally.streamed`.
async fn follow(url: &str, tally: &Tally) {
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/subscribe?aggregate_type=bank-account"))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(response.status(), 200);
    let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let mut last: Option<u64> = None;
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
        let event = match next {
            // Quiet for a while: keep waiting (the test aborts this task when done).
            Err(_) => continue,
            Ok(Some(Ok(event))) => event,
            Ok(other) => {
                tally.error(format!("the live stream ended: {other:?}"));
                return;
            }
        };
        let Ok(position) = event.id.parse::<u64>() else {
            tally.error(format!("an event id that is not a position: {event:?}"));
            return;
        };
        if last.is_some_and(|last| position <= last) {
            tally.error(format!("position {position} after {last:?}"));
            return;
        }
        last = Some(position);
        tally.streamed.fetch_add(1, Ordering::Relaxed);
    }
}
