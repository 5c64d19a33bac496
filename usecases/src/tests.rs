//! The write path's guarantees, each on the real SQLite log: all or nothing across
//! streams (with failures injected inside the write), no refusal for contention, retries
//! answered as retries.

use super::*;
use domain::convention::{
    AllocateEnvelope, CommitFunds, ConventionCommand as Cmd, EnvelopeKind, FundingShare, SignConvention,
};
use domain::framework::{CompetencyBlock, Metier};
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::{HeadCount, RegisterStructure, Siret, Structure, StructureCommand, StructureId, StructureKind};
use domain::{ConventionId, DepartementCode, EnvelopeId, Money};
use std::collections::BTreeMap;
use store::SqliteStore;

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

fn eur(n: i64) -> Money {
    Money::euros(n)
}

fn meta() -> CommandMeta {
    CommandMeta::new(CommandId::new_random(), "test")
}

fn convention() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn envelope(name: &str) -> EnvelopeId {
    EnvelopeId::for_name(convention(), name)
}

fn log() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3")).unwrap();
    (dir, store)
}

/// A signed convention with one envelope per (name, kind, amount).
const BUYER_SIRET: &str = "73282932000074";

/// Registers a structure (a purchase's buyer facts come from its stream).
async fn register(app: &UseCases, siret: &str, kind: StructureKind) -> StructureId {
    let siret = Siret::parse(siret).unwrap();
    let id = StructureId::for_siret(&siret);
    let command = StructureCommand::Register(RegisterStructure {
        name: "Association de médiation".into(),
        siret,
        kind,
        departement: DepartementCode::parse("29").unwrap(),
        head_count: HeadCount::Small,
        registered_on: d("2021-03-15"),
    });
    app.plain::<Structure>(stream_name::<Structure>(id), command, meta()).await.unwrap();
    id
}

async fn signed(app: &UseCases, envelopes: &[(&str, EnvelopeKind, i64)]) {
    let total: i64 = envelopes.iter().map(|e| e.2).sum();
    let sign = Cmd::Sign(SignConvention {
        code: CODE.into(),
        partner: "OPCO Uniformation".into(),
        title: "Formation".into(),
        signed_on: d("2021-03-15"),
        period_start: d("2021-03-15"),
        period_end: d("2022-12-31"),
        total: eur(total),
        shares: vec![FundingShare { funder: "ANCT".into(), amount: eur(total) }],
        targets: vec![],
        departements: vec![],
        annex_caps: None,
    });
    app.convention(sign, meta()).await.unwrap();
    register(app, BUYER_SIRET, StructureKind::Association).await;
    for (name, kind, amount) in envelopes {
        let allocate = Cmd::AllocateEnvelope(AllocateEnvelope {
            convention_id: convention(),
            name: name.to_string(),
            kind: *kind,
            amount: eur(*amount),
            allocated_on: d("2021-03-15"),
            financing: None,
        });
        app.convention(allocate, meta()).await.unwrap();
    }
}

fn commit(envelope_name: &str, reference: String, amount: i64) -> Cmd {
    Cmd::CommitFunds(CommitFunds {
        convention_id: convention(),
        envelope_id: envelope(envelope_name),
        reference,
        amount: eur(amount),
        committed_on: d("2021-04-01"),
        departement: None,
    })
}

async fn convention_state(app: &UseCases) -> domain::convention::Signed {
    let (c, _) = app.load::<Convention>(&stream_name::<Convention>(convention())).await.unwrap();
    c.0.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commitments_on_one_envelope_are_accepted_exactly_while_the_money_covers_them() {
    // Given an envelope of 640 €, when 80 commitments of 10 € arrive at once,
    let (_dir, store) = log();
    let app = UseCases::new(Arc::new(store));
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 640)]).await;
    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.convention(commit("formations", format!("R{i}"), 10), meta()).await })
        })
        .collect();
    let mut accepted = 0;
    let mut exceeded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => {
                assert!(!o.duplicate);
                accepted += 1;
            }
            Err(HandleError::Domain(ConventionError::EnvelopeExceeded { .. })) => exceeded += 1,
            Err(other) => panic!("refused for another reason than the money: {other:?}"),
        }
    }
    // then exactly the 64 that fit are accepted, none refused for contention, and the
    // envelope holds their sum.
    assert_eq!((accepted, exceeded), (64, 16));
    let state = convention_state(&app).await;
    assert_eq!(state.envelopes[&envelope("formations")].committed, eur(640));
    assert_eq!(state.commitments.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commitments_on_64_envelopes_are_all_accepted() {
    let (_dir, store) = log();
    let app = UseCases::new(Arc::new(store));
    let names: Vec<String> = (0..64).map(|i| format!("e{i}")).collect();
    let envelopes: Vec<_> = names.iter().map(|n| (n.as_str(), EnvelopeKind::Other, 100)).collect();
    signed(&app, &envelopes).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.convention(commit(&format!("e{i}"), format!("R{i}"), 100), meta()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every envelope covers its commitment");
    }
    let state = convention_state(&app).await;
    assert!(state.envelopes.values().all(|e| e.committed == eur(100)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_retries_of_one_command_write_once_and_get_the_same_answer() {
    let (_dir, store) = log();
    let store = Arc::new(store);
    let app = UseCases::new(store.clone());
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 1_000)]).await;
    let head_before = *store.head().borrow();
    let same = meta();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, meta) = (app.clone(), same.clone());
            tokio::spawn(async move { app.convention(commit("formations", "R1".into(), 10), meta).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().expect("a retry is answered, not refused"));
    }
    assert_eq!(*store.head().borrow(), head_before + 1, "one event");
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1, "one first answer");
    for a in &answers {
        assert_eq!((a.position, a.version, &a.stream), (answers[0].position, answers[0].version, &answers[0].stream));
    }
}

fn request(structure: StructureId, total_trainees: u32) -> (PurchaseId, PurchaseCommand) {
    let id = PurchaseId::for_request(CommandId::new_random());
    let command = PurchaseCommand::Request(Box::new(RequestPurchase {
        purchase_id: id,
        convention_id: convention(),
        structure_id: structure,
        departement: DepartementCode::parse("29").unwrap(),
        // Read from the structure's stream by the use case.
        structure_kind: StructureKind::Other,
        provider: "Organisme".into(),
        title: "Médiation numérique".into(),
        certification: None,
        blocks: vec![CompetencyBlock::DigitalCulture],
        metier: Metier::MediateurNumerique,
        hours: 35,
        trainees: total_trainees,
        unit_cost: eur(100),
        session_start: d("2021-05-01"),
        session_end: d("2021-05-10"),
        requested_on: d("2021-04-01"),
    }));
    (id, command)
}

async fn purchase_state(app: &UseCases, id: PurchaseId) -> domain::purchase::Purchase {
    app.load::<domain::purchase::Purchase>(&stream_name::<domain::purchase::Purchase>(id)).await.unwrap().0
}

#[tokio::test]
async fn an_approval_the_convention_refuses_leaves_the_purchase_as_it_was() {
    let (_dir, store) = log();
    let app = UseCases::new(Arc::new(store));
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 500)]).await;
    let (id, req) = request(buyer(), 10);
    app.purchase(req, meta()).await.unwrap();
    let err = app.purchase(PurchaseCommand::Approve { purchase_id: id, approved_on: d("2021-04-02") }, meta()).await;
    assert!(matches!(err, Err(StepError::Convention(ConventionError::EnvelopeExceeded { .. }))), "{err:?}");
    let purchase = purchase_state(&app, id).await;
    assert_eq!(purchase.state, Some(domain::purchase::PurchaseState::Requested));
    assert!(convention_state(&app).await.commitments.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_a_step_write_it_once() {
    let (_dir, store) = log();
    let store = Arc::new(store);
    let app = UseCases::new(store.clone());
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 5_000)]).await;
    let (id, req) = request(buyer(), 10);
    app.purchase(req, meta()).await.unwrap();
    let head = *store.head().borrow();
    let same = meta();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, meta) = (app.clone(), same.clone());
            let approve = PurchaseCommand::Approve { purchase_id: id, approved_on: d("2021-04-02") };
            tokio::spawn(async move { app.purchase(approve, meta).await })
        })
        .collect();
    let mut firsts = 0;
    let mut positions = BTreeMap::new();
    for t in tasks {
        let answer = t.await.unwrap().expect("a retry is answered as a retry");
        firsts += usize::from(!answer.duplicate);
        *positions.entry(answer.position).or_insert(0) += 1;
    }
    assert_eq!(firsts, 1);
    assert_eq!(positions.len(), 1, "every answer names the same write: {positions:?}");
    assert_eq!(*store.head().borrow(), head + 2, "the commitment and the approval, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_log_never_over_commit() {
    // Two use-case layers on one log stand for two processes: their lanes do not see each
    // other, only the log's expected versions do.
    let store: Arc<dyn EventStore> = Arc::new(store::MemoryStore::new());
    let (a, b) = (UseCases::new(store.clone()), UseCases::another_process(store.clone()));
    signed(&a, &[("formations", EnvelopeKind::NonCertifyingTrainings, 300)]).await;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { app.convention(commit("formations", format!("R{i}"), 10), meta()).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(HandleError::Domain(ConventionError::EnvelopeExceeded { .. }) | HandleError::Conflict { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    let state = convention_state(&UseCases::new(store)).await;
    let committed = state.envelopes[&envelope("formations")].committed;
    assert_eq!(committed, eur(10 * accepted));
    assert!(committed <= eur(300));
}

#[tokio::test]
async fn a_lanes_folded_state_takes_in_what_another_process_wrote_before_deciding() {
    // Given a convention folded by this process's lane,
    let (_dir, store) = log();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let (here, there) = (UseCases::new(store.clone()), UseCases::another_process(store.clone()));
    signed(&here, &[("formations", EnvelopeKind::NonCertifyingTrainings, 1_000)]).await;
    here.convention(commit("formations", "A-0".into(), 100), meta()).await.unwrap();
    // when another process commits 850 € of the 900 € left,
    there.convention(commit("formations", "B-0".into(), 850), meta()).await.unwrap();
    // then this process, deciding on its lane, sees only 50 € available,
    let refused = here.convention(commit("formations", "A-1".into(), 51), meta()).await;
    assert!(
        matches!(&refused, Err(HandleError::Domain(ConventionError::EnvelopeExceeded { available, .. })) if *available == eur(50)),
        "{refused:?}"
    );
    here.convention(commit("formations", "A-2".into(), 50), meta()).await.unwrap();
    // and its folded state is the log's, event for event.
    let (folded, version) = here.load::<Convention>(&stream_name::<Convention>(convention())).await.unwrap();
    let (fresh, fresh_version) =
        store::handler::load::<Convention>(store.as_ref(), &stream_name::<Convention>(convention())).await.unwrap();
    assert_eq!((folded, version), (fresh, fresh_version));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_for_one_training_never_outnumber_its_trainees_present() {
    use crate::programmes::AnnexClaimRequest;
    use domain::annex::ExpenseKind;
    use domain::claim::{ClaimError, ClaimId, ExpenseLine};
    // Given a training bought for 10 trainees, of whom 3 were present,
    let (_dir, store) = log();
    let app = UseCases::new(Arc::new(store));
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 5_000)]).await;
    let buyer = buyer();
    let (id, req) = request(buyer, 10);
    app.purchase(req, meta()).await.unwrap();
    app.purchase(PurchaseCommand::Approve { purchase_id: id, approved_on: d("2021-04-02") }, meta()).await.unwrap();
    let attendance = PurchaseCommand::RecordAttendance { purchase_id: id, present: 3, recorded_on: d("2021-05-10") };
    app.purchase(attendance, meta()).await.unwrap();
    // when 8 of its trainees claim at once,
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            let trainee = format!("T-{i}");
            let request = AnnexClaimRequest {
                claim_id: ClaimId::of(id, &trainee),
                structure_id: Some(buyer),
                purchase_id: id,
                trainee,
                lines: vec![ExpenseLine {
                    kind: ExpenseKind::Meal,
                    quantity: 1,
                    area: None,
                    amount: eur(12),
                    receipt: format!("R-{i}"),
                }],
                submitted_on: d("2021-05-20"),
            };
            tokio::spawn(async move { app.submit_annex_claim(request, meta()).await })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for c in claims {
        match c.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(StepError::Domain(ClaimError::MoreClaimsThanTrainees { present: 3 })) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    // then exactly 3 are accepted: the count is the log's, decided one claim after the other.
    assert_eq!((accepted, refused), (3, 5));
    let stream = stream_name::<domain::claim::roll::ClaimRoll>(id);
    let (roll, _) = app.load::<domain::claim::roll::ClaimRoll>(&stream).await.unwrap();
    assert_eq!(roll.claims.len(), 3);
}

/// One use case that writes several streams: how to set its log up, how to send it, and
/// how many events it writes in all.
struct Case {
    name: &'static str,
    events: u64,
    setup: fn(Arc<UseCases>) -> futures::future::BoxFuture<'static, ()>,
    send: fn(Arc<UseCases>, CommandMeta) -> futures::future::BoxFuture<'static, Result<CommandOutcome, String>>,
}

fn buyer() -> StructureId {
    StructureId::for_siret(&Siret::parse(BUYER_SIRET).unwrap())
}

fn fixed_purchase() -> (PurchaseId, PurchaseCommand) {
    let (_, mut command) = request(buyer(), 10);
    let id = PurchaseId::for_request(CommandId(uuid::Uuid::from_u128(42)));
    if let PurchaseCommand::Request(r) = &mut command {
        r.purchase_id = id;
    }
    (id, command)
}

fn aidant() -> domain::aidants::HabilitationId {
    domain::aidants::HabilitationId::of(buyer(), "AIDANT-1")
}

fn session() -> domain::aidants::SessionId {
    domain::aidants::SessionId::for_command(CommandId(uuid::Uuid::from_u128(43)))
}

/// A convention with an envelope of every kind the programmes charge, a session of 10
/// seats and a validated aidant, a purchase attended by 3 trainees.
async fn programmes(app: Arc<UseCases>, registered: bool) {
    use domain::aidants::{HabilitationCommand as H, SessionCommand};
    signed(
        &app,
        &[
            ("formations", EnvelopeKind::NonCertifyingTrainings, 50_000),
            ("pix", EnvelopeKind::Certifications, 10_000),
            ("aidants", EnvelopeKind::AidantsConnectTraining, 10_000),
        ],
    )
    .await;
    let open = SessionCommand::Open {
        session_id: session(),
        convention_id: convention(),
        capacity: 10,
        seat_cost: eur(300),
        held_on: d("2021-05-03"),
    };
    let stream = stream_name::<domain::aidants::TrainingSession>(session().0);
    app.plain::<domain::aidants::TrainingSession>(stream, open, meta()).await.unwrap();
    let (id, on) = (aidant(), d("2021-04-01"));
    let departement = DepartementCode::parse("29").unwrap();
    let request = H::Request { habilitation_id: id, structure_id: buyer(), departement, aidant: "AIDANT-1".into(), on };
    app.habilitation(request, meta()).await.unwrap();
    app.habilitation(H::ValidateEligibility { habilitation_id: id, on }, meta()).await.unwrap();
    if registered {
        app.register_to_session(id, session(), d("2021-04-02"), meta()).await.unwrap();
    }
    let (purchase, request) = fixed_purchase();
    app.purchase(request, meta()).await.unwrap();
    let approve = PurchaseCommand::Approve { purchase_id: purchase, approved_on: d("2021-04-02") };
    app.purchase(approve, meta()).await.unwrap();
    let attend = PurchaseCommand::RecordAttendance { purchase_id: purchase, present: 3, recorded_on: d("2021-05-10") };
    app.purchase(attend, meta()).await.unwrap();
}

fn cases() -> Vec<Case> {
    use domain::aidants::HabilitationCommand as H;
    vec![
        Case {
            name: "approve a purchase: its commitment and its approval",
            events: 2,
            setup: |app| {
                Box::pin(async move {
                    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 50_000)]).await;
                    app.purchase(fixed_purchase().1, meta()).await.unwrap();
                })
            },
            send: |app, meta| {
                Box::pin(async move {
                    let approve =
                        PurchaseCommand::Approve { purchase_id: fixed_purchase().0, approved_on: d("2021-04-02") };
                    app.purchase(approve, meta).await.map_err(|e| format!("{e:?}"))
                })
            },
        },
        Case {
            name: "register an aidant to a session: the seat and the registration",
            events: 2,
            setup: |app| Box::pin(programmes(app, false)),
            send: |app, meta| {
                Box::pin(async move {
                    app.register_to_session(aidant(), session(), d("2021-04-02"), meta)
                        .await
                        .map_err(|e| format!("{e:?}"))
                })
            },
        },
        Case {
            name: "complete a training: the seat committed and served, and the completion",
            events: 3,
            setup: |app| Box::pin(programmes(app, true)),
            send: |app, meta| {
                Box::pin(async move {
                    let complete = H::CompleteTraining { habilitation_id: aidant(), on: d("2021-05-03") };
                    app.habilitation(complete, meta).await.map_err(|e| format!("{e:?}"))
                })
            },
        },
        Case {
            name: "open a Pix campaign: its commitment and its opening",
            events: 2,
            setup: |app| Box::pin(programmes(app, false)),
            send: |app, meta| {
                Box::pin(async move {
                    let open = domain::pix::PixCommand::OpenCampaign {
                        campaign_id: domain::pix::CampaignId::for_command(meta.command_id),
                        convention_id: convention(),
                        public: domain::pix::PixPublic::AidantsNumeriques,
                        certifications: 10,
                        unit_price: eur(55),
                        opened_on: d("2021-04-10"),
                    };
                    app.pix(open, meta).await.map_err(|e| format!("{e:?}"))
                })
            },
        },
        Case {
            name: "submit an annex claim: the claim and its training's roll",
            events: 2,
            setup: |app| Box::pin(programmes(app, false)),
            send: |app, meta| {
                Box::pin(async move {
                    let purchase = fixed_purchase().0;
                    let request = crate::programmes::AnnexClaimRequest {
                        claim_id: domain::claim::ClaimId::of(purchase, "T-1"),
                        structure_id: Some(buyer()),
                        purchase_id: purchase,
                        trainee: "T-1".into(),
                        lines: vec![domain::claim::ExpenseLine {
                            kind: domain::annex::ExpenseKind::Meal,
                            quantity: 1,
                            area: None,
                            amount: eur(12),
                            receipt: "R-1".into(),
                        }],
                        submitted_on: d("2021-05-20"),
                    };
                    app.submit_annex_claim(request, meta).await.map_err(|e| format!("{e:?}"))
                })
            },
        },
    ]
}

#[tokio::test]
async fn every_use_case_that_writes_several_streams_writes_all_or_nothing_wherever_the_log_fails() {
    for case in cases() {
        // A failure after each of its events, and just before the commit,
        for fail_after in 0..=case.events as usize {
            let (dir, store) = log();
            let app = UseCases::new(Arc::new(store.clone()));
            (case.setup)(app.clone()).await;
            let head = *store.head().borrow();
            let same = meta();
            store.fail_next_write_after(fail_after);
            let failed = (case.send)(app.clone(), same.clone()).await;
            assert!(failed.as_ref().is_err_and(|e| e.starts_with("Store")), "{}: {failed:?}", case.name);
            // leaves none of it, before and after a restart,
            assert_eq!(*store.head().borrow(), head, "{} failing after {fail_after}", case.name);
            drop(app);
            drop(store);
            let store = SqliteStore::open(dir.path().join("events.sqlite3")).unwrap();
            assert_eq!(*store.head().borrow(), head, "{}: nothing half-written survives a restart", case.name);
            assert!(store::verify_store(&store, true).await.unwrap().is_intact());
            // and the same command sent again writes all of it.
            let app = UseCases::new(Arc::new(store.clone()));
            let outcome = (case.send)(app, same).await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert!(!outcome.duplicate);
            assert_eq!(*store.head().borrow(), head + case.events, "{}", case.name);
        }
    }
}

#[tokio::test]
async fn a_public_employer_cannot_buy_on_the_opco_channel_and_nothing_is_written() {
    // Given a CCAS registered (its kind is in its stream, whatever the request says),
    let (_dir, store) = log();
    let store = Arc::new(store);
    let app = UseCases::new(store.clone());
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, 5_000)]).await;
    let ccas = register(&app, "21290019000019", StructureKind::CcasCias).await;
    let head = *store.head().borrow();
    // when the OPCO requests a training for it, claiming it is an association,
    let (_, mut command) = request(ccas, 10);
    if let PurchaseCommand::Request(r) = &mut command {
        r.structure_kind = StructureKind::Association;
    }
    let err = app.purchase(command, meta()).await;
    // then the rule refuses it by name, and the log is unchanged.
    assert!(
        matches!(
            err,
            Err(StepError::Domain(domain::purchase::PurchaseError::PrivateEmployersOnly {
                structure_kind: StructureKind::CcasCias
            }))
        ),
        "{err:?}"
    );
    assert_eq!(*store.head().borrow(), head);
}

#[tokio::test]
async fn a_funds_call_is_due_after_the_conventions_own_payment_delay() {
    use domain::funds_call::{FundsCallCommand, FundsCallLedger, PaidClaim};
    // Given a convention signed with our default terms (30 days) and a paid claim queued,
    let (_dir, store) = log();
    let app = UseCases::new(Arc::new(store));
    signed(&app, &[("frais", EnvelopeKind::AnnexCosts, 5_000)]).await;
    let claim = PaidClaim {
        claim_id: domain::claim::ClaimId(uuid::Uuid::from_u128(7)),
        structure_id: buyer(),
        departement: DepartementCode::parse("29").unwrap(),
        amount: eur(120),
        paid_on: d("2021-06-10"),
    };
    let queue = FundsCallCommand::QueueClaim { convention_id: convention(), claim };
    app.funds_call(queue, meta()).await.unwrap();
    // when the OPCO issues a call without naming a delay,
    let call_id = domain::funds_call::FundsCallId(uuid::Uuid::from_u128(8));
    let issue = FundsCallCommand::Issue {
        convention_id: convention(),
        call_id,
        period_start: d("2021-06-01"),
        period_end: d("2021-06-30"),
        claims: None,
        issued_on: d("2021-07-05"),
        payment_days: Some(999),
    };
    app.funds_call(issue, meta()).await.unwrap();
    // then it is due after the convention's term, read from its stream (30 days).
    let (ledger, _) = app.load::<FundsCallLedger>(&stream_name::<FundsCallLedger>(convention())).await.unwrap();
    assert_eq!(ledger.calls[&call_id].issued.due_on, d("2021-08-04"));
}

/// A log whose appends wait at a gate the test opens one at a time, written (or failed) in
/// the order they came: it hands appends to the log in call order at the first poll, like
/// the SQLite writer, so steps pipeline on it.
struct GatedLog {
    inner: store::MemoryStore,
    shared: Arc<()>,
    gate: std::sync::Mutex<Option<std::collections::VecDeque<Gated>>>,
    queued: tokio::sync::Notify,
}

type Gated = (Vec<AppendRequest>, oneshot::Sender<Result<Vec<store::AppendOutcome>, StoreError>>);

impl GatedLog {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: store::MemoryStore::new(),
            shared: Arc::new(()),
            gate: std::sync::Mutex::new(None),
            queued: tokio::sync::Notify::new(),
        })
    }

    fn close(&self) {
        *self.gate.lock().unwrap() = Some(Default::default());
    }

    fn waiting(&self) -> usize {
        self.gate.lock().unwrap().as_ref().map_or(0, |q| q.len())
    }

    /// Waits until `n` appends wait at the gate.
    async fn until_waiting(&self, n: usize) {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while self.waiting() < n {
                self.queued.notified().await;
            }
        })
        .await
        .expect("appends came to the gate");
    }

    /// Lets the first waiting append through: written, or refused without writing.
    async fn open_one(&self, written: bool) {
        let (requests, reply) = self.gate.lock().unwrap().as_mut().unwrap().pop_front().expect("an append waits");
        let result = if written {
            self.inner.append_all(requests).await
        } else {
            Err(StoreError::backend("refused by the test"))
        };
        let _ = reply.send(result);
    }
}

#[async_trait::async_trait]
impl EventStore for GatedLog {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<store::AppendOutcome>, StoreError> {
        let answer = {
            let mut gate = self.gate.lock().unwrap();
            match gate.as_mut() {
                None => None,
                Some(queue) => {
                    let (reply, answer) = oneshot::channel();
                    queue.push_back((requests.clone(), reply));
                    Some(answer)
                }
            }
        };
        match answer {
            None => self.inner.append_all(requests).await,
            Some(answer) => {
                self.queued.notify_waiters();
                answer.await.unwrap()
            }
        }
    }
    fn ordered_log(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        Some(self.shared.clone())
    }
    async fn read_stream(&self, stream: &str) -> Result<Vec<store::RecordedEvent>, StoreError> {
        self.inner.read_stream(stream).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<store::RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn find_command(&self, id: CommandId) -> Result<Option<store::CommandRecord>, StoreError> {
        self.inner.find_command(id).await
    }
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head()
    }
}

/// Two purchases of 1 000 € each, requested on `log` under an envelope of `envelope` €.
async fn two_requested(log: &Arc<GatedLog>, envelope: i64) -> (Arc<UseCases>, PurchaseId, PurchaseId) {
    let app = UseCases::new(log.clone());
    signed(&app, &[("formations", EnvelopeKind::NonCertifyingTrainings, envelope)]).await;
    let (a, request_a) = request(buyer(), 10);
    let (b, request_b) = request(buyer(), 10);
    app.purchase(request_a, meta()).await.unwrap();
    app.purchase(request_b, meta()).await.unwrap();
    (app, a, b)
}

fn approve(app: &Arc<UseCases>, id: PurchaseId) -> Approval {
    let app = app.clone();
    tokio::spawn(async move {
        app.purchase(PurchaseCommand::Approve { purchase_id: id, approved_on: d("2021-04-02") }, meta()).await
    })
}

type Outcome<E> = Result<CommandOutcome, StepError<E>>;

type Approval = tokio::task::JoinHandle<Outcome<domain::purchase::PurchaseError>>;

/// Two approvals of 1 000 € on one convention with room for both; the first one's append
/// waits to be committed while the second is decided: both appends wait at the gate (the
/// second came to the log before the first was answered — their commits can share a group).
async fn both_in_flight() -> (Arc<GatedLog>, Arc<UseCases>, Approval, Approval) {
    let log = GatedLog::new();
    let (app, a, b) = two_requested(&log, 2_000).await;
    log.close();
    let first = approve(&app, a);
    log.until_waiting(1).await;
    let second = approve(&app, b);
    log.until_waiting(2).await;
    (log, app, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_decides_on_top_of_an_append_in_flight_and_is_written_after_it() {
    // Given the second approval decided while the first one's append is in flight,
    let (log, app, first, second) = both_in_flight().await;
    // when both are let through, then both are written, in order.
    log.open_one(true).await;
    log.open_one(true).await;
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(convention_state(&app).await.envelopes[&envelope("formations")].committed, eur(2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_decided_on_one_that_then_fails_is_refused_and_decided_again() {
    // Given the second approval decided on top of the first one's append in flight,
    let (log, app, first, second) = both_in_flight().await;
    // when the first is not written,
    log.open_one(false).await;
    assert!(matches!(first.await.unwrap(), Err(StepError::Store(_))));
    // then the second's append, which expected the first's events, is refused by the log,
    log.open_one(true).await;
    // and the second is decided again on what the log holds, and written alone.
    log.until_waiting(1).await;
    log.open_one(true).await;
    second.await.unwrap().unwrap();
    let state = convention_state(&app).await;
    assert_eq!(state.envelopes[&envelope("formations")].committed, eur(1_000));
    assert_eq!(state.commitments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_decided_on_an_append_in_flight_waits_for_it_and_stands_only_if_it_was_written() {
    for first_written in [false, true] {
        // Given an envelope with room for one approval, the first one's append in flight,
        let log = GatedLog::new();
        let (app, a, b) = two_requested(&log, 1_000).await;
        log.close();
        let first = approve(&app, a);
        log.until_waiting(1).await;
        // when the second is refused on the state that holds the first,
        let second = approve(&app, b);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the refusal waits for the append it rests on");
        // then, if the first was written, the refusal stands;
        log.open_one(first_written).await;
        if first_written {
            first.await.unwrap().unwrap();
            let refused = second.await.unwrap();
            assert!(
                matches!(refused, Err(StepError::Convention(ConventionError::EnvelopeExceeded { .. }))),
                "{refused:?}"
            );
        } else {
            // if not, the second is decided again and accepted.
            assert!(first.await.unwrap().is_err());
            log.until_waiting(1).await;
            log.open_one(true).await;
            second.await.unwrap().unwrap();
        }
        let state = convention_state(&app).await;
        assert_eq!(state.envelopes[&envelope("formations")].committed, eur(1_000), "{first_written}");
    }
}

#[tokio::test]
async fn use_cases_on_one_log_share_its_lanes_and_another_process_turns_pipelining_off() {
    let log = GatedLog::new();
    let (one, two) = (UseCases::new(log.clone()), UseCases::new(log.clone()));
    assert!(Arc::ptr_eq(&one.lanes, &two.lanes));
    assert!(one.lanes.pipelining());
    let other = UseCases::another_process(log.clone());
    assert!(!Arc::ptr_eq(&one.lanes, &other.lanes));
    assert!(!one.lanes.pipelining() && !other.lanes.pipelining());
    // A log that does not hand appends in order gets lanes of its own, without.
    let memory: Arc<dyn EventStore> = Arc::new(store::MemoryStore::new());
    let (three, four) = (UseCases::new(memory.clone()), UseCases::new(memory));
    assert!(!Arc::ptr_eq(&three.lanes, &four.lanes));
    assert!(!three.lanes.pipelining());
}

#[test]
fn invented_references_get_derived_ids_in_the_directory_and_personal_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let people = Arc::new(store::Directory::open(dir.path()).unwrap());
    let uc = UseCases::with_people(Arc::new(store::MemoryStore::new()), people.clone());
    let ids = uc.invented_pseudonyms(store::PersonKind::Trainee, "p1", &["STAGIAIRE-001"]).unwrap();
    assert_eq!(ids, vec![store::directory::derived_id(store::PersonKind::Trainee, "p1", "STAGIAIRE-001").to_string()]);
    // A user naming the same trainee later gets the same id.
    assert_eq!(uc.pseudonym(store::PersonKind::Trainee, "p1", "stagiaire-001").unwrap(), ids[0]);
    let refused = uc.invented_pseudonyms(store::PersonKind::Trainee, "p1", &["S-2", "jean@example.org"]);
    assert!(matches!(refused, Err(PseudonymError::PersonalData(_))));
    assert_eq!(people.find(store::PersonKind::Trainee, "p1", "S-2").unwrap(), None, "nothing kept");
}
