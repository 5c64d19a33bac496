//! The dashboard read model, folded from events produced by the real command path.

use super::*;
use domain::annex::{AnnexCaps, ExpenseKind};
use domain::claim::{ClaimCommand, ClaimId, ExpenseLine, SubmitAnnexClaim, TrainingFacts};
use domain::convention::*;
use domain::framework::CompetencyBlock;
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::{Siret, StructureId};
use domain::{CommandId, CommandMeta, EnvelopeId};
use store::handler::stream_name;
use store::{EventStore, MemoryStore, handle};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn dep(code: &str) -> DepartementCode {
    DepartementCode::parse(code).unwrap()
}

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn convention() -> ConventionId {
    ConventionId::for_code(CODE)
}

struct Log {
    store: MemoryStore,
    n: u128,
}

impl Log {
    fn meta(&mut self) -> CommandMeta {
        self.n += 1;
        CommandMeta::new(CommandId(uuid::Uuid::from_u128(self.n)), "test")
    }

    async fn convention(&mut self, c: ConventionCommand) {
        let meta = self.meta();
        handle::<Convention>(&self.store, &stream_name::<Convention>(convention()), &c, &meta).await.unwrap();
    }

    async fn purchase(&mut self, c: PurchaseCommand) {
        let meta = self.meta();
        handle::<Purchase>(&self.store, &stream_name::<Purchase>(c.purchase_id()), &c, &meta).await.unwrap();
    }

    async fn claim(&mut self, c: ClaimCommand) {
        let meta = self.meta();
        handle::<AnnexClaim>(&self.store, &stream_name::<AnnexClaim>(c.claim_id()), &c, &meta).await.unwrap();
    }

    async fn habilitation(&mut self, id: domain::aidants::HabilitationId, c: domain::aidants::HabilitationCommand) {
        let meta = self.meta();
        let stream = stream_name::<domain::aidants::Habilitation>(id.0);
        handle::<domain::aidants::Habilitation>(&self.store, &stream, &c, &meta).await.unwrap();
    }
}

fn structure(siret: &str) -> StructureId {
    StructureId::for_siret(&Siret::parse(siret).unwrap())
}

/// A convention, commitments in Brest (29) and Marseille (13) and one national; a
/// purchase attended in Brest; a claim in Brest approved and paid; an aidant in
/// Marseille going from request to eligibility.
async fn scenario() -> MemoryStore {
    let mut log = Log { store: MemoryStore::new(), n: 0 };
    log.convention(ConventionCommand::Sign(SignConvention {
        code: CODE.into(),
        partner: "OPCO Uniformation".into(),
        title: "Formation".into(),
        signed_on: d("2021-03-15"),
        period_start: d("2021-03-15"),
        period_end: d("2022-12-31"),
        total: Money::euros(4_400_000),
        shares: vec![FundingShare { funder: "ANCT".into(), amount: Money::euros(4_400_000) }],
        targets: vec![Target { kind: TargetKind::Trainings, quantity: 2_000 }],
        departements: vec![],
        annex_caps: None,
    }))
    .await;
    let envelope = |name: &str| EnvelopeId::for_name(convention(), name);
    for (name, kind) in
        [("Formations", EnvelopeKind::NonCertifyingTrainings), ("Frais annexes", EnvelopeKind::AnnexCosts)]
    {
        log.convention(ConventionCommand::AllocateEnvelope(AllocateEnvelope {
            convention_id: convention(),
            name: name.into(),
            kind,
            amount: Money::euros(1_000_000),
            allocated_on: d("2021-03-15"),
            financing: None,
        }))
        .await;
    }
    for (reference, departement, euros, on) in [
        ("A-29", Some("29"), 10_000, "2021-04-10"),
        ("A-13", Some("13"), 5_000, "2021-05-02"),
        ("A-NAT", None, 700, "2021-05-03"),
    ] {
        log.convention(ConventionCommand::CommitFunds(CommitFunds {
            convention_id: convention(),
            envelope_id: envelope("Formations"),
            reference: reference.into(),
            amount: Money::euros(euros),
            committed_on: d(on),
            departement: departement.map(dep),
        }))
        .await;
    }
    log.convention(ConventionCommand::RecordServiceDone(RecordServiceDone {
        convention_id: convention(),
        reference: "A-29".into(),
        amount: Money::euros(4_000),
        done_on: d("2021-06-30"),
    }))
    .await;
    log.convention(ConventionCommand::ReleaseFunds(ReleaseFunds {
        convention_id: convention(),
        reference: "A-13".into(),
        amount: Money::euros(1_000),
        released_on: d("2021-07-01"),
    }))
    .await;
    let brest = structure("73282932000074");
    let purchase = PurchaseId::for_request(CommandId(uuid::Uuid::from_u128(999)));
    log.purchase(PurchaseCommand::Request(Box::new(RequestPurchase {
        purchase_id: purchase,
        convention_id: convention(),
        structure_id: brest,
        departement: dep("29"),
        structure_kind: domain::structure::StructureKind::Association,
        provider: "Simplon".into(),
        title: "Médiation".into(),
        certification: Some("RNCP34587".into()),
        blocks: vec![CompetencyBlock::DigitalCulture, CompetencyBlock::DigitalPedagogyAutonomy],
        metier: Metier::MediateurNumerique,
        hours: 140,
        trainees: 10,
        unit_cost: Money::euros(1_000),
        session_start: d("2021-05-03"),
        session_end: d("2021-06-25"),
        requested_on: d("2021-04-15"),
    })))
    .await;
    log.purchase(PurchaseCommand::Approve { purchase_id: purchase, approved_on: d("2021-04-20") }).await;
    log.purchase(PurchaseCommand::RecordAttendance { purchase_id: purchase, present: 9, recorded_on: d("2021-06-25") })
        .await;
    let claim = ClaimId::of(purchase, "T-1");
    log.claim(ClaimCommand::Submit(Box::new(SubmitAnnexClaim {
        claim_id: claim,
        structure_id: brest,
        trainee: "T-1".into(),
        training: TrainingFacts {
            purchase_id: purchase,
            convention_id: convention(),
            structure_id: brest,
            departement: dep("29"),
            session_end: d("2021-06-25"),
            present: Some(9),
            trainees_claimed: 0,
        },
        caps: AnnexCaps::ours(),
        lines: vec![
            ExpenseLine {
                kind: ExpenseKind::Meal,
                quantity: 2,
                area: None,
                amount: Money::euros(50),
                receipt: "R1".into(),
            },
            ExpenseLine {
                kind: ExpenseKind::PublicTransport,
                quantity: 1,
                area: None,
                amount: Money::euros(40),
                receipt: "R2".into(),
            },
        ],
        submitted_on: d("2021-07-01"),
    })))
    .await;
    log.claim(ClaimCommand::Approve { claim_id: claim, reductions: vec![], approved_on: d("2021-07-10") }).await;
    log.claim(ClaimCommand::RecordFunding { claim_id: claim, committed_on: d("2021-07-10") }).await;
    log.claim(ClaimCommand::RecordPayment { claim_id: claim, paid_on: d("2021-07-21") }).await;
    let marseille = structure("44240119000032");
    let h = domain::aidants::HabilitationId::of(marseille, "AIDANT-1");
    use domain::aidants::HabilitationCommand as H;
    log.habilitation(
        h,
        H::Request {
            habilitation_id: h,
            structure_id: marseille,
            departement: dep("13"),
            aidant: "AIDANT-1".into(),
            on: d("2021-05-01"),
        },
    )
    .await;
    log.habilitation(h, H::ValidateEligibility { habilitation_id: h, on: d("2021-06-02") }).await;
    log.store
}

async fn fold(store: &MemoryStore) -> DashboardView {
    let mut view = DashboardView::default();
    for e in store.read_all(0, 10_000).await.unwrap() {
        view.apply(&e).unwrap();
    }
    view
}

#[tokio::test]
async fn the_national_total_is_the_sum_of_the_territories() {
    let view = fold(&scenario().await).await;
    let national = view.total(&Scope::default());
    let mut sum = Indicators::default();
    for figures in view.by_departement(&Scope::default()).values() {
        sum.add(figures);
    }
    assert_eq!(national, sum);
    let mut by_region = Indicators::default();
    for figures in view.by_region(&Scope::default()).values() {
        by_region.add(figures);
    }
    assert_eq!(national, by_region);
    insta::assert_json_snapshot!("dashboard_national", national);
    let named: BTreeMap<String, Indicators> = view
        .by_departement(&Scope::default())
        .into_iter()
        .map(|(d, figures)| (d.map_or("unassigned".to_string(), |d| d.as_str().to_string()), figures))
        .collect();
    insta::assert_json_snapshot!("dashboard_by_departement", named);
}

#[tokio::test]
async fn filters_select_a_territory_a_region_and_a_period() {
    let view = fold(&scenario().await).await;
    let brest = view.total(&Scope { departement: Some(dep("29")), ..Scope::default() });
    assert_eq!(brest.net_committed(), Money::euros(10_000));
    assert_eq!(brest.service_done, Money::euros(4_000));
    assert_eq!((brest.trainees, brest.certifying_trainees), (9, 9));
    assert_eq!(brest.claims.get(&ClaimState::Paid), Some(&1));
    assert_eq!(brest.approved, Money::parse("75.00").unwrap(), "meals capped at 2 × 17.50");
    let paca = view.total(&Scope { region: Some(RegionCode::parse("93").unwrap()), ..Scope::default() });
    assert_eq!(paca.net_committed(), Money::euros(4_000));
    assert_eq!(paca.habilitations.get(&HabilitationState::EligibilityValidated), Some(&1));
    assert_eq!(paca.habilitations.get(&HabilitationState::Requested), Some(&0), "it moved on");
    let may = view.total(&Scope { from: Some("2021-05".into()), to: Some("2021-05".into()), ..Scope::default() });
    assert_eq!(may.committed, Money::euros(5_700));
    assert_eq!(may.trainees, 0, "attendance was recorded in June");
    let unassigned = &view.by_departement(&Scope::default())[&None];
    assert_eq!(unassigned.committed, Money::euros(700), "national money has no territory and says so");
}

#[test]
fn delays_give_the_mean_and_the_90th_percentile() {
    let histogram: BTreeMap<u32, u64> = [(10, 5), (20, 4), (90, 1)].into_iter().collect();
    assert_eq!(Indicators::delays(&histogram), Some((22.0, 20)));
    let one: BTreeMap<u32, u64> = [(7, 1)].into_iter().collect();
    assert_eq!(Indicators::delays(&one), Some((7.0, 7)));
    assert_eq!(Indicators::delays(&BTreeMap::new()), None);
}

#[tokio::test]
async fn a_snapshot_of_the_view_reads_back_the_same() {
    let view = fold(&scenario().await).await;
    let json = serde_json::to_string(&view).unwrap();
    let back: DashboardView = serde_json::from_str(&json).unwrap();
    assert_eq!(back, view);
}
