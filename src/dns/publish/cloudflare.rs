//! The Cloudflare back-end: TLSA, TXT and MX RRsets through Cloudflare's
//! v4 API (reqwest + serde over the shared [`super::http`] mechanism; the
//! `cloudflare` crate cannot represent TLSA records).
//!
//! - **Zones** are found by name (`GET /zones?name=`), or, for
//!   [`Provider::zone_of`] without configured zones, by listing the zones
//!   the token sees and taking the longest that holds the owner.
//! - **Reading** lists `GET /zones/{id}/dns_records?type=TYPE&name.exact=…`
//!   page by page (`result_info.total_pages`). Every record is first read as
//!   untyped JSON and only records of the asked type are decoded: TLSA from
//!   `data {usage, selector, matching_type, certificate}` (or from `content`
//!   when `data` is missing), TXT from `content` (quoted character-strings,
//!   or unquoted text as older records have it), MX from `content` (the
//!   host) and `priority`. Records of other types, including types added
//!   after this was written, can never make a listing fail. Certificates
//!   come back in upper-case hex; records are compared as bytes, so case
//!   never matters.
//! - **TTL**: `ttl: 1` means "automatic", which Cloudflare serves as
//!   [`AUTOMATIC_TTL`] seconds; [`Provider::read`] reports that value so the
//!   roll engine waits long enough. When the records of an RRset carry
//!   different TTLs, the largest is reported (the longest a cache may keep).
//! - **Writing**: Cloudflare has no conditional write. [`Provider::apply`]
//!   re-reads every RRset of the change set, fails with
//!   [`DnsError::ChangedBeforeWrite`] when one differs from what the plan
//!   expected, and otherwise sends **one** `POST /zones/{id}/dns_records/batch`
//!   whose `deletes` (record ids), `patches` (TTL changes of kept records)
//!   and `posts` (new records) Cloudflare applies in one database
//!   transaction, all or nothing. Kept records are never deleted and
//!   re-created: Cloudflare propagates a batch record by record, and a
//!   re-created record could briefly vanish at the edge. The window between
//!   the re-read and the batch (one round trip) is not covered: the API
//!   offers nothing to close it.
//! - Cloudflare exposes no SOA serial to compare: [`Applied::serial`] is
//!   `None`, and propagation is judged on content.
//!
//! The record JSON (decoding, creating, the batch body) is in
//! [`super::cloudflare_records`]; this module does the requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hickory_proto::rr::Name;
use serde::Deserialize;
use serde_json::Value;

use super::api_messages::api_messages;
use super::checked_write::{configured_zone, outside_zones};
pub use super::cloudflare_records::{AUTOMATIC_TTL, AUTOMATIC_TTL_MARKER, RECORD_COMMENT};
use super::cloudflare_records::{BACKEND, ListedRecord, api_name, batch_body, decode_record};
use super::http::{ApiClient, ApiRequest, ApiResponse, Auth, HttpOptions, SecretSource};
use super::provider::{Applied, ChangeSet, Provider};
use crate::clock::Clock;
use crate::dns::DnsError;
use crate::dns::rrset::{Rrset, RrsetId};

/// The public API.
pub const API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// Records per page when listing (the API's default is 100).
pub const PER_PAGE: u32 = 100;

/// Bound on pages read in one listing (100 000 records at 100 a page).
const MAX_PAGES: u32 = 1000;

/// How to reach Cloudflare.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// An API token with Zone:Read and DNS:Edit on the zones.
    pub token: SecretSource,
    /// [`API_BASE`] unless testing.
    pub base_url: String,
    /// The zones tlsa manages here; empty: found through the API.
    pub zones: Vec<Name>,
    pub http: HttpOptions,
}

impl CloudflareConfig {
    pub fn new(token: SecretSource) -> Self {
        CloudflareConfig {
            token,
            base_url: API_BASE.to_string(),
            zones: Vec::new(),
            http: HttpOptions::default(),
        }
    }
}

/// The Cloudflare back-end.
#[derive(Debug)]
pub struct Cloudflare {
    api: ApiClient,
    zones: Vec<Name>,
    /// Zone name → zone id, as looked up.
    zone_ids: Mutex<HashMap<Name, String>>,
    per_page: u32,
}

/// The response envelope every v4 endpoint uses.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
    #[serde(default)]
    total_count: Option<u64>,
}

impl Cloudflare {
    /// Loads the token and prepares the client.
    pub fn new(config: &CloudflareConfig) -> Result<Self, DnsError> {
        let token = config.token.load("Cloudflare API token")?;
        let auth = Auth {
            header: "Authorization",
            prefix: "Bearer ",
            secret: token,
            hint: format!(
                "the API token from {} (its value, that it is active and not expired) and its permissions: Zone:Read and DNS:Edit on the zone",
                config.token
            ),
        };
        Ok(Cloudflare {
            api: ApiClient::new(BACKEND, &config.base_url, auth, config.http)?,
            zones: config.zones.clone(),
            zone_ids: Mutex::new(HashMap::new()),
            per_page: PER_PAGE,
        })
    }

    /// Uses `clock` for retry waits.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.api = self.api.with_clock(clock);
        self
    }

    /// Lists with `per_page` records a page (tests use small pages).
    pub fn with_per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page.max(1);
        self
    }

    /// The zone's id, looked up once by name.
    pub async fn zone_id(&self, zone: &Name) -> Result<String, DnsError> {
        if let Some(id) = self.lock_ids().get(zone) {
            return Ok(id.clone());
        }
        let request = ApiRequest::get(&["zones"], format!("look up zone {zone}"))
            .query("name", api_name(zone))
            .query("per_page", "50");
        let zones = self.call(&request).await?.0;
        let id = self.pick_zone(&request, zones, zone)?;
        self.lock_ids().insert(zone.clone(), id.clone());
        Ok(id)
    }

    /// The records of RRset `rrset`, every page.
    pub async fn list(
        &self,
        zone_id: &str,
        rrset: &RrsetId,
    ) -> Result<Vec<ListedRecord>, DnsError> {
        let owner = &rrset.owner;
        let mut listed = Vec::new();
        let mut page = 1;
        loop {
            let request = ApiRequest::get(
                &["zones", zone_id, "dns_records"],
                format!("list the {} records of {owner}", rrset.rtype),
            )
            .query("type", rrset.rtype.mnemonic())
            .query("name.exact", api_name(owner))
            .query("page", page.to_string())
            .query("per_page", self.per_page.to_string())
            .not_found_hint(
                "the zone id is unknown: check the zone name and the token's access to it",
            );
            let (result, info, url) = self.call(&request).await?;
            let Value::Array(records) = result else {
                return Err(self
                    .api
                    .malformed(&request, &url, "`result` is not a list".into()));
            };
            let count = records.len();
            for record in records {
                if let Some(decoded) = decode_record(&record, rrset)
                    .map_err(|why| self.api.malformed(&request, &url, why))?
                {
                    listed.push(decoded);
                }
            }
            let total_pages = info
                .as_ref()
                .and_then(|i| i.total_pages)
                .unwrap_or_else(|| {
                    // Without total_pages: go on while pages come back full.
                    if count as u32 >= self.per_page {
                        page + 1
                    } else {
                        page
                    }
                });
            if page >= total_pages || count == 0 {
                return Ok(listed);
            }
            if page >= MAX_PAGES {
                return Err(self.api.malformed(
                    &request,
                    &url,
                    format!(
                        "more than {MAX_PAGES} pages of {} records at one name",
                        rrset.rtype
                    ),
                ));
            }
            page += 1;
        }
    }

    /// Read-only checks that the token works for `zone`: token status, zone
    /// lookup, listing its TLSA records. Returns what was verified. Write
    /// permission cannot be tested without writing.
    pub async fn check(&self, zone: &Name) -> Result<Vec<String>, DnsError> {
        let mut report = Vec::new();
        let verify = ApiRequest::get(&["user", "tokens", "verify"], "verify the API token");
        let token_status = self.call(&verify).await;
        if let Ok((result, _, _)) = &token_status {
            let status = result
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            if status != "active" {
                return Err(DnsError::Http {
                    backend: BACKEND.into(),
                    action: verify.action.clone(),
                    url: self.api.url(&verify).to_string(),
                    status: 200,
                    messages: vec![format!("token status: {status}")],
                    hint: "the token is not active: create a new one (Zone:Read and DNS:Edit) and point the configuration at it".into(),
                });
            }
            let expiry = match result.get("expires_on").and_then(Value::as_str) {
                Some(when) => format!(", expires {when}"),
                None => String::new(),
            };
            report.push(format!("API token is active{expiry}"));
        }
        let id = match self.zone_id(zone).await {
            Ok(id) => id,
            // The zone lookup failing says more than the verify endpoint.
            Err(e) => return Err(e),
        };
        if let Err(e) = token_status {
            // Account-owned tokens are verified under /accounts/{id}, not /user.
            report.push(format!(
                "token not verifiable at /user/tokens/verify ({}), but it can read the zone",
                e.http_status()
                    .map(|s| format!("HTTP {s}"))
                    .unwrap_or_else(|| "no answer".into())
            ));
        }
        report.push(format!("zone {zone} found (id {id})"));
        let request = ApiRequest::get(
            &["zones", &id, "dns_records"],
            format!("list the TLSA records of zone {zone}"),
        )
        .query("type", "TLSA")
        .query("per_page", "5");
        let (_, info, _) = self.call(&request).await?;
        let count = info
            .and_then(|i| i.total_count)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "some".into());
        report.push(format!(
            "DNS records readable ({count} TLSA records in the zone); write permission is only proven by a change"
        ));
        Ok(report)
    }

    /// Sends `request` and unwraps the envelope: `result`, `result_info`
    /// and the URL. `success: false` is an error even with a 2xx status.
    async fn call(
        &self,
        request: &ApiRequest,
    ) -> Result<(Value, Option<ResultInfo>, String), DnsError> {
        let response = self.api.send(request).await?;
        let envelope: Envelope = self.api.decode(request, &response)?;
        if !envelope.success {
            return Err(self.unsuccessful(request, &response));
        }
        Ok((envelope.result, envelope.result_info, response.url))
    }

    fn unsuccessful(&self, request: &ApiRequest, response: &ApiResponse) -> DnsError {
        DnsError::Http {
            backend: BACKEND.into(),
            action: request.action.clone(),
            url: response.url.clone(),
            status: response.status,
            messages: api_messages(&response.body),
            hint: "the API reported a failure (success: false): see its message".into(),
        }
    }

    fn pick_zone(
        &self,
        request: &ApiRequest,
        zones: Value,
        zone: &Name,
    ) -> Result<String, DnsError> {
        let url = self.api.url(request).to_string();
        let Value::Array(zones) = zones else {
            return Err(self
                .api
                .malformed(request, &url, "`result` is not a list".into()));
        };
        let wanted = api_name(zone);
        let matching: Vec<&Value> = zones
            .iter()
            .filter(|z| {
                z.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&wanted))
            })
            .collect();
        // Prefer an active zone (a pending copy may exist in another account).
        let chosen = matching
            .iter()
            .find(|z| z.get("status").and_then(Value::as_str) == Some("active"))
            .or(matching.first());
        match chosen.and_then(|z| z.get("id")).and_then(Value::as_str) {
            Some(id) => Ok(id.to_string()),
            None => Err(DnsError::Config(format!(
                "Cloudflare has no zone {zone} that this API token can see: check the zone name, and that the token has Zone:Read on it"
            ))),
        }
    }

    /// Every zone the token sees (for [`Provider::zone_of`] without configuration).
    async fn all_zones(&self) -> Result<Vec<(Name, String)>, DnsError> {
        let mut zones = Vec::new();
        for page in 1..=MAX_PAGES {
            let request = ApiRequest::get(&["zones"], "list the zones this token can see")
                .query("page", page.to_string())
                .query("per_page", "50");
            let (result, info, url) = self.call(&request).await?;
            let Value::Array(list) = result else {
                return Err(self
                    .api
                    .malformed(&request, &url, "`result` is not a list".into()));
            };
            for zone in &list {
                let (Some(name), Some(id)) = (
                    zone.get("name").and_then(Value::as_str),
                    zone.get("id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if let Ok(name) = Name::from_ascii(name) {
                    let mut name = name;
                    name.set_fqdn(true);
                    zones.push((name, id.to_string()));
                }
            }
            let pages = info.and_then(|i| i.total_pages).unwrap_or(page);
            if page >= pages || list.is_empty() {
                break;
            }
        }
        Ok(zones)
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, HashMap<Name, String>> {
        self.zone_ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn read_listed(
        &self,
        zone: &Name,
        rrset: &RrsetId,
    ) -> Result<(String, Vec<ListedRecord>), DnsError> {
        let id = self.zone_id(zone).await?;
        let listed = self.list(&id, rrset).await?;
        Ok((id, listed))
    }
}

#[async_trait]
impl Provider for Cloudflare {
    fn describe(&self) -> String {
        format!("Cloudflare API at {}", self.api.base_url())
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if !self.zones.is_empty() {
            return configured_zone(&self.zones, owner)
                .ok_or_else(|| outside_zones(BACKEND, &self.zones, owner));
        }
        let zones = self.all_zones().await?;
        let best = zones
            .into_iter()
            .filter(|(name, _)| name.zone_of(owner))
            .max_by_key(|(name, _)| name.num_labels());
        match best {
            Some((name, id)) => {
                self.lock_ids().insert(name.clone(), id);
                Ok(name)
            }
            None => Err(DnsError::Config(format!(
                "no Cloudflare zone visible to this API token holds {owner}: check the name, and the token's Zone:Read permission"
            ))),
        }
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        let (_, listed) = self.read_listed(zone, id).await?;
        Ok(Rrset {
            owner: id.owner.clone(),
            rtype: id.rtype,
            ttl: listed.iter().map(ListedRecord::ttl).max(),
            records: listed.into_iter().map(|l| l.record).collect(),
        })
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        let zone_id = self.zone_id(&set.zone).await?;
        let mut listed = Vec::with_capacity(set.changes.len());
        for change in &set.changes {
            listed.push(self.list(&zone_id, &change.id()).await?);
        }
        let Some(body) = batch_body(set, &listed)? else {
            return Ok(Applied { serial: None });
        };
        let request = ApiRequest::new(
            reqwest::Method::POST,
            &["zones", &zone_id, "dns_records", "batch"],
            format!("change the records of zone {} (batch)", set.zone),
        )
        .json(body);
        self.call(&request).await?;
        Ok(Applied { serial: None })
    }
}
