//! The read pool's connections: events by position, a stream by following its links back,
//! a command's record.

use super::*;

/// A pooled read connection with the stream names it has seen (index = stream id - 1).
pub(super) struct ReadConn {
    pub(super) conn: Connection,
    pub(super) names: Vec<String>,
}

/// The command whose first event is at `first_position`, with its answer: read from that
/// event's append mark and from the append's last event.
pub(super) fn stored_command(
    conn: &Connection,
    format: Format,
    first_position: u64,
) -> Result<Option<(CommandId, CommandRecord)>, StoreError> {
    let corrupt = || StoreError::corrupt(format!("the command recorded at position {first_position} is unreadable"));
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

pub(super) fn micros(at: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(at).ok_or_else(|| StoreError::corrupt(format!("recorded_at {at} is out of range")))
}

/// `YYYY-MM-DD` without the generality (and the cost) of a format parser: replay reads
/// millions of them.
pub(super) fn parse_date(s: &str) -> Option<NaiveDate> {
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
pub(super) fn load_names(conn: &Connection, names: &mut Vec<String>) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, name FROM streams WHERE id > ?1 ORDER BY id")?;
    let mut rows = stmt.query([names.len() as i64])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        if id != names.len() as i64 + 1 {
            return Err(StoreError::corrupt(format!("stream ids jump from {} to {id}", names.len())));
        }
        names.push(row.get(1)?);
    }
    Ok(())
}

/// One event from its decoded record.
pub(super) fn to_event(position: u64, stream: String, r: &record::Record<'_>) -> Result<RecordedEvent, StoreError> {
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
pub(super) fn columns<'a>(r: &'a rusqlite::Row<'_>) -> Result<(u64, record::Record<'a>), StoreError> {
    let position: u64 = r.get(0)?;
    let blob = r.get_ref(1)?.as_blob().ok();
    let decoded = blob
        .and_then(record::decode)
        .ok_or_else(|| StoreError::corrupt(format!("event at position {position}: unreadable record")))?;
    Ok((position, decoded))
}

pub(super) const SELECT_EVENT: &str = "SELECT position, record FROM events";

impl ReadConn {
    pub(super) fn read_all(&mut self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
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
                StoreError::corrupt(format!("event at position {position}: unknown stream id {}", r.stream_id))
            })?;
            out.push(to_event(position, stream.clone(), &r)?);
        }
        Ok(out)
    }

    /// Follows the stream's links back from its last event down to `version`, in one
    /// snapshot. The index of a log this process writes is current; another process's
    /// log is caught up first, in the walk's snapshot.
    pub(super) fn read_stream_from(
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
                return Err(StoreError::corrupt(format!("stream {stream} links to position {next}, which is missing")));
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
