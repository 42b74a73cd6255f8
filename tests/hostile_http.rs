//! Hostile provider APIs: a server that accepts and never answers, one that answers 200
//! with garbage, one that answers 200 with JSON of another shape, and one that fails every
//! request with 503. Each read ends within the configured limits with an error naming the
//! API — nothing is assumed about the zone, and no token appears in the message.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use support::{HttpMock, MockResponse, SilentServer};
use tlsa::clock::ManualClock;
use tlsa::dns::Provider;
use tlsa::dns::publish::desec::{Desec, DesecConfig};
use tlsa::dns::publish::http::{HttpOptions, RetryPolicy, SecretSource};
use tlsa::dns::publish::powerdns::{PowerDns, PowerDnsConfig};

const TOKEN: &str = "hostile-test-token-Zq81";

fn desec(base: String, dir: &std::path::Path) -> Desec {
    let path = dir.join("token");
    std::fs::write(&path, TOKEN).unwrap();
    let mut config = DesecConfig::new(SecretSource::File(path));
    config.base_url = base;
    config.zones = vec![zone()];
    config.http = options();
    Desec::new(&config)
        .unwrap()
        .with_clock(Arc::new(ManualClock::default()))
}

fn options() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        },
    }
}

fn zone() -> Name {
    Name::from_ascii("example.com.").unwrap()
}

fn owner() -> Name {
    Name::from_ascii("_25._tcp.mail.example.com.").unwrap()
}

/// Reads the owner's RRset; returns the error and how long it took.
async fn read_fails(provider: &dyn Provider) -> (String, Duration) {
    let started = Instant::now();
    let result = provider
        .read(&zone(), &tlsa::dns::RrsetId::tlsa(owner()))
        .await;
    let took = started.elapsed();
    let error = result
        .expect_err("a hostile API yielded an RRset")
        .to_string();
    assert!(!error.contains(TOKEN), "the token leaked: {error}");
    eprintln!("{took:?}: {error}");
    (error, took)
}

#[tokio::test]
async fn an_api_that_never_answers_times_out() {
    let silent = SilentServer::start();
    let dir = tempfile::tempdir().unwrap();
    let provider = desec(format!("http://{}/api/v1", silent.addr()), dir.path());
    let (error, took) = read_fails(&provider).await;
    // Two tries of at most a second each, plus the backoff the manual clock skips.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        error.contains(&silent.addr().to_string()) || error.contains("deSEC"),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_and_foreign_json_are_errors_not_empty_rrsets() {
    for body in [
        MockResponse::text(200, "\u{0}\u{1}not json at all"),
        MockResponse::json(200, &serde_json::json!({"unexpected": ["shape", 1, null]})),
        MockResponse::json(200, &serde_json::json!([{"records": "should be a list"}])),
    ] {
        let mock = HttpMock::start(move |_request| {
            let body = body.clone();
            async move { body }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let provider = desec(format!("{}/api/v1", mock.url()), dir.path());
        let (error, took) = read_fails(&provider).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(error.contains("deSEC") || error.contains("API"), "{error}");
    }
}

#[tokio::test]
async fn an_api_failing_with_503_is_retried_then_reported() {
    let mock =
        HttpMock::start(|_request| async { MockResponse::text(503, "upstream overloaded") }).await;
    let dir = tempfile::tempdir().unwrap();
    let provider = desec(format!("{}/api/v1", mock.url()), dir.path());
    let (error, took) = read_fails(&provider).await;
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(error.contains("503"), "{error}");
    assert_eq!(mock.requests().len(), 2, "tried twice, as configured");
}

#[tokio::test]
async fn a_powerdns_answer_of_another_shape_is_an_error_not_an_empty_zone() {
    let mock = HttpMock::start(|_request| async {
        MockResponse::json(
            200,
            &serde_json::json!({"name": "example.com.", "kind": "Native"}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, TOKEN).unwrap();
    let mut config = PowerDnsConfig::new(mock.url(), SecretSource::File(path));
    config.zones = vec![zone()];
    config.http = options();
    let provider = PowerDns::new(&config).unwrap();
    let (error, _) = read_fails(&provider).await;
    assert!(error.contains("PowerDNS"), "{error}");
}
