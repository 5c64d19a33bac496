//! Every GraphQL operation, its answer and its errors, as insta snapshots; and the checks
//! that a refused command writes nothing.

use super::*;
use serde_json::{Value, json};
use store::MemoryStore;

mod claims;
mod concurrency;
mod dashboard;
mod disbursements;
mod measures;
mod personal;
mod report;

struct Api {
    schema: TrackerSchema,
    state: AppState,
    store: Arc<dyn EventStore>,
    /// The saga's today, for deadline tests.
    clock: Arc<sagas::ManualClock>,
}

const CONVENTION_FIELDS: &str = "
fragment C on Convention {
  id code partner title signedOn periodStart periodEnd status closedOn total unallocated
  shares { funder amount percent }
  targets { kind quantity }
  departements { code name region { code name } }
  budget { allocated committed serviceDone paid available consumedPercent }
  envelopes { id name kind allocatedOn figures { allocated committed serviceDone paid available consumedPercent } }
  amendments { number signedOn reason totalBefore totalAfter periodEndBefore periodEndAfter
               shares { funder amount percent } envelopes { envelopeId name from to } }
  version position
}";

const SIGN: &str = "mutation($input: SignConventionInput!) {
  signConvention(input: $input) { commandId position version duplicate convention { ...C } } }";
const ALLOCATE: &str = "mutation($input: AllocateEnvelopeInput!) {
  allocateEnvelope(input: $input) { commandId position version duplicate convention { code unallocated envelopes { name kind figures { allocated available } } } } }";
const AMEND: &str = "mutation($input: SignAmendmentInput!) {
  signAmendment(input: $input) { position version convention { total periodEnd shares { funder amount percent } amendments { number signedOn reason totalBefore totalAfter periodEndBefore periodEndAfter shares { funder amount } envelopes { name from to } } } } }";
const COMMIT: &str = "mutation($input: CommitFundsInput!) {
  commitFunds(input: $input) { position version convention { budget { allocated committed serviceDone paid available consumedPercent } } } }";
const RELEASE: &str = "mutation($input: ReleaseFundsInput!) {
  releaseFunds(input: $input) { position version convention { budget { committed available } } } }";
const SERVE: &str = "mutation($input: RecordServiceDoneInput!) {
  recordServiceDone(input: $input) { position version convention { budget { committed serviceDone paid } } } }";
const PAY: &str = "mutation($input: RecordPaymentInput!) {
  recordPayment(input: $input) { position version convention { budget { committed serviceDone paid } } } }";
const REGISTER: &str = "mutation($input: RegisterStructureInput!) {
  registerStructure(input: $input) { commandId position duplicate structure { id name siret kind departement { code name region { code name } } headCount small registeredOn } } }";
const CLOSE: &str = "mutation($input: CloseConventionInput!) {
  closeConvention(input: $input) { position version convention { status closedOn } } }";

fn cmd(n: u128) -> String {
    uuid::Uuid::from_u128(n).to_string()
}

fn convention_id() -> String {
    domain::ConventionId::for_code("ANCT-UNIFORMATION-2021").to_string()
}

fn envelope_id(name: &str) -> String {
    domain::EnvelopeId::for_name(domain::ConventionId::for_code("ANCT-UNIFORMATION-2021"), name).to_string()
}

fn sign_input() -> Value {
    json!({
        "commandId": cmd(1),
        "code": "ANCT-UNIFORMATION-2021",
        "partner": "OPCO Uniformation",
        "title": "Formation des médiateurs et aidants numériques",
        "signedOn": "2021-03-15", "periodStart": "2021-03-15", "periodEnd": "2022-12-31",
        "total": "4400000",
        "shares": [ { "funder": "ANCT", "amount": "2600000" }, { "funder": "Uniformation", "amount": "1800000.00" } ],
        "targets": [ { "kind": "TRAININGS", "quantity": 2000 } ],
    })
}

/// Trainings shared 55/45 between ANCT and Uniformation, anything else all ANCT's (the
/// convention's financing plan: ANCT reimburses the annex costs in full).
fn allocate_input(n: u128, name: &str, kind: &str, amount: &str) -> Value {
    let financing = if kind.ends_with("CERTIFYING_TRAININGS") {
        json!([ { "funder": "ANCT", "rate": "55" }, { "funder": "Uniformation", "rate": "45" } ])
    } else {
        json!([ { "funder": "ANCT", "rate": "100" } ])
    };
    json!({ "commandId": cmd(n), "conventionId": convention_id(), "name": name, "kind": kind,
            "amount": amount, "allocatedOn": "2021-03-20", "financing": financing })
}

fn commit_input(n: u128, reference: &str, amount: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention_id(), "envelopeId": envelope_id("Formations certifiantes"),
            "reference": reference, "amount": amount, "committedOn": "2021-04-02", "departement": "2A" })
}

impl Api {
    fn new() -> Self {
        Self::on(Arc::new(MemoryStore::new()))
    }

    /// On a log of the caller's (a SQLite file, to restart on it).
    fn on(store: Arc<dyn EventStore>) -> Self {
        let clock = Arc::new(sagas::ManualClock::new("2021-07-01".parse().unwrap()));
        let saga = sagas::SagaRunner::start(
            store.clone(),
            Arc::new(sagas::MemoryCheckpoint::default()),
            clock.clone(),
            std::time::Duration::from_secs(3600),
        );
        let state = AppState::new(store.clone()).with_saga(saga);
        Self { schema: schema(state.clone(), true), state, store, clock }
    }

    /// As the `structure` token of Brest.
    async fn run_as_brest(&self, query: &str, input: Value) -> Value {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(json!({ "input": input })));
        serde_json::to_value(execute(&self.schema, request, brest_principal()).await).unwrap()
    }

    async fn run(&self, query: &str, input: Value) -> Value {
        // Purchases are the OPCO's; everything else here, ANCT's.
        let role =
            if [REQUEST, APPROVE, ATTEND, PAY_PURCHASE, CANCEL].contains(&query) { Role::Opco } else { Role::Anct };
        self.run_as(role, query, input).await
    }

    async fn run_as(&self, role: Role, query: &str, input: Value) -> Value {
        let query = if query.contains("...C") { format!("{query}\n{CONVENTION_FIELDS}") } else { query.to_string() };
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(json!({ "input": input })));
        let response = execute(&self.schema, request, Principal::local(role, "test")).await;
        serde_json::to_value(&response).unwrap()
    }

    async fn query(&self, query: &str) -> Value {
        let query = if query.contains("...C") { format!("{query}\n{CONVENTION_FIELDS}") } else { query.to_string() };
        let response =
            execute(&self.schema, async_graphql::Request::new(query), Principal::local(Role::Copil, "test")).await;
        serde_json::to_value(&response).unwrap()
    }

    fn written(&self) -> u64 {
        *self.store.head().borrow()
    }

    /// Runs a mutation that must be refused, checks it wrote nothing, returns the answer.
    async fn refused(&self, query: &str, input: Value) -> Value {
        let before = self.written();
        let answer = self.run(query, input).await;
        assert!(answer["errors"].is_array(), "expected an error, got {answer}");
        assert_eq!(self.written(), before, "a refused command wrote events: {answer}");
        answer
    }

    /// A convention with three envelopes and one commitment.
    async fn with_budget() -> Self {
        Self::with_budget_on(Arc::new(MemoryStore::new())).await
    }

    async fn with_budget_on(store: Arc<dyn EventStore>) -> Self {
        let api = Self::on(store);
        ok(api.run(SIGN, sign_input()).await);
        ok(api.run(ALLOCATE, allocate_input(2, "Formations certifiantes", "CERTIFYING_TRAININGS", "2500000")).await);
        ok(api
            .run(ALLOCATE, allocate_input(3, "Formations non certifiantes", "NON_CERTIFYING_TRAININGS", "1500000"))
            .await);
        ok(api.run(ALLOCATE, allocate_input(4, "Frais annexes", "ANNEX_COSTS", "300000")).await);
        ok(api.run(COMMIT, commit_input(5, "ACHAT-0001", "12345.67")).await);
        api
    }
}

/// A refusal carries this code and this rule (`extensions.code`, `extensions.rule`):
/// asserted here, not only in the reviewed snapshot, so a snapshot accepted again cannot
/// bless another code.
#[track_caller]
fn assert_refused(answer: &Value, code: &str, rule: Option<&str>) {
    let extensions = &answer["errors"][0]["extensions"];
    assert_eq!(extensions["code"], code, "{answer}");
    match rule {
        Some(rule) => assert_eq!(extensions["rule"], rule, "{answer}"),
        None => assert!(extensions.get("rule").is_none(), "no rule expected: {answer}"),
    }
}

#[track_caller]
fn ok(answer: Value) -> Value {
    assert!(answer.get("errors").is_none(), "unexpected errors: {answer}");
    answer
}

#[test]
fn the_schema_sdl_is_stable() {
    let store = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sdl = rt.block_on(async { sdl(&schema(AppState::new(store), true)) });
    insta::assert_snapshot!("schema_sdl", sdl);
}

#[tokio::test]
async fn sign_convention() {
    let api = Api::new();
    insta::assert_json_snapshot!("sign_convention", ok(api.run(SIGN, sign_input()).await));
}

#[tokio::test]
async fn sign_convention_twice_is_a_conflict() {
    let api = Api::new();
    ok(api.run(SIGN, sign_input()).await);
    let mut again = sign_input();
    again["commandId"] = json!(cmd(99));
    let answer = api.refused(SIGN, again).await;
    // The error's kind is never shadowed by a figure of the same name (the convention's code).
    assert_eq!(answer["errors"][0]["extensions"]["code"], "CONFLICT");
    assert_eq!(answer["errors"][0]["extensions"]["conventionCode"], "ANCT-UNIFORMATION-2021");
    insta::assert_json_snapshot!("sign_convention_conflict", answer);
}

#[tokio::test]
async fn sign_convention_with_shares_not_adding_up() {
    let api = Api::new();
    let mut input = sign_input();
    input["shares"][1]["amount"] = json!("1799999.99");
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("SharesDoNotAddUp"));
    insta::assert_json_snapshot!("sign_convention_shares", refused);
}

#[tokio::test]
async fn money_as_a_json_number_is_refused() {
    let api = Api::new();
    let mut input = sign_input();
    input["total"] = json!(4400000.10);
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("money_as_number", refused);
}

#[tokio::test]
async fn money_with_three_decimals_or_negative_is_refused() {
    let api = Api::new();
    let mut input = sign_input();
    input["total"] = json!("4400000.001");
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("money_three_decimals", refused);
    let mut input = sign_input();
    input["shares"][0]["amount"] = json!("-2600000");
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("money_negative", refused);
}

#[tokio::test]
async fn money_outside_the_one_grammar_is_refused_and_writes_nothing() {
    let api = Api::with_budget().await;
    for amount in ["1_000", "1_0.5_0", "+10", " 10", ".5", "5.", "0001", "10.500", "1e3"] {
        let answer = api.refused(COMMIT, commit_input(960, "GRAMMAR-1", amount)).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{amount:?}: {answer}");
        assert!(answer["errors"][0]["message"].as_str().unwrap().contains(amount), "{amount:?}: {answer}");
    }
}

#[tokio::test]
async fn dates_outside_yyyy_mm_dd_and_the_accepted_years_are_refused_and_write_nothing() {
    let api = Api::new();
    for date in
        ["2021-6-1", "0000-01-01", "-001-01-01", "10000-01-01", "1999-12-31", "2101-01-01", " 2021-03-15", "2021-02-30"]
    {
        let mut input = sign_input();
        input["signedOn"] = json!(date);
        let answer = api.refused(SIGN, input).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{date:?}: {answer}");
    }
    insta::assert_json_snapshot!("date_out_of_bounds", {
        let mut input = sign_input();
        input["signedOn"] = json!("1990-01-01");
        api.refused(SIGN, input).await
    });
}

#[tokio::test]
async fn a_step_dated_before_the_fact_it_depends_on_is_refused_with_both_dates() {
    let api = Api::with_budget().await;
    let mut input = commit_input(970, "EARLY-1", "10");
    input["committedOn"] = json!("2021-03-19");
    let answer = api.refused(COMMIT, input).await;
    let extensions = &answer["errors"][0]["extensions"];
    assert_eq!(extensions["code"], "BAD_USER_INPUT");
    assert_eq!(extensions["rule"], "DatedBefore");
    assert_eq!((&extensions["date"], &extensions["earlierDate"]), (&json!("2021-03-19"), &json!("2021-03-20")));
    insta::assert_json_snapshot!("commitment_before_allocation", answer);
}

#[tokio::test]
async fn long_texts_control_characters_and_bidi_overrides_are_refused_by_field_and_write_nothing() {
    let api = Api::new();
    for (field, text) in [
        ("partner", "P".repeat(100_000)),
        ("title", "Titre\u{0}caché".to_string()),
        ("code", "ANCT\u{202E}1202".to_string()),
    ] {
        let mut input = sign_input();
        input[field] = json!(text);
        let answer = api.refused(SIGN, input).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{field}: {answer}");
        assert_eq!(answer["errors"][0]["extensions"]["field"], format!("$input.{field}"), "{answer}");
    }
    // In the query's own arguments too.
    let inline = format!("{{ convention(code: \"{}\") {{ code }} }}", "X".repeat(MAX_TEXT_CHARS + 1));
    let answer = api.query(&inline).await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "convention(code)");
    let mut input = sign_input();
    input["partner"] = json!("P".repeat(100_000));
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("text_too_long", refused);
}

#[tokio::test]
async fn an_unknown_departement_is_refused() {
    let api = Api::new();
    let mut input = sign_input();
    input["departements"] = json!(["35", "20"]);
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("unknown_departement", refused);
}

#[tokio::test]
async fn a_malformed_date_is_refused() {
    let api = Api::new();
    let mut input = sign_input();
    input["signedOn"] = json!("15/03/2021");
    let refused = api.refused(SIGN, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("malformed_date", refused);
}

#[tokio::test]
async fn allocate_envelope_and_exceed_the_total() {
    let api = Api::new();
    ok(api.run(SIGN, sign_input()).await);
    let answer =
        ok(api.run(ALLOCATE, allocate_input(2, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000")).await);
    insta::assert_json_snapshot!("allocate_envelope", answer);
    let over = allocate_input(3, "Frais annexes", "ANNEX_COSTS", "400000.01");
    let refused = api.refused(ALLOCATE, over).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("EnvelopesExceedTotal"));
    insta::assert_json_snapshot!("allocate_envelope_over_total", refused);
}

#[tokio::test]
async fn financing_plans_say_who_pays_what_and_their_errors_write_nothing() {
    let api = Api::new();
    ok(api.run(SIGN, sign_input()).await);
    let code = |answer: &Value| {
        let e = &answer["errors"][0]["extensions"];
        (e["code"].as_str().unwrap_or("").to_string(), e["rule"].as_str().unwrap_or("").to_string())
    };
    // Two funders: the plan is needed.
    let mut none = allocate_input(2, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000");
    none.as_object_mut().unwrap().remove("financing");
    let refused = api.refused(ALLOCATE, none).await;
    assert_eq!(code(&refused), ("BAD_USER_INPUT".into(), "FinancingPlan".into()));
    insta::assert_json_snapshot!("allocate_envelope_without_plan", refused);
    // Rates adding up to 99.
    let mut short = allocate_input(3, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000");
    short["financing"] = json!([ { "funder": "ANCT", "rate": "55" }, { "funder": "Uniformation", "rate": "44" } ]);
    let refused = api.refused(ALLOCATE, short).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("FinancingPlan"));
    insta::assert_json_snapshot!("allocate_envelope_rates_short", refused);
    // Both a rate and an amount for one funder: refused by field before any command.
    let mut both = allocate_input(4, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000");
    both["financing"] = json!([ { "funder": "ANCT", "rate": "100", "amount": "4000000" } ]);
    let refused = api.refused(ALLOCATE, both).await;
    assert_eq!(refused["errors"][0]["extensions"]["field"], "financing");
    // All 4 M€ of trainings from ANCT: beyond its 2.6 M€ share.
    let mut greedy = allocate_input(5, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000");
    greedy["financing"] = json!([ { "funder": "ANCT", "rate": "100" } ]);
    let refused = api.refused(ALLOCATE, greedy).await;
    assert_eq!(code(&refused), ("BAD_USER_INPUT".into(), "FunderShareExceeded".into()));
    // By amounts, then read back with each funder's part of the envelope.
    let mut amounts = allocate_input(6, "Formations certifiantes", "CERTIFYING_TRAININGS", "4000000");
    amounts["financing"] =
        json!([ { "funder": "ANCT", "amount": "2200000" }, { "funder": "Uniformation", "amount": "1800000" } ]);
    ok(api.run(ALLOCATE, amounts).await);
    ok(api.run(ALLOCATE, allocate_input(7, "Frais annexes", "ANNEX_COSTS", "400000")).await);
    ok(api.run(COMMIT, commit_input(8, "ACHAT-1", "1000.01")).await);
    let plans = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name financing { funder rate amount } funders { funder figures { allocated committed } } } funders { funder figures { allocated committed } } } }"#)
        .await);
    insta::assert_json_snapshot!("envelope_financing_plans", plans);
    // An amendment moving 100 000 € from trainings to annex costs changes the trainings'
    // plan with it (a plan by amounts follows its envelope).
    let amend = |n: u128, financing: Value| {
        json!({ "commandId": cmd(n), "conventionId": convention_id(), "signedOn": "2021-11-02", "reason": "Avenant n°1",
                "envelopes": [ { "envelopeId": envelope_id("Formations certifiantes"), "amount": "3900000" },
                               { "envelopeId": envelope_id("Frais annexes"), "amount": "500000" } ],
                "financing": financing })
    };
    let refused = api.refused(AMEND, amend(9, json!([]))).await;
    assert_eq!(code(&refused), ("BAD_USER_INPUT".into(), "FinancingPlan".into()));
    let plan = json!([ { "envelopeId": envelope_id("Formations certifiantes"),
                         "parts": [ { "funder": "ANCT", "amount": "2100000" }, { "funder": "Uniformation", "amount": "1800000" } ] } ]);
    let amended = ok(api.run(AMEND, amend(10, plan)).await);
    assert_eq!(amended["errors"], Value::Null);
    let after = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { amendments { financing { envelope parts { funder amount } } } funders { funder figures { allocated committed } } } }"#)
        .await);
    insta::assert_json_snapshot!("amended_financing_plans", after);
}

#[tokio::test]
async fn a_malformed_convention_id_is_refused() {
    let api = Api::new();
    ok(api.run(SIGN, sign_input()).await);
    let mut input = allocate_input(2, "Formations", "OTHER", "10");
    input["conventionId"] = json!("ANCT-UNIFORMATION-2021");
    let refused = api.refused(ALLOCATE, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("malformed_convention_id", refused);
}

#[tokio::test]
async fn an_unknown_convention_is_not_found() {
    let api = Api::new();
    let input = allocate_input(2, "Formations", "OTHER", "10");
    let refused = api.refused(ALLOCATE, input).await;
    assert_refused(&refused, "NOT_FOUND", Some("NotFound"));
    insta::assert_json_snapshot!("unknown_convention", refused);
}

#[tokio::test]
async fn commit_funds_and_exceed_the_envelope() {
    let api = Api::with_budget().await;
    insta::assert_json_snapshot!("commit_funds", ok(api.run(COMMIT, commit_input(6, "ACHAT-0002", "1000")).await));
    let over = commit_input(7, "ACHAT-0003", "2486999.99");
    let refused = api.refused(COMMIT, over).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("EnvelopeExceeded"));
    insta::assert_json_snapshot!("commit_funds_exceeded", refused);
}

#[tokio::test]
async fn commit_funds_in_an_unknown_departement() {
    let api = Api::with_budget().await;
    let mut input = commit_input(6, "ACHAT-0002", "1000");
    input["departement"] = json!("975");
    let refused = api.refused(COMMIT, input).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("commit_funds_unknown_departement", refused);
}

#[tokio::test]
async fn sign_amendment_and_go_below_committed() {
    let api = Api::with_budget().await;
    let input = json!({
        "commandId": cmd(10), "conventionId": convention_id(), "signedOn": "2021-11-02",
        "reason": "Avenant n°1 : redéploiement vers les frais annexes",
        "total": "4600000",
        "shares": [ { "funder": "ANCT", "amount": "2800000" }, { "funder": "Uniformation", "amount": "1800000" } ],
        "periodEnd": "2023-06-30",
        "envelopes": [ { "envelopeId": envelope_id("Frais annexes"), "amount": "500000" } ],
    });
    insta::assert_json_snapshot!("sign_amendment", ok(api.run(AMEND, input).await));
    let below = json!({
        "commandId": cmd(11), "conventionId": convention_id(), "signedOn": "2021-12-01", "reason": "Avenant n°2",
        "envelopes": [ { "envelopeId": envelope_id("Formations certifiantes"), "amount": "12000" } ],
    });
    let refused = api.refused(AMEND, below).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("EnvelopeBelowCommitted"));
    insta::assert_json_snapshot!("sign_amendment_below_committed", refused);
}

#[tokio::test]
async fn release_serve_pay_and_close() {
    let api = Api::with_budget().await;
    let reference = |n: u128, date_field: &str, amount: &str| {
        let mut v = json!({ "commandId": cmd(n), "conventionId": convention_id(), "reference": "ACHAT-0001", "amount": amount });
        v[date_field] = json!("2021-06-30");
        v
    };
    insta::assert_json_snapshot!("record_service_done", ok(api.run(SERVE, reference(20, "doneOn", "10000.01")).await));
    let refused = api.refused(SERVE, reference(21, "doneOn", "2345.67")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("ServiceDoneExceedsCommitted"));
    insta::assert_json_snapshot!("record_service_done_exceeds_committed", refused);
    insta::assert_json_snapshot!("record_payment", ok(api.run(PAY, reference(22, "paidOn", "9000")).await));
    let refused = api.refused(PAY, reference(23, "paidOn", "1000.02")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("PaymentExceedsServiceDone"));
    insta::assert_json_snapshot!("record_payment_exceeds_service_done", refused);
    let close = json!({ "commandId": cmd(24), "conventionId": convention_id(), "closedOn": "2023-01-15" });
    let refused = api.refused(CLOSE, close.clone()).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("OpenCommitments"));
    insta::assert_json_snapshot!("close_convention_with_open_commitments", refused);
    let refused = api.refused(RELEASE, reference(25, "releasedOn", "2345.67")).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("ReleaseExceedsUnused"));
    insta::assert_json_snapshot!("release_funds_exceeds_unused", refused);
    insta::assert_json_snapshot!("release_funds", ok(api.run(RELEASE, reference(26, "releasedOn", "2345.66")).await));
    ok(api.run(PAY, reference(27, "paidOn", "1000.01")).await);
    let mut close = close;
    close["commandId"] = json!(cmd(28));
    insta::assert_json_snapshot!("close_convention", ok(api.run(CLOSE, close).await));
    let late = commit_input(29, "ACHAT-0009", "1");
    let refused = api.refused(COMMIT, late).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(refused["errors"][0]["extensions"]["rule"], "Closed");
    insta::assert_json_snapshot!("closed_convention_refuses_commands", refused);
}

#[tokio::test]
async fn a_retried_command_gets_the_same_answer_and_writes_nothing() {
    let api = Api::with_budget().await;
    let first = ok(api.run(COMMIT, commit_input(6, "ACHAT-0002", "1000")).await);
    let written = api.written();
    let again = ok(api.run(COMMIT, commit_input(6, "ACHAT-0002", "1000")).await);
    assert_eq!(api.written(), written);
    assert_eq!(again["data"]["commitFunds"]["position"], first["data"]["commitFunds"]["position"]);
    insta::assert_json_snapshot!("retried_command", again);
    let reused = api.refused(COMMIT, commit_input(6, "ACHAT-0003", "5")).await;
    insta::assert_json_snapshot!("reused_command_id", reused);
}

#[tokio::test]
async fn events_record_the_actor_and_the_command_id() {
    let api = Api::with_budget().await;
    let events = api.store.read_all(0, 100).await.unwrap();
    assert_eq!(events[0].metadata.actor, "anct:test (token 00000000)");
    assert_eq!(events[0].metadata.command_id.to_string(), cmd(1));
    assert_eq!(events[4].event_type, "FundsCommitted");
}

#[tokio::test]
async fn query_conventions_and_one_convention() {
    let api = Api::with_budget().await;
    insta::assert_json_snapshot!("query_conventions", ok(api.query("{ conventions { ...C } }").await));
    let by_code =
        ok(api.query(r#"{ convention(code: "anct-uniformation-2021") { code budget { committed } } }"#).await);
    insta::assert_json_snapshot!("query_convention_by_code", by_code);
    let by_id = ok(api.query(&format!(r#"{{ convention(id: "{}") {{ code }} }}"#, convention_id())).await);
    assert_eq!(by_id["data"]["convention"]["code"], "ANCT-UNIFORMATION-2021");
    let missing = ok(api.query(&format!(r#"{{ convention(id: "{}") {{ code }} }}"#, cmd(404))).await);
    insta::assert_json_snapshot!("query_convention_missing", missing);
    let both = api.query(r#"{ convention(id: "x", code: "y") { code } }"#).await;
    insta::assert_json_snapshot!("query_convention_bad_arguments", both);
}

#[tokio::test]
async fn syntax_errors_and_over_deep_queries_get_a_code() {
    let api = Api::new();
    insta::assert_json_snapshot!("syntax_error", api.query("{ conventions { code ").await);
    insta::assert_json_snapshot!("unknown_field", api.query("{ conventions { nope } }").await);
}

/// The introspection query GraphiQL sends when it opens (graphql-js `getIntrospectionQuery`
/// with its usual options): it must pass the depth and complexity limits.
const INTROSPECTION: &str = "
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}";

#[tokio::test]
async fn graphiql_introspection_passes_the_limits_and_abusive_depth_does_not() {
    let api = Api::new();
    let answer = api.query(INTROSPECTION).await;
    assert!(answer.get("errors").is_none(), "{}", answer["errors"]);
    assert!(answer["data"]["__schema"]["types"].as_array().unwrap().len() > 20);
    let deep = format!(
        "{{ {}__typename{} }}",
        "__schema { queryType { fields { type { ofType { ".repeat(5),
        " } } } } }".repeat(5)
    );
    insta::assert_json_snapshot!("over_deep_query", api.query(&deep).await);
}

// --- Access control -------------------------------------------------------------------

/// One request per operation, valid enough to reach its resolver.
fn every_operation() -> Vec<(Operation, &'static str, Value)> {
    vec![
        (Operation::Conventions, "{ conventions { code } }", json!(null)),
        (Operation::Convention, r#"{ convention(code: "ANCT-UNIFORMATION-2021") { code } }"#, json!(null)),
        (
            Operation::SignConvention,
            "mutation($input: SignConventionInput!) { signConvention(input: $input) { position } }",
            {
                let mut i = sign_input();
                i["code"] = json!("MATRIX-TEST");
                i["commandId"] = json!(uuid::Uuid::new_v4().to_string());
                i
            },
        ),
        (Operation::AllocateEnvelope, ALLOCATE, allocate_input(900, "Matrice", "OTHER", "1")),
        (
            Operation::SignAmendment,
            AMEND,
            json!({ "conventionId": convention_id(), "signedOn": "2021-12-01", "reason": "Matrice", "periodEnd": "2023-12-31" }),
        ),
        (Operation::CommitFunds, COMMIT, commit_input(901, "MATRICE-1", "1")),
        (
            Operation::ReleaseFunds,
            RELEASE,
            json!({ "conventionId": convention_id(), "reference": "ACHAT-0001", "amount": "1", "releasedOn": "2021-06-30" }),
        ),
        (
            Operation::RecordServiceDone,
            SERVE,
            json!({ "conventionId": convention_id(), "reference": "ACHAT-0001", "amount": "1", "doneOn": "2021-06-30" }),
        ),
        (
            Operation::RecordPayment,
            PAY,
            json!({ "conventionId": convention_id(), "reference": "ACHAT-0000", "amount": "1", "paidOn": "2021-06-30" }),
        ),
        (Operation::CloseConvention, CLOSE, json!({ "conventionId": convention_id(), "closedOn": "2023-01-15" })),
        (Operation::Structures, "{ structures { name } }", json!(null)),
        (Operation::Structure, "{ structure(id: \"00000000-0000-0000-0000-000000000000\") { name } }", json!(null)),
        (Operation::RegisterStructure, REGISTER, register_input(902, BORDEAUX)),
        (Operation::Purchases, "{ purchases { title } }", json!(null)),
        (Operation::Purchase, "{ purchase(id: \"00000000-0000-0000-0000-000000000000\") { title } }", json!(null)),
        (Operation::RequestPurchase, REQUEST, purchase_input(903, 12)),
        (Operation::ApprovePurchase, APPROVE, json!({ "purchaseId": purchase(701), "approvedOn": "2021-04-20" })),
        (
            Operation::RecordAttendance,
            ATTEND,
            json!({ "purchaseId": purchase(700), "present": 9, "recordedOn": "2021-06-25" }),
        ),
        (
            Operation::RecordPurchasePayment,
            PAY_PURCHASE,
            json!({ "purchaseId": purchase(702), "paidOn": "2021-07-15" }),
        ),
        (
            Operation::CancelPurchase,
            CANCEL,
            json!({ "purchaseId": purchase(701), "reason": "Session annulée", "cancelledOn": "2021-05-01" }),
        ),
        (Operation::PixCampaigns, "{ pixCampaigns { bought } }", json!(null)),
        (Operation::OpenPixCampaign, OPEN_PIX, pix_input(904, convention_id(), 10)),
        (Operation::RecordPixCertification, CERTIFY, certify_input(905, campaign(660), "C-9", 700)),
        (Operation::CcasActions, "{ ccasActions { title } }", json!(null)),
        (Operation::RecordCcasAction, CCAS, ccas_input(906, convention_id(), CCAS_BREST)),
        (Operation::AidantsConnectSessions, "{ aidantsConnectSessions { capacity } }", json!(null)),
        (Operation::Habilitations, "{ habilitations { aidant } }", json!(null)),
        (Operation::OpenAidantsConnectSession, OPEN_SESSION, session_input(907, convention_id(), 5)),
        (Operation::RequestHabilitation, REQUEST_HABILITATION, habilitation_request(908, BREST, "A-9")),
        (
            Operation::ValidateEligibility,
            HABILITATION_STEP.replace("STEP", "validateEligibility").leak(),
            hstep(909, "A-1", json!({})),
        ),
        (
            Operation::RefuseHabilitation,
            HABILITATION_STEP.replace("STEP", "refuseHabilitation").leak(),
            hstep(910, "A-1", json!({ "reason": "Hors périmètre" })),
        ),
        (
            Operation::CancelHabilitation,
            HABILITATION_STEP.replace("STEP", "cancelHabilitation").leak(),
            hstep(911, "A-1", json!({ "reason": "Abandon" })),
        ),
        (
            Operation::RegisterToSession,
            REGISTER_TO_SESSION,
            json!({ "commandId": cmd(912), "habilitationId": habilitation("A-2"), "sessionId": session(670), "on": "2021-05-01" }),
        ),
        (
            Operation::CompleteTraining,
            HABILITATION_STEP.replace("STEP", "completeTraining").leak(),
            hstep(913, "A-3", json!({})),
        ),
        (
            Operation::Habilitate,
            HABILITATION_STEP.replace("STEP", "habilitate").leak(),
            hstep(914, "A-4", json!({ "means": "CARD" })),
        ),
        (
            Operation::RevokeHabilitation,
            HABILITATION_STEP.replace("STEP", "revokeHabilitation").leak(),
            hstep(915, "A-5", json!({ "reason": "Départ" })),
        ),
    ]
    .into_iter()
    .chain(claims::matrix_operations())
    .chain(dashboard::matrix_operations())
    .chain(report::matrix_operations())
    .chain(measures::matrix_operations())
    .chain(disbursements::matrix_operations())
    .chain(personal::matrix_operations())
    .collect()
}

#[tokio::test]
async fn every_operation_with_every_role_follows_the_matrix() {
    let operations = every_operation();
    assert_eq!(operations.len(), MATRIX.len(), "every operation of the matrix is tried");
    for (operation, query, input) in &operations {
        // The roles refused share one fixture (a refusal writes nothing, which is checked);
        // each role allowed gets a fresh one, as its command changes the state.
        let mut shared: Option<Api> = None;
        for role in Role::ALL {
            let fresh;
            let api = if auth::allowed(role, *operation) {
                fresh = Api::for_matrix().await;
                &fresh
            } else {
                if shared.is_none() {
                    shared = Some(Api::for_matrix().await);
                }
                shared.as_ref().expect("just built")
            };
            let before = api.written();
            let request = async_graphql::Request::new(*query)
                .variables(async_graphql::Variables::from_json(json!({ "input": input })));
            let principal = if role == Role::Structure { brest_principal() } else { Principal::local(role, "matrix") };
            let answer = if query.starts_with("subscription") {
                use futures::StreamExt;
                let first = api.schema.execute_stream(request.data(principal)).next().await.unwrap();
                serde_json::to_value(first).unwrap()
            } else {
                serde_json::to_value(execute(&api.schema, request, principal).await).unwrap()
            };
            let forbidden =
                answer["errors"].as_array().is_some_and(|e| e.iter().any(|e| e["extensions"]["code"] == "FORBIDDEN"));
            let expected = !auth::allowed(role, *operation);
            assert_eq!(forbidden, expected, "{} by {}: {answer}", operation.name(), role.name());
            if forbidden {
                assert_eq!(api.written(), before, "a forbidden {} wrote events", operation.name());
                assert_eq!(answer["data"], Value::Null);
            } else {
                // Allowed: the resolver ran. It may still refuse on a business rule (closing
                // with open commitments), never on access.
                let codes: Vec<&Value> = answer["errors"]
                    .as_array()
                    .map(|e| e.iter().map(|e| &e["extensions"]["code"]).collect())
                    .unwrap_or_default();
                assert!(
                    codes.iter().all(|c| *c == "BAD_USER_INPUT"),
                    "{} by {}: {answer}",
                    operation.name(),
                    role.name()
                );
                if *operation != Operation::CloseConvention {
                    assert!(
                        answer.get("errors").is_none(),
                        "{} by {} should succeed: {answer}",
                        operation.name(),
                        role.name()
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_forbidden_mutation_says_so_and_writes_nothing() {
    let api = Api::with_budget().await;
    let before = api.written();
    let request = async_graphql::Request::new(COMMIT)
        .variables(async_graphql::Variables::from_json(json!({ "input": commit_input(950, "X-1", "1") })));
    let answer =
        serde_json::to_value(execute(&api.schema, request, Principal::local(Role::Copil, "carol")).await).unwrap();
    assert_eq!(api.written(), before);
    insta::assert_json_snapshot!("forbidden_mutation", answer);
}

#[test]
fn the_readme_shows_the_access_matrix_of_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(readme.contains(&matrix_markdown()), "README.md must contain:\n{}", matrix_markdown());
}

#[tokio::test]
async fn introspection_is_off_unless_enabled() {
    let store = Arc::new(MemoryStore::new());
    let closed = schema(AppState::new(store), false);
    let answer = execute(
        &closed,
        async_graphql::Request::new("{ __schema { types { name } } }"),
        Principal::local(Role::Auditor, "a"),
    )
    .await;
    insta::assert_json_snapshot!("introspection_disabled", serde_json::to_value(answer).unwrap());
}

// --- Structures -------------------------------------------------------------------------

const BREST: &str = "73282932000074";
/// A CCAS (a public employer: it holds CCAS actions, and buys no training on the OPCO channel).
const CCAS_BREST: &str = "21290019000019";

fn brest_principal() -> Principal {
    let mut principal = Principal::local(Role::Structure, "brest");
    principal.structure = Some(uuid::Uuid::parse_str(&structure_id(BREST)).unwrap());
    principal
}
const BORDEAUX: &str = "35600000000001";

fn register_input(n: u128, siret: &str) -> Value {
    json!({ "commandId": cmd(n), "name": format!("Structure {siret}"), "siret": siret, "kind": "ASSOCIATION",
            "departement": if siret.replace(' ', "") == BREST { "29" } else { "33" }, "headCount": "SMALL", "registeredOn": "2021-04-01" })
}

fn structure_id(siret: &str) -> String {
    domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(siret).unwrap()).to_string()
}

#[tokio::test]
async fn register_structure_and_its_errors() {
    let api = Api::new();
    insta::assert_json_snapshot!(
        "register_structure",
        ok(api.run(REGISTER, register_input(1, "732 829 320 00074")).await)
    );
    let mut again = register_input(2, BREST);
    again["name"] = json!("Doublon");
    let refused = api.refused(REGISTER, again).await;
    assert_refused(&refused, "CONFLICT", Some("AlreadyRegistered"));
    insta::assert_json_snapshot!("register_structure_twice", refused);
    let refused = api.refused(REGISTER, register_input(3, "73282932000075")).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("register_structure_bad_siret", refused);
    let refused = api.refused(REGISTER, register_input(5, "7328293200007")).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("register_structure_13_digit_siret", refused);
    let mut unknown = register_input(4, BORDEAUX);
    unknown["departement"] = json!("20");
    let refused = api.refused(REGISTER, unknown).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("register_structure_unknown_departement", refused);
}

#[tokio::test]
async fn a_structure_sees_only_itself_and_others_answer_as_if_absent() {
    let api = Api::new();
    ok(api.run(REGISTER, register_input(1, BREST)).await);
    ok(api.run(REGISTER, register_input(2, BORDEAUX)).await);
    let brest = Principal {
        role: Role::Structure,
        structure: Some(uuid::Uuid::parse_str(&structure_id(BREST)).unwrap()),
        label: "CCAS de Brest".into(),
        token_id: uuid::Uuid::nil(),
        person: None,
    };
    let as_brest = |query: String| {
        let (schema, brest) = (api.schema.clone(), brest.clone());
        async move { serde_json::to_value(execute(&schema, async_graphql::Request::new(query), brest).await).unwrap() }
    };
    let list = as_brest("{ structures { name siret } }".into()).await;
    insta::assert_json_snapshot!("structures_seen_by_a_structure", list);
    let own = as_brest(format!("{{ structure(id: \"{}\") {{ name }} }}", structure_id(BREST))).await;
    assert_eq!(own["data"]["structure"]["name"], format!("Structure {BREST}"));
    let other = as_brest(format!("{{ structure(id: \"{}\") {{ name }} }}", structure_id(BORDEAUX))).await;
    let missing = as_brest(format!("{{ structure(id: \"{}\") {{ name }} }}", cmd(404))).await;
    assert_eq!(other, missing, "another structure's data answers exactly as if it did not exist");
    assert_eq!(other["data"]["structure"], Value::Null);
    // Other roles see every structure, and can filter by département.
    insta::assert_json_snapshot!(
        "structures_of_a_departement",
        ok(api.query(r#"{ structures(departement: "33") { name departement { code name } small } }"#).await)
    );
    insta::assert_json_snapshot!(
        "structures_unknown_departement",
        api.query(r#"{ structures(departement: "99") { name } }"#).await
    );
}

// --- Training purchases ---------------------------------------------------------------

const PURCHASE_FIELDS: &str = "id status reference departement { code name region { code name } } provider title certifying certification blocks metier hours trainees present unitCost total committed serviceDone paid released warning sessionStart sessionEnd requestedOn approvedOn cancelReason structure { name }";
const REQUEST: &str = "mutation($input: RequestPurchaseInput!) { requestPurchase(input: $input) { commandId position duplicate purchase { id status total warning } } }";
const APPROVE: &str = "mutation($input: ApprovePurchaseInput!) { approvePurchase(input: $input) { position purchase { status committed approvedOn } } }";
const ATTEND: &str = "mutation($input: RecordAttendanceInput!) { recordAttendance(input: $input) { position purchase { status present serviceDone released } } }";
const PAY_PURCHASE: &str = "mutation($input: RecordPurchasePaymentInput!) { recordPurchasePayment(input: $input) { position purchase { status paid } } }";
const CANCEL: &str = "mutation($input: CancelPurchaseInput!) { cancelPurchase(input: $input) { position purchase { status released cancelReason } } }";

fn purchase(n: u128) -> String {
    domain::purchase::PurchaseId::for_request(domain::CommandId(uuid::Uuid::from_u128(n))).to_string()
}

fn purchase_input(n: u128, trainees: u32) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention_id(), "structureId": structure_id(BREST),
            "provider": "Simplon", "title": "Responsable d'espace de médiation numérique", "certification": "RNCP34587",
            "blocks": [1, 4, 5], "metier": "MEDIATEUR_NUMERIQUE", "hours": 140, "trainees": trainees,
            "unitCost": "1250.50", "sessionStart": "2021-05-03", "sessionEnd": "2021-06-25", "requestedOn": "2021-04-15" })
}

impl Api {
    /// A convention with envelopes, a registered structure (Brest), and purchases in each
    /// state: 700 approved, 701 requested, 702 attended.
    async fn for_matrix() -> Self {
        let api = Self::with_budget().await;
        personal::matrix_person(&api);
        // A commitment already served, so that a payment can be recorded on it.
        ok(api.run(COMMIT, commit_input(610, "ACHAT-0000", "10")).await);
        let serve = json!({ "commandId": cmd(611), "conventionId": convention_id(), "reference": "ACHAT-0000",
                            "amount": "10", "doneOn": "2021-06-30" });
        ok(api.run(SERVE, serve).await);
        ok(api.run(REGISTER, register_input(600, BREST)).await);
        let mut ccas = register_input(609, CCAS_BREST);
        ccas["kind"] = json!("CCAS_CIAS");
        ok(api.run(REGISTER, ccas).await);
        for n in [700, 701, 702] {
            ok(api.run(REQUEST, purchase_input(n, 10)).await);
        }
        for n in [700, 702] {
            ok(api
                .run(
                    APPROVE,
                    json!({ "commandId": cmd(n + 100), "purchaseId": purchase(n), "approvedOn": "2021-04-20" }),
                )
                .await);
        }
        ok(api.run(ATTEND, json!({ "commandId": cmd(650), "purchaseId": purchase(702), "present": 10, "recordedOn": "2021-06-25" })).await);
        // Room for a Pix campaign and a CCAS action on the same convention.
        ok(api.run(ALLOCATE, allocate_input(651, "Certifications Pix", "CERTIFICATIONS", "50000")).await);
        ok(api.run(ALLOCATE, allocate_input(652, "Actions CCAS", "CCAS_ACTIONS", "40000")).await);
        ok(api.run(OPEN_PIX, pix_input(660, convention_id(), 10)).await);
        measures::matrix_measures(&api).await;
        // Aidants Connect: a session, and aidants A-1…A-5 at each stage.
        ok(api
            .run(ALLOCATE, allocate_input(653, "Formation Aidants Connect", "AIDANTS_CONNECT_TRAINING", "9000"))
            .await);
        ok(api.run(OPEN_SESSION, session_input(670, convention_id(), 10)).await);
        for (i, aidant) in ["A-1", "A-2", "A-3", "A-4", "A-5"].into_iter().enumerate() {
            let n = 1000 + 10 * i as u128;
            ok(api.run(REQUEST_HABILITATION, habilitation_request(n, BREST, aidant)).await);
            let steps = [
                ("validateEligibility", json!({})),
                ("registerToSession", json!({ "sessionId": session(670) })),
                ("completeTraining", json!({})),
                ("habilitate", json!({ "means": "APP" })),
            ];
            for (k, (name, extra)) in steps.into_iter().take(i).enumerate() {
                let query = if name == "registerToSession" {
                    REGISTER_TO_SESSION.to_string()
                } else {
                    HABILITATION_STEP.replace("STEP", name)
                };
                ok(api.run(&query, hstep(n + 1 + k as u128, aidant, extra)).await);
            }
        }
        claims::matrix_fixture(&api).await;
        disbursements::matrix_fixture(&api).await;
        api.saga_settled().await;
        api
    }

    /// Waits until the saga has acted on every event, its own included, so that what a
    /// test reads next does not depend on whether its background writes came first.
    async fn saga_settled(&self) {
        let saga = self.state.saga.clone().expect("the tests' API runs the saga");
        loop {
            let head = self.written();
            assert!(saga.wait_for(head, std::time::Duration::from_secs(10)).await, "the saga keeps up");
            if self.written() == head {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_purchase_goes_from_request_to_payment_and_moves_the_convention_money() {
    let api = Api::with_budget().await;
    ok(api.run(REGISTER, register_input(600, BREST)).await);
    insta::assert_json_snapshot!("request_purchase", ok(api.run(REQUEST, purchase_input(700, 16)).await));
    let approve = json!({ "commandId": cmd(701), "purchaseId": purchase(700), "approvedOn": "2021-04-20" });
    insta::assert_json_snapshot!("approve_purchase", ok(api.run(APPROVE, approve.clone()).await));
    // Retrying the approval gives the same answer and commits nothing twice.
    let written = api.written();
    let again = ok(api.run(APPROVE, approve).await);
    assert_eq!(api.written(), written);
    assert_eq!(again["data"]["approvePurchase"]["purchase"]["status"], "APPROVED");
    let attend =
        json!({ "commandId": cmd(702), "purchaseId": purchase(700), "present": 12, "recordedOn": "2021-06-25" });
    insta::assert_json_snapshot!("record_attendance", ok(api.run(ATTEND, attend).await));
    let pay = json!({ "commandId": cmd(703), "purchaseId": purchase(700), "paidOn": "2021-07-15" });
    insta::assert_json_snapshot!("record_purchase_payment", ok(api.run(PAY_PURCHASE, pay).await));
    // The convention's certifying envelope shows the purchase's money.
    let budget = ok(api.query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { committed serviceDone paid available } } } }"#).await);
    insta::assert_json_snapshot!("convention_after_a_purchase", budget);
    insta::assert_json_snapshot!(
        "query_purchases",
        ok(api.query(&format!("{{ purchases {{ {PURCHASE_FIELDS} }} }}")).await)
    );
    // The 12 trainees present count towards the convention's 2 000.
    let targets = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { targets { kind quantity reached reachedPercent } } }"#)
        .await);
    insta::assert_json_snapshot!("convention_targets_after_a_purchase", targets);
}

#[tokio::test]
async fn purchase_errors_are_clear_and_write_nothing() {
    let api = Api::with_budget().await;
    ok(api.run(REGISTER, register_input(600, BREST)).await);
    let mut unknown = purchase_input(700, 10);
    unknown["structureId"] = json!(structure_id(BORDEAUX));
    let refused = api.refused(REQUEST, unknown).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("request_purchase_unknown_structure", refused);
    let mut no_block = purchase_input(701, 10);
    no_block["blocks"] = json!([]);
    let refused = api.refused(REQUEST, no_block).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NoBlock"));
    insta::assert_json_snapshot!("request_purchase_no_block", refused);
    let refused = api.refused(REQUEST, purchase_input(702, 0)).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("Zero"));
    insta::assert_json_snapshot!("request_purchase_zero_trainees", refused);
    let mut bad_block = purchase_input(703, 10);
    bad_block["blocks"] = json!([10]);
    let refused = api.refused(REQUEST, bad_block).await;
    assert_refused(&refused, "BAD_USER_INPUT", None);
    insta::assert_json_snapshot!("request_purchase_bad_block", refused);
    // An approval the envelope cannot cover: refused with the figures, nothing written.
    let mut huge = purchase_input(704, 15);
    huge["unitCost"] = json!("200000");
    ok(api.run(REQUEST, huge).await);
    let approve = json!({ "commandId": cmd(705), "purchaseId": purchase(704), "approvedOn": "2021-04-20" });
    let refused = api.refused(APPROVE, approve).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("EnvelopeExceeded"));
    insta::assert_json_snapshot!("approve_purchase_envelope_exceeded", refused);
    let attend =
        json!({ "commandId": cmd(706), "purchaseId": purchase(704), "present": 3, "recordedOn": "2021-06-25" });
    let refused = api.refused(ATTEND, attend).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("WrongState"));
    insta::assert_json_snapshot!("record_attendance_before_approval", refused);
    // A public employer (a CCAS, read from its stream) is refused by the rule's name.
    let mut ccas = register_input(707, BORDEAUX);
    ccas["kind"] = json!("CCAS_CIAS");
    ok(api.run(REGISTER, ccas).await);
    let mut public = purchase_input(708, 10);
    public["structureId"] = json!(structure_id(BORDEAUX));
    let refused = api.refused(REQUEST, public).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(refused["errors"][0]["extensions"]["rule"], "PrivateEmployersOnly");
    insta::assert_json_snapshot!("request_purchase_public_employer", refused);
}

#[tokio::test]
async fn cancelling_an_approved_purchase_gives_its_money_back() {
    let api = Api::with_budget().await;
    ok(api.run(REGISTER, register_input(600, BREST)).await);
    ok(api.run(REQUEST, purchase_input(700, 10)).await);
    ok(api
        .run(APPROVE, json!({ "commandId": cmd(701), "purchaseId": purchase(700), "approvedOn": "2021-04-20" }))
        .await);
    let cancel = json!({ "commandId": cmd(702), "purchaseId": purchase(700), "reason": "Session annulée", "cancelledOn": "2021-05-01" });
    insta::assert_json_snapshot!("cancel_purchase", ok(api.run(CANCEL, cancel).await));
    let budget = ok(api
        .query(
            r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { committed available } } } }"#,
        )
        .await);
    assert_eq!(
        budget["data"]["convention"]["envelopes"][0]["figures"]["committed"], "12345.67",
        "back to the one earlier commitment"
    );
}

#[tokio::test]
async fn a_structure_sees_only_its_own_purchases() {
    let api = Api::for_matrix().await;
    ok(api.run(REGISTER, register_input(601, BORDEAUX)).await);
    let bordeaux = Principal {
        role: Role::Structure,
        structure: Some(uuid::Uuid::parse_str(&structure_id(BORDEAUX)).unwrap()),
        label: "Bordeaux".into(),
        token_id: uuid::Uuid::nil(),
        person: None,
    };
    let list = execute(&api.schema, async_graphql::Request::new("{ purchases { title } }"), bordeaux.clone()).await;
    assert_eq!(serde_json::to_value(list).unwrap()["data"]["purchases"], json!([]));
    let one = execute(
        &api.schema,
        async_graphql::Request::new(format!("{{ purchase(id: \"{}\") {{ title }} }}", purchase(700))),
        bordeaux,
    )
    .await;
    assert_eq!(serde_json::to_value(one).unwrap()["data"]["purchase"], Value::Null);
}

// --- Pix certifications and CCAS actions ----------------------------------------------

const OPEN_PIX: &str = "mutation($input: OpenPixCampaignInput!) { openPixCampaign(input: $input) { commandId position duplicate campaign { id public bought used unitPrice total meanScore openedOn } } }";
const CERTIFY: &str = "mutation($input: RecordPixCertificationInput!) { recordPixCertification(input: $input) { position campaign { bought used meanScore certifications { candidate score departement { code name region { name } } certifiedOn } } } }";
const CCAS: &str = "mutation($input: RecordCcasActionInput!) { recordCcasAction(input: $input) { commandId position ccasAction { id title agents managers blocks cost heldOn departement { code name region { code name } } } } }";

fn campaign(n: u128) -> String {
    domain::pix::CampaignId::for_command(domain::CommandId(uuid::Uuid::from_u128(n))).0.to_string()
}

fn pix_input(n: u128, convention: String, certifications: u32) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "public": "AIDANTS_NUMERIQUES",
            "certifications": certifications, "unitPrice": "45.50", "openedOn": "2021-04-01" })
}

fn certify_input(n: u128, campaign: String, candidate: &str, score: u32) -> Value {
    json!({ "commandId": cmd(n), "campaignId": campaign, "candidate": candidate, "structureId": structure_id(BREST),
            "score": score, "certifiedOn": "2021-06-01" })
}

fn ccas_input(n: u128, convention: String, siret: &str) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "structureId": structure_id(siret),
            "title": "Accueillir et orienter vers les démarches en ligne", "agents": 6, "managers": 1,
            "blocks": [3, 6], "cost": "2400", "heldOn": "2021-09-14" })
}

/// Signs a one-envelope convention of the plan (Pix or UNCCAS) and returns its id.
async fn sign_single(api: &Api, n: u128, code: &str, total: &str, envelope: &str, kind: &str) -> String {
    let mut input = sign_input();
    input["commandId"] = json!(cmd(n));
    input["code"] = json!(code);
    input["total"] = json!(total);
    input["shares"] = json!([{ "funder": "ANCT", "amount": total }]);
    input["targets"] = json!([]);
    ok(api.run("mutation($input: SignConventionInput!) { signConvention(input: $input) { position } }", input).await);
    let id = domain::ConventionId::for_code(code).to_string();
    let allocate = json!({ "commandId": cmd(n + 1), "conventionId": id, "name": envelope, "kind": kind, "amount": total, "allocatedOn": "2021-03-22" });
    ok(api.run(ALLOCATE, allocate).await);
    id
}

#[tokio::test]
async fn a_pix_campaign_commits_then_each_certification_is_service_done() {
    let api = Api::new();
    let pix = sign_single(&api, 500, "ANCT-PIX-2021", "370000", "Certifications Pix", "CERTIFICATIONS").await;
    ok(api.run(REGISTER, register_input(510, BREST)).await);
    insta::assert_json_snapshot!("open_pix_campaign", ok(api.run(OPEN_PIX, pix_input(520, pix.clone(), 2)).await));
    ok(api.run(CERTIFY, certify_input(521, campaign(520), "AIDANT-0001", 812)).await);
    insta::assert_json_snapshot!(
        "record_pix_certification",
        ok(api.run(CERTIFY, certify_input(522, campaign(520), "AIDANT-0002", 430)).await)
    );
    let refused = api.refused(CERTIFY, certify_input(523, campaign(520), "AIDANT-0003", 500)).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("AllUsed"));
    insta::assert_json_snapshot!("record_pix_certification_over_bought", refused);
    let refused = api.refused(CERTIFY, certify_input(524, campaign(520), "AIDANT-0004", 1025)).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("ScoreOverMax"));
    insta::assert_json_snapshot!("record_pix_certification_score_over_1024", refused);
    let refused = api.refused(CERTIFY, certify_input(525, campaign(999), "AIDANT-0005", 500)).await;
    assert_refused(&refused, "NOT_FOUND", Some("NotFound"));
    insta::assert_json_snapshot!("record_pix_certification_unknown_campaign", refused);
    let budget =
        ok(api.query(r#"{ convention(code: "ANCT-PIX-2021") { budget { committed serviceDone available } } }"#).await);
    insta::assert_json_snapshot!("pix_convention_budget", budget);
    insta::assert_json_snapshot!(
        "query_pix_campaigns",
        ok(api.query("{ pixCampaigns { public bought used meanScore total } }").await)
    );
}

#[tokio::test]
async fn a_ccas_action_is_committed_and_done_on_the_unccas_convention() {
    let api = Api::new();
    let unccas = sign_single(&api, 500, "ANCT-UNCCAS-2021", "500000", "Actions CCAS", "CCAS_ACTIONS").await;
    let mut ccas = register_input(510, BREST);
    ccas["kind"] = json!("CCAS_CIAS");
    ok(api.run(REGISTER, ccas).await);
    let mut association = register_input(511, BORDEAUX);
    association["kind"] = json!("ASSOCIATION");
    ok(api.run(REGISTER, association).await);
    insta::assert_json_snapshot!("record_ccas_action", ok(api.run(CCAS, ccas_input(520, unccas.clone(), BREST)).await));
    let refused = api.refused(CCAS, ccas_input(521, unccas.clone(), BORDEAUX)).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NotACcas"));
    insta::assert_json_snapshot!("record_ccas_action_not_a_ccas", refused);
    let mut no_block = ccas_input(522, unccas.clone(), BREST);
    no_block["blocks"] = json!([]);
    let refused = api.refused(CCAS, no_block).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NoBlock"));
    insta::assert_json_snapshot!("record_ccas_action_no_block", refused);
    let budget = ok(api
        .query(r#"{ convention(code: "ANCT-UNCCAS-2021") { budget { committed serviceDone available } } }"#)
        .await);
    assert_eq!(budget["data"]["convention"]["budget"]["serviceDone"], "2400.00");
    insta::assert_json_snapshot!(
        "query_ccas_actions",
        ok(api.query("{ ccasActions { title agents managers cost departement { code } } }").await)
    );
}

// --- Aidants Connect ---------------------------------------------------------------------

const OPEN_SESSION: &str = "mutation($input: OpenAidantsConnectSessionInput!) { openAidantsConnectSession(input: $input) { commandId position session { id capacity seatsTaken seatCost heldOn } } }";
const REQUEST_HABILITATION: &str = "mutation($input: RequestHabilitationInput!) { requestHabilitation(input: $input) { commandId position habilitation { id aidant cycle status departement { code name } requestedOn } } }";
const REGISTER_TO_SESSION: &str = "mutation($input: RegisterToSessionInput!) { registerToSession(input: $input) { position habilitation { status sessionId } session { capacity seatsTaken } } }";
const HABILITATION_STEP: &str = "mutation($input: HabilitationStepInput!) { STEP(input: $input) { position habilitation { status cycle means habilitatedOn reason } } }";

fn session(n: u128) -> String {
    domain::aidants::SessionId::for_command(domain::CommandId(uuid::Uuid::from_u128(n))).0.to_string()
}

fn habilitation(aidant: &str) -> String {
    let structure = domain::structure::StructureId::parse(&structure_id(BREST)).unwrap();
    // The log names the aidant by the id the (in-memory, deriving) directory issued.
    let id = store::directory::derived_id(store::PersonKind::Aidant, &structure.0.to_string(), aidant);
    domain::aidants::HabilitationId::of(structure, &id.to_string()).0.to_string()
}

fn session_input(n: u128, convention: String, capacity: u32) -> Value {
    json!({ "commandId": cmd(n), "conventionId": convention, "capacity": capacity, "seatCost": "125", "heldOn": "2021-05-10" })
}

fn habilitation_request(n: u128, siret: &str, aidant: &str) -> Value {
    json!({ "commandId": cmd(n), "structureId": structure_id(siret), "aidant": aidant, "requestedOn": "2021-04-01" })
}

fn hstep(n: u128, aidant: &str, extra: Value) -> Value {
    let mut v = json!({ "commandId": cmd(n), "habilitationId": habilitation(aidant), "on": "2021-05-10" });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[tokio::test]
async fn an_aidant_goes_from_request_to_habilitation_and_the_seat_is_charged() {
    let api = Api::new();
    let ac = sign_single(
        &api,
        500,
        "ANCT-AIDANTS-CONNECT-2021",
        "2500000",
        "Formation Aidants Connect",
        "AIDANTS_CONNECT_TRAINING",
    )
    .await;
    ok(api.run(REGISTER, register_input(510, BREST)).await);
    insta::assert_json_snapshot!(
        "open_aidants_connect_session",
        ok(api.run(OPEN_SESSION, session_input(520, ac.clone(), 1)).await)
    );
    insta::assert_json_snapshot!(
        "request_habilitation",
        ok(api.run(REQUEST_HABILITATION, habilitation_request(521, BREST, "aidant-42")).await)
    );
    let step = |name: &str| HABILITATION_STEP.replace("STEP", name);
    // No completed training, no habilitation.
    let refused = api.refused(&step("habilitate"), hstep(522, "AIDANT-42", json!({ "means": "CARD" }))).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("NoCompletedTraining"));
    insta::assert_json_snapshot!("habilitate_without_training", refused);
    ok(api.run(&step("validateEligibility"), hstep(523, "AIDANT-42", json!({}))).await);
    let register = json!({ "commandId": cmd(524), "habilitationId": habilitation("AIDANT-42"), "sessionId": session(520), "on": "2021-04-20" });
    insta::assert_json_snapshot!("register_to_session", ok(api.run(REGISTER_TO_SESSION, register).await));
    insta::assert_json_snapshot!(
        "complete_training",
        ok(api.run(&step("completeTraining"), hstep(525, "AIDANT-42", json!({}))).await)
    );
    insta::assert_json_snapshot!(
        "habilitate",
        ok(api.run(&step("habilitate"), hstep(526, "AIDANT-42", json!({ "means": "CARD" }))).await)
    );
    // One active habilitation per aidant and structure.
    let refused = api.refused(REQUEST_HABILITATION, habilitation_request(527, BREST, "AIDANT-42")).await;
    assert_refused(&refused, "CONFLICT", Some("AlreadyActive"));
    insta::assert_json_snapshot!("request_habilitation_while_active", refused);
    insta::assert_json_snapshot!(
        "revoke_habilitation",
        ok(api
            .run(&step("revokeHabilitation"), hstep(528, "AIDANT-42", json!({ "reason": "Départ de la structure" })))
            .await)
    );
    let budget = ok(api
        .query(r#"{ convention(code: "ANCT-AIDANTS-CONNECT-2021") { budget { committed serviceDone } } }"#)
        .await);
    assert_eq!(budget["data"]["convention"]["budget"]["serviceDone"], "125.00");
    // The session was for one: a second aidant finds it full, and stays validated.
    ok(api.run(REQUEST_HABILITATION, habilitation_request(530, BREST, "AIDANT-43")).await);
    ok(api.run(&step("validateEligibility"), hstep(531, "AIDANT-43", json!({}))).await);
    let full = json!({ "commandId": cmd(532), "habilitationId": habilitation("AIDANT-43"), "sessionId": session(520), "on": "2021-04-20" });
    let refused = api.refused(REGISTER_TO_SESSION, full).await;
    assert_refused(&refused, "BAD_USER_INPUT", Some("Full"));
    insta::assert_json_snapshot!("register_to_a_full_session", refused);
    insta::assert_json_snapshot!(
        "query_habilitations",
        ok(api.query("{ habilitations { aidant cycle status means reason departement { code } } }").await)
    );
}

#[tokio::test]
async fn a_structure_asks_habilitations_for_its_own_aidants_only() {
    let api = Api::new();
    ok(api.run(REGISTER, register_input(510, BREST)).await);
    ok(api.run(REGISTER, register_input(511, BORDEAUX)).await);
    let brest = Principal {
        role: Role::Structure,
        structure: Some(uuid::Uuid::parse_str(&structure_id(BREST)).unwrap()),
        label: "Brest".into(),
        token_id: uuid::Uuid::nil(),
        person: None,
    };
    let request = |siret: &str, n: u128| {
        async_graphql::Request::new(REQUEST_HABILITATION)
            .variables(async_graphql::Variables::from_json(json!({ "input": habilitation_request(n, siret, "X-1") })))
    };
    let own = serde_json::to_value(execute(&api.schema, request(BREST, 520), brest.clone()).await).unwrap();
    assert_eq!(own["data"]["requestHabilitation"]["habilitation"]["status"], "REQUESTED");
    let before = api.written();
    let other = serde_json::to_value(execute(&api.schema, request(BORDEAUX, 521), brest).await).unwrap();
    assert_eq!(api.written(), before);
    insta::assert_json_snapshot!("request_habilitation_for_another_structure", other);
}

/// A log that fails every write with an error full of internals.
struct FailingStore(MemoryStore);

#[async_trait::async_trait]
impl store::EventStore for FailingStore {
    async fn append(&self, _: store::AppendRequest) -> Result<store::AppendOutcome, store::StoreError> {
        Err(store::StoreError::backend("disk I/O error in /var/lib/tracker/events.sqlite3: SQLITE_IOERR"))
    }
    async fn append_all(&self, _: Vec<store::AppendRequest>) -> Result<Vec<store::AppendOutcome>, store::StoreError> {
        Err(store::StoreError::backend("disk I/O error in /var/lib/tracker/events.sqlite3: SQLITE_IOERR"))
    }
    async fn read_stream(&self, s: &str) -> Result<Vec<store::RecordedEvent>, store::StoreError> {
        self.0.read_stream(s).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<store::RecordedEvent>, store::StoreError> {
        self.0.read_all(after, limit).await
    }
    async fn find_command(&self, id: domain::CommandId) -> Result<Option<store::CommandRecord>, store::StoreError> {
        self.0.find_command(id).await
    }
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.head()
    }
}

#[tokio::test]
async fn a_storage_failure_is_internal_and_leaks_nothing() {
    let schema = schema(AppState::new(Arc::new(FailingStore(MemoryStore::new()))), false);
    let request = async_graphql::Request::new(SIGN.to_string() + CONVENTION_FIELDS)
        .variables(async_graphql::Variables::from_json(json!({ "input": sign_input() })));
    let answer = serde_json::to_value(execute(&schema, request, Principal::local(Role::Anct, "a")).await).unwrap();
    let text = answer.to_string();
    assert!(!text.contains("sqlite") && !text.contains("/var/lib"), "{text}");
    insta::assert_json_snapshot!("internal_error", answer);
}

/// The operations the lifecycle tests above only pass through, snapshotted on their own.
#[tokio::test]
async fn lookups_and_remaining_habilitation_steps_answer_as_snapshotted() {
    let api = Api::for_matrix().await;
    let structure_query = format!(
        "{{ structure(id: \"{}\") {{ name siret kind headCount small departement {{ code }} }} }}",
        structure_id(BREST)
    );
    insta::assert_json_snapshot!("query_structure", ok(api.query(&structure_query).await));
    let purchase_query =
        format!("{{ purchase(id: \"{}\") {{ status trainees present total committed serviceDone }} }}", purchase(702));
    insta::assert_json_snapshot!("query_purchase", ok(api.query(&purchase_query).await));
    let sessions = ok(api.query("{ aidantsConnectSessions { capacity seatsTaken seatCost heldOn } }").await);
    insta::assert_json_snapshot!("query_aidants_connect_sessions", sessions);
    let step = |name: &str| HABILITATION_STEP.replace("STEP", name);
    let validated = ok(api.run(&step("validateEligibility"), hstep(1100, "A-1", json!({}))).await);
    insta::assert_json_snapshot!("validate_eligibility", validated);
    let no_reason = api.refused(&step("refuseHabilitation"), hstep(1101, "A-2", json!({}))).await;
    insta::assert_json_snapshot!("refuse_habilitation_needs_a_reason", no_reason);
    let cancelled = ok(api.run(&step("cancelHabilitation"), hstep(1102, "A-2", json!({ "reason": "Abandon" }))).await);
    insta::assert_json_snapshot!("cancel_habilitation", cancelled);
    ok(api.run(REQUEST_HABILITATION, habilitation_request(1103, BREST, "A-6")).await);
    let refused =
        ok(api.run(&step("refuseHabilitation"), hstep(1104, "A-6", json!({ "reason": "Hors périmètre" }))).await);
    insta::assert_json_snapshot!("refuse_habilitation", refused);
}
