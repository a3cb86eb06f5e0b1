//! The PostgreSQL server of a test binary: one for all its tests, started at the
//! first test that asks, from Debian's binaries (`/usr/lib/postgresql/<major>/bin`, or
//! the directory in `TALLY_PG_BIN`), in a temporary directory, on a free loopback port;
//! stopped when the binary exits. Each test gets a database of its own.
//!
//! As root the server runs as the `postgres` user (PostgreSQL refuses to run as root),
//! which owns the temporary directory. Without PostgreSQL a test fails under `CI=true`
//! and elsewhere says loudly that it skipped.
//!
//! The server runs with `fsync=off`: the tests check what is visible and in which order,
//! not what survives a power cut, and it saves the 2-core CI time.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The superuser the tests connect as.
pub(crate) const USER: &str = "tally";

/// The running server.
pub struct TestServer {
    port: u16,
    next_database: AtomicU32,
}

/// A database of one test.
pub struct TestDatabase {
    /// Its connection string.
    pub connection: String,
}

impl TestDatabase {
    /// A plain connection to this database (its driver runs on a task).
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.connection).await
    }
}

static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
/// The postmaster's process id, for the stop at exit.
static POSTMASTER: AtomicI32 = AtomicI32::new(0);
/// The temporary directory, removed at exit.
static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();

/// A fresh database on this binary's server; `None` (after saying so) when PostgreSQL is
/// not installed and this is not CI.
pub async fn database() -> Option<TestDatabase> {
    let server = SERVER.get_or_init(start_or_skip).as_ref()?;
    let number = server.next_database.fetch_add(1, Ordering::Relaxed);
    let name = format!("test_{number}");
    let admin = connect(&server.connection("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    Some(TestDatabase {
        connection: server.connection(&name),
    })
}

impl TestServer {
    fn connection(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} dbname={database}",
            self.port
        )
    }
}

/// A plain connection (its driver runs on a task).
pub async fn connect(connection: &str) -> tokio_postgres::Client {
    let (client, driver) = tokio_postgres::connect(connection, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {connection}: {e}"));
    tokio::spawn(driver);
    client
}

fn start_or_skip() -> Option<TestServer> {
    binaries_or_skip().map(|bin| start(&bin))
}

/// The directory of PostgreSQL's binaries; `None` (after saying so loudly) when
/// PostgreSQL is not installed and this is not CI, where its absence fails the test.
pub(crate) fn binaries_or_skip() -> Option<PathBuf> {
    match binaries() {
        Some(bin) => Some(bin),
        None if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): \
             `make setup` installs it"
        ),
        None => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL is not installed: the PostgreSQL store's tests did not run.\n\
                 *** Install it with `make setup` (apt-get install postgresql).\n"
            );
            None
        }
    }
}

/// The directory of `initdb` and `postgres`: `TALLY_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<major>/bin`.
fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TALLY_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("postgres").exists().then_some(dir);
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

/// Who runs the server: the `postgres` user when this runs as root.
#[derive(Clone, Copy)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

pub(crate) fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            output.status.success(),
            "running as root needs the `postgres` user (Debian's postgresql package creates it)"
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    Some(RunAs {
        uid: id("-u"),
        gid: id("-g"),
    })
}

/// `program`, to be run as `user` (or as this process's user).
pub(crate) fn command(program: PathBuf, user: Option<RunAs>) -> Command {
    let mut command = Command::new(program);
    if let Some(user) = user {
        use std::os::unix::process::CommandExt;
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// Starts a server (a few tries: the free port found may be taken meanwhile).
fn start(bin: &Path) -> TestServer {
    let user = run_as();
    let dir = tempfile::Builder::new()
        .prefix("tally-pg-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    if let Some(user) = user {
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown");
    }
    let _ = DIRECTORY.set(dir.clone());
    init(bin, &dir, user);
    for _ in 0..3 {
        let port = free_port();
        let mut postmaster = spawn(bin, &dir, port, user, &[]);
        if wait_ready(bin, port, &mut postmaster) {
            let pid = i32::try_from(postmaster.id()).expect("a pid");
            POSTMASTER.store(pid, Ordering::SeqCst);
            // SAFETY: registers a function with no arguments that is safe to call at exit.
            unsafe { libc::atexit(stop_at_exit) };
            watchdog(pid, &dir);
            return TestServer {
                port,
                next_database: AtomicU32::new(0),
            };
        }
    }
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    panic!("the test PostgreSQL did not start; its log:\n{log}");
}

/// A new database cluster in `dir/data`, whose superuser is [`USER`], trusted.
pub(crate) fn init(bin: &Path, dir: &Path, user: Option<RunAs>) {
    let output = command(bin.join("initdb"), user)
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

/// The postmaster of `dir/data` on loopback port `port`, its socket in `dir`, its log
/// in `dir/postgres.log`, with `settings` (`name=value`) on top of the tests' own.
pub(crate) fn spawn(
    bin: &Path,
    dir: &Path,
    port: u16,
    user: Option<RunAs>,
    settings: &[String],
) -> Child {
    let log = File::create(dir.join("postgres.log")).expect("the server's log");
    let log_err = log.try_clone().expect("the log again");
    command(bin.join("postgres"), user)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
        .args(settings.iter().flat_map(|setting| ["-c", setting]))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .expect("start postgres")
}

/// Waits until the server accepts connections; `false` if it exited.
pub(crate) fn wait_ready(bin: &Path, port: u16, postmaster: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if postmaster.try_wait().ok().flatten().is_some() {
            return false;
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = postmaster.kill();
    false
}

/// Stops the server if this process dies without running `atexit` (killed): a shell
/// that waits for this process to end, then stops the server and removes its directory.
fn watchdog(postmaster: i32, dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         kill -INT {postmaster} 2>/dev/null; \
         for _ in $(seq 50); do kill -0 {postmaster} 2>/dev/null || break; sleep 0.2; done; \
         rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display(),
    );
    run_detached(&script);
}

/// Runs the shell `script` in the background, detached from this process's output:
/// it outlives this process if this process is killed.
pub(crate) fn run_detached(script: &str) {
    let _ = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// At exit: a fast shutdown of the server, then its directory removed.
extern "C" fn stop_at_exit() {
    let pid = POSTMASTER.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: signals and reaps our own child process.
        unsafe {
            libc::kill(pid, libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut status = 0;
            while libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    if let Some(dir) = DIRECTORY.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
