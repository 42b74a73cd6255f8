//! The certificate of an `acme` set for a key tlsa holds: ordered from the
//! set's CA with DNS-01 through the back-end of the zone holding
//! `_acme-challenge.NAME` (the same publication the roll uses: CAS,
//! confirmed on every authoritative server before the CA looks, removed
//! after success and after every failure).

use std::path::Path;
use std::time::Duration;

use instant_acme::RetryPolicy;

use super::{Engine, EngineError, OrderPreview};
use crate::acme::account::external_account_key;
use crate::acme::dns01::{CHALLENGE_TTL, Challenges, challenge_owner};
use crate::acme::http01::Http01;
use crate::acme::source::AcmeSource;
use crate::acme::{AccountStore, Responder, obtain};
use crate::config::CertSet;
use crate::roll::files::FileError;
use crate::roll::state::{AcmeBackoff, SetState, Timestamp};

/// How long one order may take at the CA (validation and issuance).
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Orders tried within one run when the CA's answer was transient.
const ORDER_ATTEMPTS: u32 = 4;

/// The pause after the first transient failure; it doubles after each.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

impl Engine {
    /// The PEM chain for the key at `key_path`.
    pub(super) async fn order_certificate(
        &self,
        set: &CertSet,
        acme: &AcmeSource,
        key_path: &Path,
        state_dir: &Path,
        timeout: Duration,
    ) -> Result<String, EngineError> {
        let name = set.name.get_ref();
        let fail = |what: String| EngineError::Internal(format!("set {name}: {what}"));
        let key_pem = std::fs::read_to_string(key_path).map_err(|e| FileError::Read {
            file: key_path.to_path_buf(),
            why: e.to_string(),
        })?;
        let http01 = acme.http01();
        let publication = match http01 {
            Some(_) => None,
            None => Some(self.challenge_publication(set, acme, timeout)?),
        };
        let responder = match (http01, &publication) {
            (Some(http), _) => Responder::Http01(http),
            (None, Some(publication)) => Responder::Dns01(Challenges {
                publication,
                ttl: CHALLENGE_TTL.min(set.ttl),
            }),
            (None, None) => return Err(fail("no way to answer the challenge".into())),
        };
        let eab = match &acme.eab {
            None => None,
            Some(eab) => {
                let secret = eab
                    .hmac_key
                    .source()
                    .load("the ACME External Account Binding MAC key")
                    .map_err(|e| EngineError::Config(format!("set {name}: {e}")))?;
                Some(
                    external_account_key(&eab.kid, secret.expose())
                        .map_err(|e| EngineError::Config(format!("set {name}: {e}")))?,
                )
            }
        };
        let store = AccountStore::new(state_dir, acme.ca_file.clone());
        let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(ORDER_TIMEOUT);
        self.say(&format!(
            "set {name}: ordering the certificate for {} from {}",
            acme.names.join(", "),
            acme.directory
        ));
        // A rejected nonce, a 5xx or a dropped connection is tried again a
        // few times within the run; a refusal is not (the run fails and the
        // set backs off, sparing the CA's rate limits).
        let mut attempt = 1;
        let obtained = loop {
            let result = match store.account(&acme.directory, &contact, eab.as_ref()).await {
                Ok(account) => obtain(&account, &acme.names, &key_pem, &responder, &retry).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(obtained) => break obtained,
                Err(e) if e.is_transient() && attempt < ORDER_ATTEMPTS => {
                    let pause = RETRY_PAUSE * 2u32.pow(attempt - 1);
                    self.say(&format!(
                        "set {name}: attempt {attempt} of {ORDER_ATTEMPTS} failed ({e}); trying again in {} s",
                        pause.as_secs()
                    ));
                    self.clock.sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(fail(format!(
                        "the CA {} did not issue the certificate ({attempt} attempt(s)): {e}. Nothing was deployed and no challenge response is left; the next run orders again",
                        acme.directory
                    )));
                }
            }
        };
        self.say(&format!(
            "set {name}: certificate issued ({})",
            obtained.order_url
        ));
        Ok(obtained.chain_pem)
    }

    /// The publication for the `_acme-challenge` owners of every name: one
    /// configured zone must hold them all.
    fn challenge_publication(
        &self,
        set: &CertSet,
        acme: &AcmeSource,
        timeout: Duration,
    ) -> Result<crate::dns::publish::Publication<'_>, EngineError> {
        let name = set.name.get_ref();
        let owners = acme
            .names
            .iter()
            .map(|n| challenge_owner(n).map_err(|e| EngineError::Config(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let publication = self.publication_for(&owners[0], timeout)?;
        if let Some(outside) = owners.iter().find(|o| !publication.zone.zone_of(o)) {
            return Err(EngineError::Config(format!(
                "set {name}: {outside} is not in zone {}; the names of one acme source need their challenges in one configured zone",
                publication.zone
            )));
        }
        Ok(publication)
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
    /// The order a run of an `acme` set would make now: the first
    /// certificate, or the renewal that starts a planned roll.
    pub(super) fn order_preview(
        &self,
        set: &CertSet,
        dir: &Path,
        entry: &SetState,
    ) -> Result<Option<OrderPreview>, EngineError> {
        let crate::config::Source::Acme(acme) = &set.source else {
            return Ok(None);
        };
        let staged = crate::roll::files::source_files(set, dir, entry)?;
        let first = !staged.chain.exists() && !crate::roll::files::deploy_files(set).chain.exists();
        let why = match (first, self.renewal_due(set, entry)?) {
            (true, _) => "the first certificate, for a key generated now".to_string(),
            (false, true) if self.renewal_keeps_key(set, entry) => format!(
                "renewal (two thirds of the lifetime have passed) keeping the live key: renewal {} of {} per key (roll_every)",
                entry.acme_kept_key + 1,
                acme.roll_every.unwrap_or(1)
            ),
            (false, true) => format!(
                "renewal (two thirds of the lifetime have passed): a planned roll to the pre-published next key {}",
                entry.next_key.as_deref().unwrap_or("(none yet)")
            ),
            (false, false) => return Ok(None),
        };
        let names: Vec<String> = acme
            .names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let (challenge, responses) = match acme.http01() {
            None => {
                let publication =
                    self.challenge_publication(set, acme, self.configured_propagation_timeout())?;
                let ttl = CHALLENGE_TTL.min(set.ttl);
                let responses = names
                    .iter()
                    .map(|n| {
                        Ok(format!(
                            "TXT {} {ttl} \"<the CA's token digest>\" in zone {}: added with compare-and-swap, confirmed on every authoritative server before the CA looks, removed after",
                            challenge_owner(n).map_err(|e| EngineError::Config(e.to_string()))?,
                            publication.zone
                        ))
                    })
                    .collect::<Result<_, EngineError>>()?;
                ("dns-01", responses)
            }
            Some(http) => {
                let from = match &http {
                    Http01::Webroot(root) => format!(
                        "file {}/<token>",
                        root.join(crate::acme::http01::WELL_KNOWN).display()
                    ),
                    Http01::Standalone(addr) => format!("tlsa listening on {addr}"),
                };
                let responses = names
                    .iter()
                    .map(|n| {
                        format!(
                            "http://{n}/{}/<token> from {from}, removed after",
                            crate::acme::http01::WELL_KNOWN
                        )
                    })
                    .collect();
                ("http-01", responses)
            }
        };
        Ok(Some(OrderPreview {
            why,
            directory: acme.directory.clone(),
            names,
            challenge,
            responses,
        }))
    }

    /// An `acme` set whose deployed certificate is inside its alarm window
    /// (`alarm_days`, by default a sixth of its lifetime): what to say, with
    /// the CA's last error when an order failed.
    pub(super) fn expiry_alarm(&self, set: &CertSet, entry: &SetState) -> Option<String> {
        let crate::config::Source::Acme(acme) = &set.source else {
            return None;
        };
        let chain = crate::roll::files::deploy_files(set).chain;
        let (not_before, not_after) = crate::acme::source::validity(&std::fs::read(chain).ok()?)?;
        let now = self.now().to_system();
        if now < acme.alarm_from(not_before, not_after) {
            return None;
        }
        let expiry = Timestamp::from_system(not_after);
        let when = match not_after.duration_since(now) {
            Ok(left) => format!("expires at {expiry} (in {})", span(left)),
            Err(_) => format!("EXPIRED at {expiry}"),
        };
        let why = match &entry.acme_backoff {
            Some(backoff) => format!(
                "{} order(s) failed in a row; the CA's last error: {}",
                backoff.failures, backoff.error
            ),
            None => "no renewal has succeeded yet".into(),
        };
        Some(format!(
            "the certificate from {} {when} and is not renewed: {why}. Fix the cause and run `tlsa rollover --set {}`",
            acme.directory,
            set.name.get_ref()
        ))
    }

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

/// A time left as people say it: seconds, minutes, hours or days.
fn span(left: Duration) -> String {
    let secs = left.as_secs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{:.1} days", secs as f64 / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_in_the_unit_that_fits() {
        assert_eq!(span(Duration::from_secs(5)), "5 s");
        assert_eq!(span(Duration::from_secs(600)), "10 min");
        assert_eq!(span(Duration::from_secs(36_000)), "10 h");
        assert_eq!(span(Duration::from_secs(14 * 86_400)), "14.0 days");
    }
}
