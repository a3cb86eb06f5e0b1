//! The committer commits durable appends in batches of at most
//! `StoreConfig::max_commit_batch`: whatever the batch size, every append is answered
//! with the positions and versions it has in the log, in order, and a reopened store
//! reads the same.

mod common;

use std::collections::HashMap;

use common::{append, position};
use tally_store::{
    AppendResult, EventStore, ExpectedVersion, NewEvent, StoreConfig, StoreError, StreamId,
    StreamVersion,
};

const WRITERS: u64 = 48;
const APPENDS_EACH: u64 = 20;

/// Every writer appends to its own stream and to one shared stream; returns every
/// append's stream and answer.
async fn append_from_many_writers(store: &EventStore) -> Vec<(StreamId, AppendResult)> {
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0..APPENDS_EACH {
                let stream = if n % 2 == 0 {
                    StreamId::new("t", format!("w{writer}"))
                } else {
                    StreamId::new("t", "shared")
                };
                let events = (0..=n % 3)
                    .map(|i| NewEvent::new("E", format!(r#"{{"w":{writer},"n":{n},"i":{i}}}"#)))
                    .collect();
                let result = append(&store, &stream, ExpectedVersion::Any, events).await;
                answers.push((stream, result));
            }
            answers
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Checks the answers against the log: positions dense from 0, each stream's versions
/// dense from 1, and each answer naming exactly its events.
async fn check_against_the_log(store: &EventStore, answers: &[(StreamId, AppendResult)]) {
    let events = store.read_all(position(0), 100_000).await.unwrap();
    let total: u64 = answers.iter().map(|(_, result)| result.count).sum();
    assert_eq!(events.len() as u64, total);
    let mut versions: HashMap<StreamId, StreamVersion> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.position, position(i as u64));
        let version = versions.entry(event.stream.clone()).or_default();
        *version = version.next();
        assert_eq!(event.version, *version, "{}", event.stream);
    }
    for (stream, result) in answers {
        for i in 0..result.count {
            let event = &events[(result.first_position + i).get() as usize];
            assert_eq!(&event.stream, stream);
            assert_eq!(event.version, result.first_version + i);
        }
    }
    assert_eq!(store.end_position(), position(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_match_the_log_whatever_the_batch_size() {
    for max_commit_batch in [1, 3, 256] {
        let dir = tempfile::tempdir().unwrap();
        let config = || StoreConfig {
            max_commit_batch,
            ..StoreConfig::new(dir.path())
        };
        let (store, _) = EventStore::open(config()).await.unwrap();
        let answers = append_from_many_writers(&store).await;
        check_against_the_log(&store, &answers).await;
        store.close().await.unwrap();

        let (store, _) = EventStore::open(config()).await.unwrap();
        check_against_the_log(&store, &answers).await;
        store.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_commit_batch_of_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let refused = EventStore::open(StoreConfig {
        max_commit_batch: 0,
        ..StoreConfig::new(dir.path())
    })
    .await;
    match refused {
        Err(StoreError::InvalidInput(message)) => {
            assert!(message.contains("max_commit_batch"), "{message}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
