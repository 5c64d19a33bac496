//! A persisted runner resumes from its snapshot, ends with the same view as a fold from
//! zero, and ignores a snapshot that does not belong to the log.

use chrono::NaiveDate;
use domain::convention::*;
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use projections::{BudgetView, DashboardView, Runner};
use std::sync::Arc;
use std::time::Duration;
use store::handler::stream_name;
use store::{EventStore, MemoryStore, handle};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn sign(store: &MemoryStore, code: &str) -> ConventionId {
    let id = ConventionId::for_code(code);
    let run = |n: u128, c: ConventionCommand| async move {
        let meta = CommandMeta::new(CommandId(uuid::Uuid::from_u128(n)), "test");
        handle::<Convention>(store, &stream_name::<Convention>(id), &c, &meta).await.unwrap();
    };
    run(
        1,
        ConventionCommand::Sign(SignConvention {
            code: code.into(),
            partner: "OPCO".into(),
            title: "Formation".into(),
            signed_on: d("2021-03-15"),
            period_start: d("2021-03-15"),
            period_end: d("2022-12-31"),
            total: Money::euros(1_000_000),
            shares: vec![FundingShare { funder: "ANCT".into(), amount: Money::euros(1_000_000) }],
            targets: vec![],
            departements: vec![],
            annex_caps: None,
        }),
    )
    .await;
    run(
        2,
        ConventionCommand::AllocateEnvelope(AllocateEnvelope {
            convention_id: id,
            name: "Formations".into(),
            kind: EnvelopeKind::NonCertifyingTrainings,
            amount: Money::euros(1_000_000),
            allocated_on: d("2021-03-15"),
            financing: None,
        }),
    )
    .await;
    id
}

async fn commit(store: &MemoryStore, id: ConventionId, n: u128) {
    let c = ConventionCommand::CommitFunds(CommitFunds {
        convention_id: id,
        envelope_id: EnvelopeId::for_name(id, "Formations"),
        reference: format!("A-{n}"),
        amount: Money::euros(100),
        committed_on: d("2021-06-01"),
        departement: Some(DepartementCode::parse(["29", "13", "2A", "971"][n as usize % 4]).unwrap()),
    });
    let meta = CommandMeta::new(CommandId(uuid::Uuid::from_u128(1000 + n)), "test");
    handle::<Convention>(store, &stream_name::<Convention>(id), &c, &meta).await.unwrap();
}

#[tokio::test]
async fn a_persisted_runner_resumes_from_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let id = sign(&store, "ANCT-UNIFORMATION-2021").await;
    for n in 0..20 {
        commit(&store, id, n).await;
    }
    let head = *store.head().borrow();
    let first = Runner::<DashboardView>::spawn_persisted(store.clone(), dir.path()).await;
    assert_eq!(first.resumed_from(), 0, "no snapshot yet");
    assert!(first.wait_for(head, Duration::from_secs(5)).await);
    drop(first);
    assert!(dir.path().join("dashboard.json").exists(), "the snapshot is written when the runner stops");

    for n in 20..30 {
        commit(&store, id, n).await;
    }
    let new_head = *store.head().borrow();
    let resumed = Runner::<DashboardView>::spawn_persisted(store.clone(), dir.path()).await;
    assert_eq!(resumed.resumed_from(), head, "only the events since the snapshot are folded");
    assert!(resumed.wait_for(new_head, Duration::from_secs(5)).await);
    let from_zero = Runner::<DashboardView>::spawn(store.clone());
    assert!(from_zero.wait_for(new_head, Duration::from_secs(5)).await);
    let (a, b) = (resumed.read(|v| v.clone()), from_zero.read(|v| v.clone()));
    assert_eq!(a, b, "resuming gives the same figures as rebuilding from zero");
}

#[tokio::test]
async fn a_snapshot_of_another_log_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let id = sign(&store, "ANCT-UNIFORMATION-2021").await;
    commit(&store, id, 1).await;
    let runner = Runner::<BudgetView>::spawn_persisted(store.clone(), dir.path()).await;
    assert!(runner.wait_for(3, Duration::from_secs(5)).await);
    drop(runner);

    let other = Arc::new(MemoryStore::new());
    let id = sign(&other, "ANCT-PIX-2021").await;
    commit(&other, id, 1).await;
    commit(&other, id, 2).await;
    let runner = Runner::<BudgetView>::spawn_persisted(other.clone(), dir.path()).await;
    assert_eq!(runner.resumed_from(), 0, "the event at the snapshot's position has another hash");
    assert!(runner.wait_for(4, Duration::from_secs(5)).await);
    assert!(runner.read(|v| v.by_code("ANCT-PIX-2021").is_some() && v.by_code("ANCT-UNIFORMATION-2021").is_none()));

    std::fs::write(dir.path().join("budget.json"), "{ not json").unwrap();
    let runner = Runner::<BudgetView>::spawn_persisted(other.clone(), dir.path()).await;
    assert_eq!(runner.resumed_from(), 0, "a damaged snapshot is ignored, not trusted");
}
