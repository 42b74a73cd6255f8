//! The summary's text and JSON forms (the HTML page is in [`super::html`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::store::{Counts, SummaryRow};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub reports: Counts,
}

/// A plain table, one line per row; totals lines show `-` as result type.
pub fn text(summary: &Summary) -> String {
    let mut out = String::new();
    let headers = [
        "day",
        "policy domain",
        "type",
        "mx host",
        "result",
        "ok",
        "failed",
        "sending MTAs",
        "organisations",
    ];
    let lines: Vec<[String; 9]> = summary
        .rows
        .iter()
        .map(|r| {
            [
                r.day.clone(),
                r.policy_domain.clone(),
                r.policy_type.clone(),
                r.mx_host.clone(),
                r.result_type.clone().unwrap_or_else(|| "-".into()),
                if r.result_type.is_some() {
                    String::new()
                } else {
                    r.successful.to_string()
                },
                r.failed.to_string(),
                r.sending_mtas.join(" "),
                r.organizations.join("; "),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut row = |cells: &[&str]| {
        let joined = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", joined.trim_end());
    };
    row(&headers);
    for line in &lines {
        row(&line.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let _ = writeln!(
        out,
        "\n{} accepted report(s); kept apart: {}",
        summary.reports.accepted,
        quarantine_text(&summary.reports)
    );
    out
}

/// `none` or `3 (dkim none: 2, dkim fail: 1)`.
pub fn quarantine_text(counts: &Counts) -> String {
    let total: u64 = counts.quarantined.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return "none".into();
    }
    let parts = counts
        .quarantined
        .iter()
        .map(|(verdict, n)| format!("dkim {verdict}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{total} ({parts})")
}
