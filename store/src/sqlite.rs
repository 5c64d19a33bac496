//! The embedded SQLite backend, the default.
//!
//! One writer thread owns the only write connection and commits appends in groups: every
//! append waiting when a transaction starts joins it, each in its own savepoint with its
//! own version check and its own answer, and the whole group costs one fsync
//! (WAL, `synchronous=FULL`). An append is answered only after its commit returned, so an
//! acknowledged event is on disk. Reads use a small pool of read-only connections that
//! WAL lets run beside the writer.

use crate::chain::{self, ChainHash};
use crate::{
    AppendOutcome, AppendRequest, CommandRecord, EventStore, Payload, RecordedEvent, StoreError, Verification,
    Verifier, check_expected, check_request,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::{CommandId, EventId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
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
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    business_date  TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    command_id     BLOB    NOT NULL,
    actor          TEXT    NOT NULL,
    correlation_id BLOB    NOT NULL,
    causation_id   BLOB,
    hash           BLOB    NOT NULL,
    log_hash       BLOB    NOT NULL,
    UNIQUE (stream, version)
) STRICT;
CREATE TABLE IF NOT EXISTS commands (
    command_id     BLOB    PRIMARY KEY,
    fingerprint    TEXT    NOT NULL,
    stream         TEXT    NOT NULL,
    first_version  INTEGER NOT NULL,
    last_version   INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
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

/// Counters of the writer, for benchmarks and operators: how well appends are grouped.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub groups: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
}

struct Shared {
    /// Held while the log is open for writing.
    _lock: Option<std::fs::File>,
    stats: Arc<WriterStats>,
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
    // FULL: a commit returns only once its WAL frames are fsynced.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Savepoints (one per append in a group) journal into memory, not into temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A modest page cache: SQLite walks the whole cache at the end of each write
    // transaction, so a large one slows every commit (measured: 10% of the writer's time
    // at 64 MiB).
    conn.pragma_update(None, "cache_size", -4_096)?; // KiB
    // Checkpoint less often: fewer, larger copies of the WAL into the database file.
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    tune_reads(conn)
}

/// Memory-mapped reads avoid a system call per page when replaying the log.
fn tune_reads(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
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
        // One writing process per log: the writer trusts what it remembers of each stream.
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|_| {
            StoreError::Backend(format!("{} is already open for writing by another process", path.display()))
        })?;
        let conn = Connection::open(&path)?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let last: Option<(u64, Vec<u8>)> = conn
            .query_row("SELECT position, log_hash FROM events ORDER BY position DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let head_position = last.as_ref().map_or(0, |(p, _)| *p);
        let head_log_hash = match last {
            Some((_, bytes)) => ChainHash::from_slice(&bytes)
                .ok_or_else(|| StoreError::Corrupt("the last event's log hash is not 32 bytes".into()))?,
            None => ChainHash::GENESIS,
        };
        let head = Arc::new(watch::Sender::new(head_position));
        let (tx, rx) = mpsc::channel();
        let writer_head = head.clone();
        let stats = Arc::new(WriterStats::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || {
                writer_loop(
                    conn,
                    rx,
                    Head { position: head_position, log_hash: head_log_hash },
                    writer_head,
                    &writer_stats,
                )
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                _lock: Some(lock),
                stats,
                path,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                head,
            }),
        })
    }

    /// Opens an existing log for reading only (no lock, no writer): for tools that read
    /// the log while a server writes it. Appends are refused.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(StoreError::Backend(format!("no event log at {}", path.display())));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let head_position: u64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
        Ok(Self {
            shared: Arc::new(Shared {
                _lock: None,
                stats: Arc::default(),
                path,
                writer: Mutex::new(None),
                writer_thread: Mutex::new(None),
                readers: Mutex::new(vec![conn]),
                head: Arc::new(watch::Sender::new(head_position)),
            }),
        })
    }

    /// Groups committed and appends in them since the log was opened.
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.shared.stats.groups.load(Relaxed), self.shared.stats.appends.load(Relaxed))
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
                    c.pragma_update(None, "cache_size", -16_384)?;
                    tune_reads(&c)?;
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

/// The end of the log as the writer knows it: where the next event goes and what the
/// whole-log chain is there. Moves only once a group is committed.
#[derive(Clone, Copy)]
struct Head {
    position: u64,
    log_hash: ChainHash,
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<WriteJob>,
    head: Head,
    notify: Arc<watch::Sender<u64>>,
    stats: &WriterStats,
) {
    let mut writer = Writer { conn, head, tips: HashMap::new() };
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.request, j.reply)).unzip();
        stats.groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats.appends.fetch_add(requests.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let before = writer.head.position;
        let results = match writer.write_group(&requests) {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "a group of appends failed to commit; none was written");
                requests.iter().map(|_| Err(StoreError::Backend(e.to_string()))).collect()
            }
        };
        if writer.head.position != before {
            notify.send_replace(writer.head.position);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result); // the caller may have gone; the write stands
        }
    }
}

/// Why a group could not be written as one transaction.
enum GroupFailure {
    /// An insert broke a constraint (an event id already in the log): the group is written
    /// again one append per transaction, so that only the faulty append fails.
    Constraint,
    Fatal(StoreError),
}

impl From<rusqlite::Error> for GroupFailure {
    fn from(e: rusqlite::Error) -> Self {
        GroupFailure::Fatal(e.into())
    }
}

impl From<StoreError> for GroupFailure {
    fn from(e: StoreError) -> Self {
        GroupFailure::Fatal(e)
    }
}

/// Where a stream ends: its version and the hash of its last event.
type Tip = (u64, ChainHash);

/// The writer's state. Only this thread writes to the file (a lock file keeps other
/// processes out), so it can remember where each stream ends instead of asking SQLite
/// for every append.
struct Writer {
    conn: Connection,
    head: Head,
    tips: HashMap<String, Tip>,
}

impl Writer {
    /// Writes a group in one transaction; on a constraint failure, one by one.
    fn write_group(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        match self.try_group(requests) {
            Ok(results) => Ok(results),
            Err(GroupFailure::Fatal(e)) => Err(e),
            Err(GroupFailure::Constraint) if requests.len() == 1 => Ok(vec![Err(StoreError::Backend(format!(
                "an event id of command {} is already in the log",
                requests[0].command_id
            )))]),
            Err(GroupFailure::Constraint) => {
                let mut results = Vec::with_capacity(requests.len());
                for request in requests {
                    results.extend(self.write_group(std::slice::from_ref(request))?);
                }
                Ok(results)
            }
        }
    }

    fn try_group(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, GroupFailure> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded_at = crate::now();
        let mut head = self.head;
        // What this group changed, applied to `tips` only once it is committed.
        let mut moved: HashMap<&str, Tip> = HashMap::new();
        let mut applied: HashMap<CommandId, (&str, AppendOutcome)> = HashMap::new();
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            if let Err(e) = check_request(request) {
                results.push(Err(e));
                continue;
            }
            let previous = match applied.get(&request.command_id) {
                Some((fingerprint, outcome)) => Some((fingerprint.to_string(), outcome.clone())),
                None => stored_command(&tx, request.command_id)?,
            };
            if let Some((fingerprint, outcome)) = previous {
                results.push(if fingerprint == request.fingerprint {
                    Ok(AppendOutcome { duplicate: true, ..outcome })
                } else {
                    Err(StoreError::CommandIdReused { command_id: request.command_id })
                });
                continue;
            }
            let tip = match moved.get(request.stream.as_str()).or_else(|| self.tips.get(&request.stream)) {
                Some(tip) => *tip,
                None => {
                    let tip = stream_tip(&tx, &request.stream)?;
                    self.tips.insert(request.stream.clone(), tip);
                    tip
                }
            };
            if let Err(e) = check_expected(&request.stream, request.expected, tip.0) {
                results.push(Err(e));
                continue;
            }
            let (outcome, new_tip, new_head) = insert_append(&tx, request, tip, head, recorded_at)?;
            head = new_head;
            moved.insert(&request.stream, new_tip);
            applied.insert(request.command_id, (&request.fingerprint, outcome.clone()));
            results.push(Ok(outcome));
        }
        tx.commit()?;
        self.head = head;
        for (stream, tip) in moved {
            self.tips.insert(stream.to_string(), tip);
        }
        Ok(results)
    }
}

/// The stream's last version and hash, read from the file.
fn stream_tip(conn: &Connection, stream: &str) -> Result<Tip, StoreError> {
    let last: Option<(u64, Vec<u8>)> = conn
        .prepare_cached("SELECT version, hash FROM events WHERE stream = ?1 ORDER BY version DESC LIMIT 1")?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match last {
        Some((v, h)) => Ok((
            v,
            ChainHash::from_slice(&h).ok_or_else(|| StoreError::Corrupt("a stored hash is not 32 bytes".into()))?,
        )),
        None => Ok((0, ChainHash::GENESIS)),
    }
}

fn blob_uuid(bytes: &[u8]) -> Option<uuid::Uuid> {
    uuid::Uuid::from_slice(bytes).ok()
}

/// Inserts an append's events and its command record; the checks are already done.
fn insert_append(
    conn: &Connection,
    request: &AppendRequest,
    (actual, mut previous): Tip,
    head: Head,
    recorded_at: DateTime<Utc>,
) -> Result<(AppendOutcome, Tip, Head), GroupFailure> {
    let mut log = head.log_hash;
    let first_position = head.position + 1;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, business_date,
                             recorded_at, payload, command_id, actor, correlation_id, causation_id, hash, log_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for (i, e) in request.events.iter().enumerate() {
        let position = first_position + i as u64;
        let r =
            RecordedEvent::record(e.clone(), &request.stream, actual + 1 + i as u64, position, recorded_at, &previous);
        log = chain::log_hash(&log, position, &r.hash);
        insert
            .execute(params![
                position,
                r.stream,
                r.version,
                &r.event_id.0.as_bytes()[..],
                r.event_type,
                r.schema_version,
                r.business_date.to_string(),
                r.recorded_at.timestamp_micros(),
                r.payload.as_str(),
                &r.metadata.command_id.0.as_bytes()[..],
                r.metadata.actor,
                &r.metadata.correlation_id.0.as_bytes()[..],
                r.metadata.causation_id.as_ref().map(|c| c.0.as_bytes().to_vec()),
                &r.hash.0[..],
                &log.0[..],
            ])
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => GroupFailure::Constraint,
                _ => GroupFailure::Fatal(err.into()),
            })?;
        previous = r.hash;
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
    conn.prepare_cached(
        "INSERT INTO commands (command_id, fingerprint, stream, first_version, last_version,
                               first_position, last_position, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        &request.command_id.0.as_bytes()[..],
        request.fingerprint,
        outcome.stream,
        outcome.first_version,
        outcome.last_version,
        outcome.first_position,
        outcome.last_position,
        recorded_at.timestamp_micros(),
    ])?;
    let tip = (outcome.last_version, previous);
    Ok((outcome, tip, Head { position: first_position + n - 1, log_hash: log }))
}

fn stored_command(conn: &Connection, command_id: CommandId) -> Result<Option<(String, AppendOutcome)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT fingerprint, stream, first_version, last_version, first_position, last_position, recorded_at
             FROM commands WHERE command_id = ?1",
        )?
        .query_row([&command_id.0.as_bytes()[..]], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
                r.get::<_, u64>(4)?,
                r.get::<_, u64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
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
                recorded_at: micros(at)?,
                duplicate: true,
            },
        ))
    })
    .transpose()
}

fn micros(at: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(at).ok_or_else(|| StoreError::Corrupt(format!("recorded_at {at} is out of range")))
}

const SELECT_EVENT: &str = "SELECT position, stream, version, event_id, event_type, schema_version, business_date,
                                   recorded_at, payload, command_id, actor, correlation_id, causation_id, hash, log_hash
                            FROM events";

/// Decodes one row; the error says which column of which position is unreadable.
fn decode_row(r: &rusqlite::Row<'_>) -> Result<(RecordedEvent, ChainHash), StoreError> {
    let position: u64 = r.get(0)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("event at position {position}: unreadable {what}"));
    let uuid_at = |i: usize, what: &str| -> Result<uuid::Uuid, StoreError> {
        r.get_ref(i)?.as_blob().ok().and_then(blob_uuid).ok_or_else(|| corrupt(what))
    };
    let hash_at = |i: usize, what: &str| -> Result<ChainHash, StoreError> {
        r.get_ref(i)?.as_blob().ok().and_then(ChainHash::from_slice).ok_or_else(|| corrupt(what))
    };
    let text_at =
        |i: usize, what: &str| -> Result<&str, StoreError> { r.get_ref(i)?.as_str().map_err(|_| corrupt(what)) };
    let causation = match r.get_ref(12)? {
        rusqlite::types::ValueRef::Null => None,
        v => Some(domain::EventId(v.as_blob().ok().and_then(blob_uuid).ok_or_else(|| corrupt("causation id"))?)),
    };
    let event = RecordedEvent {
        position,
        stream: text_at(1, "stream")?.to_string(),
        version: r.get(2)?,
        event_id: EventId(uuid_at(3, "event id")?),
        event_type: text_at(4, "event type")?.to_string(),
        schema_version: r.get(5)?,
        business_date: parse_date(text_at(6, "business date")?).ok_or_else(|| corrupt("business date"))?,
        recorded_at: micros(r.get(7)?)?,
        payload: Payload::from_text(text_at(8, "payload")?),
        metadata: domain::CommandMeta {
            command_id: domain::CommandId(uuid_at(9, "command id")?),
            actor: text_at(10, "actor")?.to_string(),
            correlation_id: domain::CorrelationId(uuid_at(11, "correlation id")?),
            causation_id: causation,
        },
        hash: hash_at(13, "hash")?,
    };
    Ok((event, hash_at(14, "log hash")?))
}

/// `YYYY-MM-DD` without the generality (and the cost) of a format parser: replay reads
/// millions of them.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn read_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    expected: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::with_capacity(expected);
    while let Some(row) = rows.next()? {
        out.push(decode_row(row)?.0);
    }
    Ok(out)
}

/// Verifies a SQLite log file: every event's hash, every stream's chain, the whole-log
/// chain and the positions. Opens the file read-only; never writes.
pub fn verify(path: &Path, anchor: Option<(u64, ChainHash)>) -> Result<Verification, StoreError> {
    if !path.exists() {
        return Err(StoreError::Backend(format!("no event log at {}", path.display())));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let mut stmt = conn.prepare(&format!("{SELECT_EVENT} ORDER BY position"))?;
    let mut rows = stmt.query([])?;
    let mut verifier = Verifier::new(true);
    if let Some((position, hash)) = anchor {
        verifier = verifier.expecting(position, hash);
    }
    while let Some(row) = rows.next()? {
        match decode_row(row) {
            Ok((event, log)) => {
                if !verifier.check(&event, Some(&log)) {
                    break;
                }
            }
            Err(e) => {
                let position: u64 = row.get(0).unwrap_or(0);
                let stream: String = row.get(1).unwrap_or_default();
                let version: u64 = row.get(2).unwrap_or(0);
                verifier.broken(position, &stream, version, e.to_string());
                break;
            }
        }
    }
    Ok(verifier.finish())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.shared.writer.lock().expect("writer handle poisoned");
            let writer =
                writer.as_ref().ok_or_else(|| StoreError::Backend("the log is open for reading only".into()))?;
            writer
                .send(WriteJob { request, reply })
                .map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        }
        answer.await.map_err(|_| StoreError::Backend("the log writer has stopped".into()))?
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        self.read(move |c| read_rows(c, &format!("{SELECT_EVENT} WHERE stream = ?1 ORDER BY version"), [stream], 16))
            .await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        self.read(move |c| {
            read_rows(
                c,
                &format!("{SELECT_EVENT} WHERE stream = ?1 AND version >= ?2 ORDER BY version"),
                rusqlite::params![stream, version as i64],
                16,
            )
        })
        .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            read_rows(
                c,
                &format!("{SELECT_EVENT} WHERE position > ?1 ORDER BY position LIMIT ?2"),
                params![after, limit as u64],
                limit.min(16_384),
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
