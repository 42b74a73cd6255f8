//! Hostile DNS servers: what propagation checks and validation meet when an authoritative
//! server or a resolver misbehaves. Each scripted server answers every question (UDP and
//! TCP) on loopback with one pathology; every case must end within its limit with an
//! error naming the server — never a hang, a panic, or a propagation called complete.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::Name;
use tlsa::clock::SystemClock;
use tlsa::dns::observe::dnssec::{Validator, Verdict};
use tlsa::dns::observe::propagation::{Expected, wait_until_propagated};
use tlsa::dns::observe::servers::ZoneServers;

const QUESTION_LIMIT: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug)]
enum Pathology {
    /// Bytes that are not a DNS message.
    Garbage,
    /// A well-formed answer to another question id.
    WrongId,
    /// TC set over UDP; the TCP connection is closed at once.
    TruncatedEverywhere,
    /// A header that claims answers the message does not hold.
    BadCounts,
    /// An answer whose owner name is a compression pointer to itself.
    CompressionLoop,
    /// SERVFAIL to everything.
    Servfail,
    /// REFUSED to everything.
    Refused,
    /// Accepts and never answers.
    Silent,
    /// A valid header followed by 60 KB of junk.
    Huge,
}

/// Serves `pathology` on one loopback port, UDP and TCP, for the life of the test.
fn start(pathology: Pathology) -> SocketAddr {
    // The TCP port of the same number may be taken by another test process.
    let (udp, addr, tcp) = (0..100)
        .find_map(|_| {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let addr = udp.local_addr().unwrap();
            let tcp = TcpListener::bind(addr).ok()?;
            Some((udp, addr, tcp))
        })
        .expect("a loopback port free for both UDP and TCP within 100 tries");
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if let Some(reply) = answer(pathology, &buf[..n], false) {
                let _ = udp.send_to(&reply, from);
            }
        }
    });
    thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { break };
            thread::spawn(move || {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).is_err() {
                    return;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).is_err() {
                    return;
                }
                match answer(pathology, &query, true) {
                    Some(reply) => {
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        let _ = stream.write_all(&framed);
                        thread::sleep(Duration::from_millis(200));
                    }
                    None if matches!(pathology, Pathology::Silent) => {
                        thread::sleep(Duration::from_secs(30));
                    }
                    None => {}
                }
            });
        }
    });
    addr
}

/// The reply to `query` (None: say nothing, or hang up over TCP).
fn answer(pathology: Pathology, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let reply = |code: ResponseCode| {
        let mut response = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        response.metadata.response_code = code;
        response.metadata.authoritative = true;
        response.add_queries(request.queries.clone());
        response
    };
    match pathology {
        Pathology::Garbage => Some(b"\x13\x37this is not a DNS message at all".to_vec()),
        Pathology::WrongId => {
            let mut response = reply(ResponseCode::NoError);
            response.metadata.id = request.metadata.id.wrapping_add(1);
            response.to_vec().ok()
        }
        Pathology::TruncatedEverywhere if tcp => None,
        Pathology::TruncatedEverywhere => {
            let mut response = reply(ResponseCode::NoError);
            response.metadata.truncation = true;
            response.to_vec().ok()
        }
        Pathology::BadCounts => {
            let mut bytes = reply(ResponseCode::NoError).to_vec().ok()?;
            bytes[7] = 5; // ANCOUNT = 5, with no answer section
            Some(bytes)
        }
        Pathology::CompressionLoop => {
            let mut bytes = reply(ResponseCode::NoError).to_vec().ok()?;
            bytes[7] = 1; // one answer
            let own = bytes.len() as u16;
            // Its owner name: a pointer to itself.
            bytes.extend_from_slice(&(0xC000 | own).to_be_bytes());
            bytes.extend_from_slice(&[0, 52, 0, 1, 0, 0, 0, 60, 0, 0]);
            Some(bytes)
        }
        Pathology::Servfail => reply(ResponseCode::ServFail).to_vec().ok(),
        Pathology::Refused => reply(ResponseCode::Refused).to_vec().ok(),
        Pathology::Silent => None,
        Pathology::Huge => {
            let mut bytes = reply(ResponseCode::NoError).to_vec().ok()?;
            bytes.extend(std::iter::repeat_n(0x42, if tcp { 60_000 } else { 4_000 }));
            Some(bytes)
        }
    }
}

const ALL: [Pathology; 9] = [
    Pathology::Garbage,
    Pathology::WrongId,
    Pathology::TruncatedEverywhere,
    Pathology::BadCounts,
    Pathology::CompressionLoop,
    Pathology::Servfail,
    Pathology::Refused,
    Pathology::Silent,
    Pathology::Huge,
];

fn zone() -> Name {
    Name::from_ascii("example.test.").unwrap()
}

fn owner() -> Name {
    Name::from_ascii("_25._tcp.mail.example.test.").unwrap()
}

#[test]
fn a_hostile_authoritative_server_never_counts_as_propagated() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for pathology in ALL {
        let addr = start(pathology);
        let servers = ZoneServers::fixed(zone(), [addr], QUESTION_LIMIT);
        let expected = Expected::exactly(
            [(tlsa::dns::RrsetId::tlsa(owner()), Default::default())],
            None,
        );
        let started = Instant::now();
        let deadline = SystemTime::now() + Duration::from_secs(2);
        let outcome = runtime.block_on(wait_until_propagated(
            &servers,
            &SystemClock,
            &expected,
            deadline,
        ));
        let took = started.elapsed();
        let error = outcome.expect_err(&format!("{pathology:?} counted as propagated"));
        let text = error.to_string();
        assert!(
            text.contains(&addr.to_string()),
            "{pathology:?}: the lagging server is named: {text}"
        );
        assert!(
            took <= Duration::from_secs(2) + SLACK,
            "{pathology:?}: took {took:?}"
        );
        eprintln!(
            "{pathology:?}: {took:?}: {}",
            text.lines().last().unwrap_or("")
        );
    }
}

#[test]
fn a_hostile_resolver_never_yields_a_secure_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for pathology in ALL {
        let addr = start(pathology);
        let validator = Validator::resolver_ad(addr);
        let started = Instant::now();
        let validation = runtime.block_on(validator.validate_tlsa(&owner()));
        let took = started.elapsed();
        assert_ne!(
            validation.verdict,
            Verdict::Secure,
            "{pathology:?}: {}",
            validation.reason
        );
        assert!(!validation.is_acceptable_for_changes());
        assert!(
            took <= Duration::from_secs(10) + SLACK,
            "{pathology:?}: took {took:?}"
        );
        eprintln!(
            "{pathology:?}: {took:?}: {:?}: {}",
            validation.verdict, validation.reason
        );
    }
}
