//! Publishing an RRset a feature owns whole — the MTA-STS `_mta-sts` TXT
//! record, the TLS-RPT `_smtp._tls` record, an ACME `_acme-challenge`
//! record, a managed MX list — the way the roll engine publishes TLSA
//! records: only into a zone that validates as Secure, with compare-and-swap
//! through the zone's back-end, then confirmed on every authoritative
//! server, then validated again. What the caller learns ([`Confirmed`]) is
//! what its waits need: when every server served the new content, and how
//! long a cache may still hold what was there before.
//!
//! Two ways to say what to publish: [`Owned`] (the whole content, for
//! RRsets nobody else writes) and [`Edit`]s of records to add and remove
//! ([`Publication::publish_edits`], for RRsets others write too: the
//! `_mta-sts` TXT name, a domain's MX list). An edit is re-planned inside
//! the compare-and-swap loop, so a record another writer put there between
//! the read and the swap is kept, not overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use hickory_proto::rr::Name;

use crate::clock::Clock;
use crate::dns::DnsError;
use crate::dns::observe::dnssec::{ValidateRrsets, Validation};
use crate::dns::observe::propagation::{self, Expected, FindServers, NotPropagated, Want};
use crate::dns::observe::ttl::TtlFacts;
use crate::dns::publish::provider::{Edit, Provider, apply_edits_known, read_rrsets};
use crate::dns::rrset::{Rdata, Rrset, RrsetId, Txt};
use futures_util::StreamExt;

/// The whole content one RRset must have (no records: it must not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub id: RrsetId,
    pub records: BTreeSet<Rdata>,
    pub ttl: u32,
}

impl Owned {
    pub fn new(id: RrsetId, records: impl IntoIterator<Item = Rdata>, ttl: u32) -> Self {
        Owned {
            id,
            records: records.into_iter().collect(),
            ttl,
        }
    }

    /// The RRset `id` removed.
    pub fn absent(id: RrsetId) -> Self {
        Owned::new(id, [], 0)
    }
}

/// `rrset`'s records with every TXT record whose text begins with `tag`
/// replaced by `record` (none when `None`), the others kept: the shape of
/// the TXT records MTA-STS (`v=STSv1`) and TLS-RPT (`v=TLSRPTv1`) own,
/// where exactly one record may carry the tag (more than one and senders
/// ignore them all) but unrelated TXT records at the name are someone
/// else's (RFC 8461 §3.1, RFC 8460 §3).
pub fn replace_tagged_txt(rrset: &Rrset, tag: &str, record: Option<Txt>) -> Vec<Rdata> {
    let tagged = |r: &Rdata| r.as_txt().is_some_and(|t| t.text().starts_with(tag));
    let kept = rrset.records.iter().filter(|r| !tagged(r)).cloned();
    kept.chain(record.map(Rdata::Txt)).collect()
}

/// The edit that turns `before` (as read) into `after`: the records to add
/// and to remove, so that a record another writer adds meanwhile is kept.
pub fn edit_from(before: &Rrset, after: impl IntoIterator<Item = Rdata>, ttl: u32) -> Edit {
    let after: BTreeSet<Rdata> = after.into_iter().collect();
    Edit::change(
        before.id(),
        after.difference(&before.records).cloned(),
        before.records.difference(&after).cloned(),
        ttl,
    )
}

/// What a publication established.
#[derive(Debug, Clone)]
pub struct Confirmed {
    /// Whether a change was sent (false: the zone already held it).
    pub changed: bool,
    /// When every authoritative server was first seen serving the content.
    pub at: SystemTime,
    /// Per RRset, as read before the change: what caches may still hold.
    pub before: Vec<Rrset>,
    /// Per RRset, the worst TTL facts over the servers after the change.
    pub ttl: BTreeMap<RrsetId, TtlFacts>,
    /// The validations after the change, in the order of the RRset ids.
    pub validations: Vec<Validation>,
}

impl Confirmed {
    /// The longest TTL any RRset had before the change: a cache that
    /// fetched the old content just before `at` may keep it this long.
    pub fn longest_ttl_before(&self) -> u32 {
        self.before.iter().filter_map(|r| r.ttl).max().unwrap_or(0)
    }
}

/// Why nothing was published, or why a publication is not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{id}: {validation}; tlsa only publishes into zones that validate as Secure: sign zone {zone} and publish its DS"
    )]
    Insecure {
        zone: Name,
        id: RrsetId,
        validation: Box<Validation>,
    },
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    NotPropagated(#[from] Box<NotPropagated>),
    #[error(
        "{id}: the change was applied, but the zone's primary no longer holds it: another writer changed this RRset right after; nothing further was done, run again"
    )]
    Undone { id: RrsetId },
}

/// The zone a publication goes to and everything it needs.
pub struct Publication<'a> {
    pub zone: &'a Name,
    pub provider: &'a dyn Provider,
    pub servers: &'a dyn FindServers,
    pub validator: &'a dyn ValidateRrsets,
    pub clock: &'a dyn Clock,
    /// How long every server may take to serve the change.
    pub timeout: Duration,
    /// Told which servers lag, once a wait is longer than a second.
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
}

impl Publication<'_> {
    /// Makes every RRset of `owned` hold exactly its records: refused
    /// unless each validates as Secure now; one change set (atomic on every
    /// back-end) re-planned on conflict; then confirmed on every
    /// authoritative server and validated Secure again.
    pub async fn publish(&self, owned: &[Owned]) -> Result<Confirmed, PublishError> {
        self.require_secure(owned).await?;
        let before = self.read(owned).await?;
        let edits: Vec<Edit> = owned
            .iter()
            .map(|o| Edit::replace(o.id.clone(), o.records.iter().cloned(), o.ttl))
            .collect();
        let applied = apply_edits_known(self.provider, self.zone, &edits, &before).await?;
        let mut confirmed = self.confirm(owned, applied.and_then(|a| a.serial)).await?;
        confirmed.changed = applied.is_some();
        confirmed.before = before;
        Ok(confirmed)
    }

    /// Applies `edits` (records to add and to remove, never `replace_all`)
    /// with compare-and-swap, re-planned on conflict so that what another
    /// writer put there meanwhile is kept; then confirms on every
    /// authoritative server that every record added is served and none
    /// removed. What else the RRsets hold is another writer's, and may
    /// change while the wait runs.
    pub async fn publish_edits(&self, edits: &[Edit]) -> Result<Confirmed, PublishError> {
        let ids: Vec<Owned> = edits.iter().map(|e| Owned::absent(e.id())).collect();
        self.require_secure(&ids).await?;
        let before = self.read(&ids).await?;
        let applied = apply_edits_known(self.provider, self.zone, edits, &before).await?;
        let after = self.read(&ids).await?;
        for (edit, now) in edits.iter().zip(&after) {
            let missing = edit.add.iter().any(|r| !now.records.contains(r));
            let kept = edit.remove.iter().any(|r| now.records.contains(r));
            if missing || kept {
                return Err(PublishError::Undone { id: edit.id() });
            }
        }
        let expected = Expected {
            rrsets: edits
                .iter()
                .map(|edit| {
                    let want = Want::Holds {
                        present: edit.add.iter().cloned().collect(),
                        absent: edit.remove.iter().cloned().collect(),
                    };
                    (edit.id(), want)
                })
                .collect(),
            min_serial: applied.and_then(|a| a.serial),
        };
        let mut confirmed = self.await_served(&expected).await?;
        confirmed.changed = applied.is_some();
        confirmed.before = before;
        Ok(confirmed)
    }

    /// Without changing anything: every authoritative server serves
    /// exactly `owned`, and it validates as Secure.
    pub async fn confirm(
        &self,
        owned: &[Owned],
        min_serial: Option<u32>,
    ) -> Result<Confirmed, PublishError> {
        let expected = Expected::exactly(
            owned.iter().map(|o| (o.id.clone(), o.records.clone())),
            min_serial,
        );
        self.await_served(&expected).await
    }

    /// Every authoritative server serves `expected`, and it validates as
    /// Secure.
    async fn await_served(&self, expected: &Expected) -> Result<Confirmed, PublishError> {
        let servers = self.servers.find().await?;
        let report = |lags: &[propagation::Lag]| {
            let lines: Vec<String> = lags.iter().map(ToString::to_string).collect();
            (self.progress)(&format!(
                "waiting for zone {} on {} address(es):\n    {}",
                self.zone,
                lags.len(),
                lines.join("\n    ")
            ));
        };
        let deadline = self.clock.now() + self.timeout;
        let propagated =
            propagation::wait_reporting(servers.as_ref(), self.clock, expected, deadline, &report)
                .await
                .map_err(Box::new)?;
        let ids: Vec<Owned> = expected.ids().into_iter().map(Owned::absent).collect();
        let validations = self.require_secure(&ids).await?;
        Ok(Confirmed {
            changed: false,
            at: propagated.at,
            before: Vec::new(),
            ttl: propagation::worst_ttl_by_rrset(&propagated.observation),
            validations,
        })
    }

    async fn read(&self, owned: &[Owned]) -> Result<Vec<Rrset>, DnsError> {
        let reads = owned
            .iter()
            .enumerate()
            .map(|(i, o)| (i, self.provider, self.zone, o.id.clone()));
        let mut reads = std::pin::pin!(read_rrsets(reads));
        let mut read = vec![None; owned.len()];
        while let Some((index, rrset)) = reads.next().await {
            read[index] = Some(rrset?);
        }
        Ok(read.into_iter().flatten().collect())
    }

    async fn require_secure(&self, owned: &[Owned]) -> Result<Vec<Validation>, PublishError> {
        let ids: Vec<RrsetId> = owned.iter().map(|o| o.id.clone()).collect();
        let validations = self.validator.validate_all(&ids).await;
        for (id, validation) in ids.iter().zip(&validations) {
            if !validation.is_acceptable_for_changes() {
                return Err(PublishError::Insecure {
                    zone: self.zone.clone(),
                    id: id.clone(),
                    validation: Box::new(validation.clone()),
                });
            }
        }
        Ok(validations)
    }
}

#[cfg(test)]
mod tests {
    use crate::dns::test_values::name;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::clock::ManualClock;
    use crate::dns::observe::dnssec::Verdict;
    use crate::dns::observe::propagation::{
        Observation, Observe, Origin, Served, ServedRrset, ServerAddr, ServerObservation, Soa,
    };
    use crate::dns::publish::memory::MemoryZone;
    use crate::dns::rrset::RrType;

    fn zone() -> Name {
        name("example.test.")
    }

    fn sts(id: &str) -> Owned {
        Owned::new(
            RrsetId::new(name("_mta-sts.example.test."), RrType::Txt),
            [Rdata::Txt(Txt::from_text(&format!("v=STSv1; id={id}")))],
            2,
        )
    }

    /// One authoritative server serving what the memory zone holds, after
    /// `lag` observations.
    struct Serving {
        zone: Arc<MemoryZone>,
        lag: Mutex<u32>,
    }

    #[async_trait]
    impl Observe for Serving {
        async fn observe(&self, rrsets: &[RrsetId], _timeout: Duration) -> Observation {
            let mut current = Vec::new();
            for id in rrsets {
                current.push((id.clone(), self.zone.read(&zone(), id).await.unwrap()));
            }
            let served = {
                // A secondary not yet notified serves none of it.
                let mut lag = self.lag.lock().unwrap();
                if *lag > 0 {
                    *lag -= 1;
                    let nothing = |(id, _): (RrsetId, Rrset)| {
                        let empty = Rrset::empty(id.owner.clone(), id.rtype);
                        (id, empty)
                    };
                    current.into_iter().map(nothing).collect()
                } else {
                    current
                }
            };
            let rrsets = served
                .into_iter()
                .map(|(id, rrset)| (id, ServedRrset::signed(rrset, 1)))
                .collect();
            Observation {
                zone: zone(),
                servers: vec![ServerObservation {
                    server: ServerAddr {
                        origin: Origin::Extra,
                        addr: "192.0.2.53:53".parse().unwrap(),
                    },
                    result: Ok(Served {
                        soa: Soa {
                            serial: self.zone.serial(),
                            ttl: 1,
                            minimum: 1,
                        },
                        rrsets,
                    }),
                }],
                unresolved: Vec::new(),
            }
        }
    }

    struct Find(Arc<Serving>);

    #[async_trait]
    impl FindServers for Find {
        async fn find(&self) -> Result<Box<dyn Observe>, DnsError> {
            Ok(Box::new(Shared(self.0.clone())))
        }
    }

    struct Shared(Arc<Serving>);

    #[async_trait]
    impl Observe for Shared {
        async fn observe(&self, rrsets: &[RrsetId], timeout: Duration) -> Observation {
            self.0.observe(rrsets, timeout).await
        }
    }

    struct Verdicts(Verdict);

    #[async_trait]
    impl ValidateRrsets for Verdicts {
        async fn validate_all(&self, ids: &[RrsetId]) -> Vec<Validation> {
            ids.iter()
                .map(|id| Validation {
                    owner: id.owner.clone(),
                    verdict: self.0,
                    reason: "fake".into(),
                    answer: None,
                    rrset: Rrset::empty(id.owner.clone(), id.rtype),
                    method: "fake".into(),
                })
                .collect()
        }
    }

    struct World {
        memory: Arc<MemoryZone>,
        find: Find,
        clock: ManualClock,
    }

    fn world(lag: u32) -> World {
        let memory = Arc::new(MemoryZone::new(zone()));
        let serving = Arc::new(Serving {
            zone: memory.clone(),
            lag: Mutex::new(lag),
        });
        World {
            memory,
            find: Find(serving),
            clock: ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)),
        }
    }

    fn publication<'a>(w: &'a World, validator: &'a Verdicts) -> Publication<'a> {
        Publication {
            zone: Box::leak(Box::new(zone())),
            provider: w.memory.as_ref(),
            servers: &w.find,
            validator,
            clock: &w.clock,
            timeout: Duration::from_secs(30),
            progress: &|_| {},
        }
    }

    #[tokio::test]
    async fn replaces_the_whole_rrset_and_confirms_it_served() {
        let w = world(0);
        let secure = Verdicts(Verdict::Secure);
        let id = sts("a").id;
        let other = Rdata::Txt(Txt::from_text("v=STSv1; id=hand-made"));
        w.memory.put(id.clone(), 60, [other].into());
        let confirmed = publication(&w, &secure).publish(&[sts("b")]).await.unwrap();
        assert!(confirmed.changed);
        assert_eq!(confirmed.longest_ttl_before(), 60, "the old record's TTL");
        let now = w.memory.read(&zone(), &id).await.unwrap();
        assert_eq!(now.records, sts("b").records, "exactly one STS record");
        assert_eq!(confirmed.ttl[&id].rrset_ttl, Some(2));

        let again = publication(&w, &secure).publish(&[sts("b")]).await.unwrap();
        assert!(!again.changed, "nothing to change the second time");
        assert_eq!(w.memory.applied(), 1);
    }

    #[tokio::test]
    async fn a_lagging_server_delays_the_confirmation() {
        let w = world(3);
        let secure = Verdicts(Verdict::Secure);
        let started = w.clock.now();
        let confirmed = publication(&w, &secure).publish(&[sts("c")]).await.unwrap();
        assert!(
            confirmed.at > started,
            "confirmed only once the server caught up"
        );
    }

    #[tokio::test]
    async fn nothing_is_published_into_a_zone_that_is_not_secure() {
        for verdict in [Verdict::Insecure, Verdict::Bogus, Verdict::Indeterminate] {
            let w = world(0);
            let validator = Verdicts(verdict);
            let err = publication(&w, &validator)
                .publish(&[sts("d")])
                .await
                .unwrap_err();
            assert!(matches!(err, PublishError::Insecure { .. }), "{err}");
            assert!(
                err.to_string().contains("_mta-sts.example.test. TXT"),
                "{err}"
            );
            assert_eq!(w.memory.applied(), 0, "{verdict:?}: nothing written");
        }
    }

    #[tokio::test]
    async fn removal_is_confirmed_as_absence() {
        let w = world(0);
        let secure = Verdicts(Verdict::Secure);
        publication(&w, &secure).publish(&[sts("e")]).await.unwrap();
        let gone = publication(&w, &secure)
            .publish(&[Owned::absent(sts("e").id)])
            .await
            .unwrap();
        assert!(gone.changed);
        let now = w.memory.read(&zone(), &sts("e").id).await.unwrap();
        assert!(now.records.is_empty() && now.ttl.is_none());
    }

    /// When the other writer of a [`Meddling`] zone acts.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum After {
        /// tlsa's n-th read (from 1) has been answered.
        Read(u32),
        /// tlsa's change has been applied.
        Apply,
    }

    /// The other writer's move, after each of tlsa's reads and changes.
    type Meddle = Box<dyn Fn(After, &MemoryZone) + Send + Sync>;

    /// A zone with another writer: `meddle(event, zone)` runs after each of
    /// tlsa's reads and changes, so it can write between them.
    struct Meddling {
        memory: Arc<MemoryZone>,
        reads: Mutex<u32>,
        meddle: Meddle,
    }

    impl Meddling {
        fn new(
            memory: &Arc<MemoryZone>,
            meddle: impl Fn(After, &MemoryZone) + Send + Sync + 'static,
        ) -> Self {
            Meddling {
                memory: memory.clone(),
                reads: Mutex::new(0),
                meddle: Box::new(meddle),
            }
        }
    }

    #[async_trait]
    impl Provider for Meddling {
        fn describe(&self) -> String {
            self.memory.describe()
        }

        async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
            self.memory.zone_of(owner).await
        }

        async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
            let read = self.memory.read(zone, id).await;
            let n = {
                let mut reads = self.reads.lock().unwrap();
                *reads += 1;
                *reads
            };
            (self.meddle)(After::Read(n), &self.memory);
            read
        }

        async fn apply(
            &self,
            set: &crate::dns::publish::provider::ChangeSet,
        ) -> Result<crate::dns::publish::provider::Applied, DnsError> {
            let applied = self.memory.apply(set).await;
            if applied.is_ok() {
                (self.meddle)(After::Apply, &self.memory);
            }
            applied
        }
    }

    fn txt(text: &str) -> Rdata {
        Rdata::Txt(Txt::from_text(text))
    }

    /// tlsa's record before and after the change, and another writer's.
    fn old_new_theirs() -> (Rdata, Rdata, Rdata) {
        (
            txt("v=STSv1; id=old"),
            txt("v=STSv1; id=new"),
            txt("site-verification=theirs"),
        )
    }

    /// Adds `record` to the TXT RRset `id` of `memory`.
    fn add_to(memory: &MemoryZone, id: &RrsetId, record: Rdata) {
        let mut records = memory.records(id);
        records.insert(record);
        memory.put(id.clone(), 60, records);
    }

    #[tokio::test]
    async fn another_writer_during_the_wait_neither_stalls_it_nor_hides_a_lost_record() {
        let w = world(0);
        let secure = Verdicts(Verdict::Secure);
        let id = sts("a").id;
        let (old, new, theirs) = old_new_theirs();
        // The other writer adds its record after tlsa's read of the result,
        // as the servers are being watched.
        w.memory.put(id.clone(), 60, [old.clone()].into());
        let (target, record) = (id.clone(), theirs.clone());
        let meddling = Meddling::new(&w.memory, move |after: After, memory: &MemoryZone| {
            if after == After::Read(2) {
                add_to(memory, &target, record.clone());
            }
        });
        let publication = Publication {
            provider: &meddling,
            ..publication(&w, &secure)
        };
        let before = w.memory.read(&zone(), &id).await.unwrap();
        let edit = edit_from(&before, [new.clone()], 60);
        let confirmed = publication.publish_edits(std::slice::from_ref(&edit)).await;
        assert!(confirmed.is_ok(), "{confirmed:?}");
        assert_eq!(w.memory.records(&id), [new.clone(), theirs].into());

        // It removes tlsa's record instead: never confirmed.
        w.memory.put(id.clone(), 60, [old.clone()].into());
        let (target, ours) = (id.clone(), new.clone());
        let meddling = Meddling::new(&w.memory, move |after: After, memory: &MemoryZone| {
            if after == After::Read(2) {
                let mut records = memory.records(&target);
                records.remove(&ours);
                memory.put(target.clone(), 60, records);
            }
        });
        let publication = Publication {
            provider: &meddling,
            timeout: Duration::from_secs(3),
            ..self::publication(&w, &secure)
        };
        let lost = publication.publish_edits(&[edit]).await;
        assert!(
            matches!(lost, Err(PublishError::NotPropagated(_))),
            "{lost:?}"
        );
    }

    #[tokio::test]
    async fn an_edit_keeps_what_another_writer_added_between_the_read_and_the_swap() {
        let w = world(0);
        let secure = Verdicts(Verdict::Secure);
        let id = sts("a").id;
        let (old, new, theirs) = old_new_theirs();
        // The other writer adds its record right after tlsa's first read.
        let meddle = |target: RrsetId, record: Rdata| {
            move |after: After, memory: &MemoryZone| {
                if after == After::Read(1) {
                    add_to(memory, &target, record.clone());
                }
            }
        };
        w.memory.put(id.clone(), 60, [old.clone()].into());
        let meddling = Meddling::new(&w.memory, meddle(id.clone(), theirs.clone()));
        let publication = Publication {
            provider: &meddling,
            ..publication(&w, &secure)
        };
        let before = w.memory.read(&zone(), &id).await.unwrap();
        let edit = edit_from(&before, [new.clone()], 60);
        let confirmed = publication.publish_edits(&[edit]).await.unwrap();
        assert!(confirmed.changed);
        assert_eq!(
            w.memory.records(&id),
            [new.clone(), theirs.clone()].into(),
            "the other writer's record is kept"
        );

        // The same race with the whole content computed from the first read
        // (how the MTA-STS and TLS-RPT records were published before): lost.
        w.memory.put(id.clone(), 60, [old].into());
        let meddling = Meddling::new(&w.memory, meddle(id.clone(), theirs));
        let publication = Publication {
            provider: &meddling,
            ..self::publication(&w, &secure)
        };
        let whole = Owned::new(id.clone(), [new.clone()], 60);
        publication.publish(&[whole]).await.unwrap();
        assert_eq!(
            w.memory.records(&id),
            [new].into(),
            "a whole-content publication drops it"
        );
    }

    #[tokio::test]
    async fn an_edit_another_writer_undoes_at_once_is_an_error_not_a_wait() {
        let w = world(0);
        let secure = Verdicts(Verdict::Secure);
        let id = sts("a").id;
        let old = txt("v=STSv1; id=old");
        w.memory.put(id.clone(), 60, [old.clone()].into());
        let before = w.memory.read(&zone(), &id).await.unwrap();
        let edit = edit_from(&before, [txt("v=STSv1; id=ours")], 60);
        // The other writer puts the removed record back right after tlsa's change.
        let target = id.clone();
        let meddling = Meddling::new(&w.memory, move |after, memory| {
            if after == After::Apply {
                add_to(memory, &target, old.clone());
            }
        });
        let publication = Publication {
            provider: &meddling,
            ..publication(&w, &secure)
        };
        let err = publication.publish_edits(&[edit]).await.unwrap_err();
        assert!(matches!(err, PublishError::Undone { .. }), "{err}");
        assert!(err.to_string().contains("another writer"), "{err}");
    }
}
