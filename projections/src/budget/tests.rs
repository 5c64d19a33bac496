//! The budget read model, folded from events produced by the real command path.

use super::*;
use crate::Checkpointed;
use domain::convention::*;
use domain::{CommandId, CommandMeta, DepartementCode};
use store::handler::stream_name;
use store::{EventStore, MemoryStore, handle};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn id() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn env(name: &str) -> EnvelopeId {
    EnvelopeId::for_name(id(), name)
}

async fn run(store: &MemoryStore, commands: Vec<ConventionCommand>) {
    let stream = stream_name::<Convention>(id());
    for (i, c) in commands.into_iter().enumerate() {
        let meta = CommandMeta::new(CommandId::from(uuid::Uuid::from_u128(i as u128 + 1)), "anct");
        handle::<Convention>(store, &stream, &c, &meta).await.unwrap();
    }
}

fn scenario() -> Vec<ConventionCommand> {
    use ConventionCommand as C;
    use domain::financing::FunderPart;
    use rust_decimal::Decimal;
    // Trainings shared 55/45, annex costs all ANCT's (the convention's plan, not a
    // pro-rata of the whole).
    let shared =
        || Some(vec![FunderPart::rate("ANCT", Decimal::from(55)), FunderPart::rate("Uniformation", Decimal::from(45))]);
    let allocate = |name: &str, kind, euros, financing| {
        C::AllocateEnvelope(AllocateEnvelope {
            convention_id: id(),
            name: name.into(),
            kind,
            amount: Money::euros(euros),
            allocated_on: d("2021-03-20"),
            financing,
        })
    };
    vec![
        C::Sign(SignConvention {
            code: CODE.into(),
            partner: "OPCO Uniformation".into(),
            title: "Formation des médiateurs et aidants numériques".into(),
            signed_on: d("2021-03-15"),
            period_start: d("2021-03-15"),
            period_end: d("2022-12-31"),
            total: Money::euros(4_400_000),
            shares: vec![
                FundingShare { funder: "ANCT".into(), amount: Money::euros(2_600_000) },
                FundingShare { funder: "Uniformation".into(), amount: Money::euros(1_800_000) },
            ],
            targets: vec![Target { kind: TargetKind::Trainings, quantity: 2_000 }],
            departements: vec![],
            annex_caps: None,
        }),
        allocate("Formations certifiantes", EnvelopeKind::CertifyingTrainings, 2_500_000, shared()),
        allocate("Formations non certifiantes", EnvelopeKind::NonCertifyingTrainings, 1_500_000, shared()),
        allocate("Frais annexes", EnvelopeKind::AnnexCosts, 300_000, Some(vec![FunderPart::whole("ANCT")])),
        C::CommitFunds(CommitFunds {
            convention_id: id(),
            envelope_id: env("Formations certifiantes"),
            reference: "ACHAT-0001".into(),
            amount: Money::parse("12345.67").unwrap(),
            committed_on: d("2021-04-02"),
            departement: Some(DepartementCode::parse("971").unwrap()),
        }),
        C::RecordServiceDone(RecordServiceDone {
            convention_id: id(),
            reference: "ACHAT-0001".into(),
            amount: Money::parse("10000.01").unwrap(),
            done_on: d("2021-06-30"),
        }),
        C::RecordPayment(RecordPayment {
            convention_id: id(),
            reference: "ACHAT-0001".into(),
            amount: Money::parse("9000").unwrap(),
            paid_on: d("2021-07-15"),
        }),
        C::ReleaseFunds(ReleaseFunds {
            convention_id: id(),
            reference: "ACHAT-0001".into(),
            amount: Money::parse("345.66").unwrap(),
            released_on: d("2021-07-20"),
        }),
        C::SignAmendment(SignAmendment {
            convention_id: id(),
            signed_on: d("2021-11-02"),
            reason: "Avenant n°1 : redéploiement vers les frais annexes".into(),
            total: None,
            shares: None,
            period_end: Some(d("2023-06-30")),
            envelopes: vec![
                EnvelopeAmount { envelope_id: env("Formations non certifiantes"), amount: Money::euros(1_400_000) },
                EnvelopeAmount { envelope_id: env("Frais annexes"), amount: Money::euros(400_000) },
            ],
            annex_caps: None,
            financing: vec![],
        }),
    ]
}

async fn view_of(store: &MemoryStore) -> Checkpointed<BudgetView> {
    let mut view = Checkpointed::<BudgetView>::default();
    for e in store.read_all(0, 1000).await.unwrap() {
        view.apply(&e).unwrap();
    }
    view
}

#[tokio::test]
async fn folds_the_budget_of_a_convention() {
    let store = MemoryStore::new();
    run(&store, scenario()).await;
    let view = view_of(&store).await;
    let budget = view.view.by_code(CODE).unwrap();
    assert_eq!(budget.figures().committed, Money::parse("12000.01").unwrap());
    assert_eq!(budget.unallocated(), Money::euros(100_000));
    assert_eq!(budget.share_percent(&budget.shares[0]).to_string(), "59.09");
    insta::assert_json_snapshot!("budget_of_anct_uniformation", budget);
    let funders = budget.by_funder();
    assert_eq!(funders.iter().map(|(_, f)| f.committed).sum::<Money>(), budget.figures().committed);
    // The purchase is on a training envelope shared 55/45: 12 000.01 € committed gives
    // ANCT 6 600.01 and Uniformation 5 400.00 (the cent left over to the larger remainder);
    // the annex-cost envelope (400 000 €, all ANCT's) is ANCT's allocation alone.
    assert_eq!(funders[0].1.committed, Money::parse("6600.01").unwrap());
    assert_eq!(funders[1].1.committed, Money::parse("5400.00").unwrap());
    assert_eq!(funders[0].1.allocated, Money::euros(1_375_000 + 770_000 + 400_000));
    insta::assert_json_snapshot!("budget_by_funder", funders);
}

#[tokio::test]
async fn applying_an_event_twice_changes_nothing() {
    let store = MemoryStore::new();
    run(&store, scenario()).await;
    let mut view = view_of(&store).await;
    let before = view.view.clone();
    for e in store.read_all(3, 1000).await.unwrap() {
        view.apply(&e).unwrap();
    }
    assert_eq!(view.view, before);
    assert_eq!(view.position, 9);
}

#[tokio::test]
async fn other_streams_are_ignored_and_unreadable_events_are_reported() {
    let store = MemoryStore::new();
    run(&store, scenario()[..1].to_vec()).await;
    let mut event = store.read_all(0, 1).await.unwrap().remove(0);
    event.position = 2;
    event.stream = "purchase-x".into();
    let mut view = view_of(&store).await;
    view.apply(&event).unwrap();
    assert_eq!(view.view.conventions.len(), 1);
    event.position = 3;
    event.stream = format!("convention-{}", id());
    event.payload = store::Payload::encode(&serde_json::json!({ "type": "Nonsense" })).unwrap();
    let err = view.apply(&event).unwrap_err();
    assert!(matches!(err, ProjectionError::Unreadable { position: 3, .. }));
    assert_eq!(view.position, 2, "a failed event does not move the checkpoint");
}

#[tokio::test]
async fn the_runner_catches_up_then_follows_and_serves_read_your_writes() {
    let store = std::sync::Arc::new(MemoryStore::new());
    run(&store, scenario()[..2].to_vec()).await;
    let runner = crate::Runner::<BudgetView>::spawn(store.clone());
    assert!(runner.wait_for(2, std::time::Duration::from_secs(5)).await);
    assert_eq!(runner.read(|v| v.by_code(CODE).unwrap().envelopes.len()), 1);
    run(&store, scenario()).await; // the first two are retries: same ids, nothing new
    assert!(runner.wait_for(9, std::time::Duration::from_secs(5)).await);
    assert_eq!(runner.read(|v| v.by_code(CODE).unwrap().amendments.len()), 1);
    assert!(!runner.wait_for(10, std::time::Duration::from_millis(20)).await);
}
