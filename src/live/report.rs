//! The report of `tlsa check`: the JSON document's types, the overall status
//! (the worst finding), and the Nagios monitoring line that leads the text
//! output. Built by [`super::check`]; extended by the MTA-STS judgement.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::endpoint::Protocol;
use super::verdict::{AddressReport, Status};

/// Version of the JSON report; bumped on incompatible changes.
pub const SCHEMA: &str = "tlsa-check/1";
/// The whole report (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub status: Status,
    pub exit_code: u8,
    /// The monitoring line (first line of the text output).
    pub summary: String,
    pub checked_at: String,
    /// How DNS answers were validated.
    pub dnssec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx: Option<MxReport>,
    pub endpoints: Vec<EndpointReport>,
    /// Problems outside any endpoint (the MX lookup).
    pub findings: Vec<Finding>,
    pub elapsed_ms: u64,
}

/// A problem, or a fact, with the state it implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    pub message: String,
}

/// The MX lookup of `--mx`.
#[derive(Debug, Clone, Serialize)]
pub struct MxReport {
    pub domain: String,
    pub dnssec: String,
    pub detail: String,
    /// (preference, host), most preferred first.
    pub hosts: Vec<MxHost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MxHost {
    pub preference: u16,
    pub host: String,
}

/// One endpoint: its TLSA RRset, its addresses, and each address's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    /// The certificate sets of a config (`tlsa check -c`) this endpoint serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<String>,
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub owner: String,
    pub status: Status,
    pub tlsa: TlsaReport,
    /// How the addresses were found: per A/AAAA lookup, or `given`.
    pub address_lookups: Vec<LookupReport>,
    pub findings: Vec<Finding>,
    pub addresses: Vec<AddressReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsaReport {
    /// `secure`, `insecure`, `bogus` or `indeterminate`.
    pub dnssec: String,
    /// `positive`, `nodata`, `nxdomain`, or `none` (no usable answer).
    pub answer: String,
    pub records: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupReport {
    /// `A`, `AAAA`, or `given`.
    pub rtype: String,
    pub dnssec: String,
    pub answer: String,
    pub addresses: Vec<IpAddr>,
    pub detail: String,
}

impl EndpointReport {
    /// Every address matched and the address set is complete.
    pub fn verified(&self) -> bool {
        !self.addresses.is_empty()
            && self.addresses.iter().all(|a| a.verdict.is_match())
            && self
                .address_lookups
                .iter()
                .all(|l| l.dnssec != "bogus" && l.dnssec != "indeterminate")
    }
}

/// When and how a report's checks ran.
pub struct Checked {
    pub at: SystemTime,
    pub took: Duration,
    /// How DNS answers were validated.
    pub dnssec: String,
}

impl Report {
    /// The report of these checks, with its overall status and monitoring line.
    pub fn new(
        endpoints: Vec<EndpointReport>,
        findings: Vec<Finding>,
        mx: Option<MxReport>,
        checked: Checked,
    ) -> Report {
        let status = overall_status(&findings, &endpoints);
        let summary = summary_line(status, &endpoints, &findings, checked.took);
        Report {
            schema: SCHEMA,
            status,
            exit_code: status.exit_code(),
            summary,
            checked_at: rfc3339(checked.at),
            dnssec: checked.dnssec,
            mx,
            endpoints,
            findings,
            elapsed_ms: u64::try_from(checked.took.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The worst state of the findings and endpoints; UNKNOWN when nothing was
/// checked and nothing is wrong.
fn overall_status(findings: &[Finding], endpoints: &[EndpointReport]) -> Status {
    let status = findings
        .iter()
        .map(|f| f.status)
        .chain(endpoints.iter().map(|e| e.status))
        .fold(Status::Ok, Status::worst);
    if endpoints.is_empty() && findings.iter().all(|f| f.status == Status::Ok) {
        Status::Unknown
    } else {
        status
    }
}

/// `TLSA STATUS: text | perfdata` — the Nagios plugin output line.
fn summary_line(
    status: Status,
    endpoints: &[EndpointReport],
    findings: &[Finding],
    elapsed: Duration,
) -> String {
    let total: usize = endpoints.iter().map(|e| e.addresses.len()).sum();
    let matching: usize = endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .filter(|a| a.verdict.is_match())
        .count();
    let mut problems: Vec<String> = findings
        .iter()
        .filter(|f| f.status != Status::Ok)
        .map(|f| f.message.clone())
        .collect();
    for e in endpoints {
        for f in e.findings.iter().filter(|f| f.status != Status::Ok) {
            problems.push(format!("{}:{}: {}", e.host, e.port, f.message));
        }
        // Addresses with the same outcome are named together.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for a in e.addresses.iter().filter(|a| a.status != Status::Ok) {
            let what = if a.verdict.is_match() {
                a.warnings.join("; ")
            } else {
                a.summary.clone()
            };
            match groups.iter_mut().find(|(w, _)| *w == what) {
                Some((_, addrs)) => addrs.push(a.address.to_string()),
                None => groups.push((what, vec![a.address.to_string()])),
            }
        }
        for (what, addrs) in groups {
            problems.push(format!(
                "{}:{} at {}: {what}",
                e.host,
                e.port,
                addrs.join(", ")
            ));
        }
    }
    let endpoint_word = if endpoints.len() == 1 {
        "endpoint"
    } else {
        "endpoints"
    };
    let text = if problems.is_empty() {
        format!(
            "{matching} of {total} addresses of {} {endpoint_word} present a key matched by their TLSA records",
            endpoints.len()
        )
    } else {
        format!(
            "{matching} of {total} addresses match; {}",
            shortened(&problems)
        )
    };
    format!(
        "TLSA {status}: {text} | addresses={total} matching={matching} time={:.3}s",
        elapsed.as_secs_f64()
    )
}

/// Room for the problems on the monitoring line: monitoring systems cut or
/// wrap long plugin output, and the table below has every detail. With the
/// status and perfdata the line stays under 200 characters.
const SUMMARY_PROBLEMS_CHARS: usize = 110;

/// As many problems as fit, the first one cut if it alone is too long, and
/// how many more there are.
fn shortened(problems: &[String]) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut used = 0;
    for problem in problems {
        let length = problem.chars().count();
        if shown.is_empty() && length > SUMMARY_PROBLEMS_CHARS {
            let cut: String = problem.chars().take(SUMMARY_PROBLEMS_CHARS - 1).collect();
            shown.push(format!("{}…", cut.trim_end()));
            break;
        }
        if used + length > SUMMARY_PROBLEMS_CHARS {
            break;
        }
        used += length + 2;
        shown.push(problem.clone());
    }
    let more = problems.len() - shown.len();
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    format!("{}{more}", shown.join("; "))
}

impl Report {
    /// Adds findings about the domain beyond DANE (the MTA-STS judgement),
    /// and updates the status and the monitoring line to include them.
    pub fn add_findings(&mut self, findings: Vec<Finding>) {
        self.findings.extend(findings);
        self.restate(overall_status(&self.findings, &self.endpoints));
    }

    /// `status`, its exit code and the monitoring line, after the findings changed.
    fn restate(&mut self, status: Status) {
        self.status = status;
        self.exit_code = status.exit_code();
        let elapsed = Duration::from_millis(self.elapsed_ms);
        self.summary = summary_line(status, &self.endpoints, &self.findings, elapsed);
    }

    /// Whether any DNSSEC verdict in the report failed (bogus or undecided):
    /// then the resolver may be the cause rather than the zone.
    pub fn has_dnssec_failure(&self) -> bool {
        let failed = |state: &str| matches!(state, "bogus" | "indeterminate");
        self.mx.as_ref().is_some_and(|mx| failed(&mx.dnssec))
            || self.endpoints.iter().any(|e| {
                failed(&e.tlsa.dnssec) || e.address_lookups.iter().any(|l| failed(&l.dnssec))
            })
    }

    /// The resolver, not the zone, is why validation failed: the verdicts
    /// cannot be trusted either way, so the check is UNKNOWN (a setup
    /// problem of the check), led by what to do.
    pub fn distrust_resolver(&mut self, (short, detail): (String, String)) {
        for (i, message) in [short, detail].into_iter().enumerate() {
            let status = Status::Unknown;
            self.findings.insert(i, Finding { status, message });
        }
        self.restate(Status::Unknown);
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
