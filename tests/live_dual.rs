//! A server with an RSA and an ECDSA certificate at once (a real Postfix with
//! both in `smtpd_tls_chain_files`): the live check asks for one kind of key
//! through its signature algorithms and gets that certificate, so two sets
//! (one per key type) can each verify their own key before retiring records.

use crate::support;

use support::{Postfix, PostfixOptions, TlsIdentity};
use tlsa::live::KeyKind;
use tlsa::live::capture::{ConnectOptions, capture};
use tlsa::live::endpoint::{Endpoint, Protocol};

/// The SPKI of the certificate Postfix presents when asked for `kind`, or why the handshake
/// failed.
fn try_presented_spki(postfix: &Postfix, kind: Option<KeyKind>) -> Result<Vec<u8>, String> {
    let endpoint =
        Endpoint::new("mail.example.test", postfix.port(), Some(Protocol::Smtp)).unwrap();
    let options = ConnectOptions {
        key_kind: kind,
        ..ConnectOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let presented = runtime
        .block_on(capture(postfix.addresses()[0], &endpoint, &options))
        .map_err(|e| format!("{kind:?}: {e:?}"))?;
    Ok(presented.chain[0].spki().to_vec())
}

fn presented_spki(postfix: &Postfix, kind: Option<KeyKind>) -> Vec<u8> {
    try_presented_spki(postfix, kind).unwrap_or_else(|e| panic!("{e}\n{}", postfix.log_tail()))
}

#[test]
fn a_dual_certificate_server_presents_the_kind_of_key_asked_for() {
    let ecdsa = TlsIdentity::self_signed(&["mail.example.test"], 30);
    let rsa = TlsIdentity::self_signed_rsa(&["mail.example.test"], 30);
    let postfix = Postfix::start(PostfixOptions {
        tls: Some(ecdsa.clone()),
        ..PostfixOptions::default()
    });
    postfix.add_second_identity(&rsa);
    // New smtpd processes load both after the reload: until then a client asking for RSA
    // only fails its handshake. Poll until RSA is offered.
    support::poll_until(
        "Postfix serving its RSA certificate",
        std::time::Duration::from_secs(10),
        || {
            let rsa_offered = try_presented_spki(&postfix, Some(KeyKind::Rsa));
            (rsa_offered.as_ref() == Ok(&rsa.spki_der)).then_some(())
        },
    );
    assert_eq!(
        presented_spki(&postfix, Some(KeyKind::Ecdsa)),
        ecdsa.spki_der
    );
    assert_eq!(presented_spki(&postfix, Some(KeyKind::Rsa)), rsa.spki_der);
    assert_eq!(KeyKind::of_spki(&rsa.spki_der), Some(KeyKind::Rsa));
    assert_eq!(KeyKind::of_spki(&ecdsa.spki_der), Some(KeyKind::Ecdsa));
}
