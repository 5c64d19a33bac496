//! The answer to an import: a summary and the refused lines with their reason, in French,
//! that the partner corrects and sends again. As JSON (the API) or CSV (the command line):
//! the CSV never lets a cell be read as a formula (CSV injection).

use crate::read::{Source, Table};
use crate::{Kind, Refusal};
use serde::Serialize;

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LineOutcome {
    Accepted,
    AlreadyThere,
    Refused,
}

/// A refused line: its number as the spreadsheet shows it, the rule, the French reason,
/// the figures, and its cells as read (never evaluated).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedLine {
    pub line: usize,
    pub rule: String,
    pub message: String,
    pub figures: serde_json::Value,
    pub cells: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub kind: Kind,
    pub label: String,
    pub source: Source,
    /// Decided and not written.
    pub dry_run: bool,
    /// Lines read (the headers and empty lines aside).
    pub lines: usize,
    pub accepted: usize,
    pub already_there: usize,
    pub refused: usize,
    /// Each line's number and outcome, in file order (not in the JSON, which lists the refused ones).
    #[serde(skip)]
    pub outcomes: Vec<(usize, LineOutcome)>,
    pub headers: Vec<String>,
    pub refused_lines: Vec<RefusedLine>,
}

impl Report {
    pub(crate) fn new(kind: Kind, table: &Table, dry_run: bool, answers: Vec<Result<bool, Refusal>>) -> Self {
        let mut report = Report {
            kind,
            label: kind.label().into(),
            source: table.source.clone(),
            dry_run,
            lines: answers.len(),
            accepted: 0,
            already_there: 0,
            refused: 0,
            outcomes: Vec::with_capacity(answers.len()),
            headers: table.headers.clone(),
            refused_lines: Vec::new(),
        };
        for (row, answer) in table.rows.iter().zip(answers) {
            let outcome = match answer {
                Ok(false) => {
                    report.accepted += 1;
                    LineOutcome::Accepted
                }
                Ok(true) => {
                    report.already_there += 1;
                    LineOutcome::AlreadyThere
                }
                Err(r) => {
                    report.refused += 1;
                    report.refused_lines.push(RefusedLine {
                        line: row.line,
                        rule: r.rule,
                        message: r.message,
                        figures: r.figures,
                        cells: row.cells.clone(),
                    });
                    LineOutcome::Refused
                }
            };
            report.outcomes.push((row.line, outcome));
        }
        report
    }

    /// How the file was read, in French.
    pub fn read_as(&self) -> String {
        let s = &self.source;
        let mut parts = vec![s.format.clone()];
        parts.extend(s.encoding.clone());
        parts.extend(s.separator.as_ref().map(|x| format!("séparateur {x}")));
        parts.extend(s.sheet.as_ref().map(|x| format!("feuille « {x} »")));
        parts.join(", ")
    }

    /// The summary, in French, one fact a line.
    pub fn summary(&self) -> Vec<(String, String)> {
        let (accepted, there) = if self.dry_run {
            ("Seraient acceptées", "Déjà présentes")
        } else {
            ("Acceptées", "Déjà présentes (rien de nouveau)")
        };
        vec![
            ("Rapport d'import".into(), self.label.clone()),
            ("Fichier lu en".into(), self.read_as()),
            ("Essai à blanc".into(), if self.dry_run { "oui : rien n'a été écrit" } else { "non" }.into()),
            ("Lignes lues".into(), self.lines.to_string()),
            (accepted.into(), self.accepted.to_string()),
            (there.into(), self.already_there.to_string()),
            ("Refusées".into(), self.refused.to_string()),
        ]
    }

    /// The report as CSV for a French spreadsheet: UTF-8 with a BOM, `;`, the summary,
    /// an empty line, then the refused lines (number, rule, reason, then the line's own
    /// cells under the file's headers). No cell can start a formula.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = "\u{feff}".as_bytes().to_vec();
        let rows = |out: &mut Vec<u8>, rows: Vec<Vec<String>>| {
            let mut w = csv::WriterBuilder::new()
                .delimiter(b';')
                .flexible(true)
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            for cells in rows {
                w.write_record(cells.iter().map(|c| neutralise(c))).expect("writing to memory");
            }
            w.flush().expect("writing to memory");
        };
        rows(&mut out, self.summary().into_iter().map(|(k, v)| vec![k, v]).collect());
        out.extend_from_slice(b"\r\n");
        let mut header = vec!["Ligne".to_string(), "Règle".into(), "Motif".into()];
        header.extend(self.headers.iter().cloned());
        let refused = self.refused_lines.iter().map(|r| {
            let mut cells = vec![r.line.to_string(), r.rule.clone(), r.message.clone()];
            cells.extend(r.cells.iter().cloned());
            cells
        });
        rows(&mut out, std::iter::once(header).chain(refused).collect());
        out
    }
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, a tab or a carriage
/// return first) gets a leading `'`, so that it is shown as the text it is (OWASP's advice
/// against CSV injection).
pub fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell.to_string() }
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn a_cell_that_would_start_a_formula_is_shown_as_text() {
        assert_eq!(neutralise("=HYPERLINK(\"http://x\";\"clic\")"), "'=HYPERLINK(\"http://x\";\"clic\")");
        for c in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(c).starts_with('\''), "{c:?}");
        }
        assert_eq!(neutralise("CCAS de Brest"), "CCAS de Brest");
        assert_eq!(neutralise("a=b"), "a=b");
    }
}
