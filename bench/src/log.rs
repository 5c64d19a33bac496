//! `tracker bench store`: the event log's figures on this machine, each next to the fsync
//! floor measured in the same run (the number of 512-byte write+fsync a second this disk
//! does), since absolute figures mean little on a shared, noisy machine.

use chrono::NaiveDate;
use domain::convention::{ConventionEvent, FundsCommitted};
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, EventId, Money};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, Payload, SqliteStore};

/// What `bench store` measured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreFigures {
    pub fsync_per_s: f64,
    pub appends_1_writer_per_s: f64,
    pub appends_64_writers_per_s: f64,
    /// Appends per transaction (and fsync) with 64 writers: the group commit at work.
    pub mean_group_64: f64,
    pub batched_events_per_s: f64,
    pub replay_events: u64,
    pub replay_rows_per_s: f64,
    /// The same replay per CPU-second of this process (all its threads): its rate on one
    /// core, whatever else the machine runs meanwhile. `None` where `/proc` is missing.
    pub replay_rows_per_cpu_s: Option<f64>,
    pub replay_typed_per_s: f64,
}

fn payload(i: u64) -> (Payload, NaiveDate) {
    let convention = ConventionId::for_code("ANCT-UNIFORMATION-2021");
    let date = NaiveDate::from_ymd_opt(2021, 4, 1).unwrap() + chrono::Days::new(i % 600);
    let event = ConventionEvent::FundsCommitted(FundsCommitted {
        envelope_id: EnvelopeId::for_name(convention, "Formations certifiantes"),
        reference: format!("ACHAT-{i:08}"),
        amount: Money::cents(100_000 + (i % 90_000) as i64),
        committed_on: date,
        departement: Some(DepartementCode::parse(["75", "2A", "971", "59"][(i % 4) as usize]).unwrap()),
    });
    (Payload::encode(&event).unwrap(), date)
}

fn request(stream: String, expected: ExpectedVersion, first: u64, count: u64) -> AppendRequest {
    let command_id = CommandId::new_random();
    let meta = CommandMeta::new(command_id, "bench");
    AppendRequest {
        stream,
        expected,
        command_id,
        fingerprint: command_id.to_string(),
        events: (0..count)
            .map(|i| {
                let (payload, business_date) = payload(first + i);
                NewEvent {
                    event_id: EventId::for_command(command_id, i as usize),
                    event_type: "FundsCommitted".into(),
                    schema_version: 1,
                    business_date,
                    payload,
                    metadata: meta.clone(),
                }
            })
            .collect(),
    }
}

/// 512-byte write + fdatasync, as fast as the disk allows, for `window`.
pub fn fsync_floor(dir: &Path, window: Duration) -> std::io::Result<f64> {
    let mut f = std::fs::File::create(dir.join("fsync-floor"))?;
    let block = [0x5au8; 512];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub async fn appends(store: Arc<SqliteStore>, writers: usize, window: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{writers}w-{w}");
                let mut version = 0u64;
                while start.elapsed() < window {
                    let expected =
                        if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
                    store.append(request(stream.clone(), expected, version, 1)).await?;
                    version += 1;
                }
                anyhow::Ok(version)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

pub async fn batched(store: &SqliteStore, events: u64, batch: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut written = 0;
    while written < events {
        let n = batch.min(events - written);
        store.append(request(format!("batch-{written}"), ExpectedVersion::NoStream, written, n)).await?;
        written += n;
    }
    Ok(events as f64 / start.elapsed().as_secs_f64())
}

/// CPU time this process has used so far, all threads together (Linux `/proc`, in
/// 1/100 s: a replay lasts seconds).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is the first, user
    // time the 12th, system time the 13th.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// What a replay measured: events, events per second, events per CPU-second.
pub struct Replay {
    pub events: u64,
    pub per_s: f64,
    pub per_cpu_s: Option<f64>,
}

/// Reads the whole log, page by page (one page in memory at a time), decoding each
/// payload to its typed event when `typed`.
pub async fn replay(store: &SqliteStore, typed: bool) -> anyhow::Result<Replay> {
    let (start, cpu_start) = (Instant::now(), process_cpu());
    let (mut after, mut n) = (0, 0u64);
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        n += page.len() as u64;
        if typed {
            for e in &page {
                if e.event_type == "FundsCommitted" {
                    std::hint::black_box(e.payload.decode::<ConventionEvent>()?);
                }
            }
        }
        std::hint::black_box(&page);
    }
    let cpu = cpu_start.zip(process_cpu()).map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    Ok(Replay {
        events: n,
        per_s: n as f64 / start.elapsed().as_secs_f64(),
        per_cpu_s: cpu.filter(|s| *s > 0.0).map(|s| n as f64 / s),
    })
}

/// Runs every store measurement in a fresh temporary directory.
pub async fn store(replay_events: u64, window: Duration) -> anyhow::Result<StoreFigures> {
    let dir = std::env::temp_dir().join(format!("tracker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        let fsync_per_s = fsync_floor(&dir, window)?;
        let store = Arc::new(SqliteStore::open(dir.join("events.sqlite3"))?);
        let appends_1_writer_per_s = appends(store.clone(), 1, window).await?;
        let before = store.stats();
        let appends_64_writers_per_s = appends(store.clone(), 64, window).await?;
        let after = store.stats();
        let mean_group_64 = (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64;
        let written = *store.head().borrow();
        let batched_events_per_s = batched(&store, replay_events.saturating_sub(written).max(10_000), 1_000).await?;
        let rows = replay(&store, false).await?;
        let typed = replay(&store, true).await?;
        anyhow::Ok(StoreFigures {
            fsync_per_s,
            appends_1_writer_per_s,
            appends_64_writers_per_s,
            mean_group_64,
            batched_events_per_s,
            replay_events: rows.events,
            replay_rows_per_s: rows.per_s,
            replay_rows_per_cpu_s: rows.per_cpu_s,
            replay_typed_per_s: typed.per_s,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The figures as a table, each with its ratio to the fsync floor.
pub fn report(f: &StoreFigures) -> String {
    let row = |name: &str, value: f64, unit: &str| {
        format!("{name:<44} {value:>12.0} {unit:<10} {:>9.1}×\n", value / f.fsync_per_s)
    };
    let mut out = format!("{:<44} {:>12} {:<10} {:>10}\n", "measure", "value", "unit", "vs fsync");
    out += &row("fsync floor (512 B write + fdatasync)", f.fsync_per_s, "ops/s");
    out += &row("durable appends, 1 writer", f.appends_1_writer_per_s, "appends/s");
    out += &row("durable appends, 64 concurrent writers", f.appends_64_writers_per_s, "appends/s");
    out += &format!("{:<44} {:>12.1} appends per commit\n", "  mean group with 64 writers", f.mean_group_64);
    out += &row("batched appends (1 000 events per append)", f.batched_events_per_s, "events/s");
    out += &row(&format!("replay {} events: rows read + decoded", f.replay_events), f.replay_rows_per_s, "events/s");
    if let Some(per_cpu_s) = f.replay_rows_per_cpu_s {
        out += &row("  the same, per CPU-second of the process", per_cpu_s, "events/s");
    }
    out += &row("replay, payloads decoded to typed events", f.replay_typed_per_s, "events/s");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_cpu_time_moves_with_work() {
        if !cfg!(target_os = "linux") {
            return; // no /proc/self/stat: the figure is left out of the report
        }
        let start = process_cpu().expect("the process's CPU time, from /proc/self/stat");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spin = 0u64;
        while process_cpu().unwrap() < start + Duration::from_millis(30) {
            assert!(Instant::now() < deadline, "30 ms of CPU never showed in /proc/self/stat");
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replay_reads_every_event_of_the_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("events.sqlite3")).unwrap();
        batched(&store, 25, 10).await.unwrap();
        let rows = replay(&store, false).await.unwrap();
        let typed = replay(&store, true).await.unwrap();
        assert_eq!((rows.events, typed.events), (25, 25));
        assert!(rows.per_s > 0.0 && rows.per_cpu_s.is_none_or(|r| r > 0.0));
    }
}
