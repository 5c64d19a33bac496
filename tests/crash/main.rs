//! Crash safety: a `tracker serve` process is killed with SIGKILL in the middle of a
//! concurrent write load; after restart every acknowledged event is there, no batch is
//! half written, positions have no gaps and the hash chains verify.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::EventStore;

fn tracker(args: &[&str], data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tracker"));
    c.args(args).arg("--data").arg(data).env("RUST_LOG", "warn");
    c
}

/// Starts `serve` on a free port and returns the process and its URL.
fn serve(data: &Path) -> (Child, String) {
    let mut child = tracker(&["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0"], data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tracker starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep the pipe drained
    (child, url)
}

const COMMIT: &str = "mutation($input: CommitFundsInput!) { commitFunds(input: $input) { position duplicate } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status().unwrap().success());
    let created = tracker(&["token", "create", "--role", "opco", "--label", "load"], dir.path()).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).unwrap().lines().nth(1).unwrap().trim().to_string();
    let (mut child, url) = serve(dir.path());

    let convention = domain::ConventionId::for_code("ANCT-UNCCAS-2021");
    let envelope = domain::EnvelopeId::for_name(convention, "Actions CCAS");
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (client, url, acknowledged, token) = (client.clone(), url.clone(), acknowledged.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if Instant::now() > deadline {
                        break;
                    }
                    let command_id = uuid::Uuid::new_v4().to_string();
                    let input = json!({
                        "commandId": command_id, "conventionId": convention.to_string(), "envelopeId": envelope.to_string(),
                        "reference": format!("CRASH-{w}-{i}"), "amount": "1.00", "committedOn": "2021-06-01",
                    });
                    let sent = client
                        .post(format!("{url}/graphql"))
                        .bearer_auth(&token)
                        .json(&json!({ "query": COMMIT, "variables": { "input": input } }))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    // Once the process is killed, requests fail: stop this writer.
                    let Ok(response) = sent else { break };
                    let Ok(body) = response.json::<Value>().await else { break };
                    if let Some(position) = body["data"]["commitFunds"]["position"].as_u64() {
                        acknowledged.lock().unwrap().insert(command_id, position);
                    }
                }
            })
        })
        .collect();

    // Let the load build up, then kill the server without warning.
    while acknowledged.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 300, "the load ran: {} acknowledged", acknowledged.len());

    // Every hash chain and every position verifies after the crash.
    let verify = tracker(&["verify", "--json"], dir.path()).output().unwrap();
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["firstBreak"], Value::Null, "{report}");

    let log = store::SqliteStore::open_read_only(dir.path().join("events.sqlite3")).unwrap();
    let events = log.read_all(0, 1_000_000).await.unwrap();
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>(), "no gap in positions");
    let by_command: HashMap<String, u64> =
        events.iter().map(|e| (e.metadata.command_id.to_string(), e.position)).collect();
    for (command_id, position) in &acknowledged {
        assert_eq!(by_command.get(command_id), Some(position), "acknowledged command {command_id} lost");
    }
    // No half-written batch: every command the log holds has all its events, in one run
    // (`verify` above checked the same from the append marks).
    let mut per_command: HashMap<domain::CommandId, u64> = HashMap::new();
    for e in &events {
        *per_command.entry(e.metadata.command_id).or_default() += 1;
    }
    assert!(per_command.len() > acknowledged.len());
    for (command_id, count) in per_command {
        let found = log.find_command(command_id).await.unwrap().expect("every command in the log is found");
        let (first, last) = (found.outcome.first_position, found.outcome.last_position);
        assert_eq!(last - first + 1, count, "command {command_id}: its events are all there");
        assert!(
            events[first as usize - 1..last as usize].iter().all(|e| e.metadata.command_id == command_id),
            "command {command_id}: its events are one run"
        );
    }
    drop(log);

    // And the server starts again on it, with the same figures.
    let (mut child, url) = serve(dir.path());
    let health: Value = reqwest::get(format!("{url}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["logPosition"].as_u64(), Some(events.len() as u64));
    assert_eq!(health["projectionPosition"], health["logPosition"]);
    child.kill().unwrap();
    child.wait().unwrap();
}
