//! The native reference of the runtime suites: bank-account's rules compiled into this
//! program, run through the same pipeline shape as `Runtime::execute` (formerly part of
//! the `runtime_bench` example).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use tally_runtime::Command;
use tally_runtime::tally_store::{
    AppendOptions, EventStore, ExpectedVersion, NewEvent, StreamId, StreamRead, Submitted,
};

use super::setup::TYPE;

/// The cached state of one aggregate in [`NativeRuntime`].
struct NativeCached {
    /// Events folded (the runtime's versions: 0 before the first event).
    version: u64,
    state: Vec<u8>,
}

type NativeSlot = Arc<tokio::sync::Mutex<Option<NativeCached>>>;

/// The runtime's command pipeline with bank-account compiled in: a slot per aggregate
/// (a FIFO async lock, in sharded maps) holding the cached state; the command is decided
/// under the lock, its events are queued with `submit` at the expected version, the lock
/// is released, and the answer waits for durability. So the one difference from
/// `Runtime::execute` is the plugin call (and its hand-off to a plugin thread).
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
    pub async fn execute(&self, id: &str, command: &Command) -> Result<u64> {
        let stream = StreamId::new(TYPE, id);
        let slot = self.slot(id);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let (version, state) = native_fold(&self.store, &stream).await?;
            *guard = Some(NativeCached { version, state });
        }
        let cached = guard.as_mut().expect("loaded");
        let events = match bank_account::handle(&cached.state, &command.name, &command.data) {
            Ok(events) => events,
            Err(rejection) => bail!("rejected: {} {}", rejection.code, rejection.message),
        };
        let state = bank_account::apply(
            &cached.state,
            events
                .iter()
                .map(|(name, data)| (name.as_str(), data.as_slice())),
        )
        .map_err(anyhow::Error::msg)?;
        let expected = match cached.version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version - 1),
        };
        let count = events.len() as u64;
        let new_events = events
            .into_iter()
            .map(|(name, data)| NewEvent::new(name, data))
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
        Ok(result.last_version() + 1)
    }
}

/// The state of `stream` folded natively from the store; (version, state). Read as the
/// runtime's fold reads: pages borrowed from the log (`read_stream_with`), one page read
/// ahead while this one is folded, batches of 512.
pub async fn native_fold(store: &EventStore, stream: &StreamId) -> Result<(u64, Vec<u8>)> {
    let mut state = bank_account::initial_state();
    let mut version = 0u64;
    let page = store.config().max_read_count;
    let read_page = |from: u64| {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move {
            store
                .read_stream_with(&stream, StreamRead::forward(from, page), |event| {
                    (event.name.to_owned(), event.data.to_vec())
                })
                .await
        })
    };
    let mut next = Some(read_page(0));
    while let Some(reading) = next.take() {
        let events = reading.await??;
        let read = events.len();
        if read == page {
            next = Some(read_page(version + page as u64));
        }
        for chunk in events.chunks(512) {
            state = bank_account::apply(
                &state,
                chunk
                    .iter()
                    .map(|(name, data)| (name.as_str(), data.as_slice())),
            )
            .map_err(anyhow::Error::msg)?;
        }
        version += read as u64;
    }
    Ok((version, state))
}

/// bank-account v1 compiled natively. It mirrors `plugins/bank-account/src/lib.rs` (the
/// rules: open once, positive amounts, no overdraft, close only when empty) and the SDK's
/// wire handling in `guest-sdk/src/raw.rs` and `codec.rs` (state as the struct's serde
/// JSON; command and event data parsed to a `serde_json::Value`, then to the enum;
/// events encoded through a `Value`), so that native and plugin do the same JSON work.
pub mod bank_account {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    #[derive(Serialize, Deserialize)]
    enum Command {
        OpenAccount { initial_balance: i64 },
        Deposit { amount: i64 },
        Withdraw { amount: i64 },
        CloseAccount,
    }

    #[derive(Serialize, Deserialize)]
    enum Event {
        AccountOpened { initial_balance: i64 },
        MoneyDeposited { amount: i64 },
        MoneyWithdrawn { amount: i64 },
        AccountClosed,
    }

    #[derive(Default, Serialize, Deserialize)]
    struct BankAccount {
        balance: i64,
        open: bool,
        closed: bool,
    }

    /// A refusal: a stable code and a message.
    pub struct Rejection {
        /// The stable code.
        pub code: &'static str,
        /// What went wrong, for people.
        pub message: String,
    }

    fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }

    impl BankAccount {
        fn require_open(&self) -> Result<(), Rejection> {
            if self.closed {
                return Err(reject("account-closed", "the account is closed"));
            }
            if !self.open {
                return Err(reject(
                    "account-not-open",
                    "the account has not been opened",
                ));
            }
            Ok(())
        }

        fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
            match command {
                Command::OpenAccount { initial_balance } => {
                    if self.closed {
                        return Err(reject(
                            "account-closed",
                            "a closed account cannot be reopened",
                        ));
                    }
                    if self.open {
                        return Err(reject(
                            "account-already-open",
                            "the account is already open",
                        ));
                    }
                    if initial_balance < 0 {
                        return Err(reject(
                            "invalid-amount",
                            format!("initial balance must not be negative, got {initial_balance}"),
                        ));
                    }
                    Ok(vec![Event::AccountOpened { initial_balance }])
                }
                Command::Deposit { amount } => {
                    self.require_open()?;
                    require_positive(amount)?;
                    if self.balance.checked_add(amount).is_none() {
                        return Err(reject(
                            "invalid-amount",
                            format!(
                                "depositing {amount} would overflow the balance {}",
                                self.balance
                            ),
                        ));
                    }
                    Ok(vec![Event::MoneyDeposited { amount }])
                }
                Command::Withdraw { amount } => {
                    self.require_open()?;
                    require_positive(amount)?;
                    if amount > self.balance {
                        return Err(reject(
                            "insufficient-funds",
                            format!("cannot withdraw {amount}: the balance is {}", self.balance),
                        ));
                    }
                    Ok(vec![Event::MoneyWithdrawn { amount }])
                }
                Command::CloseAccount => {
                    self.require_open()?;
                    if self.balance != 0 {
                        return Err(reject(
                            "balance-not-zero",
                            format!(
                                "the balance is {}; withdraw it before closing",
                                self.balance
                            ),
                        ));
                    }
                    Ok(vec![Event::AccountClosed])
                }
            }
        }

        fn apply(&mut self, event: Event) {
            match event {
                Event::AccountOpened { initial_balance } => {
                    self.open = true;
                    self.balance = initial_balance;
                }
                Event::MoneyDeposited { amount } => {
                    self.balance = self.balance.checked_add(amount).expect("checked");
                }
                Event::MoneyWithdrawn { amount } => {
                    self.balance = self.balance.checked_sub(amount).expect("checked");
                }
                Event::AccountClosed => {
                    self.open = false;
                    self.closed = true;
                }
            }
        }
    }

    fn require_positive(amount: i64) -> Result<(), Rejection> {
        if amount <= 0 {
            return Err(reject(
                "invalid-amount",
                format!("amount must be above zero, got {amount}"),
            ));
        }
        Ok(())
    }

    /// As the SDK's `parse_data`: blank means no data.
    fn parse_data(data: &[u8]) -> Result<Value, String> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(data).map_err(|error| format!("data is not JSON: {error}"))
    }

    /// As the SDK's `from_named`.
    fn from_named<T: DeserializeOwned>(name: &str, data: Value) -> Result<T, String> {
        let no_data = match &data {
            Value::Null => true,
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        let tagged = Value::Object(Map::from_iter([(name.to_owned(), data)]));
        match serde_json::from_value(tagged) {
            Ok(value) => Ok(value),
            Err(error) => {
                if no_data && let Ok(value) = serde_json::from_value(Value::String(name.to_owned()))
                {
                    return Ok(value);
                }
                Err(error.to_string())
            }
        }
    }

    /// As the SDK's `encode_event`: name and JSON data through a `Value`.
    fn encode_event(event: &Event) -> (String, Vec<u8>) {
        match serde_json::to_value(event).expect("events serialize") {
            Value::String(name) => (name, b"{}".to_vec()),
            Value::Object(map) => {
                let (name, data) = map.into_iter().next().expect("one entry");
                (name, serde_json::to_vec(&data).expect("a Value serializes"))
            }
            other => panic!("not an enum variant: {other}"),
        }
    }

    fn decode_state(state: &[u8]) -> Result<BankAccount, String> {
        serde_json::from_slice(state).map_err(|error| format!("state cannot be decoded: {error}"))
    }

    /// `initial-state`: the state of a new account.
    pub fn initial_state() -> Vec<u8> {
        serde_json::to_vec(&BankAccount::default()).expect("state serializes")
    }

    /// `handle`: the events (name, JSON data) a command produces, or its rejection.
    pub fn handle(
        state: &[u8],
        name: &str,
        data: &[u8],
    ) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
        let state =
            decode_state(state).map_err(|error| reject("invalid-state", error.to_string()))?;
        let invalid = |error: String| reject("invalid-command", format!("command {name}: {error}"));
        let command = from_named(name, parse_data(data).map_err(invalid)?).map_err(invalid)?;
        let events = state.handle(command)?;
        Ok(events.iter().map(encode_event).collect())
    }

    /// `apply`: folds events (name, JSON data) into the state.
    pub fn apply<'a>(
        state: &[u8],
        events: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Vec<u8>, String> {
        let mut state = decode_state(state)?;
        for (index, (name, data)) in events.enumerate() {
            let event = from_named(name, parse_data(data)?)
                .map_err(|error| format!("event {index} of the batch: {name}: {error}"))?;
            state.apply(event);
        }
        Ok(serde_json::to_vec(&state).expect("state serializes"))
    }
}
