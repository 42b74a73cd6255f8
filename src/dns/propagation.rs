//! What every authoritative server of a zone serves, address by address,
//! and whether that is what a change expects.
//!
//! [`ZoneServers::discover`] (in [`super::servers`]) finds the zone's NS set
//! and every IPv4 and IPv6 address of each NS name (plus configured extra
//! servers such as a hidden primary), and [`Observe`]s: each address asked
//! directly (RD=0, DO=1, concurrently) for the zone's SOA and the RRsets,
//! reported per address as the serial, the RRsets with their TTL facts, or
//! what went wrong. This module holds that vocabulary, the judgement of an
//! [`Observation`] against what is [`Expected`], and the wait:
//! [`wait_until_propagated`] polls until every
//! address serves exactly the expected RRsets — the `t_propagated` of
//! docs/design.md §1 — or fails naming each server that lags and what it serves.
//!
//! The NS set is read once per [`ZoneServers`]: a wait does not follow NS
//! changes made while it runs.

pub use super::query::AnswerKind;
pub(crate) use super::query::{rcode_name, seconds};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hickory_proto::rr::Name;

use super::DnsError;
use super::query;
use super::rrset::{Rdata, Rrset, RrsetId, rdata_of};
pub use super::servers::ZoneServers;
use super::ttl::TtlFacts;
use crate::clock::Clock;
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
/// logic and the network: tests drive [`wait_until_propagated`] with a fake.
#[async_trait]
pub trait Observe: Send + Sync {
    /// Asks every address once (concurrently) for the SOA and the TLSA RRset
    /// of each of `owners`; no question may take longer than `timeout`.
    async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation;
}

/// Finds the addresses a propagation check must ask (the zone's NS set and
/// extra servers): looked up afresh for every wait. The seam tests replace.
#[async_trait]
pub trait FindServers: Send + Sync {
    async fn find(&self) -> Result<Box<dyn Observe>, DnsError>;
}

/// The polling schedule of [`wait_until_propagated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    /// Each pause is the previous one times this (in tenths: 15 = ×1.5).
    pub factor_tenths: u32,
    pub cap: Duration,
    /// The least time a round's questions get, even just before the
    /// deadline (a round may thus end up to this much after it).
    pub min_question_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            factor_tenths: 15,
            cap: Duration::from_secs(2),
            min_question_timeout: Duration::from_millis(250),
        }
    }
}

impl Backoff {
    fn next(&self, pause: Duration) -> Duration {
        (pause * self.factor_tenths / 10).min(self.cap)
    }
}

/// Propagation confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagated {
    /// When the complete round ended (by the clock of the wait): `t_propagated`.
    /// The round's end, not its start, is the conservative choice: every
    /// server had switched by then.
    pub at: SystemTime,
    /// That round, with every address's RRsets and TTL facts.
    pub observation: Observation,
    pub rounds: u32,
}

/// The deadline passed with some addresses lagging.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the change in zone {zone} did not reach every authoritative server within {waited}: {} of {} addresses lag after {rounds} rounds:\n  {}",
    lags.len(),
    last.servers.len(),
    lags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "),
    waited = seconds(*waited)
)]
pub struct NotPropagated {
    pub zone: Name,
    pub waited: Duration,
    pub rounds: u32,
    pub lags: Vec<Lag>,
    /// The last round.
    pub last: Observation,
}

/// Polls `observer` until every address serves exactly `expected` (with a
/// serial ≥ `expected.min_serial`), or `deadline` passes. Starts at once,
/// then pauses 100 ms, ×1.5 each time up to 2 s ([`Backoff::default`]),
/// never pausing past the deadline; a last round runs at the deadline.
pub async fn wait_until_propagated(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
) -> Result<Propagated, NotPropagated> {
    wait_reporting(observer, clock, expected, deadline, &|_| {}).await
}

/// [`wait_until_propagated`] that tells `on_lags` which addresses lag, and
/// why, when it starts waiting and each time that changes: an operator
/// watching a wait sees which server it waits on.
pub async fn wait_reporting(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
    on_lags: &(dyn Fn(&[Lag]) + Send + Sync),
) -> Result<Propagated, NotPropagated> {
    wait_with_backoff(
        observer,
        clock,
        expected,
        deadline,
        Backoff::default(),
        on_lags,
    )
    .await
}

/// How long a wait goes on before it says which servers it waits for.
pub const REPORT_AFTER: Duration = Duration::from_secs(1);

fn lagging_servers(lags: &[Lag]) -> Vec<Option<SocketAddr>> {
    lags.iter()
        .map(|lag| lag.server.as_ref().map(|s| s.addr))
        .collect()
}

/// [`wait_reporting`] with an explicit schedule.
pub async fn wait_with_backoff(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
    backoff: Backoff,
    on_lags: &(dyn Fn(&[Lag]) + Send + Sync),
) -> Result<Propagated, NotPropagated> {
    let mut reported: Vec<Lag> = Vec::new();
    let owners = expected.ids();
    let started = clock.now();
    let mut pause = backoff.first;
    let mut rounds = 0;
    loop {
        let remaining = deadline
            .duration_since(clock.now())
            .unwrap_or(Duration::ZERO);
        let observation = observer
            .observe(&owners, remaining.max(backoff.min_question_timeout))
            .await;
        rounds += 1;
        let now = clock.now();
        let lags = observation.lags(expected);
        if lags.is_empty() {
            return Ok(Propagated {
                at: now,
                observation,
                rounds,
            });
        }
        // Most waits end within a round or two: say nothing until one has
        // lasted a moment, then speak when the set of lagging servers changes
        // (not when only a detail of its text does).
        let lasted = now.duration_since(started).unwrap_or(Duration::ZERO) >= REPORT_AFTER;
        if lasted && lagging_servers(&lags) != lagging_servers(&reported) {
            on_lags(&lags);
            reported.clone_from(&lags);
        }
        let remaining = deadline.duration_since(now).unwrap_or(Duration::ZERO);
        if remaining.is_zero() {
            return Err(NotPropagated {
                zone: observation.zone.clone(),
                waited: now.duration_since(started).unwrap_or(Duration::ZERO),
                rounds,
                lags,
                last: observation,
            });
        }
        clock.sleep(pause.min(remaining)).await;
        pause = backoff.next(pause);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::ManualClock;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(byte: u8) -> TlsaRecord {
        TlsaRecord {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![byte; 32],
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, last), 53))
    }

    const OWNER: &str = "_25._tcp.mail.example.";

    fn served(serial: u32, records: &[TlsaRecord]) -> Result<Served, ServerError> {
        let owner = name(OWNER);
        let records: BTreeSet<_> = rdata_of(records.iter().cloned());
        let ttl = (!records.is_empty()).then_some(300);
        let mut rrsets = BTreeMap::new();
        rrsets.insert(
            RrsetId::tlsa(owner.clone()),
            ServedRrset {
                answer: if records.is_empty() {
                    AnswerKind::NxDomain
                } else {
                    AnswerKind::Positive
                },
                rrset: Rrset {
                    owner,
                    rtype: crate::dns::RrType::Tlsa,
                    ttl,
                    records,
                },
                ttl: TtlFacts {
                    rrset_ttl: ttl,
                    rrsig_original_ttl: ttl,
                    soa_ttl: Some(3600),
                    soa_minimum: Some(60),
                },
            },
        );
        Ok(Served {
            soa: Soa {
                serial,
                ttl: 3600,
                minimum: 60,
            },
            rrsets,
        })
    }

    fn observation(servers: Vec<(u8, Result<Served, ServerError>)>) -> Observation {
        Observation {
            zone: name("example."),
            servers: servers
                .into_iter()
                .map(|(last, result)| ServerObservation {
                    server: ServerAddr {
                        origin: if last == 9 {
                            Origin::Extra
                        } else {
                            Origin::Ns(name(&format!("ns{last}.example.")))
                        },
                        addr: addr(last),
                    },
                    result,
                })
                .collect(),
            unresolved: Vec::new(),
        }
    }

    fn expected(records: &[TlsaRecord], min_serial: Option<u32>) -> Expected {
        Expected::tlsa(
            [(name(OWNER), records.iter().cloned().collect())],
            min_serial,
        )
    }

    /// Replays scripted rounds (the last one repeats); each round "takes" 10 ms.
    struct Script<'a> {
        clock: &'a ManualClock,
        rounds: Mutex<Vec<Observation>>,
        timeouts: Mutex<Vec<Duration>>,
    }

    impl<'a> Script<'a> {
        fn new(clock: &'a ManualClock, rounds: Vec<Observation>) -> Self {
            Script {
                clock,
                rounds: Mutex::new(rounds),
                timeouts: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Observe for Script<'_> {
        async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation {
            assert_eq!(rrsets, &[RrsetId::tlsa(name(OWNER))]);
            self.timeouts.lock().unwrap().push(timeout);
            self.clock.advance(Duration::from_millis(10));
            let mut rounds = self.rounds.lock().unwrap();
            if rounds.len() > 1 {
                rounds.remove(0)
            } else {
                rounds[0].clone()
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn completes_when_every_address_serves_the_expected_rrset() {
        let clock = ManualClock::default();
        let start = clock.now();
        let new = [rec(2)];
        let lagging = observation(vec![(1, served(7, &new)), (2, served(6, &[rec(1)]))]);
        let done = observation(vec![(1, served(7, &new)), (2, served(7, &new))]);
        let script = Script::new(&clock, vec![lagging.clone(), lagging, done.clone()]);
        let result = wait_until_propagated(
            &script,
            &clock,
            &expected(&new, Some(7)),
            start + Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(result.rounds, 3);
        assert_eq!(result.observation, done);
        // Rounds of 10 ms, pauses 100 ms then 150 ms: seen complete at the end of round 3.
        assert_eq!(result.at, start + ms(10 + 100 + 10 + 150 + 10));
        assert_eq!(clock.sleeps(), vec![ms(100), ms(150)]);
    }

    #[tokio::test]
    async fn backs_off_by_half_up_to_two_seconds_and_never_sleeps_past_the_deadline() {
        let clock = ManualClock::default();
        let start = clock.now();
        let lagging = observation(vec![(1, served(6, &[rec(1)]))]);
        let script = Script::new(&clock, vec![lagging]);
        let deadline = start + Duration::from_secs(10);
        let err = wait_until_propagated(&script, &clock, &expected(&[rec(2)], None), deadline)
            .await
            .unwrap_err();
        let sleeps = clock.sleeps();
        let micros = [
            100_000, 150_000, 225_000, 337_500, 506_250, 759_375, 1_139_062,
        ];
        let want: Vec<Duration> = micros.iter().map(|m| Duration::from_micros(*m)).collect();
        let got: Vec<Duration> = sleeps[..7]
            .iter()
            .map(|s| Duration::from_micros(s.as_micros() as u64))
            .collect();
        assert_eq!(got, want);
        assert!(sleeps.iter().all(|s| *s <= Duration::from_secs(2)));
        assert!(sleeps.contains(&Duration::from_secs(2)), "{sleeps:?}");
        // The last pause ends exactly at the deadline, then one last round runs.
        assert_eq!(clock.now(), deadline + ms(10));
        assert_eq!(err.rounds as usize, sleeps.len() + 1);
        assert_eq!(err.waited, Duration::from_secs(10) + ms(10));
        // Questions never get more time than remains (but at least 250 ms).
        let timeouts = script.timeouts.lock().unwrap().clone();
        assert_eq!(timeouts[0], Duration::from_secs(10));
        assert_eq!(*timeouts.last().unwrap(), ms(250));
    }

    #[tokio::test]
    async fn a_past_deadline_still_makes_one_round() {
        let clock = ManualClock::default();
        let new = [rec(2)];
        let script = Script::new(&clock, vec![observation(vec![(1, served(7, &new))])]);
        let ok = wait_until_propagated(&script, &clock, &expected(&new, None), clock.now() - ms(1))
            .await;
        assert_eq!(ok.unwrap().rounds, 1);
        assert!(clock.sleeps().is_empty());
    }

    #[tokio::test]
    async fn the_error_names_each_lagging_server_and_what_it_serves() {
        let clock = ManualClock::default();
        let new = [rec(2)];
        let last = observation(vec![
            (1, served(7, &new)),
            (2, served(6, &[rec(1)])),
            (
                9,
                Err(ServerError::Timeout {
                    question: "example. SOA".into(),
                    timeout: Duration::from_secs(1),
                }),
            ),
        ]);
        let script = Script::new(&clock, vec![last]);
        let deadline = clock.now() + Duration::from_secs(1);
        let err = wait_until_propagated(&script, &clock, &expected(&new, Some(7)), deadline)
            .await
            .unwrap_err();
        assert_eq!(err.lags.len(), 2);
        let text = err.to_string();
        assert!(text.contains("2 of 3 addresses lag"), "{text}");
        let lag2 = format!(
            "ns2.example. (192.0.2.2:53): serves serial 6 (expected 7 or later), {OWNER} TLSA [{}] TTL 300 (expected [{}])",
            rec(1),
            rec(2)
        );
        assert!(text.contains(&lag2), "{text}");
        assert!(
            text.contains("extra server 192.0.2.9:53: no answer to example. SOA within 1 s"),
            "{text}"
        );
        assert!(!text.contains("ns1.example."), "{text}");
    }

    #[test]
    fn expected_absence_is_met_by_nxdomain_and_nodata() {
        let absent = expected(&[], Some(7));
        assert!(observation(vec![(1, served(7, &[]))]).is_complete(&absent));
        assert!(!observation(vec![(1, served(7, &[rec(1)]))]).is_complete(&absent));
    }

    #[test]
    fn extra_records_or_missing_ones_are_lag() {
        let want = expected(&[rec(1), rec(2)], None);
        assert!(!observation(vec![(1, served(7, &[rec(1)]))]).is_complete(&want));
        assert!(!observation(vec![(1, served(7, &[rec(1), rec(2), rec(3)]))]).is_complete(&want));
        assert!(observation(vec![(1, served(7, &[rec(2), rec(1)]))]).is_complete(&want));
    }

    #[test]
    fn no_servers_or_unresolved_ns_names_never_complete() {
        let want = expected(&[rec(1)], None);
        assert!(!observation(vec![]).is_complete(&want));
        let mut obs = observation(vec![(1, served(7, &[rec(1)]))]);
        obs.unresolved.push(Unresolved {
            name: name("ns.elsewhere."),
            why: "NXDOMAIN".into(),
        });
        let lags = obs.lags(&want);
        assert_eq!(lags.len(), 1);
        assert_eq!(
            lags[0].to_string(),
            "NS ns.elsewhere. has no address (NXDOMAIN)"
        );
    }

    #[test]
    fn durations_read_in_seconds_to_the_millisecond() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_nanos(342_424_925)), "0.342 s");
        assert_eq!(seconds(Duration::from_millis(2_030)), "2.03 s");
    }

    #[test]
    fn serials_compare_with_rfc_1982_arithmetic() {
        assert!(serial_at_least(7, 7));
        assert!(serial_at_least(8, 7));
        assert!(!serial_at_least(6, 7));
        // Wrapped around: 5 comes after 4294967290.
        assert!(serial_at_least(5, u32::MAX - 5));
        assert!(!serial_at_least(u32::MAX - 5, 5));
    }
}
