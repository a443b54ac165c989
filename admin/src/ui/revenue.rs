//! Revenue in the admin UI: what issued invoices charged over the last twelve months,
//! per currency (never added across currencies), with a chart, the tables behind it
//! and CSV downloads of the same tables. The definition is in `core::billing::revenue`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tollgate_core::billing::Month;
use tollgate_core::billing::money;
use tollgate_core::billing::revenue::{self, CurrencyRevenue};
use tollgate_core::db::PgPool;
use tollgate_core::usage::report::{TimeZoneName, Timestamp};
use tollgate_web::chart::{Series, Style, TimeChart};
use tollgate_web::csv::CsvTable;
use tollgate_web::{AdminUser, Chrome, PageResult, Session, render};

/// Whole units for the chart's axis; the tables carry the exact amounts.
fn whole(value: Decimal) -> u64 {
    value.round().to_u64().unwrap_or(0)
}

/// One currency's section, formatted.
struct Section {
    currency: String,
    chart: String,
    /// (month, invoices, invoiced, paid, outstanding)
    months: Vec<[String; 5]>,
    total: [String; 5],
    by_api: Vec<[String; 2]>,
    by_plan: Vec<[String; 3]>,
}

impl Section {
    fn of(r: &CurrencyRevenue) -> Section {
        let c = r.currency.as_str();
        let row = |m: &revenue::MonthTotals| {
            [
                m.month.clone(),
                m.invoices.to_string(),
                money::plain(m.invoiced, c),
                money::plain(m.paid, c),
                money::plain(m.outstanding, c),
            ]
        };
        let chart = TimeChart {
            title: format!("Invoiced per month, {c}"),
            unit: format!("{c}, in whole units"),
            buckets: r.months.iter().map(|m| m.month.clone()).collect(),
            series: vec![
                Series::new("Invoiced", r.months.iter().map(|m| whole(m.invoiced)).collect()),
                Series::new("Paid", r.months.iter().map(|m| whole(m.paid)).collect()),
            ],
            style: Style::Lines,
        }
        .render();
        Section {
            currency: r.currency.clone(),
            chart,
            months: r.months.iter().map(row).collect(),
            total: row(&r.total),
            by_api: r.by_api.iter().map(|(api, v)| [api.clone(), money::plain(*v, c)]).collect(),
            by_plan: r.by_plan.iter().map(|p| [p.api.clone(), p.plan.clone(), money::plain(p.amount, c)]).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/revenue.html")]
struct RevenuePage {
    chrome: Chrome,
    sections: Vec<Section>,
    from: String,
    to: String,
}

fn this_month() -> Month {
    Month::containing(Timestamp::now(), &TimeZoneName::utc())
}

fn window(until: Month) -> (String, String) {
    let mut from = until;
    for _ in 1..revenue::MONTHS {
        from = from.previous();
    }
    (from.to_string(), until.to_string())
}

pub async fn show(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let until = this_month();
    let data = revenue::revenue(&pool, until).await?;
    let (from, to) = window(until);
    let page = RevenuePage {
        chrome: Chrome::for_session(&session).await?,
        sections: data.iter().map(Section::of).collect(),
        from,
        to,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct CsvQuery {
    table: Option<String>,
}

/// The page's tables as CSV, every currency in one file with a currency column:
/// `months` (the default), `apis` or `plans`.
pub async fn csv(_admin: AdminUser, pool: web::Data<PgPool>, query: web::Query<CsvQuery>) -> PageResult<HttpResponse> {
    let table = query.table.as_deref().unwrap_or("months");
    let until = this_month();
    let data = revenue::revenue(&pool, until).await?;
    let sections: Vec<Section> = data.iter().map(Section::of).collect();
    let csv = match table {
        "months" => {
            let mut t = CsvTable::new(vec!["currency", "month", "invoices", "invoiced", "paid", "outstanding"]);
            for s in &sections {
                for m in &s.months {
                    t.push(std::iter::once(s.currency.clone()).chain(m.iter().cloned()).collect());
                }
            }
            t
        }
        "apis" => {
            let mut t = CsvTable::new(vec!["currency", "api", "amount_before_tax"]);
            for s in &sections {
                for a in &s.by_api {
                    t.push(std::iter::once(s.currency.clone()).chain(a.iter().cloned()).collect());
                }
            }
            t
        }
        "plans" => {
            let mut t = CsvTable::new(vec!["currency", "api", "plan", "amount_before_tax"]);
            for s in &sections {
                for p in &s.by_plan {
                    t.push(std::iter::once(s.currency.clone()).chain(p.iter().cloned()).collect());
                }
            }
            t
        }
        other => {
            return Err(tollgate_core::Error::invalid(
                "table",
                format!("`{other}` is not a table; use months, apis or plans"),
            )
            .into());
        }
    };
    Ok(csv.response(&format!("revenue-{table}-{until}.csv")))
}
