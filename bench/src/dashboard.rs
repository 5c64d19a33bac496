//! `tracker bench dashboard`: the plan at full scale seeded into a fresh log, then the
//! dashboards under load from a client on loopback, with `/health` (no read model, no
//! GraphQL) measured in the same run as the baseline. Also the seeding rate, a rebuild
//! of every read model and the process's peak memory.

use app::{Application, Settings, open_store};
use scenarios::plan::{Scale, seed};
use std::time::{Duration, Instant};
use store::EventStore;

/// Latency percentiles and rates of one measured load.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: usize,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardFigures {
    pub events: u64,
    pub seed_commands: u64,
    pub seed_seconds: f64,
    pub rebuild_events_per_s: f64,
    pub peak_rss_mib: f64,
    pub rate_per_s: u64,
    pub health: Load,
    pub dashboard_national: Load,
    pub dashboard_departement: Load,
    /// Closed loop, `clients` at a time: requests answered per second.
    pub clients: usize,
    pub health_max_per_s: f64,
    pub dashboard_max_per_s: f64,
}

/// The settings of a benchmark's own server on `dir` (port 0, no demo, no rate limit:
/// the benchmarks measure the server, not the limit), on `store` or the embedded log.
pub(crate) fn bench_settings(dir: &std::path::Path, store: Option<String>) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        store,
        directory: None,
        addr: "127.0.0.1:0".into(),
        demo: false,
        scenario: scenarios::Scenario::Sample,
        graphiql: false,
        rate_limit: 0,
    }
}

/// A server started in this process: its base URL, and how to stop it (send on the
/// channel, then await the task).
pub(crate) type Started = (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>);

pub(crate) async fn start(settings: &Settings) -> anyhow::Result<Started> {
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Ok((base, stop, server))
}

/// A running server of its own on `dir` (port 0), a token of `role`, and how to stop it:
/// send on the channel, then await the task.
pub(crate) async fn serve_in_process(
    dir: &std::path::Path,
    role: api::Role,
    label: &str,
) -> anyhow::Result<(String, String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let tokens = api::TokenStore::open(dir)?;
    let (_, token) = tokens.create(role, None, api::Holder::Named(label)).await.map_err(|e| anyhow::anyhow!(e))?;
    let (base, stop, server) = start(&bench_settings(dir, None)).await?;
    Ok((base, token, stop, server))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The national dashboard as the comité de pilotage's page asks for it.
pub(crate) const NATIONAL_DASHBOARD: &str = "{ dashboard { position total { budget { committed serviceDone paid } \
    training { trainees certifyingPercent } habilitations { habilitated } \
    reimbursements { claimed paid meanDaysToPaid p90DaysToPaid overdueClaims } } \
    targets { kind target reached percent } } }";

#[derive(Clone)]
pub(crate) enum Target {
    Health(String),
    GraphQL { url: String, token: String, body: String },
}

async fn send(client: &reqwest::Client, target: &Target) -> bool {
    let response = match target {
        Target::Health(url) => client.get(url).send().await,
        Target::GraphQL { url, token, body } => {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
        }
    };
    match response {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok_and(|b| !b.windows(9).any(|w| w == b"\"errors\":")),
        _ => false,
    }
}

/// Open loop: `request(i)` started every 1/rate s for `window`, each timed from when it
/// was due (so a slow answer cannot hide the requests queued behind it); a request whose
/// task failed counts as `failed`, at an infinite latency.
pub(crate) async fn open_loop_timed<T, F, Fut>(rate: u64, window: Duration, failed: T, request: F) -> Vec<(f64, T)>
where
    T: Clone + Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let total = (rate as f64 * window.as_secs_f64()) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let answer = request(i);
        tasks.push(tokio::spawn(async move {
            let outcome = answer.await;
            (due.elapsed().as_secs_f64() * 1000.0, outcome)
        }));
    }
    let mut answers = Vec::with_capacity(total);
    for t in tasks {
        answers.push(t.await.unwrap_or((f64::MAX, failed.clone())));
    }
    answers
}

/// Open loop on one target (see [`open_loop_timed`]).
pub(crate) async fn open_loop(client: &reqwest::Client, target: &Target, rate: u64, window: Duration) -> Load {
    let answers = open_loop_timed(rate, window, false, |_| {
        let (client, target) = (client.clone(), target.clone());
        async move { send(&client, &target).await }
    })
    .await;
    let total = answers.len();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for (ms, ok) in answers {
        latencies.push(ms);
        errors += usize::from(!ok);
    }
    latencies.sort_by(f64::total_cmp);
    Load {
        requests: total,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        errors,
    }
}

/// Closed loop: `clients` each send the next request when the previous one is answered.
pub(crate) async fn closed_loop(client: &reqwest::Client, target: &Target, clients: usize, window: Duration) -> f64 {
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    send(&client, &target).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / window.as_secs_f64()
}

pub async fn dashboard(scale: Scale, rate: u64, window: Duration, clients: usize) -> anyhow::Result<DashboardFigures> {
    let dir = tempfile::tempdir()?;
    let store = open_store(dir.path())?;
    let people = std::sync::Arc::new(store::Directory::open(dir.path())?);
    let seeded = seed(store.clone(), people, scale, 2021, scenarios::plan::CONCURRENCY).await?;
    let events = *store.head().borrow();
    let rebuilt = app::rebuild::rebuild(store.as_ref(), &dir.path().join("bench-snapshots")).await?;
    drop(store);

    let (base, token, stop, server) = serve_in_process(dir.path(), api::Role::Copil, "bench").await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let graphql = |query: &str| Target::GraphQL {
        url: format!("{base}/graphql"),
        token: token.clone(),
        body: serde_json::json!({ "query": query }).to_string(),
    };
    let health = Target::Health(format!("{base}/health"));
    let national = graphql(NATIONAL_DASHBOARD);
    let departement = graphql(
        "{ dashboard(departement: \"59\") { total { budget { committed } training { trainees } \
         habilitations { byStatus { status count } } reimbursements { byStatus { status count } } } } }",
    );
    // Warm up connections and caches.
    for target in [&health, &national, &departement] {
        closed_loop(&client, target, clients, Duration::from_millis(500)).await;
    }
    let health_load = open_loop(&client, &health, rate, window).await;
    let national_load = open_loop(&client, &national, rate, window).await;
    let departement_load = open_loop(&client, &departement, rate, window).await;
    let health_max = closed_loop(&client, &health, clients, window).await;
    let dashboard_max = closed_loop(&client, &national, clients, window).await;
    let _ = stop.send(());
    server.await??;
    Ok(DashboardFigures {
        events,
        seed_commands: seeded.commands,
        seed_seconds: seeded.seconds,
        rebuild_events_per_s: rebuilt.events as f64 / rebuilt.seconds.max(1e-9),
        peak_rss_mib: peak_rss_mib(),
        rate_per_s: rate,
        health: health_load,
        dashboard_national: national_load,
        dashboard_departement: departement_load,
        clients,
        health_max_per_s: health_max,
        dashboard_max_per_s: dashboard_max,
    })
}

pub fn report(f: &DashboardFigures) -> String {
    let mut out = format!(
        "plan seeded: {} events from {} commands in {:.1} s ({:.0} events/s)\n",
        f.events,
        f.seed_commands,
        f.seed_seconds,
        f.events as f64 / f.seed_seconds.max(1e-9)
    );
    out += &format!(
        "rebuild of every read model: {:.0} events/s; peak RSS {:.0} MiB\n\n",
        f.rebuild_events_per_s, f.peak_rss_mib
    );
    out += &format!("open loop at {} requests/s (latency from when each request was due):\n", f.rate_per_s);
    out += &format!(
        "{:<34} {:>9} {:>9} {:>9} {:>7} {:>14}\n",
        "endpoint", "p50 ms", "p99 ms", "max ms", "errors", "p99 vs health"
    );
    for (name, l) in [
        ("GET /health (baseline)", &f.health),
        ("dashboard, national", &f.dashboard_national),
        ("dashboard, one département", &f.dashboard_departement),
    ] {
        out += &format!(
            "{name:<34} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>13.1}×\n",
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.errors,
            l.p99_ms / f.health.p99_ms.max(1e-9)
        );
    }
    out += &format!(
        "\nclosed loop, {} clients: /health {:.0} requests/s; national dashboard {:.0} requests/s ({:.2}× /health)\n",
        f.clients,
        f.health_max_per_s,
        f.dashboard_max_per_s,
        f.dashboard_max_per_s / f.health_max_per_s.max(1e-9)
    );
    out
}
