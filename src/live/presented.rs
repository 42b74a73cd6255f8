//! The roll engine's observation of live servers: which key (the leaf's
//! SubjectPublicKeyInfo) every address of every endpoint presents now. The
//! same connections and validated address lookups as `tlsa check`
//! ([`super::check`]), without judging them: the plan decides.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use tokio::task::JoinSet;

use super::capture::{self, ConnectOptions};
use super::check::{collect, resolve_addresses};
use super::endpoint::Endpoint;
use super::resolve::Dns;
use super::verdict;

/// What one address presented (the leaf's SubjectPublicKeyInfo), or why
/// nothing was seen there; `address` is `None` when the endpoint's
/// addresses could not be found.
#[derive(Debug, Clone)]
pub struct PresentedSpki {
    pub endpoint: String,
    pub address: Option<SocketAddr>,
    pub spki: Result<Vec<u8>, String>,
}

/// The roll engine's observation: the key every address of every endpoint
/// presents now, all connections at once, each bounded by
/// `connect.timeout`. Addresses come from validated A/AAAA lookups (a
/// bogus or failed lookup is reported as such) unless the endpoint pins them.
pub async fn presented_keys(
    endpoints: &[(Endpoint, Option<Vec<SocketAddr>>)],
    dns: Arc<dyn Dns>,
    connect: &ConnectOptions,
) -> Vec<PresentedSpki> {
    let mut set = JoinSet::new();
    for (index, (endpoint, given)) in endpoints.iter().cloned().enumerate() {
        let dns = dns.clone();
        let connect = connect.clone();
        set.spawn(async move {
            (
                index,
                presented_at_endpoint(&endpoint, given, dns.as_ref(), &connect).await,
            )
        });
    }
    collect(set).await.into_iter().flatten().collect()
}

async fn presented_at_endpoint(
    endpoint: &Endpoint,
    given: Option<Vec<SocketAddr>>,
    dns: &dyn Dns,
    connect: &ConnectOptions,
) -> Vec<PresentedSpki> {
    let label = format!("{}:{}", endpoint.host, endpoint.port);
    let failed = |why: String| {
        vec![PresentedSpki {
            endpoint: label.clone(),
            address: None,
            spki: Err(why),
        }]
    };
    let Ok(host_name) = Name::from_ascii(format!("{}.", endpoint.host)) else {
        return failed(format!("{} is not a valid DNS name", endpoint.host));
    };
    let (addresses, lookups) = resolve_addresses(endpoint, &host_name, given.as_deref(), dns).await;
    let undecided: Vec<String> = lookups
        .iter()
        .filter(|l| l.dnssec == "bogus" || l.dnssec == "indeterminate")
        .map(|l| format!("{} lookup {}: {}", l.rtype, l.dnssec, l.detail))
        .collect();
    if addresses.is_empty() {
        return failed(match undecided.is_empty() {
            true => format!("{} has no A or AAAA records", endpoint.host),
            false => undecided.join("; "),
        });
    }
    let label = &label;
    let captures = addresses.iter().map(|&address| async move {
        let spki = match capture::capture(address, endpoint, connect).await {
            Ok(presented) => presented
                .chain
                .first()
                .map(|leaf| leaf.spki().to_vec())
                .ok_or_else(|| "the server presented no certificate".to_string()),
            Err(failure) => Err(verdict::describe_failure(failure)),
        };
        PresentedSpki {
            endpoint: label.clone(),
            address: Some(address),
            spki,
        }
    });
    let mut found = futures_util::future::join_all(captures).await;
    if !undecided.is_empty() {
        // The addresses found are observed; those a lookup could not decide
        // may be missing, so the observation is incomplete.
        found.extend(failed(undecided.join("; ")));
    }
    found
}
