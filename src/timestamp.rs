//! Instants the state files persist (the roll engine's `published_at`,
//! `safe_at`, …; the MTA-STS history; ACME renewal windows), to the
//! millisecond: a roll with 2 s TTLs must not lose up to a second to
//! rounding, and the state file must stay readable by people, so an instant
//! is stored as RFC 3339 text (`2026-11-28T20:30:01.234Z`).
//!
//! Arithmetic saturates: a hand-edited state with an absurd date gives an
//! absurd wait, never a panic.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

/// The latest instant RFC 3339 can spell (9999-12-31T23:59:59.999Z).
const MAX_MS: u64 = 253_402_300_799_999;

impl Timestamp {
    pub fn from_unix_ms(ms: u64) -> Self {
        Timestamp(ms.min(MAX_MS))
    }

    pub fn from_unix_secs(secs: u64) -> Self {
        Self::from_unix_ms(secs.saturating_mul(1000))
    }

    pub fn unix_ms(self) -> u64 {
        self.0
    }

    /// The instant, rounded down to the millisecond; before 1970 is 1970.
    pub fn from_system(time: SystemTime) -> Self {
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self::from_unix_ms(ms)
    }

    /// The first millisecond at or after `time`: for instants that must not
    /// come early (a key's `safe_at`).
    pub fn from_system_ceil(time: SystemTime) -> Self {
        let floor = Self::from_system(time);
        let exact = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        if exact > Duration::from_millis(floor.0) {
            floor + Duration::from_millis(1)
        } else {
            floor
        }
    }

    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// How long from `self` until `later` (zero when `later` is not later).
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    fn to_datetime(self) -> Option<OffsetDateTime> {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
    }

    /// RFC 3339 with milliseconds, UTC.
    pub fn rfc3339(self) -> String {
        self.to_datetime()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("{} ms after the epoch", self.0))
    }

    fn parse(text: &str) -> Option<Timestamp> {
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        u64::try_from(ms).ok().map(Self::from_unix_ms)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp::from_unix_ms(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// RFC 3339 text; plain Unix seconds are accepted too, for hand edits.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Seconds(u64),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Seconds(secs) => Ok(Timestamp::from_unix_secs(secs)),
            Repr::Text(text) => Timestamp::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an RFC 3339 time such as 2026-11-28T20:30:01.234Z"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_state_text_to_the_millisecond() {
        let at = Timestamp::from_unix_ms(1_764_361_801_234);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2025-11-28T20:30:01.234Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1764361801").unwrap(),
            Timestamp::from_unix_secs(1_764_361_801)
        );
    }

    #[test]
    fn absurd_values_saturate_instead_of_panicking() {
        let far = Timestamp::from_unix_secs(u64::MAX);
        assert_eq!(far + Duration::from_secs(u64::MAX), far);
        assert_eq!(Timestamp::default() - Duration::from_secs(5), Timestamp(0));
        let _ = far.to_system();
        assert!(far.rfc3339().starts_with("9999-12-31"));
        assert!(serde_json::from_str::<Timestamp>("\"tomorrow\"").is_err());
    }

    #[test]
    fn ceil_never_comes_early() {
        let time = UNIX_EPOCH + Duration::from_micros(1_500);
        assert_eq!(Timestamp::from_system(time).unix_ms(), 1);
        assert_eq!(Timestamp::from_system_ceil(time).unix_ms(), 2);
        let exact = UNIX_EPOCH + Duration::from_millis(7);
        assert_eq!(Timestamp::from_system_ceil(exact).unix_ms(), 7);
    }
}
