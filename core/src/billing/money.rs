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

/// A code that ISO 4217 does not list as a currency with a minor unit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency; use a code such as EUR, USD or JPY")]
pub struct UnknownCurrency(pub String);

/// ISO 4217's current currencies and the decimals of their minor unit, sorted by code.
/// Left out: funds and metals without a minor unit (`XAU`, `XDR`, …), the testing codes
/// (`XTS`, `XXX`), and currencies replaced since (`HRK`, `SLL`, `ZWL`, …): an invoice
/// needs a minor unit to round to, and a new plan has no reason to bill in a withdrawn one.
#[rustfmt::skip]
const ISO_4217: &[([u8; 3], u32)] = &[
    (*b"AED", 2), (*b"AFN", 2), (*b"ALL", 2), (*b"AMD", 2), (*b"ANG", 2), (*b"AOA", 2), (*b"ARS", 2),
    (*b"AUD", 2), (*b"AWG", 2), (*b"AZN", 2), (*b"BAM", 2), (*b"BBD", 2), (*b"BDT", 2), (*b"BGN", 2),
    (*b"BHD", 3), (*b"BIF", 0), (*b"BMD", 2), (*b"BND", 2), (*b"BOB", 2), (*b"BOV", 2), (*b"BRL", 2),
    (*b"BSD", 2), (*b"BTN", 2), (*b"BWP", 2), (*b"BYN", 2), (*b"BZD", 2), (*b"CAD", 2), (*b"CDF", 2),
    (*b"CHE", 2), (*b"CHF", 2), (*b"CHW", 2), (*b"CLF", 4), (*b"CLP", 0), (*b"CNY", 2), (*b"COP", 2),
    (*b"COU", 2), (*b"CRC", 2), (*b"CUP", 2), (*b"CVE", 2), (*b"CZK", 2), (*b"DJF", 0), (*b"DKK", 2),
    (*b"DOP", 2), (*b"DZD", 2), (*b"EGP", 2), (*b"ERN", 2), (*b"ETB", 2), (*b"EUR", 2), (*b"FJD", 2),
    (*b"FKP", 2), (*b"GBP", 2), (*b"GEL", 2), (*b"GHS", 2), (*b"GIP", 2), (*b"GMD", 2), (*b"GNF", 0),
    (*b"GTQ", 2), (*b"GYD", 2), (*b"HKD", 2), (*b"HNL", 2), (*b"HTG", 2), (*b"HUF", 2), (*b"IDR", 2),
    (*b"ILS", 2), (*b"INR", 2), (*b"IQD", 3), (*b"IRR", 2), (*b"ISK", 0), (*b"JMD", 2), (*b"JOD", 3),
    (*b"JPY", 0), (*b"KES", 2), (*b"KGS", 2), (*b"KHR", 2), (*b"KMF", 0), (*b"KPW", 2), (*b"KRW", 0),
    (*b"KWD", 3), (*b"KYD", 2), (*b"KZT", 2), (*b"LAK", 2), (*b"LBP", 2), (*b"LKR", 2), (*b"LRD", 2),
    (*b"LSL", 2), (*b"LYD", 3), (*b"MAD", 2), (*b"MDL", 2), (*b"MGA", 2), (*b"MKD", 2), (*b"MMK", 2),
    (*b"MNT", 2), (*b"MOP", 2), (*b"MRU", 2), (*b"MUR", 2), (*b"MVR", 2), (*b"MWK", 2), (*b"MXN", 2),
    (*b"MXV", 2), (*b"MYR", 2), (*b"MZN", 2), (*b"NAD", 2), (*b"NGN", 2), (*b"NIO", 2), (*b"NOK", 2),
    (*b"NPR", 2), (*b"NZD", 2), (*b"OMR", 3), (*b"PAB", 2), (*b"PEN", 2), (*b"PGK", 2), (*b"PHP", 2),
    (*b"PKR", 2), (*b"PLN", 2), (*b"PYG", 0), (*b"QAR", 2), (*b"RON", 2), (*b"RSD", 2), (*b"RUB", 2),
    (*b"RWF", 0), (*b"SAR", 2), (*b"SBD", 2), (*b"SCR", 2), (*b"SDG", 2), (*b"SEK", 2), (*b"SGD", 2),
    (*b"SHP", 2), (*b"SLE", 2), (*b"SOS", 2), (*b"SRD", 2), (*b"SSP", 2), (*b"STN", 2), (*b"SVC", 2),
    (*b"SYP", 2), (*b"SZL", 2), (*b"THB", 2), (*b"TJS", 2), (*b"TMT", 2), (*b"TND", 3), (*b"TOP", 2),
    (*b"TRY", 2), (*b"TTD", 2), (*b"TWD", 2), (*b"TZS", 2), (*b"UAH", 2), (*b"UGX", 0), (*b"USD", 2),
    (*b"USN", 2), (*b"UYI", 0), (*b"UYU", 2), (*b"UYW", 4), (*b"UZS", 2), (*b"VED", 2), (*b"VES", 2),
    (*b"VND", 0), (*b"VUV", 0), (*b"WST", 2), (*b"XAF", 0), (*b"XCD", 2), (*b"XCG", 2), (*b"XOF", 0),
    (*b"XPF", 0), (*b"YER", 2), (*b"ZAR", 2), (*b"ZMW", 2), (*b"ZWG", 2),
];

impl Currency {
    /// A code as stored: three upper-case letters. Plans made before codes were checked
    /// against ISO 4217 keep billing in theirs, with two decimals.
    pub fn new(code: &str) -> Result<Currency, BadCurrency> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency { code: [*a, *b, *c] }),
            _ => Err(BadCurrency(code.to_owned())),
        }
    }

    /// A code given by a person for a new price: one ISO 4217 lists, so that a typo
    /// (`UDS`) is refused instead of invoiced.
    pub fn parse(code: &str) -> Result<Currency, UnknownCurrency> {
        match Currency::new(code) {
            Ok(currency) if currency.listed().is_some() => Ok(currency),
            _ => Err(UnknownCurrency(code.to_owned())),
        }
    }

    /// The decimals ISO 4217 gives this code, when it lists it.
    fn listed(&self) -> Option<u32> {
        ISO_4217.binary_search_by(|(code, _)| code.cmp(&self.code)).ok().map(|i| ISO_4217[i].1)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters get in, see `new`.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Decimals of the minor unit, as ISO 4217 gives them; 2 for a code it does not list.
    pub fn decimals(&self) -> u32 {
        self.listed().unwrap_or(2)
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

    /// A unit price: the currency's decimals at least, more when the price has them
    /// (`0.005 USD` per call), never trailing zeros past the minor unit.
    pub fn price(&self, price: Decimal) -> String {
        let mut shown = price.normalize();
        if shown.scale() < self.decimals() {
            shown.rescale(self.decimals());
        }
        format!("{shown} {}", self.as_str())
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
    exact_in(amount, currency).to_string()
}

/// `amount` as stored, with at least the decimals of a currency code (`49.00` USD, `5000`
/// JPY, and a fee saved finer than the minor unit before fees were checked in it as it is,
/// `9.999` USD): what an API answers, so that a client sending it back changes nothing.
pub fn as_stored_in(amount: Decimal, currency: &str) -> Decimal {
    let mut shown = amount.normalize();
    if let Ok(currency) = Currency::new(currency.trim())
        && shown.scale() < currency.decimals()
    {
        shown.rescale(currency.decimals());
    }
    shown
}

/// `amount` with exactly the decimals of a currency code as stored (`49.00` USD, `5000` JPY);
/// a code Tollgate does not know leaves the amount as it is.
pub fn exact_in(amount: Decimal, currency: &str) -> Decimal {
    Currency::new(currency.trim()).map_or(amount, |c| c.exact(amount))
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
    fn a_price_takes_only_codes_iso_4217_lists() {
        assert_eq!(Currency::parse("EUR").unwrap().decimals(), 2);
        assert_eq!(Currency::parse("CLF").unwrap().decimals(), 4);
        for unlisted in ["UDS", "XXX", "XTS", "XAU", "HRK", "usd", "EURO"] {
            assert!(Currency::parse(unlisted).is_err(), "{unlisted}");
        }
        // Stored codes from before the list keep billing, with two decimals.
        assert_eq!(Currency::new("ABC").unwrap().decimals(), 2);
        assert!(ISO_4217.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted for the binary search");
    }

    #[test]
    fn bad_codes_are_refused() {
        for bad in ["usd", "US", "USDX", "U$D", ""] {
            assert!(Currency::new(bad).is_err(), "{bad}");
        }
    }
}
