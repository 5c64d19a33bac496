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

mod event_store;
pub(crate) mod format2;
mod index;
pub(crate) mod legacy;
mod read;
pub(crate) mod record;
pub mod rewrite;
mod schema;
#[cfg(test)]
mod tests;
mod verify;
mod writer;

use index::*;
use read::*;
use schema::*;
pub use verify::verify;
pub use writer::WriterStats;
use writer::*;

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

/// SQLite's errors keep their type as the source of a [`StoreError::Backend`].
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::backend_from(e)
    }
}

/// The most appends one transaction takes; bounds the latency of a group.
const MAX_GROUP: usize = 256;

/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

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

impl SqliteStore {
    /// Opens (or creates) the log at `path`; creates the parent directory if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::backend_context(format!("cannot create {}", parent.display()), e))?;
        }
        // One writing process per log: the writer trusts what it remembers of each stream.
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::backend_context(format!("cannot open {}", lock_path.display()), e))?;
        lock.try_lock().map_err(|_| {
            StoreError::backend(format!("{} is already open for writing by another process", path.display()))
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
                    .ok_or_else(|| StoreError::corrupt("the last event's record is unreadable"))?
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
            .map_err(|e| StoreError::backend_context("cannot start the writer", e))?;
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
            return Err(StoreError::backend(format!("no event log at {}", path.display())));
        }
        let conn = read_connection(&path)?;
        let format = match file_format(&conn)? {
            1 => Format::Legacy,
            2 => Format::Packed2,
            FORMAT => Format::Packed,
            other => {
                return Err(StoreError::backend(format!("the log has format {other}, not one this tracker reads")));
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
            let writer = writer.as_ref().ok_or_else(|| StoreError::backend("the log is open for reading only"))?;
            writer.send(WriteJob { unit, reply }).map_err(|_| StoreError::backend("the log writer has stopped"))?;
        }
        let (result, unit) = answer.await.map_err(|_| StoreError::backend("the log writer has stopped"))?;
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
        tokio::task::spawn_blocking(run).await.map_err(|e| StoreError::backend_context("read task failed", e))?
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
