//! The deSEC back-end's own behaviour against the local fake of deSEC's REST API in
//! `tests/support/desec_mock.rs` (nothing here can reach desec.io): the exact bulk PATCH
//! bodies, errors (bad token, throttling, minimum TTL, unknown domain), redirects, a write
//! accepted but not applied. What every back-end must do (publish, replace, delete,
//! compare-and-swap, TTL changes, TLSA/TXT/MX) is in `tests/provider_contract.rs`.
//! Run with `cargo test --test integration desec::`.

use crate::support;
use support::desec_mock::{Fake, State, TOKEN, answer};
use support::records::{A, B, C, edit, name, set, tlsa_id};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::{HttpMock, MockResponse};
use tlsa::clock::ManualClock;
use tlsa::dns::publish::desec::{Desec, DesecConfig};
use tlsa::dns::{DnsError, Provider, apply_edits};

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
async fn a_redirect_is_not_followed_with_the_token() {
    let fake = Fake::start().await;
    fake.mock
        .assert_backend_refuses_redirect(TOKEN, |token, api| {
            let mut config = DesecConfig::new(token);
            config.base_url = format!("{api}/api/v1");
            Desec::new(&config).unwrap()
        })
        .await;
}

#[tokio::test]
async fn a_write_accepted_but_not_applied_is_not_blamed_on_someone_else() {
    // deSEC answering 200 to the PATCH and storing nothing.
    let state = Arc::new(Mutex::new(State::default()));
    let mock = HttpMock::with_state(&state, |state, request| {
        if request.method == "PATCH" {
            MockResponse::json(200, &json!([]))
        } else {
            answer(state, request)
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
