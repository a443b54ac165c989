//! Currencies and rounding to their minor unit.
//!
//! The rule (docs/BILLING.md): every invoice line is computed exactly in
//! `Decimal` and rounded **once**, half away from zero ("half-up"), to the
//! currency's minor unit; an invoice's total is the sum of its rounded lines.
//! Half-up rather than banker's rounding because it is what a person checking
//! an invoice by hand expects, and each line is rounded once so the bias of
//! half-up never accumulates across steps.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

/// An ISO 4217 currency code with the number of decimals of its minor unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
}

/// A currency code that is not three upper-case letters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a currency code (three upper-case letters, e.g. USD)")]
pub struct BadCurrency(pub String);

/// Currencies without a minor unit in ISO 4217.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF",
    "XPF",
];
/// Currencies with three decimals in ISO 4217.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

impl Currency {
    pub fn new(code: &str) -> Result<Currency, BadCurrency> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency { code: [*a, *b, *c] }),
            _ => Err(BadCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters get in, see `new`.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Decimals of the minor unit: 2 unless ISO 4217 says 0 or 3.
    pub fn decimals(&self) -> u32 {
        let code = self.as_str();
        if ZERO_DECIMALS.contains(&code) {
            0
        } else if THREE_DECIMALS.contains(&code) {
            3
        } else {
            2
        }
    }

    /// `amount` rounded half away from zero to the minor unit: the one rounding of a line.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.decimals(), RoundingStrategy::MidpointAwayFromZero)
    }

    /// `amount` rounded to exactly the currency's decimals (`12.50`, `1235`), as a form shows it.
    pub fn exact(&self, amount: Decimal) -> Decimal {
        let mut rounded = self.round(amount);
        rounded.rescale(self.decimals());
        rounded
    }

    /// `amount` with exactly the currency's decimals, for display (`12.50 USD`, `1235 JPY`).
    pub fn format(&self, amount: Decimal) -> String {
        format!("{} {}", self.exact(amount), self.as_str())
    }
}

/// An amount in a currency code as stored (`char(3)`, so maybe padded), to the
/// currency's minor unit; a code Tollgate does not know shows the amount as it is.
pub fn display(amount: Decimal, currency: &str) -> String {
    match Currency::new(currency.trim()) {
        Ok(c) => c.format(amount),
        Err(_) => format!("{amount} {}", currency.trim()),
    }
}

/// [`display`] without the code, for a form's field or a table headed by its currency.
pub fn plain(amount: Decimal, currency: &str) -> String {
    match Currency::new(currency.trim()) {
        Ok(c) => c.exact(amount).to_string(),
        Err(_) => amount.to_string(),
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = BadCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(Currency::new("USD").unwrap().decimals(), 2);
        assert_eq!(Currency::new("EUR").unwrap().decimals(), 2);
        assert_eq!(Currency::new("JPY").unwrap().decimals(), 0);
        assert_eq!(Currency::new("KRW").unwrap().decimals(), 0);
        assert_eq!(Currency::new("KWD").unwrap().decimals(), 3);
    }

    #[test]
    fn rounding_is_half_away_from_zero_once() {
        let usd = Currency::new("USD").unwrap();
        assert_eq!(usd.round(d("0.125")), d("0.13"));
        assert_eq!(usd.round(d("0.124999")), d("0.12"));
        assert_eq!(usd.round(d("-0.125")), d("-0.13"));
        let jpy = Currency::new("JPY").unwrap();
        assert_eq!(jpy.round(d("1234.5")), d("1235"));
        assert_eq!(jpy.round(d("1234.4999")), d("1234"));
        assert_eq!(jpy.format(d("1234.5")), "1235 JPY");
        assert_eq!(usd.format(d("12.5")), "12.50 USD");
        assert_eq!(display(d("12.5"), "USD"), "12.50 USD");
        assert_eq!(display(d("12.5"), "XX "), "12.5 XX");
        assert_eq!(plain(d("1234.5"), "JPY"), "1235");
        assert_eq!(plain(d("12.5"), "USD "), "12.50");
    }

    #[test]
    fn bad_codes_are_refused() {
        for bad in ["usd", "US", "USDX", "U$D", ""] {
            assert!(Currency::new(bad).is_err(), "{bad}");
        }
    }
}
