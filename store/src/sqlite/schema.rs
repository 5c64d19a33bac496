//! The file: its schema (one table of events, one of stream names, append-only
//! triggers), its format number, and the pragmas of the writer and of the readers.

use super::*;

/// The current log format (`PRAGMA user_version`).
pub(super) const FORMAT: i64 = 3;

pub(super) const SCHEMA: &str = "
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

pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
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
pub(super) fn tune_reads(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    Ok(())
}

/// A read-only connection, as every reader gets one: without SQLite's mutexes (each
/// connection is used by one thread at a time), with a larger cache and memory-mapped
/// reads. (A replay through a plain read-only connection ran 15% slower: 9% of it in
/// mutex calls, more in `pread` copies.)
pub(super) fn read_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    tune_reads(&conn)?;
    Ok(conn)
}

/// The file's format: 0 is a new file, unless format 1 created its tables without
/// getting to set its version.
pub(super) fn file_format(conn: &Connection) -> Result<i64, StoreError> {
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
pub(super) fn prepare_schema(conn: &mut Connection) -> Result<(), StoreError> {
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
        other => Err(StoreError::backend(format!("the log has format {other}, newer than this tracker's ({FORMAT})"))),
    }
}
