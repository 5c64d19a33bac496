//! Personal data (RGPD): erasure (`tracker forget`), the subject-access export,
//! retention, and a replica's own directory shared (`tracker share-directory`); the
//! migration of logs written before the directory of persons is in [`crate::migrate`].
//! The log never changes here; only the directory of persons beside it does.

pub use crate::migrate::{MIGRATION_ACTOR, Migration, migrate, migrate_postgres};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::directory::{Lookup, Person};
use store::{Directory, EventStore, SqliteStore};
use uuid::Uuid;

/// The roles a token holder's actor starts with.
const ROLES: [&str; 5] = ["anct", "opco", "structure", "copil", "auditor"];

/// A token holder's actor as written before the directory: `role`, the name, and the
/// token's first 8 hex digits (`opco:Marie Dupont (token 3f2a9c1e)`). Local tools
/// (token 00000000) and processes are not persons.
pub fn named_actor(actor: &str) -> Option<(&str, &str, &str)> {
    let (role, rest) = actor.split_once(':')?;
    if !ROLES.contains(&role) {
        return None;
    }
    let (name, token) = rest.strip_suffix(')')?.rsplit_once(" (token ")?;
    let opaque = Uuid::parse_str(name).is_ok();
    (token.len() == 8 && token.bytes().all(|b| b.is_ascii_hexdigit()) && token != "00000000" && !opaque)
        .then_some((role, name, token))
}

/// The person id in an actor written since the directory (`opco:<id> (token …)`).
pub fn actor_person(actor: &str) -> Option<Uuid> {
    let (role, rest) = actor.split_once(':')?;
    if !ROLES.contains(&role) {
        return None;
    }
    let id = rest.split_once(" (token ").map_or(rest, |(id, _)| id);
    Uuid::parse_str(id).ok()
}

/// The persons a command-line argument names: an id of the directory, or an exact
/// reference or name (refused when it names nobody).
pub fn resolve(directory: &Directory, who: &str) -> anyhow::Result<Vec<Person>> {
    if let Ok(id) = Uuid::parse_str(who.trim()) {
        return match directory.lookup(id)? {
            Lookup::Known(p) => Ok(vec![p]),
            Lookup::Erased(e) => bail!("person {id} was erased on {} ({})", e.erased_at, e.reason),
            Lookup::Unknown => bail!("no person {id} in the directory"),
        };
    }
    let found = directory.search(who)?;
    anyhow::ensure!(!found.is_empty(), "no person in the directory has the reference or name `{who}`");
    Ok(found)
}

/// What the personal-data tools work on: a log's tokens, its directory of persons, and
/// the log (read only).
struct Held {
    tokens: api::TokenStore,
    directory: Arc<Directory>,
    /// A shared log, connected; the embedded one is opened when needed.
    shared: Option<Arc<dyn EventStore>>,
}

/// Where the personal data of a log is: its data directory, the shared log (`store`,
/// `None` for the embedded one), and the directory of persons when not where the log is
/// (see [`crate::open_directory`]).
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    pub data: &'a Path,
    pub store: Option<&'a str>,
    pub directory: Option<&'a str>,
}

impl<'a> Place<'a> {
    /// The embedded log of `data`.
    pub fn data(data: &'a Path) -> Self {
        Self { data, store: None, directory: None }
    }
}

impl Held {
    async fn open(place: &Place<'_>) -> anyhow::Result<Self> {
        let (tokens, shared) = match place.store {
            None => {
                anyhow::ensure!(
                    place.directory.is_none(),
                    "the embedded log keeps its directory of persons in its data directory: give --directory only with --store"
                );
                (api::TokenStore::open(place.data)?, None)
            }
            Some(url) => {
                let log = crate::connect_store(url).await?;
                anyhow::ensure!(
                    log.replica_state().is_some(),
                    "{} keeps no tokens nor persons: give the data directory instead",
                    store::redact_url(url)
                );
                (crate::open_tokens(place.data, &log, place.store, place.directory)?, Some(log))
            }
        };
        let directory = tokens.directory().expect("tokens keep their holders in a directory").clone();
        Ok(Self { tokens, directory, shared })
    }

    fn log(&self, data: &Path) -> anyhow::Result<Arc<dyn EventStore>> {
        Ok(match &self.shared {
            Some(log) => log.clone(),
            None => Arc::new(SqliteStore::open_read_only(data.join(crate::LOG_FILE))?),
        })
    }
}

/// What `tracker forget` did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forgotten {
    pub erasures: Vec<store::directory::Erasure>,
    pub tokens_revoked: Vec<Uuid>,
}

/// Erases persons from the directory (and revokes their tokens): the log is untouched.
/// `store` names a shared log (PostgreSQL), whose replicas share their tokens and
/// directory; `None`: the embedded log of `data`.
pub async fn forget(place: &Place<'_>, who: &str, all: bool, reason: &str) -> anyhow::Result<Forgotten> {
    let Held { tokens, directory, .. } = Held::open(place).await?;
    let persons = resolve(&directory, who)?;
    if persons.len() > 1 && !all {
        let list: Vec<String> =
            persons.iter().map(|p| format!("  {} ({}, {})", p.id, p.kind.name(), p.scope)).collect();
        bail!("`{who}` names {} persons; give one id, or --all:\n{}", persons.len(), list.join("\n"));
    }
    let mut tokens_revoked = Vec::new();
    for p in &persons {
        tokens_revoked.extend(tokens.revoke_person(p.id).await?);
    }
    let ids: Vec<Uuid> = persons.iter().map(|p| p.id).collect();
    let erasures = directory.forget_many(&ids, reason)?;
    Ok(Forgotten { erasures, tokens_revoked })
}

/// Everything held about one or more persons (the persons a reference names), in French:
/// the answer to an access request (article 15 of the RGPD).
#[derive(Debug, serde::Serialize)]
pub struct SubjectAccess {
    #[serde(rename = "responsable du traitement")]
    pub controller: &'static str,
    #[serde(rename = "exporté le")]
    pub exported_at: String,
    #[serde(rename = "personnes")]
    pub persons: Vec<PersonExport>,
}

#[derive(Debug, serde::Serialize)]
pub struct PersonExport {
    #[serde(rename = "identifiant")]
    pub id: Uuid,
    #[serde(rename = "catégorie")]
    pub kind: &'static str,
    /// The structure, purchase or campaign the reference belongs to; an agent's role.
    #[serde(rename = "portée")]
    pub scope: String,
    #[serde(rename = "référence ou nom")]
    pub reference: String,
    #[serde(rename = "enregistrée le")]
    pub created_at: String,
    #[serde(rename = "jetons")]
    pub tokens: Vec<TokenExport>,
    #[serde(rename = "événements")]
    pub events: Vec<EventExport>,
}

#[derive(Debug, serde::Serialize)]
pub struct TokenExport {
    #[serde(rename = "identifiant")]
    pub id: Uuid,
    #[serde(rename = "rôle")]
    pub role: &'static str,
    #[serde(rename = "structure")]
    pub structure: Option<Uuid>,
    #[serde(rename = "créé le")]
    pub created_at: String,
    #[serde(rename = "révoqué le")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct EventExport {
    pub position: u64,
    #[serde(rename = "flux")]
    pub stream: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(rename = "date métier")]
    pub business_date: String,
    #[serde(rename = "enregistré le")]
    pub recorded_at: String,
    /// `auteur` (they acted) or `concerné` (the event is about them).
    #[serde(rename = "qualité")]
    pub role: &'static str,
    #[serde(rename = "contenu")]
    pub payload: serde_json::Value,
}

impl SubjectAccess {
    /// The same as CSV, one line per event (French headers, `;` as French spreadsheets
    /// expect).
    pub fn csv(&self) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut out = String::from(
            "identifiant;catégorie;portée;référence ou nom;position;flux;type;date métier;enregistré le;qualité;contenu\n",
        );
        for p in &self.persons {
            let head = [p.id.to_string(), p.kind.to_string(), p.scope.clone(), p.reference.clone()];
            if p.events.is_empty() {
                out += &head.iter().map(|s| quote(s)).collect::<Vec<_>>().join(";");
                out += ";;;;;;;\n";
            }
            for e in &p.events {
                let line = head.iter().cloned().chain([
                    e.position.to_string(),
                    e.stream.clone(),
                    e.event_type.clone(),
                    e.business_date.clone(),
                    e.recorded_at.clone(),
                    e.role.to_string(),
                    e.payload.to_string(),
                ]);
                out += &line.map(|s| quote(&s)).collect::<Vec<_>>().join(";");
                out += "\n";
            }
        }
        out
    }
}

/// Everything the data directory holds about the persons `who` names: their directory
/// entry, their tokens, and every event they caused (actor) or that names them (payload).
pub async fn subject_access(place: &Place<'_>, who: &str) -> anyhow::Result<SubjectAccess> {
    let held = Held::open(place).await?;
    let (tokens, directory) = (&held.tokens, &held.directory);
    let persons = resolve(directory, who)?;
    let log = held.log(place.data)?;
    let all_tokens = tokens.list().await;
    let mut exports: Vec<PersonExport> = persons
        .iter()
        .map(|p| PersonExport {
            id: p.id,
            kind: p.kind.french(),
            scope: p.scope.clone(),
            reference: p.reference.clone(),
            created_at: p.created_at.to_rfc3339(),
            tokens: all_tokens
                .iter()
                .filter(|t| t.person == Some(p.id))
                .map(|t| TokenExport {
                    id: t.id,
                    role: t.role.name(),
                    structure: t.structure,
                    created_at: t.created_at.to_rfc3339(),
                    revoked_at: t.revoked_at.map(|r| r.to_rfc3339()),
                })
                .collect(),
            events: Vec::new(),
        })
        .collect();
    let needles: Vec<String> = persons.iter().map(|p| p.id.to_string()).collect();
    // A person named in a stream's first events (an aidant's habilitation request) is
    // concerned by the rest of that stream too.
    let mut streams: Vec<std::collections::HashSet<String>> = vec![Default::default(); persons.len()];
    crate::each_event(log.as_ref(), |e| {
        for (i, needle) in needles.iter().enumerate() {
            let role = if actor_person(&e.metadata.actor) == Some(persons[i].id) {
                "auteur"
            } else if streams[i].contains(&e.stream)
                || e.payload.as_str().contains(needle.as_str())
                // The domain writes references in upper case.
                || e.payload.as_str().contains(&needle.to_uppercase())
            {
                streams[i].insert(e.stream.clone());
                "concerné"
            } else {
                continue;
            };
            exports[i].events.push(EventExport {
                position: e.position,
                stream: e.stream.clone(),
                event_type: e.event_type.clone(),
                business_date: e.business_date.to_string(),
                recorded_at: e.recorded_at.to_rfc3339(),
                role,
                payload: serde_json::from_str(e.payload.as_str()).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(())
    })
    .await?;
    Ok(SubjectAccess {
        controller: "Agence nationale de la cohésion des territoires (ANCT), Programme Société Numérique",
        exported_at: chrono::Utc::now().to_rfc3339(),
        persons: exports,
    })
}

/// How long the directory keeps a person: terms of the processing, our defaults (the
/// plan sets none). Counted in years from a business date of the log.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionTerms {
    /// Aidants, trainees and Pix candidates: this many years after the last convention
    /// their events touch is closed (ours: 5, the time the accounts of a public
    /// subsidy can be checked), or after their last event when they touch none.
    pub participants_years: u32,
    /// Token holders: this many years after their last token was revoked (ours: 1).
    pub agents_years: u32,
}

impl Default for RetentionTerms {
    fn default() -> Self {
        Self { participants_years: 5, agents_years: 1 }
    }
}

/// One erasure by retention, with why.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expired {
    pub person: Uuid,
    pub kind: &'static str,
    /// The date the period ran from, and what it was.
    pub since: chrono::NaiveDate,
    pub because: String,
}

/// What `tracker retention` did (or would do, in a dry run).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub today: chrono::NaiveDate,
    pub terms: RetentionTerms,
    pub dry_run: bool,
    pub erased: Vec<Expired>,
    /// Persons kept: their period has not run out.
    pub kept: usize,
}

/// Erases from the directory every person whose retention period ran out by `today`
/// (see [`RetentionTerms`]); idempotent, so it can run daily. The log is untouched.
pub async fn retention(
    place: &Place<'_>,
    terms: RetentionTerms,
    today: chrono::NaiveDate,
    dry_run: bool,
) -> anyhow::Result<RetentionReport> {
    use chrono::{Months, NaiveDate};
    use std::collections::{HashMap, HashSet};
    let held = Held::open(place).await?;
    let (tokens, directory) = (&held.tokens, &held.directory);
    let persons = directory.persons()?;
    let log = held.log(place.data)?;
    // One pass over the log: when each convention closed, and for each participant the
    // date of their last event and the conventions their events touch.
    let mut closed: HashMap<String, NaiveDate> = HashMap::new();
    let mut last: HashMap<Uuid, NaiveDate> = HashMap::new();
    let mut touched: HashMap<Uuid, HashSet<String>> = HashMap::new();
    let mut stream_person: HashMap<String, Uuid> = HashMap::new();
    let participants: HashMap<String, Uuid> = persons
        .iter()
        .filter(|p| p.kind != store::PersonKind::Agent)
        .map(|p| (p.id.to_string().to_uppercase(), p.id))
        .collect();
    crate::each_event(log.as_ref(), |e| {
        if e.event_type == "ConventionClosed" {
            closed.insert(e.stream_id().to_string(), e.business_date);
        }
        let text = e.payload.as_str();
        let mut who = stream_person.get(&e.stream).copied();
        if who.is_none() && !participants.is_empty() {
            who = participants.iter().find(|(needle, _)| text.contains(needle.as_str())).map(|(_, id)| *id);
            if let Some(id) = who {
                stream_person.insert(e.stream.clone(), id);
            }
        }
        let Some(id) = who else { return Ok(()) };
        let date = last.entry(id).or_insert(e.business_date);
        *date = (*date).max(e.business_date);
        if let Ok(payload) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(convention) = payload.get("convention_id").and_then(|c| c.as_str())
        {
            touched.entry(id).or_default().insert(convention.to_string());
        }
        Ok(())
    })
    .await?;
    let years = |n: u32, from: NaiveDate| from.checked_add_months(Months::new(12 * n)).unwrap_or(NaiveDate::MAX);
    let all_tokens = tokens.list().await;
    let mut erased = Vec::new();
    let mut kept = 0;
    for p in &persons {
        let expired = if p.kind == store::PersonKind::Agent {
            let mine: Vec<_> = all_tokens.iter().filter(|t| t.person == Some(p.id)).collect();
            let revoked: Option<NaiveDate> = if !mine.is_empty() && mine.iter().all(|t| t.revoked_at.is_some()) {
                mine.iter().filter_map(|t| t.revoked_at).max().map(|d| d.date_naive())
            } else {
                None
            };
            revoked
                .filter(|&since| years(terms.agents_years, since) <= today)
                .map(|since| (since, format!("last token revoked on {since}, + {} years", terms.agents_years)))
        } else {
            let conventions = touched.get(&p.id).cloned().unwrap_or_default();
            let since = if conventions.is_empty() {
                last.get(&p.id).copied().map(|d| (d, format!("last event on {d}")))
            } else if conventions.iter().all(|c| closed.contains_key(c)) {
                let d = conventions.iter().map(|c| closed[c]).max().expect("not empty");
                Some((d, format!("every convention of theirs closed, the last on {d}")))
            } else {
                None // a convention of theirs is still open
            };
            since
                .filter(|(d, _)| years(terms.participants_years, *d) <= today)
                .map(|(d, why)| (d, format!("{why}, + {} years", terms.participants_years)))
        };
        match expired {
            Some((since, because)) => erased.push(Expired { person: p.id, kind: p.kind.name(), since, because }),
            None => kept += 1,
        }
    }
    if !dry_run && !erased.is_empty() {
        for e in &erased {
            tokens.revoke_person(e.person).await?;
        }
        let ids: Vec<Uuid> = erased.iter().map(|e| e.person).collect();
        directory.forget_many(&ids, "retention")?;
    }
    Ok(RetentionReport { today, terms, dry_run, erased, kept })
}

/// A person of the replica's file whose reference has another id in the shared directory.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub kind: &'static str,
    pub scope: String,
    /// The id the replica's file issued (events written through that replica carry it).
    pub id: Uuid,
    /// The id the shared directory holds for the same reference.
    pub shared: Uuid,
}

/// What `tracker share-directory` did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedDirectory {
    pub persons: usize,
    pub added: usize,
    pub already_there: usize,
    /// Erased in the shared directory: not brought back.
    pub erased_there: usize,
    pub conflicts: Vec<Conflict>,
    pub erasures_added: usize,
    /// The replica's file, removed once everything in it is shared (kept with conflicts,
    /// or with `--keep`).
    pub removed: Option<PathBuf>,
}

/// Copies the directory of persons a replica kept in its data directory (before the
/// directory moved into the shared database) into the shared one, ids and dates kept,
/// erasures too; then removes the file, which would otherwise keep references an erasure
/// on the shared directory does not reach.
pub async fn share_directory(place: &Place<'_>, keep: bool) -> anyhow::Result<SharedDirectory> {
    let file = place.data.join(Directory::FILE);
    anyhow::ensure!(file.exists(), "no directory of persons in {}", place.data.display());
    let shares = place.directory.or(place.store).is_some_and(store::postgres::is_postgres_url);
    anyhow::ensure!(
        shares,
        "give the shared directory: --store postgres://… (the log's database) or --directory postgres://…"
    );
    let local = Directory::open(place.data)?;
    let shared = crate::open_directory(place.data, place.store, place.directory)?;
    let mut report = SharedDirectory {
        persons: 0,
        added: 0,
        already_there: 0,
        erased_there: 0,
        conflicts: Vec::new(),
        erasures_added: 0,
        removed: None,
    };
    for person in local.persons()? {
        report.persons += 1;
        match shared.adopt(&person)? {
            store::Adopted::Added => report.added += 1,
            store::Adopted::AlreadyHere => report.already_there += 1,
            store::Adopted::ErasedHere => report.erased_there += 1,
            store::Adopted::Conflict { here } => report.conflicts.push(Conflict {
                kind: person.kind.name(),
                scope: person.scope.clone(),
                id: person.id,
                shared: here,
            }),
        }
    }
    for erasure in local.erasures()? {
        if shared.adopt_erasure(&erasure)? {
            report.erasures_added += 1;
        }
    }
    drop(local);
    if !keep && report.conflicts.is_empty() {
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", file.display()));
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        report.removed = Some(file);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_names_a_person_only_with_a_role_a_name_and_a_real_token() {
        assert_eq!(named_actor("opco:Marie Dupont (token 3f2a9c1e)"), Some(("opco", "Marie Dupont", "3f2a9c1e")));
        assert_eq!(named_actor("anct:demo (token 00000000)"), None, "a local tool");
        assert_eq!(named_actor("saga:reimbursement"), None);
        let id = Uuid::new_v4();
        assert_eq!(named_actor(&format!("opco:{id} (token 3f2a9c1e)")), None, "already an id");
        assert_eq!(actor_person(&format!("opco:{id} (token 3f2a9c1e)")), Some(id));
        assert_eq!(actor_person("opco:Marie Dupont (token 3f2a9c1e)"), None);
    }
}
