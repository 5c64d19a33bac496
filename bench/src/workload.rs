//! `tracker bench workload`: the peers benchmark's workload on Convention Tracker's own
//! store and use cases (the one write path): append N commands to M aggregates durably (each command
//! loads its aggregate, decides, appends one event), with 1 writer and with W concurrent
//! writers; then rebuild one read model (every aggregate's balance) from the whole log.
//! `bench/peers/run.py` runs the same workload on cqrs-es and on Python `eventsourcing`.

use domain::{Aggregate, CommandId, CommandMeta, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use store::EventStore;
use usecases::UseCases;

#[derive(Clone, Default)]
struct Account {
    balance: u64,
}

#[derive(Debug, Serialize)]
struct Deposit {
    amount: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

impl DomainEvent for Deposited {
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
    fn business_date(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2021, 3, 15).expect("valid")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a deposit is more than zero")]
struct Refused;

impl Aggregate for Account {
    type Command = Deposit;
    type Event = Deposited;
    type Error = Refused;
    const CATEGORY: &'static str = "account";

    fn decide(&self, c: &Deposit) -> Result<Vec<Deposited>, Refused> {
        if c.amount == 0 {
            return Err(Refused);
        }
        Ok(vec![Deposited { amount: c.amount }])
    }

    fn evolve(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadFigures {
    pub appends_1_writer_per_s: f64,
    pub appends_concurrent_per_s: f64,
    pub replay_events_per_s: f64,
}

async fn append(use_cases: Arc<UseCases>, from: usize, to: usize, aggregates: usize) -> anyhow::Result<()> {
    for i in from..to {
        let stream = format!("account-{}", i % aggregates);
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("workload:{i}").as_bytes());
        let meta = CommandMeta::new(CommandId(id), "bench");
        use_cases
            .execute::<Account>(stream, Deposit { amount: 1 + (i % 7) as u64 }, meta)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

pub async fn workload(commands: usize, aggregates: usize, writers: usize) -> anyhow::Result<WorkloadFigures> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(store::SqliteStore::open(dir.path().join("events.sqlite3"))?);
    let use_cases = UseCases::new(store.clone());
    let started = Instant::now();
    append(use_cases.clone(), 0, commands, aggregates).await?;
    let one = commands as f64 / started.elapsed().as_secs_f64();
    // Concurrent writers (commands 1 000 000 + …, on the same aggregates, round robin).
    let per = commands / writers.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let use_cases = use_cases.clone();
            let from = 1_000_000 + w * per;
            tokio::spawn(async move { append(use_cases, from, from + per, aggregates).await })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let concurrent = (per * writers) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut balances: HashMap<String, u64> = HashMap::new();
    let mut after = 0;
    let mut events = 0u64;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            let d: Deposited = e.payload.decode()?;
            *balances.entry(e.stream.clone()).or_default() += d.amount;
            events += 1;
        }
    }
    let replay = events as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(balances.len() == aggregates.min(commands), "every aggregate has its balance");
    Ok(WorkloadFigures {
        appends_1_writer_per_s: one,
        appends_concurrent_per_s: concurrent,
        replay_events_per_s: replay,
    })
}
