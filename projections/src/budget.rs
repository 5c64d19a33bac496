//! Budget consumption per convention and envelope: allocated, committed, service done,
//! paid, available and % consumed, with the funders' shares and the amendments' history,
//! and each funder's part of every figure by the envelope's financing plan: a commitment
//! keeps the plan in force when it was made, and its figures are split by it with the
//! domain's one rounding (largest remainder), so the parts add up to the cent.

use crate::{Projection, ProjectionError};
use chrono::NaiveDate;
use domain::annex::CapsChange;
use domain::convention::{ConventionEvent, EnvelopeKind, FundingShare, Target};
use domain::financing::{self, FinancingPlan};
use domain::money::round_cents;
use domain::{Aggregate, ConventionId, EnvelopeId, Money};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

/// The money figures of an envelope or of a whole convention. Serialised with the derived
/// figures (available, % consumed) so that snapshots and exports show them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub allocated: Money,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
}

impl Figures {
    /// Allocated and not committed.
    pub fn available(&self) -> Money {
        self.allocated.saturating_sub(self.committed)
    }

    /// Committed as a share of allocated, in percent with two decimals.
    pub fn consumed_percent(&self) -> Decimal {
        Money::percent_of(self.committed, self.allocated)
    }
}

impl Serialize for Figures {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct All {
            allocated: Money,
            committed: Money,
            service_done: Money,
            paid: Money,
            available: Money,
            consumed_percent: Decimal,
        }
        All {
            allocated: self.allocated,
            committed: self.committed,
            service_done: self.service_done,
            paid: self.paid,
            available: self.available(),
            consumed_percent: self.consumed_percent(),
        }
        .serialize(s)
    }
}

/// Reads back what [`Figures`]' `Serialize` writes, ignoring the derived figures.
impl<'de> Deserialize<'de> for Figures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Stored {
            allocated: Money,
            committed: Money,
            service_done: Money,
            paid: Money,
        }
        let s = Stored::deserialize(d)?;
        Ok(Figures { allocated: s.allocated, committed: s.committed, service_done: s.service_done, paid: s.paid })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeBudget {
    pub id: EnvelopeId,
    pub name: String,
    pub kind: EnvelopeKind,
    pub allocated_on: NaiveDate,
    pub figures: Figures,
    /// Its financing plans in the order set (allocation, then amendments); the last is in
    /// force. Commitments name the one they were made under.
    #[serde(default)]
    pub plans: Vec<FinancingPlan>,
    /// Each funder's committed, service done and paid (its allocated part comes from the
    /// plan in force: [`EnvelopeBudget::funders`]).
    #[serde(default)]
    pub by_funder: BTreeMap<String, Figures>,
    /// By budget year (exercice: the calendar year of each move's business date), each
    /// funder's moves in that year.
    #[serde(default)]
    pub years: BTreeMap<i32, BTreeMap<String, YearFigures>>,
}

/// One funder's moves on an envelope in one budget year (exercice). Signed: a funder's
/// part of a commitment may move by a cent against the flow when a later move changes
/// the largest remainders (three funders or more); the sums stay exact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct YearFigures {
    /// Engagements of the year (AE engagées).
    pub committed: Decimal,
    /// Releases of the year (AE désengagées).
    pub released: Decimal,
    pub service_done: Decimal,
    /// Payments of the year (CP).
    pub paid: Decimal,
}

impl EnvelopeBudget {
    /// The plan in force.
    pub fn plan(&self) -> &[financing::FunderPart] {
        self.plans.last().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Each funder's part of every figure, in the plan's order (then any funder of an
    /// earlier plan): the parts add up to the envelope's figures exactly.
    pub fn funders(&self) -> Vec<(String, Figures)> {
        let plan = self.plan();
        let allocated = financing::split(plan, self.figures.allocated);
        let mut out: Vec<(String, Figures)> = plan
            .iter()
            .zip(allocated)
            .map(|(p, allocated)| {
                let f = self.by_funder.get(&p.funder).cloned().unwrap_or_default();
                (p.funder.clone(), Figures { allocated, ..f })
            })
            .collect();
        for (funder, f) in &self.by_funder {
            if !out.iter().any(|(name, _)| name == funder) {
                out.push((funder.clone(), Figures { allocated: Money::ZERO, ..f.clone() }));
            }
        }
        out
    }
}

/// A commitment's figures and the plan they are split by (an index into its envelope's
/// `plans`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitmentLedger {
    pub envelope_id: EnvelopeId,
    pub plan: usize,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeChange {
    pub envelope_id: EnvelopeId,
    pub name: String,
    pub from: Money,
    pub to: Money,
}

/// An amendment as the comité de pilotage reads it: what changed, from what to what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmendmentRecord {
    pub number: u32,
    pub signed_on: NaiveDate,
    pub reason: String,
    pub total: Option<(Money, Money)>,
    pub period_end: Option<(NaiveDate, NaiveDate)>,
    pub shares: Option<Vec<FundingShare>>,
    pub envelopes: Vec<EnvelopeChange>,
    pub annex_caps: Option<CapsChange>,
    /// New financing plans, by envelope name.
    #[serde(default)]
    pub financing: Vec<(String, FinancingPlan)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConventionBudget {
    pub id: ConventionId,
    pub code: String,
    pub partner: String,
    pub title: String,
    pub signed_on: NaiveDate,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub total: Money,
    pub shares: Vec<FundingShare>,
    pub targets: Vec<Target>,
    pub departements: Vec<String>,
    pub envelopes: Vec<EnvelopeBudget>,
    pub amendments: Vec<AmendmentRecord>,
    /// Annex-cost caps by the date they take effect.
    pub annex_caps: Vec<CapsChange>,
    pub closed_on: Option<NaiveDate>,
    /// The stream version and log position this budget reflects.
    pub version: u64,
    pub position: u64,
    /// Every commitment by reference, for its funders' parts.
    #[serde(default)]
    pub commitments: BTreeMap<String, CommitmentLedger>,
    /// ANCT's payments to the partner, as the convention schedules them.
    #[serde(default)]
    pub schedule: Vec<domain::disbursement::Instalment>,
}

impl ConventionBudget {
    /// The sum of the envelopes.
    pub fn figures(&self) -> Figures {
        self.envelopes.iter().fold(Figures::default(), |acc, e| Figures {
            allocated: acc.allocated + e.figures.allocated,
            committed: acc.committed + e.figures.committed,
            service_done: acc.service_done + e.figures.service_done,
            paid: acc.paid + e.figures.paid,
        })
    }

    /// Each funder's part of the budget: the sum of its parts of the envelopes, each by
    /// the envelope's financing plans (never a pro-rata of the whole). Funders in the
    /// order of the convention's shares, then any other a plan named. The parts add up to
    /// [`ConventionBudget::figures`] exactly.
    pub fn by_funder(&self) -> Vec<(String, Figures)> {
        let mut out: Vec<(String, Figures)> =
            self.shares.iter().map(|s| (s.funder.clone(), Figures::default())).collect();
        for envelope in &self.envelopes {
            for (funder, f) in envelope.funders() {
                let slot = match out.iter().position(|(name, _)| *name == funder) {
                    Some(i) => i,
                    None => {
                        out.push((funder, Figures::default()));
                        out.len() - 1
                    }
                };
                let acc = &mut out[slot].1;
                acc.allocated = acc.allocated + f.allocated;
                acc.committed = acc.committed + f.committed;
                acc.service_done = acc.service_done + f.service_done;
                acc.paid = acc.paid + f.paid;
            }
        }
        out
    }

    /// What the convention's total leaves to allocate.
    pub fn unallocated(&self) -> Money {
        self.total.saturating_sub(self.figures().allocated)
    }

    /// A funder's share of the total, in percent.
    pub fn share_percent(&self, share: &FundingShare) -> Decimal {
        round_cents(Money::percent_of(share.amount, self.total))
    }

    fn envelope(&mut self, id: EnvelopeId) -> Option<&mut EnvelopeBudget> {
        self.envelopes.iter_mut().find(|e| e.id == id)
    }
}

/// Every convention's budget, keyed by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetView {
    pub conventions: BTreeMap<ConventionId, ConventionBudget>,
}

impl BudgetView {
    pub fn by_code(&self, code: &str) -> Option<&ConventionBudget> {
        self.conventions.get(&ConventionId::for_code(code))
    }

    /// Conventions in code order, as lists show them.
    pub fn list(&self) -> Vec<&ConventionBudget> {
        let mut all: Vec<_> = self.conventions.values().collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }
}

impl Projection for BudgetView {
    const NAME: &'static str = "budget";
    /// 2: funders' parts by financing plan (per-commitment ledgers).
    const FORMAT: u32 = 2;

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if recorded.category() != domain::convention::Convention::CATEGORY {
            return Ok(());
        }
        let unreadable = |reason: String| ProjectionError::Unreadable {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            reason,
        };
        let event: ConventionEvent = recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
        let id = ConventionId::parse(recorded.stream_id()).map_err(|e| unreadable(e.to_string()))?;
        if let ConventionEvent::ConventionSigned(e) = &event {
            self.conventions.insert(
                id,
                ConventionBudget {
                    id,
                    code: e.code.clone(),
                    partner: e.partner.clone(),
                    title: e.title.clone(),
                    signed_on: e.signed_on,
                    period_start: e.period_start,
                    period_end: e.period_end,
                    total: e.total,
                    shares: e.shares.clone(),
                    targets: e.targets.clone(),
                    departements: e.departements.iter().map(|d| d.to_string()).collect(),
                    envelopes: Vec::new(),
                    amendments: Vec::new(),
                    annex_caps: vec![CapsChange { effective_on: e.period_start, caps: e.annex_caps.clone() }],
                    closed_on: None,
                    version: recorded.version,
                    position: recorded.position,
                    commitments: BTreeMap::new(),
                    schedule: Vec::new(),
                },
            );
            return Ok(());
        }
        let budget =
            self.conventions.get_mut(&id).ok_or_else(|| unreadable("event for a convention never signed".into()))?;
        budget.version = recorded.version;
        budget.position = recorded.position;
        apply_to(budget, event);
        Ok(())
    }
}

fn apply_to(b: &mut ConventionBudget, event: ConventionEvent) {
    match event {
        ConventionEvent::ConventionSigned(_) => {}
        ConventionEvent::EnvelopeAllocated(e) => b.envelopes.push(EnvelopeBudget {
            id: e.envelope_id,
            name: e.name,
            kind: e.kind,
            allocated_on: e.allocated_on,
            figures: Figures { allocated: e.amount, ..Figures::default() },
            plans: vec![financing::plan_or_shares(&e.financing, &b.shares)],
            by_funder: BTreeMap::new(),
            years: BTreeMap::new(),
        }),
        ConventionEvent::AmendmentSigned(e) => {
            let record = AmendmentRecord {
                number: e.number,
                signed_on: e.signed_on,
                reason: e.reason,
                total: e.total.map(|t| (b.total, t)),
                period_end: e.period_end.map(|end| (b.period_end, end)),
                shares: e.shares.clone(),
                envelopes: e
                    .envelopes
                    .iter()
                    .filter_map(|c| {
                        let env = b.envelopes.iter().find(|x| x.id == c.envelope_id)?;
                        Some(EnvelopeChange {
                            envelope_id: c.envelope_id,
                            name: env.name.clone(),
                            from: env.figures.allocated,
                            to: c.amount,
                        })
                    })
                    .collect(),
                annex_caps: e.annex_caps.clone(),
                financing: e
                    .financing
                    .iter()
                    .filter_map(|f| {
                        let env = b.envelopes.iter().find(|x| x.id == f.envelope_id)?;
                        Some((env.name.clone(), f.parts.clone()))
                    })
                    .collect(),
            };
            if let Some(change) = e.annex_caps {
                b.annex_caps.retain(|c| c.effective_on < change.effective_on);
                b.annex_caps.push(change);
            }
            if let Some(t) = e.total {
                b.total = t;
            }
            if let Some(end) = e.period_end {
                b.period_end = end;
            }
            if let Some(shares) = e.shares {
                b.shares = shares;
            }
            for c in &e.envelopes {
                if let Some(env) = b.envelope(c.envelope_id) {
                    env.figures.allocated = c.amount;
                }
            }
            for c in e.financing {
                if let Some(env) = b.envelope(c.envelope_id) {
                    env.plans.push(c.parts);
                }
            }
            b.amendments.push(record);
        }
        ConventionEvent::FundsCommitted(e) => {
            if let Some(env) = b.envelope(e.envelope_id) {
                env.figures.committed = env.figures.committed + e.amount;
                let plan = env.plans.len().saturating_sub(1);
                b.commitments.insert(
                    e.reference.clone(),
                    CommitmentLedger {
                        envelope_id: e.envelope_id,
                        plan,
                        committed: Money::ZERO,
                        service_done: Money::ZERO,
                        paid: Money::ZERO,
                    },
                );
                b.attribute(&e.reference, e.amount, Step::Commit, e.committed_on);
            }
        }
        ConventionEvent::FundsReleased(e) => {
            if let Some(env) = b.envelope(e.envelope_id) {
                env.figures.committed = env.figures.committed.saturating_sub(e.amount);
                b.attribute(&e.reference, e.amount, Step::Release, e.released_on);
            }
        }
        ConventionEvent::ServiceDoneRecorded(e) => {
            if let Some(env) = b.envelope(e.envelope_id) {
                env.figures.service_done = env.figures.service_done + e.amount;
                b.attribute(&e.reference, e.amount, Step::ServiceDone, e.done_on);
            }
        }
        ConventionEvent::PaymentRecorded(e) => {
            if let Some(env) = b.envelope(e.envelope_id) {
                env.figures.paid = env.figures.paid + e.amount;
                b.attribute(&e.reference, e.amount, Step::Pay, e.paid_on);
            }
        }
        ConventionEvent::ConventionClosed(e) => b.closed_on = Some(e.closed_on),
        ConventionEvent::ScheduleSet(e) => b.schedule = e.instalments,
    }
}

/// A move on a commitment, as its funders' parts see it.
#[derive(Clone, Copy)]
enum Step {
    Commit,
    Release,
    ServiceDone,
    Pay,
}

impl ConventionBudget {
    /// Moves a commitment's figure by `amount` and its funders' parts with it: the parts
    /// of the new cumulative figure, by the commitment's plan, replace those of the old
    /// one (so each commitment's parts always add up to its figure, to the cent), and each
    /// funder's accounts of the move's budget year by the same differences.
    fn attribute(&mut self, reference: &str, amount: Money, step: Step, on: NaiveDate) {
        let Some(ledger) = self.commitments.get_mut(reference) else { return };
        let figure = match step {
            Step::Commit | Step::Release => &mut ledger.committed,
            Step::ServiceDone => &mut ledger.service_done,
            Step::Pay => &mut ledger.paid,
        };
        let before = *figure;
        *figure = match step {
            Step::Release => before.saturating_sub(amount),
            _ => before + amount,
        };
        let after = *figure;
        let (envelope_id, plan) = (ledger.envelope_id, ledger.plan);
        let Some(env) = self.envelopes.iter_mut().find(|e| e.id == envelope_id) else { return };
        let Some(plan) = env.plans.get(plan) else { return };
        let old = financing::split(plan, before);
        let new = financing::split(plan, after);
        let year = env.years.entry(chrono::Datelike::year(&on)).or_default();
        for ((part, old), new) in plan.iter().zip(old).zip(new) {
            let moved = new.amount() - old.amount();
            let y = year.entry(part.funder.clone()).or_default();
            match step {
                Step::Commit => y.committed += moved,
                Step::Release => y.released -= moved,
                Step::ServiceDone => y.service_done += moved,
                Step::Pay => y.paid += moved,
            }
            let f = env.by_funder.entry(part.funder.clone()).or_default();
            let slot = match step {
                Step::Commit | Step::Release => &mut f.committed,
                Step::ServiceDone => &mut f.service_done,
                Step::Pay => &mut f.paid,
            };
            *slot = slot.saturating_sub(old) + new;
        }
    }
}

#[cfg(test)]
mod tests;
