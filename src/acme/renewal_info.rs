//! ACME Renewal Information (RFC 9773): the CA's suggested window for
//! renewing a certificate, asked for where the CA's directory offers it
//! (`renewalInfo`), else the renewal falls back to two thirds of the
//! lifetime. The window can move (a CA that must revoke certificates
//! early moves it into the past: renew now), so it is asked for again when
//! the CA's Retry-After says, at most a day later. The request and its
//! parsing are `instant-acme`'s; what to do with the answer is here.

use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::source::{AcmeSource, renew_at, validity};
use crate::timestamp::Timestamp;

/// However long the CA's Retry-After, the window is asked for again after
/// this: a moved window is seen within a day.
pub const RECHECK_AT_MOST: Duration = Duration::from_secs(86_400);

/// A CA without renewal information, or whose answer failed, is asked
/// again after this.
pub const RECHECK_WITHOUT: Duration = Duration::from_secs(3_600);

/// What tlsa knows of the CA's suggestion for one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalInfo {
    /// The certificate it is about: RFC 9773's identifier (public data:
    /// the issuer's key identifier and the serial number).
    pub cert: String,
    /// The window, when the CA gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Ask again from then on.
    pub next_check: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
    /// The moment chosen in it, uniformly at random (RFC 9773 §4.2), kept
    /// while the window stays the same so that each run does not draw again.
    pub renew_at: Timestamp,
    /// The CA's page explaining the window, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// The RFC 9773 identifier of the leaf of `chain_pem`; `None` for a chain
/// that cannot be read or a leaf without an Authority Key Identifier (no
/// renewal information can be asked for it).
pub fn certificate_id(chain_pem: &[u8]) -> Option<String> {
    let first = pem::parse_many(chain_pem).ok()?.into_iter().next()?;
    let der = CertificateDer::from(first.contents().to_vec());
    let id = CertificateIdentifier::try_from(&der).ok()?;
    Some(id.to_string())
}

/// Why renewal information could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The CA's directory offers none.
    NotOffered,
    /// The CA was asked and the answer failed.
    Failed(String),
}

/// Asks the CA for the window of certificate `cert` (an identifier from
/// [`certificate_id`]): the window and how long until it may be asked again.
pub async fn fetch(
    account: &Account,
    cert: &str,
) -> Result<(SystemTime, SystemTime, Option<String>, Duration), Unavailable> {
    let (aki, serial) = cert
        .split_once('.')
        .ok_or_else(|| Unavailable::Failed(format!("{cert} is not a certificate identifier")))?;
    let id = CertificateIdentifier {
        authority_key_identifier: aki.into(),
        serial: serial.into(),
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => {
            let window = info.suggested_window;
            Ok((
                window.start.into(),
                window.end.into(),
                info.explanation_url,
                retry_after,
            ))
        }
        Err(instant_acme::Error::Unsupported(_)) => Err(Unavailable::NotOffered),
        Err(e) => Err(Unavailable::Failed(e.to_string())),
    }
}

/// The record of an answer received at `now`: the window, the moment
/// chosen in it (kept from `previous` when the window is the same), and
/// the next check. `random` is a number drawn uniformly from `0..span`
/// for a window of `span` milliseconds.
pub fn record(
    cert: &str,
    answer: (SystemTime, SystemTime, Option<String>, Duration),
    previous: Option<&RenewalInfo>,
    now: Timestamp,
    random: impl FnOnce(u64) -> u64,
) -> RenewalInfo {
    let (start, end, explanation, retry_after) = answer;
    let (start, end) = (Timestamp::from_system(start), Timestamp::from_system(end));
    // A window whose end precedes its start is read as the instant `start`.
    let end = end.max(start);
    let same = previous
        .filter(|p| p.cert == cert)
        .and_then(|p| p.window.as_ref())
        .filter(|w| w.start == start && w.end == end);
    let renew_at = match same {
        Some(window) => window.renew_at,
        None => {
            let span = end.unix_ms().saturating_sub(start.unix_ms());
            let offset = if span == 0 { 0 } else { random(span) % span };
            Timestamp::from_unix_ms(start.unix_ms() + offset)
        }
    };
    RenewalInfo {
        cert: cert.to_string(),
        window: Some(Window {
            start,
            end,
            renew_at,
            explanation,
        }),
        next_check: now + retry_after.min(RECHECK_AT_MOST),
    }
}

/// What a renewal time was decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The moment drawn in the CA's window.
    Window,
    /// The CA's window lies past the expiry alarm: renewed at the alarm,
    /// so that the alarm never precedes the renewal it warns about.
    WindowPastAlarm,
    /// No window: two thirds of the lifetime.
    TwoThirds,
}

impl Basis {
    pub fn describe(self) -> &'static str {
        match self {
            Basis::Window => "in the CA's renewal window (RFC 9773)",
            Basis::WindowPastAlarm => {
                "at the expiry alarm, before the CA's renewal window (RFC 9773)"
            }
            Basis::TwoThirds => "at two thirds of the lifetime",
        }
    }
}

/// When the leaf of `chain_pem` is renewed: in the CA's window when `info`
/// holds one for this certificate, else at two thirds of its lifetime.
pub fn renewal_at(
    acme: &AcmeSource,
    chain_pem: &[u8],
    info: Option<&RenewalInfo>,
) -> Option<(SystemTime, Basis)> {
    let (not_before, not_after) = validity(chain_pem)?;
    let cert = certificate_id(chain_pem);
    let window = info
        .filter(|i| cert.as_deref() == Some(i.cert.as_str()))
        .and_then(|i| i.window.as_ref());
    let alarm = acme.alarm_from(not_before, not_after);
    Some(match window {
        Some(window) if window.renew_at.to_system() <= alarm => {
            (window.renew_at.to_system(), Basis::Window)
        }
        Some(_) => (alarm, Basis::WindowPastAlarm),
        None => (renew_at(not_before, not_after), Basis::TwoThirds),
    })
}

/// A number drawn uniformly from `0..span` (`span` > 0) by the system's
/// random generator.
pub fn system_random(span: u64) -> u64 {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    // The system generator does not fail on a working system; should it,
    // the window's start is still a moment the CA suggested.
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        return 0;
    }
    // 64 random bits modulo a span of milliseconds (at most years): the
    // bias is below 2^-20.
    u64::from_le_bytes(bytes) % span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ts(secs: u64) -> Timestamp {
        Timestamp::from_system(at(secs))
    }

    #[test]
    fn the_moment_is_drawn_in_the_window_and_kept_while_it_stays() {
        let answer = (at(1000), at(2000), None, Duration::from_secs(60));
        let first = record("aki.serial", answer.clone(), None, ts(10), |span| {
            assert_eq!(span, 1_000_000);
            250_000
        });
        let window = first.window.clone().unwrap();
        assert_eq!(window.renew_at, ts(1250));
        assert_eq!(first.next_check, ts(70));
        // The same window again: no new draw.
        let again = record("aki.serial", answer, Some(&first), ts(80), |_| {
            panic!("drawn again")
        });
        assert_eq!(again.window.as_ref().unwrap().renew_at, ts(1250));
        // The window moved into the past (the CA wants it replaced now).
        let moved = (at(5), at(6), Some("https://ca/why".into()), Duration::ZERO);
        let moved = record("aki.serial", moved, Some(&again), ts(90), |_| 500);
        let window = moved.window.unwrap();
        assert_eq!(window.renew_at, Timestamp::from_unix_ms(5_500));
        assert_eq!(window.explanation.as_deref(), Some("https://ca/why"));
    }

    #[test]
    fn another_certificate_draws_again_and_retry_after_is_capped_at_a_day() {
        let answer = (at(1000), at(2000), None, Duration::from_secs(10 * 86_400));
        let first = record("a.1", answer.clone(), None, ts(0), |_| 0);
        let other = record("a.2", answer, Some(&first), ts(0), |_| 999_999);
        assert_eq!(
            other.window.unwrap().renew_at,
            Timestamp::from_unix_ms(1_999_999)
        );
        assert_eq!(other.next_check, ts(86_400));
    }

    #[test]
    fn an_empty_or_inverted_window_is_its_start() {
        let inverted = (at(2000), at(1000), None, Duration::ZERO);
        let info = record("a.1", inverted, None, ts(0), |_| panic!("no span"));
        assert_eq!(info.window.unwrap().renew_at, ts(2000));
    }

    #[test]
    fn a_draw_stays_below_its_span() {
        for span in [1, 2, 7, 1_000_000] {
            for _ in 0..100 {
                assert!(system_random(span) < span);
            }
        }
    }
}
