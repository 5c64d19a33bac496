//! The dashboards through GraphQL: scopes, territories and their pagination, the
//! national total as the sum of the territories, read-your-writes, and live updates.

use super::*;
use futures::StreamExt;

const INDICATORS: &str = "budget { committed released serviceDone paid }
  training { trainees certifying certifyingPercent byMetier { metier count } byBlock { block count } }
  habilitations { byStatus { status count } habilitated }
  pix { certifications meanScore byPublic { public count } }
  ccas { actions agents managers }
  reimbursements { byStatus { status count } claimed eligible reductionsByCap approved paid reimbursed
                   meanDaysToPaid p90DaysToPaid meanDaysToReimbursed p90DaysToReimbursed meanDaysEndToEnd p90DaysEndToEnd overdueClaims lateFundsCalls }";

fn dashboard(args: &str, fields: &str) -> String {
    format!("{{ dashboard{args} {{ {fields} }} }}")
}

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    vec![
        (Operation::Dashboard, "{ dashboard { position total { budget { committed } } } }", json!(null)),
        (Operation::DashboardUpdates, "subscription { dashboardUpdates { position committed } }", json!(null)),
    ]
}

#[tokio::test]
async fn the_national_dashboard_shows_every_programme_and_its_targets() {
    let api = Api::for_matrix().await;
    let national = ok(api
        .query(&dashboard(
            "",
            &format!("total {{ {INDICATORS} }} targets {{ kind target reached percent }} unassigned {{ budget {{ committed }} }}"),
        ))
        .await);
    insta::assert_json_snapshot!("dashboard_national", national);
}

#[tokio::test]
async fn the_national_total_is_the_sum_of_the_territories() {
    let api = Api::for_matrix().await;
    let answer = ok(api
        .query(&dashboard(
            "",
            "total { budget { committed serviceDone } training { trainees } reimbursements { claimed } }
             unassigned { budget { committed serviceDone } training { trainees } reimbursements { claimed } }
             departements { edges { node { indicators { budget { committed serviceDone } training { trainees } reimbursements { claimed } } } } }
             regions { region { code } indicators { budget { committed } } }",
        ))
        .await);
    let d = &answer["data"]["dashboard"];
    let money = |v: &Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    let edges = d["departements"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 101, "every département, overseas included");
    assert_eq!(d["regions"].as_array().unwrap().len(), 18);
    for path in [["budget", "committed"], ["budget", "serviceDone"], ["reimbursements", "claimed"]] {
        let sum: rust_decimal::Decimal =
            edges.iter().map(|e| money(&e["node"]["indicators"][path[0]][path[1]])).sum::<rust_decimal::Decimal>()
                + money(&d["unassigned"][path[0]][path[1]]);
        assert_eq!(sum, money(&d["total"][path[0]][path[1]]), "{path:?}");
    }
    let trainees: u64 = edges.iter().map(|e| e["node"]["indicators"]["training"]["trainees"].as_u64().unwrap()).sum();
    assert_eq!(trainees, d["total"]["training"]["trainees"].as_u64().unwrap());
    let regions: rust_decimal::Decimal =
        d["regions"].as_array().unwrap().iter().map(|r| money(&r["indicators"]["budget"]["committed"])).sum();
    assert_eq!(regions + money(&d["unassigned"]["budget"]["committed"]), money(&d["total"]["budget"]["committed"]));
}

#[tokio::test]
async fn scopes_select_a_departement_a_region_a_convention_and_a_period() {
    let api = Api::for_matrix().await;
    let fields = "position total { budget { committed serviceDone } training { trainees } habilitations { habilitated } reimbursements { byStatus { status count } claimed } } targets { kind target reached }";
    let brest = ok(api.query(&dashboard("(departement: \"29\")", fields)).await);
    insta::assert_json_snapshot!("dashboard_departement", brest);
    let bretagne = ok(api.query(&dashboard("(region: \"53\")", fields)).await);
    assert_eq!(
        bretagne["data"]["dashboard"]["total"], brest["data"]["dashboard"]["total"],
        "Brest is all of Bretagne here"
    );
    let convention = ok(api.query(&dashboard(&format!("(conventionId: \"{}\")", convention_id()), fields)).await);
    insta::assert_json_snapshot!("dashboard_convention", convention);
    let june = ok(api.query(&dashboard("(from: \"2021-06\", to: \"2021-06\")", fields)).await);
    insta::assert_json_snapshot!("dashboard_period", june);
}

#[tokio::test]
async fn territories_are_paginated_with_cursors() {
    let api = Api::for_matrix().await;
    let page = |after: &str| {
        dashboard(
            "",
            &format!(
                "departements(first: 3{after}) {{ pageInfo {{ hasNextPage hasPreviousPage endCursor }} edges {{ cursor node {{ departement {{ code name region {{ name }} }} indicators {{ budget {{ committed }} }} }} }} }}"
            ),
        )
    };
    let first = ok(api.query(&page("")).await);
    insta::assert_json_snapshot!("dashboard_departements_first_page", first);
    let cursor = first["data"]["dashboard"]["departements"]["pageInfo"]["endCursor"].as_str().unwrap().to_string();
    let next = ok(api.query(&page(&format!(", after: \"{cursor}\""))).await);
    assert_eq!(next["data"]["dashboard"]["departements"]["edges"][0]["cursor"], "04");
    let last = ok(api.query(&page(", after: \"974\"")).await);
    assert_eq!(last["data"]["dashboard"]["departements"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(last["data"]["dashboard"]["departements"]["edges"][0]["cursor"], "976");
}

#[tokio::test]
async fn dashboard_errors_name_the_wrong_argument() {
    let api = Api::for_matrix().await;
    let errors = json!({
        "month": api.query(&dashboard("(from: \"2021-13\")", "position")).await,
        "period": api.query(&dashboard("(from: \"2021-07\", to: \"2021-06\")", "position")).await,
        "departement": api.query(&dashboard("(departement: \"20\")", "position")).await,
        "region": api.query(&dashboard("(region: \"99\")", "position")).await,
        "cursor": api.query(&dashboard("", "departements(after: \"XX\") { edges { cursor } }")).await,
    });
    insta::assert_json_snapshot!("dashboard_errors", errors);
}

#[tokio::test]
async fn a_dashboard_asked_for_a_position_shows_it_or_says_it_cannot() {
    let api = Api::for_matrix().await;
    let written = api.written();
    let seen = ok(api.query(&dashboard(&format!("(minPosition: {written})"), "position")).await);
    assert!(seen["data"]["dashboard"]["position"].as_u64().unwrap() >= written);
    let ahead = api.query(&dashboard(&format!("(minPosition: {})", written + 1000), "position")).await;
    assert_eq!(ahead["errors"][0]["extensions"]["code"], "TIMEOUT", "{ahead}");
    assert_eq!(ahead["errors"][0]["extensions"]["position"], written, "{ahead}");
}

async fn next(updates: &mut (impl futures::Stream<Item = async_graphql::Response> + Unpin)) -> async_graphql::Response {
    tokio::time::timeout(std::time::Duration::from_secs(5), updates.next()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_subscription_pushes_a_territorys_figures_when_they_change() {
    let api = Api::for_matrix().await;
    let request = async_graphql::Request::new(
        "subscription { dashboardUpdates(departement: \"29\") { position committed total { training { trainees } } } }",
    )
    .data(Principal::local(Role::Copil, "copil"));
    let mut updates = api.schema.execute_stream(request);
    let first = serde_json::to_value(next(&mut updates).await).unwrap();
    let before = first["data"]["dashboardUpdates"]["committed"].as_str().unwrap().to_string();
    // Figures elsewhere do not wake this scope up; Brest's do.
    let mut elsewhere = commit_input(1400, "MARSEILLE-1", "10");
    elsewhere["departement"] = json!("13");
    ok(api.run(COMMIT, elsewhere).await);
    let mut brest = commit_input(1401, "BREST-1", "250.50");
    brest["departement"] = json!("29");
    ok(api.run(COMMIT, brest).await);
    let second = serde_json::to_value(next(&mut updates).await).unwrap();
    let after = second["data"]["dashboardUpdates"]["committed"].as_str().unwrap();
    let delta = after.parse::<rust_decimal::Decimal>().unwrap() - before.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(delta.to_string(), "250.50", "{first} then {second}");
}

#[tokio::test]
async fn a_conventions_budget_is_split_between_its_funders_to_the_cent() {
    let api = Api::for_matrix().await;
    let answer = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { budget { allocated committed serviceDone paid } funders { funder figures { allocated committed serviceDone paid available consumedPercent } } } }"#)
        .await);
    let c = &answer["data"]["convention"];
    let money = |v: &Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    for figure in ["allocated", "committed", "serviceDone", "paid"] {
        let sum: rust_decimal::Decimal =
            c["funders"].as_array().unwrap().iter().map(|f| money(&f["figures"][figure])).sum();
        assert_eq!(sum, money(&c["budget"][figure]), "{figure}");
    }
    insta::assert_json_snapshot!("convention_funders", answer);
}

#[tokio::test]
async fn dashboards_count_what_they_cost_and_a_request_of_many_periods_is_refused_before_any_runs() {
    let api = Api::for_matrix().await;
    let one = api.query("{ dashboard(from: \"2021-01\", to: \"2022-12\") { position } }").await;
    assert!(one.get("errors").is_none(), "{one}");
    let many: String = (0..60)
        .map(|i| format!("d{i}: dashboard(from: \"2021-{:02}\", to: \"2022-12\") {{ position }} ", i % 12 + 1))
        .collect();
    let answer = api.query(&format!("{{ {many} }}")).await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{answer}");
}

#[tokio::test]
async fn the_dashboard_says_when_its_last_event_was_recorded_and_the_caller_who_they_are() {
    let api = Api::new();
    let empty = ok(api.query("{ dashboard { position recordedAt } }").await);
    assert_eq!(empty["data"]["dashboard"]["recordedAt"], Value::Null, "an empty log has no instant");
    let api = Api::for_matrix().await;
    let before = chrono::Utc::now();
    ok(api.run(COMMIT, commit_input(900, "HORODATAGE", "1")).await);
    let answer = ok(api
        .query(&format!(
            "{{ dashboard(minPosition: {}) {{ position recordedAt }} me {{ role label }} }}",
            api.written()
        ))
        .await);
    let recorded = answer["data"]["dashboard"]["recordedAt"].as_str().unwrap();
    let recorded = chrono::DateTime::parse_from_rfc3339(recorded).unwrap();
    assert!(recorded >= before - chrono::Duration::seconds(1), "{recorded} is the last event's instant");
    assert_eq!(answer["data"]["me"], json!({ "role": "copil", "label": "test" }));
    insta::assert_json_snapshot!("dashboard_recorded_at_and_me", answer, {
        ".data.dashboard.recordedAt" => "[recorded]",
    });
}
