//! The summary as one self-contained HTML page: an inline SVG chart of failed sessions per
//! day for each MX host, and the table. No script, no external asset: it opens from a file
//! or a mail attachment the same way. Every string from a report is escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::summary::{Summary, quarantine_text};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
/// Room left and right of the first and last day, so their labels fit.
const PAD: f64 = 40.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// Distinct colours for up to eight MX hosts, then they repeat.
const COLOURS: &[&str] = &[
    "#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#138d75", "#a04000", "#2e4053",
];

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

/// Failed sessions per MX host and day (failure lines only; totals lines would count twice).
fn series(summary: &Summary) -> (Vec<String>, BTreeMap<String, BTreeMap<String, u64>>) {
    let mut days = BTreeSet::new();
    let mut per_mx: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &summary.rows {
        days.insert(row.day.clone());
        if row.result_type.is_some() {
            *per_mx
                .entry(row.mx_host.clone())
                .or_default()
                .entry(row.day.clone())
                .or_default() += row.failed;
        }
    }
    (days.into_iter().collect(), per_mx)
}

fn chart(summary: &Summary) -> String {
    let (days, per_mx) = series(summary);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="failures-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Failed sessions per day and MX host">"#
    );
    if days.is_empty() || per_mx.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No failures reported</text></svg>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return svg;
    }
    let max = per_mx
        .values()
        .flat_map(|m| m.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let plot_w = WIDTH - LEFT - RIGHT - 2.0 * PAD;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if days.len() == 1 {
            LEFT + PAD + plot_w / 2.0
        } else {
            LEFT + PAD + plot_w * i as f64 / (days.len() - 1) as f64
        }
    };
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / max as f64;
    // Axes, the maximum and zero on the y axis, each day on the x axis.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#555"/><line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#555"/><text class="y-max" x="{tx}" y="{ty}" text-anchor="end">{max}</text><text x="{tx}" y="{b}" text-anchor="end">0</text>"##,
        b = TOP + plot_h,
        r = WIDTH - RIGHT,
        tx = LEFT - 6.0,
        ty = TOP + 4.0,
    );
    for (i, day) in days.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text class="day" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
            x(i),
            TOP + plot_h + 16.0,
            escape(day)
        );
    }
    for (n, (mx, counts)) in per_mx.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<(f64, f64, &String, u64)> = days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let v = counts.get(day).copied().unwrap_or(0);
                (x(i), y(v), day, v)
            })
            .collect();
        let path = points
            .iter()
            .map(|(px, py, _, _)| format!("{px:.1},{py:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            svg,
            r#"<g class="series" data-mx="{mx}"><polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>"#,
            mx = escape(mx)
        );
        for (px, py, day, v) in &points {
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{px:.1}" cy="{py:.1}" r="4" fill="{colour}" data-day="{day}" data-failed="{v}"><title>{mx} {day}: {v} failed</title></circle>"#,
                day = escape(day),
                mx = escape(mx)
            );
            if *v > 0 {
                let _ = write!(
                    svg,
                    r#"<text class="count" x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="{colour}">{v}</text>"#,
                    py - 8.0
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text class="legend" x="{:.1}" y="{:.1}" font-size="12" fill="{colour}">{}</text></g>"#,
            LEFT + 8.0 + 180.0 * (n % 4) as f64,
            HEIGHT - 8.0 - 14.0 * (n / 4) as f64,
            escape(mx)
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn page(summary: &Summary, title: &str) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:13px}}td.n{{text-align:right}}tr.total{{background:#f4f4f4}}</style></head><body><h1>{t}</h1><h2>Failed sessions per day and MX host</h2>",
        t = escape(title)
    );
    html.push_str(&chart(summary));
    let _ = write!(
        html,
        "<p id=\"counts\">{} accepted report(s); kept apart (DKIM): {}</p><table id=\"summary\"><thead><tr><th>day</th><th>policy domain</th><th>type</th><th>MX host</th><th>result</th><th>successful</th><th>failed</th><th>sending MTAs</th><th>organisations</th></tr></thead><tbody>",
        summary.reports.accepted,
        escape(&quarantine_text(&summary.reports))
    );
    for row in &summary.rows {
        let total = row.result_type.is_none();
        let _ = write!(
            html,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            if total { "total" } else { "failure" },
            escape(&row.day),
            escape(&row.policy_domain),
            escape(&row.policy_type),
            escape(&row.mx_host),
            escape(row.result_type.as_deref().unwrap_or("all sessions")),
            if total {
                row.successful.to_string()
            } else {
                String::new()
            },
            row.failed,
            escape(&row.sending_mtas.join(" ")),
            escape(&row.organizations.join("; "))
        );
    }
    html.push_str("</tbody></table></body></html>\n");
    html
}
