//! The financial report of any past date, replayed from the log: per convention its
//! total and funders, envelopes (allocated, committed, service done, paid, available),
//! the amendments in force, annex-cost reimbursements and targets reached; the events
//! behind every envelope figure (provenance); and the corrections (compensating events)
//! shown as such.
//!
//! Two time axes: `as_of` keeps the events whose *business date* is on or before it;
//! `as_known_at` keeps the events *recorded* by that instant — the report exactly as the
//! tracker could have shown it then, later corrections excluded.

use crate::Projection;
use crate::budget::{AmendmentRecord, BudgetView, Figures};
use crate::dashboard::{DashboardView, Scope};
use crate::reimbursements::ReimbursementsView;
use chrono::{DateTime, NaiveDate, Utc};
use domain::aidants::HabilitationState;
use domain::claim::ClaimState;
use domain::convention::{ConventionEvent, EnvelopeKind, TargetKind};
use domain::{Aggregate, ConventionId, EnvelopeId, Money};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use store::RecordedEvent;

/// Which events a report keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cutoff {
    /// Business dates on or before this day.
    pub as_of: Option<NaiveDate>,
    /// Recorded at or before this instant.
    pub as_known_at: Option<DateTime<Utc>>,
}

impl Cutoff {
    pub fn includes(&self, e: &RecordedEvent) -> bool {
        self.as_of.is_none_or(|d| e.business_date <= d) && self.as_known_at.is_none_or(|t| e.recorded_at <= t)
    }
}

/// A figure of an envelope that provenance can explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Figure {
    Allocated,
    Committed,
    ServiceDone,
    Paid,
    /// A partner's balance (no envelope): paid by ANCT to the partner.
    Received,
    /// Spent of ANCT's money, by the partner's statements of expenses.
    Justified,
    /// Ordered back and paid back.
    Recovered,
    /// The co-funders' own spending.
    CoFunderSpent,
}

impl Figure {
    /// A figure of a partner's balance, not of an envelope.
    pub fn of_partner(self) -> bool {
        matches!(self, Figure::Received | Figure::Justified | Figure::Recovered | Figure::CoFunderSpent)
    }

    pub fn parse(s: &str) -> Option<Figure> {
        match s.trim().to_lowercase().replace(['-', '_', ' '], "").as_str() {
            "allocated" => Some(Figure::Allocated),
            "committed" => Some(Figure::Committed),
            "servicedone" => Some(Figure::ServiceDone),
            "paid" => Some(Figure::Paid),
            "received" => Some(Figure::Received),
            "justified" => Some(Figure::Justified),
            "recovered" => Some(Figure::Recovered),
            "cofunderspent" => Some(Figure::CoFunderSpent),
            _ => None,
        }
    }
}

/// One event as an auditor reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_type: String,
    pub business_date: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    /// What it did to the figure: `+1250.00`, `-300.00` (a release), `=500000.00` (an
    /// amendment setting the amount).
    pub effect: Option<String>,
    pub reference: Option<String>,
    /// Why it is listed among corrections.
    pub correction: Option<String>,
}

fn event_ref(e: &RecordedEvent, effect: Option<String>, reference: Option<String>) -> EventRef {
    EventRef {
        position: e.position,
        stream: e.stream.clone(),
        version: e.version,
        event_type: e.event_type.clone(),
        business_date: e.business_date,
        recorded_at: e.recorded_at,
        actor: e.metadata.actor.clone(),
        effect,
        reference,
        correction: None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeReport {
    pub name: String,
    pub kind: EnvelopeKind,
    pub allocated: Money,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
    pub available: Money,
    /// Its financing plan in force.
    pub financing: domain::financing::FinancingPlan,
    /// Each funder's part of the figures, by the plans of its commitments.
    pub funders: Vec<FunderReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunderReport {
    pub funder: String,
    /// Its share of the convention's total (of a convention's funders; zero for an
    /// envelope's).
    pub share: Money,
    pub allocated: Money,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
}

/// One funder's account of one envelope (or of the whole convention: `envelope` TOTAL)
/// in one budget year (exercice): what it committed (AE), released, had served and paid
/// (CP) in the year, and what carries over to the next (committed, not released, not yet
/// paid, at the year's end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FiscalYearReport {
    pub year: i32,
    pub envelope: String,
    pub funder: String,
    pub committed: Decimal,
    pub released: Decimal,
    pub service_done: Decimal,
    pub paid: Decimal,
    pub carried_over: Decimal,
}

/// The fiscal years of a convention: per envelope and funder, then per funder (TOTAL),
/// every year from the first move to the last, carried-over amounts included.
fn fiscal_years(c: &crate::budget::ConventionBudget) -> Vec<FiscalYearReport> {
    let years: Vec<i32> = c.envelopes.iter().flat_map(|e| e.years.keys().copied()).collect();
    let (Some(first), Some(last)) = (years.iter().min().copied(), years.iter().max().copied()) else {
        return vec![];
    };
    let cents = |d: Decimal| {
        let mut d = domain::money::round_cents(d);
        d.rescale(2);
        d
    };
    let mut rows = Vec::new();
    let mut totals: BTreeMap<(i32, String), FiscalYearReport> = BTreeMap::new();
    for envelope in &c.envelopes {
        let mut carry: BTreeMap<String, Decimal> = BTreeMap::new();
        for year in first..=last {
            let moves = envelope.years.get(&year);
            let mut funders: Vec<String> = carry.keys().cloned().collect();
            for f in moves.into_iter().flat_map(|m| m.keys()) {
                if !funders.contains(f) {
                    funders.push(f.clone());
                }
            }
            for funder in funders {
                let m = moves.and_then(|m| m.get(&funder)).cloned().unwrap_or_default();
                let carried = carry.entry(funder.clone()).or_default();
                *carried += m.committed - m.released - m.paid;
                let row = FiscalYearReport {
                    year,
                    envelope: envelope.name.clone(),
                    funder: funder.clone(),
                    committed: cents(m.committed),
                    released: cents(m.released),
                    service_done: cents(m.service_done),
                    paid: cents(m.paid),
                    carried_over: cents(*carried),
                };
                let total = totals.entry((year, funder.clone())).or_insert_with(|| FiscalYearReport {
                    year,
                    envelope: "TOTAL".into(),
                    funder: funder.clone(),
                    committed: cents(Decimal::ZERO),
                    released: cents(Decimal::ZERO),
                    service_done: cents(Decimal::ZERO),
                    paid: cents(Decimal::ZERO),
                    carried_over: cents(Decimal::ZERO),
                });
                total.committed += row.committed;
                total.released += row.released;
                total.service_done += row.service_done;
                total.paid += row.paid;
                total.carried_over += row.carried_over;
                rows.push(row);
            }
        }
    }
    rows.sort_by(|a, b| (a.year, &a.envelope).cmp(&(b.year, &b.envelope)));
    rows.extend(totals.into_values());
    rows.sort_by_key(|r| r.year);
    rows
}

/// A claim for payment of an instalment, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimForPaymentReport {
    pub number: u32,
    pub instalment: u32,
    pub label: String,
    pub amount: Money,
    pub claimed_on: NaiveDate,
    pub due_on: NaiveDate,
    pub paid_on: Option<NaiveDate>,
    /// Paid after its due date, or unpaid past it at the report's date.
    pub late: bool,
}

/// The money between ANCT and the partner: the schedule, the claims for payment, what
/// was received, justified, advanced and not yet justified, ordered back and recovered,
/// and the co-funders' own spending. `received − recovered = justified (within it) +
/// advance not yet justified`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerReport {
    pub schedule: Vec<domain::disbursement::Instalment>,
    /// What the schedule allows ANCT to have paid so far.
    pub payable_so_far: Money,
    pub claims: Vec<ClaimForPaymentReport>,
    pub received: Money,
    pub justified: Money,
    pub advance_not_justified: Money,
    pub recovery_ordered: Money,
    pub recovered: Money,
    pub to_recover: Money,
    pub statements: u32,
    pub final_report_on: Option<NaiveDate>,
    /// Funds calls are claims for payment of their own kind (annex costs the OPCO paid,
    /// justified by the claims they list): what ANCT paid on them.
    pub funds_calls_paid: Money,
    pub co_funders_spent: BTreeMap<String, Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FundsCallReport {
    pub number: u32,
    pub total: Money,
    pub issued_on: NaiveDate,
    pub paid_on: Option<NaiveDate>,
    pub late: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnexCostsReport {
    pub claims: BTreeMap<ClaimState, u64>,
    pub claimed: Money,
    pub approved: Money,
    /// Paid by the OPCO to structures.
    pub paid: Money,
    /// Reimbursed to the OPCO by ANCT.
    pub reimbursed: Money,
    pub funds_calls: Vec<FundsCallReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub kind: TargetKind,
    pub quantity: u32,
    pub reached: u64,
    /// Beside aidants trained: how many of them were habilitated (revoked ones included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub habilitated: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConventionReport {
    pub code: String,
    pub partner: String,
    pub title: String,
    pub signed_on: NaiveDate,
    pub period_end: NaiveDate,
    pub total: Money,
    pub funders: Vec<FunderReport>,
    pub envelopes: Vec<EnvelopeReport>,
    /// The sum of the envelopes.
    pub budget: EnvelopeTotals,
    pub amendments: Vec<AmendmentRecord>,
    pub annex_costs: AnnexCostsReport,
    pub targets: Vec<TargetReport>,
    pub closed_on: Option<NaiveDate>,
    /// By budget year (exercice), per envelope and funder, then per funder (TOTAL).
    pub fiscal_years: Vec<FiscalYearReport>,
    /// ANCT's payments to the partner and their justification.
    pub disbursements: PartnerReport,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeTotals {
    pub allocated: Money,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
    pub available: Money,
}

impl From<&Figures> for EnvelopeTotals {
    fn from(f: &Figures) -> Self {
        EnvelopeTotals {
            allocated: f.allocated,
            committed: f.committed,
            service_done: f.service_done,
            paid: f.paid,
            available: f.available(),
        }
    }
}

/// What the report was computed from, so a reader can check it against `tracker verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportHeader {
    pub cutoff: Cutoff,
    /// The last position of the log read, and the whole-log digest there (what `tracker
    /// verify` prints as `POSITION:HASH`).
    pub log_position: u64,
    pub log_digest: String,
    /// Whether every hash chain verified; if not, the first broken place.
    pub intact: bool,
    pub first_break: Option<String>,
    pub events_in_report: u64,
    /// Events left out because their business date is after `asOf`.
    pub events_after_as_of: u64,
    /// Events left out because they were recorded after `asKnownAt`.
    pub events_recorded_later: u64,
    /// Events kept by the cutoff but that depend on a fact it leaves out (e.g. a payment
    /// dated before the commitment it pays): not counted, listed here.
    pub skipped: Vec<EventRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinancialReport {
    pub header: ReportHeader,
    pub conventions: Vec<ConventionReport>,
    /// Compensating events, as such: releases (a commitment reduced or cancelled) and
    /// amendments that lower an envelope. The log is never edited: a mistake stays, and
    /// its correction is a later event.
    pub corrections: Vec<EventRef>,
}

/// The verification a report header quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    pub position: u64,
    pub digest: String,
    pub first_break: Option<String>,
}

/// Folds the log, event by event, into a report.
pub struct ReportBuilder {
    cutoff: Cutoff,
    budget: BudgetView,
    reimbursements: ReimbursementsView,
    dashboard: DashboardView,
    provenance: BTreeMap<(ConventionId, EnvelopeId, Figure), Vec<EventRef>>,
    /// Each funder's part of a figure, by the events that moved it (their `effect` is
    /// the funder's signed move, so they add up to the funder's figure in the report).
    funder_provenance: BTreeMap<(ConventionId, EnvelopeId, Figure, String), Vec<EventRef>>,
    disbursements: BTreeMap<ConventionId, domain::disbursement::Disbursements>,
    /// The latest business date kept: unpaid claims past their due date then are late.
    latest: Option<NaiveDate>,
    /// `convention/reference` → envelope, to place releases, service done and payments.
    references: BTreeMap<String, EnvelopeId>,
    corrections: Vec<EventRef>,
    skipped: Vec<EventRef>,
    included: u64,
    after_as_of: u64,
    recorded_later: u64,
}

impl ReportBuilder {
    pub fn new(cutoff: Cutoff) -> Self {
        Self {
            cutoff,
            budget: BudgetView::default(),
            reimbursements: ReimbursementsView::default(),
            dashboard: DashboardView::default(),
            provenance: BTreeMap::new(),
            funder_provenance: BTreeMap::new(),
            disbursements: BTreeMap::new(),
            latest: None,
            references: BTreeMap::new(),
            corrections: Vec::new(),
            skipped: Vec::new(),
            included: 0,
            after_as_of: 0,
            recorded_later: 0,
        }
    }

    pub fn apply(&mut self, e: &RecordedEvent) {
        if self.cutoff.as_known_at.is_some_and(|t| e.recorded_at > t) {
            self.recorded_later += 1;
            return;
        }
        if self.cutoff.as_of.is_some_and(|d| e.business_date > d) {
            self.after_as_of += 1;
            return;
        }
        let of_convention = e.category() == domain::convention::Convention::CATEGORY;
        let before = if of_convention { self.funder_parts(e) } else { BTreeMap::new() };
        // A convention event that depends on a fact the cutoff leaves out (the budget
        // view refuses it) is listed, not counted.
        if self.budget.apply(e).is_err() {
            self.skipped.push(event_ref(e, None, None));
            return;
        }
        if of_convention {
            let after = self.funder_parts(e);
            self.funder_moves(e, before, after);
            self.convention_event(e);
        }
        if e.category() == domain::disbursement::Disbursements::CATEGORY {
            self.disbursement_event(e);
        }
        self.latest = self.latest.max(Some(e.business_date));
        let _ = self.reimbursements.apply(e);
        let _ = self.dashboard.apply(e);
        self.included += 1;
    }

    fn convention_event(&mut self, e: &RecordedEvent) {
        let Ok(event) = e.payload.decode::<ConventionEvent>() else { return };
        let Ok(convention) = ConventionId::parse(e.stream_id()) else { return };
        let mut record = |envelope: EnvelopeId, figure: Figure, effect: String, reference: Option<String>| {
            self.provenance.entry((convention, envelope, figure)).or_default().push(event_ref(
                e,
                Some(effect),
                reference,
            ));
        };
        match event {
            ConventionEvent::EnvelopeAllocated(a) => {
                record(a.envelope_id, Figure::Allocated, format!("+{}", a.amount.amount()), None)
            }
            ConventionEvent::AmendmentSigned(a) => {
                for change in &a.envelopes {
                    record(change.envelope_id, Figure::Allocated, format!("={}", change.amount.amount()), None);
                }
                let lowered =
                    self.budget.conventions.get(&convention).is_some_and(|c| {
                        c.amendments.last().is_some_and(|r| r.envelopes.iter().any(|ch| ch.to < ch.from))
                    });
                if lowered {
                    let mut correction = event_ref(e, None, None);
                    correction.correction = Some(format!("amendment n°{} lowers an envelope", a.number));
                    self.corrections.push(correction);
                }
            }
            ConventionEvent::FundsCommitted(c) => {
                self.references.insert(format!("{convention}/{}", c.reference), c.envelope_id);
                record(c.envelope_id, Figure::Committed, format!("+{}", c.amount.amount()), Some(c.reference));
            }
            ConventionEvent::FundsReleased(r) => {
                record(r.envelope_id, Figure::Committed, format!("-{}", r.amount.amount()), Some(r.reference.clone()));
                let mut correction = event_ref(e, Some(format!("-{}", r.amount.amount())), Some(r.reference));
                correction.correction = Some("release: compensates a commitment".into());
                self.corrections.push(correction);
            }
            ConventionEvent::ServiceDoneRecorded(s) => {
                record(s.envelope_id, Figure::ServiceDone, format!("+{}", s.amount.amount()), Some(s.reference))
            }
            ConventionEvent::PaymentRecorded(p) => {
                record(p.envelope_id, Figure::Paid, format!("+{}", p.amount.amount()), Some(p.reference))
            }
            ConventionEvent::ConventionSigned(_)
            | ConventionEvent::ConventionClosed(_)
            | ConventionEvent::ScheduleSet(_) => {}
        }
    }

    /// Each funder's part of each figure of the event's convention's envelopes, as the
    /// budget view splits them by their financing plans.
    fn funder_parts(&self, e: &RecordedEvent) -> BTreeMap<(EnvelopeId, Figure, String), Money> {
        let mut parts = BTreeMap::new();
        let Ok(id) = ConventionId::parse(e.stream_id()) else { return parts };
        let Some(convention) = self.budget.conventions.get(&id) else { return parts };
        for envelope in &convention.envelopes {
            for (funder, f) in envelope.funders() {
                for (figure, amount) in [
                    (Figure::Allocated, f.allocated),
                    (Figure::Committed, f.committed),
                    (Figure::ServiceDone, f.service_done),
                    (Figure::Paid, f.paid),
                ] {
                    parts.insert((envelope.id, figure, funder.clone()), amount);
                }
            }
        }
        parts
    }

    /// Records the event under each funder's figure it moved, with the signed move: the
    /// difference of the parts (not a split of the event's amount, which could stray by a
    /// cent from the split of the cumulative figure the report shows).
    fn funder_moves(
        &mut self,
        e: &RecordedEvent,
        before: BTreeMap<(EnvelopeId, Figure, String), Money>,
        after: BTreeMap<(EnvelopeId, Figure, String), Money>,
    ) {
        let Ok(convention) = ConventionId::parse(e.stream_id()) else { return };
        let reference = e.payload.decode::<ConventionEvent>().ok().and_then(|event| match event {
            ConventionEvent::FundsCommitted(c) => Some(c.reference),
            ConventionEvent::FundsReleased(r) => Some(r.reference),
            ConventionEvent::ServiceDoneRecorded(s) => Some(s.reference),
            ConventionEvent::PaymentRecorded(p) => Some(p.reference),
            _ => None,
        });
        for ((envelope, figure, funder), amount) in &after {
            let old = before.get(&(*envelope, *figure, funder.clone())).map_or(Decimal::ZERO, |m| m.amount());
            let moved = amount.amount() - old;
            if moved.is_zero() {
                continue;
            }
            let effect = if moved.is_sign_negative() { format!("{moved:.2}") } else { format!("+{moved:.2}") };
            self.funder_provenance
                .entry((convention, *envelope, *figure, funder.clone()))
                .or_default()
                .push(event_ref(e, Some(effect), reference.clone()));
        }
    }

    fn disbursement_event(&mut self, e: &RecordedEvent) {
        use domain::disbursement::DisbursementEvent as D;
        let Ok(event) = e.payload.decode::<D>() else { return };
        let Ok(convention) = ConventionId::parse(e.stream_id()) else { return };
        let partner = EnvelopeId(uuid::Uuid::nil());
        let effect = match &event {
            D::ClaimPaid { amount, .. } => Some((Figure::Received, format!("+{}", amount.amount()))),
            D::StatementSubmitted { spent, .. } => Some((Figure::Justified, format!("+{}", spent.amount()))),
            D::RecoveryPaid { amount, .. } => Some((Figure::Recovered, format!("+{}", amount.amount()))),
            D::CoFunderSpendingRecorded { amount, .. } => {
                Some((Figure::CoFunderSpent, format!("+{}", amount.amount())))
            }
            _ => None,
        };
        if let Some((figure, effect)) = effect {
            // ANCT's money, but for the co-funder's own spending.
            let funder = match &event {
                D::CoFunderSpendingRecorded { funder, .. } => funder.clone(),
                _ => domain::disbursement::PAYER.to_string(),
            };
            let r = event_ref(e, Some(effect), None);
            self.funder_provenance.entry((convention, partner, figure, funder)).or_default().push(r.clone());
            self.provenance.entry((convention, partner, figure)).or_default().push(r);
        }
        self.disbursements.entry(convention).or_default().evolve(&event);
    }

    /// The events behind one figure of a partner's balance.
    pub fn explain_partner(&self, convention: ConventionId, figure: Figure) -> Vec<EventRef> {
        self.provenance.get(&(convention, EnvelopeId(uuid::Uuid::nil()), figure)).cloned().unwrap_or_default()
    }

    fn partner(&self, c: &crate::budget::ConventionBudget, funds_calls_paid: Money) -> PartnerReport {
        let d = self.disbursements.get(&c.id).cloned().unwrap_or_default();
        let today = self.cutoff.as_of.or(self.latest);
        PartnerReport {
            payable_so_far: d.allowed(&c.schedule),
            schedule: c.schedule.clone(),
            claims: d
                .claims
                .iter()
                .map(|k| ClaimForPaymentReport {
                    number: k.number,
                    instalment: k.instalment,
                    label: k.label.clone(),
                    amount: k.amount,
                    claimed_on: k.claimed_on,
                    due_on: k.due_on,
                    paid_on: k.paid_on,
                    late: k.paid_late || (k.paid_on.is_none() && today.is_some_and(|t| t > k.due_on)),
                })
                .collect(),
            received: d.received,
            justified: d.justified,
            advance_not_justified: d.advance_not_justified(),
            recovery_ordered: d.recovery_ordered,
            recovered: d.recovered,
            to_recover: d.to_recover(),
            statements: d.statements,
            final_report_on: d.final_report,
            funds_calls_paid,
            co_funders_spent: d.co_funders.clone(),
        }
    }

    /// The events behind one figure of one envelope.
    pub fn explain(&self, convention: ConventionId, envelope: EnvelopeId, figure: Figure) -> Vec<EventRef> {
        self.provenance.get(&(convention, envelope, figure)).cloned().unwrap_or_default()
    }

    /// The events behind one funder's part of a figure: of one envelope, or of the whole
    /// convention (every envelope, in log order) when `envelope` is `None`; for a partner's
    /// figure the envelope is ignored. Each event's `effect` is the funder's signed move,
    /// so the effects add up to the funder's figure in the report, to the cent.
    pub fn explain_funder(
        &self,
        convention: ConventionId,
        envelope: Option<EnvelopeId>,
        figure: Figure,
        funder: &str,
    ) -> Vec<EventRef> {
        let same = |name: &str| name.eq_ignore_ascii_case(funder);
        let envelope = if figure.of_partner() { Some(EnvelopeId(uuid::Uuid::nil())) } else { envelope };
        let mut events: Vec<EventRef> = self
            .funder_provenance
            .iter()
            .filter(|((c, e, f, name), _)| {
                *c == convention && *f == figure && same(name) && envelope.is_none_or(|want| want == *e)
            })
            .flat_map(|(_, events)| events.iter().cloned())
            .collect();
        events.sort_by_key(|e| e.position);
        events
    }

    /// The funders named by the convention's shares, its financing plans or its co-funder
    /// spending (what `explain_funder` accepts).
    pub fn funders_of(&self, convention: ConventionId) -> Vec<String> {
        let mut names: Vec<String> = self
            .budget
            .conventions
            .get(&convention)
            .map(|c| c.by_funder().into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
        for (c, _, _, name) in self.funder_provenance.keys() {
            if *c == convention && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    pub fn finish(self, integrity: &Integrity) -> FinancialReport {
        let conventions = self
            .budget
            .list()
            .into_iter()
            .map(|c| {
                let figures = c.figures();
                let by_funder = c.by_funder();
                let scope = Scope { convention: Some(c.id), ..Scope::default() };
                let delivered = self.dashboard.total(&scope);
                let state = |s| delivered.habilitations.get(&s).copied().unwrap_or(0).max(0) as u64;
                let claims: Vec<_> =
                    self.reimbursements.claims.values().filter(|r| r.submitted.convention_id == c.id).collect();
                let mut by_state: BTreeMap<ClaimState, u64> = BTreeMap::new();
                for r in &claims {
                    *by_state.entry(r.state).or_default() += 1;
                }
                let sum = |f: &dyn Fn(&&crate::reimbursements::ClaimRecord) -> Option<Money>| -> Money {
                    claims.iter().filter_map(f).sum()
                };
                let funds_calls_paid: Money = self
                    .reimbursements
                    .calls()
                    .into_iter()
                    .filter(|call| call.issued.convention_id == c.id && call.paid_on.is_some())
                    .map(|call| call.issued.total)
                    .sum();
                ConventionReport {
                    code: c.code.clone(),
                    partner: c.partner.clone(),
                    title: c.title.clone(),
                    signed_on: c.signed_on,
                    period_end: c.period_end,
                    total: c.total,
                    funders: by_funder
                        .into_iter()
                        .map(|(funder, f)| FunderReport {
                            share: c.shares.iter().find(|s| s.funder == funder).map_or(Money::ZERO, |s| s.amount),
                            funder,
                            allocated: f.allocated,
                            committed: f.committed,
                            service_done: f.service_done,
                            paid: f.paid,
                        })
                        .collect(),
                    envelopes: c
                        .envelopes
                        .iter()
                        .map(|e| EnvelopeReport {
                            name: e.name.clone(),
                            kind: e.kind,
                            allocated: e.figures.allocated,
                            committed: e.figures.committed,
                            service_done: e.figures.service_done,
                            paid: e.figures.paid,
                            available: e.figures.available(),
                            financing: e.plan().to_vec(),
                            funders: e
                                .funders()
                                .into_iter()
                                .map(|(funder, f)| FunderReport {
                                    funder,
                                    share: Money::ZERO,
                                    allocated: f.allocated,
                                    committed: f.committed,
                                    service_done: f.service_done,
                                    paid: f.paid,
                                })
                                .collect(),
                        })
                        .collect(),
                    budget: (&figures).into(),
                    amendments: c.amendments.clone(),
                    annex_costs: AnnexCostsReport {
                        claims: by_state,
                        claimed: sum(&|r| Some(r.claimed)),
                        approved: sum(&|r| r.approved),
                        paid: sum(&|r| r.paid_on.and(r.approved)),
                        reimbursed: sum(&|r| r.reimbursed_on.and(r.approved)),
                        funds_calls: self
                            .reimbursements
                            .calls()
                            .into_iter()
                            .filter(|call| call.issued.convention_id == c.id)
                            .map(|call| FundsCallReport {
                                number: call.issued.number,
                                total: call.issued.total,
                                issued_on: call.issued.issued_on,
                                paid_on: call.paid_on,
                                late: call.late,
                            })
                            .collect(),
                    },
                    targets: c
                        .targets
                        .iter()
                        .map(|t| {
                            let habilitated = state(HabilitationState::Habilitated) + state(HabilitationState::Revoked);
                            TargetReport {
                                kind: t.kind,
                                quantity: t.quantity,
                                reached: match t.kind {
                                    TargetKind::Trainings => delivered.trainees,
                                    TargetKind::Habilitations => habilitated,
                                    TargetKind::AidantsTrained => {
                                        state(HabilitationState::TrainingCompleted) + habilitated
                                    }
                                    TargetKind::Certifications => delivered.pix_certifications,
                                    TargetKind::CcasActions => delivered.ccas_actions,
                                },
                                habilitated: (t.kind == TargetKind::AidantsTrained).then_some(habilitated),
                            }
                        })
                        .collect(),
                    closed_on: c.closed_on,
                    fiscal_years: fiscal_years(c),
                    disbursements: self.partner(c, funds_calls_paid),
                }
            })
            .collect();
        FinancialReport {
            header: ReportHeader {
                cutoff: self.cutoff,
                log_position: integrity.position,
                log_digest: integrity.digest.clone(),
                intact: integrity.first_break.is_none(),
                first_break: integrity.first_break.clone(),
                events_in_report: self.included,
                events_after_as_of: self.after_as_of,
                events_recorded_later: self.recorded_later,
                skipped: self.skipped,
            },
            conventions,
            corrections: self.corrections,
        }
    }
}

/// Reads the log up to `until` (the position the caller verified) into a report builder.
pub async fn replay(
    store: &dyn store::EventStore,
    cutoff: Cutoff,
    until: u64,
) -> Result<ReportBuilder, store::StoreError> {
    let mut builder = ReportBuilder::new(cutoff);
    let mut after = 0;
    while after < until {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in page.iter().take_while(|e| e.position <= until) {
            builder.apply(e);
        }
        // Between pages, other tasks run, and a request whose time is up stops here.
        tokio::task::yield_now().await;
    }
    Ok(builder)
}

/// The report as CSV. `french`: what a French spreadsheet opens cleanly (UTF-8 with a
/// byte-order mark, `;` between fields, decimal comma); otherwise plain `,` and `.`.
pub fn to_csv(report: &FinancialReport, french: bool) -> String {
    let sep = if french { ";" } else { "," };
    let money = |m: Money| if french { m.amount().to_string().replace('.', ",") } else { m.amount().to_string() };
    let field = |s: &str| {
        if s.contains(sep) || s.contains('"') || s.contains('\n') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    if french {
        out.push('\u{feff}');
    }
    let h = &report.header;
    let line = |cells: &[String]| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(sep) + "\r\n";
    out += &line(&["as of".into(), h.cutoff.as_of.map(|d| d.to_string()).unwrap_or_default()]);
    out += &line(&["as known at".into(), h.cutoff.as_known_at.map(|t| t.to_rfc3339()).unwrap_or_default()]);
    out += &line(&["log digest".into(), format!("{}:{}", h.log_position, h.log_digest)]);
    out += &line(&[
        "log verified".into(),
        if h.intact { "intact".into() } else { format!("ALTERED: {}", h.first_break.clone().unwrap_or_default()) },
    ]);
    out += "\r\n";
    out += &line(&[
        "convention".into(),
        "partner".into(),
        "envelope".into(),
        "kind".into(),
        "allocated".into(),
        "committed".into(),
        "service done".into(),
        "paid".into(),
        "available".into(),
    ]);
    for c in &report.conventions {
        for e in &c.envelopes {
            out += &line(&[
                c.code.clone(),
                c.partner.clone(),
                e.name.clone(),
                serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                money(e.allocated),
                money(e.committed),
                money(e.service_done),
                money(e.paid),
                money(e.available),
            ]);
        }
        out += &line(&[
            c.code.clone(),
            c.partner.clone(),
            "TOTAL".into(),
            String::new(),
            money(c.budget.allocated),
            money(c.budget.committed),
            money(c.budget.service_done),
            money(c.budget.paid),
            money(c.budget.available),
        ]);
    }
    let decimal = |d: Decimal| if french { d.to_string().replace('.', ",") } else { d.to_string() };
    out += "\r\n";
    out += &line(&[
        "convention".into(),
        "envelope".into(),
        "funder".into(),
        "allocated".into(),
        "committed".into(),
        "service done".into(),
        "paid".into(),
    ]);
    for c in &report.conventions {
        for e in &c.envelopes {
            for f in &e.funders {
                out += &line(&[
                    c.code.clone(),
                    e.name.clone(),
                    f.funder.clone(),
                    money(f.allocated),
                    money(f.committed),
                    money(f.service_done),
                    money(f.paid),
                ]);
            }
        }
        for f in &c.funders {
            out += &line(&[
                c.code.clone(),
                "TOTAL".into(),
                f.funder.clone(),
                money(f.allocated),
                money(f.committed),
                money(f.service_done),
                money(f.paid),
            ]);
        }
    }
    out += "\r\n";
    out += &line(&[
        "convention".into(),
        "year".into(),
        "envelope".into(),
        "funder".into(),
        "committed".into(),
        "released".into(),
        "service done".into(),
        "paid".into(),
        "carried over".into(),
    ]);
    for c in &report.conventions {
        for y in &c.fiscal_years {
            out += &line(&[
                c.code.clone(),
                y.year.to_string(),
                y.envelope.clone(),
                y.funder.clone(),
                decimal(y.committed),
                decimal(y.released),
                decimal(y.service_done),
                decimal(y.paid),
                decimal(y.carried_over),
            ]);
        }
    }
    out
}

/// Provenance as CSV (same conventions as [`to_csv`]).
pub fn events_to_csv(events: &[EventRef], french: bool) -> String {
    let sep = if french { ";" } else { "," };
    let mut out = String::new();
    if french {
        out.push('\u{feff}');
    }
    let header =
        ["position", "stream", "version", "type", "business date", "recorded at", "actor", "effect", "reference"];
    out += &(header.join(sep) + "\r\n");
    for e in events {
        let effect = e.effect.clone().unwrap_or_default();
        let effect = if french { effect.replace('.', ",") } else { effect };
        let cells = [
            e.position.to_string(),
            e.stream.clone(),
            e.version.to_string(),
            e.event_type.clone(),
            e.business_date.to_string(),
            e.recorded_at.to_rfc3339(),
            e.actor.clone(),
            effect,
            e.reference.clone().unwrap_or_default(),
        ];
        out += &(cells
            .iter()
            .map(|c| if c.contains(sep) { format!("\"{c}\"") } else { c.clone() })
            .collect::<Vec<_>>()
            .join(sep)
            + "\r\n");
    }
    out
}

#[cfg(test)]
mod tests;

/// The events of one budget year (exercice): those whose business date falls in it, as the
/// report's fiscal years place each move.
pub fn in_fiscal_year(events: Vec<EventRef>, year: i32) -> Vec<EventRef> {
    use chrono::Datelike;
    events.into_iter().filter(|e| e.business_date.year() == year).collect()
}
