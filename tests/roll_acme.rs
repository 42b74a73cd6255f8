//! `source = { acme = … }` on real servers: pebble as the CA, validating DNS-01 against the
//! lab's signed BIND zone, whose challenge records tlsa publishes through RFC 2136 with
//! TSIG. A set from nothing gets its first certificate from the CA; a planned roll gets
//! the next key's certificate from the CA and deploys it with no TTL wait (its records
//! were safe long before); no challenge record is left behind.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Acme, Lab, tlsa, write_roll_config};

fn leaf(deploy: &Path) -> support::Leaf {
    support::deployed_leaf(deploy)
}

fn next_key(state: &Path) -> String {
    support::state_next_key(state, "mail")
}

/// The safety probe on a Postfix-served set: the key Postfix presents against the RRset a
/// caching validating resolver (returned: it must live as long as the probe) serves.
fn watch_postfix(
    lab: &Lab,
    set: &support::LivePostfixSet,
) -> (support::Resolver, support::SafetyProbe) {
    let witness = lab.start_resolver_with_ds(&lab.ds_records().join("\n"));
    let owner = lab.name("_25._tcp.mail");
    let probe = support::SafetyProbe::presented(lab, &witness, &owner, &[set.smtp], &set.endpoint);
    (witness, probe)
}

fn served(lab: &Lab, owner: &str) -> Vec<String> {
    support::three_one_one(&lab.query_server(owner, "TLSA"))
        .into_iter()
        .collect()
}

#[test]
fn an_acme_set_gets_its_certificates_from_the_ca_and_rolls_without_a_ttl_wait() {
    let lab = Lab::start();
    let acme = Acme::start_dns01(lab.server_addr());
    let zone = lab.zone().trim_end_matches('.').to_string();
    let host = format!("mail.{zone}");
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"{{ acme = {{ directory = "{}", contact = ["mailto:postmaster@{zone}"], names = ["{host}"], ca_file = "{}" }} }}"#,
        acme.directory_url(),
        acme.ca_file().display()
    );
    let config = write_roll_config(&lab, dir.path(), &source, &["true"]);
    let deploy = dir.path().join("live");
    let state = dir.path().join("state");
    let owner = lab.name("_25._tcp.mail");

    // From nothing: account, the first key's certificate, records, deploy.
    let started = Instant::now();
    let first = tlsa(&config, &["run", "--wait"]);
    let to_first = started.elapsed();
    assert!(first.status.success(), "pebble: {}", acme.log_tail());
    let live = leaf(&deploy);
    assert_ne!(
        live.issuer, live.subject,
        "issued by the CA, not self-signed"
    );
    assert!(
        live.issuer.to_lowercase().contains("pebble"),
        "{}",
        live.issuer
    );
    let mut wanted = vec![live.key.clone(), next_key(&state)];
    wanted.sort();
    assert_eq!(served(&lab, &owner), wanted);
    let challenge = lab.query_server(&format!("_acme-challenge.{host}"), "TXT");
    assert!(challenge.rdata("TXT").is_empty(), "challenge removed");
    let account_dir = state.join("acme");
    for file in std::fs::read_dir(&account_dir).unwrap() {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &file.unwrap().metadata().unwrap().permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600, "the account key is private");
    }
    let out = String::from_utf8_lossy(&first.stdout).to_string()
        + &String::from_utf8_lossy(&first.stderr);
    assert!(!out.contains("PRIVATE KEY"), "no key material printed");

    // The next key's records are safe once its TTL (2 s) has passed.
    std::thread::sleep(Duration::from_secs(3));
    let next = next_key(&state);
    let started = Instant::now();
    let roll = tlsa(&config, &["rollover", "--wait"]);
    let rolled_in = started.elapsed();
    assert!(roll.status.success(), "pebble: {}", acme.log_tail());
    let rolled = leaf(&deploy);
    assert_eq!(rolled.key, next, "the pre-published key went live");
    assert!(rolled.issuer.to_lowercase().contains("pebble"));
    let mut wanted = vec![rolled.key.clone(), next_key(&state)];
    wanted.sort();
    assert_eq!(
        served(&lab, &owner),
        wanted,
        "old record retired, a fresh next key"
    );
    assert!(
        lab.query_server(&format!("_acme-challenge.{host}"), "TXT")
            .rdata("TXT")
            .is_empty()
    );
    let status = tlsa(&config, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("acme: certificate valid until"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    eprintln!(
        "acme: run to a deployed CA certificate in {to_first:?}; planned roll (order + deploy + retire) in {rolled_in:?}"
    );
}

#[test]
fn an_acme_order_the_ca_refuses_changes_nothing() {
    let lab = Lab::start();
    // The CA validates against a server that never answers: every order fails.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let acme = Acme::start_dns01(silent.local_addr().unwrap());
    let zone = lab.zone().trim_end_matches('.').to_string();
    let host = format!("mail.{zone}");
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"{{ acme = {{ directory = "{}", names = ["{host}"], ca_file = "{}" }} }}"#,
        acme.directory_url(),
        acme.ca_file().display()
    );
    let config = write_roll_config(&lab, dir.path(), &source, &["true"]);
    let out = tlsa(&config, &["run", "--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not issue the certificate") && stderr.contains(&acme.directory_url()),
        "{stderr}"
    );
    assert!(
        !dir.path().join("live/fullchain.pem").exists(),
        "nothing deployed"
    );
    assert!(
        lab.query_server(&format!("_acme-challenge.{host}"), "TXT")
            .rdata("TXT")
            .is_empty(),
        "no challenge left"
    );
    assert!(
        served(&lab, &lab.name("_25._tcp.mail")).is_empty(),
        "no TLSA record for a key with no certificate"
    );

    // The next timer run does not ask the CA again before the backoff ends (5 minutes
    // after one failure); status says so.
    let again = tlsa(&config, &["run"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("1 ACME order(s) failed in a row") && !stderr.contains("ordering"),
        "{stderr}"
    );
    let status = tlsa(&config, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc[0]["acme"]["backoff"]["failures"], 1, "{doc:#}");
    let text = tlsa(&config, &["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("acme: 1 order(s) failed in a row"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

/// Migration from a certbot lineage: the lineage's certificate stays live while tlsa, now
/// with `source = { acme = … }`, orders the certificate for the next key it had already
/// pre-published; the roll deploys it once safe, with no instant where the served key has
/// no record (the deploy waits for safe_at as every planned roll does).
#[test]
fn a_certbot_lineage_migrates_to_the_acme_source_without_a_gap() {
    let lab = Lab::start();
    let acme = Acme::start_dns01(lab.server_addr());
    let zone = lab.zone().trim_end_matches('.').to_string();
    let host = format!("mail.{zone}");
    let dir = tempfile::tempdir().unwrap();
    // A lineage as certbot leaves it (fullchain.pem, privkey.pem).
    let lineage = dir.path().join("letsencrypt/live/mail");
    std::fs::create_dir_all(&lineage).unwrap();
    let identity = support::TlsIdentity::self_signed(&[&host], 30);
    std::fs::write(lineage.join("fullchain.pem"), &identity.chain_pem).unwrap();
    std::fs::write(lineage.join("privkey.pem"), &identity.key_pem).unwrap();
    let config = write_roll_config(
        &lab,
        dir.path(),
        &support::certbot_source(&lineage),
        &["true"],
    );
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let deploy = dir.path().join("live");
    let state = dir.path().join("state");
    let certbot_key = leaf(&deploy).key;
    let next = next_key(&state);

    // The operator switches the source; nothing changes until the roll.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &support::certbot_source(&lineage),
        &format!(
            r#"{{ acme = {{ directory = "{}", names = ["{host}"], ca_file = "{}" }} }}"#,
            acme.directory_url(),
            acme.ca_file().display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    assert_eq!(
        leaf(&deploy).key,
        certbot_key,
        "the lineage's key stays live"
    );

    assert!(
        tlsa(&config, &["rollover", "--wait"]).status.success(),
        "pebble: {}",
        acme.log_tail()
    );
    let rolled = leaf(&deploy);
    assert_eq!(rolled.key, next, "the pre-published key went live");
    assert!(
        rolled.issuer.to_lowercase().contains("pebble"),
        "{}",
        rolled.issuer
    );
    let mut wanted = vec![rolled.key, next_key(&state)];
    wanted.sort();
    assert_eq!(served(&lab, &lab.name("_25._tcp.mail")), wanted);
}

/// An ACME set served by a real Postfix, watched by the safety probe from before its first
/// certificate through two planned rolls: no instant where Postfix presents a key missing
/// from the RRset a validating sender's cache holds.
#[test]
fn acme_rolls_under_the_safety_probe_against_postfix() {
    let lab = Lab::start();
    let acme = Acme::start_dns01(lab.server_addr());
    let zone = lab.zone().trim_end_matches('.').to_string();
    let source = format!(
        r#"{{ acme = {{ directory = "{}", names = ["mail.{zone}"], ca_file = "{}" }} }}"#,
        acme.directory_url(),
        acme.ca_file().display()
    );
    let set = support::LivePostfixSet::start_with_source(&lab, &source);
    let (_witness, probe) = watch_postfix(&lab, &set);
    assert!(
        tlsa(&set.config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        acme.log_tail()
    );
    let mut keys = vec![set.deployed()];
    for _ in 0..2 {
        assert!(tlsa(&set.config, &["rollover", "--wait"]).status.success());
        keys.push(set.deployed());
    }
    std::thread::sleep(Duration::from_secs(3));
    let log = probe.stop();
    eprintln!(
        "acme under the probe: {} samples ({} skipped), {} keys, violations: {}",
        log.samples,
        log.skipped,
        keys.len(),
        log.violations.len()
    );
    assert!(log.samples >= 30, "the probe sampled the rolls");
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    keys.dedup();
    assert_eq!(keys.len(), 3, "three keys, each CA-issued: {keys:?}");
    assert!(leaf(&set.deploy).issuer.to_lowercase().contains("pebble"));
}

/// The renewals `tlsa run` starts by itself, watched by the safety probe against a real
/// Postfix: certificates of 30 s with `roll_every = 2` — at two thirds of the first
/// lifetime a renewal that keeps the key (a new certificate Postfix reloads, no TLSA
/// change), at two thirds of the second a roll to the pre-published key. No instant where
/// Postfix presents a key missing from what a validating sender's cache holds.
#[test]
fn renewals_keeping_and_rolling_the_key_under_the_safety_probe_against_postfix() {
    let lab = Lab::start();
    let options = support::AcmeOptions {
        validity_seconds: Some(30),
        ..support::AcmeOptions::default()
    };
    let acme = Acme::start_validating(lab.server_addr(), &options);
    let zone = lab.zone().trim_end_matches('.').to_string();
    let source = support::acme_source(&acme, &[&format!("mail.{zone}")], "roll_every = 2");
    let set = support::LivePostfixSet::start_with_source(&lab, &source);
    let (_witness, probe) = watch_postfix(&lab, &set);
    let renew_at = |leaf: &support::Leaf| {
        let lifetime = leaf.not_after.duration_since(leaf.not_before).unwrap();
        leaf.not_before + lifetime * 2 / 3 + Duration::from_secs(1)
    };
    let sleep_until = |at: std::time::SystemTime| {
        if let Ok(left) = at.duration_since(std::time::SystemTime::now()) {
            std::thread::sleep(left);
        }
    };
    assert!(
        tlsa(&set.config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        acme.log_tail()
    );
    let first = leaf(&set.deploy);
    sleep_until(renew_at(&first));
    assert!(tlsa(&set.config, &["run", "--wait"]).status.success());
    let kept = leaf(&set.deploy);
    assert_eq!(kept.key, first.key, "the first renewal keeps the key");
    assert!(kept.not_after > first.not_after, "a new certificate");
    sleep_until(renew_at(&kept));
    assert!(tlsa(&set.config, &["run", "--wait"]).status.success());
    let rolled = leaf(&set.deploy);
    assert_ne!(rolled.key, kept.key, "the second renewal rolls the key");
    std::thread::sleep(Duration::from_secs(3));
    let log = probe.stop();
    eprintln!(
        "acme renewals under the probe: {} samples ({} skipped), violations: {}",
        log.samples,
        log.skipped,
        log.violations.len()
    );
    assert!(log.samples >= 30, "the probe sampled the renewals");
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
}
