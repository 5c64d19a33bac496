//! `tracker bench import`: Aidants Connect habilitation lines and purchase lines imported
//! from CSV and from xlsx through the use cases, in lines/s, next to the store's raw
//! append rate (64 writers, one event per append) measured in the same run. The files are
//! the scenarios' generated ones ([`scenarios::files`]).

use imports::{Importer, Kind, Options};
use scenarios::files::{File, files};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{EventStore, SqliteStore};

/// One file imported, timed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub what: String,
    pub format: String,
    pub lines: usize,
    pub bytes: usize,
    pub seconds: f64,
    pub lines_per_s: f64,
    pub refused: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportFigures {
    /// The store's raw append rate: 64 writers, one event per append, durable.
    pub raw_appends_per_s: f64,
    pub runs: Vec<Run>,
    /// The habilitation lines again, one file per step.
    pub by_step: Vec<Run>,
}

async fn timed(uc: &Arc<usecases::UseCases>, kind: Kind, bytes: &[u8], format: &str) -> anyhow::Result<Run> {
    let who = Importer { actor: "bench:import".into(), structure: None };
    let started = Instant::now();
    let report = imports::import(uc, kind, bytes, &who, &Options { dry_run: false }, &|_, _| {})
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        what: kind.name().into(),
        format: format.into(),
        lines: report.lines,
        bytes: bytes.len(),
        seconds,
        lines_per_s: report.lines as f64 / seconds.max(1e-9),
        refused: report.refused,
    })
}

/// Seeds the plan's conventions, then imports the generated files (structures and sessions
/// untimed, habilitations and purchases timed), once from CSV and once from xlsx.
pub async fn import(habilitations: usize, purchases: usize) -> anyhow::Result<ImportFigures> {
    let dir = tempfile::tempdir()?;
    let raw = {
        let store = Arc::new(SqliteStore::open(dir.path().join("raw.sqlite3"))?);
        crate::log::appends(store, 64, Duration::from_secs(2)).await?
    };
    let log: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join(app::LOG_FILE))?);
    scenarios::demo::seed_conventions(log.clone()).await?;
    // The data directory's own directory of persons, as `tracker import` opens it: every
    // reference becomes an id there, made durable once per file.
    let people = Arc::new(store::Directory::open(dir.path())?);
    let uc = usecases::UseCases::with_people(log.clone(), people);
    let mut runs = Vec::new();
    for (tag, format) in [(1, "CSV"), (2, "XLSX")] {
        let aidants = habilitations.div_ceil(5);
        let files = files(tag, 1_000, aidants, purchases.div_ceil(4));
        for f in &files {
            let bytes = if format == "CSV" { f.csv() } else { f.xlsx()? };
            let run = timed(&uc, f.kind, &bytes, format).await?;
            anyhow::ensure!(run.refused == 0, "{} lines of {} refused in the bench", run.refused, f.name);
            if matches!(f.kind, Kind::Habilitations | Kind::Purchases) {
                runs.push(run);
            }
        }
    }
    // Where the time goes: the same habilitation lines again (other aidants), one file per
    // step. A completed training charges its seat to the one Aidants Connect convention,
    // whose lane its writers take in turn (pipelined on the embedded log).
    let aidants = habilitations.div_ceil(5);
    let mut by_step = Vec::new();
    for f in files(3, 1_000, aidants, 0) {
        if f.kind != Kind::Habilitations {
            timed(&uc, f.kind, &f.csv(), "CSV").await?;
            continue;
        }
        for (i, chunk) in f.lines.chunks(aidants.max(1)).enumerate() {
            let step = File { kind: f.kind, name: f.name.clone(), lines: chunk.to_vec() };
            let mut run = timed(&uc, f.kind, &step.csv(), "CSV").await?;
            anyhow::ensure!(run.refused == 0, "{} lines refused in the bench", run.refused);
            run.what = format!(
                "habilitations, step {}",
                ["demande", "éligibilité", "inscription", "formation", "habilitation"][i % 5]
            );
            by_step.push(run);
        }
    }
    // The formation step again (other aidants), its companion's writes not pipelined: a
    // use-case layer standing for another process on the log turns pipelining off.
    for f in files(4, 1_000, aidants, 0) {
        if f.kind != Kind::Habilitations {
            timed(&uc, f.kind, &f.csv(), "CSV").await?;
            continue;
        }
        for (i, chunk) in f.lines.chunks(aidants.max(1)).enumerate().take(4) {
            let step = File { kind: f.kind, name: f.name.clone(), lines: chunk.to_vec() };
            if i == 3 {
                let _other = usecases::UseCases::another_process(log.clone());
                let mut run = timed(&uc, f.kind, &step.csv(), "CSV").await?;
                anyhow::ensure!(run.refused == 0, "{} lines refused in the bench", run.refused);
                run.what = "habilitations, step formation, not pipelined".into();
                by_step.push(run);
            } else {
                timed(&uc, f.kind, &step.csv(), "CSV").await?;
            }
        }
    }
    Ok(ImportFigures { raw_appends_per_s: raw, runs, by_step })
}

pub fn report(f: &ImportFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<48} {:>10} {:<8} {:>9}", "measure", "value", "unit", "vs raw");
    let _ = writeln!(
        out,
        "{:<48} {:>10.0} {:<8} {:>8.2}×",
        "raw appends (64 writers, 1 event each)", f.raw_appends_per_s, "/s", 1.0
    );
    for r in f.runs.iter().chain(&f.by_step) {
        let what = format!(
            "{} {} lines from {} ({:.1} MB) in {:.2} s",
            r.lines,
            r.what,
            r.format,
            r.bytes as f64 / 1e6,
            r.seconds
        );
        let _ = writeln!(
            out,
            "{what:<48} {:>10.0} {:<8} {:>8.2}×",
            r.lines_per_s,
            "lines/s",
            r.lines_per_s / f.raw_appends_per_s
        );
    }
    out
}
