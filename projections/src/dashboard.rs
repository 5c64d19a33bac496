//! The comité de pilotage's indicators, by convention, département and month: money
//! committed, served and paid; trainees trained; habilitations by state; Pix
//! certifications; CCAS actions; annex-cost claims, their amounts and delays.
//!
//! Every figure sits in one cell (convention, département, month of the event that put
//! it there), so any filter (a convention, a région or département, a period) is a sum
//! of cells, and the national total is exactly the sum of the territories (plus the
//! cell of figures that have no territory, such as a late funds call, shown apart).
//!
//! Figures that describe a current state (a habilitation's or a claim's state, an
//! overdue claim) count once, in the cell of the event that put the entity in that
//! state: when it moves on, it leaves its old cell. So over a period, a state count reads
//! "entities that reached this state in the period and are still in it".

use crate::{Projection, ProjectionError};
use chrono::{Datelike, NaiveDate};
use domain::aidants::{HabilitationEvent, HabilitationState};
use domain::ccas::CcasEvent;
use domain::claim::{AnnexClaim, ClaimEvent, ClaimState};
use domain::convention::{Convention, ConventionEvent};
use domain::framework::Metier;
use domain::funds_call::{FundsCallEvent, FundsCallLedger};
use domain::pix::{PixEvent, PixPublic};
use domain::purchase::{Purchase, PurchaseEvent};
use domain::{Aggregate, ConventionId, DepartementCode, Money, RegionCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

/// A month, `YYYY-MM`: the finest period the dashboards filter on.
pub fn month(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// Where a figure sits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    pub convention: Option<ConventionId>,
    pub departement: Option<DepartementCode>,
    pub month: String,
}

/// Additive figures; a sum of cells is again `Indicators`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicators {
    pub committed: Money,
    pub released: Money,
    pub service_done: Money,
    pub paid: Money,
    /// Trainees present at a training bought on the plan.
    pub trainees: u64,
    pub certifying_trainees: u64,
    pub trainees_by_metier: BTreeMap<Metier, u64>,
    /// Trainees × competency blocks their training covers.
    pub trainees_by_block: BTreeMap<u8, u64>,
    pub habilitations: BTreeMap<HabilitationState, i64>,
    pub pix_certifications: u64,
    pub pix_score_sum: u64,
    pub pix_by_public: BTreeMap<PixPublic, u64>,
    pub ccas_actions: u64,
    pub ccas_agents: u64,
    pub ccas_managers: u64,
    pub claims: BTreeMap<ClaimState, i64>,
    pub claimed: Money,
    pub eligible: Money,
    pub approved: Money,
    pub claims_paid: Money,
    pub reimbursed: Money,
    pub overdue_claims: i64,
    pub late_funds_calls: i64,
    /// Days from submission to the OPCO's payment → number of claims.
    pub days_to_paid: BTreeMap<u32, u64>,
    /// Days from the OPCO's payment to ANCT's reimbursement → number of claims.
    pub days_to_reimbursed: BTreeMap<u32, u64>,
    /// Days from the claim's (first) submission to ANCT's reimbursement → number of claims.
    #[serde(default)]
    pub days_end_to_end: BTreeMap<u32, u64>,
}

fn add_maps<K: Ord + Clone, V: Copy + std::ops::Add<Output = V> + Default>(a: &mut BTreeMap<K, V>, b: &BTreeMap<K, V>) {
    for (k, v) in b {
        let e = a.entry(k.clone()).or_default();
        *e = *e + *v;
    }
}

fn money_minus(a: Money, b: Money) -> Money {
    a.saturating_sub(b)
}

impl Indicators {
    pub fn add(&mut self, o: &Indicators) {
        self.committed = self.committed + o.committed;
        self.released = self.released + o.released;
        self.service_done = self.service_done + o.service_done;
        self.paid = self.paid + o.paid;
        self.trainees += o.trainees;
        self.certifying_trainees += o.certifying_trainees;
        add_maps(&mut self.trainees_by_metier, &o.trainees_by_metier);
        add_maps(&mut self.trainees_by_block, &o.trainees_by_block);
        add_maps(&mut self.habilitations, &o.habilitations);
        self.pix_certifications += o.pix_certifications;
        self.pix_score_sum += o.pix_score_sum;
        add_maps(&mut self.pix_by_public, &o.pix_by_public);
        self.ccas_actions += o.ccas_actions;
        self.ccas_agents += o.ccas_agents;
        self.ccas_managers += o.ccas_managers;
        add_maps(&mut self.claims, &o.claims);
        self.claimed = self.claimed + o.claimed;
        self.eligible = self.eligible + o.eligible;
        self.approved = self.approved + o.approved;
        self.claims_paid = self.claims_paid + o.claims_paid;
        self.reimbursed = self.reimbursed + o.reimbursed;
        self.overdue_claims += o.overdue_claims;
        self.late_funds_calls += o.late_funds_calls;
        add_maps(&mut self.days_to_paid, &o.days_to_paid);
        add_maps(&mut self.days_to_reimbursed, &o.days_to_reimbursed);
        add_maps(&mut self.days_end_to_end, &o.days_end_to_end);
    }

    /// Committed net of releases.
    pub fn net_committed(&self) -> Money {
        money_minus(self.committed, self.released)
    }

    /// Mean and 90th percentile (nearest rank) of a delay histogram, in days.
    pub fn delays(histogram: &BTreeMap<u32, u64>) -> Option<(f64, u32)> {
        let n: u64 = histogram.values().sum();
        if n == 0 {
            return None;
        }
        let total: u64 = histogram.iter().map(|(d, c)| u64::from(*d) * c).sum();
        let rank = (n * 9).div_ceil(10);
        let mut seen = 0;
        let p90 = histogram.iter().find_map(|(d, c)| {
            seen += c;
            (seen >= rank).then_some(*d)
        })?;
        Some((total as f64 / n as f64, p90))
    }

    /// Mean Pix score, to the pix (rounded down).
    pub fn mean_pix_score(&self) -> Option<u64> {
        (self.pix_certifications > 0).then(|| self.pix_score_sum / self.pix_certifications)
    }

    fn state<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, delta: i64) {
        let e = map.entry(key).or_default();
        *e += delta;
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PurchaseFacts {
    convention: ConventionId,
    departement: DepartementCode,
    certifying: bool,
    metier: Metier,
    blocks: Vec<u8>,
}

#[cfg(test)]
mod tests;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct HabilitationTrack {
    cell: Cell,
    state: HabilitationState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClaimTrack {
    convention: ConventionId,
    departement: DepartementCode,
    /// Where its state (and overdue flag) is counted.
    state_cell: Cell,
    state: ClaimState,
    overdue: bool,
    /// Where its claimed/eligible amounts are counted (the latest submission).
    amounts_cell: Cell,
    claimed: Money,
    eligible: Money,
    submitted_on: NaiveDate,
    paid_on: Option<NaiveDate>,
}

/// A filter on cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub convention: Option<ConventionId>,
    pub region: Option<RegionCode>,
    pub departement: Option<DepartementCode>,
    /// First and last month, `YYYY-MM`, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Scope {
    fn matches(&self, cell: &Cell) -> bool {
        self.convention.is_none_or(|c| cell.convention == Some(c))
            && self.departement.as_ref().is_none_or(|d| cell.departement.as_ref() == Some(d))
            && self.region.as_ref().is_none_or(|r| cell.departement.as_ref().is_some_and(|d| d.region() == *r))
            && self.from.as_ref().is_none_or(|f| cell.month >= *f)
            && self.to.as_ref().is_none_or(|t| cell.month <= *t)
    }
}

/// The read model behind the dashboards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardView {
    #[serde(with = "crate::entries")]
    cells: BTreeMap<Cell, Indicators>,
    /// `convention/reference` → the département its money goes to.
    references: BTreeMap<String, Option<DepartementCode>>,
    purchases: BTreeMap<String, PurchaseFacts>,
    /// Pix campaign → (convention, public).
    campaigns: BTreeMap<String, (ConventionId, PixPublic)>,
    habilitations: BTreeMap<String, HabilitationTrack>,
    claims: BTreeMap<String, ClaimTrack>,
    /// Funds call → the cell its lateness is counted in.
    late_calls: BTreeMap<String, Cell>,
}

impl DashboardView {
    fn cell(&mut self, cell: Cell) -> &mut Indicators {
        self.cells.entry(cell).or_default()
    }

    /// The sum of the cells in scope.
    pub fn total(&self, scope: &Scope) -> Indicators {
        let mut out = Indicators::default();
        for (cell, figures) in &self.cells {
            if scope.matches(cell) {
                out.add(figures);
            }
        }
        out
    }

    /// The cells in scope, by département (`None`: figures without a territory).
    pub fn by_departement(&self, scope: &Scope) -> BTreeMap<Option<DepartementCode>, Indicators> {
        let mut out: BTreeMap<Option<DepartementCode>, Indicators> = BTreeMap::new();
        for (cell, figures) in &self.cells {
            if scope.matches(cell) {
                out.entry(cell.departement.clone()).or_default().add(figures);
            }
        }
        out
    }

    /// The cells in scope, by région (`None`: figures without a territory).
    pub fn by_region(&self, scope: &Scope) -> BTreeMap<Option<RegionCode>, Indicators> {
        let mut out: BTreeMap<Option<RegionCode>, Indicators> = BTreeMap::new();
        for (d, figures) in self.by_departement(scope) {
            out.entry(d.map(|d| d.region())).or_default().add(&figures);
        }
        out
    }

    fn on_convention(&mut self, convention: ConventionId, event: ConventionEvent) {
        let key = |reference: &str| format!("{convention}/{reference}");
        let (reference, date) = match &event {
            ConventionEvent::FundsCommitted(e) => {
                self.references.insert(key(&e.reference), e.departement.clone());
                (e.reference.clone(), e.committed_on)
            }
            ConventionEvent::FundsReleased(e) => (e.reference.clone(), e.released_on),
            ConventionEvent::ServiceDoneRecorded(e) => (e.reference.clone(), e.done_on),
            ConventionEvent::PaymentRecorded(e) => (e.reference.clone(), e.paid_on),
            _ => return,
        };
        let departement = self.references.get(&key(&reference)).cloned().flatten();
        let figures = self.cell(Cell { convention: Some(convention), departement, month: month(date) });
        match event {
            ConventionEvent::FundsCommitted(e) => figures.committed = figures.committed + e.amount,
            ConventionEvent::FundsReleased(e) => figures.released = figures.released + e.amount,
            ConventionEvent::ServiceDoneRecorded(e) => figures.service_done = figures.service_done + e.amount,
            ConventionEvent::PaymentRecorded(e) => figures.paid = figures.paid + e.amount,
            _ => {}
        }
    }

    fn on_purchase(&mut self, id: &str, event: PurchaseEvent) {
        match event {
            PurchaseEvent::PurchaseRequested(r) => {
                self.purchases.insert(
                    id.to_string(),
                    PurchaseFacts {
                        convention: r.convention_id,
                        departement: r.departement.clone(),
                        certifying: r.certification.is_some(),
                        metier: r.metier,
                        blocks: r.blocks.iter().map(|b| b.number()).collect(),
                    },
                );
            }
            PurchaseEvent::AttendanceRecorded { present, recorded_on, .. } => {
                let Some(p) = self.purchases.get(id).cloned() else { return };
                let n = u64::from(present);
                let figures = self.cell(Cell {
                    convention: Some(p.convention),
                    departement: Some(p.departement),
                    month: month(recorded_on),
                });
                figures.trainees += n;
                if p.certifying {
                    figures.certifying_trainees += n;
                }
                *figures.trainees_by_metier.entry(p.metier).or_default() += n;
                for b in p.blocks {
                    *figures.trainees_by_block.entry(b).or_default() += n;
                }
            }
            _ => {}
        }
    }

    fn move_habilitation(&mut self, id: &str, to: HabilitationTrack) {
        if let Some(old) = self.habilitations.get(id).cloned() {
            Indicators::state(&mut self.cell(old.cell).habilitations, old.state, -1);
        }
        Indicators::state(&mut self.cell(to.cell.clone()).habilitations, to.state, 1);
        self.habilitations.insert(id.to_string(), to);
    }

    fn on_habilitation(&mut self, id: &str, event: HabilitationEvent) {
        use HabilitationEvent as E;
        use HabilitationState as S;
        if let E::HabilitationRequested { departement, on, .. } = &event {
            let cell = Cell { convention: None, departement: Some(departement.clone()), month: month(*on) };
            self.move_habilitation(id, HabilitationTrack { cell, state: S::Requested });
            return;
        }
        let Some(current) = self.habilitations.get(id).cloned() else { return };
        let (state, on, convention) = match event {
            E::HabilitationRequested { .. } => return,
            E::EligibilityValidated { on } => (S::EligibilityValidated, on, None),
            E::HabilitationRefused { on, .. } => (S::Refused, on, None),
            E::HabilitationCancelled { on, .. } => (S::Cancelled, on, None),
            E::RegisteredToSession { convention_id, on, .. } => (S::RegisteredToTraining, on, Some(convention_id)),
            E::TrainingCompleted { on, .. } => (S::TrainingCompleted, on, None),
            E::Habilitated { on, .. } => (S::Habilitated, on, None),
            E::HabilitationRevoked { on, .. } => (S::Revoked, on, None),
        };
        let cell = Cell {
            convention: convention.or(current.cell.convention),
            departement: current.cell.departement.clone(),
            month: month(on),
        };
        self.move_habilitation(id, HabilitationTrack { cell, state });
    }

    fn move_claim(&mut self, id: &str, state: ClaimState, on: NaiveDate, overdue: bool) {
        let Some(mut c) = self.claims.get(id).cloned() else { return };
        let old = self.cell(c.state_cell.clone());
        Indicators::state(&mut old.claims, c.state, -1);
        old.overdue_claims -= i64::from(c.overdue);
        c.state_cell = Cell { month: month(on), ..c.state_cell };
        c.state = state;
        c.overdue = overdue;
        let new = self.cell(c.state_cell.clone());
        Indicators::state(&mut new.claims, state, 1);
        new.overdue_claims += i64::from(overdue);
        self.claims.insert(id.to_string(), c);
    }

    fn on_claim(&mut self, id: &str, event: ClaimEvent) {
        if let ClaimEvent::AnnexClaimSubmitted(e) = &event {
            let cell = Cell {
                convention: Some(e.convention_id),
                departement: Some(e.departement.clone()),
                month: month(e.submitted_on),
            };
            let figures = self.cell(cell.clone());
            Indicators::state(&mut figures.claims, ClaimState::Submitted, 1);
            figures.claimed = figures.claimed + e.claimed;
            figures.eligible = figures.eligible + e.eligible;
            self.claims.insert(
                id.to_string(),
                ClaimTrack {
                    convention: e.convention_id,
                    departement: e.departement.clone(),
                    state_cell: cell.clone(),
                    state: ClaimState::Submitted,
                    overdue: false,
                    amounts_cell: cell,
                    claimed: e.claimed,
                    eligible: e.eligible,
                    submitted_on: e.submitted_on,
                    paid_on: None,
                },
            );
            return;
        }
        let Some(c) = self.claims.get(id).cloned() else { return };
        let here = |on: NaiveDate| Cell {
            convention: Some(c.convention),
            departement: Some(c.departement.clone()),
            month: month(on),
        };
        match event {
            ClaimEvent::AnnexClaimSubmitted(_) => {}
            ClaimEvent::AnnexClaimResubmitted { claimed, eligible, resubmitted_on, .. } => {
                let old = self.cell(c.amounts_cell.clone());
                old.claimed = money_minus(old.claimed, c.claimed);
                old.eligible = money_minus(old.eligible, c.eligible);
                let cell = here(resubmitted_on);
                let new = self.cell(cell.clone());
                new.claimed = new.claimed + claimed;
                new.eligible = new.eligible + eligible;
                if let Some(t) = self.claims.get_mut(id) {
                    t.amounts_cell = cell;
                    t.claimed = claimed;
                    t.eligible = eligible;
                }
                self.move_claim(id, ClaimState::Submitted, resubmitted_on, false);
            }
            ClaimEvent::AnnexClaimApproved { amount, approved_on, .. } => {
                let figures = self.cell(here(approved_on));
                figures.approved = figures.approved + amount;
                self.move_claim(id, ClaimState::Approved, approved_on, false);
            }
            ClaimEvent::AnnexClaimChangesRequested { requested_on, .. } => {
                self.move_claim(id, ClaimState::ChangesRequested, requested_on, false)
            }
            ClaimEvent::AnnexClaimRejected { rejected_on, .. } => {
                self.move_claim(id, ClaimState::Rejected, rejected_on, false)
            }
            ClaimEvent::AnnexClaimAwaitingFunds { since, .. } => {
                self.move_claim(id, ClaimState::AwaitingFunds, since, false)
            }
            ClaimEvent::AnnexClaimFunded { committed_on, .. } => {
                self.move_claim(id, ClaimState::Funded, committed_on, false)
            }
            ClaimEvent::AnnexClaimPaid { amount, paid_on } => {
                let figures = self.cell(here(paid_on));
                figures.claims_paid = figures.claims_paid + amount;
                let days = (paid_on - c.submitted_on).num_days().max(0) as u32;
                *figures.days_to_paid.entry(days).or_default() += 1;
                if let Some(t) = self.claims.get_mut(id) {
                    t.paid_on = Some(paid_on);
                }
                self.move_claim(id, ClaimState::Paid, paid_on, false);
            }
            ClaimEvent::AnnexClaimFlaggedOverdue { .. } => {
                if c.state == ClaimState::Submitted && !c.overdue {
                    // Stays counted where it was submitted; only the flag is added.
                    self.cell(c.state_cell.clone()).overdue_claims += 1;
                    if let Some(t) = self.claims.get_mut(id) {
                        t.overdue = true;
                    }
                }
            }
            ClaimEvent::AnnexClaimCalled { called_on, .. } => {
                self.move_claim(id, ClaimState::InFundsCall, called_on, false)
            }
            ClaimEvent::AnnexClaimReimbursed { amount, reimbursed_on, .. } => {
                let figures = self.cell(here(reimbursed_on));
                figures.reimbursed = figures.reimbursed + amount;
                if let Some(paid_on) = c.paid_on {
                    let days = (reimbursed_on - paid_on).num_days().max(0) as u32;
                    *figures.days_to_reimbursed.entry(days).or_default() += 1;
                }
                let end_to_end = (reimbursed_on - c.submitted_on).num_days().max(0) as u32;
                *figures.days_end_to_end.entry(end_to_end).or_default() += 1;
                self.move_claim(id, ClaimState::Reimbursed, reimbursed_on, false);
            }
        }
    }

    fn on_funds_call(&mut self, convention: ConventionId, event: FundsCallEvent) {
        match event {
            FundsCallEvent::FundsCallFlaggedLate { call_id, due_on, .. } => {
                let cell = Cell { convention: Some(convention), departement: None, month: month(due_on) };
                self.cell(cell.clone()).late_funds_calls += 1;
                self.late_calls.insert(call_id.to_string(), cell);
            }
            FundsCallEvent::FundsCallPaid { call_id, .. } => {
                if let Some(cell) = self.late_calls.remove(&call_id.to_string()) {
                    self.cell(cell).late_funds_calls -= 1;
                }
            }
            _ => {}
        }
    }
}

impl Projection for DashboardView {
    const NAME: &'static str = "dashboard";

    fn apply(&mut self, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let unreadable = |reason: String| ProjectionError::Unreadable {
            position: e.position,
            event_type: e.event_type.clone(),
            reason,
        };
        let id = e.stream_id();
        match e.category() {
            c if c == Convention::CATEGORY => {
                let convention = ConventionId::parse(id).map_err(|x| unreadable(x.to_string()))?;
                self.on_convention(convention, e.payload.decode().map_err(|x| unreadable(x.to_string()))?);
            }
            c if c == Purchase::CATEGORY => {
                self.on_purchase(id, e.payload.decode().map_err(|x| unreadable(x.to_string()))?)
            }
            "habilitation" => self.on_habilitation(id, e.payload.decode().map_err(|x| unreadable(x.to_string()))?),
            "pixcampaign" => match e.payload.decode::<PixEvent>().map_err(|x| unreadable(x.to_string()))? {
                PixEvent::CampaignOpened { convention_id, public, .. } => {
                    self.campaigns.insert(id.to_string(), (convention_id, public));
                }
                PixEvent::CertificationRecorded { departement, score, certified_on, .. } => {
                    let Some((convention, public)) = self.campaigns.get(id).cloned() else { return Ok(()) };
                    let figures = self.cell(Cell {
                        convention: Some(convention),
                        departement: Some(departement),
                        month: month(certified_on),
                    });
                    figures.pix_certifications += 1;
                    figures.pix_score_sum += u64::from(score);
                    *figures.pix_by_public.entry(public).or_default() += 1;
                }
            },
            "ccasaction" => {
                let CcasEvent::CcasActionRecorded(a) = e.payload.decode().map_err(|x| unreadable(x.to_string()))?;
                let figures = self.cell(Cell {
                    convention: Some(a.convention_id),
                    departement: Some(a.departement),
                    month: month(a.held_on),
                });
                figures.ccas_actions += 1;
                figures.ccas_agents += u64::from(a.agents);
                figures.ccas_managers += u64::from(a.managers);
            }
            c if c == AnnexClaim::CATEGORY => {
                self.on_claim(id, e.payload.decode().map_err(|x| unreadable(x.to_string()))?)
            }
            c if c == FundsCallLedger::CATEGORY => {
                let convention = ConventionId::parse(id).map_err(|x| unreadable(x.to_string()))?;
                self.on_funds_call(convention, e.payload.decode().map_err(|x| unreadable(x.to_string()))?);
            }
            _ => {}
        }
        Ok(())
    }
}
