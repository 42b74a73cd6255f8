//! Proving from local facts alone that a set has nothing to do, so that
//! `tlsa run --offline-if-idle` (cron every few minutes) sends no query.
//!
//! A run that read DNS and found the set idle (no step due, nothing to wait
//! for, no alarm) leaves an [`IdleMark`]: a digest of everything else the
//! plan looks at (the set's config, the deployed and source certificates,
//! the next key, the keys the state knows). Until the digest changes, only
//! DNS could make a step due, and DNS changes only by someone else's hand;
//! the mark is trusted for [`OFFLINE_MAX_AGE`] at most, so a run reads DNS
//! at least that often and still catches a record deleted by hand.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::files::{self, FileError};
use super::keys;
use super::state::{IdleMark, SetState, Timestamp};
use crate::acme::renewal_info;
use crate::config::CertSet;

/// How long an idle mark spares the network.
pub const OFFLINE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The mark a networked run leaves on an idle set.
pub fn mark(
    set: &CertSet,
    state_dir: &Path,
    entry: &SetState,
    now: Timestamp,
) -> Result<IdleMark, FileError> {
    Ok(IdleMark {
        checked_at: now,
        digest: digest(set, state_dir, entry)?,
    })
}

/// How stale a mark may get before an idle run rewrites it (and the state).
pub const MARK_REFRESH: Duration = Duration::from_secs(3600);

/// Whether `new` should replace `old`: the inputs changed, or `old` is
/// older than [`MARK_REFRESH`]. So the offline window is
/// [`OFFLINE_MAX_AGE`] from a networked check at most an hour older than the last.
pub fn worth_refreshing(old: &IdleMark, new: &IdleMark) -> bool {
    old.digest != new.digest || old.checked_at + MARK_REFRESH <= new.checked_at
}

/// Whether the set is provably idle now without reading DNS.
pub fn provably_idle(set: &CertSet, state_dir: &Path, entry: &SetState, now: Timestamp) -> bool {
    let Some(mark) = &entry.idle else {
        return false;
    };
    let pending = entry.alarm.is_some()
        || entry.reload_pending
        || entry.rollover_requested_at.is_some()
        || entry
            .keys
            .values()
            .any(|k| k.safe_at.is_none_or(|at| at > now));
    !pending
        && !acme_due(set, entry, now)
        && mark.checked_at + OFFLINE_MAX_AGE > now
        && digest(set, state_dir, entry).is_ok_and(|d| d == mark.digest)
}

/// Whether time alone made something due for an `acme` set: its renewal
/// (the CA's window or two thirds of the lifetime), the next question for
/// the CA's renewal window, or the expiry alarm — none of which a digest of
/// local files shows.
fn acme_due(set: &CertSet, entry: &SetState, now: Timestamp) -> bool {
    let crate::config::Source::Acme(acme) = &set.source else {
        return false;
    };
    let Ok(pem) = std::fs::read(files::deploy_files(set).chain) else {
        // No live certificate: the run orders one.
        return true;
    };
    let now = now.to_system();
    let info = entry.acme_renewal_info.as_ref();
    let renewal = renewal_info::renewal_at(acme, &pem, info);
    let asked_again = info.is_some_and(|i| i.next_check.to_system() <= now);
    let alarm = crate::acme::source::validity(&pem)
        .is_none_or(|(start, end)| acme.alarm_from(start, end) <= now);
    renewal.is_none_or(|(at, _)| at <= now) || asked_again || alarm
}

fn digest(set: &CertSet, state_dir: &Path, entry: &SetState) -> Result<String, FileError> {
    let mut hash = Sha256::new();
    let mut feed = |part: &str| {
        hash.update(part.as_bytes());
        hash.update([0]);
    };
    // The set's settings as Debug text, so any change shows; the name
    // without its position in the file, which moves when other parts change.
    feed(set.name.get_ref());
    feed(&format!(
        "{:?} {:?} {:?} {:?} {:?} {} {} {} {:?} {:?}",
        set.endpoints,
        set.source,
        set.deploy,
        set.next_key,
        set.matching,
        set.ttl,
        set.margin,
        set.fully_managed,
        set.verify,
        set.manual
    ));
    for chain in [
        files::deploy_files(set).chain,
        files::source_files(set, state_dir, entry)?.chain,
    ] {
        let facts = files::cert_facts(&chain)?;
        feed(facts.as_ref().map_or("-", |c| c.fingerprint.as_str()));
    }
    let next = entry.next_key.as_deref().unwrap_or("-");
    feed(next);
    let next_on_disk = entry
        .next_key
        .as_ref()
        .is_some_and(|id| keys::key_path(state_dir, set.name.get_ref(), id).exists());
    feed(if next_on_disk { "on disk" } else { "absent" });
    for (id, key) in &entry.keys {
        feed(&format!("{id} {:?} {:?}", key.safe_at, key.removed_at));
    }
    feed(&format!("{:?}", entry.verified));
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config of one `acme` set deploying into `dir/live`.
    fn acme_config(dir: &Path) -> crate::config::Config {
        let source = r#"{ acme = { directory = "https://ca.example.test/dir", names = ["mail.example.test"] } }"#;
        crate::config::testing::one_set_for_tests(dir, 60, source)
    }

    /// Deploys a certificate valid for `days` days from `start`.
    fn deploy(set: &CertSet, start: time::OffsetDateTime, days: i64) {
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.example.test".to_string()]).unwrap();
        params.not_before = start;
        params.not_after = start + time::Duration::days(days);
        let pair = rcgen::KeyPair::generate().unwrap();
        let chain = files::deploy_files(set).chain;
        std::fs::create_dir_all(chain.parent().unwrap()).unwrap();
        std::fs::write(chain, params.self_signed(&pair).unwrap().pem()).unwrap();
    }

    #[test]
    fn an_acme_set_is_not_idle_once_time_makes_its_renewal_or_alarm_due() {
        let dir = tempfile::tempdir().unwrap();
        let config = acme_config(dir.path());
        let set = &config.sets[0];
        let mut entry = SetState::default();
        let start = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        let at_day = |day: u64| {
            Timestamp::from_system(
                std::time::SystemTime::from(start) + Duration::from_secs(day * 86_400),
            )
        };
        assert!(acme_due(set, &entry, at_day(1)), "no certificate yet");
        deploy(set, start, 90);
        assert!(!acme_due(set, &entry, at_day(1)));
        // Two thirds of 90 days: day 60.
        assert!(!acme_due(set, &entry, at_day(59)));
        assert!(acme_due(set, &entry, at_day(61)));
        // The CA's renewal window is to be asked again from day 5.
        let pem = std::fs::read(files::deploy_files(set).chain).unwrap();
        entry.acme_renewal_info = Some(renewal_info::RenewalInfo {
            cert: renewal_info::certificate_id(&pem).unwrap_or_default(),
            window: Some(renewal_info::Window {
                start: at_day(30),
                end: at_day(32),
                renew_at: at_day(31),
                explanation: None,
            }),
            next_check: at_day(5),
        });
        assert!(!acme_due(set, &entry, at_day(4)));
        assert!(acme_due(set, &entry, at_day(6)), "time to ask the CA again");
    }
}
