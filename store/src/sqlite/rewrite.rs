//! The copy of an embedded log with some fields changed, chained anew (see
//! [`crate::rewrite`]): it writes a new file and never touches the original.
//!
//! Positions, versions, dates, recording instants and append marks are copied as they
//! are; only what the [`Rewrite`] changes differs (streams' names, actors, payloads, ids,
//! commands' fingerprints), and every hash is computed again over the new content. A command's record follows its stream when the stream is
//! renamed: records name streams by their number, which the copy keeps.

use super::record::{self, Append, Fingerprint};
use super::{FORMAT, SCHEMA, configure};
use crate::StoreError;
use crate::chain::{self, ChainHash};
use crate::rewrite::{AppendCopy, Copying, EventIds};
pub use crate::rewrite::{Rewrite, RewriteReport, Rewritten};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Copies the format-3 log at `from` into a new file `to`, with `change(stream, event
/// type, actor, payload)` applied to each event, in one transaction.
pub fn rewrite(
    from: &Path,
    to: &Path,
    change: impl FnMut(&str, &str, &str, &str) -> Rewritten,
) -> Result<RewriteReport, StoreError> {
    rewrite_with(from, to, change)
}

/// Copies the format-3 log at `from` into a new file `to`, with `change` applied (see
/// [`Rewrite`]), in one transaction.
pub fn rewrite_with(from: &Path, to: &Path, change: impl Rewrite) -> Result<RewriteReport, StoreError> {
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
    let mut copying = Copying::new(change);
    // The same stream ids, in the same order (the records name streams by id), with
    // their new names.
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut renamed: HashMap<i64, bool> = HashMap::new();
    {
        let mut read = source.prepare("SELECT id, name FROM streams ORDER BY id")?;
        let mut insert = tx.prepare("INSERT INTO streams (id, name) VALUES (?1, ?2)")?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let (id, old): (i64, String) = (row.get(0)?, row.get(1)?);
            let new = copying.stream(&old)?;
            insert.execute(params![id, new])?;
            renamed.insert(id, new != old);
            names.insert(id, new);
        }
    }
    {
        let mut read = source.prepare("SELECT position, record FROM events ORDER BY position")?;
        let mut insert = tx.prepare("INSERT INTO events (position, record) VALUES (?1, ?2)")?;
        let mut rows = read.query([])?;
        let mut chain = Chain { tips: HashMap::new(), log: ChainHash::GENESIS, buffer: Vec::with_capacity(512) };
        // The events of the append being read: an append's events are consecutive, and its
        // fingerprint (on its first) depends on all of their new payloads.
        let mut append: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut expected = 0usize;
        while let Some(row) = rows.next()? {
            let position: u64 = row.get(0)?;
            let blob = row.get_ref(1)?.as_blob().map_err(StoreError::backend_from)?.to_vec();
            let r = record::decode(&blob)
                .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unreadable record")))?;
            if append.is_empty() {
                expected = match r.append {
                    Append::Starts { events, .. } => events.max(1) as usize,
                    Append::Unmarked | Append::Continues => 1,
                };
            }
            append.push((position, blob));
            if append.len() >= expected {
                chain.copy(&append, &names, &renamed, &mut copying, &mut insert)?;
                append.clear();
            }
        }
        if !append.is_empty() {
            chain.copy(&append, &names, &renamed, &mut copying, &mut insert)?;
        }
    }
    tx.commit()?;
    target.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(copying.report)
}

/// Makes the log at `path` one self-contained file: its WAL copied back into it and
/// removed (rollback journal mode; the next writer to open it turns WAL on again), so
/// that the file can be copied or renamed alone. Nothing may have it open.
pub fn settle(path: &Path) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::backend(format!("{} is still in {mode} mode: is it open elsewhere?", path.display())));
    }
    Ok(())
}

/// The new chain as it is written: each stream's last hash, the log's.
struct Chain {
    tips: HashMap<i64, ChainHash>,
    log: ChainHash,
    buffer: Vec<u8>,
}

impl Chain {
    /// Writes the events of one append, changed, and chained.
    fn copy(
        &mut self,
        append: &[(u64, Vec<u8>)],
        names: &HashMap<i64, String>,
        renamed: &HashMap<i64, bool>,
        copying: &mut Copying<impl Rewrite>,
        insert: &mut rusqlite::Statement<'_>,
    ) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(append.len());
        let mut new = Vec::with_capacity(append.len());
        let mut this = AppendCopy::default();
        for (position, blob) in append {
            let mut r = record::decode(blob)
                .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unreadable record")))?;
            let ids = copying.ids(EventIds {
                event: Uuid::from_bytes(r.event_id),
                command: Uuid::from_bytes(r.command_id),
                correlation: Uuid::from_bytes(r.correlation_id),
                causation: r.causation_id.map(Uuid::from_bytes),
            });
            (r.event_id, r.command_id, r.correlation_id, r.causation_id) = (
                ids.event.into_bytes(),
                ids.command.into_bytes(),
                ids.correlation.into_bytes(),
                ids.causation.map(Uuid::into_bytes),
            );
            let stream = names
                .get(&r.stream_id)
                .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unknown stream")))?;
            new.push(copying.event(&mut this, stream, r.event_type, r.actor, r.payload));
            records.push((*position, r));
        }
        let first = &records[0].1;
        let stream = &names[&first.stream_id];
        let fingerprint = match first.append {
            Append::Starts { fingerprint, .. } => {
                let payloads: Vec<&str> = new.iter().map(|n| n.payload.as_str()).collect();
                let renamed = renamed.get(&first.stream_id).copied().unwrap_or(false);
                let command = Uuid::from_bytes(first.command_id);
                Some(copying.fingerprint(&this, command, stream, renamed, &fingerprint.text(), &payloads))
            }
            _ => None,
        };
        for (i, ((position, r), n)) in records.into_iter().zip(&new).enumerate() {
            let stream = &names[&r.stream_id];
            let previous = self.tips.get(&r.stream_id).copied().unwrap_or(ChainHash::GENESIS);
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
                    payload: &n.payload,
                    command_id: &r.command_id,
                    actor: &n.actor,
                    correlation_id: &r.correlation_id,
                    causation_id: r.causation_id.as_ref(),
                },
            );
            self.log = chain::log_hash(&self.log, position, &hash);
            self.tips.insert(r.stream_id, hash);
            let append = match (i, r.append, &fingerprint) {
                (0, Append::Starts { events, .. }, Some(f)) => {
                    Append::Starts { events, fingerprint: Fingerprint::new(f) }
                }
                (_, other, _) => other,
            };
            record::encode(
                &record::Record { hash, log_hash: self.log, actor: &n.actor, payload: &n.payload, append, ..r },
                &mut self.buffer,
            );
            insert.execute(params![position, &self.buffer[..]])?;
            copying.written(position, self.log);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppendRequest, EventStore, ExpectedVersion, SqliteStore};
    use domain::CommandId;

    use crate::rewrite::testing::{Renaming, event};

    #[tokio::test]
    async fn a_renamed_stream_keeps_its_events_and_commands_and_a_changed_command_its_new_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("old.sqlite3"), dir.path().join("new.sqlite3"));
        // Given a log with a stream to rename (two events in one append) and another one
        let (renamed_command, kept_command) = (CommandId::new_random(), CommandId::new_random());
        {
            let log = SqliteStore::open(&from).unwrap();
            for (stream, command_id, payloads) in [
                ("thing-old", renamed_command, vec![r#"{"a":"secret"}"#, r#"{"b":1}"#]),
                ("other-1", kept_command, vec![r#"{"c":2}"#]),
            ] {
                let events = payloads.iter().enumerate().map(|(i, p)| event(command_id, i, p)).collect();
                log.append(AppendRequest {
                    stream: stream.into(),
                    expected: ExpectedVersion::NoStream,
                    command_id,
                    fingerprint: format!("fp-{stream}"),
                    events,
                })
                .await
                .unwrap();
            }
        }
        // When it is rewritten
        let moved = CommandId::new_random();
        let report = rewrite_with(&from, &to, Renaming(renamed_command.0, moved.0)).unwrap();
        // Then the stream has its new name, its command finds it there with its new
        // fingerprint, the other keeps its own, and the copy verifies
        assert_eq!((report.events, report.changed, report.streams_renamed, report.fingerprints_changed), (3, 1, 1, 1));
        assert_eq!(report.ids_changed, 2, "the command and correlation ids of the renamed stream's two events");
        assert!(super::super::verify(&to, None).unwrap().is_intact());
        let log = SqliteStore::open(&to).unwrap();
        let events = log.read_stream("thing-new").await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].payload.as_str(), r#"{"a":"id"}"#);
        assert!(log.read_stream("thing-old").await.unwrap().is_empty());
        assert!(log.find_command(renamed_command).await.unwrap().is_none());
        assert_eq!(events[1].metadata.command_id, moved);
        let record = log.find_command(moved).await.unwrap().unwrap();
        assert_eq!(record.outcome.stream, "thing-new");
        assert_eq!(record.fingerprint, r#"thing-new:{"a":"id"}+{"b":1}"#);
        assert_eq!(log.find_command(kept_command).await.unwrap().unwrap().fingerprint, "fp-other-1");
    }
}
