//! One check per parser of untrusted input: feeds it one input and asserts
//! what must hold for any input (it ends, without a panic; the config's
//! errors never show a planted secret). Shared by the property tests
//! (tests/fuzz_parsers.rs) and the coverage-guided targets (fuzz/), so both
//! judge an input the same way.
#![allow(dead_code)] // each fuzz target uses one check

use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::{DnsResponse, Message};
use tlsa::config::Config;
use tlsa::dns::publish::{api_messages, checked_write};
use tlsa::dns::{Rdata, RrType, observe::extended_error, rdata};
use tlsa::live::endpoint::Protocol;
use tlsa::live::starttls::{StageCell, negotiate};
use tlsa::tlsa::input;
use tlsa::tlsa::record::TlsaRecord;

/// A scratch directory for the file-based entry points, made once per thread (a fresh one
/// per input would cost more than the parse) and removed when the thread ends (each test of
/// the harness runs on a thread of its own; one process may run several side by side).
fn scratch() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    }
    DIR.with(|dir| dir.path().to_path_buf())
}

/// Certificates, chains, keys and CSRs as `tlsa hash` and the roll engine
/// read them: from bytes, and through a file (the size limit, error text).
pub fn material(bytes: &[u8]) {
    let _ = input::parse(bytes);
    let file = scratch().join("input");
    std::fs::write(&file, bytes).unwrap();
    if let Err(e) = input::load_file(&file) {
        let _ = e.to_string();
    }
}

pub const PLANTED: &str = "PLANTEDSECRET";

/// Secrets assigned as the config takes them. Only inputs where every
/// occurrence of [`PLANTED`] is still inside one of these are judged: a
/// mutation that moves it into a key or a section name makes it a name,
/// which an error may rightly show.
pub fn planted_assignments() -> [String; 3] {
    [
        format!("tsig_key = \"hmac-sha256:k:{PLANTED}\""),
        format!("api_key = \"{PLANTED}\""),
        format!("api_token = \"{PLANTED}\""),
    ]
}

/// The config and its error formatter: no panic, no secret in the error.
pub fn config(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Err(e) = Config::parse(&text) {
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

/// A set's state file and an older single state file, as `load_dir` reads them.
pub fn state(bytes: &[u8]) {
    let dir = scratch().join("state");
    let sets = dir.join("sets");
    std::fs::create_dir_all(&sets).unwrap();
    let _ = std::fs::remove_file(dir.join("state.json"));
    std::fs::write(sets.join("mx.json"), bytes).unwrap();
    if let Err(e) = tlsa::roll::state::load_dir(&dir) {
        let _ = e.to_string();
    }
    std::fs::remove_file(sets.join("mx.json")).unwrap();
    std::fs::write(dir.join("state.json"), bytes).unwrap();
    if let Err(e) = tlsa::roll::state::load_dir(&dir) {
        let _ = e.to_string();
    }
}

/// A DNS answer off the wire, and what the observation takes from it.
pub fn dns(bytes: &[u8]) {
    let Ok(message) = Message::from_vec(bytes) else {
        return;
    };
    let Ok(response) = DnsResponse::from_message(message) else {
        return;
    };
    let _ = extended_error::extended_errors(&response);
    let _ = response.negative_ttl();
    for record in &response.answers {
        for rtype in RrType::ALL {
            if let Some(ours) = rdata::from_hickory(rtype, &record.data) {
                // TXT and MX read from the wire must read back from tlsa's own
                // presentation form (zone files, provider APIs). TLSA text is
                // parsed strictly (digest lengths), so a malformed wire record
                // may not: it must only not panic.
                let back = Rdata::parse(rtype, &ours.to_string());
                if rtype != RrType::Tlsa {
                    assert_eq!(back.as_ref(), Ok(&ours), "{rtype} {ours}");
                }
                let _ = checked_write::records_text([&ours]);
            }
        }
    }
}

/// TLSA record text (zone files, PowerDNS and deSEC record contents): what
/// parses prints as text that parses back the same.
pub fn record(bytes: &[u8]) {
    if let Ok(record) = String::from_utf8_lossy(bytes).parse::<TlsaRecord>() {
        assert_eq!(record.to_string().parse::<TlsaRecord>().unwrap(), record);
    }
}

/// A served MTA-STS policy file and `_mta-sts` TXT records (one per line):
/// a policy that parses generates a canonical form that parses back to it,
/// with no warning and the same id; a valid record renders back to itself.
pub fn mta_sts(bytes: &[u8]) {
    use tlsa::mtasts::{policy, record};
    let text = String::from_utf8_lossy(bytes);
    if let Ok(parsed) = policy::parse(&text) {
        let again = policy::parse(&parsed.policy.canonical()).unwrap();
        assert_eq!(again.policy, parsed.policy);
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        assert_eq!(again.policy.id(), parsed.policy.id());
    }
    let records: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(id) = record::judge(&records).id() {
        assert_eq!(record::judge(&[record::render(id)]).id(), Some(id));
    }
}

/// A TLS-RPT input as it arrives (JSON, gzip or a whole mail message, sniffed), and
/// `rua` URIs (one per line): nothing panics; a report that parses claims an organisation,
/// an id and a date range that does not run backwards; an error stays one short sentence
/// whatever the input's size (it names the field or position, never quotes the content).
pub fn tlsrpt(bytes: &[u8]) {
    use tlsa::tlsrpt::{record, report, unwrap};
    for hint in [unwrap::Hint::Sniff, unwrap::Hint::Mail] {
        let json = match unwrap::unwrap(bytes, hint) {
            Ok(unwrapped) => unwrapped.json,
            Err(error) => {
                assert!(error.to_string().len() < 400, "{error}");
                continue;
            }
        };
        match report::parse(&json) {
            Ok(parsed) => {
                assert!(!parsed.organization.is_empty() && !parsed.report_id.is_empty());
                assert!(parsed.end >= parsed.start, "{parsed:?}");
            }
            Err(error) => assert!(error.to_string().len() < 400, "{error}"),
        }
    }
    for uri in String::from_utf8_lossy(bytes).lines() {
        if record::check_rua(uri).is_ok() {
            let encoded = record::encode_uri(uri);
            assert!(!encoded.contains(['!', ';', ',']), "{encoded}");
        }
    }
}

/// A provider API's error body, as turned into messages for the user.
pub fn api(bytes: &[u8]) {
    let _ = api_messages::api_messages(bytes);
}

pub const PROTOCOLS: [Protocol; 4] = [
    Protocol::Smtp,
    Protocol::Lmtp,
    Protocol::Imap,
    Protocol::Pop3,
];

/// Plays `server` to `negotiate` over an in-memory stream and closes it; the
/// dialogue must end well within the timeout (a silent server is a timeout
/// in real use, but here the stream is closed, so waiting would be a bug).
pub fn dialogue(protocol: Protocol, server: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let server = server.to_vec();
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
