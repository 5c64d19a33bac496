//! The Convention aggregate: a signed agreement between ANCT and a partner, its funders'
//! shares, its envelopes (budget lines), its amendments (avenants) and the life of every
//! euro committed on it: engagement → service fait → paiement.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::annex::{AnnexCaps, CapsChange};
use crate::financing::{self, EnvelopeFinancing, FinancingPlan, FunderPart, PlanError};
use crate::ids::{ConventionId, EnvelopeId};
use crate::money::Money;
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The kinds of budget line the plan's conventions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(Default)]
pub enum EnvelopeKind {
    CertifyingTrainings,
    NonCertifyingTrainings,
    AnnexCosts,
    Certifications,
    AidantsConnectTraining,
    CcasActions,
    #[default]
    Other,
}

/// What a convention promises to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetKind {
    /// Trainees trained (the 2 000 trainings of the ANCT–Uniformation convention).
    Trainings,
    /// Aidants Connect habilitations. The plan's 20 000 count aidants *trained*
    /// ([`TargetKind::AidantsTrained`]); habilitations follow and are shown beside them.
    Habilitations,
    /// Pix certifications.
    Certifications,
    /// CCAS actions (UNCCAS convention).
    CcasActions,
    /// Aidants who completed the mandatory Aidants Connect training: the plan's "formation
    /// obligatoire aux 20 000 aidants professionnels souhaitant être habilités".
    AidantsTrained,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingShare {
    pub funder: String,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub kind: TargetKind,
    pub quantity: u32,
}

/// A new amount for one envelope, set by an amendment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeAmount {
    pub envelope_id: EnvelopeId,
    pub amount: Money,
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignConvention {
    pub code: String,
    pub partner: String,
    pub title: String,
    pub signed_on: NaiveDate,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub total: Money,
    pub shares: Vec<FundingShare>,
    pub targets: Vec<Target>,
    /// Where the convention's money may go; empty means the whole country.
    pub departements: Vec<DepartementCode>,
    /// Annex-cost caps from the period's start; our defaults when absent.
    pub annex_caps: Option<AnnexCaps>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllocateEnvelope {
    pub convention_id: ConventionId,
    pub name: String,
    pub kind: EnvelopeKind,
    pub amount: Money,
    pub allocated_on: NaiveDate,
    /// Which funder pays what part of it; needed when the convention has several
    /// funders (one funder: all of it).
    pub financing: Option<Vec<FunderPart>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignAmendment {
    pub convention_id: ConventionId,
    pub signed_on: NaiveDate,
    pub reason: String,
    pub total: Option<Money>,
    pub shares: Option<Vec<FundingShare>>,
    pub period_end: Option<NaiveDate>,
    pub envelopes: Vec<EnvelopeAmount>,
    /// New annex-cost caps, from a date no earlier than the amendment's signature.
    pub annex_caps: Option<CapsChange>,
    /// New financing plans, for the money committed from the amendment on.
    pub financing: Vec<EnvelopeFinancing>,
}

/// One instalment of a disbursement schedule as set: its part of ANCT's share (a rate
/// or an amount) and its condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedInstalment {
    pub label: String,
    pub share: crate::financing::Share,
    pub condition: crate::disbursement::Condition,
}

/// Sets the schedule of ANCT's payments to the partner: once at signature, then only as
/// an amendment already signed says (`amendment`: its number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetSchedule {
    pub convention_id: ConventionId,
    pub instalments: Vec<PlannedInstalment>,
    pub set_on: NaiveDate,
    pub amendment: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitFunds {
    pub convention_id: ConventionId,
    pub envelope_id: EnvelopeId,
    /// What the money is for (a purchase, a claim); unique within the convention.
    pub reference: String,
    pub amount: Money,
    pub committed_on: NaiveDate,
    /// The territory the money goes to, for the per-territory dashboards.
    pub departement: Option<DepartementCode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReleaseFunds {
    pub convention_id: ConventionId,
    pub reference: String,
    pub amount: Money,
    pub released_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordServiceDone {
    pub convention_id: ConventionId,
    pub reference: String,
    pub amount: Money,
    pub done_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordPayment {
    pub convention_id: ConventionId,
    pub reference: String,
    pub amount: Money,
    pub paid_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CloseConvention {
    pub convention_id: ConventionId,
    pub closed_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum ConventionCommand {
    Sign(SignConvention),
    AllocateEnvelope(AllocateEnvelope),
    SignAmendment(SignAmendment),
    CommitFunds(CommitFunds),
    ReleaseFunds(ReleaseFunds),
    RecordServiceDone(RecordServiceDone),
    RecordPayment(RecordPayment),
    Close(CloseConvention),
    SetSchedule(SetSchedule),
}

impl ConventionCommand {
    /// The convention (hence the stream) this command is about.
    pub fn convention_id(&self) -> ConventionId {
        match self {
            Self::Sign(c) => ConventionId::for_code(&c.code),
            Self::AllocateEnvelope(c) => c.convention_id,
            Self::SignAmendment(c) => c.convention_id,
            Self::CommitFunds(c) => c.convention_id,
            Self::ReleaseFunds(c) => c.convention_id,
            Self::RecordServiceDone(c) => c.convention_id,
            Self::RecordPayment(c) => c.convention_id,
            Self::Close(c) => c.convention_id,
            Self::SetSchedule(c) => c.convention_id,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConventionSigned {
    pub convention_id: ConventionId,
    pub code: String,
    pub partner: String,
    pub title: String,
    pub signed_on: NaiveDate,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub total: Money,
    pub shares: Vec<FundingShare>,
    pub targets: Vec<Target>,
    pub departements: Vec<DepartementCode>,
    /// In force from the period's start. Events recorded before caps existed read as
    /// our defaults.
    #[serde(default)]
    pub annex_caps: AnnexCaps,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeAllocated {
    pub envelope_id: EnvelopeId,
    pub name: String,
    pub kind: EnvelopeKind,
    pub amount: Money,
    pub allocated_on: NaiveDate,
    /// Its financing plan. Envelopes recorded before plans existed have none: they read
    /// as the convention's shares (`financing::plan_or_shares`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub financing: Vec<FunderPart>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendmentSigned {
    /// Avenant n°1, n°2… in signing order.
    pub number: u32,
    pub signed_on: NaiveDate,
    pub reason: String,
    pub total: Option<Money>,
    pub shares: Option<Vec<FundingShare>>,
    pub period_end: Option<NaiveDate>,
    pub envelopes: Vec<EnvelopeAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annex_caps: Option<CapsChange>,
    /// New financing plans, for the money committed from the amendment on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub financing: Vec<EnvelopeFinancing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundsCommitted {
    pub envelope_id: EnvelopeId,
    pub reference: String,
    pub amount: Money,
    pub committed_on: NaiveDate,
    pub departement: Option<DepartementCode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundsReleased {
    pub envelope_id: EnvelopeId,
    pub reference: String,
    pub amount: Money,
    pub released_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDoneRecorded {
    pub envelope_id: EnvelopeId,
    pub reference: String,
    pub amount: Money,
    pub done_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecorded {
    pub envelope_id: EnvelopeId,
    pub reference: String,
    pub amount: Money,
    pub paid_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConventionClosed {
    pub closed_on: NaiveDate,
}

/// The disbursement schedule, its instalments' amounts resolved from ANCT's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSet {
    pub instalments: Vec<crate::disbursement::Instalment>,
    pub set_on: NaiveDate,
    pub amendment: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConventionEvent {
    ConventionSigned(ConventionSigned),
    EnvelopeAllocated(EnvelopeAllocated),
    AmendmentSigned(AmendmentSigned),
    FundsCommitted(FundsCommitted),
    FundsReleased(FundsReleased),
    ServiceDoneRecorded(ServiceDoneRecorded),
    PaymentRecorded(PaymentRecorded),
    ConventionClosed(ConventionClosed),
    ScheduleSet(ScheduleSet),
}

impl DomainEvent for ConventionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ConventionSigned(_) => "ConventionSigned",
            Self::EnvelopeAllocated(_) => "EnvelopeAllocated",
            Self::AmendmentSigned(_) => "AmendmentSigned",
            Self::FundsCommitted(_) => "FundsCommitted",
            Self::FundsReleased(_) => "FundsReleased",
            Self::ServiceDoneRecorded(_) => "ServiceDoneRecorded",
            Self::PaymentRecorded(_) => "PaymentRecorded",
            Self::ConventionClosed(_) => "ConventionClosed",
            Self::ScheduleSet(_) => "DisbursementScheduleSet",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            Self::ConventionSigned(e) => e.signed_on,
            Self::EnvelopeAllocated(e) => e.allocated_on,
            Self::AmendmentSigned(e) => e.signed_on,
            Self::FundsCommitted(e) => e.committed_on,
            Self::FundsReleased(e) => e.released_on,
            Self::ServiceDoneRecorded(e) => e.done_on,
            Self::PaymentRecorded(e) => e.paid_on,
            Self::ConventionClosed(e) => e.closed_on,
            Self::ScheduleSet(e) => e.set_on,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors: one variant per broken rule, carrying the figures
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum ConventionError {
    #[error("no convention has this id")]
    NotFound,
    #[error("convention {code} is already signed: a code can be used only once")]
    AlreadySigned {
        /// Named apart from the API's `code` (the error's kind), which it must not shadow.
        #[serde(rename = "conventionCode")]
        code: String,
    },
    #[error("convention {code} is closed: it accepts no more commands")]
    Closed {
        /// Named apart from the API's `code` (the error's kind), which it must not shadow.
        #[serde(rename = "conventionCode")]
        code: String,
    },
    #[error("`{code}` is not a valid convention code: use 1 to 64 letters, digits, `-` or `_`")]
    InvalidCode {
        /// Named apart from the API's `code` (the error's kind), which it must not shadow.
        #[serde(rename = "conventionCode")]
        code: String,
    },
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
    #[error("{field} must be more than 0 €")]
    ZeroAmount { field: &'static str },
    #[error("the period ends ({end}) before it starts ({start})")]
    PeriodEndsBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("a convention needs at least one funding share")]
    NoFundingShare,
    #[error("funder {funder} appears twice in the funding shares")]
    DuplicateFunder { funder: String },
    #[error("the funding shares add up to {shares_sum}, not to the total of {total}")]
    SharesDoNotAddUp { total: Money, shares_sum: Money },
    #[error("target {kind:?} appears twice")]
    DuplicateTarget { kind: TargetKind },
    #[error("a target must be at least 1 ({kind:?})")]
    ZeroTarget { kind: TargetKind },
    #[error("an envelope named {name} already exists in this convention")]
    DuplicateEnvelope { name: String },
    #[error(
        "envelopes would total {allocated_after} but the convention's total is {total}: {available} is left to allocate, {requested} requested"
    )]
    EnvelopesExceedTotal { total: Money, available: Money, requested: Money, allocated_after: Money },
    #[error("no envelope {envelope_id} in this convention")]
    UnknownEnvelope { envelope_id: EnvelopeId },
    #[error("envelope {envelope_id} is changed twice in the same amendment")]
    DuplicateEnvelopeChange { envelope_id: EnvelopeId },
    #[error(
        "an amendment must change the total, the shares, the end date, an envelope, the annex-cost terms or a financing plan"
    )]
    EmptyAmendment,
    #[error("annex-cost cap {field} must be more than 0 (the claim deadline at least 1 day)")]
    InvalidCaps { field: &'static str },
    #[error("new caps cannot take effect ({effective_on}) before the amendment is signed ({signed_on})")]
    RetroactiveCaps { effective_on: NaiveDate, signed_on: NaiveDate },
    #[error(
        "envelope {envelope} cannot go below what is committed on it: {committed} committed, {requested} requested"
    )]
    EnvelopeBelowCommitted { envelope_id: EnvelopeId, envelope: String, committed: Money, requested: Money },
    #[error("envelope {envelope} has {available} available, {requested} requested")]
    EnvelopeExceeded { envelope_id: EnvelopeId, envelope: String, available: Money, requested: Money },
    #[error("{date} is outside the convention's period ({start} to {end})")]
    OutsidePeriod { date: NaiveDate, start: NaiveDate, end: NaiveDate },
    #[error("département {departement} is outside the convention's territory")]
    OutsideTerritory { departement: DepartementCode },
    #[error("funds are already committed for reference {reference}")]
    ReferenceAlreadyCommitted { reference: String },
    #[error("no funds are committed for reference {reference}")]
    UnknownReference { reference: String },
    #[error(
        "reference {reference}: only {releasable} can be released (committed and not yet served), {requested} requested"
    )]
    ReleaseExceedsUnused { reference: String, releasable: Money, requested: Money },
    #[error(
        "reference {reference}: service done cannot exceed what is committed: {remaining} left, {requested} requested"
    )]
    ServiceDoneExceedsCommitted { reference: String, remaining: Money, requested: Money },
    #[error("reference {reference}: payment cannot exceed the service done: {payable} payable, {requested} requested")]
    PaymentExceedsServiceDone { reference: String, payable: Money, requested: Money },
    #[error(
        "{what} is dated {date}, before {earlier} on {earlier_date}: each step comes after the facts it depends on"
    )]
    DatedBefore { what: &'static str, date: NaiveDate, earlier: &'static str, earlier_date: NaiveDate },
    #[error("{count} commitment(s) are still open, {outstanding} not yet paid: release or pay them first")]
    OpenCommitments { count: usize, outstanding: Money },
    #[error("the financing plan of envelope {envelope}: {problem}")]
    FinancingPlan {
        envelope: String,
        #[serde(flatten)]
        problem: PlanError,
    },
    #[error("funder {funder} would pay {planned} of the envelopes, more than its share of the convention ({share})")]
    FunderShareExceeded { funder: String, share: Money, planned: Money },
    #[error("ANCT is not a funder of this convention: it has no share to pay in instalments")]
    NoAnctShare,
    #[error("a schedule needs at least one instalment")]
    EmptySchedule,
    #[error("the schedule {problem}")]
    ScheduleDoesNotAddUp { problem: String },
    #[error(
        "the schedule is set once at signature; a change needs an amendment signed and not yet used (n°{amendment:?})"
    )]
    ScheduleChangeNeedsAmendment { amendment: Option<u32> },
}

impl ConventionError {
    /// The name of the broken rule, as clients see it in `extensions.rule`.
    pub fn rule(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("rule").and_then(|r| r.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    pub name: String,
    pub kind: EnvelopeKind,
    /// Commitments on it come no earlier.
    pub allocated_on: NaiveDate,
    pub allocated: Money,
    /// Net of releases.
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
    /// Who pays what part of the money committed from now on.
    pub plan: FinancingPlan,
    /// Whether the plan was recorded (envelopes from before plans read the shares).
    pub plan_recorded: bool,
}

impl Envelope {
    pub fn available(&self) -> Money {
        self.allocated.saturating_sub(self.committed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    pub envelope_id: EnvelopeId,
    pub committed_on: NaiveDate,
    /// Each service done (date, amount), in the order recorded: a payment pays only what
    /// was served by its own date.
    pub served: Vec<(NaiveDate, Money)>,
    /// Net of releases.
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
}

impl Commitment {
    /// The date by which `amount` had been served, if it was.
    pub fn served_by(&self, amount: Money) -> Option<NaiveDate> {
        let mut dates: Vec<_> = self.served.clone();
        dates.sort_by_key(|(on, _)| *on);
        let mut total = Money::ZERO;
        dates.into_iter().find_map(|(on, served)| {
            total = total + served;
            (total >= amount).then_some(on)
        })
    }

    /// Open while some committed money is neither paid nor released.
    pub fn is_open(&self) -> bool {
        self.committed > self.paid
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub code: String,
    pub signed_on: NaiveDate,
    /// The latest business date of any step: a closing comes no earlier.
    pub last_movement: NaiveDate,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub total: Money,
    pub shares: Vec<FundingShare>,
    pub departements: Vec<DepartementCode>,
    pub envelopes: BTreeMap<EnvelopeId, Envelope>,
    pub commitments: BTreeMap<String, Commitment>,
    pub amendments: u32,
    pub closed: bool,
    pub convention_id: ConventionId,
    /// Annex-cost caps by the date they take effect.
    pub caps: Vec<CapsChange>,
    /// ANCT's payments to the partner, and the amendments that changed them.
    pub schedule: Vec<crate::disbursement::Instalment>,
    pub schedule_amendments: Vec<u32>,
}

impl Signed {
    fn allocated(&self) -> Money {
        self.envelopes.values().map(|e| e.allocated).sum()
    }
}

/// Each funder's planned part of the envelopes (`amount`, `plan`) stays within its share
/// of the convention.
fn check_funders<'a>(
    shares: &[FundingShare],
    envelopes: impl Iterator<Item = (Money, &'a FinancingPlan)>,
) -> Result<(), ConventionError> {
    let mut planned: BTreeMap<&str, Money> = BTreeMap::new();
    for (amount, plan) in envelopes {
        for (part, money) in plan.iter().zip(financing::split(plan, amount)) {
            let entry = planned.entry(part.funder.as_str()).or_insert(Money::ZERO);
            *entry = *entry + money;
        }
    }
    for share in shares {
        let planned = planned.get(share.funder.as_str()).copied().unwrap_or(Money::ZERO);
        if planned > share.amount {
            return Err(ConventionError::FunderShareExceeded {
                funder: share.funder.clone(),
                share: share.amount,
                planned,
            });
        }
    }
    Ok(())
}

/// The decision state of one convention; `None` until it is signed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Convention(pub Option<Signed>);

const MAX_CODE_LEN: usize = 64;

fn require(field: &'static str, value: &str) -> Result<(), ConventionError> {
    if value.trim().is_empty() {
        return Err(ConventionError::MissingField { field });
    }
    Ok(())
}

/// The steps of a commitment after it is made, which [`Convention::on_commitment`] checks alike.
#[derive(Clone, Copy)]
enum CommitmentStep {
    /// Part of the commitment given back (never what was served).
    Release,
    /// The service done on it (never beyond what is committed).
    ServiceDone,
    /// Paid (never beyond the service done).
    Payment,
}

fn positive(field: &'static str, amount: Money) -> Result<(), ConventionError> {
    if amount.is_zero() {
        return Err(ConventionError::ZeroAmount { field });
    }
    Ok(())
}

/// Shares must be non-empty, positive, one per funder, and add up to the total exactly.
fn check_shares(total: Money, shares: &[FundingShare]) -> Result<(), ConventionError> {
    if shares.is_empty() {
        return Err(ConventionError::NoFundingShare);
    }
    let mut funders = BTreeSet::new();
    for share in shares {
        require("funder", &share.funder)?;
        positive("a funding share", share.amount)?;
        if !funders.insert(share.funder.trim().to_lowercase()) {
            return Err(ConventionError::DuplicateFunder { funder: share.funder.clone() });
        }
    }
    let shares_sum: Money = shares.iter().map(|s| s.amount).sum();
    if shares_sum != total {
        return Err(ConventionError::SharesDoNotAddUp { total, shares_sum });
    }
    Ok(())
}

/// A step dated before a fact it depends on is refused with both dates.
fn not_before(
    what: &'static str,
    date: NaiveDate,
    earlier: &'static str,
    earlier_date: NaiveDate,
) -> Result<(), ConventionError> {
    if date < earlier_date {
        return Err(ConventionError::DatedBefore { what, date, earlier, earlier_date });
    }
    Ok(())
}

fn trimmed_shares(shares: &[FundingShare]) -> Vec<FundingShare> {
    shares.iter().map(|s| FundingShare { funder: s.funder.trim().to_string(), amount: s.amount }).collect()
}

impl Convention {
    /// The signed, open convention, or why commands cannot apply to it.
    fn open(&self) -> Result<&Signed, ConventionError> {
        match &self.0 {
            None => Err(ConventionError::NotFound),
            Some(s) if s.closed => Err(ConventionError::Closed { code: s.code.clone() }),
            Some(s) => Ok(s),
        }
    }

    fn commitment<'a>(&'a self, s: &'a Signed, reference: &str) -> Result<&'a Commitment, ConventionError> {
        s.commitments
            .get(reference.trim())
            .ok_or_else(|| ConventionError::UnknownReference { reference: reference.trim().to_string() })
    }

    fn sign(&self, c: &SignConvention) -> Result<Vec<ConventionEvent>, ConventionError> {
        let code = c.code.trim().to_uppercase();
        if let Some(existing) = &self.0 {
            return Err(ConventionError::AlreadySigned { code: existing.code.clone() });
        }
        let valid_code = !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && code.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !valid_code {
            return Err(ConventionError::InvalidCode { code: c.code.clone() });
        }
        require("partner", &c.partner)?;
        require("title", &c.title)?;
        if c.period_end < c.period_start {
            return Err(ConventionError::PeriodEndsBeforeStart { start: c.period_start, end: c.period_end });
        }
        positive("the total", c.total)?;
        check_shares(c.total, &c.shares)?;
        let mut kinds = BTreeSet::new();
        for t in &c.targets {
            if t.quantity == 0 {
                return Err(ConventionError::ZeroTarget { kind: t.kind });
            }
            if !kinds.insert(t.kind) {
                return Err(ConventionError::DuplicateTarget { kind: t.kind });
            }
        }
        let departements: BTreeSet<_> = c.departements.iter().cloned().collect();
        let annex_caps = c.annex_caps.clone().unwrap_or_default();
        if let Some(field) = annex_caps.invalid_field() {
            return Err(ConventionError::InvalidCaps { field });
        }
        Ok(vec![ConventionEvent::ConventionSigned(ConventionSigned {
            convention_id: ConventionId::for_code(&code),
            code,
            partner: c.partner.trim().to_string(),
            title: c.title.trim().to_string(),
            signed_on: c.signed_on,
            period_start: c.period_start,
            period_end: c.period_end,
            total: c.total,
            shares: trimmed_shares(&c.shares),
            targets: c.targets.clone(),
            departements: departements.into_iter().collect(),
            annex_caps,
        })])
    }

    fn allocate(&self, c: &AllocateEnvelope) -> Result<Vec<ConventionEvent>, ConventionError> {
        let s = self.open()?;
        require("the envelope name", &c.name)?;
        not_before("the allocation", c.allocated_on, "the convention's signature", s.signed_on)?;
        let envelope_id = EnvelopeId::for_name(s.convention_id, &c.name);
        if s.envelopes.contains_key(&envelope_id) {
            return Err(ConventionError::DuplicateEnvelope { name: c.name.trim().to_string() });
        }
        positive("the envelope amount", c.amount)?;
        let plan = financing::check(c.financing.as_deref(), c.amount, &s.shares)
            .map_err(|problem| ConventionError::FinancingPlan { envelope: c.name.trim().to_string(), problem })?;
        let allocated = s.allocated();
        let allocated_after = allocated + c.amount;
        if allocated_after > s.total {
            return Err(ConventionError::EnvelopesExceedTotal {
                total: s.total,
                available: s.total.saturating_sub(allocated),
                requested: c.amount,
                allocated_after,
            });
        }
        check_funders(
            &s.shares,
            s.envelopes.values().map(|e| (e.allocated, &e.plan)).chain(std::iter::once((c.amount, &plan))),
        )?;
        Ok(vec![ConventionEvent::EnvelopeAllocated(EnvelopeAllocated {
            envelope_id,
            name: c.name.trim().to_string(),
            kind: c.kind,
            amount: c.amount,
            allocated_on: c.allocated_on,
            financing: plan,
        })])
    }

    fn amend(&self, c: &SignAmendment) -> Result<Vec<ConventionEvent>, ConventionError> {
        let s = self.open()?;
        require("the amendment's reason", &c.reason)?;
        not_before("the amendment", c.signed_on, "the convention's signature", s.signed_on)?;
        if c.total.is_none()
            && c.shares.is_none()
            && c.period_end.is_none()
            && c.envelopes.is_empty()
            && c.annex_caps.is_none()
            && c.financing.is_empty()
        {
            return Err(ConventionError::EmptyAmendment);
        }
        if let Some(change) = &c.annex_caps {
            if let Some(field) = change.caps.invalid_field() {
                return Err(ConventionError::InvalidCaps { field });
            }
            if change.effective_on < c.signed_on {
                return Err(ConventionError::RetroactiveCaps {
                    effective_on: change.effective_on,
                    signed_on: c.signed_on,
                });
            }
        }
        let total = c.total.unwrap_or(s.total);
        positive("the total", total)?;
        check_shares(total, c.shares.as_deref().unwrap_or(&s.shares))?;
        let end = c.period_end.unwrap_or(s.period_end);
        if end < s.period_start {
            return Err(ConventionError::PeriodEndsBeforeStart { start: s.period_start, end });
        }
        let mut new_amounts: BTreeMap<EnvelopeId, Money> =
            s.envelopes.iter().map(|(id, e)| (*id, e.allocated)).collect();
        let mut changed = BTreeSet::new();
        for change in &c.envelopes {
            let envelope = s
                .envelopes
                .get(&change.envelope_id)
                .ok_or(ConventionError::UnknownEnvelope { envelope_id: change.envelope_id })?;
            if !changed.insert(change.envelope_id) {
                return Err(ConventionError::DuplicateEnvelopeChange { envelope_id: change.envelope_id });
            }
            if change.amount < envelope.committed {
                return Err(ConventionError::EnvelopeBelowCommitted {
                    envelope_id: change.envelope_id,
                    envelope: envelope.name.clone(),
                    committed: envelope.committed,
                    requested: change.amount,
                });
            }
            new_amounts.insert(change.envelope_id, change.amount);
        }
        let allocated_after: Money = new_amounts.values().sum();
        if allocated_after > total {
            let before = s.allocated();
            return Err(ConventionError::EnvelopesExceedTotal {
                total,
                available: total.saturating_sub(before),
                requested: allocated_after.saturating_sub(before),
                allocated_after,
            });
        }
        let shares = c.shares.as_deref().unwrap_or(&s.shares);
        let financing = self.amended_plans(s, c, &new_amounts, shares)?;
        Ok(vec![ConventionEvent::AmendmentSigned(AmendmentSigned {
            number: s.amendments + 1,
            signed_on: c.signed_on,
            reason: c.reason.trim().to_string(),
            total: c.total,
            shares: c.shares.as_deref().map(trimmed_shares),
            period_end: c.period_end,
            envelopes: c.envelopes.clone(),
            annex_caps: c.annex_caps.clone(),
            financing,
        })])
    }

    /// The plans an amendment sets, checked; with the envelopes' amounts and the funders'
    /// shares after it, every recorded plan must still hold (a plan by amounts follows its
    /// envelope's amount), and each funder's planned part stay within its share.
    fn amended_plans(
        &self,
        s: &Signed,
        c: &SignAmendment,
        amounts: &BTreeMap<EnvelopeId, Money>,
        shares: &[FundingShare],
    ) -> Result<Vec<EnvelopeFinancing>, ConventionError> {
        let mut plans: BTreeMap<EnvelopeId, (FinancingPlan, bool)> =
            s.envelopes.iter().map(|(id, e)| (*id, (e.plan.clone(), e.plan_recorded))).collect();
        let mut changed = Vec::with_capacity(c.financing.len());
        for change in &c.financing {
            let envelope = s
                .envelopes
                .get(&change.envelope_id)
                .ok_or(ConventionError::UnknownEnvelope { envelope_id: change.envelope_id })?;
            if changed.iter().any(|e: &EnvelopeFinancing| e.envelope_id == change.envelope_id) {
                return Err(ConventionError::DuplicateEnvelopeChange { envelope_id: change.envelope_id });
            }
            let amount = amounts.get(&change.envelope_id).copied().unwrap_or(envelope.allocated);
            let plan = financing::check(Some(&change.parts), amount, shares)
                .map_err(|problem| ConventionError::FinancingPlan { envelope: envelope.name.clone(), problem })?;
            plans.insert(change.envelope_id, (plan.clone(), true));
            changed.push(EnvelopeFinancing { envelope_id: change.envelope_id, parts: plan });
        }
        for (id, (plan, recorded)) in &plans {
            let envelope = &s.envelopes[id];
            if *recorded && !changed.iter().any(|e| e.envelope_id == *id) {
                let amount = amounts.get(id).copied().unwrap_or(envelope.allocated);
                financing::check(Some(plan), amount, shares)
                    .map_err(|problem| ConventionError::FinancingPlan { envelope: envelope.name.clone(), problem })?;
            }
        }
        check_funders(
            shares,
            plans.iter().map(|(id, (plan, _))| (amounts.get(id).copied().unwrap_or(s.envelopes[id].allocated), plan)),
        )?;
        Ok(changed)
    }

    fn commit(&self, c: &CommitFunds) -> Result<Vec<ConventionEvent>, ConventionError> {
        let s = self.open()?;
        require("the reference", &c.reference)?;
        let reference = c.reference.trim().to_string();
        if s.commitments.contains_key(&reference) {
            return Err(ConventionError::ReferenceAlreadyCommitted { reference });
        }
        let envelope =
            s.envelopes.get(&c.envelope_id).ok_or(ConventionError::UnknownEnvelope { envelope_id: c.envelope_id })?;
        positive("the committed amount", c.amount)?;
        not_before("the commitment", c.committed_on, "the envelope's allocation", envelope.allocated_on)?;
        if c.committed_on < s.period_start || c.committed_on > s.period_end {
            return Err(ConventionError::OutsidePeriod {
                date: c.committed_on,
                start: s.period_start,
                end: s.period_end,
            });
        }
        if let Some(d) = &c.departement
            && !s.departements.is_empty()
            && !s.departements.contains(d)
        {
            return Err(ConventionError::OutsideTerritory { departement: d.clone() });
        }
        if c.amount > envelope.available() {
            return Err(ConventionError::EnvelopeExceeded {
                envelope_id: c.envelope_id,
                envelope: envelope.name.clone(),
                available: envelope.available(),
                requested: c.amount,
            });
        }
        Ok(vec![ConventionEvent::FundsCommitted(FundsCommitted {
            envelope_id: c.envelope_id,
            reference,
            amount: c.amount,
            committed_on: c.committed_on,
            departement: c.departement.clone(),
        })])
    }

    /// The checks a release, a service done and a payment share, in this order: the
    /// convention open, the commitment known, a positive amount, not dated before the
    /// commitment (a payment is dated against the service it pays instead, by
    /// [`Convention::pay`]), within the step's limit. Gives the commitment and the trimmed
    /// reference.
    fn on_commitment(
        &self,
        step: CommitmentStep,
        reference: &str,
        amount: Money,
        on: NaiveDate,
    ) -> Result<(&Commitment, String), ConventionError> {
        let s = self.open()?;
        let commitment = self.commitment(s, reference)?;
        let unserved = commitment.committed.saturating_sub(commitment.service_done);
        let (field, limit) = match step {
            CommitmentStep::Release => ("the released amount", unserved),
            CommitmentStep::ServiceDone => ("the service-done amount", unserved),
            CommitmentStep::Payment => ("the paid amount", commitment.service_done.saturating_sub(commitment.paid)),
        };
        positive(field, amount)?;
        match step {
            CommitmentStep::Release => not_before("the release", on, "the commitment", commitment.committed_on)?,
            CommitmentStep::ServiceDone => {
                not_before("the service done", on, "the commitment", commitment.committed_on)?
            }
            CommitmentStep::Payment => {}
        }
        let reference = reference.trim().to_string();
        if amount > limit {
            let requested = amount;
            return Err(match step {
                CommitmentStep::Release => {
                    ConventionError::ReleaseExceedsUnused { reference, releasable: limit, requested }
                }
                CommitmentStep::ServiceDone => {
                    ConventionError::ServiceDoneExceedsCommitted { reference, remaining: limit, requested }
                }
                CommitmentStep::Payment => {
                    ConventionError::PaymentExceedsServiceDone { reference, payable: limit, requested }
                }
            });
        }
        Ok((commitment, reference))
    }

    fn release(&self, c: &ReleaseFunds) -> Result<Vec<ConventionEvent>, ConventionError> {
        let (commitment, reference) =
            self.on_commitment(CommitmentStep::Release, &c.reference, c.amount, c.released_on)?;
        Ok(vec![ConventionEvent::FundsReleased(FundsReleased {
            envelope_id: commitment.envelope_id,
            reference,
            amount: c.amount,
            released_on: c.released_on,
        })])
    }

    fn service_done(&self, c: &RecordServiceDone) -> Result<Vec<ConventionEvent>, ConventionError> {
        let (commitment, reference) =
            self.on_commitment(CommitmentStep::ServiceDone, &c.reference, c.amount, c.done_on)?;
        Ok(vec![ConventionEvent::ServiceDoneRecorded(ServiceDoneRecorded {
            envelope_id: commitment.envelope_id,
            reference,
            amount: c.amount,
            done_on: c.done_on,
        })])
    }

    fn pay(&self, c: &RecordPayment) -> Result<Vec<ConventionEvent>, ConventionError> {
        let (commitment, reference) = self.on_commitment(CommitmentStep::Payment, &c.reference, c.amount, c.paid_on)?;
        // What this payment brings the paid total to must have been served by its date.
        if let Some(served_on) = commitment.served_by(commitment.paid + c.amount)
            && c.paid_on < served_on
        {
            return Err(ConventionError::DatedBefore {
                what: "the payment",
                date: c.paid_on,
                earlier: "the service done it pays",
                earlier_date: served_on,
            });
        }
        Ok(vec![ConventionEvent::PaymentRecorded(PaymentRecorded {
            envelope_id: commitment.envelope_id,
            reference,
            amount: c.amount,
            paid_on: c.paid_on,
        })])
    }

    fn set_schedule(&self, c: &SetSchedule) -> Result<Vec<ConventionEvent>, ConventionError> {
        use crate::financing::Share;
        let s = self.open()?;
        not_before("the schedule", c.set_on, "the convention's signature", s.signed_on)?;
        let first = s.schedule.is_empty() && s.schedule_amendments.is_empty();
        let amendment_ok = match c.amendment {
            None => first,
            Some(n) => n >= 1 && n <= s.amendments && !s.schedule_amendments.contains(&n),
        };
        if !amendment_ok {
            return Err(ConventionError::ScheduleChangeNeedsAmendment { amendment: c.amendment });
        }
        let anct =
            s.shares.iter().find(|f| f.funder.eq_ignore_ascii_case("ANCT")).ok_or(ConventionError::NoAnctShare)?;
        if c.instalments.is_empty() {
            return Err(ConventionError::EmptySchedule);
        }
        for i in &c.instalments {
            require("an instalment's label", &i.label)?;
        }
        let rates: Vec<_> =
            c.instalments.iter().filter_map(|i| if let Share::Rate(r) = i.share { Some(r) } else { None }).collect();
        let does_not_add_up = |problem: String| Err(ConventionError::ScheduleDoesNotAddUp { problem });
        let amounts: Vec<Money> = if rates.len() == c.instalments.len() {
            let sum: rust_decimal::Decimal = rates.iter().sum();
            if sum != rust_decimal::Decimal::ONE_HUNDRED || rates.iter().any(|r| *r <= rust_decimal::Decimal::ZERO) {
                return does_not_add_up(format!("rates add up to {sum} %, not 100 % of ANCT's share"));
            }
            anct.amount.split(&rates)
        } else if rates.is_empty() {
            let amounts: Vec<Money> = c
                .instalments
                .iter()
                .filter_map(|i| if let Share::Amount(a) = i.share { Some(a) } else { None })
                .collect();
            let sum: Money = amounts.iter().copied().sum();
            if sum != anct.amount || amounts.iter().any(|a| a.is_zero()) {
                return does_not_add_up(format!("amounts add up to {sum}, not to ANCT's share of {}", anct.amount));
            }
            amounts
        } else {
            return does_not_add_up("is all rates or all amounts, not both".into());
        };
        Ok(vec![ConventionEvent::ScheduleSet(ScheduleSet {
            instalments: c
                .instalments
                .iter()
                .zip(amounts)
                .map(|(i, amount)| crate::disbursement::Instalment {
                    label: i.label.trim().to_string(),
                    amount,
                    condition: i.condition,
                })
                .collect(),
            set_on: c.set_on,
            amendment: c.amendment,
        })])
    }

    fn close(&self, c: &CloseConvention) -> Result<Vec<ConventionEvent>, ConventionError> {
        let s = self.open()?;
        not_before("the closing", c.closed_on, "the last step it closes", s.last_movement)?;
        let open: Vec<_> = s.commitments.values().filter(|c| c.is_open()).collect();
        if !open.is_empty() {
            return Err(ConventionError::OpenCommitments {
                count: open.len(),
                outstanding: open.iter().map(|c| c.committed.saturating_sub(c.paid)).sum(),
            });
        }
        Ok(vec![ConventionEvent::ConventionClosed(ConventionClosed { closed_on: c.closed_on })])
    }
}

impl Aggregate for Convention {
    type Command = ConventionCommand;
    type Event = ConventionEvent;
    type Error = ConventionError;
    const CATEGORY: &'static str = "convention";

    fn decide(&self, command: &ConventionCommand) -> Result<Vec<ConventionEvent>, ConventionError> {
        match command {
            ConventionCommand::Sign(c) => self.sign(c),
            ConventionCommand::AllocateEnvelope(c) => self.allocate(c),
            ConventionCommand::SignAmendment(c) => self.amend(c),
            ConventionCommand::CommitFunds(c) => self.commit(c),
            ConventionCommand::ReleaseFunds(c) => self.release(c),
            ConventionCommand::RecordServiceDone(c) => self.service_done(c),
            ConventionCommand::RecordPayment(c) => self.pay(c),
            ConventionCommand::Close(c) => self.close(c),
            ConventionCommand::SetSchedule(c) => self.set_schedule(c),
        }
    }

    fn evolve(&mut self, event: &ConventionEvent) {
        if let ConventionEvent::ConventionSigned(e) = event {
            self.0 = Some(Signed {
                convention_id: e.convention_id,
                code: e.code.clone(),
                signed_on: e.signed_on,
                last_movement: e.signed_on,
                period_start: e.period_start,
                period_end: e.period_end,
                total: e.total,
                shares: e.shares.clone(),
                departements: e.departements.clone(),
                envelopes: BTreeMap::new(),
                commitments: BTreeMap::new(),
                amendments: 0,
                closed: false,
                caps: vec![CapsChange { effective_on: e.period_start, caps: e.annex_caps.clone() }],
                schedule: Vec::new(),
                schedule_amendments: Vec::new(),
            });
            return;
        }
        let Some(s) = self.0.as_mut() else { return };
        s.last_movement = s.last_movement.max(event.business_date());
        match event {
            ConventionEvent::ConventionSigned(_) => {}
            ConventionEvent::EnvelopeAllocated(e) => {
                s.envelopes.insert(
                    e.envelope_id,
                    Envelope {
                        name: e.name.clone(),
                        kind: e.kind,
                        allocated: e.amount,
                        allocated_on: e.allocated_on,
                        plan: financing::plan_or_shares(&e.financing, &s.shares),
                        plan_recorded: !e.financing.is_empty(),
                        ..Envelope::default()
                    },
                );
            }
            ConventionEvent::AmendmentSigned(e) => {
                s.amendments = e.number;
                if let Some(total) = e.total {
                    s.total = total;
                }
                if let Some(shares) = &e.shares {
                    s.shares = shares.clone();
                }
                if let Some(end) = e.period_end {
                    s.period_end = end;
                }
                for change in &e.envelopes {
                    if let Some(env) = s.envelopes.get_mut(&change.envelope_id) {
                        env.allocated = change.amount;
                    }
                }
                if let Some(change) = &e.annex_caps {
                    s.caps.retain(|c| c.effective_on < change.effective_on);
                    s.caps.push(change.clone());
                }
                for change in &e.financing {
                    if let Some(env) = s.envelopes.get_mut(&change.envelope_id) {
                        env.plan = change.parts.clone();
                        env.plan_recorded = true;
                    }
                }
            }
            ConventionEvent::FundsCommitted(e) => {
                if let Some(env) = s.envelopes.get_mut(&e.envelope_id) {
                    env.committed = env.committed + e.amount;
                }
                s.commitments.insert(
                    e.reference.clone(),
                    Commitment {
                        envelope_id: e.envelope_id,
                        committed_on: e.committed_on,
                        served: Vec::new(),
                        committed: e.amount,
                        service_done: Money::ZERO,
                        paid: Money::ZERO,
                    },
                );
            }
            ConventionEvent::FundsReleased(e) => {
                if let Some(env) = s.envelopes.get_mut(&e.envelope_id) {
                    env.committed = env.committed.saturating_sub(e.amount);
                }
                if let Some(c) = s.commitments.get_mut(&e.reference) {
                    c.committed = c.committed.saturating_sub(e.amount);
                }
            }
            ConventionEvent::ServiceDoneRecorded(e) => {
                if let Some(env) = s.envelopes.get_mut(&e.envelope_id) {
                    env.service_done = env.service_done + e.amount;
                }
                if let Some(c) = s.commitments.get_mut(&e.reference) {
                    c.service_done = c.service_done + e.amount;
                    c.served.push((e.done_on, e.amount));
                }
            }
            ConventionEvent::PaymentRecorded(e) => {
                if let Some(env) = s.envelopes.get_mut(&e.envelope_id) {
                    env.paid = env.paid + e.amount;
                }
                if let Some(c) = s.commitments.get_mut(&e.reference) {
                    c.paid = c.paid + e.amount;
                }
            }
            ConventionEvent::ConventionClosed(_) => s.closed = true,
            ConventionEvent::ScheduleSet(e) => {
                s.schedule = e.instalments.clone();
                s.schedule_amendments.extend(e.amendment);
            }
        }
    }
}

#[cfg(test)]
mod tests;
