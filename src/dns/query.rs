//! One question to one server, the way every observation in this crate is
//! made: UDP first, TCP when the answer is truncated, a bounded timeout, and
//! errors that name the server.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;

use hickory_net::NetError;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsHandle, DnsMultiplexer, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::DnsError;

/// How long one exchange with one server may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Options of one question.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// RD bit: false when asking an authoritative server directly.
    pub recursion: bool,
    /// DO bit: true to receive RRSIGs.
    pub dnssec_ok: bool,
    pub timeout: Duration,
}

impl Ask {
    /// A non-recursive question to an authoritative server, with RRSIGs.
    pub fn authoritative() -> Self {
        Ask {
            recursion: false,
            dnssec_ok: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A question to a recursive resolver.
    pub fn recursive() -> Self {
        Ask {
            recursion: true,
            dnssec_ok: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Which transport carried an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A client over UDP to `server`. The returned background task drives the
/// socket and must run for as long as the client is used.
pub fn udp_client(server: SocketAddr, timeout: Duration) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::new())
        .with_timeout(Some(timeout))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

/// A client over a fresh TCP connection to `server`.
pub async fn tcp_client(
    server: SocketAddr,
    timeout: Duration,
) -> Result<Client<TokioRuntimeProvider>, NetError> {
    let (connect, sender) =
        TcpClientStream::new(server, None, Some(timeout), TokioRuntimeProvider::new());
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| NetError::Timeout)??;
    let multiplexer = DnsMultiplexer::new(stream, sender).with_timeout(timeout);
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(multiplexer);
    tokio::spawn(background);
    Ok(client)
}

/// A [`DnsHandle`] that sends each request on fresh sockets: UDP, then TCP
/// when the answer is truncated (the DNSSEC handle does not retry truncated
/// answers itself, and DNSKEY answers with RRSIGs can exceed a UDP payload).
/// It owns no connection and no background task, so one handle — and the
/// validation cache of a `DnssecDnsHandle` around it — can serve a whole run,
/// from whichever runtime polls it.
#[derive(Clone)]
pub struct FreshSocketsHandle {
    server: SocketAddr,
    timeout: Duration,
}

impl FreshSocketsHandle {
    pub fn new(server: SocketAddr, timeout: Duration) -> Self {
        FreshSocketsHandle { server, timeout }
    }
}

impl DnsHandle for FreshSocketsHandle {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let (server, timeout) = (self.server, self.timeout);
        Box::pin(futures_util::stream::once(async move {
            let udp = udp_client(server, timeout)
                .send(request.clone())
                .first_answer()
                .await?;
            if !udp.truncation {
                return Ok(udp);
            }
            tcp_client(server, timeout)
                .await?
                .send(request)
                .first_answer()
                .await
        }))
    }
}

/// Sends a prepared message (e.g. a signed UPDATE) over `transport`.
pub async fn exchange(
    server: SocketAddr,
    message: Message,
    transport: Transport,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = message.metadata.recursion_desired;
    let request = DnsRequest::new(message, options);
    match transport {
        Transport::Udp => {
            udp_client(server, timeout)
                .send(request)
                .first_answer()
                .await
        }
        Transport::Tcp => {
            tcp_client(server, timeout)
                .await?
                .send(request)
                .first_answer()
                .await
        }
    }
}

/// Asks `server` one question; retries over TCP when the UDP answer is
/// truncated (hickory does not fall back by itself). Every rcode comes back
/// as `Ok`: callers decide what NXDOMAIN or REFUSED means to them.
pub async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    ask: Ask,
) -> Result<DnsResponse, DnsError> {
    let question = format!("{name} {rtype}");
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = ask.recursion;
    options.edns_set_dnssec_ok = ask.dnssec_ok;
    let query = Query::query(name.clone(), rtype);
    let udp = udp_client(server, ask.timeout)
        .lookup(query.clone(), options)
        .first_answer()
        .await
        .map_err(|e| net_error(server, &question, ask.timeout, e))?;
    if !udp.truncation {
        return Ok(udp);
    }
    tcp_client(server, ask.timeout)
        .await
        .map_err(|e| net_error(server, &question, ask.timeout, e))?
        .lookup(query, options)
        .first_answer()
        .await
        .map_err(|e| net_error(server, &question, ask.timeout, e))
}

/// Turns a transport error into one that names the server and question.
pub fn net_error(
    server: SocketAddr,
    question: &str,
    timeout: Duration,
    error: NetError,
) -> DnsError {
    match error {
        NetError::Timeout => DnsError::Timeout {
            server,
            question: question.to_string(),
            seconds: timeout.as_secs().max(1),
        },
        other => DnsError::Network {
            server,
            question: question.to_string(),
            why: other.to_string(),
        },
    }
}

/// The mnemonic of a response code (RFC 1035, RFC 2136, RFC 6895), for messages.
pub(crate) fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// How an RRset question was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// The RRset exists.
    Positive,
    /// The owner name exists, the RRset does not (NOERROR, no answer).
    NoData,
    /// The owner name does not exist.
    NxDomain,
}

impl fmt::Display for AnswerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnswerKind::Positive => "positive answer",
            AnswerKind::NoData => "NODATA",
            AnswerKind::NxDomain => "NXDOMAIN",
        })
    }
}

/// `2 s`, `0.35 s`, `2.003 s`: milliseconds at most.
pub(crate) fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_millis() as f64 / 1000.0);
    format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
}
