//! Revenue for the admin page: what issued invoices charged, month by month and by
//! API and plan, always per currency (amounts in different currencies are never added).
//!
//! * **Invoiced**: totals (tax included) of issued invoices that were not cancelled
//!   (`pending`, `unpaid`, `paid`, `failed`), by the invoice's billing period.
//! * **Paid**: the part of that in `paid` invoices; **outstanding**: the rest.
//! * **By API and plan**: the invoices' line amounts (before tax), by the plan each
//!   line charges for (`invoice_lines.plan_id`) and that plan's API.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::period::Month;
use crate::Result;

/// How many months the page covers, ending with the current one.
pub const MONTHS: usize = 12;

/// One month's invoiced, paid and outstanding totals in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MonthTotals {
    /// `YYYY-MM`.
    pub month: String,
    pub invoices: i64,
    pub invoiced: Decimal,
    pub paid: Decimal,
    pub outstanding: Decimal,
}

/// Line amounts for one plan, before tax.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanRevenue {
    pub api: String,
    pub plan: String,
    pub amount: Decimal,
}

/// Everything the page shows for one currency.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CurrencyRevenue {
    pub currency: String,
    /// One entry per month of the window, oldest first (zeros where nothing was invoiced).
    pub months: Vec<MonthTotals>,
    /// The window's sums.
    pub total: MonthTotals,
    /// (API, amount before tax), largest first.
    pub by_api: Vec<(String, Decimal)>,
    /// Largest first.
    pub by_plan: Vec<PlanRevenue>,
}

/// Revenue over the [`MONTHS`] months ending with `until`, one entry per currency that
/// has any, in code order.
pub async fn revenue(pool: &PgPool, until: Month) -> Result<Vec<CurrencyRevenue>> {
    let mut months = vec![until];
    while months.len() < MONTHS {
        let earliest = months[0].previous();
        months.insert(0, earliest);
    }
    let from = months[0].to_string();
    let to = until.to_string();
    let totals = sqlx::query!(
        r#"SELECT currency, to_char(period_start, 'YYYY-MM') AS "month!", count(*) AS "invoices!",
                  sum(total) AS "invoiced!",
                  COALESCE(sum(total) FILTER (WHERE state = 'paid'), 0) AS "paid!",
                  COALESCE(sum(total) FILTER (WHERE state <> 'paid'), 0) AS "outstanding!"
           FROM invoices
           WHERE state IN ('pending', 'unpaid', 'paid', 'failed')
             AND period_start >= ($1 || '-01')::date AND period_start <= ($2 || '-01')::date
           GROUP BY 1, 2 ORDER BY 1, 2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?;
    let plans = sqlx::query!(
        r#"SELECT i.currency, COALESCE(ap.name, '(deleted API)') AS "api!", COALESCE(p.name, '(deleted plan)') AS "plan!",
                  sum(l.amount) AS "amount!"
           FROM invoice_lines l
           JOIN invoices i ON i.id = l.invoice_id
           LEFT JOIN plans p ON p.id = l.plan_id
           LEFT JOIN api_products ap ON ap.id = p.api_id
           WHERE i.state IN ('pending', 'unpaid', 'paid', 'failed')
             AND i.period_start >= ($1 || '-01')::date AND i.period_start <= ($2 || '-01')::date
           GROUP BY i.currency, ap.id, ap.name, p.id, p.name"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<String, CurrencyRevenue> = BTreeMap::new();
    let blank = |currency: &str| CurrencyRevenue {
        currency: currency.to_owned(),
        months: months.iter().map(|m| MonthTotals { month: m.to_string(), ..MonthTotals::default() }).collect(),
        total: MonthTotals { month: format!("{from} to {to}"), ..MonthTotals::default() },
        by_api: Vec::new(),
        by_plan: Vec::new(),
    };
    for r in totals {
        let entry = out.entry(r.currency.clone()).or_insert_with(|| blank(&r.currency));
        if let Some(m) = entry.months.iter_mut().find(|m| m.month == r.month) {
            m.invoices = r.invoices;
            m.invoiced = r.invoiced;
            m.paid = r.paid;
            m.outstanding = r.outstanding;
        }
        entry.total.invoices += r.invoices;
        entry.total.invoiced += r.invoiced;
        entry.total.paid += r.paid;
        entry.total.outstanding += r.outstanding;
    }
    for r in plans {
        let entry = out.entry(r.currency.clone()).or_insert_with(|| blank(&r.currency));
        match entry.by_api.iter_mut().find(|(api, _)| *api == r.api) {
            Some((_, amount)) => *amount += r.amount,
            None => entry.by_api.push((r.api.clone(), r.amount)),
        }
        entry.by_plan.push(PlanRevenue { api: r.api, plan: r.plan, amount: r.amount });
    }
    let mut list: Vec<CurrencyRevenue> = out.into_values().collect();
    for c in &mut list {
        c.by_api.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        c.by_plan.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| (&a.api, &a.plan).cmp(&(&b.api, &b.plan))));
    }
    Ok(list)
}
