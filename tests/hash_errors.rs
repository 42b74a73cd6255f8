//! Bad input to `tlsa hash`: each case exits 2 with one clear line naming
//! the file, prints nothing on stdout, and never panics.

use crate::material;
use crate::support::TlsaRun;

use std::path::{Path, PathBuf};
use std::process::Command;

use material::{Alg, generate_key, make_ca, make_key_set, openssl};

fn tlsa(args: &[&str]) -> TlsaRun {
    TlsaRun::of(args)
}

/// Asserts the failure shape every bad input must have, and that the message says `expected`.
fn assert_rejected(file: &Path, extra: &[&str], expected: &str) {
    let mut args = vec!["hash"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let out = tlsa(&args);
    assert_eq!(out.code, Some(2), "{}: {}", file.display(), out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("tlsa: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert!(
        errors[0].contains(file.to_str().unwrap()),
        "names the file: {}",
        errors[0]
    );
    assert!(
        errors[0].contains(expected),
        "says {expected:?}: {}",
        errors[0]
    );
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn empty_and_whitespace_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_rejected(&write(dir.path(), "empty.pem", ""), &[], "empty");
    assert_rejected(&write(dir.path(), "blank.pem", "\n \n"), &[], "empty");
}

#[test]
fn garbage_text_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    assert_rejected(
        &write(dir.path(), "text", "hello, world\n"),
        &[],
        "not a certificate",
    );
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_rejected(
        &write(dir.path(), "noise.der", noise),
        &[],
        "not a certificate",
    );
    // A DER SEQUENCE header claiming more bytes than there are.
    assert_rejected(
        &write(dir.path(), "short.der", [0x30, 0x82, 0x10, 0x00, 0x02]),
        &[],
        "not a certificate",
    );
}

#[test]
fn truncated_and_damaged_pem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let pem = std::fs::read_to_string(&ca.cert).unwrap();
    let half = &pem[..pem.len() / 2];
    assert_rejected(&write(dir.path(), "half.pem", half), &[], "truncated");
    // The chain's second certificate cut off: still a truncation, not a shorter chain.
    assert_rejected(
        &write(dir.path(), "chain.pem", format!("{pem}{half}")),
        &[],
        "truncated",
    );
    let broken = pem.replacen("MI", "M!", 1);
    assert_rejected(&write(dir.path(), "base64.pem", broken), &[], "damaged");
    // Valid base64, but the DER inside is cut short.
    let der = openssl(&["x509", "-in", ca.cert.to_str().unwrap(), "-outform", "DER"]);
    let cut = pem::encode(&pem::Pem::new("CERTIFICATE", &der[..der.len() - 10]));
    assert_rejected(&write(dir.path(), "cut.pem", cut), &[], "damaged");
}

#[test]
fn encrypted_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let k = key.to_str().unwrap();
    generate_key(Alg::P256, &key);
    let pkcs8 = dir.path().join("enc8.pem");
    openssl(&[
        "pkey",
        "-in",
        k,
        "-aes256",
        "-passout",
        "pass:x",
        "-out",
        pkcs8.to_str().unwrap(),
    ]);
    assert_rejected(&pkcs8, &[], "encrypted");
    let der = dir.path().join("enc8.der");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        k,
        "-v2",
        "aes256",
        "-passout",
        "pass:x",
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    assert_rejected(&der, &[], "encrypted");
    let legacy = dir.path().join("legacy.pem");
    openssl(&[
        "ec",
        "-in",
        k,
        "-aes256",
        "-passout",
        "pass:x",
        "-out",
        legacy.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&legacy)
            .unwrap()
            .contains("Proc-Type: 4,ENCRYPTED")
    );
    assert_rejected(&legacy, &[], "encrypted");
}

#[test]
fn bundles_without_anything_to_hash() {
    let dir = tempfile::tempdir().unwrap();
    let params = openssl(&["ecparam", "-name", "prime256v1"]);
    assert_rejected(
        &write(dir.path(), "params.pem", &params),
        &[],
        "no certificate",
    );
    let crl_like = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    assert_rejected(
        &write(dir.path(), "bundle.pem", crl_like),
        &[],
        "no certificate",
    );
}

#[test]
fn unknown_key_types() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, name) in [("ED448", "Ed448"), ("X25519", "X25519")] {
        let key = dir.path().join(format!("{alg}.pem"));
        openssl(&["genpkey", "-algorithm", alg, "-out", key.to_str().unwrap()]);
        assert_rejected(&key, &[], name);
        let der = dir.path().join(format!("{alg}.der"));
        openssl(&[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        assert_rejected(&der, &[], name);
    }
    let secp256k1 = openssl(&["ecparam", "-name", "secp256k1", "-genkey", "-noout"]);
    assert_rejected(
        &write(dir.path(), "k1.pem", secp256k1),
        &[],
        "unsupported key type",
    );
    let dsa = "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n";
    assert_rejected(&write(dir.path(), "dsa.pem", dsa), &[], "DSA");
}

#[test]
fn certificate_with_someone_elses_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let set = make_key_set(dir.path(), Alg::P256, &ca, "mail.example.com");
    let mut combined = std::fs::read(&set.cert_pem).unwrap();
    combined.extend(std::fs::read(&ca.key).unwrap());
    assert_rejected(
        &write(dir.path(), "combined.pem", combined),
        &[],
        "does not belong",
    );
    // The right key in the same file is accepted (haproxy-style combined PEM).
    let mut good = std::fs::read(&set.cert_pem).unwrap();
    good.extend(std::fs::read(&set.private_keys[0]).unwrap());
    let good = write(dir.path(), "good.pem", good);
    assert_eq!(tlsa(&["hash", good.to_str().unwrap()]).code, Some(0));
}

#[test]
fn parameter_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let set = make_key_set(dir.path(), Alg::P256, &ca, "mail.example.com");
    assert_rejected(&set.private_keys[0], &["--selector", "0"], "use selector 1");
    assert_rejected(&set.csrs[0], &["--selector", "cert"], "use selector 1");
    assert_rejected(&set.cert_pem, &["--issuer"], "issuer certificates");
    assert_rejected(&dir.path().join("missing.pem"), &[], "cannot read");
    assert_rejected(dir.path(), &[], "cannot read");
}

#[test]
fn bad_arguments_exit_2_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let cert = ca.cert.to_str().unwrap();
    for args in [
        vec!["hash", "--usage", "7", cert],
        vec!["hash", "--matching", "sha1", cert],
        vec!["hash", "--owner", "bad..name", cert],
        vec!["hash", "--format", "nsupdate", cert],
        vec!["hash"],
    ] {
        let out = tlsa(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.is_empty() && !out.stderr.contains("panicked"),
            "{args:?}"
        );
    }
}

#[test]
fn one_bad_file_among_good_ones_prints_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let empty = write(dir.path(), "empty.pem", "");
    let out = tlsa(&[
        "hash",
        "--host",
        "mail.example.com",
        "--format",
        "nsupdate",
        ca.cert.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stdout.is_empty(),
        "a pipeline into nsupdate must get nothing: {}",
        out.stdout
    );
}

/// `tlsa hash ARGS` with stdin from `stdin`, killed (and failed) after 20 s: an input
/// without end must be refused, not read forever.
fn tlsa_bounded(args: &[&str], stdin: std::fs::File) -> TlsaRun {
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(args)
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("tlsa {args:?} still reading after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    TlsaRun::from_output(child.wait_with_output().unwrap(), started.elapsed())
}

#[test]
fn endless_input_is_refused_past_one_mebibyte() {
    for (args, stdin) in [
        (["hash", "/dev/zero"], "/dev/null"),
        (["hash", "-"], "/dev/zero"),
    ] {
        let out = tlsa_bounded(&args, std::fs::File::open(stdin).unwrap());
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(
            out.stderr.contains(args[1]) && out.stderr.contains("larger than 1 MiB"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Just under the limit is read (and judged on its content).
    let dir = tempfile::tempdir().unwrap();
    let big = write(dir.path(), "big.bin", vec![0u8; 1024 * 1024]);
    assert_rejected(&big, &[], &big.display().to_string());
}
