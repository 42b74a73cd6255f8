//! The one interface every publishing back-end implements (RFC 2136,
//! provider HTTP APIs, zone files), and the compare-and-swap loop that
//! makes concurrent writers safe on all of them.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use hickory_proto::rr::Name;

use crate::dns::DnsError;
use crate::dns::rrset::{Rdata, RrType, Rrset, RrsetId, rdata_of, tlsa_of};
use crate::tlsa::TlsaRecord;

/// The new content of one RRset, conditional on its content as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsetChange {
    pub owner: Name,
    pub rtype: RrType,
    /// What was read: the write must fail if the RRset is no longer exactly this.
    pub expected: BTreeSet<Rdata>,
    /// What the RRset must hold afterwards (empty: delete it).
    pub desired: BTreeSet<Rdata>,
    pub ttl: u32,
}

impl RrsetChange {
    pub fn id(&self) -> RrsetId {
        RrsetId::new(self.owner.clone(), self.rtype)
    }

    pub fn to_remove(&self) -> impl Iterator<Item = &Rdata> {
        self.expected.difference(&self.desired)
    }

    pub fn to_add(&self) -> impl Iterator<Item = &Rdata> {
        self.desired.difference(&self.expected)
    }
}

/// Changes to several RRsets of one zone, applied all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub zone: Name,
    pub changes: Vec<RrsetChange>,
}

/// What a back-end knows after a successful change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The zone's SOA serial that includes the change, when the back-end knows it.
    pub serial: Option<u32>,
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// A short description for messages, e.g. `RFC 2136 at 192.0.2.1:53`.
    fn describe(&self) -> String;

    /// The zone that holds `owner`.
    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError>;

    /// The RRset `id` in `zone`, with its TTL.
    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError>;

    /// Applies every change of `set` atomically (one message or one API
    /// transaction). Fails with [`DnsError::Conflict`] when an RRset no
    /// longer matches its `expected` content, where the back-end can tell.
    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError>;
}

/// An intended edit of one RRset, re-applied to whatever is read: records
/// not named here (a concurrent writer's, or hand-made ones) survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub owner: Name,
    pub rtype: RrType,
    pub add: BTreeSet<Rdata>,
    pub remove: BTreeSet<Rdata>,
    /// Replace the whole RRset by `add` (for RRsets that tlsa fully manages).
    pub replace_all: bool,
    pub ttl: u32,
}

impl Edit {
    /// An edit of the TLSA RRset at `owner`.
    pub fn tlsa(
        owner: Name,
        add: impl IntoIterator<Item = TlsaRecord>,
        remove: impl IntoIterator<Item = TlsaRecord>,
        replace_all: bool,
        ttl: u32,
    ) -> Edit {
        Edit {
            owner,
            rtype: RrType::Tlsa,
            add: add.into_iter().map(Rdata::Tlsa).collect(),
            remove: remove.into_iter().map(Rdata::Tlsa).collect(),
            replace_all,
            ttl,
        }
    }

    /// Records added to and removed from the RRset `id`, whatever else it
    /// holds: an edit that keeps what others wrote there.
    pub fn change(
        id: RrsetId,
        add: impl IntoIterator<Item = Rdata>,
        remove: impl IntoIterator<Item = Rdata>,
        ttl: u32,
    ) -> Edit {
        Edit {
            owner: id.owner,
            rtype: id.rtype,
            add: add.into_iter().collect(),
            remove: remove.into_iter().collect(),
            replace_all: false,
            ttl,
        }
    }

    /// The RRset `id` made to hold exactly `records` (none: deleted), as
    /// the features that own a whole RRset publish it: the MTA-STS and
    /// TLS-RPT TXT records, a managed MX RRset, an ACME challenge.
    pub fn replace(id: RrsetId, records: impl IntoIterator<Item = Rdata>, ttl: u32) -> Edit {
        Edit {
            owner: id.owner,
            rtype: id.rtype,
            add: records.into_iter().collect(),
            remove: BTreeSet::new(),
            replace_all: true,
            ttl,
        }
    }

    pub fn id(&self) -> RrsetId {
        RrsetId::new(self.owner.clone(), self.rtype)
    }

    /// The TLSA records after this edit, given the TLSA records there now.
    pub fn tlsa_after(&self, current: &BTreeSet<TlsaRecord>) -> BTreeSet<TlsaRecord> {
        tlsa_of(&self.desired_from(&rdata_of(current.iter().cloned())))
    }

    /// The RRset content after this edit, given what is there now.
    pub fn desired_from(&self, current: &BTreeSet<Rdata>) -> BTreeSet<Rdata> {
        if self.replace_all {
            return self.add.clone();
        }
        current
            .difference(&self.remove)
            .chain(self.add.iter())
            .cloned()
            .collect()
    }
}

/// RRsets read at once from the primary / provider: a set may have many
/// endpoints, and a change many owners.
pub const READS_AT_ONCE: usize = 8;

/// Reads the RRsets named by `reads` — (a key of the caller's, the back-end,
/// the zone, the RRset) — a few at a time; each result comes with its key,
/// in the order they arrive.
pub fn read_rrsets<'a, K: Send + 'a>(
    reads: impl IntoIterator<Item = (K, &'a dyn Provider, &'a Name, RrsetId)>,
) -> impl Stream<Item = (K, Result<Rrset, DnsError>)> + Send + 'a {
    let reads: Vec<_> = reads
        .into_iter()
        .map(|(key, provider, zone, id)| async move { (key, provider.read(zone, &id).await) })
        .collect();
    futures_util::stream::iter(reads).buffer_unordered(READS_AT_ONCE)
}

/// How many times a change set is re-planned after losing a race.
pub const MAX_ATTEMPTS: usize = 5;

/// Reads every RRset the edits touch, plans the change set from what is
/// there, and applies it; when a prerequisite fails because another writer
/// got in between, reads and plans again (bounded). Returns `None` when
/// nothing needed changing.
pub async fn apply_edits(
    provider: &dyn Provider,
    zone: &Name,
    edits: &[Edit],
) -> Result<Option<Applied>, DnsError> {
    apply_edits_known(provider, zone, edits, &[]).await
}

/// [`apply_edits`], planning the first attempt from `known` (RRsets the
/// caller has just read) instead of reading them again: each change's
/// prerequisite still pins the RRset as known, so a stale one fails the
/// attempt and the next one reads.
pub async fn apply_edits_known(
    provider: &dyn Provider,
    zone: &Name,
    edits: &[Edit],
    known: &[Rrset],
) -> Result<Option<Applied>, DnsError> {
    for attempt in 0..MAX_ATTEMPTS {
        let mut changes = Vec::new();
        for edit in edits {
            let already = known
                .iter()
                .find(|r| r.owner == edit.owner && r.rtype == edit.rtype);
            let current = match already {
                Some(rrset) if attempt == 0 => rrset.clone(),
                _ => provider.read(zone, &edit.id()).await?,
            };
            let desired = edit.desired_from(&current.records);
            if desired != current.records || current.ttl.is_some_and(|t| t != edit.ttl) {
                changes.push(RrsetChange {
                    owner: edit.owner.clone(),
                    rtype: edit.rtype,
                    expected: current.records,
                    desired,
                    ttl: edit.ttl,
                });
            }
        }
        if changes.is_empty() {
            return Ok(None);
        }
        let set = ChangeSet {
            zone: zone.clone(),
            changes,
        };
        match provider.apply(&set).await {
            Err(e) if e.is_conflict() => continue,
            other => return other.map(Some),
        }
    }
    Err(DnsError::ConflictPersisted {
        zone: zone.clone(),
        attempts: MAX_ATTEMPTS,
    })
}
