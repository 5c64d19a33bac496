//! One given/when/then test per rule of ANCT's disbursements to a partner.

use super::*;
use crate::testing::given;
use DisbursementCommand as Cmd;
use DisbursementEvent as Ev;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(n: i64) -> Money {
    Money::euros(n)
}

fn id() -> ConventionId {
    ConventionId::for_code("ANCT-UNIFORMATION-2021")
}

/// ANCT's 2.6 M€: an advance of 30 % at signature, an interim payment of 50 % on a
/// statement of expenses, the balance of 20 % on the final report; 30 days to pay.
fn terms() -> Terms {
    let i = |label: &str, amount: i64, condition| Instalment { label: label.into(), amount: eur(amount), condition };
    Terms {
        schedule: vec![
            i("Avance", 780_000, Condition::Signature),
            i("Acompte n°1", 1_300_000, Condition::StatementOfExpenses),
            i("Solde", 520_000, Condition::FinalReport),
        ],
        payment_days: 30,
    }
}

fn claim(instalment: u32, amount: i64, on: &str) -> Cmd {
    Cmd::ClaimPayment { convention_id: id(), instalment, amount: eur(amount), claimed_on: d(on), terms: terms() }
}

fn claimed(number: u32, instalment: u32, label: &str, amount: i64, on: &str, due: &str) -> Ev {
    Ev::PaymentClaimed {
        number,
        instalment,
        label: label.into(),
        amount: eur(amount),
        claimed_on: d(on),
        due_on: d(due),
    }
}

fn pay(claim: u32, on: &str) -> Cmd {
    Cmd::PayClaim { convention_id: id(), claim, paid_on: d(on), terms: terms() }
}

fn statement(spent: i64, final_report: bool, on: &str) -> Cmd {
    Cmd::SubmitStatement { convention_id: id(), spent: eur(spent), final_report, submitted_on: d(on) }
}

fn advance_paid() -> Vec<Ev> {
    vec![
        claimed(1, 1, "Avance", 780_000, "2021-03-20", "2021-04-19"),
        Ev::ClaimPaid { number: 1, amount: eur(780_000), paid_on: d("2021-04-10"), late: false },
    ]
}

fn submitted(number: u32, spent: i64, final_report: bool, on: &str) -> Ev {
    Ev::StatementSubmitted { number, spent: eur(spent), final_report, submitted_on: d(on) }
}

#[test]
fn the_advance_is_payable_at_signature_and_due_after_the_conventions_delay() {
    given::<Disbursements>([]).when(claim(1, 780_000, "2021-03-20")).then([claimed(
        1,
        1,
        "Avance",
        780_000,
        "2021-03-20",
        "2021-04-19",
    )]);
}

#[test]
fn an_interim_payment_waits_for_a_statement_of_expenses() {
    given::<Disbursements>(advance_paid())
        .when(claim(2, 1_300_000, "2021-09-01"))
        .then_err(DisbursementError::ConditionNotMet { instalment: 2, condition: Condition::StatementOfExpenses });
    let mut h = advance_paid();
    h.push(submitted(1, 700_000, false, "2021-08-31"));
    given::<Disbursements>(h).when(claim(2, 1_300_000, "2021-09-01")).events();
}

#[test]
fn an_instalment_is_claimed_once_and_never_above_its_amount() {
    given::<Disbursements>(advance_paid())
        .when(claim(1, 10, "2021-05-01"))
        .then_err(DisbursementError::InstalmentAlreadyClaimed { instalment: 1 });
    given::<Disbursements>([]).when(claim(1, 780_001, "2021-03-20")).then_err(
        DisbursementError::ClaimExceedsInstalment { instalment: 1, allowed: eur(780_000), requested: eur(780_001) },
    );
    given::<Disbursements>([])
        .when(claim(4, 1, "2021-03-20"))
        .then_err(DisbursementError::UnknownInstalment { instalment: 4 });
}

#[test]
fn the_balance_pays_at_most_what_the_statements_justify_beyond_the_rest() {
    let mut h = advance_paid();
    h.push(submitted(1, 700_000, false, "2021-08-31"));
    h.push(claimed(2, 2, "Acompte n°1", 1_300_000, "2021-09-01", "2021-10-01"));
    h.push(Ev::ClaimPaid { number: 2, amount: eur(1_300_000), paid_on: d("2021-09-20"), late: false });
    h.push(submitted(2, 1_500_000, true, "2022-12-31"));
    // 2.2 M€ justified, 2.08 M€ claimed: the balance may claim 120 000 €, not 520 000 €.
    given::<Disbursements>(h).when(claim(3, 520_000, "2023-01-10")).then_err(
        DisbursementError::ClaimExceedsInstalment { instalment: 3, allowed: eur(120_000), requested: eur(520_000) },
    );
}

#[test]
fn ancts_payment_is_late_after_the_due_date_and_never_before_the_claim() {
    let h = vec![claimed(1, 1, "Avance", 780_000, "2021-03-20", "2021-04-19")];
    given::<Disbursements>(h.clone()).when(pay(1, "2021-05-03")).then([Ev::ClaimPaid {
        number: 1,
        amount: eur(780_000),
        paid_on: d("2021-05-03"),
        late: true,
    }]);
    given::<Disbursements>(h).when(pay(1, "2021-03-19")).then_err(DisbursementError::DatedBefore {
        what: "the payment",
        date: d("2021-03-19"),
        earlier: "the claim it pays",
        earlier_date: d("2021-03-20"),
    });
    given::<Disbursements>(advance_paid())
        .when(pay(1, "2021-05-03"))
        .then_err(DisbursementError::AlreadyPaid { claim: 1 });
}

#[test]
fn ancts_payments_never_go_beyond_what_the_schedule_allows() {
    // A schedule changed by amendment after a claim: the claim would now pay more than
    // the instalments payable so far.
    let h = vec![claimed(1, 1, "Avance", 780_000, "2021-03-20", "2021-04-19")];
    let mut smaller = terms();
    smaller.schedule[0].amount = eur(500_000);
    smaller.schedule[1].amount = eur(1_580_000);
    given::<Disbursements>(h)
        .when(Cmd::PayClaim { convention_id: id(), claim: 1, paid_on: d("2021-04-01"), terms: smaller })
        .then_err(DisbursementError::BeyondSchedule {
            allowed: eur(500_000),
            received: Money::ZERO,
            requested: eur(780_000),
        });
}

#[test]
fn no_statement_after_the_final_report() {
    let mut h = advance_paid();
    h.push(submitted(1, 780_000, true, "2022-12-31"));
    given::<Disbursements>(h)
        .when(statement(10, false, "2023-01-05"))
        .then_err(DisbursementError::FinalReportAlreadySubmitted);
}

#[test]
fn a_final_statement_below_what_was_received_orders_the_difference_back() {
    let mut h = advance_paid();
    given::<Disbursements>(h.clone())
        .when(Cmd::OrderRecovery { convention_id: id(), ordered_on: d("2023-01-10") })
        .then_err(DisbursementError::NoFinalReport);
    h.push(submitted(1, 700_000, true, "2022-12-31"));
    given::<Disbursements>(h.clone())
        .when(Cmd::OrderRecovery { convention_id: id(), ordered_on: d("2023-01-10") })
        .then([Ev::RecoveryOrdered { amount: eur(80_000), ordered_on: d("2023-01-10") }]);
    h.push(Ev::RecoveryOrdered { amount: eur(80_000), ordered_on: d("2023-01-10") });
    given::<Disbursements>(h.clone())
        .when(Cmd::RecordRecoveryPaid { convention_id: id(), amount: eur(80_001), paid_on: d("2023-02-01") })
        .then_err(DisbursementError::RecoveryExceedsOrder { outstanding: eur(80_000), requested: eur(80_001) });
    h.push(Ev::RecoveryPaid { amount: eur(80_000), paid_on: d("2023-02-01") });
    let mut state = Disbursements::default();
    for e in &h {
        state.evolve(e);
    }
    // received − recovered = justified (within it) + advance not yet justified.
    assert_eq!((state.received, state.recovered, state.justified), (eur(780_000), eur(80_000), eur(700_000)));
    assert_eq!(state.kept(), state.justified_within() + state.advance_not_justified());
    assert_eq!(state.advance_not_justified(), Money::ZERO);
    assert_eq!(state.to_recover(), Money::ZERO);
}

#[test]
fn nothing_is_ordered_back_when_the_final_statement_covers_the_money() {
    let mut h = advance_paid();
    h.push(submitted(1, 900_000, true, "2022-12-31"));
    given::<Disbursements>(h)
        .when(Cmd::OrderRecovery { convention_id: id(), ordered_on: d("2023-01-10") })
        .then_err(DisbursementError::NothingToRecover { justified: eur(900_000), kept: eur(780_000) });
}

#[test]
fn the_co_funders_own_spending_is_recorded_as_its_own() {
    let events = given::<Disbursements>([])
        .when(Cmd::RecordCoFunderSpending {
            convention_id: id(),
            funder: "Uniformation".into(),
            amount: eur(450_000),
            reference: "Bilan Uniformation 2021".into(),
            spent_on: d("2021-12-31"),
        })
        .events();
    let mut state = Disbursements::default();
    state.evolve(&events[0]);
    assert_eq!(state.co_funders["Uniformation"], eur(450_000));
    assert_eq!(state.received, Money::ZERO, "the co-funder's own money is not ANCT's");
}

#[test]
fn a_paid_funds_call_is_recorded_once_as_received_and_justified() {
    let record =
        Cmd::RecordFundsCallPaid { convention_id: id(), number: 1, amount: eur(513), paid_on: d("2021-11-18") };
    let paid = Ev::FundsCallReimbursed { number: 1, amount: eur(513), paid_on: d("2021-11-18") };
    given::<Disbursements>([]).when(record.clone()).then([paid.clone()]);
    given::<Disbursements>([paid.clone()])
        .when(record)
        .then_err(DisbursementError::FundsCallAlreadyRecorded { number: 1 });
    let mut state = Disbursements::default();
    state.evolve(&paid);
    assert_eq!((state.funds_calls_paid(), state.received), (eur(513), Money::ZERO), "outside the schedule");
}

#[test]
fn an_unpaid_claim_is_late_from_its_due_date_until_it_is_paid() {
    // Given the advance claimed on 20 March, due on 19 April, and paid on 3 May
    let claims = |events: Vec<Ev>| Disbursements::fold(&events).claims.into_iter().next().expect("the claim");
    let unpaid = claims(vec![claimed(1, 1, "Avance", 780_000, "2021-03-20", "2021-04-19")]);
    // Then, unpaid, it is not late on its due date, late by a day the day after, and more each day
    assert_eq!(unpaid.days_late(d("2021-04-19")), 0);
    assert_eq!(unpaid.days_late(d("2021-04-20")), 1);
    assert_eq!(unpaid.days_late(d("2021-05-19")), 30);
    let paid = claims(vec![
        claimed(1, 1, "Avance", 780_000, "2021-03-20", "2021-04-19"),
        Ev::ClaimPaid { number: 1, amount: eur(780_000), paid_on: d("2021-05-03"), late: true },
    ]);
    // And once paid, its lateness stops at the payment's date, seen from any later date
    assert_eq!(paid.days_late(d("2022-01-01")), 14);
    // But seen from before the payment, it is the days late so far
    assert_eq!(paid.days_late(d("2021-04-25")), 6);
    // And a claim paid on time is never late
    let on_time = claims(advance_paid());
    assert_eq!(on_time.days_late(d("2030-01-01")), 0);
}
