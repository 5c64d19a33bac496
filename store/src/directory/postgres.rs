//! The directory of a PostgreSQL log: two tables in the log's database (and schema), so
//! that every replica issues the same id for one reference and sees an erasure at once.
//!
//! Its calls are synchronous, as the other directory's are (a resolver, a file's parser
//! make them). They run on a small runtime of the directory's own, whose connections no
//! caller's runtime drives: a caller blocks (in place, on a multi-threaded runtime) for
//! one round trip, and can never wait on itself.

use super::{Adopted, DirectoryError, Erasure, Lookup, Person, PersonKind, Rows};
use crate::postgres::{config, pg, pool, pool_error};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;

/// Connections of one process's directory: lookups are short and one at a time mostly.
const POOL_SIZE: usize = 4;

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS tracker_persons (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL,
    scope       text        NOT NULL,
    reference   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS tracker_persons_by_reference
    ON tracker_persons (kind, scope, reference) WHERE kind <> 'agent';
CREATE INDEX IF NOT EXISTS tracker_persons_agents ON tracker_persons (scope, reference) WHERE kind = 'agent';
CREATE TABLE IF NOT EXISTS tracker_erasures (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL,
    erased_at   timestamptz NOT NULL,
    reason      text        NOT NULL
);
";

/// Said first in the transactions that must be on disk when they answer (agents,
/// erasures, adoptions): the connections' default is not to wait (see `connect`).
const DURABLE: &str = "SET LOCAL synchronous_commit = on";

/// Issues ids in one statement (one round trip): the references' rows, inserted with
/// the proposed ids where missing. The main query does not see the rows its `WITH`
/// inserts (one snapshot), so each reference comes once; a reference another replica
/// inserted after that snapshot comes from neither, and is read again.
const ISSUE: &str = "
WITH proposed (id, reference) AS (SELECT * FROM unnest($1::uuid[], $4::text[])),
inserted AS (
    INSERT INTO tracker_persons (id, kind, scope, reference)
    SELECT id, $2::text, $3::text, reference FROM proposed
    ON CONFLICT (kind, scope, reference) WHERE kind <> 'agent' DO NOTHING
    RETURNING reference, id
)
SELECT reference, id, true FROM inserted
UNION ALL
SELECT reference, id, false FROM tracker_persons
WHERE kind = $2::text AND kind <> 'agent' AND scope = $3::text AND reference = ANY($4)";

/// [`ISSUE`] for one reference (a request, a file's line: the common case), by equality
/// on every column of the unique index: its plan never depends on the table's
/// statistics, whereas `= ANY` was filtered row by row over a whole scope when they were
/// stale (20 000 references of one structure imported into a new table: 1 ms a line).
const ISSUE_ONE: &str = "
WITH inserted AS (
    INSERT INTO tracker_persons (id, kind, scope, reference) VALUES ($1, $2::text, $3::text, $4::text)
    ON CONFLICT (kind, scope, reference) WHERE kind <> 'agent' DO NOTHING
    RETURNING reference, id
)
SELECT reference, id, true FROM inserted
UNION ALL
SELECT reference, id, false FROM tracker_persons
WHERE kind = $2::text AND kind <> 'agent' AND scope = $3::text AND reference = $4::text";

/// One reference's id, by equality (see [`ISSUE_ONE`]).
const FIND_ONE: &str =
    "SELECT reference, id FROM tracker_persons WHERE kind = $1 AND kind <> 'agent' AND scope = $2 AND reference = $3";

/// The other sessions of this database whose snapshot is as old as the erasing
/// transaction (`$1`) or older: they may still see an erased row, which `VACUUM FULL`
/// then keeps. Sessions of other roles show no `backend_xmin` without `pg_read_all_stats`.
const OLDER_SNAPSHOTS: &str = "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
     AND datname = current_database() AND backend_xmin IS NOT NULL AND age(backend_xmin) >= age($1::text::xid)";

/// How long an erasure waits for older snapshots to end before rewriting the table
/// (ours), and how often it looks.
const SNAPSHOTS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const SNAPSHOT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Participants (not agents): the queries say `kind <> 'agent'` too, so that the partial
/// unique index serves them whatever plan PostgreSQL keeps for the statement.
const FIND: &str = "SELECT reference, id FROM tracker_persons WHERE kind = $1 AND kind <> 'agent' AND scope = $2 AND reference = ANY($3)";

pub(super) struct PostgresRows {
    /// The URL without its password.
    place: String,
    pool: Pool,
    /// Drives the pool's connections; shut down in the background when dropped (a
    /// runtime cannot be dropped where blocking is not allowed).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PostgresRows {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Failed = std::sync::Arc<str>;

fn failed(place: &Failed, message: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Storage { path: place.to_string(), message: message.to_string() }
}

fn person(row: &tokio_postgres::Row) -> Option<Person> {
    Some(Person {
        id: row.get(0),
        kind: PersonKind::parse(row.get(1))?,
        scope: row.get(2),
        reference: row.get(3),
        created_at: row.get(4),
    })
}

fn erasure(row: &tokio_postgres::Row) -> Option<Erasure> {
    Some(Erasure { id: row.get(0), kind: PersonKind::parse(row.get(1))?, erased_at: row.get(2), reason: row.get(3) })
}

impl PostgresRows {
    pub(super) fn connect(url: &str) -> Result<Self, DirectoryError> {
        let place = crate::redact_url(url);
        let storage = |message: String| DirectoryError::Storage { path: place.clone(), message };
        let mut config = config(url).map_err(|e| storage(crate::scrub_password(&e.to_string(), url)))?;
        // Ids are issued without waiting for the disk, as the SQLite file's are: `sync`
        // waits once, before the events that carry them are written (a file of 20 000
        // references, not 20 000 flushes). Everything else commits durably (`DURABLE`).
        let options = format!("{} -c synchronous_commit=off", config.get_options().unwrap_or_default());
        config.options(options.trim());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tracker-directory")
            .enable_all()
            .build()
            .map_err(|e| storage(format!("cannot start its runtime: {e}")))?;
        let pool = {
            let _inside = runtime.enter();
            pool(&config, POOL_SIZE).map_err(|e| storage(e.to_string()))?
        };
        let rows = Self { place, pool, runtime: Some(runtime) };
        rows.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            // Replicas starting together must not race on creating the tables.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('tracker_persons'))", &[])
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            tx.batch_execute(SCHEMA).await.map_err(|e| failed(&place, pg(e)))?;
            tx.commit().await.map_err(|e| failed(&place, pg(e)))
        })?;
        Ok(rows)
    }

    /// Runs `work` on the directory's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, work: F) -> Result<T, DirectoryError>
    where
        T: Send + 'static,
        F: FnOnce(Pool, Failed) -> Fut,
        Fut: Future<Output = Result<T, DirectoryError>> + Send + 'static,
    {
        let place: Failed = self.place.as_str().into();
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let work = work(self.pool.clone(), place.clone());
        self.runtime.as_ref().expect("the directory's runtime runs until dropped").spawn(async move {
            let _ = reply.send(work.await);
        });
        let wait = move || answer.recv();
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        answer.unwrap_or_else(|_| Err(failed(&place, "its connection task stopped")))
    }

    /// One statement's rows, read with a pooled connection.
    fn query(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<Vec<tokio_postgres::Row>, DirectoryError> {
        self.run(|pool, place| async move {
            let client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let stmt = client.prepare_cached(sql).await.map_err(|e| failed(&place, pg(e)))?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.query(&stmt, &params).await.map_err(|e| failed(&place, pg(e)))
        })
    }
}

impl Rows for PostgresRows {
    fn place(&self) -> &str {
        &self.place
    }

    fn issue(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[String],
        new_id: &(dyn Fn(&str) -> Uuid + Sync),
    ) -> Result<(Vec<Uuid>, bool), DirectoryError> {
        if kind == PersonKind::Agent {
            return Err(DirectoryError::Storage {
                path: self.place.clone(),
                message: "agents are registered one by one, never issued by reference".into(),
            });
        }
        let mut distinct: Vec<String> = references.to_vec();
        distinct.sort();
        distinct.dedup();
        // Proposed ids: a reference already held keeps its own (ON CONFLICT DO NOTHING),
        // and a replica inserting the same one at the same time makes this one wait, then
        // find its row.
        let proposed: Vec<Uuid> = distinct.iter().map(|r| new_id(r)).collect();
        let scope = scope.to_string();
        let found = self.run(|pool, place| async move {
            let client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let rows = match (&proposed[..], &distinct[..]) {
                ([id], [reference]) => {
                    let stmt = client.prepare_cached(ISSUE_ONE).await.map_err(|e| failed(&place, pg(e)))?;
                    client.query(&stmt, &[id, &kind.name(), &scope, reference]).await
                }
                _ => {
                    let stmt = client.prepare_cached(ISSUE).await.map_err(|e| failed(&place, pg(e)))?;
                    client.query(&stmt, &[&proposed, &kind.name(), &scope, &distinct]).await
                }
            }
            .map_err(|e| failed(&place, pg(e)))?;
            let mut ids: HashMap<String, Uuid> = HashMap::with_capacity(rows.len());
            let mut inserted = false;
            for row in &rows {
                ids.insert(row.get(0), row.get(1));
                inserted |= row.get::<_, bool>(2);
            }
            let missing: Vec<&String> = distinct.iter().filter(|r| !ids.contains_key(*r)).collect();
            if !missing.is_empty() {
                let rows =
                    client.query(FIND, &[&kind.name(), &scope, &missing]).await.map_err(|e| failed(&place, pg(e)))?;
                ids.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
            }
            Ok((ids, inserted))
        })?;
        let (ids, inserted) = found;
        let ids = references
            .iter()
            .map(|r| {
                ids.get(r).copied().ok_or_else(|| DirectoryError::Storage {
                    path: self.place.clone(),
                    message: format!("a {} was issued no id", kind.name()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((ids, inserted))
    }

    fn add_agent(&self, id: Uuid, role: &str, name: &str) -> Result<(), DirectoryError> {
        let (role, name) = (role.to_string(), name.to_string());
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            tx.batch_execute(DURABLE).await.map_err(|e| failed(&place, pg(e)))?;
            tx.execute(
                "INSERT INTO tracker_persons (id, kind, scope, reference) VALUES ($1, 'agent', $2, $3)",
                &[&id, &role, &name],
            )
            .await
            .map_err(|e| failed(&place, pg(e)))?;
            tx.commit().await.map_err(|e| failed(&place, pg(e)))
        })
    }

    fn agent(&self, role: &str, name: &str) -> Result<Option<Uuid>, DirectoryError> {
        let rows = self.query(
            "SELECT id FROM tracker_persons WHERE kind = 'agent' AND scope = $1 AND reference = $2 \
             ORDER BY created_at, id LIMIT 1",
            vec![Box::new(role.to_string()), Box::new(name.to_string())],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn find(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Option<Uuid>, DirectoryError> {
        if kind == PersonKind::Agent {
            return self.agent(scope, reference);
        }
        let rows = self.query(
            FIND_ONE,
            vec![Box::new(kind.name()), Box::new(scope.to_string()), Box::new(reference.to_string())],
        )?;
        Ok(rows.first().map(|r| r.get(1)))
    }

    fn lookup(&self, id: Uuid) -> Result<Lookup, DirectoryError> {
        let rows = self.query(
            "SELECT id, kind, scope, reference, created_at FROM tracker_persons WHERE id = $1",
            vec![Box::new(id)],
        )?;
        if let Some(p) = rows.first().and_then(person) {
            return Ok(Lookup::Known(p));
        }
        let rows =
            self.query("SELECT id, kind, erased_at, reason FROM tracker_erasures WHERE id = $1", vec![Box::new(id)])?;
        Ok(rows.first().and_then(erasure).map_or(Lookup::Unknown, Lookup::Erased))
    }

    fn persons(&self) -> Result<Vec<Person>, DirectoryError> {
        let rows = self.query(
            "SELECT id, kind, scope, reference, created_at FROM tracker_persons ORDER BY created_at, id",
            vec![],
        )?;
        Ok(rows.iter().filter_map(person).collect())
    }

    fn erasures(&self) -> Result<Vec<Erasure>, DirectoryError> {
        let rows =
            self.query("SELECT id, kind, erased_at, reason FROM tracker_erasures ORDER BY erased_at, id", vec![])?;
        Ok(rows.iter().filter_map(erasure).collect())
    }

    fn erased(&self, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>, DirectoryError> {
        let rows = self.query("SELECT id FROM tracker_erasures WHERE id = ANY($1)", vec![Box::new(ids.to_vec())])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn forget(&self, ids: &[Uuid], reason: &str, at: DateTime<Utc>) -> Result<Vec<Erasure>, DirectoryError> {
        let (ids, reason) = (ids.to_vec(), reason.to_string());
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            tx.batch_execute(DURABLE).await.map_err(|e| failed(&place, pg(e)))?;
            let mut erased = Vec::with_capacity(ids.len());
            for id in ids {
                let kind = tx
                    .query_opt("DELETE FROM tracker_persons WHERE id = $1 RETURNING kind", &[&id])
                    .await
                    .map_err(|e| failed(&place, pg(e)))?
                    .and_then(|r| PersonKind::parse(r.get(0)));
                // Dropping the transaction rolls every deletion back.
                let Some(kind) = kind else { return Err(DirectoryError::NoSuchPerson(id)) };
                tx.execute(
                    "INSERT INTO tracker_erasures (id, kind, erased_at, reason) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET erased_at = excluded.erased_at, reason = excluded.reason",
                    &[&id, &kind.name(), &at, &reason],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
                erased.push(Erasure { id, kind, erased_at: at, reason: reason.clone() });
            }
            // The erasing transaction's id (32 bits, as `backend_xmin` shows ids).
            let erasing: String = tx
                .query_one("SELECT (txid_current() % 4294967296)::text", &[])
                .await
                .map_err(|e| failed(&place, pg(e)))?
                .get(0);
            tx.commit().await.map_err(|e| failed(&place, pg(e)))?;
            // A deleted row stays in the table's pages (and its references in the
            // indexes' pages) until they are rewritten: rewrite them, table and indexes,
            // into new files. The rewrite keeps a row any running snapshot taken before the
            // erasure may still see: wait for those to end first (short transactions of
            // the replicas, usually none).
            let mut waited = std::time::Duration::ZERO;
            let older: Vec<i32> = loop {
                let older: Vec<i32> = client
                    .query(OLDER_SNAPSHOTS, &[&erasing])
                    .await
                    .map_err(|e| failed(&place, pg(e)))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if older.is_empty() || waited >= SNAPSHOTS_WAIT {
                    break older;
                }
                tokio::time::sleep(SNAPSHOT_POLL).await;
                waited += SNAPSHOT_POLL;
            };
            client.batch_execute("VACUUM FULL tracker_persons").await.map_err(|e| {
                failed(
                    &place,
                    format!(
                        "the persons are erased, but their bytes stay in the table's files until \
                         `VACUUM FULL tracker_persons` runs as the table's owner: {}",
                        pg(e)
                    ),
                )
            })?;
            if !older.is_empty() {
                return Err(failed(
                    &place,
                    format!(
                        "the persons are erased, but sessions {older:?} held a snapshot older than the erasure \
                         for {} s, so their bytes may stay in the table's files: run `VACUUM FULL \
                         tracker_persons` once those transactions end",
                        SNAPSHOTS_WAIT.as_secs()
                    ),
                ));
            }
            Ok(erased)
        })
    }

    fn sync(&self) -> Result<(), DirectoryError> {
        // A durable commit flushes the WAL up to its own record, so every id issued before
        // it is on disk too; taking a transaction id makes it write one.
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            tx.batch_execute(&format!("{DURABLE}; SELECT txid_current()")).await.map_err(|e| failed(&place, pg(e)))?;
            tx.commit().await.map_err(|e| failed(&place, pg(e)))
        })
    }

    fn adopt(&self, person: &Person) -> Result<Adopted, DirectoryError> {
        let person = person.clone();
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let client = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            client.batch_execute(DURABLE).await.map_err(|e| failed(&place, pg(e)))?;
            // One statement: the id's row, or the reference's (participants), or a new row.
            let inserted = client
                .execute(
                    "INSERT INTO tracker_persons (id, kind, scope, reference, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                    &[&person.id, &person.kind.name(), &person.scope, &person.reference, &person.created_at],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            if inserted > 0 {
                client.commit().await.map_err(|e| failed(&place, pg(e)))?;
                return Ok(Adopted::Added);
            }
            let here: Option<Uuid> = client
                .query_opt(
                    "SELECT id FROM tracker_persons WHERE id = $1 \
                     OR (kind = $2 AND kind <> 'agent' AND scope = $3 AND reference = $4) ORDER BY id = $1 DESC LIMIT 1",
                    &[&person.id, &person.kind.name(), &person.scope, &person.reference],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?
                .map(|r| r.get(0));
            Ok(match here {
                Some(id) if id == person.id => Adopted::AlreadyHere,
                Some(here) => Adopted::Conflict { here },
                None => Adopted::AlreadyHere,
            })
        })
    }

    fn adopt_erasure(&self, erasure: &Erasure) -> Result<bool, DirectoryError> {
        let erasure = erasure.clone();
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            tx.batch_execute(DURABLE).await.map_err(|e| failed(&place, pg(e)))?;
            let added = tx
                .execute(
                    "INSERT INTO tracker_erasures (id, kind, erased_at, reason) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&erasure.id, &erasure.kind.name(), &erasure.erased_at, &erasure.reason],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            tx.commit().await.map_err(|e| failed(&place, pg(e)))?;
            Ok(added > 0)
        })
    }
}
