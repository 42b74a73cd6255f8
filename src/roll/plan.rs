//! The roll plan: a pure function from what the servers present, what the
//! files hold, what DNS serves, what the state remembers and the time, to
//! the one step that is due now (or when the next one will be). The
//! executor performs that step, observes again and asks again, so a crash
//! between any two steps only repeats a look: every decision is re-derived
//! from the world, never from a cursor.
//!
//! The rule behind every branch is the safety invariant (docs/design.md):
//! the key any server presents must be matched by every RRset a resolver
//! may still cache. So a key may be presented only once every RRset a
//! resolver may still cache contains it (its `safe_at`), a key that some
//! address is seen presenting is a key in service (published first,
//! whatever the deploy files say), and a record may be removed only once
//! no address presents its key any more.
//!
//! **Why one file (about 620 lines of code):** [`decide`] is one decision
//! in one priority order, its nine numbered cases: records for a key already
//! presented first; then the next key, publishing, propagation, deploy,
//! verify and retire; reconciling with the config last. The `View` methods
//! beside it are the facts it decides on. Its vocabulary (steps, key
//! material, decisions) is already apart, in `plan/model.rs`; cutting
//! `decide` itself would hide that order.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;

use crate::dns::Edit;
use crate::tlsa::TlsaRecord;

use super::policy::{self, RecordPolicy};
use super::state::KeyId;

mod model;

pub use model::{
    Alarm, CertFacts, Decision, KeyMaterial, PresentedAt, Step, StepKind, VERIFIED_FRESH, View,
    names_text, short,
};

impl View<'_> {
    /// The next key, unless it has gone live (then a fresh one is due: it is
    /// generated after the deploy, so that its records go out together with
    /// the old key's removal).
    fn next(&self) -> Option<&KeyMaterial> {
        let live = |id: &str| self.deployed.as_ref().is_some_and(|c| c.key.id == id);
        self.next.as_ref().filter(|n| !live(&n.id))
    }

    /// Every distinct key some address presents.
    fn presented_keys(&self) -> Vec<&KeyMaterial> {
        let mut keys: Vec<&KeyMaterial> = Vec::new();
        for key in self.presented.iter().filter_map(|p| p.key.as_ref().ok()) {
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        keys
    }

    /// The addresses presenting this key.
    fn presenting(&self, id: &str) -> Vec<String> {
        self.presented
            .iter()
            .filter(|p| p.key.as_ref().is_ok_and(|k| k.id == id))
            .map(|p| p.address.clone())
            .collect()
    }

    /// Every address was seen presenting this key.
    fn presented_everywhere(&self, id: &str) -> bool {
        !self.presented.is_empty()
            && self
                .presented
                .iter()
                .all(|p| p.key.as_ref().is_ok_and(|k| k.id == id))
    }

    /// Whether a key's records are safe to present: every cache that may
    /// hold an RRset without it has expired.
    fn safe(&self, id: &str) -> bool {
        self.state
            .keys
            .get(id)
            .and_then(|k| k.safe_at)
            .is_some_and(|at| at <= self.now)
    }

    /// Every address answered with a key.
    fn observation_complete(&self) -> bool {
        !self.presented.is_empty() && self.presented.iter().all(|p| p.key.is_ok())
    }

    /// A key tlsa expects: its own slots, or one it published before. At
    /// adoption (tlsa published nothing yet) whatever the servers present
    /// is what the set has in service, so it is expected too.
    fn expected(&self, id: &str) -> bool {
        self.state.keys.is_empty()
            || self.state.keys.contains_key(id)
            || [
                self.deployed.as_ref().map(|c| &c.key),
                self.source.as_ref().map(|c| &c.key),
                self.next.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|k| k.id == id)
    }

    /// Presented keys whose records tlsa keeps published: all of them, or
    /// with `on_unmatched_key = "alarm"` the ones it expects.
    fn in_service(&self) -> Vec<&KeyMaterial> {
        self.presented_keys()
            .into_iter()
            .filter(|k| self.publish_unmatched || self.expected(&k.id))
            .collect()
    }

    /// Keys that must have records now: presented, deployed, arriving, next.
    fn wanted(&self) -> Vec<&KeyMaterial> {
        let mut keys: Vec<&KeyMaterial> = Vec::new();
        let candidates = self.in_service().into_iter().map(Some).chain([
            self.deployed.as_ref().map(|c| &c.key),
            self.source.as_ref().map(|c| &c.key),
            self.next(),
        ]);
        for key in candidates.flatten() {
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        keys
    }

    /// Owner names whose RRset lacks some record of this key.
    fn owners_missing(&self, spki: &[u8]) -> Vec<Name> {
        let wanted = self.policy.records_for_key(spki);
        self.owners
            .iter()
            .filter(|owner| {
                let served = self.dns.get(*owner);
                !wanted.iter().all(|r| served.is_some_and(|s| s.contains(r)))
            })
            .cloned()
            .collect()
    }

    /// Owner names whose served RRset a DANE client could not match this
    /// key against (see [`policy::key_usable`]): the emergency test. An
    /// owner with no RRset fails nobody (senders then do not use DANE).
    fn owners_unmatched(&self, spki: &[u8]) -> Vec<Name> {
        self.owners
            .iter()
            .filter(|owner| {
                self.dns
                    .get(*owner)
                    .is_some_and(|served| !served.is_empty() && !policy::key_usable(spki, served))
            })
            .cloned()
            .collect()
    }

    /// Owner names where a DANE client could not match this key: no RRset,
    /// or one without a usable record of it (stricter than
    /// [`Self::owners_unmatched`], for which no RRset fails nobody).
    fn owners_unusable(&self, spki: &[u8]) -> Vec<Name> {
        self.owners
            .iter()
            .filter(|owner| {
                !self
                    .dns
                    .get(*owner)
                    .is_some_and(|served| policy::key_usable(spki, served))
            })
            .cloned()
            .collect()
    }

    /// Keys tlsa knows whose records are still served but that are no longer
    /// wanted (no address presents them): the old key after a roll, an
    /// abandoned next key.
    fn retiring(&self) -> Vec<(KeyId, Vec<u8>)> {
        let wanted: BTreeSet<&str> = self.wanted().iter().map(|k| k.id.as_str()).collect();
        self.state
            .keys
            .iter()
            .filter(|(id, key)| !wanted.contains(id.as_str()) && key.removed_at.is_none())
            .filter_map(|(id, key)| Some((id.clone(), hex::decode(&key.spki).ok()?)))
            .filter(|(_, spki)| self.served_anywhere(spki))
            .collect()
    }
    /// Whether some key tlsa published is on its way out: no longer in one
    /// of the set's own slots, its records still served (some address may
    /// still present it, until a deploy takes effect everywhere).
    fn leaving(&self) -> bool {
        let own: Vec<&str> = [
            self.deployed.as_ref().map(|c| &c.key),
            self.source.as_ref().map(|c| &c.key),
            self.next(),
        ]
        .into_iter()
        .flatten()
        .map(|k| k.id.as_str())
        .collect();
        self.state.keys.iter().any(|(id, key)| {
            !own.contains(&id.as_str())
                && key.removed_at.is_none()
                && hex::decode(&key.spki).is_ok_and(|spki| self.served_anywhere(&spki))
        })
    }

    /// Whether some owner's RRset holds a record of this key (of any
    /// matching type, listed in the config or not).
    fn served_anywhere(&self, spki: &[u8]) -> bool {
        let records = RecordPolicy::all_records_for_key(spki);
        self.dns
            .values()
            .any(|served| records.iter().any(|r| served.contains(r)))
    }

    /// Keys tlsa knows, no longer wanted, whose records are gone from DNS
    /// although no removal was recorded: a run killed between a retire's
    /// change and the state save, or records deleted by hand. Their removal
    /// is confirmed and they are forgotten like retired keys; otherwise they
    /// would stay in the state (and in `tlsa status` as retiring) for ever.
    fn gone(&self) -> Vec<KeyId> {
        // An address that could not be observed may still present the key:
        // forgetting it now would stop it from being expected later.
        if self.presented.iter().any(|p| p.key.is_err()) {
            return Vec::new();
        }
        let wanted: BTreeSet<&str> = self.wanted().iter().map(|k| k.id.as_str()).collect();
        self.state
            .keys
            .iter()
            .filter(|(id, key)| !wanted.contains(id.as_str()) && key.removed_at.is_none())
            .filter(|(_, key)| {
                hex::decode(&key.spki).is_ok_and(|spki| !self.served_anywhere(&spki))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Edits that add every wanted record and remove the given keys' records
    /// (of every matching type), plus records of a matching type the config
    /// no longer lists; an owner whose RRset already is what it should be,
    /// TTL included, gets no edit.
    fn edits(&self, remove_keys: &[Vec<u8>]) -> Vec<Edit> {
        let add = self
            .policy
            .rrset_for_keys(self.wanted().iter().map(|k| k.spki.as_slice()));
        let removed: BTreeSet<TlsaRecord> = remove_keys
            .iter()
            .flat_map(|spki| RecordPolicy::all_records_for_key(spki))
            .collect();
        // Keys still in DNS that stay there for now: a fully managed RRset is
        // replaced whole, so their records must be part of the new content.
        let staying: Vec<Vec<u8>> = self
            .retiring()
            .into_iter()
            .map(|(_, spki)| spki)
            .filter(|spki| !remove_keys.contains(spki))
            .collect();
        let known: Vec<Vec<u8>> = self
            .wanted()
            .iter()
            .map(|k| k.spki.clone())
            .chain(staying.iter().cloned())
            .collect();
        let presented_spkis: Vec<Vec<u8>> = self
            .presented_keys()
            .iter()
            .map(|k| k.spki.clone())
            .collect();
        let unobserved_none = !self.presented.iter().any(|p| p.key.is_err());
        let empty = BTreeSet::new();
        self.owners
            .iter()
            .filter_map(|owner| {
                let current = self.dns.get(owner).unwrap_or(&empty);
                let stale: BTreeSet<TlsaRecord> = known
                    .iter()
                    .flat_map(|spki| self.policy.stale_records_for_key(spki, current))
                    .collect();
                let mut owner_add = add.clone();
                // Replacing the whole RRset may drop only what tlsa knows is
                // out of service: never the records of a presented key (one
                // tlsa does not publish itself, with on_unmatched_key =
                // "alarm", may have been published by hand), and nothing at
                // all while some address could not be observed.
                let replace_all = self.fully_managed && unobserved_none;
                if replace_all {
                    owner_add.extend(
                        staying
                            .iter()
                            .chain(presented_spkis.iter())
                            .flat_map(|spki| RecordPolicy::all_records_for_key(spki))
                            .filter(|r| current.contains(r)),
                    );
                }
                let edit = Edit::tlsa(
                    owner.clone(),
                    owner_add,
                    removed.union(&stale).cloned(),
                    replace_all,
                    self.ttl,
                );
                let ttl_differs = !current.is_empty()
                    && self
                        .ttls
                        .get(owner)
                        .copied()
                        .flatten()
                        .is_some_and(|t| t != self.ttl);
                (edit.tlsa_after(current) != *current || ttl_differs).then_some(edit)
            })
            .collect()
    }

    /// Whether the live key was seen on every address recently enough.
    fn verified(&self, live: &str) -> bool {
        self.state
            .verified
            .as_ref()
            .is_some_and(|v| v.key == live && v.at + VERIFIED_FRESH >= self.now)
    }

    /// The deployed key has not been seen on every address since it was
    /// deployed (a deploy clears `verified`), or this run's observation
    /// shows some address presenting another key: a reload that did not
    /// take effect, or a change by hand.
    fn needs_verification(&self, live: &str) -> bool {
        let seen = self.state.verified.as_ref().is_some_and(|v| v.key == live);
        let contradicted = self
            .presented
            .iter()
            .any(|p| p.key.as_ref().is_ok_and(|k| k.id != live));
        !seen || contradicted
    }

    /// What deserves a word although it is handled safely.
    fn notices(&self) -> Vec<String> {
        let mut notices: Vec<String> = self
            .presented
            .iter()
            .filter_map(|p| {
                p.key
                    .as_ref()
                    .err()
                    .map(|why| format!("{} could not be observed: {why}", p.address))
            })
            .collect();
        let wanted = self
            .policy
            .rrset_for_keys(self.wanted().iter().map(|k| k.spki.as_slice()));
        for owner in &self.owners {
            let served = self.dns.get(owner).cloned().unwrap_or_default();
            let count = served.union(&wanted).count();
            if count > policy::MAX_RECOMMENDED_RECORDS {
                notices.push(format!(
                    "the TLSA RRset at {owner} holds {count} records with the keys in service, arriving and next: some senders stop reading past {}; fewer endpoints per set, fewer matching types or fewer issuer records keep it smaller",
                    policy::MAX_RECOMMENDED_RECORDS
                ));
            }
        }
        if let Some(source) = &self.source {
            let unprepared = !self.state.keys.contains_key(&source.key.id)
                && self
                    .deployed
                    .as_ref()
                    .is_some_and(|d| d.key.id != source.key.id)
                && self.next.as_ref().is_none_or(|n| n.id != source.key.id);
            if unprepared {
                notices.push(format!(
                    "the ACME client brought a new key {} that was not pre-published: it is published now, and the current certificate stays in service until every cache holds the new record (the time is shown below)",
                    source.key.short()
                ));
            }
        }
        notices
    }
}

/// The step due now for one set.
pub fn decide(view: &View<'_>) -> Decision {
    let mut alarms = Vec::new();
    let notices = view.notices();
    let wanted = view.wanted();
    let missing: Vec<&KeyMaterial> = wanted
        .iter()
        .copied()
        .filter(|k| !view.owners_missing(&k.spki).is_empty())
        .collect();
    let retiring = view.retiring();

    // 1. A presented key without a usable record: an outage in progress.
    //    Publish everything missing at once, before anything else.
    for key in view.presented_keys() {
        let owners = view.owners_unmatched(&key.spki);
        if !owners.is_empty() {
            alarms.push(Alarm::UnmatchedPresentedKey {
                key: key.id.clone(),
                addresses: view.presenting(&key.id),
                owners,
                publishing: wanted.iter().any(|k| k.id == key.id),
            });
        }
    }
    let publishing_emergency = alarms.iter().any(|a| {
        matches!(
            a,
            Alarm::UnmatchedPresentedKey {
                publishing: true,
                ..
            }
        )
    });
    // (A key that has its records but is unusable because of a digest type
    // tlsa does not publish, such as a foreign 3 1 2, has nothing to publish:
    // the alarm stands and the plan goes on.)
    let emergency_publish = publish(view, &missing);
    if publishing_emergency && emergency_publish.edits().is_some_and(|e| !e.is_empty()) {
        return Decision::step(emergency_publish, alarms, notices);
    }

    // 2. A next key is always kept ready (once the one we had went live), so
    //    that its records go out with the first publication or the retire.
    if view.next().is_none() && view.generates_next {
        return Decision::step(Step::GenerateNextKey, alarms, notices);
    }

    // 3. Records of keys arriving or in service go out at once. A lone next
    //    key waits for the retire step when one is coming (an old key is
    //    leaving, even if some address still presents it for a moment), so
    //    that the old key's removal and the new next key's addition are one
    //    change set.
    let leaving = view.leaving();
    let urgent: Vec<&KeyMaterial> = missing
        .iter()
        .copied()
        .filter(|k| {
            let is_source = view.source.as_ref().is_some_and(|s| s.key.id == k.id);
            !leaving || is_source || view.next().is_none_or(|n| n.id != k.id)
        })
        .collect();
    if !urgent.is_empty() {
        return Decision::step(publish(view, &missing), alarms, notices);
    }

    // 4. Published but not yet seen everywhere: wait for propagation and
    //    record when it is safe. Removals are confirmed the same way.
    let unconfirmed: Vec<KeyMaterial> = wanted
        .iter()
        .filter(|k| view.owners_missing(&k.spki).is_empty())
        .filter(|k| {
            view.state
                .keys
                .get(&k.id)
                .is_none_or(|s| s.propagated_at.is_none())
        })
        .map(|k| (*k).clone())
        .collect();
    let removed: Vec<KeyId> = view
        .state
        .keys
        .iter()
        .filter(|(_, k)| k.removed_at.is_some())
        .map(|(id, _)| id.clone())
        .chain(view.gone())
        .collect();
    if !unconfirmed.is_empty() || !removed.is_empty() {
        return Decision::step(
            Step::AwaitPropagation {
                keys: unconfirmed,
                removed,
            },
            alarms,
            notices,
        );
    }

    // 5. A newer certificate from the source, a deploy whose reload never
    //    succeeded (killed, the command failed, or the servers kept
    //    presenting the old key), or a deploy target holding a key no
    //    address presents yet (adopted that way): deployed at once only when
    //    every address already presents that key (a renewal with the same
    //    key) or its records are safe; otherwise once they are.
    let unpresented_deploy = view.deployed.as_ref().is_some_and(|d| {
        view.state.deployed.as_ref() != Some(&d.key.id)
            && view
                .state
                .verified
                .as_ref()
                .is_none_or(|v| v.key != d.key.id)
            && view.observation_complete()
            && !view.presented_everywhere(&d.key.id)
    });
    if let (Some(source), deployed) = (&view.source, &view.deployed)
        && (view.state.reload_pending
            || unpresented_deploy
            || deployed
                .as_ref()
                .is_none_or(|d| d.fingerprint != source.fingerprint))
    {
        let same_key = deployed.as_ref().is_some_and(|d| d.key.id == source.key.id);
        let safe_at = view.state.keys.get(&source.key.id).and_then(|k| k.safe_at);
        let deploy = Step::Deploy {
            key: source.key.id.clone(),
            same_key,
        };
        // Last line of defence for the invariant, whatever led here (a
        // policy with no records, a hand-edited state or RRset): a key goes
        // live only with a record a DANE client can match at every owner,
        // in what the primary serves. No step and no alarm (nothing is
        // broken yet), a reason that says what is missing.
        let unpublished = view.owners_unusable(&source.key.spki);
        if !unpublished.is_empty() {
            return Decision {
                step: None,
                wake_at: None,
                alarms,
                notices,
                waiting: Some(format!(
                    "key {} is not deployed: no TLSA record a DANE client can match it with is served at {}; check the set's matching types and the records in DNS",
                    source.key.short(),
                    names_text(&unpublished)
                )),
            };
        }
        if view.presented_everywhere(&source.key.id) || view.safe(&source.key.id) {
            return Decision::step(deploy, alarms, notices);
        }
        match safe_at {
            Some(at) => {
                return Decision {
                    step: None,
                    wake_at: Some(at),
                    alarms,
                    notices,
                    waiting: Some(format!(
                        "key {} goes live once every cache holds its record",
                        source.key.short()
                    )),
                };
            }
            // A hand-edited state may lack the time: confirm propagation again.
            None => {
                return Decision::step(
                    Step::AwaitPropagation {
                        keys: vec![source.key.clone()],
                        removed: Vec::new(),
                    },
                    alarms,
                    notices,
                );
            }
        }
    }

    // 6. Every deploy is verified live, the first one and same-key renewals
    //    included, and so is a deployed key some address no longer presents.
    let live = view.deployed.as_ref().map(|d| d.key.id.clone());
    if let Some(live) = &live
        && view.needs_verification(live)
        && view.observation_complete()
    {
        return Decision::step(Step::Verify { key: live.clone() }, alarms, notices);
    }

    // 7. Old keys leave DNS only once every address was seen presenting the
    //    deployed key recently, and this run saw every address.
    if !retiring.is_empty() {
        let names = || {
            retiring
                .iter()
                .map(|(id, _)| short(id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(live) = live else {
            return Decision {
                waiting: Some(format!(
                    "key {} is retired once a certificate is deployed and presented",
                    names()
                )),
                ..Decision::idle(alarms, notices)
            };
        };
        if !view.observation_complete() {
            // Not a failed deploy: an address that cannot be reached now.
            return Decision {
                waiting: Some(format!(
                    "key {} is retired once every address can be observed presenting key {}",
                    names(),
                    short(&live)
                )),
                ..Decision::idle(alarms, notices)
            };
        }
        if !view.verified(&live) {
            return Decision::step(Step::Verify { key: live }, alarms, notices);
        }
        let spkis: Vec<Vec<u8>> = retiring.iter().map(|(_, spki)| spki.clone()).collect();
        return Decision::step(
            Step::Retire {
                keys: retiring.into_iter().map(|(id, _)| id).collect(),
                added: missing.iter().map(|k| (*k).clone()).collect(),
                edits: view.edits(&spkis),
            },
            alarms,
            notices,
        );
    }

    // 8. A lone next key waiting for a retire that is no longer pending.
    if !missing.is_empty() {
        return Decision::step(publish(view, &missing), alarms, notices);
    }

    // 9. A TTL or the matching types changed in the config.
    let edits = view.edits(&[]);
    if !edits.is_empty() {
        return Decision::step(Step::Reconcile { edits }, alarms, notices);
    }
    Decision::idle(alarms, notices)
}

fn publish(view: &View<'_>, missing: &[&KeyMaterial]) -> Step {
    Step::Publish {
        keys: missing.iter().map(|k| (*k).clone()).collect(),
        edits: view.edits(&[]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_timeline_line_of_each_step_tells_its_kind() {
        let key = || "ab".repeat(32);
        for step in [
            Step::Publish {
                keys: vec![],
                edits: vec![],
            },
            Step::Deploy {
                key: key(),
                same_key: true,
            },
            Step::Deploy {
                key: key(),
                same_key: false,
            },
            Step::Retire {
                keys: vec![key()],
                added: vec![],
                edits: vec![],
            },
            Step::Verify { key: key() },
            Step::GenerateNextKey,
            Step::AwaitPropagation {
                keys: vec![],
                removed: vec![key()],
            },
            Step::Reconcile { edits: vec![] },
        ] {
            assert_eq!(StepKind::of_event(&step.to_string()), step.kind(), "{step}");
        }
    }

    use super::*;
    use crate::dns::rrset::{Rdata, tlsa_of};
    use crate::roll::state::{KeyState, Verified};
    use crate::roll::state::{SetState, Timestamp};
    use crate::tlsa::Matching;
    use crate::tlsa::{Selector, Usage};
    use std::collections::BTreeMap;
    use std::time::Duration;

    const OWNER: &str = "_25._tcp.mail.example.com.";

    fn owner() -> Name {
        OWNER.parse().unwrap()
    }

    fn key(n: u8) -> KeyMaterial {
        KeyMaterial::from_spki(&[n; 16])
    }

    fn cert(n: u8, serial: u8) -> CertFacts {
        CertFacts {
            key: key(n),
            fingerprint: format!("cert-{n}-{serial}"),
        }
    }

    /// A world to run the plan against, and a tiny executor that applies
    /// steps to it the way the real one does, without DNS or files.
    struct World {
        policy: RecordPolicy,
        deployed: Option<CertFacts>,
        source: Option<CertFacts>,
        next: Option<KeyMaterial>,
        dns: BTreeSet<TlsaRecord>,
        /// The TTL the RRset is served with.
        ttl: Option<u32>,
        fully_managed: bool,
        state: SetState,
        now: Timestamp,
        generated: u8,
        /// What each server address presents; `None`: it does not answer.
        servers: Vec<Option<KeyMaterial>>,
        /// Servers whose reload does nothing (they keep their key).
        deaf: Vec<bool>,
        publish_unmatched: bool,
        /// Every violation of the invariant seen.
        log: Vec<String>,
        /// RRsets served before, with the instant they were replaced.
        history: Vec<(Timestamp, BTreeSet<TlsaRecord>)>,
    }

    /// The TTL of the simulated RRsets, and so what `safe_at` waits for.
    const CACHE_TTL: Duration = Duration::from_secs(60);

    impl World {
        fn new(deployed: u8) -> Self {
            World {
                policy: RecordPolicy::default(),
                deployed: Some(cert(deployed, 0)),
                source: Some(cert(deployed, 0)),
                next: None,
                dns: BTreeSet::new(),
                ttl: None,
                fully_managed: false,
                state: SetState::default(),
                now: Timestamp::from_unix_secs(1000),
                generated: 100,
                servers: vec![Some(key(deployed))],
                deaf: vec![false],
                publish_unmatched: true,
                log: Vec::new(),
                history: Vec::new(),
            }
        }

        /// What the executor hands the plan: each address's key.
        fn presented(&self) -> Vec<PresentedAt> {
            self.servers
                .iter()
                .enumerate()
                .map(|(i, key)| PresentedAt {
                    address: format!("192.0.2.{}:25", i + 1),
                    key: key.clone().ok_or_else(|| "connection refused".to_string()),
                })
                .collect()
        }

        fn decide(&self) -> Decision {
            let view = View {
                owners: vec![owner()],
                policy: &self.policy,
                fully_managed: self.fully_managed,
                generates_next: true,
                ttl: 60,
                deployed: self.deployed.clone(),
                source: self.source.clone(),
                next: self.next.clone(),
                presented: self.presented(),
                publish_unmatched: self.publish_unmatched,
                dns: BTreeMap::from([(owner(), self.dns.clone())]),
                ttls: BTreeMap::from([(owner(), self.ttl)]),
                state: &self.state,
                now: self.now,
            };
            decide(&view)
        }

        /// Serves a new RRset; the one it replaces stays in caches for a TTL.
        fn apply(&mut self, edits: &[Edit]) {
            for edit in edits {
                let new = edit.tlsa_after(&self.dns);
                if new != self.dns {
                    let old = std::mem::replace(&mut self.dns, new);
                    self.history.push((self.now, old));
                }
                self.ttl = Some(edit.ttl);
            }
        }

        /// Applies one step the way the executor does.
        fn execute(&mut self, step: &Step) {
            match step {
                Step::Reconcile { edits } => self.apply(edits),
                Step::Publish { keys, edits } => {
                    self.apply(edits);
                    for key in keys {
                        let fresh = KeyState::new(&key.spki, self.now);
                        self.state.keys.entry(key.id.clone()).or_insert(fresh);
                    }
                }
                Step::Retire { keys, added, edits } => {
                    self.apply(edits);
                    for id in keys {
                        self.state.keys.get_mut(id).unwrap().removed_at = Some(self.now);
                    }
                    for key in added {
                        let fresh = KeyState::new(&key.spki, self.now);
                        self.state.keys.entry(key.id.clone()).or_insert(fresh);
                    }
                }
                Step::AwaitPropagation { keys, removed } => {
                    self.now = self.now + Duration::from_secs(1);
                    for key in keys {
                        let fresh = KeyState::new(&key.spki, self.now);
                        let entry = self.state.keys.entry(key.id.clone()).or_insert(fresh);
                        entry.propagated_at = Some(self.now);
                        entry.safe_at = Some(self.now + CACHE_TTL);
                    }
                    for id in removed {
                        self.state.keys.remove(id);
                    }
                }
                Step::GenerateNextKey => {
                    self.generated += 1;
                    self.next = Some(key(self.generated));
                }
                Step::Deploy { key, .. } => {
                    self.deployed = self.source.clone();
                    self.state.reload_pending = false;
                    self.state.verified = None;
                    self.state.deployed = Some(key.clone());
                    let live = self.deployed.as_ref().map(|d| d.key.clone());
                    for (server, deaf) in self.servers.iter_mut().zip(&self.deaf) {
                        if !deaf && server.is_some() {
                            *server = live.clone();
                        }
                    }
                }
                Step::Verify { key } => {
                    let everywhere = self
                        .servers
                        .iter()
                        .all(|s| s.as_ref().is_some_and(|k| &k.id == key));
                    if everywhere {
                        self.state.verified = Some(Verified {
                            key: key.clone(),
                            at: self.now,
                        });
                    } else {
                        // The executor fails the step and redoes the reload next time.
                        self.state.reload_pending = true;
                    }
                }
            }
            self.check_invariant();
        }

        /// The invariant: every key a server presents is matched by every
        /// RRset a resolver may still hold (an empty one fails nobody).
        fn check_invariant(&mut self) {
            let now = self.now;
            let cached: Vec<BTreeSet<TlsaRecord>> = self
                .history
                .iter()
                .filter(|(until, _)| *until + CACHE_TTL > now)
                .map(|(_, rrset)| rrset.clone())
                .chain([self.dns.clone()])
                .collect();
            for key in self.servers.iter().flatten() {
                for rrset in &cached {
                    if !rrset.is_empty() && !policy::key_usable(&key.spki, rrset) {
                        self.log.push(format!(
                            "at {now} a server presents {} which a cached RRset does not match",
                            key.short()
                        ));
                    }
                }
            }
        }

        /// Runs decide/execute until nothing is due, advancing time to wake-ups;
        /// returns the steps taken (a step that failed is repeated by the
        /// next run, so a run stops at a Verify that did not pass).
        fn run(&mut self) -> Vec<Step> {
            let mut steps = Vec::new();
            for _ in 0..50 {
                let decision = self.decide();
                match (decision.step, decision.wake_at) {
                    (Some(step), _) => {
                        self.execute(&step);
                        let failed =
                            matches!(step, Step::Verify { .. }) && self.state.verified.is_none();
                        steps.push(step);
                        if failed {
                            return steps;
                        }
                    }
                    (None, Some(at)) => self.now = at,
                    (None, None) => return steps,
                }
            }
            panic!("the plan did not settle: {steps:?}");
        }

        /// The roll is over: no record of key `old` is left, and no instant broke the
        /// invariant.
        fn assert_retired(&self, old: u8) {
            assert!(!self.keys_in_dns().contains(key(old).short()));
            assert!(self.log.is_empty(), "{:?}", self.log);
        }

        fn keys_in_dns(&self) -> BTreeSet<String> {
            self.dns
                .iter()
                .map(|r| short(&r.data_hex()).to_string())
                .collect()
        }
    }

    fn kinds(steps: &[Step]) -> Vec<&'static str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Publish { .. } => "publish",
                Step::AwaitPropagation { .. } => "await",
                Step::GenerateNextKey => "generate",
                Step::Deploy { .. } => "deploy",
                Step::Verify { .. } => "verify",
                Step::Retire { .. } => "retire",
                Step::Reconcile { .. } => "reconcile",
            })
            .collect()
    }

    fn adopted(deployed: u8) -> World {
        let mut world = World::new(deployed);
        world.dns = world.policy.records_for_key(&key(deployed).spki);
        world.run();
        world
    }

    #[test]
    fn adoption_confirms_the_live_record_then_publishes_a_next_key_and_is_idempotent() {
        let mut world = World::new(1);
        world.dns = world.policy.records_for_key(&key(1).spki);
        let steps = world.run();
        assert_eq!(kinds(&steps), ["generate", "publish", "await", "verify"]);
        assert_eq!(world.keys_in_dns().len(), 2);
        assert!(world.run().is_empty(), "a rerun does nothing");
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn renewal_with_the_same_key_deploys_at_once_without_dns_changes() {
        let mut world = adopted(1);
        let before = world.dns.clone();
        world.source = Some(cert(1, 1));
        let steps = world.run();
        assert_eq!(
            kinds(&steps),
            ["deploy", "verify"],
            "verified like any deploy"
        );
        assert_eq!(world.dns, before);
    }

    #[test]
    fn planned_roll_waits_for_safety_then_retires_the_old_key_with_a_new_next_in_one_change() {
        let mut world = adopted(1);
        let next = world.next.clone().unwrap();
        world.source = Some(CertFacts {
            key: next.clone(),
            fingerprint: "cert-next".into(),
        });
        let steps = world.run();
        assert_eq!(
            kinds(&steps),
            ["deploy", "generate", "verify", "retire", "await"]
        );
        let Step::Retire { edits, .. } = &steps[3] else {
            unreachable!()
        };
        assert_eq!(edits.len(), 1, "one change set");
        assert_eq!(
            tlsa_of(&edits[0].remove),
            RecordPolicy::all_records_for_key(&key(1).spki)
        );
        assert_eq!(edits[0].add.len(), 2, "live and the fresh next key");
        let expected: BTreeSet<String> = [next.short(), world.next.as_ref().unwrap().short()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(world.keys_in_dns(), expected);
        assert!(
            !world.state.keys.contains_key(&key(1).id),
            "the old key is forgotten"
        );
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn an_unprepared_new_key_is_published_at_once_and_deployed_only_when_safe() {
        let mut world = adopted(1);
        world.source = Some(cert(9, 0));
        let first = world.decide();
        assert!(first.alarms.is_empty(), "handled safely: no alarm");
        assert!(
            first
                .notices
                .iter()
                .any(|n| n.contains("not pre-published")),
            "{:?}",
            first.notices
        );
        assert!(matches!(first.step, Some(Step::Publish { .. })));
        world.execute(first.step.as_ref().unwrap());
        world.execute(&world.decide().step.unwrap()); // await propagation
        let waiting = world.decide();
        assert_eq!(waiting.step, None, "the old certificate stays in service");
        let safe_at = world.state.keys[&key(9).id].safe_at.unwrap();
        assert_eq!(waiting.wake_at, Some(safe_at));
        world.now = safe_at - Duration::from_millis(1);
        assert_eq!(world.decide().step, None);
        world.now = safe_at;
        assert!(matches!(
            world.decide().step,
            Some(Step::Deploy {
                same_key: false,
                ..
            })
        ));
        world.run();
        assert!(
            !world.keys_in_dns().contains(key(1).short()),
            "old key retired"
        );
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn a_live_key_without_record_is_an_emergency() {
        let mut world = adopted(1);
        let live = world.policy.records_for_key(&key(1).spki);
        world.dns.retain(|r| !live.contains(r));
        let decision = world.decide();
        assert!(matches!(
            decision.alarms[..],
            [Alarm::UnmatchedPresentedKey {
                publishing: true,
                ..
            }]
        ));
        let Some(Step::Publish { edits, .. }) = decision.step else {
            panic!("{decision:?}")
        };
        assert!(tlsa_of(&edits[0].add).is_superset(&world.policy.records_for_key(&key(1).spki)));
    }

    #[test]
    fn a_rollover_to_an_unpublished_next_key_during_a_pending_retire_publishes_it_first() {
        let mut world = adopted(1);
        let next = world.next.clone().unwrap();
        world.source = Some(CertFacts {
            key: next,
            fingerprint: "n".into(),
        });
        // Run up to the verify step, which keeps failing (retire pending).
        loop {
            let decision = world.decide();
            let Some(step) = decision.step else {
                world.now = decision.wake_at.unwrap();
                continue;
            };
            if let Step::Verify { .. } = step {
                break;
            }
            world.execute(&step);
        }
        // A fresh next key exists but is unpublished; the operator rolls to it.
        let fresh = world.next.clone().unwrap();
        assert!(!world.keys_in_dns().contains(fresh.short()));
        world.source = Some(CertFacts {
            key: fresh.clone(),
            fingerprint: "f".into(),
        });
        let decision = world.decide();
        assert!(
            matches!(&decision.step, Some(Step::Publish { keys, .. }) if keys.contains(&fresh)),
            "{decision:?}"
        );
    }

    #[test]
    fn records_tlsa_did_not_create_survive_a_roll() {
        let mut world = adopted(1);
        let hand_made: TlsaRecord = format!("2 1 1 {}", "ab".repeat(32)).parse().unwrap();
        world.dns.insert(hand_made.clone());
        let next = world.next.clone().unwrap();
        world.source = Some(CertFacts {
            key: next,
            fingerprint: "n".into(),
        });
        world.run();
        assert!(world.dns.contains(&hand_made));
    }

    /// Runs the plan until a step that `wanted` picks is due, and returns it
    /// without executing it.
    fn until(world: &mut World, wanted: impl Fn(&Step) -> bool) -> Step {
        loop {
            let decision = world.decide();
            match decision.step {
                Some(step) if wanted(&step) => return step,
                Some(step) => world.execute(&step),
                None => world.now = decision.wake_at.expect("waiting for something"),
            }
        }
    }

    fn roll_to_next(world: &mut World) {
        let next = world.next.clone().unwrap();
        world.source = Some(CertFacts {
            key: next,
            fingerprint: "n".into(),
        });
    }

    #[test]
    fn a_deploy_killed_before_its_reload_succeeded_is_redone_before_anything_is_verified() {
        let mut world = adopted(1);
        roll_to_next(&mut world);
        until(&mut world, |step| matches!(step, Step::Deploy { .. }));
        // The executor saves `reload_pending` before the files change; the
        // run dies after the files changed, before the reload succeeded.
        world.state.reload_pending = true;
        world.deployed = world.source.clone();
        let steps = world.run();
        assert_eq!(
            kinds(&steps),
            ["generate", "deploy", "verify", "retire", "await"]
        );
        assert!(matches!(steps[1], Step::Deploy { same_key: true, .. }));
        assert!(!world.state.reload_pending);
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn a_retire_killed_before_its_state_was_saved_leaves_no_stale_key() {
        let mut world = adopted(1);
        roll_to_next(&mut world);
        let Step::Retire { edits, .. } = until(&mut world, |s| matches!(s, Step::Retire { .. }))
        else {
            unreachable!()
        };
        // The change reaches DNS; the run dies before the state records it.
        for edit in &edits {
            world.dns = edit.tlsa_after(&world.dns);
        }
        let steps = world.run();
        let [Step::AwaitPropagation { removed, .. }] = &steps[..] else {
            panic!("{steps:?}")
        };
        assert_eq!(removed, &[key(1).id.clone()], "the removal is confirmed");
        assert!(
            !world.state.keys.contains_key(&key(1).id),
            "the old key is forgotten"
        );
        assert_eq!(world.state.keys.len(), 2, "live and next only");
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn nothing_is_retired_before_the_new_key_is_verified() {
        let mut world = adopted(1);
        let next = world.next.clone().unwrap();
        world.source = Some(CertFacts {
            key: next,
            fingerprint: "n".into(),
        });
        loop {
            let decision = world.decide();
            let Some(step) = decision.step else {
                world.now = decision.wake_at.expect("waiting for something");
                continue;
            };
            if let Step::Verify { .. } = step {
                break;
            }
            assert!(!matches!(step, Step::Retire { .. }));
            world.execute(&step);
        }
        // Verification fails (the server still presents the old key): the plan
        // keeps asking to verify and never retires.
        for _ in 0..3 {
            assert!(matches!(world.decide().step, Some(Step::Verify { .. })));
        }
        assert!(world.keys_in_dns().contains(key(1).short()));
    }

    #[test]
    fn a_fully_managed_rrset_keeps_the_retiring_key_while_a_new_key_is_published() {
        let mut world = adopted(1);
        world.fully_managed = true;
        roll_to_next(&mut world);
        until(&mut world, |step| matches!(step, Step::Verify { .. }));
        // Verification keeps failing; meanwhile the ACME client brings a
        // surprise key, whose publication replaces the whole RRset.
        world.source = Some(cert(9, 0));
        let Some(Step::Publish { edits, .. }) = world.decide().step else {
            panic!("expected a publish")
        };
        let after = edits[0].tlsa_after(&world.dns);
        assert!(
            world.policy.records_for_key(&key(1).spki).is_subset(&after),
            "the old key, still presented until verified, keeps its record"
        );
    }

    #[test]
    fn adding_and_removing_a_matching_type_keeps_every_key_usable() {
        let mut world = adopted(1);
        world.policy.matching = vec![Matching::Sha256, Matching::Sha512];
        let decision = world.decide();
        assert!(decision.alarms.is_empty(), "{:?}", decision.alarms);
        let steps = world.run();
        assert_eq!(kinds(&steps)[0], "publish", "{steps:?}");
        assert_eq!(world.dns.iter().filter(|r| r.matching == 2).count(), 2);
        world.policy.matching = vec![Matching::Sha256];
        let steps = world.run();
        assert_eq!(kinds(&steps), ["reconcile"]);
        assert!(world.dns.iter().all(|r| r.matching == 1));
        // A roll afterwards leaves no record of the old key of either type.
        roll_to_next(&mut world);
        world.run();
        world.assert_retired(1);
    }

    #[test]
    fn a_key_with_no_record_at_some_owner_is_never_deployed() {
        // The trial: a set rolled with the default matching, then
        // switched to no matching type at all (the config refuses this now;
        // the plan must hold on its own), then a roll to the next key.
        // The next key that goes live was made after the switch (here: its
        // file replaced), so no record of it was ever published.
        let mut world = adopted(1);
        world.policy.matching = Vec::new();
        world.next = Some(key(77));
        roll_to_next(&mut world);
        for _ in 0..50 {
            let decision = world.decide();
            match decision.step {
                Some(Step::Deploy { key, .. })
                    if !policy::key_usable(
                        &world.source.as_ref().unwrap().key.spki,
                        &world.dns,
                    ) =>
                {
                    panic!(
                        "deploy of key {} while the RRset is {:?}",
                        short(&key),
                        world.dns
                    )
                }
                Some(step) => world.execute(&step),
                None if decision.wake_at.is_some() => world.now = decision.wake_at.unwrap(),
                None => {
                    let why = decision.waiting.expect("a reason to wait");
                    assert!(why.contains("not deployed") && why.contains(OWNER), "{why}");
                    assert!(decision.alarms.is_empty(), "{:?}", decision.alarms);
                    break;
                }
            }
        }
        assert_eq!(
            world.deployed.as_ref().map(|d| d.key.id.clone()),
            Some(key(1).id),
            "the old key stays live"
        );
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    #[test]
    fn a_changed_ttl_is_applied_without_touching_the_records() {
        let mut world = adopted(1);
        world.ttl = Some(3600);
        let before = world.dns.clone();
        let Some(Step::Reconcile { edits }) = world.decide().step else {
            panic!("expected a reconcile")
        };
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].ttl, 60);
        world.execute(&Step::Reconcile { edits });
        assert_eq!(world.dns, before);
        assert_eq!(world.decide().step, None);
    }

    #[test]
    fn an_old_verification_is_repeated_before_anything_is_removed() {
        let mut world = adopted(1);
        roll_to_next(&mut world);
        let verify = until(&mut world, |step| matches!(step, Step::Verify { .. }));
        world.execute(&verify);
        world.now = world.now + VERIFIED_FRESH + Duration::from_secs(1);
        assert!(matches!(world.decide().step, Some(Step::Verify { .. })));
    }

    /// A set adopted while the server presents K0 and the ACME lineage
    /// holds K1 (nothing deployed by tlsa yet).
    fn adopting_k0_with_lineage_k1() -> World {
        let mut world = World::new(1);
        world.deployed = None;
        world.source = Some(cert(2, 0));
        world
    }

    #[test]
    fn adoption_publishes_the_presented_key_first_and_retires_it_only_once_the_new_one_is_seen() {
        let mut world = adopting_k0_with_lineage_k1();
        let generate = world.decide().step.unwrap();
        assert_eq!(generate, Step::GenerateNextKey);
        world.execute(&generate);
        let first = world.decide();
        let Some(Step::Publish { keys, .. }) = &first.step else {
            panic!("{first:?}")
        };
        assert_eq!(keys.len(), 3, "K0, K1 and the next key in one change");
        assert!(keys.contains(&key(1)), "the presented key K0 is published");
        assert!(keys.contains(&key(2)), "and the lineage's K1");
        assert!(first.alarms.is_empty(), "no RRset yet: nobody fails");
        let steps = world.run();
        assert!(world.log.is_empty(), "{:?}", world.log);
        assert_eq!(world.servers, [Some(key(2))]);
        let deploy = kinds(&steps).iter().position(|k| *k == "deploy").unwrap();
        let verify = kinds(&steps).iter().position(|k| *k == "verify").unwrap();
        let retire = kinds(&steps).iter().position(|k| *k == "retire").unwrap();
        assert!(deploy < verify && verify < retire, "{:?}", kinds(&steps));
        assert!(!world.keys_in_dns().contains(key(1).short()), "K0 retired");
    }

    #[test]
    fn a_reload_that_does_nothing_fails_verification_and_keeps_the_presented_key() {
        let mut world = adopted(1);
        world.deaf = vec![true];
        roll_to_next(&mut world);
        let steps = world.run();
        assert_eq!(kinds(&steps).last(), Some(&"verify"), "{:?}", kinds(&steps));
        assert!(world.state.verified.is_none());
        assert!(world.state.reload_pending, "the next run reloads again");
        assert!(world.keys_in_dns().contains(key(1).short()), "K0 kept");
        // Every later run redoes the reload and checks again; nothing is removed.
        for _ in 0..3 {
            let steps = world.run();
            assert_eq!(kinds(&steps), ["deploy", "verify"]);
            assert!(world.keys_in_dns().contains(key(1).short()));
        }
        // The reload is fixed: the next run completes the roll.
        world.deaf = vec![false];
        let steps = world.run();
        assert_eq!(kinds(&steps), ["deploy", "verify", "retire", "await"]);
        world.assert_retired(1);
    }

    #[test]
    fn a_key_changed_by_hand_is_an_alarm_and_is_published() {
        let mut world = adopted(1);
        world.servers = vec![Some(key(9))];
        world.check_invariant();
        assert!(!world.log.is_empty(), "the hand change broke DANE");
        let decision = world.decide();
        assert!(
            matches!(&decision.alarms[..], [Alarm::UnmatchedPresentedKey { key: k, publishing: true, addresses, .. }] if *k == key(9).id && addresses == &["192.0.2.1:25"]),
            "{decision:?}"
        );
        let Some(Step::Publish { keys, .. }) = &decision.step else {
            panic!("{decision:?}")
        };
        assert!(keys.contains(&key(9)));
    }

    #[test]
    fn with_on_unmatched_key_alarm_a_key_changed_by_hand_is_only_an_alarm() {
        let mut world = adopted(1);
        world.publish_unmatched = false;
        world.servers = vec![Some(key(9))];
        let decision = world.decide();
        assert!(
            matches!(
                &decision.alarms[..],
                [Alarm::UnmatchedPresentedKey {
                    publishing: false,
                    ..
                }]
            ),
            "{decision:?}"
        );
        let published = decision
            .step
            .as_ref()
            .and_then(Step::edits)
            .is_some_and(|edits| {
                edits.iter().any(|e| {
                    e.add
                        .iter()
                        .filter_map(Rdata::as_tlsa)
                        .any(|r| r.data == hex::decode(&key(9).id).unwrap())
                })
            });
        assert!(!published, "{decision:?}");
    }

    #[test]
    fn no_retire_until_every_address_presents_the_new_key() {
        let mut world = adopted(1);
        world.servers = vec![Some(key(1)), Some(key(1))];
        world.deaf = vec![false, true];
        roll_to_next(&mut world);
        let steps = world.run();
        assert!(!kinds(&steps).contains(&"retire"), "{:?}", kinds(&steps));
        assert!(world.keys_in_dns().contains(key(1).short()));
        world.deaf = vec![false, false];
        world.run();
        world.assert_retired(1);
    }

    #[test]
    fn an_address_that_cannot_be_observed_blocks_the_retire() {
        let mut world = adopted(1);
        world.servers = vec![Some(key(1)), Some(key(1))];
        world.deaf = vec![false, false];
        roll_to_next(&mut world);
        let verify = until(&mut world, |s| matches!(s, Step::Verify { .. }));
        world.execute(&verify);
        world.servers[1] = None;
        let decision = world.decide();
        assert_eq!(
            decision.step, None,
            "no retire, and no failed deploy either"
        );
        assert!(
            decision
                .waiting
                .as_ref()
                .is_some_and(|w| w.contains("once every address can be observed")),
            "{decision:?}"
        );
        assert!(
            decision.notices.iter().any(|n| n.contains("192.0.2.2:25")),
            "{:?}",
            decision.notices
        );
    }

    #[test]
    fn a_deployed_key_no_longer_presented_is_verified_again() {
        let mut world = adopted(1);
        assert!(world.state.verified.is_some());
        assert_eq!(world.decide().step, None);
        world.servers = vec![Some(world.next.clone().unwrap())];
        assert!(matches!(world.decide().step, Some(Step::Verify { .. })));
    }

    #[test]
    fn more_than_twelve_records_at_an_owner_is_a_notice() {
        let mut world = adopted(1);
        assert!(world.decide().notices.is_empty());
        world.policy.matching = vec![Matching::Sha256, Matching::Sha512];
        for n in 50..60 {
            let record =
                TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, &[n; 16]);
            world.dns.insert(record);
        }
        let notices = world.decide().notices;
        assert!(
            notices
                .iter()
                .any(|n| n.contains("14 records") && n.contains("past 12")),
            "{notices:?}"
        );
    }

    #[test]
    fn issuer_records_are_published_beside_the_keys() {
        let mut world = World::new(1);
        let issuer: TlsaRecord = format!("2 1 1 {}", "cd".repeat(32)).parse().unwrap();
        world.policy.issuer_records = BTreeSet::from([issuer.clone()]);
        world.run();
        assert!(world.dns.contains(&issuer));
        roll_to_next(&mut world);
        world.run();
        assert!(world.dns.contains(&issuer), "never rolled");
        world.assert_retired(1);
    }

    #[test]
    fn a_deploy_target_holding_an_unpresented_key_is_reloaded_only_once_that_key_is_safe() {
        // Adopted with the deploy target already holding K2 while the server
        // still presents K1 (never reloaded since): K2 must not go live early.
        let mut world = World::new(1);
        world.deployed = Some(cert(2, 0));
        world.source = Some(cert(2, 0));
        let steps = world.run();
        let deploy = steps
            .iter()
            .position(|s| matches!(s, Step::Deploy { .. }))
            .expect("deployed once safe");
        assert!(
            !steps[..deploy]
                .iter()
                .any(|s| matches!(s, Step::Verify { .. })),
            "no verification (and no alarm) before the key may be presented: {:?}",
            kinds(&steps)
        );
        assert_eq!(world.servers, [Some(key(2))]);
        assert!(!world.keys_in_dns().contains(key(1).short()), "K1 retired");
        assert!(world.log.is_empty(), "{:?}", world.log);
    }

    /// A fully managed set that must publish a new key now, with the world
    /// as `prepare` leaves it: the RRset the publish results in.
    fn fully_managed_publish(prepare: impl FnOnce(&mut World)) -> BTreeSet<TlsaRecord> {
        let mut world = adopted(1);
        world.fully_managed = true;
        prepare(&mut world);
        // The ACME client brings a new key: published at once.
        world.source = Some(cert(5, 0));
        let decision = world.decide();
        let Some(Step::Publish { edits, .. }) = &decision.step else {
            panic!("a publish of the new key: {decision:?}")
        };
        assert!(edits[0].replace_all || !world.presented().iter().all(|p| p.key.is_ok()));
        edits[0].tlsa_after(&world.dns)
    }

    #[test]
    fn a_fully_managed_rrset_keeps_a_presented_key_tlsa_does_not_publish() {
        let by_hand = world_key_records(9);
        let after = fully_managed_publish(|world| {
            // A key changed by hand, published by the operator as the alarm says.
            world.publish_unmatched = false;
            world.servers = vec![Some(key(9))];
            world.dns.extend(by_hand.clone());
        });
        assert!(after.is_superset(&by_hand), "{after:?}");
    }

    #[test]
    fn a_fully_managed_rrset_is_not_replaced_while_an_address_is_unobserved() {
        let foreign: TlsaRecord = format!("3 1 1 {}", "ee".repeat(32)).parse().unwrap();
        let after = fully_managed_publish(|world| {
            world.servers = vec![Some(key(1)), None];
            world.deaf = vec![false, false];
            world.dns.insert(foreign.clone());
        });
        assert!(
            after.contains(&foreign),
            "the unobserved address may present it"
        );
    }

    fn world_key_records(n: u8) -> BTreeSet<TlsaRecord> {
        RecordPolicy::default().records_for_key(&key(n).spki)
    }

    #[test]
    fn an_unmatched_key_with_nothing_to_publish_does_not_loop() {
        let mut world = adopted(1);
        // A foreign 3 1 2 makes every key without one unusable for a client
        // that prefers SHA-512 (RFC 7671 §9); tlsa publishes only 3 1 1.
        let foreign =
            TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha512, &[77; 16]);
        world.dns.insert(foreign);
        let decision = world.decide();
        assert!(decision.emergency(), "{decision:?}");
        world.run(); // settles (no endless empty publish)
    }

    #[test]
    fn a_key_whose_records_are_gone_is_not_forgotten_while_an_address_is_unobserved() {
        let mut world = adopted(1);
        world.servers = vec![Some(key(1)), None];
        world.deaf = vec![false, false];
        let stray = key(42);
        world
            .state
            .keys
            .insert(stray.id.clone(), KeyState::new(&stray.spki, world.now));
        assert!(
            !matches!(world.decide().step, Some(Step::AwaitPropagation { ref removed, .. }) if removed.contains(&stray.id)),
            "kept while an address may still present it"
        );
        world.servers[1] = Some(key(1));
        assert!(matches!(
            world.decide().step,
            Some(Step::AwaitPropagation { ref removed, .. }) if removed.contains(&stray.id)
        ));
    }

    #[test]
    fn a_hand_edited_key_id_does_not_panic() {
        assert_eq!(short("ééééééééééééééééééé"), "éééééééééééééééé");
        assert_eq!(short("ab"), "ab");
    }
}
