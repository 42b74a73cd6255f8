//! The MTA-STS part of `tlsa check --mx DOMAIN`: the `_mta-sts` TXT
//! record, the policy fetched from every address of `mta-sts.DOMAIN` with
//! the strictest sender's rules, its syntax, every MX host matched by a
//! pattern, the WebPKI verdict of every MX address (from the live check),
//! and the `_smtp._tls` (TLS-RPT) record.
//!
//! How bad a failure is depends on the mode senders apply:
//!
//! | failure | enforce (or mode unknown) | testing | none |
//! |---|---|---|---|
//! | TXT, fetch, syntax, stale address | CRITICAL | WARNING | WARNING |
//! | MX not matched, MX certificate not WebPKI-valid | CRITICAL | WARNING | OK (noted) |
//!
//! Under enforce, senders refuse to deliver to an MX that fails; a policy
//! that cannot be fetched while a TXT record announces one leaves senders
//! with whatever they cached, which may be an enforce policy: so "unknown"
//! counts as enforce. Under testing senders deliver anyway and only report.
//! A domain without a `v=STSv1` record publishes no policy: that is a fact
//! (OK), not a failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use super::fetch::{self, FetchOptions, Fetched};
use super::matching;
use super::policy::{self, Mode, Policy};
use super::record::{self, TxtVerdict};
use crate::dns::observe::dnssec::Verdict as Dnssec;
use crate::live::report::{Finding, Report};
use crate::live::resolve::Dns;
use crate::live::verdict::Status;

/// How the MTA-STS check runs.
#[derive(Debug, Clone)]
pub struct StsOptions {
    pub fetch: FetchOptions,
    /// Port of the policy host's addresses (443; another for tests).
    pub port: u16,
    /// Fetch from exactly these instead of the A/AAAA of `mta-sts.DOMAIN`.
    pub addresses: Option<Vec<SocketAddr>>,
}

/// The MTA-STS report (the `mta_sts` member of the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct StsReport {
    pub domain: String,
    pub status: Status,
    pub policy_url: String,
    pub txt: TxtReport,
    pub tlsrpt: TlsRptReport,
    /// The roots certificates were judged with.
    pub roots: String,
    /// What every address of the policy host served.
    pub addresses: Vec<StsAddress>,
    /// The policy senders get (the one the TXT id points to, or the one
    /// most addresses serve).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReport>,
    pub mx: Vec<MxJudgement>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TxtReport {
    pub owner: String,
    pub dnssec: String,
    pub records: Vec<String>,
    #[serde(flatten)]
    pub verdict: TxtVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsRptReport {
    pub owner: String,
    pub records: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StsAddress {
    pub address: SocketAddr,
    /// `ok`, `stale`, `invalid-policy`, or the fetch failure's name.
    pub result: String,
    pub detail: String,
    /// The canonical id of the policy served, when it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub mode: Mode,
    pub max_age: u32,
    pub mx: Vec<String>,
    /// The id tlsa would announce for this content.
    pub content_id: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MxJudgement {
    pub host: String,
    /// The policy pattern matching it, if any.
    pub pattern: Option<String>,
    pub webpki: Vec<MxAddressWebPki>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MxAddressWebPki {
    pub address: SocketAddr,
    pub result: String,
    pub detail: String,
}

/// Judges MTA-STS for `domain`; `tlsa` is the DANE report of the same
/// `--mx` check (its MX hosts and their addresses' WebPKI verdicts).
pub async fn check(domain: &str, dns: &dyn Dns, tlsa: &Report, options: &StsOptions) -> StsReport {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let host = fetch::policy_host(&domain);
    let txt_owner = record::owner(&domain);
    let tlsrpt_owner = format!("_smtp._tls.{domain}.");
    let (txt, tlsrpt, addresses) = tokio::join!(
        txt_records(dns, &txt_owner),
        txt_records(dns, &tlsrpt_owner),
        policy_addresses(dns, &host, options),
    );
    let mut findings = Vec::new();
    let (txt_dnssec, txt_texts) = match txt {
        Ok(found) => found,
        Err((status, why)) => {
            findings.push(Finding {
                status,
                message: format!("MTA-STS: {txt_owner} TXT could not be looked up: {why}"),
            });
            ("indeterminate".into(), Vec::new())
        }
    };
    let verdict = record::judge(&txt_texts);
    let (addresses, lookup_findings) = addresses;
    findings.extend(lookup_findings);
    let fetched = fetch::fetch_all(&domain, &addresses, &options.fetch).await;
    let served = Served::judge(&fetched, verdict.id());
    let mode = served.policy.as_ref().map(|(p, _)| p.mode);
    let policy_severity = match mode {
        Some(Mode::Testing) | Some(Mode::None) => Status::Warning,
        Some(Mode::Enforce) | None => Status::Critical,
    };
    let mx_severity = match mode {
        Some(Mode::Enforce) | None => Status::Critical,
        Some(Mode::Testing) => Status::Warning,
        Some(Mode::None) => Status::Ok,
    };
    let announced = !matches!(verdict, TxtVerdict::NoRecord { .. });
    let finding = |status, message: String| Finding {
        status,
        message: format!("MTA-STS: {message}"),
    };
    match &verdict {
        // The lookup failed: said above, and nothing is known about a record.
        TxtVerdict::NoRecord { .. } if txt_dnssec == "indeterminate" => {}
        TxtVerdict::NoRecord { .. } => {
            let served_note = if served.policy.is_some() {
                format!(" ({host} serves a policy, which senders do not use without it)")
            } else {
                String::new()
            };
            findings.push(finding(
                Status::Ok,
                format!("{domain} publishes no MTA-STS policy: no {txt_owner} record begins with v=STSv1{served_note}"),
            ));
        }
        TxtVerdict::Valid { record, .. } => findings.push(finding(
            Status::Ok,
            format!("{txt_owner} announces policy id {}", record.id),
        )),
        TxtVerdict::Invalid { .. } | TxtVerdict::Several { .. } => findings.push(finding(
            policy_severity,
            format!("{txt_owner}: {verdict}; senders see no policy (a cached one still applies)"),
        )),
    }
    if txt_dnssec == "bogus" {
        findings.push(finding(
            Status::Critical,
            format!("{txt_owner} fails DNSSEC validation: validating senders cannot look it up"),
        ));
    }
    let mut address_reports = Vec::new();
    for (fetched, judged) in fetched.iter().zip(&served.per_address) {
        if announced && judged.result != "ok" {
            findings.push(finding(
                policy_severity,
                format!(
                    "{} at {}: {}",
                    fetch::policy_url(&domain),
                    fetched.address,
                    judged.detail
                ),
            ));
        }
        address_reports.push(StsAddress {
            address: fetched.address,
            result: judged.result.clone(),
            detail: judged.detail.clone(),
            content_id: judged.content_id.clone(),
            elapsed_ms: u64::try_from(fetched.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
    }
    if announced && served.policy.is_none() && !addresses.is_empty() {
        findings.push(finding(
            Status::Critical,
            format!("{txt_owner} announces a policy, but no address of {host} serves a valid one"),
        ));
    }
    let policy_report = served.policy.as_ref().map(|(p, warnings)| PolicyReport {
        mode: p.mode,
        max_age: p.max_age,
        mx: p.mx.clone(),
        content_id: p.id(),
        warnings: warnings.clone(),
    });
    if let Some(report) = &policy_report {
        for warning in &report.warnings {
            findings.push(finding(Status::Warning, format!("the policy: {warning}")));
        }
    }
    let mx = judge_mx(tlsa, served.policy.as_ref().map(|(p, _)| p));
    if let Some((policy, _)) = &served.policy {
        for judged in &mx {
            let consequence = match policy.mode {
                Mode::Enforce => "senders applying the policy refuse to deliver to it",
                Mode::Testing => "senders report failures for it (mode testing)",
                Mode::None => "no consequence in mode none",
            };
            if judged.pattern.is_none() {
                findings.push(finding(
                    mx_severity,
                    format!(
                        "MX host {} is matched by no mx pattern of the policy: {consequence}",
                        judged.host
                    ),
                ));
            }
            for a in judged.webpki.iter().filter(|a| a.result != "valid") {
                findings.push(finding(
                    mx_severity,
                    format!(
                        "MX host {} at {}: not WebPKI-valid ({}: {}): {consequence}",
                        judged.host, a.address, a.result, a.detail
                    ),
                ));
            }
        }
    }
    let tlsrpt_records = match tlsrpt {
        Ok((_, texts)) => texts
            .into_iter()
            .filter(|t| t.starts_with("v=TLSRPTv1"))
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    if announced {
        match tlsrpt_records.len() {
            0 => findings.push(finding(
                if mode == Some(Mode::Testing) { Status::Warning } else { Status::Ok },
                format!("no TLS-RPT record at {tlsrpt_owner}: nobody reports failures of the policy (RFC 8460)"),
            )),
            1 => {}
            n => findings.push(finding(
                Status::Warning,
                format!("{n} TLS-RPT records at {tlsrpt_owner}: reporters use none of them (RFC 8460 §3)"),
            )),
        }
    }
    let status = findings
        .iter()
        .map(|f| f.status)
        .fold(Status::Ok, Status::worst);
    StsReport {
        domain: domain.clone(),
        status,
        policy_url: fetch::policy_url(&domain),
        txt: TxtReport {
            owner: txt_owner,
            dnssec: txt_dnssec,
            records: txt_texts,
            verdict,
        },
        tlsrpt: TlsRptReport {
            owner: tlsrpt_owner,
            records: tlsrpt_records,
        },
        roots: options.fetch.roots.origin.clone(),
        addresses: address_reports,
        policy: policy_report,
        mx,
        findings,
    }
}

/// The TXT records at `owner`, each concatenated, with the DNSSEC state;
/// `Err` when DNS gave no usable answer.
async fn txt_records(
    dns: &dyn Dns,
    owner: &str,
) -> Result<(String, Vec<String>), (Status, String)> {
    let name =
        Name::from_ascii(owner).map_err(|e| (Status::Unknown, format!("not a DNS name: {e}")))?;
    let answer = dns.lookup(&name, RecordType::TXT).await;
    let dnssec = answer.verdict.json_name();
    if answer.verdict == Dnssec::Indeterminate || answer.kind.is_none() {
        return Err((
            Status::Unknown,
            format!("no usable answer: {}", answer.reason),
        ));
    }
    let texts = answer
        .records
        .iter()
        .filter_map(|r| match r {
            RData::TXT(txt) => {
                let strings: Vec<Vec<u8>> = txt.txt_data.iter().map(|s| s.to_vec()).collect();
                Some(record::concatenate(&strings))
            }
            _ => None,
        })
        .collect();
    Ok((dnssec.into(), texts))
}

/// The addresses to fetch from: the given ones, or the A/AAAA records of
/// the policy host (MTA-STS does not need DNSSEC; a bogus answer is a
/// finding, since validating senders get none).
async fn policy_addresses(
    dns: &dyn Dns,
    host: &str,
    options: &StsOptions,
) -> (Vec<SocketAddr>, Vec<Finding>) {
    if let Some(given) = &options.addresses {
        return (given.clone(), Vec::new());
    }
    let Ok(name) = Name::from_ascii(format!("{host}.")) else {
        return (Vec::new(), Vec::new());
    };
    let (v4, v6) = tokio::join!(
        dns.lookup(&name, RecordType::A),
        dns.lookup(&name, RecordType::AAAA)
    );
    let mut findings = Vec::new();
    let mut addresses = Vec::new();
    for answer in [v4, v6] {
        match answer.verdict {
            Dnssec::Bogus => findings.push(Finding {
                status: Status::Critical,
                message: format!(
                    "MTA-STS: the {} records of {host} fail DNSSEC validation: {}",
                    answer.rtype, answer.reason
                ),
            }),
            Dnssec::Indeterminate => findings.push(Finding {
                status: Status::Unknown,
                message: format!(
                    "MTA-STS: the {} records of {host} could not be looked up: {}",
                    answer.rtype, answer.reason
                ),
            }),
            _ => addresses.extend(
                answer
                    .addresses()
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, options.port)),
            ),
        }
    }
    addresses.sort();
    addresses.dedup();
    (addresses, findings)
}

/// What each address served, and the policy senders get.
struct Served {
    per_address: Vec<AddressJudgement>,
    policy: Option<(Policy, Vec<String>)>,
}

struct AddressJudgement {
    result: String,
    detail: String,
    content_id: Option<String>,
}

impl Served {
    /// The current policy is the one whose canonical id the TXT record
    /// announces (tlsa's own policies), else the one most addresses serve;
    /// an address serving another valid policy is stale.
    fn judge(fetched: &[Fetched], announced: Option<&str>) -> Served {
        let parsed: Vec<Result<policy::Parsed, String>> = fetched
            .iter()
            .map(|f| match &f.outcome {
                Ok(body) => {
                    policy::parse(body).map_err(|e| format!("the served policy is not valid: {e}"))
                }
                Err(failure) => Err(failure.to_string()),
            })
            .collect();
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (i, p) in parsed.iter().enumerate() {
            if let Ok(p) = p {
                counts.entry(p.policy.id()).or_insert((0, i)).0 += 1;
            }
        }
        let current = announced
            .filter(|id| counts.contains_key(*id))
            .map(str::to_string)
            .or_else(|| {
                counts
                    .iter()
                    .max_by_key(|(_, (n, first))| (*n, std::cmp::Reverse(*first)))
                    .map(|(id, _)| id.clone())
            });
        let per_address = fetched
            .iter()
            .zip(&parsed)
            .map(|(f, p)| match (p, &f.outcome) {
                (Ok(p), _) => {
                    let id = p.policy.id();
                    let stale = current.as_deref() != Some(id.as_str());
                    AddressJudgement {
                        result: if stale { "stale" } else { "ok" }.into(),
                        detail: if stale {
                            format!(
                                "serves another policy (mode {}, max_age {}, mx {}) than the current one: stale, senders fetching from this address get it",
                                p.policy.mode,
                                p.policy.max_age,
                                p.policy.mx.join(" ")
                            )
                        } else {
                            format!("serves the policy (mode {}, max_age {})", p.policy.mode, p.policy.max_age)
                        },
                        content_id: Some(id),
                    }
                }
                (Err(why), Ok(_)) => AddressJudgement {
                    result: "invalid-policy".into(),
                    detail: why.clone(),
                    content_id: None,
                },
                (Err(why), Err(failure)) => AddressJudgement {
                    result: failure.name().into(),
                    detail: why.clone(),
                    content_id: None,
                },
            })
            .collect();
        let policy = current.and_then(|id| {
            parsed
                .iter()
                .flatten()
                .find(|p| p.policy.id() == id)
                .map(|p| (p.policy.clone(), p.warnings.clone()))
        });
        Served {
            per_address,
            policy,
        }
    }
}

/// Every MX host of the DANE report, with the pattern matching it and the
/// WebPKI verdict of each of its addresses.
fn judge_mx(tlsa: &Report, policy: Option<&Policy>) -> Vec<MxJudgement> {
    let Some(mx) = &tlsa.mx else {
        return Vec::new();
    };
    let mut hosts: Vec<&str> = mx
        .hosts
        .iter()
        .map(|h| h.host.as_str())
        .filter(|h| !h.is_empty())
        .collect();
    hosts.dedup();
    hosts
        .into_iter()
        .map(|host| MxJudgement {
            host: host.to_string(),
            pattern: policy
                .and_then(|p| matching::matching_pattern(&p.mx, host).map(str::to_string)),
            webpki: tlsa
                .endpoints
                .iter()
                .filter(|e| e.host.eq_ignore_ascii_case(host))
                .flat_map(|e| &e.addresses)
                .map(|a| match &a.webpki {
                    Some(w) => MxAddressWebPki {
                        address: a.address,
                        result: w.result.clone(),
                        detail: w.detail.clone(),
                    },
                    None => MxAddressWebPki {
                        address: a.address,
                        result: "not-checked".into(),
                        detail: format!("no certificate was presented: {}", a.summary),
                    },
                })
                .collect(),
        })
        .collect()
}
