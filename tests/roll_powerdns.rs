//! The full roll with PowerDNS as the back-end: a real `pdns_server` (sqlite3, DNSSEC, HTTP
//! API) and a real unbound validating it, the `tlsa` binary driven through a config as an
//! operator would, TTLs of 2 s, and a safety probe comparing the deployed key with the
//! RRset PowerDNS serves and the RRset a second caching unbound returns, every 100 ms.

use crate::support;

use std::time::Instant;

use support::{
    MAIL_OWNER, PowerDnsLab, Resolver, RollDns, SafetyProbe, deployed_key, self_signed_source_in,
    served_by_powerdns, tlsa, write_roll_config_for,
};

/// The zone's SOA serial as the PowerDNS API reports it.
fn serial(lab: &PowerDnsLab) -> u64 {
    lab.zone_json()["serial"]
        .as_u64()
        .expect("the zone has a serial")
}

#[test]
fn a_self_signed_set_is_adopted_and_rolled_through_the_powerdns_api() {
    let started = Instant::now();
    let lab = PowerDnsLab::start();
    let dir = tempfile::tempdir().unwrap();
    let reloaded = dir.path().join("reloaded").display().to_string();
    let config = write_roll_config_for(
        &RollDns::powerdns(&lab),
        dir.path(),
        &self_signed_source_in(lab.zone()),
        &["touch", &reloaded],
    );
    let witness_dir = tempfile::tempdir().unwrap();
    let witness = Resolver::start(
        witness_dir.path(),
        lab.zone(),
        lab.dns_addr(),
        &lab.ds_records().join("\n"),
    );
    let probe = SafetyProbe::start(
        dir.path().join("live"),
        lab.name(MAIL_OWNER),
        lab.dns_addr(),
        witness.addr(),
    );

    // Adoption from nothing: first key published, safe, deployed; a next key published.
    let first = tlsa(&config, &["run", "--wait"]);
    assert!(first.status.success());
    let live = deployed_key(dir.path());
    let records = served_by_powerdns(&lab);
    assert_eq!(records.len(), 2, "live and next: {records:?}");
    assert!(records.contains(&live));

    // The probe must see the first key live before the roll replaces it (the roll deploys
    // the pre-published next key at once).
    support::poll_until(
        "the probe to see the first key deployed",
        std::time::Duration::from_secs(20),
        || {
            probe
                .log()
                .deployed
                .iter()
                .any(|(_, key)| *key == live)
                .then_some(())
        },
    );

    // Idempotent: a rerun changes nothing, not even the serial.
    let serial_before = serial(&lab);
    let again = tlsa(&config, &["run"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("mail: 0 step(s) done"));
    assert_eq!(served_by_powerdns(&lab), records);
    assert_eq!(serial(&lab), serial_before, "no write through the API");

    // The planned roll: the pre-published next key goes live, the old record goes, a fresh
    // next key comes in the same change.
    let roll = tlsa(&config, &["rollover", "--wait"]);
    assert!(roll.status.success());
    let new_live = deployed_key(dir.path());
    assert_ne!(new_live, live);
    assert!(
        records.contains(&new_live),
        "rolled to the pre-published key"
    );
    let after = served_by_powerdns(&lab);
    assert!(after.contains(&new_live));
    assert!(!after.contains(&live), "old key retired: {after:?}");
    assert_eq!(after.len(), 2, "live and a fresh next: {after:?}");
    let stderr = String::from_utf8_lossy(&roll.stderr);
    assert!(stderr.contains("in one change"), "{stderr}");

    support::poll_until(
        "the probe's last samples, with the new key live",
        std::time::Duration::from_secs(20),
        || {
            let log = probe.log();
            let seen = log.deployed.iter().any(|(_, key)| *key == new_live);
            (log.samples >= 20 && seen).then_some(())
        },
    );
    let log = probe.stop();
    eprintln!(
        "probe: {} samples ({} set aside), violations {}; total {:.1} s",
        log.samples,
        log.skipped,
        log.violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    assert!(
        log.deployed.len() >= 2,
        "the probe saw both keys live: {log:?}"
    );
}
