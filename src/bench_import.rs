//! `tracker bench import`: Aidants Connect habilitation lines and purchase lines imported
//! from CSV and from xlsx through the use cases, in lines/s, next to the store's raw
//! append rate (64 writers, one event per append) measured in the same run. Also the
//! generator of the partners' files (what the bench imports, and `seed --scenario files`).

use crate::seeding::Progress;
use domain::structure::Siret;
use imports::{Importer, Kind, Options};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{EventStore, SqliteStore};

/// A partner's file, generated: its kind, a name, its lines (cells by template column).
pub struct File {
    pub kind: Kind,
    pub name: String,
    pub lines: Vec<Vec<String>>,
}

impl File {
    fn new(kind: Kind, name: &str) -> Self {
        Self { kind, name: name.into(), lines: Vec::new() }
    }

    /// Appends a line given as (column, value); the other columns stay empty.
    fn line(&mut self, cells: &[(&str, String)]) {
        let line = self
            .kind
            .columns()
            .iter()
            .map(|c| cells.iter().find(|(k, _)| *k == c.header).map_or_else(String::new, |(_, v)| v.clone()))
            .collect();
        self.lines.push(line);
    }

    /// As a French spreadsheet writes CSV: `;`, UTF-8 with a BOM.
    pub fn csv(&self) -> Vec<u8> {
        let mut out = imports::template(self.kind);
        for line in &self.lines {
            let cells: Vec<String> =
                line.iter()
                    .map(|c| {
                        if c.contains([';', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
                    })
                    .collect();
            out.extend_from_slice(cells.join(";").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// As an .xlsx workbook: numbers as numbers, text as text.
    pub fn xlsx(&self) -> anyhow::Result<Vec<u8>> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (j, c) in self.kind.columns().iter().enumerate() {
            sheet.write_string(0, j as u16, c.header)?;
        }
        for (i, line) in self.lines.iter().enumerate() {
            for (j, v) in line.iter().enumerate() {
                let (row, col) = (i as u32 + 1, j as u16);
                if v.is_empty() {
                    continue;
                }
                match v.parse::<f64>() {
                    Ok(n) if !v.starts_with('0') || v == "0" => sheet.write_number(row, col, n)?,
                    _ => sheet.write_string(row, col, v)?,
                };
            }
        }
        Ok(book.save_to_buffer()?)
    }
}

/// A valid SIRET for structure `n` (a made-up SIREN, a Luhn check digit).
pub fn siret(tag: u32, n: usize) -> String {
    let base = format!("8{tag:02}{n:010}");
    (0..10).map(|d| format!("{base}{d}")).find(|s| Siret::parse(s).is_ok()).expect("one check digit fits")
}

const DEPARTEMENTS: &[&str] = &["75", "13", "59", "69", "33", "31", "44", "2A", "971", "974", "35", "67", "63", "29"];

/// The files of `aidants` aidants (five habilitation steps each) in `structures`
/// structures, and `purchases` training purchases (four steps each), all named with `tag`.
pub fn files(tag: u32, structures: usize, aidants: usize, purchases: usize) -> Vec<File> {
    let mut s = File::new(Kind::Structures, "structures");
    for i in 0..structures {
        let kind = if i % 5 == 0 { "CCAS/CIAS" } else { "association" };
        s.line(&[
            ("SIRET", siret(tag, i)),
            ("Nom", format!("Structure {tag}-{i}")),
            ("Type", kind.into()),
            ("Département", DEPARTEMENTS[i % DEPARTEMENTS.len()].into()),
            ("Effectif", ["4", "12", "60", "300"][i % 4].into()),
            ("Date d'enregistrement", "01/04/2021".into()),
        ]);
    }
    let mut sessions = File::new(Kind::AidantsSessions, "aidants-sessions");
    let per_session = 12;
    for i in 0..aidants.div_ceil(per_session) {
        sessions.line(&[
            ("Référence session", format!("AC-{tag}-{i}")),
            ("Convention", "ANCT-AIDANTS-CONNECT-2021".into()),
            ("Capacité", per_session.to_string()),
            ("Coût par place", "125,00".into()),
            ("Date", "20/05/2021".into()),
        ]);
    }
    let mut h = File::new(Kind::Habilitations, "habilitations");
    let steps = [("demande", "01/04/2021"), ("éligibilité", "15/04/2021"), ("inscription", "02/05/2021")];
    let steps = steps.into_iter().chain([("formation", "20/05/2021"), ("habilitation", "01/06/2021")]);
    for (step, date) in steps {
        for i in 0..aidants {
            let mut cells = vec![
                ("SIRET", siret(tag, i % structures.max(1))),
                ("Référence aidant", format!("AIDANT-{tag}-{i}")),
                ("Étape", step.to_string()),
                ("Date", date.to_string()),
            ];
            match step {
                "inscription" => cells.push(("Référence session", format!("AC-{tag}-{}", i / per_session))),
                "habilitation" => cells.push(("Moyen", if i % 3 == 0 { "application" } else { "carte" }.into())),
                _ => {}
            }
            h.line(&cells);
        }
    }
    let mut p = File::new(Kind::Purchases, "purchases");
    for (step, date) in
        [("demande", "15/03/2021"), ("accord", "01/04/2021"), ("présence", "07/05/2021"), ("paiement", "01/06/2021")]
    {
        for i in 0..purchases {
            let reference = format!("UNIF-{tag}-{i:05}");
            let mut cells = vec![("Référence achat", reference), ("Étape", step.into()), ("Date", date.into())];
            match step {
                "demande" => cells.extend([
                    ("Convention", "ANCT-UNIFORMATION-2021".to_string()),
                    // The OPCO channel is for private employers: never one of the CCAS (every fifth).
                    ("SIRET", siret(tag, (i % structures.max(1)) / 5 * 5 + 1)),
                    ("Organisme de formation", "Les Bons Clics".into()),
                    ("Intitulé", "Accompagner les démarches en ligne".into()),
                    ("Certification", if i % 2 == 0 { "RS5477".into() } else { String::new() }),
                    ("Blocs", "1, 2, 6".into()),
                    ("Métier", "agent d'accueil".into()),
                    ("Heures", "35".into()),
                    ("Stagiaires", "10".into()),
                    ("Coût unitaire", "150,00".into()),
                    ("Début de session", "03/05/2021".into()),
                    ("Fin de session", "07/05/2021".into()),
                ]),
                "présence" => cells.push(("Présents", (8 + i % 3).to_string())),
                _ => {}
            }
            p.line(&cells);
        }
    }
    vec![s, sessions, h, p]
}

/// Writes the files into `dir`, as xlsx where `xlsx` says so and CSV otherwise, named
/// `NN-kind.ext` in the order to import them.
pub fn write_files(files: &[File], dir: &Path, xlsx: impl Fn(Kind) -> bool) -> anyhow::Result<Vec<(Kind, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let xlsx = xlsx(f.kind);
        let path = dir.join(format!("{:02}-{}.{}", n + 1, f.name, if xlsx { "xlsx" } else { "csv" }));
        std::fs::write(&path, if xlsx { f.xlsx()? } else { f.csv() })?;
        out.push((f.kind, path));
    }
    Ok(out)
}

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
        crate::bench::appends(store, 64, Duration::from_secs(2)).await?
    };
    let log: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join(crate::LOG_FILE))?);
    crate::demo::seed_conventions(log.clone()).await?;
    let uc = usecases::UseCases::new(log.clone());
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
    // whose stream takes its writers in turn (one durable append each).
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

/// The demo's files: 200 structures, 400 aidants at every habilitation step, 200 purchases.
pub fn demo_files() -> Vec<File> {
    files(0, 200, 400, 200)
}

/// The structure the `files` demo's `structure` token is bound to.
pub fn demo_structure() -> uuid::Uuid {
    domain::structure::StructureId::for_siret(&Siret::parse(&siret(0, 0)).expect("a valid SIRET")).0
}

/// The demo seeded from generated files through the import path: the plan's conventions,
/// then structures, sessions, habilitations and purchases files (xlsx for the
/// habilitations, as Aidants Connect sends them; CSV for the rest). Idempotent: importing
/// again finds every line already there.
pub async fn seed_from_files(log: Arc<dyn EventStore>, dir: &Path, progress: Progress) -> anyhow::Result<u64> {
    let before = *log.head().borrow();
    progress.begin(before);
    crate::demo::seed_conventions(log.clone()).await?;
    let uc = usecases::UseCases::new(log.clone());
    let who = Importer { actor: "import:demo (fichiers générés)".into(), structure: None };
    for (kind, path) in write_files(&demo_files(), dir, |k| k == Kind::Habilitations)? {
        let bytes = std::fs::read(&path)?;
        let report = imports::import(&uc, kind, &bytes, &who, &Options { dry_run: false }, &|_, _| {})
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        anyhow::ensure!(report.refused == 0, "{}: {:?}", path.display(), report.refused_lines.first());
    }
    progress.finish();
    Ok(*log.head().borrow() - before)
}
