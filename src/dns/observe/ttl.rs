//! How long caches may hold a TLSA RRset (or its absence), and from that the
//! earliest instant a new key may go live: `t_safe` (docs/design.md §1).
//!
//! The facts come from the direct queries [`propagation`](super::propagation)
//! makes to every authoritative address (nothing is queried twice); the
//! arithmetic ([`t_safe`], [`cache_bound`]) is pure.
//!
//! A validating resolver may keep:
//! - the old RRset for its TTL (the TTL it was served with);
//! - the new RRset for its TTL, or for the RRSIG's original TTL if that is
//!   longer (RFC 4035 §5.3.3 lets a validator use the original TTL);
//! - a negative answer (NXDOMAIN/NODATA, and NSEC records it may use
//!   aggressively, RFC 8198) for min(SOA TTL, SOA MINIMUM) (RFC 2308 §5,
//!   RFC 9077) — this matters only when the RRset did not exist before.
//!
//! so `t_safe = t_propagated + max(those) + margin`.

use std::fmt;
use std::time::{Duration, SystemTime};

/// What an RRset of one owner looks like on one authoritative server, as far
/// as caching goes. Values are seconds; `None` when not applicable (no RRset,
/// unsigned) or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtlFacts {
    /// The TTL the RRset is served with; `None` when the RRset does not exist.
    pub rrset_ttl: Option<u32>,
    /// The longest original TTL among the RRSIGs covering the RRset.
    pub rrsig_original_ttl: Option<u32>,
    /// The TTL of the zone's SOA record.
    pub soa_ttl: Option<u32>,
    /// The SOA MINIMUM field.
    pub soa_minimum: Option<u32>,
}

impl TtlFacts {
    /// How long a negative answer may be cached: min(SOA TTL, SOA MINIMUM)
    /// (RFC 2308 §5, RFC 9077 §3); one of them alone when only it is known.
    pub fn negative_ttl(&self) -> Option<u32> {
        match (self.soa_ttl, self.soa_minimum) {
            (Some(ttl), Some(minimum)) => Some(ttl.min(minimum)),
            (one, other) => one.or(other),
        }
    }

    /// The worst case of two servers' facts: the longest of each value.
    pub fn longest(self, other: TtlFacts) -> TtlFacts {
        TtlFacts {
            rrset_ttl: max_opt(self.rrset_ttl, other.rrset_ttl),
            rrsig_original_ttl: max_opt(self.rrsig_original_ttl, other.rrsig_original_ttl),
            soa_ttl: max_opt(self.soa_ttl, other.soa_ttl),
            soa_minimum: max_opt(self.soa_minimum, other.soa_minimum),
        }
    }
}

fn max_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (one, other) => one.or(other),
    }
}

impl fmt::Display for TtlFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| format!("{v} s"));
        write!(
            f,
            "RRset TTL {}, RRSIG original TTL {}, SOA TTL {}, SOA MINIMUM {} (negative TTL {})",
            show(self.rrset_ttl),
            show(self.rrsig_original_ttl),
            show(self.soa_ttl),
            show(self.soa_minimum),
            show(self.negative_ttl())
        )
    }
}

/// Which term decided the cache bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// The TTL of the RRset before the change.
    OldRrsetTtl,
    /// The TTL of the RRset as served now.
    NewRrsetTtl,
    /// The original TTL in the RRSIG over the RRset.
    RrsigOriginalTtl,
    /// min(SOA TTL, SOA MINIMUM): a cached "no such RRset".
    NegativeTtl,
    /// The RRset did not exist before and the SOA was not observed: the
    /// longest negative caching common resolvers allow (BIND's default
    /// `max-ncache-ttl`, 3 h) stands in for it.
    NegativeTtlUnknown,
    /// Nothing could have been cached (every term is 0 or absent).
    Nothing,
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Term::OldRrsetTtl => "the old RRset's TTL",
            Term::NewRrsetTtl => "the new RRset's TTL",
            Term::RrsigOriginalTtl => "the RRSIG original TTL",
            Term::NegativeTtl => "the negative TTL min(SOA TTL, SOA MINIMUM)",
            Term::NegativeTtlUnknown => "the longest usual negative caching (SOA not observed)",
            Term::Nothing => "nothing cacheable",
        })
    }
}

/// Stand-in for an unknown negative TTL: BIND's default `max-ncache-ttl`
/// (10800 s), longer than unbound's `cache-max-negative-ttl` (3600 s).
pub const UNKNOWN_NEGATIVE_TTL: u32 = 10_800;

/// How long any cache may still hold an RRset that is no longer served, and
/// which term says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBound {
    pub seconds: u32,
    pub term: Term,
}

impl fmt::Display for CacheBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s ({})", self.seconds, self.term)
    }
}

/// `max(TTL_old, TTL_new, RRSIG original TTL, negative TTL if the RRset did
/// not exist before)`, with the term that reached it (the first listed wins
/// a tie). `old_rrset_ttl` is the TTL the RRset had before the change;
/// `new` is the worst case observed after it ([`TtlFacts::longest`] over the servers).
pub fn cache_bound(
    old_rrset_ttl: Option<u32>,
    new: &TtlFacts,
    rrset_existed_before: bool,
) -> CacheBound {
    let negative = if rrset_existed_before {
        None
    } else {
        Some(match new.negative_ttl() {
            Some(ttl) => (ttl, Term::NegativeTtl),
            None => (UNKNOWN_NEGATIVE_TTL, Term::NegativeTtlUnknown),
        })
    };
    let terms = [
        old_rrset_ttl.map(|t| (t, Term::OldRrsetTtl)),
        new.rrset_ttl.map(|t| (t, Term::NewRrsetTtl)),
        new.rrsig_original_ttl.map(|t| (t, Term::RrsigOriginalTtl)),
        negative,
    ];
    let mut bound = CacheBound {
        seconds: 0,
        term: Term::Nothing,
    };
    for (seconds, term) in terms.into_iter().flatten() {
        if seconds > bound.seconds || (bound.term == Term::Nothing && seconds > 0) {
            bound = CacheBound { seconds, term };
        }
    }
    bound
}

/// How much longer than its TTL a resolver may keep an answer: resolvers
/// count time in whole seconds (unbound stores `now + TTL` with `now` its
/// clock in seconds and serves the entry while `now <= expiry`), so an
/// answer cached at 10.0 s with TTL 2 may still be served at 12.99 s. The
/// lab's safety probe sees exactly this overshoot with 2 s TTLs.
pub const RESOLVER_CLOCK_GRANULARITY: Duration = Duration::from_secs(1);

/// The earliest instant a key matched only by the new RRset may go live:
/// `t_propagated + max(TTL_old, TTL_new, RRSIG original TTL, negative TTL if
/// the RRset did not exist before) + resolver clock granularity + margin`
/// (docs/design.md §1). Pure.
pub fn t_safe(
    t_propagated: SystemTime,
    old_rrset_ttl: Option<u32>,
    new: &TtlFacts,
    rrset_existed_before: bool,
    margin: Duration,
) -> SystemTime {
    let bound = cache_bound(old_rrset_ttl, new, rrset_existed_before);
    t_propagated
        + Duration::from_secs(u64::from(bound.seconds))
        + RESOLVER_CLOCK_GRANULARITY
        + margin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn facts(rrset: Option<u32>, rrsig: Option<u32>, soa_ttl: u32, minimum: u32) -> TtlFacts {
        TtlFacts {
            rrset_ttl: rrset,
            rrsig_original_ttl: rrsig,
            soa_ttl: Some(soa_ttl),
            soa_minimum: Some(minimum),
        }
    }

    const MARGIN: Duration = Duration::from_secs(5);

    #[test]
    fn negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() {
        assert_eq!(facts(None, None, 3600, 300).negative_ttl(), Some(300));
        assert_eq!(facts(None, None, 60, 86400).negative_ttl(), Some(60));
        let only_minimum = TtlFacts {
            soa_minimum: Some(42),
            ..TtlFacts::default()
        };
        assert_eq!(only_minimum.negative_ttl(), Some(42));
        assert_eq!(TtlFacts::default().negative_ttl(), None);
    }

    #[test]
    fn old_rrset_ttl_dominates() {
        let new = facts(Some(300), Some(300), 3600, 600);
        let bound = cache_bound(Some(86400), &new, true);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 86400,
                term: Term::OldRrsetTtl
            }
        );
        assert_eq!(
            t_safe(at(1000), Some(86400), &new, true, MARGIN),
            at(1000 + 86400 + 5) + RESOLVER_CLOCK_GRANULARITY
        );
    }

    #[test]
    fn new_rrset_ttl_dominates() {
        let new = facts(Some(7200), Some(3600), 3600, 600);
        let bound = cache_bound(Some(300), &new, true);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 7200,
                term: Term::NewRrsetTtl
            }
        );
        assert_eq!(
            t_safe(at(0), Some(300), &new, true, MARGIN),
            at(7205) + RESOLVER_CLOCK_GRANULARITY
        );
    }

    #[test]
    fn rrsig_original_ttl_dominates() {
        // A signer that signed with a longer TTL than the one served: a
        // validator may keep the RRset for the original TTL.
        let new = facts(Some(300), Some(3600), 600, 600);
        let bound = cache_bound(Some(300), &new, true);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 3600,
                term: Term::RrsigOriginalTtl
            }
        );
        assert_eq!(
            t_safe(at(10), Some(300), &new, true, Duration::ZERO),
            at(3610) + RESOLVER_CLOCK_GRANULARITY
        );
    }

    #[test]
    fn negative_ttl_dominates_when_the_rrset_did_not_exist_before() {
        let new = facts(Some(300), Some(300), 7200, 3600);
        let bound = cache_bound(None, &new, false);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 3600,
                term: Term::NegativeTtl
            }
        );
        assert_eq!(
            t_safe(at(0), None, &new, false, MARGIN),
            at(3605) + RESOLVER_CLOCK_GRANULARITY
        );
    }

    #[test]
    fn negative_ttl_is_ignored_when_the_rrset_existed_before() {
        let new = facts(Some(300), Some(300), 7200, 3600);
        let bound = cache_bound(Some(300), &new, true);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 300,
                term: Term::OldRrsetTtl
            }
        );
    }

    #[test]
    fn negative_ttl_uses_the_soa_ttl_when_it_is_below_minimum() {
        let new = facts(Some(30), Some(30), 120, 86400);
        assert_eq!(
            cache_bound(None, &new, false),
            CacheBound {
                seconds: 120,
                term: Term::NegativeTtl
            }
        );
    }

    #[test]
    fn unknown_negative_ttl_falls_back_to_a_long_bound() {
        let new = TtlFacts {
            rrset_ttl: Some(300),
            ..TtlFacts::default()
        };
        assert_eq!(
            cache_bound(None, &new, false),
            CacheBound {
                seconds: UNKNOWN_NEGATIVE_TTL,
                term: Term::NegativeTtlUnknown
            }
        );
    }

    #[test]
    fn margin_is_added_and_ties_go_to_the_first_term() {
        let new = facts(Some(300), Some(300), 300, 300);
        let bound = cache_bound(Some(300), &new, false);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 300,
                term: Term::OldRrsetTtl
            }
        );
        let t = t_safe(at(100), Some(300), &new, false, Duration::from_millis(1500));
        assert_eq!(
            t,
            at(400) + RESOLVER_CLOCK_GRANULARITY + Duration::from_millis(1500)
        );
    }

    #[test]
    fn nothing_cacheable_is_t_propagated_plus_granularity_and_margin() {
        let bound = cache_bound(None, &TtlFacts::default(), true);
        assert_eq!(
            bound,
            CacheBound {
                seconds: 0,
                term: Term::Nothing
            }
        );
        assert_eq!(
            t_safe(at(50), None, &TtlFacts::default(), true, MARGIN),
            at(55) + RESOLVER_CLOCK_GRANULARITY
        );
    }

    #[test]
    fn worst_case_of_two_servers_takes_the_longest_of_each() {
        let a = facts(Some(300), Some(600), 3600, 60);
        let b = facts(Some(900), Some(300), 60, 3600);
        let worst = a.longest(b);
        assert_eq!(worst, facts(Some(900), Some(600), 3600, 3600));
        assert_eq!(a.longest(TtlFacts::default()), a);
    }
}
