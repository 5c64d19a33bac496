//! End to end through real HTTP on port 0: the `tracker serve` application on the embedded
//! SQLite log, driven as a client would drive it.

use serde_json::{Value, json};
use std::path::Path;
use store::EventStore;
use tokio::sync::oneshot;
use tracker::{Application, Settings};

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    client: reqwest::Client,
}

async fn start(data_dir: &Path) -> Running {
    let settings = Settings { data_dir: data_dir.to_path_buf(), store: None, addr: "127.0.0.1:0".into(), demo: false };
    let app = Application::build(&settings).await.expect("the application starts");
    let url = format!("http://{}", app.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Running { url, stop, task, client: reqwest::Client::new() }
}

impl Running {
    async fn graphql(&self, actor: &str, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.url))
            .header("x-actor", actor)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the server answers");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("a JSON answer")
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

const SIGN: &str =
    "mutation($input: SignConventionInput!) { signConvention(input: $input) { position convention { id code } } }";
const ALLOCATE: &str = "mutation($input: AllocateEnvelopeInput!) { allocateEnvelope(input: $input) { position convention { envelopes { id name } } } }";
const COMMIT: &str = "mutation($input: CommitFundsInput!) { commitFunds(input: $input) { position convention { budget { committed available consumedPercent } } } }";
const BUDGET: &str = r#"{ convention(code: "ANCT-PIX-2021") { code total budget { allocated committed available consumedPercent } envelopes { name figures { committed } } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_convention_signed_over_http_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;

    let signed = server
        .graphql(
            "anct:alice",
            SIGN,
            json!({ "input": {
                "code": "ANCT-PIX-2021", "partner": "GIP Pix", "title": "Certifications Pix",
                "signedOn": "2021-03-15", "periodStart": "2021-03-15", "periodEnd": "2022-12-31",
                "total": "370000", "shares": [ { "funder": "ANCT", "amount": "370000" } ] } }),
        )
        .await;
    let convention_id = signed["data"]["signConvention"]["convention"]["id"].as_str().expect("signed").to_string();
    let allocated = server
        .graphql(
            "anct:alice",
            ALLOCATE,
            json!({ "input": { "conventionId": convention_id, "name": "Certifications", "kind": "CERTIFICATIONS",
                               "amount": "370000", "allocatedOn": "2021-03-20" } }),
        )
        .await;
    let envelope_id =
        allocated["data"]["allocateEnvelope"]["convention"]["envelopes"][0]["id"].as_str().unwrap().to_string();
    let committed = server
        .graphql(
            "opco:bob",
            COMMIT,
            json!({ "input": { "conventionId": convention_id, "envelopeId": envelope_id, "reference": "CAMPAGNE-1",
                               "amount": "123456.78", "committedOn": "2021-05-01", "departement": "971" } }),
        )
        .await;
    assert_eq!(committed["data"]["commitFunds"]["position"], 3);
    assert_eq!(committed["data"]["commitFunds"]["convention"]["budget"]["committed"], "123456.78");

    // A refused command over HTTP: clear error, nothing written.
    let refused = server
        .graphql(
            "opco:bob",
            COMMIT,
            json!({ "input": { "conventionId": convention_id, "envelopeId": envelope_id, "reference": "CAMPAGNE-2",
                               "amount": "246543.23", "committedOn": "2021-05-02" } }),
        )
        .await;
    assert_eq!(refused["errors"][0]["extensions"]["rule"], "EnvelopeExceeded");
    assert_eq!(refused["errors"][0]["extensions"]["available"], "246543.22");

    let before = server.graphql("copil:carol", BUDGET, json!({})).await;
    server.stop().await;

    let server = start(dir.path()).await;
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["logPosition"], 3, "the refused command wrote nothing, the others survived");
    let after = server.graphql("copil:carol", BUDGET, json!({})).await;
    assert_eq!(after, before);
    insta::assert_json_snapshot!("budget_after_restart", after);

    let store = store::SqliteStore::open_read_only(dir.path().join(tracker::LOG_FILE)).unwrap();
    let events = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.metadata.actor.as_str()).collect::<Vec<_>>(),
        ["anct:alice", "anct:alice", "opco:bob"]
    );
    server.stop().await;
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let page = reqwest::get(format!("{}/", server.url)).await.unwrap().text().await.unwrap();
    assert!(page.contains("/assets/graphiql/graphiql.min.js"));
    assert!(!page.contains("https://") && !page.contains("http://"), "no outside address in the page");
    for asset in ["graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"] {
        let response = reqwest::get(format!("{}/assets/graphiql/{asset}", server.url)).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{asset}");
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
    }
    server.stop().await;
}

#[tokio::test]
async fn health_reports_the_log_and_projection_positions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let response = reqwest::get(format!("{}/health", server.url)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "ok", "logPosition": 0, "projectionPosition": 0 }));
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_event_log_url_is_refused_clearly() {
    let settings = Settings {
        data_dir: "unused".into(),
        store: Some("postgres://localhost/tracker".into()),
        addr: "127.0.0.1:0".into(),
        demo: false,
    };
    let err = Application::build(&settings).await.err().expect("refused");
    assert!(err.to_string().contains("not an event log this tracker knows"), "{err}");
}
