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
//! durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tally_store::{
    AppendOptions, AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId, StreamRead,
    Submitted,
};

use crate::api::{ExecuteOptions, NativeRules, Outcome, StoredEvent};
use crate::error::CommandError;
use crate::registry::{PluginVersion, now_ms};
use crate::runtime::{Runtime, plugin_error, stored_event};
use crate::{CallError, Command, Context, Decision, Event};

/// Attempts of a command whose append the store refuses as out of date (each after
/// rebuilding the state from the log).
const MAX_ATTEMPTS: u32 = 4;

impl Runtime {
    /// Executes `command` on aggregate `aggregate_id` of `aggregate_type` through the
    /// active plugin. Returns once the events are durable; nothing is appended when
    /// it fails.
    pub async fn execute(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        mut command: Command,
        options: ExecuteOptions,
    ) -> Result<Outcome, CommandError> {
        let _running = self.enter().ok_or(CommandError::Closed)?;
        let (entry, _) = self
            .active_type(aggregate_type)
            .ok_or_else(|| CommandError::UnknownAggregateType(aggregate_type.to_owned()))?;
        let native_rules = self.native_rules(aggregate_type);
        let max_len = self.inner.config.store.max_name_len;
        check_name("aggregate id", aggregate_id, max_len)?;
        check_name("command name", &command.name, max_len)?;
        let stream = StreamId::new(aggregate_type, aggregate_id);
        if let Some(command_id) = &options.command_id {
            check_name("command id", command_id, max_len)?;
            if let Some((used_for, result)) = self.inner.store.command_result(command_id) {
                return self
                    .duplicate(&stream, &used_for, command_id, result, entry.active())
                    .await;
            }
        }

        let slot = self.inner.cache.slot(&stream);
        let mut attempts = 1;
        loop {
            let mut guard = slot.state.lock().await;
            // The version active when the command's turn comes decides it.
            let plugin = entry
                .active()
                .ok_or_else(|| CommandError::UnknownAggregateType(aggregate_type.to_owned()))?;
            self.ensure_state(&mut guard, &slot, &stream, &plugin)
                .await?;
            let cached = guard.cached.as_mut().expect("ensured");
            if let Some(expected) = options.expected_version
                && expected != cached.version
            {
                return Err(CommandError::WrongExpectedVersion {
                    expected,
                    actual: cached.version,
                });
            }
            let context = Context {
                aggregate_id: aggregate_id.to_owned(),
                stream_version: cached.version,
                now_ms: now_ms(),
            };
            let decision = match native_rules {
                Some(rules) => rules.decide(&context, &cached.state, &command),
                None => match decide(&plugin, context, cached.state.clone(), command).await {
                    Ok((decision, returned)) => {
                        command = returned;
                        decision
                    }
                    Err(error) => return Err(plugin_error(&plugin, error)),
                },
            };
            let (events, state) = match decision {
                Ok(decided) => decided,
                Err(rejection) => {
                    plugin.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(CommandError::Rejected(rejection));
                }
            };
            plugin.counters.handled.fetch_add(1, Ordering::Relaxed);
            if events.is_empty() {
                return Ok(Outcome {
                    version: cached.version,
                    events: Vec::new(),
                    duplicate: false,
                    plugin_version: plugin.version().clone(),
                });
            }

            let new_events = events
                .iter()
                .map(|event| {
                    NewEvent::new(event.name.clone(), event.data.clone())
                        .with_schema_version(event.version)
                })
                .collect();
            let expected = match cached.version {
                0 => ExpectedVersion::NoStream,
                version => ExpectedVersion::Exact(version - 1),
            };
            let append_options = AppendOptions {
                command_id: options.command_id.clone(),
                correlation_id: options.correlation_id.clone(),
                causation_id: options.causation_id.clone(),
            };
            let submitted = self
                .inner
                .store
                .submit(&stream, expected, new_events, append_options)
                .await;
            let queued = match submitted {
                Ok(Submitted::Queued(queued)) => queued,
                Ok(Submitted::Duplicate(result)) => {
                    drop(guard);
                    let command_id = options.command_id.as_deref().unwrap_or_default();
                    return self
                        .duplicate(&stream, &stream, command_id, result, Some(plugin))
                        .await;
                }
                Err(StoreError::WrongExpectedVersion { .. }) if attempts < MAX_ATTEMPTS => {
                    // The log moved without this slot (an append failed, or someone
                    // wrote to the stream directly): rebuild and decide again.
                    slot.mark_stale();
                    attempts += 1;
                    continue;
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    // Still out of step after rebuilding: the log keeps failing this
                    // aggregate's appends (a full disk) or others keep writing to it.
                    slot.mark_stale();
                    return Err(StoreError::Unavailable {
                        reason: format!(
                            "appends to {stream} keep failing; the last failure: {}",
                            slot.last_failure()
                                .unwrap_or_else(|| "a concurrent write".into())
                        ),
                        storage_full: slot.last_failure_was_storage_full(),
                    }
                    .into());
                }
                Err(error) => return Err(error.into()),
            };

            let count = events.len() as u64;
            cached.version += count;
            cached.state = Bytes::from(state);
            cached.since_snapshot += count;
            let snapshot = self.snapshot_due(cached.since_snapshot).then(|| {
                cached.since_snapshot = 0;
                (cached.version, cached.state.clone())
            });
            let state_len = cached.state.len();
            slot.begin_append();
            drop(guard);

            let durable = queued.durable().await;
            slot.end_append(durable.as_ref().err());
            self.inner.cache.account(&stream, &slot, state_len);
            let result = durable?;
            if let Some((version, state)) = snapshot {
                self.save_snapshot(stream.clone(), version, &plugin, state);
            }
            return Ok(Outcome {
                version: result.last_version() + 1,
                events: appended_events(events, &result, options.command_id),
                duplicate: false,
                plugin_version: plugin.version().clone(),
            });
        }
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
    fn save_snapshot(&self, stream: StreamId, version: u64, plugin: &PluginVersion, state: Bytes) {
        let runtime = self.clone();
        let tag = plugin.tag.clone();
        tokio::spawn(async move {
            let counters = &runtime.inner.counters;
            let saved = runtime
                .inner
                .store
                .save_snapshot(&stream, version - 1, &tag, state)
                .await;
            match saved {
                Ok(()) => counters.snapshots_written.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    tracing::warn!(%stream, version, %error, "snapshot not written");
                    counters.snapshot_failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }

    /// The outcome of a command id that was applied before.
    async fn duplicate(
        &self,
        stream: &StreamId,
        used_for: &StreamId,
        command_id: &str,
        result: AppendResult,
        plugin: Option<Arc<PluginVersion>>,
    ) -> Result<Outcome, CommandError> {
        if used_for != stream {
            return Err(CommandError::CommandIdReused {
                command_id: command_id.to_owned(),
                stream: used_for.to_string(),
            });
        }
        let read = StreamRead::forward(result.first_version, result.count as usize);
        let events = self.inner.store.read_stream(stream, read).await?;
        Ok(Outcome {
            version: result.last_version() + 1,
            events: events.into_iter().map(stored_event).collect(),
            duplicate: true,
            plugin_version: plugin
                .map(|plugin| plugin.version().clone())
                .unwrap_or_else(|| semver::Version::new(0, 0, 0)),
        })
    }
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
        .map(|(i, event)| StoredEvent {
            position: result.first_position + i as u64,
            version: result.first_version + i as u64 + 1,
            name: event.name,
            schema_version: event.version,
            timestamp_ms: result.timestamp_ms,
            command_id: command_id.clone(),
            data: Bytes::from(event.data),
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
