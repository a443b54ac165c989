//! CSV exports of the tables the usage pages show (RFC 4180, UTF-8).

use actix_web::HttpResponse;
use actix_web::http::header;

/// A table to export: a header row, then rows of the same width.
#[derive(Clone, Debug, Default)]
pub struct CsvTable {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    pub fn new(headers: Vec<&'static str>) -> Self {
        CsvTable { headers, rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let cells: Vec<String> = cells.map(cell).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.headers.iter().copied());
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(String::as_str));
        }
        out
    }

    /// The answer of a download named `filename` (letters, digits, `-`, `_`, `.` only).
    pub fn response(&self, filename: &str) -> HttpResponse {
        let safe: String =
            filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}\"")))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(self.to_text())
    }
}

/// One cell: quoted when it must be, and text a spreadsheet would run as a
/// formula (a path or key prefix someone chose) prefixed with `'`.
fn cell(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err();
    let value = if formula { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_neutralises_formulas() {
        let mut t = CsvTable::new(vec!["a", "b"]);
        t.push(vec!["x,y".into(), "say \"hi\"".into()]);
        t.push(vec!["=cmd()".into(), "-5".into()]);
        assert_eq!(t.to_text(), "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n'=cmd(),-5\r\n");
    }
}
