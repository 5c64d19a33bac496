//! Where each command starts and where each stream ends, in memory (see the module doc).

use super::*;

/// Where each command starts and where each stream ends: the log's only lookups by key,
/// kept in memory so that appends write no index (see the module doc).
#[derive(Default)]
pub(super) struct Index {
    /// Command id → position of its append's first event.
    pub(super) commands: HashMap<CommandId, u64>,
    /// Stream id → position of its last event.
    pub(super) ends: HashMap<i64, u64>,
    /// The events are read up to this position.
    pub(super) loaded_to: u64,
}

impl Index {
    /// Reads the events recorded since the last call: one pass over the log at open, only
    /// the new ones afterwards. Run it inside a transaction (one snapshot of the log).
    pub(super) fn catch_up(&mut self, conn: &Connection, format: Format) -> Result<(), StoreError> {
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
