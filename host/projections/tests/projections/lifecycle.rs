//! The lifecycle of a projection: install, activate, roll back, rebuild, close. Each
//! new read model is built beside the one serving (blue/green) and takes over once it
//! has caught up; which version is active, and which was before it, is recorded in
//! `active.json` and survives a restart; only the previous version's read model is kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tally_projections::{
    BuildReason, ProjectionError, ProjectionInstallOptions, ProjectionState, ProjectionStatus,
    Projections, ProjectionsConfig, ProjectorConfig, ReadModel,
};
use tally_runtime::tally_store::EventLog;
use tally_runtime::{GlobalPosition, Runtime};
use tally_test_support::components;

use crate::{bank_on, engine_config, send};

const SUMMARY: &str = "account-summary";
const HOSTILE: &str = "test-hostile-projection";
/// A deposit the hostile projection refuses with an error (see its constants).
const REFUSED: i64 = 17;

/// How long a test waits for a projection to get somewhere. Generous: only a failing
/// test waits this long.
const DEADLINE: Duration = Duration::from_secs(120);

fn version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap()
}

/// The projections of `runtime` in `dir`, whose reads wait up to [`DEADLINE`], with
/// batches of at most `batch_events`.
async fn open_with(runtime: &Runtime, dir: &Path, batch_events: usize) -> Projections {
    let config = ProjectionsConfig {
        max_wait: DEADLINE,
        projector: ProjectorConfig {
            batch_events,
            ..ProjectorConfig::default()
        },
        ..ProjectionsConfig::new(dir.join("projections"))
    };
    Projections::open(runtime.clone(), config)
        .await
        .expect("open projections")
}

async fn open(runtime: &Runtime, dir: &Path) -> Projections {
    open_with(runtime, dir, ProjectorConfig::default().batch_events).await
}

fn folder(dir: &Path, name: &str) -> PathBuf {
    dir.join("projections").join(name)
}

/// The read model files of projection `name`.
fn models(dir: &Path, name: &str) -> BTreeSet<String> {
    std::fs::read_dir(folder(dir, name))
        .unwrap()
        .map(|file| file.unwrap().file_name().into_string().unwrap())
        .filter(|file| file.ends_with(".redb"))
        .collect()
}

fn names(files: &[&str]) -> BTreeSet<String> {
    files.iter().map(|file| (*file).to_owned()).collect()
}

/// Projection `name`'s `active.json`.
fn record(dir: &Path, name: &str) -> Value {
    let bytes = std::fs::read(folder(dir, name).join("active.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// account-summary's source as version 3.0.0: test-summary-v2's component with its
/// version string, which it has once, changed.
fn summary_v3() -> Vec<u8> {
    let mut bytes = components::bytes(components::TEST_SUMMARY_V2);
    let at: Vec<usize> = bytes
        .windows(5)
        .enumerate()
        .filter(|(_, window)| *window == b"2.0.0")
        .map(|(at, _)| at)
        .collect();
    assert_eq!(at.len(), 1, "test-summary-v2 names its version once");
    bytes[at[0]] = b'3';
    bytes
}

/// The status of projection `name` once `done` holds for it; panics after
/// [`DEADLINE`] naming `what` was awaited.
async fn wait_until(
    projections: &Projections,
    name: &str,
    what: &str,
    done: impl Fn(&ProjectionStatus) -> bool,
) -> ProjectionStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = projections.status(name).expect("installed");
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name} never {what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The status of projection `name` once `active` is its active version, nothing is
/// building, and it is live with every event of the log applied.
async fn settled(
    projections: &Projections,
    runtime: &Runtime,
    name: &str,
    active: &str,
) -> ProjectionStatus {
    let active = version(active);
    wait_until(projections, name, "settled", |status| {
        status.info.version == active
            && status.building.is_none()
            && status.progress.state == ProjectionState::Live
            && status.progress.checkpoint >= runtime.store().known_end()
    })
    .await
}

/// Opens accounts `a0`..`a{count}` with nothing in them.
async fn open_accounts(runtime: &Runtime, count: usize) {
    for n in 0..count {
        let id = format!("a{n}");
        send(runtime, &id, "OpenAccount", json!({"initial_balance": 0})).await;
    }
}

/// Deposits `amount` into account `id`: the event's position.
async fn deposit(runtime: &Runtime, id: &str, amount: i64) -> GlobalPosition {
    let outcome = send(runtime, id, "Deposit", json!({ "amount": amount })).await;
    outcome.events[0].position
}

/// A document of account-summary, once every event so far is applied.
async fn summary(projections: &Projections, runtime: &Runtime, table: &str, key: &str) -> Value {
    let end = runtime.store().known_end();
    let (document, at) = projections
        .document(SUMMARY, table, key, Some(end))
        .await
        .expect("read account-summary");
    assert!(at >= end);
    serde_json::from_slice(&document.expect("the document")).unwrap()
}

/// Every bank-account event of the log, in order.
async fn bank_events(runtime: &Runtime) -> Vec<(GlobalPosition, String, Value)> {
    let end = runtime.store().known_end();
    let mut events = Vec::new();
    let mut from = GlobalPosition::START;
    while from < end {
        let page = runtime.store().read_all(from, 1_000).await.unwrap();
        let last = page.last().expect("events up to the end").position;
        for event in page {
            if *event.stream.aggregate_type == *"bank-account" {
                let data = serde_json::from_slice(&event.data).unwrap();
                events.push((event.position, event.stream.aggregate_id.to_string(), data));
            }
        }
        from = last.next();
    }
    events
}

/// Activating stores nothing new and builds beside the active version; a rollback
/// resumes the previous version's kept read model from its checkpoint (it applies only
/// what it missed), and after a restart the rolled-back version is still the active
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_resumes_the_kept_read_model_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 3).await;
    for n in 0..6 {
        deposit(&runtime, &format!("a{}", n % 3), 10).await;
    }
    let projections = open(&runtime, dir.path()).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    let nothing = projections.rollback(SUMMARY).await.unwrap_err();
    assert!(
        matches!(nothing, ProjectionError::NothingToRollBack(_)),
        "{nothing}"
    );

    // A newer version is stored: nothing is built until it is activated.
    let installed = projections
        .install_with(
            &components::bytes(components::TEST_SUMMARY_V2),
            ProjectionInstallOptions::default(),
        )
        .await
        .unwrap();
    assert!(!installed.already_installed);
    let status = projections.status(SUMMARY).unwrap();
    assert_eq!(status.info.version, version("1.0.0"));
    assert!(status.building.is_none(), "{status:?}");
    assert_eq!(status.installed, [version("1.0.0"), version("2.0.0")]);
    assert_eq!(models(dir.path(), SUMMARY), names(&["1.0.0.g1.redb"]));
    let unknown = projections.activate(SUMMARY, "9.9.9").await.unwrap_err();
    assert!(
        matches!(unknown, ProjectionError::UnknownVersion { .. }),
        "{unknown}"
    );

    let status = projections.activate(SUMMARY, "2.0.0").await.unwrap();
    let building = status.building.expect("a build");
    assert_eq!(
        (building.version, building.generation, building.reason),
        (version("2.0.0"), 2, BuildReason::Activate)
    );
    let status = settled(&projections, &runtime, SUMMARY, "2.0.0").await;
    assert_eq!(
        (status.generation, status.previous),
        (2, Some(version("1.0.0")))
    );
    assert_eq!(
        models(dir.path(), SUMMARY),
        names(&["1.0.0.g1.redb", "2.0.0.g2.redb"])
    );
    assert_eq!(
        record(dir.path(), SUMMARY),
        json!({
            "active": {"version": "2.0.0", "generation": 2},
            "previous": {"version": "1.0.0", "generation": 1},
            "building": null,
            "next_generation": 3,
        })
    );

    // Five deposits the kept read model of 1.0.0 has not seen.
    for n in 0..5 {
        deposit(&runtime, &format!("a{}", n % 3), 1).await;
    }
    let status = projections.rollback(SUMMARY).await.unwrap();
    let building = status.building.expect("a build");
    assert_eq!(
        (building.version, building.generation, building.reason),
        (version("1.0.0"), 1, BuildReason::Rollback)
    );
    let status = settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    assert_eq!(
        status.progress.applied, 5,
        "the kept read model resumed where it stopped: {status:?}"
    );
    assert_eq!(
        (status.generation, status.previous),
        (1, Some(version("2.0.0")))
    );
    assert_eq!(
        models(dir.path(), SUMMARY),
        names(&["1.0.0.g1.redb", "2.0.0.g2.redb"])
    );
    let a0 = summary(&projections, &runtime, "accounts", "a0").await;
    assert_eq!(a0["balance"], 20 + 2, "{a0}");

    // A restart keeps the rolled-back version, not the newest one.
    projections.close().await;
    let projections = open(&runtime, dir.path()).await;
    let status = projections.status(SUMMARY).unwrap();
    assert_eq!(
        (status.info.version, status.generation, status.previous),
        (version("1.0.0"), 1, Some(version("2.0.0")))
    );
    deposit(&runtime, "a1", 100).await;
    let a1 = summary(&projections, &runtime, "accounts", "a1").await;
    assert_eq!(a1["balance"], 20 + 2 + 100, "{a1}");
    projections.close().await;
    runtime.close().await.unwrap();
}

/// Only the previous version's read model is kept: activating a third version deletes
/// the first one's. Installing with `activate` builds at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_version_deletes_the_first_ones_read_model() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 2).await;
    deposit(&runtime, "a1", 5).await;
    let projections = open(&runtime, dir.path()).await;
    let activate = ProjectionInstallOptions {
        activate: true,
        ..ProjectionInstallOptions::default()
    };
    let first = projections
        .install_with(&components::bytes(components::ACCOUNT_SUMMARY), activate)
        .await
        .unwrap();
    assert_eq!(first.info.version, version("1.0.0"));
    settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    projections
        .install_with(&components::bytes(components::TEST_SUMMARY_V2), activate)
        .await
        .unwrap();
    settled(&projections, &runtime, SUMMARY, "2.0.0").await;
    deposit(&runtime, "a0", 7).await;
    projections
        .install_with(&summary_v3(), activate)
        .await
        .unwrap();
    let status = settled(&projections, &runtime, SUMMARY, "3.0.0").await;
    assert_eq!(
        (status.generation, status.previous),
        (3, Some(version("2.0.0")))
    );
    assert_eq!(
        models(dir.path(), SUMMARY),
        names(&["2.0.0.g2.redb", "3.0.0.g3.redb"])
    );
    let totals = summary(&projections, &runtime, "totals", "all").await;
    assert_eq!(
        totals,
        json!({"accounts_open": 2, "balance_by_currency": {"USD": 12}})
    );
    // The same component again is no change; another one of an installed version is
    // refused.
    let again = projections
        .install_with(&summary_v3(), ProjectionInstallOptions::default())
        .await
        .unwrap();
    assert!(again.already_installed);
    let mut other = summary_v3();
    let last = other.len() - 1;
    other[last] ^= 1;
    let refused = projections.install(&other);
    assert!(
        matches!(refused, Err(ProjectionError::VersionExists { .. })),
        "{refused:?}"
    );
    projections.close().await;
    runtime.close().await.unwrap();
}

/// A rebuild under command load: queries keep coming from a whole read model (each
/// read's totals are the fold of the log before the position it reflects, and that
/// position never goes back), reads with a position wait across the switch, and the
/// rebuilt read model has every event, none twice. The replaced read model is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_serves_only_whole_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 5).await;
    for n in 0..100 {
        deposit(&runtime, &format!("a{}", n % 5), 1).await;
    }
    // Small batches: many commits, so that a half-built read model would show.
    let projections = open_with(&runtime, dir.path(), 20).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    settled(&projections, &runtime, SUMMARY, "1.0.0").await;

    let load = {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            for n in 0..300 {
                deposit(&runtime, &format!("a{}", n % 5), 1 + n % 3).await;
            }
        })
    };
    let status = projections.rebuild(SUMMARY).await.unwrap();
    let building = status.building.expect("a build");
    assert_eq!(
        (building.version, building.generation, building.reason),
        (version("1.0.0"), 2, BuildReason::Rebuild)
    );
    let again = projections.rebuild(SUMMARY).await.unwrap();
    assert_eq!(
        again.building.map(|build| build.generation),
        Some(2),
        "a rebuild under way goes on"
    );

    let mut reads: Vec<(GlobalPosition, Value)> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    for n in 0u64.. {
        let status = projections.status(SUMMARY).unwrap();
        let wanted = (n % 2 == 1).then(|| runtime.store().known_end());
        let (document, position) = projections
            .document(SUMMARY, "totals", "all", wanted)
            .await
            .expect("reads are served throughout");
        if let Some(wanted) = wanted {
            assert!(position >= wanted, "{position} < {wanted}");
        }
        if let Some((last, _)) = reads.last() {
            assert!(
                position >= *last,
                "a read went back from {last} to {position}"
            );
        }
        reads.push((
            position,
            serde_json::from_slice(&document.unwrap()).unwrap(),
        ));
        if status.generation == 2 && load.is_finished() {
            break;
        }
        assert!(Instant::now() < deadline, "never rebuilt: {status:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    load.await.unwrap();

    // Each read's totals are the fold of exactly the events before its position.
    let events = bank_events(&runtime).await;
    let mut open_count = 0;
    let mut usd = 0;
    let mut next = events.iter().peekable();
    for (position, totals) in &reads {
        while let Some((_, _, data)) = next.next_if(|(at, ..)| at < position) {
            match data.get("amount") {
                Some(amount) => usd += amount.as_i64().unwrap(),
                None => open_count += 1,
            }
        }
        assert_eq!(
            *totals,
            json!({"accounts_open": open_count, "balance_by_currency": {"USD": usd}}),
            "at {position}"
        );
    }

    // The rebuilt read model has every event once.
    let status = settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    assert_eq!((status.generation, status.previous), (2, None));
    for n in 0..5 {
        let id = format!("a{n}");
        let expected: i64 = events
            .iter()
            .filter(|(_, aggregate, _)| *aggregate == id)
            .filter_map(|(_, _, data)| data.get("amount").and_then(Value::as_i64))
            .sum();
        let account = summary(&projections, &runtime, "accounts", &id).await;
        assert_eq!(account["balance"], expected, "{id}: {account}");
    }
    assert_eq!(models(dir.path(), SUMMARY), names(&["1.0.0.g2.redb"]));
    projections.close().await;
    runtime.close().await.unwrap();
}

/// A build that faults stays beside the active version, which keeps serving; its
/// status has its progress and pace; `retry` and `skip` reach it while the active
/// version is not faulted; activating the active version gives it up and deletes its
/// read model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulted_build_shows_its_progress_and_takes_retry_skip_and_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 1).await;
    for _ in 0..10 {
        deposit(&runtime, "a0", 1).await;
    }
    let refused = deposit(&runtime, "a0", REFUSED).await;
    for _ in 0..5 {
        deposit(&runtime, "a0", 2).await;
    }
    let end = runtime.store().known_end();
    let projections = open(&runtime, dir.path()).await;
    let installed = projections
        .install(&components::bytes(components::TEST_HOSTILE_PROJECTION))
        .unwrap();
    let hostile_version = installed.version.to_string();
    wait_until(&projections, HOSTILE, "faulted", |status| {
        status.progress.state == ProjectionState::Faulted
    })
    .await;
    projections.skip(HOSTILE).await.unwrap();
    wait_until(&projections, HOSTILE, "caught up", |status| {
        status.progress.state == ProjectionState::Live && status.progress.checkpoint >= end
    })
    .await;

    projections.rebuild(HOSTILE).await.unwrap();
    let faulted_build = |attempts: u32| {
        move |status: &ProjectionStatus| {
            status.building.as_ref().is_some_and(|build| {
                build.progress.state == ProjectionState::Faulted
                    && build.progress.fault.as_ref().map(|fault| fault.attempts) == Some(attempts)
            })
        }
    };
    let status = wait_until(&projections, HOSTILE, "a faulted build", faulted_build(1)).await;
    assert_eq!(status.progress.state, ProjectionState::Live, "{status:?}");
    let build = status.building.unwrap();
    assert_eq!(build.progress.fault.unwrap().position, refused);
    assert_eq!(build.progress.checkpoint, refused);
    assert_eq!(build.throughput.events_done, refused.get());
    assert_eq!(build.lag_events, end.get() - refused.get());
    let count = |projections: Projections| async move {
        let (document, _) = projections
            .document(HOSTILE, "docs", "count", None)
            .await
            .unwrap();
        serde_json::from_slice::<u64>(&document.unwrap()).unwrap()
    };
    assert_eq!(
        count(projections.clone()).await,
        15,
        "the active version serves"
    );
    // Its pace, once measured, and the estimate that follows from it.
    let status = wait_until(&projections, HOSTILE, "a measured pace", |status| {
        status
            .building
            .as_ref()
            .is_some_and(|build| build.throughput.events_per_second.is_some())
    })
    .await;
    let build = status.building.unwrap();
    let rate = build.throughput.events_per_second.unwrap();
    match build.throughput.eta {
        Some(eta) => {
            let expected = build.lag_events as f64 / rate;
            assert!((eta.as_secs_f64() - expected).abs() < 1e-3, "{build:?}");
        }
        None => assert_eq!(rate, 0.0, "{build:?}"),
    }

    // `retry` reaches the build: it fails again.
    projections.retry(HOSTILE).await.unwrap();
    wait_until(&projections, HOSTILE, "faulted again", faulted_build(2)).await;

    // Activating the active version gives the build up.
    let status = projections
        .activate(HOSTILE, &hostile_version)
        .await
        .unwrap();
    assert!(status.building.is_none(), "{status:?}");
    let model = |generation: u64| format!("{hostile_version}.g{generation}.redb");
    assert_eq!(models(dir.path(), HOSTILE), names(&[&model(1)]));
    assert_eq!(record(dir.path(), HOSTILE)["building"], Value::Null);

    // A new rebuild; `skip` passes the build over the event, and it takes over.
    let status = projections.rebuild(HOSTILE).await.unwrap();
    assert_eq!(status.building.map(|build| build.generation), Some(3));
    wait_until(&projections, HOSTILE, "a faulted build", faulted_build(1)).await;
    projections.skip(HOSTILE).await.unwrap();
    let status = wait_until(&projections, HOSTILE, "rebuilt", |status| {
        status.generation == 3 && status.building.is_none()
    })
    .await;
    assert_eq!(status.info.version.to_string(), hostile_version);
    assert_eq!(count(projections.clone()).await, 15);
    let snapshot = projections.snapshot(HOSTILE, "docs", None).await.unwrap();
    assert_eq!(snapshot.skipped().unwrap(), 1);
    drop(snapshot);
    assert_eq!(models(dir.path(), HOSTILE), names(&[&model(3)]));
    projections.close().await;
    runtime.close().await.unwrap();
}

/// `close` returns once every read model file is released, also while projectors are
/// busy: the files open again at once. A build under way resumes after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_the_read_models_and_a_build_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 4).await;
    for n in 0..300 {
        deposit(&runtime, &format!("a{}", n % 4), 1).await;
    }
    // Batches of 5 events: the projectors are busy when `close` comes.
    let projections = open_with(&runtime, dir.path(), 5).await;
    projections
        .install(&components::bytes(components::ACCOUNT_SUMMARY))
        .unwrap();
    projections
        .install(&components::bytes(components::TEST_SUMMARY_V2))
        .unwrap();
    let status = projections.activate(SUMMARY, "2.0.0").await.unwrap();
    assert!(status.building.is_some());
    projections.close().await;
    for model in ["1.0.0.g1.redb", "2.0.0.g2.redb"] {
        let path = folder(dir.path(), SUMMARY).join(model);
        ReadModel::open(&path).unwrap_or_else(|error| panic!("{model} is released: {error}"));
    }
    let refused = projections.install(&components::bytes(components::ACCOUNT_SUMMARY));
    assert!(
        matches!(refused, Err(ProjectionError::Closed)),
        "{refused:?}"
    );
    assert!(projections.list().is_empty());

    let projections = open(&runtime, dir.path()).await;
    let status = projections.status(SUMMARY).unwrap();
    assert_eq!(
        status.building.map(|build| (build.version, build.reason)),
        Some((version("2.0.0"), BuildReason::Activate)),
        "the build is under way again"
    );
    settled(&projections, &runtime, SUMMARY, "2.0.0").await;
    let totals = summary(&projections, &runtime, "totals", "all").await;
    assert_eq!(
        totals,
        json!({"accounts_open": 4, "balance_by_currency": {"USD": 300}})
    );
    projections.close().await;
    runtime.close().await.unwrap();
}

/// Aggregate types and projections share one namespace: a projection named like an
/// installed aggregate type is refused, and nothing of it is kept.
#[tokio::test]
async fn a_projection_cannot_take_an_aggregate_types_name() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    let projections = open(&runtime, dir.path()).await;
    let refused = projections
        .install(&components::bytes(components::TEST_NAME_CLASH))
        .unwrap_err();
    assert!(
        matches!(&refused, ProjectionError::NameTaken(name) if name == "bank-account"),
        "{refused}"
    );
    assert!(projections.list().is_empty());
    assert!(!folder(dir.path(), "bank-account").exists());
    projections.close().await;
    runtime.close().await.unwrap();
}

/// A projections directory from before records (`<version>.redb`, no `active.json`)
/// opens with its newest version active on its read model, and gets a record; read
/// model files nothing refers to are deleted.
#[tokio::test]
async fn a_folder_without_a_record_opens_with_its_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bank_on(dir.path(), engine_config()).await;
    open_accounts(&runtime, 1).await;
    deposit(&runtime, "a0", 3).await;
    let summary_folder = folder(dir.path(), SUMMARY);
    std::fs::create_dir_all(&summary_folder).unwrap();
    std::fs::copy(
        components::ACCOUNT_SUMMARY,
        summary_folder.join("1.0.0.wasm"),
    )
    .unwrap();
    drop(ReadModel::open(&summary_folder.join("1.0.0.redb")).unwrap());
    drop(ReadModel::open(&summary_folder.join("1.0.0.g7.redb")).unwrap());

    let projections = open(&runtime, dir.path()).await;
    let status = settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    assert_eq!((status.generation, status.previous), (0, None));
    assert_eq!(models(dir.path(), SUMMARY), names(&["1.0.0.redb"]));
    assert_eq!(
        record(dir.path(), SUMMARY)["active"],
        json!({"version": "1.0.0", "generation": 0})
    );
    let a0 = summary(&projections, &runtime, "accounts", "a0").await;
    assert_eq!(a0["balance"], 3, "{a0}");
    // The next build gets a generation of its own.
    let status = projections.rebuild(SUMMARY).await.unwrap();
    assert_eq!(status.building.map(|build| build.generation), Some(1));
    let status = settled(&projections, &runtime, SUMMARY, "1.0.0").await;
    assert_eq!(status.generation, 1);
    assert_eq!(models(dir.path(), SUMMARY), names(&["1.0.0.g1.redb"]));
    projections.close().await;
    runtime.close().await.unwrap();
}
