//! A minimal DNS client for the lab's own readiness probes. Startup asks a server a dozen
//! times; spawning `dig` for each costs ~25 ms (far more on a busy machine), a hand-made
//! query well under 1 ms. Tests use `dig` (see `dig.rs`), whose output is easier to assert on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::launch::Transport;

/// How long one probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub const TYPE_SOA: u16 = 6;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_RRSIG: u16 = 46;
const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;

/// The parts of a reply the probes look at.
#[derive(Debug, Default)]
pub struct WireReply {
    pub rcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Authenticated data: validated by the resolver.
    pub ad: bool,
    /// The type of each answer record.
    pub answer_types: Vec<u16>,
    /// The whole message, e.g. to look for a known string in it.
    pub raw: Vec<u8>,
}

impl WireReply {
    pub fn is_noerror(&self) -> bool {
        self.rcode == 0
    }

    pub fn has_answer(&self, rtype: u16) -> bool {
        self.answer_types.contains(&rtype)
    }

    pub fn contains(&self, needle: &[u8]) -> bool {
        self.raw
            .windows(needle.len())
            .any(|window| window == needle)
    }
}

/// One query with the DO bit set (so signatures come back); `recursive` sets RD.
/// `None` if no well-formed reply came within the probe timeout.
pub fn query(
    addr: SocketAddr,
    transport: Transport,
    name: &str,
    rtype: u16,
    class: u16,
    recursive: bool,
) -> Option<WireReply> {
    static NEXT_ID: AtomicU16 = AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let message = encode_query(id, name, rtype, class, recursive);
    let raw = match transport {
        Transport::Udp => exchange_udp(addr, &message),
        Transport::Tcp => exchange_tcp(addr, &message),
    }
    .ok()?;
    parse_reply(id, raw)
}

fn exchange_udp(addr: SocketAddr, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let socket = UdpSocket::bind(("127.0.0.1", 0))?;
    // Connected: only datagrams from `addr` are received.
    socket.connect(addr)?;
    socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
    socket.send(message)?;
    let mut buf = vec![0; 65535];
    let len = socket.recv(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

fn exchange_tcp(addr: SocketAddr, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    let len = u16::try_from(message.len()).expect("query fits a TCP frame");
    stream.write_all(&[&len.to_be_bytes()[..], message].concat())?;
    let mut prefix = [0; 2];
    stream.read_exact(&mut prefix)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn encode_query(id: u16, name: &str, rtype: u16, class: u16, recursive: bool) -> Vec<u8> {
    let flags: u16 = if recursive { 0x0100 } else { 0 };
    // Header: ID, flags, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1 (the OPT record).
    let mut msg = [id, flags, 1, 0, 0, 1]
        .iter()
        .flat_map(|field| field.to_be_bytes())
        .collect::<Vec<u8>>();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        msg.push(u8::try_from(label.len()).expect("label of at most 63 bytes"));
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&rtype.to_be_bytes());
    msg.extend_from_slice(&class.to_be_bytes());
    // OPT: root owner, UDP size 1232, extended RCODE/version 0, DO bit, no options.
    msg.push(0);
    msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
    msg.extend_from_slice(&1232u16.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
    msg
}

fn parse_reply(id: u16, raw: Vec<u8>) -> Option<WireReply> {
    let u16_at = |pos: usize| Some(u16::from_be_bytes([*raw.get(pos)?, *raw.get(pos + 1)?]));
    let is_reply = raw.get(2)? & 0x80 != 0;
    if u16_at(0)? != id || !is_reply {
        return None;
    }
    let (qdcount, ancount) = (u16_at(4)?, u16_at(6)?);
    let mut pos = 12;
    for _ in 0..qdcount {
        pos = skip_name(&raw, pos)? + 4;
    }
    let mut answer_types = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(&raw, pos)?;
        answer_types.push(u16_at(pos)?);
        // TYPE, CLASS, TTL, then RDLENGTH and the RDATA.
        pos += 10 + usize::from(u16_at(pos + 8)?);
    }
    Some(WireReply {
        rcode: raw[3] & 0x0f,
        aa: raw[2] & 0x04 != 0,
        ad: raw[3] & 0x20 != 0,
        answer_types,
        raw,
    })
}

/// The position after the (possibly compressed) domain name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            // A compression pointer ends the name.
            _ if len & 0xc0 == 0xc0 => return Some(pos + 2),
            _ => pos += 1 + usize::from(len),
        }
    }
}
