//! The Cloudflare back-end against a local fake of Cloudflare's v4 API (nothing here can reach
//! the real one). The fake follows the published shapes: the `{success, errors: [{code,
//! message}], messages, result, result_info {page, per_page, count, total_count,
//! total_pages}}` envelope, DNS record objects with `data {usage, selector, matching_type,
//! certificate}` for TLSA (certificate returned in upper case, `content` computed), `ttl: 1`
//! for automatic, `GET /zones?name=`, `GET /zones/{id}/dns_records?type=&name.exact=&page=
//! &per_page=`, `POST /zones/{id}/dns_records/batch` with `deletes`/`patches`/`posts` applied
//! all or nothing, 403 with error 9109 for a bad token, 429 with `Retry-After`.
//! Run with `cargo test --test cloudflare`.

mod support;
use support::records::{A, B, C, name, rec, set, tlsa_id};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{HttpMock, MockRequest, MockResponse};
use tlsa::clock::ManualClock;
use tlsa::dns::cloudflare::{AUTOMATIC_TTL, Cloudflare, CloudflareConfig, RECORD_COMMENT};
use tlsa::dns::http::SecretSource;
use tlsa::dns::{ChangeSet, DnsError, Edit, Provider, Rdata, RrType, RrsetChange, apply_edits};
use tlsa::tlsa::TlsaRecord;

const TOKEN: &str = "cf-test-token-7Qx2kV9w";
const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ZONE: &str = "example.com";
const OWNER: &str = "_25._tcp.mail.example.com";

/// What the fake serves and how it misbehaves.
struct State {
    records: Vec<Value>,
    next_id: u32,
    /// Answer the next N record listings with 429.
    rate_limit: u32,
    retry_after: String,
    /// Answer the next N record listings with 503.
    unavailable: u32,
    /// Answer batches with 502 (after applying nothing).
    batch_fails: bool,
    /// Honour `type` and `name.exact` (a fake that ignores them returns the whole zone).
    honour_filters: bool,
}

/// A Cloudflare record object as the API returns it.
fn record(
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
fn tlsa_record(id: &str, name: &str, ttl: u32, text: &str) -> Value {
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
fn zone_records() -> Vec<Value> {
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

fn envelope(result: Value) -> Value {
    json!({"success": true, "errors": [], "messages": [], "result": result})
}

fn failure(status: u16, code: u32, message: &str) -> MockResponse {
    MockResponse::json(
        status,
        &json!({"success": false, "errors": [{"code": code, "message": message}],
            "messages": [], "result": null}),
    )
}

/// A fake Cloudflare API over a shared state.
struct Fake {
    mock: HttpMock,
    state: Arc<Mutex<State>>,
}

impl Fake {
    async fn start(records: Vec<Value>) -> Self {
        let state = Arc::new(Mutex::new(State {
            records,
            next_id: 100,
            rate_limit: 0,
            retry_after: "7".into(),
            unavailable: 0,
            batch_fails: false,
            honour_filters: true,
        }));
        let shared = Arc::clone(&state);
        let mock = HttpMock::start(move |request| {
            let state = Arc::clone(&shared);
            async move { answer(&state, &request) }
        })
        .await;
        Fake { mock, state }
    }

    fn base_url(&self) -> String {
        format!("{}/client/v4", self.mock.url())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn backend_with(&self, token: &str, clock: Arc<ManualClock>) -> Cloudflare {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let mut config = CloudflareConfig::new(SecretSource::File(path));
        config.base_url = self.base_url();
        config.zones = vec![name("example.com.")];
        Cloudflare::new(&config).unwrap().with_clock(clock)
    }

    fn backend(&self) -> Cloudflare {
        self.backend_with(TOKEN, Arc::new(ManualClock::default()))
    }

    /// The TLSA records the fake holds at `owner`.
    fn tlsa_at(&self, owner: &str) -> BTreeSet<Rdata> {
        self.state()
            .records
            .iter()
            .filter(|r| r["type"] == "TLSA" && r["name"] == owner)
            .map(|r| rec(r["content"].as_str().unwrap()))
            .collect()
    }

    /// Requests that can change something.
    fn writes(&self) -> Vec<MockRequest> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

fn answer(state: &Mutex<State>, request: &MockRequest) -> MockResponse {
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
fn batch(state: &mut State, body: &Value) -> MockResponse {
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
        let data = &post["data"];
        let text = format!(
            "{} {} {} {}",
            data["usage"],
            data["selector"],
            data["matching_type"],
            data["certificate"].as_str().unwrap_or_default()
        );
        let Ok(parsed) = text.parse::<TlsaRecord>() else {
            return failure(400, 9101, "DNS Validation Error");
        };
        let name = post["name"].as_str().unwrap_or_default();
        let duplicate = records.iter().any(|r| {
            r["type"] == "TLSA"
                && r["name"] == name
                && r["content"]
                    .as_str()
                    .and_then(|c| c.parse::<TlsaRecord>().ok())
                    == Some(parsed.clone())
        });
        if duplicate {
            return failure(400, 81058, "An identical record already exists.");
        }
        state.next_id += 1;
        let ttl = post["ttl"].as_u64().unwrap_or(1) as u32;
        let created = tlsa_record(
            &format!("new{}", state.next_id),
            name,
            ttl,
            &parsed.to_string(),
        );
        result["posts"]
            .as_array_mut()
            .unwrap()
            .push(created.clone());
        records.push(created);
    }
    state.records = records;
    MockResponse::json(200, &envelope(result))
}

#[tokio::test]
async fn reads_tlsa_among_every_other_type_across_pages() {
    let fake = Fake::start(zone_records()).await;
    // The worst case: the listing ignores the filters and returns the whole zone,
    // 12 records of 10 types, 5 a page.
    fake.state().honour_filters = false;
    let cf = fake.backend().with_per_page(5);
    let zone = name("example.com.");
    let rrset = cf.read(&zone, &tlsa_id(OWNER)).await.expect("read");
    assert_eq!(rrset.records, set(&[A, C]));
    let pages: Vec<String> = fake
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/dns_records"))
        .map(|r| r.query_value("page").unwrap().to_string())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);

    // Filters honoured, one record a page: two pages of TLSA records at the owner.
    fake.state().honour_filters = true;
    let before = fake.mock.requests().len();
    let rrset = fake
        .backend()
        .with_per_page(1)
        .read(&zone, &tlsa_id(OWNER))
        .await
        .unwrap();
    assert_eq!(rrset.records, set(&[A, C]));
    let listings: Vec<MockRequest> = fake.mock.requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/dns_records"))
        .cloned()
        .collect();
    assert_eq!(listings.len(), 2);
    for (page, request) in listings.iter().enumerate() {
        assert_eq!(request.query_value("type"), Some("TLSA"));
        assert_eq!(request.query_value("name.exact"), Some(OWNER));
        assert_eq!(
            request.query_value("page"),
            Some((page + 1).to_string().as_str())
        );
        assert_eq!(request.query_value("per_page"), Some("1"));
    }
    // The zone id was looked up by name, once per back-end.
    let lookups: Vec<MockRequest> = fake
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/client/v4/zones")
        .collect();
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0].query_value("name"), Some(ZONE));
}

#[tokio::test]
async fn automatic_ttl_reads_as_300_seconds() {
    let fake = Fake::start(zone_records()).await;
    let cf = fake.backend();
    let rrset = cf
        .read(&name("example.com."), &tlsa_id(OWNER))
        .await
        .unwrap();
    assert_eq!(AUTOMATIC_TTL, 300);
    assert_eq!(rrset.ttl, Some(300));
    // The largest TTL of the RRset is reported: what a cache may keep longest.
    fake.state().records[11]["ttl"] = json!(3600);
    let rrset = cf
        .read(&name("example.com."), &tlsa_id(OWNER))
        .await
        .unwrap();
    assert_eq!(rrset.ttl, Some(3600));
    let none = cf
        .read(
            &name("example.com."),
            &tlsa_id("_25._tcp.nothing.example.com."),
        )
        .await
        .unwrap();
    assert_eq!((none.ttl, none.records.len()), (None, 0));
}

#[tokio::test]
async fn the_batch_holds_exactly_the_intended_deletes_and_posts() {
    let fake = Fake::start(zone_records()).await;
    let cf = fake.backend();
    let zone = name("example.com.");
    // Remove A (stored in upper case, given here in lower case), keep C, add B; TTL 300
    // equals the automatic TTL of the kept record, so C is not touched.
    let edit = Edit {
        rtype: RrType::Tlsa,
        owner: name(OWNER),
        add: set(&[B]),
        remove: set(&[A]),
        replace_all: false,
        ttl: 300,
    };
    apply_edits(&cf, &zone, &[edit])
        .await
        .expect("apply")
        .expect("a change was needed");
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "one request writes: {writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(
        writes[0].path,
        format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")
    );
    assert_eq!(writes[0].header("content-type"), Some("application/json"));
    assert_eq!(
        writes[0].json(),
        json!({
            "deletes": [{"id": "r10"}],
            "posts": [{
                "type": "TLSA",
                "name": OWNER,
                "ttl": 300,
                "data": {"usage": 3, "selector": 1, "matching_type": 1,
                    "certificate": "1111111111111111111111111111111111111111111111111111111111111111"},
                "comment": RECORD_COMMENT,
            }],
        })
    );
    assert_eq!(fake.tlsa_at(OWNER), set(&[B, C]));
    assert_eq!(
        cf.read(&zone, &tlsa_id(OWNER)).await.unwrap().records,
        set(&[B, C])
    );
    // Other records untouched.
    assert_eq!(fake.state().records.len(), zone_records().len());

    // A TTL change of kept records is a patch, never a delete and re-create.
    let edit = Edit {
        rtype: RrType::Tlsa,
        owner: name(OWNER),
        add: set(&[]),
        remove: set(&[]),
        replace_all: false,
        ttl: 3600,
    };
    apply_edits(&cf, &zone, &[edit]).await.unwrap();
    let batch = fake.writes().last().unwrap().json();
    assert_eq!(
        batch.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["patches"]
    );
    assert_eq!(batch["patches"].as_array().unwrap().len(), 2);
    assert_eq!(
        cf.read(&zone, &tlsa_id(OWNER)).await.unwrap().ttl,
        Some(3600)
    );
}

#[tokio::test]
async fn a_change_since_the_read_is_a_conflict_and_nothing_is_sent() {
    let fake = Fake::start(zone_records()).await;
    let cf = fake.backend();
    let zone = name("example.com.");
    let stale = ChangeSet {
        zone: zone.clone(),
        changes: vec![RrsetChange {
            rtype: RrType::Tlsa,
            owner: name(OWNER),
            expected: set(&[A]),
            desired: set(&[B]),
            ttl: 300,
        }],
    };
    let err = cf.apply(&stale).await.expect_err("C is there too");
    assert!(err.is_conflict(), "{err:?}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(fake.writes().is_empty());
    assert_eq!(fake.tlsa_at(OWNER), set(&[A, C]));
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_api_asks() {
    let fake = Fake::start(zone_records()).await;
    let clock = Arc::new(ManualClock::default());
    let cf = fake.backend_with(TOKEN, Arc::clone(&clock));
    let zone = name("example.com.");
    fake.state().rate_limit = 2;
    let rrset = cf
        .read(&zone, &tlsa_id(OWNER))
        .await
        .expect("429, 429, then success");
    assert_eq!(rrset.records, set(&[A, C]));
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(7), Duration::from_secs(7)]
    );

    // An HTTP date works too.
    let at = httpdate_in(&clock, 12);
    fake.state().rate_limit = 1;
    fake.state().retry_after = at;
    cf.read(&zone, &tlsa_id(OWNER)).await.unwrap();
    assert_eq!(clock.sleeps().last(), Some(&Duration::from_secs(12)));

    // Beyond the longest wait (120 s by default): reported at once, not slept.
    let slept = clock.sleeps().len();
    fake.state().rate_limit = 1;
    fake.state().retry_after = "3600".into();
    let err = cf
        .read(&zone, &tlsa_id(OWNER))
        .await
        .expect_err("too long to wait");
    assert_eq!(clock.sleeps().len(), slept);
    let text = err.to_string();
    assert!(
        text.contains("HTTP 429")
            && text.contains("Please wait and consider throttling your request speed (code 971)")
            && text.contains("asks to wait 3600 s"),
        "{text}"
    );

    // Without Retry-After, a 503 on a read is retried with doubling backoff.
    fake.state().unavailable = 2;
    cf.read(&zone, &tlsa_id(OWNER))
        .await
        .expect("503, 503, then success");
    assert_eq!(
        clock.sleeps()[slept..],
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    // A server that stays down: the error says so after the bounded tries.
    fake.state().unavailable = 10;
    let err = cf.read(&zone, &tlsa_id(OWNER)).await.expect_err("down");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 503")
            && text.contains("after 4 tries")
            && text.contains("provider has trouble"),
        "{text}"
    );
}

/// `now + seconds` of the clock as an IMF-fixdate.
fn httpdate_in(clock: &ManualClock, seconds: u64) -> String {
    use tlsa::clock::Clock;
    let at = clock.now() + Duration::from_secs(seconds);
    let unix = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let dt = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[u8::from(dt.month()) as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[tokio::test]
async fn a_failed_batch_is_not_repeated_and_says_the_outcome_is_unknown() {
    let fake = Fake::start(zone_records()).await;
    let clock = Arc::new(ManualClock::default());
    let cf = fake.backend_with(TOKEN, Arc::clone(&clock));
    fake.state().batch_fails = true;
    let edit = Edit {
        rtype: RrType::Tlsa,
        owner: name(OWNER),
        add: set(&[B]),
        remove: set(&[]),
        replace_all: false,
        ttl: 300,
    };
    let err = apply_edits(&cf, &name("example.com."), &[edit])
        .await
        .expect_err("502");
    assert_eq!(fake.writes().len(), 1, "a batch is never sent twice");
    assert!(clock.sleeps().is_empty());
    let text = err.to_string();
    assert!(
        text.contains("HTTP 502") && text.contains("may or may not have been applied"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_token_is_a_clear_403_without_the_token() {
    let fake = Fake::start(zone_records()).await;
    let wrong = "wrong-token-Zx81";
    let cf = fake.backend_with(wrong, Arc::new(ManualClock::default()));
    let err = cf
        .read(&name("example.com."), &tlsa_id(OWNER))
        .await
        .expect_err("bad token");
    assert!(matches!(err, DnsError::Http { status: 403, .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("bad token: {text}");
    for expected in [
        "Cloudflare API at http://127.0.0.1:",
        "look up zone example.com.",
        "HTTP 403",
        "Invalid access token (code 9109)",
        "Zone:Read and DNS:Edit",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }
    assert!(!text.contains(wrong) && !format!("{err:?}").contains(wrong));
    assert!(!format!("{cf:?}").contains(wrong));
    assert_eq!(
        cf.check(&name("example.com."))
            .await
            .unwrap_err()
            .http_status(),
        Some(403)
    );
    assert!(fake.writes().is_empty());
    // The token went in the Authorization header only, never in a URL.
    for request in fake.mock.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {wrong}").as_str())
        );
        assert!(!request.path.contains(wrong) && !format!("{:?}", request.query).contains(wrong));
    }
}

#[tokio::test]
async fn zones_are_found_and_credentials_checked() {
    let fake = Fake::start(zone_records()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, TOKEN).unwrap();
    let mut config = CloudflareConfig::new(SecretSource::File(path));
    config.base_url = fake.base_url();
    let cf = Cloudflare::new(&config).unwrap();
    assert_eq!(
        cf.zone_of(&name("_25._tcp.mail.example.com."))
            .await
            .unwrap(),
        name("example.com.")
    );
    assert!(cf.zone_of(&name("mail.example.org.")).await.is_err());
    let report = cf.check(&name("example.com.")).await.expect("token works");
    let report = report.join("\n");
    assert!(
        report.contains("API token is active")
            && report.contains(&format!("zone example.com. found (id {ZONE_ID})"))
            && report.contains("3 TLSA records"),
        "{report}"
    );
    let missing = cf.check(&name("example.org.")).await.unwrap_err();
    assert!(
        missing.to_string().contains("no zone example.org."),
        "{missing}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_token() {
    let fake = Fake::start(zone_records()).await;
    let api = HttpMock::redirecting_to(&fake.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, TOKEN).unwrap();
    let mut config = CloudflareConfig::new(SecretSource::File(path));
    config.base_url = format!("{}/client/v4", api.url());
    config.zones = vec![name("example.com.")];
    let cloudflare = Cloudflare::new(&config).unwrap();
    let err = cloudflare
        .read(
            &name("example.com."),
            &tlsa_id("_25._tcp.mail.example.com."),
        )
        .await
        .expect_err("a redirect is an error");
    fake.mock.assert_refused_redirect(&err, TOKEN);
}
