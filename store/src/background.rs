//! What every task that follows the log in the background shares (the read models'
//! runners, the saga's): the position it has reached, watched by those who wait for it,
//! and the task itself, stopped when its owner is dropped.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// A background task's position and handle; dropping it aborts the task.
pub struct Background {
    position: watch::Sender<u64>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Background {
    /// Starting at `position`, no task yet.
    pub fn new(position: u64) -> Self {
        Self { position: watch::Sender::new(position), task: Mutex::new(None) }
    }

    /// The task doing the work: aborted when this is dropped.
    pub fn run(&self, task: tokio::task::JoinHandle<()>) {
        *self.task.lock().expect("poisoned") = Some(task.abort_handle());
    }

    /// The task has reached `position`: wakes whoever waits for it.
    pub fn reached(&self, position: u64) {
        self.position.send_replace(position);
    }

    /// The task has reached `position`, waking waiters only when it moved.
    pub fn reached_if_moved(&self, position: u64) {
        self.position.send_if_modified(|p| std::mem::replace(p, position) != position);
    }

    /// The last position the task reported.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// A receiver that changes whenever the task moves (for live updates).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// Waits until the task has reached `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}
