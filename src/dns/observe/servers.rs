//! The authoritative servers of one zone, asked directly: [`ZoneServers`]
//! finds the NS set and every address of each NS name (plus configured
//! extra servers) and [`Observe`]s them — each address asked (RD=0, DO=1,
//! concurrently) for the SOA and the RRsets, its answers judged into
//! [`ServerObservation`]s. What the observations mean (propagated or
//! lagging) is [`super::propagation`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::task::JoinSet;

use super::propagation::*;
use super::ttl::TtlFacts;
use crate::dns::DnsError;
use crate::dns::query::{self, Ask};
use crate::dns::rdata;
use crate::dns::rrset::{Rrset, RrsetId};

#[async_trait]
impl FindServers for Discovery {
    async fn find(&self) -> Result<Box<dyn Observe>, DnsError> {
        Ok(Box::new(ZoneServers::discover(self).await?))
    }
}

/// A zone's authoritative addresses, found once.
#[derive(Debug, Clone)]
pub struct ZoneServers {
    pub zone: Name,
    /// The NS set as read (empty when built with [`ZoneServers::fixed`]).
    pub ns_names: Vec<Name>,
    /// Every address to ask, NS-derived first, without duplicates.
    pub servers: Vec<ServerAddr>,
    pub unresolved: Vec<Unresolved>,
    /// The timeout of one question (the upper bound in [`Observe::observe`]).
    pub timeout: Duration,
}

impl ZoneServers {
    /// Reads the NS set of the zone and the A and AAAA records of each NS
    /// name through `discovery.lookup`. Fails only when the NS set itself
    /// cannot be read; an NS name without an address is kept in
    /// [`Self::unresolved`].
    pub async fn discover(discovery: &Discovery) -> Result<ZoneServers, DnsError> {
        let (lookup_addr, ask) = match discovery.lookup {
            Lookup::Resolver(addr) => (addr, Ask::recursive()),
            Lookup::Authoritative(addr) => (addr, Ask::authoritative()),
        };
        let ask = Ask {
            timeout: discovery.timeout,
            ..ask
        };
        let zone = &discovery.zone;
        let question = format!("{zone} NS");
        let response = query::ask(lookup_addr, zone, RecordType::NS, ask).await?;
        check_lookup_answer(lookup_addr, &question, &response, discovery.lookup)?;
        let mut ns_names: Vec<Name> = Vec::new();
        for record in &response.answers {
            if let RData::NS(ns) = &record.data
                && record.name == *zone
                && !ns_names.contains(&ns.0)
            {
                ns_names.push(ns.0.clone());
            }
        }
        // Canonical order, whatever order the answer had: reports and the
        // list of addresses read the same on every run.
        ns_names.sort();
        if ns_names.is_empty() {
            return Err(DnsError::Malformed {
                server: lookup_addr,
                question,
                why: format!("no NS records for {zone}: is it a zone?"),
            });
        }

        let mut tasks = JoinSet::new();
        for (index, name) in ns_names.iter().enumerate() {
            for rtype in [RecordType::A, RecordType::AAAA] {
                let name = name.clone();
                tasks.spawn(async move {
                    let result = query::ask(lookup_addr, &name, rtype, ask).await;
                    (index, rtype, result)
                });
            }
        }
        let mut addresses: Vec<Vec<IpAddr>> = vec![Vec::new(); ns_names.len()];
        let mut failures: Vec<Vec<String>> = vec![Vec::new(); ns_names.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, rtype, result) = joined.expect("address lookup task");
            let name = &ns_names[index];
            match result.and_then(|r| {
                let q = format!("{name} {rtype}");
                check_lookup_answer(lookup_addr, &q, &r, discovery.lookup).map(|()| r)
            }) {
                Ok(response) => addresses[index].extend(addresses_of(name, &response)),
                Err(e) => failures[index].push(e.to_string()),
            }
        }

        let mut servers: Vec<ServerAddr> = Vec::new();
        let mut unresolved = Vec::new();
        for (index, name) in ns_names.iter().enumerate() {
            let ips = &mut addresses[index];
            ips.sort();
            ips.dedup();
            if ips.is_empty() {
                let why = if failures[index].is_empty() {
                    format!("no A or AAAA record (asked {})", discovery.lookup)
                } else {
                    failures[index].join("; ")
                };
                unresolved.push(Unresolved {
                    name: name.clone(),
                    why,
                });
            }
            for ip in ips.iter() {
                let addr = SocketAddr::new(*ip, discovery.port);
                if !servers.iter().any(|s| s.addr == addr) {
                    servers.push(ServerAddr {
                        origin: Origin::Ns(name.clone()),
                        addr,
                    });
                }
            }
        }
        for addr in &discovery.extra {
            if !servers.iter().any(|s| s.addr == *addr) {
                servers.push(ServerAddr {
                    origin: Origin::Extra,
                    addr: *addr,
                });
            }
        }
        Ok(ZoneServers {
            zone: zone.clone(),
            ns_names,
            servers,
            unresolved,
            timeout: discovery.timeout,
        })
    }

    /// A fixed list of addresses, no NS lookup (all labelled "extra").
    pub fn fixed(
        zone: Name,
        addrs: impl IntoIterator<Item = SocketAddr>,
        timeout: Duration,
    ) -> Self {
        let mut servers: Vec<ServerAddr> = Vec::new();
        for addr in addrs {
            if !servers.iter().any(|s| s.addr == addr) {
                servers.push(ServerAddr {
                    origin: Origin::Extra,
                    addr,
                });
            }
        }
        ZoneServers {
            zone,
            ns_names: Vec::new(),
            servers,
            unresolved: Vec::new(),
            timeout,
        }
    }

    /// One round with the configured timeout.
    pub async fn observe_now(&self, rrsets: &[RrsetId]) -> Observation {
        self.observe(rrsets, self.timeout).await
    }
}

#[async_trait]
impl Observe for ZoneServers {
    async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation {
        let timeout = timeout.min(self.timeout);
        let mut tasks = JoinSet::new();
        for (index, server) in self.servers.iter().enumerate() {
            let (zone, rrsets, server) = (self.zone.clone(), rrsets.to_vec(), server.clone());
            tasks.spawn(async move {
                let result = observe_server(&zone, &rrsets, server.addr, timeout).await;
                (index, ServerObservation { server, result })
            });
        }
        let mut results: Vec<Option<ServerObservation>> = vec![None; self.servers.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, observation) = joined.expect("observation task");
            results[index] = Some(observation);
        }
        Observation {
            zone: self.zone.clone(),
            servers: results.into_iter().flatten().collect(),
            unresolved: self.unresolved.clone(),
        }
    }
}

/// The NS/A/AAAA answers discovery relies on must be usable answers.
fn check_lookup_answer(
    server: SocketAddr,
    question: &str,
    response: &DnsResponse,
    lookup: Lookup,
) -> Result<(), DnsError> {
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(()),
        rcode => Err(DnsError::Rcode {
            server,
            question: question.to_string(),
            rcode: rcode_name(rcode),
            hint: match lookup {
                Lookup::Authoritative(_) => String::new(),
                Lookup::Resolver(_) => {
                    ": check the resolver and that it may be queried from here".to_string()
                }
            },
        }),
    }
}

/// A and AAAA of `name` in an answer; glue from the additional section when
/// the answer is a referral (an NS name below a delegation, asked directly).
fn addresses_of(name: &Name, response: &DnsResponse) -> Vec<IpAddr> {
    let from = |records: &[hickory_proto::rr::Record], only_name: bool| -> Vec<IpAddr> {
        records
            .iter()
            .filter(|r| !only_name || r.name == *name)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect()
    };
    // A resolver's answer may go through a CNAME chain (not allowed for NS
    // names, RFC 2181 §10.3, but harmless to follow): any address in it.
    let answers = from(&response.answers, false);
    if !answers.is_empty() || response.authoritative {
        return answers;
    }
    from(&response.additionals, true)
}

/// The SOA and the RRsets `rrsets` at one address (questions sent
/// concurrently).
async fn observe_server(
    zone: &Name,
    rrsets: &[RrsetId],
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Served, ServerError> {
    let ask = Ask {
        timeout,
        ..Ask::authoritative()
    };
    let mut tasks = JoinSet::new();
    let questions: Vec<(Name, RecordType)> = std::iter::once((zone.clone(), RecordType::SOA))
        .chain(
            rrsets
                .iter()
                .map(|id| (id.owner.clone(), id.rtype.record_type())),
        )
        .collect();
    for (index, (name, rtype)) in questions.iter().cloned().enumerate() {
        tasks.spawn(async move { (index, query::ask(addr, &name, rtype, ask).await) });
    }
    let mut answers: Vec<Option<Result<DnsResponse, DnsError>>> = std::iter::repeat_with(|| None)
        .take(questions.len())
        .collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.expect("query task");
        answers[index] = Some(result);
    }
    let mut answers = answers
        .into_iter()
        .map(|a| a.expect("every question answered"));

    let soa_question = format!("{zone} SOA");
    let soa = parse_soa(
        zone,
        &soa_question,
        answers.next().expect("SOA answer"),
        timeout,
    )?;
    let mut served_rrsets = BTreeMap::new();
    for (id, answer) in rrsets.iter().zip(answers) {
        let mut served = parse_rrset(id, answer, timeout)?;
        served.ttl.soa_ttl = Some(soa.ttl);
        served.ttl.soa_minimum = Some(soa.minimum);
        served_rrsets.insert(id.clone(), served);
    }
    Ok(Served {
        soa,
        rrsets: served_rrsets,
    })
}

fn usable(
    question: &str,
    answer: Result<DnsResponse, DnsError>,
    timeout: Duration,
) -> Result<DnsResponse, ServerError> {
    let response = answer.map_err(|e| match e {
        DnsError::Timeout { .. } => ServerError::Timeout {
            question: question.to_string(),
            timeout,
        },
        DnsError::Network { why, .. } => ServerError::Unreachable { why },
        other => ServerError::Malformed {
            question: question.to_string(),
            why: other.to_string(),
        },
    })?;
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        rcode => {
            return Err(ServerError::Rcode {
                question: question.to_string(),
                rcode: rcode_name(rcode),
            });
        }
    }
    if !response.authoritative {
        return Err(ServerError::NotAuthoritative {
            question: question.to_string(),
        });
    }
    Ok(response)
}

fn parse_soa(
    zone: &Name,
    question: &str,
    answer: Result<DnsResponse, DnsError>,
    timeout: Duration,
) -> Result<Soa, ServerError> {
    let response = usable(question, answer, timeout)?;
    response
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if r.name == *zone => Some(Soa {
                serial: soa.serial,
                ttl: r.ttl,
                minimum: soa.minimum,
            }),
            _ => None,
        })
        .ok_or_else(|| ServerError::Malformed {
            question: question.to_string(),
            why: format!(
                "{} without the SOA of {zone}",
                rcode_name(response.response_code)
            ),
        })
}

fn parse_rrset(
    id: &RrsetId,
    answer: Result<DnsResponse, DnsError>,
    timeout: Duration,
) -> Result<ServedRrset, ServerError> {
    let (owner, question) = (&id.owner, id.to_string());
    let response = usable(&question, answer, timeout)?;
    let mut records = BTreeSet::new();
    let mut ttl: Option<u32> = None;
    let mut rrsig_original_ttl: Option<u32> = None;
    for record in response.answers.iter().filter(|r| r.name == *owner) {
        if let Some(data) = rdata::from_hickory(id.rtype, &record.data) {
            records.insert(data);
            ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
            continue;
        }
        match &record.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig))
                if sig.input().type_covered == id.rtype.record_type() =>
            {
                let original = sig.input().original_ttl;
                rrsig_original_ttl = Some(rrsig_original_ttl.map_or(original, |t| t.max(original)));
            }
            RData::CNAME(target) => {
                return Err(ServerError::Malformed {
                    question: question.to_string(),
                    why: format!(
                        "{owner} is an alias (CNAME to {}); manage the {} RRset at the target",
                        target.0, id.rtype
                    ),
                });
            }
            _ => {}
        }
    }
    let answer = if !records.is_empty() {
        AnswerKind::Positive
    } else if response.response_code == ResponseCode::NXDomain {
        AnswerKind::NxDomain
    } else {
        AnswerKind::NoData
    };
    Ok(ServedRrset {
        rrset: Rrset {
            owner: owner.clone(),
            rtype: id.rtype,
            ttl,
            records,
        },
        answer,
        ttl: TtlFacts {
            rrset_ttl: ttl,
            rrsig_original_ttl,
            soa_ttl: None,
            soa_minimum: None,
        },
    })
}
