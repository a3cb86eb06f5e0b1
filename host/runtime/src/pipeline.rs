//! The command pipeline: one command at a time per aggregate, in arrival order,
//! different aggregates in parallel.
//!
//! A command takes its aggregate's slot (a FIFO lock), gets the state (cached, or
//! rebuilt under the active plugin), has one plugin instance decide it (`decide`:
//! the events and the state after them; `handle` then `apply` for 1.0.0
//! plugins), and queues the events in the store with the expected version the
//! state was built at. The slot is released as soon as the append is queued, before it is
//! durable: the next command of the aggregate decides against the new state while
//! the log syncs, and its append is queued behind. The store writes queued appends
//! in order and fails everything queued after a failed one, so a command never
//! succeeds on top of events that were lost; a failure marks the cached state stale
//! and it is rebuilt from the log. A command is answered only once its events are
//! durable. On PostgreSQL the slot is held until the append committed (see
//! [`StoreBackend::submit`](crate::StoreBackend::submit)); an append refused there
//! because another host wrote to the aggregate first rebuilds the state and decides
//! the command again, as an append refused as out of date does on the log.
//!
//! A command with a command id is checked against the store's earlier appends once it
//! has its slot, before it is decided: a retry (the same command fingerprint) answers
//! the first attempt's outcome, waiting for it while it is in flight, and a reuse of
//! the id for another command is refused. Deciding a retry again would run it against
//! a state that includes the first attempt's events, where a rule may reject it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tally_store::{
    AppendOptions, AppendResult, EventLog, ExpectedVersion, LogError, NewEvent, SchemaVersion,
    StreamId, StreamRead, StreamVersion,
};

use crate::api::{ExecuteOptions, NativeRules, Outcome, StoredEvent};
use crate::backend::{PendingAppend, Submission};
use crate::error::CommandError;
use crate::fingerprint::command_fingerprint;
use crate::registry::{PluginVersion, TypeEntry, now_ms};
use crate::runtime::{Runtime, plugin_error, stored_event};
use crate::state_cache::{Cached, Slot};
use crate::{CallError, Command, Context, Decision, Event};

/// Attempts of a command whose append the store refuses as out of date (each after
/// rebuilding the state from the log).
const MAX_ATTEMPTS: u32 = 4;

/// The aggregate a command is for, and what deciding it needs besides the state.
struct Target<'a> {
    entry: Arc<TypeEntry>,
    stream: StreamId,
    /// Rules compiled into the host that decide in place of the plugin, if configured.
    native_rules: Option<&'a dyn NativeRules>,
    slot: Arc<Slot>,
    options: ExecuteOptions,
    /// The store's options for the command's append: its ids and fingerprint.
    append: AppendOptions,
}

/// How one turn of a command in its aggregate's slot ended.
enum Turn {
    /// Answered without appending: the command changed nothing.
    Unchanged(Outcome),
    /// The events are queued in the log; the slot is free for the next command.
    Queued(Appending),
    /// An append of the same command id and command is durable: its outcome answers.
    Duplicate(AppendResult, Arc<PluginVersion>),
    /// The log moved without this slot: the command, handed back, is to be decided
    /// again on a rebuilt state.
    OutOfDate(Command),
}

/// A command's events, queued in the log, on their way to being durable.
struct Appending {
    queued: PendingAppend,
    events: Vec<Event>,
    plugin: Arc<PluginVersion>,
    /// The aggregate's version once the events are durable.
    version: StreamVersion,
    /// The state at `version`, when a snapshot is due with these events.
    snapshot: Option<Bytes>,
    /// Bytes of the cached state, accounted in the cache once the append is answered.
    state_len: usize,
}

impl Runtime {
    /// Executes `command` on aggregate `aggregate_id` of `aggregate_type` through the
    /// active plugin. Returns once the events are durable; nothing is appended when
    /// it fails.
    pub async fn execute(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        command: Command,
        options: ExecuteOptions,
    ) -> Result<Outcome, CommandError> {
        let _running = self.enter().ok_or(CommandError::Closed)?;
        let entry = self.commanded_type(aggregate_type)?;
        let stream = self.checked_stream(aggregate_type, aggregate_id, &command, &options)?;
        let append = append_options(&stream, &command, &options);
        let target = Target {
            entry,
            native_rules: self.native_rules(aggregate_type),
            slot: self.inner.cache.slot(&stream),
            stream,
            options,
            append,
        };
        self.take_turns(target, command).await
    }

    /// Takes turns in the aggregate's slot until one answers the command: a turn whose
    /// append the store refuses as out of date is taken again on a state rebuilt from
    /// the log, up to [`MAX_ATTEMPTS`] turns in all.
    async fn take_turns(
        &self,
        target: Target<'_>,
        mut command: Command,
    ) -> Result<Outcome, CommandError> {
        for _ in 0..MAX_ATTEMPTS {
            match self.take_turn(&target, command).await? {
                Turn::Unchanged(outcome) => return Ok(outcome),
                Turn::Queued(appending) => return self.finish(target, appending).await,
                Turn::Duplicate(result, plugin) => {
                    return self.duplicate(&target.stream, result, &plugin).await;
                }
                Turn::OutOfDate(returned) => {
                    // The log moved without this slot (an append failed, or someone
                    // wrote to the stream directly): rebuild and decide again.
                    target.slot.mark_stale();
                    command = returned;
                }
            }
        }
        Err(keeps_failing(&target))
    }

    /// The type entry of `aggregate_type`, which must have an active plugin.
    fn commanded_type(&self, aggregate_type: &str) -> Result<Arc<TypeEntry>, CommandError> {
        let (entry, _) = self
            .active_type(aggregate_type)
            .ok_or_else(|| CommandError::UnknownAggregateType(aggregate_type.to_owned()))?;
        Ok(entry)
    }

    /// Checks the names a command brings before anything runs; the aggregate's stream.
    fn checked_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        command: &Command,
        options: &ExecuteOptions,
    ) -> Result<StreamId, CommandError> {
        let max_len = self.inner.store.max_name_len();
        check_name("aggregate id", aggregate_id, max_len)?;
        check_name("command name", &command.name, max_len)?;
        if let Some(command_id) = &options.command_id {
            check_name("command id", command_id, max_len)?;
        }
        Ok(StreamId::new(aggregate_type, aggregate_id))
    }

    /// The result of an earlier append of this command (its command id and
    /// fingerprint): a durable one, or one in flight once it is durable; an error if the
    /// id was used for another command. Nothing is decided again for a retry.
    async fn earlier_append(
        &self,
        target: &Target<'_>,
    ) -> Result<Option<AppendResult>, CommandError> {
        if target.append.command_id.is_none() {
            return Ok(None);
        }
        self.inner
            .store
            .earlier_append(&target.stream, &target.append)
            .await
            .map_err(store_error)
    }

    /// One turn in the aggregate's slot: the state ensured, the expected version
    /// checked, the command decided, its events queued in the log at the version the
    /// state was built at, and the cached state moved past them. The slot is released
    /// when this returns, before the events are durable.
    async fn take_turn(&self, target: &Target<'_>, command: Command) -> Result<Turn, CommandError> {
        let mut guard = target.slot.state.lock().await;
        // The version active when the command's turn comes decides it.
        let plugin = target
            .entry
            .active()
            .ok_or_else(|| CommandError::UnknownAggregateType(target.entry.name.clone()))?;
        // In the slot, the append of an earlier command of this aggregate is queued
        // (or answered), so a retry of it is found here.
        if let Some(result) = self.earlier_append(target).await? {
            return Ok(Turn::Duplicate(result, plugin));
        }
        self.ensure_state(&mut guard, &target.slot, &target.stream, &plugin)
            .await?;
        let cached = guard.cached.as_mut().expect("ensured");
        check_expected_version(target.options.expected_version, cached.version)?;
        let ((events, state), command) = self
            .decide_command(target, &plugin, cached, command)
            .await?;
        if events.is_empty() {
            return Ok(Turn::Unchanged(Outcome {
                version: cached.version,
                events: Vec::new(),
                duplicate: false,
                plugin_version: plugin.version().clone(),
            }));
        }
        let queued = match self.submit_events(target, cached.version, &events).await {
            Ok(Submission::Queued(queued)) => queued,
            Ok(Submission::Duplicate(result)) => return Ok(Turn::Duplicate(result, plugin)),
            Err(LogError::WrongExpectedVersion { .. }) => return Ok(Turn::OutOfDate(command)),
            Err(error) => return Err(store_error(error)),
        };
        let appending = self.advance_cached(cached, queued, events, state, plugin);
        target.slot.begin_append();
        Ok(Turn::Queued(appending))
    }

    /// Has the native rules, or one instance of `plugin`, decide the command against
    /// the cached state, and counts the answer; a rejection is an error. Returns the
    /// events with the state after them, and the command (handed back for a retry).
    async fn decide_command(
        &self,
        target: &Target<'_>,
        plugin: &Arc<PluginVersion>,
        cached: &Cached,
        command: Command,
    ) -> Result<((Vec<Event>, Vec<u8>), Command), CommandError> {
        let context = Context {
            aggregate_id: target.stream.aggregate_id.to_string(),
            stream_version: cached.version.get(),
            now_ms: now_ms(),
        };
        let (decision, command) = match target.native_rules {
            Some(rules) => (rules.decide(&context, &cached.state, &command), command),
            None => decide(plugin, context, cached.state.clone(), command)
                .await
                .map_err(|error| plugin_error(plugin, error))?,
        };
        match decision {
            Ok(decided) => {
                plugin.counters.handled.fetch_add(1, Ordering::Relaxed);
                Ok((decided, command))
            }
            Err(rejection) => {
                plugin.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(CommandError::Rejected(rejection))
            }
        }
    }

    /// Queues the decided events in the store, expecting the stream at `version`, the
    /// version the state was built at.
    async fn submit_events(
        &self,
        target: &Target<'_>,
        version: StreamVersion,
        events: &[Event],
    ) -> Result<Submission, LogError> {
        let new_events = events
            .iter()
            .map(|event| {
                NewEvent::new(event.name.clone(), event.data.clone())
                    .with_schema_version(SchemaVersion::new(event.version))
            })
            .collect();
        let expected = ExpectedVersion::Exact(version);
        self.inner
            .store
            .submit(&target.stream, expected, new_events, target.append.clone())
            .await
    }

    /// Moves the cached state past the queued events (the next command of the
    /// aggregate decides against it while the log syncs), and takes a snapshot of it
    /// when one is due.
    fn advance_cached(
        &self,
        cached: &mut Cached,
        queued: PendingAppend,
        events: Vec<Event>,
        state: Vec<u8>,
        plugin: Arc<PluginVersion>,
    ) -> Appending {
        let count = events.len() as u64;
        cached.version += count;
        cached.state = Bytes::from(state);
        cached.since_snapshot += count;
        let snapshot = self.snapshot_due(cached.since_snapshot).then(|| {
            cached.since_snapshot = 0;
            cached.state.clone()
        });
        Appending {
            queued,
            events,
            plugin,
            version: cached.version,
            snapshot,
            state_len: cached.state.len(),
        }
    }

    /// Waits until the command's events are durable (or failed: the slot's state is
    /// then stale), accounts the slot in the cache, writes a snapshot that is due, and
    /// answers.
    async fn finish(
        &self,
        target: Target<'_>,
        appending: Appending,
    ) -> Result<Outcome, CommandError> {
        let durable = appending.queued.durable().await;
        target.slot.end_append(durable.as_ref().err());
        self.inner
            .cache
            .account(&target.stream, &target.slot, appending.state_len);
        let result = durable?;
        debug_assert_eq!(
            result.last_version(),
            appending.version,
            "the append of {} continued the version its state was built at",
            target.stream
        );
        if let Some(state) = appending.snapshot {
            let plugin = &appending.plugin;
            self.save_snapshot(target.stream, appending.version, plugin, state);
        }
        Ok(Outcome {
            version: result.last_version(),
            events: appended_events(appending.events, &result, target.options.command_id),
            duplicate: false,
            plugin_version: appending.plugin.version().clone(),
        })
    }

    /// The native rules configured for `aggregate_type`, if any (see [`NativeRules`]).
    #[cfg(feature = "native-rules")]
    fn native_rules(&self, aggregate_type: &str) -> Option<&dyn NativeRules> {
        let rules = &self.inner.config.native_rules;
        if rules.is_empty() {
            return None;
        }
        rules.get(aggregate_type).map(|rules| &**rules)
    }

    /// Without the feature `native-rules`, the plugin always decides.
    #[cfg(not(feature = "native-rules"))]
    fn native_rules(&self, _aggregate_type: &str) -> Option<&dyn NativeRules> {
        None
    }

    fn snapshot_due(&self, since_snapshot: u64) -> bool {
        let every = self.inner.config.snapshot_every;
        every > 0 && since_snapshot >= every
    }

    /// Writes a snapshot in the background; a failure is logged and counted (the
    /// next one is due after another `snapshot_every` events).
    fn save_snapshot(
        &self,
        stream: StreamId,
        version: StreamVersion,
        plugin: &PluginVersion,
        state: Bytes,
    ) {
        let runtime = self.clone();
        let tag = plugin.tag.clone();
        tokio::spawn(async move {
            let counters = &runtime.inner.counters;
            let saved = runtime
                .inner
                .store
                .save_snapshot(&stream, version, &tag, state)
                .await;
            match saved {
                Ok(()) => counters.snapshots_written.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    tracing::warn!(%stream, %version, %error, "snapshot not written");
                    counters.snapshot_failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }

    /// The outcome of a command that was applied before: its events, read back.
    async fn duplicate(
        &self,
        stream: &StreamId,
        result: AppendResult,
        plugin: &PluginVersion,
    ) -> Result<Outcome, CommandError> {
        let read = StreamRead::forward(result.first_version, result.count as usize);
        let events = self.inner.store.read_stream(stream, read).await?;
        Ok(Outcome {
            version: result.last_version(),
            events: events.into_iter().map(stored_event).collect(),
            duplicate: true,
            plugin_version: plugin.version().clone(),
        })
    }
}

/// The store's options for the append of `command` to `stream`: the ids of `options`,
/// and the command's fingerprint when it has a command id.
fn append_options(stream: &StreamId, command: &Command, options: &ExecuteOptions) -> AppendOptions {
    let command_fingerprint = options
        .command_id
        .as_ref()
        .map(|_| command_fingerprint(stream, command));
    AppendOptions {
        command_id: options.command_id.clone(),
        command_fingerprint,
        correlation_id: options.correlation_id.clone(),
        causation_id: options.causation_id.clone(),
    }
}

/// A store error in the runtime's terms: a command id used for another command is
/// the caller's mistake, not a failure of the store.
fn store_error(error: LogError) -> CommandError {
    match error {
        LogError::CommandIdReused { command_id, stream } => CommandError::CommandIdReused {
            command_id,
            stream: stream.to_string(),
        },
        other => CommandError::Store(other),
    }
}

/// Refuses a command whose caller expected the aggregate at another version.
fn check_expected_version(
    expected: Option<StreamVersion>,
    actual: StreamVersion,
) -> Result<(), CommandError> {
    match expected {
        Some(expected) if expected != actual => {
            Err(CommandError::WrongExpectedVersion { expected, actual })
        }
        _ => Ok(()),
    }
}

/// The error of a command whose append is still refused as out of date after
/// rebuilding its state each time: the log keeps failing the aggregate's appends (a
/// full disk) or others keep writing to it.
fn keeps_failing(target: &Target<'_>) -> CommandError {
    let slot = &target.slot;
    let last_failure = slot
        .last_failure()
        .unwrap_or_else(|| "a concurrent write".into());
    LogError::Unavailable {
        reason: format!(
            "appends to {} keep failing; the last failure: {last_failure}",
            target.stream
        ),
        storage_full: slot.last_failure_was_storage_full(),
    }
    .into()
}

/// Decides the command on one instance of `plugin` (`decide`, or `handle` then
/// `apply` for a 1.0.0 plugin; see [`PluginInstance::decide`](crate::PluginInstance::decide)).
///
/// The command travels to the plugin thread and back rather than being copied (a
/// retried command is decided again); the state is shared with the cache.
async fn decide(
    plugin: &Arc<PluginVersion>,
    context: Context,
    state: Bytes,
    command: Command,
) -> Result<(Decision, Command), CallError> {
    plugin
        .run(move |instance| {
            let decision = instance.decide(&context, &state, &command)?;
            Ok((decision, command))
        })
        .await
}

/// The events of a durable append, in the runtime's terms.
fn appended_events(
    events: Vec<Event>,
    result: &AppendResult,
    command_id: Option<String>,
) -> Vec<StoredEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let (position, version) = result.event_at(i as u64);
            StoredEvent {
                position,
                version,
                name: event.name,
                schema_version: SchemaVersion::new(event.version),
                timestamp_ms: result.timestamp_ms,
                command_id: command_id.clone(),
                data: Bytes::from(event.data),
            }
        })
        .collect()
}

/// Checks an id before anything runs: not empty, not too long, no control characters.
fn check_name(what: &str, value: &str, max: usize) -> Result<(), CommandError> {
    if value.is_empty() {
        return Err(CommandError::Invalid(format!("the {what} is empty")));
    }
    if value.len() > max {
        return Err(CommandError::Invalid(format!(
            "the {what} is {} bytes long; the limit is {max}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(CommandError::Invalid(format!(
            "the {what} contains control characters"
        )));
    }
    Ok(())
}
