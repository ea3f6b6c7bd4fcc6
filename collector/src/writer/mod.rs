//! The thread where the store's writing runs: ingest's group writers and the roll-up and
//! retention passes. On the request runtime each of their statements' hand-backs from the
//! database driver waited behind the requests being decoded, the one SQLite connection held by
//! a pass waiting to be scheduled (loadgen fleet, 10,000 agents). On a runtime of their own,
//! nothing else waits in front of them, and SQLite's bulk writes run on this thread itself,
//! synchronously (store/sqlite_write.rs), blocking nothing but the writing.
//!
//! [`group`] is ingest's group commit, which runs here: the shared state holds it and the
//! ingest handler hands it batches, so it belongs to neither.

pub mod group;

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A thread running a single-threaded runtime for the store's writing; it ends when dropped.
#[derive(Debug)]
pub struct WriterThread {
    handle: Handle,
    stop: CancellationToken,
}

impl WriterThread {
    /// Starts the thread. If it cannot start (no threads left), writing runs on the current
    /// runtime, where SQLite's synchronous writes hold a request worker while they run, and the
    /// reason is logged.
    pub fn start() -> Self {
        let stop = CancellationToken::new();
        match Self::spawn_thread(stop.clone()) {
            Ok(handle) => Self { handle, stop },
            Err(e) => {
                tracing::warn!(error = %e, "no thread of its own for the store's writing; it shares the request runtime");
                Self {
                    handle: Handle::current(),
                    stop,
                }
            }
        }
    }

    fn spawn_thread(stop: CancellationToken) -> std::io::Result<Handle> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || runtime.block_on(stop.cancelled()))?;
        Ok(handle)
    }

    /// Runs `task` on the writer thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
