//! `tally-bench fanout`: what live subscribers (`GET /v1/subscribe`, Server-Sent Events)
//! cost commands and the service. The service runs in a child process (this executable
//! with `--serve-child`), so that the memory and threads measured are the service's own;
//! the load and the subscribers run here, on the same machine.
//!
//! | key | what |
//! |---|---|
//! | `fanout_subscribers` | live subscribers of the loaded round: 2,000 (200 with `--quick`) |
//! | `fanout_base_commands_per_s`, `fanout_base_p99_ms` | durable deposits over HTTP from [`CONNECTIONS`] connection(s) with no subscriber |
//! | `fanout_live_commands_per_s`, `fanout_live_p99_ms` | the same load with the subscribers connected, each reading every event |
//! | `fanout_rate_ratio` | live / base rate. Target: at least 0.75 |
//! | `fanout_deliveries_per_s` | the live rate times the subscribers: events written to clients per second |
//! | `fanout_base_rss_mib`, `fanout_live_rss_mib`, `fanout_rss_added_mib` | the service's peak resident memory during each round (sampled), and the difference. Target for the difference: under 200 MiB |
//! | `fanout_base_threads`, `fanout_live_threads` | the service's peak thread count during each round |
//! | `fanout_delivered_events` | events the subscribers received in all, each checked: every position from where it started to the log's end once, in order |
//! | `fanout_catch_up_subscribers` | subscribers that then read the whole log from position 0 at once: 500 (50 with `--quick`) |
//! | `fanout_catch_up_events`, `fanout_catch_up_s` | the log's events each of them read, and the time until the last one had all |
//! | `fanout_catch_up_peak_rss_mib`, `fanout_catch_up_threads` | the service's peak resident memory and threads meanwhile |

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tally_server::config::{ServeArgs, ServeConfig};
use tally_server::in_process::InProcessService;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::load::LoadResult;
use super::report::Report;
use super::{BenchOptions, Progress, http};

/// Connections of the command load: one, sending its next deposit when the last is
/// answered, so that the rate is bound by a command's latency (mostly its fsync), as for
/// an application that sends commands one after another; what the subscribers take from
/// the CPU shows as added latency. With more connections the rate is higher and every
/// event goes to every subscriber: on the reference VM, 2,000 subscribers on the same two
/// cores as the service then bound the rate by the bytes they are sent (docs/BENCHMARKS.md).
pub const CONNECTIONS: usize = 1;

/// How long the suite waits for the subscribers to connect, or to receive the last event.
const PATIENCE: Duration = Duration::from_secs(120);

/// How often the service's memory and threads are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Subscribers connecting at once (the listener's backlog is finite).
const CONNECTING_AT_ONCE: usize = 64;

/// Sizes of a run.
struct Sizes {
    live_subscribers: usize,
    catch_up_subscribers: usize,
}

impl Sizes {
    fn of(options: &BenchOptions) -> Sizes {
        if options.quick {
            Sizes {
                live_subscribers: 200,
                catch_up_subscribers: 50,
            }
        } else {
            Sizes {
                live_subscribers: 2_000,
                catch_up_subscribers: 500,
            }
        }
    }
}

/// Runs the suite.
pub async fn run(options: &BenchOptions, progress: &Progress) -> anyhow::Result<Report> {
    let sizes = Sizes::of(options);
    raise_descriptor_limit()?;
    let work = options.work_dir("fanout")?;
    progress.set("fanout: starting the service in a child process");
    let mut service = ChildService::start(options, work.path()).await?;
    let measured = measure(options, progress, &sizes, &service).await;
    service.stop().await?;
    measured
}

/// Every round against a running service.
async fn measure(
    options: &BenchOptions,
    progress: &Progress,
    sizes: &Sizes,
    service: &ChildService,
) -> anyhow::Result<Report> {
    let address = service.address;
    let prefix = format!("fanout-{}", std::process::id());
    http::open_accounts(address, &prefix, progress).await?;
    let window = options.window();

    progress.set(&format!(
        "fanout: deposits from {CONNECTIONS} connection(s), no subscriber"
    ));
    let (base, base_usage) = service
        .sampled(http::deposits(address, &prefix, CONNECTIONS, window))
        .await;
    let base = base?;
    base.ensure_no_errors("deposits without subscribers")?;

    let live_from = end_position(address).await?;
    progress.set(&format!(
        "fanout: connecting {} subscribers",
        sizes.live_subscribers
    ));
    let live = Subscribers::connect(address, sizes.live_subscribers, live_from).await?;
    progress.set(&format!(
        "fanout: deposits from {CONNECTIONS} connection(s), {} subscribers",
        sizes.live_subscribers
    ));
    let (loaded, live_usage) = service
        .sampled(http::deposits(address, &prefix, CONNECTIONS, window))
        .await;
    let loaded = loaded?;
    loaded.ensure_no_errors("deposits with subscribers")?;
    let end = end_position(address).await?;
    progress.set("fanout: waiting for every subscriber to have every event");
    let delivered = live.finish(end).await?;

    progress.set(&format!(
        "fanout: {} subscribers catching up from 0",
        sizes.catch_up_subscribers
    ));
    let started = Instant::now();
    let (caught_up, catch_up_usage) = service
        .sampled(async {
            let subscribers = Subscribers::connect(address, sizes.catch_up_subscribers, 0).await?;
            subscribers.finish(end).await
        })
        .await;
    caught_up?;
    let catch_up = CatchUp {
        subscribers: sizes.catch_up_subscribers,
        events: end,
        seconds: started.elapsed().as_secs_f64(),
        usage: catch_up_usage,
    };
    let rounds = Rounds {
        base,
        base_usage,
        loaded,
        live_usage,
        subscribers: sizes.live_subscribers,
        delivered,
    };
    Ok(report(&rounds, &catch_up))
}

/// The service's log end (`GET /v1/events?limit=1`).
async fn end_position(address: SocketAddr) -> anyhow::Result<u64> {
    let url = format!("http://{address}/v1/events?limit=1");
    let body: serde_json::Value = reqwest::get(&url).await?.json().await?;
    body["end_position"]
        .as_u64()
        .with_context(|| format!("no end_position in {body}"))
}

/// Raises this process's soft limit of open files to the hard one: thousands of
/// subscribers need as many sockets here and in the service (which inherits the limit).
fn raise_descriptor_limit() -> anyhow::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(())
}

/// The service in a child process: `tally-bench fanout --serve-child DIR`.
struct ChildService {
    child: Child,
    pid: u32,
    address: SocketAddr,
}

impl ChildService {
    /// Starts the child with its data in `work` and bank-account v1 installed; returns
    /// once it serves.
    async fn start(options: &BenchOptions, work: &Path) -> anyhow::Result<ChildService> {
        let plugins = work.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        std::fs::copy(
            options.component("bank_account.wasm")?,
            plugins.join("bank_account.wasm"),
        )?;
        let exe = std::env::current_exe().context("finding the tally-bench executable")?;
        let mut command = Command::new(exe);
        command.args(["fanout", "--serve-child"]).arg(work);
        if let Some(dir) = &options.dir {
            command.arg("--dir").arg(dir);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the service's process")?;
        let pid = child.id().context("the child's pid")?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let address = line
            .trim()
            .parse()
            .with_context(|| format!("the child printed {line:?}, not an address"))?;
        Ok(ChildService {
            child,
            pid,
            address,
        })
    }

    /// Runs `work` while sampling the service's memory and threads; its output and the
    /// peaks.
    async fn sampled<T>(&self, work: impl Future<Output = T>) -> (T, Usage) {
        let done = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_until(self.pid, done.clone()));
        let output = work.await;
        done.store(true, Ordering::Relaxed);
        let usage = sampler.await.unwrap_or_default();
        (output, usage)
    }

    /// Closes the child's stdin (it then stops the service cleanly) and waits for it.
    async fn stop(&mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .context("the service's process did not stop")??;
        anyhow::ensure!(status.success(), "the service's process failed: {status}");
        Ok(())
    }
}

/// `tally-bench fanout --serve-child DIR` (in the child): the service on DIR with the
/// plugins of DIR/plugins; prints its address, serves until stdin closes.
pub async fn serve_child(options: &BenchOptions, dir: &Path) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(ServeArgs {
        data_dir: Some(dir.join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        plugins: Some(dir.join("plugins")),
        compile_cache: Some(options.compile_cache()),
        ..ServeArgs::default()
    })?;
    let service = InProcessService::start(config).await?;
    println!("{}", service.address());
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest)
    })
    .await??;
    service.stop().await
}

/// The service's peak memory and threads over a round.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    threads: u64,
}

/// Samples `/proc/<pid>/status` until `done`; the peaks.
async fn sample_until(pid: u32, done: Arc<AtomicBool>) -> Usage {
    let mut peak = Usage::default();
    loop {
        if let Some(now) = usage_of(pid) {
            peak.rss_kib = peak.rss_kib.max(now.rss_kib);
            peak.threads = peak.threads.max(now.threads);
        }
        if done.load(Ordering::Relaxed) {
            return peak;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// `VmRSS` and `Threads` of process `pid`.
fn usage_of(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
    })
}

/// SSE clients, each reading its stream on a task of its own.
struct Subscribers {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>,
    /// Where they stop: the log's end, once known (`u64::MAX` until then).
    until: Arc<AtomicU64>,
}

impl Subscribers {
    /// Connects `count` subscribers from position `from`; returns once every one has
    /// its response's headers.
    async fn connect(address: SocketAddr, count: usize, from: u64) -> anyhow::Result<Subscribers> {
        let until = Arc::new(AtomicU64::new(u64::MAX));
        let connected = Arc::new(AtomicUsize::new(0));
        let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
        let tasks = (0..count)
            .map(|_| {
                let (until, connected, connecting) =
                    (until.clone(), connected.clone(), connecting.clone());
                tokio::spawn(async move {
                    let permit = connecting.acquire_owned().await?;
                    let client = SseClient::connect(address, from).await?;
                    drop(permit);
                    connected.fetch_add(1, Ordering::Relaxed);
                    client.read_until(&until).await
                })
            })
            .collect::<Vec<_>>();
        let deadline = Instant::now() + PATIENCE;
        while connected.load(Ordering::Relaxed) < count {
            if let Some(failed) = tasks.iter().find(|task| task.is_finished()) {
                anyhow::bail!("a subscriber ended while connecting: {failed:?}");
            }
            anyhow::ensure!(Instant::now() < deadline, "subscribers did not connect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Subscribers { tasks, until })
    }

    /// Tells every subscriber the log ends at `end` and waits until each has read up to
    /// it; the events they received in all (each checked).
    async fn finish(self, end: u64) -> anyhow::Result<u64> {
        self.until.store(end, Ordering::Relaxed);
        let mut delivered = 0;
        for task in self.tasks {
            delivered += tokio::time::timeout(PATIENCE, task)
                .await
                .context("a subscriber did not receive every event")???;
        }
        Ok(delivered)
    }
}

/// A subscriber over a raw TCP connection: HTTP/1.1, a chunked body of SSE messages.
struct SseClient {
    stream: TcpStream,
    /// Body bytes read with the headers.
    leftover: Vec<u8>,
    body: ChunkedBody,
    events: SseIds,
}

impl SseClient {
    /// Subscribes from `from` and reads the response's headers (200 expected).
    async fn connect(address: SocketAddr, from: u64) -> anyhow::Result<SseClient> {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!(
            "GET /v1/subscribe?from_position={from} HTTP/1.1\r\nHost: {address}\r\n\
             Accept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        let body_start = loop {
            let read = stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "the service closed the connection");
            head.extend_from_slice(&buffer[..read]);
            if let Some(at) = memchr::memmem::find(&head, b"\r\n\r\n") {
                break at + 4;
            }
        };
        anyhow::ensure!(
            head.starts_with(b"HTTP/1.1 200"),
            "subscribing: {}",
            String::from_utf8_lossy(&head)
        );
        Ok(SseClient {
            stream,
            leftover: head.split_off(body_start),
            body: ChunkedBody::default(),
            events: SseIds::from(from),
        })
    }

    /// Reads messages until it has every position before `until` (once set); the
    /// number of events read. Fails on a gap or a duplicate.
    async fn read_until(mut self, until: &AtomicU64) -> anyhow::Result<u64> {
        let mut buffer = vec![0u8; 64 * 1024];
        let leftover = std::mem::take(&mut self.leftover);
        self.feed(&leftover)?;
        while self.events.next < until.load(Ordering::Relaxed) {
            let read = self.stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "the stream ended at {}", self.events.next);
            self.feed(&buffer[..read])?;
        }
        anyhow::ensure!(
            self.events.next == until.load(Ordering::Relaxed),
            "read past the end: {}",
            self.events.next
        );
        Ok(self.events.count)
    }

    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let events = &mut self.events;
        self.body.decode(bytes, |data| events.feed(data))
    }
}

/// Decodes `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
struct ChunkedBody {
    state: ChunkState,
}

#[derive(Debug)]
enum ChunkState {
    /// Reading a chunk's size line (hex digits, then CRLF): the size so far.
    Size { size: usize },
    /// `left` bytes of the chunk's data to go.
    Data { left: usize },
    /// The CRLF after a chunk's data.
    Crlf { left: usize },
}

impl Default for ChunkState {
    fn default() -> ChunkState {
        ChunkState::Size { size: 0 }
    }
}

impl ChunkedBody {
    /// Feeds `bytes` of the body; hands each piece of chunk data to `data`.
    fn decode(
        &mut self,
        mut bytes: &[u8],
        mut data: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while let Some(&byte) = bytes.first() {
            match &mut self.state {
                ChunkState::Size { size } => {
                    bytes = &bytes[1..];
                    match byte {
                        b'\r' => {}
                        b'\n' if *size == 0 => anyhow::bail!("the stream ended"),
                        b'\n' => self.state = ChunkState::Data { left: *size },
                        _ => {
                            let digit = (byte as char)
                                .to_digit(16)
                                .with_context(|| format!("chunk size byte {byte:#x}"))?;
                            *size = *size * 16 + digit as usize;
                        }
                    }
                }
                ChunkState::Data { left } => {
                    let take = (*left).min(bytes.len());
                    data(&bytes[..take])?;
                    bytes = &bytes[take..];
                    *left -= take;
                    if *left == 0 {
                        self.state = ChunkState::Crlf { left: 2 };
                    }
                }
                ChunkState::Crlf { left } => {
                    bytes = &bytes[1..];
                    *left -= 1;
                    if *left == 0 {
                        self.state = ChunkState::default();
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `id:` lines of an SSE stream, checked to be every position in order from where
/// the subscription started.
#[derive(Debug)]
struct SseIds {
    /// The position expected next.
    next: u64,
    count: u64,
    /// The start of the current line (enough to tell an `id:` line and read its number).
    line: Vec<u8>,
}

impl SseIds {
    fn from(position: u64) -> SseIds {
        SseIds {
            next: position,
            count: 0,
            line: Vec::with_capacity(32),
        }
    }

    /// Feeds message bytes.
    fn feed(&mut self, mut bytes: &[u8]) -> anyhow::Result<()> {
        while !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(at) => {
                    self.keep(&bytes[..at]);
                    self.end_line()?;
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.keep(bytes);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Keeps the first bytes of the current line.
    fn keep(&mut self, part: &[u8]) {
        let room = self.line.capacity() - self.line.len();
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) -> anyhow::Result<()> {
        if let Some(id) = self.line.strip_prefix(b"id: ") {
            let position: u64 = std::str::from_utf8(id)?.parse()?;
            anyhow::ensure!(
                position == self.next,
                "received position {position}, expected {}",
                self.next
            );
            self.next += 1;
            self.count += 1;
        }
        self.line.clear();
        Ok(())
    }
}

/// The two load rounds.
struct Rounds {
    base: LoadResult,
    base_usage: Usage,
    loaded: LoadResult,
    live_usage: Usage,
    subscribers: usize,
    delivered: u64,
}

/// The catch-up round.
struct CatchUp {
    subscribers: usize,
    events: u64,
    seconds: f64,
    usage: Usage,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures.
fn report(rounds: &Rounds, catch_up: &CatchUp) -> Report {
    let mut report = Report::default();
    let subscribers = rounds.subscribers;
    report.add(
        "fanout_subscribers",
        "live subscribers",
        subscribers as f64,
        "",
    );
    report.add(
        "fanout_base_commands_per_s",
        &format!("deposits ({CONNECTIONS} connection(s)), no subscriber"),
        rounds.base.per_second(),
        "/s",
    );
    report.add(
        "fanout_base_p99_ms",
        "  latency p99",
        rounds.base.percentile_ms(0.99),
        "ms",
    );
    report.add(
        "fanout_live_commands_per_s",
        &format!("deposits with {subscribers} subscribers"),
        rounds.loaded.per_second(),
        "/s",
    );
    report.add(
        "fanout_live_p99_ms",
        "  latency p99",
        rounds.loaded.percentile_ms(0.99),
        "ms",
    );
    report.add(
        "fanout_rate_ratio",
        "with / without subscribers (target >= 0.75)",
        rounds.loaded.per_second() / rounds.base.per_second().max(1e-9),
        "x",
    );
    report.add(
        "fanout_deliveries_per_s",
        "  events delivered per second, all subscribers",
        rounds.loaded.per_second() * subscribers as f64,
        "/s",
    );
    add_usage(&mut report, rounds);
    report.add(
        "fanout_delivered_events",
        "events delivered to the subscribers, all checked",
        rounds.delivered as f64,
        "",
    );
    add_catch_up(&mut report, catch_up);
    report
}

/// The service's memory and threads in the two rounds.
fn add_usage(report: &mut Report, rounds: &Rounds) {
    let (base, live) = (rounds.base_usage, rounds.live_usage);
    report.add(
        "fanout_base_rss_mib",
        "service RSS (peak), no subscriber",
        mib(base.rss_kib),
        "MiB",
    );
    report.add(
        "fanout_live_rss_mib",
        "service RSS (peak), with subscribers",
        mib(live.rss_kib),
        "MiB",
    );
    report.add(
        "fanout_rss_added_mib",
        "  added by the subscribers (target < 200)",
        mib(live.rss_kib.saturating_sub(base.rss_kib)),
        "MiB",
    );
    report.add(
        "fanout_base_threads",
        "service threads (peak), no subscriber",
        base.threads as f64,
        "",
    );
    report.add(
        "fanout_live_threads",
        "service threads (peak), with subscribers",
        live.threads as f64,
        "",
    );
}

/// The catch-up figures.
fn add_catch_up(report: &mut Report, catch_up: &CatchUp) {
    report.add(
        "fanout_catch_up_subscribers",
        "subscribers catching up from 0 at once",
        catch_up.subscribers as f64,
        "",
    );
    report.add(
        "fanout_catch_up_events",
        "  events each read",
        catch_up.events as f64,
        "",
    );
    report.add(
        "fanout_catch_up_s",
        "  time until all had all",
        catch_up.seconds,
        "s",
    );
    report.add(
        "fanout_catch_up_peak_rss_mib",
        "  service RSS (peak)",
        mib(catch_up.usage.rss_kib),
        "MiB",
    );
    report.add(
        "fanout_catch_up_threads",
        "  service threads (peak)",
        catch_up.usage.threads as f64,
        "",
    );
}
