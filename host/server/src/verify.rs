//! `tally verify DATA_DIR [--repair]`: the offline integrity check of a data
//! directory (see `tally_store::verify`), with a progress bar and a confirmation
//! before anything is cut.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tally_runtime::tally_store::tally_wal::{VerifyReport, VerifyStatus};
use tally_runtime::tally_store::{StoreVerifyReport, VerifyProgress, verify};

/// Verifies `dir`; with `repair`, cuts damaged logs after confirmation (or `yes`).
/// Fails (non-zero exit) when the directory would not open as it is left.
pub async fn run(dir: &Path, repair: bool, yes: bool, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.join("events").is_dir(),
        "{} is not a Tally data directory (no events/ log in it)",
        dir.display()
    );
    let report = scan(dir, false, json).await?;
    if !json {
        print_report(&report);
    }
    if report.is_clean() {
        if json {
            println!("{}", report_json(&report));
        }
        return Ok(());
    }
    if !repair {
        if json {
            println!("{}", report_json(&report));
        }
        anyhow::bail!(
            "{} is damaged; `tally verify {} --repair` cuts the log at the damage",
            dir.display(),
            dir.display()
        );
    }
    if !yes && !confirm(&report)? {
        anyhow::bail!("not repaired");
    }
    let repaired = scan(dir, true, json).await?;
    if json {
        println!("{}", report_json(&repaired));
    } else {
        for (name, info) in [
            ("events", &repaired.events_repair),
            ("snapshots", &repaired.snapshots_repair),
        ] {
            if let Some(info) = info {
                println!(
                    "repaired {name}: cut {} bytes, kept {} records",
                    info.bytes_truncated, info.valid_records
                );
            }
        }
    }
    anyhow::ensure!(
        repaired.opens(),
        "the damage is not in a place a cut can fix: {:?}",
        repaired.problem
    );
    Ok(())
}

async fn scan(dir: &Path, repair: bool, quiet: bool) -> anyhow::Result<StoreVerifyReport> {
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let updates = bar.clone();
    let report = verify(dir, repair, move |progress: VerifyProgress| {
        updates.set_message(progress.log.dir_name());
        updates.set_length(progress.total);
        updates.set_position(progress.scanned);
    })
    .await;
    bar.finish_and_clear();
    report.map_err(|error| anyhow::anyhow!("cannot verify {}: {error}", dir.display()))
}

fn print_report(report: &StoreVerifyReport) {
    for (name, log) in [("events", &report.events), ("snapshots", &report.snapshots)] {
        println!(
            "{name}: {} segments, {} records, {} bytes: {}",
            log.segments,
            log.records,
            log.bytes,
            status_text(log)
        );
    }
    println!(
        "{} events in {} streams, {} snapshots",
        report.event_count, report.streams, report.snapshot_count
    );
    if let Some(problem) = &report.problem {
        println!(
            "problem in {}: {}{}",
            problem.log.dir_name(),
            problem.reason,
            problem
                .position
                .map(|at| format!(" (at {at})"))
                .unwrap_or_default()
        );
    }
}

fn status_text(log: &VerifyReport) -> String {
    match &log.status {
        VerifyStatus::Clean => "clean".to_owned(),
        VerifyStatus::TornTail {
            file,
            offset,
            bytes,
        } => format!(
            "torn tail at {}:{offset} ({bytes} bytes; opening cuts it)",
            file.display()
        ),
        VerifyStatus::Corrupt {
            file,
            offset,
            reason,
            bytes_cut,
        } => format!(
            "CORRUPT at {}:{offset}: {reason} (a repair cuts {bytes_cut} bytes)",
            file.display()
        ),
    }
}

fn report_json(report: &StoreVerifyReport) -> serde_json::Value {
    let log = |log: &VerifyReport| {
        json!({
            "segments": log.segments,
            "records": log.records,
            "bytes": log.bytes,
            "status": match &log.status {
                VerifyStatus::Clean => json!({"kind": "clean"}),
                VerifyStatus::TornTail { file, offset, bytes } =>
                    json!({"kind": "torn-tail", "file": file, "offset": offset, "bytes": bytes}),
                VerifyStatus::Corrupt { file, offset, reason, bytes_cut } =>
                    json!({"kind": "corrupt", "file": file, "offset": offset, "reason": reason, "bytes_cut": bytes_cut}),
            },
        })
    };
    json!({
        "clean": report.is_clean(),
        "opens": report.opens(),
        "events": log(&report.events),
        "snapshots": log(&report.snapshots),
        "event_count": report.event_count,
        "streams": report.streams,
        "snapshot_count": report.snapshot_count,
        "problem": report.problem.as_ref().map(|p| json!({"log": p.log.dir_name(), "reason": p.reason})),
        "events_bytes_cut": report.events_repair.as_ref().map(|r| r.bytes_truncated),
        "snapshots_bytes_cut": report.snapshots_repair.as_ref().map(|r| r.bytes_truncated),
    })
}

fn confirm(report: &StoreVerifyReport) -> anyhow::Result<bool> {
    let cut: u64 = [&report.events, &report.snapshots]
        .iter()
        .map(|log| match &log.status {
            VerifyStatus::Corrupt { bytes_cut, .. } => *bytes_cut,
            VerifyStatus::TornTail { bytes, .. } => *bytes,
            VerifyStatus::Clean => 0,
        })
        .sum();
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "refusing to cut {cut} bytes without confirmation: run in a terminal or add --yes"
    );
    print!("cut {cut} bytes from the damaged log(s)? Everything after the damage is lost. [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
