//! [`ReplicaState`] on PostgreSQL: three small tables beside the log. Tokens are looked
//! up at every request (one indexed read), so a revocation on one replica is refused by
//! all at once.

use super::{PostgresStore, pg};
use crate::StoreError;
use crate::replicas::{ReplicaState, SharedToken};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long a saga's lease lasts unless renewed (ours: a dead replica's saga is taken
/// over within this time; the holder renews it at a third of it).
pub const LEASE_TTL: Duration = Duration::from_secs(6);

pub(super) const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS tracker_tokens (
    id          uuid        PRIMARY KEY,
    hash        text        NOT NULL UNIQUE,
    record      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE TABLE IF NOT EXISTS tracker_checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL,
    saved_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS tracker_leases (
    name        text        PRIMARY KEY,
    holder      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL
);
";

fn token(row: &tokio_postgres::Row) -> SharedToken {
    SharedToken { id: row.get(0), hash: row.get(1), record: row.get(2), revoked_at: row.get(3) }
}

const SELECT_TOKEN: &str = "SELECT id, hash, record, revoked_at FROM tracker_tokens";

#[async_trait]
impl ReplicaState for PostgresStore {
    async fn token_by_hash(&self, hash: &str) -> Result<Option<SharedToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{SELECT_TOKEN} WHERE hash = $1")).await.map_err(pg)?;
        Ok(client.query_opt(&stmt, &[&hash]).await.map_err(pg)?.as_ref().map(token))
    }

    async fn token(&self, id: Uuid) -> Result<Option<SharedToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{SELECT_TOKEN} WHERE id = $1")).await.map_err(pg)?;
        Ok(client.query_opt(&stmt, &[&id]).await.map_err(pg)?.as_ref().map(token))
    }

    async fn tokens(&self) -> Result<Vec<SharedToken>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("{SELECT_TOKEN} ORDER BY created_at, id"), &[]).await.map_err(pg)?;
        Ok(rows.iter().map(token).collect())
    }

    async fn create_token(&self, t: SharedToken) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO tracker_tokens (id, hash, record, revoked_at) VALUES ($1, $2, $3, $4)",
                &[&t.id, &t.hash, &t.record, &t.revoked_at],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("UPDATE tracker_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&id, &at])
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row =
            client.query_opt("SELECT position FROM tracker_checkpoints WHERE name = $1", &[&name]).await.map_err(pg)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn save_checkpoint(&self, name: &str, holder: Uuid, position: u64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The lease row is locked for the save: a takeover waits for it, or it sees the
        // new holder and saves nothing.
        let held = tx
            .query_opt(
                "SELECT 1 FROM tracker_leases WHERE name = $1 AND holder = $2 AND expires_at > now() FOR UPDATE",
                &[&name, &holder],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !held {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO tracker_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, saved_at = now()",
            &[&name, &(position as i64)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn acquire_lease(&self, name: &str, holder: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as f64;
        let row = client
            .query_opt(
                "INSERT INTO tracker_leases (name, holder, expires_at) \
                 VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE tracker_leases.holder = excluded.holder OR tracker_leases.expires_at < clock_timestamp() \
                 RETURNING holder",
                &[&name, &holder, &ttl_ms],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str, holder: Uuid) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM tracker_leases WHERE name = $1 AND holder = $2", &[&name, &holder])
            .await
            .map_err(pg)?;
        Ok(())
    }
}
