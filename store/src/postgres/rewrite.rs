//! The copy of a PostgreSQL log with some fields changed, chained anew (see
//! [`crate::rewrite`]): from one schema (or database) into another that holds no log,
//! never touching the original, which stays the archive of its head digest.
//!
//! Positions, versions, dates and recording instants (of events and of command records)
//! are copied as they are; only what the [`Rewrite`] changes differs (streams' names,
//! actors, payloads, ids, commands' fingerprints), and each event's hash and the log's
//! hash are computed again over the new content, as the writer computes them. A command's
//! record follows its events: its stream's new name, its command's new id, its new
//! fingerprint.

use super::{SELECT_EVENT, config, hash_of, pg, pool, pool_error, prepare, to_event};
use crate::chain::{self, ChainHash};
use crate::rewrite::{AppendCopy, Copying, EventIds};
pub use crate::rewrite::{Rewrite, RewriteReport, Rewritten};
use crate::{RecordedEvent, SharedToken, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Events read, and rows written, at a time.
const PAGE: i64 = 2_000;

/// A command's record in the old log.
struct CommandRow {
    fingerprint: String,
    first_version: i64,
    last_version: i64,
    first_position: i64,
    last_position: i64,
    recorded_at: DateTime<Utc>,
}

/// The rows waiting to be inserted, column by column (one `UNNEST` each).
#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    stream: Vec<String>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    business_date: Vec<NaiveDate>,
    recorded_at: Vec<DateTime<Utc>>,
    payload: Vec<String>,
    command_id: Vec<Uuid>,
    actor: Vec<String>,
    correlation_id: Vec<Uuid>,
    causation_id: Vec<Option<Uuid>>,
    hash: Vec<Vec<u8>>,
    log_hash: Vec<Vec<u8>>,
    /// Each command's new id, fingerprint and stream, and its record's figures.
    commands: Vec<(Uuid, String, String, CommandRow)>,
}

const INSERT_EVENTS: &str = "INSERT INTO tracker_events (position, stream, version, event_id, event_type, \
     schema_version, business_date, recorded_at, payload, command_id, actor, correlation_id, causation_id, hash, \
     log_hash) SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int4[], \
     $7::date[], $8::timestamptz[], $9::text[], $10::uuid[], $11::text[], $12::uuid[], $13::uuid[], $14::bytea[], \
     $15::bytea[])";
const INSERT_COMMANDS: &str = "INSERT INTO tracker_commands (command_id, fingerprint, stream, first_version, \
     last_version, first_position, last_position, recorded_at) SELECT * FROM unnest($1::uuid[], $2::text[], \
     $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::timestamptz[])";

impl Rows {
    async fn flush(&mut self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        if !self.position.is_empty() {
            tx.execute(
                INSERT_EVENTS,
                &[
                    &self.position,
                    &self.stream,
                    &self.version,
                    &self.event_id,
                    &self.event_type,
                    &self.schema_version,
                    &self.business_date,
                    &self.recorded_at,
                    &self.payload,
                    &self.command_id,
                    &self.actor,
                    &self.correlation_id,
                    &self.causation_id,
                    &self.hash,
                    &self.log_hash,
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !self.commands.is_empty() {
            let c = &self.commands;
            let column = |f: fn(&CommandRow) -> i64| c.iter().map(|r| f(&r.3)).collect::<Vec<i64>>();
            tx.execute(
                INSERT_COMMANDS,
                &[
                    &c.iter().map(|r| r.0).collect::<Vec<_>>(),
                    &c.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
                    &c.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
                    &column(|r| r.first_version),
                    &column(|r| r.last_version),
                    &column(|r| r.first_position),
                    &column(|r| r.last_position),
                    &c.iter().map(|r| r.3.recorded_at).collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(pg)?;
        }
        *self = Rows::default();
        Ok(())
    }
}

/// A connection of its own to the old log (no pool: one reading transaction).
async fn connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config(url)?.connect(NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "the old log's connection failed");
        }
    });
    Ok(client)
}

/// Whether the schema a URL names holds the table `name` (without creating anything).
pub async fn has_table(url: &str, name: &str) -> Result<bool, StoreError> {
    let client = connect(url).await?;
    let row = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.map_err(pg)?;
    Ok(row.get(0))
}

/// Whether the schema a URL names holds a log, whole or partly copied (without creating
/// anything): its head past 0, or events.
pub async fn holds_a_log(url: &str) -> Result<bool, StoreError> {
    if !has_table(url, "tracker_head").await? || !has_table(url, "tracker_events").await? {
        return Ok(false);
    }
    let client = connect(url).await?;
    let row = client
        .query_one(
            "SELECT (SELECT position FROM tracker_head) > 0 OR EXISTS (SELECT 1 FROM tracker_events) \
             OR EXISTS (SELECT 1 FROM tracker_commands)",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
}

/// Copies the log the URL `from` names into the schema `to` names, with `change` applied
/// (see [`Rewrite`]): the old log read up to its head (a page at a time), the new one
/// written a page per transaction, its head moved last (an interrupted copy leaves a
/// schema refused as a log and by a copy again: drop it). `to` must hold no log (its
/// tables are created if missing, as [`super::PostgresStore::connect`] does); `expected`,
/// if given, is the old head (position and log hash) the caller verified: a log that
/// moved since is refused (a replica still writing it).
pub async fn rewrite_with(
    from: &str,
    to: &str,
    expected: Option<(u64, ChainHash)>,
    change: impl Rewrite,
) -> Result<RewriteReport, StoreError> {
    let source = connect(from).await?;
    if !has_table(from, "tracker_events").await? {
        return Err(StoreError::backend(format!("no log at {}", crate::redact_url(from))));
    }
    // No snapshot is held for the copy (it would hold back every vacuum of the database
    // meanwhile, an erasure's in the directory included): the log is append-only, so its
    // rows up to the head read now never change.
    let head = source.query_one("SELECT position, log_hash FROM tracker_head", &[]).await.map_err(pg)?;
    let head_position: i64 = head.get(0);
    let head_hash = hash_of(head.get(1), head_position)?;
    if let Some((position, hash)) = expected
        && (position as i64, hash) != (head_position, head_hash)
    {
        return Err(StoreError::backend(format!(
            "the log moved since it was verified (head at {position}, now at {head_position}): stop its replicas \
             and run the migration again"
        )));
    }

    let pool = pool(&config(to)?, 1)?;
    prepare(&pool).await?;
    let mut target = pool.get().await.map_err(pool_error)?;
    let (position, events, commands): (i64, bool, bool) = (
        target.query_one("SELECT position FROM tracker_head", &[]).await.map_err(pg)?.get(0),
        target.query_one("SELECT EXISTS (SELECT 1 FROM tracker_events)", &[]).await.map_err(pg)?.get(0),
        target.query_one("SELECT EXISTS (SELECT 1 FROM tracker_commands)", &[]).await.map_err(pg)?.get(0),
    );
    if position != 0 || events || commands {
        return Err(StoreError::backend(format!(
            "{} holds a log already (head at position {position}{}): the copy goes into a schema without one",
            crate::redact_url(to),
            if position == 0 { ", events without a head: an interrupted copy? drop the schema" } else { "" }
        )));
    }

    let mut copying = Copying::new(change);
    // Each stream's new name, in the order streams first appear (as the embedded log
    // numbers them).
    let mut names: HashMap<String, String> = HashMap::new();
    for row in source
        .query(
            "SELECT stream FROM tracker_events WHERE position <= $1 GROUP BY stream ORDER BY min(position)",
            &[&head_position],
        )
        .await
        .map_err(pg)?
    {
        let old: String = row.get(0);
        let new = copying.stream(&old)?;
        names.insert(old, new);
    }
    let mut records: HashMap<Uuid, CommandRow> = HashMap::new();
    for row in source
        .query(
            "SELECT command_id, fingerprint, first_version, last_version, first_position, last_position, recorded_at \
             FROM tracker_commands WHERE last_position <= $1",
            &[&head_position],
        )
        .await
        .map_err(pg)?
    {
        records.insert(
            row.get(0),
            CommandRow {
                fingerprint: row.get(1),
                first_version: row.get(2),
                last_version: row.get(3),
                first_position: row.get(4),
                last_position: row.get(5),
                recorded_at: row.get(6),
            },
        );
    }

    let page = source
        .prepare(&format!("{SELECT_EVENT} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"))
        .await
        .map_err(pg)?;
    let mut tips: HashMap<String, ChainHash> = HashMap::new();
    let mut log = ChainHash::GENESIS;
    let mut rows = Rows::default();
    // The events of the command being read: consecutive, and its fingerprint depends on
    // all of their new payloads.
    let mut append: Vec<RecordedEvent> = Vec::new();
    let mut after = 0i64;
    loop {
        let events = source.query(&page, &[&after, &head_position, &PAGE]).await.map_err(pg)?;
        let Some(last) = events.last() else { break };
        after = last.get(0);
        for row in &events {
            let event = to_event(row)?;
            let old_command = event.metadata.command_id.0;
            let Some(record) = records.get(&old_command) else {
                return Err(StoreError::corrupt(format!(
                    "event at position {}: no command record answers for it (verify the log)",
                    event.position
                )));
            };
            let complete = event.position as i64 == record.last_position;
            append.push(event);
            if complete {
                let record = records.remove(&old_command).expect("just found");
                copy(&mut copying, &names, &mut tips, &mut log, &mut rows, std::mem::take(&mut append), record)?;
            }
        }
        // A transaction per page: none is held for the whole copy (see above). The head,
        // moved last, says the copy is whole; until then the schema is refused as a log
        // (its head says 0 while it holds events).
        let tx = target.transaction().await.map_err(pg)?;
        rows.flush(&tx).await?;
        tx.commit().await.map_err(pg)?;
    }
    if let Some(e) = append.first() {
        return Err(StoreError::corrupt(format!(
            "event at position {}: its command's record names events the log lacks (verify the log)",
            e.position
        )));
    }
    if copying.report.head_position != head_position as u64 {
        return Err(StoreError::corrupt(format!(
            "the log's events end at position {}, its head at {head_position}: verify it",
            copying.report.head_position
        )));
    }
    let moved = target
        .execute(
            "UPDATE tracker_head SET position = $1, log_hash = $2 WHERE position = 0",
            &[&(copying.report.head_position as i64), &&log.0[..]],
        )
        .await
        .map_err(pg)?;
    if moved != 1 {
        return Err(StoreError::backend(format!(
            "{} was written meanwhile: the copy goes into a schema nothing else writes",
            crate::redact_url(to)
        )));
    }
    Ok(copying.report)
}

/// Adds the rows of one command's events, changed and chained, and its record.
fn copy(
    copying: &mut Copying<impl Rewrite>,
    names: &HashMap<String, String>,
    tips: &mut HashMap<String, ChainHash>,
    log: &mut ChainHash,
    rows: &mut Rows,
    mut events: Vec<RecordedEvent>,
    record: CommandRow,
) -> Result<(), StoreError> {
    let mut this = AppendCopy::default();
    let old_stream = events[0].stream.clone();
    let stream = names
        .get(&old_stream)
        .ok_or_else(|| StoreError::corrupt(format!("event at position {}: unknown stream", events[0].position)))?
        .clone();
    if events[0].position as i64 != record.first_position || events.iter().any(|e| e.stream != old_stream) {
        return Err(StoreError::corrupt(format!(
            "events at positions {}..{}: they do not match their command's record (verify the log)",
            events[0].position, record.last_position
        )));
    }
    for e in &mut events {
        let m = &mut e.metadata;
        let ids = copying.ids(EventIds {
            event: e.event_id.0,
            command: m.command_id.0,
            correlation: m.correlation_id.0,
            causation: m.causation_id.map(|c| c.0),
        });
        (e.event_id.0, m.command_id.0, m.correlation_id.0) = (ids.event, ids.command, ids.correlation);
        m.causation_id = ids.causation.map(domain::EventId);
        let n = copying.event(&mut this, &stream, &e.event_type, &m.actor, e.payload.as_str());
        m.actor = n.actor;
        e.payload = crate::Payload::from_text(n.payload);
        e.stream = stream.clone();
    }
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let command = events[0].metadata.command_id.0;
    let fingerprint =
        copying.fingerprint(&this, command, &stream, stream != old_stream, &record.fingerprint, &payloads);
    for e in events {
        let previous = tips.get(&stream).copied().unwrap_or(ChainHash::GENESIS);
        let hash = e.compute_hash(&previous);
        *log = chain::log_hash(log, e.position, &hash);
        tips.insert(stream.clone(), hash);
        copying.written(e.position, *log);
        rows.position.push(e.position as i64);
        rows.stream.push(stream.clone());
        rows.version.push(e.version as i64);
        rows.event_id.push(e.event_id.0);
        rows.event_type.push(e.event_type);
        rows.schema_version.push(e.schema_version as i32);
        rows.business_date.push(e.business_date);
        rows.recorded_at.push(e.recorded_at);
        rows.payload.push(e.payload.as_str().to_string());
        rows.command_id.push(e.metadata.command_id.0);
        rows.actor.push(e.metadata.actor);
        rows.correlation_id.push(e.metadata.correlation_id.0);
        rows.causation_id.push(e.metadata.causation_id.map(|c| c.0));
        rows.hash.push(hash.0.to_vec());
        rows.log_hash.push(log.0.to_vec());
    }
    rows.commands.push((command, fingerprint, stream, record));
    Ok(())
}

/// What [`copy_shared`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedCopied {
    pub tokens: usize,
    pub checkpoints: usize,
}

/// Copies what the replicas of the log `from` share beside it into `to`: the tokens
/// (each through `token`, which may move a holder's name elsewhere; dates kept) and the
/// sagas' checkpoints (positions are kept by a copy of the log). Leases are not copied:
/// the replicas of the new log take them afresh. Rows `to` has already are kept.
pub async fn copy_shared(
    from: &str,
    to: &str,
    mut token: impl FnMut(SharedToken) -> Result<SharedToken, StoreError>,
) -> Result<SharedCopied, StoreError> {
    let source = connect(from).await?;
    let pool = pool(&config(to)?, 1)?;
    prepare(&pool).await?;
    let mut target = pool.get().await.map_err(pool_error)?;
    let tx = target.transaction().await.map_err(pg)?;
    let mut copied = SharedCopied { tokens: 0, checkpoints: 0 };
    if has_table(from, "tracker_tokens").await? {
        for row in source
            .query("SELECT id, hash, record, revoked_at, created_at FROM tracker_tokens ORDER BY created_at, id", &[])
            .await
            .map_err(pg)?
        {
            let created_at: DateTime<Utc> = row.get(4);
            let t =
                token(SharedToken { id: row.get(0), hash: row.get(1), record: row.get(2), revoked_at: row.get(3) })?;
            copied.tokens += tx
                .execute(
                    "INSERT INTO tracker_tokens (id, hash, record, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                    &[&t.id, &t.hash, &t.record, &created_at, &t.revoked_at],
                )
                .await
                .map_err(pg)? as usize;
        }
    }
    if has_table(from, "tracker_checkpoints").await? {
        for row in source.query("SELECT name, position, saved_at FROM tracker_checkpoints", &[]).await.map_err(pg)? {
            let (name, position, saved_at): (String, i64, DateTime<Utc>) = (row.get(0), row.get(1), row.get(2));
            copied.checkpoints += tx
                .execute(
                    "INSERT INTO tracker_checkpoints (name, position, saved_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&name, &position, &saved_at],
                )
                .await
                .map_err(pg)? as usize;
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::fresh_url;
    use crate::{AppendRequest, EventStore, ExpectedVersion, PostgresStore};
    use domain::CommandId;

    use crate::rewrite::testing::{Renaming, event};

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_into_another_schema_renames_streams_with_their_commands_and_verifies() {
        let test = "postgres rewrite";
        let (Some(from), Some(to)) = (fresh_url(test).await, fresh_url(test).await) else { return };
        // Given a log with a stream to rename (two events in one atomic write with another
        // stream) and a stream kept
        let (renamed_command, kept_command) = (CommandId::new_random(), CommandId::new_random());
        let old = PostgresStore::connect(&from).await.unwrap();
        let write = |stream: &str, command_id: CommandId, payloads: Vec<&str>| AppendRequest {
            stream: stream.into(),
            expected: ExpectedVersion::NoStream,
            command_id,
            fingerprint: format!("fp-{stream}"),
            events: payloads.iter().enumerate().map(|(i, p)| event(command_id, i, p)).collect(),
        };
        old.append_all(vec![
            write("thing-old", renamed_command, vec![r#"{"a":"secret"}"#, r#"{"b":1}"#]),
            write("other-1", kept_command, vec![r#"{"c":2}"#]),
        ])
        .await
        .unwrap();
        old.append(write("other-2", CommandId::new_random(), vec![r#"{"d":3}"#])).await.unwrap();
        let before = old.verify(None).await.unwrap();

        // When it is copied into another schema
        let moved = CommandId::new_random();
        let expected = Some((before.head_position, before.head_hash));
        let report = rewrite_with(&from, &to, expected, Renaming(renamed_command.0, moved.0)).await.unwrap();

        // Then the stream has its new name, its command finds it there with its new
        // fingerprint, the other keeps its own, dates are kept, and the copy verifies
        assert_eq!((report.events, report.changed, report.streams_renamed, report.fingerprints_changed), (4, 1, 1, 1));
        assert_eq!(report.ids_changed, 2, "the command and correlation ids of the renamed stream's two events");
        let new = PostgresStore::connect(&to).await.unwrap();
        let after = new.verify(None).await.unwrap();
        assert!(after.is_intact(), "{after:?}");
        assert_eq!((after.head_position, after.head_hash), (report.head_position, report.head_hash));
        let events = new.read_stream("thing-new").await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].payload.as_str(), r#"{"a":"id"}"#);
        let old_events = old.read_stream("thing-old").await.unwrap();
        assert_eq!(events[0].recorded_at, old_events[0].recorded_at);
        assert_eq!(events[1].position, old_events[1].position);
        assert!(new.read_stream("thing-old").await.unwrap().is_empty());
        assert!(new.find_command(renamed_command).await.unwrap().is_none());
        assert_eq!(events[1].metadata.command_id, moved);
        let record = new.find_command(moved).await.unwrap().unwrap();
        assert_eq!(record.outcome.stream, "thing-new");
        assert_eq!(record.fingerprint, r#"thing-new:{"a":"id"}+{"b":1}"#);
        assert_eq!(new.find_command(kept_command).await.unwrap().unwrap().fingerprint, "fp-other-1");
        // the old log is as it was
        let unchanged = old.verify(None).await.unwrap();
        assert_eq!((unchanged.head_position, unchanged.head_hash), (before.head_position, before.head_hash));
        // and a new write on the copy follows the chain
        new.append(write("other-3", CommandId::new_random(), vec!["{}"])).await.unwrap();
        assert!(new.verify(None).await.unwrap().is_intact());

        // When it is copied again into the same schema, or from a log that moved since
        // Then both are refused, and nothing is written
        assert!(holds_a_log(&to).await.unwrap());
        let again = rewrite_with(&from, &to, None, Renaming(renamed_command.0, moved.0)).await.unwrap_err();
        assert!(again.to_string().contains("holds a log already"), "{again}");
        let Some(elsewhere) = fresh_url(test).await else { return };
        old.append(write("other-4", CommandId::new_random(), vec!["{}"])).await.unwrap();
        let moved_on =
            rewrite_with(&from, &elsewhere, expected, Renaming(renamed_command.0, moved.0)).await.unwrap_err();
        assert!(moved_on.to_string().contains("the log moved"), "{moved_on}");
        assert!(!holds_a_log(&elsewhere).await.unwrap(), "its tables made, nothing written");
    }
}
