//! Usage charges from pricing tiers, in the two modes a plan may set per metric.
//!
//! Tiers are inclusive unit ranges `[from, to]` (`to = None`: unbounded), never
//! overlapping (a database constraint); units in a gap between tiers are free.
//!
//! * **graduated** (3scale's semantics, the default): each tier's units are charged at
//!   that tier's price. 1,500 units over `1–1000 @ 0.01`, `1001– @ 0.005` cost
//!   `1000 × 0.01 + 500 × 0.005 = 12.50`.
//! * **volume**: the total picks the one tier it falls in and every unit is charged at
//!   its price: the same 1,500 units cost `1500 × 0.005 = 7.50`. A total in a gap, or
//!   below the first tier, picks no tier and costs nothing.
//!
//! Results are exact; the caller rounds the line once (see `money`).

use std::fmt;

use rust_decimal::Decimal;

use crate::stored::stored_enum;

stored_enum! {
    /// How a metric's tiers turn a period's usage into a charge.
    pub enum PricingMode as "pricing_mode" {
        Graduated = "graduated",
        Volume = "volume",
    }
}

impl Default for PricingMode {
    /// 3scale's semantics, and what plans priced before modes existed meant.
    fn default() -> Self {
        PricingMode::Graduated
    }
}

/// One tier: units `from..=to` cost `price` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub from: i64,
    pub to: Option<i64>,
    pub price: Decimal,
}

impl Tier {
    fn contains(&self, units: i64) -> bool {
        self.from <= units && self.to.is_none_or(|to| units <= to)
    }

    /// How many of the first `units` units fall in this tier.
    fn units_within(&self, units: i64) -> i64 {
        let top = self.to.map_or(units, |to| units.min(to));
        (top - (self.from - 1)).max(0)
    }
}

/// The exact charge for `units` units under `tiers` in `mode`.
pub fn charge(mode: PricingMode, tiers: &[Tier], units: i64) -> Decimal {
    if units <= 0 {
        return Decimal::ZERO;
    }
    match mode {
        PricingMode::Graduated => tiers.iter().map(|t| Decimal::from(t.units_within(units)) * t.price).sum(),
        PricingMode::Volume => {
            tiers.iter().find(|t| t.contains(units)).map_or(Decimal::ZERO, |t| Decimal::from(units) * t.price)
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(to) => write!(f, "{}–{} @ {}", self.from, to, self.price),
            None => write!(f, "{}+ @ {}", self.from, self.price),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn tiers() -> Vec<Tier> {
        vec![
            Tier { from: 1, to: Some(1000), price: d("0.01") },
            Tier { from: 1001, to: Some(10_000), price: d("0.005") },
            Tier { from: 10_001, to: None, price: d("0.001") },
        ]
    }

    #[test]
    fn graduated_and_volume_at_a_tier_boundary_and_one_above() {
        let t = tiers();
        // 1000 units: all in tier 1 either way: 1000 × 0.01 = 10.
        assert_eq!(charge(PricingMode::Graduated, &t, 1000), d("10"));
        assert_eq!(charge(PricingMode::Volume, &t, 1000), d("10"));
        // 1001 units: graduated 1000 × 0.01 + 1 × 0.005 = 10.005; volume 1001 × 0.005 = 5.005.
        assert_eq!(charge(PricingMode::Graduated, &t, 1001), d("10.005"));
        assert_eq!(charge(PricingMode::Volume, &t, 1001), d("5.005"));
        // 10,001 units: graduated 10 + 9000 × 0.005 + 1 × 0.001 = 55.001; volume 10,001 × 0.001 = 10.001.
        assert_eq!(charge(PricingMode::Graduated, &t, 10_001), d("55.001"));
        assert_eq!(charge(PricingMode::Volume, &t, 10_001), d("10.001"));
    }

    #[test]
    fn zero_usage_and_gaps_cost_nothing() {
        let t = vec![Tier { from: 101, to: Some(200), price: d("1") }, Tier { from: 301, to: None, price: d("2") }];
        assert_eq!(charge(PricingMode::Graduated, &t, 0), Decimal::ZERO);
        assert_eq!(charge(PricingMode::Volume, &t, 0), Decimal::ZERO);
        // 100 free units below the first tier.
        assert_eq!(charge(PricingMode::Graduated, &t, 100), Decimal::ZERO);
        // 250: graduated 100 × 1 (units 101–200), 201–250 free; volume: 250 is in a gap.
        assert_eq!(charge(PricingMode::Graduated, &t, 250), d("100"));
        assert_eq!(charge(PricingMode::Volume, &t, 250), Decimal::ZERO);
        // 302: graduated 100 + 2 × 2 = 104; volume 302 × 2 = 604.
        assert_eq!(charge(PricingMode::Graduated, &t, 302), d("104"));
        assert_eq!(charge(PricingMode::Volume, &t, 302), d("604"));
    }

    /// Contiguous tiers from unit 1 with the given widths and prices (last unbounded).
    fn contiguous(widths: &[i64], prices: &[Decimal]) -> Vec<Tier> {
        let mut from = 1;
        let mut out = Vec::new();
        for (i, price) in prices.iter().enumerate() {
            let to = widths.get(i).filter(|_| i + 1 < prices.len()).map(|w| from + w - 1);
            out.push(Tier { from, to, price: *price });
            if let Some(to) = to {
                from = to + 1;
            }
        }
        out
    }

    fn price() -> impl Strategy<Value = Decimal> {
        (0_i64..100_000).prop_map(|m| Decimal::new(m, 4))
    }

    proptest! {
        /// With one tier from unit 1 the modes agree.
        #[test]
        fn one_tier_modes_agree(p in price(), units in 0_i64..10_000_000) {
            let t = vec![Tier { from: 1, to: None, price: p }];
            prop_assert_eq!(charge(PricingMode::Graduated, &t, units), charge(PricingMode::Volume, &t, units));
            prop_assert_eq!(charge(PricingMode::Graduated, &t, units), Decimal::from(units) * p);
        }

        /// Prices falling tier by tier (the usual volume discount): volume never costs more
        /// than graduated; rising prices: never less. Within the first tier they are equal.
        #[test]
        fn modes_order_by_price_direction(
            widths in prop::collection::vec(1_i64..5_000, 3),
            mut prices in prop::collection::vec(price(), 4),
            units in 0_i64..30_000,
        ) {
            prices.sort_unstable_by(|a, b| b.cmp(a));
            let falling = contiguous(&widths, &prices);
            prop_assert!(charge(PricingMode::Volume, &falling, units) <= charge(PricingMode::Graduated, &falling, units));
            prices.reverse();
            let rising = contiguous(&widths, &prices);
            prop_assert!(charge(PricingMode::Volume, &rising, units) >= charge(PricingMode::Graduated, &rising, units));
            if units <= widths[0] {
                prop_assert_eq!(charge(PricingMode::Volume, &rising, units), charge(PricingMode::Graduated, &rising, units));
            }
        }

        /// Graduated charges never fall as usage grows, and one more unit costs exactly the
        /// price of the tier that unit lands in.
        #[test]
        fn graduated_adds_the_next_units_price(
            widths in prop::collection::vec(1_i64..5_000, 3),
            prices in prop::collection::vec(price(), 4),
            units in 0_i64..30_000,
        ) {
            let t = contiguous(&widths, &prices);
            let step = charge(PricingMode::Graduated, &t, units + 1) - charge(PricingMode::Graduated, &t, units);
            let next_price = t.iter().find(|tier| tier.contains(units + 1)).map_or(Decimal::ZERO, |tier| tier.price);
            prop_assert_eq!(step, next_price);
        }
    }
}
