//! The deSEC back-end (desec.io, a DNSSEC-first free DNS host): RRsets of any type
//! through its REST API (`Authorization: Token …`) over the shared
//! [`super::http`] mechanism.
//!
//! - **Reading**: `GET /domains/{zone}/rrsets/{subname}/{TYPE}/` (404: no
//!   such RRset). Subnames are relative to the zone; the apex is `@`.
//!   Records are in presentation form (TXT quoted, MX hosts absolute).
//! - **Writing**: one bulk `PATCH /domains/{zone}/rrsets/` for the whole
//!   change set — `[{subname, type, ttl, records}]`, `records: []` deleting
//!   — which deSEC applies atomically. It has no conditional write: as for
//!   PowerDNS, every RRset is read and compared first
//!   ([`DnsError::ChangedBeforeWrite`]), and read back after
//!   ([`DnsError::ChangedAfterWrite`]).
//! - **TTL**: deSEC refuses TTLs below the domain's `minimum_ttl` (3600 s
//!   unless deSEC lowered it for the account); the API's message says so.
//! - **Rate limits**: deSEC throttles writes per domain and answers 429
//!   with `Retry-After`, which the shared mechanism honours.
//! - No SOA serial is exposed: [`Applied::serial`] is `None`.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use hickory_proto::rr::Name;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::checked_write::{configured_zone, expect_unchanged, expect_written, outside_zones};
use super::http::{ApiClient, ApiRequest, Auth, HttpOptions, SecretSource};
use super::provider::{Applied, ChangeSet, Provider};
use crate::clock::Clock;
use crate::dns::DnsError;
use crate::dns::rrset::{Rdata, Rrset, RrsetId};

/// The public API.
pub const API_BASE: &str = "https://desec.io/api/v1";

const BACKEND: &str = "deSEC";

/// How to reach deSEC.
#[derive(Debug, Clone)]
pub struct DesecConfig {
    /// An API token allowed to write the zones' RRsets.
    pub token: SecretSource,
    /// [`API_BASE`] unless testing.
    pub base_url: String,
    /// The zones tlsa manages here; empty: found with `?owns_qname=`.
    pub zones: Vec<Name>,
    pub http: HttpOptions,
}

impl DesecConfig {
    pub fn new(token: SecretSource) -> Self {
        DesecConfig {
            token,
            base_url: API_BASE.into(),
            zones: Vec::new(),
            http: HttpOptions::default(),
        }
    }
}

/// The deSEC back-end.
#[derive(Debug)]
pub struct Desec {
    api: ApiClient,
    zones: Vec<Name>,
}

/// An RRset as deSEC answers it. `type` and `records` are required: a 200
/// answer of another shape (a wrong base URL reaching some other JSON API)
/// must be an error, never read as "no records here" — a change planned
/// from that would drop the records really there.
#[derive(Debug, Deserialize)]
struct ApiRrset {
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(rename = "type")]
    rtype: String,
    records: Vec<String>,
}

impl Desec {
    pub fn new(config: &DesecConfig) -> Result<Self, DnsError> {
        let token = config.token.load("deSEC API token")?;
        let auth = Auth {
            header: "Authorization",
            prefix: "Token ",
            secret: token,
            hint: format!(
                "the API token from {} (that it exists and is not expired) and its permission to write the domain's RRsets",
                config.token
            ),
        };
        Ok(Desec {
            api: ApiClient::new(BACKEND, &config.base_url, auth, config.http)?,
            zones: config.zones.clone(),
        })
    }

    /// Uses `clock` for retry waits.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.api = self.api.with_clock(clock);
        self
    }

    /// Read-only check that the token works for `zone`: reads the domain.
    pub async fn check(&self, zone: &Name) -> Result<Vec<String>, DnsError> {
        let request = ApiRequest::get(
            &["domains", &domain_name(zone), ""],
            format!("read domain {zone}"),
        )
        .not_found_hint(format!(
            "the account of this token has no domain {zone}: check the zone name"
        ));
        let domain: Value = self.api.json(&request).await?;
        let minimum = domain
            .get("minimum_ttl")
            .and_then(Value::as_u64)
            .map(|t| format!(", minimum TTL {t} s"))
            .unwrap_or_default();
        let keys = domain
            .get("keys")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok(vec![format!(
            "API token accepted; domain {zone} readable ({keys} DNSSEC keys{minimum}); write permission is only proven by a change"
        )])
    }

    async fn stored(
        &self,
        zone: &Name,
        id: &RrsetId,
    ) -> Result<(Option<u32>, BTreeSet<Rdata>), DnsError> {
        let (owner, rtype) = (&id.owner, id.rtype);
        let subname = subname(zone, owner)?;
        let path_subname = if subname.is_empty() { "@" } else { &subname };
        let request = ApiRequest::get(
            &[
                "domains",
                &domain_name(zone),
                "rrsets",
                path_subname,
                rtype.mnemonic(),
                "",
            ],
            format!("read the {rtype} records of {owner}"),
        );
        let response = match self.api.send(&request).await {
            Ok(response) => response,
            // No RRset — unless the domain itself is missing.
            Err(e) if e.http_status() == Some(404) => {
                self.check(zone).await?;
                return Ok((None, BTreeSet::new()));
            }
            Err(e) => return Err(e),
        };
        let rrset: ApiRrset = self.api.decode(&request, &response)?;
        if rrset.rtype != rtype.mnemonic() {
            return Err(self.api.malformed(
                &request,
                &response.url,
                format!("an RRset of type {:?} answered a {rtype} read", rrset.rtype),
            ));
        }
        let records = rrset
            .records
            .iter()
            .map(|r| {
                Rdata::parse(rtype, r).map_err(|e| self.api.malformed(&request, &response.url, e))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok((rrset.ttl.filter(|_| !records.is_empty()), records))
    }
}

/// A domain name as deSEC writes it: lower case, no final dot.
fn domain_name(zone: &Name) -> String {
    zone.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

/// `owner` relative to `zone` ("" at the apex).
fn subname(zone: &Name, owner: &Name) -> Result<String, DnsError> {
    if !zone.zone_of(owner) {
        return Err(DnsError::Config(format!("{owner} is not in zone {zone}")));
    }
    let owner = domain_name(owner);
    let zone = domain_name(zone);
    Ok(owner
        .strip_suffix(&zone)
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_string())
}

#[async_trait]
impl Provider for Desec {
    fn describe(&self) -> String {
        format!("deSEC API at {}", self.api.base_url())
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if !self.zones.is_empty() {
            return configured_zone(&self.zones, owner)
                .ok_or_else(|| outside_zones(BACKEND, &self.zones, owner));
        }
        let request = ApiRequest::get(&["domains", ""], format!("find the domain of {owner}"))
            .query("owns_qname", domain_name(owner));
        let domains: Vec<Value> = self.api.json(&request).await?;
        domains
            .iter()
            .filter_map(|d| d.get("name").and_then(Value::as_str))
            .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
            .find(|zone| zone.zone_of(owner))
            .ok_or_else(|| {
                DnsError::Config(format!(
                    "no domain of this deSEC account holds {owner}: check the name and the token's account"
                ))
            })
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        let (ttl, records) = self.stored(zone, id).await?;
        Ok(Rrset {
            owner: id.owner.clone(),
            rtype: id.rtype,
            ttl,
            records,
        })
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        let mut rrsets = Vec::with_capacity(set.changes.len());
        for change in &set.changes {
            let (_, found) = self.stored(&set.zone, &change.id()).await?;
            expect_unchanged(BACKEND, change, &found)?;
            let records: Vec<String> = change.desired.iter().map(|r| r.to_string()).collect();
            rrsets.push(json!({
                "subname": subname(&set.zone, &change.owner)?,
                "type": change.rtype.mnemonic(),
                "ttl": change.ttl,
                "records": records,
            }));
        }
        if rrsets.is_empty() {
            return Ok(Applied::default());
        }
        // Whole RRsets with their records: repeating the PATCH is harmless.
        let request = ApiRequest::new(
            Method::PATCH,
            &["domains", &domain_name(&set.zone), "rrsets", ""],
            format!("change the records of zone {}", set.zone),
        )
        .json(Value::Array(rrsets))
        .idempotent(true);
        self.api.send(&request).await?;
        for change in &set.changes {
            let (ttl, found) = self.stored(&set.zone, &change.id()).await?;
            expect_written(BACKEND, &set.zone, change, &found, ttl)?;
        }
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnames_are_relative_to_the_zone() {
        let zone = Name::from_ascii("Example.com.").unwrap();
        let owner = |n: &str| Name::from_ascii(n).unwrap();
        assert_eq!(
            subname(&zone, &owner("_25._tcp.Mail.example.com.")).unwrap(),
            "_25._tcp.mail"
        );
        assert_eq!(subname(&zone, &owner("example.com.")).unwrap(), "");
        assert!(subname(&zone, &owner("_25._tcp.mail.example.org.")).is_err());
        // A name that merely ends with the same characters is not in the zone.
        assert!(subname(&zone, &owner("notexample.com.")).is_err());
    }
}
