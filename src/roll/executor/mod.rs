//! The executor: observes files and DNS, asks the plan for the step due,
//! performs it, records what happened, and asks again. Every step is
//! preceded by the checks it depends on (DNSSEC validation before any
//! change, propagation on every authoritative server before a key counts
//! as published), and the state is saved after every step, so a crash or
//! kill at any point is followed by a rerun that picks up where DNS and the
//! files say the roll is.
//!
//! Sets are independent: a run works on several at once (bounded by
//! `concurrency`), and one set's failure is reported without stopping the
//! others.
//!
//! In parts: `wiring` (config → back-ends, validator), `run` (the loop over
//! sets and steps), `observe` (DNS, presented keys, the plan's view),
//! `steps` (performing a step); the safe_at bookkeeping is `roll::safety`.
//! The parts extend [`Engine`] and use the types defined here; this file
//! imports nothing from them, so the files form no import cycle.

mod acme_order;
mod observe;
mod run;
mod steps;
#[cfg(test)]
mod tests;
mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use hickory_proto::rr::Name;

use super::files::{self, CertFiles, FileError};
use super::journal::Journal;
use super::keys::{self, KeyError};
use super::plan::{self, Decision, KeyMaterial, PresentedAt, Step, View};
use super::policy::RecordPolicy;
pub use super::presented::{DeployedFiles, Live, Servers};
use super::safety;
use super::state::{
    AddressSeen, LastRun, PresentedSeen, SetState, State, StateError, StateStore, Timestamp,
    Verified,
};
use super::zone_writer::ZoneWriter;
use crate::clock::Clock;
use crate::config::{
    CertSet, Config, KeyAlgorithmChoice, Source, UnmatchedKey, ValidationMode, VerifyMode,
};
use crate::dns::observe::dnssec::{Anchors, ValidateRrsets, Validator};
use crate::dns::observe::propagation::{self, Discovery, Expected, FindServers, Lookup};
use crate::dns::publish::tsig::TsigKey;
use crate::dns::{DnsError, Edit, Provider, RrsetId, observe::ttl};
use crate::live::KeyKind;
use crate::tlsa::TlsaRecord;

/// How long the verify step waits for every address to present a key just
/// deployed (a server's reload takes a moment) before it calls the deploy
/// failed.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon the verify step looks again meanwhile; each pause half as long
/// again, up to [`VERIFY_POLL_MAX`] (every look is a TLS handshake with
/// every address: connection limits such as Postfix's anvil or postscreen
/// must not mistake the check for an attack).
const VERIFY_POLL: Duration = Duration::from_millis(250);
const VERIFY_POLL_MAX: Duration = Duration::from_secs(2);
/// Observations in a row in which every address presents a deployed key
/// before it counts as verified.
const CLEAN_LOOKS: usize = 3;
/// Steps one set may take in one run; a loop past this is a bug, not a roll.
const MAX_STEPS_PER_RUN: usize = 64;
/// Self-signed certificates are valid this long (DANE-EE ignores dates, but
/// some clients log expired certificates).
const SELF_SIGNED_DAYS: i64 = 365;
/// How often the countdown on a terminal is redrawn.
const COUNTDOWN_TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Shared: DNS errors carry names and addresses (a large error type
    /// would bloat every `Result` on the engine's paths), and one failed
    /// batched change is the error of every set in the batch.
    #[error(transparent)]
    Dns(Arc<DnsError>),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Files(#[from] FileError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Config(String),
    /// tlsa itself went wrong (not the input): exit 1, never the 2 of bad input.
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    NotPropagated(String),
    #[error("refusing to change zone {zone}: {why}")]
    Insecure { zone: String, why: String },
    #[error(
        "ALARM: set {set}: the deployed key {key} is not presented everywhere: {why}. The records of every key still presented stay published and nothing is removed; check the reload command (deploy.reload) and which certificate the server reads, then run `tlsa run` again: it reloads again and checks again"
    )]
    NotVerified {
        set: String,
        key: String,
        why: String,
    },
    #[error(
        "set {set}: key {key} is presented by every address that answered, but not every address could be observed: {why}. Nothing is removed until every address can be checked; the next run looks again"
    )]
    NotObserved {
        set: String,
        key: String,
        why: String,
    },
    #[error(
        "set {set}: the certificate at {file} changed while the run was deciding (now key {found}, expected {expected}); nothing was deployed: run `tlsa run` again"
    )]
    SourceChanged {
        set: String,
        file: std::path::PathBuf,
        expected: String,
        found: String,
    },
}

impl From<DnsError> for EngineError {
    fn from(error: DnsError) -> Self {
        EngineError::Dns(Arc::new(error))
    }
}

impl From<Arc<DnsError>> for EngineError {
    fn from(error: Arc<DnsError>) -> Self {
        EngineError::Dns(error)
    }
}

/// One configured zone, ready to use.
struct ZoneRuntime {
    name: Name,
    provider: Box<dyn Provider>,
    /// The zone's authoritative servers, found for every propagation wait.
    servers: Box<dyn FindServers>,
    /// Sends the sets' changes to the zone one message at a time, batched.
    writer: ZoneWriter,
}

/// An owner name of a set, with the configured zone that holds it.
#[derive(Debug, Clone)]
struct Owner {
    /// Absolute and lower-case, as the plan and the state know it.
    name: Name,
    zone: usize,
}

/// What every step of one run of a set works from, built once for that run: the set, its
/// owner names in their zones, the state directory and the propagation timeout.
struct SetRun<'a> {
    set: &'a CertSet,
    owners: Vec<Owner>,
    dir: std::path::PathBuf,
    timeout: Duration,
}

/// What the primary / provider serves for a set's owner names, read once
/// per step and used by both the plan and the step.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub records: BTreeMap<Name, BTreeSet<TlsaRecord>>,
    pub ttls: BTreeMap<Name, Option<u32>>,
    /// What every address of the set presents, observed in the same look.
    pub presented: Vec<PresentedAt>,
}

impl Observed {
    /// The RRset read at `owner`, if it was read.
    fn rrset(&self, owner: &Name) -> Option<crate::dns::Rrset> {
        let records = self.records.get(owner)?;
        Some(crate::dns::Rrset {
            owner: owner.clone(),
            rtype: crate::dns::RrType::Tlsa,
            ttl: self.ttls.get(owner).copied().flatten(),
            records: crate::dns::rrset::rdata_of(records.iter().cloned()),
        })
    }

    /// The longest TTL now served, and whether some owner has no RRset:
    /// what caches may hold from before a change.
    fn before(&self) -> safety::Before {
        safety::Before {
            longest_ttl: self.ttls.values().flatten().copied().max(),
            absent: self.records.values().any(BTreeSet::is_empty),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these sets (all when empty).
    pub sets: Vec<String>,
    /// Stay until nothing is pending, sleeping until each wake-up.
    pub wait: bool,
    /// Start a planned roll to the next key now.
    pub rollover: bool,
    /// Perform steps the config marks as manual.
    pub confirm: bool,
    /// How long one propagation wait may take [default: 120 s].
    pub propagation_timeout: Option<Duration>,
    /// Sets worked on at once [default: the config's `concurrency`].
    pub concurrency: Option<usize>,
    /// Stop each set after this many steps, as a kill between two steps
    /// would (the state is saved after every step): for the tests that
    /// resume rolls from every point.
    pub stop_after_steps: Option<usize>,
}

/// Why a set's run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetFailure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The config is wrong.
    Config,
    /// Published, but not every server serves it yet: the next run goes on.
    NotPropagated,
    /// DNS, files, a server or a check failed.
    Other,
}

/// What a run did and what it waits for, per set.
#[derive(Debug, Clone, Default)]
pub struct SetOutcome {
    pub set: String,
    pub done: Vec<String>,
    pub alarms: Vec<String>,
    /// The live key was unpublished: DANE senders were refusing mail.
    pub emergency: bool,
    pub wake_at: Option<Timestamp>,
    pub waiting: Option<String>,
    pub failure: Option<SetFailure>,
    /// Handled safely, worth a word (exit 0).
    pub notices: Vec<String>,
}

/// What `tlsa plan` shows for one set.
#[derive(Debug, Clone)]
pub struct Preview {
    pub set: String,
    pub decision: Decision,
    /// After a next key is generated: what follows, with an example key.
    pub then: Option<Decision>,
    /// The RRsets the decision was made from.
    pub observed: Observed,
    /// An `acme` set: the order `tlsa run` would make now, and its challenge.
    pub order: Option<OrderPreview>,
}

/// The certificate order a run would make, as `tlsa plan` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderPreview {
    /// Why it is due ("the first certificate", "renewal: …").
    pub why: String,
    pub directory: String,
    pub names: Vec<String>,
    /// `dns-01` or `http-01`.
    pub challenge: &'static str,
    /// Each response put in place before the CA looks, removed after.
    pub responses: Vec<String>,
}

/// Progress lines for people, as the run goes.
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

pub struct Engine {
    config: Config,
    clock: Arc<dyn Clock>,
    zones: Vec<ZoneRuntime>,
    validator: Box<dyn ValidateRrsets>,
    /// Observes what the servers of `verify = "live"` sets present.
    servers: Box<dyn Servers>,
    progress: Progress,
    /// Redraws one status line (a countdown) on a terminal; `None` elsewhere.
    countdown: Option<Progress>,
    /// The SOA serial of each zone's last change in this run, by zone
    /// index: propagation waits for servers to reach at least that serial.
    serials: Mutex<BTreeMap<usize, u32>>,
    /// Environment variables commands run without (the config's secrets).
    secret_env: Vec<String>,
}

/// An instant as RFC 3339, with "in N s" when in the future.
pub fn when(at: Timestamp, now: Timestamp) -> String {
    if at > now {
        format!("{at} (in {:.1} s)", now.until(at).as_secs_f64())
    } else {
        at.to_string()
    }
}

pub fn unix(time: SystemTime) -> Timestamp {
    Timestamp::from_system(time)
}

impl Engine {
    /// Shows a countdown while `--wait` sleeps (for terminals).
    pub fn with_countdown(mut self, countdown: Progress) -> Self {
        self.countdown = Some(countdown);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn say(&self, text: &str) {
        (self.progress)(text);
    }

    fn now(&self) -> Timestamp {
        unix(self.clock.now())
    }

    /// The owner names of a set's endpoints.
    pub fn owners(set: &CertSet) -> Result<Vec<Name>, EngineError> {
        set.endpoints
            .iter()
            .map(|e| {
                parse_name(&format!("_{}._tcp.{}", e.port, e.host), "endpoint host")
                    .map(|n| n.to_lowercase())
            })
            .collect()
    }

    /// Each owner name of a set with the configured zone holding it (the
    /// longest match): a set's endpoints may live in different zones.
    fn owners_in_zones(&self, set: &CertSet) -> Result<Vec<Owner>, EngineError> {
        Self::owners(set)?
            .into_iter()
            .map(|name| {
                let zone = self
                    .zones
                    .iter()
                    .enumerate()
                    .filter(|(_, z)| z.name.zone_of(&name))
                    .max_by_key(|(_, z)| z.name.num_labels())
                    .map(|(i, _)| i)
                    .ok_or_else(|| {
                        EngineError::Config(format!(
                            "set {}: no [[zone]] in the config contains {name}; add the zone that holds this name",
                            set.name.get_ref()
                        ))
                    })?;
                Ok(Owner { name, zone })
            })
            .collect()
    }

    /// The zones a set's owners live in, each once, in config order.
    fn zones_of(owners: &[Owner]) -> BTreeSet<usize> {
        owners.iter().map(|o| o.zone).collect()
    }

    fn policy(set: &CertSet) -> RecordPolicy {
        RecordPolicy {
            matching: set.matching.iter().map(|m| m.0).collect(),
            issuer_records: set.issuer.iter().map(|r| r.0.clone()).collect(),
        }
    }

    /// The effective propagation timeout: the run's option, else the config's.
    fn propagation_timeout(&self, options: &RunOptions) -> Duration {
        options
            .propagation_timeout
            .unwrap_or(Duration::from_secs(self.config.propagation_timeout))
    }
}

fn parse_name(text: &str, what: &str) -> Result<Name, EngineError> {
    let absolute = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(&absolute)
        .map_err(|e| EngineError::Config(format!("{what} {text:?} is not a DNS name: {e}")))
}

/// One zone's back-end and servers, for [`Engine::from_parts`].
pub struct ZoneParts {
    pub name: Name,
    pub provider: Box<dyn Provider>,
    pub servers: Box<dyn FindServers>,
}

/// Everything the engine talks to, for [`Engine::from_parts`]: what tests
/// replace with fakes.
pub struct Parts {
    /// One per `[[zone]]` of the config, in its order.
    pub zones: Vec<ZoneParts>,
    pub validator: Box<dyn ValidateRrsets>,
    /// Observes what the servers of `verify = "live"` sets present.
    pub servers: Box<dyn Servers>,
}

/// Keeps what the servers presented for `tlsa status`: refreshed when it
/// changed, and hourly otherwise, so that an idle run writes no state.
fn remember_presented(entry: &mut SetState, presented: &[PresentedAt], now: Timestamp) {
    let addresses: Vec<AddressSeen> = presented
        .iter()
        .map(|p| AddressSeen {
            address: p.address.clone(),
            key: p.key.as_ref().ok().map(|k| k.id.clone()),
            error: p.key.as_ref().err().cloned(),
        })
        .collect();
    let fresh = entry.presented.as_ref().is_some_and(|seen| {
        seen.addresses == addresses && seen.at + crate::roll::idle::MARK_REFRESH > now
    });
    if !fresh {
        entry.presented = Some(PresentedSeen { at: now, addresses });
    }
}
