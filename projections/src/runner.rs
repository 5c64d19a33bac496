//! Keeps a read model up to date by following the log (catch-up then live), and lets
//! callers wait until it has seen a given position (read-your-writes).

use crate::{Projection, ProjectionError};
use futures::StreamExt;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use store::{EventStore, RecordedEvent};
use tokio::sync::watch;

/// A read model with the log position it reflects. Applying an event at or below that
/// position does nothing, so replaying a stretch of the log twice is harmless.
#[derive(Clone, Debug, Default)]
pub struct Checkpointed<V> {
    pub position: u64,
    pub view: V,
}

impl<V: Projection> Checkpointed<V> {
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.position <= self.position {
            return Ok(());
        }
        self.view.apply(event)?;
        self.position = event.position;
        Ok(())
    }
}

/// Owns a read model and the task that feeds it; dropping the runner stops the task.
pub struct Runner<V> {
    state: RwLock<Checkpointed<V>>,
    position: watch::Sender<u64>,
    failure: RwLock<Option<ProjectionError>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<V> Drop for Runner<V> {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl<V: Projection> Runner<V> {
    /// Starts following the log from the beginning.
    pub fn spawn(store: Arc<dyn EventStore>) -> Arc<Self> {
        let runner = Arc::new(Self {
            state: RwLock::new(Checkpointed::default()),
            position: watch::Sender::new(0),
            failure: RwLock::new(None),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(Self::run(Arc::downgrade(&runner), store));
        *runner.task.lock().expect("poisoned") = Some(task.abort_handle());
        runner
    }

    /// Holds the runner weakly, so that dropping it ends the task (and releases the log).
    async fn run(runner: Weak<Self>, store: Arc<dyn EventStore>) {
        let from = match runner.upgrade() {
            Some(r) => r.position(),
            None => return,
        };
        let mut events = Box::pin(store::follow(store, from));
        while let Some(next) = events.next().await {
            let Some(this) = runner.upgrade() else { return };
            let applied = match next {
                Ok(event) => this.state.write().expect("read model poisoned").apply(&event),
                Err(e) => {
                    tracing::error!(error = %e, "the read model stopped: the log cannot be read");
                    *this.failure.write().expect("poisoned") = Some(ProjectionError::Log(e.to_string()));
                    return;
                }
            };
            match applied {
                Ok(()) => {
                    let position = this.position();
                    this.position.send_replace(position);
                }
                Err(e) => {
                    // Better stale and loud than wrong: stop here and say where.
                    tracing::error!(error = %e, "the read model stopped on an unreadable event");
                    *this.failure.write().expect("poisoned") = Some(e);
                    return;
                }
            }
        }
    }

    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.state.read().expect("read model poisoned").position
    }

    /// Why the runner stopped, if it did.
    pub fn failure(&self) -> Option<ProjectionError> {
        self.failure.read().expect("poisoned").clone()
    }

    /// Waits until the read model has applied `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
    }

    /// Reads the model under a short lock.
    pub fn read<R>(&self, f: impl FnOnce(&V) -> R) -> R {
        f(&self.state.read().expect("read model poisoned").view)
    }
}
