//! What one account owes for a billing period: pure, no SQL.
//!
//! Every line says what it charges for (application, plan, metric, service month),
//! so a run never bills the same thing twice: a line is `what is owed − what issued
//! invoices already charged` for its subject. For the invoice's own months that is
//! the whole charge; for earlier months it is a correction (late usage from an agent
//! that was offline, also for a month that had no invoice; a fee that changed, for a
//! month that has one), billed as an `adjustment` line and never written into an
//! issued invoice.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_protocol::period::TimeZoneName;
use uuid::Uuid;

use super::money::Currency;
use super::period::{Interval, Month, prorate};
use super::pricing::{PricingMode, Tier, charge};
use crate::stored::stored_enum;

stored_enum! {
    /// Postpaid bills a month's fees and usage after it ends; prepaid bills a month's fees
    /// at its start and the previous month's usage with them.
    pub enum BillingMode as "billing_mode" {
        Postpaid = "postpaid",
        Prepaid = "prepaid",
    }
}

stored_enum! {
    pub enum LineKind as "invoice_line_kind" {
        SetupFee = "setup_fee",
        MonthlyFee = "monthly_fee",
        Usage = "usage",
        Adjustment = "adjustment",
    }
}

/// How far back corrections look: usage may arrive up to 35 days late (usage::MAX_AGE),
/// which can reach two months back from a February invoice.
pub const CORRECTION_MONTHS: usize = 2;

/// A plan's billing terms.
#[derive(Clone, Debug)]
pub struct PlanTerms {
    pub id: Uuid,
    pub name: String,
    pub setup_fee: Decimal,
    pub monthly_fee: Decimal,
    pub currency: Currency,
    pub time_zone: TimeZoneName,
    pub pricing: Vec<MetricPricing>,
}

/// A metric's tiers on a plan and how they apply.
#[derive(Clone, Debug)]
pub struct MetricPricing {
    pub metric_id: Uuid,
    pub metric_name: String,
    pub mode: PricingMode,
    pub tiers: Vec<Tier>,
}

/// A stretch of time an application spent on one plan; `end = None` while it lasts.
#[derive(Clone, Debug)]
pub struct Segment {
    pub plan: Arc<PlanTerms>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl Segment {
    fn interval(&self) -> Interval {
        Interval::new(self.start, self.end.unwrap_or(Timestamp::MAX))
    }
}

/// An application's subscription history.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub application_id: Uuid,
    pub application_name: String,
    /// Nothing is billed before this instant.
    pub trial_ends_at: Option<Timestamp>,
    /// In time order, not overlapping.
    pub segments: Vec<Segment>,
    /// A setup fee line already exists on an invoice that was not cancelled.
    pub setup_fee_billed: bool,
}

/// Units used, by (application, metric, month bucket start in the plan's zone).
pub type Usage = HashMap<(Uuid, Uuid, Timestamp), i64>;

/// What a line charges for; at most one line per subject and invoice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub application_id: Uuid,
    pub plan_id: Uuid,
    /// `None` for fees, the metric for usage.
    pub metric_id: Option<Uuid>,
    /// The month the charge is for.
    pub service_month: Month,
    /// Setup fees are their own subject (once per application).
    pub setup: bool,
}

/// What issued invoices already charged for a subject, and on what basis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Charged {
    pub amount: Decimal,
    /// Fees: the monthly fee the month was first billed at. A correction prorates the time
    /// on the plan again at this fee, never at one the admin set since.
    pub fee: Option<Decimal>,
    /// Usage: the units the month had reached when it was last billed. A correction prices
    /// only the units that came since.
    pub units: Option<i64>,
}

/// What issued invoices already charged, by subject.
pub type Billed = HashMap<Subject, Charged>;

/// What issued invoices already charged for a month's usage of a metric, whichever plan
/// priced it: by (application, metric, month).
pub type BilledUsage = HashMap<(Uuid, Uuid, Month), Charged>;

/// One invoice line, rounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub subject: Subject,
    pub kind: LineKind,
    pub currency: Currency,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// Rounded once to the currency's minor unit.
    pub amount: Decimal,
    /// The monthly fee a fee line was priced at (see [`Charged::fee`]).
    pub priced_fee: Option<Decimal>,
    /// The units a usage line's month had reached (see [`Charged::units`]).
    pub priced_units: Option<i64>,
}

/// Everything the computation needs about one account.
pub struct AccountInput<'a> {
    pub month: Month,
    pub mode: BillingMode,
    pub subscriptions: &'a [Subscription],
    pub usage: &'a Usage,
    pub billed: &'a Billed,
    pub billed_usage: &'a BilledUsage,
    /// Months (and currencies) that already have an issued invoice for this account.
    pub invoiced: &'a BTreeSet<(Month, Currency)>,
}

impl BillingMode {
    /// The months whose fees and whose usage an invoice for `month` bills in full.
    pub fn main_months(self, month: Month) -> (Month, Month) {
        match self {
            BillingMode::Postpaid => (month, month),
            BillingMode::Prepaid => (month, month.previous()),
        }
    }
}

/// The lines of an account's invoices for `input.month`, all currencies together.
pub fn lines(input: &AccountInput<'_>) -> Vec<Line> {
    let (fee_month, usage_month) = input.mode.main_months(input.month);
    let mut out = Vec::new();
    for sub in input.subscriptions {
        let billable_from = sub.trial_ends_at.unwrap_or(Timestamp::MIN);
        let mut months: Vec<(Month, bool, bool)> = Vec::new();
        // Corrections first (older months), then the invoice's own months.
        let mut back = fee_month.min(usage_month);
        let mut older = Vec::new();
        for _ in 0..CORRECTION_MONTHS {
            back = back.previous();
            older.push(back);
        }
        for m in older.into_iter().rev() {
            months.push((m, true, true));
        }
        if fee_month == usage_month {
            months.push((fee_month, true, true));
        } else {
            // Prepaid: the previous month's fees were billed in advance (correct them), its
            // usage is billed now; this month's fees are billed now.
            months.push((usage_month, true, true));
            months.push((fee_month, true, false));
        }
        for (m, fees, usage) in months {
            let is_main = m == fee_month || m == usage_month;
            if fees {
                fee_lines(input, sub, m, billable_from, is_main, &mut out);
            }
            if usage {
                usage_lines(input, sub, m, billable_from, is_main, &mut out);
            }
        }
        setup_line(sub, fee_month, billable_from, &mut out);
    }
    out.retain(|l| !(l.kind == LineKind::Adjustment && l.amount.is_zero()));
    out
}

/// Whether `m` may be billed for `currency`, and as a correction: the invoice's own months
/// always; earlier months' fees only as corrections of an invoice that exists (a month
/// never invoiced is not back-charged its fees, e.g. before billing went live); earlier
/// months' usage always as a correction, so late usage for a month that had nothing to
/// bill (a free plan, an agent that was offline) is billed on the next invoice.
fn may_bill(input: &AccountInput<'_>, m: Month, currency: Currency, is_main: bool, fees: bool) -> Option<bool> {
    if is_main {
        Some(false)
    } else if !fees || input.invoiced.contains(&(m, currency)) {
        Some(true)
    } else {
        None
    }
}

fn fee_lines(
    input: &AccountInput<'_>,
    sub: &Subscription,
    m: Month,
    billable_from: Timestamp,
    is_main: bool,
    out: &mut Vec<Line>,
) {
    // One line per plan and month: an application moved A→B→A has two stretches on A,
    // summed before rounding (the invoice holds one line per subject).
    let mut plans: Vec<&Arc<PlanTerms>> = Vec::new();
    for seg in &sub.segments {
        if !plans.iter().any(|p| p.id == seg.plan.id) {
            plans.push(&seg.plan);
        }
    }
    for plan in plans {
        let Some(correction) = may_bill(input, m, plan.currency, is_main, true) else { continue };
        let subject = Subject {
            application_id: sub.application_id,
            plan_id: plan.id,
            metric_id: None,
            service_month: m,
            setup: false,
        };
        let charged = input.billed.get(&subject).copied().unwrap_or_default();
        let already = charged.amount;
        // A month already billed keeps the fee it was billed at: a price the admin changed
        // since applies to months not billed yet.
        let fee = charged.fee.unwrap_or(plan.monthly_fee);
        let period = m.in_zone(&plan.time_zone);
        let from = Interval::new(billable_from, Timestamp::MAX);
        let (exact, seconds) = sub
            .segments
            .iter()
            .filter(|s| s.plan.id == plan.id)
            .map(|s| s.interval().intersect(&from))
            .fold((Decimal::ZERO, 0i64), |(sum, secs), b| {
                (sum + prorate(fee, &period, &b), secs + period.intersect(&b).seconds().max(0))
            });
        let owed = plan.currency.round(exact);
        let amount = owed - already;
        // A free plan's fee is no line at all.
        if amount.is_zero() && (correction || fee.is_zero() || seconds == 0) {
            continue;
        }
        let fraction = Decimal::from(seconds) / Decimal::from(period.seconds().max(1));
        let (kind, description, quantity, unit_price) = if correction || !already.is_zero() {
            (
                LineKind::Adjustment,
                format!("{}: {} monthly fee for {m}, correction", sub.application_name, plan.name),
                Decimal::ONE,
                amount,
            )
        } else {
            let what = if fraction == Decimal::ONE { String::new() } else { ", prorated".to_owned() };
            (
                LineKind::MonthlyFee,
                format!("{}: {} monthly fee for {m}{what}", sub.application_name, plan.name),
                fraction.round_dp(6),
                fee,
            )
        };
        out.push(Line {
            subject,
            kind,
            currency: plan.currency,
            description,
            quantity,
            unit_price,
            amount,
            priced_fee: Some(fee),
            priced_units: None,
        });
    }
}

fn usage_lines(
    input: &AccountInput<'_>,
    sub: &Subscription,
    m: Month,
    billable_from: Timestamp,
    is_main: bool,
    out: &mut Vec<Line>,
) {
    // A month's usage is priced by the plan in force at its end (the last segment that
    // overlaps the month), in that plan's zone; usage during a trial is free.
    let Some(seg) =
        sub.segments.iter().rev().find(|s| !m.in_zone(&s.plan.time_zone).intersect(&s.interval()).is_empty())
    else {
        return;
    };
    let plan = &seg.plan;
    let Some(correction) = may_bill(input, m, plan.currency, is_main, false) else { return };
    let period = m.in_zone(&plan.time_zone);
    if period.end <= billable_from {
        return;
    }
    for pricing in &plan.pricing {
        let units = input.usage.get(&(sub.application_id, pricing.metric_id, period.start)).copied().unwrap_or(0);
        let exact = charge(pricing.mode, &pricing.tiers, units);
        let subject = Subject {
            application_id: sub.application_id,
            plan_id: plan.id,
            metric_id: Some(pricing.metric_id),
            service_month: m,
            setup: false,
        };
        let owed = plan.currency.round(exact);
        // Whatever plan priced the month before (the application may have moved since):
        // only the units that came since are priced, at today's tiers, so neither a move nor
        // a price edited since bills a month's usage again.
        let charged = input.billed_usage.get(&(sub.application_id, pricing.metric_id, m)).copied().unwrap_or_default();
        let amount = match charged.units {
            Some(billed_units) if billed_units == units => Decimal::ZERO,
            Some(billed_units) => owed - plan.currency.round(charge(pricing.mode, &pricing.tiers, billed_units)),
            None => owed - charged.amount,
        };
        if amount.is_zero() && (correction || units == 0 || charged.units.is_some()) {
            continue;
        }
        let line = if correction || !charged.amount.is_zero() || charged.units.is_some() {
            Line {
                subject,
                kind: LineKind::Adjustment,
                currency: plan.currency,
                description: format!(
                    "{}: {} for {m}, late usage (now {units} units)",
                    sub.application_name, pricing.metric_name
                ),
                quantity: Decimal::ONE,
                unit_price: amount,
                amount,
                priced_fee: None,
                priced_units: Some(units),
            }
        } else {
            Line {
                subject,
                kind: LineKind::Usage,
                currency: plan.currency,
                description: format!(
                    "{}: {} for {m}, {units} units ({})",
                    sub.application_name, pricing.metric_name, pricing.mode
                ),
                quantity: Decimal::from(units),
                unit_price: if units > 0 { (exact / Decimal::from(units)).round_dp(6) } else { Decimal::ZERO },
                amount,
                priced_fee: None,
                priced_units: Some(units),
            }
        };
        out.push(line);
    }
}

fn setup_line(sub: &Subscription, m: Month, billable_from: Timestamp, out: &mut Vec<Line>) {
    if sub.setup_fee_billed {
        return;
    }
    let Some(first) = sub.segments.first() else { return };
    let plan = &first.plan;
    if plan.setup_fee.is_zero() {
        return;
    }
    // Due on the first invoice whose month holds billable time, or any later one.
    let period = m.in_zone(&plan.time_zone);
    let started = sub.segments.iter().any(|s| {
        let b = s.interval().intersect(&Interval::new(billable_from, Timestamp::MAX));
        !b.is_empty() && b.start < period.end
    });
    if !started {
        return;
    }
    out.push(Line {
        subject: Subject {
            application_id: sub.application_id,
            plan_id: plan.id,
            metric_id: None,
            service_month: m,
            setup: true,
        },
        kind: LineKind::SetupFee,
        currency: plan.currency,
        description: format!("{}: {} setup fee", sub.application_name, plan.name),
        quantity: Decimal::ONE,
        unit_price: plan.setup_fee,
        amount: plan.currency.round(plan.setup_fee),
        priced_fee: None,
        priced_units: None,
    });
}

/// The invoice totals for one currency: the sum of the rounded lines, then tax on it,
/// rounded once.
pub fn totals(currency: Currency, lines: &[Line], tax_rate: Decimal) -> (Decimal, Decimal, Decimal) {
    let subtotal: Decimal = lines.iter().filter(|l| l.currency == currency).map(|l| l.amount).sum();
    let tax = currency.round(subtotal * tax_rate);
    (subtotal, tax, subtotal + tax)
}
