//! `tracker bench write --postgres URL`: the closed-loop `commitFunds` runs of
//! [`crate::write`] again on a PostgreSQL log, served by 1 and by 3 replicas, each
//! with its own connection pool and writer as separate processes would have (they run in
//! this process, on the same cores), clients spread round-robin over them. Each run is
//! reported as a ratio to the embedded log's run of the same shape, measured just before.
//! The database gets a schema of its own per replica count, dropped afterwards.

use crate::write::{WriteFigures, WriteOptions, WriteRun, closed_runs, writers};
use std::sync::Arc;

/// The runs on PostgreSQL with this many replicas.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRuns {
    pub replicas: usize,
    pub runs: Vec<WriteRun>,
    /// Commands answered without error, and the `FundsCommitted` events the log holds
    /// afterwards: equal unless an answer lied.
    pub commands_ok: u64,
    pub funds_committed_events: u64,
}

pub async fn postgres(options: &WriteOptions, url: &str) -> anyhow::Result<Vec<ReplicaRuns>> {
    let mut out = Vec::new();
    for replicas in [1, 3] {
        let schema = format!("tracker_bench_{}", uuid::Uuid::new_v4().simple());
        let scoped = store::postgres::create_schema(url, &schema).await?;
        let measured = run(options, &scoped, replicas).await;
        store::postgres::drop_schema(url, &schema).await?;
        out.push(measured?);
    }
    Ok(out)
}

async fn run(options: &WriteOptions, url: &str, replicas: usize) -> anyhow::Result<ReplicaRuns> {
    let log = Arc::new(store::PostgresStore::connect(url).await?);
    let state = store::EventStore::replica_state(log.as_ref()).expect("PostgreSQL shares its replicas' state");
    let (_, token) = api::TokenStore::shared(state)
        .create(api::Role::Anct, None, api::Holder::Named("bench write"))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let dir = tempfile::tempdir()?;
        let settings = crate::dashboard::bench_settings(dir.path(), Some(url.to_string()));
        let (base, stop, task) = crate::dashboard::start(&settings).await?;
        let base = format!("{base}/graphql");
        servers.push((base, stop, task, dir));
    }
    let urls: Vec<String> = servers.iter().map(|s| s.0.clone()).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let measured = match writers(&client, &urls, &token).await {
        Ok((one, spread)) => Ok(closed_runs(options, &client, &one, &spread).await),
        Err(e) => Err(e),
    };
    for (_, stop, task, _dir) in servers {
        let _ = stop.send(());
        task.await??;
    }
    let runs = measured?;
    let mut funds_committed_events = 0;
    let mut after = 0;
    loop {
        let page = store::EventStore::read_all(log.as_ref(), after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        funds_committed_events += page.iter().filter(|e| e.event_type == "FundsCommitted").count() as u64;
    }
    let commands_ok = runs.iter().map(|r| r.writes.commands).sum();
    Ok(ReplicaRuns { replicas, runs, commands_ok, funds_committed_events })
}

/// The PostgreSQL section of `bench write`'s report.
pub fn report(f: &WriteFigures) -> String {
    let mut out = String::from(
        "\ncommitFunds on PostgreSQL (same runs; ratio to the embedded log's run of the same shape above):\n",
    );
    out += &format!(
        "{:>8} {:>7} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8}  {}\n",
        "replicas", "clients", "envelopes", "commands/s", "vs SQLite", "p50 ms", "p99 ms", "CONFLICT", "other errors"
    );
    for r in &f.postgres {
        for run in &r.runs {
            let embedded = f.runs.iter().find(|e| e.clients == run.clients && e.envelopes == run.envelopes);
            let ratio = embedded.map_or(f64::NAN, |e| run.commands_per_s / e.commands_per_s.max(1e-9));
            let other = run.writes.other_errors.values().sum::<u64>();
            out += &format!(
                "{:>8} {:>7} {:>9} {:>10.0} {:>8.2}× {:>8.2} {:>8.2} {:>8}  {}\n",
                r.replicas,
                run.clients,
                run.envelopes,
                run.commands_per_s,
                ratio,
                run.writes.p50_ms,
                run.writes.p99_ms,
                run.writes.conflicts,
                other
            );
        }
        out += &format!(
            "{:>8} log check: {} commands answered without error, {} FundsCommitted events in the log\n",
            "", r.commands_ok, r.funds_committed_events
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_command_answered_on_postgres_is_one_event_in_the_log_with_one_or_three_replicas() {
        let Some(url) = store::postgres::testing::server_url("bench write on PostgreSQL") else { return };
        let options = WriteOptions {
            window: Duration::from_millis(300),
            clients: vec![4],
            read_rate: 10,
            write_rate: 10,
            baseline_window: Duration::from_millis(100),
            postgres: Some(url.clone()),
        };
        let measured = postgres(&options, &url).await.unwrap();
        assert_eq!(measured.iter().map(|r| r.replicas).collect::<Vec<_>>(), [1, 3]);
        for r in &measured {
            let shape: Vec<_> = r.runs.iter().map(|run| (run.clients, run.envelopes)).collect();
            assert_eq!(shape, [(4, 1), (4, 64)]);
            assert!(r.runs.iter().all(|run| run.writes.commands > 0 && run.writes.other_errors.is_empty()), "{r:?}");
            assert_eq!(r.commands_ok, r.funds_committed_events, "{r:?}");
        }
    }
}
