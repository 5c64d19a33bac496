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
        let config = config(url).map_err(|e| storage(crate::scrub_password(&e.to_string(), url)))?;
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
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
            let inserted = tx
                .execute(
                    "INSERT INTO tracker_persons (id, kind, scope, reference) \
                     SELECT id, $2, $3, reference FROM unnest($1::uuid[], $4::text[]) AS r (id, reference) \
                     ON CONFLICT (kind, scope, reference) WHERE kind <> 'agent' DO NOTHING",
                    &[&proposed, &kind.name(), &scope, &distinct],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            let rows = tx.query(FIND, &[&kind.name(), &scope, &distinct]).await.map_err(|e| failed(&place, pg(e)))?;
            tx.commit().await.map_err(|e| failed(&place, pg(e)))?;
            let ids: HashMap<String, Uuid> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok((ids, inserted > 0))
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
            let client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            client
                .execute(
                    "INSERT INTO tracker_persons (id, kind, scope, reference) VALUES ($1, 'agent', $2, $3)",
                    &[&id, &role, &name],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            Ok(())
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
            FIND,
            vec![Box::new(kind.name()), Box::new(scope.to_string()), Box::new(vec![reference.to_string()])],
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

    fn forget(&self, ids: &[Uuid], reason: &str, at: DateTime<Utc>) -> Result<Vec<Erasure>, DirectoryError> {
        let (ids, reason) = (ids.to_vec(), reason.to_string());
        self.run(|pool, place| async move {
            let mut client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let tx = client.transaction().await.map_err(|e| failed(&place, pg(e)))?;
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
            tx.commit().await.map_err(|e| failed(&place, pg(e)))?;
            // A deleted row stays in the table's pages (and its references in the
            // indexes' pages) until they are rewritten: rewrite them now, table and
            // indexes, into new files.
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
            Ok(erased)
        })
    }

    fn sync(&self) -> Result<(), DirectoryError> {
        // Every statement above commits durably (PostgreSQL's `synchronous_commit`).
        Ok(())
    }

    fn adopt(&self, person: &Person) -> Result<Adopted, DirectoryError> {
        let person = person.clone();
        self.run(|pool, place| async move {
            let client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
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
            let client = pool.get().await.map_err(|e| failed(&place, pool_error(e)))?;
            let added = client
                .execute(
                    "INSERT INTO tracker_erasures (id, kind, erased_at, reason) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&erasure.id, &erasure.kind.name(), &erasure.erased_at, &erasure.reason],
                )
                .await
                .map_err(|e| failed(&place, pg(e)))?;
            Ok(added > 0)
        })
    }
}
