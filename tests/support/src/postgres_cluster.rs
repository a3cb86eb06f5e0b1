//! A PostgreSQL primary and its synchronous streaming replica on loopback, for the
//! tests that lose a machine: the database fails over to the replica, and Tally's hosts
//! follow it through a connection string that names both nodes.
//!
//! - **Two places, two ports.** A node runs in one of two slots, each with a fixed
//!   loopback port and a name (its `cluster_name`, so the `application_name` it
//!   replicates under). Each slot's node names the other slot's node in
//!   `synchronous_standby_names`, with `synchronous_commit=on` and `wal_level=replica`:
//!   a commit on the primary waits until the replica has it.
//! - **Built as an operator would.** The primary comes from `initdb`, with a
//!   `replication` entry in `pg_hba.conf`; the replica from `pg_basebackup -R` of the
//!   primary. Both run as the `postgres` user when this runs as root, as the single
//!   server of [`crate::postgres`] does.
//! - **Losing the primary** ([`Cluster::lose_primary`]) stops every process of its node
//!   at once, then kills them all (SIGKILL) and deletes its directory: the machine is
//!   gone. [`Cluster::promote_replica`] promotes the replica (`pg_promote()`), as a
//!   failover tool would, and [`Cluster::rebuild_replica`] builds a new replica from the
//!   new primary in the lost node's slot. The roles swap between the two ports, so the
//!   connection string ([`Cluster::connection`]) stays the same.
//!
//! The nodes run with `fsync=off` (as the single server does): a lost node's processes
//! die, but the machine's page cache, where the replica keeps what it received, does
//! not. A node's directory is removed when the cluster is dropped, or by a watchdog when
//! the test process dies without dropping it. Without PostgreSQL, [`Cluster::start`]
//! fails the test under `CI=true` and elsewhere says loudly that it skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Rng;
use crate::env::clock_seed;
use crate::postgres::{
    RunAs, USER, binaries_or_skip, command, connect, init, run_as, run_detached, spawn, wait_ready,
};

/// The database the hosts share.
const DATABASE: &str = "tally";
/// The lowest port tried for a node.
const LOWEST_PORT: u16 = 10_000;
/// How long a replica may take to become the synchronous standby.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// A primary and its synchronous replica, each in a slot of its own.
pub struct Cluster {
    bin: PathBuf,
    user: Option<RunAs>,
    /// The temporary directory of every node's directory.
    root: PathBuf,
    slots: [Slot; 2],
    /// The slot of the primary; the other holds the replica (none just after a failover).
    primary: usize,
    /// Nodes built so far: each node's directory is named by its number.
    built: u32,
}

/// A place a node runs in.
struct Slot {
    /// The `cluster_name` of its node: the replica's `application_name`.
    name: &'static str,
    /// Its loopback port, the same for every node built in it.
    port: u16,
    node: Option<Node>,
}

/// A running node.
struct Node {
    postmaster: Child,
    /// Its data (`data`), socket and log (`postgres.log`).
    dir: PathBuf,
}

impl Cluster {
    /// A primary, its synchronous replica and the database `tally` on it; `None`
    /// (after saying so) when PostgreSQL is not installed and this is not CI.
    pub async fn start() -> Option<Cluster> {
        let bin = binaries_or_skip()?;
        let user = run_as();
        let root = tempfile::Builder::new()
            .prefix("tally-pg-cluster-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        hand_over(&root, user);
        watchdog(&root);
        let [first, second] = free_ports_outside_the_ephemeral_range();
        let mut cluster = Cluster {
            bin,
            user,
            root,
            slots: [Slot::new("tally_a", first), Slot::new("tally_b", second)],
            primary: 0,
            built: 0,
        };
        cluster.init_primary().await;
        cluster.rebuild_replica().await;
        cluster.create_database().await;
        Some(cluster)
    }

    /// The connection string of the database on whichever node is the primary: both
    /// ports, `target_session_attrs=read-write`.
    pub fn connection(&self) -> String {
        let [first, second] = [self.slots[0].port, self.slots[1].port];
        format!(
            "host=127.0.0.1,127.0.0.1 port={first},{second} user={USER} dbname={DATABASE} \
             target_session_attrs=read-write"
        )
    }

    /// The primary's port.
    pub fn primary_port(&self) -> u16 {
        self.slots[self.primary].port
    }

    /// The replica's port (where the next one is built, just after a failover).
    pub fn replica_port(&self) -> u16 {
        self.slots[self.replica()].port
    }

    /// Loses the primary, promotes the replica and builds a new replica from it.
    pub async fn fail_over(&mut self) {
        self.lose_primary().await;
        self.promote_replica().await;
        self.rebuild_replica().await;
    }

    /// Loses the primary's machine: every process of its node stopped at once, then
    /// killed (SIGKILL), and its directory deleted.
    pub async fn lose_primary(&mut self) {
        let node = self.slots[self.primary]
            .node
            .take()
            .expect("a primary to lose");
        blocking(move || {
            let Node {
                mut postmaster,
                dir,
            } = node;
            kill_at_once(&mut postmaster);
            std::fs::remove_dir_all(&dir).expect("delete the lost node");
        })
        .await;
    }

    /// Promotes the replica (`pg_promote()`, waiting until it is done): it becomes the
    /// primary, with no replica until [`Cluster::rebuild_replica`].
    pub async fn promote_replica(&mut self) {
        let replica = self.replica();
        let admin = connect(&admin_connection(self.slots[replica].port)).await;
        let row = admin
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .expect("pg_promote()");
        let promoted: bool = row.get(0);
        assert!(promoted, "the replica was not promoted:\n{}", self.logs());
        self.primary = replica;
    }

    /// Builds a replica of the primary (`pg_basebackup -R`) in the empty slot, starts
    /// it and waits until it is the primary's synchronous standby.
    pub async fn rebuild_replica(&mut self) {
        let replica = self.replica();
        assert!(
            self.slots[replica].node.is_none(),
            "the replica's slot is taken"
        );
        let dir = self.new_node_dir(replica);
        let (bin, user, port) = (self.bin.clone(), self.user, self.primary_port());
        let backup_dir = dir.clone();
        blocking(move || base_backup(&bin, port, &backup_dir, user)).await;
        self.start_node(replica, dir).await;
        self.wait_until_synchronous(replica).await;
    }

    /// The slot of the replica.
    fn replica(&self) -> usize {
        1 - self.primary
    }

    /// The first primary: a new database cluster that allows replication.
    async fn init_primary(&mut self) {
        let dir = self.new_node_dir(self.primary);
        let (bin, user, init_dir) = (self.bin.clone(), self.user, dir.clone());
        blocking(move || {
            init(&bin, &init_dir, user);
            allow_replication(&init_dir.join("data"));
        })
        .await;
        self.start_node(self.primary, dir).await;
    }

    /// Starts the node of `dir` in `slot` and waits until it accepts connections.
    async fn start_node(&mut self, slot: usize, dir: PathBuf) {
        let settings = self.settings(slot);
        let (bin, user, port, node_dir) = (self.bin.clone(), self.user, self.slots[slot].port, dir);
        let node = blocking(move || {
            let mut postmaster = spawn(&bin, &node_dir, port, user, &settings);
            if !wait_ready(&bin, port, &mut postmaster) {
                let _ = postmaster.kill();
                panic!(
                    "the node on port {port} did not start; its log:\n{}",
                    log_of(&node_dir)
                );
            }
            Node {
                postmaster,
                dir: node_dir,
            }
        })
        .await;
        self.slots[slot].node = Some(node);
    }

    /// The settings of a node in `slot`: its name, and the other slot's node as its
    /// synchronous standby.
    fn settings(&self, slot: usize) -> Vec<String> {
        vec![
            format!("cluster_name={}", self.slots[slot].name),
            format!("synchronous_standby_names={}", self.slots[1 - slot].name),
            "synchronous_commit=on".into(),
            "wal_level=replica".into(),
            "max_wal_senders=4".into(),
            "hot_standby=on".into(),
        ]
    }

    /// Waits until the node of `slot` streams to the primary as its synchronous standby.
    async fn wait_until_synchronous(&self, slot: usize) {
        let admin = connect(&admin_connection(self.primary_port())).await;
        let name = self.slots[slot].name;
        let started = Instant::now();
        loop {
            let rows = admin
                .query(
                    "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 \
                     AND state = 'streaming' AND sync_state = 'sync'",
                    &[&name],
                )
                .await
                .expect("read pg_stat_replication");
            if !rows.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < SYNC_TIMEOUT,
                "{name} never became the synchronous standby:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates the database the hosts share, on the primary (so on the replica too).
    async fn create_database(&self) {
        let admin = connect(&admin_connection(self.primary_port())).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .expect("CREATE DATABASE");
    }

    /// A new, empty directory for the next node of `slot`, owned by who runs the nodes.
    fn new_node_dir(&mut self, slot: usize) -> PathBuf {
        self.built += 1;
        let dir = self
            .root
            .join(format!("{}-{}", self.slots[slot].name, self.built));
        std::fs::create_dir(&dir).expect("a node directory");
        hand_over(&dir, self.user);
        dir
    }

    /// The logs of the running nodes, for a failure's message.
    fn logs(&self) -> String {
        self.slots
            .iter()
            .filter_map(|slot| {
                let node = slot.node.as_ref()?;
                Some(format!("--- {}:\n{}", slot.name, log_of(&node.dir)))
            })
            .collect()
    }
}

impl Drop for Cluster {
    /// A fast shutdown of the running nodes; then every directory is removed.
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut node) = slot.node.take() {
                stop(&mut node.postmaster);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Slot {
    fn new(name: &'static str, port: u16) -> Slot {
        Slot {
            name,
            port,
            node: None,
        }
    }
}

/// The connection string of the `postgres` database on the node at `port`.
fn admin_connection(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user={USER} dbname=postgres")
}

/// Runs blocking work (processes, files) off the async workers; its panic is the
/// caller's.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Gives `dir` to who runs the nodes.
fn hand_over(dir: &Path, user: Option<RunAs>) {
    if let Some(user) = user {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).expect("chown");
    }
}

/// Lets [`USER`] connect for replication from loopback, without a password.
fn allow_replication(data: &Path) {
    use std::io::Write;
    let mut hba = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("pg_hba.conf"))
        .expect("open pg_hba.conf");
    writeln!(hba, "host replication {USER} 127.0.0.1/32 trust").expect("write pg_hba.conf");
}

/// A copy of the primary at `port` in `dir/data` that replicates from it
/// (`pg_basebackup -R`: `standby.signal` and `primary_conninfo`).
fn base_backup(bin: &Path, port: u16, dir: &Path, user: Option<RunAs>) {
    let output = command(bin.join("pg_basebackup"), user)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .expect("run pg_basebackup");
    assert!(
        output.status.success(),
        "pg_basebackup failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two loopback ports free now, below the range the system takes ephemeral ports
/// from: a node's port must stay free while its slot waits for a new node, and every
/// outgoing connection and `:0` listener (the hosts' too) takes an ephemeral port.
fn free_ports_outside_the_ephemeral_range() -> [u16; 2] {
    let ephemeral = first_ephemeral_port();
    assert!(
        ephemeral > LOWEST_PORT + 100,
        "the ephemeral ports start at {ephemeral}: no room below them"
    );
    let mut rng = Rng::new(clock_seed() ^ u64::from(std::process::id()));
    let mut ports = Vec::new();
    for _ in 0..1000 {
        let port = rng.range(u64::from(LOWEST_PORT), u64::from(ephemeral) - 1) as u16;
        if !ports.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
        if let [first, second] = ports[..] {
            return [first, second];
        }
    }
    panic!("no two free ports between {LOWEST_PORT} and {ephemeral}");
}

/// The first port of the system's ephemeral range (Linux's default when unknown).
fn first_ephemeral_port() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Stops the postmaster and every process it started, all at once (SIGSTOP: none of
/// them runs another instruction, the postmaster starts no other), then kills them
/// (SIGKILL) and waits until none is left: what losing its machine does to a node.
fn kill_at_once(postmaster: &mut Child) {
    let pid = i32::try_from(postmaster.id()).expect("a pid");
    send(pid, libc::SIGSTOP);
    let children = children_of(pid);
    for &child in &children {
        send(child, libc::SIGSTOP);
    }
    send(pid, libc::SIGKILL);
    for &child in &children {
        send(child, libc::SIGKILL);
    }
    postmaster.wait().expect("reap the postmaster");
    for child in children {
        wait_until_dead(child);
    }
}

fn send(pid: i32, signal: i32) {
    // SAFETY: sends a signal to a process of the node; no memory is involved.
    unsafe { libc::kill(pid, signal) };
}

/// The processes whose parent is `parent` (from `/proc`).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| parent_and_state(pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect()
}

/// The parent and the state letter of process `pid`, from `/proc/<pid>/stat`.
fn parent_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (name) state ppid ...`; the name may hold spaces and parentheses.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state))
}

/// Waits until process `pid` is gone or a zombie (its sockets closed).
fn wait_until_dead(pid: i32) {
    let started = Instant::now();
    while parent_and_state(pid).is_some_and(|(_, state)| state != 'Z') {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "process {pid} of a lost node lives on"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fast shutdown (SIGINT), waited for; SIGKILL if it takes too long.
fn stop(postmaster: &mut Child) {
    let pid = i32::try_from(postmaster.id()).expect("a pid");
    send(pid, libc::SIGINT);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if postmaster.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = postmaster.kill();
    let _ = postmaster.wait();
}

/// The log of the node in `dir`.
fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
}

/// Stops the nodes and removes `root` if this process dies without dropping the
/// cluster (killed): a shell that waits for this process to end, then sends a fast
/// shutdown to every postmaster with a pid file under `root` (a lost node's directory
/// is deleted with it) and removes `root`.
fn watchdog(root: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         pids=''; \
         for pidfile in '{root}'/*/data/postmaster.pid; do \
           [ -f \"$pidfile\" ] && pids=\"$pids $(head -n 1 \"$pidfile\")\"; \
         done; \
         for pid in $pids; do kill -INT $pid 2>/dev/null; done; \
         for pid in $pids; do \
           for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done; \
         done; \
         rm -rf '{root}'",
        me = std::process::id(),
        root = root.display(),
    );
    run_detached(&script);
}
