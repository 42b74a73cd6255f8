//! The PowerDNS Authoritative back-end: RRsets of any type through its HTTP API
//! (`/api/v1/servers/{server}/zones/{zone}`, key in `X-API-Key`), over the
//! shared [`super::http`] mechanism.
//!
//! - **Reading**: `GET …/zones/{zone}?rrset_name=OWNER&rrset_type=TYPE`
//!   (PowerDNS 4.7 filters; the answer is filtered again here, so a server
//!   that ignores the filter is still read right). Records marked
//!   `disabled` are not served, so they are not part of the RRset tlsa
//!   reports; they are kept (still disabled) when tlsa rewrites the RRset.
//!   PowerDNS 4.7.3 leaves disabled records out of *filtered* answers, so
//!   [`Provider::apply`] reads the whole zone (once before, once after).
//! - **Writing**: one `PATCH …/zones/{zone}` for the whole change set, one
//!   `REPLACE` of the whole RRset per owner (`DELETE` when nothing is
//!   left), applied by PowerDNS in one backend transaction. The API has no
//!   conditional write, so [`Provider::apply`] reads every RRset first and
//!   fails with [`DnsError::ChangedBeforeWrite`] (nothing written) when one
//!   is not what the plan expected; after the write it reads them again and
//!   fails with [`DnsError::ChangedAfterWrite`] when one is not exactly what
//!   was written: another writer got in between, and that is reported, never
//!   papered over. (A writer landing between the compare and the PATCH
//!   itself — one round trip — cannot be detected by any client of this API.)
//! - **Serial**: the zone's `serial` as read after the write (PowerDNS
//!   raises it per `SOA-EDIT-API`), so propagation can wait for it.

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

/// The server id of a stand-alone PowerDNS.
pub const DEFAULT_SERVER_ID: &str = "localhost";

const BACKEND: &str = "PowerDNS";

/// How to reach a PowerDNS API.
#[derive(Debug, Clone)]
pub struct PowerDnsConfig {
    /// The webserver's URL, e.g. `http://127.0.0.1:8081` (a trailing
    /// `/api/v1` is accepted too).
    pub api_url: String,
    /// `localhost` unless the API is behind a multi-server front-end.
    pub server_id: String,
    /// The `api-key` of pdns.conf.
    pub api_key: SecretSource,
    /// The zones tlsa manages here; empty: found through the API.
    pub zones: Vec<Name>,
    pub http: HttpOptions,
}

impl PowerDnsConfig {
    pub fn new(api_url: impl Into<String>, api_key: SecretSource) -> Self {
        PowerDnsConfig {
            api_url: api_url.into(),
            server_id: DEFAULT_SERVER_ID.into(),
            api_key,
            zones: Vec::new(),
            http: HttpOptions::default(),
        }
    }
}

/// The PowerDNS back-end.
#[derive(Debug)]
pub struct PowerDns {
    api: ApiClient,
    server_id: String,
    zones: Vec<Name>,
}

/// A zone as the API returns it (only what tlsa needs). `rrsets` is
/// required: a 200 answer of another shape (a wrong URL reaching some other
/// JSON API) must be an error, never read as "no records here".
#[derive(Debug, Deserialize)]
struct Zone {
    #[serde(default)]
    serial: Option<u32>,
    rrsets: Vec<ApiRrset>,
}

#[derive(Debug, Deserialize)]
struct ApiRrset {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    records: Vec<ApiRecord>,
}

#[derive(Debug, Deserialize)]
struct ApiRecord {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// One RRset as the API holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stored {
    ttl: Option<u32>,
    /// Served records.
    enabled: BTreeSet<Rdata>,
    /// Records kept but not served; preserved on rewrite.
    disabled: BTreeSet<Rdata>,
}

impl PowerDns {
    /// Loads the API key and prepares the client.
    pub fn new(config: &PowerDnsConfig) -> Result<Self, DnsError> {
        let key = config.api_key.load("PowerDNS API key")?;
        let auth = Auth {
            header: "X-API-Key",
            prefix: "",
            secret: key,
            hint: format!(
                "the API key from {} against the api-key setting of pdns.conf, and that the webserver allows this address (webserver-allow-from)",
                config.api_key
            ),
        };
        let base = config.api_url.trim_end_matches('/');
        let base = base.strip_suffix("/api/v1").unwrap_or(base);
        if config.server_id.is_empty() {
            return Err(DnsError::Config(
                "the PowerDNS server id is empty: it is `localhost` for a stand-alone server"
                    .into(),
            ));
        }
        Ok(PowerDns {
            api: ApiClient::new(BACKEND, base, auth, config.http)?,
            server_id: config.server_id.clone(),
            zones: config.zones.clone(),
        })
    }

    /// Uses `clock` for retry waits.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.api = self.api.with_clock(clock);
        self
    }

    /// Read-only check that the key works for `zone`: reads the zone.
    /// Returns what was verified.
    pub async fn check(&self, zone: &Name) -> Result<Vec<String>, DnsError> {
        let request = self
            .zone_request(Method::GET, zone, format!("read zone {zone}"))
            .query("rrsets", "false");
        let found: Value = self.api.json(&request).await?;
        let dnssec = match found.get("dnssec").and_then(Value::as_bool) {
            Some(true) => "DNSSEC-signed",
            Some(false) => "NOT DNSSEC-signed: DANE needs a signed zone",
            None => "signing state unknown",
        };
        let serial = found
            .get("serial")
            .and_then(Value::as_u64)
            .map(|s| format!(", serial {s}"))
            .unwrap_or_default();
        Ok(vec![format!(
            "API key accepted; zone {zone} readable on server {} ({dnssec}{serial}); write permission is only proven by a change",
            self.server_id
        )])
    }

    fn zone_request(&self, method: Method, zone: &Name, action: String) -> ApiRequest {
        let zone_id = zone_id(zone);
        ApiRequest::new(
            method,
            &["api", "v1", "servers", &self.server_id, "zones", &zone_id],
            action,
        )
        .not_found_hint(format!(
            "check the zone name ({zone}) and the server id ({}): the server has no such zone",
            self.server_id
        ))
    }

    /// The zone with only the RRset `id` (PowerDNS filters, and leaves out
    /// disabled records), or the whole zone (disabled records included) for
    /// `None`.
    async fn fetch(&self, zone: &Name, id: Option<&RrsetId>) -> Result<Fetched, DnsError> {
        let request = match id {
            Some(id) => self
                .zone_request(
                    Method::GET,
                    zone,
                    format!("read the {} records of {}", id.rtype, id.owner),
                )
                .query("rrset_name", owner_name(&id.owner))
                .query("rrset_type", id.rtype.mnemonic()),
            None => self.zone_request(Method::GET, zone, format!("read zone {zone}")),
        };
        let response = self.api.send(&request).await?;
        let zone = self.api.decode(&request, &response)?;
        Ok(Fetched {
            zone,
            request,
            url: response.url,
        })
    }
}

/// A zone as read, with the request for error messages.
struct Fetched {
    zone: Zone,
    request: ApiRequest,
    url: String,
}

impl Fetched {
    /// The RRset `id` in what was read.
    fn stored(&self, api: &ApiClient, id: &RrsetId) -> Result<Stored, DnsError> {
        let mut stored = Stored::default();
        let wanted = owner_name(&id.owner);
        for rrset in &self.zone.rrsets {
            if !rrset.rtype.eq_ignore_ascii_case(id.rtype.mnemonic())
                || !rrset
                    .name
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(wanted.trim_end_matches('.'))
            {
                continue;
            }
            stored.ttl = rrset.ttl;
            for record in &rrset.records {
                let parsed = Rdata::parse(id.rtype, &record.content)
                    .map_err(|e| api.malformed(&self.request, &self.url, e))?;
                if record.disabled {
                    stored.disabled.insert(parsed);
                } else {
                    stored.enabled.insert(parsed);
                }
            }
        }
        // A disabled record that is also enabled is served.
        stored.disabled = &stored.disabled - &stored.enabled;
        Ok(stored)
    }
}

/// The zone id in URLs: the zone name with its final dot.
fn zone_id(zone: &Name) -> String {
    let mut zone = zone.to_lowercase();
    zone.set_fqdn(true);
    zone.to_ascii()
}

/// An owner name as the API writes it: lower case, final dot.
fn owner_name(owner: &Name) -> String {
    zone_id(owner)
}

/// The `rrsets` entry of the PATCH for one RRset.
fn rrset_patch(
    id: &RrsetId,
    desired: &BTreeSet<Rdata>,
    ttl: u32,
    keep_disabled: &BTreeSet<Rdata>,
) -> Value {
    let (owner, rtype) = (&id.owner, id.rtype.mnemonic());
    let keep: Vec<&Rdata> = keep_disabled.difference(desired).collect();
    if desired.is_empty() && keep.is_empty() {
        return json!({ "name": owner_name(owner), "type": rtype, "changetype": "DELETE" });
    }
    let records: Vec<Value> = desired
        .iter()
        .map(|r| json!({ "content": r.to_string(), "disabled": false }))
        .chain(
            keep.iter()
                .map(|r| json!({ "content": r.to_string(), "disabled": true })),
        )
        .collect();
    json!({
        "name": owner_name(owner),
        "type": rtype,
        "ttl": ttl,
        "changetype": "REPLACE",
        "records": records,
    })
}

#[async_trait]
impl Provider for PowerDns {
    fn describe(&self) -> String {
        format!(
            "PowerDNS API at {} (server {})",
            self.api.base_url(),
            self.server_id
        )
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if !self.zones.is_empty() {
            return configured_zone(&self.zones, owner)
                .ok_or_else(|| outside_zones(BACKEND, &self.zones, owner));
        }
        // The longest enclosing name the server has a zone for.
        let mut candidate = owner.clone();
        candidate.set_fqdn(true);
        while !candidate.is_root() {
            let request = self
                .zone_request(
                    Method::GET,
                    &candidate,
                    format!("look for zone {candidate}"),
                )
                .query("rrsets", "false");
            match self.api.send(&request).await {
                Ok(_) => return Ok(candidate),
                Err(e) if matches!(e.http_status(), Some(404 | 422)) => {}
                Err(e) => return Err(e),
            }
            candidate = candidate.base_name();
        }
        Err(DnsError::Config(format!(
            "PowerDNS server {} at {} has no zone holding {owner}: create the zone, or check the server id",
            self.server_id,
            self.api.base_url()
        )))
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        let stored = self.fetch(zone, Some(id)).await?.stored(&self.api, id)?;
        Ok(Rrset {
            owner: id.owner.clone(),
            rtype: id.rtype,
            ttl: if stored.enabled.is_empty() {
                None
            } else {
                stored.ttl
            },
            records: stored.enabled,
        })
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        // The whole zone, once: a filtered read would miss disabled records.
        let before = self.fetch(&set.zone, None).await?;
        let mut rrsets = Vec::with_capacity(set.changes.len());
        for change in &set.changes {
            let stored = before.stored(&self.api, &change.id())?;
            expect_unchanged(BACKEND, change, &stored.enabled)?;
            rrsets.push(rrset_patch(
                &change.id(),
                &change.desired,
                change.ttl,
                &stored.disabled,
            ));
        }
        if rrsets.is_empty() {
            return Ok(Applied::default());
        }
        // REPLACE and DELETE of whole RRsets: repeating the PATCH is harmless.
        let request = self
            .zone_request(
                Method::PATCH,
                &set.zone,
                format!("change the records of zone {}", set.zone),
            )
            .json(json!({ "rrsets": rrsets }))
            .idempotent(true);
        self.api.send(&request).await?;

        let after = self.fetch(&set.zone, None).await?;
        for change in &set.changes {
            let now = after.stored(&self.api, &change.id())?;
            expect_written(BACKEND, &set.zone, change, &now.enabled, now.ttl)?;
        }
        Ok(Applied {
            serial: after.zone.serial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> Rdata {
        Rdata::Tlsa(text.parse().unwrap())
    }

    const A: &str = "3 1 1 8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    const B: &str = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn replace_keeps_disabled_records_and_delete_removes_the_rrset() {
        let owner = RrsetId::tlsa(Name::from_ascii("_25._tcp.Mail.example.test").unwrap());
        let patch = rrset_patch(&owner, &[rec(A)].into(), 60, &[rec(B)].into());
        assert_eq!(
            patch,
            json!({"name": "_25._tcp.mail.example.test.", "type": "TLSA", "ttl": 60,
                "changetype": "REPLACE", "records": [
                    {"content": A, "disabled": false},
                    {"content": B, "disabled": true}]})
        );
        assert_eq!(
            rrset_patch(&owner, &BTreeSet::new(), 60, &BTreeSet::new()),
            json!({"name": "_25._tcp.mail.example.test.", "type": "TLSA", "changetype": "DELETE"})
        );
        // Enabling a disabled record does not also keep a disabled copy.
        let patch = rrset_patch(&owner, &[rec(B)].into(), 60, &[rec(B)].into());
        assert_eq!(patch["records"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn api_url_may_carry_the_api_path() {
        let config = |url: &str| PowerDnsConfig::new(url, SecretSource::Env("PATH".into()));
        for url in ["http://127.0.0.1:8081", "http://127.0.0.1:8081/api/v1/"] {
            let pdns = PowerDns::new(&config(url)).unwrap();
            let zone = Name::from_ascii("example.test").unwrap();
            let request = pdns.zone_request(Method::GET, &zone, "x".into());
            assert_eq!(
                pdns.api.url(&request).as_str(),
                "http://127.0.0.1:8081/api/v1/servers/localhost/zones/example.test."
            );
        }
    }
}
