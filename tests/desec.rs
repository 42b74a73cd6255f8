//! The deSEC back-end against a local fake of deSEC's REST API (nothing here can reach
//! desec.io). The fake follows the documented shapes: `Authorization: Token …`, trailing
//! slashes, `GET /domains/{name}/`, `GET /domains/?owns_qname=`, `GET /domains/{name}/rrsets/
//! {subname}/{type}/` (404 when absent), bulk `PATCH /domains/{name}/rrsets/` applied all or
//! nothing with `records: []` deleting, `{"detail": …}` errors, positional bulk errors, 429
//! with `Retry-After`, and the domain's `minimum_ttl`. Run with `cargo test --test desec`.

mod support;
use support::records::{A, B, C, edit, name, set, tlsa_id};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{HttpMock, MockRequest, MockResponse};
use tlsa::clock::ManualClock;
use tlsa::dns::desec::{Desec, DesecConfig};
use tlsa::dns::http::SecretSource;
use tlsa::dns::{ChangeSet, DnsError, Provider, RrType, RrsetChange, apply_edits};

const TOKEN: &str = "desec-test-token-9Hq";
const DOMAIN: &str = "example.com";
const MINIMUM_TTL: u64 = 3600;

#[derive(Default)]
struct State {
    /// (subname, type) → (ttl, records)
    rrsets: BTreeMap<(String, String), (u64, Vec<String>)>,
    throttle: u32,
}

fn rrset_json(subname: &str, rtype: &str, ttl: u64, records: &[String]) -> Value {
    let name = if subname.is_empty() {
        format!("{DOMAIN}.")
    } else {
        format!("{subname}.{DOMAIN}.")
    };
    json!({"created": "2026-01-01T00:00:00.000000Z", "domain": DOMAIN, "subname": subname,
        "name": name, "records": records, "ttl": ttl, "type": rtype,
        "touched": "2026-01-01T00:00:00.000000Z"})
}

fn domain_json() -> Value {
    json!({"created": "2026-01-01T00:00:00.000000Z", "keys": [{"dnskey": "257 3 13 AAAA",
        "ds": ["12345 13 2 abcd"], "flags": 257, "keytype": "csk", "managed": true}],
        "minimum_ttl": MINIMUM_TTL, "name": DOMAIN, "published": "2026-01-01T00:00:00.000000Z",
        "touched": "2026-01-01T00:00:00.000000Z"})
}

fn not_found() -> MockResponse {
    MockResponse::json(404, &json!({"detail": "Not found."}))
}

fn answer(state: &Mutex<State>, request: &MockRequest) -> MockResponse {
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
                    .map(|r| r.as_str().unwrap().to_ascii_lowercase())
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

struct Fake {
    mock: HttpMock,
    state: Arc<Mutex<State>>,
}

impl Fake {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let mock = HttpMock::start(move |request| {
            let state = Arc::clone(&shared);
            async move { answer(&state, &request) }
        })
        .await;
        Fake { mock, state }
    }

    fn backend_with(&self, token: &str, clock: Arc<ManualClock>) -> Desec {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, token).unwrap();
        let mut config = DesecConfig::new(SecretSource::File(path));
        config.base_url = format!("{}/api/v1", self.mock.url());
        Desec::new(&config).unwrap().with_clock(clock)
    }

    fn backend(&self) -> Desec {
        self.backend_with(TOKEN, Arc::new(ManualClock::default()))
    }

    fn patches(&self) -> Vec<Value> {
        self.mock
            .requests_with("PATCH")
            .iter()
            .map(MockRequest::json)
            .collect()
    }
}

#[tokio::test]
async fn publish_replace_delete_in_one_bulk_patch_each() {
    let fake = Fake::start().await;
    let desec = fake.backend();
    let mail = "_25._tcp.mail.example.com.";
    let zone = desec.zone_of(&name(mail)).await.expect("owns_qname");
    assert_eq!(zone, name("example.com."));
    assert!(
        desec
            .read(&zone, &tlsa_id(mail))
            .await
            .unwrap()
            .records
            .is_empty()
    );

    apply_edits(&desec, &zone, &[edit(mail, &[A], &[], 3600)])
        .await
        .unwrap();
    let read = desec.read(&zone, &tlsa_id(mail)).await.unwrap();
    assert_eq!((read.records, read.ttl), (set(&[A]), Some(3600)));

    apply_edits(
        &desec,
        &zone,
        &[
            edit(mail, &[B], &[A], 3600),
            edit("example.com.", &[C], &[], 3600),
        ],
    )
    .await
    .unwrap();
    apply_edits(
        &desec,
        &zone,
        &[
            edit(mail, &[], &[B], 3600),
            edit("example.com.", &[], &[C], 3600),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        fake.patches(),
        [
            json!([{"subname": "_25._tcp.mail", "type": "TLSA", "ttl": 3600, "records": [A]}]),
            json!([
                {"subname": "_25._tcp.mail", "type": "TLSA", "ttl": 3600, "records": [B]},
                {"subname": "", "type": "TLSA", "ttl": 3600, "records": [C]},
            ]),
            json!([
                {"subname": "_25._tcp.mail", "type": "TLSA", "ttl": 3600, "records": []},
                {"subname": "", "type": "TLSA", "ttl": 3600, "records": []},
            ]),
        ]
    );
    assert!(fake.state.lock().unwrap().rrsets.is_empty());
    let report = desec.check(&zone).await.unwrap().join(" ");
    assert!(report.contains("minimum TTL 3600 s"), "{report}");
}

#[tokio::test]
async fn errors_are_clear_and_throttling_is_waited_out() {
    let fake = Fake::start().await;
    let zone = name("example.com.");
    let mail = "_25._tcp.mail.example.com.";

    let wrong = fake.backend_with("not-the-token-1x", Arc::new(ManualClock::default()));
    let err = wrong.read(&zone, &tlsa_id(mail)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("deSEC API at")
            && text.contains("HTTP 401: Invalid token.")
            && !text.contains("not-the-token-1x"),
        "{text}"
    );

    let clock = Arc::new(ManualClock::default());
    let desec = fake.backend_with(TOKEN, Arc::clone(&clock));
    fake.state.lock().unwrap().throttle = 1;
    desec
        .read(&zone, &tlsa_id(mail))
        .await
        .expect("429 then success");
    assert_eq!(clock.sleeps(), [Duration::from_secs(3)]);

    let mut short = edit(mail, &[A], &[], 3600);
    short.ttl = 60;
    let err = apply_edits(&desec, &zone, &[short]).await.unwrap_err();
    assert!(matches!(err, DnsError::Http { status: 400, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("ttl: Ensure this value is greater than or equal to 3600."),
        "{err}"
    );
    let missing = desec.check(&name("example.org.")).await.unwrap_err();
    assert!(
        missing.to_string().contains("has no domain example.org."),
        "{missing}"
    );
}

#[tokio::test]
async fn a_change_since_the_read_is_a_conflict() {
    let fake = Fake::start().await;
    let desec = fake.backend();
    let zone = name("example.com.");
    let mail = "_25._tcp.mail.example.com.";
    apply_edits(&desec, &zone, &[edit(mail, &[A, C], &[], 3600)])
        .await
        .unwrap();
    let stale = ChangeSet {
        zone: zone.clone(),
        changes: vec![RrsetChange {
            rtype: RrType::Tlsa,
            owner: name(mail),
            expected: set(&[A]),
            desired: set(&[B]),
            ttl: 3600,
        }],
    };
    let err = desec.apply(&stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        fake.patches().len(),
        1,
        "nothing written after the first publish"
    );
    // Re-planned, C survives.
    apply_edits(&desec, &zone, &[edit(mail, &[B], &[A], 3600)])
        .await
        .unwrap();
    assert_eq!(
        desec.read(&zone, &tlsa_id(mail)).await.unwrap().records,
        set(&[B, C])
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_token() {
    let fake = Fake::start().await;
    let api = HttpMock::redirecting_to(&fake.mock.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, TOKEN).unwrap();
    let mut config = DesecConfig::new(SecretSource::File(path));
    config.base_url = format!("{}/api/v1", api.url());
    let desec = Desec::new(&config).unwrap();
    let err = desec
        .read(
            &name("example.com."),
            &tlsa_id("_25._tcp.mail.example.com."),
        )
        .await
        .expect_err("a redirect is an error");
    fake.mock.assert_refused_redirect(&err, TOKEN);
}

#[tokio::test]
async fn a_write_accepted_but_not_applied_is_not_blamed_on_someone_else() {
    // deSEC answering 200 to the PATCH and storing nothing.
    let state = Arc::new(Mutex::new(State::default()));
    let shared = Arc::clone(&state);
    let mock = HttpMock::start(move |request| {
        let state = Arc::clone(&shared);
        async move {
            if request.method == "PATCH" {
                MockResponse::json(200, &json!([]))
            } else {
                answer(&state, &request)
            }
        }
    })
    .await;
    let fake = Fake { mock, state };
    let err = apply_edits(
        &fake.backend(),
        &name("example.com."),
        &[edit("_25._tcp.mail.example.com.", &[A], &[], 3600)],
    )
    .await
    .expect_err("nothing was applied");
    support::assert_not_applied(&err);
    assert_eq!(fake.mock.requests_with("PATCH").len(), 1, "not repeated");
}
