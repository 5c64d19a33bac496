//! `tracker bench directory`: the directory of persons as its callers meet it — a GraphQL
//! request issuing one id (made durable before its events are written), a file's
//! references (issued one by one, made durable once), and the lookups a resolver makes
//! to show a reference — on the data directory's SQLite file and, with `--postgres URL`,
//! in a PostgreSQL database's shared tables (a schema of its own, dropped afterwards).
//! Baseline: the SQLite file's lookups, measured in the same run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;
use store::{Directory, PersonKind};

/// One measure: `count` calls in `seconds`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measure {
    pub backend: String,
    pub what: String,
    pub count: usize,
    pub seconds: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryFigures {
    /// Lookups per second on the SQLite file: the baseline.
    pub baseline_per_s: f64,
    pub measures: Vec<Measure>,
}

fn timed(backend: &str, what: &str, count: usize, run: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Measure> {
    let started = Instant::now();
    run()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Measure { backend: backend.into(), what: what.into(), count, seconds, per_s: count as f64 / seconds.max(1e-9) })
}

/// The three uses on one directory (new references each time: every id is issued).
fn uses(directory: &Directory, backend: &str, count: usize) -> anyhow::Result<Vec<Measure>> {
    // A sync per request is the costly part on SQLite (a checkpoint each): fewer of them.
    let requests = (count / 10).max(1);
    let one_by_one = timed(backend, "ids issued one per request, each made durable", requests, || {
        for i in 0..requests {
            directory.pseudonym(PersonKind::Aidant, "bench-requests", &format!("AIDANT-{i:06}"))?;
            directory.make_durable()?;
        }
        Ok(())
    })?;
    let mut ids = Vec::with_capacity(count);
    let file = timed(backend, "a file's ids, issued one by one, durable once", count, || {
        for i in 0..count {
            ids.push(directory.pseudonym(PersonKind::Aidant, "bench-file", &format!("AIDANT-{i:06}"))?.to_string());
        }
        directory.make_durable()?;
        Ok(())
    })?;
    let refs: Vec<String> = (0..count).map(|i| format!("AIDANT-{i:06}")).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let batch = timed(backend, "a seeding's ids, issued in one batch", count, || {
        directory.pseudonyms(PersonKind::Aidant, "bench-batch", &refs)?;
        directory.make_durable()?;
        Ok(())
    })?;
    let lookups = timed(backend, "lookups (a reference shown)", count, || {
        for id in &ids {
            anyhow::ensure!(directory.display(id).starts_with("AIDANT-"), "{id} not found");
        }
        Ok(())
    })?;
    Ok(vec![lookups, one_by_one, file, batch])
}

/// Runs the uses on a SQLite file, then on PostgreSQL if given.
pub async fn directory(count: usize, postgres: Option<String>) -> anyhow::Result<DirectoryFigures> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let mut measures =
        tokio::task::spawn_blocking(move || uses(&Directory::open(&path)?, "SQLite file", count)).await??;
    if let Some(base) = postgres {
        let schema = format!("bench_directory_{}", uuid::Uuid::new_v4().simple());
        let url = store::postgres::create_schema(&base, &schema).await?;
        let run = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Measure>> {
                let directory = Arc::new(Directory::connect_postgres(&url)?);
                uses(&directory, "PostgreSQL", count)
            })
            .await?
        };
        store::postgres::drop_schema(&base, &schema).await?;
        measures.extend(run?);
    }
    Ok(DirectoryFigures { baseline_per_s: measures[0].per_s, measures })
}

pub fn report(f: &DirectoryFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<64} {:>10} {:<6} {:>12}", "measure", "value", "unit", "vs baseline");
    for m in &f.measures {
        let what = format!("{}: {} ({} in {:.2} s)", m.backend, m.what, m.count, m.seconds);
        let _ = writeln!(out, "{what:<64} {:>10.0} {:<6} {:>11.3}×", m.per_s, "/s", m.per_s / f.baseline_per_s);
    }
    out
}
