//! WebPKI judgement of a presented chain: what an MTA-STS sender (RFC 8461
//! §4.2) or an HTTPS client decides — a path to a trusted root, valid dates,
//! the server-authentication purpose and the expected host name — with
//! rustls' WebPKI verifier, beside the DANE verdict.
//!
//! Roots are the system's (what `rustls-native-certs` finds: the
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` variables, else the distribution's bundle),
//! plus the certificates of an optional PEM file (a private or test CA).
//!
//! Failures carry the RFC 8460 result type a reporting sender would use
//! (`certificate-expired`, `certificate-host-mismatch`,
//! `certificate-not-trusted`, `validation-failure`), so reports and checks
//! speak the same words.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use serde::Serialize;

use super::capture;

/// The trust roots of WebPKI checks.
#[derive(Debug, Clone)]
pub struct Roots {
    pub store: Arc<RootCertStore>,
    /// Where they came from, for reports (`system (146)`, `+ FILE (1)`).
    pub origin: String,
}

/// The system's roots, plus those of `extra` (PEM) when given. `Err` says
/// which file could not be used, or that no root at all was found.
pub fn load_roots(extra: Option<&Path>) -> Result<Roots, String> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = store.add_parsable_certificates(native.certs);
    let mut origin = format!("system ({system})");
    if let Some(file) = extra {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?;
        let blocks = pem::parse_many(&text).map_err(|e| {
            format!(
                "the CA file {} is not PEM: {e}; expected CERTIFICATE blocks",
                file.display()
            )
        })?;
        let certs: Vec<CertificateDer<'static>> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| CertificateDer::from(b.into_contents()))
            .collect();
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "the CA file {} holds no usable CERTIFICATE block",
                file.display()
            ));
        }
        origin.push_str(&format!(" + {} ({added})", file.display()));
    }
    if store.is_empty() {
        return Err(
            "no WebPKI trust roots: the system has none (install ca-certificates) and no --ca-file was given"
                .into(),
        );
    }
    Ok(Roots {
        store: Arc::new(store),
        origin,
    })
}

/// A WebPKI verifier for `roots` with this crate's crypto provider.
pub fn verifier(roots: &Roots) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(roots.store.clone(), capture::provider())
        .build()
        .map_err(|e| format!("cannot set up WebPKI verification: {e}"))
}

/// The WebPKI judgement of one presented chain for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebPkiVerdict {
    pub valid: bool,
    /// `valid`, or the RFC 8460 result type of the failure.
    pub result: String,
    pub detail: String,
}

/// Judges `chain` (leaf first, DER) for `name` at `now`.
pub fn judge(chain: &[&[u8]], name: &str, roots: &Roots, now: SystemTime) -> WebPkiVerdict {
    let verdict = |valid: bool, result: &str, detail: String| WebPkiVerdict {
        valid,
        result: result.into(),
        detail,
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return verdict(
            false,
            "validation-failure",
            "no certificate presented".into(),
        );
    };
    let verifier = match verifier(roots) {
        Ok(v) => v,
        Err(why) => return verdict(false, "validation-failure", why),
    };
    let server_name = match ServerName::try_from(name.to_string()) {
        Ok(n) => n,
        Err(e) => return verdict(false, "validation-failure", format!("{name}: {e}")),
    };
    let leaf = CertificateDer::from(leaf.to_vec());
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.to_vec()))
        .collect();
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    match verifier.verify_server_cert(
        &leaf,
        &intermediates,
        &server_name,
        &[],
        UnixTime::since_unix_epoch(since),
    ) {
        Ok(_) => verdict(
            true,
            "valid",
            format!("chains to a trusted root and names {name}"),
        ),
        Err(e) => {
            let (result, detail) = describe(&e, name);
            verdict(false, result, detail)
        }
    }
}

/// The RFC 8460 result type and a sentence for a verification error.
pub fn describe(error: &rustls::Error, name: &str) -> (&'static str, String) {
    let rustls::Error::InvalidCertificate(cert) = error else {
        return (
            "validation-failure",
            format!("the certificate cannot be verified: {error}"),
        );
    };
    match cert {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "certificate-expired",
            format!("the certificate has expired ({error})"),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "certificate-expired",
            format!("the certificate is not valid yet ({error})"),
        ),
        CertificateError::NotValidForName => (
            "certificate-host-mismatch",
            format!("the certificate is not valid for {name}"),
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            "certificate-host-mismatch",
            format!(
                "the certificate is not valid for {name}: it names {}",
                if presented.is_empty() {
                    "no host".to_string()
                } else {
                    presented
                        .iter()
                        .map(|p| unquote(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ),
        CertificateError::UnknownIssuer => (
            "certificate-not-trusted",
            "the certificate does not chain to a trusted root (self-signed, or issued by a CA the roots do not hold; a DANE-only certificate fails here)".into(),
        ),
        CertificateError::BadSignature => (
            "certificate-not-trusted",
            "a signature in the certificate chain does not verify".into(),
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
            "validation-failure",
            "the certificate is not for TLS server authentication (extended key usage)".into(),
        ),
        CertificateError::Revoked => (
            "certificate-not-trusted",
            "the certificate is revoked".into(),
        ),
        _ => ("validation-failure", format!("the certificate is not valid: {error}")),
    }
}

/// rustls spells presented names as `DnsName("mx.example.com")`: the name alone.
fn unquote(presented: &str) -> String {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
        .to_string()
}
