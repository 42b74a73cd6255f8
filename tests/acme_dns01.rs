//! tlsa obtains a certificate for a key it holds from a real ACME CA (pebble) that
//! validates DNS-01 for real against the lab's BIND (the second test shows pebble fails
//! when it cannot ask BIND, so the first one's success is a real DNS validation): the challenge is published through
//! RFC 2136 + TSIG, confirmed on the authoritative server and validated Secure before the
//! CA is told to look, and removed afterwards — after success, after a CA error, and when
//! a killed run left one behind. The certificate carries exactly the held key.

use crate::support;
use support::publishing::LabPublishing;
use support::{Acme, Lab, runtime};

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use instant_acme::{Account, RetryPolicy};
use tlsa::acme::dns01::{CHALLENGE_TTL, Challenges};
use tlsa::acme::{AccountStore, AcmeError, Obtained, Responder, obtain};

fn retry() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .timeout(Duration::from_secs(30))
}

/// A certificate for `host` and `key` through `challenges`.
async fn obtain_for(
    account: &Account,
    host: &str,
    key: &rcgen::KeyPair,
    challenges: &Responder<'_>,
) -> Result<Obtained, AcmeError> {
    let names = [host.to_string()];
    obtain(account, &names, &key.serialize_pem(), challenges, &retry()).await
}

/// The leaf's SubjectPublicKeyInfo, DER.
fn leaf_spki(chain_pem: &str) -> Vec<u8> {
    let first = pem::parse_many(chain_pem).unwrap().remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(first.contents()).unwrap();
    cert.public_key().raw.to_vec()
}

fn challenge_at(lab: &Lab, host: &str) -> Vec<String> {
    let reply = lab.query_server(&format!("_acme-challenge.{host}"), "TXT");
    reply.rdata("TXT").iter().map(|r| r.to_string()).collect()
}

#[test]
fn a_certificate_for_the_held_key_through_dns01_and_no_challenge_left() {
    let lab = Lab::start();
    let acme = Acme::start_dns01(lab.server_addr());
    let host = lab.name("mail");
    let state = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let parts = LabPublishing::new(&lab).await;
        let publication = parts.publication();
        let challenges = Responder::Dns01(Challenges {
            publication: &publication,
            ttl: CHALLENGE_TTL.min(lab.ttl()),
        });
        let store = AccountStore::new(state.path(), Some(acme.ca_file().to_owned()));
        let directory = acme.directory_url();
        let account = store
            .account(&directory, &["mailto:postmaster@example.test"], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let file = store.path(&directory);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());

        // A challenge left by a run killed mid-order.
        lab.nsupdate_ok(&format!(
            "update add _acme-challenge.{host} {} IN TXT \"left-by-a-killed-run\"",
            lab.ttl()
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let started = std::time::Instant::now();
        let obtained = obtain_for(&account, &host, &key, &challenges)
            .await
            .unwrap_or_else(|e| panic!("{e}\npebble: {}", acme.log_tail()));
        eprintln!(
            "certificate in {} ms: {}",
            started.elapsed().as_millis(),
            obtained.order_url
        );
        assert_eq!(
            leaf_spki(&obtained.chain_pem),
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert!(challenge_at(&lab, &host).is_empty(), "challenge removed");

        // The stored account is used again: no second account file.
        let again = store.account(&directory, &[], None).await.unwrap();
        assert_eq!(again.id(), account.id());
        let files = std::fs::read_dir(state.path().join("acme"))
            .unwrap()
            .count();
        assert_eq!(files, 1);
    });
}

#[test]
fn a_ca_that_cannot_validate_is_a_clear_error_and_nothing_is_left() {
    let lab = Lab::start();
    // pebble asks a port nobody answers on: every DNS-01 validation fails.
    let silent = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let acme = Acme::start_dns01(silent);
    let host = lab.name("mail");
    let state = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let parts = LabPublishing::new(&lab).await;
        let publication = parts.publication();
        let challenges = Responder::Dns01(Challenges {
            publication: &publication,
            ttl: lab.ttl(),
        });
        let store = AccountStore::new(state.path(), Some(acme.ca_file().to_owned()));
        let account = store
            .account(&acme.directory_url(), &[], None)
            .await
            .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let err = obtain_for(&account, &host, &key, &challenges)
            .await
            .unwrap_err();
        eprintln!("{err}");
        assert!(matches!(err, AcmeError::Order { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("did not validate the DNS-01 challenge"),
            "{text}"
        );
        assert!(text.contains("unauthorized"), "the CA's own error: {text}");
        assert!(
            challenge_at(&lab, &host).is_empty(),
            "challenge removed after the failure"
        );
    });
}
