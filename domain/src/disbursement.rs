//! Disbursements (versements): ANCT's payments to a convention's partner, following the
//! schedule (échéancier) the convention sets — each instalment's part of ANCT's share and
//! its condition (the signature, a statement of expenses, the final report) — and what the
//! partner does with the money: statements of expenses (états récapitulatifs) that justify
//! it, an order of recovery (ordre de reversement) when the final statement is below what
//! was received, and the co-funder's own spending, recorded as such.
//!
//! One ledger per convention. The schedule and the payment delay are the convention's
//! terms: the use case reads them from the convention's stream and passes them in
//! ([`Terms`]), so deciding needs no I/O.
//!
//! Funds calls are claims for payment of their own kind: the OPCO calls annex costs it
//! already paid, justified by the claims listed; ANCT's payment of one is recorded here
//! in the same append as the call's, received and justified at once, outside the schedule
//! (the annex-cost envelope is ANCT's alone by its financing plan).
//!
//! Balance, at any point: `received − recovered = justified (within it) + advance not yet
//! justified`; ANCT never pays beyond what the schedule allows at that point.

use crate::ConventionId;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::money::Money;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who pays the disbursements: the partner's received, justified and recovered money is
/// this funder's (the co-funder's own spending is recorded under its own name).
pub const PAYER: &str = "ANCT";

/// What makes an instalment payable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Condition {
    /// The convention is signed (an advance).
    Signature,
    /// A statement of expenses was submitted (an interim payment: one statement per
    /// such instalment, in order).
    StatementOfExpenses,
    /// The final report (final statement) was submitted (the balance).
    FinalReport,
}

/// An instalment of the schedule, its amount resolved from ANCT's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instalment {
    /// Avance, acompte n°1, solde…
    pub label: String,
    pub amount: Money,
    pub condition: Condition,
}

/// The convention's terms a disbursement decision needs, read from its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Terms {
    pub schedule: Vec<Instalment>,
    /// Days ANCT has to pay a claim for payment.
    pub payment_days: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum DisbursementCommand {
    /// The partner's statement of what it spent of ANCT's money (état récapitulatif).
    SubmitStatement { convention_id: ConventionId, spent: Money, final_report: bool, submitted_on: NaiveDate },
    /// The partner claims an instalment (demande de versement).
    ClaimPayment { convention_id: ConventionId, instalment: u32, amount: Money, claimed_on: NaiveDate, terms: Terms },
    /// ANCT pays a claim.
    PayClaim { convention_id: ConventionId, claim: u32, paid_on: NaiveDate, terms: Terms },
    /// The co-funder's own spending on the convention (Uniformation's part).
    RecordCoFunderSpending {
        convention_id: ConventionId,
        funder: String,
        amount: Money,
        reference: String,
        spent_on: NaiveDate,
    },
    /// ANCT orders the partner to pay back what the final statement does not justify.
    OrderRecovery { convention_id: ConventionId, ordered_on: NaiveDate },
    /// The partner paid back (part of) an order of recovery.
    RecordRecoveryPaid { convention_id: ConventionId, amount: Money, paid_on: NaiveDate },
    /// ANCT paid a funds call: a claim for payment of annex costs the OPCO already paid,
    /// justified by the claims it lists (written with the payment, in the same append).
    RecordFundsCallPaid { convention_id: ConventionId, number: u32, amount: Money, paid_on: NaiveDate },
}

impl DisbursementCommand {
    pub fn convention_id(&self) -> ConventionId {
        match self {
            Self::SubmitStatement { convention_id, .. }
            | Self::ClaimPayment { convention_id, .. }
            | Self::PayClaim { convention_id, .. }
            | Self::RecordCoFunderSpending { convention_id, .. }
            | Self::OrderRecovery { convention_id, .. }
            | Self::RecordRecoveryPaid { convention_id, .. }
            | Self::RecordFundsCallPaid { convention_id, .. } => *convention_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DisbursementEvent {
    StatementSubmitted {
        number: u32,
        spent: Money,
        final_report: bool,
        submitted_on: NaiveDate,
    },
    PaymentClaimed {
        number: u32,
        instalment: u32,
        label: String,
        amount: Money,
        claimed_on: NaiveDate,
        due_on: NaiveDate,
    },
    ClaimPaid {
        number: u32,
        amount: Money,
        paid_on: NaiveDate,
        late: bool,
    },
    CoFunderSpendingRecorded {
        funder: String,
        amount: Money,
        reference: String,
        spent_on: NaiveDate,
    },
    RecoveryOrdered {
        amount: Money,
        ordered_on: NaiveDate,
    },
    RecoveryPaid {
        amount: Money,
        paid_on: NaiveDate,
    },
    FundsCallReimbursed {
        number: u32,
        amount: Money,
        paid_on: NaiveDate,
    },
}

impl DomainEvent for DisbursementEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::StatementSubmitted { .. } => "StatementOfExpensesSubmitted",
            Self::PaymentClaimed { .. } => "PaymentClaimed",
            Self::ClaimPaid { .. } => "DisbursementPaid",
            Self::CoFunderSpendingRecorded { .. } => "CoFunderSpendingRecorded",
            Self::RecoveryOrdered { .. } => "RecoveryOrdered",
            Self::RecoveryPaid { .. } => "RecoveryPaid",
            Self::FundsCallReimbursed { .. } => "FundsCallReimbursed",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            Self::StatementSubmitted { submitted_on, .. } => *submitted_on,
            Self::PaymentClaimed { claimed_on, .. } => *claimed_on,
            Self::ClaimPaid { paid_on, .. } => *paid_on,
            Self::CoFunderSpendingRecorded { spent_on, .. } => *spent_on,
            Self::RecoveryOrdered { ordered_on, .. } => *ordered_on,
            Self::RecoveryPaid { paid_on, .. } => *paid_on,
            Self::FundsCallReimbursed { paid_on, .. } => *paid_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum DisbursementError {
    #[error("the convention has no disbursement schedule: ANCT sets it first")]
    NoSchedule,
    #[error("{field} must be more than 0 €")]
    ZeroAmount { field: &'static str },
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
    #[error("the final report was already submitted: no statement comes after it")]
    FinalReportAlreadySubmitted,
    #[error("the schedule has no instalment n°{instalment}")]
    UnknownInstalment { instalment: u32 },
    #[error("instalment n°{instalment} was already claimed")]
    InstalmentAlreadyClaimed { instalment: u32 },
    #[error("instalment n°{instalment} is not payable yet: it waits for {condition:?}")]
    ConditionNotMet { instalment: u32, condition: Condition },
    #[error("instalment n°{instalment} allows {allowed}, {requested} claimed")]
    ClaimExceedsInstalment { instalment: u32, allowed: Money, requested: Money },
    #[error("no claim for payment n°{claim}")]
    UnknownClaim { claim: u32 },
    #[error("claim n°{claim} is already paid")]
    AlreadyPaid { claim: u32 },
    #[error(
        "ANCT never pays beyond the schedule: {allowed} payable so far, {received} already paid, {requested} requested"
    )]
    BeyondSchedule { allowed: Money, received: Money, requested: Money },
    #[error("{what} is dated {date}, before {earlier} on {earlier_date}")]
    DatedBefore { what: &'static str, date: NaiveDate, earlier: &'static str, earlier_date: NaiveDate },
    #[error("no final report yet: what to recover is known once the final statement is in")]
    NoFinalReport,
    #[error("nothing to recover: {justified} justified for {kept} kept")]
    NothingToRecover { justified: Money, kept: Money },
    #[error("an order of recovery was already issued")]
    AlreadyOrdered,
    #[error("only {outstanding} is still to be paid back, {requested} recorded")]
    RecoveryExceedsOrder { outstanding: Money, requested: Money },
    #[error("funds call n°{number} is already recorded as paid")]
    FundsCallAlreadyRecorded { number: u32 },
}

/// A claim for payment and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub number: u32,
    pub instalment: u32,
    pub label: String,
    pub amount: Money,
    pub claimed_on: NaiveDate,
    pub due_on: NaiveDate,
    pub paid_on: Option<NaiveDate>,
    /// Paid after its due date.
    pub paid_late: bool,
}

impl Claim {
    /// How many days ANCT was or is late on this claim as seen on `on`: paid by then, the
    /// days between its due date and the payment; unpaid by then, the days since its due
    /// date. 0 when not late. Lateness is a fact of dates, so it is computed at the date
    /// asked, not recorded: an unpaid claim's lateness grows until it is paid.
    pub fn days_late(&self, on: NaiveDate) -> i64 {
        let settled = self.paid_on.filter(|paid| *paid <= on).unwrap_or(on);
        (settled - self.due_on).num_days().max(0)
    }
}

/// The decision state of a convention's disbursements, also its balance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disbursements {
    pub statements: u32,
    /// What the statements declare spent of ANCT's money.
    pub justified: Money,
    pub final_report: Option<NaiveDate>,
    pub claims: Vec<Claim>,
    /// Paid by ANCT to the partner.
    pub received: Money,
    pub recovery_ordered: Money,
    pub recovered: Money,
    /// The co-funders' own spending, by funder.
    pub co_funders: BTreeMap<String, Money>,
    /// Funds calls ANCT paid (claims for payment of annex costs, justified by the claims
    /// they list: received and justified at once), by number.
    #[serde(default)]
    pub funds_calls: BTreeMap<u32, Money>,
}

impl Disbursements {
    /// What is kept: received less what was paid back.
    pub fn kept(&self) -> Money {
        self.received.saturating_sub(self.recovered)
    }

    /// Justified within what was kept.
    pub fn justified_within(&self) -> Money {
        self.justified.min(self.kept())
    }

    /// Money advanced and not yet justified.
    pub fn advance_not_justified(&self) -> Money {
        self.kept().saturating_sub(self.justified)
    }

    /// What ANCT paid on funds calls.
    pub fn funds_calls_paid(&self) -> Money {
        self.funds_calls.values().copied().sum()
    }

    /// Ordered back and not yet paid back.
    pub fn to_recover(&self) -> Money {
        self.recovery_ordered.saturating_sub(self.recovered)
    }

    /// Whether instalment `n` (1-based) of `schedule` is payable now.
    fn condition_met(&self, schedule: &[Instalment], n: usize) -> bool {
        match schedule[n - 1].condition {
            Condition::Signature => true,
            Condition::FinalReport => self.final_report.is_some(),
            Condition::StatementOfExpenses => {
                let needed =
                    schedule[..n].iter().filter(|i| i.condition == Condition::StatementOfExpenses).count() as u32;
                self.statements >= needed
            }
        }
    }

    /// The most the schedule allows ANCT to have paid so far: the instalments whose
    /// condition is met, a balance (on the final report) only as far as the statements
    /// justify more than the other instalments.
    pub fn allowed(&self, schedule: &[Instalment]) -> Money {
        let met = |n: &usize| self.condition_met(schedule, *n);
        let is_final = |n: &usize| schedule[*n - 1].condition == Condition::FinalReport;
        let others: Money =
            (1..=schedule.len()).filter(met).filter(|n| !is_final(n)).map(|n| schedule[n - 1].amount).sum();
        let mut beyond = self.justified.saturating_sub(others);
        let mut balance = Money::ZERO;
        for n in (1..=schedule.len()).filter(met).filter(is_final) {
            let part = schedule[n - 1].amount.min(beyond);
            balance = balance + part;
            beyond = beyond.saturating_sub(part);
        }
        others + balance
    }

    fn claim(
        &self,
        terms: &Terms,
        instalment: u32,
        amount: Money,
        on: NaiveDate,
    ) -> Result<DisbursementEvent, DisbursementError> {
        if terms.schedule.is_empty() {
            return Err(DisbursementError::NoSchedule);
        }
        let n = instalment as usize;
        if n == 0 || n > terms.schedule.len() {
            return Err(DisbursementError::UnknownInstalment { instalment });
        }
        if self.claims.iter().any(|c| c.instalment == instalment) {
            return Err(DisbursementError::InstalmentAlreadyClaimed { instalment });
        }
        let planned = &terms.schedule[n - 1];
        if !self.condition_met(&terms.schedule, n) {
            return Err(DisbursementError::ConditionNotMet { instalment, condition: planned.condition });
        }
        if amount.is_zero() {
            return Err(DisbursementError::ZeroAmount { field: "the amount claimed" });
        }
        // The balance pays what the statements justify beyond what was paid, at most.
        let allowed = match planned.condition {
            Condition::FinalReport => {
                let claimed: Money = self.claims.iter().map(|c| c.amount).sum();
                planned.amount.min(self.justified.saturating_sub(claimed))
            }
            _ => planned.amount,
        };
        if amount > allowed {
            return Err(DisbursementError::ClaimExceedsInstalment { instalment, allowed, requested: amount });
        }
        Ok(DisbursementEvent::PaymentClaimed {
            number: self.claims.len() as u32 + 1,
            instalment,
            label: planned.label.clone(),
            amount,
            claimed_on: on,
            due_on: on.checked_add_days(Days::new(u64::from(terms.payment_days))).unwrap_or(on),
        })
    }

    fn pay(&self, terms: &Terms, number: u32, on: NaiveDate) -> Result<DisbursementEvent, DisbursementError> {
        let claim =
            self.claims.iter().find(|c| c.number == number).ok_or(DisbursementError::UnknownClaim { claim: number })?;
        if claim.paid_on.is_some() {
            return Err(DisbursementError::AlreadyPaid { claim: number });
        }
        if on < claim.claimed_on {
            return Err(DisbursementError::DatedBefore {
                what: "the payment",
                date: on,
                earlier: "the claim it pays",
                earlier_date: claim.claimed_on,
            });
        }
        let allowed = self.allowed(&terms.schedule);
        if self.received + claim.amount > allowed {
            return Err(DisbursementError::BeyondSchedule {
                allowed,
                received: self.received,
                requested: claim.amount,
            });
        }
        Ok(DisbursementEvent::ClaimPaid { number, amount: claim.amount, paid_on: on, late: on > claim.due_on })
    }
}

impl Aggregate for Disbursements {
    type Command = DisbursementCommand;
    type Event = DisbursementEvent;
    type Error = DisbursementError;
    const CATEGORY: &'static str = "disbursements";

    fn decide(&self, command: &DisbursementCommand) -> Result<Vec<DisbursementEvent>, DisbursementError> {
        use DisbursementCommand as C;
        let event = match command {
            C::SubmitStatement { spent, final_report, submitted_on, .. } => {
                if self.final_report.is_some() {
                    return Err(DisbursementError::FinalReportAlreadySubmitted);
                }
                if spent.is_zero() && !final_report {
                    return Err(DisbursementError::ZeroAmount { field: "the amount spent" });
                }
                DisbursementEvent::StatementSubmitted {
                    number: self.statements + 1,
                    spent: *spent,
                    final_report: *final_report,
                    submitted_on: *submitted_on,
                }
            }
            C::ClaimPayment { instalment, amount, claimed_on, terms, .. } => {
                self.claim(terms, *instalment, *amount, *claimed_on)?
            }
            C::PayClaim { claim, paid_on, terms, .. } => self.pay(terms, *claim, *paid_on)?,
            C::RecordCoFunderSpending { funder, amount, reference, spent_on, .. } => {
                for (field, value) in [("the funder", funder), ("the reference", reference)] {
                    if value.trim().is_empty() {
                        return Err(DisbursementError::MissingField { field });
                    }
                }
                if amount.is_zero() {
                    return Err(DisbursementError::ZeroAmount { field: "the amount spent" });
                }
                DisbursementEvent::CoFunderSpendingRecorded {
                    funder: funder.trim().to_string(),
                    amount: *amount,
                    reference: reference.trim().to_string(),
                    spent_on: *spent_on,
                }
            }
            C::OrderRecovery { ordered_on, .. } => {
                let Some(final_on) = self.final_report else { return Err(DisbursementError::NoFinalReport) };
                if !self.recovery_ordered.is_zero() {
                    return Err(DisbursementError::AlreadyOrdered);
                }
                if *ordered_on < final_on {
                    return Err(DisbursementError::DatedBefore {
                        what: "the order of recovery",
                        date: *ordered_on,
                        earlier: "the final report",
                        earlier_date: final_on,
                    });
                }
                let amount = self.advance_not_justified();
                if amount.is_zero() {
                    return Err(DisbursementError::NothingToRecover { justified: self.justified, kept: self.kept() });
                }
                DisbursementEvent::RecoveryOrdered { amount, ordered_on: *ordered_on }
            }
            C::RecordRecoveryPaid { amount, paid_on, .. } => {
                if amount.is_zero() {
                    return Err(DisbursementError::ZeroAmount { field: "the amount paid back" });
                }
                let outstanding = self.to_recover();
                if *amount > outstanding {
                    return Err(DisbursementError::RecoveryExceedsOrder { outstanding, requested: *amount });
                }
                DisbursementEvent::RecoveryPaid { amount: *amount, paid_on: *paid_on }
            }
            C::RecordFundsCallPaid { number, amount, paid_on, .. } => {
                if self.funds_calls.contains_key(number) {
                    return Err(DisbursementError::FundsCallAlreadyRecorded { number: *number });
                }
                DisbursementEvent::FundsCallReimbursed { number: *number, amount: *amount, paid_on: *paid_on }
            }
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &DisbursementEvent) {
        match event {
            DisbursementEvent::StatementSubmitted { spent, final_report, submitted_on, .. } => {
                self.statements += 1;
                self.justified = self.justified + *spent;
                if *final_report {
                    self.final_report = Some(*submitted_on);
                }
            }
            DisbursementEvent::PaymentClaimed { number, instalment, label, amount, claimed_on, due_on } => {
                self.claims.push(Claim {
                    number: *number,
                    instalment: *instalment,
                    label: label.clone(),
                    amount: *amount,
                    claimed_on: *claimed_on,
                    due_on: *due_on,
                    paid_on: None,
                    paid_late: false,
                })
            }
            DisbursementEvent::ClaimPaid { number, amount, paid_on, late } => {
                if let Some(c) = self.claims.iter_mut().find(|c| c.number == *number) {
                    c.paid_on = Some(*paid_on);
                    c.paid_late = *late;
                }
                self.received = self.received + *amount;
            }
            DisbursementEvent::CoFunderSpendingRecorded { funder, amount, .. } => {
                let spent = self.co_funders.entry(funder.clone()).or_insert(Money::ZERO);
                *spent = *spent + *amount;
            }
            DisbursementEvent::RecoveryOrdered { amount, .. } => {
                self.recovery_ordered = self.recovery_ordered + *amount
            }
            DisbursementEvent::RecoveryPaid { amount, .. } => self.recovered = self.recovered + *amount,
            DisbursementEvent::FundsCallReimbursed { number, amount, .. } => {
                self.funds_calls.insert(*number, *amount);
            }
        }
    }
}

#[cfg(test)]
mod tests;
