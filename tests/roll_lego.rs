//! lego (a real ACME client, against pebble) renewing a certificate with the renew hook as
//! `scripts/install` installs it, while hash-slinger's `tlsa` comes first in PATH: the new
//! key is published at once by the hook, and deployed by the timer's `tlsa run` once safe.

use crate::support;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Instant;

use support::{
    Acme, Installed, Lab, deployed_key, path_with_hash_slinger_first, served, tlsa,
    write_roll_config,
};

/// [`Acme::lego`], panicking with lego's output unless it succeeds.
fn lego(acme: &Acme, path: &Path, domain: &str, args: &[&str]) -> support::CertbotRun {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = acme.lego(path, domain, &args);
    assert!(
        out.status.success(),
        "lego {args:?}:\n{}{}",
        out.stdout,
        out.stderr
    );
    out
}

/// The key (3 1 1 data) of the certificate lego keeps for `domain` under `path`.
fn lego_key(path: &Path, domain: &str) -> String {
    let chain = path.join("certificates").join(format!("{domain}.crt"));
    tlsa::roll::files::cert_facts(&chain)
        .unwrap()
        .unwrap_or_else(|| panic!("no certificate at {}", chain.display()))
        .key
        .id
}

#[test]
fn a_lego_renewal_through_the_installed_hook_publishes_the_new_key_despite_hash_slinger() {
    let started = Instant::now();
    let lab = Lab::start();
    let mut acme = Acme::start();
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("mail.{}", lab.zone().trim_end_matches('.'));
    let lego_path = dir.path().join("lego");
    let config = write_roll_config(
        &lab,
        dir.path(),
        &format!(
            r#"{{ lego = {{ path = "{}", domain = "{domain}" }} }}"#,
            lego_path.display()
        ),
        &[],
    );
    let installed = Installed::new(&dir.path().join("root"));
    lego(&acme, &lego_path, &domain, &["run"]);
    let first = lego_key(&lego_path, &domain);
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    assert_eq!(deployed_key(dir.path()), first);

    // lego's environment on a Debian host with both installed; lego runs the hook itself
    // (no shell), with LEGO_CERT_PATH naming the renewed certificate.
    let path = path_with_hash_slinger_first(&installed.prefix().join("sbin"));
    acme.set_env("PATH", &path);
    acme.set_env("TLSA_CONFIG", config.to_str().unwrap());
    let hook = installed.hook("lego-renew-hook");
    // Renew now (pebble's certificates are valid for years) with a new key, lego's default.
    let renewed = lego(
        &acme,
        &lego_path,
        &domain,
        &[
            "renew",
            "--days",
            "100000",
            "--no-random-sleep",
            "--renew-hook",
            hook.to_str().unwrap(),
        ],
    );
    let new = lego_key(&lego_path, &domain);
    assert_ne!(new, first, "lego made a new key");
    let output = format!("{}{}", renewed.stdout, renewed.stderr);
    assert!(
        served(&lab).contains(&new),
        "the hook published the new key: {:?}\n{output}",
        served(&lab)
    );
    assert_eq!(
        deployed_key(dir.path()),
        first,
        "not deployed before it is safe"
    );
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    assert_eq!(deployed_key(dir.path()), new);
    eprintln!(
        "timings: lego renew through the hook {:.1} s, total {:.1} s",
        renewed.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
