//! Funds calls (appels de fonds): the OPCO calls from ANCT what it paid to structures for
//! annex costs over a period. One ledger per convention holds every paid claim and every
//! call, so that "a claim is in at most one funds call" is checked in one place, under
//! the stream's optimistic concurrency.

use crate::ConventionId;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::claim::ClaimId;
use crate::ids::{CommandId, TRACKER_NAMESPACE};
use crate::money::Money;
use crate::structure::StructureId;
use crate::territory::DepartementCode;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// The payment delay of a funds call when the command carries none (tests of the ledger
/// alone): our default. The use case always passes the convention's own term — a
/// partnership convention sets its payment delays; the procurement delays (30 days for
/// the State, 60 for public companies) do not bind it.
pub const OUR_PAYMENT_DAYS: u32 = crate::annex::OUR_FUNDS_CALL_PAYMENT_DAYS;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FundsCallId(pub Uuid);

impl FundsCallId {
    /// A call's id comes from the command that issued it: a retry names the same call.
    pub fn for_command(command: CommandId) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("funds-call:{}", command.0).as_bytes()))
    }

    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "funds call", input: input.to_string() })
    }
}

impl fmt::Display for FundsCallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A claim the OPCO paid, waiting to be called from ANCT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaidClaim {
    pub claim_id: ClaimId,
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub amount: Money,
    pub paid_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum FundsCallCommand {
    /// Sent by the saga when the OPCO paid a claim.
    QueueClaim {
        convention_id: ConventionId,
        claim: PaidClaim,
    },
    /// Calls the claims paid in the period (all of them, or those named).
    Issue {
        convention_id: ConventionId,
        call_id: FundsCallId,
        period_start: NaiveDate,
        period_end: NaiveDate,
        claims: Option<Vec<ClaimId>>,
        issued_on: NaiveDate,
        /// The convention's payment delay in force at issue, filled by the use case from
        /// the convention's stream; our default when absent.
        payment_days: Option<u32>,
    },
    RecordPayment {
        convention_id: ConventionId,
        call_id: FundsCallId,
        paid_on: NaiveDate,
    },
    /// Sent by the saga when a call is not paid in time.
    FlagLate {
        convention_id: ConventionId,
        call_id: FundsCallId,
        due_on: NaiveDate,
    },
}

impl FundsCallCommand {
    pub fn convention_id(&self) -> ConventionId {
        match self {
            FundsCallCommand::QueueClaim { convention_id, .. }
            | FundsCallCommand::Issue { convention_id, .. }
            | FundsCallCommand::RecordPayment { convention_id, .. }
            | FundsCallCommand::FlagLate { convention_id, .. } => *convention_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundsCallIssued {
    pub call_id: FundsCallId,
    pub convention_id: ConventionId,
    /// n°1, n°2… per convention.
    pub number: u32,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub claims: Vec<PaidClaim>,
    pub total: Money,
    pub issued_on: NaiveDate,
    /// ANCT should pay by then.
    pub due_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FundsCallEvent {
    ClaimQueuedForFundsCall { claim: PaidClaim },
    FundsCallIssued(Box<FundsCallIssued>),
    FundsCallPaid { call_id: FundsCallId, number: u32, amount: Money, paid_on: NaiveDate },
    FundsCallFlaggedLate { call_id: FundsCallId, number: u32, due_on: NaiveDate },
}

impl DomainEvent for FundsCallEvent {
    fn event_type(&self) -> &'static str {
        match self {
            FundsCallEvent::ClaimQueuedForFundsCall { .. } => "ClaimQueuedForFundsCall",
            FundsCallEvent::FundsCallIssued(_) => "FundsCallIssued",
            FundsCallEvent::FundsCallPaid { .. } => "FundsCallPaid",
            FundsCallEvent::FundsCallFlaggedLate { .. } => "FundsCallFlaggedLate",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            FundsCallEvent::ClaimQueuedForFundsCall { claim } => claim.paid_on,
            FundsCallEvent::FundsCallIssued(e) => e.issued_on,
            FundsCallEvent::FundsCallPaid { paid_on, .. } => *paid_on,
            FundsCallEvent::FundsCallFlaggedLate { due_on, .. } => *due_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum FundsCallError {
    #[error("claim {claim_id} is already queued for a funds call")]
    AlreadyQueued { claim_id: ClaimId },
    #[error("a funds call with this id was already issued")]
    AlreadyIssued,
    #[error("the period ends ({end}) before it starts ({start})")]
    PeriodEndsBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("a funds call covers a past period: it cannot be issued ({issued_on}) before the period ends ({end})")]
    IssuedBeforePeriodEnd { issued_on: NaiveDate, end: NaiveDate },
    #[error("no paid claim waits to be called between {start} and {end}")]
    NothingToCall { start: NaiveDate, end: NaiveDate },
    #[error("claim {claim_id} is listed twice")]
    DuplicateClaim { claim_id: ClaimId },
    #[error("claim {claim_id} is already in funds call n°{number}")]
    ClaimAlreadyCalled { claim_id: ClaimId, number: u32 },
    #[error("claim {claim_id} is not paid by the OPCO (or not of this convention): it cannot be called")]
    ClaimNotPaid { claim_id: ClaimId },
    #[error("claim {claim_id} was paid on {paid_on}, outside the period {start} to {end}")]
    ClaimOutsidePeriod { claim_id: ClaimId, paid_on: NaiveDate, start: NaiveDate, end: NaiveDate },
    #[error("no funds call has this id in this convention")]
    UnknownCall,
    #[error("funds call n°{number} is already paid")]
    AlreadyPaid { number: u32 },
    #[error("funds call n°{number} is already flagged late")]
    AlreadyFlaggedLate { number: u32 },
    #[error("funds call n°{number} cannot be paid ({paid_on}) before it is issued ({issued_on})")]
    PaidBeforeIssued { number: u32, issued_on: NaiveDate, paid_on: NaiveDate },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    pub issued: FundsCallIssued,
    pub paid_on: Option<NaiveDate>,
    pub flagged_late: bool,
}

/// The decision state of a convention's funds calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FundsCallLedger {
    /// Paid claims not yet called, by claim.
    pub queued: BTreeMap<ClaimId, PaidClaim>,
    /// Claims already called, and by which call number.
    pub called: BTreeMap<ClaimId, u32>,
    pub calls: BTreeMap<FundsCallId, CallState>,
}

impl FundsCallLedger {
    fn issue(
        &self,
        convention_id: ConventionId,
        call_id: FundsCallId,
        (start, end): (NaiveDate, NaiveDate),
        named: Option<&[ClaimId]>,
        issued_on: NaiveDate,
        payment_days: u32,
    ) -> Result<Vec<FundsCallEvent>, FundsCallError> {
        if self.calls.contains_key(&call_id) {
            return Err(FundsCallError::AlreadyIssued);
        }
        if end < start {
            return Err(FundsCallError::PeriodEndsBeforeStart { start, end });
        }
        if issued_on < end {
            return Err(FundsCallError::IssuedBeforePeriodEnd { issued_on, end });
        }
        let claims: Vec<PaidClaim> = match named {
            None => self.queued.values().filter(|c| (start..=end).contains(&c.paid_on)).cloned().collect(),
            Some(ids) => {
                let mut seen = BTreeSet::new();
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if !seen.insert(*id) {
                        return Err(FundsCallError::DuplicateClaim { claim_id: *id });
                    }
                    if let Some(number) = self.called.get(id) {
                        return Err(FundsCallError::ClaimAlreadyCalled { claim_id: *id, number: *number });
                    }
                    let claim = self.queued.get(id).ok_or(FundsCallError::ClaimNotPaid { claim_id: *id })?;
                    if !(start..=end).contains(&claim.paid_on) {
                        return Err(FundsCallError::ClaimOutsidePeriod {
                            claim_id: *id,
                            paid_on: claim.paid_on,
                            start,
                            end,
                        });
                    }
                    out.push(claim.clone());
                }
                out
            }
        };
        if claims.is_empty() {
            return Err(FundsCallError::NothingToCall { start, end });
        }
        let total = claims.iter().map(|c| c.amount).sum();
        Ok(vec![FundsCallEvent::FundsCallIssued(Box::new(FundsCallIssued {
            call_id,
            convention_id,
            number: self.calls.len() as u32 + 1,
            period_start: start,
            period_end: end,
            claims,
            total,
            issued_on,
            due_on: issued_on.checked_add_days(Days::new(u64::from(payment_days))).unwrap_or(issued_on),
        }))])
    }
}

impl Aggregate for FundsCallLedger {
    type Command = FundsCallCommand;
    type Event = FundsCallEvent;
    type Error = FundsCallError;
    const CATEGORY: &'static str = "fundscalls";

    fn decide(&self, command: &FundsCallCommand) -> Result<Vec<FundsCallEvent>, FundsCallError> {
        match command {
            FundsCallCommand::QueueClaim { claim, .. } => {
                if self.queued.contains_key(&claim.claim_id) || self.called.contains_key(&claim.claim_id) {
                    return Err(FundsCallError::AlreadyQueued { claim_id: claim.claim_id });
                }
                Ok(vec![FundsCallEvent::ClaimQueuedForFundsCall { claim: claim.clone() }])
            }
            FundsCallCommand::Issue {
                convention_id,
                call_id,
                period_start,
                period_end,
                claims,
                issued_on,
                payment_days,
            } => self.issue(
                *convention_id,
                *call_id,
                (*period_start, *period_end),
                claims.as_deref(),
                *issued_on,
                payment_days.unwrap_or(OUR_PAYMENT_DAYS),
            ),
            FundsCallCommand::RecordPayment { call_id, paid_on, .. } => {
                let call = self.calls.get(call_id).ok_or(FundsCallError::UnknownCall)?;
                let number = call.issued.number;
                if call.paid_on.is_some() {
                    return Err(FundsCallError::AlreadyPaid { number });
                }
                if *paid_on < call.issued.issued_on {
                    return Err(FundsCallError::PaidBeforeIssued {
                        number,
                        issued_on: call.issued.issued_on,
                        paid_on: *paid_on,
                    });
                }
                Ok(vec![FundsCallEvent::FundsCallPaid {
                    call_id: *call_id,
                    number,
                    amount: call.issued.total,
                    paid_on: *paid_on,
                }])
            }
            FundsCallCommand::FlagLate { call_id, due_on, .. } => {
                let call = self.calls.get(call_id).ok_or(FundsCallError::UnknownCall)?;
                if call.paid_on.is_some() {
                    return Err(FundsCallError::AlreadyPaid { number: call.issued.number });
                }
                if call.flagged_late {
                    return Err(FundsCallError::AlreadyFlaggedLate { number: call.issued.number });
                }
                Ok(vec![FundsCallEvent::FundsCallFlaggedLate {
                    call_id: *call_id,
                    number: call.issued.number,
                    due_on: *due_on,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &FundsCallEvent) {
        match event {
            FundsCallEvent::ClaimQueuedForFundsCall { claim } => {
                self.queued.insert(claim.claim_id, claim.clone());
            }
            FundsCallEvent::FundsCallIssued(e) => {
                for c in &e.claims {
                    self.queued.remove(&c.claim_id);
                    self.called.insert(c.claim_id, e.number);
                }
                self.calls.insert(e.call_id, CallState { issued: (**e).clone(), paid_on: None, flagged_late: false });
            }
            FundsCallEvent::FundsCallPaid { call_id, paid_on, .. } => {
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.paid_on = Some(*paid_on);
                }
            }
            FundsCallEvent::FundsCallFlaggedLate { call_id, .. } => {
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.flagged_late = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
