//! `tlsa hash` against independent implementations: the openssl pipeline,
//! `ldns-dane create` and hash-slinger's `tlsa --create`, for keys and
//! certificates generated here in every encoding the tool reads.

use crate::material;
use crate::support::TlsaRun;

use std::ffi::OsStr;
use std::path::Path;

use material::{
    Alg, KeySet, make_ca, make_key_set, openssl_cert_der, openssl_cert_spki, openssl_digest, run,
};

const HOST: &str = "mail.example.com";
/// hash-slinger's command is also called `tlsa`: name it by path so that an
/// installed copy of this project's binary earlier in PATH is not picked up.
const HASH_SLINGER: &str = "/usr/bin/tlsa";

fn tlsa_hash(args: &[&str], files: &[&Path]) -> String {
    let args = ["hash"].iter().chain(args).map(OsStr::new);
    TlsaRun::ok(args.chain(files.iter().map(|f| f.as_os_str()))).stdout
}

/// The association data of every output line, in order.
fn data_of(output: &str) -> Vec<String> {
    output
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect()
}

/// Every encoding of the key yields the SPKI digests openssl computes from the certificate.
fn check_spki_digests(set: &KeySet) {
    let spki = openssl_cert_spki(&set.cert_pem);
    let sha256 = openssl_digest("sha256", &spki);
    let sha512 = openssl_digest("sha512", &spki);
    let inputs = set
        .private_keys
        .iter()
        .chain(&set.public_keys)
        .chain(&set.csrs)
        .chain(&set.certs)
        .chain(std::iter::once(&set.fullchain));
    for file in inputs {
        assert_eq!(
            tlsa_hash(&[], &[file]),
            format!("3 1 1 {sha256}\n"),
            "{}",
            file.display()
        );
        assert_eq!(
            tlsa_hash(&["-m", "2"], &[file]),
            format!("3 1 2 {sha512}\n"),
            "{}",
            file.display()
        );
        assert_eq!(
            tlsa_hash(&["-m", "0"], &[file]),
            format!("3 1 0 {}\n", hex(&spki)),
            "{}",
            file.display()
        );
    }
}

/// Selector 0 on certificates equals openssl's digest of the DER certificate.
fn check_full_certificate_digests(set: &KeySet) {
    let der = openssl_cert_der(&set.cert_pem);
    for file in set.certs.iter().chain(std::iter::once(&set.fullchain)) {
        let out = tlsa_hash(&["-s", "cert", "-m", "sha2-256,sha2-512"], &[file]);
        assert_eq!(
            data_of(&out),
            [
                openssl_digest("sha256", &der),
                openssl_digest("sha512", &der)
            ],
            "{}",
            file.display()
        );
    }
}

/// `--issuer` yields 2 1 1 for the CA certificate of the chain.
fn check_issuer(set: &KeySet, ca_cert: &Path) {
    let ca_spki = openssl_cert_spki(ca_cert);
    let out = tlsa_hash(&["--issuer"], &[&set.fullchain]);
    assert_eq!(
        out,
        format!("2 1 1 {}\n", openssl_digest("sha256", &ca_spki))
    );
}

/// ldns-dane and hash-slinger, both computing from the certificate.
fn check_dane_tools(set: &KeySet) {
    let cert = set.cert_pem.to_str().unwrap();
    for (selector, matching) in [("1", "1"), ("1", "2"), ("0", "1"), ("0", "2")] {
        let ours = tlsa_hash(&["-s", selector, "-m", matching], &[&set.cert_pem]);
        let ours = data_of(&ours).remove(0);

        let ldns = run(
            "ldns-dane",
            &["-c", cert, "create", HOST, "25", "3", selector, matching],
            None,
        );
        let ldns = String::from_utf8(ldns).unwrap();
        assert_eq!(
            data_of(ldns.trim()).remove(0).to_lowercase(),
            ours,
            "ldns-dane {selector} {matching}"
        );

        let slinger = run(
            HASH_SLINGER,
            &[
                "--create",
                "--certificate",
                cert,
                "--usage",
                "3",
                "--selector",
                selector,
                "--mtype",
                matching,
                "--port",
                "25",
                HOST,
            ],
            None,
        );
        let slinger = String::from_utf8(slinger).unwrap();
        let record = slinger
            .lines()
            .find(|l| l.contains("IN TLSA"))
            .expect("hash-slinger printed a record");
        assert_eq!(
            data_of(record).remove(0).to_lowercase(),
            ours,
            "hash-slinger {selector} {matching}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cross_check(alg: Alg) {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let set = make_key_set(dir.path(), alg, &ca, HOST);
    check_spki_digests(&set);
    check_full_certificate_digests(&set);
    check_issuer(&set, &ca.cert);
    check_dane_tools(&set);
}

#[test]
fn rsa_2048() {
    cross_check(Alg::Rsa(2048));
}

#[test]
fn rsa_3072() {
    cross_check(Alg::Rsa(3072));
}

#[test]
fn rsa_4096() {
    cross_check(Alg::Rsa(4096));
}

#[test]
fn ecdsa_p256() {
    cross_check(Alg::P256);
}

#[test]
fn ecdsa_p384() {
    cross_check(Alg::P384);
}

#[test]
fn ed25519() {
    cross_check(Alg::Ed25519);
}

#[test]
fn many_files_give_one_line_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let a = make_key_set(dir.path(), Alg::P256, &ca, HOST);
    let b = make_key_set(dir.path(), Alg::Ed25519, &ca, HOST);
    let out = tlsa_hash(&[], &[&a.cert_pem, &b.private_keys[0], &a.csrs[0]]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0], lines[2],
        "a certificate and the CSR for its key agree"
    );
    assert_ne!(lines[0], lines[1]);
}
