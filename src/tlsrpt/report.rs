//! The RFC 8460 §4 report: its JSON, read tolerantly and claimed strictly.
//!
//! Real reporters deviate from the RFC in a few documented ways, all accepted here and each
//! recorded as a note on the report (so a summary can say what was assumed):
//! - date-times without a zone (Microsoft): read as UTC;
//! - an empty `sending-mta-ip` or `receiving-ip` (Google): no address, not an error;
//! - `contact-info: null` or absent;
//! - `mx-host` as one string or as an array of strings;
//! - `policy-string` as one (JSON-encoded) string instead of an array;
//! - optional fields missing; result types outside RFC 8460 §4.3 kept verbatim as unknown.
//!
//! What is not accepted as if it were real: the placeholder names of RFC 8460 §4.4's schema
//! (`mx-host-pattern`, `ip-address`, `additional-info-uri`, …). They are noted and ignored,
//! so a report carrying them claims nothing it does not say with the real keys; a required
//! field that only appears under a placeholder name is missing.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// A parsed report; only what it really says, plus notes on what was assumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub organization: String,
    pub report_id: String,
    pub contact: Option<String>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub policies: Vec<PolicyResult>,
    /// Deviations from RFC 8460 that were tolerated, one sentence each.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    pub policy_type: PolicyType,
    pub policy_strings: Vec<String>,
    pub policy_domain: String,
    pub mx_hosts: Vec<String>,
    pub successful: u64,
    pub failed: u64,
    pub failures: Vec<FailureDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    Sts,
    Tlsa,
    NoPolicyFound,
    /// Not one of RFC 8460's three; kept as written.
    Unknown(String),
}

impl PolicyType {
    fn parse(text: &str) -> Self {
        match text {
            "sts" => PolicyType::Sts,
            "tlsa" => PolicyType::Tlsa,
            "no-policy-found" => PolicyType::NoPolicyFound,
            other => PolicyType::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PolicyType::Sts => "sts",
            PolicyType::Tlsa => "tlsa",
            PolicyType::NoPolicyFound => "no-policy-found",
            PolicyType::Unknown(text) => text,
        }
    }
}

/// The result types of RFC 8460 §4.3 (negotiation and policy failures).
pub const KNOWN_RESULT_TYPES: &[&str] = &[
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
];

/// Result types that mean a DANE failure (RFC 8460 §4.3.2).
pub const DANE_RESULT_TYPES: &[&str] = &["tlsa-invalid", "dnssec-invalid", "dane-required"];

#[derive(Debug, Clone, PartialEq)]
pub struct FailureDetail {
    /// As written; see [`FailureDetail::is_known_type`].
    pub result_type: String,
    pub sending_mta_ip: Option<IpAddr>,
    pub receiving_mx_hostname: Option<String>,
    pub receiving_mx_helo: Option<String>,
    pub receiving_ip: Option<IpAddr>,
    pub failed_session_count: u64,
    pub additional_information: Option<String>,
    pub failure_reason_code: Option<String>,
}

impl FailureDetail {
    pub fn is_known_type(&self) -> bool {
        KNOWN_RESULT_TYPES.contains(&self.result_type.as_str())
    }
}

/// Why a document is not a report; names the field, never quotes long content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 8460 report: {0}")]
pub struct ReportError(pub String);

/// Placeholder names of RFC 8460 §4.4's schema, with the real key each stands for. A
/// parser that reads them as keys would "find" fields no reporter means to send.
const PLACEHOLDER_KEYS: &[(&str, &str)] = &[
    ("mx-host-pattern", "mx-host"),
    ("ip-address", "sending-mta-ip"),
    ("additional-info-uri", "additional-information"),
    ("email-address", "contact-info"),
    ("datetime", "start-datetime/end-datetime"),
    ("domain", "policy-domain"),
];

#[derive(Deserialize)]
struct RawReport {
    #[serde(rename = "organization-name")]
    organization: Option<String>,
    #[serde(rename = "date-range")]
    date_range: Option<RawDateRange>,
    #[serde(rename = "contact-info", default)]
    contact: Option<Value>,
    #[serde(rename = "report-id")]
    report_id: Option<String>,
    policies: Option<Vec<RawPolicyResult>>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct RawDateRange {
    #[serde(rename = "start-datetime")]
    start: Option<String>,
    #[serde(rename = "end-datetime")]
    end: Option<String>,
}

#[derive(Deserialize)]
struct RawPolicyResult {
    policy: Option<RawPolicy>,
    summary: Option<RawSummary>,
    #[serde(rename = "failure-details", default)]
    failure_details: Option<Vec<RawFailure>>,
}

#[derive(Deserialize)]
struct RawPolicy {
    #[serde(rename = "policy-type")]
    policy_type: Option<String>,
    #[serde(rename = "policy-string", default)]
    policy_string: Option<StringOrList>,
    #[serde(rename = "policy-domain")]
    policy_domain: Option<String>,
    #[serde(rename = "mx-host", default)]
    mx_host: Option<StringOrList>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawSummary {
    #[serde(rename = "total-successful-session-count")]
    successful: Option<u64>,
    #[serde(rename = "total-failure-session-count")]
    failed: Option<u64>,
}

#[derive(Deserialize)]
struct RawFailure {
    #[serde(rename = "result-type")]
    result_type: Option<String>,
    #[serde(rename = "sending-mta-ip", default)]
    sending_mta_ip: Option<String>,
    #[serde(rename = "receiving-mx-hostname", default)]
    receiving_mx_hostname: Option<String>,
    #[serde(rename = "receiving-mx-helo", default)]
    receiving_mx_helo: Option<String>,
    #[serde(rename = "receiving-ip", default)]
    receiving_ip: Option<String>,
    #[serde(rename = "failed-session-count")]
    failed_session_count: Option<u64>,
    #[serde(rename = "additional-information", default)]
    additional_information: Option<String>,
    #[serde(rename = "failure-reason-code", default)]
    failure_reason_code: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// Parses one report document. serde_json's recursion limit (128 levels) bounds nesting,
/// so a deeply nested document is an error, not a stack overflow.
pub fn parse(json: &[u8]) -> Result<Report, ReportError> {
    let raw: RawReport = serde_json::from_slice(json).map_err(|e| {
        // The position, not the content: the text is untrusted and may be huge.
        ReportError(format!(
            "invalid JSON for a report ({} at line {} column {})",
            describe_json_error(&e),
            e.line(),
            e.column()
        ))
    })?;
    let mut notes = Vec::new();
    note_placeholders("report", &raw.other, &mut notes);
    let organization = required(raw.organization, "organization-name")?;
    let report_id = required(raw.report_id, "report-id")?;
    let range = raw.date_range.ok_or_else(|| missing("date-range"))?;
    let start = datetime(
        &required(range.start, "date-range.start-datetime")?,
        "start",
        &mut notes,
    )?;
    let end = datetime(
        &required(range.end, "date-range.end-datetime")?,
        "end",
        &mut notes,
    )?;
    if end < start {
        return Err(ReportError("date-range ends before it starts".to_string()));
    }
    let contact = match raw.contact {
        None | Some(Value::Null) => {
            notes.push("contact-info is null or absent".to_string());
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(_) => return Err(ReportError("contact-info is not a string".into())),
    };
    let raw_policies = raw.policies.ok_or_else(|| missing("policies"))?;
    let policies = raw_policies
        .into_iter()
        .enumerate()
        .map(|(i, p)| policy_result(p, i, &mut notes))
        .collect::<Result<Vec<_>, _>>()?;
    notes.dedup();
    Ok(Report {
        organization,
        report_id,
        contact,
        start,
        end,
        policies,
        notes,
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json's message ends with " at line L column C"; keep only the kind, and cut
    // it short: it may quote a key of the document.
    let kind = text.split(" at line ").next().unwrap_or("syntax error");
    kind.chars().take(120).collect()
}

fn missing(field: &str) -> ReportError {
    ReportError(format!("required field {field:?} is missing"))
}

fn required(value: Option<String>, field: &str) -> Result<String, ReportError> {
    match value {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(ReportError(format!("required field {field:?} is empty"))),
        None => Err(missing(field)),
    }
}

fn note_placeholders(place: &str, other: &serde_json::Map<String, Value>, notes: &mut Vec<String>) {
    for (placeholder, real) in PLACEHOLDER_KEYS {
        if other.contains_key(*placeholder) {
            notes.push(format!(
                "{place}: key {placeholder:?} is a placeholder of RFC 8460 §4.4, not the field {real:?}; ignored"
            ));
        }
    }
}

/// RFC 3339, or (Microsoft) the same without a zone, taken as UTC.
fn datetime(
    text: &str,
    which: &str,
    notes: &mut Vec<String>,
) -> Result<OffsetDateTime, ReportError> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let zoneless = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    match time::PrimitiveDateTime::parse(text, zoneless) {
        Ok(at) => {
            notes.push(format!(
                "date-range {which}-datetime has no time zone; taken as UTC"
            ));
            Ok(at.assume_utc())
        }
        Err(_) => Err(ReportError(format!(
            "date-range {which}-datetime is not an RFC 3339 date-time ({} characters)",
            text.chars().count()
        ))),
    }
}

fn list(value: Option<StringOrList>) -> (Vec<String>, bool) {
    match value {
        None => (Vec::new(), false),
        Some(StringOrList::One(text)) => (vec![text], true),
        Some(StringOrList::Many(items)) => (items, false),
    }
}

fn policy_result(
    raw: RawPolicyResult,
    index: usize,
    notes: &mut Vec<String>,
) -> Result<PolicyResult, ReportError> {
    let place = format!("policies[{index}]");
    let policy = raw
        .policy
        .ok_or_else(|| missing(&format!("{place}.policy")))?;
    note_placeholders(&format!("{place}.policy"), &policy.other, notes);
    let policy_type = PolicyType::parse(&required(
        policy.policy_type,
        &format!("{place}.policy.policy-type"),
    )?);
    if let PolicyType::Unknown(text) = &policy_type {
        notes.push(format!(
            "{place}: policy-type {:?} is not one of RFC 8460's; kept as written",
            short(text)
        ));
    }
    let policy_domain = required(
        policy.policy_domain,
        &format!("{place}.policy.policy-domain"),
    )?
    .trim_end_matches('.')
    .to_ascii_lowercase();
    let (policy_strings, one_string) = list(policy.policy_string);
    if one_string {
        notes.push(format!(
            "{place}: policy-string is one string, not an array"
        ));
    }
    let (mx_hosts, one_mx) = list(policy.mx_host);
    if one_mx {
        notes.push(format!("{place}: mx-host is one string, not an array"));
    }
    let mx_hosts = mx_hosts
        .into_iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let summary = raw
        .summary
        .ok_or_else(|| missing(&format!("{place}.summary")))?;
    let successful = summary
        .successful
        .ok_or_else(|| missing(&format!("{place}.summary.total-successful-session-count")))?;
    let failed = summary
        .failed
        .ok_or_else(|| missing(&format!("{place}.summary.total-failure-session-count")))?;
    let failures = raw
        .failure_details
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, f)| failure(f, &format!("{place}.failure-details[{j}]"), notes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PolicyResult {
        policy_type,
        policy_strings,
        policy_domain,
        mx_hosts,
        successful,
        failed,
        failures,
    })
}

fn failure(
    raw: RawFailure,
    place: &str,
    notes: &mut Vec<String>,
) -> Result<FailureDetail, ReportError> {
    note_placeholders(place, &raw.other, notes);
    let result_type = required(raw.result_type, &format!("{place}.result-type"))?;
    let failed_session_count = raw
        .failed_session_count
        .ok_or_else(|| missing(&format!("{place}.failed-session-count")))?;
    let detail = FailureDetail {
        result_type,
        sending_mta_ip: address(raw.sending_mta_ip, place, "sending-mta-ip", notes)?,
        receiving_mx_hostname: raw
            .receiving_mx_hostname
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty()),
        receiving_mx_helo: raw.receiving_mx_helo.filter(|h| !h.is_empty()),
        receiving_ip: address(raw.receiving_ip, place, "receiving-ip", notes)?,
        failed_session_count,
        additional_information: raw.additional_information.filter(|s| !s.is_empty()),
        failure_reason_code: raw.failure_reason_code.filter(|s| !s.is_empty()),
    };
    if !detail.is_known_type() {
        notes.push(format!(
            "{place}: result-type {:?} is not one of RFC 8460 §4.3; kept as unknown",
            short(&detail.result_type)
        ));
    }
    Ok(detail)
}

/// An address field: empty means none (Google sends `""`); anything else must be an address.
fn address(
    value: Option<String>,
    place: &str,
    field: &str,
    notes: &mut Vec<String>,
) -> Result<Option<IpAddr>, ReportError> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => {
            notes.push(format!("{place}: {field} is empty"));
            Ok(None)
        }
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ReportError(format!("{place}.{field} is not an IP address"))),
    }
}

/// Untrusted text shown in a note: at most 64 characters.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"organization-name":"Org","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},"contact-info":"a@b","report-id":"r1","policies":[{"policy":{"policy-type":"tlsa","policy-string":["3 1 1 AA"],"policy-domain":"mx.example.test","mx-host":["mx.example.test"]},"summary":{"total-successful-session-count":5,"total-failure-session-count":1},"failure-details":[{"result-type":"tlsa-invalid","sending-mta-ip":"192.0.2.1","receiving-ip":"2001:db8::1","failed-session-count":1}]}]}"#;

    #[test]
    fn reads_a_conforming_report_without_notes() {
        let report = parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(report.organization, "Org");
        assert_eq!(report.policies[0].policy_type, PolicyType::Tlsa);
        assert_eq!(report.policies[0].failures[0].failed_session_count, 1);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }

    #[test]
    fn zoneless_datetimes_are_utc_and_noted() {
        let text = MINIMAL
            .replace("00:00:00Z", "00:00:00")
            .replace("23:59:59Z", "23:59:59.123");
        let report = parse(text.as_bytes()).unwrap();
        assert_eq!(report.start.offset(), time::UtcOffset::UTC);
        let zoned = OffsetDateTime::parse("2026-11-30T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(report.start, zoned);
        assert!(report.notes.iter().any(|n| n.contains("taken as UTC")));
    }

    #[test]
    fn placeholder_keys_claim_nothing() {
        let text = MINIMAL.replace("\"mx-host\"", "\"mx-host-pattern\"");
        let report = parse(text.as_bytes()).unwrap();
        assert!(report.policies[0].mx_hosts.is_empty());
        assert!(report.notes.iter().any(|n| n.contains("placeholder")));
        let text = MINIMAL.replace("\"policy-domain\"", "\"domain\"");
        assert!(
            parse(text.as_bytes())
                .unwrap_err()
                .0
                .contains("policy-domain")
        );
    }

    #[test]
    fn a_bad_address_is_an_error_naming_the_field() {
        let text = MINIMAL.replace("192.0.2.1", "not-an-ip");
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(err.0.contains("sending-mta-ip"), "{err}");
    }
}
