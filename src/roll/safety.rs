//! The safety bookkeeping behind `safe_at`: what caches may still hold
//! from before a change (the longest TTL, a TTL lowered recently, an RRset
//! that did not exist), recorded when a key is published, and the instant
//! the key becomes safe once every server serves it. Pure functions of the
//! set's state, what was observed and the time, so that each rule is tested
//! on its own; the executor calls them around its DNS work.

use std::time::{Duration, SystemTime};

use std::collections::BTreeSet;

use super::plan::KeyMaterial;
use super::policy::RecordPolicy;
use super::state::{KeyState, SetState, Timestamp, TtlHold};
use crate::dns::observe::propagation;
use crate::dns::observe::ttl::{self, TtlFacts};
use crate::dns::rrset::rdata_of;
use crate::tlsa::TlsaRecord;

/// What caches may hold from before a change, as the RRsets were observed
/// just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Before {
    /// The longest TTL any of the set's RRsets is served with.
    pub longest_ttl: Option<u32>,
    /// Some owner has no RRset: negative answers may be cached.
    pub absent: bool,
}

/// Remembers a TTL a change is about to lower (`served` is the longest
/// served now, `new` the change's): caches may hold the RRsets with the old,
/// longer TTL. Called before the change is sent, so that a change applied
/// but not confirmed (a lost answer, a failure between the messages of a
/// large change) still counts with it. A hold only grows; an expired one is
/// dropped.
pub fn hold_lowered_ttl(
    hold: &mut Option<TtlHold>,
    served: Option<u32>,
    new: Option<u32>,
    now: Timestamp,
    propagation_timeout: Duration,
) {
    if hold.as_ref().is_some_and(|h| h.confirmed && h.until <= now) {
        *hold = None;
    }
    let (Some(old), Some(new)) = (served, new) else {
        return;
    };
    if old <= new {
        return;
    }
    // Counted from now, plus the longest a propagation may take: a lagging
    // server may hand out the old TTL until it catches up.
    let until = now + propagation_timeout + Duration::from_secs(u64::from(old));
    *hold = Some(match hold.take() {
        Some(held) => TtlHold {
            ttl: held.ttl.max(old),
            until: held.until.max(until),
            confirmed: false,
        },
        None => TtlHold {
            ttl: old,
            until,
            confirmed: false,
        },
    });
}

/// A propagation wait saw every server serve the current RRsets at
/// `propagated`: a held TTL now ends at most its length after that (caches
/// filled by a server that was late may hold the old TTL until then).
pub fn confirm_hold(hold: &mut Option<TtlHold>, propagated: SystemTime) {
    if let Some(held) = hold.as_mut().filter(|h| !h.confirmed) {
        let end = Timestamp::from_system_ceil(
            propagated + Duration::from_secs(u64::from(held.ttl)) + ttl::RESOLVER_CLOCK_GRANULARITY,
        );
        held.until = held.until.max(end);
        held.confirmed = true;
    }
}

/// The longest TTL a cache may hold an RRset of the set with now: what is
/// served, or a longer TTL lowered recently.
pub fn prior_ttl(hold: Option<&TtlHold>, served: Option<u32>, now: Timestamp) -> Option<u32> {
    let held = hold
        .filter(|h| !h.confirmed || h.until > now)
        .map(|h| h.ttl);
    served.max(held)
}

/// Records that `keys` now have records (published at `now`), with what
/// caches may hold from before. A key published before keeps the worst of
/// both: its `safe_at` may only move later. Its propagation is confirmed
/// again.
pub fn note_published(entry: &mut SetState, keys: &[KeyMaterial], before: Before, now: Timestamp) {
    let prior = prior_ttl(entry.ttl_hold.as_ref(), before.longest_ttl, now);
    for material in keys {
        let key = entry
            .keys
            .entry(material.id.clone())
            .or_insert_with(|| KeyState::new(&material.spki, now));
        key.published_at.get_or_insert(now);
        key.prior_ttl = key.prior_ttl.max(prior);
        key.prior_absent |= before.absent;
        key.propagated_at = None;
        key.safe_at = None;
    }
}

/// What propagation found, for [`mark_propagated`].
#[derive(Debug, Clone, Copy)]
pub struct Propagation {
    /// When every server was seen serving the change (`t_propagated`).
    pub at: SystemTime,
    /// The worst TTL facts across the servers and owners.
    pub facts: TtlFacts,
    /// The longest TTL caches may hold from before (see [`prior_ttl`]),
    /// assumed for a key tlsa finds published without having published it.
    pub prior_ttl: Option<u32>,
    pub margin: Duration,
}

/// Records when `key` (whose records every server serves) becomes safe. A
/// key tlsa did not publish (adopted: published before tlsa knew it, or
/// by hand) is assumed the worst about what caches held before: the longest
/// TTL and a negative answer. Rounded up to the millisecond, and never
/// before `propagated_at`.
pub fn mark_propagated(entry: &mut SetState, key: &KeyMaterial, found: &Propagation) {
    let at = Timestamp::from_system(found.at);
    let state = entry.keys.entry(key.id.clone()).or_insert_with(|| {
        let mut adopted = KeyState::new(&key.spki, at);
        adopted.prior_ttl = found.prior_ttl;
        adopted.prior_absent = true;
        adopted
    });
    let safe = ttl::t_safe(
        found.at,
        state.prior_ttl,
        &found.facts,
        !state.prior_absent,
        found.margin,
    );
    state.propagated_at = Some(at);
    state.safe_at = Some(Timestamp::from_system_ceil(safe).max(at));
}

/// Every record a set may have written at its owners: each `3 1 x` record
/// of every key its state knows (also keys on their way out, whose records
/// must be seen gone) and of `keys`, and its issuer records.
pub fn records_of_set(
    entry: &SetState,
    keys: &[KeyMaterial],
    issuer_records: &BTreeSet<TlsaRecord>,
) -> BTreeSet<TlsaRecord> {
    entry
        .keys
        .values()
        .filter_map(|k| hex::decode(&k.spki).ok())
        .chain(keys.iter().map(|k| k.spki.clone()))
        .flat_map(|spki| RecordPolicy::all_records_for_key(&spki))
        .chain(issuer_records.iter().cloned())
        .collect()
}

/// What every authoritative server must serve at an owner for the set's
/// change to count as propagated there: of the set's own records
/// (`records_of_set`), exactly those the primary holds — present or absent
/// as the primary has them — and nothing about anyone else's. Another
/// writer at the same owner (another set, another tlsa host, an operator)
/// may change the RRset during the wait; its records neither block the wait
/// nor count for a key. The key's own safety rests only on its records
/// being served everywhere, which this still requires.
pub fn propagation_want(
    primary: &BTreeSet<TlsaRecord>,
    own: &BTreeSet<TlsaRecord>,
) -> propagation::Want {
    propagation::Want::Holds {
        present: rdata_of(primary.intersection(own).cloned()),
        absent: rdata_of(own.difference(primary).cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    const TIMEOUT: Duration = Duration::from_secs(120);

    fn key(n: u8) -> KeyMaterial {
        KeyMaterial::from_spki(&[n; 16])
    }

    #[test]
    fn a_lowered_ttl_is_held_for_the_old_ttl_plus_the_propagation_timeout() {
        let mut hold = None;
        hold_lowered_ttl(&mut hold, Some(3600), Some(60), at(1000), TIMEOUT);
        assert_eq!(
            hold,
            Some(TtlHold {
                ttl: 3600,
                until: at(1000 + 120 + 3600),
                confirmed: false,
            })
        );
        assert_eq!(prior_ttl(hold.as_ref(), Some(60), at(2000)), Some(3600));
        assert_eq!(
            prior_ttl(hold.as_ref(), Some(60), at(1000 + 120 + 3600)),
            Some(3600),
            "not over while no propagation confirmed the new TTL"
        );
        confirm_hold(&mut hold, at(1010).to_system());
        assert_eq!(
            prior_ttl(hold.as_ref(), Some(60), at(1000 + 120 + 3600)),
            Some(60),
            "over once the old TTL has passed since it was served everywhere"
        );
    }

    #[test]
    fn a_server_that_catches_up_late_extends_the_hold() {
        let mut hold = None;
        hold_lowered_ttl(
            &mut hold,
            Some(86_400),
            Some(300),
            at(1000),
            Duration::from_secs(20),
        );
        // The last secondary serves the change half an hour later.
        confirm_hold(&mut hold, at(2800).to_system());
        let held = hold.unwrap();
        assert!(held.confirmed);
        assert_eq!(held.until, at(2800 + 86_400 + 1));
    }

    #[test]
    fn a_hold_only_grows_and_an_expired_one_is_dropped() {
        let mut hold = Some(TtlHold {
            ttl: 7200,
            until: at(50_000),
            confirmed: true,
        });
        hold_lowered_ttl(&mut hold, Some(3600), Some(60), at(1000), TIMEOUT);
        assert_eq!(
            hold,
            Some(TtlHold {
                ttl: 7200,
                until: at(50_000),
                confirmed: false,
            }),
            "neither the TTL nor the end moves earlier"
        );
        confirm_hold(&mut hold, at(1001).to_system());
        hold_lowered_ttl(&mut hold, Some(60), Some(60), at(60_000), TIMEOUT);
        assert_eq!(hold, None, "expired, and nothing lowered now");
    }

    #[test]
    fn raising_or_keeping_the_ttl_holds_nothing() {
        let mut hold = None;
        hold_lowered_ttl(&mut hold, Some(60), Some(3600), at(1000), TIMEOUT);
        hold_lowered_ttl(&mut hold, Some(60), Some(60), at(1000), TIMEOUT);
        hold_lowered_ttl(&mut hold, None, Some(60), at(1000), TIMEOUT);
        assert_eq!(hold, None);
    }

    #[test]
    fn a_key_published_twice_keeps_the_worst_of_both() {
        let mut entry = SetState::default();
        let before = Before {
            longest_ttl: Some(3600),
            absent: true,
        };
        note_published(&mut entry, &[key(1)], before, at(1000));
        let state = &entry.keys[&key(1).id];
        assert_eq!((state.prior_ttl, state.prior_absent), (Some(3600), true));
        entry.keys.get_mut(&key(1).id).unwrap().safe_at = Some(at(5000));
        let later = Before {
            longest_ttl: Some(60),
            absent: false,
        };
        note_published(&mut entry, &[key(1)], later, at(2000));
        let state = &entry.keys[&key(1).id];
        assert_eq!((state.prior_ttl, state.prior_absent), (Some(3600), true));
        assert_eq!(state.published_at, Some(at(1000)), "first publication kept");
        assert_eq!(state.safe_at, None, "propagation is confirmed again");
    }

    #[test]
    fn a_key_published_after_a_lowered_ttl_waits_for_the_old_one() {
        let mut entry = SetState::default();
        hold_lowered_ttl(&mut entry.ttl_hold, Some(3600), Some(60), at(1000), TIMEOUT);
        let served_now = Before {
            longest_ttl: Some(60),
            absent: false,
        };
        note_published(&mut entry, &[key(2)], served_now, at(1010));
        assert_eq!(entry.keys[&key(2).id].prior_ttl, Some(3600));
    }

    fn propagation(at_secs: u64, prior_ttl: Option<u32>) -> Propagation {
        Propagation {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_secs) + Duration::from_micros(300),
            facts: TtlFacts {
                rrset_ttl: Some(60),
                rrsig_original_ttl: Some(60),
                soa_ttl: Some(30),
                soa_minimum: Some(30),
            },
            prior_ttl,
            margin: Duration::from_secs(5),
        }
    }

    #[test]
    fn safe_at_waits_for_the_longest_cache_and_is_rounded_up() {
        let mut entry = SetState::default();
        let before = Before {
            longest_ttl: Some(300),
            absent: false,
        };
        note_published(&mut entry, &[key(1)], before, at(1000));
        mark_propagated(&mut entry, &key(1), &propagation(1002, None));
        let state = &entry.keys[&key(1).id];
        // 1002.0003 + 300 (old TTL) + 1 (clock granularity) + 5 (margin), rounded up.
        assert_eq!(state.safe_at, Some(Timestamp::from_unix_ms(1_308_001)));
        assert_eq!(
            state.propagated_at,
            Some(Timestamp::from_unix_ms(1_002_000))
        );
    }

    #[test]
    fn an_adopted_key_assumes_a_cached_negative_answer_and_the_longest_ttl() {
        let mut entry = SetState::default();
        mark_propagated(&mut entry, &key(7), &propagation(1000, Some(10)));
        let state = &entry.keys[&key(7).id];
        assert!(state.prior_absent);
        // max(prior 10, new 60, RRSIG 60, negative 30) + 1 + 5.
        assert_eq!(state.safe_at, Some(Timestamp::from_unix_ms(1_066_001)));
    }

    #[test]
    fn a_wait_requires_the_sets_own_records_as_the_primary_has_them_and_ignores_others() {
        let mut entry = SetState::default();
        note_published(&mut entry, &[key(1)], Before::default(), at(1));
        let issuer = BTreeSet::from([TlsaRecord::compute(
            crate::tlsa::Usage::DaneTa,
            crate::tlsa::Selector::Spki,
            crate::tlsa::Matching::Sha256,
            b"issuer",
        )]);
        let own = records_of_set(&entry, &[key(2)], &issuer);
        // Every 3 1 x record of both keys (all three matching types), and
        // the issuer's.
        assert_eq!(own.len(), 7);
        let policy = RecordPolicy::default();
        let (one, two) = (
            policy.records_for_key(&key(1).spki),
            policy.records_for_key(&key(2).spki),
        );
        let theirs = TlsaRecord::compute(
            crate::tlsa::Usage::DaneEe,
            crate::tlsa::Selector::Spki,
            crate::tlsa::Matching::Sha256,
            b"another writer",
        );
        // The primary holds key 1's record and another writer's.
        let primary: BTreeSet<TlsaRecord> = one.iter().cloned().chain([theirs.clone()]).collect();
        let want = propagation_want(&primary, &own);
        let served = |records: &[&BTreeSet<TlsaRecord>]| {
            rdata_of(records.iter().flat_map(|r| r.iter().cloned()))
        };
        assert!(
            want.is_met_by(&served(&[&one])),
            "their record not waited for"
        );
        let other = BTreeSet::from([theirs]);
        assert!(want.is_met_by(&served(&[&one, &other])));
        assert!(
            !want.is_met_by(&served(&[&other])),
            "key 1's record missing"
        );
        assert!(
            !want.is_met_by(&served(&[&one, &two])),
            "key 2's record, absent on the primary, still served"
        );
    }
}
