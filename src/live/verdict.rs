//! The judgement per address: what the server presented, against the
//! validated TLSA RRset, under RFC 7671 and (for SMTP) RFC 7672 — plus the
//! monitoring status each outcome maps to.
//!
//! Usage 3 (DANE-EE) matches the leaf; names and dates are ignored (RFC 7672
//! §3.1.1). Usage 2 (DANE-TA) needs more than finding the anchor in the
//! presented chain ([`match_chain`] does that): the chain from the leaf up to
//! that anchor must be valid — signatures, validity dates, CA constraints and
//! the server-authentication purpose, checked by rustls' WebPKI path building
//! with the anchor as the only root — and the leaf must carry a reference
//! identifier (RFC 7672 §3.2.2/§3.2.3: a DNS-ID, or the CN when there is no
//! DNS-ID; `*` only as the whole left-most label). Usages 0/1 are unusable
//! for SMTP (RFC 7672 §3.1) and here for every protocol (no WebPKI check).
//!
//! **Why one file (about 600 lines of code):** one address's verdict under RFC
//! 7671/7672 — matching, the usage 2 chain and its names, the expiry warning —
//! and the status each verdict maps to. The record-matching primitives are
//! already apart, in `tlsa::matching`; what is left is one judgement.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::capture::{self, CaptureFailure, Presented};
use crate::tlsa::{
    Certificate, MatchReport, Matching, Outcome, Profile, RecordVerdict, Selector, TlsaRecord,
    Usage, match_chain,
};

/// Nagios/Icinga plugin states, in the order a summary takes the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl Status {
    /// The plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// CRITICAL over UNKNOWN over WARNING over OK (a known failure is worse
    /// than not knowing).
    pub fn worst(self, other: Status) -> Status {
        let rank = |s: Status| match s {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What DNS says about the endpoint's TLSA RRset, as the verdict needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaState {
    /// Validated, with these records.
    Secure(Vec<TlsaRecord>),
    /// Validated absence (NODATA or NXDOMAIN proven by NSEC/NSEC3).
    Absent,
    /// Not protected by DNSSEC: DANE does not apply.
    Insecure(String),
    /// Fails validation: DANE senders defer delivery.
    Bogus(String),
    /// Could not be decided (resolver down, timeout).
    Indeterminate(String),
}

/// The verdict for one address.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// A usable record authenticates the presented chain.
    Match {
        #[serde(serialize_with = "as_text")]
        record: TlsaRecord,
        /// 0: the leaf (usage 3); n: the trust anchor's depth (usage 2).
        depth: usize,
    },
    /// Usable records exist and none authenticates the chain: DANE senders
    /// refuse to deliver.
    Mismatch {
        /// `3 1 1` data of the presented leaf key.
        #[serde(serialize_with = "as_text")]
        presented: TlsaRecord,
        records: Vec<RecordResult>,
    },
    /// Every record is unusable (unknown parameters, usages 0/1 for SMTP,
    /// wrong digest length): SMTP falls back to unauthenticated TLS.
    NoUsableRecords { records: Vec<RecordResult> },
    /// DNSSEC proves there is no TLSA RRset.
    NoTlsa {
        #[serde(serialize_with = "as_text")]
        presented: TlsaRecord,
    },
    /// The TLSA RRset is not DNSSEC-protected.
    Insecure { detail: String },
    /// The TLSA RRset fails DNSSEC validation.
    Bogus { detail: String },
    /// DNS could not be asked or did not decide.
    DnsError { detail: String },
    /// The server does not offer (or refused to start) TLS.
    #[serde(rename = "starttls-not-offered")]
    StartTlsNotOffered { detail: String },
    /// The server broke the protocol before TLS.
    ProtocolError { detail: String },
    /// The TLS handshake failed.
    HandshakeFailed { detail: String },
    /// No TCP connection.
    Unreachable { detail: String },
    /// The per-connection limit expired.
    Timeout { detail: String, limit_seconds: f64 },
}

/// One record of the RRset and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordResult {
    #[serde(serialize_with = "as_text")]
    pub record: TlsaRecord,
    pub result: String,
}

fn as_text<S: serde::Serializer>(record: &TlsaRecord, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(record)
}

impl Verdict {
    /// The short name used in tables and JSON (`match`, `mismatch`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Match { .. } => "match",
            Verdict::Mismatch { .. } => "mismatch",
            Verdict::NoUsableRecords { .. } => "no-usable-records",
            Verdict::NoTlsa { .. } => "no-tlsa",
            Verdict::Insecure { .. } => "insecure",
            Verdict::Bogus { .. } => "bogus",
            Verdict::DnsError { .. } => "dns-error",
            Verdict::StartTlsNotOffered { .. } => "starttls-not-offered",
            Verdict::ProtocolError { .. } => "protocol-error",
            Verdict::HandshakeFailed { .. } => "handshake-failed",
            Verdict::Unreachable { .. } => "unreachable",
            Verdict::Timeout { .. } => "timeout",
        }
    }

    /// The monitoring state of this verdict alone (warnings may raise it).
    ///
    /// Only a match is OK. Records that are all unusable are a WARNING: SMTP
    /// senders still deliver, over unauthenticated TLS. A DNS failure to
    /// decide is UNKNOWN. Everything else means DANE senders do not deliver
    /// to this address, or DANE is not in effect: CRITICAL.
    pub fn status(&self) -> Status {
        match self {
            Verdict::Match { .. } => Status::Ok,
            Verdict::NoUsableRecords { .. } => Status::Warning,
            Verdict::DnsError { .. } => Status::Unknown,
            _ => Status::Critical,
        }
    }

    /// Is this address authenticated by the RRset?
    pub fn is_match(&self) -> bool {
        matches!(self, Verdict::Match { .. })
    }

    /// One sentence for the table and the summary line; per-record
    /// results are in the verdict's `records`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Match { record, depth: 0 } => {
                format!("presented key matches TLSA {}", short(record))
            }
            Verdict::Match { record, depth } => format!(
                "chain leads to the trust anchor at depth {depth}, matched by TLSA {}",
                short(record)
            ),
            Verdict::Mismatch { presented, records } => format!(
                "presented key {presented} matches none of the {} TLSA record(s)",
                records.len()
            ),
            Verdict::NoUsableRecords { records } => format!(
                "none of the {} TLSA record(s) is usable, so senders do not authenticate the server",
                records.len()
            ),
            Verdict::NoTlsa { presented } => {
                format!("no TLSA records (DNSSEC-proven); the server presents {presented}")
            }
            Verdict::Insecure { detail } => format!("TLSA not DNSSEC-secure: {detail}"),
            Verdict::Bogus { detail } => {
                format!("TLSA fails DNSSEC validation, DANE senders defer mail: {detail}")
            }
            Verdict::DnsError { detail } => format!("TLSA lookup undecided: {detail}"),
            Verdict::StartTlsNotOffered { detail }
            | Verdict::ProtocolError { detail }
            | Verdict::Unreachable { detail } => detail.clone(),
            Verdict::HandshakeFailed { detail } => format!("TLS handshake failed: {detail}"),
            Verdict::Timeout {
                detail,
                limit_seconds,
            } => format!("no answer within {limit_seconds} s {detail}"),
        }
    }

    /// The per-record results, for mismatches and unusable RRsets.
    pub fn records(&self) -> &[RecordResult] {
        match self {
            Verdict::Mismatch { records, .. } | Verdict::NoUsableRecords { records } => records,
            _ => &[],
        }
    }
}

/// `3 1 1 0123456789ab…` (the first 12 hex digits).
pub fn short(record: &TlsaRecord) -> String {
    let hex = record.data_hex();
    let shown = if hex.len() > 12 { &hex[..12] } else { &hex[..] };
    let dots = if hex.len() > 12 { "…" } else { "" };
    format!(
        "{} {} {} {shown}{dots}",
        record.usage, record.selector, record.matching
    )
}

/// What the server presented, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaf {
    pub subject: String,
    pub issuer: String,
    pub key_algorithm: String,
    /// The `3 1 1` record of the leaf key, ready to publish.
    #[serde(serialize_with = "as_text")]
    pub tlsa_3_1_1: TlsaRecord,
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    /// Certificates presented, leaf included.
    pub chain_length: usize,
}

impl Leaf {
    pub fn of(chain: &[Certificate], now: SystemTime) -> Option<Leaf> {
        let leaf = chain.first()?;
        Some(Leaf {
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            key_algorithm: leaf.key_algorithm.to_string(),
            tlsa_3_1_1: key_record(leaf),
            not_after: leaf.not_after_rfc3339(),
            days_left: (leaf.not_after - unix(now)).div_euclid(86_400),
            chain_length: chain.len(),
        })
    }
}

/// The `3 1 1` record of a certificate's key.
pub fn key_record(cert: &Certificate) -> TlsaRecord {
    TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, cert.spki())
}

/// The judgement of one address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressReport {
    pub address: SocketAddr,
    pub status: Status,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub summary: String,
    /// Conditions that make an otherwise good result a WARNING.
    pub warnings: Vec<String>,
    /// Facts worth knowing that change nothing.
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<Leaf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// The server's greeting before STARTTLS, when TLS was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// Connection time up to the end of the handshake (or the failure).
    pub elapsed_ms: u64,
    /// The WebPKI judgement of the presented chain for the host name, when
    /// asked for (MTA-STS); it changes no DANE status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webpki: Option<super::webpki::WebPkiVerdict>,
}

/// What the verdict depends on besides the chain and the RRset.
#[derive(Debug, Clone)]
pub struct Policy {
    pub profile: Profile,
    /// Reference identifiers for usage 2 name checks (the host name; with
    /// --mx, the MX host name). Lower case, no trailing dot.
    pub names: Vec<String>,
    pub now: SystemTime,
    /// Warn when the leaf expires within this many days.
    pub expiry_days: u32,
}

/// Judges one address: the outcome of its connection against the TLSA state.
pub fn judge_address(
    address: SocketAddr,
    outcome: Result<Presented, CaptureFailure>,
    elapsed: Duration,
    tlsa: &TlsaState,
    policy: &Policy,
) -> AddressReport {
    let mut report = AddressReport {
        address,
        status: Status::Ok,
        verdict: Verdict::Unreachable {
            detail: String::new(),
        },
        summary: String::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        leaf: None,
        tls_version: None,
        cipher_suite: None,
        greeting: None,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        webpki: None,
    };
    report.verdict = match outcome {
        Err(failure) => {
            if let CaptureFailure::Handshake { chain, .. } = &failure {
                report.leaf = Leaf::of(chain, policy.now);
            }
            failure_verdict(failure)
        }
        Ok(presented) => {
            report.leaf = Leaf::of(&presented.chain, policy.now);
            report.tls_version = Some(presented.tls_version.clone());
            report.cipher_suite = Some(presented.cipher_suite.clone());
            report.greeting = Some(presented.greeting.clone()).filter(|g| !g.is_empty());
            report.notes.extend(presented.notes.iter().cloned());
            let verdict = chain_verdict(&presented.chain, tlsa, policy);
            if verdict.is_match() {
                report
                    .warnings
                    .extend(expiry_warning(&presented.chain, policy));
            } else if let Some(leaf) = presented.chain.first() {
                report
                    .notes
                    .extend(expiry_warning(std::slice::from_ref(leaf), policy));
            }
            verdict
        }
    };
    report.status = report.verdict.status();
    if !report.warnings.is_empty() {
        report.status = report.status.worst(Status::Warning);
    }
    report.summary = report.verdict.describe();
    report
}

/// Why a connection yielded no chain, in the words of the check's report.
pub fn describe_failure(failure: CaptureFailure) -> String {
    failure_verdict(failure).describe()
}

fn failure_verdict(failure: CaptureFailure) -> Verdict {
    match failure {
        CaptureFailure::Unreachable(detail) => Verdict::Unreachable { detail },
        CaptureFailure::Timeout { stage, limit } => Verdict::Timeout {
            detail: stage,
            limit_seconds: limit.as_secs_f64(),
        },
        CaptureFailure::StartTlsNotOffered(detail) => Verdict::StartTlsNotOffered { detail },
        CaptureFailure::Protocol(detail) => Verdict::ProtocolError { detail },
        CaptureFailure::Handshake { detail, .. } => Verdict::HandshakeFailed { detail },
    }
}

/// The verdict on a presented chain (non-empty, leaf first).
fn chain_verdict(chain: &[Certificate], tlsa: &TlsaState, policy: &Policy) -> Verdict {
    let Some(leaf) = chain.first() else {
        return Verdict::HandshakeFailed {
            detail: "the server presented no certificate".into(),
        };
    };
    match tlsa {
        TlsaState::Absent => Verdict::NoTlsa {
            presented: key_record(leaf),
        },
        TlsaState::Insecure(detail) => Verdict::Insecure {
            detail: detail.clone(),
        },
        TlsaState::Bogus(detail) => Verdict::Bogus {
            detail: detail.clone(),
        },
        TlsaState::Indeterminate(detail) => Verdict::DnsError {
            detail: detail.clone(),
        },
        TlsaState::Secure(records) => rrset_verdict(chain, records, policy),
    }
}

/// Match, Mismatch or NoUsableRecords for a chain against a validated RRset.
/// This is the whole DANE decision, and what the roll engine relies on.
pub fn rrset_verdict(chain: &[Certificate], rrset: &[TlsaRecord], policy: &Policy) -> Verdict {
    let Some(leaf) = chain.first() else {
        return Verdict::HandshakeFailed {
            detail: "the server presented no certificate".into(),
        };
    };
    let report = authenticate(chain, rrset, policy);
    let records: Vec<RecordResult> = report
        .records
        .iter()
        .map(|(record, verdict)| RecordResult {
            record: record.clone(),
            result: verdict.to_string(),
        })
        .collect();
    match report.outcome() {
        Outcome::Authenticated => {
            let (record, depth) = report
                .matched()
                .map(|(r, d)| (r.clone(), d))
                .unwrap_or_else(|| (key_record(leaf), 0));
            Verdict::Match { record, depth }
        }
        Outcome::Mismatch => Verdict::Mismatch {
            presented: key_record(leaf),
            records,
        },
        Outcome::NoUsableRecords => Verdict::NoUsableRecords { records },
    }
}

/// [`match_chain`], then for every usage 2 record that found its anchor:
/// the chain up to the anchor must validate and the leaf must carry one of
/// the reference identifiers; otherwise that record does not match.
pub fn authenticate(chain: &[Certificate], rrset: &[TlsaRecord], policy: &Policy) -> MatchReport {
    let mut report = match_chain(chain, rrset, policy.profile);
    for (record, verdict) in &mut report.records {
        if let (Some(Usage::DaneTa), RecordVerdict::Matched { depth }) = (record.usage(), &verdict)
        {
            let depth = *depth;
            if let Err(why) = validate_to_anchor(chain, depth, policy.now)
                .and_then(|()| check_names(&chain[0], &policy.names))
            {
                *verdict = RecordVerdict::NoMatch {
                    reason: format!("the trust anchor at depth {depth} matches, but {why}"),
                };
            }
        }
    }
    report
}

/// Signatures, dates, CA constraints and purpose from the leaf up to the
/// certificate at `depth`, which is the only trust anchor.
fn validate_to_anchor(chain: &[Certificate], depth: usize, now: SystemTime) -> Result<(), String> {
    let ders: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der()))
        .collect();
    let mut roots = RootCertStore::empty();
    roots
        .add(ders[depth].clone())
        .map_err(|e| format!("it cannot serve as a trust anchor: {e}"))?;
    let leaf = ParsedCertificate::try_from(&ders[0])
        .map_err(|e| format!("the server certificate cannot be validated: {e}"))?;
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    verify_server_cert_signed_by_trust_anchor(
        &leaf,
        &roots,
        &ders[1..depth],
        UnixTime::since_unix_epoch(since_epoch),
        capture::provider().signature_verification_algorithms.all,
    )
    .map_err(|e| format!("the chain from the server certificate to it is not valid: {e}"))
}

/// The leaf must name one of `names` (RFC 7672 §3.2.3).
fn check_names(leaf: &Certificate, names: &[String]) -> Result<(), String> {
    let presented = presented_names(leaf);
    if names
        .iter()
        .any(|name| presented.iter().any(|p| name_matches(p, name)))
    {
        return Ok(());
    }
    Err(format!(
        "the server certificate names {} and none is a reference identifier ({})",
        if presented.is_empty() {
            "no host".to_string()
        } else {
            presented.join(", ")
        },
        names.join(", ")
    ))
}

/// DNS-IDs (subjectAltName dNSName), or the subject CNs when there is none.
fn presented_names(cert: &Certificate) -> Vec<String> {
    let Ok((_, parsed)) = X509Certificate::from_der(cert.der()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = parsed
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
    }
    names
}

/// Case-insensitive match; `*` only as the complete left-most label,
/// standing for exactly one label.
fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = pattern.strip_prefix("*.") {
        return !rest.contains('*')
            && rest.contains('.')
            && name
                .split_once('.')
                .is_some_and(|(first, tail)| !first.is_empty() && tail == rest);
    }
    !pattern.contains('*') && pattern == name
}

fn expiry_warning(chain: &[Certificate], policy: &Policy) -> Option<String> {
    let leaf = chain.first()?;
    let left = leaf.not_after - unix(policy.now);
    let days = left.div_euclid(86_400);
    if left < 0 {
        let usage3 = if policy.profile == Profile::Smtp {
            " (DANE-EE senders ignore dates, others do not)"
        } else {
            ""
        };
        Some(format!(
            "the certificate expired on {} ({} days ago){usage3}",
            leaf.not_after_rfc3339(),
            -days
        ))
    } else if days < i64::from(policy.expiry_days) {
        Some(format!(
            "the certificate expires on {} (in {days} days)",
            leaf.not_after_rfc3339()
        ))
    } else {
        None
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    const DAY: Duration = Duration::from_secs(86_400);

    struct Pki {
        chain: Vec<Certificate>,
    }

    /// root CA → intermediate → leaf for `names`, valid from `start` for `days`.
    fn pki(names: &[&str], start: SystemTime, days: u32) -> Pki {
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p.not_before = start.into();
            p.not_after = (start + DAY * 3650).into();
            p
        };
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().unwrap();
        let int_params = ca_params("Test Intermediate");
        let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.not_before = start.into();
        leaf_params.not_after = (start + DAY * days).into();
        let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
        Pki {
            chain: [leaf.der(), int.der(), root.der()]
                .iter()
                .map(|d| Certificate::from_der(d).unwrap())
                .collect(),
        }
    }

    fn policy(now: SystemTime) -> Policy {
        Policy {
            profile: Profile::Smtp,
            names: vec!["mail.example.com".into()],
            now,
            expiry_days: 14,
        }
    }

    fn ta(cert: &Certificate) -> TlsaRecord {
        TlsaRecord::compute(Usage::DaneTa, Selector::Spki, Matching::Sha256, cert.spki())
    }

    #[test]
    fn usage_3_ignores_names_and_dates() {
        let start = SystemTime::now() - DAY * 100;
        let p = pki(&["other.example.net"], start, 30); // expired 70 days ago
        let now = SystemTime::now();
        let verdict = rrset_verdict(&p.chain, &[key_record(&p.chain[0])], &policy(now));
        assert!(verdict.is_match(), "{verdict:?}");
    }

    #[test]
    fn usage_2_checks_the_chain_and_the_names() {
        let now = SystemTime::now();
        let p = pki(&["mail.example.com"], now - DAY, 90);
        // Anchored at the intermediate and at the root: both valid paths.
        for depth in [1, 2] {
            let v = rrset_verdict(&p.chain, &[ta(&p.chain[depth])], &policy(now));
            assert_eq!(
                v,
                Verdict::Match {
                    record: ta(&p.chain[depth]),
                    depth
                }
            );
        }
        // Wrong name.
        let mut other = policy(now);
        other.names = vec!["mx.example.org".into()];
        let v = rrset_verdict(&p.chain, &[ta(&p.chain[1])], &other);
        let Verdict::Mismatch { records, .. } = &v else {
            panic!("{v:?}")
        };
        assert!(records[0].result.contains("reference identifier"), "{v:?}");
        // Expired leaf: the chain is invalid under usage 2.
        let v = rrset_verdict(&p.chain, &[ta(&p.chain[1])], &policy(now + DAY * 100));
        let Verdict::Mismatch { records, .. } = &v else {
            panic!("{v:?}")
        };
        assert!(records[0].result.contains("not valid"), "{v:?}");
        // An anchor that did not sign the chain: the leaf's chain is broken.
        let stranger = pki(&["mail.example.com"], now - DAY, 90);
        let mixed = vec![p.chain[0].clone(), stranger.chain[1].clone()];
        let v = rrset_verdict(&mixed, &[ta(&stranger.chain[1])], &policy(now));
        assert_eq!(v.name(), "mismatch", "{v:?}");
    }

    #[test]
    fn wildcards_match_one_whole_label() {
        assert!(name_matches("*.example.com", "mail.example.com"));
        assert!(name_matches("MAIL.example.com.", "mail.EXAMPLE.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("m*.example.com", "mail.example.com"));
        assert!(!name_matches("*.com", "example.com"));
    }

    #[test]
    fn statuses_and_expiry_warnings() {
        let now = SystemTime::now();
        let p = pki(&["mail.example.com"], now - DAY, 10);
        let presented = Presented {
            chain: p.chain.clone(),
            notes: vec![],
            tls_version: "TLSv1.3".into(),
            cipher_suite: "X".into(),
            greeting: String::new(),
            elapsed: Duration::from_millis(5),
        };
        let addr: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let secure = TlsaState::Secure(vec![key_record(&p.chain[0])]);
        let r = judge_address(
            addr,
            Ok(presented.clone()),
            presented.elapsed,
            &secure,
            &policy(now),
        );
        assert_eq!(r.status, Status::Warning, "{r:?}");
        assert!(
            r.warnings[0].contains("in 8 days") || r.warnings[0].contains("in 9 days"),
            "{r:?}"
        );

        let wrong = TlsaState::Secure(vec![key_record(&p.chain[1])]);
        let r = judge_address(
            addr,
            Ok(presented.clone()),
            presented.elapsed,
            &wrong,
            &policy(now),
        );
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.summary.contains(&key_record(&p.chain[0]).to_string()),
            "{}",
            r.summary
        );

        let r = judge_address(
            addr,
            Ok(presented.clone()),
            presented.elapsed,
            &TlsaState::Indeterminate("resolver down".into()),
            &policy(now),
        );
        assert_eq!((r.status, r.verdict.name()), (Status::Unknown, "dns-error"));

        let r = judge_address(
            addr,
            Err(CaptureFailure::Timeout {
                stage: "waiting for the EHLO reply".into(),
                limit: Duration::from_secs(2),
            }),
            Duration::from_secs(2),
            &secure,
            &policy(now),
        );
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.summary, "no answer within 2 s waiting for the EHLO reply");

        let pkix = TlsaRecord::compute(
            Usage::PkixEe,
            Selector::Spki,
            Matching::Sha256,
            p.chain[0].spki(),
        );
        let r = judge_address(
            addr,
            Ok(presented.clone()),
            presented.elapsed,
            &TlsaState::Secure(vec![pkix]),
            &policy(now),
        );
        assert_eq!(
            (r.status, r.verdict.name()),
            (Status::Warning, "no-usable-records")
        );

        assert_eq!(Status::Warning.worst(Status::Unknown), Status::Unknown);
        assert_eq!(Status::Critical.worst(Status::Unknown), Status::Critical);
        assert_eq!(Status::Unknown.exit_code(), 3);
    }
}
