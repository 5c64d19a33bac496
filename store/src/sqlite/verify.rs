//! `tracker verify` on the embedded log: every hash chain recomputed, read-only.

use super::*;

/// Verifies a SQLite log file: every event's hash, every stream's chain and links, the
/// whole-log chain and the positions, and (format 3) that every append is whole and
/// every command id used once. Opens the file read-only; never writes.
pub fn verify(path: &Path, anchor: Option<(u64, ChainHash)>) -> Result<Verification, StoreError> {
    if !path.exists() {
        return Err(StoreError::backend(format!("no event log at {}", path.display())));
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
        other => return Err(StoreError::backend(format!("the log has format {other}, not one this tracker reads"))),
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
                StoreError::corrupt(format!("event at position {position}: unknown stream id {}", r.stream_id))
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
pub(super) struct AppendCheck {
    /// The append under way: its command, its stream, the events it still lacks.
    pub(super) open: Option<([u8; 16], i64, u32)>,
    /// Command id → position of its first event.
    pub(super) seen: HashMap<[u8; 16], u64>,
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
