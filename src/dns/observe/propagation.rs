//! What every authoritative server of a zone serves, address by address,
//! and whether that is what a change expects.
//!
//! `ZoneServers::discover` (in [`super::servers`]) finds the zone's NS set
//! and every IPv4 and IPv6 address of each NS name (plus configured extra
//! servers such as a hidden primary), and [`Observe`]s: each address asked
//! directly (RD=0, DO=1, concurrently) for the zone's SOA and the RRsets,
//! reported per address as the serial, the RRsets with their TTL facts, or
//! what went wrong. That vocabulary, and the judgement of an [`Observation`]
//! against what is [`Expected`], are [`super::observation`]'s (re-exported
//! here); this module is the wait:
//! [`wait_until_propagated`] polls until every
//! address serves exactly the expected RRsets — the `t_propagated` of
//! docs/design.md §1 — or fails naming each server that lags and what it serves.
//!
//! The NS set is read once per `ZoneServers`: a wait does not follow NS
//! changes made while it runs.

pub use crate::dns::query::AnswerKind;
pub(crate) use crate::dns::query::{rcode_name, seconds};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hickory_proto::rr::Name;

pub use super::observation::{
    DNS_PORT, Discovery, Expected, Lag, Lookup, Observation, Observe, Origin, Served, ServedRrset,
    ServerAddr, ServerError, ServerObservation, Soa, Unresolved, Want, describe_ttl_per_server,
    serial_at_least, ttl_per_server, worst_ttl, worst_ttl_by_rrset,
};
use crate::clock::Clock;
use crate::dns::DnsError;

/// Finds the addresses a propagation check must ask (the zone's NS set and
/// extra servers): looked up afresh for every wait. The seam tests replace.
#[async_trait]
pub trait FindServers: Send + Sync {
    async fn find(&self) -> Result<Box<dyn Observe>, DnsError>;
}

/// The polling schedule of [`wait_until_propagated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    /// Each pause is the previous one times this (in tenths: 15 = ×1.5).
    pub factor_tenths: u32,
    pub cap: Duration,
    /// The least time a round's questions get, even just before the
    /// deadline (a round may thus end up to this much after it).
    pub min_question_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            factor_tenths: 15,
            cap: Duration::from_secs(2),
            min_question_timeout: Duration::from_millis(250),
        }
    }
}

impl Backoff {
    fn next(&self, pause: Duration) -> Duration {
        (pause * self.factor_tenths / 10).min(self.cap)
    }
}

/// Propagation confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagated {
    /// When the complete round ended (by the clock of the wait): `t_propagated`.
    /// The round's end, not its start, is the conservative choice: every
    /// server had switched by then.
    pub at: SystemTime,
    /// That round, with every address's RRsets and TTL facts.
    pub observation: Observation,
    pub rounds: u32,
}

/// The deadline passed with some addresses lagging.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the change in zone {zone} did not reach every authoritative server within {waited}: {} of {} addresses lag after {rounds} rounds:\n  {}",
    lags.len(),
    last.servers.len(),
    lags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "),
    waited = seconds(*waited)
)]
pub struct NotPropagated {
    pub zone: Name,
    pub waited: Duration,
    pub rounds: u32,
    pub lags: Vec<Lag>,
    /// The last round.
    pub last: Observation,
}

/// Polls `observer` until every address serves exactly `expected` (with a
/// serial ≥ `expected.min_serial`), or `deadline` passes. Starts at once,
/// then pauses 100 ms, ×1.5 each time up to 2 s ([`Backoff::default`]),
/// never pausing past the deadline; a last round runs at the deadline.
pub async fn wait_until_propagated(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
) -> Result<Propagated, NotPropagated> {
    wait_reporting(observer, clock, expected, deadline, &|_| {}).await
}

/// [`wait_until_propagated`] that tells `on_lags` which addresses lag, and
/// why, when it starts waiting and each time that changes: an operator
/// watching a wait sees which server it waits on.
pub async fn wait_reporting(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
    on_lags: &(dyn Fn(&[Lag]) + Send + Sync),
) -> Result<Propagated, NotPropagated> {
    wait_with_backoff(
        observer,
        clock,
        expected,
        deadline,
        Backoff::default(),
        on_lags,
    )
    .await
}

/// How long a wait goes on before it says which servers it waits for.
pub const REPORT_AFTER: Duration = Duration::from_secs(1);

fn lagging_servers(lags: &[Lag]) -> Vec<Option<SocketAddr>> {
    lags.iter()
        .map(|lag| lag.server.as_ref().map(|s| s.addr))
        .collect()
}

/// [`wait_reporting`] with an explicit schedule.
pub async fn wait_with_backoff(
    observer: &dyn Observe,
    clock: &dyn Clock,
    expected: &Expected,
    deadline: SystemTime,
    backoff: Backoff,
    on_lags: &(dyn Fn(&[Lag]) + Send + Sync),
) -> Result<Propagated, NotPropagated> {
    let mut reported: Vec<Lag> = Vec::new();
    let owners = expected.ids();
    let started = clock.now();
    let mut pause = backoff.first;
    let mut rounds = 0;
    loop {
        let remaining = deadline
            .duration_since(clock.now())
            .unwrap_or(Duration::ZERO);
        let observation = observer
            .observe(&owners, remaining.max(backoff.min_question_timeout))
            .await;
        rounds += 1;
        let now = clock.now();
        let lags = observation.lags(expected);
        if lags.is_empty() {
            return Ok(Propagated {
                at: now,
                observation,
                rounds,
            });
        }
        // Most waits end within a round or two: say nothing until one has
        // lasted a moment, then speak when the set of lagging servers changes
        // (not when only a detail of its text does).
        let lasted = now.duration_since(started).unwrap_or(Duration::ZERO) >= REPORT_AFTER;
        if lasted && lagging_servers(&lags) != lagging_servers(&reported) {
            on_lags(&lags);
            reported.clone_from(&lags);
        }
        let remaining = deadline.duration_since(now).unwrap_or(Duration::ZERO);
        if remaining.is_zero() {
            return Err(NotPropagated {
                zone: observation.zone.clone(),
                waited: now.duration_since(started).unwrap_or(Duration::ZERO),
                rounds,
                lags,
                last: observation,
            });
        }
        clock.sleep(pause.min(remaining)).await;
        pause = backoff.next(pause);
    }
}

#[cfg(test)]
mod tests {
    use crate::dns::test_values::{name, rec};
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::ttl::TtlFacts;
    use crate::clock::ManualClock;
    use crate::dns::rrset::{Rrset, RrsetId, rdata_of};
    use crate::tlsa::TlsaRecord;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, last), 53))
    }

    const OWNER: &str = "_25._tcp.mail.example.";

    fn served(serial: u32, records: &[TlsaRecord]) -> Result<Served, ServerError> {
        let owner = name(OWNER);
        let records: BTreeSet<_> = rdata_of(records.iter().cloned());
        let ttl = (!records.is_empty()).then_some(300);
        let mut rrsets = BTreeMap::new();
        rrsets.insert(
            RrsetId::tlsa(owner.clone()),
            ServedRrset {
                answer: if records.is_empty() {
                    AnswerKind::NxDomain
                } else {
                    AnswerKind::Positive
                },
                rrset: Rrset {
                    owner,
                    rtype: crate::dns::RrType::Tlsa,
                    ttl,
                    records,
                },
                ttl: TtlFacts {
                    rrset_ttl: ttl,
                    rrsig_original_ttl: ttl,
                    soa_ttl: Some(3600),
                    soa_minimum: Some(60),
                },
            },
        );
        Ok(Served {
            soa: Soa {
                serial,
                ttl: 3600,
                minimum: 60,
            },
            rrsets,
        })
    }

    fn observation(servers: Vec<(u8, Result<Served, ServerError>)>) -> Observation {
        Observation {
            zone: name("example."),
            servers: servers
                .into_iter()
                .map(|(last, result)| ServerObservation {
                    server: ServerAddr {
                        origin: if last == 9 {
                            Origin::Extra
                        } else {
                            Origin::Ns(name(&format!("ns{last}.example.")))
                        },
                        addr: addr(last),
                    },
                    result,
                })
                .collect(),
            unresolved: Vec::new(),
        }
    }

    fn expected(records: &[TlsaRecord], min_serial: Option<u32>) -> Expected {
        Expected::tlsa(
            [(name(OWNER), records.iter().cloned().collect())],
            min_serial,
        )
    }

    /// Replays scripted rounds (the last one repeats); each round "takes" 10 ms.
    struct Script<'a> {
        clock: &'a ManualClock,
        rounds: Mutex<Vec<Observation>>,
        timeouts: Mutex<Vec<Duration>>,
    }

    impl<'a> Script<'a> {
        fn new(clock: &'a ManualClock, rounds: Vec<Observation>) -> Self {
            Script {
                clock,
                rounds: Mutex::new(rounds),
                timeouts: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Observe for Script<'_> {
        async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation {
            assert_eq!(rrsets, &[RrsetId::tlsa(name(OWNER))]);
            self.timeouts.lock().unwrap().push(timeout);
            self.clock.advance(Duration::from_millis(10));
            let mut rounds = self.rounds.lock().unwrap();
            if rounds.len() > 1 {
                rounds.remove(0)
            } else {
                rounds[0].clone()
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn completes_when_every_address_serves_the_expected_rrset() {
        let clock = ManualClock::default();
        let start = clock.now();
        let new = [rec(2)];
        let lagging = observation(vec![(1, served(7, &new)), (2, served(6, &[rec(1)]))]);
        let done = observation(vec![(1, served(7, &new)), (2, served(7, &new))]);
        let script = Script::new(&clock, vec![lagging.clone(), lagging, done.clone()]);
        let result = wait_until_propagated(
            &script,
            &clock,
            &expected(&new, Some(7)),
            start + Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(result.rounds, 3);
        assert_eq!(result.observation, done);
        // Rounds of 10 ms, pauses 100 ms then 150 ms: seen complete at the end of round 3.
        assert_eq!(result.at, start + ms(10 + 100 + 10 + 150 + 10));
        assert_eq!(clock.sleeps(), vec![ms(100), ms(150)]);
    }

    #[tokio::test]
    async fn backs_off_by_half_up_to_two_seconds_and_never_sleeps_past_the_deadline() {
        let clock = ManualClock::default();
        let start = clock.now();
        let lagging = observation(vec![(1, served(6, &[rec(1)]))]);
        let script = Script::new(&clock, vec![lagging]);
        let deadline = start + Duration::from_secs(10);
        let err = wait_until_propagated(&script, &clock, &expected(&[rec(2)], None), deadline)
            .await
            .unwrap_err();
        let sleeps = clock.sleeps();
        let micros = [
            100_000, 150_000, 225_000, 337_500, 506_250, 759_375, 1_139_062,
        ];
        let want: Vec<Duration> = micros.iter().map(|m| Duration::from_micros(*m)).collect();
        let got: Vec<Duration> = sleeps[..7]
            .iter()
            .map(|s| Duration::from_micros(s.as_micros() as u64))
            .collect();
        assert_eq!(got, want);
        assert!(sleeps.iter().all(|s| *s <= Duration::from_secs(2)));
        assert!(sleeps.contains(&Duration::from_secs(2)), "{sleeps:?}");
        // The last pause ends exactly at the deadline, then one last round runs.
        assert_eq!(clock.now(), deadline + ms(10));
        assert_eq!(err.rounds as usize, sleeps.len() + 1);
        assert_eq!(err.waited, Duration::from_secs(10) + ms(10));
        // Questions never get more time than remains (but at least 250 ms).
        let timeouts = script.timeouts.lock().unwrap().clone();
        assert_eq!(timeouts[0], Duration::from_secs(10));
        assert_eq!(*timeouts.last().unwrap(), ms(250));
    }

    #[tokio::test]
    async fn a_past_deadline_still_makes_one_round() {
        let clock = ManualClock::default();
        let new = [rec(2)];
        let script = Script::new(&clock, vec![observation(vec![(1, served(7, &new))])]);
        let ok = wait_until_propagated(&script, &clock, &expected(&new, None), clock.now() - ms(1))
            .await;
        assert_eq!(ok.unwrap().rounds, 1);
        assert!(clock.sleeps().is_empty());
    }

    #[tokio::test]
    async fn the_error_names_each_lagging_server_and_what_it_serves() {
        let clock = ManualClock::default();
        let new = [rec(2)];
        let last = observation(vec![
            (1, served(7, &new)),
            (2, served(6, &[rec(1)])),
            (
                9,
                Err(ServerError::Timeout {
                    question: "example. SOA".into(),
                    timeout: Duration::from_secs(1),
                }),
            ),
        ]);
        let script = Script::new(&clock, vec![last]);
        let deadline = clock.now() + Duration::from_secs(1);
        let err = wait_until_propagated(&script, &clock, &expected(&new, Some(7)), deadline)
            .await
            .unwrap_err();
        assert_eq!(err.lags.len(), 2);
        let text = err.to_string();
        assert!(text.contains("2 of 3 addresses lag"), "{text}");
        let lag2 = format!(
            "ns2.example. (192.0.2.2:53): serves serial 6 (expected 7 or later), {OWNER} TLSA [{}] TTL 300 (expected [{}])",
            rec(1),
            rec(2)
        );
        assert!(text.contains(&lag2), "{text}");
        assert!(
            text.contains("extra server 192.0.2.9:53: no answer to example. SOA within 1 s"),
            "{text}"
        );
        assert!(!text.contains("ns1.example."), "{text}");
    }

    #[test]
    fn expected_absence_is_met_by_nxdomain_and_nodata() {
        let absent = expected(&[], Some(7));
        assert!(observation(vec![(1, served(7, &[]))]).is_complete(&absent));
        assert!(!observation(vec![(1, served(7, &[rec(1)]))]).is_complete(&absent));
    }

    #[test]
    fn extra_records_or_missing_ones_are_lag() {
        let want = expected(&[rec(1), rec(2)], None);
        assert!(!observation(vec![(1, served(7, &[rec(1)]))]).is_complete(&want));
        assert!(!observation(vec![(1, served(7, &[rec(1), rec(2), rec(3)]))]).is_complete(&want));
        assert!(observation(vec![(1, served(7, &[rec(2), rec(1)]))]).is_complete(&want));
    }

    #[test]
    fn no_servers_or_unresolved_ns_names_never_complete() {
        let want = expected(&[rec(1)], None);
        assert!(!observation(vec![]).is_complete(&want));
        let mut obs = observation(vec![(1, served(7, &[rec(1)]))]);
        obs.unresolved.push(Unresolved {
            name: name("ns.elsewhere."),
            why: "NXDOMAIN".into(),
        });
        let lags = obs.lags(&want);
        assert_eq!(lags.len(), 1);
        assert_eq!(
            lags[0].to_string(),
            "NS ns.elsewhere. has no address (NXDOMAIN)"
        );
    }

    #[test]
    fn durations_read_in_seconds_to_the_millisecond() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_nanos(342_424_925)), "0.342 s");
        assert_eq!(seconds(Duration::from_millis(2_030)), "2.03 s");
    }

    #[test]
    fn serials_compare_with_rfc_1982_arithmetic() {
        assert!(serial_at_least(7, 7));
        assert!(serial_at_least(8, 7));
        assert!(!serial_at_least(6, 7));
        // Wrapped around: 5 comes after 4294967290.
        assert!(serial_at_least(5, u32::MAX - 5));
        assert!(!serial_at_least(u32::MAX - 5, 5));
    }
}
