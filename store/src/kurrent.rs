//! The KurrentDB backend, for deployments that already run KurrentDB: several `tracker`
//! replicas append to one KurrentDB cluster and each follows `$all` for its read models.
//!
//! Mapping: a tracker stream is a KurrentDB stream; our versions start at 1 where
//! KurrentDB revisions start at 0; our global position is the event's *prepare* position
//! in `$all` (unique per event and increasing, but with gaps). Our metadata, the business
//! date, the recording instant (to the microsecond, KurrentDB's own `created` keeps only
//! seconds) and the chain hash travel in each event's properties (one property,
//! [`TRACKER_PROPERTY`], holding them as JSON); an event without it is another
//! application's, and is skipped, never reported corrupt.
//!
//! Writes use the server's v2 multi-stream append (`AppendSession`, KurrentDB 25.1.1 and
//! later, see [`wire`]): the events of every stream of an `append_all` **and** one record per
//! command (`tracker_command-<id>`, expected "no stream", event type `$TrackerCommand` so
//! that `$all` readers filtering system events skip it) go in one transaction. So a
//! command is applied with its record or not at all, and a command id is applied at most
//! once: the record's "no stream" check refuses a second one. Any failure whose outcome
//! is unknown (deadline, dropped connection, unavailable node) is settled by reading the
//! records again: written (by this very call, which a random write id in the record
//! tells) or not (written again). An older server is read but never written to.
//!
//! Reads (streams, `$all`, the live subscription) use the `kurrentdb` 1.2 client, behind
//! [`Reads`] so that the tests can put a stand-in under them. A tracker event's position
//! is a record boundary of the server's log (commit and prepare positions are equal for
//! every event a current server writes), so `read_all(after)` and `read_at` start exactly
//! there, in a process that has not seen the position before too. Verification checks the
//! whole log against the last [`Seal`] written in it.

mod replicas;
mod seal;
mod wire;

#[cfg(test)]
mod stand_in;
#[cfg(test)]
pub(crate) mod tests;

pub use seal::Seal;
pub use wire::MINIMUM_SERVER;

use crate::{
    AppendOutcome, AppendRequest, ChainHash, CommandRecord, EventStore, NewEvent, Payload, RecordedEvent, StoreError,
    check_expected, check_requests,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::{CommandId, CommandMeta, CorrelationId, EventId};
use kurrentdb::{
    Client, ClientSettings, Position, ReadAllOptions, ReadStreamOptions, RetryOptions, StreamPosition,
    SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;
use wire::{Wire, WireError, WireSettings, pb};

/// The environment variable that selects KurrentDB (and enables its conformance tests).
pub const URL_VAR: &str = "KURRENTDB_URL";
const COMMAND_STREAM: &str = "tracker_command-";
const COMMAND_EVENT_TYPE: &str = "$TrackerCommand";
/// The property that marks an event as the tracker's and carries its metadata.
pub const TRACKER_PROPERTY: &str = "tracker";
/// Why a server older than [`MINIMUM_SERVER`] is not written to.
pub const SERVER_TOO_OLD: &str = "writing to KurrentDB needs server 25.1.1 or later (its v2 multi-stream append \
     writes a command's events and its record atomically; without it a retried command could be applied twice): \
     this server is older, so the tracker only reads it (verify, replay, explain, rebuild)";
/// The stream of seals: digests of the whole log, each up to a position (see [`Seal`]).
pub const SEAL_STREAM: &str = "tracker_seal";
const SEAL_EVENT_TYPE: &str = "$TrackerSeal";
/// Why a connection string that skips the server's certificate check is not written with.
pub const UNVERIFIED_TLS: &str = "writing to KurrentDB needs the server's certificate verified: give the cluster's CA \
     with tlsCaFile=/path/ca.crt instead of tlsVerifyCert=false (the tracker only reads with it)";
/// Full positions remembered for `read_all(after)`, so a page can resume exactly.
const REMEMBERED_POSITIONS: usize = 100_000;
/// How many times one write is tried: a lost race on a tip (with `Any`) or an outcome
/// unknown after a failure.
const WRITE_ATTEMPTS: usize = 8;
/// How many of them may end without an answer (each after at most the call deadline).
const AMBIGUOUS_ATTEMPTS: usize = 3;
/// How often the head is read again, besides the live subscription: a subscription that
/// stops or stalls never freezes a follower for longer.
const HEAD_POLL: Duration = Duration::from_secs(1);

/// True for the connection strings this backend takes.
pub fn is_kurrent_url(url: &str) -> bool {
    [
        "kurrentdb://",
        "kurrentdb+discover://",
        "kurrent://",
        "kurrent+discover://",
        "kdb://",
        "kdb+discover://",
        "esdb://",
        "esdb+discover://",
    ]
    .iter()
    .any(|scheme| url.starts_with(scheme))
}

/// What our events carry in KurrentDB's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerMetadata {
    pub command_id: CommandId,
    pub actor: String,
    pub correlation_id: CorrelationId,
    pub causation_id: Option<EventId>,
    pub business_date: NaiveDate,
    pub schema_version: u32,
    /// Microseconds since the Unix epoch.
    pub recorded_at: i64,
    pub hash: ChainHash,
}

impl TrackerMetadata {
    pub fn of(e: &RecordedEvent) -> Self {
        Self {
            command_id: e.metadata.command_id,
            actor: e.metadata.actor.clone(),
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            business_date: e.business_date,
            schema_version: e.schema_version,
            recorded_at: e.recorded_at.timestamp_micros(),
            hash: e.hash,
        }
    }
}

/// Our version for a KurrentDB revision.
pub fn version_of_revision(revision: u64) -> u64 {
    revision + 1
}

/// The expected revision of the v2 protocol for a stream at our `version` (0: none yet).
fn expected_revision(version: u64) -> i64 {
    if version == 0 { wire::NO_STREAM } else { version as i64 - 1 }
}

/// A command's record: what a retry of it gets back.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandRecordBody {
    fingerprint: String,
    /// Which write put it there, so that a write whose answer was lost recognises its own
    /// record (and answers "applied", not "duplicate").
    write_id: Uuid,
    stream: String,
    first_version: u64,
    last_version: u64,
    recorded_at: DateTime<Utc>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("KurrentDB: {e}"))
}

/// One event as KurrentDB returns it, whoever wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    pub stream: String,
    pub revision: u64,
    pub id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    /// The metadata: JSON for the tracker's events (anything for others').
    pub custom_metadata: Vec<u8>,
    pub position: Position,
}

impl From<&kurrentdb::RecordedEvent> for Raw {
    fn from(e: &kurrentdb::RecordedEvent) -> Self {
        Self {
            stream: e.stream_id().to_string(),
            revision: e.revision,
            id: e.id,
            event_type: e.event_type.clone(),
            data: e.data.to_vec(),
            custom_metadata: e.custom_metadata.to_vec(),
            position: e.position,
        }
    }
}

/// The reads the backend makes. Each has a deadline; "no such stream" is an empty answer.
#[async_trait]
pub(crate) trait Reads: Send + Sync + 'static {
    /// Up to `max` events of `stream` from `revision` on, in order.
    async fn stream_forwards(&self, stream: &str, revision: u64, max: usize) -> Result<Vec<Raw>, StoreError>;
    /// The last event of `stream`.
    async fn stream_last(&self, stream: &str) -> Result<Option<Raw>, StoreError>;
    /// Up to `max` non-system events of `$all` from `from` (inclusive) on, in order.
    async fn all_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError>;
    /// Up to `max` non-system events of `$all`, the last first.
    async fn all_backwards(&self, max: usize) -> Result<Vec<Raw>, StoreError>;
    /// Up to `max` command records (events of `tracker_command-…` streams) in `$all` from
    /// `from` (inclusive), in order: filtered on the server side by stream name.
    async fn commands_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError>;
    /// Lets the server drop all but the last `count` events of one of the tracker's
    /// bookkeeping streams (a lease's renewals; never the log): its `$maxCount`.
    async fn keep_last(&self, _stream: &str, _count: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The reads through the `kurrentdb` client, on the leader (reads after writes, and the
/// tips a write is checked against, must see the last commit). A client whose connection
/// failed is replaced by a new one, so that no failed discovery or lost node is kept for
/// good.
struct ClientReads {
    client: Mutex<Client>,
    settings: ClientSettings,
    deadline: Duration,
}

impl ClientReads {
    fn new(settings: ClientSettings, deadline: Duration) -> Result<Self, StoreError> {
        let client = Client::new(settings.clone()).map_err(|e| backend(format!("{e:#}")))?;
        Ok(Self { client: Mutex::new(client), settings, deadline })
    }

    fn client(&self) -> Client {
        self.client.lock().expect("client poisoned").clone()
    }

    /// After a failure of the connection: a new client, which discovers the nodes again.
    fn renew(&self, why: &dyn std::fmt::Display) {
        tracing::warn!(error = %why, "KurrentDB: the connection failed; connecting again");
        match Client::new(self.settings.clone()) {
            Ok(client) => *self.client.lock().expect("client poisoned") = client,
            Err(e) => tracing::error!(error = %e, "KurrentDB: cannot build a new client"),
        }
    }

    async fn collect(
        &self,
        what: &str,
        read: impl Future<Output = kurrentdb::Result<kurrentdb::ReadStream>>,
    ) -> Result<Vec<Raw>, StoreError> {
        let all = async {
            let mut read = read.await?;
            let mut out = Vec::new();
            while let Some(e) = read.next().await? {
                out.push(Raw::from(e.get_original_event()));
            }
            Ok(out)
        };
        match tokio::time::timeout(self.deadline, all).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(kurrentdb::Error::ResourceNotFound)) => Ok(Vec::new()),
            Ok(Err(kurrentdb::Error::ResourceDeleted)) => {
                Err(StoreError::corrupt(format!("{what} was deleted: the tracker's streams are never deleted")))
            }
            Ok(Err(
                e @ (kurrentdb::Error::GrpcConnectionError(_)
                | kurrentdb::Error::ConnectionClosed
                | kurrentdb::Error::DeadlineExceeded
                | kurrentdb::Error::Grpc { code: tonic::Code::Unavailable, .. }),
            )) => {
                self.renew(&e);
                Err(backend(e))
            }
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => {
                let e = format!("no answer to a read of {what} within {:?}", self.deadline);
                self.renew(&e);
                Err(backend(e))
            }
        }
    }
}

fn tracker_events_only() -> SubscriptionFilter {
    SubscriptionFilter::on_event_type().exclude_system_events()
}

#[async_trait]
impl Reads for ClientReads {
    async fn stream_forwards(&self, stream: &str, revision: u64, max: usize) -> Result<Vec<Raw>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(revision))
            .max_count(max)
            .requires_leader(true)
            .deadline(self.deadline);
        let client = self.client();
        self.collect(stream, client.read_stream(stream, &options)).await
    }

    async fn stream_last(&self, stream: &str) -> Result<Option<Raw>, StoreError> {
        let options = ReadStreamOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(1)
            .requires_leader(true)
            .deadline(self.deadline);
        let client = self.client();
        Ok(self.collect(stream, client.read_stream(stream, &options)).await?.pop())
    }

    async fn all_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError> {
        let options = ReadAllOptions::default()
            .position(from.map_or(StreamPosition::Start, StreamPosition::Position))
            .forwards()
            .max_count(max)
            .filter(tracker_events_only())
            .requires_leader(true)
            .deadline(self.deadline);
        let client = self.client();
        self.collect("$all", client.read_all(&options)).await
    }

    async fn all_backwards(&self, max: usize) -> Result<Vec<Raw>, StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(max)
            .filter(tracker_events_only())
            .requires_leader(true)
            .deadline(self.deadline);
        let client = self.client();
        self.collect("$all", client.read_all(&options)).await
    }

    async fn commands_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError> {
        let options = ReadAllOptions::default()
            .position(from.map_or(StreamPosition::Start, StreamPosition::Position))
            .forwards()
            .max_count(max)
            .filter(SubscriptionFilter::on_stream_name().add_prefix(COMMAND_STREAM))
            .requires_leader(true)
            .deadline(self.deadline);
        let client = self.client();
        self.collect("$all", client.read_all(&options)).await
    }

    async fn keep_last(&self, stream: &str, count: u64) -> Result<(), StoreError> {
        let metadata = kurrentdb::StreamMetadata::builder().max_count(count).build();
        let options = kurrentdb::AppendToStreamOptions::default().deadline(self.deadline);
        self.client().set_stream_metadata(stream, &options, &metadata).await.map(|_| ()).map_err(backend)
    }
}

/// How the backend writes: through the v2 append, or not at all (older server).
pub(crate) enum Writes {
    V2(Arc<Wire>),
    /// Why not.
    Refused(&'static str),
}

pub struct KurrentStore {
    reads: Arc<dyn Reads>,
    writes: Writes,
    /// Tokens, checkpoints and leases in the log (when it is written to).
    replicas: Option<Arc<replicas::KurrentReplicaState>>,
    head: Arc<watch::Sender<u64>>,
    positions: Arc<Mutex<BTreeMap<u64, Position>>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn remember(positions: &Mutex<BTreeMap<u64, Position>>, p: Position) {
    let mut map = positions.lock().expect("positions poisoned");
    map.insert(p.prepare, p);
    while map.len() > REMEMBERED_POSITIONS {
        map.pop_first();
    }
}

/// The tracker's metadata of an event, `None` if the event is another application's (no
/// [`TRACKER_PROPERTY`] in its metadata, or no metadata at all).
fn tracker_metadata(raw: &Raw) -> Result<Option<TrackerMetadata>, StoreError> {
    if raw.event_type.starts_with('$') {
        return Ok(None);
    }
    let corrupt = |what: &str, err: &dyn std::fmt::Display| {
        StoreError::corrupt(format!("{} revision {}: {what}: {err}", raw.stream, raw.revision))
    };
    let Ok(serde_json::Value::Object(mut properties)) = serde_json::from_slice(&raw.custom_metadata) else {
        return Ok(None);
    };
    match properties.remove(TRACKER_PROPERTY) {
        Some(serde_json::Value::String(text)) => {
            serde_json::from_str(&text).map(Some).map_err(|err| corrupt("tracker metadata", &err))
        }
        Some(other) => Err(corrupt("tracker metadata", &format!("not a text: {other}"))),
        // Written by the tracker before the v2 append (its metadata as the whole object),
        // or by someone else.
        None => Ok(serde_json::from_value(serde_json::Value::Object(properties)).ok()),
    }
}

/// Decodes one KurrentDB event into ours; `None` for events that are not the tracker's.
fn decode(raw: &Raw) -> Result<Option<RecordedEvent>, StoreError> {
    let Some(meta) = tracker_metadata(raw)? else { return Ok(None) };
    let corrupt = |what: &str, err: &dyn std::fmt::Display| {
        StoreError::corrupt(format!("{} revision {}: {what}: {err}", raw.stream, raw.revision))
    };
    let payload = std::str::from_utf8(&raw.data).map_err(|err| corrupt("payload", &err))?;
    Ok(Some(RecordedEvent {
        position: raw.position.prepare,
        stream: raw.stream.clone(),
        version: version_of_revision(raw.revision),
        event_id: EventId(raw.id),
        event_type: raw.event_type.clone(),
        schema_version: meta.schema_version,
        business_date: meta.business_date,
        recorded_at: DateTime::<Utc>::from_timestamp_micros(meta.recorded_at)
            .ok_or_else(|| corrupt("recorded at", &meta.recorded_at))?,
        payload: Payload::from_text(payload),
        metadata: CommandMeta {
            command_id: meta.command_id,
            actor: meta.actor,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
        },
        hash: meta.hash,
    }))
}

/// A tracker event, as a v2 record.
fn record_of(e: &RecordedEvent) -> Result<pb::AppendRecord, StoreError> {
    let meta = serde_json::to_string(&TrackerMetadata::of(e)).map_err(backend)?;
    Ok(pb::AppendRecord {
        record_id: Some(e.event_id.0.to_string()),
        properties: wire::string_properties([(TRACKER_PROPERTY.to_string(), meta)]),
        schema: Some(pb::SchemaInfo { format: Some(pb::SCHEMA_FORMAT_JSON), name: e.event_type.clone(), id: None }),
        data: e.payload.as_str().as_bytes().to_vec(),
    })
}

/// A command's record, as a v2 append of its own stream, which must not exist yet.
fn command_record(command_id: CommandId, body: &CommandRecordBody) -> Result<pb::AppendRequest, StoreError> {
    let data = serde_json::to_vec(body).map_err(backend)?;
    Ok(pb::AppendRequest {
        stream: format!("{COMMAND_STREAM}{command_id}"),
        records: vec![pb::AppendRecord {
            // Derived from the command: the same command's record always has the same id.
            record_id: Some(Uuid::new_v5(&command_id.0, b"tracker command record").to_string()),
            properties: Default::default(),
            schema: Some(pb::SchemaInfo {
                format: Some(pb::SCHEMA_FORMAT_JSON),
                name: COMMAND_EVENT_TYPE.into(),
                id: None,
            }),
            data,
        }],
        expected_revision: Some(wire::NO_STREAM),
    })
}

impl KurrentStore {
    /// Connects to KurrentDB (`kurrentdb://host:2113?tls=false`, or a cluster's
    /// `kurrentdb+discover://...`), asks the server's version (writes need
    /// [`MINIMUM_SERVER`]) and starts following `$all` for the head position.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = url.parse().map_err(|e: kurrentdb::ClientSettingsParseError| {
            // Neither the URL nor the client's message may show the password.
            let e = crate::scrub_password(&e.to_string(), url);
            backend(format!("bad URL {}: {e}", crate::redact_url(url)))
        })?;
        let reads = Arc::new(
            ClientReads::new(settings.clone(), wire::CALL_DEADLINE)
                .map_err(|e| backend(crate::scrub_password(&e.to_string(), url)))?,
        );
        let writes = if settings.is_secure_mode_enabled() && !settings.is_tls_certificate_verification_enabled() {
            tracing::warn!("KurrentDB: {UNVERIFIED_TLS}");
            Writes::Refused(UNVERIFIED_TLS)
        } else {
            writes_for(Wire::new(WireSettings::from_client_settings(url, &settings)?))
                .await
                .map_err(|e| backend(format!("cannot reach {}: {e}", crate::redact_url(url))))?
        };
        let mut store = Self::with(reads.clone(), writes).await?;
        let from = store.positions.lock().expect("positions poisoned").values().next_back().copied();
        let follower = tokio::spawn(subscribe_head(settings, from, store.head.clone(), store.positions.clone()));
        store.tasks.push(follower.abort_handle());
        Ok(store)
    }

    /// A store on these reads and writes, its head polled (see [`HEAD_POLL`]).
    pub(crate) async fn with(reads: Arc<dyn Reads>, writes: Writes) -> Result<Self, StoreError> {
        let positions: Arc<Mutex<BTreeMap<u64, Position>>> = Arc::default();
        let last = last_tracker_event(reads.as_ref(), 0).await?;
        if let Some(p) = last {
            remember(&positions, p);
        }
        let head = Arc::new(watch::Sender::new(last.map_or(0, |p| p.prepare)));
        let poll = tokio::spawn(poll_head(reads.clone(), head.clone(), positions.clone())).abort_handle();
        let replicas = match &writes {
            Writes::V2(wire) => Some(Arc::new(replicas::KurrentReplicaState::new(reads.clone(), wire.clone()))),
            Writes::Refused(_) => None,
        };
        Ok(Self { reads, writes, replicas, head, positions, tasks: vec![poll] })
    }

    /// The stream's version and the hash of its last event.
    async fn tip(&self, stream: &str) -> Result<(u64, ChainHash), StoreError> {
        match self.reads.stream_last(stream).await? {
            None => Ok((0, ChainHash::GENESIS)),
            Some(raw) => match decode(&raw)? {
                Some(e) => Ok((e.version, e.hash)),
                None => Err(StoreError::corrupt(format!(
                    "{stream} revision {}: the stream's last event is not the tracker's",
                    raw.revision
                ))),
            },
        }
    }

    /// The tracker events of `stream` from `version` on, refusing a stream whose events
    /// from there do not all come back (truncated by `$maxCount`, `$maxAge` or `$tb`, or
    /// scavenged): a fold of a partial history would be wrong without notice.
    async fn stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        const PAGE: usize = 4096;
        let from = version.max(1) - 1;
        // In pages, each within the deadline of one read.
        let mut raws = Vec::new();
        loop {
            let page = self.reads.stream_forwards(stream, from + raws.len() as u64, PAGE).await?;
            let full = page.len() == PAGE;
            raws.extend(page);
            if !full {
                break;
            }
        }
        let mut out = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            if raw.revision != from + i as u64 {
                return Err(StoreError::corrupt(format!(
                    "{stream}: revision {} read where {} was expected: the stream is truncated ($maxCount, \
                     $maxAge, $tb or a scavenge) and the tracker refuses to fold a partial history",
                    raw.revision,
                    from + i as u64
                )));
            }
            remember(&self.positions, raw.position);
            match decode(raw)? {
                Some(e) => out.push(e),
                None => {
                    return Err(StoreError::corrupt(format!(
                        "{stream} revision {}: an event that is not the tracker's in one of its streams",
                        raw.revision
                    )));
                }
            }
        }
        Ok(out)
    }

    /// What the log holds for a command id: its record, the answer built from it (the
    /// positions read from its events), and the write that put it there.
    async fn command(&self, command_id: CommandId) -> Result<Option<(CommandRecord, Option<Uuid>)>, StoreError> {
        let stream = format!("{COMMAND_STREAM}{command_id}");
        let Some(raw) = self.reads.stream_forwards(&stream, 0, 1).await?.pop() else { return Ok(None) };
        let corrupt = |what: String| StoreError::corrupt(format!("{stream}: {what}"));
        let value: serde_json::Value = serde_json::from_slice(&raw.data).map_err(|e| corrupt(e.to_string()))?;
        // Before the v2 append, the record held the whole answer.
        #[derive(Deserialize)]
        struct Before {
            fingerprint: String,
            outcome: AppendOutcome,
        }
        if let Ok(before) = serde_json::from_value::<Before>(value.clone()) {
            let outcome = AppendOutcome { duplicate: true, ..before.outcome };
            return Ok(Some((CommandRecord { fingerprint: before.fingerprint, outcome }, None)));
        }
        let body: CommandRecordBody = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let n = (body.last_version + 1).saturating_sub(body.first_version) as usize;
        let events = self.reads.stream_forwards(&body.stream, body.first_version.max(1) - 1, n).await?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Err(corrupt(format!("its events in {} are missing", body.stream)));
        };
        if events.len() != n || first.revision + 1 != body.first_version {
            return Err(corrupt(format!("its events in {} are not all there", body.stream)));
        }
        let outcome = AppendOutcome {
            stream: body.stream,
            first_version: body.first_version,
            last_version: body.last_version,
            first_position: first.position.prepare,
            last_position: last.position.prepare,
            recorded_at: body.recorded_at,
            duplicate: true,
        };
        Ok(Some((CommandRecord { fingerprint: body.fingerprint, outcome }, Some(body.write_id))))
    }

    /// The idempotency rule of `append_all` (see [`crate::judge_applied`]), where a record
    /// left by this very write (`write_id`) answers "applied", not "duplicate".
    async fn applied(
        &self,
        requests: &[AppendRequest],
        write_id: Uuid,
    ) -> Result<Option<Vec<AppendOutcome>>, StoreError> {
        let mut found = Vec::with_capacity(requests.len());
        let mut ours = Vec::with_capacity(requests.len());
        for request in requests {
            let record = self.command(request.command_id).await?;
            ours.push(record.as_ref().is_some_and(|(_, id)| *id == Some(write_id)));
            found.push(record.map(|(record, _)| record));
        }
        Ok(crate::judge_applied(requests, found)?.map(|outcomes| {
            outcomes.into_iter().zip(ours).map(|(o, ours)| AppendOutcome { duplicate: !ours, ..o }).collect()
        }))
    }

    /// The answers to a write just committed: each request's events read back for their
    /// positions.
    async fn outcomes_after_commit(
        &self,
        requests: &[AppendRequest],
        versions: &[u64],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(requests.len());
        for (request, &actual) in requests.iter().zip(versions) {
            let n = request.events.len();
            let written = self.reads.stream_forwards(&request.stream, actual, n).await.map_err(|e| {
                backend(format!(
                    "the append was committed but its positions could not be read back ({e}); send the command \
                     again with the same id: it gets its answer and is not applied twice"
                ))
            })?;
            let (Some(first), Some(last)) = (written.first(), written.last()) else {
                return Err(backend("the appended events cannot be read back"));
            };
            remember(&self.positions, first.position);
            remember(&self.positions, last.position);
            outcomes.push(AppendOutcome {
                stream: request.stream.clone(),
                first_version: actual + 1,
                last_version: actual + n as u64,
                first_position: first.position.prepare,
                last_position: last.position.prepare,
                recorded_at,
                duplicate: false,
            });
        }
        if let Some(last) = outcomes.iter().map(|o| o.last_position).max() {
            self.head.send_if_modified(|h| {
                let moved = last > *h;
                *h = (*h).max(last);
                moved
            });
        }
        Ok(outcomes)
    }

    /// One try: the tips read, the events chained, everything sent as one transaction.
    async fn try_write(
        &self,
        wire: &Wire,
        requests: &[AppendRequest],
        write_id: Uuid,
    ) -> Result<Result<Vec<AppendOutcome>, WireError>, StoreError> {
        let recorded_at = crate::now();
        let mut session = Vec::with_capacity(requests.len() * 2);
        let mut versions = Vec::with_capacity(requests.len());
        for request in requests {
            let (actual, mut previous) = self.tip(&request.stream).await?;
            check_expected(&request.stream, request.expected, actual)?;
            let mut records = Vec::with_capacity(request.events.len());
            for (i, e) in request.events.iter().enumerate() {
                let r = RecordedEvent::record(
                    NewEvent { ..e.clone() },
                    &request.stream,
                    actual + 1 + i as u64,
                    0,
                    recorded_at,
                    &previous,
                );
                previous = r.hash;
                records.push(record_of(&r)?);
            }
            // Always the exact revision read, with `Any` too: the chain links to that tip.
            session.push(pb::AppendRequest {
                stream: request.stream.clone(),
                records,
                expected_revision: Some(expected_revision(actual)),
            });
            versions.push(actual);
        }
        for (request, &actual) in requests.iter().zip(&versions) {
            let body = CommandRecordBody {
                fingerprint: request.fingerprint.clone(),
                write_id,
                stream: request.stream.clone(),
                first_version: actual + 1,
                last_version: actual + request.events.len() as u64,
                recorded_at,
            };
            session.push(command_record(request.command_id, &body)?);
        }
        match wire.append_session(session).await {
            Ok(_) => Ok(Ok(self.outcomes_after_commit(requests, &versions, recorded_at).await?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn write(&self, requests: &[AppendRequest]) -> Result<Vec<AppendOutcome>, StoreError> {
        let wire = match &self.writes {
            Writes::V2(wire) => wire,
            Writes::Refused(why) => return Err(StoreError::Unsupported(why)),
        };
        let write_id = Uuid::new_v4();
        let mut unknown: Option<String> = None;
        let mut unknown_tries = 0;
        let mut conflict = None;
        for attempt in 0..WRITE_ATTEMPTS {
            if unknown.is_some() {
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(4))).await;
            }
            // Applied already (before, by a concurrent writer of the same command, or by an
            // earlier try of this very write whose answer was lost)?
            match self.applied(requests, write_id).await {
                Ok(Some(outcomes)) => return Ok(outcomes),
                Ok(None) => {}
                Err(e) => match &unknown {
                    Some(u) => {
                        return Err(backend(format!(
                            "an append's outcome is unknown ({u}) and the log cannot be read to settle it ({e}); the \
                             command may have been applied: send it again with the same command id, it gets its first \
                             answer and is never applied twice"
                        )));
                    }
                    None => return Err(e),
                },
            }
            // The tips are read again on every try, so a lost race ends here as
            // `WrongExpectedVersion` (or is written again on the new tip, with `Any`).
            match self.try_write(wire, requests, write_id).await? {
                Ok(outcomes) => return Ok(outcomes),
                Err(WireError::Conflict { stream, actual }) => {
                    tracing::debug!(%stream, actual, "KurrentDB: a stream moved before the append; deciding again");
                    conflict = Some((stream, actual));
                }
                Err(WireError::Ambiguous(e)) => {
                    tracing::warn!(error = %e, attempt, "KurrentDB: an append's outcome is unknown; reading the log to settle it");
                    unknown_tries += 1;
                    if unknown_tries > AMBIGUOUS_ATTEMPTS {
                        unknown = Some(e);
                        break;
                    }
                    unknown = Some(e);
                }
                Err(WireError::Unimplemented(e)) => return Err(backend(format!("{SERVER_TOO_OLD} ({e})"))),
                Err(WireError::Refused(e)) => return Err(backend(e)),
            }
        }
        // A last look: the final try may have been committed.
        if unknown.is_some()
            && let Ok(Some(outcomes)) = self.applied(requests, write_id).await
        {
            return Ok(outcomes);
        }
        // Still losing races (the tips read lag behind the leader's): a conflict, which the
        // caller decides again.
        if unknown.is_none()
            && let Some((stream, actual)) = conflict
            && let Some(r) = requests.iter().find(|r| r.stream.eq_ignore_ascii_case(&stream))
        {
            let actual = (actual + 1).max(0) as u64;
            return Err(StoreError::WrongExpectedVersion { stream: r.stream.clone(), expected: r.expected, actual });
        }
        Err(backend(match unknown {
            Some(e) => format!(
                "no answer after {unknown_tries} tries (last: {e}); the command may have been applied: send it again \
                 with the same command id, it gets its first answer and is never applied twice"
            ),
            None => format!("the streams kept moving: {WRITE_ATTEMPTS} tries lost the race for their tips"),
        }))
    }
}

/// Writes through the v2 append if the server has it (from [`MINIMUM_SERVER`]), else none;
/// an error if the server cannot be asked.
pub(crate) async fn writes_for(wire: Wire) -> Result<Writes, String> {
    match wire.server_version().await {
        Ok(version) if version >= MINIMUM_SERVER => Ok(Writes::V2(Arc::new(wire))),
        Ok(version) => {
            tracing::warn!(server = ?version, "KurrentDB: {SERVER_TOO_OLD}");
            Ok(Writes::Refused(SERVER_TOO_OLD))
        }
        Err(WireError::Unimplemented(e)) => {
            tracing::warn!(error = %e, "KurrentDB: {SERVER_TOO_OLD}");
            Ok(Writes::Refused(SERVER_TOO_OLD))
        }
        Err(WireError::Ambiguous(e) | WireError::Refused(e) | WireError::Conflict { stream: e, .. }) => Err(e),
    }
}

/// The position of the last tracker event of `$all`, looking back past other
/// applications' events (up to a bound: beyond it, `floor`, the head already known).
async fn last_tracker_event(reads: &dyn Reads, floor: u64) -> Result<Option<Position>, StoreError> {
    const LOOK_BACK: usize = 256;
    for raw in reads.all_backwards(LOOK_BACK).await? {
        if raw.position.prepare <= floor {
            return Ok(None);
        }
        if tracker_metadata(&raw)?.is_some() {
            return Ok(Some(raw.position));
        }
    }
    Ok(None)
}

fn advance(head: &watch::Sender<u64>, p: u64) {
    head.send_if_modified(|h| {
        let moved = p > *h;
        *h = (*h).max(p);
        moved
    });
}

/// Reads the last tracker event's position every [`HEAD_POLL`]: the head moves even if
/// the live subscription stops, and failures are logged, never silent.
async fn poll_head(
    reads: Arc<dyn Reads>,
    head: Arc<watch::Sender<u64>>,
    positions: Arc<Mutex<BTreeMap<u64, Position>>>,
) {
    let mut failing = false;
    loop {
        tokio::time::sleep(HEAD_POLL).await;
        let floor = *head.borrow();
        match last_tracker_event(reads.as_ref(), floor).await {
            Ok(Some(p)) => {
                remember(&positions, p);
                advance(&head, p.prepare);
                failing = false;
            }
            Ok(None) => failing = false,
            Err(e) if !failing => {
                tracing::error!(error = %e, "KurrentDB: the head cannot be read; followers wait until it can");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Keeps `head` at the last tracker event of `$all` as it is appended, whoever appends
/// it; subscribes again after any failure (the poll covers the gap).
async fn subscribe_head(
    settings: ClientSettings,
    mut from: Option<Position>,
    head: Arc<watch::Sender<u64>>,
    positions: Arc<Mutex<BTreeMap<u64, Position>>>,
) {
    loop {
        // A client of its own, new after each failure: a failed discovery is not kept.
        let client = match Client::new(settings.clone()) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "KurrentDB: cannot build a client for the $all subscription");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let options = SubscribeToAllOptions::default()
            // From the last tracker event known, else from now: the head needs only what comes.
            .position(from.map_or(StreamPosition::End, StreamPosition::Position))
            .filter(tracker_events_only())
            .retry_options(RetryOptions::default().retry_forever().retry_delay(Duration::from_secs(1)));
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            match subscription.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(e)) => {
                    let raw = Raw::from(e.get_original_event());
                    from = Some(raw.position);
                    if matches!(tracker_metadata(&raw), Ok(Some(_))) {
                        remember(&positions, raw.position);
                        advance(&head, raw.position.prepare);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "KurrentDB: the $all subscription stopped; subscribing again");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        self.write(&requests).await
    }

    fn atomic_multi_stream(&self) -> bool {
        matches!(self.writes, Writes::V2(_))
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_from(stream, 1).await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_from(stream, version).await
    }

    /// Pages through `$all` until `limit` tracker events or its end: other applications'
    /// events are skipped, so a page of them never reads as the end of the log.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut from = if after == 0 {
            None
        } else {
            let known = self.positions.lock().expect("positions poisoned").get(&after).copied();
            Some(known.unwrap_or(Position { commit: after, prepare: after }))
        };
        let page = limit.saturating_add(1).clamp(2, 4096);
        let mut seen = after;
        let mut events = Vec::new();
        loop {
            let raws = self.reads.all_forwards(from, page).await?;
            let full = raws.len() == page;
            for raw in &raws {
                remember(&self.positions, raw.position);
                if raw.position.prepare <= seen {
                    continue;
                }
                seen = raw.position.prepare;
                if let Some(event) = decode(raw)? {
                    events.push(event);
                    if events.len() == limit {
                        return Ok(events);
                    }
                }
            }
            match raws.last() {
                Some(last) if full => from = Some(last.position),
                _ => return Ok(events),
            }
        }
    }

    /// Read where it is: a tracker event's position is a record boundary of KurrentDB's
    /// log (its commit and prepare positions are equal for every event written since
    /// KurrentDB 20), so a snapshot taken at it is found again after a restart.
    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        if position == 0 {
            return Ok(None);
        }
        let at = Position { commit: position, prepare: position };
        let Some(raw) = self.reads.all_forwards(Some(at), 1).await?.pop() else { return Ok(None) };
        remember(&self.positions, raw.position);
        if raw.position.prepare != position {
            return Ok(None);
        }
        decode(&raw)
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        Ok(self.command(command_id).await?.map(|(record, _)| record))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Tokens, revocations, checkpoints and leases in the log, so that replicas share them
    /// (see [`replicas`]); none on a server the tracker does not write to.
    fn replica_state(&self) -> Option<Arc<dyn crate::ReplicaState>> {
        self.replicas.clone().map(|r| r as Arc<dyn crate::ReplicaState>)
    }
}
