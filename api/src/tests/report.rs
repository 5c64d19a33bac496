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

/// A log whose pages, when read by a replay, take a while to come (a slow disk), and
/// which counts those reads.
struct SlowReplays {
    inner: MemoryStore,
    reads: Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl EventStore for SlowReplays {
    async fn append(&self, request: store::AppendRequest) -> Result<store::AppendOutcome, store::StoreError> {
        self.inner.append(request).await
    }
    async fn append_all(
        &self,
        requests: Vec<store::AppendRequest>,
    ) -> Result<Vec<store::AppendOutcome>, store::StoreError> {
        self.inner.append_all(requests).await
    }
    async fn read_stream(&self, stream: &str) -> Result<Vec<store::RecordedEvent>, store::StoreError> {
        self.inner.read_stream(stream).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<store::RecordedEvent>, store::StoreError> {
        // Only the replays' reads: the read models follow the log on other threads.
        if std::thread::current().name() == Some("tracker-replays") {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        self.inner.read_all(after, limit).await
    }
    async fn find_command(&self, id: domain::CommandId) -> Result<Option<store::CommandRecord>, store::StoreError> {
        self.inner.find_command(id).await
    }
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head()
    }
}

#[tokio::test]
async fn a_report_whose_time_is_up_stops_replaying_and_frees_the_next_replay() {
    use std::sync::atomic::Ordering;
    let reads = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let api = Api::on(Arc::new(SlowReplays { inner: MemoryStore::new(), reads: reads.clone() }));
    ok(api.run(SIGN, sign_input()).await);
    let report = || async_graphql::Request::new("{ report }");
    let copil = || Principal::local(Role::Copil, "test");

    // Given what a whole replay reads (verification, then the fold)...
    let whole = execute_within(&api.schema, report(), copil(), std::time::Duration::from_secs(30)).await;
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    let pages = reads.swap(0, Ordering::SeqCst);
    assert!(pages >= 3, "a replay reads pages: {pages}");

    // ...when a request's time runs out in the middle of one...
    let cut = execute_within(&api.schema, report(), copil(), std::time::Duration::from_millis(450)).await;
    let cut = serde_json::to_value(&cut).unwrap();
    assert_eq!(cut["errors"][0]["extensions"]["code"], "TIMEOUT", "{cut}");

    // ...then the replay stops there: its turn is given back, and it reads no further page.
    let freed = async {
        while api.state.replays.available_permits() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), freed).await.expect("the replay's turn is given back");
    let stopped_at = reads.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(reads.load(Ordering::SeqCst), stopped_at, "no page read after the request gave up");
    assert!(stopped_at < pages, "stopped before the end: {stopped_at} of {pages} pages");
}

#[tokio::test]
async fn a_funders_part_of_a_figure_is_explained_by_its_moves() {
    let api = Api::for_matrix().await;
    let report = ok(api.query(r#"{ report }"#).await);
    let convention = report["data"]["report"]["conventions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "ANCT-UNIFORMATION-2021")
        .unwrap()
        .clone();
    let answer = ok(api
        .query(r#"{ reportProvenance(conventionCode: "ANCT-UNIFORMATION-2021", figure: COMMITTED, funder: "Uniformation") { eventType businessDate effect reference } }"#)
        .await);
    let events = answer["data"]["reportProvenance"].as_array().unwrap();
    let sum: rust_decimal::Decimal = events
        .iter()
        .map(|e| e["effect"].as_str().unwrap().trim_start_matches('+').parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    let uniformation =
        convention["funders"].as_array().unwrap().iter().find(|f| f["funder"] == "Uniformation").unwrap();
    assert_eq!(sum.to_string(), uniformation["committed"].as_str().unwrap(), "{answer}");
    insta::assert_json_snapshot!("report_provenance_by_funder", answer);

    let unknown = api
        .query(r#"{ reportProvenance(conventionCode: "ANCT-UNIFORMATION-2021", figure: PAID, funder: "Région") { position } }"#)
        .await;
    assert_eq!(unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{unknown}");
    assert_eq!(unknown["errors"][0]["extensions"]["field"], "funder", "{unknown}");
    let nothing =
        api.query(r#"{ reportProvenance(conventionCode: "ANCT-UNIFORMATION-2021", figure: PAID) { position } }"#).await;
    assert_eq!(nothing["errors"][0]["extensions"]["field"], "envelope", "{nothing}");
    insta::assert_json_snapshot!("report_provenance_errors", [unknown, nothing]);
}
