//! An HTTP fuzzer against one real server: a seeded generator of raw HTTP/1.1 requests
//! (written to a `TcpStream`, so malformed ones can be expressed too): random methods;
//! valid routes with random or mutated segments, percent-encoding, very long ids, `..`
//! and unicode; query strings; headers (content-type variants, `Idempotency-Key`,
//! `Last-Event-ID`, `Authorization`, junk, oversized); bodies (valid commands, mutated
//! JSON, random bytes, deep nesting, oversized, empty); for bank-account and unknown
//! types; sent over 8 connections at once.
//!
//! Asserted: no answer is a 5xx other than 503 `storage-full` or 500 `plugin-*`; every
//! well-framed request gets an answer (a handler panic would drop the connection); the
//! events appended during the run are exactly those that 200 command answers reported
//! (by position: nothing appended for a rejected request, nothing appended twice); the
//! process is alive at the end, answers `/healthz` and `/readyz`, still executes a
//! command, and never logged a panic.
//!
//! `TALLY_FUZZ_REQUESTS` (default 10,000) sets the count, `TALLY_FUZZ_SEED` the seed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Rng, Service, bank, env_number, seed_from_env};

/// Concurrent connections.
const CONNECTIONS: u64 = 8;
/// The admin token of the fuzzed service.
const TOKEN: &str = "fuzz-token-0123456789";
/// Accounts opened before the run (`f0`..`f7`).
const ACCOUNTS: u64 = 8;
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a request that may go unanswered (broken framing): the server
/// may wait for the rest of it.
const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests slower than this are printed.
const SLOW: Duration = Duration::from_secs(3);

/// A generated request.
struct Request {
    bytes: Vec<u8>,
    /// Broken framing or syntax: the server may close the connection without an answer.
    may_go_unanswered: bool,
    /// The request is written in full before the answer is read (else the write side
    /// is shut after it, which tells the server the body ends early).
    half_close: bool,
}

/// What came back.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// What the run saw, shared by the connections.
#[derive(Default)]
struct Findings {
    /// Positions reported by 200 command answers that were not duplicates.
    appended: BTreeSet<u64>,
    /// 2xx answers to admin POSTs (they may append to the plugin registry).
    admin_successes: u64,
    /// Answers by status class (1xx..5xx) and unanswered requests.
    by_class: [u64; 6],
    /// `plugin-*` 500s (allowed, but worth knowing).
    plugin_errors: u64,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_http_requests_never_crash_never_5xx_and_never_append_when_rejected() {
    let seed = seed_from_env("TALLY_FUZZ_SEED");
    let total = env_number("TALLY_FUZZ_REQUESTS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &["--admin-token", TOKEN]).await;
    for account in 0..ACCOUNTS {
        let (status, body) = service
            .command(
                "bank-account",
                &format!("f{account}"),
                bank("OpenAccount", json!({"initial_balance": 1_000_000})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let start_end = service.end_position().await;
    let address = service.url.trim_start_matches("http://").to_owned();
    let findings = Arc::new(Mutex::new(Findings::default()));
    let started = Instant::now();
    let mut connections = Vec::new();
    for connection in 0..CONNECTIONS {
        let (address, findings) = (address.clone(), findings.clone());
        connections.push(tokio::spawn(async move {
            let mut index = connection;
            while index < total {
                let mut rng = Rng::new(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
                let request = generate(&mut rng);
                let sent = Instant::now();
                let answer = send(&address, &request).await;
                if sent.elapsed() > SLOW {
                    let text = String::from_utf8_lossy(&request.bytes);
                    let cut: String = text.chars().take(200).collect();
                    eprintln!(
                        "fuzz: request #{index} took {:.1?}: {cut:?}",
                        sent.elapsed()
                    );
                }
                judge(index, &request, answer, &findings);
                index += CONNECTIONS;
            }
        }));
    }
    for connection in connections {
        connection.await.expect("a fuzz connection failed");
    }
    let elapsed = started.elapsed();

    assert!(service.is_running(), "the service died");
    for path in ["/healthz", "/readyz"] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let findings = std::mem::take(&mut *findings.lock().unwrap());
    eprintln!(
        "fuzz: {total} requests in {elapsed:.1?} (seed {seed}); answers 1xx..5xx {:?}, \
         unanswered {}, plugin errors {}, commands appended {} events, admin successes {}",
        &findings.by_class[1..],
        findings.by_class[0],
        findings.plugin_errors,
        findings.appended.len(),
        findings.admin_successes
    );
    assert!(
        findings.failures.is_empty(),
        "{} failures (seed {seed}), the first ones:\n{}",
        findings.failures.len(),
        findings.failures.join("\n")
    );

    // The log holds exactly what the 200 answers reported.
    let end = service.end_position().await;
    let mut from = start_end;
    let mut logged = BTreeSet::new();
    while from < end {
        let (status, page) = service
            .get(&format!("/v1/events?from_position={from}&limit=1000"))
            .await;
        assert_eq!(status, 200, "{page}");
        for event in page["events"].as_array().expect("events") {
            let position = event["position"].as_u64().expect("position");
            let registry = event["aggregate_type"] == tally_runtime::Runtime::REGISTRY_TYPE;
            if !(registry && findings.admin_successes > 0) {
                logged.insert(position);
            }
        }
        from = page["next_from_position"].as_u64().expect("next");
    }
    assert_eq!(
        logged, findings.appended,
        "the events appended during the run are not exactly those acknowledged"
    );

    let (status, body) = service
        .command("bank-account", "f0", bank("Deposit", json!({"amount": 1})))
        .await;
    assert_eq!(status, 200, "{body}");
    let log = service.log.lock().unwrap().clone();
    assert!(
        !log.contains("panicked"),
        "the service logged a panic:\n{log}"
    );
    service.stop();
}

/// Records the answer and any broken invariant.
fn judge(
    index: u64,
    request: &Request,
    answer: Result<Option<Answer>, String>,
    findings: &Mutex<Findings>,
) {
    let mut findings = findings.lock().unwrap();
    let describe = || {
        let text = String::from_utf8_lossy(&request.bytes);
        let cut: String = text.chars().take(300).collect();
        format!("request #{index} ({} bytes): {cut:?}", request.bytes.len())
    };
    let answer = match answer {
        Ok(Some(answer)) => answer,
        Ok(None) | Err(_) if request.may_go_unanswered => {
            findings.by_class[0] += 1;
            return;
        }
        Ok(None) => {
            findings.by_class[0] += 1;
            let failure = format!("no answer to {}", describe());
            findings.failures.push(failure);
            return;
        }
        Err(error) => {
            findings.by_class[0] += 1;
            let failure = format!("{error} for {}", describe());
            findings.failures.push(failure);
            return;
        }
    };
    findings.by_class[(answer.status / 100).min(5) as usize] += 1;
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or_default();
    if answer.status >= 500 {
        if answer.status == 500 && code.starts_with("plugin-") {
            findings.plugin_errors += 1;
        } else if !(answer.status == 503 && code == "storage-full") {
            let failure = format!(
                "{} {} for {}",
                answer.status,
                String::from_utf8_lossy(&answer.body),
                describe()
            );
            findings.failures.push(failure);
        }
    }
    let post = request.bytes.starts_with(b"POST ");
    if (200..300).contains(&answer.status) && post {
        if request.bytes.starts_with(b"POST /v1/plugins") {
            findings.admin_successes += 1;
        }
        if body.get("duplicate") == Some(&Value::Bool(false)) {
            for event in body["events"].as_array().into_iter().flatten() {
                if let Some(position) = event["position"].as_u64()
                    && !findings.appended.insert(position)
                {
                    let failure = format!("position {position} reported twice, by {}", describe());
                    findings.failures.push(failure);
                }
            }
        }
    }
    if findings.failures.len() > 20 {
        findings.failures.truncate(20);
    }
}

/// Sends one request on a fresh connection and reads the answer (`Ok(None)`: the
/// connection closed without one). A live event stream is dropped after its head.
async fn send(address: &str, request: &Request) -> Result<Option<Answer>, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let written = stream.write_all(&request.bytes).await;
        if request.half_close {
            let _ = stream.shutdown().await;
        }
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => {
                    received.extend_from_slice(&buffer[..n]);
                    if let Some(head_end) = find(&received, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
                        if head.contains("content-type: text/event-stream") {
                            break;
                        }
                    }
                }
                // A reset after an early answer (say 413 before the whole body was
                // read) still leaves the answer in `received`.
                Err(_) => break,
            }
        }
        if received.is_empty() {
            return match written {
                Err(error) if !request.may_go_unanswered => {
                    Err(format!("write failed ({error}) and no answer"))
                }
                _ => Ok(None),
            };
        }
        parse(&received).map(Some)
    };
    let timeout = if request.may_go_unanswered {
        UNANSWERED_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Parses an HTTP/1.1 answer (skipping any 1xx heads); de-chunks the body.
fn parse(mut bytes: &[u8]) -> Result<Answer, String> {
    loop {
        let head_end = find(bytes, b"\r\n\r\n")
            .ok_or_else(|| format!("an incomplete answer: {:?}", String::from_utf8_lossy(bytes)))?;
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| format!("a malformed status line: {head:?}"))?;
        let body = &bytes[head_end + 4..];
        if (100..200).contains(&status) {
            bytes = body;
            continue;
        }
        let chunked = head.to_lowercase().contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        };
        return Ok(Answer { status, body });
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(bytes, b"\r\n") {
        let size_text = String::from_utf8_lossy(&bytes[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || start + size > bytes.len() {
            break;
        }
        body.extend_from_slice(&bytes[start..start + size]);
        bytes = &bytes[(start + size + 2).min(bytes.len())..];
    }
    body
}

// ---- The generator ----

/// A request built from `rng`.
fn generate(rng: &mut Rng) -> Request {
    let mut unanswered = false;
    let (method, path, body, json_body) = match rng.below(100) {
        // Commands.
        0..=44 => (
            "POST".to_owned(),
            format!(
                "/v1/aggregates/{}/{}/commands",
                aggregate_type(rng, &mut unanswered),
                aggregate_id(rng, &mut unanswered)
            ),
            command_body(rng),
            true,
        ),
        // Reads.
        45..=74 => {
            let t = aggregate_type(rng, &mut unanswered);
            let id = aggregate_id(rng, &mut unanswered);
            let path = match rng.below(9) {
                0 | 1 => format!("/v1/aggregates/{t}/{id}"),
                2 => format!("/v1/aggregates/{t}"),
                3 | 4 => format!("/v1/aggregates/{t}/{id}/events"),
                5 => "/v1/events".to_owned(),
                6 => "/v1/subscribe".to_owned(),
                7 => "/v1/plugins".to_owned(),
                _ => (*rng.pick(&["/healthz", "/readyz", "/metrics", "/openapi.json"])).to_owned(),
            };
            let method = if rng.percent(90) { "GET" } else { "HEAD" };
            let body = if rng.percent(5) {
                random_bytes(rng)
            } else {
                Vec::new()
            };
            (method.to_owned(), path, body, false)
        }
        // Plugin administration (never a valid component: nothing is installed).
        75..=84 => {
            let t = aggregate_type(rng, &mut unanswered);
            let path = match rng.below(3) {
                0 => "/v1/plugins".to_owned(),
                1 => format!("/v1/plugins/{t}/activate"),
                _ => format!("/v1/plugins/{t}/rollback"),
            };
            let body = match rng.below(4) {
                0 => Vec::new(),
                1 => b"\0asm\x0d\0\x01\0garbage".to_vec(),
                2 => command_body(rng),
                _ => random_bytes(rng),
            };
            ("POST".to_owned(), path, body, false)
        }
        // Anything.
        _ => {
            let method = match rng.below(10) {
                0 => "PUT",
                1 => "DELETE",
                2 => "PATCH",
                3 => "OPTIONS",
                4 => "get",
                5 => "FOO",
                6 => "GET",
                7 => "POST",
                8 => "TRACE",
                _ => {
                    unanswered = true;
                    "CONNECT"
                }
            };
            let path = chaos_path(rng, &mut unanswered);
            let body = if rng.percent(50) {
                command_body(rng)
            } else {
                random_bytes(rng)
            };
            (method.to_owned(), path, body, rng.percent(50))
        }
    };
    let query = query(rng);
    let mut head = format!("{method} {path}{query} HTTP/1.1\r\n").into_bytes();
    if rng.percent(97) {
        head.extend_from_slice(b"Host: 127.0.0.1\r\n");
    }
    let content_type: Option<&[u8]> = if json_body && rng.percent(85) {
        Some(b"application/json")
    } else if json_body || rng.percent(50) {
        Some(*rng.pick(&[
            &b"application/json; charset=utf-8"[..],
            b"APPLICATION/JSON",
            b"application/vnd.tally+json",
            b"application/json, text/plain",
            b"text/plain",
            b"",
            b"multipart/form-data; boundary=x",
            b"application/wasm",
            b"application/\xff\xfejson",
            b";;;",
        ]))
    } else {
        None
    };
    if let Some(content_type) = content_type {
        head.extend_from_slice(b"Content-Type: ");
        head.extend_from_slice(content_type);
        head.extend_from_slice(b"\r\n");
    }
    if rng.percent(15) {
        head.extend_from_slice(b"Idempotency-Key: ");
        head.extend_from_slice(&header_value(
            rng,
            &["fz-7", "fz-8", "a b", "..", "\u{e9}t\u{e9}"],
        ));
        head.extend_from_slice(b"\r\n");
    }
    if rng.percent(10) {
        head.extend_from_slice(b"Last-Event-ID: ");
        head.extend_from_slice(&header_value(
            rng,
            &["0", "5", "-1", "18446744073709551616", "abc"],
        ));
        head.extend_from_slice(b"\r\n");
    }
    if rng.percent(20) {
        let token = rng.pick(&[
            "Bearer fuzz-token",
            "Bearer wrong",
            "Bearer",
            "Basic Zm9vOmJhcg==",
            "bearer fuzz-token",
            "Bearer fuzz-token ",
        ]);
        head.extend_from_slice(format!("Authorization: {token}\r\n").as_bytes());
    }
    if rng.percent(10) {
        head.extend_from_slice(b"X-Fuzz: ");
        head.extend_from_slice(&header_value(rng, &["x"]));
        head.extend_from_slice(b"\r\n");
    }
    if rng.below(200) == 0 {
        // Oversized head: one huge header, or a great many.
        unanswered = true;
        if rng.percent(50) {
            head.extend_from_slice(format!("X-Big: {}\r\n", "b".repeat(600_000)).as_bytes());
        } else {
            for n in 0..300 {
                head.extend_from_slice(format!("X-Many-{n}: {n}\r\n").as_bytes());
            }
        }
    }
    head.extend_from_slice(b"Connection: close\r\n");
    let mut half_close = false;
    let framing = rng.below(100);
    let mut bytes = head;
    match framing {
        // Chunked.
        0..=4 => {
            bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in body.chunks(rng.range(1, 4096) as usize) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        // A body shorter than announced, then the end of the connection.
        5 | 6 => {
            unanswered = true;
            half_close = true;
            let announced = body.len() + rng.range(1, 1000) as usize;
            bytes.extend_from_slice(format!("Content-Length: {announced}\r\n\r\n").as_bytes());
            bytes.extend_from_slice(&body);
        }
        // Both framings at once.
        7 => {
            unanswered = true;
            bytes.extend_from_slice(
                format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(&body);
        }
        // Two different lengths.
        8 => {
            unanswered = true;
            bytes.extend_from_slice(
                format!(
                    "Content-Length: {}\r\nContent-Length: {}\r\n\r\n",
                    body.len(),
                    body.len() + 1
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(&body);
        }
        // A non-numeric length.
        9 => {
            unanswered = true;
            bytes.extend_from_slice(b"Content-Length: 12abc\r\n\r\n");
            bytes.extend_from_slice(&body);
        }
        _ => {
            if !body.is_empty() || method == "POST" {
                bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&body);
        }
    }
    if rng.below(300) == 0 {
        // Not HTTP at all.
        unanswered = true;
        bytes = random_bytes(rng);
        bytes.extend_from_slice(b"\r\n\r\n");
    }
    // A large body the server may refuse before reading it (413, 415, 404...): closing
    // the connection with unread data resets it, which can discard the answer.
    if body.len() > 8 * 1024 {
        unanswered = true;
    }
    Request {
        bytes,
        may_go_unanswered: unanswered,
        half_close,
    }
}

fn aggregate_type(rng: &mut Rng, unanswered: &mut bool) -> String {
    match rng.below(26) {
        0..=15 => "bank-account".to_owned(),
        16 => "no-such-type".to_owned(),
        17 => "Bank-Account".to_owned(),
        18 => "bank_account".to_owned(),
        19 => "..".to_owned(),
        20 => "%2e%2e".to_owned(),
        21 => "a".repeat(rng.range(60, 400) as usize),
        22 => "%C3%A9t%C3%A9".to_owned(),
        23 => "bank-account%2Fx".to_owned(),
        24 => "$tally-plugins".to_owned(),
        _ => segment(rng, unanswered),
    }
}

fn aggregate_id(rng: &mut Rng, unanswered: &mut bool) -> String {
    match rng.below(33) {
        0..=16 => format!("f{}", rng.below(ACCOUNTS)),
        17..=19 => format!("new-{}", rng.below(100)),
        20 => ".".to_owned(),
        21 => "..".to_owned(),
        22 => "%2E%2E".to_owned(),
        23 => "a%2Fb".to_owned(),
        24 => "x".repeat(rng.range(200, 5000) as usize),
        25 => "%00".to_owned(),
        26 => "caf%C3%A9".to_owned(),
        27 => {
            // Raw UTF-8 in the request target: not valid HTTP.
            *unanswered = true;
            "caf\u{e9}".to_owned()
        }
        28 => "%".to_owned(),
        29 => "%F0%9F%92%B0".to_owned(),
        30 => "a:b@c+d=e".to_owned(),
        _ => segment(rng, unanswered),
    }
}

/// A random path segment: legal characters, percent-escapes and, rarely, raw bytes
/// that make the request line malformed.
fn segment(rng: &mut Rng, unanswered: &mut bool) -> String {
    const LEGAL: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";
    let len = rng.below(24);
    let mut segment = String::new();
    for _ in 0..len {
        match rng.below(10) {
            0 => segment.push_str(&format!("%{:02X}", rng.below(256))),
            1 if rng.percent(10) => {
                *unanswered = true;
                segment.push(*rng.pick(&[' ', '\t', '"', '<', '\u{7f}', '\u{e9}']));
            }
            _ => segment.push(*rng.pick(LEGAL) as char),
        }
    }
    segment
}

fn chaos_path(rng: &mut Rng, unanswered: &mut bool) -> String {
    let t = aggregate_type(rng, unanswered);
    let id = aggregate_id(rng, unanswered);
    match rng.below(12) {
        0 => format!("/v1/aggregates/{t}/{id}/commands/extra"),
        1 => "//v1/events".to_owned(),
        2 => "/v1/./events".to_owned(),
        3 => "/v1/../v1/events".to_owned(),
        4 => format!("/v1/aggregates/{t}/{id}/commands/"),
        5 => "/V1/EVENTS".to_owned(),
        6 => format!("/v1/aggregates/{t}/{id}/../../../etc/passwd"),
        7 => "http://127.0.0.1/v1/events".to_owned(),
        8 => {
            *unanswered = true;
            "*".to_owned()
        }
        9 => format!("/v1/plugins/{t}"),
        _ => {
            let mut path = String::new();
            for _ in 0..rng.range(1, 6) {
                path.push('/');
                path.push_str(&segment(rng, unanswered));
            }
            path
        }
    }
}

fn query(rng: &mut Rng) -> String {
    if rng.percent(50) {
        return String::new();
    }
    if rng.percent(5) {
        return (*rng.pick(&["?", "?&&==&", "?%zz", "?limit", "?=1", "?a=b=c"])).to_owned();
    }
    if rng.percent(2) {
        return format!("?limit={}", "9".repeat(10_000));
    }
    let keys = [
        "limit",
        "from_version",
        "from_position",
        "skip",
        "at_position",
        "at_time",
        "view",
        "aggregate_type",
        "event_type",
        "activate",
        "version",
        "bogus",
    ];
    let values = [
        "0",
        "1",
        "3",
        "1000",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "1e3",
        "abc",
        "",
        "current",
        "stored",
        "bank-account",
        "MoneyDeposited",
        "true",
        "1.0.0",
        "%E2%82%AC",
        "%zz",
        "2.0.0-%00",
    ];
    let mut query = String::from("?");
    for n in 0..rng.range(1, 4) {
        if n > 0 {
            query.push('&');
        }
        let key: &&str = rng.pick(&keys);
        query.push_str(key);
        query.push('=');
        let value: &&str = rng.pick(&values);
        query.push_str(value);
    }
    query
}

/// A header value: one of `usual`, long, empty, or raw non-ASCII bytes.
fn header_value(rng: &mut Rng, usual: &[&str]) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        1 => "k".repeat(rng.range(200, 3000) as usize).into_bytes(),
        2 => vec![0x80, 0xff, b'a', 0xc3, 0xa9],
        3 => format!("fz-{}", rng.next_u64()).into_bytes(),
        _ => rng.pick(usual).as_bytes().to_vec(),
    }
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(2000) as usize;
    rng.bytes(len)
}

/// A command body: valid, mutated, or not JSON at all.
fn command_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(200) {
        0..=109 => valid_command(rng).to_string().into_bytes(),
        110..=144 => {
            let mut bytes = valid_command(rng).to_string().into_bytes();
            for _ in 0..rng.range(1, 4) {
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                match rng.below(4) {
                    0 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, *rng.pick(b"{}[]\",:0-e\\\0")),
                    _ => bytes.truncate(at),
                }
            }
            bytes
        }
        145..=159 => random_bytes(rng),
        160..=169 => Vec::new(),
        170..=174 => {
            let depth = rng.range(100, 50_000) as usize;
            if rng.percent(50) {
                format!("{{\"type\":\"Deposit\",\"data\":{}", "[".repeat(depth)).into_bytes()
            } else {
                let depth = depth.min(120);
                format!(
                    "{{\"type\":\"Deposit\",\"data\":{}1{}}}",
                    "[".repeat(depth),
                    "]".repeat(depth)
                )
                .into_bytes()
            }
        }
        175..=184 => (*rng.pick(&[
            "null",
            "[]",
            "\"x\"",
            "123",
            "{}",
            "{\"type\":null}",
            "{\"type\":\"Deposit\",\"data\":{\"amount\":1},\"type\":\"Withdraw\"}",
            "{\"type\":\"\\ud800\",\"data\":{\"amount\":1}}",
            "{\"type\":\"Deposit\",\"data\":{\"amount\":1e400}}",
            "{\"type\":\"Deposit\",\"data\":\"\\u0000\"}",
        ]))
        .as_bytes()
        .to_vec(),
        185..=189 => json!({
            "type": "Deposit",
            "data": {"amount": 1, "note": "n".repeat(rng.range(10_000, 900_000) as usize)},
        })
        .to_string()
        .into_bytes(),
        190 => json!({"type": "Deposit", "data": {"note": "x".repeat(1_100_000)}})
            .to_string()
            .into_bytes(),
        _ => {
            let mut command = valid_command(rng);
            command["unexpected"] = json!(true);
            command.to_string().into_bytes()
        }
    }
}

fn valid_command(rng: &mut Rng) -> Value {
    let name = *rng.pick(&[
        "Deposit",
        "Deposit",
        "Deposit",
        "Withdraw",
        "Withdraw",
        "OpenAccount",
        "CloseAccount",
        "Teleport",
        "",
    ]);
    let number = match rng.below(12) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MAX),
        3 => json!(i64::MIN),
        4 => json!(1.5),
        5 => json!("10"),
        6 => Value::Null,
        7 => json!(u64::MAX),
        _ => json!(rng.range(1, 500)),
    };
    let data = match rng.below(10) {
        0 => Value::Null,
        1 => json!({}),
        2 => json!([number]),
        _ if name == "OpenAccount" => json!({"initial_balance": number}),
        _ => json!({"amount": number}),
    };
    let mut command = json!({"type": name, "data": data});
    if rng.percent(40) {
        command["command_id"] = match rng.below(10) {
            0 => json!(""),
            1 => json!("a b"),
            2 => json!("..".to_owned()),
            3 => json!("x".repeat(300)),
            4 => json!(7),
            _ => json!(format!("fz-{}", rng.below(200))),
        };
    }
    if rng.percent(15) {
        command["expected_version"] = match rng.below(4) {
            0 => json!(-1),
            1 => json!("1"),
            _ => json!(rng.below(20)),
        };
    }
    if rng.percent(10) {
        command["correlation_id"] = json!(format!("c-{}", rng.below(10)));
        command["causation_id"] = if rng.percent(50) {
            json!("bad id!")
        } else {
            json!("cause")
        };
    }
    command
}
