//! Group commit: many appends in one call of `tally_append`, one check each.

use tally_store::{AppendOptions, ExpectedVersion, GlobalPosition, StreamRead, StreamVersion};
use tally_store_postgres::{AppendRequest, PgStoreError};

use crate::{database_or_skip, events, exact, no_command, stream};

fn request(id: &str, expected: ExpectedVersion, options: AppendOptions) -> AppendRequest {
    AppendRequest::new(stream(id), expected, events("E", 2), options)
}

#[tokio::test]
async fn a_batch_commits_every_command_but_the_one_that_conflicts() {
    let database = database_or_skip!();
    let store = database.open().await;
    store
        .append(&stream("b"), exact(0), events("Opened", 1), no_command())
        .await
        .unwrap();

    let results = store
        .append_batch(vec![
            request("a", exact(0), AppendOptions::command("c-a")),
            // Conflicts: b is at version 1.
            request("b", exact(0), AppendOptions::command("c-b")),
            request("c", exact(0), AppendOptions::command("c-c")),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    let a = results[0].as_ref().unwrap();
    assert!(matches!(
        &results[1],
        Err(PgStoreError::WrongExpectedVersion { actual, .. }) if *actual == StreamVersion::FIRST
    ));
    let c = results[2].as_ref().unwrap();
    // Dense: the conflicting command took no positions.
    assert_eq!(a.first_position, GlobalPosition::new(1));
    assert_eq!(c.first_position, GlobalPosition::new(3));
    assert_eq!(store.end_position().await.unwrap(), GlobalPosition::new(5));
    for (id, version) in [("a", 2), ("b", 1), ("c", 2)] {
        assert_eq!(
            store.stream_version(&stream(id)).await.unwrap(),
            StreamVersion::new(version)
        );
    }
    // The conflicting command's id stays unused; the others' are kept.
    assert!(store.command_result("c-b").await.unwrap().is_none());
    assert!(store.command_result("c-a").await.unwrap().is_some());
    assert_eq!(store.batch_stats().batches, 2);
    store.close().await.unwrap();
}

#[tokio::test]
async fn each_command_of_a_batch_is_checked_after_the_ones_before_it() {
    let database = database_or_skip!();
    let store = database.open().await;
    let results = store
        .append_batch(vec![
            request("a", exact(0), AppendOptions::command("c-1")),
            request("a", exact(2), AppendOptions::command("c-2")),
            // A retry of c-1 in the same batch: its result, nothing appended.
            request("a", exact(0), AppendOptions::command("c-1")),
            // An invalid one is refused on its own.
            AppendRequest::new(stream("a"), ExpectedVersion::Any, vec![], no_command()),
        ])
        .await
        .unwrap();
    let first = results[0].as_ref().unwrap();
    let second = results[1].as_ref().unwrap();
    let retry = results[2].as_ref().unwrap();
    assert_eq!(second.first_version, StreamVersion::new(3));
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, first.first_position);
    assert!(matches!(results[3], Err(PgStoreError::InvalidInput(_))));
    let stored = store
        .read_stream(&stream("a"), StreamRead::forward(StreamVersion::FIRST, 10))
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_through_one_store_share_batches() {
    let database = database_or_skip!();
    let store = database.open().await;
    let appends = 200;
    let tasks: Vec<_> = (0..appends)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let account = stream(&format!("s{i}"));
                store
                    .append(
                        &account,
                        exact(0),
                        events("E", 1),
                        AppendOptions::command(format!("c-{i}")),
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.batch_stats();
    assert_eq!(stats.appends, appends);
    assert!(
        stats.batches < appends,
        "{} appends took {} batches: none shared a commit",
        stats.appends,
        stats.batches
    );
    assert_eq!(
        store.end_position().await.unwrap(),
        GlobalPosition::new(appends)
    );
    store.close().await.unwrap();
}
