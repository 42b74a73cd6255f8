//! One writer per zone, batching: the sets of a run work concurrently, but
//! their changes to one zone go out one message at a time, and the changes
//! that are waiting when the zone is free go out together as one change set
//! (one RFC 2136 UPDATE, one API call).
//!
//! Why one at a time: BIND 9.18 with inline signing was seen to lose
//! concurrent UPDATEs between its raw and signed zones (logged as
//! "receive_secure_serial: unchanged": accepted, never served). Why batch:
//! a primary signs each UPDATE separately (tens of ms on BIND), so a
//! thousand sets in one zone would otherwise cost a thousand of them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use tokio::sync::oneshot;

use crate::dns::{self, Applied, DnsError, Edit, Provider, Rrset};

/// At most this many sets' changes go into one change set: one failed change
/// set fails every set in it. (An RFC 2136 change set too large for one
/// message is split by the back-end.)
const MAX_BATCH: usize = 16;

pub type Outcome = Result<Option<Applied>, Arc<DnsError>>;

struct Pending {
    edits: Vec<Edit>,
    /// The RRsets the edits were planned from, as just read.
    known: Vec<Rrset>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
pub struct ZoneWriter {
    pending: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

impl ZoneWriter {
    /// Applies `edits` to `zone`, together with whatever other changes to
    /// the zone are waiting; returns once they are applied. `known`: the
    /// RRsets they were planned from (see [`dns::apply_edits_known`]).
    pub async fn apply(
        &self,
        provider: &dyn Provider,
        zone: &Name,
        edits: Vec<Edit>,
        known: Vec<Rrset>,
    ) -> Outcome {
        let (reply, mut outcome) = oneshot::channel();
        self.queue().push(Pending {
            edits,
            known,
            reply,
        });
        let _turn = self.turn.lock().await;
        // Whoever holds the turn sends everything waiting, batch by batch,
        // until this caller's change has gone out (perhaps in an earlier
        // holder's batch).
        loop {
            if let Ok(done) = outcome.try_recv() {
                return done;
            }
            let batch = self.next_batch();
            if batch.is_empty() {
                return Err(Arc::new(DnsError::Config(
                    "internal: a change to the zone was lost before it was sent".into(),
                )));
            }
            let edits: Vec<Edit> = batch.iter().flat_map(|p| p.edits.clone()).collect();
            let known: Vec<Rrset> = batch.iter().flat_map(|p| p.known.clone()).collect();
            let result = dns::apply_edits_known(provider, zone, &edits, &known)
                .await
                .map_err(Arc::new);
            for pending in batch {
                let _ = pending.reply.send(result.clone());
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to [`MAX_BATCH`] waiting changes, in arrival order, no two of them
    /// touching the same owner name (each edit is planned from one read of
    /// its RRset; two edits of one RRset in one message would contradict).
    fn next_batch(&self) -> Vec<Pending> {
        let mut queue = self.queue();
        let mut owners: BTreeSet<Name> = BTreeSet::new();
        let mut batch = Vec::new();
        let mut index = 0;
        while index < queue.len() && batch.len() < MAX_BATCH {
            let touches = |p: &Pending| p.edits.iter().any(|e| owners.contains(&e.owner));
            if touches(&queue[index]) {
                index += 1;
                continue;
            }
            let pending = queue.remove(index);
            owners.extend(pending.edits.iter().map(|e| e.owner.clone()));
            batch.push(pending);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::dns::{ChangeSet, Rrset};
    use crate::tlsa::TlsaRecord;

    /// A zone in memory; every change set yields once, so that other writers
    /// queue meanwhile, as they do behind a real server's round trip.
    #[derive(Default)]
    struct Memory {
        rrsets: Mutex<BTreeMap<Name, BTreeSet<TlsaRecord>>>,
        messages: AtomicUsize,
    }

    #[async_trait]
    impl Provider for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn zone_of(&self, _owner: &Name) -> Result<Name, DnsError> {
            Ok(Name::from_ascii("example.").unwrap())
        }
        async fn read(&self, _zone: &Name, owner: &Name) -> Result<Rrset, DnsError> {
            let records = self.rrsets.lock().unwrap().get(owner).cloned();
            let mut rrset = Rrset::empty(owner.clone());
            rrset.ttl = records.as_ref().map(|_| 60);
            rrset.records = records.unwrap_or_default();
            Ok(rrset)
        }
        async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
            tokio::task::yield_now().await;
            self.messages.fetch_add(1, Ordering::SeqCst);
            let mut rrsets = self.rrsets.lock().unwrap();
            for change in &set.changes {
                rrsets.insert(change.owner.clone(), change.desired.clone());
            }
            Ok(Applied::default())
        }
    }

    fn edit(owner: &str, byte: u8) -> Edit {
        let record: TlsaRecord = format!("3 1 1 {}", format!("{byte:02x}").repeat(32))
            .parse()
            .unwrap();
        Edit {
            owner: Name::from_ascii(owner).unwrap(),
            add: BTreeSet::from([record]),
            remove: BTreeSet::new(),
            replace_all: false,
            ttl: 60,
        }
    }

    #[tokio::test]
    async fn waiting_changes_go_out_together_and_none_is_lost() {
        let (memory, writer) = (Memory::default(), ZoneWriter::default());
        let zone = Name::from_ascii("example.").unwrap();
        let writes = (0..20u8).map(|i| {
            let owner = format!("_25._tcp.h{i}.example.");
            writer.apply(&memory, &zone, vec![edit(&owner, i)], Vec::new())
        });
        let outcomes = futures_util::future::join_all(writes).await;
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(
            memory.rrsets.lock().unwrap().len(),
            20,
            "every change applied"
        );
        // The first goes alone; the 19 that queued behind it go in batches of at most 16.
        assert_eq!(memory.messages.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn two_changes_of_one_rrset_never_share_a_message() {
        let (memory, writer) = (Memory::default(), ZoneWriter::default());
        let zone = Name::from_ascii("example.").unwrap();
        let owner = "_25._tcp.mail.example.";
        let writes =
            (0..3u8).map(|i| writer.apply(&memory, &zone, vec![edit(owner, i)], Vec::new()));
        let outcomes = futures_util::future::join_all(writes).await;
        assert!(outcomes.iter().all(Result::is_ok));
        let served = memory.rrsets.lock().unwrap()[&Name::from_ascii(owner).unwrap()].clone();
        assert_eq!(
            served.len(),
            3,
            "each change re-planned on the other's result"
        );
        assert_eq!(memory.messages.load(Ordering::SeqCst), 3);
    }
}
