//! Under `Always` one writer pass writes every queued append as several groups (each at
//! most `max_group_size`) before a single fsync, so none of those groups vouches for the
//! others. A bit flipped at rest in the first of them, after all were acknowledged as
//! durable, must be reported as corruption, not cut as a torn tail: the sync marker the
//! writer appends after each fsync is the evidence.

use tally_test_support::{copy_dir, flip_bit};
use tally_wal::format::{GROUP_HEADER_LEN, GroupHeader};
use tally_wal::{Record, Wal, WalConfig, WalError, segment_path};

fn config(dir: &std::path::Path) -> WalConfig {
    WalConfig {
        max_segment_size: 4 * 1024 * 1024,
        max_record_size: 2 * 1024,
        max_batch_size: 4 * 1024,
        max_group_size: 4 * 1024,
        ..WalConfig::new(dir)
    }
}

/// Attempts at a last writer pass large enough to show anything: whether the writer
/// takes the 200 queued appends in one pass depends on when its thread runs, which a
/// loaded machine can change.
const ATTEMPTS: usize = 10;

/// A log whose writer's last pass is large, copied as a killed process leaves it.
struct Killed {
    /// The copy of the log.
    dir: tempfile::TempDir,
    /// Every acknowledged position, in order.
    positions: Vec<tally_wal::Position>,
    /// Where the last pass starts (its sync marker before it).
    last_pass: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flip_far_before_the_end_of_acknowledged_data_is_not_a_torn_tail() {
    let mut killed = None;
    for attempt in 1..=ATTEMPTS {
        killed = write_and_kill().await;
        if killed.is_some() {
            break;
        }
        eprintln!("attempt {attempt}: the last writer pass was too small; again");
    }
    let Killed {
        dir: killed,
        positions,
        last_pass,
    } = killed.expect("a large last writer pass within the attempts");
    let segment = positions.last().unwrap().segment_id;
    let path = segment_path(killed.path(), segment);

    // At rest, one bit flips in the first acknowledged record of that pass.
    let first = *positions.iter().find(|p| p.offset > last_pass).unwrap();
    flip_bit(&path, first.offset + 20, 0);

    match Wal::open(config(killed.path())).await {
        Err(WalError::Corrupt { .. }) => {}
        Ok((wal, info)) => {
            let lost = positions.iter().filter(|p| **p >= first).count();
            wal.close().await.unwrap();
            panic!(
                "{lost} acknowledged records ({} bytes) were cut silently as a torn tail: {info:?}",
                info.bytes_truncated
            );
        }
        Err(other) => panic!("{other}"),
    }
}

/// Appends a first record, then 200 queued at once, all acknowledged; copies the log
/// as a killed process leaves it. `None` when the writer's last pass was too small to
/// hold several groups.
async fn write_and_kill() -> Option<Killed> {
    let dir = tempfile::tempdir().unwrap();
    let killed = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(dir.path())).await.unwrap();
    wal.append(&Record::new("first")).await.unwrap();
    // Queue 200 appends at once (as tally-store does): one writer pass, ~50 groups, one fsync.
    let record = [Record::new(vec![3u8; 1000])];
    let size = wal.checked_len(&record).unwrap();
    let mut tickets = Vec::new();
    for _ in 0..200 {
        let room = wal.reserve(size).await.unwrap();
        tickets.push(wal.enqueue_batch(&record, room).unwrap());
    }
    let mut positions = Vec::new();
    for ticket in tickets {
        positions.push(ticket.wait().await.unwrap()[0]); // acknowledged: durable
    }
    copy_dir(dir.path(), killed.path()); // the process dies here, no close marker
    wal.close().await.unwrap();

    // Find the writer's last pass: the data groups between the last two sync markers
    // (empty groups the writer appends after each fsync).
    let segment = positions.last().unwrap().segment_id;
    let bytes = std::fs::read(segment_path(killed.path(), segment)).unwrap();
    let markers = sync_markers(&bytes);
    let last_pass = markers[markers.len() - 2];
    let pass_bytes = markers[markers.len() - 1] - last_pass;
    eprintln!("last writer pass: {pass_bytes} bytes");
    (pass_bytes > 4 * 4096).then_some(Killed {
        dir: killed,
        positions,
        last_pass,
    })
}

/// Offsets of the sync markers (empty groups) of a segment's bytes.
fn sync_markers(bytes: &[u8]) -> Vec<u64> {
    let mut at = 32usize;
    let mut markers = Vec::new();
    while at + GROUP_HEADER_LEN <= bytes.len() {
        let Ok(header) = GroupHeader::decode(&bytes[at..at + GROUP_HEADER_LEN]) else {
            break;
        };
        if header.record_count == 0 {
            markers.push(at as u64);
        }
        at += GROUP_HEADER_LEN + header.body_len as usize;
    }
    markers
}
