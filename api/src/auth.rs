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
    pub label: String,
    pub token_id: Uuid,
}

impl Principal {
    /// The actor recorded on every event this principal causes.
    pub fn actor(&self) -> String {
        format!("{}:{} (token {})", self.role.name(), self.label, &self.token_id.simple().to_string()[..8])
    }

    /// Whether this principal may see the data of `structure`: every role but `structure`
    /// sees all; a structure sees only its own.
    pub fn sees_structure(&self, structure: uuid::Uuid) -> bool {
        self.role != Role::Structure || self.structure == Some(structure)
    }

    /// A principal that no token stands behind, for tests and in-process tools.
    pub fn local(role: Role, label: &str) -> Self {
        Self { role, structure: None, label: label.into(), token_id: Uuid::nil() }
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

/// A token as stored: never the secret, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: Uuid,
    /// SHA-256 of the secret, hexadecimal.
    pub hash: String,
    pub role: Role,
    pub structure: Option<Uuid>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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
}

enum Backend {
    File { path: PathBuf, state: RwLock<(Option<SystemTime>, Vec<TokenRecord>)> },
    Shared(Arc<dyn store::ReplicaState>),
}

impl TokenStore {
    pub const FILE: &'static str = "tokens.json";

    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let store =
            Self { backend: Backend::File { path: data_dir.join(Self::FILE), state: RwLock::new((None, Vec::new())) } };
        store.refresh()?;
        Ok(store)
    }

    /// The tokens the replicas of a shared log share (only hashes are stored there too).
    pub fn shared(state: Arc<dyn store::ReplicaState>) -> Self {
        Self { backend: Backend::Shared(state) }
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
    pub async fn create(
        &self,
        role: Role,
        structure: Option<Uuid>,
        label: &str,
    ) -> Result<(TokenRecord, String), String> {
        match (role, structure) {
            (Role::Structure, None) => return Err("a structure token needs --structure <structure id>".into()),
            (r, Some(_)) if r != Role::Structure => return Err("only structure tokens are bound to a structure".into()),
            _ => {}
        }
        if label.trim().is_empty() {
            return Err("a token needs a label (who holds it)".into());
        }
        let secret = format!("ct_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let record = TokenRecord {
            id: Uuid::new_v4(),
            hash: hash_secret(&secret),
            role,
            structure,
            label: label.trim().to_string(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let cannot = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", self.where_kept());
        match &self.backend {
            Backend::File { .. } => {
                self.refresh().map_err(|e| e.to_string())?;
                let mut tokens = self.list().await;
                tokens.push(record.clone());
                self.save(&tokens).map_err(|e| cannot(&e))?;
            }
            Backend::Shared(state) => state.create_token(shared_token(&record)).await.map_err(|e| cannot(&e))?,
        }
        Ok((record, secret))
    }

    /// Revokes a token by id; false when there is no such active token.
    pub async fn revoke(&self, id: Uuid) -> Result<bool, String> {
        let cannot = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", self.where_kept());
        match &self.backend {
            Backend::File { .. } => {
                self.refresh().map_err(|e| e.to_string())?;
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
        Ok(Principal { role: t.role, structure: t.structure, label: t.label.clone(), token_id: t.id })
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
        let (record, secret) = store.create(Role::Opco, None, "Marie (OPCO)").await.unwrap();
        let file = std::fs::read_to_string(dir.path().join(TokenStore::FILE)).unwrap();
        assert!(!file.contains(&secret), "the secret is never stored");
        assert!(file.contains(&record.hash));
        let principal = store.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap();
        assert_eq!((principal.role, principal.token_id), (Role::Opco, record.id));
        assert!(principal.actor().starts_with("opco:Marie (OPCO) (token "));

        // Another process (the CLI) revokes it: the running store sees it.
        let cli = TokenStore::open(dir.path()).unwrap();
        assert!(cli.revoke(record.id).await.unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(store.authenticate(Some(&format!("Bearer {secret}"))).await, Err(AuthError::Unknown));
        assert!(!cli.revoke(record.id).await.unwrap(), "already revoked");
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
        assert!(store.create(Role::Structure, None, "CCAS de Brest").await.is_err());
        assert!(store.create(Role::Anct, Some(Uuid::new_v4()), "x").await.is_err());
        let id = Uuid::new_v4();
        let (_, secret) = store.create(Role::Structure, Some(id), "CCAS de Brest").await.unwrap();
        assert_eq!(store.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap().structure, Some(id));
    }
}
