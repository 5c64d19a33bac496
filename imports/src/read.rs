//! Reading a partner's file into a table of text cells: CSV as French spreadsheets write
//! it (`;`, UTF-8 with or without BOM, Windows-1252) or a workbook (`.xlsx`, through
//! calamine). Nothing here knows the columns a kind needs; a file that cannot be read at
//! all is a [`FileError`] naming its line and column.

use serde::Serialize;
use std::io::Cursor;

/// A file that cannot be read at all: nothing of it is imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct FileError {
    /// 1 for the first line (the headers).
    pub line: Option<usize>,
    pub column: Option<String>,
    /// In French, for the partner.
    pub message: String,
}

impl FileError {
    pub fn new(line: Option<usize>, column: Option<String>, message: impl Into<String>) -> Self {
        Self { line, column, message: message.into() }
    }
}

/// How the file was read, said in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `CSV` or `XLSX` (or `XLS`, `ODS`).
    pub format: String,
    /// For CSV: `UTF-8`, `UTF-8 (avec BOM)`, `UTF-16LE (avec BOM)`, `Windows-1252`.
    pub encoding: Option<String>,
    /// For CSV: the separator found on the first line.
    pub separator: Option<String>,
    /// For a workbook: the sheet read (the first).
    pub sheet: Option<String>,
}

/// A line of the file, as text cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line number a spreadsheet shows (1 = the headers).
    pub line: usize,
    pub cells: Vec<String>,
}

/// The file as a table: its headers (line 1) and its non-empty lines.
#[derive(Clone, Debug)]
pub struct Table {
    pub source: Source,
    /// The line of the headers (1, but for a sheet whose first lines are empty).
    pub header_line: usize,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// Reads a file whatever it is: a workbook (recognised by its bytes, not its name), else CSV.
pub fn read(bytes: &[u8]) -> Result<Table, FileError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FileError::new(
            Some(1),
            None,
            "le fichier est vide : la ligne 1 doit porter les en-têtes des colonnes",
        ));
    }
    let table = match bytes {
        [b'P', b'K', 3, 4, ..] | [0xD0, 0xCF, 0x11, 0xE0, ..] => workbook(bytes)?,
        _ => csv_table(bytes)?,
    };
    check_text(&table)?;
    Ok(table)
}

/// Decodes CSV bytes: a BOM says the encoding; else valid UTF-8 is UTF-8; else the file
/// is taken as Windows-1252 (what Excel writes for "CSV (séparateur : point-virgule)" on
/// a French Windows). A byte that decodes to a control character means the guess was
/// wrong: [`check_text`] refuses it with its line and column.
fn decode(bytes: &[u8]) -> (String, String) {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return (text.into_owned(), format!("{} (avec BOM)", encoding.name()));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), "UTF-8".into()),
        Err(_) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            (text.into_owned(), "Windows-1252".into())
        }
    }
}

/// The separator of the first line: `;` (French spreadsheets), else `,` or a tab if one of
/// them is there and `;` is not.
fn separator(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    let count = |c: char| first.chars().filter(|x| *x == c).count();
    [(b';', count(';')), (b'\t', count('\t')), (b',', count(','))]
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b';', |(s, _)| s)
}

fn csv_table(bytes: &[u8]) -> Result<Table, FileError> {
    let (text, encoding) = decode(bytes);
    let sep = separator(&text);
    let mut reader =
        csv::ReaderBuilder::new().delimiter(sep).has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut headers = None;
    let mut header_line = 1;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    // A record's line is counted from its first byte (a quoted cell may span lines).
    let newlines: Vec<usize> = text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect();
    let line_at = |byte: u64| {
        // A record read after a `\r` may be said to start at the `\n` that ends the line before.
        let skip = text
            .as_bytes()
            .get(byte as usize..)
            .map_or(0, |rest| rest.iter().take_while(|b| **b == b'\n' || **b == b'\r').count());
        newlines.partition_point(|n| (*n as u64) < byte + skip as u64) + 1
    };
    loop {
        let start = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(line_at(start), |p| line_at(p.byte()));
                return Err(FileError::new(Some(at), None, format!("ligne {at} illisible en CSV : {e}")));
            }
        }
        let line = line_at(record.position().map_or(start, |p| p.byte()));
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if headers.is_none() {
            header_line = line;
            headers = Some(cells);
        } else if cells.iter().any(|c| !c.trim().is_empty()) {
            rows.push(Row { line, cells });
        }
    }
    let separator = match sep {
        b';' => "point-virgule",
        b',' => "virgule",
        _ => "tabulation",
    };
    let source =
        Source { format: "CSV".into(), encoding: Some(encoding), separator: Some(separator.into()), sheet: None };
    Ok(Table { source, header_line, headers: headers.unwrap_or_default(), rows })
}

/// A cell of a workbook as text. A formula is never evaluated: its text (`=HYPERLINK(…)`)
/// is the cell's value, as a CSV export would not show it but as the partner typed it.
fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "VRAI" } else { "FAUX" }.into(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(dt) if d.is_datetime() => dt.date().format("%Y-%m-%d").to_string(),
            _ => d.as_f64().to_string(),
        },
        Data::DateTimeIso(s) => s.get(..10).unwrap_or(s).to_string(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn workbook(bytes: &[u8]) -> Result<Table, FileError> {
    use calamine::Reader;
    let unreadable = |e: &dyn std::fmt::Display| {
        FileError::new(None, None, format!("classeur illisible (ni .xlsx, ni .xls, ni .ods valide) : {e}"))
    };
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| unreadable(&e))?;
    let format = match &book {
        calamine::Sheets::Xlsx(_) => "XLSX",
        calamine::Sheets::Xlsb(_) => "XLSB",
        calamine::Sheets::Xls(_) => "XLS",
        calamine::Sheets::Ods(_) => "ODS",
    };
    let Some(sheet) = book.sheet_names().first().cloned() else {
        return Err(FileError::new(Some(1), None, "le classeur n'a aucune feuille"));
    };
    let range = book.worksheet_range(&sheet).map_err(|e| unreadable(&e))?;
    let formulas = book.worksheet_formula(&sheet).ok();
    let (top, left) = range.start().unwrap_or((0, 0));
    let formula_at = |row: u32, col: u32| -> Option<String> {
        let f = formulas.as_ref()?.get_value((row, col))?;
        (!f.is_empty()).then(|| format!("={f}"))
    };
    let mut headers = None;
    let mut header_line = 1;
    let mut rows = Vec::new();
    for (i, cells) in range.rows().enumerate() {
        let row = top + i as u32;
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(j, c)| formula_at(row, left + j as u32).unwrap_or_else(|| cell_text(c)))
            .collect();
        // Columns before the used range are empty: keep the positions a spreadsheet shows.
        let cells: Vec<String> = std::iter::repeat_n(String::new(), left as usize).chain(cells).collect();
        if headers.is_none() {
            if cells.iter().any(|c| !c.trim().is_empty()) {
                header_line = row as usize + 1;
                headers = Some(cells);
            }
        } else if cells.iter().any(|c| !c.trim().is_empty()) {
            rows.push(Row { line: row as usize + 1, cells });
        }
    }
    let source = Source { format: format.into(), encoding: None, separator: None, sheet: Some(sheet) };
    Ok(Table { source, header_line, headers: headers.unwrap_or_default(), rows })
}

/// No control character in any cell but tab and line breaks: one there means the file was
/// not written in the encoding it was read in (or is not text at all).
fn check_text(table: &Table) -> Result<(), FileError> {
    let bad = |s: &str| s.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    let lines =
        std::iter::once((table.header_line, &table.headers)).chain(table.rows.iter().map(|r| (r.line, &r.cells)));
    for (line, cells) in lines {
        for (j, cell) in cells.iter().enumerate() {
            if let Some(c) = bad(cell) {
                let column = table.headers.get(j).filter(|h| !h.trim().is_empty()).cloned();
                let named = column.clone().unwrap_or_else(|| format!("n° {}", j + 1));
                let encoding = table.source.encoding.as_deref().unwrap_or(&table.source.format);
                return Err(FileError::new(
                    Some(line),
                    column,
                    format!(
                        "encodage illisible ligne {line}, colonne {named} : le caractère de contrôle U+{:04X} n'est pas du \
                         texte (fichier lu en {encoding}) ; enregistrez-le en CSV UTF-8 ou en .xlsx",
                        c as u32
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_csv_in_windows_1252_with_semicolons_is_read() {
        let bytes = b"Nom;Ville\r\nCCAS de S\xe8te;B\xe9ziers\r\n;\r\n";
        let t = read(bytes).unwrap();
        assert_eq!(t.source.encoding.as_deref(), Some("Windows-1252"));
        assert_eq!(t.source.separator.as_deref(), Some("point-virgule"));
        assert_eq!(t.rows, vec![Row { line: 2, cells: vec!["CCAS de Sète".into(), "Béziers".into()] }]);
    }

    #[test]
    fn a_bom_says_utf8_and_is_not_part_of_the_first_header() {
        let t = read("\u{feff}Nom;Ville\nÉcole;Brest\n".as_bytes()).unwrap();
        assert_eq!(t.source.encoding.as_deref(), Some("UTF-8 (avec BOM)"));
        assert_eq!(t.headers, vec!["Nom", "Ville"]);
        let t = read("Nom;Ville\nÉcole;Brest\n".as_bytes()).unwrap();
        assert_eq!(t.source.encoding.as_deref(), Some("UTF-8"));
        assert_eq!(t.rows[0].cells[0], "École");
    }

    #[test]
    fn utf16_with_its_bom_is_read() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("Nom;Ville\r\nÉcole;Sète\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()));
        let t = read(&bytes).unwrap();
        assert_eq!(t.source.encoding.as_deref(), Some("UTF-16LE (avec BOM)"));
        assert_eq!(t.rows, vec![Row { line: 2, cells: vec!["École".into(), "Sète".into()] }]);
    }

    #[test]
    fn quoted_cells_may_hold_separators_and_line_breaks_and_lines_keep_their_numbers() {
        let t = read(b"A;B\n\"x;y\";\"deux\nlignes\"\nz;w\n").unwrap();
        assert_eq!(t.rows[0].cells, vec!["x;y", "deux\nlignes"]);
        assert_eq!((t.rows[0].line, t.rows[1].line), (2, 4));
    }

    #[test]
    fn bytes_that_are_not_text_are_refused_with_their_line_and_column() {
        let err = read(b"Nom;Ville\nok;ok\nbad;\x81\x8d\n").unwrap_err();
        assert_eq!((err.line, err.column.as_deref()), (Some(3), Some("Ville")));
        assert!(err.message.contains("encodage illisible"), "{}", err.message);
        // UTF-16 without a BOM: NUL bytes everywhere.
        let utf16: Vec<u8> = "Nom;Ville\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert!(read(&utf16).unwrap_err().message.contains("U+0000"));
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert_eq!(read(b"").unwrap_err().line, Some(1));
        assert_eq!(read(b" \n\r\n").unwrap_err().line, Some(1));
    }
}
