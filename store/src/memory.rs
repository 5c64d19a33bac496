//! The in-memory backend: the reference behaviour, for tests. Loses everything on exit.

use crate::{
    AppendOutcome, AppendRequest, ChainHash, CommandRecord, EventStore, RecordedEvent, StoreError, check_expected,
    check_requests, judge_applied,
};
use async_trait::async_trait;
use domain::CommandId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    events: Vec<RecordedEvent>,
    versions: HashMap<String, u64>,
    hashes: HashMap<String, ChainHash>,
    commands: HashMap<CommandId, (String, AppendOutcome)>,
}

pub struct MemoryStore {
    inner: Mutex<Inner>,
    head: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { inner: Mutex::default(), head: watch::Sender::new(0) }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes checked requests as one, under the lock: every check before any event, so a
    /// refused write changes nothing.
    fn write(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let found = requests
            .iter()
            .map(|r| {
                inner.commands.get(&r.command_id).map(|(fingerprint, outcome)| CommandRecord {
                    fingerprint: fingerprint.clone(),
                    outcome: outcome.clone(),
                })
            })
            .collect();
        if let Some(outcomes) = judge_applied(&requests, found)? {
            return Ok(outcomes);
        }
        let mut actual = Vec::with_capacity(requests.len());
        for r in &requests {
            let version = inner.versions.get(&r.stream).copied().unwrap_or(0);
            check_expected(&r.stream, r.expected, version)?;
            actual.push(version);
        }
        let recorded_at = crate::now();
        let mut outcomes = Vec::with_capacity(requests.len());
        for (request, actual) in requests.into_iter().zip(actual) {
            let first_position = inner.events.len() as u64 + 1;
            let mut previous = inner.hashes.get(&request.stream).copied().unwrap_or(ChainHash::GENESIS);
            for (i, e) in request.events.into_iter().enumerate() {
                let position = first_position + i as u64;
                let recorded =
                    RecordedEvent::record(e, &request.stream, actual + 1 + i as u64, position, recorded_at, &previous);
                previous = recorded.hash;
                inner.events.push(recorded);
            }
            inner.hashes.insert(request.stream.clone(), previous);
            let last = inner.events.last().expect("just pushed");
            let outcome = AppendOutcome {
                stream: request.stream.clone(),
                first_version: actual + 1,
                last_version: last.version,
                first_position,
                last_position: last.position,
                recorded_at,
                duplicate: false,
            };
            inner.versions.insert(request.stream, outcome.last_version);
            inner.commands.insert(request.command_id, (request.fingerprint, outcome.clone()));
            outcomes.push(outcome);
        }
        self.head.send_replace(inner.events.len() as u64);
        Ok(outcomes)
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        self.write(requests)
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner.events.iter().filter(|e| e.stream == stream).cloned().collect())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        let start = (after as usize).min(inner.events.len());
        Ok(inner.events[start..].iter().take(limit).cloned().collect())
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner.commands.get(&command_id).map(|(f, o)| CommandRecord {
            fingerprint: f.clone(),
            outcome: AppendOutcome { duplicate: true, ..o.clone() },
        }))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}
