//! Proves the integration-test lab works: real BIND 9 / Knot DNS accept TSIG updates and serve
//! them signed, and a real unbound validates them (AD) or rejects them (SERVFAIL) depending
//! on its trust anchor. Run with `cargo test --test integration lab::`.

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::{Lab, LabOptions, Server, poll_until};

/// Generous bounds: the machine may be busy with other tests; polls end as soon as they see.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// A syntactically valid SHA-256 TLSA association (the value does not matter to DNS).
const SPKI_SHA256: &str = "8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";

/// Publishes `_25._tcp.mail.ZONE 2 IN TLSA 3 1 1 …` with nsupdate and returns the owner name.
fn publish_tlsa(lab: &Lab) -> String {
    let owner = lab.name("_25._tcp.mail");
    lab.nsupdate_ok(&format!("update add {owner} 2 IN TLSA 3 1 1 {SPKI_SHA256}"));
    owner
}

fn is_our_tlsa(rdata: &str) -> bool {
    rdata.eq_ignore_ascii_case(&format!("3 1 1 {SPKI_SHA256}"))
}

/// Polls the authoritative server until it serves the TLSA record with an RRSIG over it.
fn assert_served_signed(lab: &Lab, owner: &str) {
    poll_until(
        &format!("{owner} TLSA served signed by {:?}", lab.kind()),
        PUBLISH_TIMEOUT,
        || {
            let reply = lab.query_server(owner, "TLSA");
            let served = reply.rdata("TLSA").into_iter().any(is_our_tlsa);
            (served && reply.has_flag("aa") && reply.is_signed("TLSA")).then_some(())
        },
    );
}

/// Polls the validating resolver until it answers the TLSA record with AD set.
fn assert_validated(lab: &Lab, owner: &str) {
    poll_until(
        &format!("{owner} TLSA validated by unbound"),
        PUBLISH_TIMEOUT,
        || {
            let reply = lab.query_resolver(owner, "TLSA");
            let answered = reply.rdata("TLSA").into_iter().any(is_our_tlsa);
            (reply.is_noerror() && answered && reply.has_flag("ad")).then_some(())
        },
    );
}

fn update_is_served_signed(lab: &Lab) {
    let owner = publish_tlsa(lab);
    assert_served_signed(lab, &owner);
}

fn update_validates_through_unbound(lab: &Lab) {
    let owner = publish_tlsa(lab);
    assert_served_signed(lab, &owner);
    assert_validated(lab, &owner);
}

/// An unbound trusting a wrong DS answers SERVFAIL, while the lab's own unbound validates
/// the very same record (so the failure is the anchor's, not the network's).
fn wrong_ds_gives_servfail(lab: &Lab) {
    let owner = publish_tlsa(lab);
    assert_validated(lab, &owner);
    let bogus = lab.start_resolver_with_ds(&lab.wrong_ds());
    let reply = poll_until(
        "an answer from the wrong-DS unbound",
        PUBLISH_TIMEOUT,
        || {
            let reply = bogus.query(&owner, "TLSA", &[]);
            (!reply.status.is_empty()).then_some(reply)
        },
    );
    assert_eq!(reply.status, "SERVFAIL", "{}", reply.raw);
    assert!(reply.rdata("TLSA").is_empty(), "{}", reply.raw);
    // EDE 9 (DNSKEY Missing): no DNSKEY matches the anchor — a validation failure.
    assert!(reply.raw.contains("EDE: 9"), "{}", reply.raw);
}

/// The DNSKEY anchor and the DS records describe the same key: the DS recomputed from the
/// DNSKEY anchor file by BIND's tool equals the server's own DS.
fn anchors_agree(lab: &Lab) {
    let output = std::process::Command::new(support::tool("dnssec-dsfromkey"))
        .args(["-2", "-f"])
        .arg(lab.dnskey_anchor_file())
        .arg(lab.zone())
        .output()
        .expect("run dnssec-dsfromkey");
    assert!(output.status.success(), "{output:?}");
    let recomputed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| rdata_of(line, "DS"))
        .collect();
    let ds: Vec<String> = lab.ds_records().iter().map(|l| rdata_of(l, "DS")).collect();
    assert_eq!(recomputed, ds);
    let anchor = std::fs::read_to_string(lab.ds_anchor_file()).expect("read DS anchor");
    assert_eq!(anchor.lines().collect::<Vec<_>>(), lab.ds_records());
    for line in lab.dnskey_records() {
        assert!(line.contains(" IN DNSKEY 257 3 13 "), "{line}");
    }
}

/// The fields after `rtype`, upper-cased.
fn rdata_of(line: &str, rtype: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| *f == rtype)
        .expect("record type");
    fields[at + 1..].join(" ").to_ascii_uppercase()
}

/// hickory (the library's resolver) trusts the zone's key from the DNSKEY anchor file.
fn hickory_reads_dnskey_anchor(lab: &Lab) {
    use base64::Engine as _;
    use hickory_proto::dnssec::{Algorithm, PublicKeyBuf, TrustAnchors};
    use hickory_proto::rr::{LowerName, Name};

    let anchors = TrustAnchors::from_file(lab.dnskey_anchor_file()).expect("hickory parses");
    let zone = LowerName::from(Name::from_ascii(lab.zone()).expect("zone name"));
    for line in lab.dnskey_records() {
        let key_b64 = line.split_whitespace().last().expect("key field");
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .expect("base64 key");
        let key = PublicKeyBuf::new(key, Algorithm::ECDSAP256SHA256);
        assert!(anchors.contains_with_name(&key, &zone), "{line}");
    }
}

#[test]
fn bind_update_is_served_signed() {
    update_is_served_signed(&Lab::start());
}

#[test]
fn bind_update_validates_through_unbound() {
    update_validates_through_unbound(&Lab::start());
}

#[test]
fn bind_wrong_ds_gives_servfail() {
    wrong_ds_gives_servfail(&Lab::start());
}

#[test]
fn bind_anchors_agree() {
    let lab = Lab::start();
    anchors_agree(&lab);
    hickory_reads_dnskey_anchor(&lab);
}

#[test]
fn knot_update_is_served_signed() {
    update_is_served_signed(&Lab::start_knot());
}

#[test]
fn knot_update_validates_through_unbound() {
    update_validates_through_unbound(&Lab::start_knot());
}

#[test]
fn knot_wrong_ds_gives_servfail() {
    wrong_ds_gives_servfail(&Lab::start_knot());
}

#[test]
fn knot_anchors_agree() {
    let lab = Lab::start_knot();
    anchors_agree(&lab);
    hickory_reads_dnskey_anchor(&lab);
}

#[test]
fn lab_metadata_is_consistent() {
    let lab = Lab::start();
    assert_eq!(lab.kind(), Server::Bind);
    assert!(lab.zone().ends_with(".test."), "{}", lab.zone());
    assert_eq!(lab.tsig_algorithm(), "hmac-sha256");
    let key = std::fs::read_to_string(lab.tsig_key_file()).expect("read key file");
    assert!(
        key.contains(&format!("key \"{}\"", lab.tsig_key_name())),
        "{key}"
    );
    assert!(key.contains(lab.tsig_secret()), "{key}");
    assert!(lab.tsig_key_file().starts_with(lab.dir()));
    assert!(lab.server_addr().ip().is_loopback() && lab.resolver_addr().ip().is_loopback());
}

#[test]
fn ttl_is_configurable() {
    let lab = Lab::with_options(LabOptions {
        server: Server::Knot,
        ttl: 7,
    });
    let reply = lab.query_server(lab.zone(), "SOA");
    let soa = reply.records("SOA").next().expect("SOA answer");
    assert_eq!(soa.ttl, 7, "{}", reply.raw);
    // The SOA minimum (last field) bounds negative caching.
    assert!(soa.rdata.ends_with(" 7"), "{}", reply.raw);
    let reply = lab.query_server(lab.zone(), "DNSKEY");
    assert!(reply.records("DNSKEY").all(|k| k.ttl == 7), "{}", reply.raw);
}

/// The resolver caches for the record's TTL (what a TLSA roll must wait out), and
/// `flush_resolver` forgets the cache at once.
#[test]
fn resolver_caches_until_flushed() {
    let lab = Lab::start();
    let owner = lab.name("_25._tcp.cached");
    let record = format!("{owner} 300 IN TLSA 3 1 1 {SPKI_SHA256}");
    lab.nsupdate_ok(&format!("update add {record}"));
    assert_validated(&lab, &owner);
    lab.nsupdate_ok(&format!("update delete {owner} TLSA"));
    poll_until("the deletion served", PUBLISH_TIMEOUT, || {
        (lab.query_server(&owner, "TLSA").status == "NXDOMAIN").then_some(())
    });
    let cached = lab.query_resolver(&owner, "TLSA");
    assert!(
        cached.rdata("TLSA").into_iter().any(is_our_tlsa),
        "{}",
        cached.raw
    );
    lab.flush_resolver();
    let fresh = lab.query_resolver(&owner, "TLSA");
    assert_eq!(fresh.status, "NXDOMAIN", "{}", fresh.raw);
    assert!(fresh.has_flag("ad"), "{}", fresh.raw);
}

#[test]
fn two_labs_run_side_by_side() {
    let (bind, knot) = (Lab::start(), Lab::start_knot());
    let ports = [
        bind.server_addr().port(),
        bind.resolver_addr().port(),
        knot.server_addr().port(),
        knot.resolver_addr().port(),
    ];
    let mut unique = ports.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 4, "ports must differ: {ports:?}");
    assert_ne!(bind.zone(), knot.zone());
    assert_ne!(bind.dir(), knot.dir());
    assert_ne!(bind.tsig_secret(), knot.tsig_secret());
    // Each resolver validates its own lab's zone only.
    let (bind_owner, knot_owner) = (publish_tlsa(&bind), publish_tlsa(&knot));
    assert_validated(&bind, &bind_owner);
    assert_validated(&knot, &knot_owner);
    let crossed = bind.query_resolver(&knot_owner, "TLSA");
    assert!(crossed.rdata("TLSA").is_empty(), "{}", crossed.raw);
    // An update signed with the other lab's key is rejected.
    let foreign = bind.nsupdate(&format!(
        "key hmac-sha256:{} {}\nupdate add {} 2 IN TXT \"x\"",
        knot.tsig_key_name(),
        knot.tsig_secret(),
        bind.name("foreign")
    ));
    assert!(!foreign.status.success(), "{foreign:?}");
}

#[test]
fn processes_are_gone_after_drop() {
    let lab = Lab::start();
    let extra = lab.start_resolver_with_ds(&lab.wrong_ds());
    let mut pids = lab.pids();
    pids.push(extra.pid());
    let dir = lab.dir().to_owned();
    for pid in &pids {
        assert!(proc_entry(*pid).exists(), "pid {pid} should be running");
    }
    drop(extra);
    drop(lab);
    for pid in pids {
        assert!(!proc_entry(pid).exists(), "pid {pid} survived the lab");
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive, "pid {pid} still accepts signals");
    }
    assert!(!dir.exists() || std::env::var("TLSA_LAB_KEEP").is_ok());
}

fn proc_entry(pid: u32) -> std::path::PathBuf {
    Path::new("/proc").join(pid.to_string())
}

#[test]
#[should_panic(
    expected = "`no-such-lab-tool` not found: install the lab packages with `scripts/install-test-deps`"
)]
fn a_missing_tool_fails_loudly() {
    support::tool("no-such-lab-tool");
}
