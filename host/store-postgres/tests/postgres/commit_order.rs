//! Positions become visible only in commit order: a reader never passes a position that
//! a transaction committing later fills in (the `bigserial` trap).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tally_store::{ExpectedVersion, GlobalPosition, StreamVersion};

use crate::{database_or_skip, events, no_command, stream};

/// One append of one event to `t/a` by a plain call of `tally_append`.
const APPEND_ONE: &str = "SELECT out_outcome FROM tally_append(ARRAY['account'], ARRAY['held'], \
     ARRAY[NULL]::bigint[], ARRAY[NULL]::text[], ARRAY[NULL]::bytea[], ARRAY[NULL]::text[], \
     ARRAY[NULL]::text[], ARRAY[1], ARRAY['Held'], ARRAY[1], ARRAY['{}'::bytea], ARRAY[''::bytea])";

#[tokio::test]
async fn an_append_in_flight_holds_back_the_next_one_and_stays_invisible() {
    let database = database_or_skip!();
    let store = database.open().await;
    let mut held = database.connect().await;
    let transaction = held.transaction().await.unwrap();
    let outcome: i16 = transaction.query_one(APPEND_ONE, &[]).await.unwrap().get(0);
    assert_eq!(outcome, 0);

    // Another append has to wait for the first to commit.
    let later = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    &stream("later"),
                    ExpectedVersion::Any,
                    events("Later", 1),
                    no_command(),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !later.is_finished(),
        "an append went ahead of one in flight"
    );
    assert_eq!(store.end_position().await.unwrap(), GlobalPosition::START);
    assert!(
        store
            .read_all(GlobalPosition::START, 10)
            .await
            .unwrap()
            .is_empty()
    );

    transaction.commit().await.unwrap();
    let later = later.await.unwrap().unwrap();
    assert_eq!(
        later.first_position,
        GlobalPosition::new(1),
        "the later commit has the later position"
    );
    let log = store.read_all(GlobalPosition::START, 10).await.unwrap();
    let names: Vec<&str> = log.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Held", "Later"]);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_hole() {
    let database = database_or_skip!();
    let store = database.open().await;
    let mut held = database.connect().await;
    let transaction = held.transaction().await.unwrap();
    transaction.query_one(APPEND_ONE, &[]).await.unwrap();
    transaction.rollback().await.unwrap();
    let next = store
        .append(
            &stream("a"),
            ExpectedVersion::Any,
            events("E", 1),
            no_command(),
        )
        .await
        .unwrap();
    assert_eq!(next.first_position, GlobalPosition::START);
    store.close().await.unwrap();
}

/// Stores (hosts) appending at once, and each store's tasks at once.
const HOSTS: usize = 3;
const TASKS: usize = 4;
const APPENDS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_never_let_a_reader_skip_a_position() {
    let database = database_or_skip!();
    let mut stores = Vec::new();
    for _ in 0..HOSTS {
        stores.push(database.open().await);
    }
    let reader_store = database.open().await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_densely(reader_store.clone(), done.clone()));

    let mut appenders = Vec::new();
    for (host, store) in stores.iter().enumerate() {
        for task in 0..TASKS {
            appenders.push(tokio::spawn(append_many(store.clone(), host, task)));
        }
    }
    let mut expected = 0;
    for appender in appenders {
        expected += appender.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    // The reader saw every event, each at the position it still has.
    assert_eq!(seen.len() as u64, expected);
    let all = reader_store
        .read_all(GlobalPosition::START, 100_000)
        .await
        .unwrap();
    let now: Vec<(u64, String, u64)> = all
        .iter()
        .map(|e| (e.position.get(), e.stream.to_string(), e.version.get()))
        .collect();
    assert_eq!(seen, now);
    check_versions_dense(&all);
    for store in stores {
        store.close().await.unwrap();
    }
    reader_store.close().await.unwrap();
}

/// Appends `APPENDS` times 1 to 3 events, to streams shared with other tasks; returns
/// the events appended.
async fn append_many(
    store: tally_store_postgres::PostgresEventStore,
    host: usize,
    task: usize,
) -> u64 {
    let mut appended = 0;
    for i in 0..APPENDS {
        let account = stream(&format!("s{}", (host + task + i) % 5));
        let count = 1 + (host * 7 + task * 3 + i) % 3;
        let result = store
            .append(
                &account,
                ExpectedVersion::Any,
                events("E", count),
                no_command(),
            )
            .await
            .unwrap();
        appended += result.count;
    }
    appended
}

/// Reads the log as a subscriber would, from where it got to, checking that each read
/// starts exactly there and is dense: a position skipped now and filled in later would
/// show as a read that starts past it.
async fn read_densely(
    store: tally_store_postgres::PostgresEventStore,
    done: Arc<AtomicBool>,
) -> Vec<(u64, String, u64)> {
    let mut seen = Vec::new();
    let mut next = GlobalPosition::START;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let page = store.read_all(next, 64).await.unwrap();
        for event in &page {
            assert_eq!(event.position, next, "a read skipped a position");
            seen.push((
                event.position.get(),
                event.stream.to_string(),
                event.version.get(),
            ));
            next = next.next();
        }
        if finished && page.is_empty() {
            return seen;
        }
        tokio::task::yield_now().await;
    }
}

/// Every stream's versions run 1, 2, 3, ... in position order.
fn check_versions_dense(all: &[tally_store::RecordedEvent]) {
    let mut versions: HashMap<String, StreamVersion> = HashMap::new();
    for event in all {
        let version = versions.entry(event.stream.to_string()).or_default();
        *version = version.next();
        assert_eq!(event.version, *version, "{}", event.stream);
    }
}
