//! Crash test: a child process appends from 16 tasks under `FsyncPolicy::Always`, printing
//! every acknowledged position; the parent kills it with SIGKILL at a random moment, then
//! reopens the log and checks that every acknowledged record is there and intact, that
//! nothing appears that was never appended, and that appending continues.
//!
//! The test binary is its own child (`tally_test_support::crash`): with
//! `TALLY_WAL_CRASH_CHILD` set it runs the appender. Rounds: `TALLY_WAL_CRASH_ROUNDS` (default 20); seed: `TALLY_WAL_CRASH_SEED`
//! (default from the clock, printed so a failure can be replayed).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use tally_test_support::crash::{self, Acks, CrashRounds, CrashTest};
use tally_wal::{FsyncPolicy, Position, Record, Wal, WalConfig};

const CRASH_TEST: CrashTest = CrashTest {
    name: "crash",
    env_prefix: "TALLY_WAL_CRASH",
};
const TASKS: u64 = 16;

fn config(dir: &Path) -> WalConfig {
    WalConfig {
        // Small segments, so that kills also land in rotations.
        max_segment_size: 256 * 1024,
        max_record_size: 16 * 1024,
        max_batch_size: 64 * 1024,
        fsync_policy: FsyncPolicy::Always,
        ..WalConfig::new(dir)
    }
}

/// The record task `task` appends as its `seq`-th in round `round`.
fn record(round: u64, task: u64, seq: u64) -> Record {
    named(&format!("{round}/{task}/{seq}"))
}

/// A record that starts with its name and a `=`: the rest is a function of the name, so
/// any record read back can be checked.
fn named(name: &str) -> Record {
    let len = 50 + name.len() * 13 % 900;
    let mut value = format!("{name}=").into_bytes();
    value.extend(name.bytes().cycle().take(len));
    Record::new(value)
}

/// The name a record read back gives itself (what precedes its first `=`).
fn name_of(record: &Record) -> String {
    let end = record
        .value
        .iter()
        .position(|&b| b == b'=')
        .expect("a record starts with its name");
    String::from_utf8(record.value[..end].to_vec()).expect("names are what the child wrote")
}

fn main() {
    CRASH_TEST.main(child, parent);
}

/// Appends from [`TASKS`] tasks until killed.
fn child(dir: &Path, round: u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (wal, _) = Wal::open(config(dir)).await.unwrap();
        crash::run_tasks(TASKS, |task, acks| {
            append_forever(wal.clone(), round, task, acks)
        })
        .await;
    });
}

/// Appends task `task`'s records, printing `round task seq segment offset` per
/// acknowledged append.
async fn append_forever(wal: Wal, round: u64, task: u64, acks: Acks) {
    for seq in 0.. {
        // Every fifth append is a batch of three.
        if seq % 5 == 4 {
            let batch: Vec<Record> = (0..3).map(|i| record(round, task, seq * 10 + i)).collect();
            let positions = wal.append_batch(&batch).await.unwrap();
            for (i, p) in positions.iter().enumerate() {
                let line = format!(
                    "{round} {task} {} {} {}",
                    seq * 10 + i as u64,
                    p.segment_id,
                    p.offset
                );
                acks.send(line).unwrap();
            }
        } else {
            let p = wal.append(&record(round, task, seq * 10)).await.unwrap();
            let line = format!("{round} {task} {} {} {}", seq * 10, p.segment_id, p.offset);
            acks.send(line).unwrap();
        }
    }
}

fn parent(crash: &mut CrashRounds) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Every acknowledged record ever: name -> position.
    let mut acknowledged: BTreeMap<String, Position> = BTreeMap::new();
    for round in 0..crash.rounds() {
        let killed = crash.kill_child(round);
        let new_acks = record_acks(&killed.lines, &mut acknowledged);
        let survivors = runtime.block_on(verify(crash.dir(), &acknowledged));
        println!(
            "round {round}: killed {:?} after its first ack, {new_acks} new acknowledged appends, {survivors} records in the log",
            killed.after_first_ack
        );
    }
    assert!(
        acknowledged.len() as u64 > crash.rounds(),
        "the children acknowledged appends"
    );
}

/// Adds the acknowledgements of `lines` to `acknowledged`; returns how many.
fn record_acks(lines: &[String], acknowledged: &mut BTreeMap<String, Position>) -> usize {
    let mut new_acks = 0;
    for line in lines {
        let fields: Vec<u64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        // A line cut by the kill has fewer fields: that ack was never complete.
        if let [round, task, seq, segment_id, offset] = fields[..] {
            let name = format!("{round}/{task}/{seq}");
            let position = Position { segment_id, offset };
            assert!(
                acknowledged.insert(name, position).is_none(),
                "a record was acknowledged twice"
            );
            new_acks += 1;
        }
    }
    new_acks
}

/// Reopens the log and checks it against the acknowledged appends; returns its size.
async fn verify(dir: &Path, acknowledged: &BTreeMap<String, Position>) -> usize {
    let (wal, info) = Wal::open(config(dir)).await.unwrap();
    assert!(
        !info.corruption_detected,
        "a crash is not corruption: {info:?}"
    );
    let mut reader = wal.read_from(Position::START).await.unwrap();
    let mut seen = HashSet::new();
    let mut found = 0usize;
    let mut last = None;
    while let Some((record, position)) = reader.next_record().await.unwrap() {
        let name = name_of(&record);
        assert_eq!(
            record,
            named(&name),
            "record {name} at {position} is not what was appended"
        );
        assert!(seen.insert(name.clone()), "record {name} appears twice");
        if let Some(at) = acknowledged.get(&name) {
            assert_eq!(*at, position, "record {name} moved");
            found += 1;
        }
        assert!(last < Some(position));
        last = Some(position);
    }
    assert_eq!(
        found,
        acknowledged.len(),
        "{} acknowledged records are missing",
        acknowledged.len() - found
    );
    assert_eq!(info.valid_records as usize, seen.len());
    // Appending continues after the crash.
    let probe = named(&format!("probe-{}", seen.len()));
    let at = wal.append(&probe).await.unwrap();
    assert_eq!(wal.read_at(at).await.unwrap(), probe);
    wal.close().await.unwrap();
    seen.len()
}
