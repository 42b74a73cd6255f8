//! The Cloudflare back-end's own behaviour against the local fake of Cloudflare's v4 API in
//! `tests/support/cloudflare_mock.rs` (nothing here can reach the real one): listing across
//! pages among every other record type, automatic TTL, the exact batch body, 429/5xx handling,
//! a failed batch never repeated, bad tokens, zone lookup, redirects. What every back-end must
//! do (publish, replace, delete, compare-and-swap, TTL changes, TLSA/TXT/MX) is in
//! `tests/provider_contract.rs`. Run with `cargo test --test integration cloudflare::`.

use crate::support;
use support::cloudflare_mock::{Fake, OWNER, TOKEN, ZONE, ZONE_ID, zone_records};
use support::records::{A, B, C, name, set, tlsa_id};

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::MockRequest;
use tlsa::clock::ManualClock;
use tlsa::dns::publish::cloudflare::{AUTOMATIC_TTL, Cloudflare, CloudflareConfig, RECORD_COMMENT};
use tlsa::dns::publish::http::SecretSource;
use tlsa::dns::{ChangeSet, DnsError, Edit, Provider, RrType, RrsetChange, apply_edits};

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
    fake.mock
        .assert_backend_refuses_redirect(TOKEN, |token, api| {
            let mut config = CloudflareConfig::new(token);
            config.base_url = format!("{api}/client/v4");
            config.zones = vec![name("example.com.")];
            Cloudflare::new(&config).unwrap()
        })
        .await;
}
