//! `tracker bench write`: the write path as a user meets it — `commitFunds` through
//! GraphQL on loopback, every commit durable — with closed-loop clients on one envelope
//! and spread over 64, errors counted by their `extensions.code` (CONFLICT apart: it is
//! what concurrent writers to one convention stream run into), then the national
//! dashboard read while writes arrive. Baselines from the same run: the fsync floor and
//! the store's own append rate (no HTTP, no GraphQL, no decision), and `/health` (HTTP
//! without GraphQL or the log). With `--postgres URL`, the same closed-loop runs on a
//! PostgreSQL log served by 1 and by 3 replicas ([`crate::replicas`]), as ratios to
//! this run's embedded-log figures.

use crate::dashboard::{Load, NATIONAL_DASHBOARD, Target, closed_loop, open_loop, percentile};
use app::LOG_FILE;
use domain::{ConventionId, EnvelopeId};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::EventStore;

/// What to measure; [`WriteOptions::new`] gives the command line's defaults.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// How long each measured load runs.
    pub window: Duration,
    /// The closed-loop client counts, each run on one envelope and then spread.
    pub clients: Vec<usize>,
    /// Dashboard requests per second in the reads-under-writes measurement.
    pub read_rate: u64,
    /// `commitFunds` per second sent meanwhile.
    pub write_rate: u64,
    /// How long the fsync floor, the store's appends and `/health` run.
    pub baseline_window: Duration,
    /// A PostgreSQL database to run the closed loops on too (in a schema of their own,
    /// dropped afterwards), with 1 and 3 replicas.
    pub postgres: Option<String>,
}

impl WriteOptions {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            clients: vec![1, 16, 64],
            read_rate: 1_000,
            write_rate: 500,
            baseline_window: window.min(Duration::from_secs(2)),
            postgres: None,
        }
    }
}

/// Writers of the baselines: as many as the largest closed loop here.
const BASELINE_WRITERS: usize = 64;

/// The "spread" runs' envelopes: 4 conventions of 16 (a convention is one stream, so
/// spreading also shows what separate streams buy).
const CONVENTIONS: usize = 4;
const ENVELOPES_PER_CONVENTION: usize = 16;

/// Each envelope holds far more than a run can commit at 1 € a command.
const ENVELOPE_EUROS: u64 = 1_000_000_000;

/// The outcome of a set of `commitFunds`: latency over every answer (errors included:
/// a user waits for those too), errors by code.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Writes {
    /// Commands answered without error (each wrote one `FundsCommitted`).
    pub commands: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers with `extensions.code` CONFLICT: the handler gave up after its retries.
    pub conflicts: u64,
    /// Every other error by code (`HTTP <status>` or `TRANSPORT` when no GraphQL answer).
    pub other_errors: BTreeMap<String, u64>,
}

/// One closed-loop run.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRun {
    pub clients: usize,
    pub envelopes: usize,
    pub commands_per_s: f64,
    #[serde(flatten)]
    pub writes: Writes,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFigures {
    pub seconds: f64,
    pub fsync_per_s: f64,
    pub store_appends_per_s: f64,
    pub store_writers: usize,
    pub health_per_s: f64,
    pub health_clients: usize,
    pub runs: Vec<WriteRun>,
    pub read_rate_per_s: u64,
    pub write_rate_per_s: u64,
    /// The national dashboard at `read_rate`, nothing else running (the baseline).
    pub dashboard_alone: Load,
    /// The same while `write_rate` commits per second arrive (spread over 64 envelopes).
    pub dashboard_under_writes: Load,
    pub writes_under_reads: Writes,
    /// Commands answered without error, over the whole run, and the `FundsCommitted`
    /// events the log holds afterwards: equal unless an answer lied.
    pub commands_ok: u64,
    pub funds_committed_events: u64,
    /// The closed loops again on PostgreSQL, by number of replicas (with `--postgres`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postgres: Vec<crate::replicas::ReplicaRuns>,
}

/// Sends `commitFunds` to one of its envelopes, through one of its servers.
pub(crate) struct Writer {
    /// The GraphQL endpoints of the servers (replicas of one log): client `c` uses `c % n`.
    urls: Vec<String>,
    token: String,
    /// (convention id, envelope id), as GraphQL ids.
    envelopes: Vec<(String, String)>,
}

const COMMIT: &str = "mutation($input: CommitFundsInput!) { commitFunds(input: $input) { position } }";

impl Writer {
    /// A fresh command id and the given reference: every request is a new command.
    fn body(&self, envelope: usize, reference: &str) -> String {
        let (convention_id, envelope_id) = &self.envelopes[envelope % self.envelopes.len()];
        json!({ "query": COMMIT, "variables": { "input": {
            "commandId": uuid::Uuid::new_v4().to_string(),
            "conventionId": convention_id, "envelopeId": envelope_id, "reference": reference,
            "amount": "1.00", "committedOn": "2021-06-01", "departement": "59",
        } } })
        .to_string()
    }

    /// `Ok` or the error's code.
    async fn send(&self, client: &reqwest::Client, to: usize, body: String) -> Result<(), String> {
        let response = client
            .post(&self.urls[to % self.urls.len()])
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| "TRANSPORT".to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let answer: Value = response.json().await.map_err(|_| "TRANSPORT".to_string())?;
        match answer["errors"].get(0) {
            None => Ok(()),
            Some(e) => Err(e["extensions"]["code"].as_str().unwrap_or("NO_CODE").to_string()),
        }
    }
}

/// Folds answers (latency in ms, outcome) into [`Writes`].
fn tally(answers: impl IntoIterator<Item = (f64, Result<(), String>)>) -> Writes {
    let mut w = Writes::default();
    let mut latencies = Vec::new();
    for (ms, outcome) in answers {
        latencies.push(ms);
        match outcome {
            Ok(()) => w.commands += 1,
            Err(code) if code == api::codes::CONFLICT => w.conflicts += 1,
            Err(code) => *w.other_errors.entry(code).or_default() += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    w.p50_ms = percentile(&latencies, 0.50);
    w.p99_ms = percentile(&latencies, 0.99);
    w.max_ms = latencies.last().copied().unwrap_or(0.0);
    w
}

/// Closed loop: each client sends its next command when the previous one is answered.
async fn closed_writes(
    client: &reqwest::Client,
    writer: &Arc<Writer>,
    run: usize,
    clients: usize,
    envelopes: usize,
    window: Duration,
) -> WriteRun {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, writer) = (client.clone(), writer.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while start.elapsed() < window {
                    // Clients walk the envelopes from different places.
                    let body =
                        writer.body((c + answers.len()) % envelopes, &format!("BENCH-{run}-{c}-{}", answers.len()));
                    let sent = Instant::now();
                    let outcome = writer.send(&client, c, body).await;
                    answers.push((sent.elapsed().as_secs_f64() * 1000.0, outcome));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let writes = tally(answers);
    WriteRun { clients, envelopes, commands_per_s: writes.commands as f64 / elapsed, writes }
}

/// Open loop: one command every 1/rate s, each timed from when it was due.
async fn open_writes(client: &reqwest::Client, writer: &Arc<Writer>, rate: u64, window: Duration) -> Writes {
    let answers = crate::dashboard::open_loop_timed(rate, window, Err("PANIC".into()), |i| {
        let (client, writer) = (client.clone(), writer.clone());
        async move { writer.send(&client, i, writer.body(i, &format!("BENCH-OPEN-{i}"))).await }
    })
    .await;
    tally(answers)
}

/// A GraphQL mutation of the setup, which must succeed.
async fn setup(client: &reqwest::Client, url: &str, token: &str, query: &str, input: Value) -> anyhow::Result<()> {
    let answer: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": { "input": input } }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(answer["errors"].is_null(), "bench setup refused: {answer}");
    Ok(())
}

/// Signs a national convention with `envelopes` envelopes through GraphQL; returns their ids.
async fn sign(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    code: &str,
    envelopes: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let total = (ENVELOPE_EUROS * envelopes as u64).to_string();
    setup(
        client,
        url,
        token,
        "mutation($input: SignConventionInput!) { signConvention(input: $input) { position } }",
        json!({ "code": code, "partner": "Bench", "title": "bench write", "signedOn": "2021-01-04",
                "periodStart": "2021-01-04", "periodEnd": "2030-12-31", "total": total,
                "shares": [ { "funder": "ANCT", "amount": total } ] }),
    )
    .await?;
    let convention = ConventionId::for_code(code);
    let mut ids = Vec::new();
    for e in 0..envelopes {
        let name = format!("Enveloppe {e:02}");
        setup(
            client,
            url,
            token,
            "mutation($input: AllocateEnvelopeInput!) { allocateEnvelope(input: $input) { position } }",
            json!({ "conventionId": convention.to_string(), "name": name, "kind": "CERTIFYING_TRAININGS",
                    "amount": ENVELOPE_EUROS.to_string(), "allocatedOn": "2021-01-04" }),
        )
        .await?;
        ids.push((convention.to_string(), EnvelopeId::for_name(convention, &name).to_string()));
    }
    Ok(ids)
}

/// The `FundsCommitted` events of a closed log.
async fn funds_committed(log: &store::SqliteStore) -> anyhow::Result<u64> {
    let (mut after, mut n) = (0, 0);
    loop {
        let page = log.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { return Ok(n) };
        after = last.position;
        n += page.iter().filter(|e| e.event_type == "FundsCommitted").count() as u64;
    }
}

/// The fsync floor and the store's append rate, on a log of their own, before the server starts.
async fn store_baselines(window: Duration) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let fsync = crate::log::fsync_floor(dir.path(), window)?;
    let log = Arc::new(store::SqliteStore::open(dir.path().join(LOG_FILE))?);
    let appends = crate::log::appends(log, BASELINE_WRITERS, window).await?;
    Ok((fsync, appends))
}

pub async fn write(options: &WriteOptions) -> anyhow::Result<WriteFigures> {
    let mut figures = write_embedded(options).await?;
    if let Some(url) = &options.postgres {
        figures.postgres = crate::replicas::postgres(options, url).await?;
    }
    Ok(figures)
}

async fn write_embedded(options: &WriteOptions) -> anyhow::Result<WriteFigures> {
    let (fsync_per_s, store_appends_per_s) = store_baselines(options.baseline_window).await?;

    let dir = tempfile::tempdir()?;
    let (base, token, stop, server) =
        crate::dashboard::serve_in_process(dir.path(), api::Role::Anct, "bench write").await?;
    let measured = measure(options, &base, &token).await;
    let _ = stop.send(());
    server.await??;
    let mut figures = measured?;
    figures.fsync_per_s = fsync_per_s;
    figures.store_appends_per_s = store_appends_per_s;
    figures.funds_committed_events =
        funds_committed(&store::SqliteStore::open_read_only(dir.path().join(LOG_FILE))?).await?;
    Ok(figures)
}

/// Everything measured against the running server at `base`.
async fn measure(options: &WriteOptions, base: &str, token: &str) -> anyhow::Result<WriteFigures> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let url = format!("{base}/graphql");
    let (one, spread) = writers(&client, std::slice::from_ref(&url), token).await?;

    let health = Target::Health(format!("{base}/health"));
    closed_loop(&client, &health, BASELINE_WRITERS, Duration::from_millis(300)).await; // warm-up
    let health_per_s = closed_loop(&client, &health, BASELINE_WRITERS, options.baseline_window).await;

    let runs = closed_runs(options, &client, &one, &spread).await;

    let dashboard = Target::GraphQL {
        url: url.clone(),
        token: token.to_string(),
        body: json!({ "query": NATIONAL_DASHBOARD }).to_string(),
    };
    let dashboard_alone = open_loop(&client, &dashboard, options.read_rate, options.window).await;
    let (dashboard_under_writes, writes_under_reads) = tokio::join!(
        open_loop(&client, &dashboard, options.read_rate, options.window),
        open_writes(&client, &spread, options.write_rate, options.window),
    );
    let commands_ok = runs.iter().map(|r| r.writes.commands).sum::<u64>() + writes_under_reads.commands;
    Ok(WriteFigures {
        seconds: options.window.as_secs_f64(),
        fsync_per_s: 0.0,
        store_appends_per_s: 0.0,
        store_writers: BASELINE_WRITERS,
        health_per_s,
        health_clients: BASELINE_WRITERS,
        runs,
        read_rate_per_s: options.read_rate,
        write_rate_per_s: options.write_rate,
        dashboard_alone,
        dashboard_under_writes,
        writes_under_reads,
        commands_ok,
        funds_committed_events: 0,
        postgres: Vec::new(),
    })
}

/// The conventions the runs write to, signed through the first server: writers on one
/// envelope and on the spread ones.
pub(crate) async fn writers(
    client: &reqwest::Client,
    urls: &[String],
    token: &str,
) -> anyhow::Result<(Arc<Writer>, Arc<Writer>)> {
    let one = sign(client, &urls[0], token, "BENCH-ONE", 1).await?;
    let mut spread = Vec::new();
    for c in 0..CONVENTIONS {
        spread.extend(sign(client, &urls[0], token, &format!("BENCH-SPREAD-{c}"), ENVELOPES_PER_CONVENTION).await?);
    }
    let writer = |envelopes| Arc::new(Writer { urls: urls.to_vec(), token: token.to_string(), envelopes });
    Ok((writer(one), writer(spread)))
}

/// The closed-loop runs: each client count, on one envelope then spread.
pub(crate) async fn closed_runs(
    options: &WriteOptions,
    client: &reqwest::Client,
    one: &Arc<Writer>,
    spread: &Arc<Writer>,
) -> Vec<WriteRun> {
    let mut runs = Vec::new();
    for &clients in &options.clients {
        for writer in [one, spread] {
            let n = runs.len();
            runs.push(closed_writes(client, writer, n, clients, writer.envelopes.len(), options.window).await);
        }
    }
    runs
}

fn errors(w: &Writes) -> String {
    if w.other_errors.is_empty() {
        return "0".into();
    }
    w.other_errors.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
}

pub fn report(f: &WriteFigures) -> String {
    let mut out = String::from("baselines (same run):\n");
    out += &format!("{:<44} {:>10.0} ops/s\n", "fsync floor (512 B write + fdatasync)", f.fsync_per_s);
    out += &format!(
        "{:<44} {:>10.0} appends/s  ({:.1}× fsync)\n",
        format!("store appends, {} writers (no HTTP)", f.store_writers),
        f.store_appends_per_s,
        f.store_appends_per_s / f.fsync_per_s.max(1e-9)
    );
    out += &format!(
        "{:<44} {:>10.0} requests/s\n\n",
        format!("GET /health, {} clients (closed loop)", f.health_clients),
        f.health_per_s
    );
    out += &format!("commitFunds through GraphQL, closed loop, every commit durable ({:.0} s each):\n", f.seconds);
    out += &format!(
        "{:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n",
        "clients",
        "envelopes",
        "commands/s",
        "vs store",
        "vs fsync",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CONFLICT",
        "other errors"
    );
    for r in &f.runs {
        out += &format!(
            "{:>7} {:>9} {:>10.0} {:>7.3}× {:>7.2}× {:>8.2} {:>8.2} {:>8.2} {:>8}  {}\n",
            r.clients,
            r.envelopes,
            r.commands_per_s,
            r.commands_per_s / f.store_appends_per_s.max(1e-9),
            r.commands_per_s / f.fsync_per_s.max(1e-9),
            r.writes.p50_ms,
            r.writes.p99_ms,
            r.writes.max_ms,
            r.writes.conflicts,
            errors(&r.writes)
        );
    }
    out += &format!(
        "\nnational dashboard at {} requests/s, open loop (latency from when each request was due):\n",
        f.read_rate_per_s
    );
    out += &format!(
        "{:<44} {:>8} {:>8} {:>8} {:>7} {:>13}\n",
        "load", "p50 ms", "p99 ms", "max ms", "errors", "p99 vs alone"
    );
    for (name, l) in [
        ("dashboard alone (baseline)".to_string(), &f.dashboard_alone),
        (format!("dashboard with {} commitFunds/s", f.write_rate_per_s), &f.dashboard_under_writes),
    ] {
        out += &format!(
            "{name:<44} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>12.1}×\n",
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.errors,
            l.p99_ms / f.dashboard_alone.p99_ms.max(1e-9)
        );
    }
    let w = &f.writes_under_reads;
    out += &format!(
        "{:<44} {:>8.2} {:>8.2} {:>8.2}  CONFLICT {}, other errors {}\n",
        format!("  the {} commitFunds/s meanwhile", f.write_rate_per_s),
        w.p50_ms,
        w.p99_ms,
        w.max_ms,
        w.conflicts,
        errors(w)
    );
    out += &format!(
        "\nlog check: {} commands answered without error, {} FundsCommitted events in the log\n",
        f.commands_ok, f.funds_committed_events
    );
    if !f.postgres.is_empty() {
        out += &crate::replicas::report(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_command_answered_without_error_is_one_event_in_the_log() {
        let options = WriteOptions {
            window: Duration::from_millis(500),
            clients: vec![1, 4],
            read_rate: 50,
            write_rate: 20,
            baseline_window: Duration::from_millis(100),
            postgres: None,
        };
        let f = write(&options).await.unwrap();

        let shape: Vec<_> = f.runs.iter().map(|r| (r.clients, r.envelopes)).collect();
        assert_eq!(shape, [(1, 1), (1, 64), (4, 1), (4, 64)]);
        for r in &f.runs {
            assert!(r.writes.commands > 0, "{r:?}");
            assert!(r.writes.other_errors.is_empty(), "{r:?}");
        }
        assert_eq!(f.dashboard_alone.requests, 25);
        assert_eq!((f.dashboard_alone.errors, f.dashboard_under_writes.errors), (0, 0));
        assert_eq!(f.writes_under_reads.commands, 10, "{:?}", f.writes_under_reads);
        assert!(f.fsync_per_s > 0.0 && f.store_appends_per_s > 0.0 && f.health_per_s > 0.0);
        assert!(f.commands_ok > 0);
        assert_eq!(f.funds_committed_events, f.commands_ok);

        let text = report(&f);
        for line in
            ["fsync floor", "store appends, 64 writers", "GET /health", "CONFLICT", "dashboard alone", "log check"]
        {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["runs"][1]["envelopes"], 64);
        assert!(json["runs"][0]["conflicts"].is_u64() && json["dashboardUnderWrites"]["p99Ms"].is_f64());
    }
}
