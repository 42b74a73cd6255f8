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
    use super::*;
    use crate::dns::RrsetId;
    use crate::dns::publish::memory::MemoryZone;
    use crate::tlsa::TlsaRecord;

    fn edit(owner: &str, byte: u8) -> Edit {
        let record: TlsaRecord = format!("3 1 1 {}", format!("{byte:02x}").repeat(32))
            .parse()
            .unwrap();
        Edit::tlsa(Name::from_ascii(owner).unwrap(), [record], [], false, 60)
    }

    async fn served(memory: &MemoryZone, zone: &Name, owner: &str) -> usize {
        let id = RrsetId::tlsa(Name::from_ascii(owner).unwrap());
        memory.read(zone, &id).await.unwrap().records.len()
    }

    #[tokio::test]
    async fn waiting_changes_go_out_together_and_none_is_lost() {
        let zone = Name::from_ascii("example.").unwrap();
        let (memory, writer) = (MemoryZone::new(zone.clone()), ZoneWriter::default());
        let writes = (0..20u8).map(|i| {
            let owner = format!("_25._tcp.h{i}.example.");
            writer.apply(&memory, &zone, vec![edit(&owner, i)], Vec::new())
        });
        let outcomes = futures_util::future::join_all(writes).await;
        assert!(outcomes.iter().all(Result::is_ok));
        for i in 0..20u8 {
            let owner = format!("_25._tcp.h{i}.example.");
            assert_eq!(served(&memory, &zone, &owner).await, 1, "{owner} applied");
        }
        // The first goes alone; the 19 that queued behind it go in batches of at most 16.
        assert_eq!(memory.applied(), 3);
    }

    #[tokio::test]
    async fn two_changes_of_one_rrset_never_share_a_message() {
        let zone = Name::from_ascii("example.").unwrap();
        let (memory, writer) = (MemoryZone::new(zone.clone()), ZoneWriter::default());
        let owner = "_25._tcp.mail.example.";
        let writes =
            (0..3u8).map(|i| writer.apply(&memory, &zone, vec![edit(owner, i)], Vec::new()));
        let outcomes = futures_util::future::join_all(writes).await;
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(
            served(&memory, &zone, owner).await,
            3,
            "each change re-planned on the other's result"
        );
        assert_eq!(memory.applied(), 3);
    }
}
