//! The register of the plan's measures through GraphQL.

use super::*;

const REGISTER_MEASURE: &str = "mutation($input: RegisterMeasureInput!) { registerMeasure(input: $input) {
  commandId position duplicate measure { id public axis number title lead status registeredOn launchedOn doneOn conventionCode } } }";
const LAUNCH_MEASURE: &str = "mutation($input: MeasureStepInput!) { launchMeasure(input: $input) {
  position measure { id status launchedOn doneOn } } }";
const COMPLETE_MEASURE: &str = "mutation($input: MeasureStepInput!) { completeMeasure(input: $input) {
  position measure { id status launchedOn doneOn } } }";

fn register_measure_input(n: u128) -> Value {
    json!({ "commandId": cmd(n), "public": "MEDIATORS", "number": "1.2",
            "title": "Inciter les employeurs de médiateurs numériques à renforcer la formation professionnelle continue de leurs salariés",
            "lead": "ANCT avec Uniformation", "conventionCode": "ANCT-UNIFORMATION-2021", "registeredOn": "2021-01-15" })
}

fn measure_step(n: u128, on: &str) -> Value {
    measure_step_of(n, "med-1.2", on)
}

fn measure_step_of(n: u128, id: &str, on: &str) -> Value {
    json!({ "commandId": cmd(n), "measureId": id, "on": on })
}

/// For the matrix: med-2.1 registered, med-3.1 launched.
pub(super) async fn matrix_measures(api: &Api) {
    for (n, number) in [(960, "2.1"), (961, "3.1")] {
        let mut input = register_measure_input(n);
        input["number"] = json!(number);
        ok(api.run(REGISTER_MEASURE, input).await);
    }
    ok(api.run(LAUNCH_MEASURE, measure_step_of(962, "med-3.1", "2021-03-15")).await);
}

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    vec![
        (Operation::Measures, "{ measures { id status } }", json!(null)),
        (Operation::RegisterMeasure, REGISTER_MEASURE, register_measure_input(950)),
        (Operation::LaunchMeasure, LAUNCH_MEASURE, measure_step_of(951, "med-2.1", "2021-03-15")),
        (Operation::CompleteMeasure, COMPLETE_MEASURE, measure_step_of(952, "med-3.1", "2022-12-31")),
    ]
}

#[tokio::test]
async fn a_measure_is_registered_launched_and_done_and_read_with_its_convention() {
    let api = Api::with_budget().await;
    let registered = ok(api.run(REGISTER_MEASURE, register_measure_input(1_000)).await);
    insta::assert_json_snapshot!("measure_registered", registered);
    let launched = ok(api.run(LAUNCH_MEASURE, measure_step(1_001, "2021-03-15")).await);
    insta::assert_json_snapshot!("measure_launched", launched);
    let done = ok(api.run(COMPLETE_MEASURE, measure_step(1_002, "2022-12-31")).await);
    assert_eq!(done["data"]["completeMeasure"]["measure"]["status"], "DONE");
    let register = ok(api
        .query("{ measures { id public axis number status launchedOn doneOn convention { code budget { allocated committed } } } }")
        .await);
    insta::assert_json_snapshot!("measures_register", register);
}

#[tokio::test]
async fn register_steps_refused_say_why_and_write_nothing() {
    let api = Api::with_budget().await;
    // Given nothing registered, when a measure is launched, then NOT_FOUND.
    let absent = api.refused(LAUNCH_MEASURE, measure_step(1_010, "2021-03-15")).await;
    assert_eq!(absent["errors"][0]["extensions"]["code"], "NOT_FOUND", "{absent}");
    ok(api.run(REGISTER_MEASURE, register_measure_input(1_011)).await);
    // A second registration of the same measure is a conflict.
    let twice = api.refused(REGISTER_MEASURE, register_measure_input(1_012)).await;
    assert_eq!(twice["errors"][0]["extensions"]["code"], "CONFLICT", "{twice}");
    // Done before launched, launched before registered: rules with their figures.
    let early = api.refused(COMPLETE_MEASURE, measure_step(1_013, "2022-12-31")).await;
    assert_eq!(early["errors"][0]["extensions"]["rule"], "NotLaunched", "{early}");
    let before = api.refused(LAUNCH_MEASURE, measure_step(1_014, "2020-12-31")).await;
    assert_eq!(before["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{before}");
    assert_eq!(before["errors"][0]["extensions"]["rule"], "DatedBefore", "{before}");
    let bad_id =
        api.refused(LAUNCH_MEASURE, json!({ "commandId": cmd(1_015), "measureId": "x-1.2", "on": "2021-03-15" })).await;
    assert_eq!(bad_id["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{bad_id}");
    let mut bad_number = register_measure_input(1_016);
    bad_number["number"] = json!("12");
    let bad_number = api.refused(REGISTER_MEASURE, bad_number).await;
    assert_eq!(bad_number["errors"][0]["extensions"]["rule"], "BadNumber", "{bad_number}");
    insta::assert_json_snapshot!("measure_errors", json!([absent, twice, early, before, bad_id, bad_number]));
}
