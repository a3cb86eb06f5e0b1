//! Crash test: a child process appends multi-event batches (and saves snapshots) from 16
//! tasks with `FsyncPolicy::Always`, printing each acknowledgement; the parent kills it with
//! SIGKILL at random moments and, after each reopen, checks that every acknowledged append
//! and snapshot is there, that no batch is partial, that the index agrees with the log, and
//! that retrying acknowledged command ids appends nothing.
//!
//! The test binary is its own child (`TALLY_STORE_CRASH_CHILD`). Rounds:
//! `TALLY_STORE_CRASH_ROUNDS` (default 20); seed: `TALLY_STORE_CRASH_SEED`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, StreamRead,
};

const CHILD_ENV: &str = "TALLY_STORE_CRASH_CHILD";
const TASKS: u64 = 16;
const STREAMS: u64 = 40;
const TAG: &str = "crash-test@1";

fn stream(n: u64) -> StreamId {
    StreamId::new("account", format!("a{n}"))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(Path::new(&dir));
    }
    let rounds = env_number("TALLY_STORE_CRASH_ROUNDS", 20);
    let seed = env_number(
        "TALLY_STORE_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!(
        "store crash test: {rounds} rounds, seed {seed} (TALLY_STORE_CRASH_SEED={seed} replays the kill timing)"
    );
    match std::panic::catch_unwind(|| parent(rounds, seed)) {
        Ok(()) => println!("store crash: 1 passed, 0 failed"),
        Err(_) => {
            println!("store crash: 0 passed, 1 failed (seed {seed})");
            std::process::exit(1);
        }
    }
}

/// Appends until killed. Prints `ack <command> <stream> <first_position> <first_version> <count>`
/// and `snap <stream> <version>` lines.
fn child(dir: &Path) {
    let round = env_number("TALLY_STORE_CRASH_ROUND", 0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (store, _) = EventStore::open(StoreConfig::new(dir)).await.unwrap();
        let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<String>();
        for task in 0..TASKS {
            let store = store.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                for seq in 0u64.. {
                    let n = (task * 7 + seq * 13 + round) % STREAMS;
                    let count = 1 + (seq + task) % 4;
                    let command = format!("r{round}-t{task}-s{seq}");
                    let events = (0..count)
                        .map(|i| {
                            NewEvent::new(
                                "Booked",
                                format!(r#"{{"command":"{command}","i":{i},"n":{count}}}"#),
                            )
                        })
                        .collect();
                    let result = store
                        .append(
                            &stream(n),
                            ExpectedVersion::Any,
                            events,
                            AppendOptions::command(command.clone()),
                        )
                        .await
                        .unwrap();
                    acks.send(format!(
                        "ack {command} {n} {} {} {count}",
                        result.first_position, result.first_version
                    ))
                    .unwrap();
                    if seq % 10 == 9 {
                        let version = result.last_version();
                        let data = Bytes::from(format!("a{n}@{version}"));
                        store
                            .save_snapshot(&stream(n), version, TAG, data)
                            .await
                            .unwrap();
                        acks.send(format!("snap {n} {version}")).unwrap();
                    }
                }
            });
        }
        drop(acks);
        let mut stdout = std::io::stdout().lock();
        while let Some(line) = printed.recv().await {
            writeln!(stdout, "{line}").unwrap();
            stdout.flush().unwrap();
        }
    });
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    stream: u64,
    first_position: u64,
    first_version: u64,
    count: u64,
}

fn parent(rounds: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut acked: BTreeMap<String, Ack> = BTreeMap::new();
    // Highest acknowledged snapshot version per stream.
    let mut snapshots: HashMap<u64, u64> = HashMap::new();
    for round in 0..rounds {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis((rng >> 33) % 300);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir.path())
            .env("TALLY_STORE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first, first_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
                if lines.len() == 1 {
                    let _ = first.send(());
                }
            }
            lines
        });
        first_seen
            .recv_timeout(Duration::from_secs(120))
            .expect("the child acknowledged an append");
        std::thread::sleep(kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        let mut new = 0;
        for line in reader.join().unwrap() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                ["ack", command, n, position, version, count] => {
                    let ack = Ack {
                        stream: n.parse().unwrap(),
                        first_position: position.parse().unwrap(),
                        first_version: version.parse().unwrap(),
                        count: count.parse().unwrap(),
                    };
                    assert!(acked.insert(command.to_string(), ack).is_none());
                    new += 1;
                }
                ["snap", n, version] => {
                    let entry = snapshots.entry(n.parse().unwrap()).or_default();
                    *entry = (*entry).max(version.parse().unwrap());
                }
                // A line cut short by the kill.
                _ => {}
            }
        }
        let events = runtime.block_on(verify(dir.path(), &acked, &snapshots));
        println!(
            "round {round}: killed {kill_after:?} after the first ack; {new} new acks; {events} events"
        );
    }
}

async fn verify(dir: &Path, acked: &BTreeMap<String, Ack>, snapshots: &HashMap<u64, u64>) -> u64 {
    let (store, report) = EventStore::open(StoreConfig::new(dir)).await.unwrap();
    assert!(!report.events_recovery.corruption_detected);
    let all = store.read_all(0, usize::MAX).await.unwrap();
    let mut all = all;
    while (all.len() as u64) < store.end_position() {
        let more = store.read_all(all.len() as u64, usize::MAX).await.unwrap();
        all.extend(more);
    }
    // Positions dense; per stream, versions dense and equal to the index's view.
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut by_command: HashMap<String, Vec<&tally_store::RecordedEvent>> = HashMap::new();
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position, i as u64);
        let next = versions.entry(event.stream.clone()).or_insert(0);
        assert_eq!(
            event.version, *next,
            "versions of {} are dense",
            event.stream
        );
        *next += 1;
        by_command
            .entry(event.command_id.clone().unwrap())
            .or_default()
            .push(event);
    }
    for (stream, count) in &versions {
        assert_eq!(store.stream_version(stream), Some(count - 1));
        let read = store
            .read_stream(stream, StreamRead::forward(0, usize::MAX))
            .await
            .unwrap();
        let from_log: Vec<u64> = all
            .iter()
            .filter(|e| e.stream == *stream)
            .map(|e| e.position)
            .collect();
        assert_eq!(
            read.iter().map(|e| e.position).collect::<Vec<_>>()[..],
            from_log[..read.len()]
        );
    }
    // No partial batch: every command's events are consecutive and complete.
    for (command, events) in &by_command {
        let n = events.len() as u64;
        for (i, event) in events.iter().enumerate() {
            let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
            assert_eq!(data["command"], command.as_str());
            assert_eq!(data["n"], n, "batch {command} is complete");
            assert_eq!(data["i"], i as u64);
            assert_eq!(event.position, events[0].position + i as u64);
        }
    }
    // Every acknowledged append is there, exactly as acknowledged.
    for (command, ack) in acked {
        let events = by_command
            .get(command)
            .unwrap_or_else(|| panic!("acknowledged {command} is missing"));
        assert_eq!(events.len() as u64, ack.count);
        assert_eq!(events[0].position, ack.first_position);
        assert_eq!(events[0].version, ack.first_version);
        assert_eq!(events[0].stream, stream(ack.stream));
    }
    // Retrying acknowledged command ids appends nothing.
    let end = store.end_position();
    for (command, ack) in acked.iter().rev().take(20) {
        let retry = store
            .append(
                &stream(ack.stream),
                ExpectedVersion::Any,
                vec![NewEvent::new("Booked", "{}")],
                AppendOptions::command(command.clone()),
            )
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.first_position, ack.first_position);
    }
    assert_eq!(store.end_position(), end);
    // Acknowledged snapshots survived.
    for (n, version) in snapshots {
        let snapshot = store
            .latest_snapshot(&stream(*n), TAG)
            .await
            .unwrap()
            .expect("snapshot kept");
        assert!(snapshot.version >= *version);
        assert_eq!(
            snapshot.data,
            Bytes::from(format!("a{n}@{}", snapshot.version))
        );
        assert!(
            store
                .latest_snapshot(&stream(*n), "other-tag")
                .await
                .unwrap()
                .is_none()
        );
    }
    store.close().await.unwrap();
    end
}
