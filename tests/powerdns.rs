//! What is particular to the PowerDNS back-end, against a real `pdns_server` (sqlite3
//! back-end, DNSSEC, HTTP API) on loopback: a wrong API key is a clear 401 that changes
//! nothing; another writer's change right after ours is reported and never overwritten; a
//! write accepted but not applied; zone discovery and disabled records; `tlsa providers`;
//! redirects and foreign error bodies. Publish, replace, delete, several owners, a change
//! between read and write, TTL changes and each record type — served signed, validated by
//! unbound and by the crate — are the back-end contract in `tests/provider_contract.rs`.
//! Run with `cargo test --test integration powerdns::`.

use crate::support;
use support::records::{A, B, C, edit, name, set, tlsa_id, tlsa_of};

use std::time::Duration;

use support::{HttpMock, MockRequest, MockResponse, PowerDnsLab, poll_until};
use tlsa::dns::publish::http::SecretSource;
use tlsa::dns::publish::powerdns::{PowerDns, PowerDnsConfig};
use tlsa::dns::{DnsError, Provider, apply_edits};

/// Generous: the machine may be busy; every poll ends as soon as it sees.
const TIMEOUT: Duration = Duration::from_secs(15);

fn config(lab: &PowerDnsLab) -> PowerDnsConfig {
    let mut config = PowerDnsConfig::new(
        lab.api_url(),
        SecretSource::File(lab.api_key_file().to_owned()),
    );
    config.zones = vec![name(lab.zone())];
    config
}

fn backend(lab: &PowerDnsLab) -> PowerDns {
    PowerDns::new(&config(lab)).expect("PowerDNS back-end")
}

/// Polls PowerDNS until it serves exactly `records` at `owner`, signed — or, for none, a
/// signed denial (NSEC + RRSIG).
fn assert_served_signed(lab: &PowerDnsLab, owner: &str, records: &[&str]) {
    let expected = set(records);
    poll_until(
        &format!("{owner} TLSA {records:?} served signed by PowerDNS"),
        TIMEOUT,
        || {
            let reply = lab.query_server(owner, "TLSA");
            let signed = if expected.is_empty() {
                reply.raw.contains("\tNSEC\t") && reply.raw.contains("RRSIG\tNSEC")
            } else {
                reply.is_signed("TLSA")
            };
            (reply.has_flag("aa") && tlsa_of(&reply) == expected && signed).then_some(())
        },
    );
}

#[tokio::test]
async fn wrong_api_key_is_a_clear_401_and_changes_nothing() {
    let lab = PowerDnsLab::start();
    let mail = lab.name("_25._tcp.mail");
    let zone = name(lab.zone());
    let wrong_key = "not-the-key-4f1c9e";
    let key_file = lab.dir().join("wrong.key");
    std::fs::write(&key_file, wrong_key).unwrap();
    let mut config = config(&lab);
    config.api_key = SecretSource::File(key_file.clone());
    let pdns = PowerDns::new(&config).unwrap();

    let err = apply_edits(&pdns, &zone, &[edit(&mail, &[A], &[], 2)])
        .await
        .expect_err("a wrong key must fail");
    assert!(matches!(err, DnsError::Http { status: 401, .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("wrong key: {text}");
    for expected in [
        "PowerDNS API at http://127.0.0.1:",
        "HTTP 401",
        "Unauthorized",
        "api-key setting of pdns.conf",
        &key_file.display().to_string(),
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }
    assert!(!text.contains(wrong_key) && !format!("{err:?}").contains(wrong_key));
    let check = pdns.check(&zone).await.expect_err("the check fails too");
    assert_eq!(check.http_status(), Some(401), "{check}");

    // Nothing changed: the API holds no TLSA RRset, the server serves none.
    let rrsets = lab.zone_json()["rrsets"].clone();
    assert!(
        !rrsets.to_string().contains("TLSA"),
        "no TLSA expected: {rrsets}"
    );
    assert_served_signed(&lab, &mail, &[]);
    // The right key works at once.
    assert!(backend(&lab).check(&zone).await.is_ok());
}

/// Sends `request` on to the real API at `upstream` (method, path, query, API key, body).
async fn forward(client: &reqwest::Client, upstream: &str, request: &MockRequest) -> MockResponse {
    let url = format!("{upstream}{}", request.path_and_query());
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut forward = client.request(method, &url);
    if let Some(key) = request.header("x-api-key") {
        forward = forward.header("X-API-Key", key);
    }
    let response = forward.body(request.body.clone()).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap().to_vec();
    MockResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    }
}

/// A proxy in front of PowerDNS that lets another writer replace the RRset right after
/// forwarding tlsa's PATCH, before tlsa reads back: tlsa must report it.
#[tokio::test]
async fn a_change_right_after_the_write_is_reported() {
    let lab = PowerDnsLab::start();
    let zone = name(lab.zone());
    let mail = lab.name("_25._tcp.mail");
    let upstream = lab.api_url();
    let key = lab.api_key().to_string();
    let patch_url = format!("{upstream}/api/v1/servers/localhost/zones/{}", lab.zone());
    let other = serde_json::json!({"rrsets": [{"name": mail, "type": "TLSA", "ttl": 2,
        "changetype": "REPLACE", "records": [{"content": C, "disabled": false}]}]});
    let client = reqwest::Client::new();
    let proxy = HttpMock::start(move |request| {
        let (client, upstream, key) = (client.clone(), upstream.clone(), key.clone());
        let (patch_url, other) = (patch_url.clone(), other.clone());
        async move {
            let method = request.method.clone();
            let response = forward(&client, &upstream, &request).await;
            if method == "PATCH" {
                let concurrent = client
                    .patch(&patch_url)
                    .header("X-API-Key", &key)
                    .json(&other)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(concurrent.status().as_u16(), 204);
            }
            response
        }
    })
    .await;
    let mut config = config(&lab);
    config.api_url = proxy.url();
    let pdns = PowerDns::new(&config).unwrap();

    let err = apply_edits(
        &pdns,
        &zone,
        &[
            edit(&mail, &[A], &[], 2),
            edit(&lab.name("_25._tcp.mx2"), &[B], &[], 2),
        ],
    )
    .await
    .expect_err("the concurrent change must be reported");
    assert!(matches!(err, DnsError::ChangedAfterWrite { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("after write: {text}");
    assert!(
        text.contains("changed by someone else while tlsa wrote it")
            && text.contains(&A[6..20])
            && text.contains(&C[6..20]),
        "{text}"
    );
    // Both owners went in one PATCH, which was sent once (no retry overwrote the other writer).
    let patches = proxy.requests_with("PATCH");
    assert_eq!(patches.len(), 1, "{patches:?}");
    let rrsets = patches[0].json()["rrsets"].clone();
    assert_eq!(rrsets.as_array().map(Vec::len), Some(2), "{rrsets}");
    assert_served_signed(&lab, &mail, &[C]);
}

#[tokio::test]
async fn a_write_accepted_but_not_applied_is_not_blamed_on_someone_else() {
    let lab = PowerDnsLab::start();
    let upstream = lab.api_url();
    let client = reqwest::Client::new();
    // In front of the real API: reads go through, a PATCH is answered 204 and dropped.
    let proxy = HttpMock::start(move |request| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            if request.method == "PATCH" {
                return MockResponse::text(204, "");
            }
            forward(&client, &upstream, &request).await
        }
    })
    .await;
    let mut config = config(&lab);
    config.api_url = proxy.url();
    let pdns = PowerDns::new(&config).unwrap();
    let mail = lab.name("_25._tcp.mail");
    let err = apply_edits(&pdns, &name(lab.zone()), &[edit(&mail, &[A], &[], 2)])
        .await
        .expect_err("nothing was applied");
    support::assert_not_applied(&err);
    assert_eq!(proxy.requests_with("PATCH").len(), 1, "not repeated");
}

#[tokio::test]
async fn zones_are_found_checked_and_disabled_records_kept() {
    let lab = PowerDnsLab::start();
    let zone = name(lab.zone());
    let mut config = config(&lab);
    config.zones.clear();
    let pdns = PowerDns::new(&config).unwrap();
    let mail = lab.name("_25._tcp.mail");

    // Without configured zones, the zone is found through the API.
    assert_eq!(pdns.zone_of(&name(&mail)).await.unwrap(), zone);
    let report = pdns.check(&zone).await.expect("credentials work");
    assert!(report.join(" ").contains("DNSSEC-signed"), "{report:?}");
    let missing = pdns.check(&name("no-such-zone.test.")).await.unwrap_err();
    assert_eq!(missing.http_status(), Some(404), "{missing}");
    assert!(
        missing.to_string().contains("check the zone name"),
        "{missing}"
    );

    // A record disabled by hand is not served, not reported, and kept on rewrite.
    let body = serde_json::json!({"rrsets": [{"name": mail, "type": "TLSA", "ttl": 2,
        "changetype": "REPLACE", "records": [
            {"content": A, "disabled": false}, {"content": C, "disabled": true}]}]});
    let (status, text) = lab.api(
        "PATCH",
        &format!("/api/v1/servers/localhost/zones/{}", lab.zone()),
        Some(&body),
    );
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        pdns.read(&zone, &tlsa_id(&mail)).await.unwrap().records,
        set(&[A])
    );
    apply_edits(&pdns, &zone, &[edit(&mail, &[B], &[A], 2)])
        .await
        .unwrap();
    assert_served_signed(&lab, &mail, &[B]);
    let stored = lab.zone_json()["rrsets"].to_string().to_ascii_lowercase();
    assert!(stored.contains(&C[6..]), "disabled C kept: {stored}");
}

/// `tlsa providers`: the read-only check from the command line, ok with the right key, a
/// clear failure (exit 1) with a wrong one, and the key printed in neither case.
#[test]
fn the_providers_command_checks_credentials_without_printing_them() {
    let lab = PowerDnsLab::start();
    let run = |secret_args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tlsa"))
            .args(["providers", "--backend", "powerdns", "--zone", lab.zone()])
            .args(["--api-url", &lab.api_url()])
            .args(secret_args)
            .env("TLSA_TEST_PDNS_KEY", lab.api_key())
            .env("TLSA_TEST_WRONG_KEY", "wrong-key-5d1e")
            .output()
            .expect("run tlsa")
    };
    let ok = run(&["--secret-file", &lab.api_key_file().display().to_string()]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        stdout.contains(&format!("zone {}: PowerDNS API at", lab.zone()))
            && stdout.contains(": ok")
            && stdout.contains("DNSSEC-signed"),
        "{stdout}"
    );
    let json = run(&["--secret-env", "TLSA_TEST_PDNS_KEY", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    assert_eq!(value["ok"], true, "{value}");
    let wrong = run(&["--secret-env", "TLSA_TEST_WRONG_KEY"]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let all = format!(
        "{}{}{}{}",
        stdout,
        String::from_utf8_lossy(&json.stdout),
        String::from_utf8_lossy(&wrong.stdout),
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert!(all.contains("FAILED") && all.contains("HTTP 401"), "{all}");
    assert!(
        !all.contains(lab.api_key()) && !all.contains("wrong-key-5d1e"),
        "{all}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_api_key() {
    let target =
        HttpMock::start(|_| async { MockResponse::json(200, &serde_json::json!([])) }).await;
    target
        .assert_backend_refuses_redirect("pdns-secret-key-4711", |key, api| {
            let mut config = PowerDnsConfig::new(api.to_string(), key);
            config.zones = vec![name("example.com.")];
            PowerDns::new(&config).unwrap()
        })
        .await;
}

#[tokio::test]
async fn an_error_body_from_another_server_is_summarised_not_quoted() {
    // A Cloudflare-shaped page of 200 records, as the wrong server might answer.
    let records: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!({"id": format!("r{i}"), "type": "TLSA",
            "name": format!("_25._tcp.mx{i}.example.com"), "content": format!("3 1 1 {}", "ab".repeat(32))}))
        .collect();
    let page = serde_json::json!({"success": false, "result": records});
    let api = HttpMock::start(move |_| {
        let page = page.clone();
        async move { MockResponse::json(404, &page) }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, "pdns-secret-key-4711").unwrap();
    let mut config = PowerDnsConfig::new(api.url(), SecretSource::File(key_file));
    config.zones = vec![name("example.com.")];
    let err = PowerDns::new(&config)
        .unwrap()
        .read(
            &name("example.com."),
            &tlsa_id("_25._tcp.mail.example.com."),
        )
        .await
        .expect_err("404");
    let text = err.to_string();
    eprintln!("summarised: {text}");
    assert!(
        text.contains("HTTP 404") && text.contains(r#"{"result":[{"#),
        "{text}"
    );
    assert!(
        text.len() < 1000 && !text.contains('\n'),
        "{} bytes: {text}",
        text.len()
    );
    assert!(
        text.matches("3 1 1").count() <= 2,
        "the start of the body only: {text}"
    );
}
