//! The event log of Convention Tracker: the only source of truth.
//!
//! It appends events to streams with an expected version (no lost update), also to several
//! streams in one atomic write (a use case that changes several aggregates writes all of
//! their events or none: [`EventStore::append_all`]), reads a stream, reads the whole log
//! from a global position and follows it live. It never edits or deletes an event.
//! Backends: in-memory (tests), SQLite (the embedded default), PostgreSQL (a log shared
//! by several replicas) and KurrentDB (feature `kurrentdb`; writes need server 25.1.1 or
//! later). [`handler`] runs
//! commands against it: load → decide → append, with retries and idempotency.
//!
//! It must never decide a business rule: it checks only what a log promises (versions,
//! command ids, chains).

pub mod background;
pub mod chain;
pub mod directory;
pub mod handler;
#[cfg(feature = "kurrentdb")]
pub mod kurrent;
pub mod memory;
pub mod payload;
pub mod postgres;
pub mod replicas;
pub mod rewrite;
pub mod sqlite;
pub mod verify;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::{CommandId, CommandMeta, EventId};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;

pub use chain::ChainHash;
pub use directory::{Adopted, Directory, DirectoryError, PersonKind};
pub use handler::{CommandOutcome, HandleError, handle};
pub use memory::MemoryStore;
pub use payload::Payload;
pub use postgres::PostgresStore;
pub use replicas::{ReplicaState, SharedToken};
pub use sqlite::SqliteStore;
pub use verify::{Break, Verification, Verifier, verify_store};

/// The version a writer expects a stream to be at; a mismatch means someone else wrote
/// first, and the writer must reload and decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Write whatever the stream's version (only for streams with a single writer).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version (versions start at 1).
    Exact(u64),
}

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub business_date: NaiveDate,
    pub payload: Payload,
    pub metadata: CommandMeta,
}

impl NewEvent {
    /// What its hash covers once it is written at `version` of `stream` at `recorded_at_micros`:
    /// every backend chains it the same way.
    pub(crate) fn hashed<'a>(
        &'a self,
        stream: &'a str,
        version: u64,
        recorded_at_micros: i64,
    ) -> chain::HashedFields<'a> {
        chain::HashedFields {
            stream,
            version,
            event_id: self.event_id.0.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            business_date: self.business_date,
            recorded_at_micros,
            payload: self.payload.as_str(),
            command_id: self.metadata.command_id.0.as_bytes(),
            actor: &self.metadata.actor,
            correlation_id: self.metadata.correlation_id.0.as_bytes(),
            causation_id: self.metadata.causation_id.as_ref().map(|c| c.0.as_bytes()),
        }
    }
}

/// An event as the log holds it, with both time axes: the business date it concerns and
/// the instant it was recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    /// Global position in the whole log, from 1, without gaps.
    pub position: u64,
    pub stream: String,
    /// Version within the stream, from 1, without gaps.
    pub version: u64,
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub business_date: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub payload: Payload,
    pub metadata: CommandMeta,
    /// Chained to the previous event of the stream: see [`chain`].
    pub hash: ChainHash,
}

impl RecordedEvent {
    /// Builds the record of a new event and computes its hash from the stream's previous one.
    pub fn record(
        e: NewEvent,
        stream: &str,
        version: u64,
        position: u64,
        recorded_at: DateTime<Utc>,
        previous_in_stream: &ChainHash,
    ) -> Self {
        let mut r = RecordedEvent {
            position,
            stream: stream.to_string(),
            version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            business_date: e.business_date,
            recorded_at,
            payload: e.payload,
            metadata: e.metadata,
            hash: ChainHash::GENESIS,
        };
        r.hash = r.compute_hash(previous_in_stream);
        r
    }

    /// What this event's hash must be, given the previous hash of its stream.
    pub fn compute_hash(&self, previous_in_stream: &ChainHash) -> ChainHash {
        chain::event_hash(
            previous_in_stream,
            &chain::HashedFields {
                stream: &self.stream,
                version: self.version,
                event_id: self.event_id.0.as_bytes(),
                event_type: &self.event_type,
                schema_version: self.schema_version,
                business_date: self.business_date,
                recorded_at_micros: self.recorded_at.timestamp_micros(),
                payload: self.payload.as_str(),
                command_id: self.metadata.command_id.0.as_bytes(),
                actor: &self.metadata.actor,
                correlation_id: self.metadata.correlation_id.0.as_bytes(),
                causation_id: self.metadata.causation_id.as_ref().map(|c| c.0.as_bytes()),
            },
        )
    }

    /// The stream's category (`convention` for `convention-<id>`).
    pub fn category(&self) -> &str {
        self.stream.split_once('-').map_or(self.stream.as_str(), |(c, _)| c)
    }

    /// The id part of the stream name.
    pub fn stream_id(&self) -> &str {
        self.stream.split_once('-').map_or("", |(_, id)| id)
    }
}

/// One append: the events of one command, to one stream.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub command_id: CommandId,
    /// A digest of the command's content: the same id with other content is refused.
    pub fingerprint: String,
    pub events: Vec<NewEvent>,
}

/// What an append wrote; also the stored answer to a command, returned again when the
/// same command id comes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub stream: String,
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
    pub recorded_at: DateTime<Utc>,
    /// True when this is the stored answer to a command already applied.
    pub duplicate: bool,
}

/// A command the log has applied: its content's digest and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub fingerprint: String,
    pub outcome: AppendOutcome,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, expected {expected:?}")]
    WrongExpectedVersion { stream: String, expected: ExpectedVersion, actual: u64 },
    #[error("command id {command_id} was already used for a different command")]
    CommandIdReused { command_id: CommandId },
    #[error("an append must carry at least one event")]
    EmptyAppend,
    /// Two parts of one `append_all` name the same stream: each stream is checked against
    /// one expected version, so its events must come as one request.
    #[error("stream {stream} appears twice in one atomic append")]
    StreamTwiceInAppend { stream: String },
    /// Two parts of one `append_all` carry the same command id, which names one append.
    #[error("command id {command_id} appears twice in one atomic append")]
    CommandTwiceInAppend { command_id: CommandId },
    /// Some parts of an `append_all` were applied before and others not: no single earlier
    /// write can be answered again, and writing the rest would split what was meant as one.
    #[error("command {command_id} of this atomic append was already applied, but not all of its commands were")]
    PartlyApplied { command_id: CommandId },
    #[error("event {index} of command {command_id} has id {event_id}, not the id derived from its command")]
    ForeignEventId { command_id: CommandId, index: usize, event_id: EventId },
    #[error("event {index} of command {command_id} carries command id {found} in its metadata, not its command's")]
    ForeignCommandId { command_id: CommandId, index: usize, found: CommandId },
    #[error("{field} is {len} bytes long; the log stores at most 65 535")]
    FieldTooLong { field: &'static str, len: usize },
    /// The log holds something it cannot read: `what` says where, `source` the decoder's
    /// own error when there is one.
    #[error("the log holds an event it cannot read ({what})")]
    Corrupt {
        what: String,
        #[source]
        source: Option<BackendError>,
    },
    /// The storage underneath failed (I/O, connection, a writer gone): `what` says what the
    /// log was doing, `source` keeps the backend's own error (rusqlite's, tokio-postgres's,
    /// KurrentDB's) for whoever needs its kind; each backend converts its errors itself.
    #[error("storage failure: {what}")]
    Backend {
        what: String,
        #[source]
        source: Option<BackendError>,
    },
    /// The backend cannot give the guarantee asked for; it refuses rather than weaken it.
    #[error("not supported by this event log: {0}")]
    Unsupported(&'static str),
}

/// A backend's own error, kept as the source of a [`StoreError`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// The storage failed, with no error of its own to keep (a writer gone, a lock held).
    pub fn backend(what: impl Into<String>) -> Self {
        StoreError::Backend { what: what.into(), source: None }
    }

    /// The storage failed with `source`; its message is also `what`'s, so a log line that
    /// prints only the top error still says what went wrong.
    pub fn backend_from(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend { what: source.to_string(), source: Some(Box::new(source)) }
    }

    /// The storage failed with `source` while doing `context`.
    pub fn backend_context(
        context: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend { what: format!("{context}: {source}"), source: Some(Box::new(source)) }
    }

    /// The log holds something unreadable at `what`.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into(), source: None }
    }

    /// The log holds something unreadable at `what`, as `source` (a decoder's error) says.
    pub fn corrupt_from(what: impl std::fmt::Display, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Corrupt { what: format!("{what}: {source}"), source: Some(Box::new(source)) }
    }
}

/// The event log. Every backend passes the same conformance tests.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically, only if the stream is at the expected version; acknowledged only
    /// once durable. A command id already applied returns its first answer. By default, an
    /// [`append_all`](Self::append_all) of one request (checked by it the same way).
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let mut outcomes = self.append_all(vec![request]).await?;
        Ok(outcomes.pop().expect("one outcome per request"))
    }

    /// Several appends, each to its own stream with its own expected version and command id,
    /// written as one: all in one durable commit, or none. For use cases that change several
    /// aggregates, whose events must never be half written.
    ///
    /// The same on every backend:
    /// - each request is checked as [`append`](Self::append) checks it; an empty `requests`
    ///   is [`StoreError::EmptyAppend`]; two requests naming one stream are
    ///   [`StoreError::StreamTwiceInAppend`], two with one command id
    ///   [`StoreError::CommandTwiceInAppend`];
    /// - idempotency, per request command id: if every one was applied with the same
    ///   fingerprint, the answer is their stored outcomes (`duplicate: true`) and nothing is
    ///   written; one applied with another fingerprint is [`StoreError::CommandIdReused`];
    ///   some but not all applied is [`StoreError::PartlyApplied`] (naming the first applied);
    /// - every request is checked against its stream's version; a mismatch is
    ///   [`StoreError::WrongExpectedVersion`] for the first stream that does not match;
    /// - refused, nothing is written. Written, the events get contiguous global positions in
    ///   request order, one recording instant, and each request stays an append of its own:
    ///   its own outcome (in request order), found by [`find_command`](Self::find_command)
    ///   under its command id. Acknowledged only once durable; the head moves once.
    ///
    /// A backend that cannot write several streams atomically says so with
    /// [`atomic_multi_stream`](Self::atomic_multi_stream) and refuses more than one request
    /// with [`StoreError::Unsupported`] rather than write them one by one.
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Whether `append_all` can write more than one stream atomically (false on a KurrentDB
    /// server older than 25.1.1, which the tracker only reads).
    fn atomic_multi_stream(&self) -> bool {
        true
    }

    /// For a log whose `append_all` is handed to it, in call order, by the first poll of
    /// its future (the rest only waits for the durable commit) and that no other process
    /// writes: its shared state, the same for every handle on it in this process. A caller
    /// may then let the next writer of a stream decide on top of an append still in flight
    /// (pipelining): that writer's append expects the versions the first one writes, is
    /// checked after it, and — all writers of this process sharing one turn per stream —
    /// can only be written if the first one was. `None` unless the backend guarantees it.
    fn ordered_log(&self) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        None
    }

    /// Every event of one stream, in version order.
    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A stream's events from `version` on (inclusive), in order. Backends that can
    /// should read only those: the command handler brings a cached aggregate up to date
    /// with them instead of folding a long stream again.
    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_stream(stream).await?.into_iter().filter(|e| e.version >= version).collect())
    }

    /// Up to `limit` events with a global position greater than `after`, in order.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The event at `position`, if there is one. By default the one `read_all` gives
    /// after `position - 1`, which needs gapless positions; a backend whose positions have
    /// gaps (KurrentDB) reads it where it is.
    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        let page = self.read_all(position.saturating_sub(1), 1).await?;
        Ok(page.into_iter().next().filter(|e| e.position == position))
    }

    /// The stored answer to a command already applied, with its fingerprint.
    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError>;

    /// The position of the last event, updated on every append: followers wait on it.
    fn head(&self) -> watch::Receiver<u64>;

    /// What the replicas sharing this log share beside it (tokens, checkpoints, leases),
    /// on a backend several processes write (PostgreSQL); `None` on a log of one process.
    fn replica_state(&self) -> Option<Arc<dyn ReplicaState>> {
        None
    }
}

/// `text` (an error from a client library, say) with the password `url` holds, if any,
/// masked wherever it appears.
pub fn scrub_password(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => text.replace(p, "***"),
        None => text.to_string(),
    }
}

/// A connection string fit to print: its password, if any, replaced by `***` (URLs go
/// into errors, logs and `tracker verify`'s report; credentials must not).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    // A password can also come as a query parameter.
    let tail = tail
        .split_inclusive(['?', '&'])
        .map(|part| {
            let (body, sep) = match part.strip_suffix(['?', '&']) {
                Some(body) => (body, &part[body.len()..]),
                None => (part, ""),
            };
            match body.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***{sep}"),
                _ => part.to_string(),
            }
        })
        .collect::<String>();
    format!("{scheme}://{user}@{host}{tail}")
}

/// Checks every backend makes before writing: an append carries events, and their ids
/// are derived from its command id, so that command-id uniqueness (which the log
/// enforces) makes event ids unique too, and a retried command produces the same ids;
/// each event names that command in its metadata (the log finds a command through its
/// events); names fit the log's length prefixes.
pub(crate) fn check_request(request: &AppendRequest) -> Result<(), StoreError> {
    const MAX_TEXT: usize = u16::MAX as usize;
    if request.events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    let too_long = |field, text: &str| match text.len() {
        len if len > MAX_TEXT => Err(StoreError::FieldTooLong { field, len }),
        _ => Ok(()),
    };
    too_long("the command's fingerprint", &request.fingerprint)?;
    if request.events.len() > u32::MAX as usize {
        return Err(StoreError::FieldTooLong { field: "the append's event list", len: request.events.len() });
    }
    for (index, e) in request.events.iter().enumerate() {
        if e.event_id != EventId::for_command(request.command_id, index) {
            return Err(StoreError::ForeignEventId { command_id: request.command_id, index, event_id: e.event_id });
        }
        if e.metadata.command_id != request.command_id {
            let (command_id, found) = (request.command_id, e.metadata.command_id);
            return Err(StoreError::ForeignCommandId { command_id, index, found });
        }
        too_long("an event type", &e.event_type)?;
        too_long("an actor", &e.metadata.actor)?;
    }
    Ok(())
}

/// Checks every backend makes before an `append_all`: each request as `append` checks it,
/// at least one request, no stream and no command id twice.
pub(crate) fn check_requests(requests: &[AppendRequest]) -> Result<(), StoreError> {
    if requests.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    for (i, request) in requests.iter().enumerate() {
        check_request(request)?;
        let earlier = &requests[..i];
        if earlier.iter().any(|r| r.stream == request.stream) {
            return Err(StoreError::StreamTwiceInAppend { stream: request.stream.clone() });
        }
        if earlier.iter().any(|r| r.command_id == request.command_id) {
            return Err(StoreError::CommandTwiceInAppend { command_id: request.command_id });
        }
    }
    Ok(())
}

/// The idempotency rule of `append_all`, given what the log holds for each request's
/// command id (`found[i]` for `requests[i]`): `None` to write them, the stored answers if
/// all were applied alike, or the refusal. Another fingerprint wins over a partial match:
/// it is the caller's mistake whatever else was applied.
pub(crate) fn judge_applied(
    requests: &[AppendRequest],
    found: Vec<Option<CommandRecord>>,
) -> Result<Option<Vec<AppendOutcome>>, StoreError> {
    let mut outcomes = Vec::new();
    let mut first_applied = None;
    for (request, found) in requests.iter().zip(found) {
        let Some(record) = found else { continue };
        if record.fingerprint != request.fingerprint {
            return Err(StoreError::CommandIdReused { command_id: request.command_id });
        }
        first_applied.get_or_insert(request.command_id);
        outcomes.push(AppendOutcome { duplicate: true, ..record.outcome });
    }
    match first_applied {
        None => Ok(None),
        Some(_) if outcomes.len() == requests.len() => Ok(Some(outcomes)),
        Some(command_id) => Err(StoreError::PartlyApplied { command_id }),
    }
}

/// The version check both backends share.
pub(crate) fn check_expected(stream: &str, expected: ExpectedVersion, actual: u64) -> Result<(), StoreError> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual == 0,
        ExpectedVersion::Exact(v) => actual == v,
    };
    if ok { Ok(()) } else { Err(StoreError::WrongExpectedVersion { stream: stream.to_string(), expected, actual }) }
}

/// The recording instant, to the microsecond: what the SQLite backend can store, so that
/// every backend answers the same instant before and after a restart.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// How many events a follower reads per page while catching up.
const FOLLOW_PAGE: usize = 1024;

/// Follows the log from a checkpoint: every event after `after`, then each new one as it
/// is appended (catch-up then live). The stream ends only on a storage error.
pub fn follow(store: Arc<dyn EventStore>, after: u64) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send {
    struct State {
        store: Arc<dyn EventStore>,
        after: u64,
        buffer: VecDeque<RecordedEvent>,
        head: watch::Receiver<u64>,
        failed: bool,
    }
    let head = store.head();
    let state = State { store, after, buffer: VecDeque::new(), head, failed: false };
    futures::stream::unfold(state, |mut s| async move {
        if s.failed {
            return None;
        }
        loop {
            if let Some(event) = s.buffer.pop_front() {
                s.after = event.position;
                return Some((Ok(event), s));
            }
            match s.store.read_all(s.after, FOLLOW_PAGE).await {
                Ok(page) if !page.is_empty() => s.buffer.extend(page),
                Ok(_) => {
                    let after = s.after;
                    if s.head.wait_for(|h| *h > after).await.is_err() {
                        return None; // the store is gone
                    }
                }
                Err(e) => {
                    s.failed = true;
                    return Some((Err(e), s));
                }
            }
        }
    })
}

#[cfg(test)]
mod conformance;
