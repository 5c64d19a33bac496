//! `tracker bench attack`: the adversarial run of issue 20 as a benchmark. A read-only
//! token asks for the most expensive requests the server accepts (two replays of the
//! whole log each, the most a request may hold) from several clients at once, and for
//! the 1 000 aliases of `report` that once stalled the server; meanwhile `/health` and the
//! national dashboard are measured at a fixed rate, against the same measures taken just
//! before without the attack (the baseline of the same run).

use crate::dashboard::{Load, NATIONAL_DASHBOARD, Target, open_loop, serve_in_process};
use app::open_store;
use scenarios::plan::{Scale, seed};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::EventStore;

/// The most expensive request accepted: two replays (see `api::REPLAY_COST`).
const TWO_REPLAYS: &str = "{ a: report(asOf: \"2021-12-31\") b: report }";

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttackFigures {
    pub events: u64,
    pub attackers: usize,
    pub seconds: f64,
    pub rate_per_s: u64,
    pub health_quiet: Load,
    pub health_attacked: Load,
    pub dashboard_quiet: Load,
    pub dashboard_attacked: Load,
    /// Requests of two replays answered with their reports, per second.
    pub replay_requests_answered_per_s: f64,
    /// ...answered `TIMEOUT` (they queued for the replay lane longer than the limit).
    pub replay_requests_timed_out: u64,
    /// The 1 000-alias requests, all refused before any replay ran.
    pub aliases_refused: u64,
    pub aliases_refused_max_ms: f64,
    pub other_answers: u64,
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    timed_out: AtomicU64,
    refused: AtomicU64,
    refused_max_us: AtomicU64,
    other: AtomicU64,
}

pub async fn attack(scale: Scale, attackers: usize, rate: u64, window: Duration) -> anyhow::Result<AttackFigures> {
    let dir = tempfile::tempdir()?;
    let store = open_store(dir.path())?;
    let people = Arc::new(store::Directory::open(dir.path())?);
    seed(store.clone(), people, scale, 2021, scenarios::plan::CONCURRENCY).await?;
    let events = *store.head().borrow();
    drop(store);

    let (base, token, stop, server) = serve_in_process(dir.path(), api::Role::Copil, "bench attack").await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let health = Target::Health(format!("{base}/health"));
    let dashboard = Target::GraphQL {
        url: format!("{base}/graphql"),
        token: token.clone(),
        body: serde_json::json!({ "query": NATIONAL_DASHBOARD }).to_string(),
    };
    // Warm up (connections, the dashboard's memo).
    open_loop(&client, &health, rate, Duration::from_millis(300)).await;
    open_loop(&client, &dashboard, rate, Duration::from_millis(300)).await;
    let health_quiet = open_loop(&client, &health, rate, window).await;
    let dashboard_quiet = open_loop(&client, &dashboard, rate, window).await;

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    // The attack lasts both attacked measurements.
    let deadline = started + window * 2;
    let aliases = format!("{{ {} }}", (0..1_000).map(|i| format!("r{i}: report")).collect::<Vec<_>>().join(" "));
    let attackers_tasks: Vec<_> = (0..attackers)
        .map(|i| {
            let (client, tally, token) = (client.clone(), tally.clone(), token.clone());
            let url = format!("{base}/graphql");
            // One attacker in four sends the alias bomb, the others the costliest accepted request.
            let query = if i % 4 == 3 { aliases.clone() } else { TWO_REPLAYS.to_string() };
            tokio::spawn(async move {
                let body = serde_json::json!({ "query": query }).to_string();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let answer = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let text = match answer {
                        Ok(r) => r.text().await.unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    if text.contains("too complex") {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        tally.refused_max_us.fetch_max(sent.elapsed().as_micros() as u64, Ordering::Relaxed);
                    } else if text.contains("\"TIMEOUT\"") {
                        tally.timed_out.fetch_add(1, Ordering::Relaxed);
                    } else if text.contains("\"header\"") && !text.contains("\"errors\"") {
                        tally.answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the attack take hold before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health_attacked = open_loop(&client, &health, rate, window).await;
    let dashboard_attacked = open_loop(&client, &dashboard, rate, window).await;
    for t in attackers_tasks {
        let _ = t.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await??;
    Ok(AttackFigures {
        events,
        attackers,
        seconds,
        rate_per_s: rate,
        health_quiet,
        health_attacked,
        dashboard_quiet,
        dashboard_attacked,
        replay_requests_answered_per_s: tally.answered.load(Ordering::Relaxed) as f64 / seconds,
        replay_requests_timed_out: tally.timed_out.load(Ordering::Relaxed),
        aliases_refused: tally.refused.load(Ordering::Relaxed),
        aliases_refused_max_ms: tally.refused_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        other_answers: tally.other.load(Ordering::Relaxed),
    })
}

pub fn report(f: &AttackFigures) -> String {
    let ratio = |attacked: f64, quiet: f64| attacked / quiet.max(1e-9);
    let line = |name: &str, quiet: &Load, attacked: &Load| {
        format!(
            "{name:<22} quiet p50 {:>7.2} ms p99 {:>7.2} ms | attacked p50 {:>7.2} ms p99 {:>7.2} ms ({:.1}× quiet), {} errors\n",
            quiet.p50_ms,
            quiet.p99_ms,
            attacked.p50_ms,
            attacked.p99_ms,
            ratio(attacked.p99_ms, quiet.p99_ms),
            attacked.errors,
        )
    };
    let mut out = format!(
        "attack: {} events, {} attackers (1 in 4 sends 1 000 aliases of report), {:.1} s, {} req/s measured\n",
        f.events, f.attackers, f.seconds, f.rate_per_s
    );
    out += &line("/health", &f.health_quiet, &f.health_attacked);
    out += &line("national dashboard", &f.dashboard_quiet, &f.dashboard_attacked);
    out += &format!(
        "replays: {:.1} requests of two answered/s, {} TIMEOUT; alias bombs: {} refused (slowest {:.1} ms); {} other answers\n",
        f.replay_requests_answered_per_s,
        f.replay_requests_timed_out,
        f.aliases_refused,
        f.aliases_refused_max_ms,
        f.other_answers
    );
    out
}
