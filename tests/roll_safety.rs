//! The safety invariant, observed from outside during a real planned roll:
//! the shared [`SafetyProbe`] samples every 100 ms the TLSA RRset as a
//! sender's caching resolver (its own unbound) returns it, and the key a real
//! Postfix presents over STARTTLS, and counts the instants where the
//! presented key is missing from the cached RRset. The roll observes Postfix
//! itself on every run and verifies live before it retires anything.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Lab, LivePostfixSet, SafetyProbe, presented_key, tlsa};
use tlsa::roll::plan::KeyMaterial;

#[test]
fn planned_roll_never_presents_a_key_missing_from_a_cached_rrset() {
    let lab = Lab::start();
    let set = LivePostfixSet::start(&lab);
    let (config, deploy, smtp, endpoint) = (&set.config, &set.deploy, set.smtp, &set.endpoint);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Postfix must not go on presenting the certificate it started with: tlsa
    // observes it, and a key nobody publishes would be an emergency. Until
    // the first deploy it presents nothing.
    support::poll_until(
        "Postfix presents no key until the first deploy",
        Duration::from_secs(20),
        || {
            presented_key(&runtime, smtp, endpoint)
                .is_none()
                .then_some(())
        },
    );

    // Steady state first: the first key live in Postfix and in DNS.
    assert!(tlsa(config, &["run", "--wait"]).status.success());
    let owner = lab.name("_25._tcp.mail");
    let witness = lab.start_resolver_with_ds(&lab.ds_records().join("\n"));
    let first_key = KeyMaterial::from_spki(
        &tlsa::tlsa::load_file(&deploy.join("fullchain.pem"))
            .unwrap()
            .spki,
    )
    .id;
    support::poll_until(
        "Postfix presents the deployed key",
        Duration::from_secs(20),
        || (presented_key(&runtime, smtp, endpoint).as_ref() == Some(&first_key)).then_some(()),
    );

    // Two rolls back to back, watched by the probe from start to end. The
    // second rolls to a next key published moments before (by the first
    // roll's retire step), so it has to wait for that key's t_safe.
    let probe_start = Instant::now();
    let probe = SafetyProbe::presented(&lab, &witness, &owner, &[smtp], endpoint);
    std::thread::sleep(Duration::from_millis(600));
    assert!(tlsa(config, &["rollover", "--wait"]).status.success());
    let second_key_live = deployed(deploy);
    let state_file = tlsa::roll::state::set_file(&set.dir.path().join("state"), "mail");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let third_key = state["next_key"].as_str().unwrap().to_string();
    let safe_at: tlsa::roll::state::Timestamp =
        serde_json::from_value(state["keys"][&third_key]["safe_at"].clone()).unwrap();
    let roll_start = probe_start.elapsed();
    let roll_start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(tlsa(config, &["rollover", "--wait"]).status.success());
    std::thread::sleep(Duration::from_secs(3)); // caches of the final RRset expire
    let log = probe.stop();

    let final_key = deployed(deploy);
    assert_eq!(final_key, third_key);
    assert_ne!(second_key_live, first_key);
    let live_at = log
        .deployed
        .iter()
        .find(|(_, key)| *key == final_key)
        .map(|(at, _)| *at)
        .expect("the probe saw the last key go live");
    // Figures for the closing note: how close the deploy came to t_safe.
    let wait_needed = safe_at.unix_ms() as f64 / 1000.0 - roll_start_unix;
    let took = (live_at - roll_start).as_secs_f64();
    eprintln!(
        "probe: {} samples ({} skipped); second roll: t_safe {:.2} s after its start, key presented {:.2} s after its start (ratio {:.2}); violations: {}",
        log.samples,
        log.skipped,
        wait_needed,
        took,
        took / wait_needed.max(0.001),
        log.violations.len()
    );
    assert!(log.samples >= 20, "the probe sampled both rolls");
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    assert!(took + 0.2 >= wait_needed, "the key went live before t_safe");
    let order: Vec<&str> = log.deployed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        order,
        [
            first_key.as_str(),
            second_key_live.as_str(),
            final_key.as_str()
        ],
        "the probe saw both switches"
    );
    let cached = support::three_one_one(&support::DigReply::parse(&support::dig(
        witness.addr(),
        &["+dnssec", "+nosplit", &owner, "TLSA"],
    )));
    assert!(
        !cached.contains(&second_key_live),
        "old record gone at the end: {cached:?}"
    );
    assert!(cached.contains(&final_key));
    assert_eq!(cached.len(), 2, "live and a fresh next key: {cached:?}");
}

fn deployed(deploy: &Path) -> String {
    KeyMaterial::from_spki(
        &tlsa::tlsa::load_file(&deploy.join("fullchain.pem"))
            .unwrap()
            .spki,
    )
    .id
}
