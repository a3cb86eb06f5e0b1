//! The native references of the runtime suites: the bank-account plugin's own source
//! (`plugins/bank-account`, with the SDK's wire layer, `tally_sdk::__private::wire`)
//! compiled into this program, run as [`BankAccountRules`] inside `Runtime::execute` (the
//! reference of `native_commands_per_s`) and through [`NativeRuntime`], a bare
//! pipeline of the same shape (`bare_native_commands_per_s`). The plugin and its native
//! twin run the very same code; only the compiler target and the call boundary differ.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use bank_account::BankAccount;
use tally_runtime::tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, SchemaVersion, StreamId, StreamRead,
    StreamVersion, Submitted,
};
use tally_runtime::{Command, Decision, Event, NativeRules, Rejection};
use tally_sdk::__private::wire::{self, RawCommand, RawEvent};
use tally_sdk::Context;

use super::setup::TYPE;

/// The cached state of one aggregate in [`NativeRuntime`].
struct NativeCached {
    /// Events folded.
    version: StreamVersion,
    state: Vec<u8>,
}

type NativeSlot = Arc<tokio::sync::Mutex<Option<NativeCached>>>;

/// The runtime's command pipeline with bank-account compiled in: a slot per aggregate
/// (a FIFO async lock, in sharded maps) holding the cached state; the command is decided
/// under the lock, its events are queued with `submit` at the expected version, the lock
/// is released, and the answer waits for durability. Commands are decided with the
/// SDK's `wire::decide`, as the plugin's `decide` export does.
///
/// Besides the plugin call and its hand-off to a plugin thread, `Runtime::execute` does
/// bookkeeping this twin leaves out, so the twin is a lower bound on a native pipeline's
/// cost: the registry lookup of the active version, the id checks, the state cache's
/// byte budget and recency, the idempotency lookup, counters, snapshot scheduling, and
/// an outcome that carries the stored events.
pub struct NativeRuntime {
    store: EventStore,
    shards: Vec<Mutex<HashMap<String, NativeSlot>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl NativeRuntime {
    /// A native runtime over `store`.
    pub fn new(store: EventStore) -> NativeRuntime {
        NativeRuntime {
            store,
            shards: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    fn slot(&self, id: &str) -> NativeSlot {
        let mut hasher = self.hasher.build_hasher();
        id.hash(&mut hasher);
        let shard = std::hash::Hasher::finish(&hasher) as usize % self.shards.len();
        let mut map = self.shards[shard].lock().expect("shard lock");
        map.entry(id.to_owned()).or_default().clone()
    }

    /// Executes a command; returns the aggregate's version after it.
    pub async fn execute(&self, id: &str, command: &Command) -> Result<StreamVersion> {
        let stream = StreamId::new(TYPE, id);
        let slot = self.slot(id);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let (version, state) = native_fold(&self.store, &stream).await?;
            *guard = Some(NativeCached { version, state });
        }
        let cached = guard.as_mut().expect("loaded");
        let context = Context {
            aggregate_id: id.to_owned(),
            stream_version: cached.version.get(),
            now_ms: now_ms(),
        };
        let command = RawCommand {
            name: command.name.clone(),
            data: command.data.clone(),
        };
        let (events, state) = match wire::decide::<BankAccount>(&context, &cached.state, &command) {
            Ok(decided) => decided,
            Err(rejection) => bail!("rejected: {} {}", rejection.code, rejection.message),
        };
        let expected = ExpectedVersion::Exact(cached.version);
        let count = events.len() as u64;
        let new_events = events
            .into_iter()
            .map(|event| {
                NewEvent::new(event.name, event.data)
                    .with_schema_version(SchemaVersion::new(event.version))
            })
            .collect();
        let submitted = self
            .store
            .submit(&stream, expected, new_events, AppendOptions::default())
            .await?;
        let Submitted::Queued(queued) = submitted else {
            bail!("no command id, no duplicate");
        };
        cached.version += count;
        cached.state = state;
        drop(guard);
        let result = queued.durable().await?;
        Ok(result.last_version())
    }
}

/// bank-account's rules as [`NativeRules`]: `Runtime::execute` with everything but the
/// plugin call, the reference that isolates the call's cost. Decided with the SDK's
/// `wire::decide`, as the plugin's `decide` export does.
#[derive(Debug)]
pub struct BankAccountRules;

impl NativeRules for BankAccountRules {
    fn decide(
        &self,
        context: &tally_runtime::Context,
        state: &[u8],
        command: &Command,
    ) -> Decision {
        let context = Context {
            aggregate_id: context.aggregate_id.clone(),
            stream_version: context.stream_version,
            now_ms: context.now_ms,
        };
        let command = RawCommand {
            name: command.name.clone(),
            data: command.data.clone(),
        };
        match wire::decide::<BankAccount>(&context, state, &command) {
            Ok((events, state)) => Ok((
                events
                    .into_iter()
                    .map(|event| Event {
                        name: event.name,
                        version: event.version,
                        data: event.data,
                    })
                    .collect(),
                state,
            )),
            Err(rejection) => Err(Rejection {
                code: rejection.code,
                message: rejection.message,
            }),
        }
    }
}

/// The state of `stream` folded natively from the store; (version, state). Read as the
/// runtime's fold reads: pages borrowed from the log (`read_stream_with`), one page read
/// ahead while this one is folded, batches of 512.
pub async fn native_fold(
    store: &EventStore,
    stream: &StreamId,
) -> Result<(StreamVersion, Vec<u8>)> {
    let mut state = wire::initial_state::<BankAccount>();
    let mut version = StreamVersion::ZERO;
    let page = store.config().max_read_count;
    let read_page = |from: StreamVersion| {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move {
            store
                .read_stream_with(&stream, StreamRead::forward(from, page), |event| RawEvent {
                    name: event.name.to_owned(),
                    version: event.schema_version.get(),
                    data: event.data.to_vec(),
                })
                .await
        })
    };
    let mut next = Some(read_page(version.next()));
    while let Some(reading) = next.take() {
        let events = reading.await??;
        let read = events.len();
        if read == page {
            next = Some(read_page(version.next() + page as u64));
        }
        for chunk in events.chunks(512) {
            state = wire::apply::<BankAccount>(&state, chunk).map_err(anyhow::Error::msg)?;
        }
        version += read as u64;
    }
    Ok((version, state))
}

/// The host's clock as the runtime gives it to `handle`.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
