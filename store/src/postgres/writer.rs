//! This process's writer: it takes every unit waiting when it starts a transaction,
//! locks the head row (which queues it behind the other replicas' writers), checks each
//! unit against the log and the units before it, and writes the accepted ones in one
//! commit. A refused unit leaves nothing; the others of its group go on.

use super::{SELECT_COMMAND, advance, hash_of, pg, pool_error, to_command};
use crate::chain::{self, ChainHash};
use crate::{AppendOutcome, AppendRequest, CommandRecord, StoreError, check_expected, judge_applied};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use domain::CommandId;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// The most units one transaction takes; bounds a group's latency.
const MAX_GROUP: usize = 256;

type UnitResult = Result<Vec<AppendOutcome>, StoreError>;

/// One unit of writing (an `append`, or the requests of an `append_all`) and where its
/// answer goes.
pub(super) struct Job {
    pub unit: Vec<AppendRequest>,
    pub reply: oneshot::Sender<UnitResult>,
}

pub(super) async fn run(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Job>,
    head: Arc<watch::Sender<u64>>,
    channel: String,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (units, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.unit, j.reply)).unzip();
        let results = write_group(&pool, &units, &channel).await;
        let last = results.iter().flatten().flatten().map(|o| o.last_position).max();
        if let Some(last) = last {
            advance(&head, last);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result); // the caller may have gone; the write stands
        }
    }
}

/// Writes a group in one transaction; if it fails as a whole (a row the server refuses,
/// a lost connection), writes its units again one transaction each, so that only the
/// faulty unit fails. Writing again is safe even if the failed commit went through: each
/// unit is checked afresh, and a command already applied gets its stored answer.
async fn write_group(pool: &Pool, units: &[Vec<AppendRequest>], channel: &str) -> Vec<UnitResult> {
    match try_group(pool, units, channel).await {
        Ok(results) => results,
        Err(e) if units.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, units = units.len(), "a group of appends failed; writing them one by one");
            let mut results = Vec::with_capacity(units.len());
            for unit in units {
                results.push(match try_group(pool, std::slice::from_ref(unit), channel).await {
                    Ok(mut one) => one.pop().expect("one result per unit"),
                    Err(e) => Err(e),
                });
            }
            results
        }
    }
}

/// The rows a group inserts, column by column (inserted with one `UNNEST` each).
#[derive(Default)]
struct Rows<'a> {
    position: Vec<i64>,
    stream: Vec<&'a str>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    business_date: Vec<NaiveDate>,
    payload: Vec<&'a str>,
    command_id: Vec<Uuid>,
    actor: Vec<&'a str>,
    correlation_id: Vec<Uuid>,
    causation_id: Vec<Option<Uuid>>,
    hash: Vec<ChainHash>,
    log_hash: Vec<ChainHash>,
    commands: Commands<'a>,
}

#[derive(Default)]
struct Commands<'a> {
    command_id: Vec<Uuid>,
    fingerprint: Vec<&'a str>,
    stream: Vec<&'a str>,
    first_version: Vec<i64>,
    last_version: Vec<i64>,
    first_position: Vec<i64>,
    last_position: Vec<i64>,
}

const LOCK_HEAD: &str = "SELECT position, log_hash FROM tracker_head FOR UPDATE";
const TIPS: &str = "SELECT s.stream, e.version, e.hash FROM unnest($1::text[]) AS s(stream) \
     CROSS JOIN LATERAL (SELECT version, hash FROM tracker_events WHERE stream = s.stream \
     ORDER BY version DESC LIMIT 1) e";
const INSERT_EVENTS: &str = "INSERT INTO tracker_events (position, stream, version, event_id, event_type, \
     schema_version, business_date, recorded_at, payload, command_id, actor, correlation_id, causation_id, hash, \
     log_hash) SELECT p, s, v, id, t, sv, d, $8, pl, c, a, co, ca, h, l FROM unnest($1::int8[], $2::text[], \
     $3::int8[], $4::uuid[], $5::text[], $6::int4[], $7::date[], $9::text[], $10::uuid[], $11::text[], $12::uuid[], \
     $13::uuid[], $14::bytea[], $15::bytea[]) AS r(p, s, v, id, t, sv, d, pl, c, a, co, ca, h, l)";
const INSERT_COMMANDS: &str = "INSERT INTO tracker_commands (command_id, fingerprint, stream, first_version, \
     last_version, first_position, last_position, recorded_at) SELECT c, f, s, fv, lv, fp, lp, $8 FROM \
     unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) \
     AS r(c, f, s, fv, lv, fp, lp)";

/// The end of the log inside the group's transaction.
struct Head {
    position: u64,
    log_hash: ChainHash,
}

async fn try_group(pool: &Pool, units: &[Vec<AppendRequest>], channel: &str) -> Result<Vec<UnitResult>, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg)?;
    let row = tx.query_one(&tx.prepare_cached(LOCK_HEAD).await.map_err(pg)?, &[]).await.map_err(pg)?;
    let position: i64 = row.get(0);
    let mut head = Head { position: position as u64, log_hash: hash_of(row.get(1), position)? };

    // What the log holds for the group's commands and streams, read once the head is
    // locked (so nobody writes in between).
    let ids: Vec<Uuid> = units.iter().flatten().map(|r| r.command_id.0).collect();
    let stmt = tx.prepare_cached(&format!("{SELECT_COMMAND} WHERE command_id = ANY($1)")).await.map_err(pg)?;
    let stored: HashMap<CommandId, CommandRecord> = tx
        .query(&stmt, &[&ids])
        .await
        .map_err(pg)?
        .iter()
        .map(|row| (CommandId(row.get(7)), to_command(row)))
        .collect();
    let mut streams: Vec<&str> = units.iter().flatten().map(|r| r.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut tips: HashMap<&str, (u64, ChainHash)> = HashMap::with_capacity(streams.len());
    for row in tx.query(&tx.prepare_cached(TIPS).await.map_err(pg)?, &[&streams]).await.map_err(pg)? {
        let stream: String = row.get(0);
        let version: i64 = row.get(1);
        let key = *streams.iter().find(|s| **s == stream).expect("a tip of an asked stream");
        tips.insert(key, (version as u64, hash_of(row.get(2), 0)?));
    }

    let recorded_at = crate::now();
    let mut rows = Rows::default();
    let mut applied: HashMap<CommandId, CommandRecord> = HashMap::new();
    let mut results = Vec::with_capacity(units.len());
    for unit in units {
        let found =
            unit.iter().map(|r| applied.get(&r.command_id).or_else(|| stored.get(&r.command_id)).cloned()).collect();
        match judge_applied(unit, found) {
            Ok(Some(outcomes)) => {
                results.push(Ok(outcomes));
                continue;
            }
            Err(e) => {
                results.push(Err(e));
                continue;
            }
            Ok(None) => {}
        }
        let versions = unit
            .iter()
            .try_for_each(|r| check_expected(&r.stream, r.expected, tips.get(r.stream.as_str()).map_or(0, |t| t.0)));
        if let Err(e) = versions {
            results.push(Err(e));
            continue;
        }
        let mut outcomes = Vec::with_capacity(unit.len());
        for request in unit {
            let outcome = add_request(&mut rows, &mut tips, &mut head, request, recorded_at);
            let record = CommandRecord {
                fingerprint: request.fingerprint.clone(),
                outcome: AppendOutcome { duplicate: true, ..outcome.clone() },
            };
            applied.insert(request.command_id, record);
            outcomes.push(outcome);
        }
        results.push(Ok(outcomes));
    }

    if !rows.position.is_empty() {
        insert(&tx, &rows, recorded_at).await?;
        let (position, log_hash) = (head.position as i64, &head.log_hash.0[..]);
        let stmt = tx.prepare_cached("UPDATE tracker_head SET position = $1, log_hash = $2").await.map_err(pg)?;
        tx.execute(&stmt, &[&position, &log_hash]).await.map_err(pg)?;
        // Delivered to the other replicas' listeners only once this commits.
        let stmt = tx.prepare_cached("SELECT pg_notify($1, $2)").await.map_err(pg)?;
        tx.execute(&stmt, &[&channel, &head.position.to_string()]).await.map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(results)
}

/// Adds a checked request's rows, moving its stream's tip and the head.
fn add_request<'a>(
    rows: &mut Rows<'a>,
    tips: &mut HashMap<&'a str, (u64, ChainHash)>,
    head: &mut Head,
    request: &'a AppendRequest,
    recorded_at: DateTime<Utc>,
) -> AppendOutcome {
    let (mut version, mut previous) = tips.get(request.stream.as_str()).copied().unwrap_or((0, ChainHash::GENESIS));
    let (first_version, first_position) = (version + 1, head.position + 1);
    let recorded_at_micros = recorded_at.timestamp_micros();
    for e in &request.events {
        version += 1;
        head.position += 1;
        let m = &e.metadata;
        let hash = chain::event_hash(&previous, &e.hashed(&request.stream, version, recorded_at_micros));
        head.log_hash = chain::log_hash(&head.log_hash, head.position, &hash);
        rows.position.push(head.position as i64);
        rows.stream.push(&request.stream);
        rows.version.push(version as i64);
        rows.event_id.push(e.event_id.0);
        rows.event_type.push(&e.event_type);
        rows.schema_version.push(e.schema_version as i32);
        rows.business_date.push(e.business_date);
        rows.payload.push(e.payload.as_str());
        rows.command_id.push(m.command_id.0);
        rows.actor.push(&m.actor);
        rows.correlation_id.push(m.correlation_id.0);
        rows.causation_id.push(m.causation_id.map(|c| c.0));
        rows.hash.push(hash);
        rows.log_hash.push(head.log_hash);
        previous = hash;
    }
    tips.insert(&request.stream, (version, previous));
    let c = &mut rows.commands;
    c.command_id.push(request.command_id.0);
    c.fingerprint.push(&request.fingerprint);
    c.stream.push(&request.stream);
    c.first_version.push(first_version as i64);
    c.last_version.push(version as i64);
    c.first_position.push(first_position as i64);
    c.last_position.push(head.position as i64);
    AppendOutcome {
        stream: request.stream.clone(),
        first_version,
        last_version: version,
        first_position,
        last_position: head.position,
        recorded_at,
        duplicate: false,
    }
}

async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows<'_>,
    recorded_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let hash: Vec<&[u8]> = rows.hash.iter().map(|h| &h.0[..]).collect();
    let log_hash: Vec<&[u8]> = rows.log_hash.iter().map(|h| &h.0[..]).collect();
    let stmt = tx.prepare_cached(INSERT_EVENTS).await.map_err(pg)?;
    tx.execute(
        &stmt,
        &[
            &rows.position,
            &rows.stream,
            &rows.version,
            &rows.event_id,
            &rows.event_type,
            &rows.schema_version,
            &rows.business_date,
            &recorded_at,
            &rows.payload,
            &rows.command_id,
            &rows.actor,
            &rows.correlation_id,
            &rows.causation_id,
            &hash,
            &log_hash,
        ],
    )
    .await
    .map_err(pg)?;
    let c = &rows.commands;
    let stmt = tx.prepare_cached(INSERT_COMMANDS).await.map_err(pg)?;
    tx.execute(
        &stmt,
        &[
            &c.command_id,
            &c.fingerprint,
            &c.stream,
            &c.first_version,
            &c.last_version,
            &c.first_position,
            &c.last_position,
            &recorded_at,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
