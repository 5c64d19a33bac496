//! A copy of a log with some fields changed, chained anew: the one way a log's content
//! ever changes, for a migration that must take something out of it (the actors' names
//! written before the directory of persons). It never touches the original: it writes a
//! new file, and the caller keeps the old one (sealed by its head digest, which the copy
//! records in its last event) where it decides.
//!
//! Positions, versions, event ids, command ids, dates, recording instants, append marks
//! and fingerprints are copied as they are; only what `change` changes differs, and every
//! hash is computed again over the new content.

use super::{FORMAT, SCHEMA, configure, record};
use crate::StoreError;
use crate::chain::{self, ChainHash};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;

/// What a rewrite may change in an event.
pub struct Rewritten {
    pub actor: String,
    pub payload: String,
}

/// What a rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteReport {
    pub events: u64,
    /// Events whose actor or payload changed.
    pub changed: u64,
    /// The new file's head: position and log hash.
    pub head_position: u64,
    pub head_hash: ChainHash,
}

/// Copies the format-3 log at `from` into a new file `to`, with `change(stream, event
/// type, actor, payload)` applied to each event, in one transaction.
pub fn rewrite(
    from: &Path,
    to: &Path,
    mut change: impl FnMut(&str, &str, &str, &str) -> Rewritten,
) -> Result<RewriteReport, StoreError> {
    if to.exists() {
        return Err(StoreError::backend(format!("{} exists already: the copy goes into a new file", to.display())));
    }
    let source = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let format: i64 = source.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if format != FORMAT {
        return Err(StoreError::backend(format!(
            "the log has format {format}: open it once with this tracker (which migrates it to format {FORMAT}) first"
        )));
    }
    let mut target = Connection::open(to)?;
    configure(&target)?;
    let tx = target.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    // The same stream ids, in the same order: the records name streams by id.
    {
        let mut names = source.prepare("SELECT id, name FROM streams ORDER BY id")?;
        let mut insert = tx.prepare("INSERT INTO streams (id, name) VALUES (?1, ?2)")?;
        let mut rows = names.query([])?;
        while let Some(row) = rows.next()? {
            insert.execute(params![row.get::<_, i64>(0)?, row.get::<_, String>(1)?])?;
        }
    }
    let names: HashMap<i64, String> = source
        .prepare("SELECT id, name FROM streams")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut report = RewriteReport { events: 0, changed: 0, head_position: 0, head_hash: ChainHash::GENESIS };
    {
        let mut read = source.prepare("SELECT position, record FROM events ORDER BY position")?;
        let mut insert = tx.prepare("INSERT INTO events (position, record) VALUES (?1, ?2)")?;
        let mut rows = read.query([])?;
        let mut tips: HashMap<i64, ChainHash> = HashMap::new();
        let mut log = ChainHash::GENESIS;
        let mut buffer = Vec::with_capacity(512);
        while let Some(row) = rows.next()? {
            let position: u64 = row.get(0)?;
            let blob = row.get_ref(1)?.as_blob().map_err(StoreError::backend_from)?;
            let r = record::decode(blob)
                .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unreadable record")))?;
            let stream = names
                .get(&r.stream_id)
                .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unknown stream")))?;
            let new = change(stream, r.event_type, r.actor, r.payload);
            if new.actor != r.actor || new.payload != r.payload {
                report.changed += 1;
            }
            let previous = tips.get(&r.stream_id).copied().unwrap_or(ChainHash::GENESIS);
            let hash = chain::event_hash(
                &previous,
                &chain::HashedFields {
                    stream,
                    version: r.version,
                    event_id: &r.event_id,
                    event_type: r.event_type,
                    schema_version: r.schema_version,
                    business_date: r.business_date,
                    recorded_at_micros: r.recorded_at_micros,
                    payload: &new.payload,
                    command_id: &r.command_id,
                    actor: &new.actor,
                    correlation_id: &r.correlation_id,
                    causation_id: r.causation_id.as_ref(),
                },
            );
            log = chain::log_hash(&log, position, &hash);
            tips.insert(r.stream_id, hash);
            record::encode(
                &record::Record { hash, log_hash: log, actor: &new.actor, payload: &new.payload, ..r },
                &mut buffer,
            );
            insert.execute(params![position, &buffer[..]])?;
            report.events += 1;
            report.head_position = position;
            report.head_hash = log;
        }
    }
    tx.commit()?;
    target.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(report)
}
