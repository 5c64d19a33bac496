//! The PostgreSQL backend: one log shared by several `tracker serve` replicas.
//!
//! Why PostgreSQL: it is what French public bodies most often run already, and it gives
//! the guarantees the log needs (serialisable writers, durable commits) on a server that
//! survives any one replica. Why tokio-postgres with deadpool's pool: the maintained
//! pure-Rust async driver, light to build (no macros, no compile-time database, no TLS
//! stack of its own: connect over a unix socket, loopback or a private network).
//!
//! How it keeps the trait's promises across processes:
//! - **One writer at a time, positions 1..n in commit order.** Every write transaction
//!   first locks the single row of `tracker_head` (`SELECT … FOR UPDATE`), which holds the
//!   last position and the whole-log hash. Writers of every replica queue on that lock,
//!   so positions are given in commit order without gaps, and a reader never sees
//!   position n+1 before n (a transaction is visible before its lock is released).
//! - **Atomic multi-stream appends.** A unit (an `append`, or the requests of an
//!   `append_all`) is checked whole (command ids, then expected versions) before any of
//!   its rows is built; its events and its command records go in the same transaction.
//! - **Idempotency.** Each request leaves a row in `tracker_commands` (fingerprint and
//!   answer) in the transaction of its events: a retry, even after an ambiguous failure
//!   (a commit whose answer was lost), finds it and gets the first answer back.
//! - **The chains.** Each event's hash is chained to its stream's previous event exactly
//!   as in SQLite ([`RecordedEvent::compute_hash`]); each row also keeps the whole-log
//!   hash, which [`PostgresStore::verify`] checks.
//! - **Following.** The head moves on this process's commits at once, on other
//!   replicas' through `LISTEN/NOTIFY` (a notification is sent in the writing
//!   transaction, so only on commit), and by polling the head row every
//!   [`POLL_EVERY`], so that a lost notification or a dropped listening connection
//!   never freezes a follower.
//!
//! Like the embedded log, a process groups the writes waiting for the writer into one
//! transaction (one commit, one fsync), each unit answered on its own.
//!
//! Tables (created at first connection, in the connection's current schema): `tracker_events`,
//! `tracker_commands` (both append-only: triggers refuse updates and deletes),
//! `tracker_head` (one row, the end of the log, moved by each write), and what the
//! replicas share beside the log ([`shared`]): `tracker_tokens`, `tracker_checkpoints`,
//! `tracker_leases`. Minimum server: PostgreSQL 12 (tested with 15).

pub mod rewrite;
mod shared;
mod verify;
mod writer;

use crate::{
    AppendOutcome, AppendRequest, ChainHash, CommandRecord, EventStore, Payload, RecordedEvent, StoreError,
    check_requests,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use domain::{CommandId, CommandMeta, CorrelationId, EventId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::NoTls;

pub use shared::LEASE_TTL;

/// How often the head row is read, whatever the notifications say.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// Connections of one process: the writer's, and the readers'.
const POOL_SIZE: usize = 8;

/// How long a statement may run before it is cancelled (a stalled server must not hang
/// requests for ever).
const STATEMENT_TIMEOUT_MS: u32 = 60_000;

/// The environment variable naming the server the PostgreSQL tests use.
pub const TEST_URL_VAR: &str = "TRACKER_TEST_POSTGRES_URL";
/// Set to `required` (as CI does), a missing [`TEST_URL_VAR`] fails the tests instead of
/// skipping them.
pub const TESTS_REQUIRED_VAR: &str = "TRACKER_POSTGRES_TESTS";

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS tracker_head (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position       bigint  NOT NULL,
    log_hash       bytea   NOT NULL
);
INSERT INTO tracker_head (position, log_hash)
    VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS tracker_events (
    position       bigint      PRIMARY KEY,
    stream         text        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    business_date  date        NOT NULL,
    recorded_at    timestamptz NOT NULL,
    -- The exact JSON text the hash covers (json or jsonb would reformat it).
    payload        text        NOT NULL,
    command_id     uuid        NOT NULL,
    actor          text        NOT NULL,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    hash           bytea       NOT NULL,
    log_hash       bytea       NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS tracker_commands (
    command_id     uuid        PRIMARY KEY,
    fingerprint    text        NOT NULL,
    stream         text        NOT NULL,
    first_version  bigint      NOT NULL,
    last_version   bigint      NOT NULL,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION tracker_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'tracker_events_append_only'
                   AND tgrelid = 'tracker_events'::regclass) THEN
        CREATE TRIGGER tracker_events_append_only BEFORE UPDATE OR DELETE ON tracker_events
            FOR EACH ROW EXECUTE FUNCTION tracker_append_only();
        CREATE TRIGGER tracker_events_no_truncate BEFORE TRUNCATE ON tracker_events
            FOR EACH STATEMENT EXECUTE FUNCTION tracker_append_only();
        CREATE TRIGGER tracker_commands_append_only BEFORE UPDATE OR DELETE ON tracker_commands
            FOR EACH ROW EXECUTE FUNCTION tracker_append_only();
        CREATE TRIGGER tracker_commands_no_truncate BEFORE TRUNCATE ON tracker_commands
            FOR EACH STATEMENT EXECUTE FUNCTION tracker_append_only();
    END IF;
END $$;
";

/// True for the connection strings this backend takes.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A PostgreSQL error as one line: the server's code and message when it sent one.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend { what: describe(&e), source: Some(Box::new(e)) }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => {
            let source = std::error::Error::source(e).map(|s| format!(" ({s})")).unwrap_or_default();
            format!("PostgreSQL: {e}{source}")
        }
    }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => StoreError::backend_context("PostgreSQL connection pool", other),
    }
}

struct Shared {
    pool: Pool,
    /// The channel this log's writes notify (one per schema).
    channel: String,
    head: Arc<watch::Sender<u64>>,
    writer: mpsc::UnboundedSender<writer::Job>,
    /// The listener and the poller, stopped with the store.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The PostgreSQL event log. Cheap to clone; the last clone dropped stops its tasks.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names, creating the log's tables in
    /// its current schema (`?options=-csearch_path%3Dname` picks another) if they are
    /// missing. Errors never repeat the URL (it may hold a password).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = config(url)?;
        let pool = pool(&config, POOL_SIZE)?;
        let schema = prepare(&pool).await?;
        let channel = channel_of(&schema);
        let client = pool.get().await.map_err(pool_error)?;
        let head_position = read_head(&client).await?;
        drop(client);
        let head = Arc::new(watch::Sender::new(head_position));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(pool.clone(), rx, head.clone(), channel.clone()));
        let tasks = vec![
            tokio::spawn(listen(config.clone(), channel.clone(), Arc::downgrade(&head), pool.clone())).abort_handle(),
            tokio::spawn(poll(pool.clone(), Arc::downgrade(&head))).abort_handle(),
        ];
        Ok(Self { shared: Arc::new(Shared { pool, channel, head, writer: tx, tasks }) })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.shared.pool.get().await.map_err(pool_error)
    }

    /// Sends a checked unit to this process's writer and waits for its answer (once
    /// committed).
    async fn write(&self, unit: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.shared
            .writer
            .send(writer::Job { unit, reply })
            .map_err(|_| StoreError::backend("the PostgreSQL log writer has stopped"))?;
        answer.await.map_err(|_| StoreError::backend("the PostgreSQL log writer has stopped"))?
    }

    /// The NOTIFY channel of this log (tests send stray notifications to it).
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

/// The connection settings a `postgres://` URL names, with ours added: an application
/// name, timeouts and keepalives. Errors never repeat the URL (it may hold a password).
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::backend_context(format_args!("{} is not a PostgreSQL URL", crate::redact_url(url)), e)
    })?;
    if config.get_application_name().is_none() {
        config.application_name("convention-tracker");
    }
    config.connect_timeout(Duration::from_secs(10));
    // Appended to the URL's own options (a search path, say).
    let options = match config.get_options() {
        Some(given) => format!("{given} -c statement_timeout={STATEMENT_TIMEOUT_MS}"),
        None => format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"),
    };
    config.options(&options);
    config.keepalives_idle(Duration::from_secs(30));
    Ok(config)
}

/// A pool of at most `size` connections, made when first needed.
pub(crate) fn pool(config: &tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager =
        Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::backend_context("PostgreSQL connection pool", e))
}

/// Creates the tables if missing, under an advisory lock so that replicas starting
/// together do not race on them; returns the current schema.
async fn prepare(pool: &Pool) -> Result<String, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg)?;
    let schema: Option<String> = tx.query_one("SELECT current_schema()", &[]).await.map_err(pg)?.get(0);
    let schema =
        schema.ok_or_else(|| StoreError::backend("PostgreSQL: no schema of the search path exists to hold the log"))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('convention-tracker:' || current_schema()))", &[])
        .await
        .map_err(pg)?;
    tx.batch_execute(SCHEMA).await.map_err(pg)?;
    tx.batch_execute(shared::SCHEMA).await.map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(schema)
}

/// One channel per schema, so that two logs in one database do not wake each other.
fn channel_of(schema: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(schema.as_bytes());
    format!("tracker_log_{}", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn read_head(client: &tokio_postgres::Client) -> Result<u64, StoreError> {
    let position: i64 = client.query_one("SELECT position FROM tracker_head", &[]).await.map_err(pg)?.get(0);
    Ok(position as u64)
}

fn advance(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|h| {
        let moved = position > *h;
        if moved {
            *h = position;
        }
        moved
    });
}

/// Listens for other replicas' commits; reconnects after a dropped connection.
async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    head: std::sync::Weak<watch::Sender<u64>>,
    pool: Pool,
) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut notifications) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().parse::<u64>().ok()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %describe(&e), "the log's listening connection failed");
                                break;
                            }
                        }
                    }
                });
                let quoted = format!("\"{}\"", channel.replace('"', "\"\""));
                if let Err(e) = client.batch_execute(&format!("LISTEN {quoted}")).await {
                    tracing::warn!(error = %describe(&e), "cannot LISTEN for the log's commits");
                } else {
                    backoff = Duration::from_millis(100);
                    // Commits made before LISTEN took effect are read once.
                    if let (Ok(position), Some(h)) = (read_head(&client).await, head.upgrade()) {
                        advance(&h, position);
                    }
                    while let Some(position) = notifications.recv().await {
                        let Some(h) = head.upgrade() else { return };
                        match position {
                            Some(p) => advance(&h, p),
                            // A payload we did not write: read the head itself.
                            None => {
                                if let Ok(client) = pool.get().await
                                    && let Ok(p) = read_head(&client).await
                                {
                                    advance(&h, p);
                                }
                            }
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %describe(&e), "cannot connect to listen for the log's commits"),
        }
        if head.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Reads the head row every [`POLL_EVERY`]: the follower's safety net.
async fn poll(pool: Pool, head: std::sync::Weak<watch::Sender<u64>>) {
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let Some(h) = head.upgrade() else { return };
        match pool.get().await {
            Ok(client) => match read_head(&client).await {
                Ok(p) => advance(&h, p),
                Err(e) => tracing::warn!(error = %e, "cannot read the log's head"),
            },
            Err(e) => tracing::warn!(error = %pool_error(e), "cannot read the log's head"),
        }
    }
}

const SELECT_EVENT: &str = "SELECT position, stream, version, event_id, event_type, schema_version, business_date, \
     recorded_at, payload, command_id, actor, correlation_id, causation_id, hash FROM tracker_events";

fn hash_of(bytes: &[u8], position: i64) -> Result<ChainHash, StoreError> {
    ChainHash::from_slice(bytes)
        .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: its hash is not 32 bytes")))
}

fn to_event(row: &tokio_postgres::Row) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.get(0);
    let version: i64 = row.get(2);
    let schema_version: i32 = row.get(5);
    let payload: String = row.get(8);
    Ok(RecordedEvent {
        position: position as u64,
        stream: row.get(1),
        version: version as u64,
        event_id: EventId(row.get(3)),
        event_type: row.get(4),
        schema_version: schema_version as u32,
        business_date: row.get(6),
        recorded_at: row.get(7),
        payload: Payload::from_text(payload),
        metadata: CommandMeta {
            command_id: CommandId(row.get(9)),
            actor: row.get(10),
            correlation_id: CorrelationId(row.get(11)),
            causation_id: row.get::<_, Option<uuid::Uuid>>(12).map(EventId),
        },
        hash: hash_of(row.get(13), position)?,
    })
}

fn to_command(row: &tokio_postgres::Row) -> CommandRecord {
    let n = |i| row.get::<_, i64>(i) as u64;
    CommandRecord {
        fingerprint: row.get(0),
        outcome: AppendOutcome {
            stream: row.get(1),
            first_version: n(2),
            last_version: n(3),
            first_position: n(4),
            last_position: n(5),
            recorded_at: row.get(6),
            duplicate: true,
        },
    }
}

const SELECT_COMMAND: &str = "SELECT fingerprint, stream, first_version, last_version, first_position, \
     last_position, recorded_at, command_id FROM tracker_commands";

#[async_trait]
impl EventStore for PostgresStore {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        self.write(requests).await
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_from(stream, 1).await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{SELECT_EVENT} WHERE stream = $1 AND version >= $2 ORDER BY version"))
            .await
            .map_err(pg)?;
        let rows = client.query(&stmt, &[&stream, &(version.min(i64::MAX as u64) as i64)]).await.map_err(pg)?;
        rows.iter().map(to_event).collect()
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{SELECT_EVENT} WHERE position > $1 ORDER BY position LIMIT $2"))
            .await
            .map_err(pg)?;
        let (after, limit) = (after.min(i64::MAX as u64) as i64, limit.min(i64::MAX as usize) as i64);
        let rows = client.query(&stmt, &[&after, &limit]).await.map_err(pg)?;
        rows.iter().map(to_event).collect()
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{SELECT_COMMAND} WHERE command_id = $1")).await.map_err(pg)?;
        let row = client.query_opt(&stmt, &[&command_id.0]).await.map_err(pg)?;
        Ok(row.as_ref().map(to_command))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }

    fn replica_state(&self) -> Option<Arc<dyn crate::ReplicaState>> {
        Some(Arc::new(self.clone()))
    }
}

/// Creates an empty schema `name` in the database `url` names and returns a URL whose
/// connections use it (for benchmarks and tests: a log of their own on a shared server).
pub async fn create_schema(url: &str, name: &str) -> Result<String, StoreError> {
    let client = raw_connection(url).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client.batch_execute(&format!("CREATE SCHEMA {quoted}")).await.map_err(pg)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-csearch_path%3D{name}"))
}

/// Drops a schema [`create_schema`] made, with everything in it.
pub async fn drop_schema(url: &str, name: &str) -> Result<(), StoreError> {
    let client = raw_connection(url).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client.batch_execute(&format!("DROP SCHEMA {quoted} CASCADE")).await.map_err(pg)
}

async fn raw_connection(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(pg)?;
    tokio::spawn(connection);
    Ok(client)
}

pub mod testing {
    //! For tests of every crate: a fresh schema per test on the server
    //! `TRACKER_TEST_POSTGRES_URL` names, so that tests run in parallel, each with its log
    //! starting at position 1.

    use super::*;

    /// A URL to a new, empty schema; `None` (with SKIPPED printed) when no server is
    /// given, a failure when `TRACKER_POSTGRES_TESTS=required`.
    pub async fn fresh_url(test: &str) -> Option<String> {
        let base = server_url(test)?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        Some(create_schema(&base, &schema).await.expect("the test server is reachable and takes a new schema"))
    }

    /// The test server's URL itself, with the same rules as [`fresh_url`].
    pub fn server_url(test: &str) -> Option<String> {
        let Ok(base) = std::env::var(TEST_URL_VAR) else {
            if std::env::var(TESTS_REQUIRED_VAR).is_ok_and(|v| v == "required") {
                panic!(
                    "{TESTS_REQUIRED_VAR}=required but {TEST_URL_VAR} is not set: start a server (.ci/start-postgres)"
                );
            }
            eprintln!("SKIPPED: {test}: PostgreSQL test (set {TEST_URL_VAR}=postgres://user@host:port/db to run it)");
            return None;
        };
        Some(base)
    }
}

#[cfg(test)]
mod tests;
