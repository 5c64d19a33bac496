//! The comité de pilotage's dashboards: indicators for a scope (a convention, a région or
//! a département, a period of months), by région and by département (cursor-paginated),
//! with the national total equal to the sum of the territories; and a subscription that
//! pushes a scope's figures when they change.

use crate::AppState;
use crate::aidants::HabilitationStatus;
use crate::auth::{Operation, require};
use crate::claims::ClaimStatus;
use crate::errors::{bad_input, codes};
use crate::programmes::PixPublic;
use crate::purchases::Metier;
use crate::scalars::MoneyScalar;
use crate::types::{Departement, Region, TargetKind};
use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, ErrorExtensions, ID, Object, Result, SimpleObject, Subscription};
use domain::aidants::HabilitationState;
use domain::convention::TargetKind as DomainTarget;
use domain::{DepartementCode, RegionCode};
use futures::Stream;
use projections::dashboard::{Indicators, Scope};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Figures computed for a scope at a log position, kept until the dashboards move on:
/// a national total sums thousands of cells, and a comité de pilotage asks for the same
/// scopes again and again between two events.
#[derive(Default)]
pub struct DashboardMemo {
    totals: Mutex<HashMap<String, (u64, Arc<Indicators>)>>,
    by_departement: Mutex<HashMap<String, (u64, Arc<ByDepartement>)>>,
}

type ByDepartement = BTreeMap<Option<DepartementCode>, Indicators>;

/// Scopes remembered at most (then forgotten all at once).
const MEMO_SCOPES: usize = 1_000;

impl DashboardMemo {
    /// The memoised figures, or computed on the blocking pool: a scope over many months
    /// and territories folds thousands of cells, which must not hold a runtime worker that
    /// `/health` and the commands need.
    async fn get<T: Send + Sync + 'static>(
        map: &Mutex<HashMap<String, (u64, Arc<T>)>>,
        state: &AppState,
        scope: &Scope,
        f: fn(&projections::DashboardView, &Scope) -> T,
    ) -> (u64, Arc<T>) {
        let key = format!("{scope:?}");
        let position = state.dashboard.position();
        if let Some((at, value)) = map.lock().expect("memo poisoned").get(&key)
            && *at == position
        {
            return (*at, value.clone());
        }
        let (view, scope) = (state.dashboard.clone(), scope.clone());
        let (at, value) = tokio::task::spawn_blocking(move || view.read_at(|v, at| (at, Arc::new(f(v, &scope)))))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut memo = map.lock().expect("memo poisoned");
        if memo.len() >= MEMO_SCOPES {
            memo.clear();
        }
        memo.insert(key, (at, value.clone()));
        (at, value)
    }

    /// The scope's total and the position it reflects.
    pub async fn total(&self, state: &AppState, scope: &Scope) -> (u64, Arc<Indicators>) {
        Self::get(&self.totals, state, scope, |v, scope| v.total(scope)).await
    }

    pub async fn by_departement(&self, state: &AppState, scope: &Scope) -> Arc<ByDepartement> {
        Self::get(&self.by_departement, state, scope, |v, scope| v.by_departement(scope)).await.1
    }

    async fn by_region(&self, state: &AppState, scope: &Scope) -> BTreeMap<Option<RegionCode>, Indicators> {
        let mut out: BTreeMap<Option<RegionCode>, Indicators> = BTreeMap::new();
        for (d, figures) in self.by_departement(state, scope).await.iter() {
            out.entry(d.as_ref().map(|d| d.region())).or_default().add(figures);
        }
        out
    }
}

/// Pushes are coalesced over this long, so a burst of events costs one recomputation.
const PUSH_EVERY: Duration = Duration::from_millis(200);

fn month_arg(field: &str, value: Option<String>) -> Result<Option<String>> {
    let Some(v) = value else { return Ok(None) };
    let valid = v.len() == 7
        && v.as_bytes()[4] == b'-'
        && v[..4].bytes().all(|b| b.is_ascii_digit())
        && v[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m));
    if !valid {
        return Err(bad_input(field, format!("`{v}` is not a month: expected YYYY-MM, e.g. 2021-07")));
    }
    Ok(Some(v))
}

/// Parses a scope's arguments, naming the one that is wrong.
pub(crate) fn scope(
    convention_id: Option<ID>,
    region: Option<String>,
    departement: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Scope> {
    let scope = Scope {
        convention: convention_id.as_ref().map(crate::inputs::convention_id).transpose()?,
        region: region.map(|r| RegionCode::parse(&r).map_err(|e| bad_input("region", e))).transpose()?,
        departement: departement
            .map(|d| DepartementCode::parse(&d).map_err(|e| bad_input("departement", e)))
            .transpose()?,
        from: month_arg("from", from)?,
        to: month_arg("to", to)?,
    };
    if let (Some(f), Some(t)) = (&scope.from, &scope.to)
        && f > t
    {
        return Err(bad_input("to", format!("the period ends ({t}) before it starts ({f})")));
    }
    Ok(scope)
}

#[derive(SimpleObject)]
pub struct BudgetFigures {
    /// Committed, net of releases.
    pub committed: MoneyScalar,
    pub released: MoneyScalar,
    pub service_done: MoneyScalar,
    pub paid: MoneyScalar,
}

#[derive(SimpleObject)]
pub struct MetierCount {
    pub metier: Metier,
    pub count: u64,
}

#[derive(SimpleObject)]
pub struct BlockCount {
    /// Competency-framework block, 1 to 9.
    pub block: u8,
    pub count: u64,
}

#[derive(SimpleObject)]
pub struct TrainingFigures {
    /// Trainees present at trainings bought on the plan.
    pub trainees: u64,
    pub certifying: u64,
    /// Certifying share of the trainees, in percent (two decimals), as a string.
    pub certifying_percent: String,
    pub by_metier: Vec<MetierCount>,
    /// Trainees × blocks their training covers.
    pub by_block: Vec<BlockCount>,
}

#[derive(SimpleObject)]
pub struct HabilitationCount {
    pub status: HabilitationStatus,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct HabilitationFigures {
    pub by_status: Vec<HabilitationCount>,
    /// Habilitated (revoked ones included: they were habilitated).
    pub habilitated: i64,
}

#[derive(SimpleObject)]
pub struct PublicCount {
    pub public: PixPublic,
    pub count: u64,
}

#[derive(SimpleObject)]
pub struct PixFigures {
    pub certifications: u64,
    /// Out of 1 024, rounded down; null before any certification.
    pub mean_score: Option<u64>,
    pub by_public: Vec<PublicCount>,
}

#[derive(SimpleObject)]
pub struct CcasFigures {
    pub actions: u64,
    pub agents: u64,
    pub managers: u64,
}

#[derive(SimpleObject)]
pub struct ClaimCount {
    pub status: ClaimStatus,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct ReimbursementFigures {
    pub by_status: Vec<ClaimCount>,
    pub claimed: MoneyScalar,
    /// What the caps left of the amounts claimed.
    pub eligible: MoneyScalar,
    /// Claimed minus eligible: what the barème took off.
    pub reductions_by_cap: MoneyScalar,
    pub approved: MoneyScalar,
    /// Paid by the OPCO to structures.
    pub paid: MoneyScalar,
    /// Reimbursed to the OPCO by ANCT (funds calls paid).
    pub reimbursed: MoneyScalar,
    /// Days from submission to the OPCO's payment: mean (one decimal) and 90th percentile.
    pub mean_days_to_paid: Option<f64>,
    pub p90_days_to_paid: Option<u32>,
    /// Days from the OPCO's payment to ANCT's reimbursement.
    pub mean_days_to_reimbursed: Option<f64>,
    pub p90_days_to_reimbursed: Option<u32>,
    /// Submission → ANCT's reimbursement (end to end), mean in days.
    pub mean_days_end_to_end: Option<f64>,
    /// Submission → ANCT's reimbursement: 9 claims in 10 take at most this many days.
    pub p90_days_end_to_end: Option<u32>,
    /// Claims not assessed within 30 days.
    pub overdue_claims: i64,
    /// Funds calls not paid within 60 days (no territory: national and convention scopes only).
    pub late_funds_calls: i64,
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.00".into();
    }
    let p = rust_decimal::Decimal::from(part) * rust_decimal::Decimal::from(100) / rust_decimal::Decimal::from(whole);
    domain::money::round_cents(p).to_string()
}

fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The indicators of a scope.
pub struct IndicatorsView(pub Indicators);

#[Object(name = "Indicators")]
impl IndicatorsView {
    async fn budget(&self) -> BudgetFigures {
        BudgetFigures {
            committed: self.0.net_committed().into(),
            released: self.0.released.into(),
            service_done: self.0.service_done.into(),
            paid: self.0.paid.into(),
        }
    }
    async fn training(&self) -> TrainingFigures {
        TrainingFigures {
            trainees: self.0.trainees,
            certifying: self.0.certifying_trainees,
            certifying_percent: percent(self.0.certifying_trainees, self.0.trainees),
            by_metier: self
                .0
                .trainees_by_metier
                .iter()
                .map(|(m, c)| MetierCount { metier: (*m).into(), count: *c })
                .collect(),
            by_block: self.0.trainees_by_block.iter().map(|(b, c)| BlockCount { block: *b, count: *c }).collect(),
        }
    }
    async fn habilitations(&self) -> HabilitationFigures {
        let count = |s| self.0.habilitations.get(&s).copied().unwrap_or(0);
        HabilitationFigures {
            by_status: self
                .0
                .habilitations
                .iter()
                .filter(|(_, c)| **c != 0)
                .map(|(s, c)| HabilitationCount { status: (*s).into(), count: *c })
                .collect(),
            habilitated: count(HabilitationState::Habilitated) + count(HabilitationState::Revoked),
        }
    }
    async fn pix(&self) -> PixFigures {
        PixFigures {
            certifications: self.0.pix_certifications,
            mean_score: self.0.mean_pix_score(),
            by_public: self
                .0
                .pix_by_public
                .iter()
                .map(|(p, c)| PublicCount { public: (*p).into(), count: *c })
                .collect(),
        }
    }
    async fn ccas(&self) -> CcasFigures {
        CcasFigures { actions: self.0.ccas_actions, agents: self.0.ccas_agents, managers: self.0.ccas_managers }
    }
    async fn reimbursements(&self) -> ReimbursementFigures {
        let paid = Indicators::delays(&self.0.days_to_paid);
        let reimbursed = Indicators::delays(&self.0.days_to_reimbursed);
        let end_to_end = Indicators::delays(&self.0.days_end_to_end);
        ReimbursementFigures {
            by_status: self
                .0
                .claims
                .iter()
                .filter(|(_, c)| **c != 0)
                .map(|(s, c)| ClaimCount { status: (*s).into(), count: *c })
                .collect(),
            claimed: self.0.claimed.into(),
            eligible: self.0.eligible.into(),
            reductions_by_cap: self.0.claimed.saturating_sub(self.0.eligible).into(),
            approved: self.0.approved.into(),
            paid: self.0.claims_paid.into(),
            reimbursed: self.0.reimbursed.into(),
            mean_days_to_paid: paid.map(|(m, _)| one_decimal(m)),
            p90_days_to_paid: paid.map(|(_, p)| p),
            mean_days_to_reimbursed: reimbursed.map(|(m, _)| one_decimal(m)),
            p90_days_to_reimbursed: reimbursed.map(|(_, p)| p),
            mean_days_end_to_end: end_to_end.map(|(m, _)| one_decimal(m)),
            p90_days_end_to_end: end_to_end.map(|(_, p)| p),
            overdue_claims: self.0.overdue_claims,
            late_funds_calls: self.0.late_funds_calls,
        }
    }
}

#[derive(SimpleObject)]
pub struct TargetProgress {
    pub kind: TargetKind,
    /// The sum of the targets of the conventions in scope.
    pub target: u64,
    pub reached: u64,
    /// Two decimals, as a string.
    pub percent: String,
}

/// One département's figures.
#[derive(SimpleObject)]
pub struct DepartementFigures {
    pub departement: Departement,
    pub indicators: IndicatorsView,
}

/// One région's figures.
#[derive(SimpleObject)]
pub struct RegionFigures {
    pub region: Region,
    pub indicators: IndicatorsView,
}

/// The dashboards of one scope.
pub struct DashboardView {
    scope: Scope,
    position: u64,
    total: Indicators,
}

#[Object(name = "Dashboard")]
impl DashboardView {
    /// The log position these figures reflect.
    async fn position(&self) -> u64 {
        self.position
    }
    /// When the last event these figures include was recorded (RFC 3339, UTC): "données
    /// à jour au …" for people, where a log position means nothing. Null on an empty log.
    async fn recorded_at(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.position == 0 {
            return Ok(None);
        }
        let state = ctx.data_unchecked::<AppState>();
        let event = state.store.read_at(self.position).await.map_err(|e| crate::errors::internal(&e))?;
        Ok(event.map(|e| e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }
    /// The scope's figures: with no territory filter, the national total, which is the
    /// sum of every département plus `unassigned`.
    async fn total(&self) -> IndicatorsView {
        IndicatorsView(self.total.clone())
    }
    /// Progress against the targets of the conventions in scope (the plan's 2 000
    /// trainings, 20 000 aidants trained, …); empty for a territorial scope, since targets
    /// are national.
    async fn targets(&self, ctx: &Context<'_>) -> Vec<TargetProgress> {
        if self.scope.region.is_some() || self.scope.departement.is_some() {
            return vec![];
        }
        let state = ctx.data_unchecked::<AppState>();
        let mut targets: std::collections::BTreeMap<DomainTarget, u64> = Default::default();
        state.budget.read(|v| {
            for c in v.conventions.values().filter(|c| self.scope.convention.is_none_or(|id| id == c.id)) {
                for t in &c.targets {
                    *targets.entry(t.kind).or_default() += u64::from(t.quantity);
                }
            }
        });
        let habilitated = |s| self.total.habilitations.get(&s).copied().unwrap_or(0).max(0) as u64;
        targets
            .into_iter()
            .map(|(kind, target)| {
                let reached = match kind {
                    DomainTarget::Trainings => self.total.trainees,
                    DomainTarget::Habilitations => {
                        habilitated(HabilitationState::Habilitated) + habilitated(HabilitationState::Revoked)
                    }
                    DomainTarget::AidantsTrained => {
                        habilitated(HabilitationState::TrainingCompleted)
                            + habilitated(HabilitationState::Habilitated)
                            + habilitated(HabilitationState::Revoked)
                    }
                    DomainTarget::Certifications => self.total.pix_certifications,
                    DomainTarget::CcasActions => self.total.ccas_actions,
                };
                TargetProgress { kind: kind.into(), target, reached, percent: percent(reached, target) }
            })
            .collect()
    }
    /// Figures without a territory (national commitments, late funds calls).
    async fn unassigned(&self, ctx: &Context<'_>) -> IndicatorsView {
        let state = ctx.data_unchecked::<AppState>();
        IndicatorsView(
            state.dashboards.by_departement(state, &self.scope).await.get(&None).cloned().unwrap_or_default(),
        )
    }
    /// Every région of the scope (INSEE order), with zeros where nothing happened.
    async fn regions(&self, ctx: &Context<'_>) -> Vec<RegionFigures> {
        let state = ctx.data_unchecked::<AppState>();
        let mut by = state.dashboards.by_region(state, &self.scope).await;
        domain::territory::regions()
            .iter()
            .filter_map(|r| RegionCode::parse(&r.code).ok())
            .filter(|r| self.scope.region.as_ref().is_none_or(|s| s == r))
            .filter(|r| self.scope.departement.as_ref().is_none_or(|d| d.region() == *r))
            .map(|r| RegionFigures {
                region: r.clone().into(),
                indicators: IndicatorsView(by.remove(&Some(r)).unwrap_or_default()),
            })
            .collect()
    }
    /// Every département of the scope (INSEE order, overseas included), with zeros where
    /// nothing happened; cursor-paginated (`first`/`after`, the cursor is the INSEE code).
    async fn departements(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, DepartementFigures>> {
        let state = ctx.data_unchecked::<AppState>();
        let scope = self.scope.clone();
        let all: Vec<DepartementCode> = domain::territory::departements()
            .iter()
            .filter_map(|d| DepartementCode::parse(&d.code).ok())
            .filter(|d| scope.region.as_ref().is_none_or(|r| d.region() == *r))
            .filter(|d| scope.departement.as_ref().is_none_or(|s| s == d))
            .collect();
        query(after, None, first, None, |after: Option<String>, _before: Option<String>, first, _last| async move {
            let start = match &after {
                Some(code) => all.iter().position(|d| d.as_str() == code).map(|i| i + 1).ok_or_else(|| {
                    bad_input("after", format!("`{code}` is not a cursor of this list (an INSEE département code)"))
                })?,
                None => 0,
            };
            let take = first.unwrap_or(all.len()).min(all.len());
            let page: Vec<DepartementCode> = all.iter().skip(start).take(take).cloned().collect();
            let by = state.dashboards.by_departement(state, &scope).await;
            let has_next = start + page.len() < all.len();
            let mut connection = Connection::new(start > 0, has_next);
            connection.edges.extend(page.into_iter().map(|d| {
                let indicators = IndicatorsView(by.get(&Some(d.clone())).cloned().unwrap_or_default());
                Edge::new(d.as_str().to_string(), DepartementFigures { departement: (&d).into(), indicators })
            }));
            Ok::<_, async_graphql::Error>(connection)
        })
        .await
    }
}

/// Waits (briefly) until the dashboards show `min_position`, for read-your-writes.
async fn at_least(state: &AppState, min_position: Option<u64>) -> Result<()> {
    let Some(wanted) = min_position else { return Ok(()) };
    if state.dashboard.wait_for(wanted, state.read_your_writes_timeout).await {
        return Ok(());
    }
    let reached = state.dashboard.position();
    Err(async_graphql::Error::new(format!(
        "the dashboards show position {reached}; position {wanted} was not reached in time: retry"
    ))
    .extend_with(|_, e| {
        e.set("code", codes::TIMEOUT);
        e.set("position", reached);
    }))
}

#[derive(Default)]
pub struct DashboardQuery;

#[Object]
impl DashboardQuery {
    /// Indicators for a scope: a convention, a région or a département (INSEE codes), a
    /// period of months (`from`/`to`, `YYYY-MM`, inclusive). `minPosition`: answer only
    /// once the figures include that log position (what a mutation answered), waiting up
    /// to 2 s.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "crate::DASHBOARD_COST + child_complexity")]
    async fn dashboard(
        &self,
        ctx: &Context<'_>,
        convention_id: Option<ID>,
        region: Option<String>,
        departement: Option<String>,
        from: Option<String>,
        to: Option<String>,
        min_position: Option<u64>,
    ) -> Result<DashboardView> {
        require(ctx, Operation::Dashboard)?;
        let scope = scope(convention_id, region, departement, from, to)?;
        let state = ctx.data_unchecked::<AppState>();
        at_least(state, min_position).await?;
        let (position, total) = state.dashboards.total(state, &scope).await;
        Ok(DashboardView { scope, position, total: (*total).clone() })
    }
}

/// A scope's figures, pushed when they change.
#[derive(SimpleObject)]
pub struct DashboardUpdate {
    pub position: u64,
    pub total: IndicatorsView,
    /// Committed net of releases, for a glance.
    pub committed: MoneyScalar,
}

#[derive(Default)]
pub struct DashboardSubscription;

#[Subscription]
impl DashboardSubscription {
    /// Pushes the scope's figures at once, then whenever new events change them.
    async fn dashboard_updates(
        &self,
        ctx: &Context<'_>,
        convention_id: Option<ID>,
        region: Option<String>,
        departement: Option<String>,
    ) -> Result<impl Stream<Item = DashboardUpdate>> {
        require(ctx, Operation::DashboardUpdates)?;
        let scope = scope(convention_id, region, departement, None, None)?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let rx = state.dashboard.subscribe();
        Ok(futures::stream::unfold((rx, None::<Indicators>), move |(mut rx, last)| {
            let (state, scope) = (state.clone(), scope.clone());
            async move {
                loop {
                    if last.is_some() {
                        rx.changed().await.ok()?;
                        tokio::time::sleep(PUSH_EVERY).await;
                    }
                    rx.borrow_and_update();
                    let (position, total) = state.dashboards.total(&state, &scope).await;
                    let total = (*total).clone();
                    if last.as_ref() != Some(&total) {
                        let update = DashboardUpdate {
                            position,
                            committed: total.net_committed().into(),
                            total: IndicatorsView(total.clone()),
                        };
                        return Some((update, (rx, Some(total))));
                    }
                }
            }
        }))
    }
}
