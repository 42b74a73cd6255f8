//! Observing DNS against the real lab: what every authoritative address serves
//! (`tlsa::dns::observe::propagation`), whether it validates (`tlsa::dns::observe::dnssec`), and the TTL facts
//! and `t_safe` the roll engine derives from them (`tlsa::dns::observe::ttl`).
//!
//! Each test creates and drops its lab on its own thread (`#[tokio::test]` runs the body on
//! the test thread), and waits by polling, never by sleeping on a guess.

use crate::support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use hickory_proto::rr::Name;
use support::{LOOPBACK_V6, Lab, LabOptions, poll_until, random_loopback_v4, served_serial};
use tlsa::clock::SystemClock;
use tlsa::dns::observe::dnssec::{Anchors, Validator, Verdict};
use tlsa::dns::observe::propagation::{
    self, AnswerKind, Discovery, Expected, Lookup, Origin, Propagated, wait_until_propagated,
};
use tlsa::dns::observe::servers::ZoneServers;
use tlsa::dns::observe::ttl::{self, Term, TtlFacts};
use tlsa::dns::{Rdata, RrsetId};
use tlsa::tlsa::TlsaRecord;

/// Bounds for things that should take milliseconds; generous for a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(15);

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A `3 1 1` record whose digest is 32 times `byte`.
fn record(byte: u8) -> TlsaRecord {
    TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![byte; 32],
    }
}

/// The TLSA RRset at `owner`.
fn id(owner: &Name) -> RrsetId {
    RrsetId::tlsa(owner.clone())
}

fn set(records: &[TlsaRecord]) -> BTreeSet<Rdata> {
    records.iter().cloned().map(Rdata::Tlsa).collect()
}

/// The lab's NS set and addresses, found through its resolver, on the lab server's port.
fn discovery(lab: &Lab) -> Discovery {
    Discovery::new(name(lab.zone()), Lookup::Resolver(lab.resolver_addr()))
        .port(lab.server_addr().port())
        .timeout(Duration::from_millis(700))
}

/// Polls the lab's own server (with dig) until it serves exactly `records` at `owner`, signed.
fn wait_served_signed(lab: &Lab, owner: &str, records: &[TlsaRecord]) {
    let want: BTreeSet<String> = records.iter().map(ToString::to_string).collect();
    poll_until(&format!("{owner} TLSA served signed"), SETTLE, || {
        let reply = lab.query_server(owner, "TLSA");
        let have: BTreeSet<String> = reply
            .rdata("TLSA")
            .iter()
            .map(|r| r.to_lowercase())
            .collect();
        (have == want && reply.is_signed("TLSA")).then_some(())
    });
}

/// A loopback UDP port nobody listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

fn expect(owner: &Name, records: &[TlsaRecord], min_serial: Option<u32>) -> Expected {
    Expected::exactly([(id(owner), set(records))], min_serial)
}

async fn wait_ok(servers: &ZoneServers, expected: &Expected, within: Duration) -> Propagated {
    wait_until_propagated(servers, &SystemClock, expected, SystemTime::now() + within)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

// ------------------------------------------------------------------ propagation

/// The report per address before and after an update, and a wait that ends as soon as the
/// server serves the update.
async fn report_and_quick_wait(lab: &Lab) {
    let zone = name(lab.zone());
    let owner = name(&lab.name("_25._tcp.mail"));
    let ttl = lab.ttl();

    let servers = ZoneServers::discover(&discovery(lab)).await.unwrap();
    assert_eq!(servers.ns_names, vec![name(&lab.name("ns1"))]);
    let addrs: Vec<SocketAddr> = servers.servers.iter().map(|s| s.addr).collect();
    assert_eq!(addrs, vec![lab.server_addr()]);
    assert!(servers.unresolved.is_empty());
    // Asking the primary itself (RD=0) finds the same in-zone NS name and address.
    let direct = Discovery {
        lookup: Lookup::Authoritative(lab.server_addr()),
        ..discovery(lab)
    };
    let direct = ZoneServers::discover(&direct).await.unwrap();
    assert_eq!(direct.servers, servers.servers);

    let before = servers.observe_now(&[id(&owner)]).await;
    eprintln!("before the update:\n{before}");
    let served = before.servers[0]
        .result
        .as_ref()
        .expect("the primary answers");
    let serial_before = served.serial();
    let absent = &served.rrsets[&id(&owner)];
    assert_eq!(absent.answer, AnswerKind::NxDomain);
    assert_eq!(absent.rrset.ttl, None);
    assert!(absent.rrset.records.is_empty());
    assert_eq!(absent.ttl.negative_ttl(), Some(ttl));

    let new = record(0x5a);
    lab.nsupdate_ok(&format!("update add {owner} {ttl} IN TLSA {new}"));
    let started = SystemTime::now();
    let expected = expect(
        &owner,
        std::slice::from_ref(&new),
        Some(serial_before.wrapping_add(1)),
    );
    let done = wait_ok(&servers, &expected, SETTLE).await;
    let took = done.at.duration_since(started).unwrap();
    eprintln!(
        "{:?}: propagated after {took:?} in {} rounds:\n{}",
        lab.kind(),
        done.rounds,
        done.observation
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    let server = &done.observation.servers[0];
    assert_eq!(server.server.addr, lab.server_addr());
    assert_eq!(server.server.origin, Origin::Ns(name(&lab.name("ns1"))));
    let served = server.result.as_ref().unwrap();
    assert!(served.serial() > serial_before);
    let rrset = &served.rrsets[&id(&owner)];
    assert_eq!(rrset.answer, AnswerKind::Positive);
    assert_eq!(rrset.rrset.records, set(&[new]));
    assert_eq!(rrset.rrset.ttl, Some(ttl));
    assert_eq!(
        rrset.ttl,
        TtlFacts {
            rrset_ttl: Some(ttl),
            rrsig_original_ttl: Some(ttl),
            soa_ttl: Some(ttl),
            soa_minimum: Some(ttl),
        }
    );
    assert_eq!(served.soa.ttl, ttl);
    assert_eq!(done.observation.zone, zone);
}

#[tokio::test]
async fn bind_report_per_address_and_quick_wait() {
    let lab = Lab::start();
    report_and_quick_wait(&lab).await;
}

#[tokio::test]
async fn knot_report_per_address_and_quick_wait() {
    let lab = Lab::start_knot();
    report_and_quick_wait(&lab).await;
}

/// NS set {ns1 → the primary, ns2 → a frozen copy on 127.x.y.z and ::1} plus an extra server
/// on a closed port: the wait fails by its deadline naming the copy's two addresses (with
/// their serial and records) and the closed port; once the copy catches up, it succeeds.
#[tokio::test]
async fn lagging_and_unreachable_servers_are_named() {
    let lab = Lab::start();
    let zone = lab.zone().to_string();
    let ttl = lab.ttl();
    let port = lab.server_addr().port();
    let owner_text = lab.name("_25._tcp.mail");
    let owner = name(&owner_text);
    let (ns1, ns2) = (lab.name("ns1"), lab.name("ns2"));
    let (old, new) = (record(0x01), record(0x02));
    let ip2 = random_loopback_v4();

    lab.nsupdate_ok(&format!(
        "update add {ns2} {ttl} IN A {ip2}\n\
         update add {ns2} {ttl} IN AAAA ::1\n\
         update add {zone} {ttl} IN NS {ns2}\n\
         update add {owner_text} {ttl} IN TLSA {old}"
    ));
    wait_served_signed(&lab, &owner_text, std::slice::from_ref(&old));
    let copy = lab.start_frozen_copy(&[ip2, LOOPBACK_V6]);
    let serial_old = served_serial(lab.server_addr(), &zone).unwrap();
    assert_eq!(served_serial(copy.addrs()[0], &zone), Some(serial_old));

    lab.nsupdate_ok(&format!(
        "update delete {owner_text} IN TLSA {old}\nupdate add {owner_text} {ttl} IN TLSA {new}"
    ));
    wait_served_signed(&lab, &owner_text, std::slice::from_ref(&new));
    let serial_new = served_serial(lab.server_addr(), &zone).unwrap();
    assert!(serial_new > serial_old);

    let closed = closed_port();
    let servers = ZoneServers::discover(&discovery(&lab).extra([closed]))
        .await
        .unwrap();
    // The resolver returns the NS RRset in any order: compare as a set.
    let mut listed: Vec<(Origin, SocketAddr)> = servers
        .servers
        .iter()
        .map(|s| (s.origin.clone(), s.addr))
        .collect();
    listed.sort_by_key(|(origin, addr)| (origin.clone(), addr.to_string()));
    let v6 = SocketAddr::new(LOOPBACK_V6, port);
    let v4 = SocketAddr::new(ip2, port);
    assert_eq!(
        listed,
        {
            let mut want = vec![
                (Origin::Ns(name(&ns1)), lab.server_addr()),
                (Origin::Ns(name(&ns2)), v4),
                (Origin::Ns(name(&ns2)), v6),
                (Origin::Extra, closed),
            ];
            want.sort_by_key(|(origin, addr)| (origin.clone(), addr.to_string()));
            want
        },
        "NS set and addresses"
    );

    let expected = expect(&owner, std::slice::from_ref(&new), Some(serial_new));
    let started = SystemTime::now();
    let deadline = started + Duration::from_secs(2);
    let err = wait_until_propagated(&servers, &SystemClock, &expected, deadline)
        .await
        .expect_err("a frozen copy and a closed port cannot catch up");
    let ended = SystemTime::now();
    let text = err.to_string();
    eprintln!("{text}");
    assert_eq!(err.lags.len(), 3, "{text}");
    for addr in [v4, v6] {
        let want = format!(
            "{ns2} ({addr}): serves serial {serial_old} (expected {serial_new} or later), {owner} TLSA [{old}] TTL {ttl} (expected [{new}])"
        );
        assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert!(text.contains(&format!("extra server {closed}: ")), "{text}");
    assert!(
        !text.contains(&format!("{ns1} (")),
        "the primary is up to date:\n{text}"
    );
    // It stopped at the deadline, not long after (one round of 700 ms questions at most).
    let overrun = ended.duration_since(deadline).unwrap_or_default();
    assert!(
        overrun < Duration::from_millis(1500),
        "overran the deadline by {overrun:?}"
    );
    assert!(err.rounds >= 3, "polled {} times", err.rounds);

    // The copy catches up (a fresh transfer); without the dead extra server, it completes.
    copy.reload(&zone, &lab.zone_transfer());
    let servers = ZoneServers::discover(&discovery(&lab)).await.unwrap();
    let started = SystemTime::now();
    let done = wait_ok(&servers, &expected, SETTLE).await;
    eprintln!(
        "caught up after {:?}:\n{}",
        done.at.duration_since(started).unwrap(),
        done.observation
    );
    assert_eq!(done.observation.servers.len(), 3);
    for server in &done.observation.servers {
        let served = server.result.as_ref().unwrap();
        assert_eq!(served.serial(), serial_new, "{}", server.server);
        assert_eq!(served.records(&id(&owner)), set(std::slice::from_ref(&new)));
    }
    drop(copy);
}

// ------------------------------------------------------------------ validation

/// The zone's SEP key replaced by another valid P-256 key.
fn wrong_dnskey_anchor(lab: &Lab) -> PathBuf {
    let path = lab.dir().join("wrong-dnskey.anchor");
    std::fs::write(
        &path,
        format!(
            "{} 3600 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
            lab.zone()
        ),
    )
    .unwrap();
    path
}

fn anchors(path: &std::path::Path) -> Anchors {
    Anchors::File(path.to_owned())
}

/// Publishes one TLSA record at `_25._tcp.mail` and waits until the server serves it signed
/// (so that no resolver caches the earlier NXDOMAIN).
fn publish(lab: &Lab) -> (Name, TlsaRecord) {
    let owner = lab.name("_25._tcp.mail");
    let rec = record(0x77);
    lab.nsupdate_ok(&format!("update add {owner} {} IN TLSA {rec}", lab.ttl()));
    wait_served_signed(lab, &owner, std::slice::from_ref(&rec));
    (name(&owner), rec)
}

#[tokio::test]
async fn tlsa_validates_secure_from_dnskey_and_ds_anchors() {
    let lab = Lab::start();
    let (owner, rec) = publish(&lab);
    let nodata = name(&lab.name("mail")); // an empty non-terminal: NOERROR, no TLSA
    let nxdomain = name(&lab.name("_25._tcp.nosuch"));

    for file in [lab.dnskey_anchor_file(), lab.ds_anchor_file()] {
        let validator = Validator::anchored(lab.resolver_addr(), &anchors(file))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let v = validator.validate_tlsa(&owner).await;
        eprintln!("{v}");
        assert_eq!(v.verdict, Verdict::Secure, "{v}");
        assert!(v.is_acceptable_for_changes());
        assert_eq!(v.answer, Some(AnswerKind::Positive));
        assert_eq!(v.rrset.records, set(std::slice::from_ref(&rec)));
        assert!(
            v.rrset.ttl.is_some_and(|t| t <= lab.ttl()),
            "{:?}",
            v.rrset.ttl
        );

        let v = validator.validate_tlsa(&nodata).await;
        eprintln!("{v}");
        assert_eq!(
            (v.verdict, v.answer),
            (Verdict::Secure, Some(AnswerKind::NoData)),
            "{v}"
        );
        assert!(v.rrset.records.is_empty());

        let v = validator.validate_tlsa(&nxdomain).await;
        eprintln!("{v}");
        assert_eq!(
            (v.verdict, v.answer),
            (Verdict::Secure, Some(AnswerKind::NxDomain)),
            "{v}"
        );

        // The same three validated together, as the roll engine does for a change's owners.
        let all = validator
            .validate_tlsa_all(&[owner.clone(), nodata.clone(), nxdomain.clone()])
            .await;
        let shapes: Vec<_> = all.iter().map(|v| (v.verdict, v.answer)).collect();
        assert_eq!(
            shapes,
            [
                (Verdict::Secure, Some(AnswerKind::Positive)),
                (Verdict::Secure, Some(AnswerKind::NoData)),
                (Verdict::Secure, Some(AnswerKind::NxDomain)),
            ]
        );
    }
}

#[tokio::test]
async fn knot_tlsa_validates_secure_from_dnskey_and_ds_anchors() {
    let lab = Lab::start_knot();
    let (owner, rec) = publish(&lab);
    for file in [lab.dnskey_anchor_file(), lab.ds_anchor_file()] {
        let validator = Validator::anchored(lab.resolver_addr(), &anchors(file))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let v = validator.validate_tlsa(&owner).await;
        assert_eq!(v.verdict, Verdict::Secure, "{v}");
        assert_eq!(v.rrset.records, set(std::slice::from_ref(&rec)));
        let v = validator
            .validate_tlsa(&name(&lab.name("_25._tcp.nosuch")))
            .await;
        assert_eq!(
            (v.verdict, v.answer),
            (Verdict::Secure, Some(AnswerKind::NxDomain)),
            "{v}"
        );
    }
}

#[tokio::test]
async fn wrong_anchors_are_bogus_or_refused() {
    let lab = Lab::start();
    let (owner, _) = publish(&lab);
    let nxdomain = name(&lab.name("_25._tcp.nosuch"));

    // Another key as DNSKEY anchor: the positive answer is Bogus (hickory's Ok shape) and so
    // is the negative one (its Err(Nsec) shape).
    let validator = Validator::anchored(lab.resolver_addr(), &anchors(&wrong_dnskey_anchor(&lab)))
        .await
        .unwrap();
    let v = validator.validate_tlsa(&owner).await;
    eprintln!("{v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Bogus, Some(AnswerKind::Positive)),
        "{v}"
    );
    assert!(!v.is_acceptable_for_changes());
    let v = validator.validate_tlsa(&nxdomain).await;
    eprintln!("{v}");
    assert_eq!(v.verdict, Verdict::Bogus, "{v}");
    let all = validator
        .validate_tlsa_all(&[owner.clone(), nxdomain.clone()])
        .await;
    assert!(
        all.iter().all(|v| v.verdict == Verdict::Bogus),
        "validated together, Bogus too: {all:?}"
    );

    // Only the root KSKs: this private zone cannot chain to them.
    let validator = Validator::anchored(lab.resolver_addr(), &Anchors::RootKeys)
        .await
        .unwrap();
    let v = validator.validate_tlsa(&owner).await;
    eprintln!("{v}");
    assert_ne!(v.verdict, Verdict::Secure, "{v}");

    // A wrong DS as anchor file: no served DNSKEY matches it; refused up front, naming the file.
    let wrong_ds = lab.dir().join("wrong-ds.anchor");
    std::fs::write(&wrong_ds, format!("{}\n", lab.wrong_ds())).unwrap();
    let err = Validator::anchored(lab.resolver_addr(), &anchors(&wrong_ds))
        .await
        .expect_err("a DS matching no key must be refused");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains(&wrong_ds.display().to_string()), "{text}");
    assert!(text.contains("no DNSKEY of"), "{text}");
}

#[tokio::test]
async fn a_resolver_with_a_wrong_ds_is_never_secure() {
    let lab = Lab::start();
    let (owner, _) = publish(&lab);
    let bogus = lab.start_resolver_with_ds(&lab.wrong_ds());

    let anchored = Validator::anchored(bogus.addr(), &anchors(lab.dnskey_anchor_file()))
        .await
        .unwrap();
    let v = anchored.validate_tlsa(&owner).await;
    eprintln!("anchored: {v}");
    assert!(
        matches!(v.verdict, Verdict::Bogus | Verdict::Indeterminate),
        "{v}"
    );
    assert!(v.reason.contains("SERVFAIL"), "{v}");

    let ad = Validator::resolver_ad(bogus.addr());
    let v = ad.validate_tlsa(&owner).await;
    eprintln!("ad: {v}");
    assert!(
        matches!(v.verdict, Verdict::Bogus | Verdict::Indeterminate),
        "{v}"
    );
    assert!(v.reason.contains("SERVFAIL"), "{v}");
    drop(bogus);
}

#[tokio::test]
async fn resolver_ad_mode_is_secure_through_the_good_resolver() {
    let lab = Lab::start();
    let (owner, rec) = publish(&lab);
    let ad = Validator::resolver_ad(lab.resolver_addr());
    let v = ad.validate_tlsa(&owner).await;
    eprintln!("{v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Secure, Some(AnswerKind::Positive)),
        "{v}"
    );
    assert_eq!(v.rrset.records, set(&[rec]));
    let v = ad.validate_tlsa(&name(&lab.name("_25._tcp.nosuch"))).await;
    eprintln!("{v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Secure, Some(AnswerKind::NxDomain)),
        "{v}"
    );
}

/// An unsigned child zone delegated without DS: Insecure in both modes, positive and negative.
#[tokio::test]
async fn unsigned_zone_is_insecure() {
    let lab = Lab::start();
    let rec = record(0x33);
    let child = lab.start_unsigned_child(
        "insecure",
        &format!("_25._tcp.mail {} IN TLSA {rec}", lab.ttl()),
    );
    let owner = name(&lab.name("_25._tcp.mail.insecure"));
    let nxdomain = name(&lab.name("_25._tcp.nosuch.insecure"));

    let anchored = Validator::anchored(lab.resolver_addr(), &anchors(lab.ds_anchor_file()))
        .await
        .unwrap();
    let v = anchored.validate_tlsa(&owner).await;
    eprintln!("anchored: {v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Insecure, Some(AnswerKind::Positive)),
        "{v}"
    );
    assert_eq!(v.rrset.records, set(std::slice::from_ref(&rec)));
    assert!(!v.is_acceptable_for_changes());
    let v = anchored.validate_tlsa(&nxdomain).await;
    eprintln!("anchored: {v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Insecure, Some(AnswerKind::NxDomain)),
        "{v}"
    );

    let ad = Validator::resolver_ad(lab.resolver_addr());
    let v = ad.validate_tlsa(&owner).await;
    eprintln!("ad: {v}");
    assert_eq!(
        (v.verdict, v.answer),
        (Verdict::Insecure, Some(AnswerKind::Positive)),
        "{v}"
    );
    drop(child);
}

// ------------------------------------------------------------------ TTL facts and t_safe

#[tokio::test]
async fn ttl_facts_and_t_safe_from_the_lab() {
    // SOA TTL and MINIMUM 3 s; the TLSA RRsets get their own TTLs.
    let lab = Lab::with_options(LabOptions {
        ttl: 3,
        ..LabOptions::default()
    });
    let owner_text = lab.name("_25._tcp.mail");
    let owner = name(&owner_text);
    let servers = ZoneServers::discover(&discovery(&lab)).await.unwrap();
    let margin = Duration::from_secs(1);

    // Before: no RRset; only the negative TTL applies.
    let before = servers.observe_now(&[id(&owner)]).await;
    let facts = propagation::worst_ttl(&before, &id(&owner)).unwrap();
    assert_eq!(
        facts,
        TtlFacts {
            rrset_ttl: None,
            rrsig_original_ttl: None,
            soa_ttl: Some(3),
            soa_minimum: Some(3),
        }
    );
    assert_eq!(facts.negative_ttl(), Some(3));

    // Publish a new RRset with TTL 5: it did not exist, so max(5, 5, negative 3) = 5.
    let first = record(0x10);
    lab.nsupdate_ok(&format!("update add {owner_text} 5 IN TLSA {first}"));
    let done = wait_ok(
        &servers,
        &expect(&owner, std::slice::from_ref(&first), None),
        SETTLE,
    )
    .await;
    let facts = propagation::worst_ttl(&done.observation, &id(&owner)).unwrap();
    eprintln!("after publishing: {facts}");
    assert_eq!(
        facts,
        TtlFacts {
            rrset_ttl: Some(5),
            rrsig_original_ttl: Some(5),
            soa_ttl: Some(3),
            soa_minimum: Some(3),
        }
    );
    let bound = ttl::cache_bound(None, &facts, false);
    assert_eq!((bound.seconds, bound.term), (5, Term::NewRrsetTtl));
    assert_eq!(
        ttl::t_safe(done.at, None, &facts, false, margin),
        done.at + Duration::from_secs(6) + ttl::RESOLVER_CLOCK_GRANULARITY
    );
    let per_server = propagation::ttl_per_server(&done.observation, &id(&owner));
    assert_eq!(per_server.len(), 1);
    eprintln!("{}", propagation::describe_ttl_per_server(&per_server));

    // Replace it by an RRset with TTL 2: the old TTL (5) bounds the caches now.
    let second = record(0x20);
    lab.nsupdate_ok(&format!(
        "update delete {owner_text} IN TLSA\nupdate add {owner_text} 2 IN TLSA {second}"
    ));
    let done = wait_ok(
        &servers,
        &expect(&owner, std::slice::from_ref(&second), None),
        SETTLE,
    )
    .await;
    let facts = propagation::worst_ttl(&done.observation, &id(&owner)).unwrap();
    assert_eq!(
        (facts.rrset_ttl, facts.rrsig_original_ttl),
        (Some(2), Some(2))
    );
    let bound = ttl::cache_bound(Some(5), &facts, true);
    assert_eq!((bound.seconds, bound.term), (5, Term::OldRrsetTtl));
    assert_eq!(
        ttl::t_safe(done.at, Some(5), &facts, true, margin),
        done.at + Duration::from_secs(6) + ttl::RESOLVER_CLOCK_GRANULARITY
    );

    // A new owner with TTL 1: the negative TTL (3) is the longest a resolver may have cached.
    let other_text = lab.name("_443._tcp.www");
    let other = name(&other_text);
    let third = record(0x30);
    lab.nsupdate_ok(&format!("update add {other_text} 1 IN TLSA {third}"));
    let done = wait_ok(
        &servers,
        &expect(&other, std::slice::from_ref(&third), None),
        SETTLE,
    )
    .await;
    let facts = propagation::worst_ttl(&done.observation, &id(&other)).unwrap();
    assert_eq!(facts.rrset_ttl, Some(1));
    let bound = ttl::cache_bound(None, &facts, false);
    assert_eq!((bound.seconds, bound.term), (3, Term::NegativeTtl));
    assert_eq!(
        ttl::t_safe(done.at, None, &facts, false, margin),
        done.at + Duration::from_secs(4) + ttl::RESOLVER_CLOCK_GRANULARITY
    );
    let all = propagation::worst_ttl_by_rrset(&done.observation);
    assert_eq!(all.keys().collect::<Vec<_>>(), vec![&id(&other)]);

    // The witness: unbound serves the positive RRset no longer than its TTL says.
    let reply = lab.query_resolver(&other_text, "TLSA");
    assert!(reply.records("TLSA").all(|r| r.ttl <= 1), "{}", reply.raw);
}

#[test]
fn loopback_helpers_are_sane() {
    let ip = random_loopback_v4();
    assert!(matches!(ip, IpAddr::V4(v4) if v4.is_loopback() && v4.octets()[1] >= 100));
}
