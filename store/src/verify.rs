//! Verification of a log: recomputes every chain and reports the first place where the
//! log differs from what was written (stream, version, position, and why).

use crate::RecordedEvent;
use crate::chain::{ChainHash, log_hash};
use serde::Serialize;
use std::collections::HashMap;

/// Where and how the log was found altered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub reason: String,
}

/// The result of verifying a whole log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Events checked (up to the first break).
    pub events: u64,
    pub streams: usize,
    /// Position of the last event checked.
    pub head_position: u64,
    /// The digest of the whole log at `head_position`: quote it to prove later that the
    /// log has not changed since.
    pub head_hash: ChainHash,
    pub first_break: Option<Break>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Checks events one by one in log order. Backends with gapless positions (SQLite,
/// memory) also check that no position is missing.
pub struct Verifier {
    gapless: bool,
    last_position: u64,
    streams: HashMap<String, (u64, ChainHash)>,
    log: ChainHash,
    events: u64,
    first_break: Option<Break>,
    anchor: Option<(u64, ChainHash)>,
}

impl Verifier {
    /// Also checks the log against a digest published earlier (`position`, `head hash` of
    /// a previous verification): this catches what no chain inside the log can, such as
    /// events cut from the end or a log rewritten and re-hashed from some point on.
    pub fn expecting(mut self, position: u64, head_hash: ChainHash) -> Self {
        self.anchor = Some((position, head_hash));
        self
    }

    pub fn new(gapless_positions: bool) -> Self {
        Self {
            gapless: gapless_positions,
            last_position: 0,
            streams: HashMap::new(),
            log: ChainHash::GENESIS,
            events: 0,
            first_break: None,
            anchor: None,
        }
    }

    /// Records a break found outside the checks (e.g. an unreadable row).
    pub fn broken(&mut self, position: u64, stream: &str, version: u64, reason: impl Into<String>) {
        if self.first_break.is_none() {
            self.first_break = Some(Break { position, stream: stream.to_string(), version, reason: reason.into() });
        }
    }

    pub fn is_broken(&self) -> bool {
        self.first_break.is_some()
    }

    /// Checks the next event; `stored_log_hash` is the whole-log hash the backend kept for
    /// it, if it keeps one. Returns false once the log is found broken.
    pub fn check(&mut self, e: &RecordedEvent, stored_log_hash: Option<&ChainHash>) -> bool {
        if self.is_broken() {
            return false;
        }
        let expected_position = self.last_position + 1;
        if self.gapless && e.position != expected_position {
            let reason = if e.position > expected_position {
                format!("positions {expected_position} to {} are missing: events were deleted", e.position - 1)
            } else {
                format!("position {} comes after position {}: events were moved", e.position, self.last_position)
            };
            self.broken(e.position, &e.stream, e.version, reason);
            return false;
        }
        if !self.gapless && e.position <= self.last_position {
            self.broken(e.position, &e.stream, e.version, "positions go backwards: events were moved");
            return false;
        }
        let (previous_version, previous_hash) = self.streams.get(&e.stream).copied().unwrap_or((0, ChainHash::GENESIS));
        if e.version != previous_version + 1 {
            let reason = format!(
                "version {} follows version {previous_version} of its stream: an event of this stream was deleted, inserted or moved",
                e.version
            );
            self.broken(e.position, &e.stream, e.version, reason);
            return false;
        }
        if e.compute_hash(&previous_hash) != e.hash {
            self.broken(
                e.position,
                &e.stream,
                e.version,
                "the event does not match its hash: its content, or the event before it in its stream, was altered",
            );
            return false;
        }
        let log = log_hash(&self.log, e.position, &e.hash);
        if let Some(stored) = stored_log_hash
            && *stored != log
        {
            self.broken(
                e.position,
                &e.stream,
                e.version,
                "the whole-log chain breaks here: an event before this one was deleted, inserted or reordered",
            );
            return false;
        }
        if let Some((position, expected)) = self.anchor
            && position == e.position
            && expected != log
        {
            self.broken(
                e.position,
                &e.stream,
                e.version,
                "the log differs from the digest published for this position: it was rewritten",
            );
            return false;
        }
        self.streams.insert(e.stream.clone(), (e.version, e.hash));
        self.log = log;
        self.last_position = e.position;
        self.events += 1;
        true
    }

    pub fn finish(mut self) -> Verification {
        if let Some((position, _)) = self.anchor
            && self.first_break.is_none()
            && self.last_position < position
        {
            let reason = format!(
                "the log ends at position {} but a digest was published for position {position}: events were removed from its end",
                self.last_position
            );
            self.broken(self.last_position, "", 0, reason);
        }
        Verification {
            events: self.events,
            streams: self.streams.len(),
            head_position: self.last_position,
            head_hash: self.log,
            first_break: self.first_break,
        }
    }
}

/// Verifies any backend through the `EventStore` trait: every event's hash and every
/// stream's chain, in log order (the whole-log chain is the SQLite backend's own: see
/// `sqlite::verify`).
pub async fn verify_store(
    store: &dyn crate::EventStore,
    gapless_positions: bool,
) -> Result<Verification, crate::StoreError> {
    let mut verifier = Verifier::new(gapless_positions);
    let mut after = 0;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            if !verifier.check(e, None) {
                return Ok(verifier.finish());
            }
        }
    }
    Ok(verifier.finish())
}
