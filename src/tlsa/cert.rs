//! An X.509 certificate kept as DER, with the facts TLSA work needs.

use std::ops::Range;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::key::{self, KeyAlgorithm};

/// One DER certificate and the location of its SubjectPublicKeyInfo inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    spki: Range<usize>,
    pub subject: String,
    pub issuer: String,
    /// End of validity, Unix seconds (usage 3 ignores dates; shown and warned about).
    pub not_after: i64,
    pub key_algorithm: KeyAlgorithm,
}

/// The bytes are not one complete DER certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotACertificate(pub String);

impl Certificate {
    /// Parses exactly one DER certificate (trailing bytes are an error, so
    /// that a truncated or concatenated blob is not silently accepted).
    pub fn from_der(der: &[u8]) -> Result<Self, NotACertificate> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| NotACertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(NotACertificate(format!(
                "{} unexpected bytes after the certificate",
                rest.len()
            )));
        }
        let spki_raw = cert.tbs_certificate.subject_pki.raw;
        // `raw` borrows from `der`, so its offset locates the SPKI inside it.
        let start = spki_raw.as_ptr() as usize - der.as_ptr() as usize;
        Ok(Certificate {
            spki: start..start + spki_raw.len(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after: cert.validity().not_after.timestamp(),
            key_algorithm: key::describe(&cert.tbs_certificate.subject_pki),
            der: der.to_vec(),
        })
    }

    /// The whole certificate (selector 0).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The SubjectPublicKeyInfo (selector 1).
    pub fn spki(&self) -> &[u8] {
        &self.der[self.spki.clone()]
    }

    /// End of validity in RFC 3339 form.
    pub fn not_after_rfc3339(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.not_after)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.not_after.to_string())
    }
}
