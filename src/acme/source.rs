//! `source = { acme = { … } }`: tlsa obtains the set's certificates itself,
//! for the keys it holds — the first key, and at each planned roll the
//! pre-published next key, whose records are safe long before — from an
//! RFC 8555 CA with DNS-01 through the zone's own back-end.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::http01::Http01;
use crate::config::SecretRef;

/// At most this long before expiry, a certificate not yet renewed is an
/// alarm (unless `alarm_days` says otherwise).
const ALARM_AT_MOST: Duration = Duration::from_secs(14 * 86_400);

/// How the CA checks control of the names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// TXT at `_acme-challenge.NAME` through the zone's back-end.
    #[default]
    #[serde(rename = "dns-01")]
    Dns01,
    /// `http://NAME/.well-known/acme-challenge/TOKEN`, from `webroot` or `listen`.
    #[serde(rename = "http-01")]
    Http01,
}

/// External Account Binding (RFC 8555 §7.3.4), for CAs that tie ACME
/// accounts to an account of their own: the key id and the MAC key the CA
/// gave (base64url), the key by reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: SecretRef,
}

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
    /// `dns-01` (the default) or `http-01`.
    #[serde(default)]
    pub challenge: ChallengeKind,
    /// http-01: the document root the host's web server serves as `http://NAME/`.
    pub webroot: Option<PathBuf>,
    /// http-01 with no web server: tlsa answers on this address (port 80,
    /// or where a proxy forwards it) while an order runs.
    pub listen: Option<SocketAddr>,
    /// External Account Binding, for CAs that require it.
    pub eab: Option<Eab>,
    /// Days before expiry from which a certificate not yet renewed is an
    /// alarm; by default a sixth of its lifetime, at most 14 days.
    pub alarm_days: Option<u32>,
    /// The key rolls at every Nth renewal; the renewals in between keep
    /// the live key (a new certificate for it, no TLSA change). Default 1:
    /// a roll at every renewal.
    pub roll_every: Option<u32>,
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
        match (self.challenge, &self.webroot, &self.listen) {
            (ChallengeKind::Dns01, None, None) => {}
            (ChallengeKind::Dns01, _, _) => {
                return Err(
                    "source.acme: webroot and listen are for challenge = \"http-01\"; with dns-01 (the default) the challenge goes through the zone's back-end".into(),
                );
            }
            (ChallengeKind::Http01, Some(_), None) | (ChallengeKind::Http01, None, Some(_)) => {
                if let Some(wild) = self.names.iter().find(|n| n.starts_with("*.")) {
                    return Err(format!(
                        "source.acme.names {wild:?}: a wildcard name can only be validated by dns-01 (RFC 8555 §7.1.3)"
                    ));
                }
            }
            (ChallengeKind::Http01, _, _) => {
                return Err(
                    "source.acme: challenge = \"http-01\" needs exactly one of webroot = \"DIR\" (the web server's document root) or listen = \"ADDRESS:PORT\" (tlsa answers itself)".into(),
                );
            }
        }
        if self.roll_every == Some(0) {
            return Err(
                "source.acme.roll_every = 0: expected 1 (a key roll at every renewal) or more (the renewals in between keep the key)".into(),
            );
        }
        if let Some(eab) = &self.eab {
            if eab.kid.trim().is_empty() {
                return Err("source.acme.eab.kid is empty: give the key id the CA issued".into());
            }
            if eab.hmac_key.file.is_some() == eab.hmac_key.env.is_some() {
                return Err(
                    "source.acme.eab.hmac_key needs exactly one of file = \"PATH\" or env = \"VARIABLE\"".into(),
                );
            }
            if eab
                .hmac_key
                .env
                .as_deref()
                .is_some_and(|n| !crate::config::is_env_name(n))
            {
                return Err(
                    "source.acme.eab.hmac_key: env = expects the name of an environment variable; the value given is not one, and is not shown in case it is the key itself".into(),
                );
            }
        }
        Ok(())
    }

    /// Whether the renewal after `kept` renewals that kept the key keeps it too.
    pub fn keeps_key(&self, kept: u32) -> bool {
        kept + 1 < self.roll_every.unwrap_or(1)
    }

    /// Where HTTP-01 responses go; `None` for DNS-01.
    pub fn http01(&self) -> Option<Http01> {
        match (self.challenge, &self.webroot, self.listen) {
            (ChallengeKind::Http01, Some(dir), _) => Some(Http01::Webroot(dir.clone())),
            (ChallengeKind::Http01, None, Some(addr)) => Some(Http01::Standalone(addr)),
            _ => None,
        }
    }

    /// From when a certificate valid from `not_before` to `not_after` that
    /// has not been renewed is an alarm.
    pub fn alarm_from(&self, not_before: SystemTime, not_after: SystemTime) -> SystemTime {
        let lifetime = not_after
            .duration_since(not_before)
            .unwrap_or(Duration::ZERO);
        let ahead = match self.alarm_days {
            Some(days) => Duration::from_secs(u64::from(days) * 86_400),
            None => (lifetime / 6).min(ALARM_AT_MOST),
        };
        // More days than the certificate lives: an alarm from its start.
        not_before + lifetime.saturating_sub(ahead)
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed
/// where the CA offers no renewal window (RFC 9773,
/// [`super::renewal_info`]): at two thirds of its lifetime.
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
            challenge: ChallengeKind::Dns01,
            webroot: None,
            listen: None,
            eab: None,
            alarm_days: None,
            roll_every: None,
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
            ..good.clone()
        };
        assert!(contact.check().unwrap_err().contains("mailto:"));
        let http_without_place = AcmeSource {
            challenge: ChallengeKind::Http01,
            ..good.clone()
        };
        assert!(
            http_without_place
                .check()
                .unwrap_err()
                .contains("exactly one of webroot")
        );
        let webroot = AcmeSource {
            challenge: ChallengeKind::Http01,
            webroot: Some("/var/www".into()),
            ..good.clone()
        };
        assert!(webroot.check().is_ok());
        assert_eq!(webroot.http01(), Some(Http01::Webroot("/var/www".into())));
        let both = AcmeSource {
            listen: Some("0.0.0.0:80".parse().unwrap()),
            ..webroot.clone()
        };
        assert!(both.check().is_err());
        let wildcard = AcmeSource {
            names: vec!["*.example.com".into()],
            ..webroot
        };
        assert!(wildcard.check().unwrap_err().contains("dns-01"));
        let dns_with_webroot = AcmeSource {
            webroot: Some("/var/www".into()),
            ..good.clone()
        };
        assert!(dns_with_webroot.check().unwrap_err().contains("http-01"));
        let eab = AcmeSource {
            eab: Some(Eab {
                kid: "kid-1".into(),
                hmac_key: SecretRef {
                    file: None,
                    env: None,
                },
            }),
            ..good
        };
        assert!(eab.check().unwrap_err().contains("hmac_key"));
    }

    #[test]
    fn roll_every_n_keeps_the_key_for_the_renewals_in_between() {
        let mut source: AcmeSource = toml::from_str(
            r#"directory = "https://ca.example/dir"
names = ["mail.example.com"]"#,
        )
        .unwrap();
        assert!(!source.keeps_key(0), "by default every renewal rolls");
        source.roll_every = Some(3);
        let pattern: Vec<bool> = (0..3).map(|kept| source.keeps_key(kept)).collect();
        assert_eq!(pattern, [true, true, false], "keep, keep, roll");
        source.roll_every = Some(0);
        assert!(source.check().unwrap_err().contains("roll_every"));
    }

    #[test]
    fn the_expiry_alarm_comes_a_sixth_of_the_lifetime_ahead_at_most_two_weeks() {
        let source: AcmeSource = toml::from_str(
            r#"directory = "https://ca.example/dir"
names = ["mail.example.com"]"#,
        )
        .unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        // 90 days: renewal at 60, the alarm 14 days before the end (76).
        assert_eq!(source.alarm_from(start, start + day * 90), start + day * 76);
        // 6 days: renewal at 4, the alarm at 5.
        assert_eq!(source.alarm_from(start, start + day * 6), start + day * 5);
        let set = AcmeSource {
            alarm_days: Some(30),
            ..source
        };
        assert_eq!(set.alarm_from(start, start + day * 90), start + day * 60);
        // More days than the lifetime: an alarm from the start.
        assert_eq!(set.alarm_from(start, start + day * 6), start);
    }
}
