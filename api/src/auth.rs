//! Who may do what. One written matrix ([`MATRIX`]) says which role may run which
//! operation; every resolver asks it before doing anything, so a refused request writes
//! nothing. Tokens are bearer secrets, stored only as SHA-256 hashes.

use crate::errors::codes;
use async_graphql::{Context, Enum, Error, ErrorExtensions};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use uuid::Uuid;

/// The roles of the plan's actors.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs conventions and amendments, pays funds calls; reads everything.
    Anct,
    /// Purchases, assessments, payments, funds calls; reads everything.
    Opco,
    /// One employer structure: its trainees, aidants and claims; reads only its own data.
    Structure,
    /// The comité de pilotage: reads dashboards and reports; writes nothing.
    Copil,
    /// Reads everything, replays, exports, verifies; writes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Anct, Role::Opco, Role::Structure, Role::Copil, Role::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            Role::Anct => "anct",
            Role::Opco => "opco",
            Role::Structure => "structure",
            Role::Copil => "copil",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s.trim().to_lowercase())
    }
}

/// Every GraphQL operation, as the matrix names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Conventions,
    Convention,
    SignConvention,
    AllocateEnvelope,
    SignAmendment,
    CommitFunds,
    ReleaseFunds,
    RecordServiceDone,
    RecordPayment,
    CloseConvention,
    Structures,
    Structure,
    RegisterStructure,
    Purchases,
    Purchase,
    RequestPurchase,
    ApprovePurchase,
    RecordAttendance,
    RecordPurchasePayment,
    CancelPurchase,
    PixCampaigns,
    OpenPixCampaign,
    RecordPixCertification,
    CcasActions,
    RecordCcasAction,
    OpenAidantsConnectSession,
    RequestHabilitation,
    ValidateEligibility,
    RefuseHabilitation,
    CancelHabilitation,
    RegisterToSession,
    CompleteTraining,
    Habilitate,
    RevokeHabilitation,
    AidantsConnectSessions,
    Habilitations,
    AnnexClaims,
    AnnexClaim,
    FundsCalls,
    SubmitAnnexClaim,
    ResubmitAnnexClaim,
    ApproveAnnexClaim,
    RequestAnnexClaimChanges,
    RejectAnnexClaim,
    RecordAnnexClaimPayment,
    IssueFundsCall,
    RecordFundsCallPayment,
    Dashboard,
    DashboardUpdates,
    Report,
    Measures,
    RegisterMeasure,
    LaunchMeasure,
    CompleteMeasure,
    Disbursements,
    SetDisbursementSchedule,
    SubmitStatementOfExpenses,
    ClaimPayment,
    PayClaim,
    RecordCoFunderSpending,
    OrderRecovery,
    RecordRecoveryPaid,
    ForgetPerson,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Conventions => "conventions",
            Operation::Convention => "convention",
            Operation::SignConvention => "signConvention",
            Operation::AllocateEnvelope => "allocateEnvelope",
            Operation::SignAmendment => "signAmendment",
            Operation::CommitFunds => "commitFunds",
            Operation::ReleaseFunds => "releaseFunds",
            Operation::RecordServiceDone => "recordServiceDone",
            Operation::RecordPayment => "recordPayment",
            Operation::CloseConvention => "closeConvention",
            Operation::Structures => "structures",
            Operation::Structure => "structure",
            Operation::RegisterStructure => "registerStructure",
            Operation::Purchases => "purchases",
            Operation::Purchase => "purchase",
            Operation::RequestPurchase => "requestPurchase",
            Operation::ApprovePurchase => "approvePurchase",
            Operation::RecordAttendance => "recordAttendance",
            Operation::RecordPurchasePayment => "recordPurchasePayment",
            Operation::CancelPurchase => "cancelPurchase",
            Operation::PixCampaigns => "pixCampaigns",
            Operation::OpenPixCampaign => "openPixCampaign",
            Operation::RecordPixCertification => "recordPixCertification",
            Operation::CcasActions => "ccasActions",
            Operation::RecordCcasAction => "recordCcasAction",
            Operation::OpenAidantsConnectSession => "openAidantsConnectSession",
            Operation::RequestHabilitation => "requestHabilitation",
            Operation::ValidateEligibility => "validateEligibility",
            Operation::RefuseHabilitation => "refuseHabilitation",
            Operation::CancelHabilitation => "cancelHabilitation",
            Operation::RegisterToSession => "registerToSession",
            Operation::CompleteTraining => "completeTraining",
            Operation::Habilitate => "habilitate",
            Operation::RevokeHabilitation => "revokeHabilitation",
            Operation::AidantsConnectSessions => "aidantsConnectSessions",
            Operation::Habilitations => "habilitations",
            Operation::AnnexClaims => "annexClaims",
            Operation::AnnexClaim => "annexClaim",
            Operation::FundsCalls => "fundsCalls",
            Operation::SubmitAnnexClaim => "submitAnnexClaim",
            Operation::ResubmitAnnexClaim => "resubmitAnnexClaim",
            Operation::ApproveAnnexClaim => "approveAnnexClaim",
            Operation::RequestAnnexClaimChanges => "requestAnnexClaimChanges",
            Operation::RejectAnnexClaim => "rejectAnnexClaim",
            Operation::RecordAnnexClaimPayment => "recordAnnexClaimPayment",
            Operation::IssueFundsCall => "issueFundsCall",
            Operation::RecordFundsCallPayment => "recordFundsCallPayment",
            Operation::Dashboard => "dashboard",
            Operation::DashboardUpdates => "dashboardUpdates",
            Operation::Report => "report",
            Operation::Measures => "measures",
            Operation::RegisterMeasure => "registerMeasure",
            Operation::LaunchMeasure => "launchMeasure",
            Operation::CompleteMeasure => "completeMeasure",
            Operation::Disbursements => "disbursements",
            Operation::SetDisbursementSchedule => "setDisbursementSchedule",
            Operation::SubmitStatementOfExpenses => "submitStatementOfExpenses",
            Operation::ClaimPayment => "claimPayment",
            Operation::PayClaim => "payClaim",
            Operation::RecordCoFunderSpending => "recordCoFunderSpending",
            Operation::OrderRecovery => "orderRecovery",
            Operation::RecordRecoveryPaid => "recordRecoveryPaid",
            Operation::ForgetPerson => "forgetPerson",
        }
    }
}

use Operation as O;
use Role as R;

/// The access matrix: each operation and the roles allowed to run it. The README shows
/// the same table (a test checks they agree).
pub const MATRIX: &[(Operation, &[Role])] = &[
    (O::Conventions, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::Convention, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::SignConvention, &[R::Anct]),
    (O::AllocateEnvelope, &[R::Anct]),
    (O::SignAmendment, &[R::Anct]),
    (O::CommitFunds, &[R::Anct, R::Opco]),
    (O::ReleaseFunds, &[R::Anct, R::Opco]),
    (O::RecordServiceDone, &[R::Anct, R::Opco]),
    (O::RecordPayment, &[R::Anct, R::Opco]),
    (O::CloseConvention, &[R::Anct]),
    // A structure token sees only its own structure (others answer as if absent).
    (O::Structures, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::Structure, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::RegisterStructure, &[R::Anct, R::Opco]),
    (O::Purchases, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::Purchase, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::RequestPurchase, &[R::Opco]),
    (O::ApprovePurchase, &[R::Opco]),
    (O::RecordAttendance, &[R::Opco]),
    (O::RecordPurchasePayment, &[R::Opco]),
    (O::CancelPurchase, &[R::Opco]),
    (O::PixCampaigns, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::OpenPixCampaign, &[R::Anct]),
    (O::RecordPixCertification, &[R::Anct]),
    (O::CcasActions, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::RecordCcasAction, &[R::Anct]),
    (O::AidantsConnectSessions, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::Habilitations, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::OpenAidantsConnectSession, &[R::Anct]),
    // A structure asks for its own aidants; ANCT (which runs Aidants Connect) does the rest.
    (O::RequestHabilitation, &[R::Anct, R::Structure]),
    (O::ValidateEligibility, &[R::Anct]),
    (O::RefuseHabilitation, &[R::Anct]),
    (O::CancelHabilitation, &[R::Anct]),
    (O::RegisterToSession, &[R::Anct]),
    (O::CompleteTraining, &[R::Anct]),
    (O::Habilitate, &[R::Anct]),
    (O::RevokeHabilitation, &[R::Anct]),
    // Annex-cost claims: a structure claims for its own trainees and sees only its own
    // claims; the OPCO assesses, pays and calls funds; ANCT pays the funds calls.
    (O::AnnexClaims, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::AnnexClaim, &[R::Anct, R::Opco, R::Structure, R::Copil, R::Auditor]),
    (O::FundsCalls, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::SubmitAnnexClaim, &[R::Structure]),
    (O::ResubmitAnnexClaim, &[R::Structure]),
    (O::ApproveAnnexClaim, &[R::Opco]),
    (O::RequestAnnexClaimChanges, &[R::Opco]),
    (O::RejectAnnexClaim, &[R::Opco]),
    (O::RecordAnnexClaimPayment, &[R::Opco]),
    (O::IssueFundsCall, &[R::Opco]),
    (O::RecordFundsCallPayment, &[R::Anct]),
    // Dashboards aggregate every structure's data: not for a structure token.
    (O::Dashboard, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::DashboardUpdates, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    // The financial report of a past date and its provenance (`report`, `reportProvenance`).
    (O::Report, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    // The register of the plan's measures: kept by ANCT, read by those who follow the plan.
    (O::Measures, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::RegisterMeasure, &[R::Anct]),
    (O::LaunchMeasure, &[R::Anct]),
    (O::CompleteMeasure, &[R::Anct]),
    // The money between ANCT and its partners: ANCT sets the schedule, pays and orders
    // recoveries; the partner (the OPCO's role) states its expenses, claims instalments
    // and records the co-funder's spending.
    (O::Disbursements, &[R::Anct, R::Opco, R::Copil, R::Auditor]),
    (O::SetDisbursementSchedule, &[R::Anct]),
    (O::SubmitStatementOfExpenses, &[R::Opco]),
    (O::ClaimPayment, &[R::Opco]),
    (O::PayClaim, &[R::Anct]),
    (O::RecordCoFunderSpending, &[R::Opco]),
    (O::OrderRecovery, &[R::Anct]),
    (O::RecordRecoveryPaid, &[R::Anct]),
    // Erasure in the directory of persons: ANCT, the controller of the processing.
    (O::ForgetPerson, &[R::Anct]),
];

pub fn allowed(role: Role, operation: Operation) -> bool {
    MATRIX.iter().any(|(op, roles)| *op == operation && roles.contains(&role))
}

/// The matrix as a Markdown table, as the README prints it.
pub fn matrix_markdown() -> String {
    let mut out = String::from("| operation |");
    for r in Role::ALL {
        out += &format!(" {} |", r.name());
    }
    out += "\n|---|";
    out += &"---|".repeat(Role::ALL.len());
    out += "\n";
    for (op, _) in MATRIX {
        out += &format!("| `{}` |", op.name());
        for r in Role::ALL {
            out += if allowed(r, *op) { " ✅ |" } else { " — |" };
        }
        out += "\n";
    }
    out
}

/// Who is calling, once their token is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The structure a `structure` token is bound to.
    pub structure: Option<Uuid>,
    /// The holder's name as the directory of persons has it (never recorded in the log;
    /// [`store::directory::ERASED`] once erased), or a local tool's name.
    pub label: String,
    pub token_id: Uuid,
    /// The person behind the token, an opaque id the directory issued; `None` for a
    /// local tool (a seeder), which is no person.
    pub person: Option<Uuid>,
}

impl Principal {
    /// The actor recorded on every event this principal causes: the role and the opaque
    /// id of the person behind the token (`opco:<person id> (token 3f2a9c1e)`), never a
    /// name; a local tool's name for a principal no token stands behind.
    pub fn actor(&self) -> String {
        let who = match self.person {
            Some(person) => person.to_string(),
            None => self.label.clone(),
        };
        format!("{}:{who} (token {})", self.role.name(), &self.token_id.simple().to_string()[..8])
    }

    /// Whether this principal may see the data of `structure`: every role but `structure`
    /// sees all; a structure sees only its own.
    pub fn sees_structure(&self, structure: uuid::Uuid) -> bool {
        self.role != Role::Structure || self.structure == Some(structure)
    }

    /// A principal that no token stands behind, for tests and in-process tools.
    pub fn local(role: Role, label: &str) -> Self {
        Self { role, structure: None, label: label.into(), token_id: Uuid::nil(), person: None }
    }
}

/// Refuses the operation unless the caller's role allows it (`FORBIDDEN`).
pub fn require(ctx: &Context<'_>, operation: Operation) -> async_graphql::Result<Principal> {
    let principal = ctx
        .data_opt::<Principal>()
        .cloned()
        .ok_or_else(|| Error::new("no credentials").extend_with(|_, e| e.set("code", codes::UNAUTHENTICATED)))?;
    if !allowed(principal.role, operation) {
        let message = format!("role {} may not run {}", principal.role.name(), operation.name());
        return Err(Error::new(message).extend_with(|_, e| e.set("code", codes::FORBIDDEN)));
    }
    Ok(principal)
}

/// Why a request's credentials are refused (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer <token>` (tokens come from `tracker token create`)")]
    Missing,
    #[error("malformed credentials: expected `Authorization: Bearer ct_` followed by 64 hexadecimal digits")]
    Malformed,
    #[error("unknown or revoked token")]
    Unknown,
}

/// A token as stored: never the secret, only its hash; never its holder's name, only
/// the opaque id of the person in the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: Uuid,
    /// SHA-256 of the secret, hexadecimal.
    pub hash: String,
    pub role: Role,
    pub structure: Option<Uuid>,
    /// The holder, in the directory of persons. `None` only in a token file written
    /// before the directory existed (`tracker migrate-personal-data` fills it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Uuid>,
    /// The holder's name, as token files kept it before the directory: read to migrate
    /// them, never written any more.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a structure token needs --structure <structure id>")]
    StructureMissing,
    #[error("only structure tokens are bound to a structure")]
    StructureNotAllowed,
    #[error("a token needs a label (who holds it) or the id of a person already in the directory")]
    HolderMissing,
    #[error("no person {0} in the directory of persons: create the token with --label")]
    NoSuchPerson(Uuid),
    #[error("cannot write {place}: {message}")]
    Storage { place: String, message: String },
    #[error(transparent)]
    Directory(#[from] store::DirectoryError),
}

/// Who a new token is for: a new person of the directory (their name) or one it holds.
#[derive(Clone, Copy, Debug)]
pub enum Holder<'a> {
    Named(&'a str),
    Person(Uuid),
}

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn well_formed(secret: &str) -> bool {
    secret.strip_prefix("ct_").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The bearer tokens: in a data directory (`tokens.json`, re-read when the file changes,
/// so that `tracker token create/revoke` takes effect on a running server), or, for
/// replicas sharing a log, in that log's shared database ([`TokenStore::shared`]), looked
/// up at every request so that a token revoked through one replica is refused by all at
/// once.
pub struct TokenStore {
    backend: Backend,
    /// Where the holders' names are (the data directory's); `None` for shared tokens
    /// managed without one, whose holders are then ids only.
    directory: Option<Arc<store::Directory>>,
}

enum Backend {
    File { path: PathBuf, state: RwLock<(Option<SystemTime>, Vec<TokenRecord>)> },
    Shared(Arc<dyn store::ReplicaState>),
}

impl TokenStore {
    pub const FILE: &'static str = "tokens.json";

    /// The tokens of a data directory, their holders in its directory of persons.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let directory = store::Directory::open(data_dir).map_err(std::io::Error::other)?;
        let store = Self {
            backend: Backend::File { path: data_dir.join(Self::FILE), state: RwLock::new((None, Vec::new())) },
            directory: Some(Arc::new(directory)),
        };
        store.refresh()?;
        store.move_labels_to_directory()?;
        Ok(store)
    }

    /// The tokens the replicas of a shared log share (only hashes and person ids are
    /// stored there).
    pub fn shared(state: Arc<dyn store::ReplicaState>) -> Self {
        Self { backend: Backend::Shared(state), directory: None }
    }

    /// Keeps the holders' names in `directory` (a replica's data directory's).
    pub fn with_directory(mut self, directory: Arc<store::Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The directory of persons the holders are in, if any.
    pub fn directory(&self) -> Option<&Arc<store::Directory>> {
        self.directory.as_ref()
    }

    fn refresh(&self) -> std::io::Result<()> {
        let Backend::File { path, state } = &self.backend else { return Ok(()) };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if state.read().expect("tokens poisoned").0 == modified && modified.is_some() {
            return Ok(());
        }
        let tokens = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        *state.write().expect("tokens poisoned") = (modified, tokens);
        Ok(())
    }

    fn save(&self, tokens: &[TokenRecord]) -> std::io::Result<()> {
        let Backend::File { path, state } = &self.backend else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(tokens).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)?;
        state.write().expect("tokens poisoned").0 = None; // re-read on next use
        self.refresh()
    }

    fn where_kept(&self) -> String {
        match &self.backend {
            Backend::File { path, .. } => path.display().to_string(),
            Backend::Shared(_) => "the shared database".into(),
        }
    }

    /// Creates a token and returns its record and its secret, which is shown only once.
    /// A named holder becomes a new person of the directory (the name is kept there
    /// only); a token for a person already there shares their id.
    pub async fn create(
        &self,
        role: Role,
        structure: Option<Uuid>,
        holder: Holder<'_>,
    ) -> Result<(TokenRecord, String), TokenError> {
        match (role, structure) {
            (Role::Structure, None) => return Err(TokenError::StructureMissing),
            (r, Some(_)) if r != Role::Structure => return Err(TokenError::StructureNotAllowed),
            _ => {}
        }
        let person = match holder {
            Holder::Named(name) if name.trim().is_empty() => return Err(TokenError::HolderMissing),
            Holder::Named(name) => match &self.directory {
                Some(directory) => directory.add_agent(role.name(), name)?,
                None => Uuid::new_v4(),
            },
            Holder::Person(id) => {
                if let Some(directory) = &self.directory
                    && !matches!(directory.lookup(id)?, store::directory::Lookup::Known(_))
                {
                    return Err(TokenError::NoSuchPerson(id));
                }
                id
            }
        };
        let secret = format!("ct_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let record = TokenRecord {
            id: Uuid::new_v4(),
            hash: hash_secret(&secret),
            role,
            structure,
            person: Some(person),
            label: String::new(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let cannot =
            |e: &dyn std::fmt::Display| TokenError::Storage { place: self.where_kept(), message: e.to_string() };
        match &self.backend {
            Backend::File { .. } => {
                self.refresh().map_err(|e| cannot(&e))?;
                let mut tokens = self.list().await;
                tokens.push(record.clone());
                self.save(&tokens).map_err(|e| cannot(&e))?;
            }
            Backend::Shared(state) => state.create_token(shared_token(&record)).await.map_err(|e| cannot(&e))?,
        }
        Ok((record, secret))
    }

    /// Revokes a token by id; false when there is no such active token.
    pub async fn revoke(&self, id: Uuid) -> Result<bool, TokenError> {
        let cannot =
            |e: &dyn std::fmt::Display| TokenError::Storage { place: self.where_kept(), message: e.to_string() };
        match &self.backend {
            Backend::File { .. } => {
                self.refresh().map_err(|e| cannot(&e))?;
                let mut tokens = self.list().await;
                let Some(t) = tokens.iter_mut().find(|t| t.id == id && t.revoked_at.is_none()) else {
                    return Ok(false);
                };
                t.revoked_at = Some(Utc::now());
                self.save(&tokens).map_err(|e| cannot(&e))?;
                Ok(true)
            }
            Backend::Shared(state) => state.revoke_token(id, Utc::now()).await.map_err(|e| cannot(&e)),
        }
    }

    /// The holder's name for display: the directory's, "personne effacée", or the id.
    pub fn holder_name(&self, record: &TokenRecord) -> String {
        match (record.person, &self.directory) {
            (Some(person), Some(directory)) => directory.display(&person.to_string()),
            (Some(person), None) => person.to_string(),
            (None, _) => record.label.clone(),
        }
    }

    /// Revokes every active token of a person (an erased person acts no more); the
    /// revoked tokens' ids.
    pub async fn revoke_person(&self, person: Uuid) -> Result<Vec<Uuid>, TokenError> {
        let mut revoked = Vec::new();
        for t in self.list().await {
            if t.person == Some(person) && t.revoked_at.is_none() && self.revoke(t.id).await? {
                revoked.push(t.id);
            }
        }
        Ok(revoked)
    }

    /// Rewrites a token file of before the directory, at open: each label becomes a
    /// person of the directory (one per distinct role and label, the one the log's
    /// migration finds too), and the file keeps only their ids.
    fn move_labels_to_directory(&self) -> std::io::Result<()> {
        let (Some(directory), Backend::File { state, .. }) = (&self.directory, &self.backend) else { return Ok(()) };
        let mut tokens = state.read().expect("tokens poisoned").1.clone();
        if !tokens.iter().any(|t| t.person.is_none()) {
            return Ok(());
        }
        let mut people = std::collections::BTreeMap::new();
        for t in tokens.iter_mut().filter(|t| t.person.is_none()) {
            let key = (t.role.name().to_string(), t.label.clone());
            let person = match people.get(&key) {
                Some(p) => *p,
                None => {
                    let p = directory.agent(t.role.name(), &t.label).map_err(std::io::Error::other)?;
                    people.insert(key, p);
                    p
                }
            };
            t.person = Some(person);
            t.label.clear();
        }
        self.save(&tokens)
    }

    pub async fn list(&self) -> Vec<TokenRecord> {
        match &self.backend {
            Backend::File { state, .. } => state.read().expect("tokens poisoned").1.clone(),
            Backend::Shared(state) => match state.tokens().await {
                Ok(tokens) => tokens.iter().filter_map(token_record).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the shared tokens");
                    Vec::new()
                }
            },
        }
    }

    /// Whether a token is still there and not revoked (re-reading the file if it
    /// changed; asking the shared database each time). A token that cannot be checked
    /// counts as revoked.
    pub async fn is_active(&self, token_id: Uuid) -> bool {
        match &self.backend {
            Backend::File { state, .. } => {
                if let Err(e) = self.refresh() {
                    tracing::error!(error = %e, "cannot read the token file");
                }
                state.read().expect("tokens poisoned").1.iter().any(|t| t.id == token_id && t.revoked_at.is_none())
            }
            Backend::Shared(state) => match state.token(token_id).await {
                Ok(found) => found.is_some_and(|t| t.revoked_at.is_none()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the shared tokens");
                    false
                }
            },
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let secret = header.strip_prefix("Bearer ").map(str::trim).ok_or(AuthError::Malformed)?;
        if !well_formed(secret) {
            return Err(AuthError::Malformed);
        }
        let hash = hash_secret(secret);
        let found = match &self.backend {
            Backend::File { state, .. } => {
                if let Err(e) = self.refresh() {
                    tracing::error!(error = %e, "cannot read the token file");
                }
                state
                    .read()
                    .expect("tokens poisoned")
                    .1
                    .iter()
                    .find(|t| t.hash == hash && t.revoked_at.is_none())
                    .cloned()
            }
            Backend::Shared(state) => match state.token_by_hash(&hash).await {
                Ok(found) => found.as_ref().and_then(token_record).filter(|t| t.revoked_at.is_none()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the shared tokens");
                    None
                }
            },
        };
        let t = found.ok_or(AuthError::Unknown)?;
        let label = self.holder_name(&t);
        Ok(Principal { role: t.role, structure: t.structure, label, token_id: t.id, person: t.person })
    }
}

/// A token as the shared database keeps it: the record as JSON, hash and revocation in
/// columns of their own (what lookups and revocations touch).
fn shared_token(record: &TokenRecord) -> store::SharedToken {
    store::SharedToken {
        id: record.id,
        hash: record.hash.clone(),
        record: serde_json::to_string(record).expect("a token record serialises"),
        revoked_at: record.revoked_at,
    }
}

fn token_record(t: &store::SharedToken) -> Option<TokenRecord> {
    match serde_json::from_str::<TokenRecord>(&t.record) {
        Ok(record) if record.id == t.id && record.hash == t.hash => {
            Some(TokenRecord { revoked_at: t.revoked_at, ..record })
        }
        Ok(_) => {
            tracing::error!(token = %t.id, "a shared token's record does not match its row: ignored");
            None
        }
        Err(e) => {
            tracing::error!(token = %t.id, error = %e, "a shared token's record is unreadable: ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (record, secret) = store.create(Role::Opco, None, Holder::Named("Marie (OPCO)")).await.unwrap();
        let file = std::fs::read_to_string(dir.path().join(TokenStore::FILE)).unwrap();
        assert!(!file.contains(&secret), "the secret is never stored");
        assert!(file.contains(&record.hash));
        let principal = store.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap();
        assert_eq!((principal.role, principal.token_id), (Role::Opco, record.id));
        let person = record.person.expect("a new token names its holder's id");
        assert_eq!(principal.actor(), format!("opco:{person} (token {})", &record.id.simple().to_string()[..8]));
        assert!(!file.contains("Marie"), "the holder's name is kept in the directory only");
        assert_eq!(principal.label, "Marie (OPCO)");

        // Another process (the CLI) revokes it: the running store sees it.
        let cli = TokenStore::open(dir.path()).unwrap();
        assert!(cli.revoke(record.id).await.unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(store.authenticate(Some(&format!("Bearer {secret}"))).await, Err(AuthError::Unknown));
        assert!(!cli.revoke(record.id).await.unwrap(), "already revoked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_tokens_are_stored_hashed_and_a_revocation_holds_for_every_replica() {
        let Some(url) = store::postgres::testing::fresh_url("shared tokens").await else { return };
        let (a, b) =
            (store::PostgresStore::connect(&url).await.unwrap(), store::PostgresStore::connect(&url).await.unwrap());
        let state: Arc<dyn store::ReplicaState> = Arc::new(a);
        let (one, other) = (TokenStore::shared(state.clone()), TokenStore::shared(Arc::new(b)));
        let (record, secret) = one.create(Role::Opco, None, Holder::Named("Marie (OPCO)")).await.unwrap();
        let bearer = format!("Bearer {secret}");
        assert_eq!(other.authenticate(Some(&bearer)).await.unwrap().token_id, record.id);
        let stored = state.tokens().await.unwrap();
        assert!(!format!("{stored:?}").contains(&secret), "the secret is never stored");
        assert_eq!(stored[0].hash, record.hash);
        assert!(other.revoke(record.id).await.unwrap());
        assert_eq!(one.authenticate(Some(&bearer)).await, Err(AuthError::Unknown));
        assert!(!one.is_active(record.id).await);
        assert!(one.list().await[0].revoked_at.is_some());
        assert!(!one.revoke(record.id).await.unwrap(), "already revoked");
    }

    #[tokio::test]
    async fn bad_credentials_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.authenticate(None).await, Err(AuthError::Missing));
        assert_eq!(store.authenticate(Some("Basic abc")).await, Err(AuthError::Malformed));
        assert_eq!(store.authenticate(Some("Bearer ct_123")).await, Err(AuthError::Malformed));
        let unknown = format!("Bearer ct_{}", "a".repeat(64));
        assert_eq!(store.authenticate(Some(&unknown)).await, Err(AuthError::Unknown));
    }

    #[tokio::test]
    async fn structure_tokens_are_bound_to_one_structure() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let refused = store.create(Role::Structure, None, Holder::Named("CCAS de Brest")).await;
        assert!(matches!(refused, Err(TokenError::StructureMissing)));
        let refused = store.create(Role::Anct, Some(Uuid::new_v4()), Holder::Named("x")).await;
        assert!(matches!(refused, Err(TokenError::StructureNotAllowed)));
        assert!(matches!(store.create(Role::Anct, None, Holder::Named("  ")).await, Err(TokenError::HolderMissing)));
        let nobody = Uuid::new_v4();
        let refused = store.create(Role::Anct, None, Holder::Person(nobody)).await;
        assert!(matches!(refused, Err(TokenError::NoSuchPerson(id)) if id == nobody));
        let id = Uuid::new_v4();
        let (_, secret) = store.create(Role::Structure, Some(id), Holder::Named("CCAS de Brest")).await.unwrap();
        assert_eq!(store.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap().structure, Some(id));
    }
}
