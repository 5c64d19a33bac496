//! Keeps a read model up to date by following the log (catch-up then live), and lets
//! callers wait until it has seen a given position (read-your-writes). A persisted runner
//! also keeps a snapshot of its view with the position (and that event's hash) it
//! reflects, so that a restart folds only the events recorded since.

use crate::{Projection, ProjectionError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use store::background::Background;
use store::{ChainHash, EventStore, RecordedEvent};
use tokio::sync::watch;

/// A snapshot is written after this long without new events…
const QUIET: Duration = Duration::from_secs(2);
/// …or every this many events during a long catch-up.
const SAVE_EVERY: u64 = 200_000;

/// A read model with the log position it reflects. Applying an event at or below that
/// position does nothing, so replaying a stretch of the log twice is harmless.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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

/// What a snapshot file holds.
#[derive(Serialize, Deserialize)]
struct Snapshot<V> {
    view: String,
    format: u32,
    position: u64,
    /// The hash of the event at `position`: a snapshot of another log is not used.
    hash: Option<String>,
    state: V,
}

/// The snapshot file of a view in a directory.
pub fn snapshot_path<V: Projection>(dir: &Path) -> PathBuf {
    dir.join(format!("{}.json", V::NAME))
}

/// Writes a snapshot atomically (temporary file, fsync, rename).
pub fn write_snapshot<V: Projection>(
    dir: &Path,
    state: &Checkpointed<V>,
    hash: Option<ChainHash>,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = snapshot_path::<V>(dir);
    let tmp = path.with_extension("json.tmp");
    let snapshot = Snapshot {
        view: V::NAME.to_string(),
        format: V::FORMAT,
        position: state.position,
        hash: hash.map(|h| h.to_hex()),
        state: &state.view,
    };
    // Buffered: serde_json writes token by token, and a dashboard's snapshot unbuffered
    // took a million `write` calls (measured: 5.8 M for a rebuild of the full plan).
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    serde_json::to_writer(&mut file, &snapshot).map_err(std::io::Error::other)?;
    file.flush()?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// Reads a view's snapshot if it exists, is of this format, and matches this log (the
/// event at its position has the hash it recorded). Anything else: `None`, and the view
/// is rebuilt from the log.
pub async fn read_snapshot<V: Projection>(dir: &Path, store: &dyn EventStore) -> Option<Checkpointed<V>> {
    let path = snapshot_path::<V>(dir);
    let bytes = std::fs::read(&path).ok()?;
    let snapshot: Snapshot<V> = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable snapshot ignored: rebuilding from the log");
            return None;
        }
    };
    if snapshot.view != V::NAME || snapshot.format != V::FORMAT {
        tracing::info!(path = %path.display(), "snapshot of an older format ignored: rebuilding from the log");
        return None;
    }
    if snapshot.position > 0 {
        let event = store.read_at(snapshot.position).await.ok()?;
        let matches = event.is_some_and(|e| e.position == snapshot.position && Some(e.hash.to_hex()) == snapshot.hash);
        if !matches {
            tracing::warn!(path = %path.display(), position = snapshot.position,
                "snapshot does not match this log: rebuilding from the log");
            return None;
        }
    }
    Some(Checkpointed { position: snapshot.position, view: snapshot.state })
}

/// The view, with the hash of the last event it applied (for its snapshot).
struct Inner<V> {
    checkpointed: Checkpointed<V>,
    hash: Option<ChainHash>,
}

/// What became of the snapshot a runner started from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Proof {
    /// Started from the log's start: nothing to prove.
    NoSnapshot,
    /// Started from a snapshot; the log is being folded from zero to check it.
    Proving,
    /// The snapshot gave the log's figures.
    Proved,
    /// The snapshot did not give the log's figures (edited on disk, or corrupted): the
    /// view now holds the log's, and the snapshot was written again.
    Replaced,
}

/// Owns a read model and the task that feeds it; dropping the runner stops the task (and
/// writes a last snapshot, for a persisted one).
pub struct Runner<V: Projection> {
    state: RwLock<Inner<V>>,
    /// The position it has applied (watched) and its task.
    background: Background,
    failure: RwLock<Option<ProjectionError>>,
    /// Where snapshots go, and the position of the last one written.
    snapshots: Option<PathBuf>,
    saved: Mutex<u64>,
    resumed_from: u64,
    proof: RwLock<Proof>,
}

impl<V: Projection> Drop for Runner<V> {
    fn drop(&mut self) {
        // The task is aborted as `background` drops, after this.
        self.save_if_behind();
    }
}

impl<V: Projection> Runner<V> {
    /// Starts following the log from the beginning, in memory only.
    pub fn spawn(store: Arc<dyn EventStore>) -> Arc<Self> {
        Self::start(store, Checkpointed::default(), None)
    }

    /// Starts from the view's snapshot in `dir` when there is a usable one, and keeps
    /// snapshots there.
    pub async fn spawn_persisted(store: Arc<dyn EventStore>, dir: &Path) -> Arc<Self> {
        let from = read_snapshot::<V>(dir, store.as_ref()).await.unwrap_or_default();
        Self::start(store, from, Some(dir.to_path_buf()))
    }

    fn start(store: Arc<dyn EventStore>, from: Checkpointed<V>, snapshots: Option<PathBuf>) -> Arc<Self> {
        let position = from.position;
        let runner = Arc::new(Self {
            state: RwLock::new(Inner { checkpointed: from, hash: None }),
            background: Background::new(position),
            failure: RwLock::new(None),
            snapshots,
            saved: Mutex::new(position),
            resumed_from: position,
            proof: RwLock::new(if position == 0 { Proof::NoSnapshot } else { Proof::Proving }),
        });
        let task = tokio::spawn(Self::run(Arc::downgrade(&runner), store));
        runner.background.run(task);
        runner
    }

    /// Holds the runner weakly, so that dropping it ends the task (and releases the log).
    async fn run(runner: Weak<Self>, store: Arc<dyn EventStore>) {
        let from = match runner.upgrade() {
            Some(r) => r.position(),
            None => return,
        };
        let mut events = Box::pin(store::follow(store, from));
        let mut since_save = 0u64;
        loop {
            let next = match tokio::time::timeout(QUIET, events.next()).await {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(_) => {
                    // Quiet: a good moment for a snapshot.
                    let Some(this) = runner.upgrade() else { return };
                    this.save_in_background().await;
                    since_save = 0;
                    continue;
                }
            };
            let Some(this) = runner.upgrade() else { return };
            let applied = match next {
                Ok(event) => {
                    let mut inner = this.state.write().expect("read model poisoned");
                    let applied = inner.checkpointed.apply(&event);
                    if applied.is_ok() {
                        inner.hash = Some(event.hash);
                    }
                    applied
                }
                Err(e) => {
                    tracing::error!(error = %e, "the read model stopped: the log cannot be read");
                    *this.failure.write().expect("poisoned") = Some(ProjectionError::Log(e.to_string()));
                    return;
                }
            };
            match applied {
                Ok(()) => {
                    let position = this.position();
                    this.background.reached(position);
                    since_save += 1;
                    if since_save >= SAVE_EVERY {
                        this.save_in_background().await;
                        since_save = 0;
                    }
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

    /// Like [`Runner::save_if_behind`], but off the async workers: the view is cloned
    /// under the lock, then written (JSON, fsync) on a blocking thread, so requests are
    /// not held up by the disk.
    async fn save_in_background(&self) {
        let Some(dir) = self.snapshots.clone() else { return };
        let saved = *self.saved.lock().expect("poisoned");
        let copy = {
            let inner = self.state.read().expect("read model poisoned");
            if inner.checkpointed.position <= saved || inner.hash.is_none() {
                return;
            }
            (inner.checkpointed.clone(), inner.hash)
        };
        let position = copy.0.position;
        let written = tokio::task::spawn_blocking(move || write_snapshot(&dir, &copy.0, copy.1)).await;
        match written {
            Ok(Ok(())) => {
                let mut saved = self.saved.lock().expect("poisoned");
                *saved = (*saved).max(position);
            }
            Ok(Err(e)) => tracing::warn!(view = V::NAME, error = %e, "cannot write the read model's snapshot"),
            Err(e) => tracing::warn!(view = V::NAME, error = %e, "the snapshot writer failed"),
        }
    }

    /// Writes a snapshot when the view has moved since the last one (persisted runners).
    pub fn save_if_behind(&self) {
        let Some(dir) = &self.snapshots else { return };
        let Ok(mut saved) = self.saved.lock() else { return };
        let Ok(inner) = self.state.read() else { return };
        if inner.checkpointed.position <= *saved || inner.hash.is_none() {
            return;
        }
        match write_snapshot(dir, &inner.checkpointed, inner.hash) {
            Ok(()) => *saved = inner.checkpointed.position,
            Err(e) => tracing::warn!(view = V::NAME, error = %e, "cannot write the read model's snapshot"),
        }
    }

    /// Proves the snapshot the view started from: folds the log from zero up to where the
    /// view is and compares. A snapshot keeps a valid position and hash when its figures
    /// are edited on disk, so only this tells it apart. On a difference the view takes
    /// the log's figures, the snapshot is written again, and the runner says so
    /// ([`Runner::proof`], and an error in the log).
    pub async fn prove(&self, store: &dyn EventStore) -> Result<Proof, ProjectionError>
    where
        V: PartialEq,
    {
        if self.resumed_from == 0 {
            return Ok(Proof::NoSnapshot);
        }
        let mut fold = Checkpointed::<V>::default();
        let mut hash = None;
        loop {
            let target = self.position();
            while fold.position < target {
                let batch =
                    store.read_all(fold.position, 10_000).await.map_err(|e| ProjectionError::Log(e.to_string()))?;
                if batch.is_empty() {
                    break;
                }
                for e in batch.iter().take_while(|e| e.position <= target) {
                    fold.apply(e)?;
                    hash = Some(e.hash);
                }
            }
            let mut inner = self.state.write().expect("read model poisoned");
            if inner.checkpointed.position != fold.position {
                continue; // the view moved on meanwhile: fold on to where it is now
            }
            let proof = if inner.checkpointed.view == fold.view {
                Proof::Proved
            } else {
                tracing::error!(
                    view = V::NAME,
                    position = fold.position,
                    "the read model's snapshot does not give the log's figures (edited or corrupted): \
                     serving the log's figures and writing the snapshot again"
                );
                inner.checkpointed = fold;
                inner.hash = hash;
                *self.saved.lock().expect("poisoned") = 0;
                Proof::Replaced
            };
            drop(inner);
            *self.proof.write().expect("poisoned") = proof;
            if proof == Proof::Replaced {
                self.save_if_behind();
            }
            return Ok(proof);
        }
    }

    /// What became of the snapshot the view started from.
    pub fn proof(&self) -> Proof {
        *self.proof.read().expect("poisoned")
    }

    /// The position the runner started from (0, or its snapshot's).
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.state.read().expect("read model poisoned").checkpointed.position
    }

    /// Why the runner stopped, if it did.
    pub fn failure(&self) -> Option<ProjectionError> {
        self.failure.read().expect("poisoned").clone()
    }

    /// Waits until the read model has applied `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.background.wait_for(position, timeout).await
    }

    /// A receiver that changes whenever the view moves (for live updates).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.background.subscribe()
    }

    /// Reads the model and the position it reflects, under one lock.
    pub fn read_at<R>(&self, f: impl FnOnce(&V, u64) -> R) -> R {
        let inner = self.state.read().expect("read model poisoned");
        f(&inner.checkpointed.view, inner.checkpointed.position)
    }

    /// Reads the model under a short lock.
    pub fn read<R>(&self, f: impl FnOnce(&V) -> R) -> R {
        f(&self.state.read().expect("read model poisoned").checkpointed.view)
    }
}

/// A runner whatever its view: what a server does to all its read models alike (wait for
/// a position, prove snapshots, report), so that it lists its runners once.
pub trait AnyRunner: Send + Sync {
    /// The view's name ([`Projection::NAME`]).
    fn name(&self) -> &'static str;
    fn position(&self) -> u64;
    fn resumed_from(&self) -> u64;
    fn proof(&self) -> Proof;
    fn wait_for(&self, position: u64, timeout: Duration) -> futures::future::BoxFuture<'_, bool>;
    fn prove<'a>(&'a self, store: &'a dyn EventStore)
    -> futures::future::BoxFuture<'a, Result<Proof, ProjectionError>>;
}

impl<V: Projection + PartialEq> AnyRunner for Runner<V> {
    fn name(&self) -> &'static str {
        V::NAME
    }
    fn position(&self) -> u64 {
        Runner::position(self)
    }
    fn resumed_from(&self) -> u64 {
        Runner::resumed_from(self)
    }
    fn proof(&self) -> Proof {
        Runner::proof(self)
    }
    fn wait_for(&self, position: u64, timeout: Duration) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(Runner::wait_for(self, position, timeout))
    }
    fn prove<'a>(
        &'a self,
        store: &'a dyn EventStore,
    ) -> futures::future::BoxFuture<'a, Result<Proof, ProjectionError>> {
        Box::pin(Runner::prove(self, store))
    }
}
