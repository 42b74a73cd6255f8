//! `tlsa check` as a library: resolve, connect to every address at once,
//! judge each, and summarise for people and for monitoring.
//!
//! Every address gets its own connection with its own time limit, all
//! running concurrently, so one silent address delays the report by at most
//! that limit and never hides the verdict of the others.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hickory_proto::rr::{Name, RecordType};
use tokio::task::JoinSet;

use super::capture::{self, ConnectOptions};
use super::endpoint::{Endpoint, Protocol, normalise_host};
use super::report::{
    Checked, EndpointReport, Finding, LookupReport, MxHost, MxReport, Report, TlsaReport,
};
use super::resolve::{Answer, Dns};
use super::verdict::{self, AddressReport, Policy, Status, TlsaState};
use super::webpki::{self, Roots};
use crate::dns::observe::dnssec::{Validation, Verdict as Dnssec};
use crate::dns::observe::propagation::AnswerKind;
use crate::tlsa::TlsaRecord;

/// Default for [`CheckOptions::expiry_days`].
pub const DEFAULT_EXPIRY_DAYS: u32 = 14;

/// How a check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub connect: ConnectOptions,
    /// Warn when a matching leaf expires within this many days.
    pub expiry_days: u32,
    /// "Now" for dates (expiry, usage 2 chain validity).
    pub now: SystemTime,
    /// Also judge each presented chain under WebPKI for the host name with
    /// these roots (for MTA-STS); the verdict changes no DANE status.
    pub webpki: Option<Roots>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            connect: ConnectOptions::default(),
            expiry_days: DEFAULT_EXPIRY_DAYS,
            now: SystemTime::now(),
            webpki: None,
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub enum Target {
    /// One endpoint; its A/AAAA addresses, or exactly these.
    Endpoint {
        endpoint: Endpoint,
        addresses: Option<Vec<SocketAddr>>,
    },
    /// Every MX host of a domain, as a sending MTA finds them.
    Mx {
        domain: String,
        port: u16,
        protocol: Protocol,
    },
}

/// Checks `targets` against the TLSA RRsets DNS serves.
pub async fn check(targets: &[Target], dns: Arc<dyn Dns>, options: &CheckOptions) -> Report {
    let started = Instant::now();
    let mut mx_report = None;
    let mut findings = Vec::new();
    let mut jobs: Vec<(Endpoint, Option<Vec<SocketAddr>>)> = Vec::new();
    for target in targets {
        match target {
            Target::Endpoint {
                endpoint,
                addresses,
            } => jobs.push((endpoint.clone(), addresses.clone())),
            Target::Mx {
                domain,
                port,
                protocol,
            } => {
                let (report, hosts, mut problems) = mx_hosts(domain, dns.as_ref()).await;
                findings.append(&mut problems);
                mx_report = Some(report);
                for host in hosts {
                    match Endpoint::new(&host, *port, Some(*protocol)) {
                        Ok(endpoint) => jobs.push((endpoint, None)),
                        Err(why) => findings.push(Finding {
                            status: Status::Critical,
                            message: format!("MX host of {domain}: {why}"),
                        }),
                    }
                }
            }
        }
    }
    let mut set = JoinSet::new();
    for (index, (endpoint, addresses)) in jobs.into_iter().enumerate() {
        let dns = dns.clone();
        let options = options.clone();
        set.spawn(async move {
            let report = check_endpoint(&endpoint, addresses, dns, &options).await;
            (index, report)
        });
    }
    let endpoints = collect(set).await;
    let checked = Checked {
        at: options.now,
        took: started.elapsed(),
        dnssec: dns.method(),
    };
    Report::new(endpoints, findings, mx_report, checked)
}

/// The tasks' results in the order they were spawned (by their index).
pub async fn collect<T: 'static>(mut set: JoinSet<(usize, T)>) -> Vec<T> {
    let mut done = Vec::new();
    while let Some(joined) = set.join_next().await {
        // A panicking task is a bug; its endpoint would be missing, so make it loud.
        match joined {
            Ok(pair) => done.push(pair),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The MX hosts of `domain` (RFC 5321 §5.1: no MX means the domain itself;
/// RFC 7505: a null MX means no mail).
async fn mx_hosts(domain: &str, dns: &dyn Dns) -> (MxReport, Vec<String>, Vec<Finding>) {
    let mut report = MxReport {
        domain: domain.to_string(),
        dnssec: String::new(),
        detail: String::new(),
        hosts: Vec::new(),
    };
    let finding = |status, message| Finding { status, message };
    let name = match Name::from_ascii(format!("{domain}.")) {
        Ok(name) => name,
        Err(e) => {
            report.detail = format!("invalid domain: {e}");
            let f = finding(
                Status::Unknown,
                format!("{domain}: invalid domain name: {e}"),
            );
            return (report, Vec::new(), vec![f]);
        }
    };
    let answer = dns.lookup(&name, RecordType::MX).await;
    report.dnssec = answer.verdict.json_name().into();
    report.detail = answer.reason.clone();
    let mut findings = Vec::new();
    match answer.verdict {
        Dnssec::Bogus => {
            findings.push(finding(
                Status::Critical,
                format!(
                    "the MX RRset of {domain} fails DNSSEC validation, so DANE senders defer its mail: {}",
                    answer.reason
                ),
            ));
            return (report, Vec::new(), findings);
        }
        Dnssec::Indeterminate => {
            findings.push(finding(
                Status::Unknown,
                format!("the MX RRset of {domain} could not be looked up: {}", answer.reason),
            ));
            return (report, Vec::new(), findings);
        }
        Dnssec::Insecure => findings.push(finding(
            Status::Warning,
            format!(
                "the MX RRset of {domain} is not DNSSEC-secure ({}): DANE senders such as Postfix do not apply DANE to mail for {domain}; its MX hosts are checked anyway",
                answer.reason
            ),
        )),
        Dnssec::Secure => {}
    }
    let exchanges = answer.exchanges();
    report.hosts = exchanges
        .iter()
        .map(|(preference, host)| MxHost {
            preference: *preference,
            host: host.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
        })
        .collect();
    let hosts: Vec<String> = match answer.kind {
        _ if exchanges.len() == 1 && exchanges[0].1.is_root() => {
            findings.push(finding(
                Status::Unknown,
                format!("{domain} publishes a null MX (RFC 7505): it accepts no mail, so there is nothing to check"),
            ));
            Vec::new()
        }
        Some(AnswerKind::NxDomain) => {
            findings.push(finding(
                Status::Critical,
                format!("{domain} does not exist (NXDOMAIN)"),
            ));
            Vec::new()
        }
        _ if exchanges.is_empty() => {
            findings.push(finding(
                Status::Ok,
                format!("{domain} has no MX records: senders deliver to the domain itself (RFC 5321 §5.1)"),
            ));
            vec![domain.trim_end_matches('.').to_ascii_lowercase()]
        }
        _ => report.hosts.iter().map(|h| h.host.clone()).collect(),
    };
    let mut seen = BTreeSet::new();
    let hosts = hosts
        .into_iter()
        .filter(|h| seen.insert(h.clone()))
        .collect();
    (report, hosts, findings)
}

/// One endpoint: TLSA and addresses looked up concurrently, then every
/// address checked concurrently.
async fn check_endpoint(
    endpoint: &Endpoint,
    given: Option<Vec<SocketAddr>>,
    dns: Arc<dyn Dns>,
    options: &CheckOptions,
) -> EndpointReport {
    let owner_text = endpoint.owner();
    let mut findings = Vec::new();
    let host_name = Name::from_ascii(format!("{}.", endpoint.host));
    let owner = Name::from_ascii(&owner_text);
    let (Ok(host_name), Ok(owner)) = (host_name, owner) else {
        return EndpointReport {
            sets: Vec::new(),
            host: endpoint.host.clone(),
            port: endpoint.port,
            protocol: endpoint.protocol,
            owner: owner_text.clone(),
            status: Status::Unknown,
            tlsa: TlsaReport {
                dnssec: "indeterminate".into(),
                answer: "none".into(),
                records: Vec::new(),
                ttl: None,
                detail: String::new(),
            },
            address_lookups: Vec::new(),
            findings: vec![Finding {
                status: Status::Unknown,
                message: format!("{owner_text} is not a valid DNS name"),
            }],
            addresses: Vec::new(),
        };
    };

    let tlsa_lookup = async { tlsa_from_validation(&dns.tlsa(&owner).await) };
    let address_lookup = resolve_addresses(endpoint, &host_name, given.as_deref(), dns.as_ref());
    let ((tlsa_state, tlsa_report), (addresses, lookups)) =
        tokio::join!(tlsa_lookup, address_lookup);

    findings.extend(address_findings(endpoint, &lookups, given.is_some()));
    let mut seen = BTreeSet::new();
    let addresses: Vec<SocketAddr> = addresses.into_iter().filter(|a| seen.insert(*a)).collect();
    if addresses.is_empty()
        && given.is_none()
        && lookups
            .iter()
            .all(|l| l.dnssec != "bogus" && l.dnssec != "indeterminate")
    {
        findings.push(Finding {
            status: Status::Critical,
            message: format!(
                "{} has no A or AAAA records: nothing to connect to",
                endpoint.host
            ),
        });
    }
    if addresses.is_empty() {
        // No address verdict will carry the TLSA state: report it here.
        if let Some(f) = tlsa_finding(&owner_text, &tlsa_state) {
            findings.push(f);
        }
    }

    let policy = Policy {
        profile: endpoint.profile(),
        names: vec![endpoint.host.clone()],
        now: options.now,
        expiry_days: options.expiry_days,
    };
    let mut set = JoinSet::new();
    for (index, address) in addresses.into_iter().enumerate() {
        let endpoint = endpoint.clone();
        let connect = options.connect.clone();
        let tlsa_state = tlsa_state.clone();
        let policy = policy.clone();
        let roots = options.webpki.clone();
        set.spawn(async move {
            let started = Instant::now();
            let outcome = capture::capture(address, &endpoint, &connect).await;
            let elapsed = match &outcome {
                Ok(presented) => presented.elapsed,
                Err(_) => started.elapsed(),
            };
            let webpki = match (&roots, &outcome) {
                (Some(roots), Ok(presented)) => {
                    let chain: Vec<&[u8]> = presented.chain.iter().map(|c| c.der()).collect();
                    Some(webpki::judge(&chain, &endpoint.host, roots, policy.now))
                }
                _ => None,
            };
            let mut report =
                verdict::judge_address(address, outcome, elapsed, &tlsa_state, &policy);
            report.webpki = webpki;
            (index, report)
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(pair) => reports.push(pair),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let addresses: Vec<AddressReport> = reports.into_iter().map(|(_, r)| r).collect();

    let status = findings
        .iter()
        .map(|f| f.status)
        .chain(addresses.iter().map(|a| a.status))
        .fold(Status::Ok, Status::worst);
    EndpointReport {
        sets: Vec::new(),
        host: endpoint.host.clone(),
        port: endpoint.port,
        protocol: endpoint.protocol,
        owner: owner_text,
        status,
        tlsa: tlsa_report,
        address_lookups: lookups,
        findings,
        addresses,
    }
}

/// The addresses to connect to for an endpoint: the given ones, or its
/// A/AAAA records (sorted, so that output is stable from run to run), with
/// a report of each lookup.
pub(super) async fn resolve_addresses(
    endpoint: &Endpoint,
    host_name: &Name,
    given: Option<&[SocketAddr]>,
    dns: &dyn Dns,
) -> (Vec<SocketAddr>, Vec<LookupReport>) {
    if let Some(addresses) = given {
        return (
            addresses.to_vec(),
            vec![LookupReport {
                rtype: "given".into(),
                dnssec: "not-checked".into(),
                answer: "given".into(),
                addresses: addresses.iter().map(SocketAddr::ip).collect(),
                detail:
                    "addresses given by the caller; the host's A/AAAA records were not looked up"
                        .into(),
            }],
        );
    }
    let (a, aaaa) = tokio::join!(
        dns.lookup(host_name, RecordType::A),
        dns.lookup(host_name, RecordType::AAAA)
    );
    let mut addresses = Vec::new();
    let mut lookups = Vec::new();
    for answer in [a, aaaa] {
        addresses.extend(
            answer
                .addresses()
                .into_iter()
                .map(|ip| SocketAddr::new(ip, endpoint.port)),
        );
        lookups.push(lookup_report(&answer));
    }
    addresses.sort();
    addresses.dedup();
    (addresses, lookups)
}

fn answer_name(kind: Option<AnswerKind>) -> &'static str {
    match kind {
        Some(AnswerKind::Positive) => "positive",
        Some(AnswerKind::NoData) => "nodata",
        Some(AnswerKind::NxDomain) => "nxdomain",
        None => "none",
    }
}

fn tlsa_from_validation(v: &Validation) -> (TlsaState, TlsaReport) {
    let records: Vec<TlsaRecord> = v.tlsa().into_iter().collect();
    let state = match v.verdict {
        Dnssec::Secure if records.is_empty() => TlsaState::Absent,
        Dnssec::Secure => TlsaState::Secure(records.clone()),
        Dnssec::Insecure => TlsaState::Insecure(v.reason.clone()),
        Dnssec::Bogus => TlsaState::Bogus(v.reason.clone()),
        Dnssec::Indeterminate => TlsaState::Indeterminate(v.reason.clone()),
    };
    let report = TlsaReport {
        dnssec: v.verdict.json_name().into(),
        answer: answer_name(v.answer).into(),
        records: records.iter().map(ToString::to_string).collect(),
        ttl: v.rrset.ttl,
        detail: v.reason.clone(),
    };
    (state, report)
}

fn lookup_report(answer: &Answer) -> LookupReport {
    LookupReport {
        rtype: answer.rtype.to_string(),
        dnssec: answer.verdict.json_name().into(),
        answer: answer_name(answer.kind).into(),
        addresses: answer.addresses(),
        detail: answer.reason.clone(),
    }
}

/// Problems with the A/AAAA lookups (RFC 7672 §2.2.2: DANE senders use
/// TLSA only for hosts whose addresses validate).
fn address_findings(endpoint: &Endpoint, lookups: &[LookupReport], given: bool) -> Vec<Finding> {
    if given {
        return Vec::new();
    }
    let host = &endpoint.host;
    let mut findings = Vec::new();
    for l in lookups {
        match l.dnssec.as_str() {
            "bogus" => findings.push(Finding {
                status: Status::Critical,
                message: format!(
                    "the {} records of {host} fail DNSSEC validation, so DANE senders cannot use those addresses: {}",
                    l.rtype, l.detail
                ),
            }),
            "indeterminate" => findings.push(Finding {
                status: Status::Unknown,
                message: format!(
                    "the {} records of {host} could not be looked up, so some addresses may be unchecked: {}",
                    l.rtype, l.detail
                ),
            }),
            "insecure" if !l.addresses.is_empty() => findings.push(Finding {
                status: if endpoint.profile() == crate::tlsa::Profile::Smtp {
                    Status::Critical
                } else {
                    Status::Warning
                },
                message: format!(
                    "the {} records of {host} are not DNSSEC-secure, so DANE senders do not look up its TLSA records: {}",
                    l.rtype, l.detail
                ),
            }),
            _ => {}
        }
    }
    findings
}

fn tlsa_finding(owner: &str, state: &TlsaState) -> Option<Finding> {
    let (status, message) = match state {
        TlsaState::Secure(_) => return None,
        TlsaState::Absent => (Status::Critical, format!("no TLSA records at {owner}")),
        TlsaState::Insecure(why) => (
            Status::Critical,
            format!("TLSA at {owner} not DNSSEC-secure: {why}"),
        ),
        TlsaState::Bogus(why) => (
            Status::Critical,
            format!("TLSA at {owner} fails DNSSEC validation: {why}"),
        ),
        TlsaState::Indeterminate(why) => {
            (Status::Unknown, format!("TLSA at {owner} undecided: {why}"))
        }
    };
    Some(Finding { status, message })
}

/// Checks and normalises a domain for `--mx`.
pub fn normalise_domain(domain: &str) -> Result<String, String> {
    normalise_host(domain).map_err(|e| e.replace("host name", "domain"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Rrset;
    use async_trait::async_trait;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, MX};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    type FakeAnswer = (Dnssec, Option<AnswerKind>, Vec<RData>);

    /// A fixed DNS world: (name, type) → answer; anything else is a secure NODATA.
    #[derive(Default)]
    struct FakeDns {
        answers: HashMap<(String, RecordType), FakeAnswer>,
    }

    impl FakeDns {
        fn with(
            mut self,
            name: &str,
            rtype: RecordType,
            verdict: Dnssec,
            records: Vec<RData>,
        ) -> Self {
            let kind = if records.is_empty() {
                AnswerKind::NoData
            } else {
                AnswerKind::Positive
            };
            self.answers
                .insert((name.to_string(), rtype), (verdict, Some(kind), records));
            self
        }
    }

    #[async_trait]
    impl Dns for FakeDns {
        async fn tlsa(&self, owner: &Name) -> Validation {
            Validation {
                owner: owner.clone(),
                verdict: Dnssec::Secure,
                reason: "fake".into(),
                answer: Some(AnswerKind::NoData),
                rrset: Rrset::empty(owner.clone(), crate::dns::RrType::Tlsa),
                method: "fake".into(),
            }
        }

        async fn lookup(&self, name: &Name, rtype: RecordType) -> Answer {
            let (verdict, kind, records) = self
                .answers
                .get(&(name.to_ascii(), rtype))
                .cloned()
                .unwrap_or((Dnssec::Secure, Some(AnswerKind::NoData), Vec::new()));
            Answer {
                name: name.clone(),
                rtype,
                verdict,
                reason: format!("fake {verdict}"),
                kind,
                records,
            }
        }

        fn method(&self) -> String {
            "fake".into()
        }
    }

    fn mx(pref: u16, host: &str) -> RData {
        RData::MX(MX::new(pref, Name::from_ascii(host).unwrap()))
    }

    async fn run(dns: FakeDns, targets: &[Target]) -> Report {
        check(targets, Arc::new(dns), &CheckOptions::default()).await
    }

    fn mx_target(domain: &str) -> Target {
        Target::Mx {
            domain: domain.into(),
            port: 1,
            protocol: Protocol::Smtp,
        }
    }

    #[tokio::test]
    async fn null_mx_nxdomain_and_bogus_mx() {
        let dns =
            FakeDns::default().with("example.", RecordType::MX, Dnssec::Secure, vec![mx(0, ".")]);
        let report = run(dns, &[mx_target("example")]).await;
        assert_eq!(report.status, Status::Unknown, "{}", report.summary);
        assert!(report.summary.contains("null MX"), "{}", report.summary);
        assert!(report.endpoints.is_empty());

        let mut dns = FakeDns::default();
        dns.answers.insert(
            ("gone.".into(), RecordType::MX),
            (Dnssec::Secure, Some(AnswerKind::NxDomain), Vec::new()),
        );
        let report = run(dns, &[mx_target("gone")]).await;
        assert_eq!(report.status, Status::Critical);
        assert!(
            report.summary.contains("does not exist"),
            "{}",
            report.summary
        );

        let dns = FakeDns::default().with("evil.", RecordType::MX, Dnssec::Bogus, vec![]);
        let report = run(dns, &[mx_target("evil")]).await;
        assert_eq!(report.status, Status::Critical);
        assert!(
            report.summary.contains("fails DNSSEC validation"),
            "{}",
            report.summary
        );
    }

    #[tokio::test]
    async fn implicit_mx_insecure_mx_and_missing_addresses() {
        // No MX: the domain itself is the host (RFC 5321 §5.1); it has no address.
        let report = run(FakeDns::default(), &[mx_target("bare")]).await;
        assert_eq!(report.endpoints[0].host, "bare");
        assert_eq!(report.status, Status::Critical);
        assert!(
            report.summary.contains("no A or AAAA records"),
            "{}",
            report.summary
        );

        // Insecure MX: a WARNING on its own, the host still checked.
        // Port 1 of loopback: nothing listens, connections fail at once.
        let ip = Ipv4Addr::LOCALHOST;
        let dns = FakeDns::default()
            .with(
                "plain.",
                RecordType::MX,
                Dnssec::Insecure,
                vec![mx(10, "mx.plain."), mx(20, "mx.plain.")],
            )
            .with(
                "mx.plain.",
                RecordType::A,
                Dnssec::Secure,
                vec![RData::A(A(ip))],
            );
        let report = run(dns, &[mx_target("plain")]).await;
        assert_eq!(report.endpoints.len(), 1, "duplicate MX hosts checked once");
        assert!(report.findings.iter().any(|f| f.status == Status::Warning));
        // Port 1 on loopback is closed: unreachable, and the no-TLSA state is not hidden.
        assert_eq!(
            report.endpoints[0].addresses[0].verdict.name(),
            "unreachable"
        );
        assert_eq!(report.status, Status::Critical);
        assert_eq!(report.exit_code, 2);
    }

    #[tokio::test]
    async fn insecure_or_bogus_addresses_are_findings() {
        // Port 1 of loopback: nothing listens, connections fail at once.
        let ip = Ipv4Addr::LOCALHOST;
        let dns = FakeDns::default()
            .with(
                "a.example.",
                RecordType::A,
                Dnssec::Insecure,
                vec![RData::A(A(ip))],
            )
            .with("a.example.", RecordType::AAAA, Dnssec::Bogus, vec![]);
        let endpoint = Endpoint::new("a.example", 1, Some(Protocol::Smtp)).unwrap();
        let report = run(
            dns,
            &[Target::Endpoint {
                endpoint,
                addresses: None,
            }],
        )
        .await;
        let findings = &report.endpoints[0].findings;
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("not DNSSEC-secure")),
            "{findings:?}"
        );
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("fail DNSSEC validation")),
            "{findings:?}"
        );
        assert!(!report.endpoints[0].verified());
    }
}
