//! The roll plan: a pure function from what the files hold, what DNS serves,
//! what the state remembers and the time, to the one step that is due now
//! (or when the next one will be). The executor performs that step, observes
//! again and asks again, so a crash between any two steps only repeats a
//! look: every decision is re-derived from the world, never from a cursor.
//!
//! The rule behind every branch is the safety invariant of DESIGN.md §2: a
//! key may be presented only once every RRset a resolver may still cache
//! contains it (its `safe_at`), and a record may be removed only once no
//! server presents its key any more.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::dns::Edit;
use crate::tlsa::{Matching, Selector, TlsaRecord, Usage};

use std::time::Duration;

use super::policy::{self, RecordPolicy};
use super::state::{KeyId, SetState, Timestamp};

/// How long a live check counts: old records are removed only after a
/// recent one, so a server changed since (by hand, by a restore) is seen.
pub const VERIFIED_FRESH: Duration = Duration::from_secs(600);

/// A public key as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub id: KeyId,
    pub spki: Vec<u8>,
}

impl KeyMaterial {
    pub fn from_spki(spki: &[u8]) -> Self {
        let id = TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, spki);
        KeyMaterial {
            id: id.data_hex(),
            spki: spki.to_vec(),
        }
    }

    /// The first 16 hex digits, enough for people to tell keys apart.
    pub fn short(&self) -> &str {
        short(&self.id)
    }
}

pub fn short(id: &str) -> &str {
    // By characters: a hand-edited state may hold anything, and must not panic.
    id.char_indices().nth(16).map_or(id, |(end, _)| &id[..end])
}

/// A certificate with its key: the one deployed, or a newer one from the
/// ACME client (the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub key: KeyMaterial,
    /// SHA-256 of the leaf certificate, hex: tells a renewal from the old one.
    pub fingerprint: String,
}

/// Everything the plan looks at for one certificate set.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// Owner names of the set's endpoints, absolute (`_25._tcp.mail.example.com.`).
    pub owners: Vec<String>,
    pub policy: &'a RecordPolicy,
    /// Replace whole RRsets instead of editing only tlsa's own records.
    pub fully_managed: bool,
    pub ttl: u32,
    /// What the server uses now (the deploy target).
    pub deployed: Option<CertFacts>,
    /// The newest certificate from the ACME client or the staged roll.
    pub source: Option<CertFacts>,
    /// The pre-published next key: tlsa's own (if one exists on disk), or
    /// the other lineage's of a certbot pair.
    pub next: Option<KeyMaterial>,
    /// tlsa generates next keys itself (not for a certbot pair, whose next
    /// key comes from the other lineage).
    pub generates_next: bool,
    /// The TLSA RRset of each owner as the primary / provider serves it.
    pub dns: BTreeMap<String, BTreeSet<TlsaRecord>>,
    /// The TTL each owner's RRset is served with (`None`: no RRset, or unknown).
    pub ttls: BTreeMap<String, Option<u32>>,
    pub state: &'a SetState,
    pub now: Timestamp,
}

/// The one step due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Publish records that must be in DNS and are not.
    Publish { keys: Vec<KeyId>, edits: Vec<Edit> },
    /// Wait until every authoritative server serves what the primary serves,
    /// then record `propagated_at`/`safe_at` for `keys` and forget the
    /// `removed` keys, whose removal is then confirmed everywhere.
    AwaitPropagation {
        keys: Vec<KeyId>,
        removed: Vec<KeyId>,
    },
    /// Generate and store a new next key (no DNS change yet).
    GenerateNextKey,
    /// Put the source certificate into service and reload the server.
    Deploy { key: KeyId, same_key: bool },
    /// Check that every address presents the deployed key.
    Verify { key: KeyId },
    /// Remove the records of keys no longer in service (`keys`) and add
    /// whatever else is missing (`added`, such as a fresh next key) in one
    /// change set.
    Retire {
        keys: Vec<KeyId>,
        added: Vec<KeyId>,
        edits: Vec<Edit>,
    },
    /// Bring the RRsets in line with the config without adding or removing
    /// a key: a changed TTL, or records of a matching type no longer listed.
    Reconcile { edits: Vec<Edit> },
}

impl Step {
    /// The DNS change this step makes, if any.
    pub fn edits(&self) -> Option<&[Edit]> {
        match self {
            Step::Publish { edits, .. }
            | Step::Retire { edits, .. }
            | Step::Reconcile { edits } => Some(edits),
            _ => None,
        }
    }
}

/// Something an operator must hear about, loudly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// The key in service has no record in some owner's RRset: DANE
    /// senders are refusing mail right now.
    LiveKeyUnpublished { key: KeyId, owners: Vec<String> },
    /// The ACME client produced a key nobody pre-published; it is being
    /// published and will be deployed at `safe_at`.
    UnpreparedNewKey { key: KeyId },
}

impl fmt::Display for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alarm::LiveKeyUnpublished { key, owners } => write!(
                f,
                "the key in service ({}) has no TLSA record at {}: DANE-validating senders refuse delivery until the record is published and caches expire",
                short(key),
                owners.join(", ")
            ),
            Alarm::UnpreparedNewKey { key } => write!(
                f,
                "the ACME client produced a new key ({}) that was not pre-published: it is published now, and the current certificate stays in service until the new record is safe",
                short(key)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub step: Option<Step>,
    /// When the plan may have something to do next, if nothing is due now.
    pub wake_at: Option<Timestamp>,
    pub alarms: Vec<Alarm>,
    /// Why the plan is waiting, for people.
    pub waiting: Option<String>,
}

impl Decision {
    fn step(step: Step, alarms: Vec<Alarm>) -> Self {
        Decision {
            step: Some(step),
            wake_at: None,
            alarms,
            waiting: None,
        }
    }
}

impl View<'_> {
    /// The next key, unless it has gone live (then a fresh one is due: it is
    /// generated after the deploy, so that its records go out together with
    /// the old key's removal).
    fn next(&self) -> Option<&KeyMaterial> {
        let live = |id: &str| self.deployed.as_ref().is_some_and(|c| c.key.id == id);
        self.next.as_ref().filter(|n| !live(&n.id))
    }

    /// Keys that must have records now: in service, arriving, and next.
    fn wanted(&self) -> Vec<&KeyMaterial> {
        let mut keys: Vec<&KeyMaterial> = Vec::new();
        let candidates = [
            self.deployed.as_ref().map(|c| &c.key),
            self.source.as_ref().map(|c| &c.key),
            self.next(),
        ];
        for key in candidates.into_iter().flatten() {
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        keys
    }

    /// Owner names whose RRset lacks some record of this key.
    fn owners_missing(&self, spki: &[u8]) -> Vec<String> {
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

    /// Owner names where a DANE client could not match this key: the
    /// emergency test (see [`policy::key_usable`]).
    fn owners_unusable(&self, spki: &[u8]) -> Vec<String> {
        let empty = BTreeSet::new();
        self.owners
            .iter()
            .filter(|owner| !policy::key_usable(spki, self.dns.get(*owner).unwrap_or(&empty)))
            .cloned()
            .collect()
    }

    /// Keys tlsa knows whose records are still served but that are no longer
    /// wanted: the old key after a roll, an abandoned next key.
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
                if self.fully_managed {
                    owner_add.extend(
                        staying
                            .iter()
                            .flat_map(|spki| self.policy.records_for_key(spki))
                            .filter(|r| current.contains(r)),
                    );
                }
                let edit = Edit {
                    owner: owner.parse().ok()?,
                    add: owner_add,
                    remove: removed.union(&stale).cloned().collect(),
                    replace_all: self.fully_managed,
                    ttl: self.ttl,
                };
                let ttl_differs = !current.is_empty()
                    && self
                        .ttls
                        .get(owner)
                        .copied()
                        .flatten()
                        .is_some_and(|t| t != self.ttl);
                (edit.desired_from(current) != *current || ttl_differs).then_some(edit)
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
}

/// The step due now for one set.
pub fn decide(view: &View<'_>) -> Decision {
    let mut alarms = Vec::new();
    let wanted = view.wanted();
    let missing: Vec<&KeyMaterial> = wanted
        .iter()
        .copied()
        .filter(|k| !view.owners_missing(&k.spki).is_empty())
        .collect();
    let retiring = view.retiring();

    // 1. The key in service unpublished: an outage in progress. Publish
    //    everything missing at once, before anything else.
    if let Some(live) = &view.deployed {
        let owners = view.owners_unusable(&live.key.spki);
        if !owners.is_empty() {
            alarms.push(Alarm::LiveKeyUnpublished {
                key: live.key.id.clone(),
                owners,
            });
            return Decision::step(publish(view, &missing), alarms);
        }
    }
    if let Some(source) = &view.source {
        let unprepared = !view.state.keys.contains_key(&source.key.id)
            && view
                .deployed
                .as_ref()
                .is_some_and(|d| d.key.id != source.key.id)
            && view.next.as_ref().is_none_or(|n| n.id != source.key.id);
        if unprepared {
            alarms.push(Alarm::UnpreparedNewKey {
                key: source.key.id.clone(),
            });
        }
    }

    // 2. A next key is always kept ready (once the one we had went live), so
    //    that its records go out with the first publication or the retire.
    if view.next().is_none() && view.generates_next {
        return Decision::step(Step::GenerateNextKey, alarms);
    }

    // 3. Records of keys arriving or in service go out at once. A lone next
    //    key waits for the retire step when one is pending, so that the old
    //    key's removal and the new next key's addition are one change set.
    let urgent: Vec<&KeyMaterial> = missing
        .iter()
        .copied()
        .filter(|k| {
            let is_source = view.source.as_ref().is_some_and(|s| s.key.id == k.id);
            retiring.is_empty() || is_source || view.next().is_none_or(|n| n.id != k.id)
        })
        .collect();
    if !urgent.is_empty() {
        return Decision::step(publish(view, &missing), alarms);
    }

    // 4. Published but not yet seen everywhere: wait for propagation and
    //    record when it is safe. Removals are confirmed the same way.
    let unconfirmed: Vec<KeyId> = wanted
        .iter()
        .filter(|k| view.owners_missing(&k.spki).is_empty())
        .filter(|k| {
            view.state
                .keys
                .get(&k.id)
                .is_none_or(|s| s.propagated_at.is_none())
        })
        .map(|k| k.id.clone())
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
        );
    }

    // 5. A newer certificate from the source: same key deploys at once; a
    //    new key only once every cache holds a record for it. A deploy whose
    //    reload never succeeded (killed, or the command failed) is redone:
    //    the server may still use the previous files.
    if let (Some(source), deployed) = (&view.source, &view.deployed)
        && (view.state.reload_pending
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
        match safe_at {
            _ if same_key => return Decision::step(deploy, alarms),
            Some(at) if at <= view.now => return Decision::step(deploy, alarms),
            Some(at) => {
                return Decision {
                    step: None,
                    wake_at: Some(at),
                    alarms,
                    waiting: Some(format!(
                        "the new key {} goes live once every cache holds its record",
                        source.key.short()
                    )),
                };
            }
            // A hand-edited state may lack the time: confirm propagation again.
            None => {
                return Decision::step(
                    Step::AwaitPropagation {
                        keys: vec![source.key.id.clone()],
                        removed: Vec::new(),
                    },
                    alarms,
                );
            }
        }
    }

    // 6. Old keys leave DNS only once the server is seen presenting the new
    //    key on every address.
    if !retiring.is_empty() {
        let Some(live) = view.deployed.as_ref().map(|d| d.key.id.clone()) else {
            return Decision::default_idle(alarms);
        };
        if !view.verified(&live) {
            return Decision::step(Step::Verify { key: live }, alarms);
        }
        let spkis: Vec<Vec<u8>> = retiring.iter().map(|(_, spki)| spki.clone()).collect();
        return Decision::step(
            Step::Retire {
                keys: retiring.into_iter().map(|(id, _)| id).collect(),
                added: missing.iter().map(|k| k.id.clone()).collect(),
                edits: view.edits(&spkis),
            },
            alarms,
        );
    }

    // 7. A lone next key waiting for a retire that is no longer pending.
    if !missing.is_empty() {
        return Decision::step(publish(view, &missing), alarms);
    }

    // 8. A TTL or the matching types changed in the config.
    let edits = view.edits(&[]);
    if !edits.is_empty() {
        return Decision::step(Step::Reconcile { edits }, alarms);
    }
    Decision::default_idle(alarms)
}

impl Decision {
    fn default_idle(alarms: Vec<Alarm>) -> Self {
        Decision {
            step: None,
            wake_at: None,
            alarms,
            waiting: None,
        }
    }
}

fn publish(view: &View<'_>, missing: &[&KeyMaterial]) -> Step {
    Step::Publish {
        keys: missing.iter().map(|k| k.id.clone()).collect(),
        edits: view.edits(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::state::{KeyState, Verified};
    use crate::tlsa::Matching;

    const OWNER: &str = "_25._tcp.mail.example.com.";

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
        /// Records served at each instant a key was in service.
        log: Vec<String>,
    }

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
                log: Vec::new(),
            }
        }

        fn decide(&self) -> Decision {
            let view = View {
                owners: vec![OWNER.to_string()],
                policy: &self.policy,
                fully_managed: self.fully_managed,
                generates_next: true,
                ttl: 60,
                deployed: self.deployed.clone(),
                source: self.source.clone(),
                next: self.next.clone(),
                dns: BTreeMap::from([(OWNER.to_string(), self.dns.clone())]),
                ttls: BTreeMap::from([(OWNER.to_string(), self.ttl)]),
                state: &self.state,
                now: self.now,
            };
            decide(&view)
        }

        fn spki_of(&self, id: &str) -> Vec<u8> {
            [
                self.deployed.as_ref().map(|c| &c.key),
                self.source.as_ref().map(|c| &c.key),
                self.next.as_ref(),
            ]
            .into_iter()
            .flatten()
            .find(|k| k.id == id)
            .map(|k| k.spki.clone())
            .or_else(|| {
                self.state
                    .keys
                    .get(id)
                    .map(|k| hex::decode(&k.spki).unwrap())
            })
            .unwrap()
        }

        /// Applies one step; returns it for the test to look at.
        fn execute(&mut self, step: &Step) {
            match step {
                Step::Reconcile { edits } => {
                    for edit in edits {
                        self.dns = edit.desired_from(&self.dns);
                        self.ttl = Some(edit.ttl);
                    }
                }
                Step::Publish { keys, edits } | Step::Retire { keys, edits, .. } => {
                    for edit in edits {
                        self.dns = edit.desired_from(&self.dns);
                        self.ttl = Some(edit.ttl);
                    }
                    if let Step::Retire { keys, .. } = step {
                        for id in keys {
                            self.state.keys.get_mut(id).unwrap().removed_at = Some(self.now);
                        }
                    } else {
                        for id in keys {
                            let spki = hex::encode(self.spki_of(id));
                            self.state.keys.entry(id.clone()).or_insert(KeyState {
                                spki,
                                first_seen: self.now,
                                published_at: None,
                                prior_ttl: None,
                                prior_absent: false,
                                propagated_at: None,
                                safe_at: None,
                                removed_at: None,
                            });
                        }
                    }
                }
                Step::AwaitPropagation { keys, removed } => {
                    self.now = self.now + Duration::from_secs(1);
                    for id in keys {
                        let spki = hex::encode(self.spki_of(id));
                        let entry = self.state.keys.entry(id.clone()).or_insert(KeyState {
                            spki,
                            first_seen: self.now,
                            published_at: None,
                            prior_ttl: None,
                            prior_absent: false,
                            propagated_at: None,
                            safe_at: None,
                            removed_at: None,
                        });
                        entry.propagated_at = Some(self.now);
                        entry.safe_at = Some(self.now + Duration::from_secs(60));
                    }
                    for id in removed {
                        self.state.keys.remove(id);
                    }
                }
                Step::GenerateNextKey => {
                    self.generated += 1;
                    self.next = Some(key(self.generated));
                }
                Step::Deploy { key, same_key } => {
                    let safe_at = self.state.keys.get(key).and_then(|k| k.safe_at);
                    if !same_key && safe_at.is_none_or(|at| at > self.now) {
                        self.log.push(format!(
                            "at {} deployed {} before it was safe",
                            self.now,
                            short(key)
                        ));
                    }
                    self.deployed = self.source.clone();
                    self.state.reload_pending = false;
                }
                Step::Verify { key } => {
                    self.state.verified = Some(Verified {
                        key: key.clone(),
                        at: self.now,
                    })
                }
            }
            self.check_invariant();
        }

        /// The deployed key must be in the RRset unless the test made an emergency.
        fn check_invariant(&mut self) {
            if let Some(d) = &self.deployed
                && !policy::key_usable(&d.key.spki, &self.dns)
            {
                self.log.push(format!(
                    "at {} the live key {} is unpublished",
                    self.now,
                    d.key.short()
                ));
            }
        }

        /// Runs decide/execute until nothing is due, advancing time to wake-ups;
        /// returns the steps taken.
        fn run(&mut self) -> Vec<Step> {
            let mut steps = Vec::new();
            for _ in 0..50 {
                let decision = self.decide();
                match (decision.step, decision.wake_at) {
                    (Some(step), _) => {
                        self.execute(&step);
                        steps.push(step);
                    }
                    (None, Some(at)) => self.now = at,
                    (None, None) => return steps,
                }
            }
            panic!("the plan did not settle: {steps:?}");
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
        assert_eq!(kinds(&steps), ["generate", "publish", "await"]);
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
        assert_eq!(kinds(&steps), ["deploy"]);
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
            edits[0].remove,
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
        assert!(matches!(first.alarms[..], [Alarm::UnpreparedNewKey { .. }]));
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
        world.dns.clear();
        let decision = world.decide();
        assert!(matches!(
            decision.alarms[..],
            [Alarm::LiveKeyUnpublished { .. }]
        ));
        let Some(Step::Publish { edits, .. }) = decision.step else {
            panic!("{decision:?}")
        };
        assert!(
            edits[0]
                .add
                .is_superset(&world.policy.records_for_key(&key(1).spki))
        );
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
            matches!(&decision.step, Some(Step::Publish { keys, .. }) if keys.contains(&fresh.id)),
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
            world.dns = edit.desired_from(&world.dns);
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
        let after = edits[0].desired_from(&world.dns);
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
        assert!(!world.keys_in_dns().contains(key(1).short()));
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

    #[test]
    fn a_hand_edited_key_id_does_not_panic() {
        assert_eq!(short("ééééééééééééééééééé"), "éééééééééééééééé");
        assert_eq!(short("ab"), "ab");
    }
}
