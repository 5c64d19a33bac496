//! The financial report and its provenance through GraphQL.

use super::*;

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    vec![(Operation::Report, "{ report(asOf: \"2021-12-31\") }", json!(null))]
}

#[tokio::test]
async fn the_report_of_a_past_date_is_replayed_from_the_verified_log() {
    let api = Api::for_matrix().await;
    let report = ok(api.query("{ report(asOf: \"2021-06-30\") }").await);
    let header = &report["data"]["report"]["header"];
    assert_eq!(header["intact"], true);
    assert_eq!(header["logPosition"], api.written());
    insta::assert_json_snapshot!("report_as_of_june", report, {
        ".data.report.header.logDigest" => "[digest]",
        ".data.report.corrections[].recordedAt" => "[recorded]",
    });
    let later = ok(api.query("{ report(asOf: \"2021-12-31\") }").await);
    assert_ne!(
        later["data"]["report"]["conventions"], report["data"]["report"]["conventions"],
        "July's events count by December"
    );
}

#[tokio::test]
async fn provenance_names_the_events_of_a_figure() {
    let api = Api::for_matrix().await;
    let answer = ok(api
        .query(r#"{ reportProvenance(conventionCode: "ANCT-UNIFORMATION-2021", envelope: "Formations certifiantes", figure: COMMITTED) { position stream version eventType businessDate recordedAt actor effect reference } }"#)
        .await);
    let events = answer["data"]["reportProvenance"].as_array().unwrap();
    assert!(events.len() >= 3, "{answer}");
    insta::assert_json_snapshot!("report_provenance", answer, { ".data.reportProvenance[].recordedAt" => "[recorded]" });
}

#[tokio::test]
async fn a_malformed_instant_is_refused_by_name() {
    let api = Api::for_matrix().await;
    insta::assert_json_snapshot!("report_bad_instant", api.query("{ report(asKnownAt: \"yesterday\") }").await);
}

#[tokio::test]
async fn replays_count_what_they_cost_two_per_request_at_most_and_many_aliases_are_refused_before_any_runs() {
    let api = Api::for_matrix().await;
    // Two replays fit in a request.
    let two = api.query("{ a: report(asOf: \"2021-06-30\") b: report(asOf: \"2021-12-31\") }").await;
    assert!(two.get("errors").is_none(), "{two}");
    // Three do not, nor the 1 000 aliases that once stalled the server: refused at once.
    for n in [3, 1_000] {
        let query = format!("{{ {} }}", (0..n).map(|i| format!("r{i}: report")).collect::<Vec<_>>().join(" "));
        let started = std::time::Instant::now();
        let answer = api.query(&query).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{n}: {answer}");
        assert!(answer["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{answer}");
        assert_eq!(answer["data"], Value::Null);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused before any replay ran");
    }
    let provenance = r#"reportProvenance(conventionCode: "ANCT-UNIFORMATION-2021", envelope: "Formations certifiantes", figure: COMMITTED) { position }"#;
    let mixed = api.query(&format!("{{ a: report b: report c: {provenance} }}")).await;
    assert_eq!(mixed["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{mixed}");
}
