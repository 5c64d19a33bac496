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

/// Whether the snapshot of `V` in `dir`, if there is a usable one, brought up to the log's
/// head, gives the figures folded from zero.
async fn compare<V: Projection + PartialEq>(
    log: &dyn EventStore,
    dir: &Path,
    rebuilt: &Checkpointed<V>,
) -> anyhow::Result<ViewReport> {
    let previous = read_snapshot::<V>(dir, log).await;
    let previous_snapshot = previous.as_ref().map(|p| p.position);
    let same_figures = match previous {
        Some(p) => Some(fold_from(log, p).await?.view == rebuilt.view),
        None => None,
    };
    Ok(ViewReport { view: V::NAME, position: rebuilt.position, previous_snapshot, same_figures })
}

/// Every read model folded from the start of the log, in one pass.
struct Folds {
    budget: Checkpointed<BudgetView>,
    structures: Checkpointed<StructuresView>,
    purchases: Checkpointed<PurchasesView>,
    programmes: Checkpointed<ProgrammesView>,
    reimbursements: Checkpointed<ReimbursementsView>,
    dashboard: Checkpointed<DashboardView>,
    position: u64,
    hash: Option<ChainHash>,
}

async fn fold_all(log: &dyn EventStore) -> anyhow::Result<Folds> {
    let mut f = Folds {
        budget: Checkpointed::default(),
        structures: Checkpointed::default(),
        purchases: Checkpointed::default(),
        programmes: Checkpointed::default(),
        reimbursements: Checkpointed::default(),
        dashboard: Checkpointed::default(),
        position: 0,
        hash: None,
    };
    loop {
        let batch = log.read_all(f.position, BATCH).await?;
        if batch.is_empty() {
            return Ok(f);
        }
        for e in &batch {
            f.budget.apply(e)?;
            f.structures.apply(e)?;
            f.purchases.apply(e)?;
            f.programmes.apply(e)?;
            f.reimbursements.apply(e)?;
            f.dashboard.apply(e)?;
            (f.position, f.hash) = (e.position, Some(e.hash));
        }
    }
}

async fn compare_all(log: &dyn EventStore, dir: &Path, f: &Folds) -> anyhow::Result<Vec<ViewReport>> {
    Ok(vec![
        compare(log, dir, &f.budget).await?,
        compare(log, dir, &f.structures).await?,
        compare(log, dir, &f.purchases).await?,
        compare(log, dir, &f.programmes).await?,
        compare(log, dir, &f.reimbursements).await?,
        compare(log, dir, &f.dashboard).await?,
    ])
}

/// Checks the snapshots in `dir` against the log, writing nothing: a snapshot whose
/// figures were edited on disk keeps a valid position and hash, and only a fold of the
/// log tells it apart (`tracker verify`).
pub async fn check_snapshots(log: &dyn EventStore, dir: &Path) -> anyhow::Result<Vec<ViewReport>> {
    let folds = fold_all(log).await?;
    compare_all(log, dir, &folds).await
}

/// Folds the whole log into every read model in one pass, then checks and replaces the
/// snapshots in `dir`.
pub async fn rebuild(log: &dyn EventStore, dir: &Path) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let f = fold_all(log).await?;
    let seconds = started.elapsed().as_secs_f64();
    let views = compare_all(log, dir, &f).await?;
    write_snapshot(dir, &f.budget, f.hash)?;
    write_snapshot(dir, &f.structures, f.hash)?;
    write_snapshot(dir, &f.purchases, f.hash)?;
    write_snapshot(dir, &f.programmes, f.hash)?;
    write_snapshot(dir, &f.reimbursements, f.hash)?;
    write_snapshot(dir, &f.dashboard, f.hash)?;
    Ok(RebuildReport { events: f.position, seconds, views })
}
