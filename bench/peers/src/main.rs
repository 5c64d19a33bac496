//! The peers benchmark's workload on cqrs-es with sqlite-es: append N commands to M
//! aggregates durably (each command loads its aggregate, decides, appends one event,
//! every commit fsynced), with 1 writer and with W concurrent writers; then rebuild one
//! read model (every aggregate's balance) from the whole log. `run.py` runs it beside
//! `tracker bench workload` (ours) and `peers.py` (Python `eventsourcing`) and prints the
//! ratios. A process of its own: sqlx and our store both link SQLite, and Cargo allows
//! one copy per binary.

use async_trait::async_trait;
use clap::Parser;
use cqrs_es::persist::PersistedEventRepository;
use cqrs_es::{Aggregate as CqrsAggregate, DomainEvent as CqrsEvent};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Commands appended.
    #[arg(long, default_value_t = 10_000)]
    commands: usize,
    /// Aggregates they go to (round robin).
    #[arg(long, default_value_t = 1_000)]
    aggregates: usize,
    /// Concurrent writers of the second measurement.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Figures {
    appends_1_writer_per_s: f64,
    appends_concurrent_per_s: f64,
    replay_events_per_s: f64,
}

// ----- The same workload on cqrs-es with sqlite-es ----------------------------------

#[derive(Default, Serialize, Deserialize)]
struct CqrsAccount {
    balance: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CqrsAccountEvent {
    Deposited { amount: u64 },
}

impl CqrsEvent for CqrsAccountEvent {
    fn event_type(&self) -> String {
        "Deposited".into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug, Deserialize)]
struct CqrsDeposit {
    amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("a deposit is more than zero")]
struct CqrsRefused;

#[async_trait]
impl CqrsAggregate for CqrsAccount {
    type Command = CqrsDeposit;
    type Event = CqrsAccountEvent;
    type Error = CqrsRefused;
    type Services = ();

    fn aggregate_type() -> String {
        "account".into()
    }

    async fn handle(&self, c: CqrsDeposit, _: &()) -> Result<Vec<CqrsAccountEvent>, CqrsRefused> {
        if c.amount == 0 {
            return Err(CqrsRefused);
        }
        Ok(vec![CqrsAccountEvent::Deposited { amount: c.amount }])
    }

    fn apply(&mut self, e: CqrsAccountEvent) {
        let CqrsAccountEvent::Deposited { amount } = e;
        self.balance += amount;
    }
}

const SCHEMA: &str = "CREATE TABLE events (
  aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  sequence integer CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
  event_version text NOT NULL, payload text NOT NULL, metadata text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)) STRICT;
CREATE TABLE snapshots (
  aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  last_sequence integer CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL, payload text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)) STRICT;";

async fn theirs_append(cqrs: Arc<sqlite_es::SqliteCqrs<CqrsAccount>>, from: usize, to: usize, aggregates: usize) {
    for i in from..to {
        let id = format!("{}", i % aggregates);
        // A concurrent writer on the same aggregate is refused (optimistic lock): retry.
        loop {
            match cqrs.execute(&id, CqrsDeposit { amount: 1 + (i % 7) as u64 }).await {
                Ok(()) => break,
                Err(cqrs_es::AggregateError::AggregateConflict) => continue,
                Err(e) => panic!("cqrs-es refused a deposit: {e}"),
            }
        }
    }
}

async fn theirs(args: &Args) -> Figures {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("cqrs.db").display());
    // As durable as ours: every commit fsynced (sqlite-es's default pool uses NORMAL,
    // which in WAL mode may lose the last commits on power loss).
    let options = SqliteConnectOptions::from_str(&url)
        .expect("a url")
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(30));
    let pool = SqlitePoolOptions::new().max_connections(10).connect_with(options).await.expect("pool");
    sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
    let cqrs = Arc::new(sqlite_es::sqlite_cqrs::<CqrsAccount>(pool.clone(), vec![], ()));
    let started = Instant::now();
    theirs_append(cqrs.clone(), 0, args.commands, args.aggregates).await;
    let one = args.commands as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let per = args.commands / args.writers;
    let tasks: Vec<_> = (0..args.writers)
        .map(|w| {
            let cqrs = cqrs.clone();
            let aggregates = args.aggregates;
            tokio::spawn(async move {
                let from = args_offset(w, per);
                theirs_append(cqrs, from, from + per, aggregates).await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    let concurrent = (per * args.writers) as f64 / started.elapsed().as_secs_f64();
    // Rebuild the same read model from every event, with the repository's replay stream.
    let started = Instant::now();
    let repo = sqlite_es::SqliteEventRepository::new(pool);
    let mut stream = repo.stream_all_events::<CqrsAccount>().await.expect("replay stream");
    let mut balances: HashMap<String, u64> = HashMap::new();
    let mut events = 0u64;
    while let Some(envelope) = stream.next::<CqrsAccount>(&None).await {
        let envelope = envelope.expect("an event");
        let CqrsAccountEvent::Deposited { amount } = envelope.payload;
        *balances.entry(envelope.aggregate_id).or_default() += amount;
        events += 1;
    }
    let replay = events as f64 / started.elapsed().as_secs_f64();
    assert_eq!(balances.len(), args.aggregates.min(args.commands));
    Figures { appends_1_writer_per_s: one, appends_concurrent_per_s: concurrent, replay_events_per_s: replay }
}

/// The commands of writer `w` in the concurrent round start after the first round's.
fn args_offset(w: usize, per: usize) -> usize {
    1_000_000 + w * per
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let theirs = theirs(&args).await;
    if args.json {
        println!("{}", serde_json::to_string(&theirs).expect("json"));
        return;
    }
    println!("cqrs-es + sqlite-es: {} commands to {} aggregates", args.commands, args.aggregates);
    println!("  appends, 1 writer: {:.0}/s", theirs.appends_1_writer_per_s);
    println!("  appends, {} writers: {:.0}/s", args.writers, theirs.appends_concurrent_per_s);
    println!("  replay into a read model: {:.0} events/s", theirs.replay_events_per_s);
}
