//! The partners' files, generated: structures, Aidants Connect sessions and habilitations,
//! purchases, as a French spreadsheet or Aidants Connect would send them (CSV with `;`,
//! or xlsx). What `tracker import --generate` writes, what the `files` scenario imports
//! and what `tracker bench import` times.

use crate::seeding::Progress;
use domain::structure::Siret;
use imports::{Importer, Kind, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::EventStore;

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
/// again finds every line already there. The aidants' references go into `people` as an
/// imported file's do (`tracker import`'s path, ids issued as for any partner's file).
pub async fn seed_from_files(
    log: Arc<dyn EventStore>,
    people: Arc<store::Directory>,
    dir: &Path,
    progress: Progress,
) -> anyhow::Result<u64> {
    let before = *log.head().borrow();
    progress.begin(before);
    crate::demo::seed_conventions(log.clone()).await?;
    let uc = usecases::UseCases::with_people(log.clone(), people);
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
