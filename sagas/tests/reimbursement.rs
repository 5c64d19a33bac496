//! The reimbursement saga driven to idle, deterministically, on a real log: the whole
//! path, waiting for funds, deadlines, and restarts that must send nothing twice.

use chrono::NaiveDate;
use domain::annex::{AnnexCaps, ExpenseKind, StayArea};
use domain::claim::{AnnexClaim, ClaimCommand, ClaimId, ExpenseLine, LineDecision, SubmitAnnexClaim, TrainingFacts};
use domain::convention::{
    AllocateEnvelope, Convention, ConventionCommand, EnvelopeAmount, EnvelopeKind, FundingShare, SignAmendment,
    SignConvention,
};
use domain::funds_call::{FundsCallCommand, FundsCallId, FundsCallLedger};
use domain::purchase::PurchaseId;
use domain::structure::{Siret, StructureId};
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use sagas::{Checkpoint, ManualClock, MemoryCheckpoint, ReimbursementProcess};
use std::sync::Arc;
use store::handler::{load, stream_name};
use store::memory::MemoryStore;
use store::{EventStore, handle};
use uuid::Uuid;

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn convention() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn envelope() -> EnvelopeId {
    EnvelopeId::for_name(convention(), "Frais annexes")
}

fn structure() -> StructureId {
    StructureId::for_siret(&Siret::parse("73282932000074").unwrap())
}

fn purchase() -> PurchaseId {
    PurchaseId::for_request(CommandId(Uuid::from_u128(1)))
}

struct World {
    store: Arc<dyn EventStore>,
    clock: Arc<ManualClock>,
    checkpoint: Arc<MemoryCheckpoint>,
    next: u128,
}

impl World {
    /// A signed convention whose annex-cost envelope holds `annex` euros.
    async fn new(annex: &str) -> Self {
        let mut w = World {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::new(d("2021-07-05"))),
            checkpoint: Arc::new(MemoryCheckpoint::default()),
            next: 100,
        };
        w.convention(ConventionCommand::Sign(SignConvention {
            code: CODE.into(),
            partner: "OPCO Uniformation".into(),
            title: "Formation des médiateurs et aidants numériques".into(),
            signed_on: d("2021-03-15"),
            period_start: d("2021-03-15"),
            period_end: d("2022-12-31"),
            total: Money::euros(4_400_000),
            shares: vec![FundingShare { funder: "ANCT".into(), amount: Money::euros(4_400_000) }],
            targets: vec![],
            departements: vec![],
            annex_caps: None,
        }))
        .await;
        w.convention(ConventionCommand::AllocateEnvelope(AllocateEnvelope {
            convention_id: convention(),
            name: "Frais annexes".into(),
            kind: EnvelopeKind::AnnexCosts,
            amount: m(annex),
            allocated_on: d("2021-03-15"),
            financing: None,
        }))
        .await;
        w
    }

    fn meta(&mut self) -> CommandMeta {
        self.next += 1;
        CommandMeta::new(CommandId(Uuid::from_u128(self.next)), "opco:test")
    }

    async fn convention(&mut self, c: ConventionCommand) {
        let meta = self.meta();
        handle::<Convention>(self.store.as_ref(), &stream_name::<Convention>(c.convention_id()), &c, &meta)
            .await
            .unwrap();
    }

    async fn claim(&mut self, c: ClaimCommand) {
        let meta = self.meta();
        handle::<AnnexClaim>(self.store.as_ref(), &stream_name::<AnnexClaim>(c.claim_id()), &c, &meta).await.unwrap();
    }

    async fn ledger(&mut self, c: FundsCallCommand) {
        let meta = self.meta();
        handle::<FundsCallLedger>(self.store.as_ref(), &stream_name::<FundsCallLedger>(convention()), &c, &meta)
            .await
            .unwrap();
    }

    /// A trainee's claim: a ticket, two nights in Paris (capped to 220 €), three meals.
    async fn submit(&mut self, trainee: &str, claimed_before: u32) -> ClaimId {
        let id = ClaimId::of(purchase(), trainee);
        let line = |kind, quantity, area, amount: &str| ExpenseLine {
            kind,
            quantity,
            area,
            amount: m(amount),
            receipt: format!("R-{trainee}-{amount}"),
        };
        self.claim(ClaimCommand::Submit(Box::new(SubmitAnnexClaim {
            claim_id: id,
            structure_id: structure(),
            trainee: trainee.into(),
            training: TrainingFacts {
                purchase_id: purchase(),
                convention_id: convention(),
                structure_id: structure(),
                departement: DepartementCode::parse("29").unwrap(),
                session_end: d("2021-06-25"),
                present: Some(10),
                trainees_claimed: claimed_before,
            },
            caps: AnnexCaps::ours(),
            lines: vec![
                line(ExpenseKind::PublicTransport, 1, None, "86.40"),
                line(ExpenseKind::Night, 2, Some(StayArea::Paris), "250.00"),
                line(ExpenseKind::Meal, 3, None, "45.00"),
            ],
            submitted_on: d("2021-07-05"),
        })))
        .await;
        id
    }

    async fn approve(&mut self, id: ClaimId) {
        self.claim(ClaimCommand::Approve { claim_id: id, reductions: vec![], approved_on: d("2021-07-20") }).await;
    }

    /// Issues funds call `call` for the claims paid in the period.
    async fn issue_call(&mut self, call: FundsCallId, start: &str, end: &str, issued_on: &str) {
        self.ledger(FundsCallCommand::Issue {
            convention_id: convention(),
            call_id: call,
            period_start: d(start),
            period_end: d(end),
            claims: None,
            issued_on: d(issued_on),
            // Our default payment delay (30 days): what the use case reads from a
            // convention signed with our terms.
            payment_days: None,
        })
        .await;
    }

    async fn pay_call(&mut self, call: FundsCallId, paid_on: &str) {
        self.ledger(FundsCallCommand::RecordPayment {
            convention_id: convention(),
            call_id: call,
            paid_on: d(paid_on),
        })
        .await;
    }

    async fn process(&self) -> ReimbursementProcess {
        ReimbursementProcess::start(self.store.clone(), self.checkpoint.clone(), self.clock.clone()).await.unwrap()
    }

    async fn run(&self) {
        self.process().await.run_until_idle().await.unwrap();
    }

    async fn claim_state(&self, id: ClaimId) -> AnnexClaim {
        load::<AnnexClaim>(self.store.as_ref(), &stream_name::<AnnexClaim>(id)).await.unwrap().0
    }

    async fn envelope(&self) -> domain::convention::Envelope {
        let (c, _) = load::<Convention>(self.store.as_ref(), &stream_name::<Convention>(convention())).await.unwrap();
        c.0.unwrap().envelopes[&envelope()].clone()
    }

    async fn count(&self, event_type: &str) -> usize {
        self.store.read_all(0, 100_000).await.unwrap().iter().filter(|e| e.event_type == event_type).count()
    }

    fn head(&self) -> u64 {
        *self.store.head().borrow()
    }
}

fn state(c: &AnnexClaim) -> domain::claim::ClaimState {
    c.state.unwrap()
}

/// Submits and approves two claims, pays them, calls them and has ANCT pay the call.
async fn whole_path(w: &mut World) -> (ClaimId, ClaimId, FundsCallId) {
    let a = w.submit("T-001", 0).await;
    let b = w.submit("T-002", 1).await;
    w.approve(a).await;
    w.claim(ClaimCommand::Approve {
        claim_id: b,
        reductions: vec![LineDecision { line: 3, approved: m("30.00"), reason: Some("one meal at home".into()) }],
        approved_on: d("2021-07-20"),
    })
    .await;
    w.run().await;
    for id in [a, b] {
        w.claim(ClaimCommand::RecordPayment { claim_id: id, paid_on: d("2021-08-02") }).await;
    }
    w.run().await;
    let call = FundsCallId(Uuid::from_u128(9));
    w.issue_call(call, "2021-07-01", "2021-09-30", "2021-10-05").await;
    w.run().await;
    w.pay_call(call, "2021-11-02").await;
    w.run().await;
    (a, b, call)
}

#[tokio::test]
async fn the_whole_path_from_approval_to_reimbursement() {
    let mut w = World::new("10000").await;
    let (a, b, _) = whole_path(&mut w).await;
    for id in [a, b] {
        assert_eq!(state(&w.claim_state(id).await), domain::claim::ClaimState::Reimbursed);
    }
    // 351.40 + 336.40 committed at approval, then service done and paid when ANCT paid.
    let env = w.envelope().await;
    assert_eq!((env.committed, env.service_done, env.paid), (m("687.80"), m("687.80"), m("687.80")));
    assert_eq!(w.count("ClaimQueuedForFundsCall").await, 2);
    assert_eq!(w.count("AnnexClaimCalled").await, 2);
}

#[tokio::test]
async fn the_saga_commands_carry_their_cause() {
    let mut w = World::new("10000").await;
    let a = w.submit("T-001", 0).await;
    w.approve(a).await;
    w.run().await;
    let log = w.store.read_all(0, 1000).await.unwrap();
    let approved = log.iter().find(|e| e.event_type == "AnnexClaimApproved").unwrap();
    let funded = log.iter().find(|e| e.event_type == "AnnexClaimFunded").unwrap();
    assert_eq!(funded.metadata.actor, sagas::ACTOR);
    assert_eq!(funded.metadata.causation_id, Some(approved.event_id));
    assert_eq!(funded.metadata.correlation_id, approved.metadata.correlation_id);
}

#[tokio::test]
async fn a_claim_waits_for_funds_and_is_funded_when_an_amendment_adds_some() {
    let mut w = World::new("400.00").await;
    let a = w.submit("T-001", 0).await;
    let b = w.submit("T-002", 1).await;
    w.approve(a).await;
    w.approve(b).await;
    w.run().await;
    assert_eq!(state(&w.claim_state(a).await), domain::claim::ClaimState::Funded);
    assert_eq!(state(&w.claim_state(b).await), domain::claim::ClaimState::AwaitingFunds);
    let log = w.store.read_all(0, 1000).await.unwrap();
    let waiting = log.iter().find(|e| e.event_type == "AnnexClaimAwaitingFunds").unwrap();
    // The log keeps the rule and its figures, not a sentence.
    let payload: serde_json::Value = serde_json::from_str(waiting.payload.as_str()).unwrap();
    assert_eq!(payload["shortfall"]["rule"], "EnvelopeExceeded", "{payload}");
    assert_eq!(payload["shortfall"]["available"], "48.60", "{payload}");
    assert_eq!(payload["shortfall"]["requested"], "351.40", "{payload}");
    assert!(payload.get("reason").is_none(), "{payload}");
    assert_eq!(w.envelope().await.committed, m("351.40"), "nothing over-committed");

    w.convention(ConventionCommand::SignAmendment(SignAmendment {
        convention_id: convention(),
        signed_on: d("2021-09-01"),
        reason: "Avenant n°1".into(),
        total: None,
        shares: None,
        period_end: None,
        envelopes: vec![EnvelopeAmount { envelope_id: envelope(), amount: m("1000.00") }],
        annex_caps: None,
        financing: vec![],
    }))
    .await;
    w.run().await;
    assert_eq!(state(&w.claim_state(b).await), domain::claim::ClaimState::Funded);
    assert_eq!(w.envelope().await.committed, m("702.80"));
}

#[tokio::test]
async fn an_unassessed_claim_is_flagged_overdue_after_30_days_and_a_late_call_after_its_30_days() {
    let mut w = World::new("10000").await;
    let a = w.submit("T-001", 0).await;
    w.clock.set(d("2021-08-04"));
    w.run().await;
    assert_eq!(w.count("AnnexClaimFlaggedOverdue").await, 0, "due on the 30th day, not overdue yet");
    w.clock.set(d("2021-08-05"));
    w.run().await;
    w.run().await;
    assert_eq!(w.count("AnnexClaimFlaggedOverdue").await, 1, "flagged once");

    w.approve(a).await;
    w.run().await;
    w.claim(ClaimCommand::RecordPayment { claim_id: a, paid_on: d("2021-08-06") }).await;
    w.run().await;
    let call = FundsCallId(Uuid::from_u128(9));
    w.issue_call(call, "2021-08-01", "2021-08-31", "2021-09-01").await;
    w.clock.set(d("2021-10-01"));
    w.run().await;
    assert_eq!(w.count("FundsCallFlaggedLate").await, 0, "due on the 30th day");
    w.clock.set(d("2021-10-02"));
    w.run().await;
    w.run().await;
    assert_eq!(w.count("FundsCallFlaggedLate").await, 1);
}

#[tokio::test]
async fn a_saga_started_again_from_the_beginning_sends_nothing_twice() {
    let mut w = World::new("10000").await;
    whole_path(&mut w).await;
    let head = w.head();
    // A lost checkpoint: every event is reacted to again, every command re-sent.
    let forgetful = Arc::new(MemoryCheckpoint::default());
    let mut again = ReimbursementProcess::start(w.store.clone(), forgetful, w.clock.clone()).await.unwrap();
    again.run_until_idle().await.unwrap();
    assert_eq!(w.head(), head, "nothing new was written");
}

#[tokio::test]
async fn a_saga_stopped_mid_way_and_restarted_pays_and_reimburses_once() {
    let mut w = World::new("10000").await;
    let a = w.submit("T-001", 0).await;
    let b = w.submit("T-002", 1).await;
    w.approve(a).await;
    w.approve(b).await;
    // Stopped after acting on part of the log (the first approval only).
    let mut first = w.process().await;
    let approvals = w.store.read_all(0, 1000).await.unwrap();
    let first_approval = approvals.iter().position(|e| e.event_type == "AnnexClaimApproved").unwrap();
    first.run_some(first_approval + 1).await.unwrap();
    drop(first);
    assert_eq!(state(&w.claim_state(a).await), domain::claim::ClaimState::Funded);
    assert_eq!(state(&w.claim_state(b).await), domain::claim::ClaimState::Approved);
    // Restarted from its checkpoint, then the rest of the path.
    assert!(w.checkpoint.load().await.unwrap() > 0);
    w.run().await;
    for id in [a, b] {
        w.claim(ClaimCommand::RecordPayment { claim_id: id, paid_on: d("2021-08-02") }).await;
    }
    let call = FundsCallId(Uuid::from_u128(9));
    w.run().await;
    w.issue_call(call, "2021-07-01", "2021-09-30", "2021-10-05").await;
    w.pay_call(call, "2021-11-02").await;
    // Interrupted once more in the middle of the reimbursements, then restarted.
    let mut second = w.process().await;
    second.run_some(3).await.unwrap();
    drop(second);
    w.run().await;
    assert_eq!(w.count("FundsCommitted").await, 2);
    assert_eq!(w.count("ServiceDoneRecorded").await, 2);
    assert_eq!(w.count("PaymentRecorded").await, 2, "each claim paid once on the envelope");
    assert_eq!(w.count("AnnexClaimReimbursed").await, 2, "each claim reimbursed once");
    assert_eq!(w.envelope().await.paid, m("702.80"));
}
