//! ACME Renewal Information (RFC 9773) on real servers: pebble 2.4.0 (which has no
//! `renewalInfo`) validating DNS-01 against the lab's signed BIND zone, behind a local
//! HTTPS endpoint that serves pebble's own directory with RFC 9773's `renewalInfo` added and
//! answers `GET renewalInfo/<certificate id>` with a window and a Retry-After as the RFC
//! describes. Every other ACME request goes to pebble itself (the directory's URLs are
//! pebble's). The CA's window decides when the live certificate is renewed: a window in the
//! future holds the renewal (and the CA is asked again only after its Retry-After), a window
//! moved into the past renews at once — a planned roll to the pre-published key — and a CA
//! whose answer fails leaves renewal at two thirds of the lifetime, the run unharmed.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use support::{
    Acme, AcmeOptions, HttpMock, Lab, MockResponse, deployed_leaf, state_next_key, tlsa,
};
use time::format_description::well_known::Rfc3339;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// What the renewal-information endpoint answers.
#[derive(Clone, Debug)]
enum Answer {
    Window {
        start: SystemTime,
        end: SystemTime,
        retry_after: u64,
    },
    /// `503` with a Retry-After, as a CA in trouble would.
    Fails,
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at).format(&Rfc3339).unwrap()
}

/// pebble's directory with `renewalInfo` on this endpoint, and the renewal information.
async fn answer(
    directory: serde_json::Value,
    ari: Arc<Mutex<Answer>>,
    request: support::MockRequest,
) -> MockResponse {
    if request.path == "/dir" {
        let host = request.header("host").unwrap_or("127.0.0.1").to_string();
        let mut directory = directory;
        directory["renewalInfo"] = serde_json::json!(format!("https://{host}/renewal-info"));
        return MockResponse::json(200, &directory);
    }
    if request.method != "GET" || !request.path.starts_with("/renewal-info/") {
        return MockResponse::text(404, "not here");
    }
    let answer = ari.lock().unwrap().clone();
    match answer {
        Answer::Fails => {
            MockResponse::text(503, "the CA is having a bad day").with_header("Retry-After", "60")
        }
        Answer::Window {
            start,
            end,
            retry_after,
        } => MockResponse::json(
            200,
            &serde_json::json!({
                "suggestedWindow": { "start": rfc3339(start), "end": rfc3339(end) },
                "explanationURL": "https://ca.example/why-this-window"
            }),
        )
        .with_header("Retry-After", &retry_after.to_string()),
    }
}

fn renewal_requests(mock: &HttpMock) -> Vec<String> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/renewal-info/"))
        .map(|r| r.path)
        .collect()
}

fn status_json(config: &std::path::Path) -> serde_json::Value {
    let out = tlsa(config, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cas_renewal_window_decides_when_the_live_certificate_is_renewed() {
    let lab = Lab::start();
    let ca = Acme::start_validating(lab.server_addr(), &AcmeOptions::default());
    let runtime = support::runtime();
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let ari = Arc::new(Mutex::new(Answer::Window {
        start: now + 24 * hour,
        end: now + 48 * hour,
        retry_after: 2,
    }));
    let directory = ca.directory();
    let (cert, key) = ca.api_identity();
    let mock = {
        let ari = ari.clone();
        runtime.block_on(HttpMock::start_tls(&cert, &key, move |request| {
            answer(directory.clone(), ari.clone(), request)
        }))
    };
    let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"{{ acme = {{ directory = "{}/dir", names = ["{host}"], ca_file = "{}" }} }}"#,
        mock.url(),
        ca.ca_file().display()
    );
    let config = support::write_roll_config(&lab, dir.path(), &source, &["true"]);
    let (deploy, state) = (dir.path().join("live"), dir.path().join("state"));

    let first_run = tlsa(&config, &["run", "--wait"]);
    assert!(
        first_run.status.success(),
        "{}\npebble: {}",
        text(&first_run),
        ca.log_tail()
    );
    let first = deployed_leaf(&deploy);
    assert!(
        first.issuer.to_lowercase().contains("pebble"),
        "{}",
        first.issuer
    );

    // A window a day ahead (pebble's certificates live for years: two thirds are far off).
    let held = tlsa(&config, &["run"]);
    assert!(held.status.success(), "{}", text(&held));
    assert!(
        text(&held).contains("the CA suggests renewing between"),
        "{}",
        text(&held)
    );
    assert_eq!(
        deployed_leaf(&deploy).key,
        first.key,
        "not renewed before the window"
    );
    let asked = renewal_requests(&mock);
    assert_eq!(asked.len(), 1, "{asked:?}");
    let doc = status_json(&config);
    let acme = &doc[0]["acme"];
    assert_eq!(acme["renew_by"], "window", "{doc:#}");
    let (start, end, renew_at) = (
        acme["renewal_window"]["start"]
            .as_str()
            .unwrap()
            .to_string(),
        acme["renewal_window"]["end"].as_str().unwrap().to_string(),
        acme["renew_at"].as_str().unwrap().to_string(),
    );
    assert!(start <= renew_at && renew_at <= end, "{doc:#}");
    let status = text(&tlsa(&config, &["status"]));
    assert!(
        status.contains("the CA's renewal window (RFC 9773)")
            && status.contains("https://ca.example/why-this-window"),
        "{status}"
    );

    // Asked again only once its Retry-After (2 s) has passed.
    assert!(tlsa(&config, &["run"]).status.success());
    assert_eq!(renewal_requests(&mock).len(), 1, "asked before Retry-After");

    // The CA moves the window into the past (it must replace certificates early): the next
    // run after Retry-After renews at once, by a roll to the pre-published key.
    *ari.lock().unwrap() = Answer::Window {
        start: now - 2 * hour,
        end: now - hour,
        retry_after: 2,
    };
    let next = state_next_key(&state, "mail");
    std::thread::sleep(Duration::from_millis(2100));
    let started = std::time::Instant::now();
    let renewed = tlsa(&config, &["run", "--wait"]);
    let took = started.elapsed();
    assert!(
        renewed.status.success(),
        "{}\npebble: {}",
        text(&renewed),
        ca.log_tail()
    );
    let second = deployed_leaf(&deploy);
    assert_eq!(second.key, next, "a planned roll to the pre-published key");
    assert_eq!(renewal_requests(&mock).len(), 2);
    eprintln!("ARI: a window moved into the past renewed the certificate in {took:?}");

    // For the new certificate the endpoint fails: the run is not harmed, and renewal falls
    // back to two thirds of the lifetime.
    *ari.lock().unwrap() = Answer::Fails;
    let unharmed = tlsa(&config, &["run"]);
    assert!(unharmed.status.success(), "{}", text(&unharmed));
    assert!(
        text(&unharmed).contains("no renewal information from"),
        "{}",
        text(&unharmed)
    );
    let asked = renewal_requests(&mock);
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_ne!(asked[2], asked[1], "asked about the new certificate");
    assert_eq!(deployed_leaf(&deploy).key, second.key);
    let doc = status_json(&config);
    assert_eq!(doc[0]["acme"]["renew_by"], "two-thirds", "{doc:#}");
}
