//! Starting a server on a free loopback port, and proving that the server answering on that
//! port is the one we started.
//!
//! A port found free by binding port 0 can be taken again before the server binds it (by
//! another lab, or by a resolver's random outgoing socket), and BIND and Knot set
//! SO_REUSEADDR/SO_REUSEPORT on UDP, so the kernel may even let two servers share a port and
//! spread queries between them. Hence: bind failures in the log mean "try another port", and
//! a server only counts as ready once several queries in a row, over UDP and TCP, got answers
//! only it can give (data unique to this lab).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::ServerProcess;
use super::wait::try_poll_every;

/// How long a server may take to start and serve before the test fails. Generous: on a
/// 2-core machine running many tests at once a start can take far longer than the ~100 ms
/// it takes on an idle machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often startup probes ask: they are cheap (see `wire.rs`), and every lab waits on them.
pub const STARTUP_POLL: Duration = Duration::from_millis(10);

/// Ports tried before giving up.
const MAX_ATTEMPTS: u32 = 5;

/// UDP answers in a row that must all come from our server. If a foreign server shared the
/// port, each UDP query would reach ours with probability 1/2 at best: 8 in a row by chance
/// is 1 in 256.
const VERIFY_UDP_QUERIES: u32 = 8;

/// How a readiness probe reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A free loopback port for UDP and TCP alike (at the moment of the call).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP socket");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP after 100 tries");
}

/// Starts the server `name` until one start is proven ours: `command_for(port)` writes the
/// configuration for `port` and returns the command to run (log: `dir/NAME-ATTEMPT.log`);
/// `probe(addr, transport)` says whether an answer only our server can give came back.
/// Panics with the server's log if it exits or never becomes ready.
pub fn start_verified(
    name: &str,
    dir: &Path,
    mut command_for: impl FnMut(u16) -> Command,
    mut probe: impl FnMut(SocketAddr, Transport) -> bool,
) -> (ServerProcess, SocketAddr) {
    let mut failures = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let log = dir.join(format!("{name}-{attempt}.log"));
        let mut server = ServerProcess::spawn(name, command_for(addr.port()), &log);
        match wait_ready(&mut server, addr, &mut probe) {
            Startup::Ready if is_ours(addr, &mut probe) => {
                if !failures.is_empty() {
                    eprintln!("lab: {name} on {addr} after retries: {failures:?}");
                }
                return (server, addr);
            }
            Startup::Ready => failures.push(format!("{addr}: port shared with another server")),
            Startup::PortInUse => failures.push(format!("{addr}: port in use")),
            // Most often a second port of its own (Postfix's implicit-TLS listener) that
            // another test process took between `free_port` and the bind — a server may exit
            // before it logs why. Another attempt picks other ports; a server that exits every
            // time (a configuration error) is reported with each attempt's log.
            Startup::Exited if attempt + 1 < MAX_ATTEMPTS => failures.push(format!(
                "{addr}: exited during startup ({:?}): {}",
                server.exit_status(),
                server.log_tail()
            )),
            Startup::Exited => panic!(
                "{name} exited during startup ({:?}):\n{}\nearlier attempts: {failures:?}",
                server.exit_status(),
                server.log_tail()
            ),
            Startup::TimedOut => panic!(
                "{name} did not serve on {addr} within {STARTUP_TIMEOUT:?}:\n{}",
                server.log_tail()
            ),
        }
        // `server` is dropped here: stopped and reaped before the next attempt.
    }
    panic!("could not start {name} on a port of its own: {failures:?}");
}

enum Startup {
    Ready,
    PortInUse,
    Exited,
    TimedOut,
}

fn wait_ready(
    server: &mut ServerProcess,
    addr: SocketAddr,
    probe: &mut impl FnMut(SocketAddr, Transport) -> bool,
) -> Startup {
    let outcome = try_poll_every(STARTUP_POLL, STARTUP_TIMEOUT, || {
        // A failed bind is logged; BIND may go on running without the socket (e.g. TCP),
        // Knot and unbound exit.
        if bind_failed(&server.log()) {
            Some(Startup::PortInUse)
        } else if server.exit_status().is_some() {
            // The log may have been completed just before the exit.
            Some(if bind_failed(&server.log()) {
                Startup::PortInUse
            } else {
                Startup::Exited
            })
        } else if probe(addr, Transport::Udp) {
            Some(Startup::Ready)
        } else {
            None
        }
    });
    outcome.unwrap_or(Startup::TimedOut)
}

/// Several UDP answers in a row and one TCP answer, all from our server.
fn is_ours(addr: SocketAddr, probe: &mut impl FnMut(SocketAddr, Transport) -> bool) -> bool {
    (0..VERIFY_UDP_QUERIES).all(|_| probe(addr, Transport::Udp)) && probe(addr, Transport::Tcp)
}

/// What the servers log when they cannot bind their port (compared in lower case).
const BIND_FAILURES: &[&str] = &[
    // BIND: "creating TCP socket: address in use", "could not listen on UDP socket: …"
    "address in use",
    // BIND, when no socket at all could be made (it then exits).
    "creating ipv4 interface lo failed",
    // Knot: "cannot bind address … (address already in use)";
    // unbound: "can't bind socket: Address already in use".
    "address already in use",
];

fn bind_failed(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    BIND_FAILURES.iter().any(|marker| log.contains(marker))
}
