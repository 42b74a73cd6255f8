//! Property-based fuzzing of every parser of input tlsa does not control:
//! certificates/keys/CSRs, the config, state files, DNS answers, STARTTLS
//! dialogues, provider API bodies and MTA-STS policies and TXT records. Each parser gets (a) random bytes and
//! (b) mutations of valid seeds (byte flips, truncation, splices, repeats),
//! which reach far deeper than random bytes into structured formats. The
//! checks themselves are in tests/fuzz_support, shared with the
//! coverage-guided targets in fuzz/ (whose seed corpus these seeds are:
//! `cargo test --test integration fuzz_parsers:: -- --ignored write_seed_corpus`).
//!
//! Case counts are bounded so the file runs in seconds in `scripts/test`;
//! `TLSA_FUZZ_CASES=N` runs N cases per property for a longer session.

use crate::fuzz_support;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use proptest::prelude::*;
use proptest::test_runner::Config as Cases;
use tlsa::dns::rdata;
use tlsa::tlsa::record::TlsaRecord;

use fuzz_support::planted_assignments;

/// Cases per property: small by default (CI), `TLSA_FUZZ_CASES` for more.
fn cases(default: u32) -> Cases {
    let cases = std::env::var("TLSA_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Cases {
        cases,
        // A failure is turned into a plain #[test] by hand; no files left behind.
        failure_persistence: None,
        ..Cases::default()
    }
}

/// Runs `check` on `cases` values of `strategy` (see [`cases`]); a failure (a panic) is
/// shrunk to the smallest input that still fails, and reported with it.
fn run_cases<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = proptest::test_runner::TestRunner::new(self::cases(cases));
    if let Err(failure) = runner.run(&strategy, |value| {
        check(value);
        Ok(())
    }) {
        panic!("{failure}");
    }
}

/// Runs the parser check `check` on `cases` inputs: random bytes and mutations of `seeds`.
fn fuzz(cases: u32, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    run_cases(cases, inputs(seeds), |bytes| check(&bytes));
}

/// Mutated inputs are capped so repeats cannot grow them without bound.
const MAX_MUTATED: usize = 64 * 1024;

/// One mutation step: (kind, position, byte, length), all reduced modulo the
/// input at the time it applies, so any tuple is valid for any input.
type Step = (u8, usize, u8, usize);

fn mutate(seeds: &[Vec<u8>], pick: usize, steps: &[Step]) -> Vec<u8> {
    let mut bytes = seeds[pick % seeds.len()].clone();
    for &(kind, pos, byte, len) in steps {
        let at = if bytes.is_empty() {
            0
        } else {
            pos % bytes.len()
        };
        match kind % 5 {
            0 if !bytes.is_empty() => bytes[at] ^= byte | 1,
            1 => bytes.truncate(pos % (bytes.len() + 1)),
            2 => {
                // Splice in a piece of another seed: valid structure in the wrong place.
                let other = &seeds[len % seeds.len()];
                let from = if other.is_empty() {
                    0
                } else {
                    pos % other.len()
                };
                let piece = other[from..(from + len % 256).min(other.len())].to_vec();
                bytes.splice(at..at, piece);
            }
            3 => {
                let end = (at + len % 64).min(bytes.len());
                let piece = bytes[at..end].repeat(1 + byte as usize % 8);
                bytes.splice(at..at, piece);
            }
            _ if !bytes.is_empty() => {
                bytes.insert(at, byte);
            }
            _ => bytes.push(byte),
        }
        bytes.truncate(MAX_MUTATED);
    }
    bytes
}

/// Random bytes, or a mutation of one of `seeds` (half the cases each).
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (any::<usize>(), prop::collection::vec(any::<Step>(), 1..8))
        .prop_map(move |(pick, steps)| mutate(&seeds, pick, &steps));
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated]
}

// ---- certificates, keys, CSRs ----

/// Certificates, a chain, a public key and a CSR: the committed corpus.
fn material_seeds() -> Vec<Vec<u8>> {
    let (params, key) = material_params();
    let cert = params.self_signed(&key).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    let chain = format!("{}{}", cert.pem(), cert.pem());
    vec![
        cert.pem().into_bytes(),
        cert.der().to_vec(),
        chain.into_bytes(),
        key.public_key_pem().into_bytes(),
        csr.pem().unwrap().into_bytes(),
        csr.der().to_vec(),
    ]
}

/// Private keys, made afresh for each run so that none is ever committed.
fn key_seeds() -> Vec<Vec<u8>> {
    let (_, key) = material_params();
    vec![key.serialize_pem().into_bytes(), key.serialize_der()]
}

fn material_params() -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let params = rcgen::CertificateParams::new(vec!["mail.example.com".into()]).unwrap();
    (params, rcgen::KeyPair::generate().unwrap())
}

#[test]
fn material_never_panics() {
    fuzz(
        2000,
        [material_seeds(), key_seeds()].concat(),
        fuzz_support::material,
    );
}

// ---- the config ----

fn config_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        include_str!("../examples/certbot-pair.toml"),
        include_str!("../examples/cloudflare.toml"),
        include_str!("../examples/desec.toml"),
        include_str!("../examples/powerdns.toml"),
        include_str!("../examples/rfc2136-certbot.toml"),
        include_str!("../examples/self-signed.toml"),
        include_str!("../examples/zonefile.toml"),
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Secrets written inline where the config takes them, for the leak check.
    let [tsig, key, token] = planted_assignments();
    seeds.push(format!("{tsig}\n").into_bytes());
    seeds.push(format!("[dns]\n{tsig}\nx = \n").into_bytes());
    seeds.push(format!("{key}\n{token}\n").into_bytes());
    seeds
}

#[test]
fn config_never_panics_nor_leaks() {
    fuzz(2000, config_seeds(), fuzz_support::config);
}

// ---- state files ----

fn state_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"{"version":1,"set":"mx","state":{}}"#.to_vec(),
        br#"{"version":1,"set":"mx","state":{"keys":[],"timeline":[{"at":"2026-01-01T00:00:00Z","what":"x"}]}}"#.to_vec(),
        br#"{"version":2}"#.to_vec(),
        br#"{"version":1,"sets":{"mx":{}}}"#.to_vec(),
    ]
}

#[test]
fn state_files_never_panic() {
    fuzz(1500, state_seeds(), fuzz_support::state);
}

// ---- DNS answers ----

fn dns_seeds() -> Vec<Vec<u8>> {
    let owner = Name::from_ascii("_25._tcp.mail.example.").unwrap();
    let zone = Name::from_ascii("example.").unwrap();
    let record = TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0xab; 32],
    };
    let mut answer = Message::new(7, MessageType::Response, OpCode::Query);
    answer.add_answer(Record::from_rdata(
        owner.clone(),
        300,
        rdata::to_hickory(&record.into()),
    ));
    let soa = SOA::new(zone.clone(), zone.clone(), 7, 60, 30, 600, 60);
    let mut negative = Message::new(8, MessageType::Response, OpCode::Query);
    negative.add_authority(Record::from_rdata(zone, 60, RData::SOA(soa)));
    vec![answer.to_vec().unwrap(), negative.to_vec().unwrap()]
}

#[test]
fn dns_answers_never_panic() {
    fuzz(5000, dns_seeds(), fuzz_support::dns);
}

// ---- TLSA record text (zone files, PowerDNS and deSEC record contents) ----

fn record_seeds() -> Vec<Vec<u8>> {
    vec![
        format!("3 1 1 {}", "ab".repeat(32)).into_bytes(),
        format!("DANE-EE SPKI SHA2-512 {}", "CD".repeat(64)).into_bytes(),
        b"2 0 0 30 82 01 0a".to_vec(),
    ]
}

#[test]
fn record_text_never_panics() {
    fuzz(5000, record_seeds(), fuzz_support::record);
}

// ---- MTA-STS policy files and TXT records (served by others) ----

fn mta_sts_seeds() -> Vec<Vec<u8>> {
    vec![
        b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n".to_vec(),
        b"mode: testing\nmax_age: 86400\nversion: STSv1\nmx: a.example\nx_ext: 1\n".to_vec(),
        b"v=STSv1; id=20261202T000000\nv=spf1 -all\n".to_vec(),
        b"v=STSv1 ; id=abc ; ext.1=x!y;\n".to_vec(),
    ]
}

#[test]
fn mta_sts_policies_and_records_never_panic() {
    fuzz(5000, mta_sts_seeds(), fuzz_support::mta_sts);
}

// ---- TLS-RPT reports: JSON, gzip, mail (sent by anyone) ----

fn tlsrpt_seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/material/tlsrpt");
    let mut seeds: Vec<Vec<u8>> = [
        "rfc-conforming.json",
        "microsoft-zoneless-datetime.json",
        "placeholder-keys.json",
    ]
    .iter()
    .map(|name| std::fs::read(dir.join(name)).unwrap())
    .collect();
    let json = seeds[0].clone();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, &json).unwrap();
    let gzipped = gzip.finish().unwrap();
    use base64::Engine;
    let attachment = base64::engine::general_purpose::STANDARD.encode(&gzipped);
    let mail = format!(
        "From: reports@sender.example\r\nTo: tlsrpt@example.com\r\n\
         TLS-Report-Domain: example.com\r\nTLS-Report-Submitter: sender.example\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n\
         --b\r\nContent-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"r.json.gz\"\r\n\r\n{attachment}\r\n--b--\r\n"
    );
    seeds.push(gzipped);
    seeds.push(mail.into_bytes());
    seeds.push(b"mailto:tlsrpt@example.com\nhttps://reports.example.com/v1/tlsrpt\nmailto:a!b;c@x.example\n".to_vec());
    seeds
}

#[test]
fn tlsrpt_inputs_never_panic() {
    fuzz(3000, tlsrpt_seeds(), fuzz_support::tlsrpt);
}

// ---- provider API bodies ----

fn api_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"{"success":false,"errors":[{"code":9109,"message":"Invalid access token"}],"messages":[]}"#.to_vec(),
        br#"{"error":"Not Found","errors":["a","b"]}"#.to_vec(),
        br#"{"detail":"Invalid token.","records":["bad"],"ttl":["too low"]}"#.to_vec(),
        br#"[{"non_field_errors":["x"]},{"name":["y"]}]"#.to_vec(),
        b"<html><body>502 Bad Gateway</body></html>".to_vec(),
    ]
}

#[test]
fn api_messages_never_panic() {
    fuzz(3000, api_seeds(), fuzz_support::api);
}

// ---- STARTTLS dialogues ----

fn dialogue_seeds() -> Vec<Vec<u8>> {
    vec![
        b"220-mx.example ESMTP\r\n220 ready\r\n250-mx.example\r\n250 STARTTLS\r\n220 go\r\n"
            .to_vec(),
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na2 OK go\r\n".to_vec(),
        b"* OK ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\na2 OK go\r\n".to_vec(),
        b"+OK POP3 ready\r\n+OK\r\nUSER\r\nSTLS\r\n.\r\n+OK Begin TLS\r\n".to_vec(),
    ]
}

#[test]
fn dialogues_end_without_panic() {
    let protocols = 0usize..fuzz_support::PROTOCOLS.len();
    run_cases(
        1500,
        (inputs(dialogue_seeds()), protocols),
        |(bytes, which)| fuzz_support::dialogue(fuzz_support::PROTOCOLS[which], &bytes),
    );
}

/// Every seed family under the name of its coverage-guided target.
fn seed_families() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    // The dialogue target takes its protocol from the first byte.
    let dialogues = dialogue_seeds()
        .into_iter()
        .zip([0u8, 2, 2, 3])
        .map(|(seed, protocol)| [vec![protocol], seed].concat())
        .collect();
    vec![
        ("material", material_seeds()),
        ("config", config_seeds()),
        ("state", state_seeds()),
        ("dns", dns_seeds()),
        ("record", record_seeds()),
        ("api", api_seeds()),
        ("mta_sts", mta_sts_seeds()),
        ("tlsrpt", tlsrpt_seeds()),
        ("dialogue", dialogues),
    ]
}

/// Writes the seeds as fuzz/corpus/TARGET/seed-N; run by hand when a seed
/// changes (the corpus is committed).
#[test]
#[ignore]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, seeds) in seed_families() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (n, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), seed).unwrap();
        }
    }
}
