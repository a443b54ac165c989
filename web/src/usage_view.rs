//! A usage report as the portal and the admin UI show it: charts and the CSV
//! of each table, from the same numbers, so page and export cannot disagree.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_core::usage::report::{FailedCallView, LimitState, UsageReport};

use crate::chart::{LimitBar, Series, Style, TimeChart};
use crate::csv::CsvTable;

/// The tables a usage page exports (`table=` of the CSV route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageTable {
    Usage,
    Status,
    Limits,
    Failed,
}

impl UsageTable {
    /// Reads `table=`; anything else is an error naming the field.
    pub fn parse(value: Option<&str>) -> tollgate_core::Result<UsageTable> {
        match value.unwrap_or("usage") {
            "usage" => Ok(UsageTable::Usage),
            "status" => Ok(UsageTable::Status),
            "limits" => Ok(UsageTable::Limits),
            "failed" => Ok(UsageTable::Failed),
            other => Err(tollgate_core::Error::invalid(
                "table",
                format!("`{other}` is not a table; use usage, status, limits or failed"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UsageTable::Usage => "usage",
            UsageTable::Status => "status",
            UsageTable::Limits => "limits",
            UsageTable::Failed => "failed",
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn clamp(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Calls per metric and method over time.
pub fn usage_chart(report: &UsageReport, title: &str) -> String {
    TimeChart {
        title: title.to_owned(),
        unit: "calls".into(),
        buckets: report.bucket_labels(),
        series: report
            .metrics
            .iter()
            .map(|m| Series::new(m.friendly_name.clone(), m.values.iter().copied().map(clamp).collect()))
            .collect(),
        style: Style::Lines,
    }
    .render()
}

/// Calls by status class over time, stacked.
pub fn status_chart(report: &UsageReport) -> String {
    let s = &report.status;
    let series = |name: &str, values: &[i64], class: &'static str| {
        Series::new(name, values.iter().copied().map(clamp).collect()).with_class(class)
    };
    TimeChart {
        title: "Calls by status class".into(),
        unit: "calls".into(),
        buckets: report.bucket_labels(),
        series: vec![
            series("2xx", &s.s2xx, "status-2xx"),
            series("3xx", &s.s3xx, "status-3xx"),
            series("4xx", &s.s4xx, "status-4xx"),
            series("5xx", &s.s5xx, "status-5xx"),
        ],
        style: Style::StackedBars,
    }
    .render()
}

/// One bar per limit.
pub fn limit_bars(limits: &[LimitState]) -> Vec<String> {
    limits
        .iter()
        .map(|l| {
            LimitBar {
                label: format!("{} per {}", l.metric, l.period),
                used: clamp(l.used),
                max: clamp(l.max),
                resets: match l.resets_at {
                    Some(at) => format!(
                        "{} UTC",
                        at.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
                            .unwrap_or_default()
                    ),
                    None => "never".into(),
                },
            }
            .render()
        })
        .collect()
}

pub fn usage_csv(report: &UsageReport) -> CsvTable {
    let mut t = CsvTable::new(vec!["bucket_start", "metric", "parent_metric", "calls"]);
    for m in &report.metrics {
        let parent = m
            .parent_id
            .and_then(|p| report.metrics.iter().find(|x| x.metric_id == p))
            .map(|p| p.system_name.clone())
            .unwrap_or_default();
        for (i, at) in report.buckets.iter().enumerate() {
            t.push(vec![rfc3339(*at), m.system_name.clone(), parent.clone(), m.values[i].to_string()]);
        }
    }
    t
}

pub fn status_csv(report: &UsageReport) -> CsvTable {
    let s = &report.status;
    let mut t = CsvTable::new(vec!["bucket_start", "2xx", "3xx", "4xx", "5xx"]);
    for (i, at) in report.buckets.iter().enumerate() {
        t.push(vec![
            rfc3339(*at),
            s.s2xx[i].to_string(),
            s.s3xx[i].to_string(),
            s.s4xx[i].to_string(),
            s.s5xx[i].to_string(),
        ]);
    }
    t
}

pub fn limits_csv(limits: &[LimitState]) -> CsvTable {
    let mut t = CsvTable::new(vec!["metric", "period", "used", "max", "percent", "window_start", "resets_at"]);
    for l in limits {
        t.push(vec![
            l.metric.clone(),
            l.period.to_string(),
            l.used.to_string(),
            l.max.to_string(),
            l.percent.to_string(),
            rfc3339(l.window_start),
            l.resets_at.map(rfc3339).unwrap_or_default(),
        ]);
    }
    t
}

pub fn failed_csv(calls: &[FailedCallView]) -> CsvTable {
    let mut t = CsvTable::new(vec![
        "at",
        "method",
        "operation",
        "path",
        "status",
        "error",
        "key_prefix",
        "latency_ms",
        "request_id",
    ]);
    for c in calls {
        t.push(vec![
            rfc3339(c.at),
            c.method.clone(),
            c.operation.clone().unwrap_or_default(),
            c.path.clone(),
            c.status.to_string(),
            c.error.clone().unwrap_or_default(),
            c.key_prefix.clone().unwrap_or_default(),
            format!("{:.1}", c.latency_us as f64 / 1000.0),
            c.request_id.map(|id| id.to_string()).unwrap_or_default(),
        ]);
    }
    t
}

/// A percentile in words: "≤ 25 ms", or "> 5000 ms" for the overflow bucket.
pub fn percentile_text(at_most_ms: Option<u64>) -> String {
    match at_most_ms {
        Some(ms) => format!("≤ {ms} ms"),
        None => "> 5000 ms".into(),
    }
}
