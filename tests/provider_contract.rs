//! The back-end contract: one set of scenarios, written once, run against every DNS publishing
//! back-end — RFC 2136 + TSIG on BIND 9 and on Knot DNS, the PowerDNS HTTP API on a real
//! `pdns_server`, the zone-file back-end under a real BIND (rndc reload), and the Cloudflare
//! and deSEC back-ends against the local fakes of their documented APIs
//! (`tests/support/cloudflare_mock.rs`, `tests/support/desec_mock.rs`).
//!
//! Each back-end is a [`Fixture`]: it starts its server or fake (once per test), builds the
//! provider, lets "another writer" change an RRset behind tlsa's back, and reads back what the
//! authoritative side serves. For the real servers "served" means: the server answers
//! authoritatively with exactly the records, the TTL and an RRSIG whose original TTL is that
//! TTL (or a signed denial), the lab's validating unbound answers the same with AD, and the
//! crate's own validator, anchored at the zone's DS, calls it Secure. For the fakes it is what
//! the fake API holds.
//!
//! Every scenario is a `#[test]` per back-end, `BACKEND::SCENARIO` (`bind::publish`,
//! `desec::record_type_mx`, …), so a failure names both. Run with
//! `cargo test --test integration provider_contract::`.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::rr::Name;
use tokio::runtime::Runtime;

use support::records::{A, B, C, mx, name, rdata, rec, records_in, txt};
use support::{BindZoneFileLab, DigReply, Lab, PowerDnsLab, Resolver, poll_until};
use support::{cloudflare_mock, desec_mock};
use tlsa::dns::observe::dnssec::{Anchors, Validator, Verdict};
use tlsa::dns::publish::cloudflare::Cloudflare;
use tlsa::dns::publish::desec::Desec;
use tlsa::dns::publish::http::SecretSource;
use tlsa::dns::publish::powerdns::{PowerDns, PowerDnsConfig};
use tlsa::dns::publish::rfc2136::Rfc2136;
use tlsa::dns::publish::tsig::TsigKey;
use tlsa::dns::publish::zonefile::{ZoneFile, ZoneFileConfig};
use tlsa::dns::{
    Applied, ChangeSet, DnsError, Edit, Provider, Rdata, RrType, Rrset, RrsetId, apply_edits,
};

/// Generous: the machine may be busy; every poll ends as soon as it sees.
const TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------
// The fixture: one per back-end

#[async_trait]
trait Fixture: Send + Sync + Sized {
    /// Starts the server or fake (on the test's own thread; `runtime` for what needs one).
    fn start(runtime: &Runtime) -> Self;

    fn zone(&self) -> Name;

    fn provider(&self) -> &dyn Provider;

    /// A TTL the back-end accepts and a second one (the TTL-change scenario).
    fn ttls(&self) -> (u32, u32);

    /// The words of the error a back-end gives for a record type it does not publish; `None`
    /// when it publishes the type (every back-end publishes TLSA, TXT and MX today).
    fn unsupported(&self, _rtype: RrType) -> Option<&'static str> {
        None
    }

    /// Another writer (nsupdate, the provider's API or web interface, a hand edit of the
    /// file) makes RRset `id` hold exactly `records`, behind tlsa's back.
    async fn write_behind(&self, id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>);

    /// Polls until the authoritative side serves exactly `records` at `id` with `ttl`
    /// (no records: the RRset is absent, with a signed denial where the zone is signed).
    async fn assert_served(&self, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32);

    /// The zone's SOA serial as the server serves it (or the API reports it), if any.
    fn zone_serial(&self) -> Option<u32> {
        None
    }

    /// Whether [`Applied::serial`] must equal [`Fixture::zone_serial`] (else: at most it).
    fn serial_exact(&self) -> bool {
        false
    }

    /// Words the back-end's compare-and-swap conflict error holds (beside the owner and
    /// the type).
    fn conflict_words(&self) -> &'static [&'static str];

    /// Whether the authoritative side serves another writer's change at once (a hand edit
    /// of the zone file is served only after the next reload).
    fn serves_writes_behind(&self) -> bool {
        true
    }

    /// Whether the conflict error shows what the back-end holds now (the HTTP APIs and the
    /// zone file do; an RFC 2136 server only says that a prerequisite failed).
    fn conflict_shows_found(&self) -> bool {
        true
    }

    /// `relative` in the zone (`@`: the apex).
    fn owner(&self, relative: &str) -> Name {
        if relative == "@" {
            return self.zone();
        }
        name(&format!("{relative}.{}", self.zone()))
    }
}

/// Runs `scenario` against a fresh fixture of `F` on its own runtime.
fn run<F: Fixture>(scenario: impl AsyncFnOnce(&F)) {
    let runtime = support::runtime();
    let fixture = F::start(&runtime);
    let started = Instant::now();
    runtime.block_on(scenario(&fixture));
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("scenario {test}: {} ms", started.elapsed().as_millis());
    {
        let _inside = runtime.enter();
        drop(fixture);
    }
    drop(runtime);
}

// ------------------------------------------------------------------------------------------
// Real servers: what "served" means on a signed zone

/// A signed zone on a real authoritative server, with the lab's validating unbound.
struct Signed<'a> {
    zone: &'a str,
    query_server: &'a (dyn Fn(&str, &str) -> DigReply + Sync),
    resolver: &'a Resolver,
    ds_anchor: &'a Path,
}

impl Signed<'_> {
    async fn assert_served(&self, id: &RrsetId, expected: &BTreeSet<Rdata>, ttl: u32) {
        let owner = id.owner.to_string();
        let (rtype, mnemonic) = (id.rtype, id.rtype.mnemonic());
        poll_until(
            &format!("{id} = {expected:?} TTL {ttl}, signed, from the authoritative server"),
            TIMEOUT,
            || {
                let reply = (self.query_server)(&owner, mnemonic);
                let ok = if expected.is_empty() {
                    // NXDOMAIN or NODATA, proven by a signed NSEC.
                    matches!(reply.status.as_str(), "NXDOMAIN" | "NOERROR")
                        && records_in(&reply, rtype).is_empty()
                        && reply.raw.contains("NSEC")
                        && reply.raw.contains("RRSIG")
                } else {
                    let ttls_ok = reply.records(mnemonic).all(|r| r.ttl == ttl);
                    let rrsig_ok = reply.records("RRSIG").any(|r| {
                        let fields: Vec<&str> = r.rdata.split_whitespace().collect();
                        fields.first() == Some(&mnemonic)
                            && fields.get(3) == Some(&ttl.to_string().as_str())
                    });
                    reply.is_noerror()
                        && records_in(&reply, rtype) == *expected
                        && ttls_ok
                        && rrsig_ok
                };
                (ok && reply.has_flag("aa")).then_some(())
            },
        );
        // unbound may hold the previous answer for its TTL: that cache is not tested here.
        self.resolver.flush_zone(self.zone);
        poll_until(
            &format!("{id} = {expected:?} validated by unbound (AD)"),
            TIMEOUT,
            || {
                let reply = self.resolver.query(&owner, mnemonic, &[]);
                let status_ok = reply.is_noerror()
                    || (expected.is_empty() && reply.status.as_str() == "NXDOMAIN");
                (status_ok && reply.has_flag("ad") && records_in(&reply, rtype) == *expected)
                    .then_some(())
            },
        );
        let validator =
            Validator::anchored(self.resolver.addr(), &Anchors::File(self.ds_anchor.into()))
                .await
                .unwrap_or_else(|e| panic!("validator from the DS anchor: {e}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let validation = validator.validate(id).await;
            if validation.verdict == Verdict::Secure && validation.records() == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} not Secure with {expected:?} within {TIMEOUT:?}: {validation}"
            );
            self.resolver.flush_zone(self.zone);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `update delete` + `update add` lines making `id` hold exactly `records`.
fn nsupdate_body(id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>) -> String {
    let mut body = format!("update delete {} {}\n", id.owner, id.rtype);
    for record in records {
        body.push_str(&format!(
            "update add {} {ttl} IN {} {record}\n",
            id.owner, id.rtype
        ));
    }
    body
}

/// RFC 2136 with TSIG on BIND 9 or Knot DNS.
struct Rfc2136Fixture {
    provider: Rfc2136,
    lab: Lab,
}

impl Rfc2136Fixture {
    fn on(lab: Lab) -> Self {
        let key = TsigKey::from_file(lab.tsig_key_file(), Some(lab.tsig_key_name()))
            .expect("lab key file");
        Rfc2136Fixture {
            provider: Rfc2136::new(lab.server_addr(), Some(key)),
            lab,
        }
    }
}

struct BindFixture(Rfc2136Fixture);
struct KnotFixture(Rfc2136Fixture);

/// The RFC 2136 fixture methods, for BIND and for Knot.
macro_rules! rfc2136_fixture {
    ($fixture:ident, $start:expr) => {
        #[async_trait]
        impl Fixture for $fixture {
            fn start(_: &Runtime) -> Self {
                $fixture(Rfc2136Fixture::on($start))
            }
            fn zone(&self) -> Name {
                name(self.0.lab.zone())
            }
            fn provider(&self) -> &dyn Provider {
                &self.0.provider
            }
            fn ttls(&self) -> (u32, u32) {
                (2, 3)
            }
            async fn write_behind(&self, id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>) {
                self.0.lab.nsupdate_ok(&nsupdate_body(id, ttl, records));
            }
            async fn assert_served(&self, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32) {
                let lab = &self.0.lab;
                Signed {
                    zone: lab.zone(),
                    query_server: &|n, t| lab.query_server(n, t),
                    resolver: lab.resolver(),
                    ds_anchor: lab.ds_anchor_file(),
                }
                .assert_served(id, records, ttl)
                .await
            }
            fn zone_serial(&self) -> Option<u32> {
                support::served_serial(self.0.lab.server_addr(), self.0.lab.zone())
            }
            fn conflict_words(&self) -> &'static [&'static str] {
                &["changed while tlsa was updating it", "prerequisite failed"]
            }
            fn conflict_shows_found(&self) -> bool {
                false
            }
        }
    };
}

rfc2136_fixture!(BindFixture, Lab::start());
rfc2136_fixture!(KnotFixture, Lab::start_knot());

/// The PowerDNS HTTP API on a real `pdns_server` (sqlite3, DNSSEC).
struct PowerDnsFixture {
    provider: PowerDns,
    lab: PowerDnsLab,
}

#[async_trait]
impl Fixture for PowerDnsFixture {
    fn start(_: &Runtime) -> Self {
        let lab = PowerDnsLab::start();
        let mut config = PowerDnsConfig::new(
            lab.api_url(),
            SecretSource::File(lab.api_key_file().to_owned()),
        );
        config.zones = vec![name(lab.zone())];
        PowerDnsFixture {
            provider: PowerDns::new(&config).expect("PowerDNS back-end"),
            lab,
        }
    }
    fn zone(&self) -> Name {
        name(self.lab.zone())
    }
    fn provider(&self) -> &dyn Provider {
        &self.provider
    }
    fn ttls(&self) -> (u32, u32) {
        (2, 3)
    }
    async fn write_behind(&self, id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>) {
        let contents: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::json!({"content": r.to_string(), "disabled": false}))
            .collect();
        let changetype = if records.is_empty() {
            "DELETE"
        } else {
            "REPLACE"
        };
        let body = serde_json::json!({"rrsets": [{"name": id.owner.to_string(),
            "type": id.rtype.mnemonic(), "ttl": ttl, "changetype": changetype,
            "records": contents}]});
        let (status, text) = self.lab.api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{}", self.lab.zone()),
            Some(&body),
        );
        assert_eq!(status, 204, "the other writer's PATCH: {text}");
    }
    async fn assert_served(&self, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32) {
        let lab = &self.lab;
        Signed {
            zone: lab.zone(),
            query_server: &|n, t| lab.query_server(n, t),
            resolver: lab.resolver(),
            ds_anchor: lab.ds_anchor_file(),
        }
        .assert_served(id, records, ttl)
        .await
    }
    fn zone_serial(&self) -> Option<u32> {
        let serial = self.lab.zone_json()["serial"].as_u64()?;
        u32::try_from(serial).ok()
    }
    fn serial_exact(&self) -> bool {
        true
    }
    fn conflict_words(&self) -> &'static [&'static str] {
        &["changed while tlsa was updating it", "nothing was written"]
    }
}

/// The zone-file back-end: an `$INCLUDE`d records file, BIND reloaded through rndc.
struct ZoneFileFixture {
    provider: ZoneFile,
    lab: BindZoneFileLab,
}

#[async_trait]
impl Fixture for ZoneFileFixture {
    fn start(_: &Runtime) -> Self {
        let lab = BindZoneFileLab::start();
        let mut config =
            ZoneFileConfig::new(name(lab.zone()), lab.records_file(), lab.reload_argv());
        config.serial_file = Some(lab.zone_file().to_owned());
        config.reload_timeout = Duration::from_secs(20);
        ZoneFileFixture {
            provider: ZoneFile::new(config).expect("zone-file back-end"),
            lab,
        }
    }
    fn zone(&self) -> Name {
        name(self.lab.zone())
    }
    fn provider(&self) -> &dyn Provider {
        &self.provider
    }
    fn ttls(&self) -> (u32, u32) {
        (2, 3)
    }
    fn serves_writes_behind(&self) -> bool {
        false
    }
    /// A hand edit of the records file (not reloaded: the next change by tlsa reloads).
    async fn write_behind(&self, id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>) {
        let path = self.lab.records_file();
        let text = std::fs::read_to_string(path).expect("read the records file");
        let owner = id.owner.to_string().to_lowercase();
        let mut kept: String = text
            .lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                !(fields.first().map(|f| f.to_lowercase()) == Some(owner.clone())
                    && fields.get(3) == Some(&id.rtype.mnemonic()))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        for record in records {
            kept.push_str(&format!("{owner} {ttl} IN {} {record}\n", id.rtype));
        }
        std::fs::write(path, kept).expect("write the records file");
    }
    async fn assert_served(&self, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32) {
        let lab = &self.lab;
        Signed {
            zone: lab.zone(),
            query_server: &|n, t| lab.query_server(n, t),
            resolver: lab.resolver(),
            ds_anchor: lab.ds_anchor_file(),
        }
        .assert_served(id, records, ttl)
        .await
    }
    fn zone_serial(&self) -> Option<u32> {
        support::served_serial(self.lab.server_addr(), self.lab.zone())
    }
    fn conflict_words(&self) -> &'static [&'static str] {
        &["changed while tlsa was updating it", "nothing was written"]
    }
}

/// A local fake of a provider's HTTP API, as the contract drives it.
trait ApiFake: Send + Sync + Sized + 'static {
    type Backend: Provider + Send + Sync;
    /// The fake's name in assertion messages.
    const NAME: &'static str;
    /// A TTL the API accepts and a second one.
    const TTLS: (u32, u32);
    fn start(runtime: &Runtime) -> Self;
    fn backend(&self) -> Self::Backend;
    /// What the API holds at (owner, type): the TTL of each record, and the records.
    fn held(&self, owner: &str, rtype: RrType) -> (BTreeSet<u64>, BTreeSet<Rdata>);
    /// Another writer (the web interface, another client) sets the RRset.
    fn put(&self, owner: &str, rtype: RrType, ttl: u32, records: &BTreeSet<Rdata>);
}

impl ApiFake for cloudflare_mock::Fake {
    type Backend = Cloudflare;
    const NAME: &'static str = "the Cloudflare fake";
    /// 60 s is Cloudflare's shortest TTL (1 means automatic).
    const TTLS: (u32, u32) = (60, 120);
    /// An empty zone to start with.
    fn start(runtime: &Runtime) -> Self {
        runtime.block_on(cloudflare_mock::Fake::start(Vec::new()))
    }
    fn backend(&self) -> Cloudflare {
        cloudflare_mock::Fake::backend(self)
    }
    fn held(&self, owner: &str, rtype: RrType) -> (BTreeSet<u64>, BTreeSet<Rdata>) {
        self.rrset(owner, rtype)
    }
    fn put(&self, owner: &str, rtype: RrType, ttl: u32, records: &BTreeSet<Rdata>) {
        self.put_rrset(owner, rtype, ttl, records);
    }
}

impl ApiFake for desec_mock::Fake {
    type Backend = Desec;
    const NAME: &'static str = "the deSEC fake";
    /// deSEC's default minimum TTL is 3600 s.
    const TTLS: (u32, u32) = (3600, 7200);
    fn start(runtime: &Runtime) -> Self {
        runtime.block_on(desec_mock::Fake::start())
    }
    fn backend(&self) -> Desec {
        desec_mock::Fake::backend(self)
    }
    /// deSEC holds one TTL per RRset.
    fn held(&self, owner: &str, rtype: RrType) -> (BTreeSet<u64>, BTreeSet<Rdata>) {
        let (ttl, records) = self.rrset(owner, rtype);
        (ttl.into_iter().collect(), records)
    }
    fn put(&self, owner: &str, rtype: RrType, ttl: u32, records: &BTreeSet<Rdata>) {
        self.put_rrset(owner, rtype, ttl, records);
    }
}

/// A provider's HTTP API, faked.
struct ApiFixture<F: ApiFake> {
    provider: F::Backend,
    fake: F,
}

type CloudflareFixture = ApiFixture<cloudflare_mock::Fake>;
type DesecFixture = ApiFixture<desec_mock::Fake>;

#[async_trait]
impl<F: ApiFake> Fixture for ApiFixture<F> {
    fn start(runtime: &Runtime) -> Self {
        let fake = F::start(runtime);
        ApiFixture {
            provider: fake.backend(),
            fake,
        }
    }
    fn zone(&self) -> Name {
        name("example.com.")
    }
    fn provider(&self) -> &dyn Provider {
        &self.provider
    }
    fn ttls(&self) -> (u32, u32) {
        F::TTLS
    }
    async fn write_behind(&self, id: &RrsetId, ttl: u32, records: &BTreeSet<Rdata>) {
        self.fake.put(&id.owner.to_string(), id.rtype, ttl, records);
    }
    async fn assert_served(&self, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32) {
        let (ttls, held) = self.fake.held(&id.owner.to_string(), id.rtype);
        assert_eq!(held, *records, "{id} in {}", F::NAME);
        let want: BTreeSet<u64> = if records.is_empty() {
            BTreeSet::new()
        } else {
            [u64::from(ttl)].into()
        };
        assert_eq!(ttls, want, "{id}: every record's TTL");
    }
    fn conflict_words(&self) -> &'static [&'static str] {
        &["changed while tlsa was updating it", "nothing was written"]
    }
}

// ------------------------------------------------------------------------------------------
// Helpers

fn tlsa(records: &[&str]) -> BTreeSet<Rdata> {
    records.iter().map(|r| rec(r)).collect()
}

fn tlsa_id<F: Fixture>(f: &F, relative: &str) -> RrsetId {
    RrsetId::tlsa(f.owner(relative))
}

/// An edit of `id` that keeps records it does not name.
fn edit(id: &RrsetId, add: &BTreeSet<Rdata>, remove: &BTreeSet<Rdata>, ttl: u32) -> Edit {
    Edit {
        owner: id.owner.clone(),
        rtype: id.rtype,
        add: add.clone(),
        remove: remove.clone(),
        replace_all: false,
        ttl,
    }
}

/// Applies `edits` through `provider`, which must find something to change.
async fn apply(provider: &dyn Provider, zone: &Name, edits: &[Edit]) -> Applied {
    apply_edits(provider, zone, edits)
        .await
        .unwrap_or_else(|e| panic!("apply {edits:?} through {}: {e}", provider.describe()))
        .expect("a change was needed")
}

/// Applies `edits`, which must need no change.
async fn apply_nothing<F: Fixture>(f: &F, edits: &[Edit]) {
    let again = apply_edits(f.provider(), &f.zone(), edits).await;
    assert_eq!(again.unwrap(), None, "nothing left to change: {edits:?}");
}

async fn read<F: Fixture>(f: &F, id: &RrsetId) -> Rrset {
    f.provider()
        .read(&f.zone(), id)
        .await
        .unwrap_or_else(|e| panic!("read {id}: {e}"))
}

/// The back-end reads `id` back as exactly `records` with `ttl` (absent when none), and the
/// authoritative side serves the same.
async fn assert_published<F: Fixture>(f: &F, id: &RrsetId, records: &BTreeSet<Rdata>, ttl: u32) {
    let now = read(f, id).await;
    let want_ttl = (!records.is_empty()).then_some(ttl);
    assert_eq!(
        (&now.records, now.ttl),
        (records, want_ttl),
        "{id} as the back-end reads it"
    );
    f.assert_served(id, records, ttl).await;
}

/// A change's serial, where the back-end reports one: later than `before`, and what the
/// zone serves (at least, or exactly where the back-end reads it from the same place).
fn assert_serial<F: Fixture>(f: &F, before: Option<u32>, applied: Applied) -> Option<u32> {
    let serial = applied.serial?;
    if let Some(before) = before {
        assert!(serial > before, "serial {serial} after {before}");
    }
    let served = f.zone_serial().expect("the zone's serial");
    if f.serial_exact() {
        assert_eq!(served, serial, "the serial reported is the zone's");
    } else {
        assert!(
            served >= serial,
            "served serial {served} ≥ reported {serial}"
        );
    }
    Some(serial)
}

/// The provider under test, counting its writes and letting another writer change RRsets
/// right before the first one; each conflict error is kept, with what the back-end held
/// just after refusing (the other writer's content: nothing of ours was written), which the
/// authoritative side is then seen serving too.
struct Watched<'a, F: Fixture> {
    fixture: &'a F,
    behind: Mutex<Vec<(RrsetId, BTreeSet<Rdata>)>>,
    ttl: u32,
    applies: AtomicUsize,
    conflicts: Mutex<Vec<(String, Vec<Rrset>)>>,
}

impl<'a, F: Fixture> Watched<'a, F> {
    fn new(fixture: &'a F, ttl: u32, behind: Vec<(RrsetId, BTreeSet<Rdata>)>) -> Self {
        Watched {
            fixture,
            behind: Mutex::new(behind),
            ttl,
            applies: AtomicUsize::new(0),
            conflicts: Mutex::new(Vec::new()),
        }
    }

    fn applies(&self) -> usize {
        self.applies.load(Ordering::SeqCst)
    }

    fn conflicts(&self) -> Vec<(String, Vec<Rrset>)> {
        self.conflicts.lock().unwrap().clone()
    }
}

#[async_trait]
impl<F: Fixture> Provider for Watched<'_, F> {
    fn describe(&self) -> String {
        self.fixture.provider().describe()
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        self.fixture.provider().zone_of(owner).await
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        self.fixture.provider().read(zone, id).await
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        let behind = std::mem::take(&mut *self.behind.lock().unwrap());
        for (id, records) in &behind {
            self.fixture.write_behind(id, self.ttl, records).await;
        }
        let result = self.fixture.provider().apply(set).await;
        if let Err(e) = &result
            && e.is_conflict()
        {
            let mut held = Vec::new();
            for change in &set.changes {
                held.push(
                    self.fixture
                        .provider()
                        .read(&set.zone, &change.id())
                        .await?,
                );
            }
            if self.fixture.serves_writes_behind() {
                for rrset in &held {
                    self.fixture
                        .assert_served(&rrset.id(), &rrset.records, self.ttl)
                        .await;
                }
            }
            self.conflicts.lock().unwrap().push((e.to_string(), held));
        }
        result
    }
}

// ------------------------------------------------------------------------------------------
// The scenarios

/// An RRset created where none was; found in the zone; read back; served; a second apply
/// of the same edit changes nothing.
async fn publish<F: Fixture>(f: &F) {
    let (p, zone, (ttl, _)) = (f.provider(), f.zone(), f.ttls());
    let id = tlsa_id(f, "_25._tcp.mail");
    assert_eq!(p.zone_of(&id.owner).await.unwrap(), zone, "zone of {id}");
    assert_eq!(
        read(f, &id).await,
        Rrset::empty(id.owner.clone(), RrType::Tlsa)
    );
    let before = f.zone_serial();
    let applied = apply(p, &zone, &[edit(&id, &tlsa(&[A]), &tlsa(&[]), ttl)]).await;
    assert_published(f, &id, &tlsa(&[A]), ttl).await;
    assert_serial(f, before, applied);
    apply_nothing(f, &[edit(&id, &tlsa(&[A]), &tlsa(&[]), ttl)]).await;
}

/// Record by record (others' records stay) and whole-RRset replacement.
async fn replace<F: Fixture>(f: &F) {
    let (p, zone, (ttl, _)) = (f.provider(), f.zone(), f.ttls());
    let id = tlsa_id(f, "_25._tcp.mail");
    let first = apply(p, &zone, &[edit(&id, &tlsa(&[A, B]), &tlsa(&[]), ttl)]).await;
    assert_published(f, &id, &tlsa(&[A, B]), ttl).await;
    let serial = assert_serial(f, None, first);

    let second = apply(p, &zone, &[edit(&id, &tlsa(&[C]), &tlsa(&[A]), ttl)]).await;
    assert_published(f, &id, &tlsa(&[B, C]), ttl).await;
    let serial = assert_serial(f, serial, second);

    let whole = Edit::replace(id.clone(), tlsa(&[A]), ttl);
    let third = apply(p, &zone, std::slice::from_ref(&whole)).await;
    assert_published(f, &id, &tlsa(&[A]), ttl).await;
    assert_serial(f, serial, third);
    apply_nothing(f, &[whole]).await;
}

/// Removing every record deletes the RRset (read back as absent, served as a denial).
async fn delete<F: Fixture>(f: &F) {
    let (p, zone, (ttl, _)) = (f.provider(), f.zone(), f.ttls());
    let id = tlsa_id(f, "_25._tcp.mail");
    apply(p, &zone, &[edit(&id, &tlsa(&[A, B]), &tlsa(&[]), ttl)]).await;
    assert_published(f, &id, &tlsa(&[A, B]), ttl).await;
    apply(p, &zone, &[edit(&id, &tlsa(&[]), &tlsa(&[A, B]), ttl)]).await;
    assert_eq!(
        read(f, &id).await,
        Rrset::empty(id.owner.clone(), RrType::Tlsa)
    );
    assert_published(f, &id, &tlsa(&[]), ttl).await;
    apply_nothing(f, &[edit(&id, &tlsa(&[]), &tlsa(&[A, B]), ttl)]).await;
}

/// Three owners of three types in one change set: one write; then all removed in one.
async fn several_owners<F: Fixture>(f: &F) {
    let (zone, (ttl, _)) = (f.zone(), f.ttls());
    let rrsets = [
        (tlsa_id(f, "_25._tcp.mx1"), tlsa(&[A])),
        (tlsa_id(f, "_443._tcp.www"), tlsa(&[B, C])),
        (
            RrsetId::new(f.owner("_mta-sts"), RrType::Txt),
            [txt("v=STSv1; id=20261202a")].into(),
        ),
        (
            RrsetId::new(f.owner("@"), RrType::Mx),
            [mx("10 mx1.example.net.")].into(),
        ),
    ];
    let watched = Watched::new(f, ttl, Vec::new());
    let edits: Vec<Edit> = rrsets
        .iter()
        .map(|(id, records)| Edit::replace(id.clone(), records.iter().cloned(), ttl))
        .collect();
    apply(&watched, &zone, &edits).await;
    assert_eq!(watched.applies(), 1, "one write for every owner");
    for (id, records) in &rrsets {
        assert_published(f, id, records, ttl).await;
    }
    let gone: Vec<Edit> = rrsets
        .iter()
        .map(|(id, _)| Edit::replace(id.clone(), [], ttl))
        .collect();
    apply(&watched, &zone, &gone).await;
    assert_eq!(watched.applies(), 2, "one write for every removal");
    for (id, _) in &rrsets {
        assert_published(f, id, &BTreeSet::new(), ttl).await;
    }
}

/// Another writer changes an RRset between tlsa's read and its write: the write is refused
/// (nothing of it lands: the back-end holds the other writer's content), the change is
/// re-planned on what is there, and both writers' records survive. Once on an existing TLSA
/// RRset, once on an absent TXT RRset with another owner listed first in the same change set.
async fn concurrent_writer<F: Fixture>(f: &F) {
    let (zone, (ttl, _)) = (f.zone(), f.ttls());
    let ours = tlsa_id(f, "_25._tcp.mail");
    apply(
        f.provider(),
        &zone,
        &[edit(&ours, &tlsa(&[A]), &tlsa(&[]), ttl)],
    )
    .await;

    // Existing RRset: we replace A by B while the other writer adds C.
    let racing = Watched::new(f, ttl, vec![(ours.clone(), tlsa(&[A, C]))]);
    apply(
        &racing,
        &zone,
        &[edit(&ours, &tlsa(&[B]), &tlsa(&[A]), ttl)],
    )
    .await;
    assert_eq!(racing.applies(), 2, "one conflict, one re-planned write");
    assert_conflict(f, &racing.conflicts(), &ours, &[tlsa(&[A, C])]);
    assert_published(f, &ours, &tlsa(&[B, C]), ttl).await;

    // Absent RRset: we create it (and another owner's, listed first) while the other writer
    // creates it first.
    let untouched = tlsa_id(f, "_587._tcp.mail");
    let fresh = RrsetId::new(f.owner("_mta-sts"), RrType::Txt);
    let (theirs, mine) = (txt("v=STSv1; id=theirs"), txt("v=STSv1; id=ours"));
    let racing = Watched::new(f, ttl, vec![(fresh.clone(), [theirs.clone()].into())]);
    let edits = [
        edit(&untouched, &tlsa(&[B]), &tlsa(&[]), ttl),
        edit(&fresh, &[mine.clone()].into(), &BTreeSet::new(), ttl),
    ];
    apply(&racing, &zone, &edits).await;
    assert_eq!(racing.applies(), 2, "one conflict, one re-planned write");
    assert_conflict(
        f,
        &racing.conflicts(),
        &fresh,
        &[BTreeSet::new(), [theirs.clone()].into()],
    );
    assert_published(f, &fresh, &[theirs, mine].into(), ttl).await;
    assert_published(f, &untouched, &tlsa(&[B]), ttl).await;
}

/// One conflict, naming the RRset that changed in the back-end's words, after which the
/// back-end held exactly `held` (per change of the refused set): the other writer's content.
fn assert_conflict<F: Fixture>(
    f: &F,
    conflicts: &[(String, Vec<Rrset>)],
    id: &RrsetId,
    held: &[BTreeSet<Rdata>],
) {
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let (text, after) = &conflicts[0];
    eprintln!("conflict: {text}");
    for words in f.conflict_words().iter().copied().chain([
        id.owner.to_string().trim_end_matches('.'),
        id.rtype.mnemonic(),
    ]) {
        assert!(text.contains(words), "{words:?} missing from: {text}");
    }
    if f.conflict_shows_found() {
        let now = after
            .iter()
            .find(|r| r.id() == *id)
            .expect("the RRset read");
        for record in &now.records {
            let shown = record.to_string();
            assert!(text.contains(&shown), "{shown} missing from: {text}");
        }
    }
    let after: Vec<BTreeSet<Rdata>> = after.iter().map(|r| r.records.clone()).collect();
    assert_eq!(after, held, "nothing of the refused write landed");
}

/// The same records with another TTL, alone, with an addition and with a removal: the new
/// TTL is read back and served (and signed with it).
async fn ttl_change<F: Fixture>(f: &F) {
    let (p, zone, (ttl, other)) = (f.provider(), f.zone(), f.ttls());
    let id = tlsa_id(f, "_25._tcp.mail");
    let none = tlsa(&[]);
    apply(p, &zone, &[edit(&id, &tlsa(&[A, B]), &none, ttl)]).await;
    assert_published(f, &id, &tlsa(&[A, B]), ttl).await;

    let applied = apply(p, &zone, &[edit(&id, &none, &none, other)]).await;
    assert_published(f, &id, &tlsa(&[A, B]), other).await;
    assert_serial(f, None, applied);
    apply_nothing(f, &[edit(&id, &none, &none, other)]).await;

    // back, with an addition
    apply(p, &zone, &[edit(&id, &tlsa(&[C]), &none, ttl)]).await;
    assert_published(f, &id, &tlsa(&[A, B, C]), ttl).await;
    // again, with a removal
    apply(p, &zone, &[edit(&id, &none, &tlsa(&[C]), other)]).await;
    assert_published(f, &id, &tlsa(&[A, B]), other).await;
}

/// Records of `rtype` published whole (as `dns::publish` does), replaced and removed; or,
/// on a back-end that does not publish the type, its clear error and nothing written.
async fn record_type<F: Fixture>(f: &F, rtype: RrType) {
    let (zone, (ttl, _)) = (f.zone(), f.ttls());
    let (owner, first, second) = match rtype {
        RrType::Tlsa => ("_25._tcp.mail", tlsa(&[A, C]), tlsa(&[B])),
        RrType::Txt => {
            // Longer than one string, with blanks, quotes and semicolons; several strings.
            let long = format!(
                "v=TLSRPTv1; rua=mailto:tlsrpt@example.net;{}",
                " \"x\";".repeat(60)
            );
            (
                "_smtp._tls",
                [
                    txt(&long),
                    rdata(RrType::Txt, "\"v=STSv1; \" \"id=20261202a\""),
                ]
                .into(),
                [txt("v=TLSRPTv1; rua=mailto:tlsrpt@example.org")].into(),
            )
        }
        RrType::Mx => (
            "@",
            [mx("10 mx1.example.net."), mx("20 mx2.example.net.")].into(),
            [mx("5 mx3.example.org.")].into(),
        ),
    };
    let id = RrsetId::new(f.owner(owner), rtype);
    let watched = Watched::new(f, ttl, Vec::new());
    if let Some(words) = f.unsupported(rtype) {
        let err = apply_edits(
            &watched,
            &zone,
            &[Edit::replace(id.clone(), first.clone(), ttl)],
        )
        .await
        .expect_err("a type the back-end does not publish");
        assert!(err.to_string().contains(words), "{err}");
        assert_eq!(watched.applies(), 0, "nothing sent");
        return;
    }
    apply(
        &watched,
        &zone,
        &[Edit::replace(id.clone(), first.clone(), ttl)],
    )
    .await;
    assert_published(f, &id, &first, ttl).await;
    apply_nothing(f, &[Edit::replace(id.clone(), first, ttl)]).await;
    apply(
        &watched,
        &zone,
        &[Edit::replace(id.clone(), second.clone(), ttl)],
    )
    .await;
    assert_published(f, &id, &second, ttl).await;
    apply(&watched, &zone, &[Edit::replace(id.clone(), [], ttl)]).await;
    assert_published(f, &id, &BTreeSet::new(), ttl).await;
    assert_eq!(watched.applies(), 3);
}

async fn record_type_tlsa<F: Fixture>(f: &F) {
    record_type(f, RrType::Tlsa).await
}

async fn record_type_txt<F: Fixture>(f: &F) {
    record_type(f, RrType::Txt).await
}

async fn record_type_mx<F: Fixture>(f: &F) {
    record_type(f, RrType::Mx).await
}

/// `BACKEND::SCENARIO` for every back-end and scenario.
macro_rules! contract {
    ($($backend:ident: $fixture:ty),* $(,)?) => {$(
        mod $backend {
            use super::*;
            #[test] fn publish() { run::<$fixture>(super::publish) }
            #[test] fn replace() { run::<$fixture>(super::replace) }
            #[test] fn delete() { run::<$fixture>(super::delete) }
            #[test] fn several_owners() { run::<$fixture>(super::several_owners) }
            #[test] fn concurrent_writer() { run::<$fixture>(super::concurrent_writer) }
            #[test] fn ttl_change() { run::<$fixture>(super::ttl_change) }
            #[test] fn record_type_tlsa() { run::<$fixture>(super::record_type_tlsa) }
            #[test] fn record_type_txt() { run::<$fixture>(super::record_type_txt) }
            #[test] fn record_type_mx() { run::<$fixture>(super::record_type_mx) }
        }
    )*};
}

contract!(
    bind: BindFixture,
    knot: KnotFixture,
    powerdns: PowerDnsFixture,
    zonefile: ZoneFileFixture,
    cloudflare: CloudflareFixture,
    desec: DesecFixture,
);
