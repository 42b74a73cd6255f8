//! The certificate of an `acme` set for a key tlsa holds: ordered from the
//! set's CA with DNS-01 through the back-end of the zone holding
//! `_acme-challenge.NAME` (the same publication the roll uses: CAS,
//! confirmed on every authoritative server before the CA looks, removed
//! after success and after every failure).

use std::path::Path;
use std::time::Duration;

use instant_acme::{ExternalAccountKey, RetryPolicy};

use super::{Engine, EngineError, OrderPreview, SetRun};
use crate::acme::account::external_account_key;
use crate::acme::dns01::{CHALLENGE_TTL, Challenges, challenge_owner};
use crate::acme::http01::Http01;
use crate::acme::renewal_info::{self, RenewalInfo, Unavailable};
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
        run: &SetRun<'_>,
        acme: &AcmeSource,
        key_path: &Path,
    ) -> Result<String, EngineError> {
        let (set, state_dir, timeout) = (run.set, run.dir.as_path(), run.timeout);
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
        let (store, eab) = Self::account_inputs(set, acme, state_dir)?;
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

    /// Where the set's ACME account is kept, and its External Account
    /// Binding key when the CA needs one.
    fn account_inputs(
        set: &CertSet,
        acme: &AcmeSource,
        state_dir: &Path,
    ) -> Result<(AccountStore, Option<ExternalAccountKey>), EngineError> {
        let name = set.name.get_ref();
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
        Ok((AccountStore::new(state_dir, acme.ca_file.clone()), eab))
    }

    /// Asks the CA for the live certificate's renewal window (RFC 9773)
    /// when the last answer is for another certificate or its Retry-After
    /// has passed. Never fails the run: without an answer the renewal
    /// falls back to two thirds of the lifetime (or keeps the window
    /// known). Returns whether the state changed.
    pub(super) async fn refresh_renewal_info(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
    ) -> bool {
        let (set, state_dir) = (run.set, run.dir.as_path());
        let crate::config::Source::Acme(acme) = &set.source else {
            return false;
        };
        let Ok(pem) = std::fs::read(crate::roll::files::deploy_files(set).chain) else {
            return false;
        };
        let Some(cert) = renewal_info::certificate_id(&pem) else {
            return false;
        };
        let now = self.now();
        let previous = entry.acme_renewal_info.clone();
        if previous
            .as_ref()
            .is_some_and(|known| known.cert == cert && now < known.next_check)
        {
            return false;
        }
        let answer = match Self::account_inputs(set, acme, state_dir) {
            Ok((store, eab)) => {
                let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
                match store.account(&acme.directory, &contact, eab.as_ref()).await {
                    Ok(account) => renewal_info::fetch(&account, &cert).await,
                    Err(e) => Err(Unavailable::Failed(e.to_string())),
                }
            }
            Err(e) => Err(Unavailable::Failed(e.to_string())),
        };
        let name = set.name.get_ref();
        let info = match answer {
            Ok(answer) => {
                let info = renewal_info::record(
                    &cert,
                    answer,
                    previous.as_ref(),
                    now,
                    renewal_info::system_random,
                );
                if let Some(window) = &info.window
                    && previous.as_ref().and_then(|p| p.window.as_ref()) != Some(window)
                {
                    self.say(&format!(
                        "set {name}: the CA suggests renewing between {} and {}; renewal at {}",
                        window.start.rfc3339(),
                        window.end.rfc3339(),
                        window.renew_at.rfc3339()
                    ));
                }
                info
            }
            Err(Unavailable::NotOffered) => RenewalInfo {
                cert,
                window: None,
                next_check: now + renewal_info::RECHECK_AT_MOST,
            },
            Err(Unavailable::Failed(why)) => {
                self.say(&format!(
                    "set {name}: no renewal information from {} ({why}); asked again in an hour",
                    acme.directory
                ));
                let window = previous
                    .as_ref()
                    .filter(|p| p.cert == cert)
                    .and_then(|p| p.window.clone());
                RenewalInfo {
                    cert,
                    window,
                    next_check: now + renewal_info::RECHECK_WITHOUT,
                }
            }
        };
        let changed = previous.as_ref() != Some(&info);
        entry.acme_renewal_info = Some(info);
        changed
    }

    /// The publication for the `_acme-challenge` owners of every name: one
    /// configured zone must hold them all.
    fn challenge_publication(
        &self,
        set: &CertSet,
        acme: &AcmeSource,
        timeout: Duration,
    ) -> Result<crate::dns::publication::Publication<'_>, EngineError> {
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
    /// An `acme` set's live certificate is due for renewal (in the CA's
    /// window, else at two thirds of its lifetime) and no roll is under
    /// way: renew it with the pre-published next key (a planned roll: its
    /// records are long safe, so the new certificate goes live without a
    /// TTL wait).
    pub(super) fn renewal_due(&self, set: &CertSet, entry: &SetState) -> Result<bool, EngineError> {
        Ok(self.renewal_due_by(set, entry)?.is_some())
    }

    /// [`Self::renewal_due`], with what the time was decided from.
    fn renewal_due_by(
        &self,
        set: &CertSet,
        entry: &SetState,
    ) -> Result<Option<renewal_info::Basis>, EngineError> {
        let crate::config::Source::Acme(acme) = &set.source else {
            return Ok(None);
        };
        if entry.rollover_to.is_some() || entry.next_key.is_none() {
            return Ok(None);
        }
        let chain = crate::roll::files::deploy_files(set).chain;
        let pem = match std::fs::read(&chain) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FileError::Read {
                    file: chain,
                    why: e.to_string(),
                }
                .into());
            }
        };
        let renewal = renewal_info::renewal_at(acme, &pem, entry.acme_renewal_info.as_ref());
        Ok(renewal
            .filter(|(due, _)| self.now().to_system() >= *due)
            .map(|(_, basis)| basis))
    }
}

impl Engine {
    /// The order a run of an `acme` set would make now: the first
    /// certificate, or the renewal that starts a planned roll.
    pub(super) fn order_preview(
        &self,
        run: &SetRun<'_>,
        entry: &SetState,
    ) -> Result<Option<OrderPreview>, EngineError> {
        let (set, dir) = (run.set, run.dir.as_path());
        let crate::config::Source::Acme(acme) = &set.source else {
            return Ok(None);
        };
        let staged = crate::roll::files::source_files(set, dir, entry)?;
        let first = !staged.chain.exists() && !crate::roll::files::deploy_files(set).chain.exists();
        let why = match (first, self.renewal_due_by(set, entry)?) {
            (true, _) => "the first certificate, for a key generated now".to_string(),
            (false, Some(basis)) if self.renewal_keeps_key(set, entry) => format!(
                "renewal (due {}) keeping the live key: renewal {} of {} per key (roll_every)",
                basis.describe(),
                entry.acme_kept_key + 1,
                acme.roll_every.unwrap_or(1)
            ),
            (false, Some(basis)) => format!(
                "renewal (due {}): a planned roll to the pre-published next key {}",
                basis.describe(),
                entry.next_key.as_deref().unwrap_or("(none yet)")
            ),
            (false, None) => return Ok(None),
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
        let why = match (&entry.acme_backoff, &entry.rollover_to) {
            (Some(backoff), _) => format!(
                "{} order(s) failed in a row; the CA's last error: {}",
                backoff.failures, backoff.error
            ),
            // The renewal was ordered; its key is not yet safe to present.
            (None, Some(key)) => match entry.keys.get(key).and_then(|k| k.safe_at) {
                Some(safe_at) if safe_at > self.now() => format!(
                    "the renewal for key {} waits until its records are safe ({safe_at})",
                    crate::roll::plan::short(key)
                ),
                _ => format!(
                    "the renewal for key {} is under way and not deployed yet",
                    crate::roll::plan::short(key)
                ),
            },
            (None, None) => "no renewal has succeeded yet".into(),
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
