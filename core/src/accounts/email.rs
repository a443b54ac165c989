//! `Email`: an address validated (and trimmed) at the edge, so nothing
//! further in needs to wonder what it holds.

use std::fmt;

use crate::Error;

/// An email address that passed a structural check at the edge.
///
/// Deliverability is proven by the verification mail, not by parsing, so the
/// check is deliberately modest: one `@`, a non-empty local part, a dotted
/// domain, no spaces, at most 254 characters. Case is kept; the database
/// compares case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, Error> {
        let trimmed = raw.trim();
        let invalid = |why: &str| Error::invalid("email", why.to_owned());
        if trimmed.is_empty() {
            return Err(invalid("enter an email address"));
        }
        if trimmed.len() > 254 {
            return Err(invalid("an email address is at most 254 characters"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("an email address cannot contain spaces"));
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(invalid("an email address needs an @, as in name@example.com"));
        };
        if local.is_empty() || local.contains('@') {
            return Err(invalid("the part before the @ is not valid"));
        }
        let labels_ok =
            domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if !domain.contains('.') || !labels_ok {
            return Err(invalid("the domain after the @ is not valid, as in example.com"));
        }
        Ok(Email(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["a@b.co", " dev@example.com ", "first.last+tag@sub.example.org"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses_with_a_reason() {
        for bad in ["", "no-at.example.com", "@example.com", "a@localhost", "a b@example.com", "a@-x.com", "a@x..com"] {
            let err = Email::parse(bad).expect_err(bad);
            assert!(err.to_string().starts_with("email: "), "{err}");
        }
    }
}
