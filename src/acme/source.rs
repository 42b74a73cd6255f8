//! `source = { acme = { … } }`: tlsa obtains the set's certificates itself,
//! for the keys it holds — the first key, and at each planned roll the
//! pre-published next key, whose records are safe long before — from an
//! RFC 8555 CA with DNS-01 through the zone's own back-end.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSource {
    /// The CA's directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// Account contacts (`mailto:…`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// The certificate's names; every `_acme-challenge.NAME` must be in
    /// one configured zone.
    pub names: Vec<String>,
    /// PEM roots for the CA's HTTPS server (a private or test CA); the
    /// system roots otherwise.
    pub ca_file: Option<PathBuf>,
}

impl AcmeSource {
    /// Refused at load: what would only fail at the first order.
    pub fn check(&self) -> Result<(), String> {
        if !self.directory.starts_with("https://") {
            return Err(format!(
                "source.acme.directory = {:?}: expected the CA's https:// directory URL",
                self.directory
            ));
        }
        if self.names.is_empty() {
            return Err(
                "source.acme.names is empty: list the host names the certificate is for".into(),
            );
        }
        for name in &self.names {
            super::dns01::challenge_owner(name).map_err(|e| format!("source.acme.names: {e}"))?;
        }
        if let Some(bad) = self.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return Err(format!(
                "source.acme.contact {bad:?}: expected mailto:ADDRESS"
            ));
        }
        Ok(())
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed:
/// at two thirds of its lifetime (RFC 9773 renewal information is not
/// asked for yet).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + lifetime * 2 / 3
}

/// The validity of the leaf of a PEM chain.
pub fn validity(chain_pem: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let first = pem::parse_many(chain_pem).ok()?.into_iter().next()?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.contents()).ok()?;
    let at = |t: x509_parser::time::ASN1Time| -> Option<SystemTime> {
        let secs = u64::try_from(t.timestamp()).ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    };
    Some((
        at(cert.validity().not_before)?,
        at(cert.validity().not_after)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(90 * 86_400);
        assert_eq!(
            renew_at(start, end),
            start + Duration::from_secs(60 * 86_400)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let good = AcmeSource {
            directory: "https://ca.example/dir".into(),
            contact: vec!["mailto:a@example.com".into()],
            names: vec!["mail.example.com".into()],
            ca_file: None,
        };
        assert!(good.check().is_ok());
        let http = AcmeSource {
            directory: "http://ca.example/dir".into(),
            ..good.clone()
        };
        assert!(http.check().unwrap_err().contains("https://"));
        let none = AcmeSource {
            names: vec![],
            ..good.clone()
        };
        assert!(none.check().unwrap_err().contains("names is empty"));
        let contact = AcmeSource {
            contact: vec!["a@example.com".into()],
            ..good
        };
        assert!(contact.check().unwrap_err().contains("mailto:"));
    }
}
