//! What a plan charges, in the few words a developer chooses a plan by.

use rust_decimal::Decimal;

use crate::billing::money;

/// Everything a plan can bill: its fees, its trial and whether usage costs anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charges {
    pub setup_fee: Decimal,
    pub monthly_fee: Decimal,
    pub trial_days: i32,
    /// The currency code as stored (`char(3)`, maybe padded).
    pub currency: String,
    /// Some usage tier has a price above zero; tiers that are all free charge nothing.
    pub usage_priced: bool,
}

impl Charges {
    /// Nothing is ever billed: no fee of any kind and no priced usage.
    pub fn is_free(&self) -> bool {
        self.setup_fee.is_zero() && self.monthly_fee.is_zero() && !self.usage_priced
    }

    /// "free" only when nothing is billed, otherwise what is: "no monthly fee, usage priced",
    /// "49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced". A zero monthly fee
    /// alone is not "free": usage beyond the free tiers is invoiced.
    pub fn summary(&self) -> String {
        if self.is_free() {
            return "free".to_owned();
        }
        let amount = |value: Decimal| money::display(value, &self.currency);
        let mut parts = vec![match (self.monthly_fee.is_zero(), self.setup_fee.is_zero()) {
            (false, true) => format!("{}/month", amount(self.monthly_fee)),
            (false, false) => format!("{}/month + {} setup", amount(self.monthly_fee), amount(self.setup_fee)),
            (true, false) => format!("{} setup, no monthly fee", amount(self.setup_fee)),
            (true, true) => "no monthly fee".to_owned(),
        }];
        if self.trial_days > 0 {
            parts.push(format!("{}-day trial", self.trial_days));
        }
        if self.usage_priced {
            parts.push("usage priced".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charges(setup: &str, monthly: &str, trial_days: i32, usage_priced: bool) -> Charges {
        Charges {
            setup_fee: setup.parse().unwrap(),
            monthly_fee: monthly.parse().unwrap(),
            trial_days,
            currency: "USD".into(),
            usage_priced,
        }
    }

    #[test]
    fn free_only_when_nothing_is_billed() {
        assert_eq!(charges("0", "0", 0, false).summary(), "free");
        assert_eq!(charges("0", "0", 30, false).summary(), "free");
        assert_eq!(charges("0", "0", 0, true).summary(), "no monthly fee, usage priced");
        assert_eq!(charges("5", "0", 0, false).summary(), "5.00 USD setup, no monthly fee");
        assert_eq!(charges("0", "49", 0, false).summary(), "49.00 USD/month");
        assert_eq!(
            charges("10", "49", 14, true).summary(),
            "49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced"
        );
    }
}
