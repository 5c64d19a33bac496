//! Training purchases of the ANCT–Uniformation convention (the plan's 2 000 trainings):
//! requested by the OPCO for an employer structure, approved (funds committed on the
//! matching envelope), attended (service done for the trainees present, the rest
//! released), paid; or cancelled (funds released).
//!
//! The money moves on the convention, an aggregate of its own: the command handler
//! commits, releases, records service done and pays there, with command ids derived from
//! the purchase's, so that a retried command never moves money twice.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::convention::EnvelopeKind;
use crate::framework::{CompetencyBlock, Metier};
use crate::ids::{CommandId, ConventionId, TRACKER_NAMESPACE};
use crate::money::Money;
use crate::structure::{StructureId, StructureKind};
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use uuid::Uuid;

/// The plan's advice: 8 to 15 participants per session (a warning, not a refusal: ours).
pub const ADVISED_GROUP: std::ops::RangeInclusive<u32> = 8..=15;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PurchaseId(pub Uuid);

impl PurchaseId {
    /// A purchase's id comes from the command that requested it: a retried request names
    /// the same purchase.
    pub fn for_request(command: CommandId) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("purchase:{}", command.0).as_bytes()))
    }

    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "purchase", input: input.to_string() })
    }

    /// The reference its money carries on the convention.
    pub fn reference(&self) -> String {
        format!("PURCHASE-{}", self.0)
    }
}

impl fmt::Display for PurchaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Lifecycle states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PurchaseState {
    Requested,
    Approved,
    Attended,
    Paid,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestPurchase {
    pub purchase_id: PurchaseId,
    pub convention_id: ConventionId,
    pub structure_id: StructureId,
    /// The buyer structure's département, looked up by the caller (a fact, not a rule).
    pub departement: DepartementCode,
    /// The buyer structure's kind, read from its stream by the use case (a fact the
    /// private-employers rule needs).
    pub structure_kind: StructureKind,
    pub provider: String,
    pub title: String,
    /// RNCP or RS code of a certifying training (`RNCP34587`, `RS5477`); none otherwise.
    pub certification: Option<String>,
    pub blocks: Vec<CompetencyBlock>,
    pub metier: Metier,
    pub hours: u32,
    pub trainees: u32,
    pub unit_cost: Money,
    pub session_start: NaiveDate,
    pub session_end: NaiveDate,
    pub requested_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum PurchaseCommand {
    Request(Box<RequestPurchase>),
    Approve { purchase_id: PurchaseId, approved_on: NaiveDate },
    RecordAttendance { purchase_id: PurchaseId, present: u32, recorded_on: NaiveDate },
    RecordPayment { purchase_id: PurchaseId, paid_on: NaiveDate },
    Cancel { purchase_id: PurchaseId, reason: String, cancelled_on: NaiveDate },
}

impl PurchaseCommand {
    pub fn purchase_id(&self) -> PurchaseId {
        match self {
            PurchaseCommand::Request(c) => c.purchase_id,
            PurchaseCommand::Approve { purchase_id, .. }
            | PurchaseCommand::RecordAttendance { purchase_id, .. }
            | PurchaseCommand::RecordPayment { purchase_id, .. }
            | PurchaseCommand::Cancel { purchase_id, .. } => *purchase_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRequested {
    pub purchase_id: PurchaseId,
    pub convention_id: ConventionId,
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub provider: String,
    pub title: String,
    pub certification: Option<String>,
    pub blocks: Vec<CompetencyBlock>,
    pub metier: Metier,
    pub hours: u32,
    pub trainees: u32,
    pub unit_cost: Money,
    pub total: Money,
    /// The envelope kind the purchase is charged to.
    pub envelope_kind: EnvelopeKind,
    pub session_start: NaiveDate,
    pub session_end: NaiveDate,
    pub requested_on: NaiveDate,
    /// Recorded when the group is outside the advised 8–15.
    pub warning: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PurchaseEvent {
    PurchaseRequested(Box<PurchaseRequested>),
    PurchaseApproved { amount: Money, approved_on: NaiveDate },
    AttendanceRecorded { present: u32, service_done: Money, released: Money, recorded_on: NaiveDate },
    PurchasePaid { amount: Money, paid_on: NaiveDate },
    PurchaseCancelled { reason: String, released: Money, cancelled_on: NaiveDate },
}

impl DomainEvent for PurchaseEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PurchaseEvent::PurchaseRequested(_) => "PurchaseRequested",
            PurchaseEvent::PurchaseApproved { .. } => "PurchaseApproved",
            PurchaseEvent::AttendanceRecorded { .. } => "AttendanceRecorded",
            PurchaseEvent::PurchasePaid { .. } => "PurchasePaid",
            PurchaseEvent::PurchaseCancelled { .. } => "PurchaseCancelled",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            PurchaseEvent::PurchaseRequested(e) => e.requested_on,
            PurchaseEvent::PurchaseApproved { approved_on, .. } => *approved_on,
            PurchaseEvent::AttendanceRecorded { recorded_on, .. } => *recorded_on,
            PurchaseEvent::PurchasePaid { paid_on, .. } => *paid_on,
            PurchaseEvent::PurchaseCancelled { cancelled_on, .. } => *cancelled_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum PurchaseError {
    #[error("no purchase has this id")]
    NotFound,
    #[error("this purchase was already requested")]
    AlreadyRequested,
    #[error("no block, no funding: a training must state which competency-framework blocks it covers")]
    NoBlock,
    #[error("block {block:?} is listed twice")]
    DuplicateBlock { block: CompetencyBlock },
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
    #[error("`{code}` is not an RNCP or RS code (expected e.g. RNCP34587 or RS5477)")]
    InvalidCertification {
        /// Named apart from the API's `code` (the error's kind), which it must not shadow.
        #[serde(rename = "certificationCode")]
        code: String,
    },
    #[error("the session ends ({end}) before it starts ({start})")]
    SessionEndsBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("the purchase is {state:?}: it cannot be {action} now")]
    WrongState { state: PurchaseState, action: &'static str },
    #[error(
        "the ANCT–Uniformation convention funds trainings of private-sector employers only (the plan: \"Dans le secteur privé, les formations peuvent être financées par l'intermédiaire des OPCO\"); the buyer is {}, a public employer: its agents train through the CNFPT or, for a CCAS, the UNCCAS convention",
        .structure_kind.label()
    )]
    PrivateEmployersOnly { structure_kind: StructureKind },
    #[error("{present} trainees present but only {registered} registered")]
    MorePresentThanRegistered { present: u32, registered: u32 },
}

fn valid_certification(code: &str) -> bool {
    let digits = code.strip_prefix("RNCP").or_else(|| code.strip_prefix("RS"));
    digits.is_some_and(|d| !d.is_empty() && d.len() <= 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The decision state of one purchase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purchase {
    pub requested: Option<PurchaseRequested>,
    pub state: Option<PurchaseState>,
    pub present: u32,
}

impl Purchase {
    fn require_state(
        &self,
        allowed: &[PurchaseState],
        action: &'static str,
    ) -> Result<&PurchaseRequested, PurchaseError> {
        let (Some(r), Some(state)) = (&self.requested, self.state) else { return Err(PurchaseError::NotFound) };
        if !allowed.contains(&state) {
            return Err(PurchaseError::WrongState { state, action });
        }
        Ok(r)
    }

    fn request(&self, c: &RequestPurchase) -> Result<Vec<PurchaseEvent>, PurchaseError> {
        if self.requested.is_some() {
            return Err(PurchaseError::AlreadyRequested);
        }
        if c.structure_kind.is_public() {
            return Err(PurchaseError::PrivateEmployersOnly { structure_kind: c.structure_kind });
        }
        if c.blocks.is_empty() {
            return Err(PurchaseError::NoBlock);
        }
        let mut seen = BTreeSet::new();
        for b in &c.blocks {
            if !seen.insert(*b) {
                return Err(PurchaseError::DuplicateBlock { block: *b });
            }
        }
        for (field, value) in [("the number of trainees", c.trainees), ("the number of hours", c.hours)] {
            if value == 0 {
                return Err(PurchaseError::Zero { field });
            }
        }
        if c.unit_cost.is_zero() {
            return Err(PurchaseError::Zero { field: "the unit cost" });
        }
        for (field, value) in [("the provider", &c.provider), ("the title", &c.title)] {
            if value.trim().is_empty() {
                return Err(PurchaseError::MissingField { field });
            }
        }
        let certification = c.certification.as_ref().map(|code| code.trim().to_uppercase());
        if let Some(code) = &certification
            && !valid_certification(code)
        {
            return Err(PurchaseError::InvalidCertification { code: code.clone() });
        }
        if c.session_end < c.session_start {
            return Err(PurchaseError::SessionEndsBeforeStart { start: c.session_start, end: c.session_end });
        }
        let warning = (!ADVISED_GROUP.contains(&c.trainees))
            .then(|| format!("{} trainees: the plan advises groups of 8 to 15", c.trainees));
        let mut blocks = c.blocks.clone();
        blocks.sort();
        Ok(vec![PurchaseEvent::PurchaseRequested(Box::new(PurchaseRequested {
            purchase_id: c.purchase_id,
            convention_id: c.convention_id,
            structure_id: c.structure_id,
            departement: c.departement.clone(),
            provider: c.provider.trim().to_string(),
            title: c.title.trim().to_string(),
            envelope_kind: if certification.is_some() {
                EnvelopeKind::CertifyingTrainings
            } else {
                EnvelopeKind::NonCertifyingTrainings
            },
            certification,
            blocks,
            metier: c.metier,
            hours: c.hours,
            trainees: c.trainees,
            unit_cost: c.unit_cost,
            total: c.unit_cost.times(c.trainees),
            session_start: c.session_start,
            session_end: c.session_end,
            requested_on: c.requested_on,
            warning,
        }))])
    }
}

impl Aggregate for Purchase {
    type Command = PurchaseCommand;
    type Event = PurchaseEvent;
    type Error = PurchaseError;
    const CATEGORY: &'static str = "purchase";

    fn decide(&self, command: &PurchaseCommand) -> Result<Vec<PurchaseEvent>, PurchaseError> {
        use PurchaseState as S;
        match command {
            PurchaseCommand::Request(c) => self.request(c),
            PurchaseCommand::Approve { approved_on, .. } => {
                let r = self.require_state(&[S::Requested], "approved")?;
                Ok(vec![PurchaseEvent::PurchaseApproved { amount: r.total, approved_on: *approved_on }])
            }
            PurchaseCommand::RecordAttendance { present, recorded_on, .. } => {
                let r = self.require_state(&[S::Approved], "attended")?;
                if *present > r.trainees {
                    return Err(PurchaseError::MorePresentThanRegistered { present: *present, registered: r.trainees });
                }
                let service_done = r.unit_cost.times(*present);
                Ok(vec![PurchaseEvent::AttendanceRecorded {
                    present: *present,
                    service_done,
                    released: r.total.saturating_sub(service_done),
                    recorded_on: *recorded_on,
                }])
            }
            PurchaseCommand::RecordPayment { paid_on, .. } => {
                let r = self.require_state(&[S::Attended], "paid")?;
                Ok(vec![PurchaseEvent::PurchasePaid { amount: r.unit_cost.times(self.present), paid_on: *paid_on }])
            }
            PurchaseCommand::Cancel { reason, cancelled_on, .. } => {
                let r = self.require_state(&[S::Requested, S::Approved], "cancelled")?;
                if reason.trim().is_empty() {
                    return Err(PurchaseError::MissingField { field: "the reason" });
                }
                let released = if self.state == Some(S::Approved) { r.total } else { Money::ZERO };
                Ok(vec![PurchaseEvent::PurchaseCancelled {
                    reason: reason.trim().to_string(),
                    released,
                    cancelled_on: *cancelled_on,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &PurchaseEvent) {
        match event {
            PurchaseEvent::PurchaseRequested(e) => {
                self.requested = Some((**e).clone());
                self.state = Some(PurchaseState::Requested);
            }
            PurchaseEvent::PurchaseApproved { .. } => self.state = Some(PurchaseState::Approved),
            PurchaseEvent::AttendanceRecorded { present, .. } => {
                self.present = *present;
                self.state = Some(PurchaseState::Attended);
            }
            PurchaseEvent::PurchasePaid { .. } => self.state = Some(PurchaseState::Paid),
            PurchaseEvent::PurchaseCancelled { .. } => self.state = Some(PurchaseState::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests;
