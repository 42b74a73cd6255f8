//! [`ObserveSts`] on the real network: the policy file in the webroots,
//! the policy fetched from every address of `mta-sts.DOMAIN` with the
//! strictest sender's rules, the `_mta-sts` TXT and the MX RRset as every
//! authoritative server of the zone serves them (what a change just made
//! is visible at, unlike a caching resolver), the MX RRset validated, and
//! the WebPKI verdict of every address of every MX host (the live check).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::rr::{Name, RecordType};

use super::dns::{mx_id, txt_id};
use super::execute;
use super::fetch::{self, FetchOptions};
use super::matching;
use super::record;
use super::run::{ObserveSts, Observed};
use crate::clock::Clock;
use crate::dns::observe::dnssec::{ValidateRrsets, Verdict};
use crate::dns::observe::propagation::{FindServers, worst_ttl};
use crate::dns::rrset::Rdata;
use crate::live::check::{self, CheckOptions, Target};
use crate::live::endpoint::{Endpoint, Protocol};
use crate::live::resolve::Dns;
use crate::mtasts::plan::World;
use crate::mtasts::report_gate::{self, ReportDay};
use crate::tlsrpt::store::{Filter, ReportStore, SqliteStore};

/// Limit for each authoritative question of one observation.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how one domain is observed.
pub struct LiveObserver<'a> {
    pub domain: String,
    pub webroots: &'a [PathBuf],
    /// Validated lookups (A/AAAA of the policy host, the MX certificates).
    pub dns: Arc<dyn Dns>,
    /// The authoritative servers of the zone holding `_mta-sts.DOMAIN` and
    /// the MX RRset.
    pub servers: &'a dyn FindServers,
    pub validator: &'a dyn ValidateRrsets,
    pub clock: &'a dyn Clock,
    pub fetch: FetchOptions,
    /// Port of the policy host (443).
    pub policy_port: u16,
    /// Fetch from exactly these instead of the A/AAAA of `mta-sts.DOMAIN`.
    pub policy_addresses: Option<Vec<SocketAddr>>,
    /// Port of the MX hosts' SMTP service (25).
    pub mx_port: u16,
    /// MX hosts judged beside the RRset's (those about to enter it).
    pub wanted_mx: Vec<String>,
    /// TTL assumed for an RRset no server serves yet.
    pub default_ttl: u32,
    /// The TLS-RPT store and how far back to read it, when the enforce
    /// gate asks for reports.
    pub reports: Option<(PathBuf, Duration)>,
}

impl LiveObserver<'_> {
    /// The domain's report days from the store (read-only use; an absent
    /// store is created empty, which is "no report yet").
    fn report_days(&self) -> Result<Option<Vec<ReportDay>>, String> {
        let Some((path, back)) = &self.reports else {
            return Ok(None);
        };
        let since = self.clock.now() - *back;
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let store = SqliteStore::open(path).map_err(|e| e.to_string())?;
        let rows = store
            .summary(&Filter {
                since: Some(since),
                domain: Some(self.domain.clone()),
            })
            .map_err(|e| e.to_string())?;
        Ok(Some(report_gate::days_of(&rows, &self.domain)))
    }

    async fn policy_addresses(&self) -> Result<Vec<SocketAddr>, String> {
        if let Some(given) = &self.policy_addresses {
            return Ok(given.clone());
        }
        let host = fetch::policy_host(&self.domain);
        let name = Name::from_ascii(format!("{host}."))
            .map_err(|e| format!("{host} is not a DNS name: {e}"))?;
        let (v4, v6) = tokio::join!(
            self.dns.lookup(&name, RecordType::A),
            self.dns.lookup(&name, RecordType::AAAA)
        );
        let mut addresses = Vec::new();
        for answer in [v4, v6] {
            match answer.verdict {
                Verdict::Bogus | Verdict::Indeterminate => {
                    return Err(format!(
                        "the {} records of {host} could not be validated ({}); nothing is decided on an address list that may be incomplete",
                        answer.rtype, answer.reason
                    ));
                }
                _ => addresses.extend(
                    answer
                        .addresses()
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, self.policy_port)),
                ),
            }
        }
        if addresses.is_empty() {
            return Err(format!(
                "{host} has no A or AAAA record: senders cannot fetch the policy; publish the address of the web server"
            ));
        }
        Ok(addresses)
    }

    /// Each MX address whose certificate is not WebPKI-valid for its name.
    async fn webpki_failures(&self, hosts: &BTreeSet<String>) -> Vec<String> {
        // MX hosts speak SMTP whatever the port (a test or a relay may use another
        // one); a host that cannot be checked is a failure, never left out.
        let mut failures = Vec::new();
        let mut targets = Vec::new();
        for host in hosts {
            match Endpoint::new(host, self.mx_port, Some(Protocol::Smtp)) {
                Ok(endpoint) => targets.push(Target::Endpoint {
                    endpoint,
                    addresses: None,
                }),
                Err(why) => failures.push(format!("{host}: cannot be checked: {why}")),
            }
        }
        if targets.is_empty() {
            return failures;
        }
        let options = CheckOptions {
            webpki: Some(self.fetch.roots.clone()),
            now: self.clock.now(),
            ..CheckOptions::default()
        };
        let report = check::check(&targets, self.dns.clone(), &options).await;
        for endpoint in &report.endpoints {
            if endpoint.addresses.is_empty() {
                failures.push(format!("{}: no address could be checked", endpoint.host));
            }
            for address in &endpoint.addresses {
                match &address.webpki {
                    Some(w) if w.valid => {}
                    Some(w) => failures.push(format!(
                        "{} {}: {} ({})",
                        endpoint.host, address.address, w.result, w.detail
                    )),
                    None => failures.push(format!(
                        "{} {}: no certificate was presented ({})",
                        endpoint.host, address.address, address.summary
                    )),
                }
            }
        }
        failures
    }
}

#[async_trait]
impl ObserveSts for LiveObserver<'_> {
    async fn observe(&self) -> Result<Observed, String> {
        let domain = &self.domain;
        let txt = txt_id(domain).map_err(|e| e.to_string())?;
        let mx = mx_id(domain).map_err(|e| e.to_string())?;
        let addresses = self.policy_addresses().await?;
        let servers = self
            .servers
            .find()
            .await
            .map_err(|e| format!("the authoritative servers of {domain}: {e}"))?;
        let ids = [txt.clone(), mx.clone()];
        let (fetched, authoritative, validated) = tokio::join!(
            fetch::fetch_all(domain, &addresses, &self.fetch),
            servers.observe(&ids, QUESTION_TIMEOUT),
            self.validator.validate_all(std::slice::from_ref(&mx)),
        );
        if let Some(v) = validated.first()
            && matches!(v.verdict, Verdict::Bogus | Verdict::Indeterminate)
        {
            return Err(format!(
                "the MX RRset of {domain} does not validate: {}; nothing is decided on it",
                v.reason
            ));
        }
        let mut txt_ids = Vec::new();
        let mut mx_hosts = BTreeSet::new();
        for server in &authoritative.servers {
            let served = server.result.as_ref().map_err(|e| {
                format!(
                    "authoritative server {} of {domain} did not answer: {e}; the TXT id and MX RRset are decided only on every server's answer",
                    server.server
                )
            })?;
            let ids: Vec<String> = served
                .records(&txt)
                .iter()
                .filter_map(Rdata::as_txt)
                .filter_map(|t| record::parse(&t.text()).ok())
                .map(|r| r.id)
                .collect();
            txt_ids.push(ids);
            // Any host some server serves may be handed out: all of them count.
            mx_hosts.extend(
                served
                    .records(&mx)
                    .iter()
                    .filter_map(Rdata::as_mx)
                    .map(|m| matching::normalise(&m.exchange.to_ascii())),
            );
        }
        let ttl = |id| {
            worst_ttl(&authoritative, id)
                .and_then(|t| t.rrset_ttl.max(t.rrsig_original_ttl))
                .unwrap_or(self.default_ttl)
        };
        let mut judged = mx_hosts.clone();
        judged.extend(self.wanted_mx.iter().map(|h| matching::normalise(h)));
        let webpki_failures = self.webpki_failures(&judged).await;
        let mut served = Vec::new();
        let mut fetch_failures = Vec::new();
        for f in fetched {
            match f.outcome {
                Ok(body) => served.push((f.address, Some(body))),
                Err(why) => {
                    fetch_failures.push((f.address, why.to_string()));
                    served.push((f.address, None));
                }
            }
        }
        Ok(Observed {
            world: World {
                now: self.clock.now(),
                written: execute::written(self.webroots),
                served,
                txt: txt_ids,
                txt_ttl: ttl(&txt),
                mx: mx_hosts.into_iter().collect(),
                mx_ttl: ttl(&mx),
                webpki_failures,
                reports: self.report_days()?,
            },
            fetch_failures,
        })
    }
}
