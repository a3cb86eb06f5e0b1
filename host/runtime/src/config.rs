//! [`EngineConfig`]: limits, recycling and the compile cache.

use std::path::PathBuf;
use std::time::Duration;

/// Configuration of a [`PluginEngine`](crate::PluginEngine).
///
/// Every field has a documented default ([`EngineConfig::default`]); override
/// with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// let config = tally_runtime::EngineConfig {
///     call_timeout: Duration::from_millis(200),
///     ..Default::default()
/// };
/// assert_eq!(config.memory_limit, 64 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// CPU limit of one call into a plugin (and of one instantiation).
    ///
    /// Default **1 s**. Plugin calls normally take microseconds; the margin covers
    /// `apply` of a large batch of events on a loaded machine, while a plugin that
    /// loops forever still fails its call quickly. Enforced by epoch
    /// interruption, so the call fails within one [`epoch_tick`](Self::epoch_tick)
    /// after the limit (rounded up to a whole tick).
    pub call_timeout: Duration,
    /// How often the ticker thread advances the engine's epoch: the granularity
    /// of [`call_timeout`](Self::call_timeout). Default **10 ms**; must not be zero.
    pub epoch_tick: Duration,
    /// Maximum size in bytes of each linear memory of a plugin instance.
    ///
    /// Default **64 MiB**. The reference plugins need well under 2 MiB; the limit
    /// also bounds the size of what one call can return to the host.
    pub memory_limit: usize,
    /// Calls after which an instance is recycled (dropped and replaced by a fresh
    /// instance on the next call), so that memory a plugin grew or fragmented is
    /// given back. Default **10,000** (a fresh instantiation costs about 0.1 ms,
    /// about 10 ns per call amortised). Must be at least 1.
    pub max_calls_per_instance: u64,
    /// Healthy idle instances kept per plugin for reuse. Default **16**.
    pub max_idle_instances: usize,
    /// Bytes of linear memory the idle instances of one plugin may hold together:
    /// an instance that would take the pool past it is dropped instead of kept.
    /// Default **256 MiB**: sixteen instances of a plugin written in Rust (a few MiB
    /// each), one or two of a plugin that carries an interpreter (Python, JavaScript:
    /// tens of MiB each, up to the memory limit).
    pub max_idle_memory: usize,
    /// Bytes of stdout and of stderr one call may leave in its instance's pipes:
    /// what it writes, plus a partial last line left by earlier calls. Output is
    /// drained and forwarded to `tracing` by lines after every call; a write past
    /// the limit fails (the guest's write fails). Default **64 KiB**.
    pub output_capacity: usize,
    /// Directory of the on-disk compile cache; `None` (the default) compiles every
    /// load. Created if missing. Must be writable only by the host (see the crate
    /// docs).
    pub cache_dir: Option<PathBuf>,
    /// Optimise generated code (Cranelift `speed`). Default **true**; tests of an
    /// unoptimised host may turn it off, since compiling with optimisations in an
    /// unoptimised build of wasmtime takes seconds per component. Part of the
    /// compile cache key (through the engine's compatibility hash).
    pub optimize: bool,
    /// Largest document a projection may write, bytes of JSON. Default **1 MiB**.
    pub max_document_bytes: usize,
    /// Longest key of a projection's document, bytes. Default **1 KiB**.
    pub max_document_key_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(1),
            epoch_tick: Duration::from_millis(10),
            memory_limit: 64 << 20,
            max_calls_per_instance: 10_000,
            max_idle_instances: 16,
            max_idle_memory: 256 << 20,
            output_capacity: 64 << 10,
            cache_dir: None,
            optimize: true,
            max_document_bytes: 1 << 20,
            max_document_key_bytes: 1 << 10,
        }
    }
}

impl EngineConfig {
    /// Epoch ticks to allow per call: the timeout rounded up to whole ticks, plus
    /// one because the next tick may come at any moment after the deadline is set.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = self.call_timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX - 1).max(1) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_the_timeout_in_ticks_rounded_up_plus_one() {
        let config = EngineConfig::default();
        assert_eq!(config.deadline_ticks(), 101);
        let config = EngineConfig {
            call_timeout: Duration::from_millis(15),
            ..EngineConfig::default()
        };
        assert_eq!(config.deadline_ticks(), 3);
        let config = EngineConfig {
            call_timeout: Duration::ZERO,
            ..EngineConfig::default()
        };
        assert_eq!(config.deadline_ticks(), 2);
    }
}
