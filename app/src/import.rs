//! `tracker import KIND FILE`: a partner's file through the use cases (the `imports`
//! crate), with a progress bar on a terminal and the report in French; `--template KIND`
//! writes the file's template.

use anyhow::Context as _;
use imports::{Importer, Kind, Options, Report};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use store::EventStore;

/// What the import command was asked.
pub struct ImportArgs<'a> {
    pub data: &'a Path,
    pub kind: &'a str,
    pub file: &'a Path,
    pub dry_run: bool,
    pub report: Option<&'a Path>,
    pub json: bool,
}

pub fn kind(name: &str) -> anyhow::Result<Kind> {
    Kind::parse(name).with_context(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kind of file `{name}`: one of {}", names.join(", "))
    })
}

/// The template of a kind, on stdout.
pub fn template(name: &str) -> anyhow::Result<()> {
    std::io::stdout().write_all(&imports::template(kind(name)?))?;
    Ok(())
}

/// The progress of an import: lines done against lines read, on stderr when it is a
/// terminal (hidden in tests, CI and logs).
fn progress_bar() -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} lignes ({per_sec})",
        )
        .expect("a valid template"),
    );
    bar
}

/// Imports a file into the log of `data`. Returns the report, or the reason the file
/// could not be read (nothing written then).
pub async fn import(
    log: Arc<dyn EventStore>,
    args: &ImportArgs<'_>,
) -> anyhow::Result<Result<Report, imports::FileError>> {
    let kind = kind(args.kind)?;
    let bytes = std::fs::read(args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    // References of persons become ids of the data directory's directory of persons.
    let people = Arc::new(store::Directory::open(args.data)?);
    let use_cases = usecases::UseCases::with_people(log, people);
    // The file is named by its digest, not its name: a name may carry a person's (issue 24).
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes));
    let digest: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let who = Importer {
        actor: format!("import:{} (ligne de commande, fichier sha256 {digest}…)", kind.name()),
        structure: None,
    };
    let bar = progress_bar();
    bar.set_prefix(kind.name());
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = imports::import(&use_cases, kind, &bytes, &who, &Options { dry_run: args.dry_run }, &progress).await;
    bar.finish_and_clear();
    Ok(result)
}

/// Prints the report (its summary and refused lines, or JSON) and writes its CSV where asked.
pub fn print(report: &Report, args: &ImportArgs<'_>) -> anyhow::Result<()> {
    if let Some(path) = args.report {
        std::fs::write(path, report.to_csv()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for (k, v) in report.summary() {
        println!("{k:<34} {v}");
    }
    for r in report.refused_lines.iter().take(20) {
        println!("  ligne {:>6} refusée ({}) : {}", r.line, r.rule, r.message);
    }
    if report.refused_lines.len() > 20 {
        let more = report.refused_lines.len() - 20;
        match args.report {
            Some(path) => println!("  … et {more} autres lignes refusées : voir {}", path.display()),
            None => println!("  … et {more} autres lignes refusées : --report FICHIER.csv les donne toutes"),
        }
    }
    Ok(())
}

/// The whole command: exit status 0 when every line was accepted or already there, 2 when
/// some were refused, 1 when the file could not be read (nothing written).
pub async fn run(args: ImportArgs<'_>) -> anyhow::Result<i32> {
    let log = crate::open_store(args.data)?;
    match import(log, &args).await? {
        Ok(report) => {
            print(&report, &args)?;
            Ok(if report.refused > 0 { 2 } else { 0 })
        }
        Err(e) => {
            let place = match (e.line, &e.column) {
                (Some(l), Some(c)) => format!(" (ligne {l}, colonne « {c} »)"),
                (Some(l), None) => format!(" (ligne {l})"),
                _ => String::new(),
            };
            eprintln!("fichier illisible{place} : {}\nrien n'a été importé", e.message);
            Ok(1)
        }
    }
}
