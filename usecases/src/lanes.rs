//! One lane per stream: this process's writers of a stream take turns on it, so that
//! concurrent commands on a hot stream are decided one after the other (in groups) instead
//! of racing and failing on optimistic concurrency. Optimistic concurrency stays the guard
//! between processes. The lane also keeps the aggregate as last folded, so a command reads
//! only the events recorded since.

use domain::Aggregate;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
}

impl<A: Aggregate> Default for Folded<A> {
    fn default() -> Self {
        Self { state: A::default(), version: 0, dirty: false }
    }
}

pub(crate) fn decode<A: Aggregate>(r: &RecordedEvent) -> Result<A::Event, StoreError> {
    r.payload
        .decode()
        .map_err(|e| StoreError::corrupt_from(format_args!("{} v{} ({})", r.stream, r.version, r.event_type), e))
}

impl<A: Aggregate> Folded<A> {
    /// Brings the state up to the stream's last event, reading only what is new.
    pub async fn refresh(&mut self, store: &dyn EventStore, stream: &str) -> Result<(), StoreError> {
        if self.dirty {
            *self = Self::default();
        }
        let recorded = match self.version {
            0 => store.read_stream(stream).await?,
            v => store.read_stream_from(stream, v + 1).await?,
        };
        for r in &recorded {
            if r.version != self.version + 1 {
                // Never fold a history with a hole: start again from the whole stream.
                *self = Self::default();
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
}

impl Lanes {
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
