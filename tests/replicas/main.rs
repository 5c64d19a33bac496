//! Several `tracker serve` processes on one PostgreSQL log, as replicas behind a load
//! balancer run: commands through different replicas lose no update and never commit more
//! than an envelope holds; a token revoked once is refused by every replica at once (its
//! open websockets closed); the replica running the reimbursement saga is SIGKILLed while
//! claims keep coming, and another takes over, paying nothing twice and losing nothing.
//!
//! Needs a server: `TRACKER_TEST_POSTGRES_URL` (CI starts one; `.ci/start-postgres` does
//! it by hand). Without it each test prints SKIPPED, unless `TRACKER_POSTGRES_TESTS=required`
//! (as in CI), which makes a missing server a failure. Each test has a schema of its own.

use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{EventStore, PostgresStore, RecordedEvent};

fn tracker(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tracker"));
    c.args(args).env("RUST_LOG", "warn");
    c
}

/// One `tracker serve` process; killed (SIGKILL) when dropped.
struct Replica {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts `serve --store URL` with a data directory of its own (its snapshots).
    fn start(store: &str) -> Replica {
        let data = tempfile::tempdir().unwrap();
        let mut child = tracker(&["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--store", store])
            .arg("--data")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tracker starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(at) = line.find("http://") {
                break line[at..].trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {}); // keep the pipe drained
        Replica { child, url, _data: data }
    }

    async fn graphql(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", self.url))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the replica answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn health(&self) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/health", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }
}

/// A fresh schema seeded with the sample scenario, and the log on it (`None`: skipped).
async fn seeded(test: &str) -> Option<(String, Arc<PostgresStore>)> {
    let url = store::postgres::testing::fresh_url(test).await?;
    let log = Arc::new(PostgresStore::connect(&url).await.expect("the test server is reachable"));
    // The sample's invented references in the directory the replicas share.
    let people = Arc::new(store::Directory::connect_postgres(&url).expect("the shared directory"));
    scenarios::Scenario::Sample.seed(log.clone(), people).await.expect("the sample seeds");
    Some((url, log))
}

/// A token of `role` created through the CLI in the shared database: (id, secret).
fn token(store: &str, role: &str) -> (String, String) {
    let out =
        tracker(&["token", "create", "--store", store, "--role", role, "--label", "replica test"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let id = lines.next().unwrap().split_whitespace().nth(1).unwrap().to_string();
    (id, lines.next().unwrap().trim().to_string())
}

async fn all_events(log: &PostgresStore) -> Vec<RecordedEvent> {
    log.read_all(0, 1_000_000).await.unwrap()
}

fn verify(store: &str) {
    let out = tracker(&["verify", "--store", store, "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["firstBreak"], Value::Null, "{report}");
    assert_eq!(out.status.code(), Some(0));
}

const COMMIT: &str = "mutation($input: CommitFundsInput!) { commitFunds(input: $input) { position duplicate } }";
const FIGURES: &str =
    "query($code: String) { convention(code: $code) { envelopes { id name figures { available } } } }";

/// The id and available amount of one envelope, as a replica shows it.
async fn envelope(replica: &Replica, token: &str, code: &str, name: &str) -> (String, Decimal) {
    let (_, body) = replica.graphql(token, FIGURES, json!({ "code": code })).await;
    let envelope = body["data"]["convention"]["envelopes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no envelope {name}: {body}"))
        .clone();
    (envelope["id"].as_str().unwrap().to_string(), envelope["figures"]["available"].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn commands_through_three_replicas_lose_no_update_and_never_over_commit() {
    let Some((url, log)) = seeded("commands_through_three_replicas").await else { return };
    let replicas: Vec<_> = (0..3).map(|_| Replica::start(&url)).collect();
    let (_, opco) = token(&url, "opco");
    let code = "ANCT-UNCCAS-2021";
    let (envelope_id, available) = envelope(&replicas[0], &opco, code, "Actions CCAS").await;
    let convention = domain::ConventionId::for_code(code).to_string();
    // Room for exactly 12 commitments of this amount; 18 are sent at once, spread over
    // the three replicas.
    let amount = (available / Decimal::from(12)).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero);
    assert!(amount > Decimal::ZERO && amount * Decimal::from(13) > available, "{available}");
    let sent: Vec<_> = (0..18)
        .map(|i| {
            let (target, opco) = (replicas[i % 3].url.clone(), opco.clone());
            let input = json!({
                "commandId": uuid::Uuid::new_v4().to_string(), "conventionId": convention, "envelopeId": envelope_id,
                "reference": format!("REPLICA-{i}"), "amount": amount.to_string(), "committedOn": "2021-06-01",
            });
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(format!("{target}/graphql"))
                    .bearer_auth(opco)
                    .json(&json!({ "query": COMMIT, "variables": { "input": input } }))
                    .send()
                    .await
                    .unwrap();
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let (mut committed, mut exceeded, mut conflicts) = (0, 0, 0);
    for task in sent {
        let body = task.await.unwrap();
        if body["data"]["commitFunds"]["position"].is_u64() {
            committed += 1;
        } else if body["errors"][0]["extensions"]["rule"] == "EnvelopeExceeded" {
            exceeded += 1;
        } else if body["errors"][0]["extensions"]["code"] == "CONFLICT" {
            conflicts += 1;
        } else {
            panic!("unexpected answer {body}");
        }
    }
    // Never more than the envelope holds; every one that fitted got in unless it gave up
    // on contention (and then it said so).
    eprintln!(
        "18 commitments sent: {committed} committed, {exceeded} refused (envelope exceeded), {conflicts} conflicts"
    );
    assert!(committed <= 12, "{committed} committed");
    assert_eq!(committed + exceeded + conflicts, 18);
    if conflicts == 0 {
        assert_eq!(committed, 12, "{exceeded} refused for lack of money");
    }
    // The log holds exactly the acknowledged commitments, each once.
    let events = all_events(&log).await;
    let ours: Vec<_> =
        events.iter().filter(|e| e.event_type == "FundsCommitted" && e.payload.as_str().contains("REPLICA-")).collect();
    assert_eq!(ours.len(), committed);
    // Every replica's read models come to the same figure.
    let expected = available - amount * Decimal::from(committed as u64);
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, shown) = envelope(replica, &opco, code, "Actions CCAS").await;
            if shown == expected {
                break;
            }
            assert!(Instant::now() < deadline, "{} shows {shown}, not {expected}", replica.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    verify(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn a_token_revoked_once_is_refused_by_every_replica_at_once() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let Some(url) = store::postgres::testing::fresh_url("a_token_revoked_once").await else { return };
    let replicas: Vec<_> = (0..2).map(|_| Replica::start(&url)).collect();
    let (id, secret) = token(&url, "copil");
    let query = "{ conventions { code } }";
    for replica in &replicas {
        let (status, body) = replica.graphql(&secret, query, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["conventions"].is_array(), "{body}");
    }
    // A subscription open on the second replica.
    let mut request =
        format!("{}/graphql/ws", replicas[1].url.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the websocket opens");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {secret}") } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");

    // Revoked once, through the shared database (as `tracker token revoke --store` does).
    let out = tracker(&["token", "revoke", "--store", &url, &id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for replica in &replicas {
        let (status, body) = replica.graphql(&secret, query, json!({})).await;
        assert_eq!(status, 401, "{} still accepts it: {body}", replica.url);
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket is closed within the revocation check")
    .expect("a close frame");
    assert_eq!(u16::from(closed.code), api::CLOSE_REVOKED);
    // The list (shared too) shows it revoked.
    let listed = tracker(&["token", "list", "--store", &url]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("revoked"));
}

/// Submits `n` new annex-cost claims (one 20 € ticket each) on the sample's attended
/// trainings, through the use cases on the shared log; returns their ids and when each
/// may be approved.
async fn submit_claims(log: Arc<PostgresStore>, n: usize) -> Vec<(domain::claim::ClaimId, chrono::NaiveDate)> {
    use domain::annex::ExpenseKind;
    use domain::claim::{ClaimId, ExpenseLine};
    let attended: Vec<(domain::purchase::PurchaseId, u32, chrono::NaiveDate)> = all_events(&log)
        .await
        .iter()
        .filter(|e| e.event_type == "AttendanceRecorded")
        .map(|e| {
            let id = domain::purchase::PurchaseId(e.stream_id().parse().unwrap());
            (id, e.payload.to_value()["present"].as_u64().unwrap() as u32, e.business_date)
        })
        .collect();
    let use_cases = usecases::UseCases::new(log);
    let mut claims = Vec::new();
    'all: for (purchase_id, present, recorded_on) in attended {
        for t in 0..present {
            if claims.len() == n {
                break 'all;
            }
            let trainee = format!("REPLICA-{t:03}");
            let claim_id = ClaimId::of(purchase_id, &trainee);
            let submitted_on = recorded_on + chrono::Days::new(2);
            let request = usecases::programmes::AnnexClaimRequest {
                claim_id,
                structure_id: None,
                purchase_id,
                trainee,
                lines: vec![ExpenseLine {
                    kind: ExpenseKind::PublicTransport,
                    quantity: 1,
                    area: None,
                    amount: domain::Money::euros(20),
                    receipt: format!("SNCF-REPLICA-{t}"),
                }],
                submitted_on,
            };
            let meta = domain::CommandMeta::new(domain::CommandId::new_random(), "opco:replica test");
            match use_cases.submit_annex_claim(request, meta).await {
                Ok(_) => claims.push((claim_id, submitted_on + chrono::Days::new(3))),
                // Trainees of the sample already claimed count against those present.
                Err(e) if e.to_string().contains("already has a claim") => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(claims.len(), n, "the sample has room for {n} claims");
    claims
}

/// The replica that runs the saga now, once one does.
async fn leader(replicas: &[Replica]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, r) in replicas.iter().enumerate() {
            if r.health().await.is_some_and(|h| h["saga"]["leading"] == true) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no replica runs the saga");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn the_saga_replica_killed_mid_work_is_replaced_paying_nothing_twice_and_losing_nothing() {
    use domain::claim::{AnnexClaim, ClaimCommand};
    const CLAIMS: usize = 20;
    let Some((url, log)) = seeded("the_saga_replica_killed_mid_work").await else { return };
    let claims = submit_claims(log.clone(), CLAIMS).await;
    let mut replicas: Vec<_> = (0..3).map(|_| Replica::start(&url)).collect();
    let first = leader(&replicas).await;
    for (i, r) in replicas.iter().enumerate() {
        let leading = r.health().await.unwrap()["saga"]["leading"] == true;
        assert_eq!(leading, i == first, "one replica at a time runs the saga");
    }

    // Approvals keep coming (as the OPCO's would, through any replica); the saga's
    // replica is killed once it has funded some of them.
    let use_cases = usecases::UseCases::new(log.clone());
    let funded = |events: &[RecordedEvent]| events.iter().filter(|e| e.event_type == "AnnexClaimFunded").count();
    let funded_before = funded(&all_events(&log).await);
    let mut killed = None;
    for (n, (claim_id, on)) in claims.iter().enumerate() {
        let command = ClaimCommand::Approve { claim_id: *claim_id, reductions: vec![], approved_on: *on };
        let meta = domain::CommandMeta::new(domain::CommandId::new_random(), "opco:replica test");
        let stream = store::handler::stream_name::<AnnexClaim>(claim_id.0);
        use_cases.plain::<AnnexClaim>(stream, command, meta).await.unwrap();
        if killed.is_none() && n >= CLAIMS / 3 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while funded(&all_events(&log).await) == funded_before {
                assert!(Instant::now() < deadline, "the saga funds nothing");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            replicas[first].child.kill().expect("SIGKILL");
            replicas[first].child.wait().unwrap();
            killed = Some(funded(&all_events(&log).await) - funded_before);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_after = killed.expect("the leader was killed");
    eprintln!("the saga's replica was killed after funding {killed_after} of {CLAIMS} claims");
    assert!(killed_after < CLAIMS, "killed mid-work: {killed_after} of {CLAIMS} funded by then");

    // Another replica takes the lapsed lease and funds the rest.
    let dead = replicas.remove(first);
    drop(dead);
    let deadline = Instant::now() + store::postgres::LEASE_TTL + Duration::from_secs(30);
    loop {
        let events = all_events(&log).await;
        if funded(&events) - funded_before == CLAIMS {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {CLAIMS} claims funded", funded(&events) - funded_before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = leader(&replicas).await;
    assert!(replicas[second].health().await.unwrap()["saga"]["failure"].is_null());

    // Each claim was committed on its envelope once, and funded once.
    let events = all_events(&log).await;
    for (claim_id, _) in &claims {
        let reference = claim_id.reference();
        let commitments = events
            .iter()
            .filter(|e| e.event_type == "FundsCommitted" && e.payload.as_str().contains(&reference))
            .count();
        assert_eq!(commitments, 1, "{reference} committed {commitments} times");
        let stream = store::handler::stream_name::<AnnexClaim>(claim_id.0);
        let funded = events.iter().filter(|e| e.stream == stream && e.event_type == "AnnexClaimFunded").count();
        assert_eq!(funded, 1, "{reference} funded {funded} times");
    }
    verify(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn the_command_line_reads_a_postgres_log_and_never_prints_its_password() {
    let Some((url, log)) = seeded("the_command_line_reads_a_postgres_log").await else { return };
    // The test server trusts local connections: any password is accepted, none may show.
    let with_password = url.replacen('@', ":s3cret@", 1);
    let verified = tracker(&["verify", "--store", &with_password]).output().unwrap();
    let out = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(out.contains("INTACT") && out.contains(":***@"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    let digest = out.lines().find_map(|l| l.trim().strip_prefix("head digest ")).unwrap().to_string();
    let expected = tracker(&["verify", "--store", &with_password, "--expect", &digest]).output().unwrap();
    assert_eq!(expected.status.code(), Some(0), "{}", String::from_utf8_lossy(&expected.stdout));

    let events = tracker(&["events", "--store", &url]).output().unwrap();
    assert!(events.status.success());
    let head = *log.head().borrow();
    assert_eq!(String::from_utf8_lossy(&events.stdout).lines().count() as u64, head);

    let refused = tracker(&["verify", "--store", "postgres://tracker:s3cret@127.0.0.1:1/none"]).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("tracker:***@") && !err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn replicas_share_one_directory_of_persons_one_id_per_reference_and_every_erasure() {
    const REQUEST: &str = "mutation($input: RequestHabilitationInput!) { requestHabilitation(input: $input) { habilitation { id aidant } } }";
    const LIST: &str = "query($structure: ID) { habilitations(structureId: $structure) { id aidant } }";
    let Some((url, _log)) = seeded("replicas_share_one_directory_of_persons").await else { return };
    let replicas: Vec<_> = (0..2).map(|_| Replica::start(&url)).collect();
    let (_, anct) = token(&url, "anct");
    let structure = scenarios::demo::demo_structure().to_string();
    let request = |n: u128| {
        json!({ "input": {
            "commandId": uuid::Uuid::from_u128(0x24_0000 + n).to_string(),
            "structureId": structure,
            "aidant": "AIDANT-REPLIQUE-7",
            "requestedOn": "2021-04-01",
        }})
    };
    // Given an aidant's habilitation requested through the first replica
    let (status, first) = replicas[0].graphql(&anct, REQUEST, request(1)).await;
    assert_eq!(status, 200, "{first}");
    let habilitation = first["data"]["requestHabilitation"]["habilitation"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["data"]["requestHabilitation"]["habilitation"]["aidant"], "AIDANT-REPLIQUE-7", "{first}");
    // When the same reference comes through the second replica
    let (_, second) = replicas[1].graphql(&anct, REQUEST, request(2)).await;
    // Then it names the same person, whose habilitation is already active there
    assert_eq!(second["errors"][0]["extensions"]["code"], "CONFLICT", "{second}");
    let shown = |body: &Value| -> Vec<String> {
        body["data"]["habilitations"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .filter(|h| h["id"] == habilitation.as_str())
            .map(|h| h["aidant"].as_str().unwrap().to_string())
            .collect()
    };
    for replica in &replicas {
        let (_, body) = replica.graphql(&anct, LIST, json!({ "structure": structure })).await;
        assert_eq!(shown(&body), ["AIDANT-REPLIQUE-7"], "{}", replica.url);
    }
    // The access request is answered from the shared database and log
    let access = tracker(&["subject-access", "AIDANT-REPLIQUE-7", "--store", &url]).output().unwrap();
    assert!(access.status.success(), "{}", String::from_utf8_lossy(&access.stderr));
    let access: Value = serde_json::from_slice(&access.stdout).unwrap();
    let events = access["personnes"][0]["événements"].as_array().unwrap_or_else(|| panic!("{access}"));
    assert_eq!(events.len(), 1, "the one request: {access}");
    assert!(events[0]["flux"].as_str().unwrap().contains(&habilitation), "{access}");
    // When the aidant is forgotten once, through the shared database
    let forgotten = tracker(&["forget", "AIDANT-REPLIQUE-7", "--store", &url, "--json"]).output().unwrap();
    assert!(forgotten.status.success(), "{}", String::from_utf8_lossy(&forgotten.stderr));
    // Then every replica shows the person erased, and the log still verifies
    for replica in &replicas {
        let (_, body) = replica.graphql(&anct, LIST, json!({ "structure": structure })).await;
        assert_eq!(shown(&body), [store::directory::ERASED], "{}", replica.url);
    }
    let again = tracker(&["subject-access", "AIDANT-REPLIQUE-7", "--store", &url]).output().unwrap();
    assert!(!again.status.success(), "nobody is left to export");
    verify(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn replicas_of_a_log_that_cannot_erase_share_the_directory_in_the_database_given() {
    let Some(url) = store::postgres::testing::fresh_url("replicas_of_a_log_that_cannot_erase").await else { return };
    // Given two KurrentDB replicas, each with a data directory of its own, given one directory
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_a = app::open_directory(a.path(), Some("kurrentdb://node1:2113?tls=false"), Some(&url)).unwrap();
    let on_b = app::open_directory(b.path(), Some("kurrentdb://node2:2113?tls=false"), Some(&url)).unwrap();
    // When one issues an id
    let id = on_a.pseudonym(store::PersonKind::Aidant, "s1", "AIDANT-9").unwrap();
    // Then the other finds it, and neither data directory holds a directory file
    assert_eq!(on_b.find(store::PersonKind::Aidant, "s1", "AIDANT-9").unwrap(), Some(id));
    on_b.forget(id, "request").unwrap();
    assert_eq!(on_a.display(&id.to_string()), store::directory::ERASED);
    for dir in [&a, &b] {
        assert!(!dir.path().join(store::Directory::FILE).exists());
    }
}

#[test]
fn a_directory_is_refused_where_it_cannot_be() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = app::open_directory(dir.path(), None, Some("postgres://tracker@db/tracker")).err().unwrap();
    assert!(embedded.to_string().contains("embedded log keeps its directory"), "{embedded}");
    let elsewhere =
        app::open_directory(dir.path(), Some("kurrentdb://node1:2113"), Some("mysql://tracker:s3cret@db/tracker"))
            .err()
            .unwrap();
    assert!(elsewhere.to_string().contains("not a directory of persons"), "{elsewhere}");
    assert!(!elsewhere.to_string().contains("s3cret"), "{elsewhere}");
    assert!(!dir.path().join(store::Directory::FILE).exists(), "nothing opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn a_replicas_own_directory_is_copied_into_the_shared_one_ids_and_erasures_kept() {
    use store::{Directory, PersonKind};
    let Some(url) = store::postgres::testing::fresh_url("a_replicas_own_directory_is_copied").await else { return };
    // Given a replica's data directory holding the persons it registered before the
    // directory was shared: an agent, two aidants (one erased), and one aidant whose
    // reference another replica registered in the shared directory under another id
    let data = tempfile::tempdir().unwrap();
    let local = Directory::open(data.path()).unwrap();
    let marie = local.add_agent("opco", "Marie Dupont").unwrap();
    let aidants = local.pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-1", "AIDANT-2", "AIDANT-3"]).unwrap();
    local.forget(aidants[1], "request").unwrap();
    drop(local);
    let shared = Directory::connect_postgres(&url).unwrap();
    let other = shared.pseudonym(PersonKind::Aidant, "s1", "AIDANT-3").unwrap();
    // When it is copied
    let copy = |extra: &[&str]| {
        let out = tracker(&["share-directory", "--store", &url, "--json"])
            .arg("--data")
            .arg(data.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = copy(&[]);
    // Then the shared directory shows them by the ids the log carries, the erasure too
    assert_eq!(report["persons"], 3, "{report}");
    assert_eq!(report["added"], 2, "{report}");
    assert_eq!(report["erasuresAdded"], 1, "{report}");
    assert_eq!(shared.display(&marie.to_string()), "Marie Dupont");
    assert_eq!(shared.display(&aidants[0].to_string()), "AIDANT-1");
    assert_eq!(shared.display(&aidants[1].to_string()), store::directory::ERASED);
    // And the reference with two ids is a conflict, named by ids only; the file is kept
    assert_eq!(report["conflicts"][0]["id"], aidants[2].to_string(), "{report}");
    assert_eq!(report["conflicts"][0]["shared"], other.to_string(), "{report}");
    assert!(!report.to_string().contains("AIDANT-3"), "{report}");
    assert_eq!(report["removed"], Value::Null);
    assert!(data.path().join(Directory::FILE).exists());
    // When the conflict is settled (the person erased from the replica's file) and it is
    // copied again, nothing is added twice and the file goes
    Directory::open(data.path()).unwrap().forget(aidants[2], "request").unwrap();
    let again = copy(&[]);
    assert_eq!(again["added"], 0, "{again}");
    assert_eq!(again["alreadyThere"], 2, "{again}");
    assert!(again["removed"].is_string(), "{again}");
    assert!(!data.path().join(Directory::FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn a_postgres_log_naming_its_actors_is_migrated_into_another_schema_by_the_command_line() {
    let test = "migrate-personal-data --store --to";
    let Some((seeded_url, _)) = seeded(test).await else { return };
    let (Some(old), Some(new)) =
        (store::postgres::testing::fresh_url(test).await, store::postgres::testing::fresh_url(test).await)
    else {
        return;
    };
    // Given a log as the version before the directory wrote it when token holders acted:
    // their names in the actors (made from the seeded log, chained as the writer does),
    // and a token whose record holds its holder's name
    let mut n = 0;
    store::postgres::rewrite::rewrite_with(&seeded_url, &old, None, |_: &str, _: &str, actor: &str, payload: &str| {
        n += 1;
        let actor = if n % 2 == 0 { "opco:Marie Dupont (token 3f2a9c1e)".to_string() } else { actor.to_string() };
        store::postgres::rewrite::Rewritten { actor, payload: payload.to_string() }
    })
    .await
    .unwrap();
    let log = PostgresStore::connect(&old).await.unwrap();
    let record = json!({
        "id": "3f2a9c1e-0000-4000-8000-000000000001", "hash": "00", "role": "opco", "structure": null,
        "label": "Marie Dupont", "created_at": "2021-03-01T00:00:00Z", "revoked_at": null
    });
    let id = uuid::Uuid::parse_str("3f2a9c1e-0000-4000-8000-000000000001").unwrap();
    let token = store::SharedToken { id, hash: "00".into(), record: record.to_string(), revoked_at: None };
    store::ReplicaState::create_token(&log, token).await.unwrap();
    let named = |events: &[RecordedEvent]| events.iter().filter(|e| e.metadata.actor.contains("Marie Dupont")).count();
    assert!(named(&all_events(&log).await) > 0);
    let before = tracker(&["verify", "--store", &old]).output().unwrap();
    let before = String::from_utf8_lossy(&before.stdout).to_string();
    let old_digest = before.lines().find_map(|l| l.trim().strip_prefix("head digest ")).unwrap().to_string();

    // When it is migrated into another schema through the command line
    let migrated = tracker(&["migrate-personal-data", "--store", &old, "--to", &new, "--json"]).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let report: Value = serde_json::from_slice(&migrated.stdout).unwrap();

    // Then the new log names nobody, verifies, and records the old digest, which the old
    // log, left as it was, still proves; the token's holder is an id of the directory
    assert_eq!(report["previousHead"], old_digest, "{report}");
    assert_eq!(report["persons"], 1, "{report}");
    let moved = PostgresStore::connect(&new).await.unwrap();
    let events = all_events(&moved).await;
    assert_eq!(named(&events), 0);
    assert_eq!(events.last().unwrap().event_type, "PersonalDataMigrated");
    verify(&new);
    let proven = tracker(&["verify", "--store", &old, "--expect", &old_digest]).output().unwrap();
    assert_eq!(proven.status.code(), Some(0), "{}", String::from_utf8_lossy(&proven.stdout));
    let tokens = store::ReplicaState::tokens(&moved).await.unwrap();
    assert!(!tokens[0].record.contains("Marie Dupont") && tokens[0].record.contains("\"person\""), "{tokens:?}");
    let people = tracker(&["subject-access", "Marie Dupont", "--store", &new]).output().unwrap();
    assert!(people.status.success(), "{}", String::from_utf8_lossy(&people.stderr));

    // When it is migrated again into the same schema, it is refused
    let again = tracker(&["migrate-personal-data", "--store", &old, "--to", &new]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds a log already"), "{again:?}");
}
