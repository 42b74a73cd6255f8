//! A counting DNS forwarder on loopback: what a test or benchmark needs to count the
//! messages tlsa sends to a server (UPDATEs per transport, and queries) — and, with
//! [`Forwarder::stripping_dnssec`], a stand-in for the stub resolvers and home routers that
//! forward queries but drop DNSSEC records from the answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A loopback DNS forwarder (UDP and TCP on one port) to one server, counting UPDATE
/// messages (opcode 5) per transport. Its tasks end with the test's runtime.
pub struct Forwarder {
    pub addr: SocketAddr,
    udp_updates: Arc<AtomicUsize>,
    tcp_updates: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
}

const OPCODE_UPDATE: u8 = 5;

/// What the forwarder does to each answer before passing it on.
type Rewrite = fn(Vec<u8>) -> Vec<u8>;

fn unchanged(answer: Vec<u8>) -> Vec<u8> {
    answer
}

/// The answer without RRSIG, NSEC and NSEC3 records in any section, as a forwarder that
/// does not do DNSSEC passes it on (the DO bit reaches the upstream, the proofs do not
/// come back). Unparseable answers pass unchanged.
fn strip_dnssec(answer: Vec<u8>) -> Vec<u8> {
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;
    let Ok(mut message) = Message::from_vec(&answer) else {
        return answer;
    };
    let keep = |r: &hickory_proto::rr::Record| {
        !matches!(
            r.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        )
    };
    message.answers.retain(keep);
    message.authorities.retain(keep);
    message.additionals.retain(keep);
    message.to_vec().unwrap_or(answer)
}

fn opcode(message: &[u8]) -> Option<u8> {
    message.get(2).map(|b| (b >> 3) & 0x0f)
}

impl Forwarder {
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_rewriting(upstream, unchanged).await
    }

    /// A forwarder that drops DNSSEC records (RRSIG, NSEC, NSEC3) from every answer.
    pub async fn stripping_dnssec(upstream: SocketAddr) -> Self {
        Self::start_rewriting(upstream, strip_dnssec).await
    }

    /// A forwarder on `listen` (e.g. 127.0.0.1:53 in a private network namespace, for tools
    /// that only use the system resolver).
    pub async fn listening_on(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self::start_at(Some(listen), upstream, unchanged).await
    }

    async fn start_rewriting(upstream: SocketAddr, rewrite: Rewrite) -> Self {
        Self::start_at(None, upstream, rewrite).await
    }

    async fn start_at(listen: Option<SocketAddr>, upstream: SocketAddr, rewrite: Rewrite) -> Self {
        // One port for both transports: take a free UDP port, then TCP on the same number.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind(listen.unwrap_or(([127, 0, 0, 1], 0).into()))
                .await
                .expect("bind UDP");
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (Arc::new(udp), tcp);
            }
            assert!(listen.is_none(), "TCP port {port} is taken");
        };
        let forwarder = Forwarder {
            addr: udp.local_addr().unwrap(),
            udp_updates: Arc::default(),
            tcp_updates: Arc::default(),
            queries: Arc::default(),
        };
        let (updates, queries) = (forwarder.udp_updates.clone(), forwarder.queries.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((len, client)) = udp.recv_from(&mut buf).await {
                let request = buf[..len].to_vec();
                count(&request, &updates, &queries);
                let udp = udp.clone();
                tokio::spawn(async move {
                    let upstream_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
                    upstream_socket
                        .connect(upstream)
                        .await
                        .expect("connect UDP");
                    upstream_socket.send(&request).await.expect("forward UDP");
                    let mut answer = vec![0u8; 65535];
                    let wait = tokio::time::timeout(
                        Duration::from_secs(10),
                        upstream_socket.recv(&mut answer),
                    );
                    if let Ok(Ok(len)) = wait.await {
                        let answer = rewrite(answer[..len].to_vec());
                        let _ = udp.send_to(&answer, client).await;
                    }
                });
            }
        });
        let (updates, queries) = (forwarder.tcp_updates.clone(), forwarder.queries.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = tcp.accept().await {
                let (updates, queries) = (updates.clone(), queries.clone());
                tokio::spawn(async move {
                    let _ = relay_tcp(client, upstream, &updates, &queries, rewrite).await;
                });
            }
        });
        forwarder
    }

    /// UPDATE messages seen so far: (over UDP, over TCP).
    pub fn updates(&self) -> (usize, usize) {
        (
            self.udp_updates.load(Ordering::SeqCst),
            self.tcp_updates.load(Ordering::SeqCst),
        )
    }

    /// Other messages seen so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn count(message: &[u8], updates: &AtomicUsize, queries: &AtomicUsize) {
    if opcode(message) == Some(OPCODE_UPDATE) {
        updates.fetch_add(1, Ordering::SeqCst);
    } else {
        queries.fetch_add(1, Ordering::SeqCst);
    }
}

/// Relays length-prefixed messages between one client connection and the server.
async fn relay_tcp(
    mut client: TcpStream,
    upstream: SocketAddr,
    updates: &AtomicUsize,
    queries: &AtomicUsize,
    rewrite: Rewrite,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    loop {
        let request = read_framed(&mut client).await?;
        count(&request, updates, queries);
        write_framed(&mut server, &request).await?;
        let answer = rewrite(read_framed(&mut server).await?);
        write_framed(&mut client, &answer).await?;
    }
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).expect("DNS message over 64 KiB");
    // One write: a separate 2-byte write waits on Nagle and delayed ACK (~40 ms
    // per exchange), which distorted the benchmarks' timings.
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
