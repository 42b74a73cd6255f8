//! Property-based fuzzing of every parser of input tlsa does not control:
//! certificates/keys/CSRs, the config, state files, DNS answers, STARTTLS
//! dialogues and provider API bodies. Each parser gets (a) random bytes and
//! (b) mutations of valid seeds (byte flips, truncation, splices, repeats),
//! which reach far deeper than random bytes into structured formats.
//!
//! The only property is robustness: every input ends, quickly, in a value or
//! an error — never a panic, a hang, or (for the config) a secret in the error.
//! Case counts are bounded so the file runs in seconds in `scripts/test`;
//! `TLSA_FUZZ_CASES=N` runs N cases per property for a longer session.

use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{DnsResponse, Message, MessageType, OpCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use proptest::prelude::*;
use proptest::test_runner::Config as Cases;
use tlsa::config::Config;
use tlsa::dns::{dnssec, http, rdata};
use tlsa::live::endpoint::Protocol;
use tlsa::live::starttls::{StageCell, negotiate};
use tlsa::tlsa::input;
use tlsa::tlsa::record::TlsaRecord;

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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- certificates, keys, CSRs ----

fn material_seeds() -> Vec<Vec<u8>> {
    let mut params = rcgen::CertificateParams::new(vec!["mail.example.com".into()]).unwrap();
    params.is_ca = rcgen::IsCa::NoCa;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    let chain = format!("{}{}", cert.pem(), cert.pem());
    vec![
        cert.pem().into_bytes(),
        cert.der().to_vec(),
        chain.into_bytes(),
        key.serialize_pem().into_bytes(),
        key.serialize_der(),
        key.public_key_pem().into_bytes(),
        csr.pem().unwrap().into_bytes(),
        csr.der().to_vec(),
    ]
}

fn check_material(bytes: &[u8], dir: &Path) {
    let _ = input::parse(bytes);
    // The file entry point too: the size limit and error wrapping.
    let file = dir.join("input");
    std::fs::write(&file, bytes).unwrap();
    if let Err(e) = input::load_file(&file) {
        let _ = e.to_string();
    }
}

proptest! {
    #![proptest_config(cases(400))]
    #[test]
    fn material_never_panics(bytes in inputs(material_seeds())) {
        let dir = tempfile::tempdir().unwrap();
        check_material(&bytes, dir.path());
    }
}

// ---- the config ----

const PLANTED: &str = "PLANTEDSECRET";

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

/// Secrets assigned as the config takes them; only inputs where every
/// occurrence of [`PLANTED`] is still inside one of these are judged, since
/// a mutation that moves it into a key or a section name makes it a name,
/// which an error may rightly show.
fn planted_assignments() -> [String; 3] {
    [
        format!("tsig_key = \"hmac-sha256:k:{PLANTED}\""),
        format!("api_key = \"{PLANTED}\""),
        format!("api_token = \"{PLANTED}\""),
    ]
}

fn check_config(text: &str) {
    if let Err(e) = Config::parse(text) {
        let assigned: usize = planted_assignments()
            .iter()
            .map(|a| text.matches(a.as_str()).count())
            .sum();
        if assigned > 0 && assigned == text.matches(PLANTED).count() {
            assert!(
                !e.contains(PLANTED),
                "a secret value reached the error text: {e}"
            );
        }
    }
}

proptest! {
    #![proptest_config(cases(400))]
    #[test]
    fn config_never_panics_nor_leaks(bytes in inputs(config_seeds())) {
        check_config(&text(&bytes));
    }
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

proptest! {
    #![proptest_config(cases(300))]
    #[test]
    fn state_files_never_panic(bytes in inputs(state_seeds())) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sets")).unwrap();
        std::fs::write(dir.path().join("sets/mx.json"), &bytes).unwrap();
        if let Err(e) = tlsa::roll::state::load_dir(dir.path()) {
            let _ = e.to_string();
        }
        // The older single state file goes through the same parser.
        std::fs::remove_file(dir.path().join("sets/mx.json")).unwrap();
        std::fs::write(dir.path().join("state.json"), &bytes).unwrap();
        if let Err(e) = tlsa::roll::state::load_dir(dir.path()) {
            let _ = e.to_string();
        }
    }
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
        RData::TLSA(rdata::to_hickory(&record)),
    ));
    let soa = SOA::new(zone.clone(), zone.clone(), 7, 60, 30, 600, 60);
    let mut negative = Message::new(8, MessageType::Response, OpCode::Query);
    negative.add_authority(Record::from_rdata(zone, 60, RData::SOA(soa)));
    vec![answer.to_vec().unwrap(), negative.to_vec().unwrap()]
}

fn check_dns(bytes: &[u8]) {
    let Ok(message) = Message::from_vec(bytes) else {
        return;
    };
    let Ok(response) = DnsResponse::from_message(message) else {
        return;
    };
    let _ = dnssec::extended_errors(&response);
    let _ = response.negative_ttl();
    for record in &response.answers {
        if let RData::TLSA(tlsa) = &record.data {
            // What the observation reads from an answer, and its text form back.
            let ours = rdata::from_hickory(tlsa);
            let _ = ours.to_string().parse::<TlsaRecord>();
            let _ = http::records_text([&ours]);
        }
    }
}

proptest! {
    #![proptest_config(cases(1000))]
    #[test]
    fn dns_answers_never_panic(bytes in inputs(dns_seeds())) {
        check_dns(&bytes);
    }
}

// ---- TLSA record text (zone files, PowerDNS and deSEC record contents) ----

fn record_seeds() -> Vec<Vec<u8>> {
    vec![
        format!("3 1 1 {}", "ab".repeat(32)).into_bytes(),
        format!("DANE-EE SPKI SHA2-512 {}", "CD".repeat(64)).into_bytes(),
        b"2 0 0 30 82 01 0a".to_vec(),
    ]
}

proptest! {
    #![proptest_config(cases(1000))]
    #[test]
    fn record_text_never_panics(bytes in inputs(record_seeds())) {
        if let Ok(record) = text(&bytes).parse::<TlsaRecord>() {
            // Whatever parses must print as text that parses back the same.
            prop_assert_eq!(record.to_string().parse::<TlsaRecord>().unwrap(), record);
        }
    }
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

proptest! {
    #![proptest_config(cases(600))]
    #[test]
    fn api_messages_never_panic(bytes in inputs(api_seeds())) {
        let _ = http::api_messages(&bytes);
    }
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

/// Plays `server` to `negotiate` and closes; the dialogue must end well
/// within the timeout (a server that stops talking is a timeout in real
/// use, but here the stream is closed, so waiting would be a bug).
fn check_dialogue(protocol: Protocol, server: Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, peer) = tokio::io::duplex(4096);
        let (mut peer_read, mut peer_write) = tokio::io::split(peer);
        // The client's commands are drained so its writes never block.
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = peer_read.read_to_end(&mut sink).await;
        });
        let feed = tokio::spawn(async move {
            let _ = peer_write.write_all(&server).await;
            let _ = peer_write.shutdown().await;
        });
        let stage = StageCell::default();
        let ended = tokio::time::timeout(
            Duration::from_secs(5),
            negotiate(&mut client, protocol, "client.example", &stage),
        )
        .await;
        assert!(
            ended.is_ok(),
            "{protocol:?} dialogue did not end on a closed stream"
        );
        drop(client);
        let _ = feed.await;
        let _ = drain.await;
    });
}

proptest! {
    #![proptest_config(cases(300))]
    #[test]
    fn dialogues_end_without_panic(
        bytes in inputs(dialogue_seeds()),
        which in 0usize..4,
    ) {
        let protocol = [Protocol::Smtp, Protocol::Lmtp, Protocol::Imap, Protocol::Pop3][which];
        check_dialogue(protocol, bytes);
    }
}
