//! Log format 1 (one column per field, an index on `(stream, version)` and commands keyed
//! by their random id): read by the read-only tools on a log no writer has opened since,
//! and migrated to format 2 in place by the first writer that opens it.

use super::{micros, parse_date};
use crate::chain::ChainHash;
use crate::{AppendOutcome, CommandRecord, Payload, RecordedEvent, StoreError};
use domain::{CommandId, EventId};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema of format 1, as version 1 of the tracker created it (kept for the tests).
#[cfg(test)]
pub(crate) const SCHEMA_V1: &str = "
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

pub(crate) const SELECT_EVENT: &str =
    "SELECT position, stream, version, event_id, event_type, schema_version, business_date,
                                   recorded_at, payload, command_id, actor, correlation_id, causation_id, hash, log_hash
                            FROM events";

fn blob_uuid(bytes: &[u8]) -> Option<uuid::Uuid> {
    uuid::Uuid::from_slice(bytes).ok()
}

/// Decodes one row; the error says which column of which position is unreadable.
pub(crate) fn decode_row(r: &rusqlite::Row<'_>) -> Result<(RecordedEvent, ChainHash), StoreError> {
    let position: u64 = r.get(0)?;
    let corrupt = |what: &str| StoreError::corrupt(format!("event at position {position}: unreadable {what}"));
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
        v => Some(EventId(v.as_blob().ok().and_then(blob_uuid).ok_or_else(|| corrupt("causation id"))?)),
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
            command_id: CommandId(uuid_at(9, "command id")?),
            actor: text_at(10, "actor")?.to_string(),
            correlation_id: domain::CorrelationId(uuid_at(11, "correlation id")?),
            causation_id: causation,
        },
        hash: hash_at(13, "hash")?,
    };
    Ok((event, hash_at(14, "log hash")?))
}

pub(crate) fn read_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode_row(row)?.0);
    }
    Ok(out)
}

pub(crate) fn read_stream_from(
    conn: &Connection,
    stream: &str,
    version: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    read_rows(
        conn,
        &format!("{SELECT_EVENT} WHERE stream = ?1 AND version >= ?2 ORDER BY version"),
        params![stream, version as i64],
    )
}

pub(crate) fn read_all(conn: &Connection, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    read_rows(
        conn,
        &format!("{SELECT_EVENT} WHERE position > ?1 ORDER BY position LIMIT ?2"),
        params![after, limit as u64],
    )
}

pub(crate) fn find_command(conn: &Connection, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
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
        Ok(CommandRecord {
            fingerprint,
            outcome: AppendOutcome {
                stream,
                first_version: fv,
                last_version: lv,
                first_position: fp,
                last_position: lp,
                recorded_at: micros(at)?,
                duplicate: true,
            },
        })
    })
    .transpose()
}

/// Checks a format 1 log, row by row, with `verifier`.
pub(crate) fn verify(conn: &Connection, verifier: &mut crate::Verifier) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(&format!("{SELECT_EVENT} ORDER BY position"))?;
    let mut rows = stmt.query([])?;
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
    Ok(())
}

/// Rewrites a format 1 log in the current format, in one transaction: a crash leaves it
/// as it was. Every field and every stored hash is copied as it is, so the chains (and a
/// tampering done before) read the same afterwards; each command's fingerprint and event
/// count go into its first event's record.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "DROP TRIGGER IF EXISTS events_are_never_updated;
         DROP TRIGGER IF EXISTS events_are_never_deleted;
         ALTER TABLE events RENAME TO events_v1;
         ALTER TABLE commands RENAME TO commands_v1;",
    )?;
    tx.execute_batch(super::SCHEMA)?;
    let marks = super::format2::Marks::load(&tx, "commands_v1")?;
    let mut copied = 0u64;
    {
        // Stream name → (id, position of its last event so far).
        let mut streams: std::collections::HashMap<String, (i64, u64)> = std::collections::HashMap::new();
        let mut insert_stream = tx.prepare("INSERT INTO streams (name) VALUES (?1)")?;
        let mut insert_event = tx.prepare(super::INSERT_EVENT)?;
        let mut read =
            tx.prepare(&format!("{} ORDER BY position", SELECT_EVENT.replace("FROM events", "FROM events_v1")))?;
        let mut rows = read.query([])?;
        let mut blob = Vec::with_capacity(256);
        while let Some(row) = rows.next()? {
            let (e, log) = decode_row(row).map_err(|err| super::format2::migration_failed(err.to_string()))?;
            let (stream_id, previous) = match streams.get(&e.stream) {
                Some(&known) => known,
                None => {
                    insert_stream.execute(params![e.stream])?;
                    (tx.last_insert_rowid(), 0)
                }
            };
            let causation = e.metadata.causation_id.as_ref().map(|c| *c.0.as_bytes());
            super::record::encode(
                &super::record::Record {
                    stream_id,
                    previous,
                    version: e.version,
                    event_id: *e.event_id.0.as_bytes(),
                    command_id: *e.metadata.command_id.0.as_bytes(),
                    correlation_id: *e.metadata.correlation_id.0.as_bytes(),
                    causation_id: causation,
                    schema_version: e.schema_version,
                    business_date: e.business_date,
                    recorded_at_micros: e.recorded_at.timestamp_micros(),
                    hash: e.hash,
                    log_hash: log,
                    append: marks.at(e.position),
                    event_type: &e.event_type,
                    actor: &e.metadata.actor,
                    payload: e.payload.as_str(),
                },
                &mut blob,
            );
            insert_event.execute(params![e.position, &blob[..]])?;
            streams.insert(e.stream, (stream_id, e.position));
            copied += 1;
        }
    }
    tx.execute_batch("DROP TABLE events_v1; DROP TABLE commands_v1;")?;
    tx.commit()?;
    tracing::info!(events = copied, elapsed = ?started.elapsed(), "migrated the event log from format 1 to format 3");
    Ok(())
}
