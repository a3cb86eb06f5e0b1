//! The CLI against a running service, `tally verify` on damaged data, `tally demo`.

use std::process::Command;

use crate::{Service, TALLY};

fn tally(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(TALLY).args(args).output().expect("run tally");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_sends_reads_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let url = service.url.clone();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &url]);
        tally(&all)
    };
    let (ok, out, err) = run(&[
        "send",
        "bank-account",
        "zed",
        "OpenAccount",
        r#"{"initial_balance":1000}"#,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("version 1"), "{out}");
    let (ok, out, _) = run(&[
        "send",
        "bank-account",
        "zed",
        "Withdraw",
        r#"{"amount":200}"#,
        "--json",
    ]);
    assert!(ok);
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["version"], 2);
    let (ok, _, err) = run(&[
        "send",
        "bank-account",
        "zed",
        "Withdraw",
        r#"{"amount":9999}"#,
    ]);
    assert!(!ok);
    assert!(err.contains("insufficient-funds"), "{err}");
    let (ok, out, _) = run(&["state", "bank-account", "zed"]);
    assert!(ok);
    assert!(out.contains("\"balance\": 800"), "{out}");
    let (ok, out, _) = run(&["events", "bank-account", "zed"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("MoneyWithdrawn"), "{out}");
    let (ok, out, _) = run(&["plugin", "list"]);
    assert!(ok);
    assert!(out.contains("bank-account: active 1.0.0"), "{out}");
    service.stop();
}

/// Runs tally with `args` and gives it `deadline` to finish: a command that should
/// stop by itself fails the test instead of hanging it.
fn tally_within(args: &[&str], deadline: std::time::Duration) -> (bool, String, String) {
    let mut child = Command::new(TALLY)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tally");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > deadline {
            child.kill().expect("kill");
            panic!("`tally {}` did not stop by itself", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_says_what_to_do_next() {
    // No service at the address: the error names it and how to start one.
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{free_port}");
    let (ok, _, err) = tally(&["state", "bank-account", "a", "--url", &nowhere]);
    assert!(!ok);
    assert!(
        err.contains(&format!("127.0.0.1:{free_port}")) && err.contains("tally serve"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = "cli-admin-token-0123456789";
    let service = Service::start(dir.path(), &["--admin-token", token]).await;
    let url = service.url.clone();
    // A 401 names the flag and the variable that carry the token.
    let (ok, _, err) = tally(&["plugin", "list", "--url", &url]);
    assert!(!ok);
    assert!(
        err.contains("--token") && err.contains("TALLY_ADMIN_TOKEN"),
        "{err}"
    );
    for id in ["f1", "f2", "f3"] {
        let body = crate::bank("OpenAccount", serde_json::json!({"initial_balance": 5}));
        assert_eq!(service.command("bank-account", id, body).await.0, 200);
    }
    // --follow --limit N prints N events and stops.
    let (ok, out, err) = tally_within(
        &[
            "events",
            "bank-account",
            "--follow",
            "--limit",
            "2",
            "--url",
            &url,
        ],
        std::time::Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    // --at-time takes an RFC 3339 time as well as epoch ms.
    let (ok, out, err) = tally(&[
        "state",
        "bank-account",
        "f1",
        "--at-time",
        "2999-01-01T00:00:00Z",
        "--url",
        &url,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"balance\": 5"), "{out}");
    service.stop();
}

#[tokio::test]
async fn verify_names_the_damage_and_repair_lets_the_service_start() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    for i in 0..20 {
        service
            .command(
                "bank-account",
                &format!("v{i}"),
                crate::bank("OpenAccount", serde_json::json!({"initial_balance": i})),
            )
            .await;
    }
    service.stop();
    let data = dir.path().to_str().unwrap();
    let (ok, out, err) = tally(&["verify", data]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("clean"), "{out}");

    // Flip a byte in the middle of the event log.
    let segment = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    let middle = end / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&segment, &bytes).unwrap();

    let (ok, out, err) = tally(&["verify", data]);
    assert!(!ok);
    assert!(
        out.contains("CORRUPT") && out.contains(&segment.display().to_string()),
        "{out}{err}"
    );
    // The service refuses to start, naming the file.
    let (ok, _, err) = tally(&["serve", "--data-dir", data, "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(
        err.contains(segment.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let (ok, _, err) = tally(&["verify", data, "--repair"]);
    assert!(!ok, "refuses without a terminal or --yes");
    assert!(err.contains("--yes"), "{err}");
    let (ok, out, err) = tally(&["verify", data, "--repair", "--yes"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("repaired events"), "{out}");
    let service = Service::start(dir.path(), &[]).await;
    let (status, _) = service.get("/v1/aggregates/bank-account/v0").await;
    assert_eq!(status, 200, "the prefix is served");
    service.stop();
}

#[test]
fn the_demo_runs_the_tour() {
    let plugins = std::path::Path::new(tally_test_support::components::BANK_ACCOUNT_V1)
        .parent()
        .unwrap();
    let (ok, out, err) = tally(&["demo", "--plugins", plugins.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"currency\":\"USD\""), "{out}");
    assert!(out.contains("\"balance\":1300"), "{out}");
}
