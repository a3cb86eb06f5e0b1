//! The harness of a crash test: a `harness = false` test binary that is its own child.
//!
//! The parent starts the binary again as a child process, which works on a directory
//! and prints a line to stdout for every acknowledged write; once the child has
//! acknowledged its first write, the parent kills it with SIGKILL at a random moment,
//! hands the lines to the test, which reopens the directory and checks it. That makes
//! a round; the next child works on the same directory.
//!
//! Environment, for a test with prefix `P`: `P_ROUNDS` (default 20) and `P_SEED`
//! (default from the clock; printed, so that the kill timing of a failure can be
//! replayed); between parent and child, `P_CHILD` (the directory) and `P_ROUND`.
//!
//! The last line says `<name>: 1 passed, 0 failed` or `<name>: 0 passed, 1 failed`
//! (CI sums these lines); a failure exits with status 1.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::env::clock_seed;
use crate::{Rng, env_number};

/// Rounds when `P_ROUNDS` is not set.
const DEFAULT_ROUNDS: u64 = 20;

/// The kill comes up to this long after the child's first acknowledgement.
const MAX_KILL_DELAY_MS: u64 = 300;

/// How long a child may take to acknowledge its first write (it first recovers).
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a child's tasks send their acknowledgement lines.
pub type Acks = UnboundedSender<String>;

/// A crash test: its name and the prefix of its environment variables.
#[derive(Debug, Clone, Copy)]
pub struct CrashTest {
    /// The name in the first and last lines of the output (`crash`, `store crash`).
    pub name: &'static str,
    /// The prefix `P` of the environment variables (`TALLY_WAL_CRASH`).
    pub env_prefix: &'static str,
}

impl CrashTest {
    /// The test binary's `main`. In a child: `child(dir, round)`, which works on `dir`
    /// and prints its acknowledgements until it is killed. In the parent: `parent`, which
    /// runs the rounds with [`CrashRounds::kill_child`] and checks the directory after
    /// each; a panic fails the test.
    pub fn main(&self, child: fn(&Path, u64), parent: fn(&mut CrashRounds)) {
        match std::env::var(self.var("CHILD")) {
            Ok(dir) => child(Path::new(&dir), env_number(&self.var("ROUND"), 0)),
            Err(_) => self.run_parent(parent),
        }
    }

    /// Runs `parent` over the configured rounds and prints the closing line.
    fn run_parent(&self, parent: fn(&mut CrashRounds)) {
        let rounds = env_number(&self.var("ROUNDS"), DEFAULT_ROUNDS);
        let seed = env_number(&self.var("SEED"), clock_seed());
        println!(
            "{} test: {rounds} rounds, seed {seed} ({}={seed} replays the kill timing)",
            self.name,
            self.var("SEED")
        );
        let passed =
            std::panic::catch_unwind(|| parent(&mut CrashRounds::new(self, rounds, seed))).is_ok();
        self.report(passed, seed);
    }

    /// Prints the closing line; exits with status 1 on a failure.
    fn report(&self, passed: bool, seed: u64) {
        if passed {
            println!("{}: 1 passed, 0 failed", self.name);
        } else {
            println!("{}: 0 passed, 1 failed (seed {seed})", self.name);
            std::process::exit(1);
        }
    }

    /// The environment variable `<prefix>_<suffix>`.
    fn var(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.env_prefix)
    }
}

/// The parent's side: the directory the children work on, and the seeded kill moments.
pub struct CrashRounds {
    dir: tempfile::TempDir,
    rng: Rng,
    rounds: u64,
    test: CrashTest,
}

/// What a killed child left behind.
#[derive(Debug)]
pub struct KilledChild {
    /// Every line it printed; the last one may be cut short by the kill.
    pub lines: Vec<String>,
    /// How long after its first acknowledgement it was killed.
    pub after_first_ack: Duration,
}

impl CrashRounds {
    fn new(test: &CrashTest, rounds: u64, seed: u64) -> CrashRounds {
        CrashRounds {
            dir: tempfile::tempdir().unwrap(),
            rng: Rng::new(seed),
            rounds,
            test: *test,
        }
    }

    /// The directory every child works on.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How many rounds to run.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Starts a child for `round`, kills it with SIGKILL at a random moment after its
    /// first acknowledgement, and returns what it printed.
    pub fn kill_child(&mut self, round: u64) -> KilledChild {
        let delay = Duration::from_millis(self.rng.below(MAX_KILL_DELAY_MS));
        let mut child = self.spawn_child(round);
        let (first_ack, lines) = read_lines(child.stdout.take().unwrap());
        first_ack
            .recv_timeout(FIRST_ACK_TIMEOUT)
            .expect("the child acknowledged an append");
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        KilledChild {
            lines: lines.join().unwrap(),
            after_first_ack: started.elapsed(),
        }
    }

    /// This test binary again, as the child of `round`, its stdout piped.
    fn spawn_child(&self, round: u64) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .env(self.test.var("CHILD"), self.dir())
            .env(self.test.var("ROUND"), round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }
}

/// Reads `stdout` to its end on a thread: signals the first line, returns them all.
fn read_lines(stdout: ChildStdout) -> (mpsc::Receiver<()>, JoinHandle<Vec<String>>) {
    let (first_line, first_line_seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.push(line);
            if lines.len() == 1 {
                let _ = first_line.send(());
            }
        }
        lines
    });
    (first_line_seen, reader)
}

/// The child's side: spawns `task(n, acks)` for `n` in `0..tasks` and prints every
/// line they send on `acks` to stdout, each flushed at once so that the parent has
/// it before the kill. Returns when every task has ended.
pub async fn run_tasks<F, Fut>(tasks: u64, task: F)
where
    F: Fn(u64, Acks) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (acks, printed) = unbounded_channel();
    for n in 0..tasks {
        tokio::spawn(task(n, acks.clone()));
    }
    drop(acks);
    print_lines(printed).await;
}

/// Prints every line received to stdout, flushing each.
async fn print_lines(mut lines: UnboundedReceiver<String>) {
    let mut stdout = std::io::stdout().lock();
    while let Some(line) = lines.recv().await {
        writeln!(stdout, "{line}").unwrap();
        stdout.flush().unwrap();
    }
}
