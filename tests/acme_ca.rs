//! How an `acme` set deals with its CA, on real servers: pebble validating for real against
//! the lab's signed BIND zone (names and `_acme-challenge` records) — HTTP-01 from a webroot
//! served by nginx and from tlsa's own listener, External Account Binding, a CA that
//! rejects nonces (tried again within bounds, or a clear failure with nothing left), and
//! short-lived certificates: renewal at two thirds of the lifetime and the alarm before
//! expiry when renewals fail.

use crate::support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use support::{
    Acme, AcmeOptions, Lab, acme_source, deployed_leaf, state_next_key, tlsa, write_roll_config,
};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn host_of(lab: &Lab) -> String {
    format!("mail.{}", lab.zone().trim_end_matches('.'))
}

fn tlsa_served(lab: &Lab) -> Vec<String> {
    support::three_one_one(&lab.query_server(&lab.name("_25._tcp.mail"), "TLSA"))
        .into_iter()
        .collect()
}

fn no_challenge_record(lab: &Lab) -> bool {
    lab.query_server(&format!("_acme-challenge.{}", host_of(lab)), "TXT")
        .rdata("TXT")
        .is_empty()
}

/// A lab, a validating pebble with `options`, and a config of one `acme` set for
/// `mail.ZONE` (`extra`: more keys of the acme table) in a directory of its own.
struct Scene {
    lab: Lab,
    acme: Acme,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Scene {
    fn start(options: &AcmeOptions, extra: &str) -> Self {
        let lab = Lab::start();
        let acme = Acme::start_validating(lab.server_addr(), options);
        let dir = tempfile::tempdir().unwrap();
        let source = acme_source(&acme, &[&host_of(&lab)], extra);
        let config = write_roll_config(&lab, dir.path(), &source, &["true"]);
        Scene {
            lab,
            acme,
            dir,
            config,
        }
    }

    fn deploy(&self) -> std::path::PathBuf {
        self.dir.path().join("live")
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }
}

/// Whether `deploy` holds a certificate pebble issued.
fn issued_by_pebble(deploy: &Path) -> bool {
    deploy.join("fullchain.pem").exists()
        && deployed_leaf(deploy)
            .issuer
            .to_lowercase()
            .contains("pebble")
}

/// Sleeps until `at` (no-op when it has passed).
fn sleep_until(at: SystemTime) {
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        std::thread::sleep(left);
    }
}

#[test]
fn http01_from_a_webroot_and_from_tlsas_own_listener() {
    let lab = Lab::start();
    let acme = Acme::start_dns01(lab.server_addr());
    let host = host_of(&lab);
    // pebble looks the name up on the lab's server and connects to its httpPort there.
    lab.nsupdate_ok(&format!("update add {host}. {} IN A 127.0.0.1", lab.ttl()));
    let nginx = support::start_plain_http(acme.http01_port());
    let webroot = nginx.webroot(0);
    let dir = tempfile::tempdir().unwrap();
    let by_webroot = acme_source(
        &acme,
        &[&host],
        &format!(
            r#"challenge = "http-01", webroot = "{}""#,
            webroot.display()
        ),
    );
    let config = write_roll_config(&lab, dir.path(), &by_webroot, &["true"]);
    let deploy = dir.path().join("live");
    let state = dir.path().join("state");

    let plan = text(&tlsa(&config, &["plan"]));
    assert!(
        plan.contains("(http-01)") && plan.contains(".well-known/acme-challenge/<token>"),
        "{plan}"
    );

    let started = Instant::now();
    let first = tlsa(&config, &["run", "--wait"]);
    let to_first = started.elapsed();
    assert!(
        first.status.success(),
        "pebble: {}\nnginx: {}",
        acme.log_tail(),
        nginx.log_tail()
    );
    let live = deployed_leaf(&deploy);
    assert!(
        live.issuer.to_lowercase().contains("pebble"),
        "{}",
        live.issuer
    );
    let mut wanted = vec![live.key.clone(), state_next_key(&state, "mail")];
    wanted.sort();
    assert_eq!(tlsa_served(&lab), wanted);
    let responses = webroot.join(".well-known/acme-challenge");
    assert_eq!(
        std::fs::read_dir(&responses).unwrap().count(),
        0,
        "the response file is removed after the order"
    );
    assert!(no_challenge_record(&lab), "HTTP-01 publishes no DNS record");

    // No web server any more: tlsa answers the CA itself, on the same port.
    drop(nginx);
    let listen: SocketAddr = ([127, 0, 0, 1], acme.http01_port()).into();
    let standalone = acme_source(
        &acme,
        &[&host],
        &format!(r#"challenge = "http-01", listen = "{listen}""#),
    );
    let text_now = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text_now.replace(&by_webroot, &standalone)).unwrap();
    std::thread::sleep(Duration::from_secs(3)); // the next key's records are safe
    let next = state_next_key(&state, "mail");
    let started = Instant::now();
    let roll = tlsa(&config, &["rollover", "--wait"]);
    let rolled_in = started.elapsed();
    assert!(roll.status.success(), "pebble: {}", acme.log_tail());
    let rolled = deployed_leaf(&deploy);
    assert_eq!(rolled.key, next, "the pre-published key went live");
    assert!(rolled.issuer.to_lowercase().contains("pebble"));
    assert!(
        TcpStream::connect_timeout(&listen, Duration::from_secs(1)).is_err(),
        "the listener is gone after the order"
    );
    eprintln!(
        "http-01: webroot (nginx) run to a deployed certificate in {to_first:?}; standalone planned roll in {rolled_in:?}"
    );
}

/// `kill -9` while the CA is validating (pebble waits up to 5 s before it looks): the
/// challenge record stays behind; the rerun removes it before its own order, obtains the
/// certificate and leaves none.
#[test]
fn a_run_killed_mid_order_leaves_a_record_the_rerun_removes() {
    let options = AcmeOptions {
        va_sleep_seconds: Some(5),
        ..AcmeOptions::default()
    };
    let scene = Scene::start(&options, "");
    let lab = &scene.lab;
    let mut run = std::process::Command::new(support::tlsa_binary())
        .args(["run", "--wait", "-c"])
        .arg(&scene.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = support::try_poll_every(Duration::from_millis(20), Duration::from_secs(30), || {
        (!no_challenge_record(lab)).then_some(())
    });
    assert!(seen.is_some(), "the challenge record was published");
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    assert!(
        !no_challenge_record(lab),
        "a killed run leaves its challenge record"
    );
    assert!(!scene.deploy().join("fullchain.pem").exists());

    let rerun = tlsa(&scene.config, &["run", "--wait"]);
    assert!(rerun.status.success(), "pebble: {}", scene.acme.log_tail());
    assert!(
        no_challenge_record(lab),
        "the rerun removed the leftover and its own"
    );
    assert!(issued_by_pebble(&scene.deploy()));
}

/// One authoritative server (a secondary that never sees an update) does not serve the
/// challenge record: the CA is never told to validate (pebble's validator never runs), the
/// run fails naming that server, and the record is removed; once the zone's servers agree
/// again, the order goes through.
#[test]
fn the_ca_is_not_asked_while_an_authoritative_server_lacks_the_challenge() {
    let scene = Scene::start(&AcmeOptions::default(), "");
    let lagging = scene
        .lab
        .start_frozen_copy(&[support::random_loopback_v4()]);
    let lagging_addr = lagging.addrs()[0].to_string();
    let port_line = format!("ns_port = {}\n", scene.lab.server_addr().port());
    let plain = std::fs::read_to_string(&scene.config).unwrap();
    let with_lagging = plain.replace(
        &port_line,
        &format!("{port_line}extra_servers = [\"{lagging_addr}\"]\n"),
    );
    assert_ne!(plain, with_lagging);
    std::fs::write(&scene.config, &with_lagging).unwrap();

    let out = tlsa(
        &scene.config,
        &["run", "--wait", "--propagation-timeout", "3"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&lagging_addr),
        "the lagging server is named: {said}"
    );
    let validations = |log: &str| log.matches("Pulled a task from the Tasks queue").count();
    assert_eq!(
        validations(&scene.acme.log()),
        0,
        "the CA was never asked to validate: {}",
        scene.acme.log_tail()
    );
    assert!(no_challenge_record(&scene.lab), "the record is removed");
    assert!(!scene.deploy().join("fullchain.pem").exists());

    // The zone's servers agree again (the frozen copy is no longer one of them).
    std::fs::write(&scene.config, &plain).unwrap();
    let again = tlsa(&scene.config, &["rollover", "--wait"]);
    assert!(again.status.success(), "pebble: {}", scene.acme.log_tail());
    assert!(validations(&scene.acme.log()) > 0, "validated this time");
    assert!(issued_by_pebble(&scene.deploy()));
    assert!(no_challenge_record(&scene.lab));
}

#[test]
fn a_ca_that_rejects_some_nonces_is_tried_again_and_issues() {
    let options = AcmeOptions {
        nonce_reject: 30,
        ..AcmeOptions::default()
    };
    let scene = Scene::start(&options, "");
    let started = Instant::now();
    let out = tlsa(&scene.config, &["run", "--wait"]);
    assert!(out.status.success(), "pebble: {}", scene.acme.log_tail());
    let attempts = text(&out).matches("trying again").count();
    assert!(issued_by_pebble(&scene.deploy()));
    assert!(no_challenge_record(&scene.lab));
    eprintln!(
        "30% of nonces rejected: issued in {:?}, {attempts} order attempt(s) tried again by tlsa (instant-acme retries each request up to 3 times first)",
        started.elapsed()
    );
}

#[test]
fn a_ca_that_refuses_every_request_gets_bounded_attempts_and_nothing_is_left() {
    let options = AcmeOptions {
        nonce_reject: 100,
        ..AcmeOptions::default()
    };
    let scene = Scene::start(&options, "");
    let started = Instant::now();
    let out = tlsa(&scene.config, &["run", "--wait"]);
    let took = started.elapsed();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("4 attempt(s)")
            && said.contains("badNonce")
            && said.contains(&scene.acme.directory_url()),
        "{said}"
    );
    assert_eq!(said.matches("trying again").count(), 3, "{said}");
    assert!(
        !scene.deploy().join("fullchain.pem").exists(),
        "nothing deployed"
    );
    assert!(
        tlsa_served(&scene.lab).is_empty(),
        "no record for a key with no certificate"
    );
    assert!(no_challenge_record(&scene.lab));
    eprintln!("every nonce rejected: gave up after 4 attempts in {took:?}");
}

#[test]
fn a_ca_that_requires_external_account_binding() {
    let lab = Lab::start();
    // pebble's documented example MAC key (base64url).
    let mac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let options = AcmeOptions {
        eab: Some(("kid-1".into(), mac.into())),
        ..AcmeOptions::default()
    };
    let acme = Acme::start_validating(lab.server_addr(), &options);
    let host = host_of(&lab);
    let attempt = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_roll_config(
            &lab,
            dir.path(),
            &acme_source(&acme, &[&host], extra),
            &["true"],
        );
        let out = tlsa(&config, &["run", "--wait"]);
        (dir, out)
    };
    let key_file = |dir: &Path, key: &str| {
        let path = dir.join("eab.key");
        std::fs::write(&path, format!("{key}\n")).unwrap();
        path
    };
    let keys = tempfile::tempdir().unwrap();

    let (_, unbound) = attempt("");
    assert_eq!(unbound.status.code(), Some(1), "{}", text(&unbound));
    assert!(
        text(&unbound).contains("externalAccount"),
        "{}",
        text(&unbound)
    );

    let wrong = "c2VjcmV0LXdyb25nLWtleS1mb3ItdGhlLWVhYi10ZXN0";
    let wrong_file = key_file(keys.path(), wrong);
    let (_, refused) = attempt(&format!(
        r#"eab = {{ kid = "kid-1", hmac_key = {{ file = "{}" }} }}"#,
        wrong_file.display()
    ));
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        !text(&refused).contains(wrong),
        "the MAC key is never printed"
    );

    let right_file = key_file(keys.path(), mac);
    let (dir, bound) = attempt(&format!(
        r#"eab = {{ kid = "kid-1", hmac_key = {{ file = "{}" }} }}"#,
        right_file.display()
    ));
    assert!(bound.status.success(), "pebble: {}", acme.log_tail());
    assert!(!text(&bound).contains(mac), "the MAC key is never printed");
    assert!(
        deployed_leaf(&dir.path().join("live"))
            .issuer
            .to_lowercase()
            .contains("pebble")
    );
    let stored = std::fs::read_dir(dir.path().join("state/acme"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(
        !stored.contains(mac),
        "the MAC key is not kept in the state"
    );
}

/// Certificates of 45 s (long enough for the failed renewal's 4 attempts, ~8 s, to end
/// before the alarm window does): `tlsa run` renews at two thirds of the lifetime (a planned roll to
/// the pre-published key), and when the CA then refuses every renewal, the run fails and,
/// from a sixth of the lifetime before the end, says ALARM with the CA's last error —
/// before the certificate expires.
#[test]
fn renewal_at_two_thirds_of_the_lifetime_and_an_alarm_before_expiry() {
    let lifetime = Duration::from_secs(45);
    let options = AcmeOptions {
        validity_seconds: Some(lifetime.as_secs()),
        ..AcmeOptions::default()
    };
    let scene = Scene::start(&options, "");
    let (lab, ca, config) = (&scene.lab, &scene.acme, &scene.config);
    let host = host_of(lab);
    let source = acme_source(ca, &[&host], "");
    let (deploy, state) = (scene.deploy(), scene.state());

    assert!(
        tlsa(config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        ca.log_tail()
    );
    let first = deployed_leaf(&deploy);
    let issued_for = first.not_after.duration_since(first.not_before).unwrap();
    eprintln!("pebble issued a certificate valid for {issued_for:?}");
    assert!(
        issued_for <= lifetime + Duration::from_secs(2),
        "{issued_for:?}"
    );

    // Before two thirds: nothing to do.
    let idle = tlsa(config, &["run"]);
    assert!(idle.status.success());
    assert_eq!(deployed_leaf(&deploy).key, first.key);

    let next = state_next_key(&state, "mail");
    sleep_until(first.not_before + issued_for * 2 / 3 + Duration::from_secs(1));
    let renewal = tlsa(config, &["run", "--wait"]);
    assert!(renewal.status.success(), "pebble: {}", ca.log_tail());
    let second = deployed_leaf(&deploy);
    assert_eq!(
        second.key, next,
        "renewed by a roll to the pre-published key"
    );
    assert!(second.not_after > first.not_after);

    // From now on the CA refuses every request.
    let refusing = Acme::start_validating(
        lab.server_addr(),
        &AcmeOptions {
            nonce_reject: 100,
            ..AcmeOptions::default()
        },
    );
    let text_now = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text_now.replace(&source, &acme_source(&refusing, &[&host], "")),
    )
    .unwrap();
    let lifetime = second.not_after.duration_since(second.not_before).unwrap();
    sleep_until(second.not_before + lifetime * 2 / 3 + Duration::from_secs(1));
    let failed = tlsa(config, &["run"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("badNonce"), "{}", text(&failed));
    assert_eq!(deployed_leaf(&deploy).key, second.key, "nothing deployed");
    assert!(no_challenge_record(lab));

    // Inside the last sixth of the lifetime, and before the end: ALARM, with the CA's error.
    let alarm_from = second.not_after - lifetime / 6;
    sleep_until(alarm_from + Duration::from_millis(300));
    let alarmed = tlsa(config, &["run"]);
    let said = text(&alarmed);
    let before_expiry = SystemTime::now() < second.not_after;
    assert_eq!(alarmed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("ALARM")
            && said.contains("expires at")
            && said.contains("order(s) failed in a row")
            && said.contains("badNonce"),
        "{said}"
    );
    assert!(
        before_expiry,
        "the alarm came before the certificate expired"
    );
    let status = text(&tlsa(config, &["status"]));
    assert!(status.contains("ALARM"), "{status}");
    eprintln!(
        "short-lived certificates: renewed at 2/3 of {issued_for:?}; alarm {:?} before expiry",
        second
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    );
}

/// `roll_every = 2`: the first renewal keeps the key (a new certificate, the TLSA records
/// untouched), the second rolls to the pre-published key. Certificates of 30 s.
#[test]
fn roll_every_two_renewals_keeps_the_key_once_then_rolls() {
    let options = AcmeOptions {
        validity_seconds: Some(30),
        ..AcmeOptions::default()
    };
    let scene = Scene::start(&options, "roll_every = 2");
    let (lab, config, deploy) = (&scene.lab, &scene.config, scene.deploy());
    let pebble = || scene.acme.log_tail();
    assert!(
        tlsa(config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        pebble()
    );
    let first = deployed_leaf(&deploy);
    let records = tlsa_served(lab);
    let next = state_next_key(&scene.state(), "mail");
    let renew_at = |leaf: &support::Leaf| {
        let lifetime = leaf.not_after.duration_since(leaf.not_before).unwrap();
        leaf.not_before + lifetime * 2 / 3 + Duration::from_secs(1)
    };

    sleep_until(renew_at(&first));
    let plan = text(&tlsa(config, &["plan"]));
    assert!(plan.contains("keeping the live key"), "{plan}");
    assert!(
        tlsa(config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        pebble()
    );
    let second = deployed_leaf(&deploy);
    assert_eq!(second.key, first.key, "the first renewal keeps the key");
    assert!(second.not_after > first.not_after, "a new certificate");
    assert_eq!(tlsa_served(lab), records, "the records are untouched");

    sleep_until(renew_at(&second));
    assert!(
        tlsa(config, &["run", "--wait"]).status.success(),
        "pebble: {}",
        pebble()
    );
    let third = deployed_leaf(&deploy);
    assert_eq!(
        third.key, next,
        "the second renewal rolls to the pre-published key"
    );
    let mut wanted = vec![third.key.clone(), state_next_key(&scene.state(), "mail")];
    wanted.sort();
    assert_eq!(tlsa_served(lab), wanted);
}
