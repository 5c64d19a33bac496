//! End to end through real HTTP on port 0: the `tracker serve` application on the embedded
//! SQLite log, driven as a client would drive it.

use app::{Application, Settings};
use serde_json::{Value, json};
use std::path::Path;
use store::EventStore;
use tokio::sync::oneshot;

struct Running {
    url: String,
    /// One token per role, created in the data directory before start.
    tokens: std::collections::HashMap<&'static str, String>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    client: reqwest::Client,
}

async fn start(data_dir: &Path) -> Running {
    start_with(data_dir, false, api::DEFAULT_RATE_PER_SECOND).await
}

async fn start_with(data_dir: &Path, graphiql: bool, rate_limit: u32) -> Running {
    let token_store = api::TokenStore::open(data_dir).unwrap();
    let mut tokens = std::collections::HashMap::new();
    for role in api::Role::ALL {
        let structure = (role == api::Role::Structure).then(uuid::Uuid::new_v4);
        let (_, secret) =
            token_store.create(role, structure, api::Holder::Named(&format!("e2e {}", role.name()))).await.unwrap();
        tokens.insert(role.name(), secret);
    }
    let settings = Settings {
        data_dir: data_dir.to_path_buf(),
        store: None,
        directory: None,
        addr: "127.0.0.1:0".into(),
        demo: false,
        scenario: scenarios::Scenario::Sample,
        graphiql,
        rate_limit,
    };
    let app = Application::build(&settings).await.expect("the application starts");
    let url = format!("http://{}", app.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Running { url, tokens, stop, task, client: reqwest::Client::new() }
}

impl Running {
    async fn graphql(&self, role: &str, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.url))
            .bearer_auth(&self.tokens[role])
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
            "anct",
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
            "anct",
            ALLOCATE,
            json!({ "input": { "conventionId": convention_id, "name": "Certifications", "kind": "CERTIFICATIONS",
                               "amount": "370000", "allocatedOn": "2021-03-20" } }),
        )
        .await;
    let envelope_id =
        allocated["data"]["allocateEnvelope"]["convention"]["envelopes"][0]["id"].as_str().unwrap().to_string();
    let committed = server
        .graphql(
            "opco",
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
            "opco",
            COMMIT,
            json!({ "input": { "conventionId": convention_id, "envelopeId": envelope_id, "reference": "CAMPAGNE-2",
                               "amount": "246543.23", "committedOn": "2021-05-02" } }),
        )
        .await;
    assert_eq!(refused["errors"][0]["extensions"]["rule"], "EnvelopeExceeded");
    assert_eq!(refused["errors"][0]["extensions"]["available"], "246543.22");

    let before = server.graphql("copil", BUDGET, json!({})).await;
    server.stop().await;

    let server = start(dir.path()).await;
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["logPosition"], 3, "the refused command wrote nothing, the others survived");
    let after = server.graphql("copil", BUDGET, json!({})).await;
    assert_eq!(after, before);
    insta::assert_json_snapshot!("budget_after_restart", after);
    assert!(dir.path().join("snapshots/dashboard.json").exists(), "the read models left their snapshots");

    let store = store::SqliteStore::open_read_only(dir.path().join(app::LOG_FILE)).unwrap();
    let events = store.read_all(0, 10).await.unwrap();
    let actors: Vec<&str> = events.iter().map(|e| e.metadata.actor.as_str()).collect();
    // The log names each token's holder by an opaque id; the name is in the directory only.
    assert!(actors[0].starts_with("anct:") && actors[1] == actors[0], "{actors:?}");
    assert!(actors[2].starts_with("opco:"), "{actors:?}");
    assert!(actors.iter().all(|a| !a.contains("e2e")), "{actors:?}");
    let directory = store::Directory::open(dir.path()).unwrap();
    let person = |actor: &str| actor.split_once(':').unwrap().1.split_once(" (token ").unwrap().0.to_string();
    assert_eq!(directory.display(&person(actors[0])), "e2e anct");
    assert_eq!(directory.display(&person(actors[2])), "e2e opco");
    server.stop().await;
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, api::DEFAULT_RATE_PER_SECOND).await;
    let page = reqwest::get(format!("{}/", server.url)).await.unwrap().text().await.unwrap();
    assert!(page.contains("/assets/graphiql/graphiql.min.js"));
    assert!(!page.contains("https://") && !page.contains("http://"), "no outside address in the page");
    for asset in ["graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"] {
        let response = reqwest::get(format!("{}/assets/graphiql/{asset}", server.url)).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{asset}");
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
    }
    assert!(page.contains("onglet « Headers »"), "the page says where the token goes");
    // The schema loads without a token (GraphiQL's docs), and nothing else does.
    let post = |query: &str| {
        reqwest::Client::new().post(format!("{}/graphql", server.url)).json(&json!({ "query": query })).send()
    };
    let schema = post("query IntrospectionQuery { __schema { queryType { name } } }").await.unwrap();
    assert_eq!(schema.status(), 200);
    let schema: Value = schema.json().await.unwrap();
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query", "{schema}");
    for query in
        ["{ __schema { queryType { name } } conventions { code } }", "{ conventions { code } }", "{ me { role } }"]
    {
        let refused = post(query).await.unwrap();
        assert_eq!(refused.status(), 401, "{query}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{query}");
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
    assert_eq!(
        body,
        json!({ "status": "ok", "logPosition": 0, "projectionPosition": 0, "saga": { "position": 0, "failure": null, "leading": true },
                "snapshots": { "budget": "noSnapshot", "structures": "noSnapshot", "purchases": "noSnapshot",
                               "programmes": "noSnapshot", "reimbursements": "noSnapshot", "dashboard": "noSnapshot" } })
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_event_log_url_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        store: Some("mysql://tracker:s3cret@localhost/tracker".into()),
        directory: None,
        addr: "127.0.0.1:0".into(),
        demo: false,
        scenario: scenarios::Scenario::Sample,
        graphiql: false,
        rate_limit: 0,
    };
    let err = Application::build(&settings).await.err().expect("refused");
    assert!(err.to_string().contains("not an event log this tracker knows"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "the password is never shown: {err}");
}

/// Posts a raw body with a raw Authorization header; returns the status and the JSON body.
async fn post_raw(server: &Running, authorization: Option<&str>, body: String) -> (u16, Value) {
    let mut request = server.client.post(format!("{}/graphql", server.url)).header("content-type", "application/json");
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A whole request body signing a small convention `X-1`.
fn small_signature() -> String {
    json!({ "query": SIGN, "variables": { "input": {
        "code": "X-1", "partner": "P", "title": "T", "signedOn": "2021-03-15", "periodStart": "2021-03-15",
        "periodEnd": "2021-12-31", "total": "10", "shares": [ { "funder": "ANCT", "amount": "10" } ] } } })
    .to_string()
}

#[tokio::test]
async fn bad_credentials_get_401_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let body = small_signature();
    let (status, missing) = post_raw(&server, None, body.clone()).await;
    assert_eq!(status, 401);
    insta::assert_json_snapshot!("missing_token", missing);
    let (status, malformed) = post_raw(&server, Some("Bearer not-a-token"), body.clone()).await;
    assert_eq!(status, 401);
    insta::assert_json_snapshot!("malformed_token", malformed);

    // A revoked token is refused at once, without a restart.
    let tokens = api::TokenStore::open(dir.path()).unwrap();
    let (record, secret) = tokens.create(api::Role::Anct, None, api::Holder::Named("leaving colleague")).await.unwrap();
    let (status, _) = post_raw(&server, Some(&format!("Bearer {secret}")), body.clone()).await;
    assert_eq!(status, 200);
    tokens.revoke(record.id).await.unwrap();
    let mut second = serde_json::from_str::<Value>(&body).unwrap();
    second["variables"]["input"]["code"] = json!("X-2");
    let (status, revoked) = post_raw(&server, Some(&format!("Bearer {secret}")), second.to_string()).await;
    assert_eq!(status, 401);
    insta::assert_json_snapshot!("revoked_token", revoked);

    // The wrong role: FORBIDDEN, nothing written.
    let forbidden = server.graphql("copil", SIGN, second["variables"].clone()).await;
    assert_eq!(forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["logPosition"], 1, "only the one allowed command wrote");
    server.stop().await;
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let body = small_signature();
    // What a page of another site can make a browser send without asking the server first.
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let mut request = server.client.post(format!("{}/graphql", server.url)).bearer_auth(&server.tokens["anct"]);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.body(body.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{content_type:?}");
    }
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["logPosition"], 0, "nothing was written");
    // JSON with its charset is JSON.
    let response = server
        .client
        .post(format!("{}/graphql", server.url))
        .bearer_auth(&server.tokens["anct"])
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let huge =
        json!({ "query": format!("{{ conventions {{ code }} }} #{}", "x".repeat(api::MAX_BODY_BYTES)) }).to_string();
    let (status, _) = post_raw(&server, Some(&format!("Bearer {}", server.tokens["copil"])), huge).await;
    assert_eq!(status, 413);
    server.stop().await;
}

#[tokio::test]
async fn graphiql_and_introspection_are_off_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    assert_eq!(reqwest::get(format!("{}/", server.url)).await.unwrap().status(), 404);
    let answer = server.graphql("auditor", "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(answer["data"]["__schema"], Value::Null);
    // Without GraphiQL, even the schema needs a token.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": "{ __schema { queryType { name } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    server.stop().await;
}

/// Sends one graphql-transport-ws message.
async fn send(ws: &mut (impl futures::Sink<tokio_tungstenite::tungstenite::Message> + Unpin), message: Value) {
    use futures::SinkExt;
    let _ = ws.send(tokio_tungstenite::tungstenite::Message::text(message.to_string())).await;
}

/// The next text message, as JSON (None when the connection closes).
async fn receive(
    ws: &mut (
             impl futures::Stream<
        Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    > + Unpin
         ),
) -> Option<Value> {
    use futures::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.ok()??.ok()?;
        match message {
            tokio_tungstenite::tungstenite::Message::Text(text) => return serde_json::from_str(&text).ok(),
            tokio_tungstenite::tungstenite::Message::Close(_) => return None,
            _ => continue,
        }
    }
}

async fn connect(
    server: &Running,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/graphql/ws", server.url.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("the websocket opens").0
}

/// Signs a convention of `total` (ANCT's alone) and allocates it one envelope; returns
/// the convention's and the envelope's ids.
async fn sign_with_envelope(
    server: &Running,
    code: &str,
    total: &str,
    envelope: (&str, &str, &str),
) -> (String, String) {
    let (name, kind, amount) = envelope;
    let signed = server
        .graphql(
            "anct",
            SIGN,
            json!({ "input": {
                "code": code, "partner": "Partenaire", "title": "Convention",
                "signedOn": "2021-03-15", "periodStart": "2021-03-15", "periodEnd": "2022-12-31",
                "total": total, "shares": [ { "funder": "ANCT", "amount": total } ] } }),
        )
        .await;
    let convention_id = signed["data"]["signConvention"]["convention"]["id"].as_str().unwrap().to_string();
    let allocated = server
        .graphql(
            "anct",
            ALLOCATE,
            json!({ "input": { "conventionId": convention_id, "name": name, "kind": kind,
                               "amount": amount, "allocatedOn": "2021-03-20" } }),
        )
        .await;
    let envelope_id =
        allocated["data"]["allocateEnvelope"]["convention"]["envelopes"][0]["id"].as_str().unwrap().to_string();
    (convention_id, envelope_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_subscription_over_a_websocket_pushes_new_figures() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (convention_id, envelope_id) = sign_with_envelope(
        &server,
        "ANCT-UNIFORMATION-2021",
        "4400000",
        ("Formations", "NON_CERTIFYING_TRAININGS", "1000000"),
    )
    .await;

    // Without a valid token the connection is refused.
    let mut intruder = connect(&server).await;
    send(&mut intruder, json!({ "type": "connection_init", "payload": { "Authorization": "Bearer ct_nope" } })).await;
    let refused = receive(&mut intruder).await;
    assert!(refused.is_none() || refused.as_ref().is_some_and(|m| m["type"] != "connection_ack"), "{refused:?}");

    let mut ws = connect(&server).await;
    let bearer = format!("Bearer {}", server.tokens["copil"]);
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": bearer } })).await;
    assert_eq!(receive(&mut ws).await.unwrap()["type"], "connection_ack");
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { dashboardUpdates(region: \"84\") { position committed } }" } }),
    )
    .await;
    let first = receive(&mut ws).await.unwrap();
    assert_eq!(first["payload"]["data"]["dashboardUpdates"]["committed"], "0.00", "{first}");

    let committed = server
        .graphql(
            "opco",
            COMMIT,
            json!({ "input": { "conventionId": convention_id, "envelopeId": envelope_id, "reference": "LYON-1",
                               "amount": "1234.56", "committedOn": "2021-05-01", "departement": "69" } }),
        )
        .await;
    let position = committed["data"]["commitFunds"]["position"].clone();
    let pushed = receive(&mut ws).await.unwrap();
    assert_eq!(pushed["payload"]["data"]["dashboardUpdates"], json!({ "position": position, "committed": "1234.56" }));
    // An open subscription would hold the graceful shutdown for its whole grace period.
    let _ = ws.close(None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_open_websockets_with_the_reason() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let tokens = api::TokenStore::open(dir.path()).unwrap();
    let (record, secret) =
        tokens.create(api::Role::Copil, None, api::Holder::Named("comité member leaving")).await.unwrap();
    let mut ws = connect(&server).await;
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {secret}") } }))
        .await;
    assert_eq!(receive(&mut ws).await.unwrap()["type"], "connection_ack");
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { dashboardUpdates { position committed } }" } }),
    )
    .await;
    assert!(receive(&mut ws).await.unwrap()["payload"]["data"]["dashboardUpdates"].is_object());
    // Another holder's socket stays open.
    let mut other = connect(&server).await;
    let bearer = format!("Bearer {}", server.tokens["copil"]);
    send(&mut other, json!({ "type": "connection_init", "payload": { "Authorization": bearer } })).await;
    assert_eq!(receive(&mut other).await.unwrap()["type"], "connection_ack");

    tokens.revoke(record.id).await.unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket is closed within the revocation check");
    let frame = closed.expect("a close frame with its reason");
    assert_eq!(u16::from(frame.code), api::CLOSE_REVOKED);
    assert_eq!(frame.reason.as_str(), "the token was revoked");

    // The other socket still works: a ping of the protocol is answered.
    send(&mut other, json!({ "type": "ping" })).await;
    assert_eq!(receive(&mut other).await.unwrap()["type"], "pong");
    let _ = other.close(None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_edited_on_disk_is_proved_wrong_at_start_and_the_logs_figures_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (convention_id, envelope_id) =
        sign_with_envelope(&server, "ANCT-PIX-2021", "370000", ("Certifications", "CERTIFICATIONS", "370000")).await;
    server
        .graphql(
            "anct",
            COMMIT,
            json!({ "input": { "conventionId": convention_id, "envelopeId": envelope_id, "reference": "PIX-1",
                               "amount": "1943.00", "committedOn": "2021-04-01" } }),
        )
        .await;
    let truth = server.graphql("copil", BUDGET, json!({})).await;
    server.stop().await; // the read models write their snapshots

    // An envelope's committed 1 943.00 → 1.00, the snapshot's position and hash untouched.
    let budget = dir.path().join("snapshots/budget.json");
    let text = std::fs::read_to_string(&budget).unwrap();
    assert!(text.contains("\"1943.00\""), "{text}");
    std::fs::write(&budget, text.replace("\"1943.00\"", "\"1.00\"")).unwrap();

    let server = start(dir.path()).await;
    let health = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
            let proving = health["snapshots"].as_object().unwrap().values().any(|p| p == "proving");
            if !proving {
                return health;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the snapshots are proved within seconds");
    assert_eq!(health["snapshots"]["budget"], "replaced", "{health}");
    assert_eq!(health["snapshots"]["structures"], "proved", "{health}");
    assert!(health["warning"].as_str().unwrap().contains("budget"), "{health}");
    assert_eq!(server.graphql("copil", BUDGET, json!({})).await, truth, "the log's figures are served");
    assert!(std::fs::read_to_string(&budget).unwrap().contains("\"1943.00\""), "the snapshot was written again");
    server.stop().await;
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), false, 5).await; // 5 a second, a burst of 10
    let copil = format!("Bearer {}", server.tokens["copil"]);
    let query = json!({ "query": "{ conventions { code } }" }).to_string();
    let mut limited = None;
    for _ in 0..30 {
        let response = server
            .client
            .post(format!("{}/graphql", server.url))
            .header("content-type", "application/json")
            .header("authorization", &copil)
            .body(query.clone())
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 200);
    }
    let limited = limited.expect("the token runs out of its burst");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let answer: Value = limited.json().await.unwrap();
    assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{answer}");
    // Another token is not held back by this one's requests.
    let (status, _) = post_raw(&server, Some(&format!("Bearer {}", server.tokens["anct"])), query).await;
    assert_eq!(status, 200);
    server.stop().await;
}
