//! What remains of log format 2 (packed records, with a table of commands and stream
//! ends that every append wrote to): reading it as it is, for read-only tools, and
//! migrating it to format 3, which the first writer to open it does.

use super::record::{self, Append, Fingerprint};
use super::{SELECT_EVENT, columns};
use crate::StoreError;
use domain::CommandId;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Adds the commands recorded after `after` (by first position) to `commands`.
pub(crate) fn load_commands(
    conn: &Connection,
    after: u64,
    commands: &mut HashMap<CommandId, u64>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT first_position, command_id FROM commands WHERE first_position > ?1")?;
    let mut rows = stmt.query([after])?;
    while let Some(row) = rows.next()? {
        let position: u64 = row.get(0)?;
        let id = row.get_ref(1)?.as_blob().ok().and_then(|b| uuid::Uuid::from_slice(b).ok()).ok_or_else(|| {
            StoreError::corrupt(format!("the command recorded at position {position} has no readable id"))
        })?;
        commands.insert(CommandId(id), position);
    }
    Ok(())
}

/// The command whose first event is at `first_position`: its id, fingerprint and last position.
pub(crate) fn command_at(
    conn: &Connection,
    first_position: u64,
) -> Result<Option<([u8; 16], String, u64)>, StoreError> {
    let row: Option<(Vec<u8>, String, u64)> = conn
        .prepare_cached("SELECT command_id, fingerprint, last_position FROM commands WHERE first_position = ?1")?
        .query_row([first_position], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, fingerprint, last)) = row else { return Ok(None) };
    let id = <[u8; 16]>::try_from(id.as_slice()).map_err(|_| {
        StoreError::corrupt(format!("the command recorded at position {first_position} has no readable id"))
    })?;
    Ok(Some((id, fingerprint, last)))
}

/// The append marks of a log whose commands are rows of `table` (formats 1 and 2 keep
/// them so), by the position of each command's first event.
pub(crate) struct Marks(HashMap<u64, (u32, String)>);

impl Marks {
    pub fn load(conn: &Connection, table: &str) -> Result<Self, StoreError> {
        let mut marks = HashMap::new();
        let mut stmt = conn.prepare(&format!("SELECT first_position, last_position, fingerprint FROM {table}"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (first, last): (u64, u64) = (row.get(0)?, row.get(1)?);
            let events = last
                .checked_sub(first)
                .and_then(|n| u32::try_from(n + 1).ok())
                .ok_or_else(|| migration_failed(format!("the command at position {first} ends at position {last}")))?;
            marks.insert(first, (events, row.get(2)?));
        }
        Ok(Self(marks))
    }

    /// The mark of the event at `position`: the start of its command's append, or not.
    pub fn at(&self, position: u64) -> Append<'_> {
        match self.0.get(&position) {
            Some((events, fingerprint)) => {
                Append::Starts { events: *events, fingerprint: Fingerprint::new(fingerprint) }
            }
            None => Append::Continues,
        }
    }
}

pub(crate) fn migration_failed(reason: String) -> StoreError {
    StoreError::corrupt(format!("cannot migrate the log to format 3: {reason}"))
}

/// Rewrites a format 2 log in format 3, in one transaction: a crash leaves it as it was.
/// Each command's fingerprint and event count move into its first event's record; every
/// other field, stream id and stored hash is copied as it is, so the chains (and a
/// tampering done before) read the same afterwards.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let marks = Marks::load(&tx, "commands")?;
    tx.execute_batch(
        "DROP TRIGGER IF EXISTS events_are_never_updated;
         DROP TRIGGER IF EXISTS events_are_never_deleted;
         DROP TRIGGER IF EXISTS commands_are_never_updated;
         DROP TRIGGER IF EXISTS commands_are_never_deleted;
         DROP TRIGGER IF EXISTS streams_are_never_renamed;
         DROP TRIGGER IF EXISTS streams_are_never_deleted;
         ALTER TABLE events RENAME TO events_v2;
         ALTER TABLE streams RENAME TO streams_v2;",
    )?;
    tx.execute_batch(super::SCHEMA)?;
    tx.execute_batch("INSERT INTO streams (id, name) SELECT id, name FROM streams_v2 ORDER BY id;")?;
    let mut copied = 0u64;
    {
        let mut insert = tx.prepare(super::INSERT_EVENT)?;
        let mut read =
            tx.prepare(&format!("{} ORDER BY position", SELECT_EVENT.replace("FROM events", "FROM events_v2")))?;
        let mut rows = read.query([])?;
        let mut blob = Vec::with_capacity(256);
        while let Some(row) = rows.next()? {
            let (position, r) = columns(row).map_err(|e| migration_failed(e.to_string()))?;
            record::encode(&record::Record { append: marks.at(position), ..r }, &mut blob);
            insert.execute(params![position, &blob[..]])?;
            copied += 1;
        }
    }
    tx.execute_batch("DROP TABLE events_v2; DROP TABLE streams_v2; DROP TABLE commands;")?;
    tx.commit()?;
    tracing::info!(events = copied, elapsed = ?started.elapsed(), "migrated the event log from format 2 to format 3");
    Ok(())
}
