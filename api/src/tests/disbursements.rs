//! The money between ANCT and a partner through GraphQL: the schedule, claims for payment
//! and ANCT's payments (due, paid, late), statements of expenses, the final report and the
//! order of recovery, the co-funder's own spending; every error with its code, writing
//! nothing.

use super::*;

const FIELDS: &str = "schedule { number label amount condition } payableSoFar claims { number instalment label
  amount claimedOn dueOn paidOn paidLate } received justified advanceNotJustified recoveryOrdered recovered toRecover
  statements finalReportOn fundsCallsPaid coFunders { funder amount }";

fn mutation(name: &str, input: &str) -> String {
    format!(
        "mutation($input: {input}!) {{ {name}(input: $input) {{ commandId position duplicate disbursements {{ {FIELDS} }} }} }}"
    )
}

fn schedule() -> String {
    mutation("setDisbursementSchedule", "SetDisbursementScheduleInput")
}
fn statement() -> String {
    mutation("submitStatementOfExpenses", "SubmitStatementOfExpensesInput")
}
fn claim() -> String {
    mutation("claimPayment", "ClaimPaymentInput")
}
fn pay() -> String {
    mutation("payClaim", "PayClaimInput")
}
fn co_funder() -> String {
    mutation("recordCoFunderSpending", "RecordCoFunderSpendingInput")
}
fn order() -> String {
    mutation("orderRecovery", "OrderRecoveryInput")
}
fn recovered() -> String {
    mutation("recordRecoveryPaid", "RecordRecoveryPaidInput")
}

/// ANCT's 2.6 M€ of the ANCT–Uniformation convention: 30 % advance, 50 % on a statement,
/// 20 % balance on the final report.
fn schedule_input(n: u128, convention: &str, amendment: Option<u32>) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "setOn": "2021-03-20", "amendment": amendment,
            "instalments": [ { "label": "Avance", "rate": "30", "condition": "SIGNATURE" },
                             { "label": "Acompte n°1", "rate": "50", "condition": "STATEMENT_OF_EXPENSES" },
                             { "label": "Solde", "rate": "20", "condition": "FINAL_REPORT" } ] })
}

fn statement_input(n: u128, convention: &str, spent: &str, final_report: bool, on: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "spent": spent, "finalReport": final_report, "submittedOn": on })
}

fn claim_input(n: u128, convention: &str, instalment: u32, amount: &str, on: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "instalment": instalment, "amount": amount, "claimedOn": on })
}

fn pay_input(n: u128, convention: &str, claim: u32, on: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "claim": claim, "paidOn": on })
}

/// A partner's step refused: an error, and nothing written.
async fn refused_by_opco(api: &Api, query: &str, input: Value) -> Value {
    let before = api.written();
    let answer = api.run_as(Role::Opco, query, input).await;
    assert!(answer["errors"].is_array(), "expected an error, got {answer}");
    assert_eq!(api.written(), before, "a refused command wrote events: {answer}");
    answer
}

fn code(answer: &Value) -> (String, String) {
    let e = &answer["errors"][0]["extensions"];
    (e["code"].as_str().unwrap_or("").into(), e["rule"].as_str().unwrap_or("").into())
}

#[tokio::test]
async fn ancts_payments_follow_the_schedule_and_the_final_report_settles_the_balance() {
    let api = Api::with_budget().await;
    let c = convention_id();
    // The schedule: a term of the convention, set by ANCT.
    insta::assert_json_snapshot!(
        "disbursement_schedule",
        ok(api.run(&schedule(), schedule_input(1500, &c, None)).await)
    );
    let again = api.refused(&schedule(), schedule_input(1501, &c, None)).await;
    assert_eq!(code(&again), ("BAD_USER_INPUT".into(), "ScheduleChangeNeedsAmendment".into()));
    // The advance, claimed at signature and paid late (30 days: ours by default).
    ok(api.run_as(Role::Opco, &claim(), claim_input(1502, &c, 1, "780000", "2021-03-25")).await);
    let early = refused_by_opco(&api, &claim(), claim_input(1503, &c, 2, "1300000", "2021-04-01")).await;
    assert_eq!(code(&early), ("BAD_USER_INPUT".into(), "ConditionNotMet".into()));
    ok(api.run(&pay(), pay_input(1504, &c, 1, "2021-05-10")).await);
    // A statement of expenses opens the interim payment.
    ok(api.run_as(Role::Opco, &statement(), statement_input(1505, &c, "600000", false, "2021-09-30")).await);
    ok(api.run_as(Role::Opco, &claim(), claim_input(1506, &c, 2, "1300000", "2021-10-01")).await);
    ok(api.run(&pay(), pay_input(1507, &c, 2, "2021-10-20")).await);
    // Uniformation's own part, recorded as its spending.
    let spent = json!({ "commandId": cmd(1508), "conventionId": c, "funder": "Uniformation", "amount": "1800000",
                        "reference": "Bilan 2021-2022", "spentOn": "2022-12-31" });
    ok(api.run_as(Role::Opco, &co_funder(), spent).await);
    // The final report justifies 1 900 000 € of the 2 080 000 € received: no balance is
    // owed; 180 000 € are ordered back, then paid back.
    ok(api.run_as(Role::Opco, &statement(), statement_input(1509, &c, "1300000", true, "2023-01-15")).await);
    let balance = refused_by_opco(&api, &claim(), claim_input(1510, &c, 3, "1", "2023-01-16")).await;
    assert_eq!(code(&balance), ("BAD_USER_INPUT".into(), "ClaimExceedsInstalment".into()));
    let ordered =
        ok(api.run(&order(), json!({ "commandId": cmd(1511), "conventionId": c, "orderedOn": "2023-02-01" })).await);
    assert_eq!(ordered["data"]["orderRecovery"]["disbursements"]["toRecover"], "180000.00");
    let too_much = json!({ "commandId": cmd(1512), "conventionId": c, "amount": "180000.01", "paidOn": "2023-03-01" });
    assert_eq!(
        code(&api.refused(&recovered(), too_much).await),
        ("BAD_USER_INPUT".into(), "RecoveryExceedsOrder".into())
    );
    let back = json!({ "commandId": cmd(1513), "conventionId": c, "amount": "180000", "paidOn": "2023-03-01" });
    let settled = ok(api.run(&recovered(), back).await);
    let d = &settled["data"]["recordRecoveryPaid"]["disbursements"];
    let money = |v: &Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    // received − recovered = justified (within it) + advance not yet justified
    assert_eq!(
        money(&d["received"]) - money(&d["recovered"]),
        money(&d["justified"]) + money(&d["advanceNotJustified"])
    );
    insta::assert_json_snapshot!("disbursements_settled", settled);
    let query = ok(api.query(&format!("{{ disbursements(conventionId: \"{c}\") {{ {FIELDS} }} }}")).await);
    assert_eq!(query["data"]["disbursements"], settled["data"]["recordRecoveryPaid"]["disbursements"]);
}

#[tokio::test]
async fn disbursement_errors_are_clear_and_write_nothing() {
    let api = Api::with_budget().await;
    let c = convention_id();
    let mut short = schedule_input(1520, &c, None);
    short["instalments"][2]["rate"] = json!("10");
    let refused = api.refused(&schedule(), short).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("ScheduleDoesNotAddUp"));
    insta::assert_json_snapshot!("disbursement_schedule_short", refused);
    let claim_first = refused_by_opco(&api, &claim(), claim_input(1521, &c, 1, "10", "2021-03-25")).await;
    assert_eq!(code(&claim_first), ("BAD_USER_INPUT".into(), "NoSchedule".into()));
    ok(api.run(&schedule(), schedule_input(1522, &c, None)).await);
    let unknown = api.refused(&pay(), pay_input(1523, &c, 9, "2021-04-01")).await;
    assert_eq!(code(&unknown), ("BAD_USER_INPUT".into(), "UnknownClaim".into()));
    let over = refused_by_opco(&api, &claim(), claim_input(1524, &c, 1, "780000.01", "2021-03-25")).await;
    insta::assert_json_snapshot!("claim_payment_over_instalment", over);
    let none =
        api.refused(&order(), json!({ "commandId": cmd(1525), "conventionId": c, "orderedOn": "2021-04-01" })).await;
    assert_eq!(code(&none), ("BAD_USER_INPUT".into(), "NoFinalReport".into()));
    let unsigned = domain::ConventionId::for_code("NOT-SIGNED").to_string();
    let missing = refused_by_opco(&api, &statement(), statement_input(1526, &unsigned, "1", false, "2021-04-01")).await;
    assert_eq!(missing["errors"][0]["extensions"]["field"], "conventionId");
}

/// For the access matrix: a schedule set and changed by avenant n°1 allowed, a statement,
/// the advance claimed; a second convention with its final report below what it received,
/// a third with its recovery ordered.
pub(super) async fn matrix_fixture(api: &Api) {
    let c = convention_id();
    let avenant = json!({ "commandId": cmd(1530), "conventionId": c, "signedOn": "2021-11-01", "reason": "Avenant n°1 : échéancier", "periodEnd": "2023-06-30" });
    ok(api.run(AMEND, avenant).await);
    ok(api.run(&schedule(), schedule_input(1531, &c, None)).await);
    ok(api.run_as(Role::Opco, &statement(), statement_input(1532, &c, "100000", false, "2021-06-30")).await);
    ok(api.run_as(Role::Opco, &claim(), claim_input(1533, &c, 1, "780000", "2021-07-01")).await);
    for (n, code) in [(1540, "MATRICE-RECOUVREMENT"), (1550, "MATRICE-REVERSEMENT")] {
        let other = sign_single(api, n, code, "100000", "Actions", "OTHER").await;
        ok(api.run(&schedule(), schedule_input(n + 2, &other, None)).await);
        ok(api.run_as(Role::Opco, &claim(), claim_input(n + 3, &other, 1, "30000", "2021-04-01")).await);
        ok(api.run(&pay(), pay_input(n + 4, &other, 1, "2021-04-15")).await);
        ok(api.run_as(Role::Opco, &statement(), statement_input(n + 5, &other, "20000", true, "2022-12-31")).await);
    }
    let other = domain::ConventionId::for_code("MATRICE-REVERSEMENT").to_string();
    ok(api.run(&order(), json!({ "commandId": cmd(1560), "conventionId": other, "orderedOn": "2023-01-10" })).await);
}

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    let leak = |s: String| -> &'static str { s.leak() };
    let c = convention_id();
    let recovery = domain::ConventionId::for_code("MATRICE-RECOUVREMENT").to_string();
    let reversal = domain::ConventionId::for_code("MATRICE-REVERSEMENT").to_string();
    vec![
        (
            Operation::Disbursements,
            leak(format!("{{ disbursements(conventionId: \"{c}\") {{ received }} }}")),
            json!(null),
        ),
        (Operation::SetDisbursementSchedule, leak(schedule()), schedule_input(1570, &c, Some(1))),
        (
            Operation::SubmitStatementOfExpenses,
            leak(statement()),
            statement_input(1571, &c, "1000", false, "2021-08-01"),
        ),
        (Operation::ClaimPayment, leak(claim()), claim_input(1572, &c, 2, "1000", "2021-08-02")),
        (Operation::PayClaim, leak(pay()), pay_input(1573, &c, 1, "2021-07-20")),
        (
            Operation::RecordCoFunderSpending,
            leak(co_funder()),
            json!({ "commandId": cmd(1574), "conventionId": c, "funder": "Uniformation", "amount": "1000", "reference": "R", "spentOn": "2021-08-01" }),
        ),
        (
            Operation::OrderRecovery,
            leak(order()),
            json!({ "commandId": cmd(1575), "conventionId": recovery, "orderedOn": "2023-01-10" }),
        ),
        (
            Operation::RecordRecoveryPaid,
            leak(recovered()),
            json!({ "commandId": cmd(1576), "conventionId": reversal, "amount": "10000", "paidOn": "2023-02-01" }),
        ),
    ]
}

#[tokio::test]
async fn an_unpaid_claim_shows_late_from_its_due_date_until_it_is_paid() {
    let api = Api::with_budget().await;
    let c = convention_id();
    ok(api.run(&schedule(), schedule_input(1600, &c, None)).await);
    // Claimed on 25 March: due on 24 April (30 days, ours by default).
    ok(api.run_as(Role::Opco, &claim(), claim_input(1601, &c, 1, "780000", "2021-03-25")).await);
    let query = format!(
        "{{ disbursements(conventionId: \"{c}\") {{ claims {{ number dueOn paidOn \
             onDue: daysLate(on: \"2021-04-24\") later: daysLate(on: \"2021-05-04\") \
             lateOnDue: late(on: \"2021-04-24\") lateLater: late(on: \"2021-05-04\") }} }} }}"
    );
    let unpaid = ok(api.query(&query).await);
    let claim0 = &unpaid["data"]["disbursements"]["claims"][0];
    assert_eq!((claim0["onDue"].as_i64(), claim0["later"].as_i64()), (Some(0), Some(10)), "{unpaid}");
    assert_eq!((claim0["lateOnDue"].as_bool(), claim0["lateLater"].as_bool()), (Some(false), Some(true)));
    // Paid on 29 April, five days late: seen from 4 May, it stays five days late.
    ok(api.run(&pay(), pay_input(1602, &c, 1, "2021-04-29")).await);
    let paid = ok(api.query(&query).await);
    assert_eq!(paid["data"]["disbursements"]["claims"][0]["later"], 5, "{paid}");
    insta::assert_json_snapshot!("disbursement_claim_lateness", [unpaid, paid]);
}
