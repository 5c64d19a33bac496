//! A **stand-in** for KurrentDB in tests — not the server, and no proof of how the server
//! behaves: a small tonic server that answers the two gRPC calls the backend makes with its
//! own stack, as the server's code answers them (KurrentDB's
//! `src/KurrentDB.Api.V2/Modules/Streams/StreamsService.cs`, read for this):
//! `StreamsService/AppendSession` (one request per stream, each stream once, every expected
//! revision checked before anything is written, all or nothing, errors as
//! `google.rpc.Status` details) and `ServerFeatures/GetSupportedMethods` (the version).
//! It injects faults the backend must survive: a commit whose answer comes after the
//! deadline, a commit followed by a dropped connection, a stall, an unavailable node, a
//! follower answering `NOT_LEADER_NODE`.
//!
//! What it does not cover: the reads. The backend reads through the `kurrentdb` client's
//! v1 protocol, which the stand-in does not speak; in these tests the reads come from the
//! stand-in's log in process ([`StandInReads`], the same [`Reads`] the client implements),
//! with the server's rules for what they return (revisions from 0, `$`-types filtered from
//! `$all`, properties read back as a JSON object with `$schema.name`/`$schema.format`
//! added). Nor TLS, real credentials checks, cluster elections, scavenges, or the v1 live
//! subscription. Those need a real server (`KURRENTDB_URL`).

use super::wire::{self, pb};
use super::{Raw, Reads};
use crate::StoreError;
use async_trait::async_trait;
use kurrentdb::Position;
use prost::Message as _;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::codec::ProstCodec;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};

/// A fault the next `AppendSession` meets.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Commit, then answer only after this long (beyond the client's deadline).
    CommitThenStall(Duration),
    /// Commit, then drop every connection without answering.
    CommitThenDrop,
    /// Answer nothing for this long, commit nothing.
    Stall(Duration),
    /// Answer `UNAVAILABLE`, commit nothing.
    Unavailable,
    /// Commit, then answer too late, and let every read fail from then on (until
    /// [`StandIn::reads_back`]).
    CommitThenStallAndReadsFail(Duration),
}

struct Log {
    events: Vec<Raw>,
    next_position: u64,
}

struct State {
    log: Log,
    faults: VecDeque<Fault>,
    version: String,
    /// Which node is the leader (an index into the nodes).
    leader: usize,
    /// Calls of `AppendSession` received, per node.
    sessions: Vec<usize>,
    /// The `authorization` metadata of the last call.
    authorization: Option<String>,
    /// Reads fail while set.
    reads_down: bool,
}

struct NodeCtx {
    index: usize,
    state: Arc<Mutex<State>>,
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    relay: Arc<Relay>,
}

/// The stand-in: one or more nodes over one log.
pub(crate) struct StandIn {
    state: Arc<Mutex<State>>,
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Sits between the client and one node, so that a fault can drop its connections.
#[derive(Default)]
struct Relay {
    connections: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Relay {
    fn drop_all(&self) {
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl StandIn {
    /// `nodes` nodes sharing one log; node 0 leads; the server says it is `version`.
    pub(crate) async fn start(nodes: usize, version: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            log: Log { events: Vec::new(), next_position: 1000 },
            faults: VecDeque::new(),
            version: version.into(),
            leader: 0,
            sessions: vec![0; nodes],
            authorization: None,
            reads_down: false,
        }));
        let addrs: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let mut tasks = Vec::new();
        for index in 0..nodes {
            let relay = Arc::new(Relay::default());
            let ctx = Arc::new(NodeCtx { index, state: state.clone(), addrs: addrs.clone(), relay: relay.clone() });
            let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let inner_addr = inner.local_addr().unwrap();
            let server = tonic::transport::Server::builder()
                .add_service(StreamsSvc(ctx.clone()))
                .add_service(FeaturesSvc(ctx))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(inner));
            tasks.push(tokio::spawn(server).abort_handle());
            let outer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.lock().unwrap().push(outer.local_addr().unwrap());
            tasks.push(tokio::spawn(relay_loop(outer, inner_addr, relay)).abort_handle());
        }
        Self { state, addrs, tasks }
    }

    pub(crate) fn addr(&self, node: usize) -> SocketAddr {
        self.addrs.lock().unwrap()[node]
    }

    pub(crate) fn set_leader(&self, node: usize) {
        self.state.lock().unwrap().leader = node;
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    pub(crate) fn sessions(&self) -> Vec<usize> {
        self.state.lock().unwrap().sessions.clone()
    }

    pub(crate) fn authorization(&self) -> Option<String> {
        self.state.lock().unwrap().authorization.clone()
    }

    /// Every event of the log, system ones included.
    pub(crate) fn events(&self) -> Vec<Raw> {
        self.state.lock().unwrap().log.events.clone()
    }

    /// Another application's event, with this metadata.
    pub(crate) fn append_foreign(&self, stream: &str, event_type: &str, metadata: &[u8]) {
        let mut state = self.state.lock().unwrap();
        let revision = state.log.events.iter().filter(|e| e.stream == stream).count() as u64;
        let raw = Raw {
            stream: stream.into(),
            revision,
            id: uuid::Uuid::new_v4(),
            event_type: event_type.into(),
            data: b"{}".to_vec(),
            custom_metadata: metadata.to_vec(),
            position: Position { commit: 0, prepare: 0 },
        };
        state.log.push(raw);
    }

    /// Removes a whole stream, as a delete and a scavenge would.
    pub(crate) fn delete(&self, stream: &str) {
        self.state.lock().unwrap().log.events.retain(|e| e.stream != stream);
    }

    /// Removes a stream's first events, as `$tb` or `$maxCount` and a scavenge would.
    pub(crate) fn truncate_front(&self, stream: &str, count: usize) {
        let mut state = self.state.lock().unwrap();
        let mut removed = 0;
        state.log.events.retain(|e| {
            let drop = e.stream == stream && removed < count;
            removed += drop as usize;
            !drop
        });
    }

    pub(crate) fn reads_back(&self) {
        self.state.lock().unwrap().reads_down = false;
    }

    pub(crate) fn reads(&self) -> Arc<StandInReads> {
        Arc::new(StandInReads { state: self.state.clone() })
    }
}

impl Log {
    fn push(&mut self, mut raw: Raw) {
        raw.position = Position { commit: self.next_position, prepare: self.next_position };
        // Positions in KurrentDB are byte offsets in its log: increasing, with gaps.
        self.next_position += 137;
        self.events.push(raw);
    }

    fn revision(&self, stream: &str) -> i64 {
        self.events
            .iter()
            .filter(|e| e.stream.eq_ignore_ascii_case(stream))
            .map(|e| e.revision as i64)
            .max()
            .unwrap_or(-1)
    }
}

async fn relay_loop(outer: tokio::net::TcpListener, inner: SocketAddr, relay: Arc<Relay>) {
    loop {
        let Ok((mut client, _)) = outer.accept().await else { continue };
        let task = tokio::spawn(async move {
            if let Ok(mut server) = tokio::net::TcpStream::connect(inner).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        relay.connections.lock().unwrap().push(task.abort_handle());
    }
}

/// A status as the server builds it: an `ErrorInfo` then the error's details.
fn status(code: tonic::Code, reason: &str, message: String, detail: Option<(&str, Vec<u8>)>) -> tonic::Status {
    let mut details = vec![prost_types::Any {
        type_url: pb::TYPE_ERROR_INFO.into(),
        value: pb::ErrorInfo { reason: reason.into(), domain: "streams".into(), metadata: Default::default() }
            .encode_to_vec(),
    }];
    if let Some((type_url, value)) = detail {
        details.push(prost_types::Any { type_url: type_url.into(), value });
    }
    let body = pb::RpcStatus { code: code as i32, message: message.clone(), details }.encode_to_vec();
    tonic::Status::with_details(code, message, body.into())
}

/// The metadata a v1 read returns for a record written with properties: the properties
/// as a JSON object, plus the schema's name and format (the server's
/// `EventRecord.SynthesizeMetadataFromProperties`).
fn synthesized_metadata(record: &pb::AppendRecord) -> Vec<u8> {
    fn json(v: &prost_types::Value) -> serde_json::Value {
        use prost_types::value::Kind;
        match &v.kind {
            Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
            Some(Kind::NumberValue(n)) => serde_json::json!(n),
            Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
            Some(Kind::StructValue(s)) => s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
            Some(Kind::ListValue(l)) => l.values.iter().map(json).collect(),
            Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
        }
    }
    let mut object: serde_json::Map<String, serde_json::Value> =
        record.properties.iter().map(|(k, v)| (k.clone(), json(v))).collect();
    let schema = record.schema.clone().unwrap_or_default();
    object.insert("$schema.name".into(), schema.name.into());
    object.insert("$schema.format".into(), "Json".into());
    serde_json::to_vec(&object).unwrap()
}

impl NodeCtx {
    async fn append_session(
        &self,
        requests: Vec<pb::AppendRequest>,
    ) -> Result<pb::AppendSessionResponse, tonic::Status> {
        let fault = {
            let mut state = self.state.lock().unwrap();
            state.sessions[self.index] += 1;
            if state.leader != self.index {
                let leader = self.addrs.lock().unwrap()[state.leader];
                let detail = pb::NotLeaderNodeErrorDetails {
                    current_leader: Some(pb::NodeInfo {
                        host: leader.ip().to_string(),
                        port: leader.port() as i32,
                        node_id: None,
                    }),
                };
                return Err(status(
                    tonic::Code::FailedPrecondition,
                    "NOT_LEADER_NODE",
                    format!("not the leader; the leader is {leader}"),
                    Some((pb::TYPE_NOT_LEADER, detail.encode_to_vec())),
                ));
            }
            state.faults.pop_front()
        };
        match fault {
            Some(Fault::Stall(d)) => {
                tokio::time::sleep(d).await;
                return Err(tonic::Status::deadline_exceeded("stalled"));
            }
            Some(Fault::Unavailable) => return Err(tonic::Status::unavailable("the node is unavailable")),
            _ => {}
        }
        let response = self.commit(requests)?;
        match fault {
            Some(Fault::CommitThenStall(d)) => tokio::time::sleep(d).await,
            Some(Fault::CommitThenStallAndReadsFail(d)) => {
                self.state.lock().unwrap().reads_down = true;
                tokio::time::sleep(d).await
            }
            Some(Fault::CommitThenDrop) => {
                self.relay.drop_all();
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            _ => {}
        }
        Ok(response)
    }

    /// All or nothing, after every check, as the server.
    #[allow(clippy::result_large_err)]
    fn commit(&self, requests: Vec<pb::AppendRequest>) -> Result<pb::AppendSessionResponse, tonic::Status> {
        let mut state = self.state.lock().unwrap();
        if requests.is_empty() {
            return Err(status(
                tonic::Code::FailedPrecondition,
                "APPEND_SESSION_NO_REQUESTS",
                "no append requests".into(),
                None,
            ));
        }
        for (i, r) in requests.iter().enumerate() {
            if requests[..i].iter().any(|o| o.stream.eq_ignore_ascii_case(&r.stream)) {
                return Err(status(
                    tonic::Code::Aborted,
                    "STREAM_ALREADY_IN_APPEND_SESSION",
                    format!("{} twice", r.stream),
                    None,
                ));
            }
            for record in &r.records {
                let name = record.schema.as_ref().map(|s| s.name.as_str()).unwrap_or("");
                let id_ok = record.record_id.as_deref().is_none_or(|id| uuid::Uuid::parse_str(id).is_ok());
                let name_ok =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.$:-".contains(c));
                if !id_ok || !name_ok {
                    return Err(tonic::Status::invalid_argument(format!("invalid record in {}", r.stream)));
                }
            }
        }
        for r in &requests {
            let actual = state.log.revision(&r.stream);
            let expected = r.expected_revision.unwrap_or(-2);
            let ok = match expected {
                -2 => true,
                -4 => actual >= 0,
                e => e == actual,
            };
            if !ok {
                let detail = pb::StreamRevisionConflictErrorDetails {
                    stream: r.stream.clone(),
                    expected_revision: expected,
                    actual_revision: actual,
                };
                return Err(status(
                    tonic::Code::FailedPrecondition,
                    "STREAM_REVISION_CONFLICT",
                    format!("{} is at {actual}, expected {expected}", r.stream),
                    Some((pb::TYPE_REVISION_CONFLICT, detail.encode_to_vec())),
                ));
            }
        }
        let mut output = Vec::new();
        for r in &requests {
            let mut revision = state.log.revision(&r.stream);
            for record in &r.records {
                revision += 1;
                let raw = Raw {
                    stream: r.stream.clone(),
                    revision: revision as u64,
                    id: record.record_id.as_deref().map_or_else(uuid::Uuid::new_v4, |id| id.parse().unwrap()),
                    event_type: record.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                    data: record.data.clone(),
                    custom_metadata: synthesized_metadata(record),
                    position: Position { commit: 0, prepare: 0 },
                };
                state.log.push(raw);
            }
            output.push(pb::AppendResponse { stream: r.stream.clone(), stream_revision: revision, position: None });
        }
        let position = state.log.events.last().map_or(0, |e| e.position.commit) as i64;
        Ok(pb::AppendSessionResponse { output, position })
    }
}

#[derive(Clone)]
struct StreamsSvc(Arc<NodeCtx>);

impl tonic::server::NamedService for StreamsSvc {
    const NAME: &'static str = "kurrentdb.protocol.v2.streams.StreamsService";
}

struct AppendSessionCall(Arc<NodeCtx>);

impl tonic::server::ClientStreamingService<pb::AppendRequest> for AppendSessionCall {
    type Response = pb::AppendSessionResponse;
    type Future = BoxFuture<tonic::Response<pb::AppendSessionResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<pb::AppendRequest>>) -> Self::Future {
        let node = self.0.clone();
        Box::pin(async move {
            let auth = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
            node.state.lock().unwrap().authorization = auth;
            let mut stream = request.into_inner();
            let mut requests = Vec::new();
            while let Some(r) = stream.message().await? {
                requests.push(r);
            }
            node.append_session(requests).await.map(tonic::Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for StreamsSvc
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let node = self.0.clone();
        if request.uri().path() == wire::APPEND_SESSION {
            Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<pb::AppendSessionResponse, pb::AppendRequest>::default());
                Ok(grpc.client_streaming(AppendSessionCall(node), request).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("not in the stand-in").into_http()) })
        }
    }
}

#[derive(Clone)]
struct FeaturesSvc(Arc<NodeCtx>);

impl tonic::server::NamedService for FeaturesSvc {
    const NAME: &'static str = "event_store.client.server_features.ServerFeatures";
}

struct SupportedMethodsCall(Arc<NodeCtx>);

impl tonic::server::UnaryService<pb::Empty> for SupportedMethodsCall {
    type Response = pb::SupportedMethods;
    type Future = BoxFuture<tonic::Response<pb::SupportedMethods>, tonic::Status>;

    fn call(&mut self, _: tonic::Request<pb::Empty>) -> Self::Future {
        let version = self.0.state.lock().unwrap().version.clone();
        Box::pin(async move {
            Ok(tonic::Response::new(pb::SupportedMethods { methods: Vec::new(), event_store_server_version: version }))
        })
    }
}

impl<B> Service<http::Request<B>> for FeaturesSvc
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let node = self.0.clone();
        if request.uri().path() == wire::SUPPORTED_METHODS {
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<pb::SupportedMethods, pb::Empty>::default());
                Ok(grpc.unary(SupportedMethodsCall(node), request).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("not in the stand-in").into_http()) })
        }
    }
}

/// The reads, from the stand-in's log in process (see the module doc).
pub(crate) struct StandInReads {
    state: Arc<Mutex<State>>,
}

#[async_trait]
impl Reads for StandInReads {
    async fn stream_forwards(&self, stream: &str, revision: u64, max: usize) -> Result<Vec<Raw>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.reads_down {
            return Err(StoreError::backend("KurrentDB stand-in: reads unavailable"));
        }
        Ok(state
            .log
            .events
            .iter()
            .filter(|e| e.stream == stream && e.revision >= revision)
            .take(max)
            .cloned()
            .collect())
    }

    async fn stream_last(&self, stream: &str) -> Result<Option<Raw>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.reads_down {
            return Err(StoreError::backend("KurrentDB stand-in: reads unavailable"));
        }
        Ok(state.log.events.iter().rev().find(|e| e.stream == stream).cloned())
    }

    async fn all_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.reads_down {
            return Err(StoreError::backend("KurrentDB stand-in: reads unavailable"));
        }
        let from = from.map_or(0, |p| p.prepare);
        Ok(state
            .log
            .events
            .iter()
            .filter(|e| !e.event_type.starts_with('$') && e.position.prepare >= from)
            .take(max)
            .cloned()
            .collect())
    }

    async fn commands_forwards(&self, from: Option<Position>, max: usize) -> Result<Vec<Raw>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.reads_down {
            return Err(StoreError::backend("KurrentDB stand-in: reads unavailable"));
        }
        let from = from.map_or(0, |p| p.prepare);
        Ok(state
            .log
            .events
            .iter()
            .filter(|e| e.stream.starts_with("tracker_command-") && e.position.prepare >= from)
            .take(max)
            .cloned()
            .collect())
    }

    async fn all_backwards(&self, max: usize) -> Result<Vec<Raw>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.reads_down {
            return Err(StoreError::backend("KurrentDB stand-in: reads unavailable"));
        }
        Ok(state.log.events.iter().rev().filter(|e| !e.event_type.starts_with('$')).take(max).cloned().collect())
    }
}
