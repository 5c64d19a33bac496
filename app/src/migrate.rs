//! `tracker migrate-personal-data`: a log written before the directory of persons names
//! persons in clear, inside hash-chained fields that can never be edited: token holders
//! in the actors (`opco:Marie Dupont (token 3f2a9c1e)`), aidants, trainees and Pix
//! candidates by the partner's reference in the payloads, and the ids derived from those
//! references (a habilitation's, a claim's: UUID v5 of the reference, which anyone can
//! recompute by trying `AIDANT-00001`, `AIDANT-00002`…) in stream names, in other events
//! (seats, roll of claimants, the money's references on the convention, funds calls) and
//! in commands' fingerprints.
//!
//! The migration copies the log into a new chain as the current version would have
//! written it: names and references go to the directory, the events carry the ids the
//! directory issues, and the derived ids become those the entry points derive from these
//! ids today, everywhere they appear. The copy is sealed by a last event recording the old
//! head digest and what was done; the old log is archived outside the data directory,
//! where it still proves its digest.

use crate::personal::named_actor;
use anyhow::{Context, bail};
use domain::aidants::HabilitationId;
use domain::claim::ClaimId;
use domain::ids::TRACKER_NAMESPACE;
use domain::purchase::PurchaseId;
use domain::structure::StructureId;
use domain::{CommandId, CommandMeta, EventId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use store::rewrite::{Rewrite, RewriteReport, Rewritten};
use store::{AppendRequest, Directory, EventStore, ExpectedVersion, NewEvent, Payload, PersonKind, SqliteStore};
use uuid::Uuid;

/// The actor of the migration's sealing event.
pub const MIGRATION_ACTOR: &str = "tracker:migrate-personal-data";

/// The sealing event's type.
pub const SEAL: &str = "PersonalDataMigrated";

/// What the migration did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    /// The old log's head digest (`POSITION:HASH`), verified before the copy.
    pub previous_head: String,
    pub events: u64,
    /// Events whose actor named a person and now carries their id.
    pub actors_replaced: u64,
    /// Distinct (role, name) of token holders moved to the directory.
    pub persons: usize,
    /// Events whose person's reference was replaced by its id, by kind of person
    /// (`aidant`, `trainee`, `candidate`).
    pub references_replaced: BTreeMap<&'static str, u64>,
    /// Distinct persons behind those references (one per reference and scope).
    pub reference_persons: usize,
    /// References already ids (a log written since the directory), left as they are.
    pub references_already_ids: u64,
    /// Ids derived from a reference, remapped to those derived from its id, by kind
    /// (`habilitation`, `claim`).
    pub ids_remapped: BTreeMap<&'static str, u64>,
    /// Of those, ids remapped to a random id: the id derived from the person's id already
    /// named another stream (the same person given again since the directory exists).
    pub ids_remapped_at_random: u64,
    /// Streams renamed (a habilitation's or a claim's stream is named by its id).
    pub streams_renamed: u64,
    /// Commands whose id was derived from a remapped id (the reimbursement saga's, from
    /// a claim's id; their companions'), or from a reference (imported lines), given the
    /// id derived today (random for imported lines).
    pub command_ids_remapped: u64,
    /// Events with an id remapped: their own (derived from their command's), their
    /// command's, their correlation's or their causation's.
    pub events_with_ids_remapped: u64,
    /// Commands whose fingerprint (a digest of their content, which held the
    /// reference or a derived id) was replaced.
    pub fingerprints_replaced: u64,
    /// The new log's head digest, after the sealing event.
    pub head: String,
    /// Where the old log is now: the archive's file (outside the data directory), or the
    /// old PostgreSQL schema (its URL, without a password).
    pub archived_log: String,
}

/// Where an event written by an entry point holds a person's reference: the kind of
/// person, the payload's field, the scope the reference is unique in (as the entry points
/// name it to the directory), and the field of the id derived from it, if any.
struct Site {
    kind: PersonKind,
    field: &'static str,
    scope: String,
    derived: Option<&'static str>,
}

/// The types of the events that hold a person's reference (see [`site`]).
const SITES: [&str; 3] = ["HabilitationRequested", "AnnexClaimSubmitted", "PixCertificationRecorded"];

/// The person's reference an event holds (see [`Site`]): the aidant of a habilitation
/// request (scope: the structure), the trainee of an annex-cost claim (the purchase),
/// the candidate of a Pix certification (the campaign, which names the stream).
fn site(event_type: &str, stream: &str, payload: &Value) -> Option<(Site, String)> {
    let text = |field: &str| payload.get(field).and_then(Value::as_str).map(str::to_string);
    let (kind, field, scope, derived) = match event_type {
        "HabilitationRequested" => (PersonKind::Aidant, "aidant", text("structure_id")?, Some("habilitation_id")),
        "AnnexClaimSubmitted" => (PersonKind::Trainee, "trainee", text("purchase_id")?, Some("claim_id")),
        "PixCertificationRecorded" => {
            (PersonKind::Candidate, "candidate", stream.strip_prefix("pixcampaign-")?.to_string(), None)
        }
        _ => return None,
    };
    let reference = text(field)?;
    // Scopes as the entry points write them: a UUID in lower case.
    let scope = Uuid::parse_str(&scope).map(|u| u.to_string()).unwrap_or(scope);
    Some((Site { kind, field, scope, derived }, reference))
}

/// A reference as the directory compares them.
fn key(kind: PersonKind, scope: &str, reference: &str) -> Key {
    (kind.name(), scope.to_string(), reference.trim().to_uppercase())
}

/// A person's reference: kind (its name), scope, reference as the directory compares it.
type Key = (&'static str, String, String);

/// A value already an id (issued by a directory, or a partner's UUID): never migrated,
/// which makes a second migration find nothing to do.
fn is_id(reference: &str) -> bool {
    Uuid::parse_str(reference.trim()).is_ok()
}

/// How the current version writes a person's id in the event: the domain upper-cases an
/// aidant's reference, and keeps the others as given.
fn written(kind: PersonKind, id: Uuid) -> String {
    match kind {
        PersonKind::Aidant => id.to_string().to_uppercase(),
        _ => id.to_string(),
    }
}

/// The id the current entry points derive from the person's id (`api/src/aidants.rs`,
/// `api/src/claims/resolvers.rs`, `imports/src/kinds.rs`).
fn derive(kind: PersonKind, scope: &str, id: Uuid) -> Option<Uuid> {
    let scope = Uuid::parse_str(scope).ok()?;
    match kind {
        PersonKind::Aidant => Some(HabilitationId::of(StructureId(scope), &id.to_string()).0),
        PersonKind::Trainee => Some(ClaimId::of(PurchaseId(scope), &id.to_string()).0),
        _ => None,
    }
}

fn derived_kind(kind: PersonKind) -> &'static str {
    match kind {
        PersonKind::Aidant => "habilitation",
        _ => "claim",
    }
}

/// What the first pass found in the old log.
#[derive(Default)]
struct Found {
    named_actors: u64,
    /// Clear references, by (kind, scope, reference as the directory compares it), with
    /// the ids derived from them (as text).
    references: BTreeMap<Key, BTreeSet<String>>,
    already_ids: u64,
    /// The ids in streams' names (lower case): where an id derived anew is taken.
    streams: std::collections::HashSet<String>,
    /// The last seal of an earlier migration: position and date.
    sealed: Option<(u64, chrono::NaiveDate)>,
}

async fn survey(log: &dyn EventStore) -> anyhow::Result<Found> {
    let mut found = Found::default();
    crate::each_event(log, |e| {
        found.streams.insert(e.stream_id().to_lowercase());
        found.named_actors += u64::from(named_actor(&e.metadata.actor).is_some());
        if e.event_type == SEAL {
            found.sealed = Some((e.position, e.business_date));
        }
        if !SITES.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        let payload: Value = serde_json::from_str(e.payload.as_str())
            .with_context(|| format!("event at position {}: unreadable payload", e.position))?;
        let Some((site, reference)) = site(&e.event_type, &e.stream, &payload) else {
            bail!("event at position {} ({}): its person's reference or scope is missing", e.position, e.event_type);
        };
        if is_id(&reference) {
            found.already_ids += 1;
            return Ok(());
        }
        let derived = found.references.entry(key(site.kind, &site.scope, &reference)).or_default();
        if let Some(id) = site.derived.and_then(|f| payload.get(f)).and_then(Value::as_str) {
            derived.insert(id.to_lowercase());
        }
        Ok(())
    })
    .await?;
    Ok(found)
}

/// The second pass: the copy, as [`store::rewrite`] makes it (the same on every backend).
struct Migrator<'a> {
    directory: &'a Directory,
    /// Each clear reference's id.
    pseudonyms: HashMap<Key, Uuid>,
    /// Derived ids (lower-case text) and what they become.
    ids: HashMap<String, String>,
    /// Command, event and correlation ids derived from those (see [`remap_commands`]).
    commands: HashMap<Uuid, Uuid>,
    /// Each token holder's (role, name) and their id: asked of the directory once each
    /// (a round trip per event on a PostgreSQL directory otherwise).
    agents: BTreeMap<(String, String), Uuid>,
    actors_replaced: u64,
    references_replaced: BTreeMap<&'static str, u64>,
    failure: Option<anyhow::Error>,
}

impl Migrator<'_> {
    fn actor(&mut self, actor: &str) -> String {
        let Some((role, name, token)) = named_actor(actor) else { return actor.to_string() };
        let key = (role.to_string(), name.to_string());
        let person = match self.agents.get(&key) {
            Some(person) => Ok(*person),
            None => self.directory.agent(role, name),
        };
        match person {
            Ok(person) => {
                self.agents.insert(key, person);
                self.actors_replaced += 1;
                format!("{role}:{person} (token {token})")
            }
            Err(e) => {
                self.fail(e);
                actor.to_string()
            }
        }
    }

    fn fail(&mut self, e: impl Into<anyhow::Error>) {
        self.failure.get_or_insert(e.into());
    }

    /// The payload with its person's reference replaced by the id.
    fn reference<'p>(&mut self, stream: &str, event_type: &str, payload: &'p str) -> Cow<'p, str> {
        if !SITES.contains(&event_type) {
            return Cow::Borrowed(payload);
        }
        let Ok(mut value) = serde_json::from_str::<Value>(payload) else { return Cow::Borrowed(payload) };
        let Some((site, reference)) = site(event_type, stream, &value) else { return Cow::Borrowed(payload) };
        if is_id(&reference) {
            return Cow::Borrowed(payload);
        }
        let Some(&id) = self.pseudonyms.get(&key(site.kind, &site.scope, &reference)) else {
            self.fail(anyhow::anyhow!("{event_type} in {stream}: a reference the first pass did not see"));
            return Cow::Borrowed(payload);
        };
        let new = written(site.kind, id);
        *self.references_replaced.entry(site.kind.name()).or_default() += 1;
        // In place, so that the rest of the payload stays byte for byte as written.
        let token = |v: &str| format!("\"{}\":{}", site.field, Value::String(v.to_string()));
        let (from, to) = (token(&reference), token(&new));
        if payload.matches(&from).count() == 1 {
            return Cow::Owned(payload.replacen(&from, &to, 1));
        }
        value[site.field] = Value::String(new);
        Cow::Owned(value.to_string())
    }
}

impl Rewrite for &mut Migrator<'_> {
    fn stream(&mut self, name: &str) -> String {
        substitute_ids(name, &self.ids).into_owned()
    }

    fn id(&mut self, id: Uuid) -> Uuid {
        self.commands.get(&id).copied().unwrap_or(id)
    }

    fn event(&mut self, stream: &str, event_type: &str, actor: &str, payload: &str) -> Rewritten {
        let actor = self.actor(actor);
        let payload = self.reference(stream, event_type, payload);
        let payload = substitute_ids(&payload, &self.ids).into_owned();
        Rewritten { actor, payload }
    }

    /// A changed command's fingerprint was a digest of content holding the reference or a
    /// derived id: a guess of the reference could be checked against it. It becomes a
    /// digest of what the copy holds; a retry of that command after the migration is
    /// answered as another command's reuse of its id (`CONFLICT`).
    fn fingerprint(&mut self, command_id: Uuid, stream: &str, old: &str, changed: bool, payloads: &[&str]) -> String {
        if !changed {
            return old.to_string();
        }
        let mut digest = Sha256::new();
        digest.update(format!("personal-data-migration\n{command_id}\n{stream}\n").as_bytes());
        for p in payloads {
            digest.update(p.as_bytes());
            digest.update(b"\n");
        }
        digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `text` with every id of `ids` (a UUID, in either case) replaced by its new one.
fn substitute_ids<'t>(text: &'t str, ids: &HashMap<String, String>) -> Cow<'t, str> {
    const LEN: usize = 36;
    let bytes = text.as_bytes();
    if ids.is_empty() || bytes.len() < LEN {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let (mut last, mut i) = (0, 0);
    while i + LEN <= bytes.len() {
        // ASCII from i to i + LEN: both are character boundaries.
        if uuid_like(&bytes[i..i + LEN]) {
            let window = &text[i..i + LEN];
            if let Some(new) = ids.get(&window.to_ascii_lowercase()) {
                out.push_str(&text[last..i]);
                let upper = window.bytes().any(|c| c.is_ascii_uppercase());
                out.push_str(&if upper { new.to_uppercase() } else { new.clone() });
                i += LEN;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// One append of the old log, as the id remapping needs it.
struct Append {
    command: Uuid,
    actor: String,
    causation: Option<Uuid>,
    events: Vec<Uuid>,
    /// Old claim ids its stream or payloads name.
    claims: Vec<Uuid>,
    /// Its stream is renamed, or a payload changes.
    changed: bool,
}

/// How the reimbursement saga derives its commands' ids (`sagas/src/reimbursement.rs`):
/// from what caused them, the claim's id among it.
fn saga_id(cause: &str) -> Uuid {
    Uuid::new_v5(&TRACKER_NAMESPACE, format!("saga:reimbursement:{cause}").as_bytes())
}

/// Labels of the saga's steps that name a claim.
const SAGA_CLAIM_LABELS: [&str; 6] = ["commit", "funded", "called", "service-done", "payment", "reimbursed"];

/// The categories of streams a use case's companion write may go to: its command id is
/// derived from the step's and the category (`usecases::derived`).
const CATEGORIES: [&str; 12] = [
    "acsession",
    "habilitation",
    "structure",
    "convention",
    "claimroll",
    "fundscalls",
    "measure",
    "ccasaction",
    "disbursements",
    "pixcampaign",
    "annexclaim",
    "purchase",
];

/// The ids derived, directly or not, from a person's reference (or from a derived id),
/// and what they become: the commands the reimbursement saga derived from an old claim
/// id (and from the events of such commands), those of imported lines (derived from the
/// line's content, its reference included: they become random, see [`root`]),
/// the companions of those commands, the events of all of them (an event's id is derived
/// from its command's), and the correlations and causations that name them. The new ids
/// are the ones the saga and the use cases derive today from the new ids, so that a
/// saga replaying the log finds every command it sent.
fn remap_commands(appends: &[Append], claims: &HashMap<Uuid, Uuid>) -> HashMap<Uuid, Uuid> {
    let mut ids: HashMap<Uuid, Uuid> = HashMap::new();
    let mut companions: HashMap<Uuid, Uuid> = HashMap::new();
    let claim_of = |c: &Uuid| claims.get(c).copied().unwrap_or(*c);
    // A companion write carries its step's actor: it follows its step, whichever of the
    // two the log holds first.
    let commands: std::collections::HashSet<Uuid> = appends.iter().map(|a| a.command).collect();
    let companion: std::collections::HashSet<Uuid> = appends
        .iter()
        .filter(|a| root(a))
        .flat_map(|a| CATEGORIES.map(|c| usecases::derived(CommandId(a.command), c).0))
        .filter(|id| commands.contains(id))
        .collect();
    loop {
        let before = ids.len();
        for a in appends {
            if ids.contains_key(&a.command) {
                continue;
            }
            let new = if let Some(&new) = companions.get(&a.command) {
                Some(new)
            } else if a.actor == sagas::ACTOR {
                saga_command(a, &ids, &claim_of)
            } else if root(a) && !companion.contains(&a.command) {
                Some(Uuid::new_v4())
            } else {
                None
            };
            let Some(new) = new.filter(|n| *n != a.command) else { continue };
            ids.insert(a.command, new);
            for (i, event) in a.events.iter().enumerate() {
                if *event == EventId::for_command(CommandId(a.command), i).0 {
                    ids.insert(*event, EventId::for_command(CommandId(new), i).0);
                }
            }
            for category in CATEGORIES {
                companions.insert(
                    usecases::derived(CommandId(a.command), category).0,
                    usecases::derived(CommandId(new), category).0,
                );
            }
        }
        if ids.len() == before {
            return ids;
        }
    }
}

/// Whether an append's command id may have been derived from content that named a
/// person, and gets a random one: it changes (its content named a reference or a derived
/// id), and it is a line imported from the command line (`import:…`, derived from the
/// line's content), or a token holder's command whose id is a UUID v5 (derived from
/// something: a line imported over HTTP, or a client's key drawn from its content). A
/// random id (v4) says nothing; local tools' (the seeders', token 00000000) derive from
/// their steps' labels, and stay, so that seeding again finds its steps.
fn root(a: &Append) -> bool {
    let token = a.actor.strip_suffix(')').and_then(|s| s.rsplit_once(" (token ")).map(|(_, t)| t);
    let token_holder = token.is_some_and(|t| t != "00000000");
    a.changed && (a.actor.starts_with("import:") || (token_holder && a.command.get_version_num() == 5))
}

/// The id the saga derives today for one of its commands, when it differs.
fn saga_command(a: &Append, ids: &HashMap<Uuid, Uuid>, claim_of: &impl Fn(&Uuid) -> Uuid) -> Option<Uuid> {
    let Some(trigger) = a.causation else {
        // A deadline's: `overdue:{claim}:{submission}`.
        for c in &a.claims {
            for n in 1..=32 {
                if saga_id(&format!("overdue:{c}:{n}")) == a.command {
                    return Some(saga_id(&format!("overdue:{}:{n}", claim_of(c))));
                }
            }
        }
        return None;
    };
    let new_trigger = ids.get(&trigger).copied().unwrap_or(trigger);
    if saga_id(&format!("{trigger}:queue")) == a.command {
        return Some(saga_id(&format!("{new_trigger}:queue")));
    }
    for c in &a.claims {
        for label in SAGA_CLAIM_LABELS {
            let old = saga_id(&format!("{trigger}:{label}:{c}"));
            let new = saga_id(&format!("{new_trigger}:{label}:{}", claim_of(c)));
            if old == a.command {
                return Some(new);
            }
            // The claim waiting for funds: derived from the commitment's id.
            if label == "commit" && Uuid::new_v5(&old, b"waiting") == a.command {
                return Some(Uuid::new_v5(&new, b"waiting"));
            }
        }
    }
    None
}

/// Whether 36 bytes have the shape of a UUID's text (hex digits and four hyphens).
fn uuid_like(w: &[u8]) -> bool {
    w.len() == 36
        && w.iter()
            .enumerate()
            .all(|(k, c)| if matches!(k, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// The UUIDs in `text` that are keys of `of`.
fn ids_in(text: &str, of: &HashMap<Uuid, Uuid>, found: &mut Vec<Uuid>) {
    let bytes = text.as_bytes();
    if of.is_empty() {
        return;
    }
    let mut i = 0;
    while i + 36 <= bytes.len() {
        if uuid_like(&bytes[i..i + 36])
            && let Ok(id) = Uuid::try_parse_ascii(&bytes[i..i + 36])
            && of.contains_key(&id)
        {
            if !found.contains(&id) {
                found.push(id);
            }
            i += 36;
            continue;
        }
        i += 1;
    }
}

/// The appends of the old log (consecutive events of one command on one stream), with
/// what [`remap_commands`] needs, given the derived ids that change (`ids`, as text) and
/// the claims' among them.
async fn appends(
    log: &dyn EventStore,
    ids: &HashMap<String, String>,
    claims: &HashMap<Uuid, Uuid>,
) -> anyhow::Result<Vec<Append>> {
    let mut appends: Vec<Append> = Vec::new();
    let mut current: Option<(Uuid, String)> = None;
    crate::each_event(log, |e| {
        let key = (e.metadata.command_id.0, e.stream.clone());
        if current.as_ref() != Some(&key) {
            let mut claims_named = Vec::new();
            ids_in(&e.stream, claims, &mut claims_named);
            appends.push(Append {
                command: key.0,
                actor: e.metadata.actor.clone(),
                causation: e.metadata.causation_id.map(|c| c.0),
                events: Vec::new(),
                claims: claims_named,
                changed: substitute_ids(&e.stream, ids) != e.stream,
            });
            current = Some(key);
        }
        let a = appends.last_mut().expect("just pushed");
        a.events.push(e.event_id.0);
        let payload = e.payload.as_str();
        ids_in(payload, claims, &mut a.claims);
        let clear = SITES.contains(&e.event_type.as_str())
            && serde_json::from_str::<Value>(payload)
                .ok()
                .and_then(|v| site(&e.event_type, &e.stream, &v))
                .is_some_and(|(_, reference)| !is_id(&reference));
        a.changed |= clear || substitute_ids(payload, ids) != payload;
        Ok(())
    })
    .await?;
    Ok(appends)
}

/// Refuses a log that names nobody in clear (one already migrated, or written since the
/// directory), saying so.
fn ensure_something_to_migrate(found: &Found) -> anyhow::Result<()> {
    if found.named_actors == 0 && found.references.is_empty() {
        let since = match found.sealed {
            Some((position, on)) => format!(" (it was migrated on {on}: its event at position {position})"),
            None => String::new(),
        };
        bail!(
            "nothing to migrate: the log names no person in clear{since} — no token holder's name in its actors, no \
             reference of an aidant, a trainee or a Pix candidate in its events; it is left as it is"
        );
    }
    Ok(())
}

/// What the migration decided before the copy: the ids remapped, by kind and at random,
/// and the commands whose ids change.
struct Plan {
    ids_remapped: BTreeMap<&'static str, u64>,
    kept_apart: u64,
    commands_remapped: u64,
}

/// Issues the persons' ids in `directory` (random, made durable before any event carries
/// them), and decides the ids derived from them (see [`remap_commands`]): the migrator
/// is then ready to copy `log`, whatever its backend.
async fn plan<'d>(
    log: &dyn EventStore,
    found: &Found,
    directory: &'d Directory,
) -> anyhow::Result<(Migrator<'d>, Plan)> {
    let started = std::time::Instant::now();
    let mut migrator = Migrator {
        directory,
        pseudonyms: HashMap::new(),
        ids: HashMap::new(),
        commands: HashMap::new(),
        agents: BTreeMap::new(),
        actors_replaced: 0,
        references_replaced: BTreeMap::new(),
        failure: None,
    };
    let mut ids_remapped: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut kept_apart = 0;
    let mut claims: HashMap<Uuid, Uuid> = HashMap::new();
    // Issued per scope, in one transaction each (one per reference took 1 ms each).
    let mut scopes: BTreeMap<(&'static str, &str), Vec<&str>> = BTreeMap::new();
    for (kind, scope, reference) in found.references.keys() {
        scopes.entry((kind, scope.as_str())).or_default().push(reference.as_str());
    }
    for ((kind, scope), references) in &scopes {
        let kind = PersonKind::parse(kind).expect("a kind's own name");
        for (reference, id) in references.iter().zip(directory.pseudonyms(kind, scope, references)?) {
            migrator.pseudonyms.insert((kind.name(), scope.to_string(), reference.to_string()), id);
        }
    }
    for (person, derived) in &found.references {
        let (kind_name, scope, _) = person;
        let kind = PersonKind::parse(kind_name).expect("a kind's own name");
        let id = migrator.pseudonyms[person];
        if let Some(mut new) = derive(kind, scope, id) {
            if found.streams.contains(&new.to_string()) {
                // A log written partly since the directory: the same person's reference
                // given again then already named a stream by the id derived from their id
                // (a new habilitation request, a claim). The old stream cannot take that
                // name: it gets a random one, derived from nothing.
                new = Uuid::new_v4();
                kept_apart += 1;
            }
            for old in derived {
                if kind == PersonKind::Trainee
                    && let Ok(old) = Uuid::parse_str(old)
                {
                    claims.insert(old, new);
                }
                migrator.ids.insert(old.clone(), new.to_string());
                *ids_remapped.entry(derived_kind(kind)).or_default() += 1;
            }
        }
    }
    directory.make_durable()?;
    tracing::info!(elapsed = ?started.elapsed(), "issued the ids");
    let appends = appends(log, &migrator.ids, &claims).await?;
    migrator.commands = remap_commands(&appends, &claims);
    tracing::info!(elapsed = ?started.elapsed(), "remapped the commands' ids");
    let commands_remapped = appends.iter().filter(|a| migrator.commands.contains_key(&a.command)).count() as u64;
    Ok((migrator, Plan { ids_remapped, kept_apart, commands_remapped }))
}

/// What was done, as the seal records it and the command prints it.
fn migration(
    previous_head: String,
    found: &Found,
    migrator: &Migrator<'_>,
    plan: &Plan,
    report: &RewriteReport,
    head: String,
    archived_log: String,
) -> Migration {
    Migration {
        previous_head,
        events: report.events,
        actors_replaced: migrator.actors_replaced,
        persons: migrator.agents.len(),
        references_replaced: migrator.references_replaced.clone(),
        reference_persons: found.references.len(),
        references_already_ids: found.already_ids,
        ids_remapped: plan.ids_remapped.clone(),
        ids_remapped_at_random: plan.kept_apart,
        streams_renamed: report.streams_renamed,
        command_ids_remapped: plan.commands_remapped,
        events_with_ids_remapped: report.ids_changed,
        fingerprints_replaced: report.fingerprints_changed,
        head,
        archived_log,
    }
}

/// The sealing event: the old head digest and what was done, in the new chain.
fn seal(done: &Migration, previous_events: u64, why: &str) -> anyhow::Result<AppendRequest> {
    let command_id = CommandId(Uuid::new_v5(
        &TRACKER_NAMESPACE,
        format!("personal-data-migration:{}", done.previous_head).as_bytes(),
    ));
    let payload = serde_json::json!({
        "type": SEAL,
        "previousHead": done.previous_head,
        "previousEvents": previous_events,
        "actorsReplaced": done.actors_replaced,
        "referencesReplaced": done.references_replaced,
        "referencePersons": done.reference_persons,
        "referencesAlreadyIds": done.references_already_ids,
        "idsRemapped": done.ids_remapped,
        "idsRemappedAtRandom": done.ids_remapped_at_random,
        "streamsRenamed": done.streams_renamed,
        "commandIdsRemapped": done.command_ids_remapped,
        "eventsWithIdsRemapped": done.events_with_ids_remapped,
        "fingerprintsReplaced": done.fingerprints_replaced,
        "why": why,
    });
    Ok(AppendRequest {
        stream: format!("logmigration-{}", command_id.0),
        expected: ExpectedVersion::NoStream,
        command_id,
        fingerprint: done.previous_head.clone(),
        events: vec![NewEvent {
            event_id: EventId::for_command(command_id, 0),
            event_type: SEAL.into(),
            schema_version: 1,
            business_date: chrono::Utc::now().date_naive(),
            payload: Payload::encode(&payload)?,
            metadata: CommandMeta::new(command_id, MIGRATION_ACTOR),
        }],
    })
}

/// The copy's failure, or the migrator's (a directory that could not issue an id).
fn copied(
    report: Result<RewriteReport, store::StoreError>,
    migrator: &mut Migrator<'_>,
) -> anyhow::Result<RewriteReport> {
    match (report, migrator.failure.take()) {
        (Ok(r), None) => Ok(r),
        (Err(e), _) => Err(e.into()),
        (_, Some(e)) => Err(e),
    }
}

/// Migrates a data directory written before the directory of persons (see the module
/// doc): the log is copied into a new chain (see [`store::sqlite::rewrite`]) sealed by a
/// last event that records the old head digest and what was done. The old log goes to
/// `archive` (which must not be inside the data directory), where `tracker verify --data
/// ARCHIVE --expect <old digest>` still proves it. A log that names nobody in clear (one
/// already migrated, or written since the directory) is refused, and left as it is.
pub async fn migrate(data: &Path, archive: &Path) -> anyhow::Result<Migration> {
    let log_path = data.join(crate::LOG_FILE);
    anyhow::ensure!(log_path.exists(), "no log at {}", log_path.display());
    let data_abs = std::fs::canonicalize(data)?;
    std::fs::create_dir_all(archive).with_context(|| format!("cannot create {}", archive.display()))?;
    let archive_abs = std::fs::canonicalize(archive)?;
    anyhow::ensure!(
        !archive_abs.starts_with(&data_abs),
        "the archive must be outside the data directory: the old log holds the names the migration takes out"
    );
    let archived_log = archive_abs.join(crate::LOG_FILE);
    // Held open for writing during the migration: no server writes meanwhile, and an
    // older format is brought to the current one first.
    let holder = SqliteStore::open(&log_path)?;
    let before = store::sqlite::verify(&log_path, None)?;
    if !before.is_intact() {
        bail!("the log is ALTERED ({}): it is not migrated", log_path.display());
    }
    let previous_head = format!("{}:{}", before.head_position, before.head_hash);
    let started = std::time::Instant::now();
    let found = survey(&holder).await?;
    tracing::info!(elapsed = ?started.elapsed(), references = found.references.len(), "surveyed the log");
    ensure_something_to_migrate(&found)?;
    anyhow::ensure!(!archived_log.exists(), "{} exists already", archived_log.display());
    // Opening the tokens moves their labels to the directory (the same person per role
    // and name as the actors below).
    let tokens = api::TokenStore::open(data)?;
    let directory = tokens.directory().expect("a data directory's tokens have a directory").clone();
    let (mut migrator, plan) = plan(&holder, &found, &directory).await?;
    let new_path = data.join(format!("{}.migrating", crate::LOG_FILE));
    let _ = std::fs::remove_file(&new_path);
    let report = store::sqlite::rewrite::rewrite_with(&log_path, &new_path, &mut migrator);
    let report = match copied(report, &mut migrator) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&new_path);
            return Err(e);
        }
    };
    drop(holder);
    tracing::info!(elapsed = ?started.elapsed(), "copied the log");
    let mut done = migration(
        previous_head.clone(),
        &found,
        &migrator,
        &plan,
        &report,
        String::new(),
        archived_log.display().to_string(),
    );
    {
        let log = SqliteStore::open(&new_path)?;
        let why = "token holders' names and the references of aidants, trainees and Pix candidates moved to the \
                   directory of persons, replaced by their ids; the ids derived from references (habilitations, \
                   claims) derived from those ids instead; the old log is archived outside the data directory";
        log.append(seal(&done, before.events, why)?).await?;
    }
    let after = store::sqlite::verify(&new_path, None)?;
    anyhow::ensure!(after.is_intact(), "the new log does not verify: nothing was replaced");
    // The old log copied to the archive (and proven there), then the new one renamed in
    // its place: whenever this stops, the data directory holds one whole log, the old
    // or the new (each made one file first: a WAL left beside the other would be
    // applied to it).
    store::sqlite::rewrite::settle(&log_path)?;
    store::sqlite::rewrite::settle(&new_path)?;
    std::fs::copy(&log_path, &archived_log)
        .with_context(|| format!("cannot copy the old log to {}", archived_log.display()))?;
    std::fs::File::open(&archived_log)?.sync_all()?;
    let archived = store::sqlite::verify(&archived_log, None)?;
    if format!("{}:{}", archived.head_position, archived.head_hash) != previous_head || !archived.is_intact() {
        let _ = std::fs::remove_file(&new_path);
        bail!("the archived copy {} does not prove {previous_head}: nothing was replaced", archived_log.display());
    }
    std::fs::rename(&new_path, &log_path)?;
    for leftover in [format!("{}.lock", new_path.display()), format!("{}.lock", log_path.display())] {
        let _ = std::fs::remove_file(leftover);
    }
    // The read models' snapshots name the old log's hashes (and its ids): they would be
    // refused anyway.
    let _ = std::fs::remove_dir_all(data.join(crate::SNAPSHOTS_DIR));
    done.head = format!("{}:{}", after.head_position, after.head_hash);
    Ok(done)
}

/// Migrates a PostgreSQL log written before the directory of persons (see the module
/// doc) from its schema `old` into the schema `new`, which must hold no log: the log is
/// copied into a new chain (see [`store::postgres::rewrite`]) sealed by a last event that
/// records the old head digest and what was done; the persons go into `new`'s directory
/// of persons (with those `old`'s already held), the tokens into `new`'s (their holders'
/// names moved to the directory), and the sagas' checkpoints too. `old` is left as it is:
/// it is the archive (`tracker verify --store OLD --expect <old digest>` proves it). A log
/// that names nobody in clear is refused, and nothing is written.
pub async fn migrate_postgres(old: &str, new: &str) -> anyhow::Result<Migration> {
    anyhow::ensure!(
        store::postgres::is_postgres_url(old) && store::postgres::is_postgres_url(new),
        "--store and --to name PostgreSQL logs: postgres://user@host:5432/db?options=-csearch_path%3Dschema"
    );
    anyhow::ensure!(old != new, "--to names the log itself: the copy goes into another schema or database");
    anyhow::ensure!(
        store::postgres::rewrite::has_table(old, "tracker_events").await?,
        "no log at {}",
        store::redact_url(old)
    );
    let log = store::PostgresStore::connect(old)
        .await
        .with_context(|| format!("cannot open the event log at {}", store::redact_url(old)))?;
    let before = log.verify(None).await?;
    if !before.is_intact() {
        bail!("the log at {} is ALTERED: it is not migrated", store::redact_url(old));
    }
    let previous_head = format!("{}:{}", before.head_position, before.head_hash);
    let started = std::time::Instant::now();
    let found = survey(&log).await?;
    tracing::info!(elapsed = ?started.elapsed(), references = found.references.len(), "surveyed the log");
    ensure_something_to_migrate(&found)?;
    // Refused before anything is written there (the copy checks it again, in its
    // transaction).
    anyhow::ensure!(
        !store::postgres::rewrite::holds_a_log(new).await?,
        "{} holds a log already: the copy goes into a schema without one (an interrupted copy: drop the schema)",
        store::redact_url(new)
    );
    let directory = Directory::connect_postgres(new)
        .with_context(|| format!("cannot open the directory of persons at {}", store::redact_url(new)))?;
    // Persons the old log's directory holds already (a log written partly since the
    // directory): the same ids in the new one, erasures too.
    if store::postgres::rewrite::has_table(old, "tracker_persons").await? {
        let previous = Directory::connect_postgres(old)?;
        for person in previous.persons()? {
            directory.adopt(&person)?;
        }
        for erasure in previous.erasures()? {
            directory.adopt_erasure(&erasure)?;
        }
    }
    let (mut migrator, plan) = plan(&log, &found, &directory).await?;
    let report =
        store::postgres::rewrite::rewrite_with(old, new, Some((before.head_position, before.head_hash)), &mut migrator)
            .await;
    let report = copied(report, &mut migrator)?;
    drop(log);
    tracing::info!(elapsed = ?started.elapsed(), "copied the log");
    // The tokens, their holders' names (records written before the directory) moved to
    // the directory: the same person per role and name as the actors.
    store::postgres::rewrite::copy_shared(old, new, |mut token| {
        let Ok(mut record) = serde_json::from_str::<api::TokenRecord>(&token.record) else { return Ok(token) };
        if record.person.is_none() {
            let person = directory.agent(record.role.name(), &record.label).map_err(store::StoreError::backend_from)?;
            record.person = Some(person);
            record.label.clear();
            token.record = serde_json::to_string(&record).map_err(store::StoreError::backend_from)?;
        }
        Ok(token)
    })
    .await?;
    directory.make_durable()?;
    let mut done =
        migration(previous_head, &found, &migrator, &plan, &report, String::new(), store::redact_url(old).to_string());
    let log = store::PostgresStore::connect(new).await?;
    let why = "token holders' names and the references of aidants, trainees and Pix candidates moved to the \
               directory of persons, replaced by their ids; the ids derived from references (habilitations, \
               claims) derived from those ids instead; the old log is left in its schema, sealed, as the archive";
    log.append(seal(&done, before.events, why)?).await?;
    let after = log.verify(None).await?;
    anyhow::ensure!(after.is_intact(), "the new log at {} does not verify", store::redact_url(new));
    done.head = format!("{}:{}", after.head_position, after.head_hash);
    Ok(done)
}

#[cfg(test)]
mod tests;
