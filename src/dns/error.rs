//! Errors of the DNS layer. Each names the server, zone or key involved and
//! says what to do, because an operator reads them at 3 a.m.

use std::net::SocketAddr;

use hickory_proto::rr::Name;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "no answer from {server} for {question} within {seconds} s: check that the server runs and that UDP/TCP port {port} is reachable",
        port = server.port()
    )]
    Timeout {
        server: SocketAddr,
        question: String,
        seconds: u64,
    },

    #[error("cannot reach {server} for {question}: {why}")]
    Network {
        server: SocketAddr,
        question: String,
        why: String,
    },

    #[error("{server} answered {question} with {rcode}{hint}")]
    Rcode {
        server: SocketAddr,
        question: String,
        rcode: String,
        hint: String,
    },

    #[error(
        "UPDATE of zone {zone} refused by {server}: the server does not accept updates from {key}; check its update-policy/allow-update (BIND) or acl (Knot) and the key in use"
    )]
    UpdateRefused {
        server: SocketAddr,
        zone: Name,
        /// "key NAME" or "an unsigned request".
        key: String,
    },

    #[error(
        "authentication failed at {server} for key {key} ({detail}): check the key's name and secret against the server's configuration{time_hint}",
        time_hint = if detail.contains("BADTIME") { ", and that both clocks are right" } else { "" }
    )]
    AuthFailed {
        server: SocketAddr,
        key: Name,
        detail: String,
    },

    #[error(
        "{server} is not authoritative for zone {zone} (NOTAUTH): point the back-end at the zone's primary server"
    )]
    NotAuthoritative { server: SocketAddr, zone: Name },

    /// A compare-and-swap prerequisite failed: someone changed the RRset
    /// between our read and our write. Callers re-read and re-plan.
    #[error(
        "the TLSA RRset at {owner} changed while tlsa was updating it (prerequisite failed at {server})"
    )]
    Conflict { server: SocketAddr, owner: Name },

    #[error(
        "the TLSA RRsets of zone {zone} kept changing under tlsa: {attempts} attempts failed their prerequisite; another writer is updating the same names, retry later"
    )]
    ConflictPersisted { zone: Name, attempts: usize },

    #[error("{0}")]
    Config(String),

    #[error("{server}: unexpected answer to {question}: {why}")]
    Malformed {
        server: SocketAddr,
        question: String,
        why: String,
    },
}
