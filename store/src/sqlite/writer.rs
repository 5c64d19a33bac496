//! The writer thread and its group commit: every write waiting when a transaction starts
//! joins it, each unit checked whole before any of its events is inserted; one fsync a group.

use super::*;

/// The answer to a unit, with its requests handed back: the caller frees them, on the
/// thread that allocated them, not the writer (which measured 5% of its time in `free`).
pub(super) type Reply = (Result<Vec<AppendOutcome>, StoreError>, Vec<AppendRequest>);

/// One unit of writing: the request of an `append`, or the requests of an `append_all`,
/// written all or none inside the group that takes it.
pub(super) struct WriteJob {
    pub(super) unit: Vec<AppendRequest>,
    pub(super) reply: oneshot::Sender<Reply>,
}

/// Counters of the writer, for benchmarks and operators: how well appends are grouped
/// (`appends` counts requests: an `append_all` of three streams counts three).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub groups: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
}

/// The end of the log as the writer knows it: where the next event goes and what the
/// whole-log chain is there. Moves only once a group is committed.
#[derive(Clone, Copy)]
pub(super) struct Head {
    pub(super) position: u64,
    pub(super) log_hash: ChainHash,
}

pub(super) fn writer_loop(
    mut writer: Writer,
    rx: mpsc::Receiver<WriteJob>,
    notify: Arc<watch::Sender<u64>>,
    stats: &WriterStats,
) {
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
                units.iter().map(|_| Err(StoreError::backend(e.to_string()))).collect()
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
pub(super) enum GroupFailure {
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
pub(super) struct Tip {
    pub(super) stream_id: i64,
    pub(super) version: u64,
    pub(super) hash: ChainHash,
    pub(super) position: u64,
}

/// The writer's state. Only this thread writes to the file (a lock file keeps other
/// processes out), so it can remember where each stream ends instead of asking SQLite
/// for every append.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) head: Head,
    pub(super) tips: HashMap<String, Tip>,
    pub(super) index: Arc<RwLock<Index>>,
    /// Reused for every packed record.
    pub(super) record: Vec<u8>,
    /// Reused for every unit: the tip of each of its streams once checked.
    pub(super) unit_tips: Vec<Option<Tip>>,
    #[cfg(any(test, feature = "fault-injection"))]
    pub(super) fault: Fault,
}

/// What a unit's answer is inside a group: its outcomes, or why it was refused (the rest
/// of the group goes on).
pub(super) type UnitResult = Result<Vec<AppendOutcome>, StoreError>;

/// What a group has written so far, applied to the writer's memory once it is committed.
pub(super) struct Written<'r> {
    pub(super) head: Head,
    pub(super) recorded_at: DateTime<Utc>,
    /// Where the streams the group wrote end now.
    pub(super) moved: HashMap<&'r str, Tip>,
    /// The commands the group applied, with their fingerprints and answers.
    pub(super) applied: HashMap<CommandId, (&'r str, AppendOutcome)>,
}

/// Inserts event rows. With a fault armed (tests only), fails part way through a unit.
pub(super) struct Inserter<'c> {
    pub(super) statement: rusqlite::CachedStatement<'c>,
    #[cfg(any(test, feature = "fault-injection"))]
    pub(super) fault: &'c Mutex<Option<usize>>,
    /// Events the current unit may still insert before the armed fault strikes.
    #[cfg(any(test, feature = "fault-injection"))]
    pub(super) left: Option<usize>,
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
        GroupFailure::Fatal(StoreError::backend("injected fault: the write failed part way"))
    }
}

pub(super) const INSERT_EVENT: &str = "INSERT INTO events (position, record) VALUES (?1, ?2)";

impl Writer {
    /// Writes a group in one transaction; on a constraint failure, one unit at a time.
    pub(super) fn write_group(&mut self, units: &[Vec<AppendRequest>]) -> Result<Vec<UnitResult>, StoreError> {
        match self.try_group(units) {
            Ok(results) => Ok(results),
            Err(GroupFailure::Fatal(e)) => Err(e),
            Err(GroupFailure::Constraint) if units.len() == 1 => {
                let ids = units[0].iter().map(|r| r.command_id.to_string()).collect::<Vec<_>>().join(", ");
                Ok(vec![Err(StoreError::backend(format!("command {ids} breaks a constraint of the log")))])
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
pub(super) fn check_unit(
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
pub(super) fn stream_id(conn: &Connection, stream: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn.prepare_cached("SELECT id FROM streams WHERE name = ?1")?.query_row([stream], |r| r.get(0)).optional()?)
}

/// Where a stream ends, from the index and the file; `None` for a stream without events.
pub(super) fn stream_tip(conn: &Connection, index: &Index, stream: &str) -> Result<Option<Tip>, StoreError> {
    let Some(stream_id) = stream_id(conn, stream)? else { return Ok(None) };
    let position = *index
        .ends
        .get(&stream_id)
        .ok_or_else(|| StoreError::corrupt(format!("stream {stream} has a name in the log but no event")))?;
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT record FROM events WHERE position = ?1")?
        .query_row([position], |r| r.get(0))
        .optional()?;
    let r = blob.as_deref().and_then(record::decode).ok_or_else(|| {
        StoreError::corrupt(format!("the last event of {stream} (position {position}) is missing or unreadable"))
    })?;
    Ok(Some(Tip { stream_id, version: r.version, hash: r.hash, position }))
}

/// Registers a stream about to get its first event.
pub(super) fn new_stream(conn: &Connection, stream: &str) -> Result<Tip, GroupFailure> {
    conn.prepare_cached("INSERT INTO streams (name) VALUES (?1)")?.execute([stream])?;
    Ok(Tip { stream_id: conn.last_insert_rowid(), version: 0, hash: ChainHash::GENESIS, position: 0 })
}

/// Inserts an append's events; the checks are already done.
pub(super) fn insert_append(
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
