//! One lane per stream: this process's writers of a stream take turns on it, so that
//! concurrent commands on a hot stream are decided one after the other (in groups) instead
//! of racing and failing on optimistic concurrency. Optimistic concurrency stays the guard
//! between processes. The lane also keeps the aggregate as last folded, so a command reads
//! only the events recorded since.

use domain::Aggregate;
use futures::FutureExt;
use futures::future::Shared;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use store::{EventStore, RecordedEvent, StoreError};
use tokio::sync::oneshot;

/// Lanes kept at most; beyond, the idle ones are dropped (a cache, not a store).
const MAX_LANES: usize = 50_000;

/// An aggregate folded from its stream up to `version`.
pub(crate) struct Folded<A> {
    pub state: A,
    pub version: u64,
    /// Set while `state` holds events not yet known to be written; a turn that finds it set
    /// (its holder failed or was cancelled mid-way) folds the stream again from the start.
    pub dirty: bool,
    /// Appends handed to the log and not yet answered, whose events `state` already holds
    /// (pipelining: a step lets the next writer decide while its append commits). Each
    /// resolves to whether it was written.
    pub pending: Vec<Shared<oneshot::Receiver<bool>>>,
    /// Set by a pipelined append that was not written (or whose writer went away): the
    /// next turn folds the stream again from the start.
    pub stale: Arc<AtomicBool>,
}

impl<A: Aggregate> Default for Folded<A> {
    fn default() -> Self {
        Self { state: A::default(), version: 0, dirty: false, pending: Vec::new(), stale: Arc::default() }
    }
}

/// A pipelined append in flight: says whether it was written, and marks its stream's
/// folded state stale if not — also when dropped before knowing (its caller went away).
pub(crate) struct InFlight {
    stale: Arc<AtomicBool>,
    written: Option<oneshot::Sender<bool>>,
}

impl InFlight {
    /// Registers an append whose events `folded` already holds.
    pub fn register<A>(folded: &mut Folded<A>) -> Self {
        let (written, answer) = oneshot::channel();
        folded.pending.retain(|p| p.peek().is_none());
        folded.pending.push(answer.shared());
        Self { stale: folded.stale.clone(), written: Some(written) }
    }

    pub fn settle(mut self, written: bool) {
        if !written {
            self.stale.store(true, Ordering::SeqCst);
        }
        if let Some(tx) = self.written.take() {
            let _ = tx.send(written);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(tx) = self.written.take() {
            self.stale.store(true, Ordering::SeqCst);
            let _ = tx.send(false);
        }
    }
}

/// Waits for the appends `pending` lists; true when all were written. A refusal decided
/// on a state holding them stands only then: otherwise the command is decided again.
pub(crate) async fn all_written(pending: Vec<Shared<oneshot::Receiver<bool>>>) -> bool {
    let mut all = true;
    for p in pending {
        all &= p.await.unwrap_or(false);
    }
    all
}

pub(crate) fn decode<A: Aggregate>(r: &RecordedEvent) -> Result<A::Event, StoreError> {
    r.payload
        .decode()
        .map_err(|e| StoreError::corrupt_from(format_args!("{} v{} ({})", r.stream, r.version, r.event_type), e))
}

impl<A: Aggregate> Folded<A> {
    /// Brings the state up to the stream's last event, reading only what is new.
    pub async fn refresh(&mut self, store: &dyn EventStore, stream: &str) -> Result<(), StoreError> {
        if self.dirty | self.stale.swap(false, Ordering::SeqCst) {
            self.reset();
        }
        let recorded = match self.version {
            0 => store.read_stream(stream).await?,
            v => store.read_stream_from(stream, v + 1).await?,
        };
        for r in &recorded {
            if r.version != self.version + 1 {
                // Never fold a history with a hole: start again from the whole stream.
                self.reset();
                return Err(StoreError::corrupt(format!(
                    "{stream}: version {} read after version {}",
                    r.version, self.version
                )));
            }
            self.state.evolve(&decode::<A>(r)?);
            self.version = r.version;
        }
        Ok(())
    }

    /// Forgets the folded state (the appends in flight keep their flag).
    fn reset(&mut self) {
        self.state = A::default();
        self.version = 0;
        self.dirty = false;
    }

    /// The appends in flight whose events the state holds.
    pub fn in_flight(&self) -> Vec<Shared<oneshot::Receiver<bool>>> {
        self.pending.iter().filter(|p| p.peek().is_none()).cloned().collect()
    }
}

/// What a command gets back.
pub(crate) type Answer<A> = Result<store::CommandOutcome, store::HandleError<<A as Aggregate>::Error>>;

/// A command waiting for its turn, with where to send its answer.
pub(crate) struct Job<A: Aggregate> {
    pub command: A::Command,
    pub meta: domain::CommandMeta,
    pub fingerprint: String,
    pub reply: oneshot::Sender<Answer<A>>,
}

/// One stream's lane. Every use case that writes the stream takes the same turn, whatever
/// the other streams it writes, so one lane type per aggregate.
pub(crate) struct Lane<A: Aggregate> {
    pub stream: String,
    /// Whoever holds it decides and writes for this stream (in this process).
    pub turn: Arc<tokio::sync::Mutex<Folded<A>>>,
    /// Commands waiting: the next holder of the turn takes them all as one group.
    pub queue: Mutex<Vec<Job<A>>>,
}

/// The lanes of one log, by stream name.
#[derive(Default)]
pub(crate) struct Lanes {
    map: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
    /// Whether a step may release a companion's turn once its append is handed to the log
    /// (see [`EventStore::ordered_submission`]): only when every writer of the log's
    /// streams takes these lanes' turns, so that an append decided on top of one in flight
    /// can only be written if that one was.
    pipelining: AtomicBool,
}

/// This process's lanes on each log that allows pipelining: every `UseCases` on one log
/// shares them, so that all of this process's writers of a stream take the same turns.
static SHARED: Mutex<Vec<SharedLanes>> = Mutex::new(Vec::new());

struct SharedLanes {
    /// The log's shared state ([`EventStore::ordered_log`]); held weakly, its allocation
    /// stays while this entry does, so no other log can take its address.
    log: Weak<dyn Any + Send + Sync>,
    lanes: Weak<Lanes>,
    /// Other lanes write this log too (`UseCases::another_process`): no pipelining.
    not_alone: bool,
}

impl Lanes {
    /// The lanes every `UseCases` of this process on the same log shares, pipelining; on
    /// a log that does not allow it, lanes of its own without.
    pub fn shared(store: &Arc<dyn EventStore>) -> Arc<Lanes> {
        let Some(log) = store.ordered_log() else { return Arc::new(Lanes::with_pipelining(false)) };
        let mut all = SHARED.lock().expect("shared lanes poisoned");
        all.retain(|e| e.log.strong_count() > 0);
        if let Some(entry) = all.iter_mut().find(|e| e.log.upgrade().is_some_and(|l| Arc::ptr_eq(&l, &log))) {
            if let Some(lanes) = entry.lanes.upgrade() {
                return lanes;
            }
            let lanes = Arc::new(Lanes::with_pipelining(!entry.not_alone));
            entry.lanes = Arc::downgrade(&lanes);
            return lanes;
        }
        let lanes = Arc::new(Lanes::with_pipelining(true));
        all.push(SharedLanes { log: Arc::downgrade(&log), lanes: Arc::downgrade(&lanes), not_alone: false });
        lanes
    }

    /// Lanes of their own on `store`, as another process would have: from now on no lanes
    /// of this process on that log pipeline, since their writes may interleave.
    pub fn separate(store: &Arc<dyn EventStore>) -> Arc<Lanes> {
        if let Some(log) = store.ordered_log() {
            let shared = Self::shared(store);
            shared.pipelining.store(false, Ordering::SeqCst);
            let mut all = SHARED.lock().expect("shared lanes poisoned");
            if let Some(entry) = all.iter_mut().find(|e| e.log.upgrade().is_some_and(|l| Arc::ptr_eq(&l, &log))) {
                entry.not_alone = true;
            }
        }
        Arc::new(Lanes::with_pipelining(false))
    }

    fn with_pipelining(on: bool) -> Self {
        Self { map: Mutex::default(), pipelining: AtomicBool::new(on) }
    }

    pub fn pipelining(&self) -> bool {
        self.pipelining.load(Ordering::SeqCst)
    }

    pub fn get<A: Aggregate>(&self, stream: &str) -> Arc<Lane<A>>
    where
        A::Command: 'static,
    {
        let mut map = self.map.lock().expect("lanes poisoned");
        if let Some(lane) = map.get(stream).cloned().and_then(|l| l.downcast::<Lane<A>>().ok()) {
            return lane;
        }
        if map.len() >= MAX_LANES {
            map.retain(|_, lane| Arc::strong_count(lane) > 1);
        }
        let lane = Arc::new(Lane {
            stream: stream.to_string(),
            turn: Arc::new(tokio::sync::Mutex::new(Folded::default())),
            queue: Mutex::new(Vec::new()),
        });
        map.insert(stream.to_string(), lane.clone());
        lane
    }
}
