//! The text output of `tlsa check`: the monitoring line, then one block per
//! endpoint (a table of its addresses and their verdicts), then the MTA-STS
//! block. The JSON output is the report itself, serialised.

use std::io::Write;
use std::net::SocketAddr;

use crate::live::report::Report;
use crate::live::verdict::short;
use crate::mtasts::check::StsReport;

/// The summary line, then one block per endpoint.
pub(super) fn print_text(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", report.summary)?;
    for f in &report.findings {
        writeln!(out, "{:<8} {}", f.status, f.message)?;
    }
    if let Some(mx) = &report.mx {
        let hosts: Vec<String> = mx
            .hosts
            .iter()
            .map(|h| format!("{} {}", h.preference, h.host))
            .collect();
        writeln!(
            out,
            "\nMX {} ({}): {}",
            mx.domain,
            mx.dnssec,
            if hosts.is_empty() {
                "none".to_string()
            } else {
                hosts.join(", ")
            }
        )?;
    }
    for e in &report.endpoints {
        let sets = match e.sets.as_slice() {
            [] => String::new(),
            sets => format!("set {}: ", sets.join(", ")),
        };
        writeln!(
            out,
            "\n{sets}{}:{} ({})  {}  TLSA {} {}: {}",
            e.host,
            e.port,
            e.protocol,
            e.status,
            e.owner,
            e.tlsa.dnssec,
            if e.tlsa.records.is_empty() {
                e.tlsa.answer.clone()
            } else {
                e.tlsa.records.join(", ")
            }
        )?;
        for f in &e.findings {
            writeln!(out, "  {:<8} {}", f.status, f.message)?;
        }
        if e.addresses.is_empty() {
            continue;
        }
        let width = address_width(e.addresses.iter().map(|a| a.address));
        writeln!(
            out,
            "  {:<width$}  {:<8}  {:<20}  DETAIL",
            "ADDRESS", "STATUS", "VERDICT"
        )?;
        for a in &e.addresses {
            let mut detail = a.summary.clone();
            if let Some(leaf) = &a.leaf
                && a.verdict.is_match()
            {
                detail.push_str(&format!(
                    "; expires {} ({} days)",
                    leaf.not_after, leaf.days_left
                ));
            }
            writeln!(
                out,
                "  {:<width$}  {:<8}  {:<20}  {detail}",
                a.address.to_string(),
                a.status.name(),
                a.verdict.name()
            )?;
            for r in a.verdict.records() {
                writeln!(
                    out,
                    "  {:<width$}  {:<8}  {:<20}  {}: {}",
                    "",
                    "",
                    "record",
                    short(&r.record),
                    r.result
                )?;
            }
            for w in &a.warnings {
                writeln!(out, "  {:<width$}  {:<8}  {:<20}  {w}", "", "", "warning")?;
            }
            for n in &a.notes {
                writeln!(out, "  {:<width$}  {:<8}  {:<20}  {n}", "", "", "note")?;
            }
            if let Some(leaf) = &a.leaf
                && !a.verdict.is_match()
            {
                writeln!(
                    out,
                    "  {:<width$}  {:<8}  {:<20}  {} ({}, {}, expires {})",
                    "",
                    "",
                    "presented",
                    short(&leaf.tlsa_3_1_1),
                    leaf.subject,
                    leaf.key_algorithm,
                    leaf.not_after
                )?;
            }
        }
    }
    Ok(())
}

/// The width of an ADDRESS column holding `addresses`.
fn address_width(addresses: impl Iterator<Item = SocketAddr>) -> usize {
    addresses
        .map(|a| a.to_string().len())
        .max()
        .unwrap_or(0)
        .max("ADDRESS".len())
}

/// The MTA-STS block of the text output.
pub(super) fn print_sts(sts: &StsReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "\nMTA-STS {}  {}  TXT {} ({}): {}",
        sts.domain, sts.status, sts.txt.owner, sts.txt.dnssec, sts.txt.verdict
    )?;
    if let Some(p) = &sts.policy {
        writeln!(
            out,
            "  policy: mode {}, max_age {}, mx {}",
            p.mode,
            p.max_age,
            p.mx.join(" ")
        )?;
    }
    if !sts.addresses.is_empty() {
        let width = address_width(sts.addresses.iter().map(|a| a.address));
        writeln!(out, "  {:<width$}  {:<14}  DETAIL", "ADDRESS", "RESULT")?;
        for a in &sts.addresses {
            writeln!(
                out,
                "  {:<width$}  {:<14}  {}",
                a.address.to_string(),
                a.result,
                a.detail
            )?;
        }
    }
    for mx in &sts.mx {
        writeln!(
            out,
            "  MX {}: {}",
            mx.host,
            mx.pattern
                .as_ref()
                .map_or("matched by no pattern".to_string(), |p| format!(
                    "matched by {p}"
                ))
        )?;
        for a in &mx.webpki {
            writeln!(out, "    {}  WebPKI {}: {}", a.address, a.result, a.detail)?;
        }
    }
    writeln!(
        out,
        "  TLS-RPT {}: {}",
        sts.tlsrpt.owner,
        if sts.tlsrpt.records.is_empty() {
            "none".to_string()
        } else {
            sts.tlsrpt.records.join(", ")
        }
    )
}
