//! One line's cells, read by column name and parsed into the domain's values (dates,
//! amounts with a decimal comma, SIRET, départements, competency blocks, French labels).
//! A cell that does not parse refuses its line, naming the column and what was expected.

use crate::Refusal;
use chrono::NaiveDate;
use domain::ids::TRACKER_NAMESPACE;
use domain::{ConventionId, DepartementCode, Money};
use std::collections::HashMap;
use uuid::Uuid;

/// The longest text a cell may hold, in characters: the API's limit (ours), so that a
/// line imported is a line the API would take.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// Lower case, without accents, spaces collapsed: how headers and labels are compared.
pub fn normalise(s: &str) -> String {
    let folded: String = s
        .trim()
        .trim_end_matches('*')
        .chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' | 'Ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
            'î' | 'ï' | 'Î' | 'Ï' => 'i',
            'ô' | 'ö' | 'Ô' | 'Ö' => 'o',
            'ù' | 'û' | 'ü' | 'Ù' | 'Û' | 'Ü' => 'u',
            'ç' | 'Ç' => 'c',
            '’' => '\'',
            '\u{a0}' | '\u{202f}' | '_' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The cells of one line, by the template's column names.
pub struct Cells<'a> {
    pub cells: &'a [String],
    pub index: &'a HashMap<&'static str, usize>,
    /// Where references of persons become the opaque ids the log records.
    pub people: &'a usecases::UseCases,
}

fn format_error(column: &str, value: &str, expected: &str) -> Refusal {
    Refusal::new("Format", format!("colonne « {column} » : « {value} » n'est pas {expected}"))
        .with("column", column)
        .with("value", value)
}

impl<'a> Cells<'a> {
    /// The cell's text, trimmed; empty when blank.
    pub fn get(&self, column: &str) -> &'a str {
        self.index.get(column).and_then(|i| self.cells.get(*i)).map_or("", |c| c.trim())
    }

    /// A cell the line needs, with why (`pour l'étape « accord »`).
    pub fn required(&self, column: &str, why: &str) -> Result<&'a str, Refusal> {
        let v = self.get(column);
        if v.is_empty() {
            let why = if why.is_empty() { String::new() } else { format!(" {why}") };
            return Err(Refusal::new("ColonneVide", format!("colonne « {column} » vide : elle est requise{why}"))
                .with("column", column));
        }
        Ok(v)
    }

    /// A reference of a person (`kind`, unique in `scope`), as the opaque id the log
    /// records: refused when it looks like an e-mail address, a phone number or a NIR.
    pub fn person(&self, column: &str, kind: store::PersonKind, scope: &str) -> Result<String, Refusal> {
        let reference = self.text(column, "")?;
        // Made durable once for the whole file, before any line is sent.
        self.people.pseudonym_deferred(kind, scope, &reference).map_err(|e| match e {
            usecases::PseudonymError::PersonalData(looks_like) => Refusal::new(
                "DonnéePersonnelle",
                format!(
                    "colonne « {column} » : la référence ressemble à {} : donnez une référence pseudonyme, jamais de \
                     coordonnées ni de NIR",
                    looks_like.french()
                ),
            )
            .with("column", column),
            other => Refusal::new("Annuaire", format!("colonne « {column} » : {other}")).with("column", column),
        })
    }

    /// A free text (a reason, a title), within the length limit, refused when it holds
    /// an e-mail address, a phone number or a NIR: it stays in the log for ever, where
    /// nothing can be erased (as GraphQL refuses it in a mutation's free text).
    pub fn free_text(&self, column: &str, why: &str) -> Result<String, Refusal> {
        let text = self.text(column, why)?;
        match domain::personal::looks_like(&text) {
            None => Ok(text),
            Some(looks_like) => Err(Refusal::new(
                "DonnéePersonnelle",
                format!(
                    "colonne « {column} » : le texte contient ce qui ressemble à {} : un texte reste dans le journal \
                     pour toujours, sans effacement possible ; n'y écrivez ni coordonnées ni NIR",
                    looks_like.french()
                ),
            )
            .with("column", column)),
        }
    }

    /// A text, within the length limit.
    pub fn text(&self, column: &str, why: &str) -> Result<String, Refusal> {
        let v = self.required(column, why)?;
        let chars = v.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(Refusal::new(
                "TexteTropLong",
                format!("colonne « {column} » : {chars} caractères, au plus {MAX_TEXT_CHARS}"),
            )
            .with("column", column));
        }
        Ok(v.to_string())
    }

    pub fn date(&self, column: &str, why: &str) -> Result<NaiveDate, Refusal> {
        let v = self.required(column, why)?;
        parse_date(v).ok_or_else(|| format_error(column, v, "une date (AAAA-MM-JJ ou JJ/MM/AAAA)"))
    }

    pub fn money(&self, column: &str, why: &str) -> Result<Money, Refusal> {
        let v = self.required(column, why)?;
        parse_money(v).ok_or_else(|| format_error(column, v, "un montant en euros (par exemple 1 234,56)"))
    }

    pub fn count(&self, column: &str, why: &str) -> Result<u32, Refusal> {
        let v = self.required(column, why)?;
        let digits: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        digits.parse().map_err(|_| format_error(column, v, "un nombre entier positif"))
    }

    pub fn siret(&self, column: &str) -> Result<domain::structure::Siret, Refusal> {
        let v = self.required(column, "")?;
        domain::structure::Siret::parse(v).map_err(|e| {
            use domain::structure::SiretError as E;
            let (rule, why) = match e {
                E::NotFourteenDigits { .. } => {
                    ("SiretPasQuatorzeChiffres", "un SIRET : il faut exactement 14 chiffres")
                }
                E::BadCheckDigit { .. } => ("SiretCleFausse", "un SIRET valide : sa clé de contrôle (Luhn) est fausse"),
                E::BadLaPosteSum { .. } => {
                    ("SiretCleFausse", "un SIRET de La Poste valide : la somme de ses chiffres doit être multiple de 5")
                }
                E::ZeroSiren { .. } => ("SiretNul", "un SIRET : aucun établissement n'a le SIREN 000 000 000"),
            };
            Refusal { rule: rule.into(), ..format_error(column, v, why) }
        })
    }

    pub fn departement(&self, column: &str) -> Result<DepartementCode, Refusal> {
        let v = self.required(column, "")?;
        // A spreadsheet turns `01` into the number 1.
        let padded = if v.len() == 1 && v.as_bytes()[0].is_ascii_digit() { format!("0{v}") } else { v.to_string() };
        DepartementCode::parse(&padded)
            .map_err(|_| format_error(column, v, "un code de département INSEE (01 à 95, 2A, 2B, 971…)"))
    }

    pub fn blocks(&self, column: &str, why: &str) -> Result<Vec<domain::framework::CompetencyBlock>, Refusal> {
        let v = self.required(column, why)?;
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|n| {
                n.parse::<u8>().ok().and_then(domain::framework::CompetencyBlock::from_number).ok_or_else(|| {
                    format_error(column, v, "une liste de blocs du référentiel (1 à 9, par exemple « 1, 2, 4 »)")
                })
            })
            .collect()
    }

    /// A convention by its code (`ANCT-UNIFORMATION-2021`) or its id.
    pub fn convention(&self, column: &str, why: &str) -> Result<ConventionId, Refusal> {
        let v = self.required(column, why)?;
        Ok(Uuid::parse_str(v).map(ConventionId).unwrap_or_else(|_| ConventionId::for_code(v)))
    }

    /// The id of a partner's reference (`UNIF-2021-0042`): derived from it (case aside), or
    /// the id itself when the cell holds one (an entity created through the API).
    pub fn reference(&self, column: &str, category: &str) -> Result<Uuid, Refusal> {
        let v = self.text(column, "")?;
        Ok(reference_id(category, &v))
    }

    /// One of a few French labels, compared without case or accents.
    pub fn choice<T: Copy>(&self, column: &str, why: &str, choices: &[(&[&str], T)]) -> Result<T, Refusal> {
        let v = self.required(column, why)?;
        let n = normalise(v);
        choices.iter().find(|(labels, _)| labels.iter().any(|l| normalise(l) == n)).map(|(_, t)| *t).ok_or_else(|| {
            let expected: Vec<String> = choices.iter().map(|(l, _)| format!("« {} »", l[0])).collect();
            format_error(column, v, &format!("une valeur attendue ({})", expected.join(", ")))
        })
    }
}

pub fn reference_id(category: &str, reference: &str) -> Uuid {
    Uuid::parse_str(reference.trim()).unwrap_or_else(|_| {
        Uuid::new_v5(&TRACKER_NAMESPACE, format!("import:{category}:{}", reference.trim().to_uppercase()).as_bytes())
    })
}

/// `2021-03-15`, `15/03/2021` (and `-` or `.` between), or a date-time whose date is that.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    let v = v.trim();
    let day = v.get(..10).unwrap_or(v);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%d/%m/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(day, "%d-%m-%Y"))
        .or_else(|_| NaiveDate::parse_from_str(day, "%d.%m.%Y"))
        .ok()
        .filter(|_| v.len() == 10 || v.get(10..).is_some_and(|r| r.starts_with([' ', 'T'])))
}

/// `1 234,56 €` (spaces, no-break spaces, a decimal comma, a euro sign) or `1234.56`; then
/// the domain's strict grammar.
pub fn parse_money(v: &str) -> Option<Money> {
    let compact: String =
        v.chars().filter(|c| !c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}' | '€')).collect();
    let text = if compact.contains(',') { compact.replace('.', "").replacen(',', ".", 1) } else { compact };
    Money::parse(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_french_spreadsheets_write_them() {
        assert_eq!(parse_money("1 234,56 €"), Money::parse("1234.56").ok());
        assert_eq!(parse_money("1\u{202f}234,5"), Money::parse("1234.50").ok());
        assert_eq!(parse_money("1.234,56"), Money::parse("1234.56").ok());
        assert_eq!(parse_money("125"), Money::parse("125").ok());
        assert_eq!(parse_money("12.5"), Money::parse("12.50").ok());
        assert_eq!(parse_money("12,345"), None, "no more than cents");
        assert_eq!(parse_money("-5"), None);
        assert_eq!(parse_money("=A1*2"), None);
    }

    #[test]
    fn dates_iso_or_french() {
        let d = NaiveDate::from_ymd_opt(2021, 3, 15);
        assert_eq!(parse_date("2021-03-15"), d);
        assert_eq!(parse_date("15/03/2021"), d);
        assert_eq!(parse_date("2021-03-15 00:00:00"), d);
        assert_eq!(parse_date("31/02/2021"), None);
        assert_eq!(parse_date("2021-03-150"), None);
    }

    #[test]
    fn headers_compare_without_case_accents_or_stars() {
        assert_eq!(normalise(" Département * "), "departement");
        assert_eq!(normalise("Coût  unitaire"), "cout unitaire");
        assert_eq!(normalise("Date d’enregistrement"), "date d'enregistrement");
    }
}
