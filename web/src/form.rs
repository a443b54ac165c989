//! Field-level problems of a submitted form, for the page that shows the
//! form again.

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

    /// Turns a core validation error into a field error; other errors pass through.
    pub fn absorb(&mut self, err: tollgate_core::Error) -> Result<(), tollgate_core::Error> {
        match err {
            tollgate_core::Error::Invalid { field, message } => {
                self.add(field.into_owned(), message);
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
