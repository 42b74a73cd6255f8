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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hickory_proto::rr::Name;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{
    ApiClient, ApiRequest, ApiResponse, Auth, HttpOptions, SecretSource, api_messages,
    configured_zone, expect_unchanged,
};
use super::provider::{Applied, ChangeSet, Provider};
use crate::clock::Clock;
use crate::dns::DnsError;
use crate::dns::rrset::{Mx, Rdata, RrType, Rrset, RrsetId, Txt};
use crate::tlsa::TlsaRecord;

/// The public API.
pub const API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// The `ttl` value that means "automatic".
pub const AUTOMATIC_TTL_MARKER: u32 = 1;

/// What an "automatic" TTL is in DNS: Cloudflare documents automatic as
/// 300 seconds for records that are not proxied (TLSA never is). This is
/// the TTL caches apply, so the roll engine must wait with it.
pub const AUTOMATIC_TTL: u32 = 300;

/// Records per page when listing (the API's default is 100).
pub const PER_PAGE: u32 = 100;

/// Bound on pages read in one listing (100 000 records at 100 a page).
const MAX_PAGES: u32 = 1000;

/// Written into the `comment` of every record tlsa creates.
pub const RECORD_COMMENT: &str = "managed by tlsa";

const BACKEND: &str = "Cloudflare";

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

/// One record as listed, with what a batch needs to touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    pub id: String,
    pub record: Rdata,
    /// The TTL as the API states it (`1`: automatic).
    pub api_ttl: u32,
}

impl ListedRecord {
    /// The TTL caches apply.
    pub fn ttl(&self) -> u32 {
        effective_ttl(self.api_ttl)
    }
}

/// The TTL served for an API `ttl` value.
pub fn effective_ttl(api_ttl: u32) -> u32 {
    if api_ttl == AUTOMATIC_TTL_MARKER {
        AUTOMATIC_TTL
    } else {
        api_ttl
    }
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

/// A name as the API writes it: lower case, no trailing dot.
pub fn api_name(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

/// The record data in one listed record, if it is a record of `rrset`;
/// an error only for a record of that type that cannot be understood.
fn decode_record(record: &Value, rrset: &RrsetId) -> Result<Option<ListedRecord>, String> {
    let (owner, rtype) = (&rrset.owner, rrset.rtype);
    if record.get("type").and_then(Value::as_str) != Some(rtype.mnemonic()) {
        return Ok(None);
    }
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !name
        .trim_end_matches('.')
        .eq_ignore_ascii_case(&api_name(owner))
    {
        return Ok(None);
    }
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a {rtype} record at {name} has no id"))?;
    let api_ttl = record
        .get("ttl")
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| format!("{rtype} record {id} has no valid ttl"))?;
    let content = record.get("content").and_then(Value::as_str);
    let parsed = match rtype {
        RrType::Tlsa => record
            .get("data")
            .and_then(from_data)
            .or_else(|| content.and_then(|c| c.parse::<TlsaRecord>().ok()))
            .map(Rdata::Tlsa),
        RrType::Txt => content.and_then(txt_from_content).map(Rdata::Txt),
        RrType::Mx => mx_from_api(content, record.get("priority")).map(Rdata::Mx),
    }
    .ok_or_else(|| {
        let fields = match rtype {
            RrType::Tlsa => "data {usage, selector, matching_type, certificate} nor content",
            RrType::Txt => "content",
            RrType::Mx => "content and priority",
        };
        format!("{rtype} record {id} at {name} has no readable {fields}")
    })?;
    Ok(Some(ListedRecord {
        id: id.to_string(),
        record: parsed,
        api_ttl,
    }))
}

/// `data {usage, selector, matching_type, certificate}`; the certificate in
/// hex of either case. Digest lengths are not enforced: a hand-made record
/// of the wrong length is still a record of the RRset.
fn from_data(data: &Value) -> Option<TlsaRecord> {
    let field = |name: &str| {
        data.get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
    };
    let certificate = data.get("certificate")?.as_str()?;
    let hex_text: String = certificate.split_whitespace().collect();
    Some(TlsaRecord {
        usage: field("usage")?,
        selector: field("selector")?,
        matching: field("matching_type")?,
        data: hex::decode(hex_text).ok()?,
    })
}

/// TXT `content`: quoted character-strings as the API documents them, or
/// unquoted text (records made before quoting was required).
fn txt_from_content(content: &str) -> Option<Txt> {
    if content.trim_start().starts_with('"') {
        content.parse().ok()
    } else {
        Some(Txt::from_text(content))
    }
}

/// MX `content` is the host, `priority` the preference.
fn mx_from_api(content: Option<&str>, priority: Option<&Value>) -> Option<Mx> {
    let preference = u16::try_from(priority?.as_u64()?).ok()?;
    let mut exchange = Name::from_ascii(content?).ok()?;
    exchange.set_fqdn(true);
    Some(Mx {
        preference,
        exchange,
    })
}

/// A record to create, as the batch's `posts` (and the create endpoint) take it.
pub fn post_body(owner: &Name, record: &Rdata, ttl: u32) -> Value {
    let mut body = json!({
        "type": record.rtype().mnemonic(),
        "name": api_name(owner),
        "ttl": ttl,
        "comment": RECORD_COMMENT,
    });
    let fields = match record {
        Rdata::Tlsa(tlsa) => json!({"data": {
            "usage": tlsa.usage,
            "selector": tlsa.selector,
            "matching_type": tlsa.matching,
            "certificate": tlsa.data_hex(),
        }}),
        Rdata::Txt(txt) => json!({"content": txt.to_string()}),
        Rdata::Mx(mx) => json!({"content": api_name(&mx.exchange), "priority": mx.preference}),
    };
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    body
}

/// The batch body for `set` given what is listed now at each owner (in the
/// order of `set.changes`); [`DnsError::ChangedBeforeWrite`] when an RRset
/// is not what the plan expected.
pub fn batch_body(
    set: &ChangeSet,
    listed: &[Vec<ListedRecord>],
) -> Result<Option<Value>, DnsError> {
    let (mut deletes, mut patches, mut posts) = (Vec::new(), Vec::new(), Vec::new());
    for (change, current) in set.changes.iter().zip(listed) {
        let found: BTreeSet<Rdata> = current.iter().map(|l| l.record.clone()).collect();
        expect_unchanged(BACKEND, change, &found)?;
        let mut kept = BTreeSet::new();
        for listed in current {
            // A second copy of a record (possible only by hand) goes too.
            if !change.desired.contains(&listed.record) || !kept.insert(&listed.record) {
                deletes.push(json!({ "id": listed.id }));
            } else if listed.ttl() != change.ttl {
                patches.push(json!({ "id": listed.id, "ttl": change.ttl }));
            }
        }
        posts.extend(
            change
                .to_add()
                .map(|r| post_body(&change.owner, r, change.ttl)),
        );
    }
    if deletes.is_empty() && patches.is_empty() && posts.is_empty() {
        return Ok(None);
    }
    let mut body = serde_json::Map::new();
    for (key, list) in [("deletes", deletes), ("patches", patches), ("posts", posts)] {
        if !list.is_empty() {
            body.insert(key.into(), Value::Array(list));
        }
    }
    Ok(Some(Value::Object(body)))
}

#[async_trait]
impl Provider for Cloudflare {
    fn describe(&self) -> String {
        format!("Cloudflare API at {}", self.api.base_url())
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if !self.zones.is_empty() {
            return configured_zone(&self.zones, owner)
                .ok_or_else(|| super::http::outside_zones(BACKEND, &self.zones, owner));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::publish::provider::RrsetChange;

    fn rec(text: &str) -> Rdata {
        Rdata::Tlsa(text.parse().unwrap())
    }

    /// Any JSON a server lists decodes to a record, to nothing, or to an
    /// error — never a panic. Built from the fields decode_record reads, so
    /// most cases get past the type and name checks (tests/fuzz_parsers.rs
    /// cannot reach this private function).
    #[test]
    fn any_listed_json_decodes_without_panic() {
        use proptest::prelude::*;
        let owner: Name = "_25._tcp.mail.example.com.".parse().unwrap();
        let rrset = RrsetId::tlsa(owner);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(Value::from("TLSA")),
            Just(Value::from("_25._tcp.mail.example.com.")),
            "[0-9a-fA-F ]{0,70}".prop_map(Value::from),
            "[ -~]{0,40}".prop_map(Value::from),
        ];
        let field = prop::sample::select(vec![
            "type",
            "name",
            "id",
            "ttl",
            "data",
            "content",
            "usage",
            "selector",
            "matching_type",
            "certificate",
        ]);
        let json = leaf.prop_recursive(3, 48, 8, move |inner| {
            prop::collection::btree_map(field.clone().prop_map(String::from), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
        });
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 2000,
            failure_persistence: None,
            ..Default::default()
        });
        runner
            .run(&json, |record| {
                let _ = decode_record(&record, &rrset);
                Ok(())
            })
            .unwrap();
    }

    const A: &str = "3 1 1 8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    const B: &str = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";

    fn owner() -> Name {
        Name::from_ascii("_25._tcp.Mail.Example.com.").unwrap()
    }

    fn tlsa_at_owner() -> RrsetId {
        RrsetId::tlsa(owner())
    }

    #[test]
    fn decodes_and_posts_txt_and_mx() {
        let id = |rtype| RrsetId::new(Name::from_ascii("example.com.").unwrap(), rtype);
        let quoted = json!({"id": "t1", "type": "TXT", "name": "example.com", "ttl": 60,
            "content": "\"v=STSv1; id=1\" \"x\""});
        let txt = decode_record(&quoted, &id(RrType::Txt)).unwrap().unwrap();
        assert_eq!(
            txt.record,
            Rdata::Txt("\"v=STSv1; id=1\" \"x\"".parse().unwrap())
        );
        let bare = json!({"id": "t2", "type": "TXT", "name": "example.com", "ttl": 60,
            "content": "v=TLSRPTv1; rua=mailto:r@example.com"});
        let txt = decode_record(&bare, &id(RrType::Txt)).unwrap().unwrap();
        assert_eq!(
            txt.record,
            Rdata::Txt(Txt::from_text("v=TLSRPTv1; rua=mailto:r@example.com"))
        );
        assert_eq!(decode_record(&bare, &id(RrType::Mx)), Ok(None));
        let mx = json!({"id": "m1", "type": "MX", "name": "example.com", "ttl": 60,
            "content": "mx1.example.com", "priority": 10});
        let listed = decode_record(&mx, &id(RrType::Mx)).unwrap().unwrap();
        assert_eq!(
            listed.record,
            Rdata::Mx("10 mx1.example.com.".parse().unwrap())
        );
        let no_priority = json!({"id": "m2", "type": "MX", "name": "example.com", "ttl": 60,
            "content": "mx1.example.com"});
        assert!(
            decode_record(&no_priority, &id(RrType::Mx))
                .unwrap_err()
                .contains("m2")
        );

        let owner = Name::from_ascii("example.com.").unwrap();
        assert_eq!(
            post_body(&owner, &listed.record, 60),
            json!({"type": "MX", "name": "example.com", "ttl": 60, "content": "mx1.example.com",
                "priority": 10, "comment": RECORD_COMMENT})
        );
        let posted = post_body(&owner, &txt.record, 60);
        assert_eq!(
            posted["content"],
            "\"v=TLSRPTv1; rua=mailto:r@example.com\""
        );
        assert_eq!(posted["type"], "TXT");
    }

    #[test]
    fn decodes_tlsa_only_and_ignores_everything_else() {
        let other = json!({"id": "1", "type": "SVCB", "name": "_25._tcp.mail.example.com",
            "data": {"priority": 1, "target": ".", "value": "alpn=h2"}, "ttl": "weird"});
        assert_eq!(decode_record(&other, &tlsa_at_owner()), Ok(None));
        let future = json!({"type": "ZZZ", "data": [1, 2, {"x": null}]});
        assert_eq!(decode_record(&future, &tlsa_at_owner()), Ok(None));
        let upper = json!({"id": "r1", "type": "TLSA", "name": "_25._tcp.mail.example.com",
            "ttl": 1, "content": "ignored when data is there",
            "data": {"usage": 3, "selector": 1, "matching_type": 1,
                     "certificate": A[6..].to_ascii_uppercase()}});
        let listed = decode_record(&upper, &tlsa_at_owner()).unwrap().unwrap();
        assert_eq!(listed.record, rec(A));
        assert_eq!((listed.api_ttl, listed.ttl()), (1, AUTOMATIC_TTL));
        let content_only = json!({"id": "r2", "type": "TLSA",
            "name": "_25._tcp.mail.example.com", "ttl": 3600, "content": B});
        assert_eq!(
            decode_record(&content_only, &tlsa_at_owner())
                .unwrap()
                .unwrap()
                .record,
            rec(B)
        );
        let elsewhere = json!({"id": "r3", "type": "TLSA", "name": "_443._tcp.mail.example.com",
            "ttl": 1, "content": B});
        assert_eq!(decode_record(&elsewhere, &tlsa_at_owner()), Ok(None));
        let broken = json!({"id": "r4", "type": "TLSA", "name": "_25._tcp.mail.example.com",
            "ttl": 1, "data": {"usage": 3}});
        let err = decode_record(&broken, &tlsa_at_owner()).unwrap_err();
        assert!(err.contains("r4"), "{err}");
    }

    #[test]
    fn batch_deletes_posts_and_patches_only_what_changes() {
        let listed = vec![ListedRecord {
            id: "old".into(),
            record: rec(A),
            api_ttl: 1,
        }];
        let change = RrsetChange {
            owner: owner(),
            rtype: RrType::Tlsa,
            expected: [rec(A)].into(),
            desired: [rec(B)].into(),
            ttl: 300,
        };
        let set = ChangeSet {
            zone: Name::from_ascii("example.com.").unwrap(),
            changes: vec![change],
        };
        let body = batch_body(&set, std::slice::from_ref(&listed))
            .unwrap()
            .unwrap();
        assert_eq!(
            body,
            json!({"deletes": [{"id": "old"}], "posts": [post_body(&owner(), &rec(B), 300)]})
        );
        assert_eq!(body["posts"][0]["name"], "_25._tcp.mail.example.com");

        // Keeping A with an automatic TTL is no change at 300 s, a patch at 600 s.
        let mut keep = set.clone();
        keep.changes[0].desired = [rec(A)].into();
        assert_eq!(
            batch_body(&keep, std::slice::from_ref(&listed)).unwrap(),
            None
        );
        keep.changes[0].ttl = 600;
        assert_eq!(
            batch_body(&keep, std::slice::from_ref(&listed))
                .unwrap()
                .unwrap(),
            json!({"patches": [{"id": "old", "ttl": 600}]})
        );

        let mut stale = set.clone();
        stale.changes[0].expected = BTreeSet::new();
        let err = batch_body(&stale, &[listed]).unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("3 1 1 8f2c") && text.contains("_25._tcp.Mail"),
            "{text}"
        );
    }
}
