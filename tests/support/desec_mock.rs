//! A local fake of deSEC's REST API (nothing here can reach desec.io), shared by
//! `tests/desec.rs` (the back-end's own behaviour) and `tests/provider_contract.rs` (the
//! scenarios every back-end passes). It follows the documented shapes: `Authorization: Token
//! …`, trailing slashes, `GET /domains/{name}/`, `GET /domains/?owns_qname=`, `GET
//! /domains/{name}/rrsets/{subname}/{type}/` (404 when absent), bulk `PATCH
//! /domains/{name}/rrsets/` applied all or nothing with `records: []` deleting, records in
//! presentation form (TLSA hex stored in lower case, TXT as given), `{"detail": …}` errors,
//! positional bulk errors, 429 with `Retry-After`, and the domain's `minimum_ttl`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tlsa::clock::ManualClock;
use tlsa::dns::publish::desec::{Desec, DesecConfig};
use tlsa::dns::publish::http::SecretSource;
use tlsa::dns::{Rdata, RrType};

use super::records::rdata;
use super::{HttpMock, MockRequest, MockResponse};

pub const TOKEN: &str = "desec-test-token-9Hq";
pub const DOMAIN: &str = "example.com";
pub const MINIMUM_TTL: u64 = 3600;

#[derive(Default)]
pub struct State {
    /// (subname, type) → (ttl, records)
    pub rrsets: BTreeMap<(String, String), (u64, Vec<String>)>,
    pub throttle: u32,
}

pub fn rrset_json(subname: &str, rtype: &str, ttl: u64, records: &[String]) -> Value {
    let name = if subname.is_empty() {
        format!("{DOMAIN}.")
    } else {
        format!("{subname}.{DOMAIN}.")
    };
    json!({"created": "2026-01-01T00:00:00.000000Z", "domain": DOMAIN, "subname": subname,
        "name": name, "records": records, "ttl": ttl, "type": rtype,
        "touched": "2026-01-01T00:00:00.000000Z"})
}

pub fn domain_json() -> Value {
    json!({"created": "2026-01-01T00:00:00.000000Z", "keys": [{"dnskey": "257 3 13 AAAA",
        "ds": ["12345 13 2 abcd"], "flags": 257, "keytype": "csk", "managed": true}],
        "minimum_ttl": MINIMUM_TTL, "name": DOMAIN, "published": "2026-01-01T00:00:00.000000Z",
        "touched": "2026-01-01T00:00:00.000000Z"})
}

pub fn not_found() -> MockResponse {
    MockResponse::json(404, &json!({"detail": "Not found."}))
}

pub fn answer(state: &Mutex<State>, request: &MockRequest) -> MockResponse {
    if request.header("authorization") != Some(&format!("Token {TOKEN}")) {
        return MockResponse::json(401, &json!({"detail": "Invalid token."}));
    }
    let mut state = state.lock().unwrap();
    if state.throttle > 0 {
        state.throttle -= 1;
        return MockResponse::json(
            429,
            &json!({"detail": "Request was throttled. Expected available in 3 seconds."}),
        )
        .with_header("Retry-After", "3");
    }
    assert!(
        request.path.ends_with('/'),
        "deSEC paths end with a slash: {}",
        request.path
    );
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v1", "domains", ""]) => {
            let owns = request.query_value("owns_qname").unwrap_or_default();
            if owns == DOMAIN || owns.ends_with(&format!(".{DOMAIN}")) {
                MockResponse::json(200, &json!([domain_json()]))
            } else {
                MockResponse::json(200, &json!([]))
            }
        }
        ("GET", ["api", "v1", "domains", DOMAIN, ""]) => MockResponse::json(200, &domain_json()),
        ("GET", ["api", "v1", "domains", DOMAIN, "rrsets", subname, rtype, ""]) => {
            let subname = if *subname == "@" { "" } else { subname };
            match state.rrsets.get(&(subname.to_string(), rtype.to_string())) {
                Some((ttl, records)) => {
                    MockResponse::json(200, &rrset_json(subname, rtype, *ttl, records))
                }
                None => not_found(),
            }
        }
        ("PATCH", ["api", "v1", "domains", DOMAIN, "rrsets", ""]) => {
            let Value::Array(items) = request.json() else {
                return MockResponse::json(
                    400,
                    &json!({"non_field_errors": ["Expected a list of items."]}),
                );
            };
            let errors: Vec<Value> = items
                .iter()
                .map(|item| match item["ttl"].as_u64() {
                    Some(ttl) if ttl < MINIMUM_TTL => json!({"ttl": [format!(
                        "Ensure this value is greater than or equal to {MINIMUM_TTL}.")]}),
                    _ => json!({}),
                })
                .collect();
            if errors.iter().any(|e| e != &json!({})) {
                return MockResponse::json(400, &Value::Array(errors));
            }
            let mut changed = Vec::new();
            for item in &items {
                let key = (
                    item["subname"].as_str().unwrap().to_string(),
                    item["type"].as_str().unwrap().to_string(),
                );
                let records: Vec<String> = item["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| normalised(&key.1, r.as_str().unwrap()))
                    .collect();
                if records.is_empty() {
                    state.rrsets.remove(&key);
                } else {
                    let ttl = item["ttl"].as_u64().unwrap();
                    changed.push(rrset_json(&key.0, &key.1, ttl, &records));
                    state.rrsets.insert(key, (ttl, records));
                }
            }
            MockResponse::json(200, &Value::Array(changed))
        }
        _ => not_found(),
    }
}

pub struct Fake {
    pub mock: HttpMock,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let mock = HttpMock::with_state(&state, answer).await;
        Fake { mock, state }
    }

    pub fn backend_with(&self, token: &str, clock: Arc<ManualClock>) -> Desec {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, token).unwrap();
        let mut config = DesecConfig::new(SecretSource::File(path));
        config.base_url = format!("{}/api/v1", self.mock.url());
        Desec::new(&config).unwrap().with_clock(clock)
    }

    pub fn backend(&self) -> Desec {
        self.backend_with(TOKEN, Arc::new(ManualClock::default()))
    }

    pub fn patches(&self) -> Vec<Value> {
        self.mock
            .requests_with("PATCH")
            .iter()
            .map(MockRequest::json)
            .collect()
    }
}

/// A record as deSEC stores it: TLSA data in lower case, everything else as sent.
fn normalised(rtype: &str, record: &str) -> String {
    if rtype == "TLSA" {
        record.to_ascii_lowercase()
    } else {
        record.to_string()
    }
}

/// The subname of `owner` (absolute, in example.com.): `""` at the apex.
pub fn subname(owner: &str) -> String {
    let owner = owner.trim_end_matches('.');
    if owner == DOMAIN {
        String::new()
    } else {
        owner
            .strip_suffix(&format!(".{DOMAIN}"))
            .unwrap_or_else(|| panic!("{owner} is not in {DOMAIN}"))
            .to_string()
    }
}

impl Fake {
    /// The TTL and records the fake holds at `owner` of type `rtype`.
    pub fn rrset(&self, owner: &str, rtype: RrType) -> (Option<u64>, BTreeSet<Rdata>) {
        let state = self.state.lock().unwrap();
        match state
            .rrsets
            .get(&(subname(owner), rtype.mnemonic().to_string()))
        {
            Some((ttl, records)) => (
                Some(*ttl),
                records.iter().map(|r| rdata(rtype, r)).collect(),
            ),
            None => (None, BTreeSet::new()),
        }
    }

    /// Another writer (the web interface, another tool) makes the RRset hold exactly `records`.
    pub fn put_rrset(&self, owner: &str, rtype: RrType, ttl: u32, records: &BTreeSet<Rdata>) {
        let key = (subname(owner), rtype.mnemonic().to_string());
        let mut state = self.state.lock().unwrap();
        if records.is_empty() {
            state.rrsets.remove(&key);
        } else {
            let texts = records
                .iter()
                .map(|r| normalised(rtype.mnemonic(), &r.to_string()))
                .collect();
            state.rrsets.insert(key, (u64::from(ttl), texts));
        }
    }
}
