//! What the replicas of one deployment share beside the log: bearer tokens (their hashes
//! only) and their revocations, the sagas' checkpoints, and the leases that let one
//! replica at a time run a saga. A backend shared by several processes (PostgreSQL)
//! offers it through [`crate::EventStore::replica_state`]; the embedded log has none (one
//! process; its data directory holds tokens and checkpoints as files).

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// A bearer token as the replicas share it. `record` is the API's own description of it
/// (JSON); the secret itself is never stored, only `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedToken {
    pub id: Uuid,
    /// SHA-256 of the secret, hexadecimal.
    pub hash: String,
    pub record: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait ReplicaState: Send + Sync + 'static {
    /// The token whose secret has this hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<SharedToken>, StoreError>;
    async fn token(&self, id: Uuid) -> Result<Option<SharedToken>, StoreError>;
    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<SharedToken>, StoreError>;
    async fn create_token(&self, token: SharedToken) -> Result<(), StoreError>;
    /// Revokes an active token; false when there is no such active token.
    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The position a process (`name`) saved last; 0 if none.
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError>;
    /// Saves a process's position. Only the holder of the lease `name` may: false (and
    /// nothing saved) when `holder` no longer holds it, so a replica that lost its lease
    /// cannot move the checkpoint back under the new holder's feet.
    async fn save_checkpoint(&self, name: &str, holder: Uuid, position: u64) -> Result<bool, StoreError>;

    /// Takes the lease `name` for `holder`, or renews it, for `ttl` (by the server's
    /// clock): true while `holder` holds it. A lease not renewed in time lapses, and
    /// another replica may take it.
    async fn acquire_lease(&self, name: &str, holder: Uuid, ttl: Duration) -> Result<bool, StoreError>;
    /// Gives the lease up at once (a replica shutting down), if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: Uuid) -> Result<(), StoreError>;
}
