//! Annex-cost claims: a structure asks the OPCO to reimburse a trainee's transport,
//! nights and meals for a training whose attendance is recorded. Each line is capped by
//! the convention's barème at submission; the OPCO then approves (fully or partly),
//! asks for changes, or rejects. An approved claim is funded on the convention's
//! annex-cost envelope (or waits for funds), paid by the OPCO, called from ANCT in a
//! funds call, and reimbursed when ANCT pays that call.
//!
//! The money moves on the convention and the funds-call ledger are other aggregates: the
//! reimbursement saga sends those commands, with ids derived from the triggering event.

use crate::ConventionId;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::annex::{AnnexCaps, ExpenseKind, StayArea};
use crate::ids::TRACKER_NAMESPACE;
use crate::money::Money;
use crate::purchase::PurchaseId;
use crate::structure::StructureId;
use crate::territory::DepartementCode;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimId(pub Uuid);

impl ClaimId {
    /// One claim per trainee and training: a second submission names the same claim.
    pub fn of(purchase: PurchaseId, trainee: &str) -> Self {
        let key = format!("annex-claim:{}:{}", purchase.0, trainee.trim().to_lowercase());
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, key.as_bytes()))
    }

    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "annex claim", input: input.to_string() })
    }

    /// The reference its money carries on the convention.
    pub fn reference(&self) -> String {
        format!("ANNEX-CLAIM-{}", self.0)
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimState {
    Submitted,
    ChangesRequested,
    Rejected,
    /// Approved; the saga is committing the amount on the envelope.
    Approved,
    /// Approved, but the envelope could not cover it yet.
    AwaitingFunds,
    /// Approved and committed on the annex-cost envelope: the OPCO may pay it.
    Funded,
    /// Paid by the OPCO to the structure.
    Paid,
    /// Called from ANCT in a funds call.
    InFundsCall,
    /// ANCT paid the funds call: the OPCO is reimbursed.
    Reimbursed,
}

/// One expense as the structure declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseLine {
    pub kind: ExpenseKind,
    /// Tickets, kilometres, nights or meals.
    pub quantity: u32,
    /// For nights only.
    pub area: Option<StayArea>,
    pub amount: Money,
    /// The receipt's reference (invoice or ticket number): required.
    pub receipt: String,
}

/// A line with the cap applied at submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CappedLine {
    #[serde(flatten)]
    pub line: ExpenseLine,
    /// The most this line may be reimbursed; none for public transport.
    pub cap: Option<Money>,
    /// The amount claimed, capped.
    pub eligible: Money,
}

/// The OPCO's decision on one line, when it reduces it below what is eligible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineDecision {
    /// 1 for the first line.
    pub line: u32,
    pub approved: Money,
    pub reason: Option<String>,
}

/// The approved amount of each line, with the reason of a reduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedLine {
    pub line: u32,
    pub eligible: Money,
    pub approved: Money,
    pub reason: Option<String>,
}

/// What the tracker knows of the training, looked up by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrainingFacts {
    pub purchase_id: PurchaseId,
    pub convention_id: ConventionId,
    /// The structure that bought the training.
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub session_end: NaiveDate,
    /// Trainees present, once attendance is recorded.
    pub present: Option<u32>,
    /// Other trainees of this training who already claimed. Left out of the command's
    /// fingerprint: it changes as others claim, and a retry must still be a retry.
    #[serde(skip)]
    pub trainees_claimed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubmitAnnexClaim {
    pub claim_id: ClaimId,
    /// The structure submitting (it must have bought the training).
    pub structure_id: StructureId,
    /// A pseudonymous reference of the trainee (no name).
    pub trainee: String,
    pub training: TrainingFacts,
    /// The caps in force at the session's end.
    pub caps: AnnexCaps,
    pub lines: Vec<ExpenseLine>,
    pub submitted_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum ClaimCommand {
    Submit(Box<SubmitAnnexClaim>),
    /// After the OPCO asked for changes.
    Resubmit {
        claim_id: ClaimId,
        caps: AnnexCaps,
        lines: Vec<ExpenseLine>,
        resubmitted_on: NaiveDate,
    },
    /// Lines not named in `reductions` are approved at their eligible amount.
    Approve {
        claim_id: ClaimId,
        reductions: Vec<LineDecision>,
        approved_on: NaiveDate,
    },
    RequestChanges {
        claim_id: ClaimId,
        reason: String,
        requested_on: NaiveDate,
    },
    Reject {
        claim_id: ClaimId,
        reason: String,
        rejected_on: NaiveDate,
    },
    /// Sent by the saga once the amount is committed on the envelope.
    RecordFunding {
        claim_id: ClaimId,
        committed_on: NaiveDate,
    },
    /// Sent by the saga when the envelope cannot cover the claim.
    AwaitFunds {
        claim_id: ClaimId,
        shortfall: FundsShortfall,
        since: NaiveDate,
    },
    RecordPayment {
        claim_id: ClaimId,
        paid_on: NaiveDate,
    },
    /// Sent by the saga when a submission was not assessed in time.
    FlagOverdue {
        claim_id: ClaimId,
        submission: u32,
        due_on: NaiveDate,
    },
    /// Sent by the saga when a funds call covers the claim.
    MarkCalled {
        claim_id: ClaimId,
        call_id: Uuid,
        call_number: u32,
        called_on: NaiveDate,
    },
    /// Sent by the saga when ANCT paid the funds call.
    RecordReimbursement {
        claim_id: ClaimId,
        call_id: Uuid,
        reimbursed_on: NaiveDate,
    },
}

impl ClaimCommand {
    pub fn claim_id(&self) -> ClaimId {
        match self {
            ClaimCommand::Submit(c) => c.claim_id,
            ClaimCommand::Resubmit { claim_id, .. }
            | ClaimCommand::Approve { claim_id, .. }
            | ClaimCommand::RequestChanges { claim_id, .. }
            | ClaimCommand::Reject { claim_id, .. }
            | ClaimCommand::RecordFunding { claim_id, .. }
            | ClaimCommand::AwaitFunds { claim_id, .. }
            | ClaimCommand::RecordPayment { claim_id, .. }
            | ClaimCommand::FlagOverdue { claim_id, .. }
            | ClaimCommand::MarkCalled { claim_id, .. }
            | ClaimCommand::RecordReimbursement { claim_id, .. } => *claim_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnexClaimSubmitted {
    pub claim_id: ClaimId,
    pub convention_id: ConventionId,
    pub purchase_id: PurchaseId,
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub trainee: String,
    pub lines: Vec<CappedLine>,
    pub claimed: Money,
    pub eligible: Money,
    pub submitted_on: NaiveDate,
    /// The OPCO should assess it by then.
    pub assess_by: NaiveDate,
}

/// Why an approved claim waits for funds: the rule the commitment of its amount on the
/// convention broke, with its figures. The log keeps the rule, not a sentence; the
/// sentence (`Display`, the API's `waitingReason`) is drawn from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum FundsShortfall {
    /// The envelope has less available than the claim's amount.
    #[error("envelope {envelope} has {available} available, {requested} requested")]
    EnvelopeExceeded { envelope: String, available: Money, requested: Money },
    /// Another rule of the convention refused the commitment, by its name (as the API's
    /// `extensions.rule`).
    #[error("the convention refused the commitment ({name})")]
    Refused { name: String },
}

impl From<&crate::convention::ConventionError> for FundsShortfall {
    fn from(e: &crate::convention::ConventionError) -> Self {
        match e {
            crate::convention::ConventionError::EnvelopeExceeded { envelope, available, requested, .. } => {
                FundsShortfall::EnvelopeExceeded {
                    envelope: envelope.clone(),
                    available: *available,
                    requested: *requested,
                }
            }
            other => FundsShortfall::Refused { name: other.rule() },
        }
    }
}

impl ClaimEvent {
    /// Why the claim waits for funds, as a sentence: drawn from the rule, or the sentence
    /// an event written before the rule was kept recorded. `None` for other events.
    pub fn waiting_reason(&self) -> Option<String> {
        match self {
            ClaimEvent::AnnexClaimAwaitingFunds { shortfall: Some(s), .. } => Some(s.to_string()),
            ClaimEvent::AnnexClaimAwaitingFunds { reason, .. } => Some(reason.clone().unwrap_or_default()),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClaimEvent {
    AnnexClaimSubmitted(Box<AnnexClaimSubmitted>),
    AnnexClaimResubmitted {
        submission: u32,
        lines: Vec<CappedLine>,
        claimed: Money,
        eligible: Money,
        resubmitted_on: NaiveDate,
        assess_by: NaiveDate,
    },
    AnnexClaimApproved {
        lines: Vec<ApprovedLine>,
        amount: Money,
        approved_on: NaiveDate,
    },
    AnnexClaimChangesRequested {
        reason: String,
        requested_on: NaiveDate,
    },
    AnnexClaimRejected {
        reason: String,
        rejected_on: NaiveDate,
    },
    /// Since 2026-11 the event carries the rule (`shortfall`); earlier ones an English
    /// sentence (`reason`), still read: [`ClaimEvent::waiting_reason`] gives either.
    AnnexClaimAwaitingFunds {
        amount: Money,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shortfall: Option<FundsShortfall>,
        since: NaiveDate,
    },
    AnnexClaimFunded {
        amount: Money,
        committed_on: NaiveDate,
    },
    AnnexClaimPaid {
        amount: Money,
        paid_on: NaiveDate,
    },
    AnnexClaimFlaggedOverdue {
        submission: u32,
        due_on: NaiveDate,
    },
    AnnexClaimCalled {
        call_id: Uuid,
        call_number: u32,
        called_on: NaiveDate,
    },
    AnnexClaimReimbursed {
        call_id: Uuid,
        amount: Money,
        reimbursed_on: NaiveDate,
    },
}

impl DomainEvent for ClaimEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ClaimEvent::AnnexClaimSubmitted(_) => "AnnexClaimSubmitted",
            ClaimEvent::AnnexClaimResubmitted { .. } => "AnnexClaimResubmitted",
            ClaimEvent::AnnexClaimApproved { .. } => "AnnexClaimApproved",
            ClaimEvent::AnnexClaimChangesRequested { .. } => "AnnexClaimChangesRequested",
            ClaimEvent::AnnexClaimRejected { .. } => "AnnexClaimRejected",
            ClaimEvent::AnnexClaimAwaitingFunds { .. } => "AnnexClaimAwaitingFunds",
            ClaimEvent::AnnexClaimFunded { .. } => "AnnexClaimFunded",
            ClaimEvent::AnnexClaimPaid { .. } => "AnnexClaimPaid",
            ClaimEvent::AnnexClaimFlaggedOverdue { .. } => "AnnexClaimFlaggedOverdue",
            ClaimEvent::AnnexClaimCalled { .. } => "AnnexClaimCalled",
            ClaimEvent::AnnexClaimReimbursed { .. } => "AnnexClaimReimbursed",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            ClaimEvent::AnnexClaimSubmitted(e) => e.submitted_on,
            ClaimEvent::AnnexClaimResubmitted { resubmitted_on: d, .. }
            | ClaimEvent::AnnexClaimApproved { approved_on: d, .. }
            | ClaimEvent::AnnexClaimChangesRequested { requested_on: d, .. }
            | ClaimEvent::AnnexClaimRejected { rejected_on: d, .. }
            | ClaimEvent::AnnexClaimAwaitingFunds { since: d, .. }
            | ClaimEvent::AnnexClaimFunded { committed_on: d, .. }
            | ClaimEvent::AnnexClaimPaid { paid_on: d, .. }
            | ClaimEvent::AnnexClaimFlaggedOverdue { due_on: d, .. }
            | ClaimEvent::AnnexClaimCalled { called_on: d, .. }
            | ClaimEvent::AnnexClaimReimbursed { reimbursed_on: d, .. } => *d,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum ClaimError {
    #[error("no annex claim has this id")]
    NotFound,
    /// A reference of a person must be a pseudonym (see [`crate::personal`]).
    #[error(
        "{field} looks like {looks_like}: give the structure's pseudonymous reference, never contact details or a NIR"
    )]
    PersonalData { field: &'static str, looks_like: crate::personal::LooksLike },
    #[error("this trainee already has a claim for this training")]
    AlreadySubmitted,
    #[error("no attendance is recorded for this training: claims open once it is")]
    NoAttendance,
    #[error("only the structure that bought the training may claim its annex costs")]
    NotTheBuyer,
    #[error("{present} trainees were present and each already has a claim")]
    MoreClaimsThanTrainees { present: u32 },
    #[error("the deadline to claim was {deadline} ({days} days after the session ended on {session_end})")]
    DeadlinePassed { session_end: NaiveDate, deadline: NaiveDate, days: u32 },
    #[error("a claim cannot be submitted ({submitted_on}) before the session ends ({session_end})")]
    BeforeSessionEnd { submitted_on: NaiveDate, session_end: NaiveDate },
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
    #[error("a claim needs at least one expense line")]
    NoLine,
    #[error("line {line}: a receipt reference is required")]
    MissingReceipt { line: u32 },
    #[error("line {line}: the quantity must be at least 1")]
    ZeroQuantity { line: u32 },
    #[error("line {line}: the amount must be more than 0 €")]
    ZeroAmount { line: u32 },
    #[error("line {line}: a night needs its area (STANDARD, LARGE_CITY or PARIS)")]
    MissingArea { line: u32 },
    #[error("line {line}: an area applies to nights only")]
    AreaNotANight { line: u32 },
    #[error("line {line} does not exist: the claim has {lines} line(s)")]
    UnknownLine { line: u32, lines: u32 },
    #[error("line {line} is decided twice")]
    DuplicateDecision { line: u32 },
    #[error("line {line}: {approved} approved but only {eligible} is eligible")]
    AboveEligible { line: u32, eligible: Money, approved: Money },
    #[error("line {line} is reduced: say why")]
    MissingReductionReason { line: u32 },
    #[error("nothing would be approved: reject the claim instead")]
    NothingApproved,
    #[error("the claim is {state:?}: it cannot be {action} now")]
    WrongState { state: ClaimState, action: &'static str },
    #[error("submission {submission} is already flagged overdue, or was replaced")]
    AlreadyFlagged { submission: u32 },
    #[error("the claim is already in funds call n°{call_number}")]
    AlreadyCalled { call_number: u32 },
}

/// The decision state of one claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnexClaim {
    pub submitted: Option<AnnexClaimSubmitted>,
    pub state: Option<ClaimState>,
    pub submission: u32,
    pub lines: Vec<CappedLine>,
    pub approved: Money,
    pub overdue_flagged: BTreeSet<u32>,
    pub call: Option<(Uuid, u32)>,
}

fn deadline(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(Days::new(days)).unwrap_or(day)
}

/// Checks the lines and caps each one.
fn cap_lines(caps: &AnnexCaps, lines: &[ExpenseLine]) -> Result<Vec<CappedLine>, ClaimError> {
    if lines.is_empty() {
        return Err(ClaimError::NoLine);
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let line = i as u32 + 1;
        if l.receipt.trim().is_empty() {
            return Err(ClaimError::MissingReceipt { line });
        }
        if l.quantity == 0 {
            return Err(ClaimError::ZeroQuantity { line });
        }
        if l.amount.is_zero() {
            return Err(ClaimError::ZeroAmount { line });
        }
        match (l.kind, l.area) {
            (ExpenseKind::Night, None) => return Err(ClaimError::MissingArea { line }),
            (k, Some(_)) if k != ExpenseKind::Night => return Err(ClaimError::AreaNotANight { line }),
            _ => {}
        }
        let cap = caps.cap(l.kind, l.quantity, l.area);
        let eligible = cap.map_or(l.amount, |c| c.min(l.amount));
        out.push(CappedLine {
            line: ExpenseLine { receipt: l.receipt.trim().to_string(), ..l.clone() },
            cap,
            eligible,
        });
    }
    Ok(out)
}

fn totals(lines: &[CappedLine]) -> (Money, Money) {
    (lines.iter().map(|l| l.line.amount).sum(), lines.iter().map(|l| l.eligible).sum())
}

fn reason(field: &'static str, text: &str) -> Result<String, ClaimError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ClaimError::MissingField { field });
    }
    Ok(text.to_string())
}

impl AnnexClaim {
    fn require_state(&self, allowed: &[ClaimState], action: &'static str) -> Result<&AnnexClaimSubmitted, ClaimError> {
        let (Some(s), Some(state)) = (&self.submitted, self.state) else { return Err(ClaimError::NotFound) };
        if !allowed.contains(&state) {
            return Err(ClaimError::WrongState { state, action });
        }
        Ok(s)
    }

    fn submit(&self, c: &SubmitAnnexClaim) -> Result<Vec<ClaimEvent>, ClaimError> {
        if self.submitted.is_some() {
            return Err(ClaimError::AlreadySubmitted);
        }
        let t = &c.training;
        let Some(present) = t.present else { return Err(ClaimError::NoAttendance) };
        if c.structure_id != t.structure_id {
            return Err(ClaimError::NotTheBuyer);
        }
        if t.trainees_claimed >= present {
            return Err(ClaimError::MoreClaimsThanTrainees { present });
        }
        let trainee = reason("the trainee reference", &c.trainee)?;
        if let Some(looks_like) = crate::personal::looks_like(&trainee) {
            return Err(ClaimError::PersonalData { field: "the trainee reference", looks_like });
        }
        if c.submitted_on < t.session_end {
            return Err(ClaimError::BeforeSessionEnd { submitted_on: c.submitted_on, session_end: t.session_end });
        }
        let last_day = deadline(t.session_end, u64::from(c.caps.claim_deadline_days));
        if c.submitted_on > last_day {
            return Err(ClaimError::DeadlinePassed {
                session_end: t.session_end,
                deadline: last_day,
                days: c.caps.claim_deadline_days,
            });
        }
        let lines = cap_lines(&c.caps, &c.lines)?;
        let (claimed, eligible) = totals(&lines);
        Ok(vec![ClaimEvent::AnnexClaimSubmitted(Box::new(AnnexClaimSubmitted {
            claim_id: c.claim_id,
            convention_id: t.convention_id,
            purchase_id: t.purchase_id,
            structure_id: c.structure_id,
            departement: t.departement.clone(),
            trainee,
            lines,
            claimed,
            eligible,
            submitted_on: c.submitted_on,
            assess_by: deadline(c.submitted_on, u64::from(c.caps.assessment_days)),
        }))])
    }

    fn approve(&self, reductions: &[LineDecision], approved_on: NaiveDate) -> Result<Vec<ClaimEvent>, ClaimError> {
        self.require_state(&[ClaimState::Submitted], "approved")?;
        let count = self.lines.len() as u32;
        let mut lines: Vec<ApprovedLine> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| ApprovedLine { line: i as u32 + 1, eligible: l.eligible, approved: l.eligible, reason: None })
            .collect();
        let mut seen = BTreeSet::new();
        for d in reductions {
            if d.line == 0 || d.line > count {
                return Err(ClaimError::UnknownLine { line: d.line, lines: count });
            }
            if !seen.insert(d.line) {
                return Err(ClaimError::DuplicateDecision { line: d.line });
            }
            let target = &mut lines[d.line as usize - 1];
            if d.approved > target.eligible {
                return Err(ClaimError::AboveEligible {
                    line: d.line,
                    eligible: target.eligible,
                    approved: d.approved,
                });
            }
            let why = d.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
            if d.approved < target.eligible && why.is_none() {
                return Err(ClaimError::MissingReductionReason { line: d.line });
            }
            target.approved = d.approved;
            target.reason = why.map(str::to_string);
        }
        let amount: Money = lines.iter().map(|l| l.approved).sum();
        if amount.is_zero() {
            return Err(ClaimError::NothingApproved);
        }
        Ok(vec![ClaimEvent::AnnexClaimApproved { lines, amount, approved_on }])
    }
}

impl Aggregate for AnnexClaim {
    type Command = ClaimCommand;
    type Event = ClaimEvent;
    type Error = ClaimError;
    const CATEGORY: &'static str = "annexclaim";

    fn decide(&self, command: &ClaimCommand) -> Result<Vec<ClaimEvent>, ClaimError> {
        use ClaimState as S;
        match command {
            ClaimCommand::Submit(c) => self.submit(c),
            ClaimCommand::Resubmit { caps, lines, resubmitted_on, .. } => {
                self.require_state(&[S::ChangesRequested], "resubmitted")?;
                let lines = cap_lines(caps, lines)?;
                let (claimed, eligible) = totals(&lines);
                Ok(vec![ClaimEvent::AnnexClaimResubmitted {
                    submission: self.submission + 1,
                    lines,
                    claimed,
                    eligible,
                    resubmitted_on: *resubmitted_on,
                    assess_by: deadline(*resubmitted_on, u64::from(caps.assessment_days)),
                }])
            }
            ClaimCommand::Approve { reductions, approved_on, .. } => self.approve(reductions, *approved_on),
            ClaimCommand::RequestChanges { reason: why, requested_on, .. } => {
                self.require_state(&[S::Submitted], "sent back for changes")?;
                Ok(vec![ClaimEvent::AnnexClaimChangesRequested {
                    reason: reason("the reason", why)?,
                    requested_on: *requested_on,
                }])
            }
            ClaimCommand::Reject { reason: why, rejected_on, .. } => {
                self.require_state(&[S::Submitted], "rejected")?;
                Ok(vec![ClaimEvent::AnnexClaimRejected {
                    reason: reason("the reason", why)?,
                    rejected_on: *rejected_on,
                }])
            }
            ClaimCommand::RecordFunding { committed_on, .. } => {
                self.require_state(&[S::Approved, S::AwaitingFunds], "funded")?;
                Ok(vec![ClaimEvent::AnnexClaimFunded { amount: self.approved, committed_on: *committed_on }])
            }
            ClaimCommand::AwaitFunds { shortfall, since, .. } => {
                self.require_state(&[S::Approved], "set waiting for funds")?;
                Ok(vec![ClaimEvent::AnnexClaimAwaitingFunds {
                    amount: self.approved,
                    reason: None,
                    shortfall: Some(shortfall.clone()),
                    since: *since,
                }])
            }
            ClaimCommand::RecordPayment { paid_on, .. } => {
                self.require_state(&[S::Funded], "paid")?;
                Ok(vec![ClaimEvent::AnnexClaimPaid { amount: self.approved, paid_on: *paid_on }])
            }
            ClaimCommand::FlagOverdue { submission, due_on, .. } => {
                self.require_state(&[S::Submitted], "flagged overdue")?;
                if *submission != self.submission || self.overdue_flagged.contains(submission) {
                    return Err(ClaimError::AlreadyFlagged { submission: *submission });
                }
                Ok(vec![ClaimEvent::AnnexClaimFlaggedOverdue { submission: *submission, due_on: *due_on }])
            }
            ClaimCommand::MarkCalled { call_id, call_number, called_on, .. } => {
                if let Some((_, number)) = self.call {
                    return Err(ClaimError::AlreadyCalled { call_number: number });
                }
                self.require_state(&[S::Paid], "called from ANCT")?;
                Ok(vec![ClaimEvent::AnnexClaimCalled {
                    call_id: *call_id,
                    call_number: *call_number,
                    called_on: *called_on,
                }])
            }
            ClaimCommand::RecordReimbursement { call_id, reimbursed_on, .. } => {
                self.require_state(&[S::InFundsCall], "reimbursed")?;
                Ok(vec![ClaimEvent::AnnexClaimReimbursed {
                    call_id: *call_id,
                    amount: self.approved,
                    reimbursed_on: *reimbursed_on,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &ClaimEvent) {
        use ClaimState as S;
        match event {
            ClaimEvent::AnnexClaimSubmitted(e) => {
                self.lines = e.lines.clone();
                self.submitted = Some((**e).clone());
                self.submission = 1;
                self.state = Some(S::Submitted);
            }
            ClaimEvent::AnnexClaimResubmitted { submission, lines, .. } => {
                self.lines = lines.clone();
                self.submission = *submission;
                self.state = Some(S::Submitted);
            }
            ClaimEvent::AnnexClaimApproved { amount, .. } => {
                self.approved = *amount;
                self.state = Some(S::Approved);
            }
            ClaimEvent::AnnexClaimChangesRequested { .. } => self.state = Some(S::ChangesRequested),
            ClaimEvent::AnnexClaimRejected { .. } => self.state = Some(S::Rejected),
            ClaimEvent::AnnexClaimAwaitingFunds { .. } => self.state = Some(S::AwaitingFunds),
            ClaimEvent::AnnexClaimFunded { .. } => self.state = Some(S::Funded),
            ClaimEvent::AnnexClaimPaid { .. } => self.state = Some(S::Paid),
            ClaimEvent::AnnexClaimFlaggedOverdue { submission, .. } => {
                self.overdue_flagged.insert(*submission);
            }
            ClaimEvent::AnnexClaimCalled { call_id, call_number, .. } => {
                self.call = Some((*call_id, *call_number));
                self.state = Some(S::InFundsCall);
            }
            ClaimEvent::AnnexClaimReimbursed { .. } => self.state = Some(S::Reimbursed),
        }
    }
}

pub mod roll;

#[cfg(test)]
mod tests;
