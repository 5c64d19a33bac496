//! The directory of an embedded log: its own SQLite file beside the log, so that it can
//! be erased while the log stays as it is.

use super::{Adopted, DirectoryError, Erasure, Lookup, Person, PersonKind, Rows};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use uuid::Uuid;

pub(super) struct SqliteRows {
    path: String,
    /// No cache beside it: another process (`tracker forget`) may erase a row at any time.
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS persons (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    reference   TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS persons_by_reference ON persons (kind, scope, reference) WHERE kind <> 'agent';
-- The lookups name the kind as a parameter, which the partial index above cannot serve
-- (SQLite cannot prove `kind <> 'agent'` from `kind = ?`): without this one every lookup
-- scanned the table (an import of 20 000 lines took 3x as long).
CREATE INDEX IF NOT EXISTS persons_lookup ON persons (kind, scope, reference);
CREATE TABLE IF NOT EXISTS erasures (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    erased_at   TEXT NOT NULL,
    reason      TEXT NOT NULL
) STRICT;
";

impl SqliteRows {
    pub(super) fn open(data_dir: &Path) -> Result<Self, DirectoryError> {
        let path = data_dir.join(super::Directory::FILE);
        let failed = |e: &dyn std::fmt::Display| DirectoryError::Storage {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| failed(&e))?;
        let conn = Connection::open(&path).map_err(|e| failed(&e))?;
        (|| -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // Freed pages are overwritten with zeros: an erased row leaves no bytes behind.
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // An id must be durable before an event that carries it is written: commits are
            // cheap (NORMAL), and `sync` checkpoints before the write, once for a whole
            // file of references.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        })()
        .map_err(|e| failed(&e))?;
        Ok(Self { path: path.display().to_string(), conn: Mutex::new(conn) })
    }

    pub(super) fn in_memory() -> Self {
        let conn = Connection::open_in_memory().expect("SQLite opens in memory");
        conn.execute_batch(SCHEMA).expect("the directory's schema");
        Self { path: ":memory:".into(), conn: Mutex::new(conn) }
    }

    fn failed(&self, e: rusqlite::Error) -> DirectoryError {
        DirectoryError::Storage { path: self.path.clone(), message: e.to_string() }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("directory poisoned")
    }

    #[cfg(test)]
    pub(super) fn query_plan(&self, sql: &str) -> Vec<String> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params!["aidant", "s", "A-1"], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect()
    }
}

impl Rows for SqliteRows {
    fn place(&self) -> &str {
        &self.path
    }

    fn issue(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[String],
        new_id: &(dyn Fn(&str) -> Uuid + Sync),
    ) -> Result<(Vec<Uuid>, bool), DirectoryError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.failed(e))?;
        let mut ids = Vec::with_capacity(references.len());
        let mut inserted = false;
        {
            let mut find = tx
                .prepare_cached("SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3")
                .map_err(|e| self.failed(e))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.failed(e))?;
            let now = Utc::now().to_rfc3339();
            for reference in references {
                let found: Option<String> = find
                    .query_row(params![kind.name(), scope, reference], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.failed(e))?;
                ids.push(match found.and_then(|s| Uuid::parse_str(&s).ok()) {
                    Some(id) => id,
                    None => {
                        let id = new_id(reference);
                        insert
                            .execute(params![id.to_string(), kind.name(), scope, reference, now])
                            .map_err(|e| self.failed(e))?;
                        inserted = true;
                        id
                    }
                });
            }
        }
        tx.commit().map_err(|e| self.failed(e))?;
        Ok((ids, inserted))
    }

    fn add_agent(&self, id: Uuid, role: &str, name: &str) -> Result<(), DirectoryError> {
        self.conn()
            .execute(
                "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, 'agent', ?2, ?3, ?4)",
                params![id.to_string(), role, name, Utc::now().to_rfc3339()],
            )
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    fn agent(&self, role: &str, name: &str) -> Result<Option<Uuid>, DirectoryError> {
        let found: Option<String> = self
            .conn()
            .query_row(
                "SELECT id FROM persons WHERE kind = 'agent' AND scope = ?1 AND reference = ?2 ORDER BY created_at LIMIT 1",
                params![role, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.failed(e))?;
        Ok(found.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    fn find(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Option<Uuid>, DirectoryError> {
        let found: Option<String> = self
            .conn()
            .query_row(
                "SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3",
                params![kind.name(), scope, reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.failed(e))?;
        Ok(found.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    fn lookup(&self, id: Uuid) -> Result<Lookup, DirectoryError> {
        let conn = self.conn();
        let person = conn
            .query_row("SELECT kind, scope, reference, created_at FROM persons WHERE id = ?1", [id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })
            .optional()
            .map_err(|e| self.failed(e))?;
        if let Some((kind, scope, reference, created_at)) = person {
            let kind = PersonKind::parse(&kind).unwrap_or(PersonKind::Agent);
            return Ok(Lookup::Known(Person { id, kind, scope, reference, created_at: instant(&created_at) }));
        }
        let erased = conn
            .query_row("SELECT kind, erased_at, reason FROM erasures WHERE id = ?1", [id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .optional()
            .map_err(|e| self.failed(e))?;
        Ok(match erased {
            Some((kind, erased_at, reason)) => Lookup::Erased(Erasure {
                id,
                kind: PersonKind::parse(&kind).unwrap_or(PersonKind::Agent),
                erased_at: instant(&erased_at),
                reason,
            }),
            None => Lookup::Unknown,
        })
    }

    fn persons(&self) -> Result<Vec<Person>, DirectoryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, kind, scope, reference, created_at FROM persons ORDER BY created_at, id")
            .map_err(|e| self.failed(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.failed(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, scope, reference, created_at) = row.map_err(|e| self.failed(e))?;
            let (Ok(id), Some(kind)) = (Uuid::parse_str(&id), PersonKind::parse(&kind)) else { continue };
            out.push(Person { id, kind, scope, reference, created_at: instant(&created_at) });
        }
        Ok(out)
    }

    fn erasures(&self) -> Result<Vec<Erasure>, DirectoryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, kind, erased_at, reason FROM erasures ORDER BY erased_at, id")
            .map_err(|e| self.failed(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })
            .map_err(|e| self.failed(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, erased_at, reason) = row.map_err(|e| self.failed(e))?;
            let (Ok(id), Some(kind)) = (Uuid::parse_str(&id), PersonKind::parse(&kind)) else { continue };
            out.push(Erasure { id, kind, erased_at: instant(&erased_at), reason });
        }
        Ok(out)
    }

    fn erased(&self, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>, DirectoryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM erasures WHERE id = ?1").map_err(|e| self.failed(e))?;
        let mut erased = std::collections::HashSet::new();
        for id in ids {
            if stmt.exists([id.to_string()]).map_err(|e| self.failed(e))? {
                erased.insert(*id);
            }
        }
        Ok(erased)
    }

    fn forget(&self, ids: &[Uuid], reason: &str, at: DateTime<Utc>) -> Result<Vec<Erasure>, DirectoryError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.failed(e))?;
        let mut erased = Vec::new();
        for &id in ids {
            let kind: Option<String> = tx
                .query_row("SELECT kind FROM persons WHERE id = ?1", [id.to_string()], |r| r.get(0))
                .optional()
                .map_err(|e| self.failed(e))?;
            let Some(kind) = kind.as_deref().and_then(PersonKind::parse) else {
                return Err(DirectoryError::NoSuchPerson(id));
            };
            tx.execute("DELETE FROM persons WHERE id = ?1", [id.to_string()]).map_err(|e| self.failed(e))?;
            tx.execute(
                "INSERT OR REPLACE INTO erasures (id, kind, erased_at, reason) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), kind.name(), at.to_rfc3339(), reason],
            )
            .map_err(|e| self.failed(e))?;
            erased.push(Erasure { id, kind, erased_at: at, reason: reason.to_string() });
        }
        tx.commit().map_err(|e| self.failed(e))?;
        // The WAL still holds the pages as they were before the deletion: copy it back,
        // rebuild the file, and cut the WAL to nothing.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.failed(e))?;
        Ok(erased)
    }

    fn sync(&self) -> Result<(), DirectoryError> {
        self.conn().execute_batch("PRAGMA wal_checkpoint(FULL);").map_err(|e| self.failed(e))
    }

    fn adopt(&self, person: &Person) -> Result<Adopted, DirectoryError> {
        if let Lookup::Known(_) = self.lookup(person.id)? {
            return Ok(Adopted::AlreadyHere);
        }
        if person.kind != PersonKind::Agent
            && let Some(here) = self.find(person.kind, &person.scope, &person.reference)?
        {
            return Ok(Adopted::Conflict { here });
        }
        self.conn()
            .execute(
                "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    person.id.to_string(),
                    person.kind.name(),
                    person.scope,
                    person.reference,
                    person.created_at.to_rfc3339()
                ],
            )
            .map_err(|e| self.failed(e))?;
        Ok(Adopted::Added)
    }

    fn adopt_erasure(&self, erasure: &Erasure) -> Result<bool, DirectoryError> {
        let added = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO erasures (id, kind, erased_at, reason) VALUES (?1, ?2, ?3, ?4)",
                params![erasure.id.to_string(), erasure.kind.name(), erasure.erased_at.to_rfc3339(), erasure.reason],
            )
            .map_err(|e| self.failed(e))?;
        Ok(added > 0)
    }
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
}
