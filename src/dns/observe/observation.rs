//! The vocabulary of observing a zone's servers: where the addresses come
//! from ([`Discovery`], [`Origin`]), what one address served
//! ([`ServerObservation`]: the SOA serial and each RRset with its TTL facts,
//! or what went wrong), one round over every address ([`Observation`],
//! through [`Observe`]), and what a change expects of it ([`Expected`],
//! [`Want`]) with the judgement of each server that lags ([`Lag`]). The
//! waiting is [`super::propagation`]'s; the asking, [`super::servers`]'.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::rr::Name;

use super::ttl::TtlFacts;
use crate::dns::query::{self, AnswerKind, seconds};
use crate::dns::rrset::{Rdata, Rrset, RrsetId, rdata_of};
use crate::tlsa::TlsaRecord;

/// The port of NS-derived addresses unless configured otherwise.
pub const DNS_PORT: u16 = 53;

/// Where the NS set and the addresses of the NS names are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A recursive resolver (RD=1). Resolves every NS name, in the zone or not.
    Resolver(SocketAddr),
    /// A server authoritative for the zone (e.g. its primary), asked directly
    /// (RD=0). NS names inside the zone are answered (or found as glue below
    /// a delegation); names outside it usually are not, and are then
    /// reported as unresolved.
    Authoritative(SocketAddr),
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Resolver(addr) => write!(f, "resolver {addr}"),
            Lookup::Authoritative(addr) => write!(f, "authoritative server {addr}"),
        }
    }
}

/// How to find a zone's servers.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub zone: Name,
    pub lookup: Lookup,
    /// The port queried on every NS-derived address (default 53).
    pub port: u16,
    /// Servers asked besides the NS set, e.g. a hidden primary.
    pub extra: Vec<SocketAddr>,
    /// How long one question to one server may take.
    pub timeout: Duration,
}

impl Discovery {
    pub fn new(zone: Name, lookup: Lookup) -> Self {
        Discovery {
            zone,
            lookup,
            port: DNS_PORT,
            extra: Vec::new(),
            timeout: query::DEFAULT_TIMEOUT,
        }
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn extra(mut self, extra: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.extra.extend(extra);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why an address is asked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// An address of this NS name.
    Ns(Name),
    /// A configured extra server (e.g. a hidden primary).
    Extra,
}

/// One address to ask, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    pub origin: Origin,
    pub addr: SocketAddr,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Ns(name) => write!(f, "{name} ({})", self.addr),
            Origin::Extra => write!(f, "extra server {}", self.addr),
        }
    }
}

/// An NS name for which no address was found: nothing it serves can be
/// confirmed, so propagation cannot complete while one is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub name: Name,
    pub why: String,
}

/// What went wrong asking one address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("no answer to {question} within {}", seconds(*.timeout))]
    Timeout { question: String, timeout: Duration },
    #[error("unreachable ({why})")]
    Unreachable { why: String },
    #[error("answered {rcode} to {question}")]
    Rcode { question: String, rcode: String },
    #[error(
        "not authoritative: answered {question} without the AA bit (a lame delegation, or not a server of the zone)"
    )]
    NotAuthoritative { question: String },
    #[error("unexpected answer to {question}: {why}")]
    Malformed { question: String, why: String },
}

/// One RRset as one server serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRrset {
    /// Records and TTL (`ttl: None` and no records when absent).
    pub rrset: Rrset,
    pub answer: AnswerKind,
    /// Caching facts for the roll engine ([`super::ttl`]); the SOA values
    /// come from the same round's SOA answer.
    pub ttl: TtlFacts,
}

#[cfg(test)]
impl ServedRrset {
    /// `rrset` as a signed zone serves it to the fakes of unit tests: records (or NODATA),
    /// signatures with the RRset's TTL, `negative_ttl` as SOA TTL and minimum.
    pub(crate) fn signed(rrset: Rrset, negative_ttl: u32) -> Self {
        ServedRrset {
            answer: if rrset.records.is_empty() {
                AnswerKind::NoData
            } else {
                AnswerKind::Positive
            },
            ttl: TtlFacts {
                rrset_ttl: rrset.ttl,
                rrsig_original_ttl: rrset.ttl,
                soa_ttl: Some(negative_ttl),
                soa_minimum: Some(negative_ttl),
            },
            rrset,
        }
    }
}

/// The zone's SOA as one server serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soa {
    pub serial: u32,
    pub ttl: u32,
    pub minimum: u32,
}

/// What one address serves, answered authoritatively (AA) throughout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub soa: Soa,
    pub rrsets: BTreeMap<RrsetId, ServedRrset>,
}

impl Served {
    pub fn serial(&self) -> u32 {
        self.soa.serial
    }

    /// The records served in RRset `id` (empty when absent or not asked).
    pub fn records(&self, id: &RrsetId) -> BTreeSet<Rdata> {
        self.rrsets
            .get(id)
            .map(|r| r.rrset.records.clone())
            .unwrap_or_default()
    }

    /// The TLSA records served at `owner`.
    pub fn tlsa(&self, owner: &Name) -> BTreeSet<TlsaRecord> {
        self.rrsets
            .get(&RrsetId::tlsa(owner.clone()))
            .map(|r| r.rrset.tlsa())
            .unwrap_or_default()
    }
}

/// One address, one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerObservation {
    pub server: ServerAddr,
    pub result: Result<Served, ServerError>,
}

/// One round over every address of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub zone: Name,
    pub servers: Vec<ServerObservation>,
    /// NS names without an address (see [`Unresolved`]).
    pub unresolved: Vec<Unresolved>,
}

/// What the zone's servers must serve for a change to count as propagated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// What each RRset must hold.
    pub rrsets: BTreeMap<RrsetId, Want>,
    /// The serial that includes the change, when known (compared with RFC
    /// 1982 serial arithmetic).
    pub min_serial: Option<u32>,
}

/// What one RRset must hold on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Exactly these records; an empty set means "no RRset". For an RRset
    /// tlsa owns whole (`tlsa publish`).
    Exactly(BTreeSet<Rdata>),
    /// At least `present` and none of `absent`, whatever else is there: the
    /// records tlsa wrote are confirmed, not the absence of other writers.
    /// Another writer at the same owner (another set, another tlsa host, an
    /// operator) may change the RRset while the wait runs; requiring the
    /// exact content read before would wait for an RRset no server will ever
    /// serve again.
    Holds {
        present: BTreeSet<Rdata>,
        absent: BTreeSet<Rdata>,
    },
}

impl Want {
    pub fn is_met_by(&self, served: &BTreeSet<Rdata>) -> bool {
        match self {
            Want::Exactly(records) => served == records,
            Want::Holds { present, absent } => {
                present.is_subset(served) && absent.is_disjoint(served)
            }
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Exactly(records) => f.write_str(&describe_records(records)),
            Want::Holds { present, absent } if present.is_empty() && absent.is_empty() => {
                f.write_str("any content")
            }
            Want::Holds { present, absent } if absent.is_empty() => {
                write!(f, "{} among others", describe_records(present))
            }
            Want::Holds { present, absent } if present.is_empty() => {
                write!(f, "none of {}", describe_records(absent))
            }
            Want::Holds { present, absent } => write!(
                f,
                "{} among others and none of {}",
                describe_records(present),
                describe_records(absent)
            ),
        }
    }
}

impl Expected {
    pub fn ids(&self) -> Vec<RrsetId> {
        self.rrsets.keys().cloned().collect()
    }

    /// Exactly `records` in each RRset.
    pub fn exactly(
        rrsets: impl IntoIterator<Item = (RrsetId, BTreeSet<Rdata>)>,
        min_serial: Option<u32>,
    ) -> Expected {
        Expected {
            rrsets: rrsets
                .into_iter()
                .map(|(id, records)| (id, Want::Exactly(records)))
                .collect(),
            min_serial,
        }
    }

    /// Exactly `records` in the TLSA RRset of each owner.
    pub fn tlsa(
        rrsets: impl IntoIterator<Item = (Name, BTreeSet<TlsaRecord>)>,
        min_serial: Option<u32>,
    ) -> Expected {
        Expected::exactly(
            rrsets
                .into_iter()
                .map(|(owner, records)| (RrsetId::tlsa(owner), rdata_of(records))),
            min_serial,
        )
    }
}

/// Why one address does not (yet) count as serving the expected data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// `None` for an NS name without an address.
    pub server: Option<ServerAddr>,
    pub what: String,
}

impl fmt::Display for Lag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(server) => write!(f, "{server}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl Observation {
    /// Every reason the observation falls short of `expected`; empty when
    /// every address serves exactly the expected RRsets with a serial at
    /// least `expected.min_serial`.
    pub fn lags(&self, expected: &Expected) -> Vec<Lag> {
        let mut lags: Vec<Lag> = self
            .unresolved
            .iter()
            .map(|u| Lag {
                server: None,
                what: format!("NS {} has no address ({})", u.name, u.why),
            })
            .collect();
        if self.servers.is_empty() {
            lags.push(Lag {
                server: None,
                what: format!("no server address known for zone {}", self.zone),
            });
        }
        for server in &self.servers {
            if let Some(what) = server_lag(server, expected) {
                lags.push(Lag {
                    server: Some(server.server.clone()),
                    what,
                });
            }
        }
        lags
    }

    pub fn is_complete(&self, expected: &Expected) -> bool {
        self.lags(expected).is_empty()
    }

    /// The observation of `addr`, if it was asked.
    pub fn server(&self, addr: SocketAddr) -> Option<&ServerObservation> {
        self.servers.iter().find(|s| s.server.addr == addr)
    }
}

impl fmt::Display for Observation {
    /// One line per address: what it serves, or its error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "zone {}:", self.zone)?;
        for server in &self.servers {
            match &server.result {
                Ok(served) => writeln!(f, "  {}: {}", server.server, describe_served(served))?,
                Err(e) => writeln!(f, "  {}: {e}", server.server)?,
            }
        }
        for u in &self.unresolved {
            writeln!(f, "  NS {}: no address ({})", u.name, u.why)?;
        }
        Ok(())
    }
}

fn server_lag(server: &ServerObservation, expected: &Expected) -> Option<String> {
    let served = match &server.result {
        Ok(served) => served,
        Err(e) => return Some(e.to_string()),
    };
    let mut lagging = false;
    let mut text = format!("serves serial {}", served.soa.serial);
    if let Some(min) = expected.min_serial
        && !serial_at_least(served.soa.serial, min)
    {
        lagging = true;
        text.push_str(&format!(" (expected {min} or later)"));
    }
    for (id, want) in &expected.rrsets {
        text.push_str(&format!(", {id} {}", describe_rrset(served.rrsets.get(id))));
        if !want.is_met_by(&served.records(id)) {
            lagging = true;
            text.push_str(&format!(" (expected {want})"));
        }
    }
    lagging.then_some(text)
}

/// `serial 7, _25._tcp.mail.example. [3 1 1 ab…] TTL 300`.
fn describe_served(served: &Served) -> String {
    let mut text = format!("serial {}", served.soa.serial);
    for (id, rrset) in &served.rrsets {
        text.push_str(&format!(", {id} {}", describe_rrset(Some(rrset))));
    }
    text
}

fn describe_rrset(rrset: Option<&ServedRrset>) -> String {
    match rrset {
        None => "not asked".to_string(),
        Some(r) if r.answer != AnswerKind::Positive => format!("absent ({})", r.answer),
        Some(r) => match r.rrset.ttl {
            Some(ttl) => format!("{} TTL {ttl}", describe_records(&r.rrset.records)),
            None => describe_records(&r.rrset.records),
        },
    }
}

fn describe_records(records: &BTreeSet<Rdata>) -> String {
    if records.is_empty() {
        return "absent".to_string();
    }
    let list: Vec<String> = records.iter().map(ToString::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// The TTL facts of RRset `id` on every server of an observation that
/// answered, in the observation's order.
pub fn ttl_per_server(observation: &Observation, id: &RrsetId) -> Vec<(ServerAddr, TtlFacts)> {
    observation
        .servers
        .iter()
        .filter_map(|server| {
            let served = server.result.as_ref().ok()?;
            let rrset = served.rrsets.get(id)?;
            Some((server.server.clone(), rrset.ttl))
        })
        .collect()
}

/// The worst case over every server that answered: what the roll engine
/// feeds to [`super::ttl::t_safe`]. `None` when no server answered for `id`.
pub fn worst_ttl(observation: &Observation, id: &RrsetId) -> Option<TtlFacts> {
    ttl_per_server(observation, id)
        .into_iter()
        .map(|(_, facts)| facts)
        .reduce(TtlFacts::longest)
}

/// [`worst_ttl`] for every RRset of the observation.
pub fn worst_ttl_by_rrset(observation: &Observation) -> BTreeMap<RrsetId, TtlFacts> {
    let mut all: BTreeMap<RrsetId, TtlFacts> = BTreeMap::new();
    for served in observation
        .servers
        .iter()
        .filter_map(|s| s.result.as_ref().ok())
    {
        for (id, rrset) in &served.rrsets {
            all.entry(id.clone())
                .and_modify(|facts| *facts = facts.longest(rrset.ttl))
                .or_insert(rrset.ttl);
        }
    }
    all
}

/// One line per server for reports: `ns1.example. (192.0.2.1:53): RRset TTL 300 s, …`.
pub fn describe_ttl_per_server(facts: &[(ServerAddr, TtlFacts)]) -> String {
    facts
        .iter()
        .map(|(server, facts)| format!("{server}: {facts}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `served >= min` in RFC 1982 serial number arithmetic (serials wrap).
pub fn serial_at_least(served: u32, min: u32) -> bool {
    served.wrapping_sub(min) < (1 << 31)
}

/// One round of questions to every address. The seam between the polling
/// logic and the network: tests drive [`super::propagation::wait_until_propagated`] with a fake.
#[async_trait]
pub trait Observe: Send + Sync {
    /// Asks every address once (concurrently) for the SOA and the TLSA RRset
    /// of each of `owners`; no question may take longer than `timeout`.
    async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation;
}
