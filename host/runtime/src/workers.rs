//! Plugin worker threads: where the runtime's plugin calls run.
//!
//! Plugin calls are synchronous and CPU-bound, and the WASI host functions a plugin
//! may call (its output, clocks, random numbers) block on a tokio runtime of their
//! own, which they cannot do on a thread driving async tasks. So the async runtime
//! hands each call to a small pool of plain threads (two per core by default, see
//! `RuntimeConfig::plugin_threads`) and awaits the answer; while many commands are
//! queued the threads stay busy and a hand-off costs a channel push and pop.

use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of threads running plugin calls.
pub(crate) struct PluginWorkers {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl PluginWorkers {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> std::io::Result<PluginWorkers> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..threads.max(1))
            .map(|i| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("tally-plugin-{i}"))
                    .spawn(move || {
                        for job in queue {
                            job();
                        }
                    })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(PluginWorkers {
            jobs: Some(jobs),
            threads,
        })
    }

    /// Runs `call` on a worker and waits for its result; `None` if it panicked (a
    /// bug in the host: plugin failures are values, not panics).
    pub async fn run<R, F>(&self, call: F) -> Option<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (answer, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(value) = std::panic::catch_unwind(AssertUnwindSafe(call)) {
                let _ = answer.send(value);
            }
        });
        self.jobs.as_ref()?.send(job).ok()?;
        result.await.ok()
    }
}

impl Drop for PluginWorkers {
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
