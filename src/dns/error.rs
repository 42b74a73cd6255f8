//! Errors of the DNS layer. Each names the server, zone or key involved and
//! says what to do, because an operator reads them at 3 a.m.

use std::net::SocketAddr;

use hickory_proto::rr::Name;

use super::rrset::RrType;

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
        "UPDATE of zone {zone} refused by {server} (it answered {rcode}): either the server does not accept updates from {key} (check its update-policy/allow-update (BIND) or acl (Knot) and the key in use), or it rejected the content (BIND refuses an MX or SRV whose host in the zone has no A/AAAA record: publish the host's address first); the server's log says which"
    )]
    UpdateRefused {
        server: SocketAddr,
        zone: Name,
        /// "key NAME" or "an unsigned request".
        key: String,
        /// The response code as sent (REFUSED, or NOTAUTH from servers that
        /// answer it when their ACL denies): the operator greps logs for it.
        rcode: String,
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

    /// The answer to a signed request did not verify: it may be forged, so
    /// whether the change happened is unknown.
    #[error(
        "response from {server} failed TSIG verification ({why}): it may have been forged or altered on the way, so zone {zone} may or may not have changed; run tlsa again to reconcile, and check the key"
    )]
    ResponseNotVerified {
        server: SocketAddr,
        zone: Name,
        /// Names the key and what failed.
        why: String,
    },

    #[error(
        "{server} is not authoritative for zone {zone} (it answered {answered}): point the back-end at the zone's primary server"
    )]
    NotAuthoritative {
        server: SocketAddr,
        zone: Name,
        /// What the server said: its response code (REFUSED, NOTAUTH), or
        /// an answer without the AA bit.
        answered: String,
    },

    /// A compare-and-swap prerequisite failed: someone changed the RRset
    /// between our read and our write. Callers re-read and re-plan.
    #[error(
        "the {rtype} RRset at {owner} changed while tlsa was updating it (prerequisite failed at {server})"
    )]
    Conflict {
        server: SocketAddr,
        owner: Name,
        rtype: RrType,
    },

    #[error(
        "the RRsets of zone {zone} kept changing under tlsa: {attempts} attempts failed their prerequisite; another writer is updating the same names, retry later"
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

    /// A provider's HTTP API answered with an error status (after any
    /// retries). `messages` are the API's own words; `hint` says what to do.
    #[error(
        "{backend} API at {url}: {action} failed with HTTP {status}{api}; {hint}",
        api = api_messages(messages)
    )]
    Http {
        backend: String,
        /// What tlsa was doing, e.g. "look up zone example.com.".
        action: String,
        /// The request URL, never with credentials in it.
        url: String,
        status: u16,
        messages: Vec<String>,
        hint: String,
    },

    /// A provider's HTTP API could not be reached or did not answer in time.
    #[error("{backend} API at {url}: {action} failed: {why}; {hint}")]
    HttpUnreachable {
        backend: String,
        action: String,
        url: String,
        why: String,
        hint: String,
    },

    /// A provider's HTTP API answered with something tlsa cannot read.
    #[error(
        "{backend} API at {url}: unexpected answer to {action}: {why}; check that the URL points at the API (and its version) tlsa expects"
    )]
    ApiMalformed {
        backend: String,
        action: String,
        url: String,
        why: String,
    },

    /// The compare step of a back-end without conditional writes (HTTP
    /// APIs, zone files) found the RRset changed since it was read.
    /// Like [`DnsError::Conflict`], callers re-read and re-plan.
    #[error(
        "the {rtype} RRset at {owner} changed while tlsa was updating it ({backend} now holds {found}); nothing was written"
    )]
    ChangedBeforeWrite {
        backend: String,
        owner: Name,
        rtype: RrType,
        /// The records found, in presentation form.
        found: String,
    },

    /// After writing, the back-end serves something else than what tlsa
    /// wrote: another writer changed the RRset at the same moment, and one
    /// of the two changes is lost. Not retried automatically.
    #[error(
        "the {rtype} RRset at {owner} was changed by someone else while tlsa wrote it: tlsa wrote {wrote} but {backend} now holds {found}; check who else manages zone {zone}, then run tlsa again to reconcile"
    )]
    ChangedAfterWrite {
        backend: String,
        zone: Name,
        owner: Name,
        rtype: RrType,
        wrote: String,
        found: String,
    },

    /// After writing, the back-end serves exactly what it served before the
    /// write: the API answered success without applying the change (a
    /// proxy or cache in front of it, a read-only replica, an API bug).
    /// Nobody else is involved, so it is not reported as a concurrent change.
    #[error(
        "the {backend} API accepted the change but did not apply it: tlsa wrote {wrote} at {owner}, and the API still holds what it held before, {found}; check that the API URL reaches the primary API itself (not a cache, proxy or read-only replica), then run tlsa again"
    )]
    WriteNotApplied {
        backend: String,
        owner: Name,
        wrote: String,
        found: String,
    },

    /// A secret (API token or key) could not be loaded. Never holds the secret.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),

    /// A file a back-end reads or writes (zone file back-end).
    #[error("{path}: {why}")]
    File { path: String, why: String },

    /// The reload command of the zone-file back-end failed; the records
    /// file was put back as it was.
    #[error(
        "reload command `{command}` for zone {zone} failed ({status}){output}; the records file was restored to its previous content: fix the command (or the server) and run tlsa again"
    )]
    ReloadFailed {
        zone: Name,
        command: String,
        status: String,
        /// The command's output, quoted (or empty).
        output: String,
    },
}

impl DnsError {
    /// Whether this is a lost compare-and-swap race that re-reading and
    /// re-planning can resolve ([`super::apply_edits`] does).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DnsError::Conflict { .. } | DnsError::ChangedBeforeWrite { .. }
        )
    }

    /// The HTTP status of an API error, if this is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            DnsError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// ": first message; second message" or "".
fn api_messages(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}
