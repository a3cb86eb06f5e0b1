//! Crash test: a child process appends multi-event batches (and saves snapshots) from 16
//! tasks with `FsyncPolicy::Always`, printing each acknowledgement; the parent kills it with
//! SIGKILL at random moments and, after each reopen, checks that every acknowledged append
//! and snapshot is there, that no batch is partial, that the index agrees with the log, and
//! that retrying acknowledged command ids appends nothing.
//!
//! The test binary is its own child (`tally_test_support::crash`, with
//! `TALLY_STORE_CRASH_CHILD`). Rounds:
//! `TALLY_STORE_CRASH_ROUNDS` (default 20); seed: `TALLY_STORE_CRASH_SEED`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use tally_store::{
    AppendOptions, EventStore, ExpectedVersion, GlobalPosition, NewEvent, StoreConfig, StreamId,
    StreamRead, StreamVersion,
};
use tally_test_support::crash::{self, Acks, CrashRounds, CrashTest};

const CRASH_TEST: CrashTest = CrashTest {
    name: "store crash",
    env_prefix: "TALLY_STORE_CRASH",
};
const TASKS: u64 = 16;
const STREAMS: u64 = 40;
const TAG: &str = "crash-test@1";

fn stream(n: u64) -> StreamId {
    StreamId::new("account", format!("a{n}"))
}

fn main() {
    CRASH_TEST.main(child, parent);
}

/// Appends from [`TASKS`] tasks until killed.
fn child(dir: &Path, round: u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (store, _) = EventStore::open(StoreConfig::new(dir)).await.unwrap();
        crash::run_tasks(TASKS, |task, acks| {
            append_forever(store.clone(), round, task, acks)
        })
        .await;
    });
}

/// Appends task `task`'s batches, printing `ack <command> <stream> <first_position>
/// <first_version> <count>` and `snap <stream> <version>` lines.
async fn append_forever(store: EventStore, round: u64, task: u64, acks: Acks) {
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    stream: u64,
    first_position: u64,
    first_version: u64,
    count: u64,
}

/// What the children acknowledged, over all rounds.
#[derive(Debug, Default)]
struct Acknowledged {
    /// Appends by command id.
    appends: BTreeMap<String, Ack>,
    /// Highest acknowledged snapshot version per stream.
    snapshots: HashMap<u64, u64>,
}

impl Acknowledged {
    /// Adds the acknowledgements of `lines`; returns how many appends they add.
    fn record(&mut self, lines: &[String]) -> usize {
        let mut new = 0;
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                ["ack", command, n, position, version, count] => {
                    let ack = Ack {
                        stream: n.parse().unwrap(),
                        first_position: position.parse().unwrap(),
                        first_version: version.parse().unwrap(),
                        count: count.parse().unwrap(),
                    };
                    assert!(self.appends.insert(command.to_string(), ack).is_none());
                    new += 1;
                }
                ["snap", n, version] => {
                    let entry = self.snapshots.entry(n.parse().unwrap()).or_default();
                    *entry = (*entry).max(version.parse().unwrap());
                }
                // A line cut short by the kill.
                _ => {}
            }
        }
        new
    }
}

fn parent(crash: &mut CrashRounds) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut acknowledged = Acknowledged::default();
    for round in 0..crash.rounds() {
        let killed = crash.kill_child(round);
        let new = acknowledged.record(&killed.lines);
        let events = runtime.block_on(verify(
            crash.dir(),
            &acknowledged.appends,
            &acknowledged.snapshots,
        ));
        println!(
            "round {round}: killed {:?} after the first ack; {new} new acks; {events} events",
            killed.after_first_ack
        );
    }
}

async fn verify(dir: &Path, acked: &BTreeMap<String, Ack>, snapshots: &HashMap<u64, u64>) -> u64 {
    let (store, report) = EventStore::open(StoreConfig::new(dir)).await.unwrap();
    assert!(!report.events_recovery.corruption_detected);
    let all = store
        .read_all(GlobalPosition::START, usize::MAX)
        .await
        .unwrap();
    let mut all = all;
    while (all.len() as u64) < store.end_position().get() {
        let from = GlobalPosition::new(all.len() as u64);
        let more = store.read_all(from, usize::MAX).await.unwrap();
        all.extend(more);
    }
    // Positions dense; per stream, versions dense and equal to the index's view.
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut by_command: HashMap<String, Vec<&tally_store::RecordedEvent>> = HashMap::new();
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position.get(), i as u64);
        let count = versions.entry(event.stream.clone()).or_insert(0);
        *count += 1;
        assert_eq!(
            event.version.get(),
            *count,
            "versions of {} are dense",
            event.stream
        );
        by_command
            .entry(event.command_id.clone().unwrap())
            .or_default()
            .push(event);
    }
    for (stream, count) in &versions {
        assert_eq!(store.stream_version(stream).get(), *count);
        let read = store
            .read_stream(
                stream,
                StreamRead::forward(StreamVersion::FIRST, usize::MAX),
            )
            .await
            .unwrap();
        let from_log: Vec<GlobalPosition> = all
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
        assert_eq!(events[0].position.get(), ack.first_position);
        assert_eq!(events[0].version.get(), ack.first_version);
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
        assert_eq!(retry.first_position.get(), ack.first_position);
    }
    assert_eq!(store.end_position(), end);
    // Acknowledged snapshots survived.
    for (n, version) in snapshots {
        let snapshot = store
            .latest_snapshot(&stream(*n), TAG)
            .await
            .unwrap()
            .expect("snapshot kept");
        assert!(snapshot.version.get() >= *version);
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
    end.get()
}
