//! The `verified` step: before any record is removed, every address of
//! every endpoint of the set must present the deployed key.

use std::sync::Arc;

use async_trait::async_trait;

use super::files;
use super::plan::KeyMaterial;
use crate::config::{CertSet, Config};
use crate::dns::DnsError;
use crate::live::KeyKind;
use crate::live::check::{CheckOptions, verify_rrset};

use crate::live::resolve::{Dns, ValidatingDns};
use crate::tlsa::{Matching, Selector, TlsaRecord, Usage};

/// Checks which key the servers of a set present.
#[async_trait]
pub trait Verify: Send + Sync {
    /// `Ok` when every address of every endpoint of `set` presents `key`;
    /// otherwise what each failing address presents.
    async fn presents(&self, set: &CertSet, key: &KeyMaterial) -> Result<(), String>;
}

/// Only the deploy target holds the key (for sets whose servers tlsa cannot
/// reach, configured with `verify = "deployed-files"`).
pub struct DeployedFiles;

#[async_trait]
impl Verify for DeployedFiles {
    async fn presents(&self, set: &CertSet, key: &KeyMaterial) -> Result<(), String> {
        let deployed =
            files::cert_facts(&files::deploy_files(set).chain).map_err(|e| e.to_string())?;
        match deployed {
            Some(facts) if facts.key.id == key.id => Ok(()),
            Some(facts) => Err(format!("the deploy target holds key {}", facts.key.short())),
            None => Err("nothing is deployed".into()),
        }
    }
}

/// Connects to every address of every endpoint (STARTTLS where the
/// protocol has it) and requires the key's `3 1 1` to match each one.
pub struct Live {
    dns: Arc<dyn Dns>,
}

impl Live {
    pub async fn new(config: &Config) -> Result<Self, DnsError> {
        let trust = config.dnssec.trust();
        Ok(Live {
            dns: Arc::new(ValidatingDns::new(config.dnssec.resolver, &trust).await?),
        })
    }
}

#[async_trait]
impl Verify for Live {
    async fn presents(&self, set: &CertSet, key: &KeyMaterial) -> Result<(), String> {
        let endpoints = set.live_endpoints()?;
        let record =
            TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, &key.spki);
        // Ask for this key's kind: a server with an RSA and an ECDSA
        // certificate (two sets) presents each to a client that asks for it.
        let mut options = CheckOptions::default();
        options.connect.key_kind = KeyKind::of_spki(&key.spki);
        let check = verify_rrset(&endpoints, &[record], self.dns.clone(), &options).await;
        if check.verified() {
            Ok(())
        } else {
            Err(check.problems().join("; "))
        }
    }
}
