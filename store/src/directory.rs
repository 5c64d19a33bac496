//! The directory of persons: who stands behind the opaque ids the log records.
//!
//! The log is append-only and hash-chained, so nothing personal goes into it in clear:
//! an agent (the holder of a token) is recorded as `role:<person id>`, and an aidant, a
//! trainee or a Pix candidate by the person id the directory issued for their
//! reference. The directory is its own SQLite file beside the log
//! (`DATA/directory.sqlite3`), the one place that can be edited and erased: erasing a
//! person's row ([`Directory::forget`]) leaves the log, its hashes and every figure as
//! they were, and nothing left links the id to anyone (the id is random, not derived
//! from the reference). `secure_delete` zeroes the freed bytes, and after an erasure the
//! file is vacuumed and its WAL truncated, so the reference survives in no file.
//!
//! What an erasure leaves is a row of [`Erasure`] (the id, the kind of person, when and
//! why), which holds nothing about the person: it lets the tracker say "personne
//! effacée" instead of "unknown", and answer what retention erased.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use uuid::Uuid;

/// What an erased person shows as, wherever a name or a reference would be.
pub const ERASED: &str = "personne effacée";

/// The kinds of persons the tracker records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonKind {
    /// An agent of ANCT, the OPCO, a structure…: the holder of a token.
    Agent,
    /// A professional aidant (Aidants Connect), by the structure's reference.
    Aidant,
    /// A trainee claiming annex costs, by the structure's reference.
    Trainee,
    /// A Pix candidate, by the campaign's reference.
    Candidate,
}

impl PersonKind {
    pub const ALL: [PersonKind; 4] = [Self::Agent, Self::Aidant, Self::Trainee, Self::Candidate];

    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Aidant => "aidant",
            Self::Trainee => "trainee",
            Self::Candidate => "candidate",
        }
    }

    /// How exports in French name it.
    pub fn french(self) -> &'static str {
        match self {
            Self::Agent => "agent (détenteur d'un jeton)",
            Self::Aidant => "aidant",
            Self::Trainee => "stagiaire",
            Self::Candidate => "candidat Pix",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One person as the directory holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: Uuid,
    pub kind: PersonKind,
    /// Where the reference is unique: the structure of an aidant, the purchase of a
    /// trainee, the campaign of a candidate; the role of an agent.
    pub scope: String,
    /// The partner's reference (aidants, trainees, candidates) or the agent's name.
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

/// The trace an erasure leaves: nothing about the person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    pub id: Uuid,
    pub kind: PersonKind,
    pub erased_at: DateTime<Utc>,
    /// Why: `request` (the person asked), `retention` (the period ran out).
    pub reason: String,
}

/// What the directory says about an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Known(Person),
    Erased(Erasure),
    /// Not an id the directory issued (a system actor, or another directory's id).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory of persons ({path}) failed: {message}")]
    Storage { path: String, message: String },
    #[error("no person {0} in the directory")]
    NoSuchPerson(Uuid),
}

/// The directory (see the module doc). Cheap to share behind an `Arc`.
pub struct Directory {
    path: PathBuf,
    /// How new ids are made: random (a data directory), or derived from the reference
    /// ([`derived_id`]: tests, and the demo's invented references, so that a seeding
    /// is the same every time).
    derived: bool,
    /// No cache beside it: another process (`tracker forget`) may erase a row at any time.
    conn: Mutex<Connection>,
    /// Ids issued since the last [`Directory::make_durable`].
    pending: std::sync::atomic::AtomicBool,
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

impl Directory {
    pub const FILE: &'static str = "directory.sqlite3";

    /// Opens (or creates) `DATA/directory.sqlite3`.
    pub fn open(data_dir: &Path) -> Result<Self, DirectoryError> {
        let path = data_dir.join(Self::FILE);
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
            // cheap (NORMAL), and [`Directory::make_durable`] checkpoints before the write,
            // once for a whole file of references.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        })()
        .map_err(|e| failed(&e))?;
        Ok(Self { path, derived: false, conn: Mutex::new(conn), pending: Default::default() })
    }

    /// The same directory, issuing ids derived from the references (see [`derived_id`]):
    /// only for invented references (the demo), never for real persons, whose ids must
    /// say nothing of them.
    pub fn deriving_ids(mut self) -> Self {
        self.derived = true;
        self
    }

    /// A directory in memory, for tests and tools without a data directory.
    pub fn in_memory() -> Self {
        let conn = Connection::open_in_memory().expect("SQLite opens in memory");
        conn.execute_batch(SCHEMA).expect("the directory's schema");
        Self { path: PathBuf::from(":memory:"), derived: true, conn: Mutex::new(conn), pending: Default::default() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, e: rusqlite::Error) -> DirectoryError {
        DirectoryError::Storage { path: self.path.display().to_string(), message: e.to_string() }
    }

    /// Registers an agent (a token's holder) under a new id.
    pub fn add_agent(&self, role: &str, name: &str) -> Result<Uuid, DirectoryError> {
        let id = Uuid::new_v4();
        let conn = self.conn.lock().expect("directory poisoned");
        conn.execute(
            "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, 'agent', ?2, ?3, ?4)",
            params![id.to_string(), role, name.trim(), Utc::now().to_rfc3339()],
        )
        .map_err(|e| self.failed(e))?;
        Ok(id)
    }

    /// Registers an agent under a given id (tests that need a known id).
    pub fn add_agent_with_id(&self, id: Uuid, role: &str, name: &str) -> Result<(), DirectoryError> {
        let conn = self.conn.lock().expect("directory poisoned");
        conn.execute(
            "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, 'agent', ?2, ?3, ?4)",
            params![id.to_string(), role, name.trim(), Utc::now().to_rfc3339()],
        )
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The agent of `role` called `name`, registered if the directory has none: for the
    /// migration of labels written before the directory (one person per role and name).
    pub fn agent(&self, role: &str, name: &str) -> Result<Uuid, DirectoryError> {
        let found: Option<String> = {
            let conn = self.conn.lock().expect("directory poisoned");
            conn.query_row(
                "SELECT id FROM persons WHERE kind = 'agent' AND scope = ?1 AND reference = ?2 ORDER BY created_at LIMIT 1",
                params![role, name.trim()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.failed(e))?
        };
        match found.and_then(|s| Uuid::parse_str(&s).ok()) {
            Some(id) => Ok(id),
            None => self.add_agent(role, name),
        }
    }

    /// The id of the person a partner's reference names in `scope`, issued on first use
    /// (random: the id says nothing of the reference). References are compared trimmed
    /// and in upper case, as the domain compares them.
    pub fn pseudonym(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Uuid, DirectoryError> {
        Ok(self.pseudonyms(kind, scope, &[reference])?[0])
    }

    /// [`pseudonym`](Self::pseudonym) for many references at once, in one transaction
    /// (the seeders issue thousands).
    pub fn pseudonyms(&self, kind: PersonKind, scope: &str, references: &[&str]) -> Result<Vec<Uuid>, DirectoryError> {
        self.issue(kind, scope, references, self.derived, false)
    }

    /// [`pseudonyms`](Self::pseudonyms) for references the tracker invented itself (the
    /// demo's and the plan's seeders): their ids are derived from them ([`derived_id`]),
    /// so that a seeding writes the same log every time. Never for real persons. One
    /// erased before stays erased (its id is given back, no row): seeding again must not
    /// link the log's id to its reference again.
    pub fn invented_pseudonyms(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[&str],
    ) -> Result<Vec<Uuid>, DirectoryError> {
        self.issue(kind, scope, references, true, true)
    }

    fn issue(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[&str],
        derived: bool,
        invented: bool,
    ) -> Result<Vec<Uuid>, DirectoryError> {
        let mut conn = self.conn.lock().expect("directory poisoned");
        let tx = conn.transaction().map_err(|e| self.failed(e))?;
        let mut ids = Vec::with_capacity(references.len());
        {
            let mut find = tx
                .prepare_cached("SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3")
                .map_err(|e| self.failed(e))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO persons (id, kind, scope, reference, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.failed(e))?;
            let mut was_erased =
                tx.prepare_cached("SELECT 1 FROM erasures WHERE id = ?1").map_err(|e| self.failed(e))?;
            let now = Utc::now().to_rfc3339();
            for r in references {
                let reference = normalise(r);
                let found: Option<String> = find
                    .query_row(params![kind.name(), scope, reference], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.failed(e))?;
                ids.push(match found.and_then(|s| Uuid::parse_str(&s).ok()) {
                    Some(id) => id,
                    None => {
                        let id = if derived { derived_id(kind, scope, &reference) } else { Uuid::new_v4() };
                        let erased = invented
                            && was_erased
                                .query_row([id.to_string()], |_| Ok(()))
                                .optional()
                                .map_err(|e| self.failed(e))?
                                .is_some();
                        if !erased {
                            insert
                                .execute(params![id.to_string(), kind.name(), scope, reference, now])
                                .map_err(|e| self.failed(e))?;
                            self.pending.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        id
                    }
                });
            }
        }
        tx.commit().map_err(|e| self.failed(e))?;
        Ok(ids)
    }

    /// Makes the ids issued so far durable (a checkpoint, which syncs the file): call it
    /// before writing events that carry them.
    pub fn make_durable(&self) -> Result<(), DirectoryError> {
        if !self.pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let conn = self.conn.lock().expect("directory poisoned");
        conn.execute_batch("PRAGMA wal_checkpoint(FULL);").map_err(|e| self.failed(e))
    }

    /// The id already issued for a reference, without issuing one.
    pub fn find(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Option<Uuid>, DirectoryError> {
        let conn = self.conn.lock().expect("directory poisoned");
        let found: Option<String> = conn
            .query_row(
                "SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3",
                params![kind.name(), scope, normalise(reference)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.failed(e))?;
        Ok(found.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    /// What the directory holds about an id.
    pub fn lookup(&self, id: Uuid) -> Result<Lookup, DirectoryError> {
        let conn = self.conn.lock().expect("directory poisoned");
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

    /// What to show for an id: the reference or name, [`ERASED`], or the id itself when
    /// the directory never issued it.
    pub fn display(&self, id: &str) -> String {
        match Uuid::parse_str(id).ok().map(|u| self.lookup(u)) {
            Some(Ok(Lookup::Known(p))) => p.reference,
            Some(Ok(Lookup::Erased(_))) => ERASED.to_string(),
            _ => id.to_string(),
        }
    }

    /// Every person held, oldest first.
    pub fn persons(&self) -> Result<Vec<Person>, DirectoryError> {
        let conn = self.conn.lock().expect("directory poisoned");
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

    /// The persons whose reference or name is exactly `text` (case and spaces aside).
    pub fn search(&self, text: &str) -> Result<Vec<Person>, DirectoryError> {
        let wanted = normalise(text);
        Ok(self.persons()?.into_iter().filter(|p| normalise(&p.reference) == wanted).collect())
    }

    /// Every erasure, oldest first.
    pub fn erasures(&self) -> Result<Vec<Erasure>, DirectoryError> {
        let conn = self.conn.lock().expect("directory poisoned");
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

    /// Erases a person: their row goes, an [`Erasure`] stays; then the file is vacuumed
    /// and its WAL truncated, so that their reference is in no byte of the directory.
    pub fn forget(&self, id: Uuid, reason: &str) -> Result<Erasure, DirectoryError> {
        Ok(self.forget_many(&[id], reason)?.remove(0))
    }

    /// [`forget`](Self::forget) for several persons, with one vacuum.
    pub fn forget_many(&self, ids: &[Uuid], reason: &str) -> Result<Vec<Erasure>, DirectoryError> {
        let mut conn = self.conn.lock().expect("directory poisoned");
        let tx = conn.transaction().map_err(|e| self.failed(e))?;
        let mut erased = Vec::new();
        let now = Utc::now();
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
                params![id.to_string(), kind.name(), now.to_rfc3339(), reason],
            )
            .map_err(|e| self.failed(e))?;
            erased.push(Erasure { id, kind, erased_at: now, reason: reason.to_string() });
        }
        tx.commit().map_err(|e| self.failed(e))?;
        // The WAL still holds the pages as they were before the deletion: copy it back,
        // rebuild the file, and cut the WAL to nothing.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.failed(e))?;
        Ok(erased)
    }
}

/// The id an in-memory directory (or the demo's) issues for a reference: a UUID v5 of it,
/// which anyone can recompute, so never for real persons.
pub fn derived_id(kind: PersonKind, scope: &str, reference: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_07de_7e57_4d1d_9e2f_0000_0000_0024);
    Uuid::new_v5(&NAMESPACE, format!("{}:{scope}:{}", kind.name(), normalise(reference)).as_bytes())
}

fn normalise(reference: &str) -> String {
    reference.trim().to_uppercase()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
        found
    }

    #[test]
    fn a_reference_is_found_through_an_index_not_a_scan_of_every_person() {
        let dir = tempfile::tempdir().unwrap();
        let directory = Directory::open(dir.path()).unwrap();
        let conn = directory.conn.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3")
            .unwrap()
            .query_map(params!["aidant", "s", "A-1"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|step| step.contains("USING INDEX persons_lookup")), "{plan:?}");
    }

    #[test]
    fn a_reference_gets_one_random_id_per_scope() {
        let dir = tempfile::tempdir().unwrap();
        let d = Directory::open(dir.path()).unwrap();
        let a = d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-0001").unwrap();
        assert_eq!(d.pseudonym(PersonKind::Aidant, "s1", " aidant-0001 ").unwrap(), a, "same person, same id");
        assert_ne!(d.pseudonym(PersonKind::Aidant, "s2", "AIDANT-0001").unwrap(), a, "another structure's aidant");
        let again = Directory::open(dir.path()).unwrap();
        assert_eq!(again.find(PersonKind::Aidant, "s1", "AIDANT-0001").unwrap(), Some(a), "durable");
        assert_eq!(again.display(&a.to_string()), "AIDANT-0001");
    }

    #[test]
    fn forgetting_leaves_no_byte_of_the_reference_and_says_erased() {
        let dir = tempfile::tempdir().unwrap();
        let d = Directory::open(dir.path()).unwrap();
        let marie = d.add_agent("opco", "Marie Dupont").unwrap();
        let refs: Vec<String> = (0..500).map(|i| format!("AIDANT-{i:05}")).collect();
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let ids = d.pseudonyms(PersonKind::Aidant, "s1", &refs).unwrap();
        assert!(!files_contain(dir.path(), b"Marie Dupont").is_empty());
        d.forget(marie, "request").unwrap();
        d.forget(ids[3], "request").unwrap();
        assert_eq!(files_contain(dir.path(), b"Marie Dupont"), Vec::<String>::new());
        assert_eq!(files_contain(dir.path(), b"AIDANT-00003"), Vec::<String>::new());
        assert!(!files_contain(dir.path(), b"AIDANT-00004").is_empty(), "the others stay");
        assert_eq!(d.display(&marie.to_string()), ERASED);
        assert!(matches!(d.lookup(ids[3]).unwrap(), Lookup::Erased(Erasure { kind: PersonKind::Aidant, .. })));
        assert!(matches!(d.forget(ids[3], "request"), Err(DirectoryError::NoSuchPerson(_))));
        // The same reference coming back is a new person: nothing links it to the erased one.
        assert_ne!(d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-00003").unwrap(), ids[3]);
    }

    #[test]
    fn an_invented_reference_gets_its_derived_id_and_once_erased_stays_erased() {
        let dir = tempfile::tempdir().unwrap();
        let d = Directory::open(dir.path()).unwrap();
        let ids = d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap();
        assert_eq!(ids[0], derived_id(PersonKind::Aidant, "s1", "aidant-001"), "the same log at every seeding");
        assert_eq!(d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-001").unwrap(), ids[0], "a user's later command");
        d.forget(ids[0], "request").unwrap();
        // Seeded again: the log's id comes back, not the reference.
        let again = d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap();
        assert_eq!(again, ids);
        assert!(matches!(d.lookup(ids[0]).unwrap(), Lookup::Erased(_)));
        assert_eq!(files_contain(dir.path(), b"AIDANT-001"), Vec::<String>::new());
    }
}
