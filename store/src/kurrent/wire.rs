//! The part of KurrentDB's gRPC protocol that the `kurrentdb` 1.2 client does not offer:
//! the v2 multi-stream append (`kurrentdb.protocol.v2.streams.StreamsService/AppendSession`,
//! servers from 25.1) and the server's version (`ServerFeatures/GetSupportedMethods`).
//!
//! The messages are written by hand from the server's own `.proto` files
//! (`proto/kurrentdb/protocol/v2/streams/*.proto`, `proto/kurrent/rpc/errors.proto`,
//! google's `rpc/status.proto` and `error_details.proto`), with the same field numbers and
//! types, so no `protoc` is needed at build time. Fields the server reads for their
//! presence (`expected_revision`, `record_id`, the schema's format) are `optional` here:
//! proto3 would leave a zero out, and the server reads a missing expected revision as
//! "any", so revision 0 would silently lose its check.
//!
//! Semantics, as the server implements them (`src/KurrentDB.Api.V2/Modules/Streams/`): the
//! client streams one `AppendRequest` per stream (each stream at most once), each with its
//! expected revision; the server checks every expected revision and writes every record
//! in one transaction, or nothing, and answers each stream's last revision and the
//! commit position. Writes go to the leader only: a follower answers
//! `FAILED_PRECONDITION` with `NotLeaderNodeErrorDetails` naming the leader. Errors carry a
//! `google.rpc.Status` (in `grpc-status-details-bin`) whose first detail is an `ErrorInfo`
//! (`reason` such as `STREAM_REVISION_CONFLICT` or `NOT_LEADER_NODE`) followed by the
//! error's own details.

use crate::StoreError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub(crate) const APPEND_SESSION: &str = "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession";
pub(crate) const SUPPORTED_METHODS: &str = "/event_store.client.server_features.ServerFeatures/GetSupportedMethods";
/// The first server whose multi-stream append we rely on: 25.1.0 introduced it, 25.1.1
/// fixed two of its bugs (an append completing a chunk; the stream-existence filter after
/// a multi-stream append, which a "no stream yet" check relies on).
pub const MINIMUM_SERVER: (u64, u64, u64) = (25, 1, 1);
/// The expected revision "the stream must not exist yet" (`EXPECTED_REVISION_CONSTANTS_NO_STREAM`).
pub(crate) const NO_STREAM: i64 = -1;

/// The v2 messages the tracker sends and reads, field for field.
pub mod pb {
    use std::collections::HashMap;

    /// `kurrentdb.protocol.v2.streams.AppendRequest`: the records of one stream.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AppendRequest {
        #[prost(string, tag = "1")]
        pub stream: String,
        #[prost(message, repeated, tag = "2")]
        pub records: Vec<AppendRecord>,
        /// A revision (from 0), or -1 (no stream), -2 (any), -4 (exists).
        #[prost(sint64, optional, tag = "3")]
        pub expected_revision: Option<i64>,
    }

    /// `kurrentdb.protocol.v2.streams.AppendRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AppendRecord {
        #[prost(string, optional, tag = "1")]
        pub record_id: Option<String>,
        /// Become the event's metadata (read back as a JSON object by the v1 reads).
        #[prost(map = "string, message", tag = "2")]
        pub properties: HashMap<String, prost_types::Value>,
        #[prost(message, optional, tag = "3")]
        pub schema: Option<SchemaInfo>,
        #[prost(bytes = "vec", tag = "4")]
        pub data: Vec<u8>,
    }

    /// `kurrentdb.protocol.v2.streams.SchemaInfo`: the format and the event type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchemaInfo {
        /// `SCHEMA_FORMAT_JSON` = 1.
        #[prost(int32, optional, tag = "1")]
        pub format: Option<i32>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, optional, tag = "3")]
        pub id: Option<String>,
    }

    pub const SCHEMA_FORMAT_JSON: i32 = 1;

    /// `kurrentdb.protocol.v2.streams.AppendResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AppendResponse {
        #[prost(string, tag = "1")]
        pub stream: String,
        /// The stream's last revision after the append.
        #[prost(sint64, tag = "2")]
        pub stream_revision: i64,
        #[prost(sint64, optional, tag = "3")]
        pub position: Option<i64>,
    }

    /// `kurrentdb.protocol.v2.streams.AppendSessionResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AppendSessionResponse {
        #[prost(message, repeated, tag = "1")]
        pub output: Vec<AppendResponse>,
        /// The commit position of the transaction.
        #[prost(sint64, tag = "2")]
        pub position: i64,
    }

    /// `google.rpc.Status`, as carried in `grpc-status-details-bin`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RpcStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<prost_types::Any>,
    }

    /// `google.rpc.ErrorInfo`: `reason` is the error's code, `domain` its family.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ErrorInfo {
        #[prost(string, tag = "1")]
        pub reason: String,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(map = "string, string", tag = "3")]
        pub metadata: HashMap<String, String>,
    }

    /// `kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamRevisionConflictErrorDetails {
        #[prost(string, tag = "1")]
        pub stream: String,
        #[prost(sint64, tag = "2")]
        pub expected_revision: i64,
        #[prost(sint64, tag = "3")]
        pub actual_revision: i64,
    }

    /// `kurrent.rpc.NotLeaderNodeErrorDetails`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NotLeaderNodeErrorDetails {
        #[prost(message, optional, tag = "1")]
        pub current_leader: Option<NodeInfo>,
    }

    /// `kurrent.rpc.NotLeaderNodeErrorDetails.NodeInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeInfo {
        #[prost(string, tag = "1")]
        pub host: String,
        #[prost(int32, tag = "2")]
        pub port: i32,
        #[prost(string, optional, tag = "3")]
        pub node_id: Option<String>,
    }

    /// `event_store.client.Empty`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    /// `event_store.client.server_features.SupportedMethods`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SupportedMethods {
        #[prost(message, repeated, tag = "1")]
        pub methods: Vec<SupportedMethod>,
        #[prost(string, tag = "2")]
        pub event_store_server_version: String,
    }

    /// `event_store.client.server_features.SupportedMethod`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SupportedMethod {
        #[prost(string, tag = "1")]
        pub method_name: String,
        #[prost(string, tag = "2")]
        pub service_name: String,
        #[prost(string, repeated, tag = "3")]
        pub features: Vec<String>,
    }

    pub const TYPE_ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
    pub const TYPE_REVISION_CONFLICT: &str =
        "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails";
    pub const TYPE_NOT_LEADER: &str = "type.googleapis.com/kurrent.rpc.NotLeaderNodeErrorDetails";
}

/// How one `AppendSession` call failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// A stream was not at its expected revision; nothing was written. `actual` is its
    /// revision (-1: no stream).
    Conflict { stream: String, actual: i64 },
    /// Nothing was written, and trying again will not change that.
    Refused(String),
    /// The server is older than the multi-stream append.
    Unimplemented(String),
    /// The outcome is unknown (deadline passed, connection dropped, node unavailable): the
    /// append may have been committed. Only a read of the command records can tell.
    Ambiguous(String),
}

/// Where and how to reach the nodes, from the connection string the `kurrentdb` client
/// parsed (hosts, TLS, CA file, user certificate) and the credentials of its URL.
#[derive(Clone)]
pub(crate) struct WireSettings {
    pub secure: bool,
    pub seeds: Vec<(String, u32)>,
    pub tls: Option<ClientTlsConfig>,
    /// `Basic base64(user:password)`, sent as the `authorization` metadata of every call.
    pub authorization: Option<String>,
    /// The longest a call may take: a stalled leader must not hang a request.
    pub deadline: Duration,
}

/// The default deadline of one call.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(10);

impl WireSettings {
    pub(crate) fn from_client_settings(url: &str, settings: &kurrentdb::ClientSettings) -> Result<Self, StoreError> {
        let backend = |e: String| StoreError::backend(format!("KurrentDB: {}", crate::scrub_password(&e, url)));
        let secure = settings.is_secure_mode_enabled();
        let tls = if secure {
            let mut tls = ClientTlsConfig::new();
            tls = match settings.tls_ca_file() {
                Some(file) => {
                    let pem = std::fs::read(file).map_err(|e| backend(format!("tlsCaFile {file}: {e}")))?;
                    tls.ca_certificate(Certificate::from_pem(pem))
                }
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = settings.user_certificate() {
                let cert = std::fs::read(cert).map_err(|e| backend(format!("userCertFile {cert}: {e}")))?;
                let key = std::fs::read(key).map_err(|e| backend(format!("userKeyFile {key}: {e}")))?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            Some(tls)
        } else {
            None
        };
        let seeds = settings.hosts().iter().map(|e| (e.host.clone(), e.port)).collect();
        Ok(Self { secure, seeds, tls, authorization: basic_authorization(url), deadline: CALL_DEADLINE })
    }
}

/// The `authorization` header for the user and password of a connection string, taken as
/// the `kurrentdb` client takes them (the URL's user info, as written).
pub(crate) fn basic_authorization(url: &str) -> Option<String> {
    use base64::Engine as _;
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    if user.is_empty() {
        return None;
    }
    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
}

/// A `major.minor.patch` version, from the server's version text (`25.1.1.1234`, `25.1.1-rc.1`).
pub(crate) fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split(['.', '-', '+']).map(|p| p.parse::<u64>());
    Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next().and_then(Result::ok).unwrap_or(0)))
}

/// The node the writes go to, and how to reach it.
struct Node {
    host: String,
    port: u32,
    channel: Channel,
}

/// Calls to the v2 service, on the leader: it starts from the seeds and follows the
/// leader a follower names; a node that fails is dropped, so the next call connects again
/// (to the next seed).
pub(crate) struct Wire {
    settings: WireSettings,
    node: Mutex<Option<Node>>,
    next_seed: std::sync::atomic::AtomicUsize,
}

/// How many times one call follows a `NotLeader` answer before giving up.
const LEADER_HOPS: usize = 3;

impl Wire {
    pub(crate) fn new(settings: WireSettings) -> Self {
        Self { settings, node: Mutex::new(None), next_seed: Default::default() }
    }

    fn channel_to(&self, host: &str, port: u32) -> Result<Channel, String> {
        let scheme = if self.settings.secure { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host}:{port}"))
            .map_err(|e| format!("node {host}:{port}: {e}"))?
            .connect_timeout(self.settings.deadline)
            .timeout(self.settings.deadline)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(tls) = &self.settings.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| format!("TLS for {host}:{port}: {e}"))?;
        }
        Ok(endpoint.connect_lazy())
    }

    /// The current node's channel, or one to the next seed.
    fn current(&self) -> Result<(String, u32, Channel), String> {
        let mut node = self.node.lock().expect("node poisoned");
        if let Some(n) = node.as_ref() {
            return Ok((n.host.clone(), n.port, n.channel.clone()));
        }
        let seeds = &self.settings.seeds;
        if seeds.is_empty() {
            return Err("no node to connect to".into());
        }
        let i = self.next_seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % seeds.len();
        let (host, port) = seeds[i].clone();
        let channel = self.channel_to(&host, port)?;
        *node = Some(Node { host: host.clone(), port, channel: channel.clone() });
        Ok((host, port, channel))
    }

    fn forget(&self, host: &str, port: u32) {
        let mut node = self.node.lock().expect("node poisoned");
        if node.as_ref().is_some_and(|n| n.host == host && n.port == port) {
            *node = None;
        }
    }

    fn follow_leader(&self, host: String, port: u32) -> Result<(), String> {
        let channel = self.channel_to(&host, port)?;
        *self.node.lock().expect("node poisoned") = Some(Node { host, port, channel });
        Ok(())
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.settings.deadline);
        if let Some(auth) = &self.settings.authorization
            && let Ok(value) = auth.parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// The server's version, asked of the node writes would go to.
    pub(crate) async fn server_version(&self) -> Result<(u64, u64, u64), WireError> {
        let (host, port, channel) = self.current().map_err(WireError::Refused)?;
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            grpc.unary::<pb::Empty, pb::SupportedMethods, _>(
                self.request(pb::Empty {}),
                PathAndQuery::from_static(SUPPORTED_METHODS),
                ProstCodec::default(),
            )
            .await
        };
        match tokio::time::timeout(self.settings.deadline, call).await {
            Ok(Ok(answer)) => {
                let text = answer.into_inner().event_store_server_version;
                parse_version(&text).ok_or_else(|| WireError::Refused(format!("unreadable server version {text:?}")))
            }
            // Servers before 21.10 have no feature endpoint at all.
            Ok(Err(status)) if matches!(status.code(), tonic::Code::Unimplemented | tonic::Code::NotFound) => {
                Err(WireError::Unimplemented(format!("{host}:{port} does not say its version: {}", status.message())))
            }
            Ok(Err(status)) => {
                self.forget(&host, port);
                Err(WireError::Ambiguous(format!("{host}:{port}: {}", describe(&status))))
            }
            Err(_) => {
                self.forget(&host, port);
                Err(WireError::Ambiguous(format!("{host}:{port}: no answer within {:?}", self.settings.deadline)))
            }
        }
    }

    /// One atomic append to several streams: all of `requests` or nothing.
    pub(crate) async fn append_session(
        &self,
        requests: Vec<pb::AppendRequest>,
    ) -> Result<pb::AppendSessionResponse, WireError> {
        let mut hops = 0;
        loop {
            let (host, port, channel) = self.current().map_err(WireError::Refused)?;
            let mut grpc = tonic::client::Grpc::new(channel);
            let messages = futures::stream::iter(requests.clone());
            let call = async {
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                grpc.client_streaming::<_, pb::AppendRequest, pb::AppendSessionResponse, _>(
                    self.request(messages),
                    PathAndQuery::from_static(APPEND_SESSION),
                    ProstCodec::default(),
                )
                .await
            };
            let status = match tokio::time::timeout(self.settings.deadline, call).await {
                Ok(Ok(answer)) => return Ok(answer.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => {
                    self.forget(&host, port);
                    return Err(WireError::Ambiguous(format!(
                        "{host}:{port}: no answer within {:?}",
                        self.settings.deadline
                    )));
                }
            };
            match classify(&status) {
                Classified::NotLeader { host: leader, port: leader_port } if hops < LEADER_HOPS => {
                    hops += 1;
                    tracing::info!(from = %format!("{host}:{port}"), to = %format!("{leader}:{leader_port}"),
                        "KurrentDB: not the leader; following the leader it names");
                    self.follow_leader(leader, leader_port).map_err(WireError::Refused)?;
                }
                Classified::NotLeader { .. } => {
                    return Err(WireError::Refused(format!("no leader after {LEADER_HOPS} redirections")));
                }
                Classified::Conflict { stream, actual } => return Err(WireError::Conflict { stream, actual }),
                Classified::Unimplemented => {
                    return Err(WireError::Unimplemented(format!("{host}:{port}: {}", describe(&status))));
                }
                Classified::Refused => return Err(WireError::Refused(format!("{host}:{port}: {}", describe(&status)))),
                Classified::Ambiguous => {
                    self.forget(&host, port);
                    return Err(WireError::Ambiguous(format!("{host}:{port}: {}", describe(&status))));
                }
            }
        }
    }
}

fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[derive(Debug, PartialEq)]
pub(crate) enum Classified {
    NotLeader { host: String, port: u32 },
    Conflict { stream: String, actual: i64 },
    Unimplemented,
    Refused,
    Ambiguous,
}

/// What a failed call means, from its status code and its `google.rpc.Status` details.
pub(crate) fn classify(status: &tonic::Status) -> Classified {
    use prost::Message as _;
    let details = pb::RpcStatus::decode(status.details()).map(|s| s.details).unwrap_or_default();
    let reason = details
        .iter()
        .find(|d| d.type_url == pb::TYPE_ERROR_INFO)
        .and_then(|d| pb::ErrorInfo::decode(d.value.as_slice()).ok())
        .map(|info| info.reason)
        .unwrap_or_default();
    let detail = |type_url: &str| details.iter().find(|d| d.type_url == type_url).map(|d| d.value.as_slice());
    if let Some(leader) = detail(pb::TYPE_NOT_LEADER)
        .and_then(|v| pb::NotLeaderNodeErrorDetails::decode(v).ok())
        .and_then(|d| d.current_leader)
        .filter(|l| !l.host.is_empty() && l.port > 0)
    {
        return Classified::NotLeader { host: leader.host, port: leader.port as u32 };
    }
    if let Some(conflict) =
        detail(pb::TYPE_REVISION_CONFLICT).and_then(|v| pb::StreamRevisionConflictErrorDetails::decode(v).ok())
    {
        return Classified::Conflict { stream: conflict.stream, actual: conflict.actual_revision };
    }
    use tonic::Code;
    match status.code() {
        Code::Unimplemented => Classified::Unimplemented,
        // The server may have committed before the deadline passed, the connection
        // dropped or the node went away: only the log can tell.
        Code::DeadlineExceeded
        | Code::Unavailable
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal
        | Code::Aborted
            if reason != "APPEND_TRANSACTION_SIZE_EXCEEDED" && reason != "STREAM_ALREADY_IN_APPEND_SESSION" =>
        {
            Classified::Ambiguous
        }
        _ => Classified::Refused,
    }
}

/// A record's properties as `google.protobuf.Value`s, from strings.
pub(crate) fn string_properties(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> HashMap<String, prost_types::Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v)) }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn status_with(code: tonic::Code, reason: &str, detail: Option<(&str, Vec<u8>)>) -> tonic::Status {
        let mut details = vec![prost_types::Any {
            type_url: pb::TYPE_ERROR_INFO.into(),
            value: pb::ErrorInfo { reason: reason.into(), domain: "streams".into(), metadata: HashMap::new() }
                .encode_to_vec(),
        }];
        if let Some((type_url, value)) = detail {
            details.push(prost_types::Any { type_url: type_url.into(), value });
        }
        let body = pb::RpcStatus { code: code as i32, message: reason.into(), details }.encode_to_vec();
        tonic::Status::with_details(code, reason, body.into())
    }

    #[test]
    fn a_revision_conflict_names_the_stream_and_its_revision() {
        let detail =
            pb::StreamRevisionConflictErrorDetails { stream: "a-1".into(), expected_revision: 2, actual_revision: 4 };
        let status = status_with(
            tonic::Code::FailedPrecondition,
            "STREAM_REVISION_CONFLICT",
            Some((pb::TYPE_REVISION_CONFLICT, detail.encode_to_vec())),
        );
        assert_eq!(classify(&status), Classified::Conflict { stream: "a-1".into(), actual: 4 });
    }

    #[test]
    fn a_follower_names_the_leader() {
        let detail = pb::NotLeaderNodeErrorDetails {
            current_leader: Some(pb::NodeInfo { host: "node2".into(), port: 2113, node_id: None }),
        };
        let status = status_with(
            tonic::Code::FailedPrecondition,
            "NOT_LEADER_NODE",
            Some((pb::TYPE_NOT_LEADER, detail.encode_to_vec())),
        );
        assert_eq!(classify(&status), Classified::NotLeader { host: "node2".into(), port: 2113 });
    }

    #[test]
    fn a_timeout_or_a_lost_node_is_ambiguous_and_a_refusal_is_not() {
        assert_eq!(classify(&tonic::Status::deadline_exceeded("late")), Classified::Ambiguous);
        assert_eq!(classify(&tonic::Status::unavailable("gone")), Classified::Ambiguous);
        assert_eq!(classify(&tonic::Status::permission_denied("no")), Classified::Refused);
        assert_eq!(classify(&tonic::Status::unimplemented("old")), Classified::Unimplemented);
        let too_big = status_with(tonic::Code::Aborted, "APPEND_TRANSACTION_SIZE_EXCEEDED", None);
        assert_eq!(classify(&too_big), Classified::Refused);
    }

    #[test]
    fn revision_zero_is_sent_not_left_out() {
        // proto3 leaves a zero out, and the server reads a missing revision as "any".
        let request = pb::AppendRequest { stream: "a".into(), records: vec![], expected_revision: Some(0) };
        let bytes = request.encode_to_vec();
        assert_eq!(pb::AppendRequest::decode(bytes.as_slice()).unwrap().expected_revision, Some(0));
        assert!(bytes.ends_with(&[0x18, 0x00]), "field 3, varint zero: {bytes:?}");
    }

    #[test]
    fn credentials_become_basic_authorization() {
        assert_eq!(
            basic_authorization("kurrentdb://admin:changeit@h:2113?tls=true").as_deref(),
            Some("Basic YWRtaW46Y2hhbmdlaXQ=")
        );
        assert_eq!(basic_authorization("kurrentdb://h:2113?tls=false"), None);
    }

    #[test]
    fn server_versions_are_read() {
        assert_eq!(parse_version("25.1.1.2045"), Some((25, 1, 1)));
        assert_eq!(parse_version("26.1.0-rc.1"), Some((26, 1, 0)));
        assert_eq!(parse_version("24.10"), Some((24, 10, 0)));
        assert_eq!(parse_version("dev"), None);
        assert!((25, 1, 0) < MINIMUM_SERVER && (26, 1, 0) >= MINIMUM_SERVER);
    }
}
