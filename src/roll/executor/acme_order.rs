//! The certificate of an `acme` set for a key tlsa holds: ordered from the
//! set's CA with DNS-01 through the back-end of the zone holding
//! `_acme-challenge.NAME` (the same publication the roll uses: CAS,
//! confirmed on every authoritative server before the CA looks, removed
//! after success and after every failure).

use std::path::Path;
use std::time::Duration;

use instant_acme::RetryPolicy;

use super::{Engine, EngineError};
use crate::acme::dns01::{CHALLENGE_TTL, Challenges, challenge_owner};
use crate::acme::source::AcmeSource;
use crate::acme::{AccountStore, obtain};
use crate::config::CertSet;
use crate::roll::files::FileError;
use crate::roll::state::{AcmeBackoff, SetState, Timestamp};

/// How long one order may take at the CA (validation and issuance).
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine {
    /// The PEM chain for the key at `key_path`.
    pub(super) async fn order_certificate(
        &self,
        set: &CertSet,
        acme: &AcmeSource,
        key_path: &Path,
        state_dir: &Path,
    ) -> Result<String, EngineError> {
        let name = set.name.get_ref();
        let fail = |what: String| EngineError::Internal(format!("set {name}: {what}"));
        let key_pem = std::fs::read_to_string(key_path).map_err(|e| FileError::Read {
            file: key_path.to_path_buf(),
            why: e.to_string(),
        })?;
        // One publication for every challenge: all owners in one zone.
        let owners = acme
            .names
            .iter()
            .map(|n| challenge_owner(n).map_err(|e| EngineError::Config(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = self.configured_propagation_timeout();
        let publication = self.publication_for(&owners[0], timeout)?;
        if let Some(outside) = owners.iter().find(|o| !publication.zone.zone_of(o)) {
            return Err(EngineError::Config(format!(
                "set {name}: {outside} is not in zone {}; the names of one acme source need their challenges in one configured zone",
                publication.zone
            )));
        }
        let challenges = Challenges {
            publication: &publication,
            ttl: CHALLENGE_TTL.min(set.ttl),
        };
        let store = AccountStore::new(state_dir, acme.ca_file.clone());
        let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
        let account = store
            .account(&acme.directory, &contact)
            .await
            .map_err(|e| fail(format!("ACME account at {}: {e}", acme.directory)))?;
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(ORDER_TIMEOUT);
        self.say(&format!(
            "set {name}: ordering the certificate for {} from {}",
            acme.names.join(", "),
            acme.directory
        ));
        let obtained = obtain(&account, &acme.names, &key_pem, &challenges, &retry)
            .await
            .map_err(|e| {
                fail(format!(
                    "the CA {} did not issue the certificate: {e}. Nothing was deployed; the next run orders again",
                    acme.directory
                ))
            })?;
        self.say(&format!(
            "set {name}: certificate issued ({})",
            obtained.order_url
        ));
        Ok(obtained.chain_pem)
    }
}

impl Engine {
    /// An `acme` set's live certificate has passed two thirds of its
    /// lifetime and no roll is under way: renew it with the pre-published
    /// next key (a planned roll: its records are long safe, so the new
    /// certificate goes live without a TTL wait).
    pub(super) fn renewal_due(&self, set: &CertSet, entry: &SetState) -> Result<bool, EngineError> {
        if !matches!(set.source, crate::config::Source::Acme(_))
            || entry.rollover_to.is_some()
            || entry.next_key.is_none()
        {
            return Ok(false);
        }
        let chain = crate::roll::files::deploy_files(set).chain;
        let pem = match std::fs::read(&chain) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(FileError::Read {
                    file: chain,
                    why: e.to_string(),
                }
                .into());
            }
        };
        let Some((not_before, not_after)) = crate::acme::source::validity(&pem) else {
            return Ok(false);
        };
        let due = crate::acme::source::renew_at(not_before, not_after);
        Ok(self.now().to_system() >= due)
    }
}

impl Engine {
    /// An ACME set whose last order failed, inside its backoff (said once).
    pub(super) fn acme_backing_off(&self, set: &CertSet, entry: &SetState) -> bool {
        let Some(backoff) = &entry.acme_backoff else {
            return false;
        };
        if self.now() >= backoff.retry_at {
            return false;
        }
        self.say(&format!(
            "set {}: {} ACME order(s) failed in a row (last: {}); the next automatic order at {} (`tlsa rollover` orders now)",
            set.name.get_ref(),
            backoff.failures,
            backoff.error,
            backoff.retry_at
        ));
        true
    }

    /// Records the outcome of a step that may have ordered a certificate:
    /// a failure of an ACME set starts or lengthens its backoff, a success
    /// ends it.
    pub(super) fn note_order<T>(
        &self,
        set: &CertSet,
        result: Result<T, EngineError>,
        entry: &mut SetState,
    ) -> Result<T, EngineError> {
        if !matches!(set.source, crate::config::Source::Acme(_)) {
            return result;
        }
        match &result {
            Ok(_) => entry.acme_backoff = None,
            Err(e) => {
                let failures = entry.acme_backoff.as_ref().map_or(0, |b| b.failures) + 1;
                let retry_at =
                    Timestamp::from_system(self.now().to_system() + AcmeBackoff::wait(failures));
                entry.acme_backoff = Some(AcmeBackoff {
                    failures,
                    retry_at,
                    error: e.to_string(),
                });
            }
        }
        result
    }
}
