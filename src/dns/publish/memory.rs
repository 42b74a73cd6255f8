//! A [`Provider`] held in memory: the reference back-end of the provider
//! contract (every type, compare-and-swap on exact RRset content, TTLs, a
//! serial per change), for unit tests of everything that publishes through
//! the trait and for the contract suite's own check of its scenarios.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use hickory_proto::rr::Name;

use super::provider::{Applied, ChangeSet, Provider};
use crate::dns::DnsError;
use crate::dns::rrset::{Rdata, Rrset, RrsetId};

/// One zone's RRsets in memory.
pub struct MemoryZone {
    zone: Name,
    state: Mutex<Stored>,
    applied: AtomicUsize,
}

#[derive(Default)]
struct Stored {
    serial: u32,
    rrsets: BTreeMap<RrsetId, (u32, BTreeSet<Rdata>)>,
}

impl MemoryZone {
    pub fn new(zone: Name) -> Self {
        MemoryZone {
            zone,
            state: Mutex::new(Stored {
                serial: 1,
                rrsets: BTreeMap::new(),
            }),
            applied: AtomicUsize::new(0),
        }
    }

    /// Sets an RRset directly, as another writer (or a hand edit) would.
    pub fn put(&self, id: RrsetId, ttl: u32, records: BTreeSet<Rdata>) {
        let mut state = self.lock();
        state.serial += 1;
        if records.is_empty() {
            state.rrsets.remove(&id);
        } else {
            state.rrsets.insert(id, (ttl, records));
        }
    }

    /// The records of RRset `id` now (none: absent).
    pub fn records(&self, id: &RrsetId) -> BTreeSet<Rdata> {
        self.lock()
            .rrsets
            .get(id)
            .map(|(_, records)| records.clone())
            .unwrap_or_default()
    }

    /// How many change sets were applied.
    pub fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }

    pub fn serial(&self) -> u32 {
        self.lock().serial
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Provider for MemoryZone {
    fn describe(&self) -> String {
        format!("in-memory zone {}", self.zone)
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if self.zone.zone_of(owner) {
            Ok(self.zone.clone())
        } else {
            Err(DnsError::Config(format!(
                "{owner} is not in zone {}",
                self.zone
            )))
        }
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        self.zone_of(zone).await?;
        Ok(Rrset::stored(id, self.lock().rrsets.get(id)))
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        // A real round trip lets other tasks run between read and write.
        tokio::task::yield_now().await;
        let mut state = self.lock();
        for change in &set.changes {
            let now = state.rrsets.get(&change.id()).map(|(_, r)| r.clone());
            if now.unwrap_or_default() != change.expected {
                return Err(DnsError::Conflict {
                    server: SocketAddr::from(([127, 0, 0, 1], 0)),
                    owner: change.owner.clone(),
                    rtype: change.rtype,
                });
            }
        }
        for change in &set.changes {
            if change.desired.is_empty() {
                state.rrsets.remove(&change.id());
            } else {
                state
                    .rrsets
                    .insert(change.id(), (change.ttl, change.desired.clone()));
            }
        }
        state.serial += 1;
        self.applied.fetch_add(1, Ordering::SeqCst);
        Ok(Applied {
            serial: Some(state.serial),
        })
    }
}
