//! [`ReplicaState`] on KurrentDB: what the replicas share beside the log, in streams of
//! their own (event types starting with `$`, so `$all` readers skip them), written with
//! the v2 append and its expected revisions.
//!
//! - A token is `tracker_token-<id>` (created, then perhaps revoked: the revocation is
//!   written only at revision 0, so once), its hash `tracker_tokenhash-<sha256>` (written
//!   in the same transaction, "no stream": a hash names one token), and the list of
//!   tokens `tracker_tokens`. Tokens are read at every request, so a revocation on one
//!   replica is refused by all at once.
//! - A saga's lease and its checkpoint are one stream, `tracker_lease-<name>`: each event
//!   names the holder and the checkpoint. Renewing, saving a checkpoint, taking over or
//!   releasing append with the revision last read, so two replicas never both succeed.
//!   A lease lapses when its stream has not moved for `ttl`, as *this* process measures it
//!   (a monotonic clock): no clock is compared between machines. The holder renews at a
//!   third of `ttl` and stops running the saga when renewals fail for longer than it lasts
//!   (`sagas::process`), before another replica can see the lease lapse.

use super::wire::{self, WireError, pb};
use super::{Reads, backend};
use crate::StoreError;
use crate::replicas::{ReplicaState, SharedToken};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

const TOKEN_STREAM: &str = "tracker_token-";
const TOKEN_HASH_STREAM: &str = "tracker_tokenhash-";
const TOKEN_LIST_STREAM: &str = "tracker_tokens";
const LEASE_STREAM: &str = "tracker_lease-";
/// The renewals a lease's stream keeps (its `$maxCount`).
const KEPT_RENEWALS: u64 = 16;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenCreated {
    id: Uuid,
    hash: String,
    record: String,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRevoked {
    at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenId {
    id: Uuid,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lease {
    /// `None` once released.
    holder: Option<Uuid>,
    checkpoint: u64,
}

pub(crate) struct KurrentReplicaState {
    pub(crate) reads: Arc<dyn Reads>,
    pub(crate) wire: Arc<wire::Wire>,
    /// Each lease stream's revision as this process last saw it change, and when.
    observed: Mutex<HashMap<String, (u64, Instant)>>,
}

fn record(event_type: &str, data: &impl Serialize) -> Result<pb::AppendRecord, StoreError> {
    Ok(pb::AppendRecord {
        record_id: Some(Uuid::new_v4().to_string()),
        properties: Default::default(),
        schema: Some(pb::SchemaInfo { format: Some(pb::SCHEMA_FORMAT_JSON), name: event_type.into(), id: None }),
        data: serde_json::to_vec(data).map_err(backend)?,
    })
}

fn append(stream: String, expected_revision: i64, records: Vec<pb::AppendRecord>) -> pb::AppendRequest {
    pb::AppendRequest { stream, records, expected_revision: Some(expected_revision) }
}

fn expected_after(revision: Option<u64>) -> i64 {
    revision.map_or(wire::NO_STREAM, |r| r as i64)
}

impl KurrentReplicaState {
    pub(crate) fn new(reads: Arc<dyn Reads>, wire: Arc<wire::Wire>) -> Self {
        Self { reads, wire, observed: Mutex::default() }
    }

    /// One transaction: true if written, false if a stream was not at its expected revision.
    async fn write(&self, requests: Vec<pb::AppendRequest>) -> Result<bool, StoreError> {
        match self.wire.append_session(requests).await {
            Ok(_) => Ok(true),
            Err(WireError::Conflict { .. }) => Ok(false),
            Err(WireError::Ambiguous(e) | WireError::Refused(e) | WireError::Unimplemented(e)) => Err(backend(e)),
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(stream: &str, data: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(data).map_err(|e| StoreError::corrupt(format!("{stream}: {e}")))
    }

    /// The lease's last event and its revision.
    async fn lease(&self, name: &str) -> Result<(String, Option<(Lease, u64)>), StoreError> {
        let stream = format!("{LEASE_STREAM}{name}");
        let last = match self.reads.stream_last(&stream).await? {
            Some(raw) => Some((Self::parse::<Lease>(&stream, &raw.data)?, raw.revision)),
            None => None,
        };
        Ok((stream, last))
    }

    /// Whether the lease stream has stayed at `revision` for `ttl`, as this process saw it.
    fn lapsed(&self, stream: &str, revision: u64, ttl: Duration) -> bool {
        let mut observed = self.observed.lock().expect("observed poisoned");
        match observed.get(stream) {
            Some((seen, since)) if *seen == revision => since.elapsed() >= ttl,
            _ => {
                observed.insert(stream.to_string(), (revision, Instant::now()));
                false
            }
        }
    }
}

#[async_trait]
impl ReplicaState for KurrentReplicaState {
    async fn token_by_hash(&self, hash: &str) -> Result<Option<SharedToken>, StoreError> {
        let stream = format!("{TOKEN_HASH_STREAM}{hash}");
        let Some(raw) = self.reads.stream_forwards(&stream, 0, 1).await?.pop() else { return Ok(None) };
        let TokenId { id } = Self::parse(&stream, &raw.data)?;
        self.token(id).await
    }

    async fn token(&self, id: Uuid) -> Result<Option<SharedToken>, StoreError> {
        let stream = format!("{TOKEN_STREAM}{id}");
        let events = self.reads.stream_forwards(&stream, 0, 2).await?;
        let Some(created) = events.first() else { return Ok(None) };
        let created: TokenCreated = Self::parse(&stream, &created.data)?;
        let revoked_at = match events.get(1) {
            Some(raw) => Some(Self::parse::<TokenRevoked>(&stream, &raw.data)?.at),
            None => created.revoked_at,
        };
        Ok(Some(SharedToken { id: created.id, hash: created.hash, record: created.record, revoked_at }))
    }

    async fn tokens(&self) -> Result<Vec<SharedToken>, StoreError> {
        let mut out = Vec::new();
        let mut revision = 0;
        loop {
            let page = self.reads.stream_forwards(TOKEN_LIST_STREAM, revision, 1024).await?;
            for raw in &page {
                let TokenId { id } = Self::parse(TOKEN_LIST_STREAM, &raw.data)?;
                if let Some(token) = self.token(id).await? {
                    out.push(token);
                }
            }
            if page.len() < 1024 {
                return Ok(out);
            }
            revision += page.len() as u64;
        }
    }

    async fn create_token(&self, t: SharedToken) -> Result<(), StoreError> {
        let created = TokenCreated { id: t.id, hash: t.hash.clone(), record: t.record, revoked_at: t.revoked_at };
        let written = self
            .write(vec![
                append(format!("{TOKEN_STREAM}{}", t.id), wire::NO_STREAM, vec![record("$TrackerToken", &created)?]),
                append(
                    format!("{TOKEN_HASH_STREAM}{}", t.hash),
                    wire::NO_STREAM,
                    vec![record("$TrackerTokenHash", &TokenId { id: t.id })?],
                ),
                // Any: tokens are listed in the order they were created.
                append(TOKEN_LIST_STREAM.into(), -2, vec![record("$TrackerTokenListed", &TokenId { id: t.id })?]),
            ])
            .await?;
        if written { Ok(()) } else { Err(backend(format!("token {} or its hash exists already", t.id))) }
    }

    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(token) = self.token(id).await? else { return Ok(false) };
        if token.revoked_at.is_some() {
            return Ok(false);
        }
        // At revision 0 only: revoked once, whoever races.
        self.write(vec![append(
            format!("{TOKEN_STREAM}{id}"),
            0,
            vec![record("$TrackerTokenRevoked", &TokenRevoked { at })?],
        )])
        .await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.lease(name).await?.1.map_or(0, |(lease, _)| lease.checkpoint))
    }

    async fn save_checkpoint(&self, name: &str, holder: Uuid, position: u64) -> Result<bool, StoreError> {
        let (stream, last) = self.lease(name).await?;
        let Some((lease, revision)) = last else { return Ok(false) };
        if lease.holder != Some(holder) {
            return Ok(false);
        }
        let next = Lease { holder: Some(holder), checkpoint: position };
        self.write(vec![append(stream, revision as i64, vec![record("$TrackerLease", &next)?])]).await
    }

    async fn acquire_lease(&self, name: &str, holder: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        let (stream, last) = self.lease(name).await?;
        let (checkpoint, revision) = match &last {
            None => (0, None),
            Some((lease, revision)) => {
                let free = lease.holder.is_none() || lease.holder == Some(holder);
                if !free && !self.lapsed(&stream, *revision, ttl) {
                    return Ok(false);
                }
                (lease.checkpoint, Some(*revision))
            }
        };
        let next = Lease { holder: Some(holder), checkpoint };
        let written = self
            .write(vec![append(stream.clone(), expected_after(revision), vec![record("$TrackerLease", &next)?])])
            .await?;
        if written && revision.is_none() {
            // Renewed every few seconds: only the last events need be kept.
            if let Err(e) = self.reads.keep_last(&stream, KEPT_RENEWALS).await {
                tracing::warn!(error = %e, %stream, "KurrentDB: cannot cap the lease's stream; it keeps every renewal");
            }
        }
        Ok(written)
    }

    async fn release_lease(&self, name: &str, holder: Uuid) -> Result<(), StoreError> {
        let (stream, last) = self.lease(name).await?;
        if let Some((lease, revision)) = last
            && lease.holder == Some(holder)
        {
            let next = Lease { holder: None, checkpoint: lease.checkpoint };
            self.write(vec![append(stream, revision as i64, vec![record("$TrackerLease", &next)?])]).await?;
        }
        Ok(())
    }
}
