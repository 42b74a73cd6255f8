//! A local fake of Cloudflare's v4 API (nothing here can reach the real one), shared by
//! `tests/cloudflare.rs` (the back-end's own behaviour: pages, 429/5xx, tokens, redirects)
//! and `tests/provider_contract.rs` (the scenarios every back-end passes). It follows the
//! published shapes: the `{success, errors: [{code, message}], messages, result, result_info
//! {page, per_page, count, total_count, total_pages}}` envelope, DNS record objects with
//! `data {usage, selector, matching_type, certificate}` for TLSA (certificate returned in upper
//! case, `content` computed), `content` for TXT (quoted character-strings) and `content` +
//! `priority` for MX, `ttl: 1` for automatic, `GET /zones?name=`, `GET
//! /zones/{id}/dns_records?type=&name.exact=&page=&per_page=`, `POST
//! /zones/{id}/dns_records/batch` with `deletes`/`patches`/`posts` applied all or nothing
//! (an identical record is error 81058), 403 with error 9109 for a bad token, 429 with
//! `Retry-After`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tlsa::clock::ManualClock;
use tlsa::dns::publish::cloudflare::{Cloudflare, CloudflareConfig};
use tlsa::dns::publish::http::SecretSource;
use tlsa::dns::{Mx, Rdata, RrType, Txt};
use tlsa::tlsa::TlsaRecord;

use super::records::{A, B, C, name, rec};
use super::{HttpMock, MockRequest, MockResponse};

pub const TOKEN: &str = "cf-test-token-7Qx2kV9w";
pub const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const ZONE: &str = "example.com";
pub const OWNER: &str = "_25._tcp.mail.example.com";

/// What the fake serves and how it misbehaves.
pub struct State {
    pub records: Vec<Value>,
    pub next_id: u32,
    /// Answer the next N record listings with 429.
    pub rate_limit: u32,
    pub retry_after: String,
    /// Answer the next N record listings with 503.
    pub unavailable: u32,
    /// Answer batches with 502 (after applying nothing).
    pub batch_fails: bool,
    /// Honour `type` and `name.exact` (a fake that ignores them returns the whole zone).
    pub honour_filters: bool,
}

/// A Cloudflare record object as the API returns it.
pub fn record(
    id: &str,
    rtype: &str,
    name: &str,
    ttl: Value,
    content: &str,
    data: Option<Value>,
) -> Value {
    let mut record = json!({
        "id": id,
        "zone_id": ZONE_ID,
        "zone_name": ZONE,
        "name": name,
        "type": rtype,
        "content": content,
        "proxiable": matches!(rtype, "A" | "AAAA" | "CNAME"),
        "proxied": false,
        "ttl": ttl,
        "settings": {},
        "meta": {"auto_added": false, "managed_by_apps": false, "managed_by_argo_tunnel": false},
        "comment": null,
        "tags": [],
        "created_on": "2026-01-01T00:00:00.000000Z",
        "modified_on": "2026-01-01T00:00:00.000000Z",
    });
    if let Some(data) = data {
        record["data"] = data;
    }
    record
}

/// A TLSA record as Cloudflare returns it: certificate in upper case, content computed.
pub fn tlsa_record(id: &str, name: &str, ttl: u32, text: &str) -> Value {
    let r: TlsaRecord = text.parse().expect("TLSA text");
    let hex = r.data_hex().to_ascii_uppercase();
    record(
        id,
        "TLSA",
        name,
        json!(ttl),
        &format!("{} {} {} {hex}", r.usage, r.selector, r.matching),
        Some(json!({"usage": r.usage, "selector": r.selector,
            "matching_type": r.matching, "certificate": hex})),
    )
}

/// A zone with every common type, a type from the future with odd data, and TLSA records.
pub fn zone_records() -> Vec<Value> {
    vec![
        record("r01", "A", "mail.example.com", json!(1), "192.0.2.25", None),
        record(
            "r02",
            "AAAA",
            "mail.example.com",
            json!(300),
            "2001:db8::25",
            None,
        ),
        record("r03", "MX", ZONE, json!(3600), "mail.example.com", None)
            .as_object()
            .cloned()
            .map(|mut o| {
                o.insert("priority".into(), json!(10));
                Value::Object(o)
            })
            .unwrap(),
        record("r04", "TXT", ZONE, json!(1), "\"v=spf1 mx -all\"", None),
        record(
            "r05",
            "CAA",
            ZONE,
            json!(1),
            "0 issue \"letsencrypt.org\"",
            Some(json!({"flags": 0, "tag": "issue", "value": "letsencrypt.org"})),
        ),
        record(
            "r06",
            "SVCB",
            "_dns.example.com",
            json!(1),
            "1 . alpn=\"dot\"",
            Some(json!({"priority": 1, "target": ".", "value": "alpn=\"dot\""})),
        ),
        record(
            "r07",
            "HTTPS",
            "www.example.com",
            json!(1),
            "1 . alpn=\"h2,h3\"",
            Some(json!({"priority": 1, "target": ".", "value": "alpn=\"h2,h3\""})),
        ),
        record(
            "r08",
            "ZZTOP",
            "future.example.com",
            json!("auto"),
            "",
            Some(json!([1, {"nested": [null, true]}, "x"])),
        ),
        tlsa_record("r09", "_443._tcp.www.example.com", 1, B),
        tlsa_record("r10", OWNER, 1, A),
        record(
            "r11",
            "CNAME",
            "autoconfig.example.com",
            json!(1),
            "mail.example.com",
            None,
        ),
        tlsa_record("r12", OWNER, 1, C),
    ]
}

pub fn envelope(result: Value) -> Value {
    json!({"success": true, "errors": [], "messages": [], "result": result})
}

pub fn failure(status: u16, code: u32, message: &str) -> MockResponse {
    MockResponse::json(
        status,
        &json!({"success": false, "errors": [{"code": code, "message": message}],
            "messages": [], "result": null}),
    )
}

/// A fake Cloudflare API over a shared state.
pub struct Fake {
    pub mock: HttpMock,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    pub async fn start(records: Vec<Value>) -> Self {
        let state = Arc::new(Mutex::new(State {
            records,
            next_id: 100,
            rate_limit: 0,
            retry_after: "7".into(),
            unavailable: 0,
            batch_fails: false,
            honour_filters: true,
        }));
        let mock = HttpMock::with_state(&state, answer).await;
        Fake { mock, state }
    }

    pub fn base_url(&self) -> String {
        format!("{}/client/v4", self.mock.url())
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn backend_with(&self, token: &str, clock: Arc<ManualClock>) -> Cloudflare {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let mut config = CloudflareConfig::new(SecretSource::File(path));
        config.base_url = self.base_url();
        config.zones = vec![name("example.com.")];
        Cloudflare::new(&config).unwrap().with_clock(clock)
    }

    pub fn backend(&self) -> Cloudflare {
        self.backend_with(TOKEN, Arc::new(ManualClock::default()))
    }

    /// The TLSA records the fake holds at `owner`.
    pub fn tlsa_at(&self, owner: &str) -> BTreeSet<Rdata> {
        self.state()
            .records
            .iter()
            .filter(|r| r["type"] == "TLSA" && r["name"] == owner)
            .map(|r| rec(r["content"].as_str().unwrap()))
            .collect()
    }

    /// Requests that can change something.
    pub fn writes(&self) -> Vec<MockRequest> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

pub fn answer(state: &Mutex<State>, request: &MockRequest) -> MockResponse {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return failure(403, 9109, "Invalid access token");
    }
    let mut state = state.lock().unwrap();
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["client", "v4", "user", "tokens", "verify"]) => MockResponse::json(
            200,
            &json!({"success": true, "errors": [],
                "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": null}],
                "result": {"id": "ed17574386854bf78a67040be0a770b0", "status": "active"}}),
        ),
        ("GET", ["client", "v4", "zones"]) => {
            let zone = json!({"id": ZONE_ID, "name": ZONE, "status": "active", "paused": false,
                "type": "full", "name_servers": ["a.ns.cloudflare.com", "b.ns.cloudflare.com"]});
            let zones = match request.query_value("name") {
                Some(n) if n != ZONE => vec![],
                _ => vec![zone],
            };
            let count = zones.len();
            let mut body = envelope(json!(zones));
            body["result_info"] = json!({"page": 1, "per_page": 50, "count": count,
                "total_count": count, "total_pages": 1});
            MockResponse::json(200, &body)
        }
        ("GET", ["client", "v4", "zones", ZONE_ID, "dns_records"]) => {
            if state.rate_limit > 0 {
                state.rate_limit -= 1;
                return failure(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                )
                .with_header("Retry-After", &state.retry_after);
            }
            if state.unavailable > 0 {
                state.unavailable -= 1;
                return MockResponse::text(
                    503,
                    "<html><body>503 Service Temporarily Unavailable</body></html>",
                );
            }
            let wanted: Vec<&Value> = state
                .records
                .iter()
                .filter(|r| {
                    !state.honour_filters
                        || (request.query_value("type").is_none_or(|t| r["type"] == t)
                            && request
                                .query_value("name.exact")
                                .is_none_or(|n| r["name"] == n))
                })
                .collect();
            let page: usize = request
                .query_value("page")
                .map_or(1, |p| p.parse().unwrap());
            let per_page: usize = request
                .query_value("per_page")
                .map_or(100, |p| p.parse().unwrap());
            let total = wanted.len();
            let total_pages = total.div_ceil(per_page).max(1);
            let slice: Vec<Value> = wanted
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect();
            let mut body = envelope(json!(slice));
            body["result_info"] = json!({"page": page, "per_page": per_page,
                "count": slice.len(), "total_count": total, "total_pages": total_pages});
            MockResponse::json(200, &body)
        }
        ("POST", ["client", "v4", "zones", ZONE_ID, "dns_records", "batch"]) => {
            if state.batch_fails {
                return MockResponse::text(502, "Bad Gateway");
            }
            batch(&mut state, &request.json())
        }
        _ => failure(
            404,
            7003,
            "Could not route to /path, perhaps your object identifier is invalid?",
        ),
    }
}

/// Applies a batch all or nothing, in Cloudflare's order: deletes, patches, puts, posts.
pub fn batch(state: &mut State, body: &Value) -> MockResponse {
    let mut records = state.records.clone();
    let mut result = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
    for delete in body["deletes"].as_array().into_iter().flatten() {
        let Some(at) = records.iter().position(|r| r["id"] == delete["id"]) else {
            return failure(400, 81044, "Record does not exist.");
        };
        let gone = records.remove(at);
        result["deletes"].as_array_mut().unwrap().push(gone);
    }
    for patch in body["patches"].as_array().into_iter().flatten() {
        let Some(record) = records.iter_mut().find(|r| r["id"] == patch["id"]) else {
            return failure(400, 81044, "Record does not exist.");
        };
        record["ttl"] = patch["ttl"].clone();
        result["patches"]
            .as_array_mut()
            .unwrap()
            .push(record.clone());
    }
    for post in body["posts"].as_array().into_iter().flatten() {
        let name = post["name"].as_str().unwrap_or_default().to_string();
        let rtype = post["type"].as_str().unwrap_or_default().to_string();
        let ttl = post["ttl"].as_u64().unwrap_or(1) as u32;
        state.next_id += 1;
        let id = format!("new{}", state.next_id);
        let Some(created) = posted_record(&id, &name, ttl, post) else {
            return failure(400, 9101, "DNS Validation Error");
        };
        let parsed = rdata_of_record(&created);
        let duplicate = records.iter().any(|r| {
            r["type"] == rtype.as_str()
                && r["name"] == name.as_str()
                && rdata_of_record(r) == parsed
        });
        if duplicate {
            return failure(400, 81058, "An identical record already exists.");
        }
        result["posts"]
            .as_array_mut()
            .unwrap()
            .push(created.clone());
        records.push(created);
    }
    state.records = records;
    MockResponse::json(200, &envelope(result))
}

/// The record a post creates, as the API then lists it; `None` when the post is not a valid
/// record of its type (TLSA from `data`, TXT from quoted `content`, MX from `content` and
/// `priority`).
fn posted_record(id: &str, name: &str, ttl: u32, post: &Value) -> Option<Value> {
    match post["type"].as_str()? {
        "TLSA" => {
            let data = &post["data"];
            let text = format!(
                "{} {} {} {}",
                data["usage"],
                data["selector"],
                data["matching_type"],
                data["certificate"].as_str()?
            );
            let parsed = text.parse::<TlsaRecord>().ok()?;
            Some(tlsa_record(id, name, ttl, &parsed.to_string()))
        }
        "TXT" => {
            let content = post["content"].as_str()?;
            content.parse::<Txt>().ok()?;
            Some(record(id, "TXT", name, json!(ttl), content, None))
        }
        "MX" => {
            let content = post["content"].as_str()?;
            let priority = u16::try_from(post["priority"].as_u64()?).ok()?;
            format!("{priority} {content}").parse::<Mx>().ok()?;
            Some(mx_record(id, name, ttl, priority, content))
        }
        _ => None,
    }
}

/// An MX record as Cloudflare returns it: the host in `content`, the preference in `priority`.
pub fn mx_record(id: &str, name: &str, ttl: u32, priority: u16, host: &str) -> Value {
    let mut record = record(id, "MX", name, json!(ttl), host, None);
    record["priority"] = json!(priority);
    record
}

/// A record object of any type tlsa publishes, as the API returns it.
pub fn record_of(id: &str, name: &str, ttl: u32, rdata: &Rdata) -> Value {
    match rdata {
        Rdata::Tlsa(tlsa) => tlsa_record(id, name, ttl, &tlsa.to_string()),
        Rdata::Txt(txt) => record(id, "TXT", name, json!(ttl), &txt.to_string(), None),
        Rdata::Mx(mx) => {
            let host = mx.exchange.to_string();
            mx_record(id, name, ttl, mx.preference, host.trim_end_matches('.'))
        }
    }
}

/// The record data of a listed record (`None` for a type tlsa does not publish).
pub fn rdata_of_record(record: &Value) -> Option<Rdata> {
    let content = record["content"].as_str()?;
    match record["type"].as_str()? {
        "TLSA" => content.parse::<TlsaRecord>().ok().map(Rdata::Tlsa),
        "TXT" => content.parse::<Txt>().ok().map(Rdata::Txt),
        "MX" => format!("{} {content}", record["priority"].as_u64()?)
            .parse::<Mx>()
            .ok()
            .map(Rdata::Mx),
        _ => None,
    }
}

/// `name` as the API writes it: no trailing dot.
pub fn api_name(owner: &str) -> &str {
    owner.trim_end_matches('.')
}

impl Fake {
    /// The TTLs and records the fake holds at `owner` of type `rtype`.
    pub fn rrset(&self, owner: &str, rtype: RrType) -> (BTreeSet<u64>, BTreeSet<Rdata>) {
        let state = self.state();
        let listed = state
            .records
            .iter()
            .filter(|r| r["type"] == rtype.mnemonic() && r["name"] == api_name(owner));
        let ttls = listed.clone().filter_map(|r| r["ttl"].as_u64()).collect();
        let records = listed
            .map(|r| rdata_of_record(r).unwrap_or_else(|| panic!("unreadable record {r}")))
            .collect();
        (ttls, records)
    }

    /// Another writer (the dashboard, another tool) makes the RRset hold exactly `records`.
    pub fn put_rrset(&self, owner: &str, rtype: RrType, ttl: u32, records: &BTreeSet<Rdata>) {
        let mut state = self.state();
        state
            .records
            .retain(|r| !(r["type"] == rtype.mnemonic() && r["name"] == api_name(owner)));
        for rdata in records {
            state.next_id += 1;
            let id = format!("other{}", state.next_id);
            let created = record_of(&id, api_name(owner), ttl, rdata);
            state.records.push(created);
        }
    }
}
