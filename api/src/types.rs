//! Output types: thin views over the read models.

use crate::scalars::{DateScalar, MoneyScalar};
use async_graphql::{Enum, ID, Object, SimpleObject};
use domain::convention as dc;
use domain::{DepartementCode, Money};
use projections::budget::{AmendmentRecord, ConventionBudget, EnvelopeBudget, Figures};
use rust_decimal::Decimal;

/// A percentage with two decimals, as a string (`"59.09"`): exact, like money.
fn percent(d: Decimal) -> String {
    d.to_string()
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "dc::EnvelopeKind")]
pub enum EnvelopeKind {
    CertifyingTrainings,
    NonCertifyingTrainings,
    AnnexCosts,
    Certifications,
    AidantsConnectTraining,
    CcasActions,
    Other,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "dc::TargetKind")]
pub enum TargetKind {
    Trainings,
    Habilitations,
    Certifications,
    CcasActions,
    /// Aidants who completed the mandatory Aidants Connect training (the plan's 20 000).
    AidantsTrained,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ConventionStatus {
    Open,
    Closed,
}

/// Money figures of an envelope or a convention.
pub struct FiguresView(pub Figures);

#[Object(name = "Figures")]
impl FiguresView {
    async fn allocated(&self) -> MoneyScalar {
        self.0.allocated.into()
    }
    /// Committed (engagements), net of releases.
    async fn committed(&self) -> MoneyScalar {
        self.0.committed.into()
    }
    /// Service fait: delivered and due.
    async fn service_done(&self) -> MoneyScalar {
        self.0.service_done.into()
    }
    async fn paid(&self) -> MoneyScalar {
        self.0.paid.into()
    }
    /// Allocated minus committed.
    async fn available(&self) -> MoneyScalar {
        self.0.available().into()
    }
    /// Committed as a percentage of allocated, two decimals, as a string.
    async fn consumed_percent(&self) -> String {
        percent(self.0.consumed_percent())
    }
}

pub struct EnvelopeView(pub EnvelopeBudget);

#[Object(name = "Envelope")]
impl EnvelopeView {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> EnvelopeKind {
        self.0.kind.into()
    }
    async fn allocated_on(&self) -> DateScalar {
        self.0.allocated_on.into()
    }
    async fn figures(&self) -> FiguresView {
        FiguresView(self.0.figures.clone())
    }
    /// Its financing plan in force: who pays what part of the money committed from now
    /// on (earlier commitments keep the plan they were made under).
    async fn financing(&self) -> Vec<FunderPart> {
        self.0.plan().iter().map(FunderPart::from).collect()
    }
    /// Each funder's part of every figure, by the plans its commitments were made under
    /// (to the cent, largest remainder: the parts add up to `figures` exactly).
    async fn funders(&self) -> Vec<FunderBudget> {
        self.0
            .funders()
            .into_iter()
            .map(|(funder, figures)| FunderBudget { funder, figures: FiguresView(figures) })
            .collect()
    }
}

/// One funder's part of an envelope: a rate (percent) or a fixed amount.
#[derive(SimpleObject)]
pub struct FunderPart {
    pub funder: String,
    /// Percent of every euro, as a string (`"55.00"`); null for a fixed amount.
    pub rate: Option<String>,
    /// A fixed amount of the envelope; null for a rate.
    pub amount: Option<MoneyScalar>,
}

impl From<&domain::financing::FunderPart> for FunderPart {
    fn from(p: &domain::financing::FunderPart) -> Self {
        use domain::financing::Share;
        let (rate, amount) = match p.share {
            Share::Rate(r) => (Some(domain::money::round_cents(r).to_string()), None),
            Share::Amount(a) => (None, Some(a.into())),
        };
        FunderPart { funder: p.funder.clone(), rate, amount }
    }
}

/// A financing plan an amendment set for an envelope.
#[derive(SimpleObject)]
pub struct EnvelopeFinancing {
    pub envelope: String,
    pub parts: Vec<FunderPart>,
}

#[derive(SimpleObject)]
pub struct FundingShare {
    pub funder: String,
    pub amount: MoneyScalar,
    /// Share of the convention's total, in percent, as a string.
    pub percent: String,
}

#[derive(SimpleObject)]
pub struct Target {
    pub kind: TargetKind,
    pub quantity: u32,
    /// Delivered so far: trainees present at the convention's purchases, aidants
    /// habilitated through its sessions (revoked ones included: they were habilitated),
    /// certifications recorded in its campaigns, CCAS actions held.
    pub reached: u32,
    /// `reached` as a percentage of `quantity`, two decimals, as a string.
    pub reached_percent: String,
    /// For `AIDANTS_TRAINED`: how many of the aidants trained were habilitated (revoked
    /// ones included), a second figure beside the target; null otherwise.
    pub habilitated: Option<u32>,
}

/// What a convention has delivered towards a target, from the programmes' read models.
fn reached_of(state: &crate::AppState, convention: domain::ConventionId, kind: dc::TargetKind) -> u32 {
    use domain::aidants::HabilitationState as H;
    use domain::purchase::PurchaseState as P;
    match kind {
        dc::TargetKind::Trainings => state.purchases.read(|v| {
            v.purchases
                .values()
                .filter(|p| p.request.convention_id == convention && matches!(p.state, P::Attended | P::Paid))
                .map(|p| p.present.unwrap_or(0))
                .sum()
        }),
        dc::TargetKind::Habilitations => habilitations(state, convention, &[H::Habilitated, H::Revoked]),
        dc::TargetKind::AidantsTrained => {
            habilitations(state, convention, &[H::TrainingCompleted, H::Habilitated, H::Revoked])
        }
        dc::TargetKind::Certifications => state.programmes.read(|v| {
            v.campaigns.values().filter(|c| c.convention_id == convention).map(|c| c.certifications.len() as u32).sum()
        }),
        dc::TargetKind::CcasActions => {
            state.programmes.read(|v| v.ccas_actions.values().filter(|a| a.convention_id == convention).count() as u32)
        }
    }
}

/// Habilitations trained through the convention's sessions that are now in one of `states`.
pub(crate) fn habilitations(
    state: &crate::AppState,
    convention: domain::ConventionId,
    states: &[domain::aidants::HabilitationState],
) -> u32 {
    state.programmes.read(|v| {
        v.habilitations
            .values()
            .filter(|h| states.contains(&h.state))
            .filter(|h| h.session.and_then(|s| v.sessions.get(&s)).is_some_and(|s| s.convention_id == convention))
            .count() as u32
    })
}

#[derive(SimpleObject)]
pub struct Region {
    pub code: String,
    pub name: String,
    /// Population municipale (INSEE populations légales, summed from the communes of
    /// `@etalab/decoupage-administratif` 6.0.0, Licence Ouverte): to compare per inhabitant.
    pub population: u32,
}

impl From<domain::RegionCode> for Region {
    fn from(r: domain::RegionCode) -> Self {
        Region { code: r.to_string(), name: r.name().to_string(), population: r.population() as u32 }
    }
}

#[derive(SimpleObject)]
pub struct Departement {
    pub code: String,
    pub name: String,
    /// Population municipale (INSEE populations légales, as for the région).
    pub population: u32,
    pub region: Region,
}

impl From<&DepartementCode> for Departement {
    fn from(d: &DepartementCode) -> Self {
        Departement {
            code: d.to_string(),
            name: d.name().to_string(),
            population: d.population() as u32,
            region: d.region().into(),
        }
    }
}

#[derive(SimpleObject)]
pub struct EnvelopeChange {
    pub envelope_id: ID,
    pub name: String,
    pub from: MoneyScalar,
    pub to: MoneyScalar,
}

pub struct AmendmentView(pub AmendmentRecord);

#[Object(name = "Amendment")]
impl AmendmentView {
    /// Avenant n°.
    async fn number(&self) -> u32 {
        self.0.number
    }
    async fn signed_on(&self) -> DateScalar {
        self.0.signed_on.into()
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn total_before(&self) -> Option<MoneyScalar> {
        self.0.total.map(|(from, _)| from.into())
    }
    async fn total_after(&self) -> Option<MoneyScalar> {
        self.0.total.map(|(_, to)| to.into())
    }
    async fn period_end_before(&self) -> Option<DateScalar> {
        self.0.period_end.map(|(from, _)| from.into())
    }
    async fn period_end_after(&self) -> Option<DateScalar> {
        self.0.period_end.map(|(_, to)| to.into())
    }
    /// The new funding shares, when the amendment changed them.
    async fn shares(&self) -> Option<Vec<FundingShare>> {
        self.0.shares.as_ref().map(|shares| {
            let total: Money = shares.iter().map(|s| s.amount).sum();
            shares.iter().map(|s| share(s, total)).collect()
        })
    }
    /// New annex-cost terms, when the amendment set them.
    async fn annex_caps(&self) -> Option<AnnexCapsPeriod> {
        self.0.annex_caps.as_ref().map(AnnexCapsPeriod::from)
    }
    /// New financing plans, by envelope.
    async fn financing(&self) -> Vec<EnvelopeFinancing> {
        self.0
            .financing
            .iter()
            .map(|(envelope, parts)| EnvelopeFinancing {
                envelope: envelope.clone(),
                parts: parts.iter().map(FunderPart::from).collect(),
            })
            .collect()
    }
    async fn envelopes(&self) -> Vec<EnvelopeChange> {
        self.0
            .envelopes
            .iter()
            .map(|c| EnvelopeChange {
                envelope_id: ID(c.envelope_id.to_string()),
                name: c.name.clone(),
                from: c.from.into(),
                to: c.to.into(),
            })
            .collect()
    }
}

/// A convention's annex-cost terms in force from a date: caps, delays, small-structure
/// threshold. Our defaults (not the plan's) unless the convention set its own.
#[derive(SimpleObject)]
pub struct AnnexCapsPeriod {
    pub effective_on: DateScalar,
    pub per_night: MoneyScalar,
    pub per_night_large_city: MoneyScalar,
    pub per_night_paris: MoneyScalar,
    pub per_meal: MoneyScalar,
    pub per_km: MoneyScalar,
    /// Days after a session's end within which a claim may be submitted.
    pub claim_deadline_days: u32,
    /// Days the OPCO has to assess a claim before it is overdue.
    pub assessment_days: u32,
    /// Days ANCT has to pay a funds call before it is late.
    pub funds_call_payment_days: u32,
    /// A structure with fewer employees is "small".
    pub small_structure_employees: u32,
}

impl From<&domain::annex::CapsChange> for AnnexCapsPeriod {
    fn from(c: &domain::annex::CapsChange) -> Self {
        AnnexCapsPeriod {
            effective_on: c.effective_on.into(),
            per_night: c.caps.per_night.into(),
            per_night_large_city: c.caps.per_night_large_city.into(),
            per_night_paris: c.caps.per_night_paris.into(),
            per_meal: c.caps.per_meal.into(),
            per_km: c.caps.per_km.into(),
            claim_deadline_days: c.caps.claim_deadline_days,
            assessment_days: c.caps.assessment_days,
            funds_call_payment_days: c.caps.funds_call_payment_days,
            small_structure_employees: c.caps.small_structure_employees,
        }
    }
}

fn share(s: &dc::FundingShare, total: Money) -> FundingShare {
    FundingShare {
        funder: s.funder.clone(),
        amount: s.amount.into(),
        percent: percent(Money::percent_of(s.amount, total)),
    }
}

/// A funder's part of a convention's or an envelope's budget.
#[derive(SimpleObject)]
pub struct FunderBudget {
    pub funder: String,
    pub figures: FiguresView,
}

/// A convention with its budget, as the read model has it.
pub struct ConventionView(pub ConventionBudget);

#[Object(name = "Convention")]
impl ConventionView {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Unique code, e.g. `ANCT-UNIFORMATION-2021`.
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn partner(&self) -> &str {
        &self.0.partner
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn signed_on(&self) -> DateScalar {
        self.0.signed_on.into()
    }
    async fn period_start(&self) -> DateScalar {
        self.0.period_start.into()
    }
    /// The end of the period, as amended.
    async fn period_end(&self) -> DateScalar {
        self.0.period_end.into()
    }
    async fn status(&self) -> ConventionStatus {
        if self.0.closed_on.is_some() { ConventionStatus::Closed } else { ConventionStatus::Open }
    }
    async fn closed_on(&self) -> Option<DateScalar> {
        self.0.closed_on.map(Into::into)
    }
    /// The total, as amended.
    async fn total(&self) -> MoneyScalar {
        self.0.total.into()
    }
    /// What the total leaves to allocate to envelopes.
    async fn unallocated(&self) -> MoneyScalar {
        self.0.unallocated().into()
    }
    async fn shares(&self) -> Vec<FundingShare> {
        self.0.shares.iter().map(|s| share(s, self.0.total)).collect()
    }
    /// What the convention promises, and what it has delivered so far.
    async fn targets(&self, ctx: &async_graphql::Context<'_>) -> Vec<Target> {
        let state = ctx.data_unchecked::<crate::AppState>();
        self.0
            .targets
            .iter()
            .map(|t| {
                let reached = reached_of(state, self.0.id, t.kind);
                let share = Decimal::from(reached) * Decimal::ONE_HUNDRED / Decimal::from(t.quantity.max(1));
                Target {
                    kind: t.kind.into(),
                    quantity: t.quantity,
                    reached,
                    reached_percent: percent(domain::money::round_cents(share)),
                    habilitated: (t.kind == dc::TargetKind::AidantsTrained)
                        .then(|| reached_of(state, self.0.id, dc::TargetKind::Habilitations)),
                }
            })
            .collect()
    }
    /// The territory the convention covers; empty for a national convention.
    async fn departements(&self) -> Vec<Departement> {
        self.0.departements.iter().filter_map(|d| DepartementCode::parse(d).ok()).map(|d| (&d).into()).collect()
    }
    /// The sum of the envelopes.
    async fn budget(&self) -> FiguresView {
        FiguresView(self.0.figures())
    }
    /// Each funder's part of the budget: the sum of its parts of the envelopes, each by
    /// the envelope's financing plans (never a pro-rata of the whole convention), to the
    /// cent — the parts add up to `budget` exactly.
    async fn funders(&self) -> Vec<FunderBudget> {
        self.0
            .by_funder()
            .into_iter()
            .map(|(funder, figures)| FunderBudget { funder, figures: FiguresView(figures) })
            .collect()
    }
    async fn envelopes(&self) -> Vec<EnvelopeView> {
        self.0.envelopes.iter().cloned().map(EnvelopeView).collect()
    }
    /// Avenants, in signing order.
    async fn amendments(&self) -> Vec<AmendmentView> {
        self.0.amendments.iter().cloned().map(AmendmentView).collect()
    }
    /// The annex-cost barème, by the date each took effect (the first applies from the
    /// period's start); amendments add the later ones.
    async fn annex_caps(&self) -> Vec<AnnexCapsPeriod> {
        self.0.annex_caps.iter().map(AnnexCapsPeriod::from).collect()
    }
    /// The stream version this view reflects.
    async fn version(&self) -> u64 {
        self.0.version
    }
    /// The log position this view reflects.
    async fn position(&self) -> u64 {
        self.0.position
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::structure::StructureKind")]
pub enum StructureKind {
    Association,
    CcasCias,
    CommuneOrEpci,
    Departement,
    PrivateCompany,
    Other,
}

/// Head-count bands: MICRO 0–9, SMALL 10–49, MEDIUM 50–249, LARGE 250+.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::structure::HeadCount")]
pub enum HeadCount {
    Micro,
    Small,
    Medium,
    Large,
}

/// An employer structure.
pub struct StructureView(pub domain::structure::StructureRegistered);

#[Object(name = "Structure")]
impl StructureView {
    async fn id(&self) -> ID {
        ID(self.0.structure_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn siret(&self) -> &str {
        self.0.siret.as_str()
    }
    async fn kind(&self) -> StructureKind {
        self.0.kind.into()
    }
    /// The département of the structure's commune, with its région.
    async fn departement(&self) -> Departement {
        (&self.0.departement).into()
    }
    async fn head_count(&self) -> HeadCount {
        self.0.head_count.into()
    }
    /// Under our default threshold of 50 employees (ours, not the plan's: each
    /// convention sets its own in `annexCaps.smallStructureEmployees`).
    async fn small(&self) -> bool {
        self.0.head_count.is_small()
    }
    async fn registered_on(&self) -> DateScalar {
        self.0.registered_on.into()
    }
}
