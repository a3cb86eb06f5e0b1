//! A full disk under the real server: the data directory lives on a tmpfs mounted by
//! the test (CI runs as root), shrunk to 64 MiB and filled by a filler file.
//!
//! The log preallocates each segment (128 MiB by default, in both the event and the
//! snapshot log), so a running service meets a full disk only at a segment rotation,
//! or on a file system without `fallocate` (appends grow the file). The tests create
//! that state quickly: the service starts on a roomy tmpfs, the preallocated space after
//! the data of each log's active segment is released (`fallocate --punch-hole`, or a
//! cut), and the tmpfs is shrunk to 64 MiB (`mount -o remount`).
//!
//! - `a_full_disk_refuses_commands_keeps_reads_and_recovers_without_a_restart`: under
//!   load until the disk is full, commands fail with 503 `storage-full` (code and
//!   message), reads keep working, every acknowledged command is there exactly once and
//!   no refused one is; once the filler is deleted commands succeed again without a
//!   restart; after a clean stop `tally verify` finds the logs clean.
//! - `a_service_restarted_on_a_full_disk_comes_up_and_serves_reads`: a data directory
//!   whose active segment is not preallocated (as a failed rotation leaves it: sealed,
//!   cut to its data) on a full disk; the service must come up, serve reads and refuse
//!   commands with `storage-full`; afterwards `tally verify` passes.
//! - `a_clean_stop_on_a_full_disk_leaves_a_log_that_verifies_clean`: SIGTERM while the
//!   disk is full exits cleanly, and once space is back `tally verify` passes and every
//!   acknowledged command is there.
//! - `commands_pipelined_on_one_account_meet_a_full_disk_with_storage_full`: all clients
//!   on one aggregate, three times over: when the disk fills, every refused command is a
//!   503 `storage-full` (never another error) and none of them is stored.
//!
//! Without permission to mount, the tests fail when `CI=true` and are skipped (loudly)
//! otherwise. The tmpfs is unmounted at the end, also on failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Service, TALLY, account_events, deposit, fold_balance, open_account, state_balance};

/// Accounts the clients deposit to.
const ACCOUNTS: usize = 8;
/// Concurrent clients while filling the disk.
const CLIENTS: usize = 8;
/// Room left on the disk before the load starts.
const HEADROOM: u64 = 256 * 1024;

fn account_name(index: usize) -> String {
    format!("d{index}")
}

/// A tmpfs mounted on a temporary directory; unmounted (lazily if busy) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if output.status.success() {
            Ok(Tmpfs { dir })
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size_mib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size_mib}m")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "resizing the tmpfs to {size_mib} MiB");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Mounts a tmpfs of `size_mib`, or says why not: `None` skips the test, except under
/// `CI=true`, where it fails.
fn mount_or_skip(size_mib: u64) -> Option<Tmpfs> {
    match Tmpfs::mount(size_mib) {
        Ok(tmpfs) => Some(tmpfs),
        Err(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("the full-disk tests need to mount a tmpfs (run as root): {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED a full-disk test: cannot mount a tmpfs: {why}");
            None
        }
    }
}

/// Releases the preallocated space after the data of the active segment of the log
/// in `dir` (the newest `.wal` file): appends then need new blocks, as on a file
/// system without `fallocate`. With `cut`, the file is cut after its data (with a
/// page to spare), as a failed rotation leaves a sealed segment; else a hole is
/// punched (the file keeps its length).
fn release_preallocation(dir: &Path, cut: bool) {
    use std::os::unix::fs::FileExt;
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the log directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    segments.sort();
    let segment = segments.pop().expect("a segment");
    let file = std::fs::File::open(&segment).expect("open the segment");
    let size = file.metadata().expect("metadata").len();
    let mut head = vec![0u8; 4 << 20];
    let read = file.read_at(&mut head, 0).expect("read the segment");
    let last = head[..read]
        .iter()
        .rposition(|&byte| byte != 0)
        .expect("a segment header");
    assert!(last < 3 << 20, "the log is still small");
    // Past the data, with a page to spare.
    let from = (last as u64 / 4096 + 2) * 4096;
    if from >= size {
        return;
    }
    if cut {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open the segment");
        file.set_len(from).expect("cut the segment");
        file.sync_all().expect("sync");
        return;
    }
    let status = Command::new("fallocate")
        .arg("--punch-hole")
        .args(["--offset", &from.to_string()])
        .args(["--length", &(size - from).to_string()])
        .arg(&segment)
        .status()
        .expect("run fallocate");
    assert!(
        status.success(),
        "fallocate --punch-hole {}",
        segment.display()
    );
}

/// Fills the file system of `path` with a file at `path`, then gives `headroom` bytes
/// back.
fn fill(path: &Path, headroom: u64) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
            Err(error) => panic!("filling the disk: {error}"),
        }
    }
    file.set_len(written.saturating_sub(headroom))
        .expect("give room back");
}

/// Runs `tally verify DIR`; panics with its output unless it passes.
fn assert_verify_passes(data: &Path) {
    let output = Command::new(TALLY)
        .arg("verify")
        .arg(data)
        .output()
        .expect("run tally verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "tally verify failed:\n{text}");
    assert!(text.contains("clean"), "{text}");
}

fn assert_storage_full(status: u16, body: &Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage-full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
}

/// Every acknowledged command is in its account exactly once, no other command is,
/// and every balance is the fold of its events.
async fn check_accounts(http: &reqwest::Client, url: &str, acked: &[(usize, String, i64)]) {
    for account in 0..ACCOUNTS {
        let name = account_name(account);
        let events = account_events(http, url, &name).await;
        let mut ids: Vec<&str> = events
            .iter()
            .map(|event| event["command_id"].as_str().expect("a command id"))
            .collect();
        ids.sort_unstable();
        let open_id = format!("open-{name}");
        let mut expected: Vec<&str> = acked
            .iter()
            .filter(|(a, _, _)| *a == account)
            .map(|(_, id, _)| id.as_str())
            .chain([open_id.as_str()])
            .collect();
        expected.sort_unstable();
        assert_eq!(
            ids, expected,
            "{name}: the stored command ids are exactly the acknowledged ones"
        );
        let sum: i64 = acked
            .iter()
            .filter(|(a, _, _)| *a == account)
            .map(|(_, _, amount)| amount)
            .sum();
        assert_eq!(fold_balance(&events), sum, "{name}");
        assert_eq!(state_balance(http, url, &name).await, sum, "{name}");
    }
}

/// Sends deposits from 8 clients to the first `accounts` accounts until each client
/// meets the full disk (503 `storage-full`, checked); returns the acknowledged
/// `(account, command id, amount)` and how many commands were sent. Command ids are
/// `<prefix>-<n>`: give each call its own prefix.
async fn load_until_full(
    http: &reqwest::Client,
    url: &str,
    accounts: usize,
    prefix: &str,
) -> (Vec<(usize, String, i64)>, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, counter) = (http.clone(), url.to_owned(), counter.clone());
        let prefix = prefix.to_owned();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                assert!(n < 200_000, "the disk never filled up");
                let account = (n as usize + client) % accounts;
                let (amount, id) = ((n % 997 + 1) as i64, format!("{prefix}-{n}"));
                let (status, body) = deposit(&http, &url, &account_name(account), &id, amount)
                    .await
                    .expect("the server answers");
                if status == 200 {
                    assert_eq!(body["duplicate"], false, "{body}");
                    acked.push((account, id, amount));
                } else {
                    assert_storage_full(status, &body);
                    return acked;
                }
            }
        }));
    }
    let mut acked = Vec::new();
    for client in clients {
        acked.extend(client.await.expect("a client failed"));
    }
    (acked, counter.load(Ordering::Relaxed))
}

/// Fills the room a refusal under load may leave: the log cuts off the write that
/// failed, and the room that frees can still take smaller appends (25 single
/// commands fitted in one of 12 runs); a state snapshot saved in the background that
/// fails is cut off too, and frees room a moment later. Sends single deposits of the
/// same size as the `refused-N` ones (a 9-character id, an account `dN`, amount 1)
/// until three in a row, 100 ms apart, are refused; the acknowledged ones go to
/// `acked`.
async fn top_off(http: &reqwest::Client, url: &str, acked: &mut Vec<(usize, String, i64)>) {
    const REFUSALS_IN_A_ROW: u32 = 3;
    let (mut refused_in_a_row, mut fitted) = (0, 0);
    for n in 0..1_000 {
        let id = format!("topup-{n:03}");
        let (status, body) = deposit(http, url, &account_name(0), &id, 1)
            .await
            .expect("the server answers");
        if status == 200 {
            (refused_in_a_row, fitted) = (0, fitted + 1);
            acked.push((0, id, 1));
            continue;
        }
        assert_storage_full(status, &body);
        refused_in_a_row += 1;
        if refused_in_a_row == REFUSALS_IN_A_ROW {
            eprintln!("full disk: {fitted} single commands fitted after the load");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("1,000 single commands fitted on a full disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_commands_keeps_reads_and_recovers_without_a_restart() {
    let Some(tmpfs) = mount_or_skip(300) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let http = reqwest::Client::new();
    let service = Service::start(&data, &[]).await;
    let url = service.url.clone();
    for account in 0..ACCOUNTS {
        open_account(&http, &url, &account_name(account)).await;
    }
    release_preallocation(&data.join("events"), false);
    release_preallocation(&data.join("snapshots"), false);
    tmpfs.resize(64);
    let filler = tmpfs.path().join("filler");
    fill(&filler, HEADROOM);

    let (mut acked, refused_before) = load_until_full(&http, &url, ACCOUNTS, "fill").await;
    eprintln!(
        "full disk: {} commands acknowledged before the disk filled up",
        acked.len()
    );
    assert!(!acked.is_empty(), "the headroom took no command at all");
    top_off(&http, &url, &mut acked).await;

    // Still full: commands are refused, reads work, nothing acknowledged is lost.
    for n in 0..5 {
        let (status, body) = deposit(&http, &url, &account_name(n), &format!("refused-{n}"), 1)
            .await
            .expect("the server answers");
        assert_storage_full(status, &body);
    }
    let (status, body) = service
        .command(
            "bank-account",
            "newcomer",
            json!({"type": "OpenAccount", "data": {"initial_balance": 1}}),
        )
        .await;
    assert_storage_full(status, &body);
    let (status, _) = service.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = service.get("/v1/events?limit=10").await;
    assert_eq!(status, 200, "{body}");
    check_accounts(&http, &url, &acked).await;

    // Space comes back: commands succeed again, without a restart.
    std::fs::remove_file(&filler).expect("delete the filler");
    let mut attempts = 0;
    loop {
        attempts += 1;
        let id = format!("after-{attempts}");
        let (status, body) = deposit(&http, &url, &account_name(0), &id, 3)
            .await
            .expect("the server answers");
        if status == 200 {
            acked.push((0, id, 3));
            break;
        }
        assert_storage_full(status, &body);
        assert!(
            attempts < 100,
            "commands still fail with space free: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("full disk: the first command after freeing space succeeded at attempt {attempts}");
    for n in 0..50 {
        let (account, id) = (n % ACCOUNTS, format!("later-{n}"));
        let (status, body) = deposit(&http, &url, &account_name(account), &id, 7)
            .await
            .expect("the server answers");
        assert_eq!(status, 200, "{body}");
        acked.push((account, id, 7));
    }
    check_accounts(&http, &url, &acked).await;
    service.stop();
    assert_verify_passes(&data);

    eprintln!("full disk: {refused_before} commands sent while filling the disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_restarted_on_a_full_disk_comes_up_and_serves_reads() {
    let Some(tmpfs) = mount_or_skip(300) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let http = reqwest::Client::new();
    let service = Service::start(&data, &[]).await;
    for account in 0..ACCOUNTS {
        open_account(&http, &service.url, &account_name(account)).await;
    }
    let mut acked = Vec::new();
    for n in 0..40 {
        let (account, id) = (n % ACCOUNTS, format!("before-{n}"));
        let (status, body) = deposit(&http, &service.url, &account_name(account), &id, 5)
            .await
            .expect("the server answers");
        assert_eq!(status, 200, "{body}");
        acked.push((account, id, 5));
    }
    service.stop();
    release_preallocation(&data.join("events"), true);
    release_preallocation(&data.join("snapshots"), true);
    tmpfs.resize(64);
    let filler = tmpfs.path().join("filler");
    fill(&filler, 0);

    let service = Service::try_start(&data, &[]).await.unwrap_or_else(|why| {
        panic!(
            "restarted on a full disk, the service must come up and serve reads; \
             it did not: {why}"
        )
    });
    check_accounts(&http, &service.url, &acked).await;
    let mut refused = false;
    for n in 0..10_000 {
        let (account, id) = (n % ACCOUNTS, format!("full-{n}"));
        let (status, body) = deposit(&http, &service.url, &account_name(account), &id, 1)
            .await
            .expect("the server answers");
        if status == 200 {
            // The last page of the segment may still hold a few events.
            acked.push((account, id, 1));
            continue;
        }
        assert_storage_full(status, &body);
        refused = true;
        break;
    }
    assert!(refused, "the full disk never refused a command");
    check_accounts(&http, &service.url, &acked).await;
    let status = service.terminate();
    eprintln!("full disk: shutdown on a full disk: {status}");
    std::fs::remove_file(&filler).expect("delete the filler");
    assert_verify_passes(&data);
    let service = Service::start(&data, &[]).await;
    check_accounts(&http, &service.url, &acked).await;
    service.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_on_a_full_disk_leaves_a_log_that_verifies_clean() {
    let Some(tmpfs) = mount_or_skip(300) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let http = reqwest::Client::new();
    let service = Service::start(&data, &[]).await;
    for account in 0..ACCOUNTS {
        open_account(&http, &service.url, &account_name(account)).await;
    }
    release_preallocation(&data.join("events"), false);
    release_preallocation(&data.join("snapshots"), false);
    tmpfs.resize(64);
    let filler = tmpfs.path().join("filler");
    fill(&filler, HEADROOM);
    let (acked, _) = load_until_full(&http, &service.url, ACCOUNTS, "fill").await;
    let status = service.terminate();
    assert!(status.success(), "SIGTERM on a full disk: {status}");
    std::fs::remove_file(&filler).expect("delete the filler");
    assert_verify_passes(&data);
    let service = Service::start(&data, &[]).await;
    check_accounts(&http, &service.url, &acked).await;
    service.stop();
}

/// Commands pipelined on one aggregate when the disk fills: an append in flight fails,
/// and the commands decided after it must still be answered 503 `storage-full` (never
/// another error), and none of them may be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_on_one_account_meet_a_full_disk_with_storage_full() {
    let Some(tmpfs) = mount_or_skip(300) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let http = reqwest::Client::new();
    let service = Service::start(&data, &[]).await;
    for account in 0..ACCOUNTS {
        open_account(&http, &service.url, &account_name(account)).await;
    }
    release_preallocation(&data.join("events"), false);
    release_preallocation(&data.join("snapshots"), false);
    tmpfs.resize(64);
    let filler = tmpfs.path().join("filler");
    let mut acked = Vec::new();
    for round in 0..3 {
        fill(&filler, HEADROOM / 4);
        let (mut round_acked, sent) =
            load_until_full(&http, &service.url, 1, &format!("round{round}")).await;
        eprintln!(
            "full disk, one account, round {round}: {} of {sent} acknowledged",
            round_acked.len()
        );
        acked.append(&mut round_acked);
        check_accounts(&http, &service.url, &acked).await;
        std::fs::remove_file(&filler).expect("delete the filler");
    }
    service.stop();
}
