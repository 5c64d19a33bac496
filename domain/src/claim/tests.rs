//! One given/when/then test per rule of an annex-cost claim.

use super::*;
use crate::CommandId;
use crate::structure::Siret;
use crate::testing::given;
use ClaimCommand as Cmd;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn buyer() -> StructureId {
    StructureId::for_siret(&Siret::parse("73282932000074").unwrap())
}

fn purchase() -> PurchaseId {
    PurchaseId::for_request(CommandId(Uuid::from_u128(1)))
}

fn id() -> ClaimId {
    ClaimId::of(purchase(), "T-001")
}

fn facts() -> TrainingFacts {
    TrainingFacts {
        purchase_id: purchase(),
        convention_id: ConventionId::for_code("ANCT-UNIFORMATION-2021"),
        structure_id: buyer(),
        departement: DepartementCode::parse("29").unwrap(),
        session_end: d("2021-06-25"),
        present: Some(10),
        trainees_claimed: 0,
    }
}

fn line(kind: ExpenseKind, quantity: u32, area: Option<StayArea>, amount: &str) -> ExpenseLine {
    ExpenseLine { kind, quantity, area, amount: m(amount), receipt: format!("R-{quantity}-{amount}") }
}

/// A train ticket (not capped), two nights in Paris above the cap, three meals within it.
fn lines() -> Vec<ExpenseLine> {
    vec![
        line(ExpenseKind::PublicTransport, 1, None, "86.40"),
        line(ExpenseKind::Night, 2, Some(StayArea::Paris), "250.00"),
        line(ExpenseKind::Meal, 3, None, "45.00"),
    ]
}

fn submit_with(f: impl FnOnce(&mut SubmitAnnexClaim)) -> Cmd {
    let mut c = SubmitAnnexClaim {
        claim_id: id(),
        structure_id: buyer(),
        trainee: "T-001".into(),
        training: facts(),
        caps: AnnexCaps::ours(),
        lines: lines(),
        submitted_on: d("2021-07-05"),
    };
    f(&mut c);
    Cmd::Submit(Box::new(c))
}

fn submitted() -> ClaimEvent {
    AnnexClaim::default().decide(&submit_with(|_| {})).unwrap().remove(0)
}

fn approve(reductions: Vec<LineDecision>) -> Cmd {
    Cmd::Approve { claim_id: id(), reductions, approved_on: d("2021-07-20") }
}

fn approved() -> ClaimEvent {
    given::<AnnexClaim>([submitted()]).when(approve(vec![])).events().remove(0)
}

fn funded() -> ClaimEvent {
    ClaimEvent::AnnexClaimFunded { amount: m("351.40"), committed_on: d("2021-07-20") }
}

fn paid() -> ClaimEvent {
    ClaimEvent::AnnexClaimPaid { amount: m("351.40"), paid_on: d("2021-08-02") }
}

#[test]
fn each_line_is_capped_at_submission() {
    let ClaimEvent::AnnexClaimSubmitted(e) = submitted() else { panic!("not a submission") };
    let eligible: Vec<_> = e.lines.iter().map(|l| (l.cap, l.eligible)).collect();
    assert_eq!(eligible, vec![(None, m("86.40")), (Some(m("220.00")), m("220.00")), (Some(m("52.50")), m("45.00"))]);
    assert_eq!((e.claimed, e.eligible), (m("381.40"), m("351.40")));
    assert_eq!(e.assess_by, d("2021-08-04"));
}

#[test]
fn no_attendance_no_claim() {
    given::<AnnexClaim>([]).when(submit_with(|c| c.training.present = None)).then_err(ClaimError::NoAttendance);
}

#[test]
fn only_the_buyer_structure_may_claim() {
    let other = StructureId::for_siret(&Siret::parse("44240119000032").unwrap());
    given::<AnnexClaim>([]).when(submit_with(|c| c.structure_id = other)).then_err(ClaimError::NotTheBuyer);
}

#[test]
fn no_more_claims_than_trainees_present() {
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.training.trainees_claimed = 10))
        .then_err(ClaimError::MoreClaimsThanTrainees { present: 10 });
}

#[test]
fn a_claim_after_the_deadline_is_refused() {
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.submitted_on = d("2021-09-24")))
        .then_err(ClaimError::DeadlinePassed { session_end: d("2021-06-25"), deadline: d("2021-09-23"), days: 90 });
}

#[test]
fn the_last_day_of_the_deadline_is_accepted() {
    given::<AnnexClaim>([]).when(submit_with(|c| c.submitted_on = d("2021-09-23"))).events();
}

#[test]
fn a_claim_before_the_session_ends_is_refused() {
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.submitted_on = d("2021-06-01")))
        .then_err(ClaimError::BeforeSessionEnd { submitted_on: d("2021-06-01"), session_end: d("2021-06-25") });
}

#[test]
fn a_trainee_claims_once_per_training() {
    given::<AnnexClaim>([submitted()]).when(submit_with(|_| {})).then_err(ClaimError::AlreadySubmitted);
}

#[test]
fn a_claim_needs_a_line() {
    given::<AnnexClaim>([]).when(submit_with(|c| c.lines.clear())).then_err(ClaimError::NoLine);
}

#[test]
fn a_line_without_a_receipt_is_refused() {
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.lines[1].receipt = "  ".into()))
        .then_err(ClaimError::MissingReceipt { line: 2 });
}

#[test]
fn a_line_needs_a_quantity_and_an_amount() {
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.lines[1].quantity = 0))
        .then_err(ClaimError::ZeroQuantity { line: 2 });
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.lines[2].amount = Money::ZERO))
        .then_err(ClaimError::ZeroAmount { line: 3 });
}

#[test]
fn a_night_needs_its_area_and_only_nights_have_one() {
    given::<AnnexClaim>([]).when(submit_with(|c| c.lines[1].area = None)).then_err(ClaimError::MissingArea { line: 2 });
    given::<AnnexClaim>([])
        .when(submit_with(|c| c.lines[0].area = Some(StayArea::Paris)))
        .then_err(ClaimError::AreaNotANight { line: 1 });
}

#[test]
fn approval_without_reductions_approves_what_is_eligible() {
    given::<AnnexClaim>([submitted()]).when(approve(vec![])).then([ClaimEvent::AnnexClaimApproved {
        lines: vec![
            ApprovedLine { line: 1, eligible: m("86.40"), approved: m("86.40"), reason: None },
            ApprovedLine { line: 2, eligible: m("220.00"), approved: m("220.00"), reason: None },
            ApprovedLine { line: 3, eligible: m("45.00"), approved: m("45.00"), reason: None },
        ],
        amount: m("351.40"),
        approved_on: d("2021-07-20"),
    }]);
}

#[test]
fn a_partial_approval_gives_a_reason_per_reduced_line() {
    let events = given::<AnnexClaim>([submitted()])
        .when(approve(vec![LineDecision {
            line: 3,
            approved: m("30.00"),
            reason: Some("one meal was a dinner at home".into()),
        }]))
        .events();
    let ClaimEvent::AnnexClaimApproved { amount, lines, .. } = &events[0] else { panic!("not an approval") };
    assert_eq!(*amount, m("336.40"));
    assert_eq!(lines[2].reason.as_deref(), Some("one meal was a dinner at home"));
}

#[test]
fn a_reduction_without_a_reason_is_refused() {
    given::<AnnexClaim>([submitted()])
        .when(approve(vec![LineDecision { line: 2, approved: m("100.00"), reason: None }]))
        .then_err(ClaimError::MissingReductionReason { line: 2 });
}

#[test]
fn nothing_above_the_eligible_amount_is_approved() {
    given::<AnnexClaim>([submitted()])
        .when(approve(vec![LineDecision { line: 2, approved: m("250.00"), reason: Some("receipt".into()) }]))
        .then_err(ClaimError::AboveEligible { line: 2, eligible: m("220.00"), approved: m("250.00") });
}

#[test]
fn decisions_name_existing_lines_once() {
    given::<AnnexClaim>([submitted()])
        .when(approve(vec![LineDecision { line: 4, approved: Money::ZERO, reason: Some("x".into()) }]))
        .then_err(ClaimError::UnknownLine { line: 4, lines: 3 });
    let twice = LineDecision { line: 1, approved: m("80.00"), reason: Some("x".into()) };
    given::<AnnexClaim>([submitted()])
        .when(approve(vec![twice.clone(), twice]))
        .then_err(ClaimError::DuplicateDecision { line: 1 });
}

#[test]
fn approving_nothing_is_a_rejection() {
    let zero = |line| LineDecision { line, approved: Money::ZERO, reason: Some("no receipt readable".into()) };
    given::<AnnexClaim>([submitted()])
        .when(approve(vec![zero(1), zero(2), zero(3)]))
        .then_err(ClaimError::NothingApproved);
}

#[test]
fn changes_requested_then_resubmitted_is_assessed_again() {
    let changes =
        ClaimEvent::AnnexClaimChangesRequested { reason: "receipt missing".into(), requested_on: d("2021-07-10") };
    given::<AnnexClaim>([submitted()])
        .when(Cmd::RequestChanges { claim_id: id(), reason: " receipt missing ".into(), requested_on: d("2021-07-10") })
        .then([changes.clone()]);
    let events = given::<AnnexClaim>([submitted(), changes.clone()])
        .when(Cmd::Resubmit {
            claim_id: id(),
            caps: AnnexCaps::ours(),
            lines: lines()[..1].to_vec(),
            resubmitted_on: d("2021-07-12"),
        })
        .events();
    assert!(matches!(&events[0], ClaimEvent::AnnexClaimResubmitted { submission: 2, eligible, assess_by, .. }
        if *eligible == m("86.40") && *assess_by == d("2021-08-11")));
    given::<AnnexClaim>([submitted(), changes, events[0].clone()]).when(approve(vec![])).events();
}

#[test]
fn only_a_claim_sent_back_can_be_resubmitted() {
    given::<AnnexClaim>([submitted()])
        .when(Cmd::Resubmit {
            claim_id: id(),
            caps: AnnexCaps::ours(),
            lines: lines(),
            resubmitted_on: d("2021-07-12"),
        })
        .then_err(ClaimError::WrongState { state: ClaimState::Submitted, action: "resubmitted" });
}

#[test]
fn a_rejection_needs_a_reason_and_is_final() {
    given::<AnnexClaim>([submitted()])
        .when(Cmd::Reject { claim_id: id(), reason: "".into(), rejected_on: d("2021-07-10") })
        .then_err(ClaimError::MissingField { field: "the reason" });
    let rejected = ClaimEvent::AnnexClaimRejected { reason: "not a trainee".into(), rejected_on: d("2021-07-10") };
    given::<AnnexClaim>([submitted(), rejected])
        .when(approve(vec![]))
        .then_err(ClaimError::WrongState { state: ClaimState::Rejected, action: "approved" });
}

#[test]
fn an_approved_claim_waits_for_funds_then_is_funded() {
    let shortfall = FundsShortfall::EnvelopeExceeded {
        envelope: "Frais annexes".into(),
        available: m("48.60"),
        requested: m("351.40"),
    };
    let waiting = ClaimEvent::AnnexClaimAwaitingFunds {
        amount: m("351.40"),
        reason: None,
        shortfall: Some(shortfall.clone()),
        since: d("2021-07-20"),
    };
    given::<AnnexClaim>([submitted(), approved()])
        .when(Cmd::AwaitFunds { claim_id: id(), shortfall, since: d("2021-07-20") })
        .then([waiting.clone()]);
    given::<AnnexClaim>([submitted(), approved(), waiting])
        .when(Cmd::RecordFunding { claim_id: id(), committed_on: d("2021-07-20") })
        .then([funded()]);
}

#[test]
fn the_opco_pays_only_a_funded_claim() {
    given::<AnnexClaim>([submitted(), approved()])
        .when(Cmd::RecordPayment { claim_id: id(), paid_on: d("2021-08-02") })
        .then_err(ClaimError::WrongState { state: ClaimState::Approved, action: "paid" });
    given::<AnnexClaim>([submitted(), approved(), funded()])
        .when(Cmd::RecordPayment { claim_id: id(), paid_on: d("2021-08-02") })
        .then([paid()]);
}

#[test]
fn an_unassessed_submission_is_flagged_overdue_once() {
    let flag = Cmd::FlagOverdue { claim_id: id(), submission: 1, due_on: d("2021-08-04") };
    let flagged = ClaimEvent::AnnexClaimFlaggedOverdue { submission: 1, due_on: d("2021-08-04") };
    given::<AnnexClaim>([submitted()]).when(flag.clone()).then([flagged.clone()]);
    given::<AnnexClaim>([submitted(), flagged]).when(flag).then_err(ClaimError::AlreadyFlagged { submission: 1 });
}

#[test]
fn a_claim_is_in_at_most_one_funds_call() {
    let call = Uuid::from_u128(7);
    let called = ClaimEvent::AnnexClaimCalled { call_id: call, call_number: 1, called_on: d("2021-09-01") };
    given::<AnnexClaim>([submitted(), approved(), funded(), paid()])
        .when(Cmd::MarkCalled { claim_id: id(), call_id: call, call_number: 1, called_on: d("2021-09-01") })
        .then([called.clone()]);
    given::<AnnexClaim>([submitted(), approved(), funded(), paid(), called.clone()])
        .when(Cmd::MarkCalled {
            claim_id: id(),
            call_id: Uuid::from_u128(8),
            call_number: 2,
            called_on: d("2021-10-01"),
        })
        .then_err(ClaimError::AlreadyCalled { call_number: 1 });
    given::<AnnexClaim>([submitted(), approved(), funded(), paid(), called])
        .when(Cmd::RecordReimbursement { claim_id: id(), call_id: call, reimbursed_on: d("2021-10-15") })
        .then([ClaimEvent::AnnexClaimReimbursed {
            call_id: call,
            amount: m("351.40"),
            reimbursed_on: d("2021-10-15"),
        }]);
}

#[test]
fn an_unknown_claim_is_not_found() {
    given::<AnnexClaim>([]).when(approve(vec![])).then_err(ClaimError::NotFound);
}

#[test]
fn a_waiting_event_keeps_the_rule_and_one_written_before_still_reads_with_its_sentence() {
    let new = ClaimEvent::AnnexClaimAwaitingFunds {
        amount: m("351.40"),
        reason: None,
        shortfall: Some(FundsShortfall::EnvelopeExceeded {
            envelope: "Frais annexes".into(),
            available: m("48.60"),
            requested: m("351.40"),
        }),
        since: d("2021-07-20"),
    };
    let json = serde_json::to_value(&new).unwrap();
    assert_eq!(json["shortfall"]["rule"], "EnvelopeExceeded");
    assert!(json.get("reason").is_none(), "no sentence in the log: {json}");
    assert_eq!(new.waiting_reason().unwrap(), "envelope Frais annexes has 48.60 € available, 351.40 € requested");
    // An event of the earlier shape: a sentence, no rule.
    let old: ClaimEvent = serde_json::from_value(serde_json::json!({
        "type": "AnnexClaimAwaitingFunds", "amount": "351.40", "reason": "envelope exhausted", "since": "2021-07-20"
    }))
    .unwrap();
    assert_eq!(old.waiting_reason().as_deref(), Some("envelope exhausted"));
}

#[test]
fn a_trainee_reference_is_a_pseudonym_never_contact_details_or_a_nir() {
    given::<AnnexClaim>([]).when(submit_with(|c| c.trainee = "jean.martin@example.org".into())).then_err(
        ClaimError::PersonalData {
            field: "the trainee reference",
            looks_like: crate::personal::LooksLike::EmailAddress,
        },
    );
    given::<AnnexClaim>([]).when(submit_with(|c| c.trainee = "+33 6 12 34 56 78".into())).then_err(
        ClaimError::PersonalData {
            field: "the trainee reference",
            looks_like: crate::personal::LooksLike::PhoneNumber,
        },
    );
}
