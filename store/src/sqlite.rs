//! The embedded SQLite backend, the default.
//!
//! One writer thread owns the only write connection and commits appends in groups: every
//! write waiting when a transaction starts joins it, each with its own checks and its own
//! answer, and the whole group costs one fsync (WAL, `synchronous=FULL`). A write is a
//! unit of one append, or of the several of an `append_all`: all of a unit's checks pass
//! before any of its events is inserted, so a refused unit leaves nothing in the group's
//! transaction. A write is answered only after its commit returned, so an acknowledged
//! event is on disk. Reads use a small pool of read-only connections that WAL lets run beside the
//! writer.
//!
//! Log format 3 writes one row per event and nothing else (bar a stream's name, once):
//! an event is a row keyed by its position holding a packed [`record`], with its
//! stream's id, the position of the stream's previous event (streams are read by
//! following these links back from the stream's last event) and, on an append's first
//! event, the command's fingerprint and event count. Rows go at the end of one B-tree,
//! and the pages a commit writes are what bounds throughput: any index keyed by stream
//! or by a random command id would dirty one page per append (a group of 64 appends to
//! 64 streams would write ~170 pages instead of ~15), and format 2's rows of commands
//! and of stream ends cost a fifth of the appends per second. So where each command
//! starts and where each stream ends are kept in memory ([`Index`]), read from the log
//! at open (one pass, as fast as a replay) and kept by the writer; uniqueness of command
//! ids is the writer's: it is the only writer (a lock file keeps other processes out).
//! Older logs are migrated in place by the first writer that opens them; read-only tools
//! read them as they are ([`legacy`] for format 1, [`format2`]).

pub(crate) mod format2;
pub(crate) mod legacy;
pub(crate) mod record;
pub mod rewrite;

use crate::chain::{self, ChainHash};
use crate::{
    AppendOutcome, AppendRequest, CommandRecord, EventStore, Payload, RecordedEvent, StoreError, Verification,
    Verifier, check_expected, check_requests, judge_applied,
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
const FORMAT: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE streams (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE
) STRICT;
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    -- Every other field, packed (see sqlite/record.rs), among them the stream's id, the
    -- position of the stream's previous event, and the command of an append's first event.
    record         BLOB    NOT NULL
) STRICT;
CREATE TRIGGER events_are_never_updated BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never updated'); END;
CREATE TRIGGER events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: events are never deleted'); END;
CREATE TRIGGER streams_are_never_renamed BEFORE UPDATE OF id, name ON streams
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: streams are never renamed'); END;
CREATE TRIGGER streams_are_never_deleted BEFORE DELETE ON streams
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: streams are never deleted'); END;
PRAGMA user_version = 3;
";

/// The answer to a unit, with its requests handed back: the caller frees them, on the
/// thread that allocated them, not the writer (which measured 5% of its time in `free`).
type Reply = (Result<Vec<AppendOutcome>, StoreError>, Vec<AppendRequest>);

/// One unit of writing: the request of an `append`, or the requests of an `append_all`,
/// written all or none inside the group that takes it.
struct WriteJob {
    unit: Vec<AppendRequest>,
    reply: oneshot::Sender<Reply>,
}

/// Counters of the writer, for benchmarks and operators: how well appends are grouped
/// (`appends` counts requests: an `append_all` of three streams counts three).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub groups: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
}

/// Which layout the file has. Older formats are opened read-only (a writer migrates them
/// at open).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    /// Format 1: one column per field.
    Legacy,
    /// Format 2: packed records, with tables of commands and of stream ends.
    Packed2,
    Packed,
}

/// Where each command starts and where each stream ends: the log's only lookups by key,
/// kept in memory so that appends write no index (see the module doc).
#[derive(Default)]
struct Index {
    /// Command id → position of its append's first event.
    commands: HashMap<CommandId, u64>,
    /// Stream id → position of its last event.
    ends: HashMap<i64, u64>,
    /// The events are read up to this position.
    loaded_to: u64,
}

impl Index {
    /// Reads the events recorded since the last call: one pass over the log at open, only
    /// the new ones afterwards. Run it inside a transaction (one snapshot of the log).
    fn catch_up(&mut self, conn: &Connection, format: Format) -> Result<(), StoreError> {
        if format == Format::Packed2 {
            format2::load_commands(conn, self.loaded_to, &mut self.commands)?;
        }
        let mut stmt = conn.prepare_cached(&format!("{SELECT_EVENT} WHERE position > ?1 ORDER BY position"))?;
        let mut rows = stmt.query([self.loaded_to])?;
        while let Some(row) = rows.next()? {
            let (position, r) = columns(row)?;
            self.ends.insert(r.stream_id, position);
            if let record::Append::Starts { .. } = r.append {
                self.commands.insert(CommandId(uuid::Uuid::from_bytes(r.command_id)), position);
            }
            self.loaded_to = position;
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
    index: Arc<RwLock<Index>>,
    head: Arc<watch::Sender<u64>>,
    /// Armed by [`SqliteStore::fail_next_write_after`]; the writer takes it.
    #[cfg(any(test, feature = "fault-injection"))]
    fault: Fault,
}

/// A failure the writer is told to make: after this many events of the next unit it
/// inserts.
#[cfg(any(test, feature = "fault-injection"))]
type Fault = Arc<Mutex<Option<usize>>>;

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

/// A read-only connection, as every reader gets one: without SQLite's mutexes (each
/// connection is used by one thread at a time), with a larger cache and memory-mapped
/// reads. (A replay through a plain read-only connection ran 15% slower: 9% of it in
/// mutex calls, more in `pread` copies.)
fn read_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    tune_reads(&conn)?;
    Ok(conn)
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
        2 => format2::migrate(conn),
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
        let started = std::time::Instant::now();
        let mut index = Index::default();
        index.catch_up(&conn, Format::Packed)?;
        tracing::debug!(events = index.loaded_to, elapsed = ?started.elapsed(), "read the log's commands and stream ends");
        let index = Arc::new(RwLock::new(index));
        let head = Arc::new(watch::Sender::new(head_position));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            head: Head { position: head_position, log_hash: head_log_hash },
            tips: HashMap::new(),
            index: index.clone(),
            record: Vec::with_capacity(256),
            unit_tips: Vec::new(),
            #[cfg(any(test, feature = "fault-injection"))]
            fault: Fault::default(),
        };
        #[cfg(any(test, feature = "fault-injection"))]
        let fault = writer.fault.clone();
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
                index,
                head,
                #[cfg(any(test, feature = "fault-injection"))]
                fault,
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
        let conn = read_connection(&path)?;
        let format = match file_format(&conn)? {
            1 => Format::Legacy,
            2 => Format::Packed2,
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
                index: Arc::default(),
                head: Arc::new(watch::Sender::new(head_position)),
                #[cfg(any(test, feature = "fault-injection"))]
                fault: Fault::default(),
            }),
        })
    }

    /// Groups committed and appends in them since the log was opened.
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.shared.stats.groups.load(Relaxed), self.shared.stats.appends.load(Relaxed))
    }

    /// Makes the writer fail the next unit it writes (an `append` or an `append_all`) after
    /// inserting `events` of its events (all of them, if it has fewer), as a failing disk
    /// would: the group's transaction is rolled back and every append in it answered with
    /// an error. For tests of what callers do when a write fails half way; only with the
    /// `fault-injection` feature.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_write_after(&self, events: usize) {
        *self.shared.fault.lock().expect("fault poisoned") = Some(events);
    }

    /// Sends a unit to the writer and waits for its answer (once durable).
    async fn write(&self, unit: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.shared.writer.lock().expect("writer handle poisoned");
            let writer =
                writer.as_ref().ok_or_else(|| StoreError::Backend("the log is open for reading only".into()))?;
            writer
                .send(WriteJob { unit, reply })
                .map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        }
        let (result, unit) = answer.await.map_err(|_| StoreError::Backend("the log writer has stopped".into()))?;
        drop(unit);
        result
    }

    /// Whether this process writes the log (and so keeps its index current).
    fn writing(&self) -> bool {
        self.shared.writer_thread.lock().expect("writer handle poisoned").is_some()
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
                None => ReadConn { conn: read_connection(&shared.path)?, names: Vec::new() },
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
        let (units, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.unit, j.reply)).unzip();
        stats.groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let appends = units.iter().map(Vec::len).sum::<usize>();
        stats.appends.fetch_add(appends as u64, std::sync::atomic::Ordering::Relaxed);
        let before = writer.head.position;
        let results = match writer.write_group(&units) {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "a group of appends failed to commit; none was written");
                units.iter().map(|_| Err(StoreError::Backend(e.to_string()))).collect()
            }
        };
        if writer.head.position != before {
            notify.send_replace(writer.head.position);
        }
        for ((reply, unit), result) in replies.into_iter().zip(units).zip(results) {
            let _ = reply.send((result, unit)); // the caller may have gone; the write stands
        }
    }
}

/// Why a group could not be written as one transaction.
enum GroupFailure {
    /// An insert broke a constraint: the group is written again one unit per
    /// transaction, so that only the faulty unit fails.
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
    index: Arc<RwLock<Index>>,
    /// Reused for every packed record.
    record: Vec<u8>,
    /// Reused for every unit: the tip of each of its streams once checked.
    unit_tips: Vec<Option<Tip>>,
    #[cfg(any(test, feature = "fault-injection"))]
    fault: Fault,
}

/// What a unit's answer is inside a group: its outcomes, or why it was refused (the rest
/// of the group goes on).
type UnitResult = Result<Vec<AppendOutcome>, StoreError>;

/// What a group has written so far, applied to the writer's memory once it is committed.
struct Written<'r> {
    head: Head,
    recorded_at: DateTime<Utc>,
    /// Where the streams the group wrote end now.
    moved: HashMap<&'r str, Tip>,
    /// The commands the group applied, with their fingerprints and answers.
    applied: HashMap<CommandId, (&'r str, AppendOutcome)>,
}

/// Inserts event rows. With a fault armed (tests only), fails part way through a unit.
struct Inserter<'c> {
    statement: rusqlite::CachedStatement<'c>,
    #[cfg(any(test, feature = "fault-injection"))]
    fault: &'c Mutex<Option<usize>>,
    /// Events the current unit may still insert before the armed fault strikes.
    #[cfg(any(test, feature = "fault-injection"))]
    left: Option<usize>,
}

impl Inserter<'_> {
    fn insert(&mut self, position: u64, record: &[u8]) -> Result<(), GroupFailure> {
        #[cfg(any(test, feature = "fault-injection"))]
        match self.left {
            Some(0) => return Err(Self::injected()),
            Some(n) => self.left = Some(n - 1),
            None => {}
        }
        self.statement.execute(params![position, record])?;
        Ok(())
    }

    /// A unit passed its checks and is about to be inserted.
    fn begin_unit(&mut self) {
        #[cfg(any(test, feature = "fault-injection"))]
        {
            self.left = self.fault.lock().expect("fault poisoned").take();
        }
    }

    /// A unit is inserted.
    fn end_unit(&mut self) -> Result<(), GroupFailure> {
        #[cfg(any(test, feature = "fault-injection"))]
        if self.left.take().is_some() {
            return Err(Self::injected());
        }
        Ok(())
    }

    #[cfg(any(test, feature = "fault-injection"))]
    fn injected() -> GroupFailure {
        GroupFailure::Fatal(StoreError::Backend("injected fault: the write failed part way".into()))
    }
}

const INSERT_EVENT: &str = "INSERT INTO events (position, record) VALUES (?1, ?2)";

impl Writer {
    /// Writes a group in one transaction; on a constraint failure, one unit at a time.
    fn write_group(&mut self, units: &[Vec<AppendRequest>]) -> Result<Vec<UnitResult>, StoreError> {
        match self.try_group(units) {
            Ok(results) => Ok(results),
            Err(GroupFailure::Fatal(e)) => Err(e),
            Err(GroupFailure::Constraint) if units.len() == 1 => {
                let ids = units[0].iter().map(|r| r.command_id.to_string()).collect::<Vec<_>>().join(", ");
                Ok(vec![Err(StoreError::Backend(format!("command {ids} breaks a constraint of the log")))])
            }
            Err(GroupFailure::Constraint) => {
                let mut results = Vec::with_capacity(units.len());
                for unit in units {
                    results.extend(self.write_group(std::slice::from_ref(unit))?);
                }
                Ok(results)
            }
        }
    }

    fn try_group(&mut self, units: &[Vec<AppendRequest>]) -> Result<Vec<UnitResult>, GroupFailure> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut written =
            Written { head: self.head, recorded_at: crate::now(), moved: HashMap::new(), applied: HashMap::new() };
        let mut results = Vec::with_capacity(units.len());
        {
            let known = self.index.read().expect("log index poisoned");
            let mut inserter = Inserter {
                statement: tx.prepare_cached(INSERT_EVENT)?,
                #[cfg(any(test, feature = "fault-injection"))]
                fault: &self.fault,
                #[cfg(any(test, feature = "fault-injection"))]
                left: None,
            };
            for unit in units {
                let answered = check_unit(&tx, &known, &mut self.tips, &written, unit, &mut self.unit_tips)?;
                results.push(match answered {
                    Some(result) => result,
                    None => {
                        inserter.begin_unit();
                        let mut outcomes = Vec::with_capacity(unit.len());
                        for (request, &tip) in unit.iter().zip(&self.unit_tips) {
                            let tip = match tip {
                                Some(tip) => tip,
                                None => new_stream(&tx, &request.stream)?,
                            };
                            let (outcome, tip, head) = insert_append(
                                &mut inserter,
                                &mut self.record,
                                request,
                                tip,
                                written.head,
                                written.recorded_at,
                            )?;
                            written.head = head;
                            written.moved.insert(&request.stream, tip);
                            written.applied.insert(request.command_id, (&request.fingerprint, outcome.clone()));
                            outcomes.push(outcome);
                        }
                        inserter.end_unit()?;
                        Ok(outcomes)
                    }
                });
            }
        }
        tx.commit()?;
        let Written { head, moved, applied, .. } = written;
        self.head = head;
        // Before the answers go out: an acknowledged append is found by every later read.
        let mut index = self.index.write().expect("log index poisoned");
        for (stream, tip) in moved {
            index.ends.insert(tip.stream_id, tip.position);
            self.tips.insert(stream.to_string(), tip);
        }
        for (command_id, (_, outcome)) in applied {
            index.commands.insert(command_id, outcome.first_position);
        }
        index.loaded_to = head.position;
        Ok(results)
    }
}

/// Checks every part of a unit against the log and what the group wrote before it, before
/// any of its events is inserted: its command ids (through the index), then its expected
/// versions (through the tips). Answers `None` to write it, with each request's stream tip
/// in `checked` (`None` for a new stream), or the unit's answer: the stored outcomes of a
/// retry, or its refusal.
fn check_unit(
    tx: &Connection,
    known: &Index,
    tips: &mut HashMap<String, Tip>,
    written: &Written<'_>,
    unit: &[AppendRequest],
    checked: &mut Vec<Option<Tip>>,
) -> Result<Option<UnitResult>, GroupFailure> {
    let seen =
        |r: &AppendRequest| written.applied.contains_key(&r.command_id) || known.commands.contains_key(&r.command_id);
    // Almost always none was seen: no stored command is read.
    if unit.iter().any(seen) {
        let mut found = Vec::with_capacity(unit.len());
        for request in unit {
            found.push(match written.applied.get(&request.command_id) {
                Some((fingerprint, outcome)) => {
                    Some(CommandRecord { fingerprint: fingerprint.to_string(), outcome: outcome.clone() })
                }
                None => match known.commands.get(&request.command_id) {
                    Some(&first) => stored_command(tx, Format::Packed, first)?.map(|(_, record)| record),
                    None => None,
                },
            });
        }
        match judge_applied(unit, found) {
            Ok(Some(outcomes)) => return Ok(Some(Ok(outcomes))),
            Ok(None) => {}
            Err(e) => return Ok(Some(Err(e))),
        }
    }
    checked.clear();
    for request in unit {
        let tip = match written.moved.get(request.stream.as_str()).or_else(|| tips.get(&request.stream)) {
            Some(tip) => Some(*tip),
            None => {
                // Committed state only (the group's own writes are in `moved`): cached as is.
                let tip = stream_tip(tx, known, &request.stream)?;
                if let Some(tip) = tip {
                    tips.insert(request.stream.clone(), tip);
                }
                tip
            }
        };
        if let Err(e) = check_expected(&request.stream, request.expected, tip.map_or(0, |t| t.version)) {
            return Ok(Some(Err(e)));
        }
        checked.push(tip);
    }
    Ok(None)
}

/// The id of the stream called `stream`, if it has one.
fn stream_id(conn: &Connection, stream: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn.prepare_cached("SELECT id FROM streams WHERE name = ?1")?.query_row([stream], |r| r.get(0)).optional()?)
}

/// Where a stream ends, from the index and the file; `None` for a stream without events.
fn stream_tip(conn: &Connection, index: &Index, stream: &str) -> Result<Option<Tip>, StoreError> {
    let Some(stream_id) = stream_id(conn, stream)? else { return Ok(None) };
    let position = *index
        .ends
        .get(&stream_id)
        .ok_or_else(|| StoreError::Corrupt(format!("stream {stream} has a name in the log but no event")))?;
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT record FROM events WHERE position = ?1")?
        .query_row([position], |r| r.get(0))
        .optional()?;
    let r = blob.as_deref().and_then(record::decode).ok_or_else(|| {
        StoreError::Corrupt(format!("the last event of {stream} (position {position}) is missing or unreadable"))
    })?;
    Ok(Some(Tip { stream_id, version: r.version, hash: r.hash, position }))
}

/// Registers a stream about to get its first event.
fn new_stream(conn: &Connection, stream: &str) -> Result<Tip, GroupFailure> {
    conn.prepare_cached("INSERT INTO streams (name) VALUES (?1)")?.execute([stream])?;
    Ok(Tip { stream_id: conn.last_insert_rowid(), version: 0, hash: ChainHash::GENESIS, position: 0 })
}

/// Inserts an append's events; the checks are already done.
fn insert_append(
    insert: &mut Inserter<'_>,
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
        let hash = chain::event_hash(&previous, &e.hashed(&request.stream, version, recorded_at_micros));
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
                append: match i {
                    0 => record::Append::Starts {
                        events: request.events.len() as u32,
                        fingerprint: record::Fingerprint::new(&request.fingerprint),
                    },
                    _ => record::Append::Continues,
                },
                event_type: &e.event_type,
                actor: &m.actor,
                payload: e.payload.as_str(),
            },
            record,
        );
        insert.insert(position, &record[..])?;
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

/// The command whose first event is at `first_position`, with its answer: read from that
/// event's append mark and from the append's last event.
fn stored_command(
    conn: &Connection,
    format: Format,
    first_position: u64,
) -> Result<Option<(CommandId, CommandRecord)>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("the command recorded at position {first_position} is unreadable"));
    let mut read = conn.prepare_cached("SELECT record FROM events WHERE position = ?1")?;
    let Some(first) = read.query_row([first_position], |r| r.get::<_, Vec<u8>>(0)).optional()? else {
        return Ok(None);
    };
    let first = record::decode(&first).ok_or_else(corrupt)?;
    let (id, fingerprint, last_position) = match (format, first.append) {
        (Format::Packed, record::Append::Starts { events, fingerprint }) => {
            (first.command_id, fingerprint.text(), first_position + u64::from(events.max(1)) - 1)
        }
        (Format::Packed2, _) => match format2::command_at(conn, first_position)? {
            Some(found) => found,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let last_version = if last_position == first_position {
        first.version
    } else {
        let blob = read.query_row([last_position], |r| r.get::<_, Vec<u8>>(0)).optional()?.ok_or_else(corrupt)?;
        record::decode(&blob).ok_or_else(corrupt)?.version
    };
    let id = uuid::Uuid::from_bytes(id);
    let stream: String = conn
        .prepare_cached("SELECT name FROM streams WHERE id = ?1")?
        .query_row([first.stream_id], |r| r.get(0))
        .optional()?
        .ok_or_else(corrupt)?;
    let outcome = AppendOutcome {
        stream,
        first_version: first.version,
        last_version,
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

    /// Follows the stream's links back from its last event down to `version`, in one
    /// snapshot. The index of a log this process writes is current; another process's
    /// log is caught up first, in the walk's snapshot.
    fn read_stream_from(
        &mut self,
        stream: &str,
        version: u64,
        index: &RwLock<Index>,
        format: Format,
        writing: bool,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (tx, last) = if writing {
            // The index is read before the snapshot starts: it never names an event the
            // snapshot lacks (it moves only after a commit).
            let Some(id) = stream_id(&self.conn, stream)? else { return Ok(Vec::new()) };
            let last = index.read().expect("log index poisoned").ends.get(&id).copied();
            (self.conn.unchecked_transaction()?, last)
        } else {
            let tx = self.conn.unchecked_transaction()?;
            let mut index = index.write().expect("log index poisoned");
            index.catch_up(&tx, format)?;
            let last = stream_id(&tx, stream)?.and_then(|id| index.ends.get(&id).copied());
            (tx, last)
        };
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
/// whole-log chain and the positions, and (format 3) that every append is whole and
/// every command id used once. Opens the file read-only; never writes.
pub fn verify(path: &Path, anchor: Option<(u64, ChainHash)>) -> Result<Verification, StoreError> {
    if !path.exists() {
        return Err(StoreError::Backend(format!("no event log at {}", path.display())));
    }
    let conn = read_connection(path)?;
    let mut verifier = Verifier::new(true);
    if let Some((position, hash)) = anchor {
        verifier = verifier.expecting(position, hash);
    }
    let format = match file_format(&conn)? {
        1 => {
            legacy::verify(&conn, &mut verifier)?;
            return Ok(verifier.finish());
        }
        2 => Format::Packed2,
        FORMAT => Format::Packed,
        other => return Err(StoreError::Backend(format!("the log has format {other}, not one this tracker reads"))),
    };
    // One snapshot for the streams and the events, even while a writer appends.
    let snapshot = conn.unchecked_transaction()?;
    // Stream id → (name, in format 2 the position its row says the stream ends at).
    let mut names: HashMap<i64, (String, Option<u64>)> = HashMap::new();
    {
        let ends = if format == Format::Packed2 { "last_position" } else { "NULL" };
        let mut stmt = snapshot.prepare(&format!("SELECT id, name, {ends} FROM streams"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            names.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
    }
    // The position and version of each stream's last event so far: what the next one
    // must link to.
    let mut links: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut appends = AppendCheck::default();
    let mut last_event = None;
    let mut stmt = conn.prepare(&format!("{SELECT_EVENT} ORDER BY position"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let checked = columns(row).and_then(|(position, r)| {
            let stream = names.get(&r.stream_id).map(|(name, _)| name.clone()).ok_or_else(|| {
                StoreError::Corrupt(format!("event at position {position}: unknown stream id {}", r.stream_id))
            })?;
            let mark = match r.append {
                record::Append::Unmarked => None,
                record::Append::Continues => Some(0),
                record::Append::Starts { events, .. } => Some(events),
            };
            Ok((to_event(position, stream, &r)?, r.log_hash, r.stream_id, r.previous, mark))
        });
        match checked {
            Ok((event, log, stream_id, previous, mark)) => {
                if !verifier.check(&event, Some(&log)) {
                    break;
                }
                if links.insert(stream_id, (event.position, event.version)).map_or(0, |(p, _)| p) != previous {
                    let reason = "the link to the previous event of its stream is wrong: reading the stream would skip or repeat events";
                    verifier.broken(event.position, &event.stream, event.version, reason);
                    break;
                }
                if format == Format::Packed
                    && let Err(reason) = appends.next(&event, stream_id, mark)
                {
                    verifier.broken(event.position, &event.stream, event.version, reason);
                    break;
                }
                last_event = Some((event.position, event.stream, event.version));
            }
            Err(e) => {
                verifier.broken(row.get(0).unwrap_or(0), "", 0, e.to_string());
                break;
            }
        }
    }
    if !verifier.is_broken()
        && let (Some((command, _, left)), Some((position, stream, version))) = (appends.open, &last_event)
    {
        let reason = format!(
            "the log ends inside the append of command {}, {left} event(s) short: its end was cut off",
            uuid::Uuid::from_bytes(command)
        );
        verifier.broken(*position, stream, *version, reason);
    }
    if !verifier.is_broken() && format == Format::Packed2 {
        // Where each stream's row says it ends is where reading it starts.
        let mut ends: Vec<_> =
            names.iter().map(|(id, (name, end))| (end.unwrap_or(0), name, links.get(id).copied())).collect();
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

/// Format 3's append marks, checked in log order: an append's events are contiguous, of
/// one stream and one command, as many as its first event says; no command id is used
/// twice. (What `find_command` and a restart's index rely on.)
#[derive(Default)]
struct AppendCheck {
    /// The append under way: its command, its stream, the events it still lacks.
    open: Option<([u8; 16], i64, u32)>,
    /// Command id → position of its first event.
    seen: HashMap<[u8; 16], u64>,
}

impl AppendCheck {
    /// `mark`: `None` for a record without one, `Some(0)` for an append's next event,
    /// `Some(n)` for the first of `n`.
    fn next(&mut self, event: &RecordedEvent, stream_id: i64, mark: Option<u32>) -> Result<(), String> {
        let command = *event.metadata.command_id.0.as_bytes();
        match (mark, self.open) {
            (None, _) => Err("its record has no append mark (a format 2 record in a format 3 log)".into()),
            (Some(0), None) => Err(
                "it continues an append that is not under way: the event that began its append is missing or was altered"
                    .into(),
            ),
            (Some(0), Some((open, open_stream, left))) => {
                if open != command || open_stream != stream_id {
                    return Err(format!(
                        "it comes inside the append of command {}, {left} event(s) short, but belongs to another \
                         command or stream",
                        uuid::Uuid::from_bytes(open)
                    ));
                }
                self.open = (left > 1).then_some((open, open_stream, left - 1));
                Ok(())
            }
            (Some(_), Some((open, _, left))) => Err(format!(
                "it begins an append while the append of command {} is {left} event(s) short",
                uuid::Uuid::from_bytes(open)
            )),
            (Some(events), None) => {
                if let Some(first) = self.seen.insert(command, event.position) {
                    return Err(format!(
                        "its command {} was already applied at position {first}: a command id is used once",
                        event.metadata.command_id
                    ));
                }
                self.open = (events > 1).then_some((command, stream_id, events - 1));
                Ok(())
            }
        }
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        self.write(requests).await
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_from(stream, 1).await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        if self.shared.format == Format::Legacy {
            return self.read(move |c| legacy::read_stream_from(&c.conn, &stream, version)).await;
        }
        let shared = self.shared.clone();
        let writing = self.writing();
        self.read(move |c| c.read_stream_from(&stream, version, &shared.index, shared.format, writing)).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        match self.shared.format {
            Format::Legacy => self.read(move |c| legacy::read_all(&c.conn, after, limit)).await,
            Format::Packed2 | Format::Packed => self.read(move |c| c.read_all(after, limit)).await,
        }
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        if self.shared.format == Format::Legacy {
            return self.read(move |c| legacy::find_command(&c.conn, command_id)).await;
        }
        // The writer keeps the index of a log it writes; a read-only store catches up first.
        let writing = self.writing();
        let first = if writing {
            match self.shared.index.read().expect("log index poisoned").commands.get(&command_id) {
                Some(&first) => Some(first),
                None => return Ok(None),
            }
        } else {
            None
        };
        let shared = self.shared.clone();
        self.read(move |c| {
            let tx = c.conn.unchecked_transaction()?;
            let first = match first {
                Some(first) => Some(first),
                None => {
                    let mut index = shared.index.write().expect("log index poisoned");
                    index.catch_up(&tx, shared.format)?;
                    index.commands.get(&command_id).copied()
                }
            };
            let Some(first) = first else { return Ok(None) };
            let found = stored_command(&tx, shared.format, first)?;
            Ok(found.filter(|(id, _)| *id == command_id).map(|(_, record)| record))
        })
        .await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }
}

/// The writer's groups, driven directly: which units of one group are written is decided
/// unit by unit inside its transaction.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExpectedVersion::{Exact, NoStream};
    use crate::conformance::request;

    /// A writer on a new log, without its thread.
    fn writer(path: &Path) -> Writer {
        let mut conn = Connection::open(path).unwrap();
        configure(&conn).unwrap();
        prepare_schema(&mut conn).unwrap();
        Writer {
            conn,
            head: Head { position: 0, log_hash: ChainHash::GENESIS },
            tips: HashMap::new(),
            index: Arc::default(),
            record: Vec::new(),
            unit_tips: Vec::new(),
            fault: Fault::default(),
        }
    }

    fn count(path: &Path, table: &str) -> u64 {
        Connection::open(path).unwrap().query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_refused_unit_leaves_no_trace_while_the_rest_of_its_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let mut w = writer(&path);
        let refused = vec![request("g-b", NoStream, 2), request("g-a", NoStream, 1)];
        let units = [
            vec![request("g-a", NoStream, 1)],
            refused,
            vec![request("g-c", NoStream, 1), request("g-a", Exact(1), 1)],
        ];
        let results = w.write_group(&units).unwrap();
        assert_eq!(results[0].as_ref().unwrap()[0].last_position, 1);
        assert!(
            matches!(&results[1], Err(StoreError::WrongExpectedVersion { stream, actual: 1, .. }) if stream == "g-a"),
            "{:?}",
            results[1]
        );
        let last = results[2].as_ref().unwrap();
        assert_eq!((last[0].first_position, last[1].first_position, last[1].first_version), (2, 3, 2));
        drop(w);
        assert_eq!((count(&path, "events"), count(&path, "streams")), (3, 2), "no event and no name of g-b");
        let report = verify(&path, None).unwrap();
        assert!(report.is_intact(), "{report:?}");
    }

    #[test]
    fn a_unit_that_breaks_a_constraint_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let mut w = writer(&path);
        // A row at position 3 that the writer does not know of: the unit that reaches it
        // breaks the primary key, and the group is written again one unit at a time.
        w.conn.execute("INSERT INTO events (position, record) VALUES (3, X'00')", []).unwrap();
        let units = [vec![request("k-a", NoStream, 1)], vec![request("k-b", NoStream, 1), request("k-c", NoStream, 1)]];
        let results = w.write_group(&units).unwrap();
        assert_eq!(results[0].as_ref().unwrap()[0].last_position, 1);
        assert!(
            matches!(&results[1], Err(StoreError::Backend(m)) if m.contains("breaks a constraint")),
            "{:?}",
            results[1]
        );
        assert_eq!(w.head.position, 1);
        drop(w);
        assert_eq!((count(&path, "events"), count(&path, "streams")), (2, 1), "k-b was rolled back with k-c");
    }
}
