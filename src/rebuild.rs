//! `tracker rebuild`: recomputes every read model from the start of the log, checks that
//! resuming from the snapshots on disk gives the same figures, and writes fresh snapshots.

use projections::runner::{read_snapshot, write_snapshot};
use projections::{
    BudgetView, Checkpointed, DashboardView, ProgrammesView, Projection, PurchasesView, ReimbursementsView,
    StructuresView,
};
use std::path::Path;
use std::time::Instant;
use store::{ChainHash, EventStore};

/// Events read per batch.
const BATCH: usize = 10_000;

/// What became of one read model.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewReport {
    pub view: &'static str,
    pub position: u64,
    /// The snapshot found on disk (its position), if a usable one was there.
    pub previous_snapshot: Option<u64>,
    /// Whether that snapshot, brought up to date, equals the rebuilt view.
    pub same_figures: Option<bool>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub events: u64,
    pub seconds: f64,
    pub views: Vec<ViewReport>,
}

impl RebuildReport {
    /// False when a snapshot on disk disagreed with the log.
    pub fn consistent(&self) -> bool {
        self.views.iter().all(|v| v.same_figures != Some(false))
    }
}

async fn fold_from<V: Projection>(log: &dyn EventStore, mut state: Checkpointed<V>) -> anyhow::Result<Checkpointed<V>> {
    loop {
        let batch = log.read_all(state.position, BATCH).await?;
        if batch.is_empty() {
            return Ok(state);
        }
        for e in &batch {
            state.apply(e)?;
        }
    }
}

async fn check<V: Projection + PartialEq>(
    log: &dyn EventStore,
    dir: &Path,
    rebuilt: &Checkpointed<V>,
    hash: Option<ChainHash>,
) -> anyhow::Result<ViewReport> {
    let previous = read_snapshot::<V>(dir, log).await;
    let previous_snapshot = previous.as_ref().map(|p| p.position);
    let same_figures = match previous {
        Some(p) => Some(fold_from(log, p).await?.view == rebuilt.view),
        None => None,
    };
    write_snapshot(dir, rebuilt, hash)?;
    Ok(ViewReport { view: V::NAME, position: rebuilt.position, previous_snapshot, same_figures })
}

/// Folds the whole log into every read model in one pass, then checks and replaces the
/// snapshots in `dir`.
pub async fn rebuild(log: &dyn EventStore, dir: &Path) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let mut budget = Checkpointed::<BudgetView>::default();
    let mut structures = Checkpointed::<StructuresView>::default();
    let mut purchases = Checkpointed::<PurchasesView>::default();
    let mut programmes = Checkpointed::<ProgrammesView>::default();
    let mut reimbursements = Checkpointed::<ReimbursementsView>::default();
    let mut dashboard = Checkpointed::<DashboardView>::default();
    let (mut position, mut hash) = (0, None);
    loop {
        let batch = log.read_all(position, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            budget.apply(e)?;
            structures.apply(e)?;
            purchases.apply(e)?;
            programmes.apply(e)?;
            reimbursements.apply(e)?;
            dashboard.apply(e)?;
            (position, hash) = (e.position, Some(e.hash));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let views = vec![
        check(log, dir, &budget, hash).await?,
        check(log, dir, &structures, hash).await?,
        check(log, dir, &purchases, hash).await?,
        check(log, dir, &programmes, hash).await?,
        check(log, dir, &reimbursements, hash).await?,
        check(log, dir, &dashboard, hash).await?,
    ];
    Ok(RebuildReport { events: position, seconds, views })
}
