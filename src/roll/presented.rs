//! What a set's servers present: the observation the plan decides from.
//! Each run connects to every address of every endpoint (offering the
//! set's kind of key) and reports, per address, the key presented or why
//! none was seen — the deploy target's files say what the servers should
//! present, never what they do.

use std::sync::Arc;

use async_trait::async_trait;

use super::files;
use super::plan::{KeyMaterial, PresentedAt};
use crate::config::{CertSet, Config};
use crate::dns::DnsError;
use crate::live::KeyKind;
use crate::live::capture::ConnectOptions;
use crate::live::presented::presented_keys;
use crate::live::resolve::{Dns, ValidatingDns};

/// Observes which key each address of a set presents.
#[async_trait]
pub trait Servers: Send + Sync {
    /// One entry per address of every endpoint of `set` (an endpoint whose
    /// addresses cannot be found is one entry with the reason), asking for
    /// `kind` of key where the server holds several.
    async fn presented(&self, set: &CertSet, kind: Option<KeyKind>) -> Vec<PresentedAt>;
}

/// For sets whose servers tlsa cannot reach (`verify = "deployed-files"`):
/// the deploy target's key is taken as what the servers present.
pub struct DeployedFiles;

#[async_trait]
impl Servers for DeployedFiles {
    async fn presented(&self, set: &CertSet, _kind: Option<KeyKind>) -> Vec<PresentedAt> {
        let files = files::deploy_files(set);
        let address = format!("the deploy target {}", files.chain.display());
        match files::cert_facts(&files.chain) {
            Ok(Some(facts)) => vec![PresentedAt {
                address,
                key: Ok(facts.key),
            }],
            // Nothing deployed: nothing is presented from tlsa's files yet.
            Ok(None) => Vec::new(),
            Err(e) => vec![PresentedAt {
                address,
                key: Err(e.to_string()),
            }],
        }
    }
}

/// Connects to every address (STARTTLS where the protocol has it), with
/// addresses from validated A/AAAA lookups unless the endpoint pins them.
pub struct Live {
    dns: Arc<dyn Dns>,
    connect: ConnectOptions,
}

impl Live {
    pub async fn new(config: &Config) -> Result<Self, DnsError> {
        let trust = config.dnssec.trust();
        Ok(Live {
            dns: Arc::new(ValidatingDns::new(config.dnssec.resolver, &trust).await?),
            connect: ConnectOptions::default(),
        })
    }
}

#[async_trait]
impl Servers for Live {
    async fn presented(&self, set: &CertSet, kind: Option<KeyKind>) -> Vec<PresentedAt> {
        let endpoints = match set.live_endpoints() {
            Ok(endpoints) => endpoints,
            Err(why) => {
                return vec![PresentedAt {
                    address: format!("set {}", set.name.get_ref()),
                    key: Err(why),
                }];
            }
        };
        // Ask for this set's kind: a server with an RSA and an ECDSA
        // certificate (two sets) presents each to a client that asks for it.
        let connect = ConnectOptions {
            key_kind: kind,
            ..self.connect.clone()
        };
        presented_keys(&endpoints, self.dns.clone(), &connect)
            .await
            .into_iter()
            .map(|found| PresentedAt {
                address: match found.address {
                    Some(address) => format!("{} at {address}", found.endpoint),
                    None => found.endpoint,
                },
                key: found.spki.and_then(|spki| of_kind(&spki, kind)),
            })
            .collect()
    }
}

/// The presented key, if it is of the kind asked for. Another kind belongs
/// to another set of the same server (an RSA and an ECDSA set share their
/// endpoints): it is no key of this set, and counting it in service would
/// make this set publish, and later retire, the other set's records.
fn of_kind(spki: &[u8], kind: Option<KeyKind>) -> Result<KeyMaterial, String> {
    let found = KeyKind::of_spki(spki);
    match kind {
        Some(wanted) if found != Some(wanted) => Err(format!(
            "presented {} key although only {} was offered",
            found.map_or("a key of unknown kind".to_string(), |k| format!(
                "an {}",
                k.name()
            )),
            wanted.name()
        )),
        _ => Ok(KeyMaterial::from_spki(spki)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_kind_is_not_taken_as_this_sets() {
        let ecdsa =
            rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::generate().unwrap());
        assert!(of_kind(&ecdsa, Some(KeyKind::Ecdsa)).is_ok());
        assert!(of_kind(&ecdsa, None).is_ok());
        let error = of_kind(&ecdsa, Some(KeyKind::Rsa)).unwrap_err();
        assert!(
            error.contains("presented an ECDSA key although only RSA was offered"),
            "{error}"
        );
    }
}
