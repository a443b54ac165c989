//! Field-level problems of a submitted form, for the page that shows the
//! form again, and the reading of what people type into amount fields.

use std::str::FromStr;

use rust_decimal::Decimal;

/// An amount as people write it: digits with at most one decimal point (`49`, `49.00`,
/// `.5`), perhaps negative; not `1e3`, `1E3` or `1_000`, which `Decimal`'s own parser takes.
pub fn written_amount(raw: &str) -> Option<Decimal> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let plain = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1;
    if plain { Decimal::from_str(raw).ok() } else { None }
}

/// Field-level problems of a submitted form, shown next to each field.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn new() -> Self {
        FieldErrors(Vec::new())
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// The message for a field, for `aria-invalid` and the text beside it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every problem, in the order found: (field, message).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    /// The problems of one form's fields (`(id, label)` pairs, in the form's order) for its error
    /// summary: `(id, "Label: message")`. Empty when none of them has one, so a page with two
    /// forms shows the summary above the one that was sent.
    pub fn summary<'a>(&self, fields: impl AsRef<[(&'a str, &'a str)]>) -> Vec<(String, String)> {
        let linked: Vec<_> = fields.as_ref().iter().map(|&(id, label)| (id, id, label)).collect();
        self.summary_linked(linked)
    }

    /// [`FieldErrors::summary`] for a page whose controls' ids are not their problems' field
    /// names (several forms on one page): `(field, control id, label)` triples.
    pub fn summary_linked<'a>(&self, fields: impl AsRef<[(&'a str, &'a str, &'a str)]>) -> Vec<(String, String)> {
        fields
            .as_ref()
            .iter()
            .filter_map(|(field, id, label)| {
                self.get(field).map(|message| ((*id).to_owned(), format!("{label}: {message}")))
            })
            .collect()
    }

    /// Folds the problems of a list typed one item a line (`field[0]`, `field[1]`, … counting
    /// the lines that are not blank, as the form's reader does) into one message beside the
    /// field, each named by its line in `text`: "line 3: …; line 5: …".
    pub fn fold_lines(&mut self, field: &str, text: &str) {
        let lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
        let mut folded = Vec::new();
        for (item, (line, _)) in lines.enumerate() {
            let name = format!("{field}[{item}]");
            if let Some(at) = self.0.iter().position(|(f, _)| *f == name) {
                let (_, message) = self.0.remove(at);
                folded.push(format!("line {}: {message}", line + 1));
            }
        }
        if folded.is_empty() {
            return;
        }
        let folded = folded.join("; ");
        match self.0.iter_mut().find(|(f, _)| f == field) {
            Some((_, message)) => *message = format!("{message}; {folded}"),
            None => self.add(field, folded),
        }
    }

    /// Turns a core validation error into a field error; other errors pass through.
    pub fn absorb(&mut self, err: tollgate_core::Error) -> Result<(), tollgate_core::Error> {
        match err {
            tollgate_core::Error::Invalid { field, message } => {
                self.add(field.into_owned(), message);
                Ok(())
            }
            tollgate_core::Error::InvalidFields(problems) => {
                for problem in problems {
                    self.add(problem.field.into_owned(), problem.message);
                }
                Ok(())
            }
            other => Err(other),
        }
    }

    /// The value of a form's outcome, or `None` with the problem noted: a
    /// conflict (a name that is taken) beside `conflict_field`, invalid input
    /// beside its own field. Other errors pass through.
    pub fn note<T>(
        &mut self,
        outcome: tollgate_core::Result<T>,
        conflict_field: &str,
    ) -> Result<Option<T>, tollgate_core::Error> {
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(tollgate_core::Error::Conflict(message)) => {
                self.add(conflict_field, message);
                Ok(None)
            }
            Err(err) => self.absorb(err).map(|()| None),
        }
    }
}

impl From<Vec<(&'static str, String)>> for FieldErrors {
    fn from(list: Vec<(&'static str, String)>) -> Self {
        FieldErrors(list.into_iter().map(|(f, m)| (f.to_owned(), m)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_of_listed_lines_are_named_by_the_line_the_reader_sees() {
        let mut errors = FieldErrors::new();
        errors.add("name", "use 1 to 200 characters");
        errors.add("urls[0]", "not a URL");
        errors.add("urls[2]", "too long");
        errors.fold_lines("urls", "ftp://a\n\n  \nhttp://b\nhttp://c?x\n");
        assert_eq!(errors.get("urls"), Some("line 1: not a URL; line 5: too long"));
        assert_eq!(errors.get("urls[0]"), None);
        assert_eq!(errors.get("name"), Some("use 1 to 200 characters"));

        let mut errors = FieldErrors::new();
        errors.add("urls", "use at most 20");
        errors.add("urls[1]", "not a URL");
        errors.fold_lines("urls", "http://a\nb\n");
        assert_eq!(errors.get("urls"), Some("use at most 20; line 2: not a URL"));

        let mut untouched = FieldErrors::new();
        untouched.fold_lines("urls", "a\nb");
        assert!(untouched.is_empty());
    }

    #[test]
    fn amounts_are_read_as_people_write_them() {
        for (raw, amount) in [("49", "49"), (" 49.00 ", "49.00"), (".5", "0.5"), ("-1", "-1")] {
            assert_eq!(written_amount(raw), Some(Decimal::from_str(amount).unwrap()), "{raw}");
        }
        for raw in ["1e3", "1E3", "1_000", "1.2.3", "", "-", ".", "NaN", "4,5", "+5"] {
            assert_eq!(written_amount(raw), None, "{raw}");
        }
    }
}
