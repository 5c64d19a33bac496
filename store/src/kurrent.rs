//! The KurrentDB backend, for deployments that outgrow one machine: several `tracker`
//! replicas append to one KurrentDB cluster and each follows `$all` for its read models.
//!
//! Mapping: a tracker stream is a KurrentDB stream; our versions start at 1 where
//! KurrentDB revisions start at 0; our global position is the event's *prepare* position
//! in `$all` (unique per event and increasing, but with gaps). Our metadata, the business
//! date, the recording instant (to the microsecond, KurrentDB's own `created` keeps only
//! seconds) and the chain hash travel in each event's custom metadata. Each applied
//! command also leaves a record in its own stream (`tracker_command-<id>`, event type
//! `$TrackerCommand`, so that `$all` readers filtering system events skip it) holding its
//! fingerprint and answer, for idempotent retries.
//!
//! Known limit: several streams cannot be written atomically. KurrentDB 25.1 can (its
//! multi-stream append, v2 protocol), but the `kurrentdb` 1.2 client does not offer it, so
//! `append_all` of more than one request is refused ([`MULTI_STREAM_UNSUPPORTED`]) rather
//! than written one stream at a time, which a crash could leave half done.
//!
//! Known limit: the command record is written after the events, not atomically with
//! them. If a process dies between the two writes, a retry of that command is decided
//! again against the new state (where the domain's own rules, such as unique references,
//! normally refuse it) instead of getting the first answer back.

use crate::{
    AppendOutcome, AppendRequest, ChainHash, CommandRecord, EventStore, ExpectedVersion, NewEvent, Payload,
    RecordedEvent, StoreError, check_expected, check_request, check_requests,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::{CommandId, CommandMeta, CorrelationId, EventId};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, Position, ReadAllOptions,
    ReadStreamOptions, RetryOptions, StreamPosition, StreamState, SubscribeToAllOptions, SubscriptionEvent,
    SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The environment variable that selects KurrentDB (and enables its conformance tests).
pub const URL_VAR: &str = "KURRENTDB_URL";
const COMMAND_STREAM: &str = "tracker_command-";
const COMMAND_EVENT_TYPE: &str = "$TrackerCommand";
/// Why `append_all` of several requests is refused.
pub const MULTI_STREAM_UNSUPPORTED: &str = "an atomic append to several streams needs KurrentDB 25.1's multi-stream \
     append (v2 protocol), which the kurrentdb 1.2 client does not offer; the tracker refuses it rather than write \
     the streams one by one";
/// Full positions remembered for `read_all(after)`, so a page can resume exactly.
const REMEMBERED_POSITIONS: usize = 100_000;

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

/// What our events carry in KurrentDB's custom metadata.
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

/// Our version for a KurrentDB revision, and back.
pub fn version_of_revision(revision: u64) -> u64 {
    revision + 1
}

fn stream_state(version: u64) -> StreamState {
    if version == 0 { StreamState::NoStream } else { StreamState::StreamRevision(version - 1) }
}

#[derive(Serialize, Deserialize)]
struct CommandRecordBody {
    fingerprint: String,
    outcome: AppendOutcome,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("KurrentDB: {e}"))
}

pub struct KurrentStore {
    client: Client,
    head: Arc<watch::Sender<u64>>,
    positions: Arc<Mutex<BTreeMap<u64, Position>>>,
    follower: tokio::task::AbortHandle,
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

fn remember(positions: &Mutex<BTreeMap<u64, Position>>, p: Position) {
    let mut map = positions.lock().expect("positions poisoned");
    map.insert(p.prepare, p);
    while map.len() > REMEMBERED_POSITIONS {
        map.pop_first();
    }
}

/// Decodes one KurrentDB event into ours; `None` for events that are not the tracker's.
fn decode(e: &kurrentdb::RecordedEvent) -> Result<Option<RecordedEvent>, StoreError> {
    if e.event_type.starts_with('$') || e.custom_metadata.is_empty() {
        return Ok(None);
    }
    let corrupt = |what: &str, err: &dyn std::fmt::Display| {
        StoreError::corrupt(format!("{} revision {}: {what}: {err}", e.stream_id(), e.revision))
    };
    let meta: TrackerMetadata = serde_json::from_slice(&e.custom_metadata).map_err(|err| corrupt("metadata", &err))?;
    let payload = std::str::from_utf8(&e.data).map_err(|err| corrupt("payload", &err))?;
    Ok(Some(RecordedEvent {
        position: e.position.prepare,
        stream: e.stream_id().to_string(),
        version: version_of_revision(e.revision),
        event_id: EventId(e.id),
        event_type: e.event_type.clone(),
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

fn event_data(e: &RecordedEvent) -> Result<EventData, StoreError> {
    let raw = serde_json::value::RawValue::from_string(e.payload.as_str().to_string()).map_err(backend)?;
    let metadata = serde_json::to_vec(&TrackerMetadata::of(e)).map_err(backend)?;
    Ok(EventData::json(&e.event_type, &raw).map_err(backend)?.id(e.event_id.0).metadata(metadata.into()))
}

impl KurrentStore {
    /// Connects to KurrentDB (`kurrentdb://host:2113?tls=false`, or a cluster's
    /// `kurrentdb+discover://...`) and starts following `$all` for the head position.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = url.parse().map_err(|e: kurrentdb::ClientSettingsParseError| {
            // Neither the URL nor the client's message may show the password.
            let e = crate::scrub_password(&e.to_string(), url);
            backend(format!("bad URL {}: {e}", crate::redact_url(url)))
        })?;
        let client = Client::new(settings).map_err(|e| backend(format!("{e:#}")))?;
        let positions: Arc<Mutex<BTreeMap<u64, Position>>> = Arc::default();
        let last = Self::last_position(&client).await?;
        if let Some(p) = last {
            remember(&positions, p);
        }
        let head = Arc::new(watch::Sender::new(last.map_or(0, |p| p.prepare)));
        let follower = tokio::spawn(follow_head(client.clone(), last, head.clone(), positions.clone())).abort_handle();
        Ok(Self { client, head, positions, follower })
    }

    async fn last_position(client: &Client) -> Result<Option<Position>, StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .max_count(1)
            .filter(SubscriptionFilter::on_event_type().exclude_system_events());
        let mut read = client.read_all(&options).await.map_err(backend)?;
        Ok(read.next().await.map_err(backend)?.map(|e| e.get_original_event().position))
    }

    async fn tip(&self, stream: &str) -> Result<(u64, ChainHash), StoreError> {
        let options = ReadStreamOptions::default().backwards().position(StreamPosition::End).max_count(1);
        let mut read = self.client.read_stream(stream, &options).await.map_err(backend)?;
        match read.next().await {
            Ok(Some(e)) => {
                let e = e.get_original_event();
                let meta: TrackerMetadata = serde_json::from_slice(&e.custom_metadata)
                    .map_err(|err| StoreError::corrupt(format!("{stream}: metadata: {err}")))?;
                Ok((version_of_revision(e.revision), meta.hash))
            }
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok((0, ChainHash::GENESIS)),
            Err(e) => Err(backend(e)),
        }
    }

    async fn read_events(&self, mut read: kurrentdb::ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(e)) => {
                    let original = e.get_original_event();
                    remember(&self.positions, original.position);
                    if let Some(event) = decode(original)? {
                        out.push(event);
                    }
                }
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(out),
                Err(e) => return Err(backend(e)),
            }
        }
    }

    async fn append_once(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (actual, previous) = self.tip(&request.stream).await?;
        check_expected(&request.stream, request.expected, actual)?;
        let recorded_at = crate::now();
        let mut previous = previous;
        let mut data = Vec::with_capacity(request.events.len());
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
            data.push(event_data(&r)?);
        }
        let options = AppendToStreamOptions::default().stream_state(stream_state(actual));
        match self.client.append_to_stream(request.stream.as_str(), &options, data).await {
            Ok(_) => {}
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    CurrentRevision::Current(r) => version_of_revision(r),
                    CurrentRevision::NoStream => 0,
                };
                return Err(StoreError::WrongExpectedVersion {
                    stream: request.stream.clone(),
                    expected: request.expected,
                    actual,
                });
            }
            Err(e) => return Err(backend(e)),
        }
        // Read the written events back for their exact positions.
        let n = request.events.len() as u64;
        let options = ReadStreamOptions::default().position(StreamPosition::Position(actual)).max_count(n as usize);
        let written = self
            .read_events(self.client.read_stream(request.stream.as_str(), &options).await.map_err(backend)?)
            .await?;
        let (first, last) = match (written.first(), written.last()) {
            (Some(f), Some(l)) => (f.position, l.position),
            _ => return Err(backend("the appended events cannot be read back")),
        };
        self.head.send_if_modified(|h| {
            let moved = last > *h;
            *h = (*h).max(last);
            moved
        });
        Ok(AppendOutcome {
            stream: request.stream.clone(),
            first_version: actual + 1,
            last_version: actual + n,
            first_position: first,
            last_position: last,
            recorded_at,
            duplicate: false,
        })
    }
}

/// Keeps `head` at the last tracker event of `$all`, whoever appended it.
async fn follow_head(
    client: Client,
    from: Option<Position>,
    head: Arc<watch::Sender<u64>>,
    positions: Arc<Mutex<BTreeMap<u64, Position>>>,
) {
    let options = SubscribeToAllOptions::default()
        .position(from.map_or(StreamPosition::Start, StreamPosition::Position))
        .filter(SubscriptionFilter::on_event_type().exclude_system_events())
        .retry_options(RetryOptions::default().retry_forever().retry_delay(Duration::from_secs(1)));
    let mut subscription = client.subscribe_to_all(&options).await;
    loop {
        match subscription.next_subscription_event().await {
            Ok(SubscriptionEvent::EventAppeared(e)) => {
                let p = e.get_original_event().position;
                remember(&positions, p);
                head.send_if_modified(|h| {
                    let moved = p.prepare > *h;
                    *h = (*h).max(p.prepare);
                    moved
                });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "KurrentDB: the $all subscription stopped");
                return;
            }
        }
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        check_request(&request)?;
        if let Some(previous) = self.find_command(request.command_id).await? {
            if previous.fingerprint != request.fingerprint {
                return Err(StoreError::CommandIdReused { command_id: request.command_id });
            }
            return Ok(previous.outcome);
        }
        // With `Any`, a lost race on the stream's tip is retried: the chain needs the tip.
        let attempts = if request.expected == ExpectedVersion::Any { 8 } else { 1 };
        let mut outcome = self.append_once(&request).await;
        for _ in 1..attempts {
            match outcome {
                Err(StoreError::WrongExpectedVersion { .. }) => outcome = self.append_once(&request).await,
                _ => break,
            }
        }
        let outcome = outcome?;
        let record = CommandRecordBody { fingerprint: request.fingerprint.clone(), outcome: outcome.clone() };
        let data = EventData::json(COMMAND_EVENT_TYPE, &record).map_err(backend)?;
        let options = AppendToStreamOptions::default().stream_state(StreamState::NoStream);
        match self.client.append_to_stream(format!("{COMMAND_STREAM}{}", request.command_id), &options, data).await {
            Ok(_) | Err(kurrentdb::Error::WrongExpectedVersion { .. }) => Ok(outcome),
            Err(e) => Err(backend(e)),
        }
    }

    /// One request is an `append`; more are refused (see the module doc), after the same
    /// checks as every backend, so a malformed write gets the same answer everywhere.
    async fn append_all(&self, mut requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        if requests.len() > 1 {
            return Err(StoreError::Unsupported(MULTI_STREAM_UNSUPPORTED));
        }
        let request = requests.pop().expect("checked: one request");
        Ok(vec![self.append(request).await?])
    }

    fn atomic_multi_stream(&self) -> bool {
        false
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = self.client.read_stream(stream, &ReadStreamOptions::default()).await.map_err(backend)?;
        self.read_events(read).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let start = if after == 0 {
            StreamPosition::Start
        } else {
            let known = self.positions.lock().expect("positions poisoned").get(&after).copied();
            StreamPosition::Position(known.unwrap_or(Position { commit: after, prepare: after }))
        };
        let options = ReadAllOptions::default()
            .position(start)
            .forwards()
            .max_count(limit.saturating_add(1))
            .filter(SubscriptionFilter::on_event_type().exclude_system_events());
        let read = self.client.read_all(&options).await.map_err(backend)?;
        let mut events = self.read_events(read).await?;
        events.retain(|e| e.position > after);
        events.truncate(limit);
        Ok(events)
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        let stream = format!("{COMMAND_STREAM}{command_id}");
        let mut read = self
            .client
            .read_stream(stream.as_str(), &ReadStreamOptions::default().max_count(1))
            .await
            .map_err(backend)?;
        match read.next().await {
            Ok(Some(e)) => {
                let body: CommandRecordBody = serde_json::from_slice(&e.get_original_event().data)
                    .map_err(|err| StoreError::corrupt(format!("{stream}: {err}")))?;
                Ok(Some(CommandRecord {
                    fingerprint: body.fingerprint,
                    outcome: AppendOutcome { duplicate: true, ..body.outcome },
                }))
            }
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_its_connection_strings() {
        assert!(is_kurrent_url("kurrentdb://localhost:2113?tls=false"));
        assert!(is_kurrent_url("kurrentdb+discover://node1:2113,node2:2113?tls=true"));
        assert!(is_kurrent_url("kurrent+discover://node1:2113,node2:2113?tls=true"));
        assert!(!is_kurrent_url("data/events.sqlite3"));
        assert!(!is_kurrent_url("postgres://localhost"));
    }

    #[tokio::test]
    async fn a_refused_url_is_reported_without_its_password() {
        for url in ["kurrentdb://admin:s3cret@localhost:2113?tls=maybe", "kurrent+discover://admin:s3cret@:notaport"] {
            let Err(err) = KurrentStore::connect(url).await else { panic!("{url} is refused") };
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(err.to_string().contains("admin:***@"), "{err}");
        }
        assert_eq!(crate::scrub_password("failed: s3cret", "kurrentdb://a:s3cret@h:2113"), "failed: ***");
    }

    #[test]
    fn versions_start_at_one_where_revisions_start_at_zero() {
        assert_eq!(version_of_revision(0), 1);
        assert!(matches!(stream_state(0), StreamState::NoStream));
        assert!(matches!(stream_state(3), StreamState::StreamRevision(2)));
    }

    #[test]
    fn metadata_round_trips_and_keeps_microseconds() {
        let meta = TrackerMetadata {
            command_id: CommandId::new_random(),
            actor: "opco:bob".into(),
            correlation_id: CorrelationId::new_random(),
            causation_id: Some(EventId::new_random()),
            business_date: NaiveDate::from_ymd_opt(2021, 6, 1).unwrap(),
            schema_version: 1,
            recorded_at: 1_622_540_000_123_456,
            hash: ChainHash([7; 32]),
        };
        let json = serde_json::to_vec(&meta).unwrap();
        assert_eq!(serde_json::from_slice::<TrackerMetadata>(&json).unwrap(), meta);
    }

    /// A store whose client has not reached any server (the client connects lazily): for
    /// what is decided before the first call to the server.
    fn unconnected() -> KurrentStore {
        let settings: ClientSettings = "kurrentdb://127.0.0.1:1?tls=false".parse().unwrap();
        KurrentStore {
            client: Client::new(settings).unwrap(),
            head: Arc::new(watch::Sender::new(0)),
            positions: Arc::default(),
            follower: tokio::spawn(async {}).abort_handle(),
        }
    }

    fn request(stream: &str) -> AppendRequest {
        let command_id = CommandId::new_random();
        AppendRequest {
            stream: stream.into(),
            expected: ExpectedVersion::NoStream,
            command_id,
            fingerprint: "fp".into(),
            events: vec![NewEvent {
                event_id: EventId::for_command(command_id, 0),
                event_type: "Tested".into(),
                schema_version: 1,
                business_date: NaiveDate::from_ymd_opt(2021, 3, 15).unwrap(),
                payload: Payload::from_text("{}"),
                metadata: CommandMeta::new(command_id, "tester"),
            }],
        }
    }

    #[tokio::test]
    async fn an_append_to_several_streams_is_refused_not_split() {
        let store = unconnected();
        assert!(!store.atomic_multi_stream());
        let err = store.append_all(vec![request("a-1"), request("b-1")]).await.unwrap_err();
        assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("KurrentDB 25.1") && text.contains("kurrentdb 1.2"), "{text}");
    }

    #[tokio::test]
    async fn an_append_to_several_streams_is_checked_as_on_every_backend() {
        let store = unconnected();
        let err = store.append_all(Vec::new()).await.unwrap_err();
        assert!(matches!(err, StoreError::EmptyAppend), "{err:?}");
        let err = store.append_all(vec![request("a-1"), request("a-1")]).await.unwrap_err();
        assert!(matches!(err, StoreError::StreamTwiceInAppend { .. }), "{err:?}");
        let first = request("a-1");
        let twice = AppendRequest { stream: "b-1".into(), ..first.clone() };
        let err = store.append_all(vec![first, twice]).await.unwrap_err();
        assert!(matches!(err, StoreError::CommandTwiceInAppend { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_malformed_url_is_refused_clearly() {
        let err = KurrentStore::connect("kurrentdb://").await.err().expect("refused");
        assert!(err.to_string().contains("KurrentDB"), "{err}");
    }
}
