//! The embedded SQLite backend, the default.
//!
//! One writer thread owns the only write connection and commits appends in groups: every
//! append waiting when a transaction starts joins it, each in its own savepoint with its
//! own version check and its own answer, and the whole group costs one fsync
//! (WAL, `synchronous=FULL`). An append is answered only after its commit returned, so an
//! acknowledged event is on disk. Reads use a small pool of read-only connections that
//! WAL lets run beside the writer.

use crate::{AppendOutcome, AppendRequest, CommandRecord, EventStore, RecordedEvent, StoreError, check_expected};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{CommandId, EventId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};

/// The most appends one transaction takes; bounds the latency of a group.
const MAX_GROUP: usize = 256;
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    business_date  TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    UNIQUE (stream, version)
) STRICT;
CREATE TABLE IF NOT EXISTS commands (
    command_id     TEXT    PRIMARY KEY,
    fingerprint    TEXT    NOT NULL,
    stream         TEXT    NOT NULL,
    first_version  INTEGER NOT NULL,
    last_version   INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    recorded_at    TEXT    NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS events_are_never_updated BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never updated'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never deleted'); END;
PRAGMA user_version = 1;
";

struct WriteJob {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

struct Shared {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    head: Arc<watch::Sender<u64>>,
}

/// The SQLite event log. Cheap to clone; the last clone dropped stops the writer.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (or creates) the log at `path`; creates the parent directory if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", parent.display())))?;
        }
        let conn = Connection::open(&path)?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let head_position: u64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
        let head = Arc::new(watch::Sender::new(head_position));
        let (tx, rx) = mpsc::channel();
        let writer_head = head.clone();
        let thread = std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer_loop(conn, rx, head_position, writer_head))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                head,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = shared.readers.lock().expect("reader pool poisoned").pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &shared.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    c
                }
            };
            let result = f(&conn);
            let mut pool = shared.readers.lock().expect("reader pool poisoned");
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued appends are written.
        self.writer.lock().map(|mut w| w.take()).ok();
        if let Some(t) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<WriteJob>, mut head: u64, notify: Arc<watch::Sender<u64>>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.request, j.reply)).unzip();
        let results = match write_group(&mut conn, &requests, head) {
            Ok(results) => results,
            Err(e) => requests.iter().map(|_| Err(StoreError::Backend(e.to_string()))).collect(),
        };
        if let Some(last) =
            results.iter().filter_map(|r| r.as_ref().ok()).filter(|o| !o.duplicate).map(|o| o.last_position).max()
        {
            head = last;
            notify.send_replace(head);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result); // the caller may have gone; the write stands
        }
    }
}

/// One transaction for the whole group, one savepoint per append.
fn write_group(
    conn: &mut Connection,
    requests: &[AppendRequest],
    head: u64,
) -> Result<Vec<Result<AppendOutcome, StoreError>>, rusqlite::Error> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let recorded_at = crate::now();
    let mut next_position = head + 1;
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        let mut sp = tx.savepoint()?;
        match append_one(&sp, request, next_position, recorded_at) {
            Ok(outcome) => {
                sp.commit()?;
                if !outcome.duplicate {
                    next_position = outcome.last_position + 1;
                }
                results.push(Ok(outcome));
            }
            Err(e) => {
                sp.rollback()?;
                results.push(Err(e));
            }
        }
    }
    tx.commit()?;
    Ok(results)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn append_one(
    tx: &Connection,
    request: &AppendRequest,
    first_position: u64,
    recorded_at: DateTime<Utc>,
) -> Result<AppendOutcome, StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if let Some((fingerprint, outcome)) = stored_command(tx, request.command_id)? {
        if fingerprint != request.fingerprint {
            return Err(StoreError::CommandIdReused { command_id: request.command_id });
        }
        return Ok(outcome);
    }
    let actual: u64 =
        tx.query_row("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?1", [&request.stream], |r| {
            r.get(0)
        })?;
    check_expected(&request.stream, request.expected, actual)?;
    let at = ts(recorded_at);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (position, stream, version, event_id, event_type, schema_version,
                                 business_date, recorded_at, payload, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (i, e) in request.events.iter().enumerate() {
            let metadata = serde_json::to_string(&e.metadata).map_err(|e| StoreError::Backend(e.to_string()))?;
            insert
                .execute(params![
                    first_position + i as u64,
                    request.stream,
                    actual + 1 + i as u64,
                    e.event_id.to_string(),
                    e.event_type,
                    e.schema_version,
                    e.business_date.to_string(),
                    at,
                    e.payload.to_string(),
                    metadata,
                ])
                .map_err(|err| match err.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ConstraintViolation) => {
                        StoreError::Backend(format!("event id {} is already in the log", e.event_id))
                    }
                    _ => err.into(),
                })?;
        }
    }
    let n = request.events.len() as u64;
    let outcome = AppendOutcome {
        stream: request.stream.clone(),
        first_version: actual + 1,
        last_version: actual + n,
        first_position,
        last_position: first_position + n - 1,
        recorded_at,
        duplicate: false,
    };
    tx.execute(
        "INSERT INTO commands (command_id, fingerprint, stream, first_version, last_version,
                               first_position, last_position, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            request.command_id.to_string(),
            request.fingerprint,
            outcome.stream,
            outcome.first_version,
            outcome.last_version,
            outcome.first_position,
            outcome.last_position,
            at,
        ],
    )?;
    Ok(outcome)
}

fn stored_command(conn: &Connection, command_id: CommandId) -> Result<Option<(String, AppendOutcome)>, StoreError> {
    let row = conn
        .query_row(
            "SELECT fingerprint, stream, first_version, last_version, first_position, last_position, recorded_at
             FROM commands WHERE command_id = ?1",
            [command_id.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, u64>(3)?,
                    r.get::<_, u64>(4)?,
                    r.get::<_, u64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .optional()?;
    row.map(|(fingerprint, stream, fv, lv, fp, lp, at)| {
        Ok((
            fingerprint,
            AppendOutcome {
                stream,
                first_version: fv,
                last_version: lv,
                first_position: fp,
                last_position: lp,
                recorded_at: parse_time(&at)?,
                duplicate: true,
            },
        ))
    })
    .transpose()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("recorded_at `{s}`: {e}")))
}

const SELECT_EVENT: &str = "SELECT position, stream, version, event_id, event_type, schema_version,
                                   business_date, recorded_at, payload, metadata FROM events";

fn read_rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, u64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, u32>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, String>(9)?,
        ))
    })?;
    let corrupt = |what: &str, position: u64, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("event at position {position}: {what}: {e}"))
    };
    rows.map(|row| {
        let (position, stream, version, event_id, event_type, schema_version, date, at, payload, metadata) = row?;
        Ok(RecordedEvent {
            position,
            stream,
            version,
            event_id: EventId::parse(&event_id).map_err(|e| corrupt("event id", position, &e))?,
            event_type,
            schema_version,
            business_date: date.parse().map_err(|e| corrupt("business date", position, &e))?,
            recorded_at: parse_time(&at)?,
            payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", position, &e))?,
            metadata: serde_json::from_str(&metadata).map_err(|e| corrupt("metadata", position, &e))?,
        })
    })
    .collect()
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.shared.writer.lock().expect("writer handle poisoned");
            let writer = writer.as_ref().ok_or_else(|| StoreError::Backend("the log is closed".into()))?;
            writer
                .send(WriteJob { request, reply })
                .map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        }
        answer.await.map_err(|_| StoreError::Backend("the log writer has stopped".into()))?
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        self.read(move |c| read_rows(c, &format!("{SELECT_EVENT} WHERE stream = ?1 ORDER BY version"), [stream])).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            read_rows(
                c,
                &format!("{SELECT_EVENT} WHERE position > ?1 ORDER BY position LIMIT ?2"),
                params![after, limit as u64],
            )
        })
        .await
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        self.read(move |c| {
            Ok(stored_command(c, command_id)?.map(|(fingerprint, outcome)| CommandRecord { fingerprint, outcome }))
        })
        .await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }
}
