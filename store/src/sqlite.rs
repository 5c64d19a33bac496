//! The embedded SQLite backend, the default.
//!
//! One writer thread owns the only write connection and commits appends in groups: every
//! append waiting when a transaction starts joins it, each with its own version check and
//! its own answer, and the whole group costs one fsync (WAL, `synchronous=FULL`). An
//! append is answered only after its commit returned, so an acknowledged event is on
//! disk. Reads use a small pool of read-only connections that WAL lets run beside the
//! writer.
//!
//! Log format 2 writes only at the end of B-trees: an event is a row keyed by its
//! position holding a packed [`record`] (with its stream's id and the position of the
//! stream's previous event: streams are read by following these links back from the
//! stream's last event); a command is a row keyed by its first position. Any index keyed by stream
//! or by a random command id would dirty one page per append, so a group of 64 appends
//! to 64 streams would write ~170 pages to the WAL instead of ~15, and the fsync of that
//! many pages is what bounded throughput. Command ids are found through an in-memory map
//! (id → first position) loaded at open, and uniqueness is the writer's: it is the only
//! writer (a lock file keeps other processes out). Format 1 logs are migrated in place
//! by the first writer that opens them; read-only tools still read them ([`legacy`]).

pub(crate) mod legacy;
pub(crate) mod record;

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
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};

/// The most appends one transaction takes; bounds the latency of a group.
const MAX_GROUP: usize = 256;

/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// The current log format (`PRAGMA user_version`).
const FORMAT: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE streams (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    -- The position of the stream's last event: where reading the stream starts.
    last_position  INTEGER NOT NULL
) STRICT;
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    -- Every other field, packed (see sqlite/record.rs), among them the stream's id and
    -- the position of the stream's previous event.
    record         BLOB    NOT NULL
) STRICT;
CREATE TABLE commands (
    first_position INTEGER PRIMARY KEY,
    last_position  INTEGER NOT NULL,
    command_id     BLOB    NOT NULL,
    fingerprint    TEXT    NOT NULL
) STRICT;
CREATE TRIGGER events_are_never_updated BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never updated'); END;
CREATE TRIGGER events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never deleted'); END;
CREATE TRIGGER commands_are_never_updated BEFORE UPDATE ON commands
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: commands are never updated'); END;
CREATE TRIGGER commands_are_never_deleted BEFORE DELETE ON commands
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: commands are never deleted'); END;
CREATE TRIGGER streams_are_never_renamed BEFORE UPDATE OF id, name ON streams
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: streams are never renamed'); END;
CREATE TRIGGER streams_are_never_deleted BEFORE DELETE ON streams
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: streams are never deleted'); END;
PRAGMA user_version = 2;
";

/// The answer to an append, with its request handed back: the caller frees it, on the
/// thread that allocated it, not the writer (which measured 5% of its time in `free`).
type Reply = (Result<AppendOutcome, StoreError>, AppendRequest);

struct WriteJob {
    request: AppendRequest,
    reply: oneshot::Sender<Reply>,
}

/// Counters of the writer, for benchmarks and operators: how well appends are grouped.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub groups: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
}

/// Which layout the file has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    /// Format 1, opened read-only (a writer migrates it at open).
    Legacy,
    Packed,
}

/// Every command id the log holds, with the position of its first event: the only way to
/// find a command by id (no index on the random ids: see the module doc).
#[derive(Default)]
struct Commands {
    first_position: HashMap<CommandId, u64>,
    /// The commands table is read up to this first position.
    loaded_to: u64,
}

impl Commands {
    /// Reads the commands recorded since the last call.
    fn catch_up(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let mut stmt =
            conn.prepare_cached("SELECT first_position, command_id FROM commands WHERE first_position > ?1")?;
        let mut rows = stmt.query([self.loaded_to])?;
        while let Some(row) = rows.next()? {
            let position: u64 = row.get(0)?;
            let id = row.get_ref(1)?.as_blob().ok().and_then(|b| uuid::Uuid::from_slice(b).ok()).ok_or_else(|| {
                StoreError::Corrupt(format!("the command recorded at position {position} has no readable id"))
            })?;
            self.first_position.insert(CommandId(id), position);
            self.loaded_to = self.loaded_to.max(position);
        }
        Ok(())
    }
}

/// A pooled read connection with the stream names it has seen (index = stream id - 1).
struct ReadConn {
    conn: Connection,
    names: Vec<String>,
}

struct Shared {
    /// Held while the log is open for writing.
    _lock: Option<std::fs::File>,
    format: Format,
    stats: Arc<WriterStats>,
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<ReadConn>>,
    commands: Arc<RwLock<Commands>>,
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

/// The file's format: 0 is a new file, unless format 1 created its tables without
/// getting to set its version.
fn file_format(conn: &Connection) -> Result<i64, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let old: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'stream')",
            [],
            |r| r.get(0),
        )?;
        return Ok(if old { 1 } else { 0 });
    }
    Ok(version)
}

/// Creates the schema of a new log, or migrates a format 1 log, each in one transaction.
fn prepare_schema(conn: &mut Connection) -> Result<(), StoreError> {
    match file_format(conn)? {
        0 => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()?;
            Ok(())
        }
        1 => legacy::migrate(conn),
        FORMAT => Ok(()),
        other => Err(StoreError::Backend(format!("the log has format {other}, newer than this tracker's ({FORMAT})"))),
    }
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
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        prepare_schema(&mut conn)?;
        let last: Option<(u64, Vec<u8>)> = conn
            .query_row("SELECT position, record FROM events ORDER BY position DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let head_position = last.as_ref().map_or(0, |(p, _)| *p);
        let head_log_hash = match last {
            Some((_, record)) => {
                record::decode(&record)
                    .ok_or_else(|| StoreError::Corrupt("the last event's record is unreadable".into()))?
                    .log_hash
            }
            None => ChainHash::GENESIS,
        };
        let mut commands = Commands::default();
        commands.catch_up(&conn)?;
        let commands = Arc::new(RwLock::new(commands));
        let head = Arc::new(watch::Sender::new(head_position));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            head: Head { position: head_position, log_hash: head_log_hash },
            tips: HashMap::new(),
            commands: commands.clone(),
            record: Vec::with_capacity(256),
        };
        let writer_head = head.clone();
        let stats = Arc::new(WriterStats::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer_loop(writer, rx, writer_head, &writer_stats))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                _lock: Some(lock),
                format: Format::Packed,
                stats,
                path,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                commands,
                head,
            }),
        })
    }

    /// Opens an existing log for reading only (no lock, no writer): for tools that read
    /// the log while a server writes it. Appends are refused. A format 1 log is read as
    /// it is (only a writer migrates).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(StoreError::Backend(format!("no event log at {}", path.display())));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let format = match file_format(&conn)? {
            1 => Format::Legacy,
            FORMAT => Format::Packed,
            other => {
                return Err(StoreError::Backend(format!("the log has format {other}, not one this tracker reads")));
            }
        };
        let head_position: u64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
        Ok(Self {
            shared: Arc::new(Shared {
                _lock: None,
                format,
                stats: Arc::default(),
                path,
                writer: Mutex::new(None),
                writer_thread: Mutex::new(None),
                readers: Mutex::new(vec![ReadConn { conn, names: Vec::new() }]),
                commands: Arc::default(),
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
        f: impl FnOnce(&mut ReadConn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        let run = move || {
            let pooled = shared.readers.lock().expect("reader pool poisoned").pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &shared.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    c.pragma_update(None, "cache_size", -16_384)?;
                    tune_reads(&c)?;
                    ReadConn { conn: c, names: Vec::new() }
                }
            };
            let result = f(&mut conn);
            let mut pool = shared.readers.lock().expect("reader pool poisoned");
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        };
        tokio::task::spawn_blocking(run).await.map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
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

fn writer_loop(mut writer: Writer, rx: mpsc::Receiver<WriteJob>, notify: Arc<watch::Sender<u64>>, stats: &WriterStats) {
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
        for ((reply, request), result) in replies.into_iter().zip(requests).zip(results) {
            let _ = reply.send((result, request)); // the caller may have gone; the write stands
        }
    }
}

/// Why a group could not be written as one transaction.
enum GroupFailure {
    /// An insert broke a constraint: the group is written again one append per
    /// transaction, so that only the faulty append fails.
    Constraint,
    Fatal(StoreError),
}

impl From<rusqlite::Error> for GroupFailure {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => GroupFailure::Constraint,
            _ => GroupFailure::Fatal(e.into()),
        }
    }
}

impl From<StoreError> for GroupFailure {
    fn from(e: StoreError) -> Self {
        GroupFailure::Fatal(e)
    }
}

/// Where a stream ends.
#[derive(Clone, Copy)]
struct Tip {
    stream_id: i64,
    version: u64,
    hash: ChainHash,
    position: u64,
}

/// The writer's state. Only this thread writes to the file (a lock file keeps other
/// processes out), so it can remember where each stream ends instead of asking SQLite
/// for every append.
struct Writer {
    conn: Connection,
    head: Head,
    tips: HashMap<String, Tip>,
    commands: Arc<RwLock<Commands>>,
    /// Reused for every packed record.
    record: Vec<u8>,
}

const INSERT_EVENT: &str = "INSERT INTO events (position, record) VALUES (?1, ?2)";
const INSERT_COMMAND: &str =
    "INSERT INTO commands (first_position, last_position, command_id, fingerprint) VALUES (?1, ?2, ?3, ?4)";

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
                "command {} breaks a constraint of the log",
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
        // What this group changed, applied to `tips` and `commands` once it is committed.
        let mut moved: HashMap<&str, Tip> = HashMap::new();
        let mut applied: HashMap<CommandId, (&str, AppendOutcome)> = HashMap::new();
        let mut results = Vec::with_capacity(requests.len());
        {
            let known = self.commands.read().expect("command ids poisoned");
            let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
            let mut insert_command = tx.prepare_cached(INSERT_COMMAND)?;
            for request in requests {
                let previous = match applied.get(&request.command_id) {
                    Some((fingerprint, outcome)) => Some((fingerprint.to_string(), outcome.clone())),
                    None => match known.first_position.get(&request.command_id) {
                        Some(&first) => stored_command(&tx, first)?.map(|(_, r)| (r.fingerprint, r.outcome)),
                        None => None,
                    },
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
                    Some(tip) => Some(*tip),
                    None => {
                        let tip = stream_tip(&tx, &request.stream)?;
                        if let Some(tip) = tip {
                            self.tips.insert(request.stream.clone(), tip);
                        }
                        tip
                    }
                };
                if let Err(e) = check_expected(&request.stream, request.expected, tip.map_or(0, |t| t.version)) {
                    results.push(Err(e));
                    continue;
                }
                let tip = match tip {
                    Some(tip) => tip,
                    None => new_stream(&tx, &request.stream)?,
                };
                let (outcome, tip, new_head) =
                    insert_append(&mut insert_event, &mut self.record, request, tip, head, recorded_at)?;
                insert_command.execute(params![
                    outcome.first_position,
                    outcome.last_position,
                    &request.command_id.0.as_bytes()[..],
                    request.fingerprint,
                ])?;
                head = new_head;
                moved.insert(&request.stream, tip);
                applied.insert(request.command_id, (&request.fingerprint, outcome.clone()));
                results.push(Ok(outcome));
            }
            let mut set_last = tx.prepare_cached("UPDATE streams SET last_position = ?1 WHERE id = ?2")?;
            for tip in moved.values() {
                set_last.execute(params![tip.position, tip.stream_id])?;
            }
        }
        tx.commit()?;
        self.head = head;
        for (stream, tip) in moved {
            self.tips.insert(stream.to_string(), tip);
        }
        let mut commands = self.commands.write().expect("command ids poisoned");
        for (command_id, (_, outcome)) in applied {
            commands.first_position.insert(command_id, outcome.first_position);
            commands.loaded_to = commands.loaded_to.max(outcome.first_position);
        }
        Ok(results)
    }
}

/// Where a stream ends, read from the file; `None` for a stream without events.
fn stream_tip(conn: &Connection, stream: &str) -> Result<Option<Tip>, StoreError> {
    let last: Option<(i64, u64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT s.id, s.last_position, e.record FROM streams s JOIN events e ON e.position = s.last_position
             WHERE s.name = ?1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((stream_id, position, blob)) = last else { return Ok(None) };
    let r = record::decode(&blob).ok_or_else(|| {
        StoreError::Corrupt(format!("the last event of {stream} (position {position}) is unreadable"))
    })?;
    Ok(Some(Tip { stream_id, version: r.version, hash: r.hash, position }))
}

/// Registers a stream about to get its first event.
fn new_stream(conn: &Connection, stream: &str) -> Result<Tip, GroupFailure> {
    conn.prepare_cached("INSERT INTO streams (name, last_position) VALUES (?1, 0)")?.execute([stream])?;
    Ok(Tip { stream_id: conn.last_insert_rowid(), version: 0, hash: ChainHash::GENESIS, position: 0 })
}

/// Inserts an append's events; the checks are already done.
fn insert_append(
    insert: &mut rusqlite::CachedStatement<'_>,
    record: &mut Vec<u8>,
    request: &AppendRequest,
    tip: Tip,
    head: Head,
    recorded_at: DateTime<Utc>,
) -> Result<(AppendOutcome, Tip, Head), GroupFailure> {
    let (mut log, mut previous, mut previous_position) = (head.log_hash, tip.hash, tip.position);
    let first_position = head.position + 1;
    let recorded_at_micros = recorded_at.timestamp_micros();
    for (i, e) in request.events.iter().enumerate() {
        let position = first_position + i as u64;
        let version = tip.version + 1 + i as u64;
        let m = &e.metadata;
        let causation_id = m.causation_id.as_ref().map(|c| c.0.as_bytes());
        let hash = chain::event_hash(
            &previous,
            &chain::HashedFields {
                stream: &request.stream,
                version,
                event_id: e.event_id.0.as_bytes(),
                event_type: &e.event_type,
                schema_version: e.schema_version,
                business_date: e.business_date,
                recorded_at_micros,
                payload: e.payload.as_str(),
                command_id: m.command_id.0.as_bytes(),
                actor: &m.actor,
                correlation_id: m.correlation_id.0.as_bytes(),
                causation_id,
            },
        );
        log = chain::log_hash(&log, position, &hash);
        record::encode(
            &record::Record {
                stream_id: tip.stream_id,
                previous: previous_position,
                version,
                event_id: *e.event_id.0.as_bytes(),
                command_id: *m.command_id.0.as_bytes(),
                correlation_id: *m.correlation_id.0.as_bytes(),
                causation_id: causation_id.copied(),
                schema_version: e.schema_version,
                business_date: e.business_date,
                recorded_at_micros,
                hash,
                log_hash: log,
                event_type: &e.event_type,
                actor: &m.actor,
                payload: e.payload.as_str(),
            },
            record,
        );
        insert.execute(params![position, &record[..]])?;
        (previous, previous_position) = (hash, position);
    }
    let n = request.events.len() as u64;
    let outcome = AppendOutcome {
        stream: request.stream.clone(),
        first_version: tip.version + 1,
        last_version: tip.version + n,
        first_position,
        last_position: first_position + n - 1,
        recorded_at,
        duplicate: false,
    };
    let tip =
        Tip { stream_id: tip.stream_id, version: outcome.last_version, hash: previous, position: previous_position };
    Ok((outcome, tip, Head { position: first_position + n - 1, log_hash: log }))
}

/// The command whose first event is at `first_position`, with its answer.
fn stored_command(conn: &Connection, first_position: u64) -> Result<Option<(CommandId, CommandRecord)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT c.command_id, c.fingerprint, c.last_position, f.record, l.record
             FROM commands c JOIN events f ON f.position = c.first_position
                             JOIN events l ON l.position = c.last_position
             WHERE c.first_position = ?1",
        )?
        .query_row([first_position], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })
        .optional()?;
    let Some((id, fingerprint, last_position, first, last)) = row else { return Ok(None) };
    let corrupt = || StoreError::Corrupt(format!("the command recorded at position {first_position} is unreadable"));
    let id = uuid::Uuid::from_slice(&id).map_err(|_| corrupt())?;
    let (first, last) = (record::decode(&first).ok_or_else(corrupt)?, record::decode(&last).ok_or_else(corrupt)?);
    let stream: String = conn
        .prepare_cached("SELECT name FROM streams WHERE id = ?1")?
        .query_row([first.stream_id], |r| r.get(0))
        .optional()?
        .ok_or_else(corrupt)?;
    let outcome = AppendOutcome {
        stream,
        first_version: first.version,
        last_version: last.version,
        first_position,
        last_position,
        recorded_at: micros(first.recorded_at_micros)?,
        duplicate: true,
    };
    Ok(Some((CommandId(id), CommandRecord { fingerprint, outcome })))
}

fn micros(at: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(at).ok_or_else(|| StoreError::Corrupt(format!("recorded_at {at} is out of range")))
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

/// Reads the names of the streams created since `names` was last filled.
fn load_names(conn: &Connection, names: &mut Vec<String>) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, name FROM streams WHERE id > ?1 ORDER BY id")?;
    let mut rows = stmt.query([names.len() as i64])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        if id != names.len() as i64 + 1 {
            return Err(StoreError::Corrupt(format!("stream ids jump from {} to {id}", names.len())));
        }
        names.push(row.get(1)?);
    }
    Ok(())
}

/// One event from its decoded record.
fn to_event(position: u64, stream: String, r: &record::Record<'_>) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position,
        stream,
        version: r.version,
        event_id: EventId(uuid::Uuid::from_bytes(r.event_id)),
        event_type: r.event_type.to_string(),
        schema_version: r.schema_version,
        business_date: r.business_date,
        recorded_at: micros(r.recorded_at_micros)?,
        payload: Payload::from_text(r.payload),
        metadata: domain::CommandMeta {
            command_id: CommandId(uuid::Uuid::from_bytes(r.command_id)),
            actor: r.actor.to_string(),
            correlation_id: domain::CorrelationId(uuid::Uuid::from_bytes(r.correlation_id)),
            causation_id: r.causation_id.map(|c| EventId(uuid::Uuid::from_bytes(c))),
        },
        hash: r.hash,
    })
}

/// The columns of an event row (`position, record`), the record decoded.
fn columns<'a>(r: &'a rusqlite::Row<'_>) -> Result<(u64, record::Record<'a>), StoreError> {
    let position: u64 = r.get(0)?;
    let blob = r.get_ref(1)?.as_blob().ok();
    let decoded = blob
        .and_then(record::decode)
        .ok_or_else(|| StoreError::Corrupt(format!("event at position {position}: unreadable record")))?;
    Ok((position, decoded))
}

const SELECT_EVENT: &str = "SELECT position, record FROM events";

impl ReadConn {
    fn read_all(&mut self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("{SELECT_EVENT} WHERE position > ?1 ORDER BY position LIMIT ?2"))?;
        let mut rows = stmt.query(params![after, limit as u64])?;
        let mut out = Vec::with_capacity(limit.min(16_384));
        while let Some(row) = rows.next()? {
            let (position, r) = columns(row)?;
            let index = (r.stream_id as usize).wrapping_sub(1);
            if index >= self.names.len() {
                load_names(&self.conn, &mut self.names)?;
            }
            let stream = self.names.get(index).ok_or_else(|| {
                StoreError::Corrupt(format!("event at position {position}: unknown stream id {}", r.stream_id))
            })?;
            out.push(to_event(position, stream.clone(), &r)?);
        }
        Ok(out)
    }

    /// Follows the stream's links back from its last event down to `version`.
    fn read_stream_from(&mut self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let tx = self.conn.unchecked_transaction()?; // one snapshot for the whole walk
        let last: Option<u64> = tx
            .prepare_cached("SELECT last_position FROM streams WHERE name = ?1")?
            .query_row([stream], |r| r.get(0))
            .optional()?;
        let mut out = Vec::new();
        let mut next = last.unwrap_or(0);
        let mut stmt = tx.prepare_cached(&format!("{SELECT_EVENT} WHERE position = ?1"))?;
        while next != 0 {
            let mut rows = stmt.query([next])?;
            let Some(row) = rows.next()? else {
                return Err(StoreError::Corrupt(format!("stream {stream} links to position {next}, which is missing")));
            };
            let (position, r) = columns(row)?;
            if r.version < version {
                break;
            }
            next = if r.version <= 1 { 0 } else { r.previous };
            out.push(to_event(position, stream.to_string(), &r)?);
        }
        out.reverse();
        Ok(out)
    }
}

/// Verifies a SQLite log file: every event's hash, every stream's chain and links, the
/// whole-log chain and the positions. Opens the file read-only; never writes.
pub fn verify(path: &Path, anchor: Option<(u64, ChainHash)>) -> Result<Verification, StoreError> {
    if !path.exists() {
        return Err(StoreError::Backend(format!("no event log at {}", path.display())));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let mut verifier = Verifier::new(true);
    if let Some((position, hash)) = anchor {
        verifier = verifier.expecting(position, hash);
    }
    if file_format(&conn)? == 1 {
        legacy::verify(&conn, &mut verifier)?;
        return Ok(verifier.finish());
    }
    // One snapshot for the streams and the events, even while a writer appends.
    let snapshot = conn.unchecked_transaction()?;
    // Stream id → (name, the position its row says the stream ends at).
    let mut names: HashMap<i64, (String, u64)> = HashMap::new();
    {
        let mut stmt = snapshot.prepare("SELECT id, name, last_position FROM streams")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            names.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
    }
    // The position and version of each stream's last event so far: what the next one
    // must link to.
    let mut links: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut stmt = conn.prepare(&format!("{SELECT_EVENT} ORDER BY position"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let checked = columns(row).and_then(|(position, r)| {
            let stream = names.get(&r.stream_id).map(|(name, _)| name.clone()).ok_or_else(|| {
                StoreError::Corrupt(format!("event at position {position}: unknown stream id {}", r.stream_id))
            })?;
            Ok((to_event(position, stream, &r)?, r.log_hash, r.stream_id, r.previous))
        });
        match checked {
            Ok((event, log, stream_id, previous)) => {
                if !verifier.check(&event, Some(&log)) {
                    break;
                }
                if links.insert(stream_id, (event.position, event.version)).map_or(0, |(p, _)| p) != previous {
                    let reason = "the link to the previous event of its stream is wrong: reading the stream would skip or repeat events";
                    verifier.broken(event.position, &event.stream, event.version, reason);
                    break;
                }
            }
            Err(e) => {
                verifier.broken(row.get(0).unwrap_or(0), "", 0, e.to_string());
                break;
            }
        }
    }
    if !verifier.is_broken() {
        // Where each stream's row says it ends is where reading it starts.
        let mut ends: Vec<_> = names.iter().map(|(id, (name, end))| (*end, name, links.get(id).copied())).collect();
        ends.sort();
        if let Some((end, name, last)) = ends.into_iter().find(|(end, _, last)| last.map_or(0, |(p, _)| p) != *end) {
            let (position, version) = last.unwrap_or((end, 0));
            let reason = format!(
                "its stream's row says the stream ends at position {end}: reading the stream would miss or invent events"
            );
            verifier.broken(position, name, version, reason);
        }
    }
    Ok(verifier.finish())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        // Checked here, by the caller's thread: the writer's time is the log's throughput.
        check_request(&request)?;
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.shared.writer.lock().expect("writer handle poisoned");
            let writer =
                writer.as_ref().ok_or_else(|| StoreError::Backend("the log is open for reading only".into()))?;
            writer
                .send(WriteJob { request, reply })
                .map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        }
        let (result, request) = answer.await.map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        drop(request);
        result
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_from(stream, 1).await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        match self.shared.format {
            Format::Legacy => self.read(move |c| legacy::read_stream_from(&c.conn, &stream, version)).await,
            Format::Packed => self.read(move |c| c.read_stream_from(&stream, version)).await,
        }
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        match self.shared.format {
            Format::Legacy => self.read(move |c| legacy::read_all(&c.conn, after, limit)).await,
            Format::Packed => self.read(move |c| c.read_all(after, limit)).await,
        }
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        if self.shared.format == Format::Legacy {
            return self.read(move |c| legacy::find_command(&c.conn, command_id)).await;
        }
        let writing = self.shared.writer_thread.lock().expect("writer handle poisoned").is_some();
        let known = move |shared: &Shared| {
            shared.commands.read().expect("command ids poisoned").first_position.get(&command_id).copied()
        };
        // The writer keeps the map of a log it writes; a read-only store catches up first.
        let first = if writing { known(&self.shared) } else { None };
        if writing && first.is_none() {
            return Ok(None);
        }
        let shared = self.shared.clone();
        self.read(move |c| {
            let first = match first {
                Some(first) => Some(first),
                None => {
                    shared.commands.write().expect("command ids poisoned").catch_up(&c.conn)?;
                    known(&shared)
                }
            };
            let Some(first) = first else { return Ok(None) };
            Ok(stored_command(&c.conn, first)?.filter(|(id, _)| *id == command_id).map(|(_, record)| record))
        })
        .await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }
}
