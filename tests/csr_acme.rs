//! `tlsa csr SET` makes a request a real ACME CA accepts: certbot `certonly --csr` against
//! pebble issues a certificate for the set's next key (its SPKI is the next key's), and the
//! subject names the host, not rcgen's placeholder.

use crate::support;

use std::ffi::OsStr;
use std::process::Command;

use support::{Acme, Lab, self_signed_source, tlsa, write_roll_config};

/// `3 1 1` data of the leaf (or key) in `file`, by `tlsa hash`.
fn spki_sha256(file: &std::path::Path) -> String {
    let out = Command::new(support::tlsa_binary())
        .args(["hash", "--format", "data"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().unwrap().trim();
    line.rsplit(' ').next().unwrap().to_string()
}

fn openssl_subject(args: &[&str], file: &std::path::Path) -> String {
    let out = Command::new(support::tool("openssl"))
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn certbot_and_pebble_issue_a_certificate_for_the_next_key_from_tlsa_csr() {
    let lab = Lab::start();
    let acme = Acme::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_roll_config(&lab, dir.path(), &self_signed_source(&lab), &[]);
    // The first run publishes the live key and a generated next key.
    let out = tlsa(&config, &["run"]);
    assert!(out.status.success(), "{out:?}");
    let status = tlsa(&config, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let next = status[0]["next"].as_str().expect("a next key").to_string();

    let out = tlsa(&config, &["csr", "mail"]);
    assert!(out.status.success(), "{out:?}");
    let csr = dir.path().join("next.csr");
    std::fs::write(&csr, &out.stdout).unwrap();

    let issued = dir.path().join("issued");
    std::fs::create_dir_all(&issued).unwrap();
    let (cert, chain, fullchain) = (
        issued.join("cert.pem"),
        issued.join("chain.pem"),
        issued.join("fullchain.pem"),
    );
    acme.certbot_ok(&[
        OsStr::new("--agree-tos"),
        OsStr::new("--register-unsafely-without-email"),
        OsStr::new("certonly"),
        OsStr::new("--standalone"),
        OsStr::new("--csr"),
        csr.as_os_str(),
        OsStr::new("--cert-path"),
        cert.as_os_str(),
        OsStr::new("--chain-path"),
        chain.as_os_str(),
        OsStr::new("--fullchain-path"),
        fullchain.as_os_str(),
    ]);
    assert_eq!(
        spki_sha256(&fullchain),
        next,
        "the certificate is for the next key"
    );
    let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
    let subject = openssl_subject(&["req", "-noout", "-subject", "-in"], &csr);
    assert!(subject.contains(&format!("CN = {host}")), "{subject}");
    assert!(!subject.contains("rcgen"), "{subject}");

    let san = openssl_subject(&["x509", "-noout", "-ext", "subjectAltName", "-in"], &cert);
    assert!(san.contains(&format!("DNS:{host}")), "{san}");
}

#[test]
fn self_signed_certificates_name_the_host() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_roll_config(&lab, dir.path(), &self_signed_source(&lab), &[]);
    let out = tlsa(&config, &["run"]);
    assert!(out.status.success(), "{out:?}");
    let staged = dir.path().join("state/staged/mail/fullchain.pem");
    let subject = openssl_subject(&["x509", "-noout", "-subject", "-in"], &staged);
    let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
    assert!(subject.contains(&format!("CN = {host}")), "{subject}");
}
