//! What is particular to the RFC 2136 back-end, against real servers: BIND 9 and Knot DNS
//! serving a signed zone (see `tests/support`), each test body run once per server — zone
//! discovery, UDP and TCP messages, a change split over several messages, TSIG failures
//! (BADSIG, BADKEY, BADTIME, unsigned) and REFUSED. Publish, replace, delete, several owners,
//! compare-and-swap against another writer, TTL changes and each record type are the
//! back-end contract in `tests/provider_contract.rs`. Run with `cargo test --test integration dns_rfc2136::`.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;

use support::records::{name, tlsa_of};
use support::{Forwarder, Lab, poll_until};
use tlsa::dns::publish::rfc2136::Rfc2136;
use tlsa::dns::publish::tsig::TsigKey;
use tlsa::dns::{
    Applied, ChangeSet, DnsError, Edit, Provider, Rdata, RrType, Rrset, RrsetChange, RrsetId,
    apply_edits,
};
use tlsa::tlsa::TlsaRecord;

/// Generous bounds: the machine may be busy with other tests; polls end as soon as they see.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------
// Running one body against each server

/// Runs `body` on a fresh runtime; the lab is created and dropped on the test's own thread.
fn run(lab: Lab, body: impl AsyncFnOnce(&Lab)) {
    let runtime = support::runtime();
    runtime.block_on(body(&lab));
    drop(runtime);
    drop(lab);
}

/// `bind::NAME` and `knot::NAME` tests running the body `NAME(&Lab)`.
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {
        mod bind {
            $( #[test] fn $name() { super::run(super::Lab::start(), super::$name) } )*
        }
        mod knot {
            $( #[test] fn $name() { super::run(super::Lab::start_knot(), super::$name) } )*
        }
    };
}

on_both_servers!(
    zone_is_found_at_the_server,
    several_owners_go_out_as_one_update,
    a_change_too_large_for_one_message_goes_out_in_parts,
    authentication_failures_leave_the_zone_unchanged,
);

// ------------------------------------------------------------------------------------------
// Helpers

fn zone(lab: &Lab) -> Name {
    name(lab.zone())
}

fn owner(lab: &Lab, relative: &str) -> Name {
    name(&lab.name(relative))
}

/// The lab's key, read from the key file `tsig-keygen` wrote.
fn lab_key(lab: &Lab) -> TsigKey {
    TsigKey::from_file(lab.tsig_key_file(), Some(lab.tsig_key_name())).expect("lab key file")
}

/// The back-end at the lab's server with the lab's key; the zone is found by asking.
fn provider(lab: &Lab) -> Rfc2136 {
    Rfc2136::new(lab.server_addr(), Some(lab_key(lab)))
}

/// A `3 1 1` record whose digest is `byte` repeated.
fn rec(byte: u8) -> Rdata {
    Rdata::Tlsa(TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![byte; 32],
    })
}

/// A `3 1 2` record (64-byte digest), to make messages big.
fn rec512(byte: u8) -> Rdata {
    Rdata::Tlsa(TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 2,
        data: vec![byte; 64],
    })
}

fn set(records: &[Rdata]) -> BTreeSet<Rdata> {
    records.iter().cloned().collect()
}

fn add(owner: &Name, records: &[Rdata], ttl: u32) -> Edit {
    Edit {
        rtype: RrType::Tlsa,
        owner: owner.clone(),
        add: set(records),
        remove: BTreeSet::new(),
        replace_all: false,
        ttl,
    }
}

fn replace(owner: &Name, records: &[Rdata], ttl: u32) -> Edit {
    Edit {
        rtype: RrType::Tlsa,
        replace_all: true,
        ..add(owner, records, ttl)
    }
}

async fn apply(provider: &dyn Provider, lab: &Lab, edits: &[Edit]) -> Applied {
    apply_edits(provider, &zone(lab), edits)
        .await
        .unwrap_or_else(|e| panic!("apply {edits:?}: {e}"))
        .expect("a change was needed")
}

async fn read(lab: &Lab, owner: &Name) -> Rrset {
    provider(lab)
        .read(&zone(lab), &RrsetId::tlsa(owner.clone()))
        .await
        .unwrap_or_else(|e| panic!("read {owner}: {e}"))
}

/// The change is published: the authoritative server serves exactly `expected` at `owner`
/// with an RRSIG over it (or a signed denial when `expected` is empty), and the lab's
/// validating unbound answers the same with AD. Polls, bounded.
///
/// The one place to extend with more witnesses (e.g. the crate's own DNSSEC validator).
fn assert_published(lab: &Lab, owner: &Name, expected: &[Rdata]) {
    let owner = owner.to_string();
    let expected = set(expected);
    poll_until(
        &format!("{owner} TLSA = {expected:?}, signed, at {:?}", lab.kind()),
        PUBLISH_TIMEOUT,
        || {
            let reply = lab.query_server(&owner, "TLSA");
            let signed = if expected.is_empty() {
                // NXDOMAIN or NODATA, proven by a signed NSEC.
                matches!(reply.status.as_str(), "NXDOMAIN" | "NOERROR")
                    && reply.raw.contains("NSEC")
                    && reply.raw.contains("RRSIG")
            } else {
                reply.is_noerror() && reply.is_signed("TLSA")
            };
            (signed && reply.has_flag("aa") && tlsa_of(&reply) == expected).then_some(())
        },
    );
    // unbound may hold the previous answer for its TTL: that cache is not what is tested here.
    lab.flush_resolver();
    poll_until(
        &format!("{owner} TLSA = {expected:?} validated by unbound"),
        PUBLISH_TIMEOUT,
        || {
            let reply = lab.query_resolver(&owner, "TLSA");
            let status_ok = if expected.is_empty() {
                matches!(reply.status.as_str(), "NXDOMAIN" | "NOERROR")
            } else {
                reply.is_noerror()
            };
            (status_ok && reply.has_flag("ad") && tlsa_of(&reply) == expected).then_some(())
        },
    );
}

// ------------------------------------------------------------------------------------------
// Test bodies

async fn zone_is_found_at_the_server(lab: &Lab) {
    let p = provider(lab);
    let apex = zone(lab);
    assert_eq!(p.zone_of(&apex).await.unwrap(), apex);
    let deep = owner(lab, "_25._tcp.mx.deep.below");
    assert_eq!(p.zone_of(&deep).await.unwrap(), apex);
    // an existing name (NODATA for SOA)
    assert_eq!(p.zone_of(&owner(lab, "ns1")).await.unwrap(), apex);

    let foreign = name("_25._tcp.mail.example.org.");
    let e = p.zone_of(&foreign).await.expect_err("not served here");
    let text = e.to_string();
    assert!(
        text.contains(&lab.server_addr().to_string())
            && text.contains("not authoritative for any zone holding _25._tcp.mail.example.org."),
        "{text}"
    );
    let e = p
        .read(&name("example.org."), &RrsetId::tlsa(foreign.clone()))
        .await
        .expect_err("not served here");
    assert!(matches!(e, DnsError::NotAuthoritative { .. }), "{e:?}");

    // a configured zone is used as is, and checked
    let configured = provider(lab).with_zone(apex.clone());
    assert_eq!(configured.zone_of(&deep).await.unwrap(), apex);
    let e = configured
        .zone_of(&foreign)
        .await
        .expect_err("outside the zone");
    assert!(e.to_string().contains("is not in zone"), "{e}");
}

async fn several_owners_go_out_as_one_update(lab: &Lab) {
    let forwarder = Forwarder::start(lab.server_addr()).await;
    let p = Rfc2136::new(forwarder.addr, Some(lab_key(lab)));
    let owners: Vec<Name> = ["_25._tcp.mx1", "_25._tcp.mx2", "_443._tcp.www"]
        .iter()
        .map(|o| owner(lab, o))
        .collect();

    // small: UDP
    let edits: Vec<Edit> = owners
        .iter()
        .enumerate()
        .map(|(i, o)| add(o, &[rec(10 + i as u8)], 60))
        .collect();
    apply(&p, lab, &edits).await;
    assert_eq!(forwarder.updates(), (1, 0), "UPDATE messages (UDP, TCP)");
    for (i, o) in owners.iter().enumerate() {
        assert_published(lab, o, &[rec(10 + i as u8)]);
    }

    // big (> 512 bytes): TCP, still one message
    let edits: Vec<Edit> = owners
        .iter()
        .enumerate()
        .map(|(i, o)| replace(o, &[rec512(20 + i as u8), rec512(30 + i as u8)], 60))
        .collect();
    apply(&p, lab, &edits).await;
    assert_eq!(forwarder.updates(), (1, 1), "UPDATE messages (UDP, TCP)");
    for (i, o) in owners.iter().enumerate() {
        assert_published(lab, o, &[rec512(20 + i as u8), rec512(30 + i as u8)]);
    }
    assert!(
        forwarder.queries() > 0,
        "reads went through the forwarder too"
    );
}

/// 400 owners with two `3 1 2` records each need about 100 KB: more than one TCP message can
/// carry (64 KiB). The change goes out as two UPDATEs and every owner gets its records.
async fn a_change_too_large_for_one_message_goes_out_in_parts(lab: &Lab) {
    let forwarder = Forwarder::start(lab.server_addr()).await;
    let p = Rfc2136::new(forwarder.addr, Some(lab_key(lab)));
    let records = |i: usize| [rec512(i as u8), rec512(i as u8 ^ 0xff)];
    let owners: Vec<Name> = (0..400)
        .map(|i| owner(lab, &format!("_25._tcp.host-{i:03}")))
        .collect();
    let edits: Vec<Edit> = owners
        .iter()
        .enumerate()
        .map(|(i, o)| add(o, &records(i), 60))
        .collect();
    apply(&p, lab, &edits).await;
    assert_eq!(forwarder.updates(), (0, 2), "UPDATE messages (UDP, TCP)");
    // The server answers an UPDATE before it has signed every new name: poll.
    let deadline = std::time::Instant::now() + PUBLISH_TIMEOUT;
    loop {
        let mut missing = Vec::new();
        for (i, o) in owners.iter().enumerate() {
            if read(lab, o).await.records != set(&records(i)) {
                missing.push(i);
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "owners not served as changed after {PUBLISH_TIMEOUT:?}: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn authentication_failures_leave_the_zone_unchanged(lab: &Lab) {
    let good = provider(lab);
    let mail = owner(lab, "_25._tcp.mail");
    apply(&good, lab, &[add(&mail, &[rec(1)], 60)]).await;
    let serial = good.soa_serial(&zone(lab)).await.unwrap();
    let server = lab.server_addr().to_string();
    let attempt = [add(&mail, &[rec(2)], 60)];

    // the secret never shows
    let secret = lab.tsig_secret();
    for text in [
        format!("{good:?}"),
        good.describe(),
        format!("{:?}", lab_key(lab)),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert_eq!(
        good.describe(),
        format!("RFC 2136 at {server} (key {}.)", lab.tsig_key_name())
    );

    // wrong secret: BADSIG
    let wrong = wrong_secret(lab);
    let e = apply_edits(
        &Rfc2136::new(lab.server_addr(), Some(wrong)),
        &zone(lab),
        &attempt,
    )
    .await
    .expect_err("wrong secret");
    assert_auth_failed(&e, lab, lab.tsig_key_name(), "BADSIG");

    // unknown key name: BADKEY
    let unknown =
        TsigKey::parse_spec(&format!("hmac-sha256:no-such-key:{secret}"), "test").unwrap();
    let e = apply_edits(
        &Rfc2136::new(lab.server_addr(), Some(unknown)),
        &zone(lab),
        &attempt,
    )
    .await
    .expect_err("unknown key");
    assert_auth_failed(&e, lab, "no-such-key", "BADKEY");

    // good key, clock an hour off: BADTIME
    let current = good
        .read(&zone(lab), &RrsetId::tlsa(mail.clone()))
        .await
        .unwrap();
    let change = ChangeSet {
        zone: zone(lab),
        changes: vec![RrsetChange {
            rtype: RrType::Tlsa,
            owner: mail.clone(),
            expected: current.records.clone(),
            desired: set(&[rec(1), rec(2)]),
            ttl: 60,
        }],
    };
    let e = good
        .apply_at(&change, unix_now() - 3600)
        .await
        .expect_err("clock skew");
    assert_auth_failed(&e, lab, lab.tsig_key_name(), "BADTIME");

    // no key at all: refused
    let e = apply_edits(&Rfc2136::new(lab.server_addr(), None), &zone(lab), &attempt)
        .await
        .expect_err("unsigned");
    match &e {
        DnsError::UpdateRefused {
            server: s,
            zone: z,
            key,
            ..
        } => {
            assert_eq!((*s, z), (lab.server_addr(), &zone(lab)));
            assert!(key.starts_with("an unsigned request"), "{key}");
        }
        other => panic!("expected UpdateRefused, got {other:?}: {other}"),
    }
    eprintln!("{:?} unsigned: {e}", lab.kind());
    // also over TCP (a message over 512 bytes)
    let big: Vec<Rdata> = (40..50).map(rec512).collect();
    let unsigned = Rfc2136::new(lab.server_addr(), None);
    let e = apply_edits(&unsigned, &zone(lab), &[add(&mail, &big, 60)])
        .await
        .expect_err("unsigned over TCP");
    assert!(matches!(e, DnsError::UpdateRefused { .. }), "{e:?}");

    // nothing changed
    assert_eq!(read(lab, &mail).await.records, set(&[rec(1)]));
    assert_eq!(good.soa_serial(&zone(lab)).await.unwrap(), serial);
    assert_published(lab, &mail, &[rec(1)]);
}

fn assert_auth_failed(e: &DnsError, lab: &Lab, key_name: &str, tsig_error: &str) {
    eprintln!("{:?} {tsig_error}: {e}", lab.kind());
    match e {
        DnsError::AuthFailed {
            server,
            key,
            detail,
        } => {
            assert_eq!(*server, lab.server_addr());
            assert_eq!(*key, name(&format!("{key_name}.")));
            assert!(detail.starts_with(tsig_error), "{detail}");
        }
        other => panic!("expected AuthFailed {tsig_error}, got {other:?}: {other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains(&lab.server_addr().to_string()) && text.contains(key_name),
        "{text}"
    );
}

/// The lab key with one base64 character of its secret changed.
fn wrong_secret(lab: &Lab) -> TsigKey {
    let secret = lab.tsig_secret();
    let first = if secret.starts_with('A') { "B" } else { "A" };
    let spec = format!(
        "hmac-sha256:{}:{first}{}",
        lab.tsig_key_name(),
        &secret[1..]
    );
    TsigKey::parse_spec(&spec, "test").unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// BIND answers REFUSED to an unsigned UPDATE and to questions about a zone it does not serve
/// (LAB.md); the messages must say REFUSED, not NOTAUTH (which is what Knot and a TSIG failure
/// answer, and means something else).
#[test]
fn refused_is_reported_as_refused() {
    run(Lab::start(), async |lab: &Lab| {
        let unsigned = Rfc2136::new(lab.server_addr(), None);
        let e = apply_edits(
            &unsigned,
            &zone(lab),
            &[add(&owner(lab, "_25._tcp.mail"), &[rec(7)], 60)],
        )
        .await
        .expect_err("unsigned");
        let text = e.to_string();
        assert!(
            text.contains("REFUSED") && !text.contains("NOTAUTH"),
            "{text}"
        );

        let elsewhere = name("not-served-here.test.");
        let e = provider(lab)
            .read(
                &elsewhere,
                &RrsetId::tlsa(name("_25._tcp.mail.not-served-here.test.")),
            )
            .await
            .expect_err("a zone BIND does not serve");
        let text = e.to_string();
        assert!(
            text.contains("REFUSED") && !text.contains("NOTAUTH"),
            "{text}"
        );
    });
}
