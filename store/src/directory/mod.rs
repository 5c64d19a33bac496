//! The directory of persons: who stands behind the opaque ids the log records.
//!
//! The log is append-only and hash-chained, so nothing personal goes into it in clear:
//! an agent (the holder of a token) is recorded as `role:<person id>`, and an aidant, a
//! trainee or a Pix candidate by the person id the directory issued for their
//! reference. The directory is the one place that can be edited and erased: erasing a
//! person's row ([`Directory::forget`]) leaves the log, its hashes and every figure as
//! they were, and nothing left links the id to anyone (the id is random, not derived
//! from the reference).
//!
//! It lives where the log's writers all reach it, so that one reference gets one id and
//! an erasure is seen by every process at once:
//! - beside the embedded log, its own SQLite file (`DATA/directory.sqlite3`,
//!   [`sqlite`]): `secure_delete` zeroes the freed bytes, and after an erasure the file
//!   is vacuumed and its WAL truncated, so the reference survives in no file;
//! - in the database of a PostgreSQL log, shared by its replicas (two tables beside the
//!   log, [`postgres`]): an erasure rewrites the table and its indexes (`VACUUM FULL`),
//!   so the reference survives in none of their files; the server's WAL and backups keep
//!   it until they are recycled (see the README).
//!
//! What an erasure leaves is a row of [`Erasure`] (the id, the kind of person, when and
//! why), which holds nothing about the person: it lets the tracker say "personne
//! effacée" instead of "unknown", and answer what retention erased.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// `path` is the file, or the database's URL without its password.
    #[error("the directory of persons ({path}) failed: {message}")]
    Storage { path: String, message: String },
    #[error("no person {0} in the directory")]
    NoSuchPerson(Uuid),
}

/// Where the persons' rows are kept: what each backend does, in its own terms. The
/// calls are synchronous and short (an indexed read or a small transaction), so that
/// every caller (a resolver, a file's parser, a command-line tool) can make them.
trait Rows: Send + Sync {
    /// Where the rows are, for errors (never a password).
    fn place(&self) -> &str;
    /// The ids of `references` (normalised) in `scope`, the missing ones inserted with
    /// the ids `new_id` makes; whether any was inserted.
    fn issue(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[String],
        new_id: &(dyn Fn(&str) -> Uuid + Sync),
    ) -> Result<(Vec<Uuid>, bool), DirectoryError>;
    fn add_agent(&self, id: Uuid, role: &str, name: &str) -> Result<(), DirectoryError>;
    /// The oldest agent of `role` called `name`.
    fn agent(&self, role: &str, name: &str) -> Result<Option<Uuid>, DirectoryError>;
    fn find(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Option<Uuid>, DirectoryError>;
    fn lookup(&self, id: Uuid) -> Result<Lookup, DirectoryError>;
    fn persons(&self) -> Result<Vec<Person>, DirectoryError>;
    fn erasures(&self) -> Result<Vec<Erasure>, DirectoryError>;
    /// Those of `ids` that were erased.
    fn erased(&self, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>, DirectoryError>;
    /// Deletes the rows and records the erasures in one transaction (none if one id is
    /// unknown), then leaves no byte of the rows in the backend's files.
    fn forget(&self, ids: &[Uuid], reason: &str, at: DateTime<Utc>) -> Result<Vec<Erasure>, DirectoryError>;
    /// Makes the rows written so far durable.
    fn sync(&self) -> Result<(), DirectoryError>;
    /// Takes a person from another directory, with their id and date.
    fn adopt(&self, person: &Person) -> Result<Adopted, DirectoryError>;
    /// Takes an erasure from another directory; whether it was new here.
    fn adopt_erasure(&self, erasure: &Erasure) -> Result<bool, DirectoryError>;
}

/// What [`Directory::adopt`] did with a person from another directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    Added,
    /// The same id was here already.
    AlreadyHere,
    /// The same reference has another id here (two directories each issued one): the
    /// person is not added; the log's events carry both ids.
    Conflict {
        here: Uuid,
    },
    /// The id was erased here: the person is not brought back.
    ErasedHere,
}

/// The directory (see the module doc). Cheap to share behind an `Arc`.
pub struct Directory {
    rows: Box<dyn Rows>,
    /// How new ids are made: random (a data directory), or derived from the reference
    /// ([`derived_id`]: tests, and the demo's invented references, so that a seeding
    /// is the same every time).
    derived: bool,
    /// Ids issued since the last [`Directory::make_durable`].
    pending: AtomicBool,
}

impl Directory {
    pub const FILE: &'static str = "directory.sqlite3";

    /// Opens (or creates) `DATA/directory.sqlite3`: the directory of an embedded log.
    pub fn open(data_dir: &Path) -> Result<Self, DirectoryError> {
        Ok(Self::with_rows(Box::new(sqlite::SqliteRows::open(data_dir)?), false))
    }

    /// Connects to the directory in the database a `postgres://` URL names (the log's,
    /// shared by its replicas), creating its tables in the URL's schema if missing.
    pub fn connect_postgres(url: &str) -> Result<Self, DirectoryError> {
        Ok(Self::with_rows(Box::new(postgres::PostgresRows::connect(url)?), false))
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
        Self::with_rows(Box::new(sqlite::SqliteRows::in_memory()), true)
    }

    fn with_rows(rows: Box<dyn Rows>, derived: bool) -> Self {
        Self { rows, derived, pending: AtomicBool::new(false) }
    }

    /// Where the directory is: its file, or its database's URL without the password.
    pub fn place(&self) -> &str {
        self.rows.place()
    }

    /// Registers an agent (a token's holder) under a new id.
    pub fn add_agent(&self, role: &str, name: &str) -> Result<Uuid, DirectoryError> {
        let id = Uuid::new_v4();
        self.rows.add_agent(id, role, name.trim())?;
        Ok(id)
    }

    /// Registers an agent under a given id (tests that need a known id).
    pub fn add_agent_with_id(&self, id: Uuid, role: &str, name: &str) -> Result<(), DirectoryError> {
        self.rows.add_agent(id, role, name.trim())
    }

    /// The agent of `role` called `name`, registered if the directory has none: for the
    /// migration of labels written before the directory (one person per role and name).
    pub fn agent(&self, role: &str, name: &str) -> Result<Uuid, DirectoryError> {
        match self.rows.agent(role, name.trim())? {
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
        self.issue(kind, scope, references, self.derived)
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
        let derived = |r: &str| derived_id(kind, scope, &normalise(r));
        let erased = self.rows.erased(&references.iter().map(|r| derived(r)).collect::<Vec<_>>())?;
        let kept: Vec<&str> = references.iter().copied().filter(|r| !erased.contains(&derived(r))).collect();
        let mut issued = self.issue(kind, scope, &kept, true)?.into_iter();
        Ok(references
            .iter()
            .map(|r| {
                let id = derived(r);
                if erased.contains(&id) { id } else { issued.next().expect("one id per kept reference") }
            })
            .collect())
    }

    fn issue(
        &self,
        kind: PersonKind,
        scope: &str,
        references: &[&str],
        derived: bool,
    ) -> Result<Vec<Uuid>, DirectoryError> {
        let references: Vec<String> = references.iter().map(|r| normalise(r)).collect();
        let new_id = |reference: &str| if derived { derived_id(kind, scope, reference) } else { Uuid::new_v4() };
        let (ids, inserted) = self.rows.issue(kind, scope, &references, &new_id)?;
        if inserted {
            self.pending.store(true, Ordering::SeqCst);
        }
        Ok(ids)
    }

    /// Makes the ids issued so far durable: call it before writing events that carry
    /// them (a checkpoint of the SQLite file; one durable commit on PostgreSQL, which
    /// flushes every id issued before it).
    pub fn make_durable(&self) -> Result<(), DirectoryError> {
        if !self.pending.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.rows.sync()
    }

    /// The id already issued for a reference, without issuing one.
    pub fn find(&self, kind: PersonKind, scope: &str, reference: &str) -> Result<Option<Uuid>, DirectoryError> {
        self.rows.find(kind, scope, &normalise(reference))
    }

    /// What the directory holds about an id.
    pub fn lookup(&self, id: Uuid) -> Result<Lookup, DirectoryError> {
        self.rows.lookup(id)
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
        self.rows.persons()
    }

    /// The persons whose reference or name is exactly `text` (case and spaces aside).
    pub fn search(&self, text: &str) -> Result<Vec<Person>, DirectoryError> {
        let wanted = normalise(text);
        Ok(self.persons()?.into_iter().filter(|p| normalise(&p.reference) == wanted).collect())
    }

    /// Every erasure, oldest first.
    pub fn erasures(&self) -> Result<Vec<Erasure>, DirectoryError> {
        self.rows.erasures()
    }

    /// Takes a person from another directory (an older replica's file), with their id and
    /// the date they were registered.
    pub fn adopt(&self, person: &Person) -> Result<Adopted, DirectoryError> {
        if let Lookup::Erased(_) = self.lookup(person.id)? {
            return Ok(Adopted::ErasedHere);
        }
        let person = Person { reference: normalise_for(person.kind, &person.reference), ..person.clone() };
        self.rows.adopt(&person)
    }

    /// Takes an erasure from another directory: the id shows as erased here too.
    pub fn adopt_erasure(&self, erasure: &Erasure) -> Result<bool, DirectoryError> {
        self.rows.adopt_erasure(erasure)
    }

    /// Erases a person: their row goes, an [`Erasure`] stays, and no byte of the row is
    /// left in the directory's files.
    pub fn forget(&self, id: Uuid, reason: &str) -> Result<Erasure, DirectoryError> {
        Ok(self.forget_many(&[id], reason)?.remove(0))
    }

    /// [`forget`](Self::forget) for several persons, in one go.
    pub fn forget_many(&self, ids: &[Uuid], reason: &str) -> Result<Vec<Erasure>, DirectoryError> {
        // To the microsecond, as PostgreSQL keeps it: what is returned is what is read back.
        self.rows.forget(ids, reason, chrono::SubsecRound::trunc_subsecs(Utc::now(), 6))
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

/// Agents' names are kept as written (trimmed); references in upper case.
fn normalise_for(kind: PersonKind, reference: &str) -> String {
    match kind {
        PersonKind::Agent => reference.trim().to_string(),
        _ => normalise(reference),
    }
}
