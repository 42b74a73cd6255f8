//! One entry point over every back-end (RFC 2136, the provider APIs, zone
//! files): build a [`Provider`] from a [`BackendConfig`], and check,
//! read-only, that its credentials work for a zone ([`check_credentials`])
//! — what `tlsa providers` and `tlsa config check --online` show. Nothing
//! here ever prints a secret: the configurations name where secrets are, and
//! errors never carry them.

use std::fmt;

use hickory_proto::rr::Name;

use super::cloudflare::{Cloudflare, CloudflareConfig};
use super::desec::{Desec, DesecConfig};
use super::powerdns::{PowerDns, PowerDnsConfig};
use super::provider::Provider;
use super::rfc2136::Rfc2136;
use super::zonefile::{ZoneFile, ZoneFileConfig};
use crate::dns::DnsError;

/// The configuration of one back-end.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// With its TSIG key loaded (the key file is read when the config is).
    Rfc2136(Rfc2136),
    Cloudflare(CloudflareConfig),
    Desec(DesecConfig),
    PowerDns(PowerDnsConfig),
    ZoneFile(ZoneFileConfig),
}

impl BackendConfig {
    /// `cloudflare`, `powerdns`, `zonefile`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Rfc2136(_) => "rfc2136",
            BackendConfig::Cloudflare(_) => "cloudflare",
            BackendConfig::Desec(_) => "desec",
            BackendConfig::PowerDns(_) => "powerdns",
            BackendConfig::ZoneFile(_) => "zonefile",
        }
    }

    /// The back-end, ready to use (loads its secret).
    pub fn build(&self) -> Result<Box<dyn Provider>, DnsError> {
        Ok(match self {
            BackendConfig::Rfc2136(r) => Box::new(r.clone()),
            BackendConfig::Cloudflare(c) => Box::new(Cloudflare::new(c)?),
            BackendConfig::Desec(c) => Box::new(Desec::new(c)?),
            BackendConfig::PowerDns(c) => Box::new(PowerDns::new(c)?),
            BackendConfig::ZoneFile(c) => Box::new(ZoneFile::new(c.clone())?),
        })
    }
}

/// The outcome of [`check_credentials`].
#[derive(Debug)]
pub struct CredentialCheck {
    pub zone: Name,
    pub kind: &'static str,
    /// The back-end's description (URL, file), when it could be built.
    pub backend: Option<String>,
    /// What was verified, or why it failed.
    pub outcome: Result<Vec<String>, DnsError>,
}

impl CredentialCheck {
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl fmt::Display for CredentialCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = self.backend.as_deref().unwrap_or(self.kind);
        match &self.outcome {
            Ok(details) => {
                write!(f, "zone {}: {backend}: ok", self.zone)?;
                for detail in details {
                    write!(f, "\n  - {detail}")?;
                }
                Ok(())
            }
            Err(e) => write!(f, "zone {}: {backend}: FAILED\n  - {e}", self.zone),
        }
    }
}

/// Checks, without changing anything, that `config` works for `zone`:
/// RFC 2136 — a TSIG-signed SOA query to the primary; Cloudflare — token status, zone lookup, DNS read; deSEC — reads the
/// domain; PowerDNS — reads the
/// zone; zone file — the records file readable, well-formed and writable,
/// the serial file, the reload program present (not run).
pub async fn check_credentials(config: &BackendConfig, zone: &Name) -> CredentialCheck {
    let mut check = CredentialCheck {
        zone: zone.clone(),
        kind: config.kind(),
        backend: None,
        outcome: Ok(Vec::new()),
    };
    check.outcome = match config {
        BackendConfig::Rfc2136(r) => {
            check.backend = Some(r.describe());
            r.check(zone).await
        }
        BackendConfig::Cloudflare(c) => match Cloudflare::new(c) {
            Ok(cf) => {
                check.backend = Some(cf.describe());
                cf.check(zone).await
            }
            Err(e) => Err(e),
        },
        BackendConfig::Desec(c) => match Desec::new(c) {
            Ok(desec) => {
                check.backend = Some(desec.describe());
                desec.check(zone).await
            }
            Err(e) => Err(e),
        },
        BackendConfig::PowerDns(c) => match PowerDns::new(c) {
            Ok(pdns) => {
                check.backend = Some(pdns.describe());
                pdns.check(zone).await
            }
            Err(e) => Err(e),
        },
        BackendConfig::ZoneFile(c) => match ZoneFile::new(c.clone()) {
            Ok(files) if files.config().zone != *zone => Err(DnsError::Config(format!(
                "the zone-file back-end for {} serves zone {}, not {zone}",
                c.records_file.display(),
                files.config().zone
            ))),
            Ok(files) => {
                check.backend = Some(files.describe());
                files.check().await
            }
            Err(e) => Err(e),
        },
    };
    check
}
