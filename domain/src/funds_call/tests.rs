//! One given/when/then test per rule of the funds-call ledger.

use super::*;
use crate::structure::Siret;
use crate::testing::given;
use FundsCallCommand as Cmd;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn convention() -> ConventionId {
    ConventionId::for_code("ANCT-UNIFORMATION-2021")
}

fn claim(n: u128, amount: i64, paid_on: &str) -> PaidClaim {
    PaidClaim {
        claim_id: ClaimId(Uuid::from_u128(n)),
        structure_id: StructureId::for_siret(&Siret::parse("73282932000074").unwrap()),
        departement: DepartementCode::parse("29").unwrap(),
        amount: Money::cents(amount),
        paid_on: d(paid_on),
    }
}

fn queued(c: PaidClaim) -> FundsCallEvent {
    FundsCallEvent::ClaimQueuedForFundsCall { claim: c }
}

fn call_id(n: u128) -> FundsCallId {
    FundsCallId(Uuid::from_u128(100 + n))
}

fn issue(n: u128, claims: Option<Vec<ClaimId>>) -> Cmd {
    Cmd::Issue {
        convention_id: convention(),
        call_id: call_id(n),
        period_start: d("2021-07-01"),
        period_end: d("2021-09-30"),
        claims,
        issued_on: d("2021-10-05"),
        payment_days: None,
    }
}

fn history() -> Vec<FundsCallEvent> {
    vec![
        queued(claim(1, 35_140, "2021-08-02")),
        queued(claim(2, 10_000, "2021-09-15")),
        queued(claim(3, 5_000, "2021-10-02")),
    ]
}

fn issued() -> FundsCallEvent {
    given::<FundsCallLedger>(history()).when(issue(1, None)).events().remove(0)
}

#[test]
fn a_call_covers_the_claims_paid_in_its_period() {
    let FundsCallEvent::FundsCallIssued(e) = issued() else { panic!("not an issue") };
    assert_eq!(e.claims, vec![claim(1, 35_140, "2021-08-02"), claim(2, 10_000, "2021-09-15")]);
    assert_eq!((e.number, e.total, e.due_on), (1, Money::cents(45_140), d("2021-11-04")));
}

#[test]
fn a_call_is_due_after_the_conventions_own_payment_delay() {
    // Our default is 30 days (above); a convention that set 45 days is due 45 days after.
    let Cmd::Issue { convention_id, call_id, period_start, period_end, claims, issued_on, .. } = issue(1, None) else {
        unreachable!()
    };
    let events = given::<FundsCallLedger>(history())
        .when(Cmd::Issue {
            convention_id,
            call_id,
            period_start,
            period_end,
            claims,
            issued_on,
            payment_days: Some(45),
        })
        .events();
    let FundsCallEvent::FundsCallIssued(e) = &events[0] else { panic!("not an issue") };
    assert_eq!(e.due_on, d("2021-11-19"));
}

#[test]
fn the_same_claim_cannot_be_in_two_calls() {
    let mut h = history();
    h.push(issued());
    given::<FundsCallLedger>(h)
        .when(issue(2, Some(vec![ClaimId(Uuid::from_u128(1))])))
        .then_err(FundsCallError::ClaimAlreadyCalled { claim_id: ClaimId(Uuid::from_u128(1)), number: 1 });
}

#[test]
fn a_period_with_nothing_paid_is_refused() {
    let mut h = history();
    h.push(issued());
    given::<FundsCallLedger>(h)
        .when(issue(2, None))
        .then_err(FundsCallError::NothingToCall { start: d("2021-07-01"), end: d("2021-09-30") });
}

#[test]
fn only_paid_claims_of_the_period_can_be_named() {
    given::<FundsCallLedger>(history())
        .when(issue(1, Some(vec![ClaimId(Uuid::from_u128(9))])))
        .then_err(FundsCallError::ClaimNotPaid { claim_id: ClaimId(Uuid::from_u128(9)) });
    given::<FundsCallLedger>(history()).when(issue(1, Some(vec![ClaimId(Uuid::from_u128(3))]))).then_err(
        FundsCallError::ClaimOutsidePeriod {
            claim_id: ClaimId(Uuid::from_u128(3)),
            paid_on: d("2021-10-02"),
            start: d("2021-07-01"),
            end: d("2021-09-30"),
        },
    );
    let one = ClaimId(Uuid::from_u128(1));
    given::<FundsCallLedger>(history())
        .when(issue(1, Some(vec![one, one])))
        .then_err(FundsCallError::DuplicateClaim { claim_id: one });
}

#[test]
fn a_call_covers_a_past_period() {
    let Cmd::Issue { convention_id, call_id, period_start, claims, .. } = issue(1, None) else { unreachable!() };
    given::<FundsCallLedger>(history())
        .when(Cmd::Issue {
            convention_id,
            call_id,
            period_start,
            period_end: d("2021-09-30"),
            claims: claims.clone(),
            issued_on: d("2021-09-29"),
            payment_days: None,
        })
        .then_err(FundsCallError::IssuedBeforePeriodEnd { issued_on: d("2021-09-29"), end: d("2021-09-30") });
    given::<FundsCallLedger>(history())
        .when(Cmd::Issue {
            convention_id,
            call_id,
            period_start,
            period_end: d("2021-06-30"),
            claims,
            issued_on: d("2021-10-05"),
            payment_days: None,
        })
        .then_err(FundsCallError::PeriodEndsBeforeStart { start: d("2021-07-01"), end: d("2021-06-30") });
}

#[test]
fn a_paid_claim_is_queued_once() {
    given::<FundsCallLedger>(history())
        .when(Cmd::QueueClaim { convention_id: convention(), claim: claim(1, 35_140, "2021-08-02") })
        .then_err(FundsCallError::AlreadyQueued { claim_id: ClaimId(Uuid::from_u128(1)) });
}

#[test]
fn anct_pays_a_call_once_and_not_before_it_is_issued() {
    let mut h = history();
    h.push(issued());
    let pay = |on: &str| Cmd::RecordPayment { convention_id: convention(), call_id: call_id(1), paid_on: d(on) };
    given::<FundsCallLedger>(h.clone()).when(pay("2021-10-01")).then_err(FundsCallError::PaidBeforeIssued {
        number: 1,
        issued_on: d("2021-10-05"),
        paid_on: d("2021-10-01"),
    });
    let paid = FundsCallEvent::FundsCallPaid {
        call_id: call_id(1),
        number: 1,
        amount: Money::cents(45_140),
        paid_on: d("2021-11-02"),
    };
    given::<FundsCallLedger>(h.clone()).when(pay("2021-11-02")).then([paid.clone()]);
    h.push(paid);
    given::<FundsCallLedger>(h).when(pay("2021-11-03")).then_err(FundsCallError::AlreadyPaid { number: 1 });
    given::<FundsCallLedger>(history()).when(pay("2021-11-02")).then_err(FundsCallError::UnknownCall);
}

#[test]
fn an_unpaid_call_is_flagged_late_once() {
    let mut h = history();
    h.push(issued());
    let flag = Cmd::FlagLate { convention_id: convention(), call_id: call_id(1), due_on: d("2021-11-04") };
    let flagged = FundsCallEvent::FundsCallFlaggedLate { call_id: call_id(1), number: 1, due_on: d("2021-11-04") };
    given::<FundsCallLedger>(h.clone()).when(flag.clone()).then([flagged.clone()]);
    h.push(flagged);
    given::<FundsCallLedger>(h).when(flag).then_err(FundsCallError::AlreadyFlaggedLate { number: 1 });
}
