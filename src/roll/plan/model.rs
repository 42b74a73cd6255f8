//! The plan's vocabulary: what it is shown ([`View`]: the keys with their
//! material, the certificate files' facts, what each address presents, the
//! state and the time), what it can ask for ([`Step`], with the wording the
//! timeline keeps), and what it answers ([`Decision`]: the step due, when
//! to look again, the alarms and notices). The decisions themselves are
//! [`super::decide`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::config::ManualStep;
use crate::dns::Edit;
use crate::roll::policy::RecordPolicy;
use crate::roll::state::{KeyId, SetState, Timestamp};
use crate::tlsa::{Matching, Selector, TlsaRecord, Usage};

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

/// What one address of one endpoint presented when it was last observed:
/// the leaf's key, or why no key was seen (unreachable, no TLS, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedAt {
    /// For people: `mail.example.com:25 at 192.0.2.1:25`, or the deploy
    /// target for sets that are not observed live.
    pub address: String,
    pub key: Result<KeyMaterial, String>,
}

/// Everything the plan looks at for one certificate set.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// Owner names of the set's endpoints, absolute and lower-case
    /// (`_25._tcp.mail.example.com.`): the names the edits go to.
    pub owners: Vec<Name>,
    pub policy: &'a RecordPolicy,
    /// Replace whole RRsets instead of editing only tlsa's own records.
    pub fully_managed: bool,
    pub ttl: u32,
    /// What the deploy target holds (what a reload makes the server use).
    pub deployed: Option<CertFacts>,
    /// The newest certificate from the ACME client or the staged roll.
    pub source: Option<CertFacts>,
    /// The pre-published next key: tlsa's own (if one exists on disk), or
    /// the other lineage's of a certbot pair.
    pub next: Option<KeyMaterial>,
    /// tlsa generates next keys itself (not for a certbot pair, whose next
    /// key comes from the other lineage).
    pub generates_next: bool,
    /// What every address of every endpoint presents, observed this run
    /// (for `verify = "deployed-files"` sets: the deploy target's key).
    pub presented: Vec<PresentedAt>,
    /// A presented key tlsa did not expect gets its records published
    /// (`on_unmatched_key = "publish"`); otherwise it is only an alarm.
    pub publish_unmatched: bool,
    /// The TLSA RRset of each owner as the primary / provider serves it.
    pub dns: BTreeMap<Name, BTreeSet<TlsaRecord>>,
    /// The TTL each owner's RRset is served with (`None`: no RRset, or unknown).
    pub ttls: BTreeMap<Name, Option<u32>>,
    pub state: &'a SetState,
    pub now: Timestamp,
}

/// The one step due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Publish records that must be in DNS and are not.
    Publish {
        keys: Vec<KeyMaterial>,
        edits: Vec<Edit>,
    },
    /// Wait until every authoritative server serves what the primary serves,
    /// then record `propagated_at`/`safe_at` for `keys` and forget the
    /// `removed` keys, whose removal is then confirmed everywhere.
    AwaitPropagation {
        keys: Vec<KeyMaterial>,
        removed: Vec<KeyId>,
    },
    /// Generate and store a new next key (no DNS change yet).
    GenerateNextKey,
    /// Put the source certificate into service and reload the server.
    Deploy { key: KeyId, same_key: bool },
    /// Check, live, that every address presents the deployed key (after
    /// every deploy, and before anything is removed).
    Verify { key: KeyId },
    /// Remove the records of keys no longer in service (`keys`) and add
    /// whatever else is missing (`added`, such as a fresh next key) in one
    /// change set.
    Retire {
        keys: Vec<KeyId>,
        added: Vec<KeyMaterial>,
        edits: Vec<Edit>,
    },
    /// Bring the RRsets in line with the config without adding or removing
    /// a key: a changed TTL, or records of a matching type no longer listed.
    Reconcile { edits: Vec<Edit> },
}

impl Step {
    /// Whether the config marks this kind of step as manual (`tlsa run
    /// --confirm` performs it).
    pub fn is_manual(&self, manual: &[ManualStep]) -> bool {
        manual.iter().any(|m| {
            matches!(
                (m, self),
                (
                    ManualStep::Publish,
                    Step::Publish { .. } | Step::Reconcile { .. }
                ) | (ManualStep::Deploy, Step::Deploy { .. })
                    | (ManualStep::Retire, Step::Retire { .. })
            )
        })
    }

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

/// The steps of a roll that change what senders see (records or the key
/// presented), as the timeline records them: what TLS-RPT reports are
/// compared with (`tlsa status`, `tlsa check -c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Publish,
    Deploy,
    Retire,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Publish => "publish",
            StepKind::Deploy => "deploy",
            StepKind::Retire => "retire",
        }
    }

    /// The kind of step a timeline line records; the line is the step's
    /// `Display` (below), which is what the state keeps.
    pub fn of_event(what: &str) -> Option<StepKind> {
        if what.starts_with("publish records for key") {
            Some(StepKind::Publish)
        } else if what.starts_with("deploy ") {
            Some(StepKind::Deploy)
        } else if what.starts_with("retire key") {
            Some(StepKind::Retire)
        } else {
            None
        }
    }
}

impl Step {
    pub fn kind(&self) -> Option<StepKind> {
        match self {
            Step::Publish { .. } => Some(StepKind::Publish),
            Step::Deploy { .. } => Some(StepKind::Deploy),
            Step::Retire { .. } => Some(StepKind::Retire),
            _ => None,
        }
    }
}

fn ids(keys: &[KeyMaterial]) -> Vec<&str> {
    keys.iter().map(KeyMaterial::short).collect()
}

impl fmt::Display for Step {
    /// One line for progress output and the timeline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |keys: Vec<&str>| keys.join(", ");
        let shorts = |keys: &[KeyId]| list(keys.iter().map(|k| short(k)).collect());
        match self {
            Step::Publish { keys, edits } => write!(
                f,
                "publish records for key {} at {} owner name(s)",
                list(ids(keys)),
                edits.len()
            ),
            Step::AwaitPropagation { keys, removed } if removed.is_empty() => write!(
                f,
                "propagation to every authoritative server: key {}",
                list(ids(keys))
            ),
            Step::AwaitPropagation { keys, removed } if keys.is_empty() => write!(
                f,
                "propagation to every authoritative server: key {} removed",
                shorts(removed)
            ),
            Step::AwaitPropagation { keys, removed } => write!(
                f,
                "propagation to every authoritative server: key {} present, key {} removed",
                list(ids(keys)),
                shorts(removed)
            ),
            Step::GenerateNextKey => f.write_str("generate a new next key"),
            Step::Deploy {
                key,
                same_key: true,
            } => write!(
                f,
                "deploy the renewed certificate (same key {})",
                short(key)
            ),
            Step::Deploy { key, .. } => write!(f, "deploy key {} (goes live)", short(key)),
            Step::Verify { key } => {
                write!(f, "verify that every address presents key {}", short(key))
            }
            Step::Retire { keys, added, .. } if added.is_empty() => {
                write!(f, "retire key {}", shorts(keys))
            }
            Step::Retire { keys, added, .. } => write!(
                f,
                "retire key {} and publish key {} in one change",
                shorts(keys),
                list(ids(added))
            ),
            Step::Reconcile { edits } => write!(
                f,
                "bring {} RRset(s) in line with the config (TTL, matching types)",
                edits.len()
            ),
        }
    }
}

/// Owner names for people: `a., b.`, in their ASCII form.
pub fn names_text(names: &[Name]) -> String {
    let texts: Vec<String> = names.iter().map(Name::to_ascii).collect();
    texts.join(", ")
}

/// Something an operator must hear about, loudly: a validating sender may
/// fail now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// A key some address presents has no usable record in some owner's
    /// served RRset: DANE senders that hold that RRset refuse mail now.
    UnmatchedPresentedKey {
        key: KeyId,
        addresses: Vec<String>,
        owners: Vec<Name>,
        /// Its records are being published (`on_unmatched_key = "publish"`).
        publishing: bool,
    },
}

impl fmt::Display for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alarm::UnmatchedPresentedKey {
                key,
                addresses,
                owners,
                publishing,
            } => {
                write!(
                    f,
                    "key {} presented by {} has no usable TLSA record at {}: DANE-validating senders refuse delivery there",
                    short(key),
                    addresses.join(", "),
                    names_text(owners)
                )?;
                if *publishing {
                    f.write_str(
                        "; its records are published now and the refusals stop once caches expire",
                    )
                } else {
                    f.write_str(
                        "; on_unmatched_key = \"alarm\": tlsa does not publish it; put the expected certificate back in service, or publish the key (`tlsa hash`)",
                    )
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub step: Option<Step>,
    /// When the plan may have something to do next, if nothing is due now.
    pub wake_at: Option<Timestamp>,
    pub alarms: Vec<Alarm>,
    /// Things worth telling that are handled safely (exit 0): a new key
    /// from the ACME client held back until it is safe, an address that
    /// could not be observed while nothing depended on it.
    pub notices: Vec<String>,
    /// Why the plan is waiting, for people.
    pub waiting: Option<String>,
}

impl Decision {
    pub(super) fn step(step: Step, alarms: Vec<Alarm>, notices: Vec<String>) -> Self {
        Decision {
            step: Some(step),
            wake_at: None,
            alarms,
            notices,
            waiting: None,
        }
    }

    pub(super) fn idle(alarms: Vec<Alarm>, notices: Vec<String>) -> Self {
        Decision {
            step: None,
            wake_at: None,
            alarms,
            notices,
            waiting: None,
        }
    }

    /// Whether some alarm says a presented key is unmatched right now.
    pub fn emergency(&self) -> bool {
        self.alarms
            .iter()
            .any(|a| matches!(a, Alarm::UnmatchedPresentedKey { .. }))
    }
}
