//! Server-side SVG charts: no script, no external asset, nothing the pages' CSP
//! forbids (colours come from CSS classes in `static/css/tollgate.css`, never
//! from `style` attributes).
//!
//! Every chart renders as a `<figure>` holding the SVG (`role="img"`, a
//! `<title>` and an `aria-label`) and, next to it, a `<table>` with the same
//! numbers for screen readers and for reading exact values. Charts take dense
//! series, one value per bucket: a missing bucket is a zero that the caller
//! filled in, never an interpolation.

use std::fmt::Write;

/// Drawing area of the time charts, in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
/// The most x-axis labels drawn; the table fallback has every bucket.
const MAX_X_LABELS: usize = 6;
/// Colour classes, in order of the series (`chart-s0` … `chart-s5`, then again).
const SERIES_CLASSES: usize = 6;

/// One named series of a chart: a value per bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
    /// The CSS class that colours it; `None` takes the series' position.
    pub class: Option<&'static str>,
}

impl Series {
    pub fn new(name: impl Into<String>, values: Vec<u64>) -> Self {
        Series { name: name.into(), values, class: None }
    }

    pub fn with_class(mut self, class: &'static str) -> Self {
        self.class = Some(class);
        self
    }
}

/// How the series of a [`TimeChart`] are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// One line per series.
    Lines,
    /// The series stacked in one bar per bucket (status classes).
    StackedBars,
}

/// A chart of values over time buckets.
#[derive(Clone, Debug)]
pub struct TimeChart {
    /// What the chart shows, for the title, the label and the table caption.
    pub title: String,
    /// The unit of the y axis ("calls").
    pub unit: String,
    /// The label of each bucket (its start, in the viewer's words), one per value.
    pub buckets: Vec<String>,
    pub series: Vec<Series>,
    pub style: Style,
}

impl TimeChart {
    fn max(&self) -> u64 {
        match self.style {
            Style::Lines => self.series.iter().flat_map(|s| s.values.iter().copied()).max().unwrap_or(0),
            Style::StackedBars => (0..self.buckets.len())
                .map(|i| self.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).sum::<u64>())
                .max()
                .unwrap_or(0),
        }
    }

    fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.values.iter().all(|&v| v == 0))
    }

    /// The figure: SVG, legend and table, as HTML.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, r#"<figure class="chart"><figcaption>{}</figcaption>"#, escape(&self.title));
        if self.buckets.is_empty() || self.is_empty() {
            out.push_str(r#"<p class="chart-empty muted">No calls in this period.</p></figure>"#);
            return out;
        }
        out.push_str(&self.svg());
        out.push_str(&self.legend());
        out.push_str(&self.table());
        out.push_str("</figure>");
        out
    }

    fn svg(&self) -> String {
        let ticks = ticks(self.max());
        let top_value = *ticks.last().unwrap_or(&1) as f64;
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let n = self.buckets.len();
        let slot = plot_w / n as f64;
        let y_of = |v: u64| TOP + plot_h - (v as f64 / top_value) * plot_h;
        let x_mid = |i: usize| LEFT + slot * (i as f64 + 0.5);
        let label = format!("{}, in {}, {} to {}", self.title, self.unit, self.buckets[0], self.buckets[n - 1]);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
            escape(&label),
            escape(&label)
        );
        // Y axis: ticks with gridlines, and the unit.
        for &t in &ticks {
            let y = y_of(t);
            let _ = write!(
                s,
                r#"<line class="chart-grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="chart-tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                t
            );
        }
        let _ = write!(
            s,
            r#"<text class="chart-unit" x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.unit)
        );
        // X axis: the baseline and at most MAX_X_LABELS labels, the first and last among them.
        let base = TOP + plot_h;
        let _ = write!(s, r#"<line class="chart-axis" x1="{LEFT}" x2="{}" y1="{base}" y2="{base}"/>"#, WIDTH - RIGHT);
        for i in x_label_positions(n) {
            let _ = write!(
                s,
                r#"<text class="chart-tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x_mid(i),
                base + 18.0,
                escape(&self.buckets[i])
            );
        }
        match self.style {
            Style::Lines => {
                for (k, series) in self.series.iter().enumerate() {
                    let class = series_class(series, k);
                    if n == 1 {
                        // One point has no line: a dot shows it.
                        let v = series.values.first().copied().unwrap_or(0);
                        let _ = write!(
                            s,
                            r#"<circle class="chart-dot {class}" cx="{:.1}" cy="{:.1}" r="4"><title>{}: {}</title></circle>"#,
                            x_mid(0),
                            y_of(v),
                            escape(&series.name),
                            self.quantity(v)
                        );
                        continue;
                    }
                    let points: Vec<String> = (0..n)
                        .map(|i| format!("{:.1},{:.1}", x_mid(i), y_of(series.values.get(i).copied().unwrap_or(0))))
                        .collect();
                    let _ = write!(
                        s,
                        r#"<polyline class="chart-line {class}" fill="none" points="{}"><title>{}</title></polyline>"#,
                        points.join(" "),
                        escape(&series.name)
                    );
                }
            }
            Style::StackedBars => {
                let bar_w = (slot * 0.7).max(1.0);
                for i in 0..n {
                    let mut stacked = 0u64;
                    for (k, series) in self.series.iter().enumerate() {
                        let v = series.values.get(i).copied().unwrap_or(0);
                        if v == 0 {
                            continue;
                        }
                        let (y_top, y_bottom) = (y_of(stacked + v), y_of(stacked));
                        stacked += v;
                        let _ = write!(
                            s,
                            r#"<rect class="chart-bar {}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{} {}: {}</title></rect>"#,
                            series_class(series, k),
                            x_mid(i) - bar_w / 2.0,
                            y_top,
                            bar_w,
                            (y_bottom - y_top).max(0.5),
                            escape(&self.buckets[i]),
                            escape(&series.name),
                            self.quantity(v)
                        );
                    }
                }
            }
        }
        s.push_str("</svg>");
        s
    }

    /// `7 calls`, `1 call`: the count with the unit, escaped.
    fn quantity(&self, n: u64) -> String {
        let unit = match self.unit.strip_suffix('s') {
            Some(one) if n == 1 => one,
            _ => &self.unit,
        };
        format!("{n} {}", escape(unit))
    }

    fn legend(&self) -> String {
        let mut s = String::from(r#"<ul class="chart-legend">"#);
        for (k, series) in self.series.iter().enumerate() {
            let total: u64 = series.values.iter().sum();
            let _ = write!(
                s,
                r#"<li><span class="chart-swatch {}" aria-hidden="true"></span>{} ({})</li>"#,
                series_class(series, k),
                escape(&series.name),
                self.quantity(total)
            );
        }
        s.push_str("</ul>");
        s
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<details class="chart-table"><summary>Table of this chart</summary><div class="table-scroll"><table class="table compact"><caption class="visually-hidden">{} ({})</caption><thead><tr><th scope="col">Period</th>"#,
            escape(&self.title),
            escape(&self.unit)
        );
        for series in &self.series {
            let _ = write!(s, r#"<th scope="col">{}</th>"#, escape(&series.name));
        }
        s.push_str("</tr></thead><tbody>");
        for (i, bucket) in self.buckets.iter().enumerate() {
            let _ = write!(s, r#"<tr><th scope="row">{}</th>"#, escape(bucket));
            for series in &self.series {
                let _ = write!(s, "<td>{}</td>", series.values.get(i).copied().unwrap_or(0));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table></div></details>");
        s
    }
}

/// One limit as a bar: used of max, the percentage, and when its window resets.
#[derive(Clone, Debug)]
pub struct LimitBar {
    /// "hits per minute".
    pub label: String,
    pub used: u64,
    pub max: u64,
    /// When the window resets, in the viewer's words.
    pub resets: String,
}

impl LimitBar {
    /// Used as a whole percentage of max, rounded down (a max of 0 with any use is over).
    pub fn percent(&self) -> u64 {
        match (self.used, self.max) {
            (0, _) => 0,
            (_, 0) => 100,
            (used, max) => ((u128::from(used) * 100) / u128::from(max)).min(u128::from(u64::MAX)) as u64,
        }
    }

    /// The bar as HTML: an SVG bar (filled to 100% at most, marked over when beyond) and its numbers in words.
    pub fn render(&self) -> String {
        let pct = self.percent();
        let level = match pct {
            0..80 => "limit-ok",
            80..100 => "limit-warn",
            _ => "limit-over",
        };
        let label = format!("{}: {} of {} used ({}%), resets {}", self.label, self.used, self.max, pct, self.resets);
        format!(
            r#"<div class="limit"><p class="limit-label"><strong>{}</strong> <span data-testid="limit-numbers">{} / {} ({}%)</span> <span class="muted">resets {}</span></p><svg class="limit-svg" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title><rect class="limit-track" x="0" y="0" width="100" height="6"/><rect class="limit-fill {}" x="0" y="0" width="{}" height="6"/></svg></div>"#,
            escape(&self.label),
            self.used,
            self.max,
            pct,
            escape(&self.resets),
            escape(&label),
            escape(&label),
            level,
            pct.min(100)
        )
    }
}

fn series_class(series: &Series, position: usize) -> String {
    match series.class {
        Some(class) => class.to_owned(),
        None => format!("chart-s{}", position % SERIES_CLASSES),
    }
}

/// Where the x-axis labels go: evenly spaced, the first and the last bucket always.
fn x_label_positions(n: usize) -> Vec<usize> {
    if n <= MAX_X_LABELS {
        return (0..n).collect();
    }
    let step = (n - 1).div_ceil(MAX_X_LABELS - 1);
    let mut at: Vec<usize> = (0..n).step_by(step).collect();
    if at.last() != Some(&(n - 1)) {
        // Keep the last label clear of the one before it.
        if let Some(last) = at.last_mut()
            && n - 1 - *last < step / 2
        {
            *last = n - 1;
        } else {
            at.push(n - 1);
        }
    }
    at
}

/// Y-axis ticks from 0 to a round value at or above `max`: 1, 2 or 5 times a power of ten apart.
pub fn ticks(max: u64) -> Vec<u64> {
    if max == 0 {
        return vec![0, 1];
    }
    let rough = max.div_ceil(4).max(1);
    let mut power = 1u64;
    while power.saturating_mul(10) <= rough {
        power *= 10;
    }
    let step = [1, 2, 5, 10].iter().map(|m| m * power).find(|&s| s >= rough).unwrap_or(power * 10);
    let top = max.div_ceil(step) * step;
    (0..=top / step).map(|i| i * step).collect()
}

/// Text for HTML and SVG content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(buckets: &[&str], series: Vec<Series>, style: Style) -> TimeChart {
        TimeChart {
            title: "Calls <per> metric".into(),
            unit: "calls".into(),
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            series,
            style,
        }
    }

    #[test]
    fn no_data_says_so_and_draws_nothing() {
        let empty = chart(&["10:00", "10:01"], vec![Series::new("hits", vec![0, 0])], Style::Lines).render();
        assert!(empty.contains("No calls in this period"), "{empty}");
        assert!(!empty.contains("<svg"));
        let no_buckets = chart(&[], vec![], Style::StackedBars).render();
        assert!(no_buckets.contains("No calls in this period"));
    }

    #[test]
    fn one_point_is_a_dot_with_its_value() {
        let html = chart(&["10:00"], vec![Series::new("hits", vec![7])], Style::Lines).render();
        assert!(html.contains("<circle"), "{html}");
        assert!(html.contains("hits: 7 calls"));
        assert!(!html.contains("<polyline"));
        assert!(html.contains("<td>7</td>"));
        let one = chart(&["10:00"], vec![Series::new("hits", vec![1])], Style::Lines).render();
        assert!(one.contains("hits: 1 call<") && one.contains("hits (1 call)"), "{one}");
    }

    #[test]
    fn gaps_are_zeros_on_the_baseline_not_interpolated() {
        let html = chart(&["a", "b", "c"], vec![Series::new("hits", vec![10, 0, 10])], Style::Lines).render();
        let points = html.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or_default();
        let ys: Vec<&str> = points.split(' ').map(|p| p.split(',').nth(1).unwrap_or_default()).collect();
        let baseline = format!("{:.1}", HEIGHT - BOTTOM);
        assert_eq!(ys[1], baseline, "the missing bucket is drawn at zero: {points}");
        assert_eq!(ys[0], ys[2]);
        assert_ne!(ys[0], baseline);
        assert!(html.contains("<td>0</td>"));
    }

    #[test]
    fn accessible_svg_with_title_label_axes_legend_and_table() {
        let html = chart(
            &["10:00", "10:01"],
            vec![Series::new("hits", vec![3, 12]), Series::new("GET /pets", vec![1, 2])],
            Style::Lines,
        )
        .render();
        assert!(html.contains(r#"role="img""#));
        assert!(html.contains(r#"aria-label="Calls &lt;per&gt; metric, in calls, 10:00 to 10:01""#), "{html}");
        assert!(html.contains("<title>Calls &lt;per&gt; metric"));
        assert!(!html.contains("<per>"), "text is escaped");
        assert!(html.contains(">calls</text>"), "the unit is on the y axis");
        for tick in [">0</text>", ">5</text>", ">10</text>", ">15</text>"] {
            assert!(html.contains(tick), "tick {tick} in {html}");
        }
        assert!(html.contains("hits (15 calls)") && html.contains("GET /pets (3 calls)"), "legend with totals");
        assert!(html.contains(r#"<th scope="row">10:01</th><td>12</td><td>2</td>"#), "table fallback");
        assert!(!html.contains("style="), "no inline style: the CSP forbids it");
    }

    #[test]
    fn stacked_bars_scale_to_the_bucket_sum() {
        let html = chart(
            &["a", "b"],
            vec![
                Series::new("2xx", vec![6, 0]).with_class("status-2xx"),
                Series::new("4xx", vec![4, 0]).with_class("status-4xx"),
            ],
            Style::StackedBars,
        )
        .render();
        assert_eq!(html.matches("<rect").count(), 2, "no bar for zeros: {html}");
        assert!(html.contains("status-4xx") && html.contains("a 4xx: 4 calls"));
        // The stack reaches the top tick (10): the upper rect starts at the plot's top.
        assert!(html.contains(&format!(r#"y="{TOP:.1}""#)), "{html}");
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(0), vec![0, 1]);
        assert_eq!(ticks(1), vec![0, 1]);
        assert_eq!(ticks(7), vec![0, 2, 4, 6, 8]);
        assert_eq!(ticks(100), vec![0, 50, 100]);
        assert_eq!(ticks(1234), vec![0, 500, 1000, 1500]);
        let big = ticks(u64::MAX / 2);
        assert!(*big.last().unwrap_or(&0) >= u64::MAX / 2);
    }

    #[test]
    fn x_labels_keep_first_and_last() {
        assert_eq!(x_label_positions(3), vec![0, 1, 2]);
        let many = x_label_positions(60);
        assert!(many.len() <= MAX_X_LABELS + 1);
        assert_eq!(many.first(), Some(&0));
        assert_eq!(many.last(), Some(&59));
    }

    #[test]
    fn limit_bar_percent_and_fill() {
        let bar = LimitBar { label: "hits per minute".into(), used: 7, max: 10, resets: "10:05 UTC".into() };
        assert_eq!(bar.percent(), 70);
        let html = bar.render();
        assert!(html.contains("7 / 10 (70%)") && html.contains(r#"width="70""#) && html.contains("limit-ok"));
        let over = LimitBar { used: 13, ..bar.clone() };
        assert_eq!(over.percent(), 130);
        assert!(over.render().contains(r#"width="100""#) && over.render().contains("limit-over"));
        assert_eq!(LimitBar { used: 0, max: 0, ..bar.clone() }.percent(), 0);
        assert_eq!(LimitBar { used: 1, max: 0, ..bar }.percent(), 100);
    }
}
