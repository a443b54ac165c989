//! Times on pages: written in UTC, which reads the same for everyone and without scripts,
//! inside a `<time>` element that `static/js/local-time.js` rewrites into the reader's own
//! zone (the UTC text stays as its tooltip).

use std::fmt;

use time::{OffsetDateTime, UtcOffset};

/// An instant as a page shows it; write it with `|safe` (it is markup, and digits only).
pub struct Moment {
    at: OffsetDateTime,
    seconds: bool,
}

/// To the minute: `2026-12-04 09:05 UTC`.
pub fn moment(at: &OffsetDateTime) -> Moment {
    Moment { at: at.to_offset(UtcOffset::UTC), seconds: false }
}

/// To the second, for rows that can be seconds apart (failed calls).
pub fn moment_seconds(at: &OffsetDateTime) -> Moment {
    Moment { at: at.to_offset(UtcOffset::UTC), seconds: true }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (date, t) = (self.at.date(), self.at.time());
        let iso = format!("{date}T{:02}:{:02}:{:02}Z", t.hour(), t.minute(), t.second());
        let precision = if self.seconds { "second" } else { "minute" };
        write!(f, r#"<time datetime="{iso}" data-local="{precision}">{date} {:02}:{:02}"#, t.hour(), t.minute())?;
        if self.seconds {
            write!(f, ":{:02}", t.second())?;
        }
        f.write_str(" UTC</time>")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{moment, moment_seconds};

    #[test]
    fn written_in_utc_with_the_instant_for_the_script() {
        let at = datetime!(2026-12-04 10:05:09 +01:00);
        assert_eq!(
            moment(&at).to_string(),
            r#"<time datetime="2026-12-04T09:05:09Z" data-local="minute">2026-12-04 09:05 UTC</time>"#
        );
        assert_eq!(
            moment_seconds(&at).to_string(),
            r#"<time datetime="2026-12-04T09:05:09Z" data-local="second">2026-12-04 09:05:09 UTC</time>"#
        );
    }
}
