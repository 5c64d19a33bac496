//! Partners' files imported line by line: Aidants Connect, Pix, the OPCO, UNCCAS and the
//! employer structures send periodic extracts (CSV as French spreadsheets write them, or
//! `.xlsx`); each line becomes one typed command sent through the use cases, the one
//! write path the GraphQL API uses. The answer is a report, in French: every line
//! accepted, already there, or refused with the rule and its figures.
//!
//! A line's command id is derived from the file's kind and the line's normalised content,
//! so importing a file again (or the rest of a file after a crash) writes nothing twice. A
//! line is one use case: written whole in one atomic append, or not at all. A file that
//! cannot be read at all (encoding, a missing column) writes nothing.
//!
//! This crate must never decide a business rule (the domain does, through the use cases)
//! nor write except through the use cases.

mod cells;
pub mod french;
mod kinds;
pub mod read;
mod report;

pub use kinds::{Column, Importer, Kind};
pub use read::{FileError, Source};
pub use report::{LineOutcome, RefusedLine, Report};

use domain::ids::TRACKER_NAMESPACE;
use domain::{CommandId, CommandMeta};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use usecases::UseCases;

/// Lines of different entities sent at once: enough for the log to commit them in groups.
pub const CONCURRENCY: usize = 64;

/// Why a line is refused: the rule's name, a French sentence with the figures, and the
/// figures themselves (for the JSON report).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refusal {
    pub rule: String,
    pub message: String,
    pub figures: serde_json::Value,
}

impl Refusal {
    pub fn new(rule: &str, message: impl Into<String>) -> Self {
        Self { rule: rule.into(), message: message.into(), figures: serde_json::Value::Object(Default::default()) }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        if let serde_json::Value::Object(map) = &mut self.figures {
            map.insert(key.into(), value.into());
        }
        self
    }
}

/// How to import.
#[derive(Clone, Debug)]
pub struct Options {
    /// Decide every line against the log as it is, and write nothing.
    pub dry_run: bool,
}

/// The id of a line's command: the kind and the line's normalised content.
fn command_id(kind: Kind, content: &str) -> CommandId {
    CommandId(uuid::Uuid::new_v5(&TRACKER_NAMESPACE, format!("import:{}:{content}", kind.name()).as_bytes()))
}

/// Where each of the template's columns is in the file; a missing one makes the file unreadable.
fn columns(kind: Kind, table: &read::Table) -> Result<HashMap<&'static str, usize>, FileError> {
    let found: Vec<String> = table.headers.iter().map(|h| cells::normalise(h)).collect();
    let mut index = HashMap::new();
    for column in kind.columns() {
        let wanted = cells::normalise(column.header);
        let Some(at) = found.iter().position(|h| *h == wanted) else {
            return Err(FileError::new(
                Some(table.header_line),
                Some(column.header.to_string()),
                format!(
                    "colonne « {} » absente de la ligne {} (les en-têtes) : le modèle de ce fichier est donné par \
                     `tracker import --template {}`",
                    column.header,
                    table.header_line,
                    kind.name()
                ),
            ));
        };
        index.insert(column.header, at);
    }
    Ok(index)
}

/// Imports a file of `kind`: reads it, parses every line, sends the lines through the use
/// cases (each entity's lines in file order, entities concurrently) and reports.
/// `progress` is told how many lines are done, as they are.
pub async fn import(
    use_cases: &Arc<UseCases>,
    kind: Kind,
    bytes: &[u8],
    who: &Importer,
    options: &Options,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<Report, FileError> {
    let table = read::read(bytes)?;
    let index = columns(kind, &table)?;
    let uc = if options.dry_run {
        let store = Arc::new(usecases::dry_run::DryRunStore::new(use_cases.store().clone()));
        UseCases::with_people(store, use_cases.people().clone())
    } else {
        use_cases.clone()
    };
    let total = table.rows.len();
    let mut outcomes: Vec<Option<Result<bool, Refusal>>> = vec![None; total];
    // Lines grouped by entity, in file order.
    let mut groups: Vec<Vec<(usize, kinds::Line, CommandId)>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let c = cells::Cells { cells: &row.cells, index: &index, people: &uc };
        match kind.parse_line(&c) {
            Ok(line) => {
                let content = serde_json::to_string(&line).expect("a parsed line serialises");
                let id = command_id(kind, &content);
                let g = *group_of.entry(line.entity()).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push((i, line, id));
            }
            Err(refusal) => outcomes[i] = Some(Err(refusal)),
        }
    }
    // The ids the lines carry instead of persons' references, durable before any is sent.
    if let Err(e) = uc.people().make_durable() {
        return Err(FileError::new(None, None, format!("l'annuaire des personnes n'a pu être écrit : {e}")));
    }
    let done = AtomicUsize::new(outcomes.iter().filter(|o| o.is_some()).count());
    progress(done.load(Ordering::Relaxed), total);
    let results: Vec<Vec<(usize, Result<bool, Refusal>)>> = futures::stream::iter(groups)
        .map(|group| {
            let (uc, done) = (&uc, &done);
            async move {
                let mut answers = Vec::with_capacity(group.len());
                for (i, line, id) in group {
                    let meta = CommandMeta::new(id, who.actor.clone());
                    answers.push((i, line.send(uc, meta, who).await));
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
                answers
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (i, answer) in results.into_iter().flatten() {
        outcomes[i] = Some(answer);
    }
    let outcomes = outcomes.into_iter().map(|o| o.expect("every line answered")).collect();
    Ok(Report::new(kind, &table, options.dry_run, outcomes))
}

/// The template of a kind: its header line, as CSV for French spreadsheets (UTF-8 with a
/// BOM, so that Excel reads the accents; `;` between columns).
pub fn template(kind: Kind) -> Vec<u8> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    let headers: Vec<&str> = kind.columns().iter().map(|c| c.header).collect();
    out.extend_from_slice(headers.join(";").as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// The templates' columns as Markdown tables, one per kind (the README prints them).
pub fn templates_markdown() -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        out += &format!("`{}` — {}\n\n| colonne | contenu | exemple |\n|---|---|---|\n", kind.name(), kind.label());
        for c in kind.columns() {
            out += &format!("| {} | {} | {} |\n", c.header, c.help, c.example);
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests;
