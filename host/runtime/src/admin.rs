//! Plugin administration: install, activate (after verifying), roll back.
//!
//! Operations on one aggregate type are serialised; commands keep flowing on the
//! active version throughout. An activation switches the active version atomically
//! after its record is durable in the log: a command whose turn came before runs on
//! the old version, later ones on the new one. Cached states are rebuilt lazily: a
//! command that finds its aggregate's state folded by another version rebuilds it
//! (from the new version's snapshot when verification wrote one).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tally_store::{EventLog, StreamId, StreamRead, StreamVersion};

use crate::api::{ActivateOptions, ActivationReport, InstallOptions, InstalledPlugin};
use crate::error::PluginError;
use crate::fold::{FoldLimit, fold_short_streams, fold_stream};
use crate::registry::{PluginVersion, TypeEntry, sha256_hex};
use crate::runtime::Runtime;
use crate::{InstallError, LoadedPlugin};

/// What [`Runtime::install_plugin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The installed version.
    pub installed: InstalledPlugin,
    /// The same component was installed before: nothing changed but activation.
    pub already_installed: bool,
    /// The activation, when asked for.
    pub activation: Option<ActivationReport>,
}

impl Runtime {
    /// Installs a plugin component: validates and compiles it, stores it durably in
    /// the data directory and records it in the log. With `options.activate`,
    /// activates it (see [`activate`](Self::activate)). Installing the same bytes
    /// again is not an error.
    pub async fn install_plugin(
        &self,
        bytes: Vec<u8>,
        options: InstallOptions,
    ) -> Result<InstallReport, PluginError> {
        let _running = self.enter().ok_or(PluginError::Closed)?;
        let sha256 = sha256_hex(&bytes);
        let engine = self.inner.registry.engine().clone();
        let (plugin, bytes) = tokio::task::spawn_blocking(move || {
            LoadedPlugin::load(&engine, &bytes).map(|plugin| (plugin, bytes))
        })
        .await
        .map_err(|join| InstallError::InvalidComponent(format!("load task failed: {join}")))??;
        let info = plugin.info().clone();
        if let Some(expected) = &options.aggregate_type
            && *expected != info.aggregate_type
        {
            return Err(InstallError::AggregateTypeMismatch {
                expected: expected.clone(),
                found: info.aggregate_type,
            }
            .into());
        }
        let entry = self.inner.registry.entry(&info.aggregate_type);
        let _admin = entry.admin.lock().await;
        let (version, already_installed) = match entry.installed(&info.version) {
            Some(existing) if existing.installed.sha256 == sha256 => (existing, true),
            Some(existing) => {
                return Err(PluginError::VersionExists {
                    aggregate_type: info.aggregate_type,
                    version: info.version,
                    installed: existing.installed.sha256.clone(),
                });
            }
            None => {
                if let Some(active) = entry.active()
                    && info.version <= *active.version()
                    && !options.force
                {
                    return Err(PluginError::NotNewer {
                        aggregate_type: info.aggregate_type,
                        version: info.version,
                        active: active.version().clone(),
                    });
                }
                let installed = self
                    .inner
                    .registry
                    .record_install(&self.inner.store, &entry, plugin, &bytes, &sha256)
                    .await?;
                tracing::info!(
                    aggregate_type = %info.aggregate_type,
                    version = %info.version,
                    %sha256,
                    "plugin installed"
                );
                (installed, false)
            }
        };
        let activation = if options.activate {
            let activate = ActivateOptions {
                skip_verify: options.skip_verify,
                force: options.force,
            };
            Some(
                self.activate_locked(&entry, version.clone(), false, activate)
                    .await?,
            )
        } else {
            None
        };
        Ok(InstallReport {
            installed: version.installed.clone(),
            already_installed,
            activation,
        })
    }

    /// Makes an installed version the active one. By default it first folds every
    /// stream of the type under that version (verification) and refuses, naming the
    /// stream, if any fold fails. Switching to an older version than the active one
    /// is refused when stored events have schema versions it does not know, unless
    /// `force`. Activating the active version changes nothing.
    pub async fn activate(
        &self,
        aggregate_type: &str,
        version: &str,
        options: ActivateOptions,
    ) -> Result<ActivationReport, PluginError> {
        let _running = self.enter().ok_or(PluginError::Closed)?;
        let entry = self.known_type(aggregate_type)?;
        let _admin = entry.admin.lock().await;
        let unknown = || PluginError::UnknownVersion {
            aggregate_type: aggregate_type.to_owned(),
            version: version.to_owned(),
        };
        let parsed = semver::Version::parse(version).map_err(|_| unknown())?;
        let target = entry.installed(&parsed).ok_or_else(unknown)?;
        self.activate_locked(&entry, target, false, options).await
    }

    /// Returns to the version that was active before the current one (undoing
    /// activations one at a time). Refused when stored events have schema versions
    /// that version does not know, unless `force`.
    pub async fn rollback(
        &self,
        aggregate_type: &str,
        options: ActivateOptions,
    ) -> Result<ActivationReport, PluginError> {
        let _running = self.enter().ok_or(PluginError::Closed)?;
        let entry = self.known_type(aggregate_type)?;
        let _admin = entry.admin.lock().await;
        // Activations push a version, rollbacks pop one: the target is the one below
        // the top.
        let mut stack: Vec<semver::Version> = Vec::new();
        for activation in entry.history() {
            if activation.rollback {
                stack.pop();
            } else {
                stack.push(activation.version);
            }
        }
        stack.pop();
        let previous = stack
            .pop()
            .ok_or_else(|| PluginError::NothingToRollBack(aggregate_type.to_owned()))?;
        let target = entry
            .installed(&previous)
            .ok_or_else(|| PluginError::UnknownVersion {
                aggregate_type: aggregate_type.to_owned(),
                version: previous.to_string(),
            })?;
        self.activate_locked(&entry, target, true, options).await
    }

    fn known_type(&self, aggregate_type: &str) -> Result<Arc<TypeEntry>, PluginError> {
        self.inner
            .registry
            .get(aggregate_type)
            .filter(|entry| !entry.installed_versions().is_empty())
            .ok_or_else(|| PluginError::UnknownAggregateType(aggregate_type.to_owned()))
    }

    /// Checks, verifies and records a switch to `target`; the caller holds the type's
    /// admin lock.
    async fn activate_locked(
        &self,
        entry: &TypeEntry,
        target: Arc<PluginVersion>,
        rollback: bool,
        options: ActivateOptions,
    ) -> Result<ActivationReport, PluginError> {
        let active = entry.active();
        if let Some(active) = &active
            && Arc::ptr_eq(active, &target)
        {
            let activation = entry
                .history()
                .pop()
                .expect("an active version was activated");
            return Ok(ActivationReport {
                activation,
                verified_events: 0,
                verify_ms: 0,
            });
        }
        let downgrade = active
            .as_ref()
            .is_some_and(|active| target.version() < active.version());
        if downgrade && !options.force {
            self.check_schemas(entry, &target).await?;
        }
        let started = Instant::now();
        let (verified_streams, verified_events) = if options.skip_verify {
            (None, 0)
        } else {
            let (streams, events) = self.verify(entry, &target).await?;
            (Some(streams), events)
        };
        let verify_ms = started.elapsed().as_millis() as u64;
        let activation = self
            .inner
            .registry
            .record_activation(
                &self.inner.store,
                entry,
                target.clone(),
                rollback,
                options.force,
                verified_streams,
            )
            .await?;
        tracing::info!(
            aggregate_type = %entry.name,
            version = %target.version(),
            previous = ?activation.previous.as_ref().map(ToString::to_string),
            rollback,
            verified_streams,
            verified_events,
            verify_ms,
            "plugin activated"
        );
        Ok(ActivationReport {
            activation,
            verified_events,
            verify_ms,
        })
    }

    /// Refuses `target` if an event of the type stored since a newer version first
    /// became active has a schema `target` does not know (an event it does not
    /// describe, or a later schema version of one it does).
    async fn check_schemas(
        &self,
        entry: &TypeEntry,
        target: &PluginVersion,
    ) -> Result<(), PluginError> {
        let Some(since) = entry
            .history()
            .iter()
            .filter(|activation| activation.version > *target.version())
            .map(|activation| activation.position)
            .min()
        else {
            return Ok(());
        };
        let store = &self.inner.store;
        let page = store.max_read_count();
        let mut position = since;
        loop {
            let events = store.read_all(position, page).await?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            position = last.position.next();
            for event in &events {
                if *event.stream.aggregate_type != *entry.name {
                    continue;
                }
                let known = target.plugin.event_version(&event.name);
                if known.is_none_or(|known| known < event.schema_version) {
                    return Err(PluginError::UnknownSchema {
                        aggregate_type: entry.name.clone(),
                        target: target.version().clone(),
                        event: event.name.clone(),
                        schema_version: event.schema_version,
                        position: event.position,
                    });
                }
            }
        }
    }

    /// Folds every stream of the type under `target`; writes a snapshot for `target`
    /// of every stream that needed at least `snapshot_every` events, so that the
    /// first command after the switch does not fold them again. Short streams are
    /// folded many per plugin job. Returns the streams and events folded.
    async fn verify(
        &self,
        entry: &TypeEntry,
        target: &Arc<PluginVersion>,
    ) -> Result<(u64, u64), PluginError> {
        let store = &self.inner.store;
        let config = &self.inner.config;
        let page = store.max_read_count();
        let (mut streams, mut events) = (0u64, 0u64);
        let mut skip = 0;
        loop {
            let listed = store.list_streams(&entry.name, skip, page).await?;
            if listed.is_empty() {
                return Ok((streams, events));
            }
            skip += listed.len();
            let (short, long): (Vec<_>, Vec<_>) = listed
                .into_iter()
                .partition(|(_, version)| version.get() <= SHORT_STREAM_EVENTS);
            for group in short.chunks(SHORT_STREAMS_PER_JOB) {
                let mut read = Vec::with_capacity(group.len());
                for (stream, version) in group {
                    let all = StreamRead::forward(StreamVersion::FIRST, version.get() as usize);
                    read.push(store.read_stream(stream, all).await?);
                }
                let folded = fold_short_streams(target, read, config.fold_batch)
                    .await
                    .map_err(|(index, error)| {
                        verify_failed(entry, target, &group[index].0, error.message())
                    })?;
                streams += folded.len() as u64;
                events += folded.iter().map(|f| f.version.get()).sum::<u64>();
                // Yield between jobs, so that commands keep their share of the threads.
                tokio::task::yield_now().await;
            }
            for (stream, _) in long {
                let limit = FoldLimit {
                    up_to_position: None,
                    use_snapshot: true,
                };
                let folded = fold_stream(store, target, &stream, limit, config.fold_batch)
                    .await
                    .map_err(|error| verify_failed(entry, target, &stream, error.message()))?;
                let folded_events = folded.events_since_snapshot();
                streams += 1;
                events += folded_events;
                if config.snapshot_every > 0 && folded_events >= config.snapshot_every {
                    let state = Bytes::from(folded.state);
                    store
                        .save_snapshot(&stream, folded.version, &target.tag, state)
                        .await?;
                }
            }
        }
    }
}

/// Streams of at most this many events (a stream's version is its number of events)
/// are verified many per plugin job.
const SHORT_STREAM_EVENTS: u64 = 64;
/// Short streams per verification job.
const SHORT_STREAMS_PER_JOB: usize = 128;

fn verify_failed(
    entry: &TypeEntry,
    target: &PluginVersion,
    stream: &StreamId,
    message: String,
) -> PluginError {
    PluginError::VerifyFailed {
        aggregate_type: entry.name.clone(),
        version: target.version().clone(),
        stream: stream.to_string(),
        message,
    }
}
