//! Work that folds the whole log (replays behind `report`, `reportProvenance`) runs on a
//! thread of its own, so that however many requests ask for it, the runtime's workers stay
//! free for `/health`, dashboards and commands; and it stops when its request gives up.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::task::JoinHandle;

/// A thread with its own single-threaded runtime, started at the first replay and ended
/// when the last [`HeavyLane`] handle is dropped.
#[derive(Default)]
pub struct HeavyLane {
    runtime: OnceLock<Started>,
}

struct Started {
    handle: tokio::runtime::Handle,
    /// Dropped with the lane: the thread's `block_on` returns and the runtime ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The lane's work was cancelled or panicked.
#[derive(Debug, thiserror::Error)]
#[error("the replay stopped before its end: {0}")]
pub struct LaneError(#[from] tokio::task::JoinError);

impl HeavyLane {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self
            .runtime
            .get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("tracker-replays")
                    .build()
                    .expect("the replay runtime starts");
                let handle = runtime.handle().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name("tracker-replays".into())
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                    })
                    .expect("the replay thread starts");
                Started { handle, _stop: stop }
            })
            .handle
    }

    /// Runs `work` on the lane. Dropping the returned future (the request's time is up, or
    /// its client went away) aborts the work at its next await: a replay yields between
    /// pages, so it stops within one page instead of folding the log to the end for nobody.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = Result<T, LaneError>> + Send + 'static {
        let task = AbortOnDrop(self.handle().spawn(work));
        async move { Ok(task.wait().await?) }
    }
}

/// A task aborted when nobody waits for it any more.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn wait(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn work_runs_on_the_lane_thread_and_answers() {
        let lane = HeavyLane::new();
        let name = lane.run(async { std::thread::current().name().map(str::to_string) }).await.unwrap();
        assert_eq!(name.as_deref(), Some("tracker-replays"));
    }

    #[tokio::test]
    async fn dropping_the_answer_stops_the_work_at_its_next_await() {
        let lane = HeavyLane::new();
        let steps = Arc::new(AtomicU32::new(0));
        let counted = steps.clone();
        let answer = lane.run(async move {
            loop {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        // Given work that never ends, when its request gives up after a while...
        assert!(tokio::time::timeout(Duration::from_millis(100), answer).await.is_err());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopped_at = steps.load(Ordering::SeqCst);
        assert!(stopped_at > 0, "the work ran");
        // ...then it takes no further step.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(steps.load(Ordering::SeqCst), stopped_at, "the work stopped with its request");
    }
}
