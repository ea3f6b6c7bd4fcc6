//! The collector's long-running tasks, watched. Each is spawned through a [`Tasks`] (a
//! [`TaskTracker`]) rather than with a bare `tokio::spawn` whose handle is dropped, so that:
//!
//! - a stop waits for every task of a phase, up to a deadline, before the next phase begins
//!   (the local agent, then the background work, then the server: `lib.rs`, `start`);
//! - a task that ends with an error or panics says so in the log when it happens, with its
//!   name, instead of vanishing with its dropped handle.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// What a task's end says: nothing for `()`, the error for an `Err`.
pub trait Ended {
    /// Why the task failed, if it did.
    fn failure(self) -> Option<String>;
}

impl Ended for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> Ended for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Tasks of one phase of the collector's stop.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` on the current runtime as `name`, watched.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Ended + Send + 'static,
    {
        self.watch(name, tokio::spawn(task));
    }

    /// Watches a task already spawned (on another runtime, say the store's writer thread):
    /// [`Tasks::stop`] waits for it, and its failure or panic is logged.
    pub fn watch<T>(&self, name: &'static str, task: JoinHandle<T>)
    where
        T: Ended + Send + 'static,
    {
        self.tracker.spawn(async move {
            match task.await {
                Ok(end) => {
                    if let Some(error) = end.failure() {
                        tracing::error!(task = name, %error, "a collector task failed");
                    }
                }
                Err(e) if e.is_panic() => {
                    tracing::error!(task = name, error = %e, "a collector task panicked");
                }
                Err(e) => tracing::warn!(task = name, error = %e, "a collector task was cancelled"),
            }
        });
    }

    /// Waits up to `deadline` for every task to end (their stop signal must have been given);
    /// true when all did. Tasks still running are left to the runtime's end.
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        tracing::warn!(
            running = self.tracker.len(),
            "collector tasks still running at the stop deadline"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True: a task that panics must still have `()` as its output.
    fn tasks_panic() -> bool {
        true
    }

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_each_task_and_survives_a_panic() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("waits", async move {
            let _ = rx.await;
        });
        tasks.spawn("panics", async {
            if tasks_panic() {
                panic!("on purpose");
            }
        });
        tasks.spawn("fails", async { Err::<(), _>("no database") });
        // One task has not ended: the deadline passes.
        assert!(!tasks.stop(Duration::from_secs(1)).await);
        let _ = tx.send(());
        assert!(tasks.stop(Duration::from_secs(1)).await);
        assert!(tasks.tracker.is_empty());
    }
}
