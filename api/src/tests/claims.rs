//! Annex-cost claims and funds calls through GraphQL, with the reimbursement saga running:
//! the whole path, every error, waiting for funds, deadlines, and structure isolation.

use super::*;

const CLAIM_FIELDS: &str = "id status reference trainee submission claimed eligible approved submittedOn assessBy
  overdue reason waitingReason approvedOn paidOn fundsCallNumber reimbursedOn departement { code name }
  lines { line kind quantity area amount receipt cap eligible approved reductionReason }";
const CALL_FIELDS: &str = "number periodStart periodEnd total issuedOn dueOn paidOn late";

fn with_claim(mutation: &str, input_type: &str) -> String {
    format!(
        "mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ commandId position duplicate claim {{ {CLAIM_FIELDS} }} }} }}"
    )
}

fn with_call(mutation: &str, input_type: &str) -> String {
    format!(
        "mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ position duplicate fundsCall {{ {CALL_FIELDS} }} }} }}"
    )
}

fn submit() -> String {
    with_claim("submitAnnexClaim", "SubmitAnnexClaimInput")
}
fn resubmit() -> String {
    with_claim("resubmitAnnexClaim", "ResubmitAnnexClaimInput")
}
fn approve() -> String {
    with_claim("approveAnnexClaim", "ApproveAnnexClaimInput")
}
fn changes() -> String {
    with_claim("requestAnnexClaimChanges", "AssessAnnexClaimInput")
}
fn reject() -> String {
    with_claim("rejectAnnexClaim", "AssessAnnexClaimInput")
}
fn pay() -> String {
    with_claim("recordAnnexClaimPayment", "RecordAnnexClaimPaymentInput")
}
fn issue() -> String {
    with_call("issueFundsCall", "IssueFundsCallInput")
}
fn pay_call() -> String {
    with_call("recordFundsCallPayment", "RecordFundsCallPaymentInput")
}

/// A ticket, two nights in Paris (capped to 220 €), three meals, 150 km by car (capped to 48 €).
fn lines() -> Value {
    json!([
        { "kind": "PUBLIC_TRANSPORT", "quantity": 1, "amount": "86.40", "receipt": "SNCF-123" },
        { "kind": "NIGHT", "quantity": 2, "area": "PARIS", "amount": "250.00", "receipt": "HOTEL-9" },
        { "kind": "MEAL", "quantity": 3, "amount": "45.00", "receipt": "REPAS-1" },
        { "kind": "CAR", "quantity": 150, "amount": "60.00", "receipt": "KM-7" },
    ])
}

fn submit_input(n: u128, purchase_n: u128, trainee: &str) -> Value {
    json!({ "commandId": cmd(n), "purchaseId": purchase(purchase_n), "trainee": trainee, "lines": lines(),
            "submittedOn": "2021-07-05" })
}

fn claim(purchase_n: u128, trainee: &str) -> String {
    let purchase = domain::purchase::PurchaseId::parse(&purchase(purchase_n)).unwrap();
    // The log names the trainee by the id the (in-memory, deriving) directory issued.
    let id = store::directory::derived_id(store::PersonKind::Trainee, &purchase.0.to_string(), trainee);
    domain::claim::ClaimId::of(purchase, &id.to_string()).to_string()
}

fn call(n: u128) -> String {
    domain::funds_call::FundsCallId::for_command(domain::CommandId(uuid::Uuid::from_u128(n))).to_string()
}

fn approve_input(n: u128, claim: &str) -> Value {
    json!({ "commandId": cmd(n), "claimId": claim, "approvedOn": "2021-07-08" })
}

fn pay_input(n: u128, claim: &str, on: &str) -> Value {
    json!({ "commandId": cmd(n), "claimId": claim, "paidOn": on })
}

fn issue_input(n: u128, start: &str, end: &str, on: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention_id(), "periodStart": start, "periodEnd": end, "issuedOn": on })
}

impl Api {
    /// Runs a mutation as `principal` that must be refused; checks it wrote nothing.
    async fn refused_as(&self, principal: Principal, query: &str, input: Value) -> Value {
        let before = self.written();
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(json!({ "input": input })));
        let answer = serde_json::to_value(execute(&self.schema, request, principal).await).unwrap();
        assert!(answer["errors"].is_array(), "expected an error, got {answer}");
        assert_eq!(self.written(), before, "a refused command wrote events: {answer}");
        answer
    }

    async fn opco(&self, query: &str, input: Value) -> Value {
        self.run_as(Role::Opco, query, input).await
    }

    /// A budget, Brest registered, and purchase 702 attended by 10 trainees (session
    /// ended 2021-06-25).
    async fn with_attendance() -> Self {
        let api = Self::with_budget().await;
        ok(api.run(REGISTER, register_input(600, BREST)).await);
        ok(api.run(REQUEST, purchase_input(702, 10)).await);
        ok(api
            .run(APPROVE, json!({ "commandId": cmd(802), "purchaseId": purchase(702), "approvedOn": "2021-04-20" }))
            .await);
        ok(api.run(ATTEND, json!({ "commandId": cmd(650), "purchaseId": purchase(702), "present": 10, "recordedOn": "2021-06-25" })).await);
        api
    }
}

/// Claims at every stage for the matrix: T-1 submitted, T-2 funded, T-3 sent back, T-4
/// paid (not called), T-5 paid and in funds call n°1 (command 1216).
pub(super) async fn matrix_fixture(api: &Api) {
    for (i, trainee) in ["T-1", "T-2", "T-3", "T-4", "T-5"].into_iter().enumerate() {
        ok(api.run_as_brest(&submit(), submit_input(1201 + i as u128, 702, trainee)).await);
    }
    for (n, trainee) in [(1210, "T-2"), (1211, "T-4"), (1212, "T-5")] {
        ok(api.opco(&approve(), approve_input(n, &claim(702, trainee))).await);
    }
    let back =
        json!({ "commandId": cmd(1213), "claimId": claim(702, "T-3"), "reason": "Reçu illisible", "on": "2021-07-08" });
    ok(api.opco(&changes(), back).await);
    ok(api.opco(&pay(), pay_input(1214, &claim(702, "T-5"), "2021-07-10")).await);
    ok(api.opco(&pay(), pay_input(1215, &claim(702, "T-4"), "2021-07-20")).await);
    ok(api.opco(&issue(), issue_input(1216, "2021-07-01", "2021-07-15", "2021-07-16")).await);
}

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    let leak = |s: String| -> &'static str { s.leak() };
    vec![
        (Operation::AnnexClaims, "{ annexClaims { trainee } }", json!(null)),
        (
            Operation::AnnexClaim,
            leak(format!("{{ annexClaim(id: \"{}\") {{ trainee }} }}", claim(702, "T-1"))),
            json!(null),
        ),
        (Operation::FundsCalls, "{ fundsCalls { number } }", json!(null)),
        (Operation::SubmitAnnexClaim, leak(submit()), submit_input(1250, 702, "T-9")),
        (
            Operation::ResubmitAnnexClaim,
            leak(resubmit()),
            json!({ "commandId": cmd(1251), "claimId": claim(702, "T-3"), "lines": lines(), "resubmittedOn": "2021-07-12" }),
        ),
        (Operation::ApproveAnnexClaim, leak(approve()), approve_input(1252, &claim(702, "T-1"))),
        (
            Operation::RequestAnnexClaimChanges,
            leak(changes()),
            json!({ "commandId": cmd(1253), "claimId": claim(702, "T-1"), "reason": "Reçu manquant", "on": "2021-07-08" }),
        ),
        (
            Operation::RejectAnnexClaim,
            leak(reject()),
            json!({ "commandId": cmd(1254), "claimId": claim(702, "T-1"), "reason": "Hors plan", "on": "2021-07-08" }),
        ),
        (Operation::RecordAnnexClaimPayment, leak(pay()), pay_input(1255, &claim(702, "T-2"), "2021-07-21")),
        (Operation::IssueFundsCall, leak(issue()), issue_input(1256, "2021-07-16", "2021-07-31", "2021-08-01")),
        (
            Operation::RecordFundsCallPayment,
            leak(pay_call()),
            json!({ "commandId": cmd(1257), "conventionId": convention_id(), "fundsCallId": call(1216), "paidOn": "2021-08-20" }),
        ),
    ]
}

#[tokio::test]
async fn an_annex_claim_goes_from_submission_to_reimbursement() {
    let api = Api::with_attendance().await;
    insta::assert_json_snapshot!(
        "submit_annex_claim",
        ok(api.run_as_brest(&submit(), submit_input(1300, 702, "T-1")).await)
    );
    let partly = json!({ "commandId": cmd(1301), "claimId": claim(702, "T-1"), "approvedOn": "2021-07-08",
                         "reductions": [{ "line": 3, "approved": "30.00", "reason": "Un repas pris à domicile" }] });
    // The saga commits the amount on the envelope before the answer: FUNDED.
    insta::assert_json_snapshot!("approve_annex_claim", ok(api.opco(&approve(), partly).await));
    insta::assert_json_snapshot!(
        "record_annex_claim_payment",
        ok(api.opco(&pay(), pay_input(1302, &claim(702, "T-1"), "2021-07-20")).await)
    );
    insta::assert_json_snapshot!(
        "issue_funds_call",
        ok(api.opco(&issue(), issue_input(1303, "2021-07-01", "2021-09-30", "2021-10-05")).await)
    );
    let paid = json!({ "commandId": cmd(1304), "conventionId": convention_id(), "fundsCallId": call(1303), "paidOn": "2021-11-02" });
    insta::assert_json_snapshot!("record_funds_call_payment", ok(api.run(&pay_call(), paid).await));
    // The payment is also an entry of the partner's ledger, written with it: a claim for
    // payment of its own kind, received and justified at once.
    let ledger = ok(api
        .query(&format!("{{ disbursements(conventionId: \"{}\") {{ fundsCallsPaid received }} }}", convention_id()))
        .await);
    let fields = &ledger["data"]["disbursements"];
    assert_eq!(fields["received"], "0.00", "outside the schedule");
    assert_ne!(fields["fundsCallsPaid"], "0.00", "{ledger}");
    insta::assert_json_snapshot!(
        "query_annex_claims",
        ok(api.query(&format!("{{ annexClaims {{ {CLAIM_FIELDS} }} }}")).await)
    );
    insta::assert_json_snapshot!(
        "query_annex_claim",
        ok(api
            .query(&format!(
                "{{ annexClaim(id: \"{}\") {{ status approved reimbursedOn fundsCallNumber }} }}",
                claim(702, "T-1")
            ))
            .await)
    );
    insta::assert_json_snapshot!(
        "query_funds_calls",
        ok(api.query(&format!("{{ fundsCalls {{ {CALL_FIELDS} claimIds }} }}")).await)
    );
    // The delays, each labelled by what it measures: OPCO payment → ANCT reimbursement, and
    // end to end, from the submission.
    let delays = ok(api
        .query("{ dashboard { total { reimbursements { meanDaysToReimbursed p90DaysToReimbursed meanDaysEndToEnd p90DaysEndToEnd } } } }")
        .await);
    let submitted: chrono::NaiveDate = submit_input(1300, 702, "T-1")["submittedOn"].as_str().unwrap().parse().unwrap();
    let reimbursed: chrono::NaiveDate = "2021-11-02".parse().unwrap();
    let paid: chrono::NaiveDate = "2021-07-20".parse().unwrap();
    let r = &delays["data"]["dashboard"]["total"]["reimbursements"];
    assert_eq!(r["p90DaysToReimbursed"], json!((reimbursed - paid).num_days()));
    assert_eq!(r["p90DaysEndToEnd"], json!((reimbursed - submitted).num_days()));
    assert_eq!(r["meanDaysEndToEnd"], json!((reimbursed - submitted).num_days() as f64));
    // 86.40 + 220.00 + 30.00 + 48.00, committed, service done and paid on the envelope.
    let envelope = ok(api.query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { committed serviceDone paid } } } }"#).await);
    insta::assert_json_snapshot!("convention_after_a_reimbursement", envelope["data"]["convention"]["envelopes"][2]);
}

#[tokio::test]
async fn a_retried_claim_step_gives_its_first_answer() {
    let api = Api::with_attendance().await;
    ok(api.run_as_brest(&submit(), submit_input(1300, 702, "T-1")).await);
    ok(api.run_as_brest(&submit(), submit_input(1301, 702, "T-2")).await);
    let written = api.written();
    let again = ok(api.run_as_brest(&submit(), submit_input(1300, 702, "T-1")).await);
    assert_eq!(again["data"]["submitAnnexClaim"]["duplicate"], true);
    assert_eq!(api.written(), written);
}

#[tokio::test]
async fn a_second_claim_for_the_same_trainee_is_a_conflict() {
    let api = Api::with_attendance().await;
    ok(api.run_as_brest(&submit(), submit_input(1300, 702, "T-1")).await);
    let refused = api.refused_as(brest_principal(), &submit(), submit_input(1301, 702, "t-1")).await;
    assert_refused(&refused, "CONFLICT", Some("AlreadySubmitted"));
    insta::assert_json_snapshot!("submit_annex_claim_twice", refused);
}

#[tokio::test]
async fn annex_claim_errors_are_clear_and_write_nothing() {
    let api = Api::with_attendance().await;
    // Purchase 700: approved, no attendance yet.
    ok(api.run(REQUEST, purchase_input(700, 10)).await);
    ok(api
        .run(APPROVE, json!({ "commandId": cmd(800), "purchaseId": purchase(700), "approvedOn": "2021-04-20" }))
        .await);
    let brest = brest_principal;
    let refused = api.refused_as(brest(), &submit(), submit_input(1310, 700, "T-1")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NoAttendance"));
    insta::assert_json_snapshot!("submit_annex_claim_no_attendance", refused);
    let mut negative = submit_input(1311, 702, "T-1");
    negative["lines"][1]["quantity"] = json!(-2);
    let refused = api.refused_as(brest(), &submit(), negative).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("submit_annex_claim_negative_nights", refused);
    let mut late = submit_input(1312, 702, "T-1");
    late["submittedOn"] = json!("2021-09-24");
    let refused = api.refused_as(brest(), &submit(), late).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("DeadlinePassed"));
    insta::assert_json_snapshot!("submit_annex_claim_after_deadline", refused);
    let mut no_receipt = submit_input(1313, 702, "T-1");
    no_receipt["lines"][2]["receipt"] = json!(" ");
    let refused = api.refused_as(brest(), &submit(), no_receipt).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("MissingReceipt"));
    insta::assert_json_snapshot!("submit_annex_claim_without_receipt", refused);
    let mut number = submit_input(1314, 702, "T-1");
    number["lines"][0]["amount"] = json!(86.4);
    let refused = api.refused_as(brest(), &submit(), number).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("submit_annex_claim_amount_as_number", refused);
    let mut no_area = submit_input(1315, 702, "T-1");
    no_area["lines"][1].as_object_mut().unwrap().remove("area");
    let refused = api.refused_as(brest(), &submit(), no_area).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("MissingArea"));
    insta::assert_json_snapshot!("submit_annex_claim_night_without_area", refused);
    // Another structure's training answers as if it did not exist.
    let mut bordeaux = Principal::local(Role::Structure, "bordeaux");
    bordeaux.structure = Some(uuid::Uuid::from_u128(42));
    let refused = api.refused_as(bordeaux, &submit(), submit_input(1316, 702, "T-1")).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("submit_annex_claim_other_structure", refused);
    let opco = || Principal::local(Role::Opco, "opco");
    let refused = api.refused_as(opco(), &approve(), approve_input(1317, &claim(702, "NOBODY"))).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("approve_annex_claim_unknown", refused);
    // A claim paid and called once cannot be called again.
    ok(api.run_as_brest(&submit(), submit_input(1320, 702, "T-1")).await);
    let above = json!({ "commandId": cmd(1321), "claimId": claim(702, "T-1"), "approvedOn": "2021-07-08",
                        "reductions": [{ "line": 2, "approved": "240.00", "reason": "?" }] });
    let refused = api.refused_as(opco(), &approve(), above).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("AboveEligible"));
    insta::assert_json_snapshot!("approve_annex_claim_above_cap", refused);
    ok(api.opco(&approve(), approve_input(1322, &claim(702, "T-1"))).await);
    let refused = api.refused_as(opco(), &approve(), approve_input(1323, &claim(702, "T-1"))).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("WrongState"));
    insta::assert_json_snapshot!("approve_annex_claim_twice", refused);
    ok(api.opco(&pay(), pay_input(1324, &claim(702, "T-1"), "2021-07-20")).await);
    ok(api.opco(&issue(), issue_input(1325, "2021-07-01", "2021-07-31", "2021-08-01")).await);
    let mut twice = issue_input(1326, "2021-07-01", "2021-07-31", "2021-08-02");
    twice["claimIds"] = json!([claim(702, "T-1")]);
    let refused = api.refused_as(opco(), &issue(), twice).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("ClaimAlreadyCalled"));
    insta::assert_json_snapshot!("issue_funds_call_claim_already_called", refused);
    let refused = api.refused_as(opco(), &issue(), issue_input(1327, "2021-08-01", "2021-08-31", "2021-09-01")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NothingToCall"));
    insta::assert_json_snapshot!("issue_funds_call_nothing_to_call", refused);
}

#[tokio::test]
async fn a_claim_the_envelope_cannot_cover_waits_until_an_amendment_adds_funds() {
    let api = Api::with_attendance().await;
    let annex = envelope_id("Frais annexes");
    let amend = |n: u128, amount: &str| {
        json!({ "commandId": cmd(n), "conventionId": convention_id(), "signedOn": "2021-07-01", "reason": format!("Frais annexes à {amount} €"),
                "envelopes": [{ "envelopeId": annex, "amount": amount }] })
    };
    ok(api.run(AMEND, amend(1330, "300.00")).await);
    ok(api.run_as_brest(&submit(), submit_input(1331, 702, "T-1")).await);
    insta::assert_json_snapshot!(
        "approve_annex_claim_awaiting_funds",
        ok(api.opco(&approve(), approve_input(1332, &claim(702, "T-1"))).await)
    );
    let committed = ok(api
        .query(
            r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { committed available } } } }"#,
        )
        .await);
    assert_eq!(
        committed["data"]["convention"]["envelopes"][2]["figures"]["committed"], "0.00",
        "nothing over-committed"
    );
    ok(api.run(AMEND, amend(1333, "1000.00")).await);
    let claim =
        ok(api.query(&format!("{{ annexClaim(id: \"{}\") {{ status waitingReason }} }}", claim(702, "T-1"))).await);
    assert_eq!(claim["data"]["annexClaim"], json!({ "status": "FUNDED", "waitingReason": null }));
}

#[tokio::test]
async fn an_unassessed_claim_becomes_overdue_and_an_unpaid_funds_call_late() {
    let api = Api::with_attendance().await;
    ok(api.run_as_brest(&submit(), submit_input(1340, 702, "T-1")).await);
    ok(api.run_as_brest(&submit(), submit_input(1341, 702, "T-2")).await);
    ok(api.opco(&approve(), approve_input(1342, &claim(702, "T-2"))).await);
    ok(api.opco(&pay(), pay_input(1343, &claim(702, "T-2"), "2021-07-20")).await);
    ok(api.opco(&issue(), issue_input(1344, "2021-07-01", "2021-07-31", "2021-08-01")).await);
    // 30 days after submission, 30 after the call (our default terms): the next event
    // wakes the saga up.
    api.clock.set("2021-10-01".parse().unwrap());
    ok(api.run(REGISTER, register_input(1345, BORDEAUX)).await);
    let flags = ok(api
        .query(&format!(
            "{{ annexClaims(status: SUBMITTED) {{ trainee assessBy overdue }} fundsCalls {{ {CALL_FIELDS} }} }}"
        ))
        .await);
    insta::assert_json_snapshot!("overdue_claims_and_late_funds_calls", flags);
}

#[tokio::test]
async fn a_structure_sees_only_its_own_claims() {
    let api = Api::with_attendance().await;
    ok(api.run_as_brest(&submit(), submit_input(1350, 702, "T-1")).await);
    let mut other = Principal::local(Role::Structure, "bordeaux");
    other.structure = Some(uuid::Uuid::from_u128(42));
    let query = format!("{{ annexClaims {{ trainee }} annexClaim(id: \"{}\") {{ trainee }} }}", claim(702, "T-1"));
    let theirs =
        serde_json::to_value(execute(&api.schema, async_graphql::Request::new(query.clone()), other).await).unwrap();
    assert_eq!(theirs["data"], json!({ "annexClaims": [], "annexClaim": null }));
    let own = serde_json::to_value(execute(&api.schema, async_graphql::Request::new(query), brest_principal()).await)
        .unwrap();
    assert_eq!(own["data"]["annexClaims"], json!([{ "trainee": "T-1" }]));
}

#[tokio::test]
async fn caps_belong_to_the_convention_and_change_by_amendment() {
    let api = Api::with_budget().await;
    let caps = json!({ "perNight": "70.00", "perNightLargeCity": "90.00", "perNightParis": "110.00", "perMeal": "20.00",
                       "perKm": "0.32", "claimDeadlineDays": 90, "fundsCallPaymentDays": 45 });
    let amend = |n: u128, effective: &str| {
        json!({ "commandId": cmd(n), "conventionId": convention_id(), "signedOn": "2021-11-15", "reason": "Avenant n°1 : barème 2022",
                "annexCaps": { "effectiveOn": effective, "caps": caps.clone() } })
    };
    let refused = api.refused(AMEND, amend(1360, "2021-11-01")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("RetroactiveCaps"));
    insta::assert_json_snapshot!("sign_amendment_retroactive_caps", refused);
    ok(api.run(AMEND, amend(1361, "2022-01-01")).await);
    let schedule = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { annexCaps { effectiveOn perNight perNightLargeCity perNightParis perMeal perKm claimDeadlineDays assessmentDays fundsCallPaymentDays smallStructureEmployees } amendments { number annexCaps { effectiveOn perMeal fundsCallPaymentDays } } } }"#)
        .await);
    insta::assert_json_snapshot!("convention_annex_caps", schedule);
}
