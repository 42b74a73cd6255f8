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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use hickory_proto::rr::Name;

use super::files::{self, CertFiles, FileError};
use super::journal::Journal;
use super::keys::{self, KeyError};
use super::plan::{self, Alarm, Decision, Step, View};
use super::policy::RecordPolicy;
use super::state::{
    KeyState, SetState, State, StateError, StateStore, Timestamp, TtlHold, Verified,
};
pub use super::verify::{DeployedFiles, Live, Verify};
use super::zone_writer::ZoneWriter;
use crate::clock::Clock;
use crate::config::{CertSet, Config, Source, ValidationMode, VerifyMode};
use crate::dns::dnssec::{Anchors, Validator};
use crate::dns::propagation::{self, Discovery, Expected, Lookup, ZoneServers};
use crate::dns::tsig::TsigKey;
use crate::dns::{DnsError, Edit, Provider, ttl};
use crate::tlsa::TlsaRecord;

/// How long one propagation wait may take before the run gives up (the
/// step is repeated by the next run).
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
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
    #[error("{0}")]
    NotPropagated(String),
    #[error("refusing to change zone {zone}: {why}")]
    Insecure { zone: String, why: String },
    #[error(
        "set {set}: the server does not present the deployed key {key} everywhere yet: {why}; old records stay until it does"
    )]
    NotVerified {
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
    discovery: Discovery,
    /// Sends the sets' changes to the zone one message at a time, batched.
    writer: ZoneWriter,
}

/// An owner name of a set, with the configured zone that holds it.
#[derive(Debug, Clone)]
struct Owner {
    text: String,
    name: Name,
    zone: usize,
}

/// What the primary / provider serves for a set's owner names, read once
/// per step and used by both the plan and the step.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub records: BTreeMap<String, BTreeSet<TlsaRecord>>,
    pub ttls: BTreeMap<String, Option<u32>>,
}

impl Observed {
    /// The RRset read at `owner`, if it was read.
    fn rrset(&self, owner: &Name) -> Option<crate::dns::Rrset> {
        let text = owner.to_ascii().to_ascii_lowercase();
        let records = self.records.get(&text)?;
        Some(crate::dns::Rrset {
            owner: owner.clone(),
            ttl: self.ttls.get(&text).copied().flatten(),
            records: records.clone(),
        })
    }

    /// The longest TTL now served, and whether some owner has no RRset:
    /// what caches may hold from before a change.
    fn prior(&self) -> (Option<u32>, bool) {
        let longest = self.ttls.values().flatten().copied().max();
        let absent = self.records.values().any(BTreeSet::is_empty);
        (longest, absent)
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
}

/// Progress lines for people, as the run goes.
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

pub struct Engine {
    config: Config,
    clock: Arc<dyn Clock>,
    zones: Vec<ZoneRuntime>,
    validator: Validator,
    verifier: Box<dyn Verify>,
    progress: Progress,
    /// Redraws one status line (a countdown) on a terminal; `None` elsewhere.
    countdown: Option<Progress>,
    /// The SOA serial of each zone's last change in this run, by zone
    /// index: propagation waits for servers to reach at least that serial.
    serials: Mutex<BTreeMap<usize, u32>>,
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

/// The publishing back-end of a configured zone.
fn build_provider(
    zone: &crate::config::Zone,
    name: &Name,
    progress: &Progress,
) -> Result<Box<dyn Provider>, EngineError> {
    let config = zone.backend(name).map_err(EngineError::Config)?;
    if let crate::dns::backend::BackendConfig::Rfc2136(rfc2136) = &config {
        for warning in rfc2136.key.iter().flat_map(TsigKey::warnings) {
            progress(&format!("warning: zone {name}: {warning}"));
        }
    }
    Ok(config.build()?)
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

impl Engine {
    /// Builds the back-ends and the validator from the config.
    pub async fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        verifier: Box<dyn Verify>,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let mut zones = Vec::new();
        for zone in &config.zones {
            let name = parse_name(zone.name.get_ref(), "zone name")?;
            let provider = build_provider(zone, &name, &progress)?;
            let discovery = Discovery::new(name.clone(), Lookup::Resolver(config.dnssec.resolver))
                .port(zone.ns_port)
                .extra(zone.extra_servers.iter().copied());
            zones.push(ZoneRuntime {
                name,
                provider,
                discovery,
                writer: ZoneWriter::default(),
            });
        }
        let validator = match config.dnssec.mode {
            ValidationMode::Anchored => {
                let anchors = match &config.dnssec.anchor {
                    Some(file) => Anchors::File(file.clone()),
                    None => Anchors::RootKeys,
                };
                Validator::anchored(config.dnssec.resolver, &anchors).await?
            }
            ValidationMode::Ad => Validator::resolver_ad(config.dnssec.resolver),
        };
        Ok(Engine {
            config,
            clock,
            zones,
            validator,
            verifier,
            progress,
            countdown: None,
            serials: Mutex::new(BTreeMap::new()),
        })
    }

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
    pub fn owners(set: &CertSet) -> Result<Vec<String>, EngineError> {
        set.endpoints
            .iter()
            .map(|e| {
                parse_name(&format!("_{}._tcp.{}", e.port, e.host), "endpoint host")
                    .map(|n| n.to_ascii().to_ascii_lowercase())
            })
            .collect()
    }

    /// Each owner name of a set with the configured zone holding it (the
    /// longest match): a set's endpoints may live in different zones.
    fn owners_in_zones(&self, set: &CertSet) -> Result<Vec<Owner>, EngineError> {
        Self::owners(set)?
            .into_iter()
            .map(|text| {
                let name = parse_name(&text, "owner")?;
                let zone = self
                    .zones
                    .iter()
                    .enumerate()
                    .filter(|(_, z)| z.name.zone_of(&name))
                    .max_by_key(|(_, z)| z.name.num_labels())
                    .map(|(i, _)| i)
                    .ok_or_else(|| {
                        EngineError::Config(format!(
                            "set {}: no [[zone]] in the config contains {text}; add the zone that holds this name",
                            set.name.get_ref()
                        ))
                    })?;
                Ok(Owner { text, name, zone })
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
            ..RecordPolicy::default()
        }
    }

    /// Runs every due step of every selected set, several sets at once; a
    /// set that fails is reported in its outcome and the others go on.
    ///
    /// Each set runs as its own task, so a multi-threaded runtime spreads
    /// the sets' work (validation, message handling, state writes) over
    /// its threads; a set whose task panicked is reported as failed.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<StateStore>,
        options: &RunOptions,
    ) -> Result<Vec<SetOutcome>, EngineError> {
        if let Some(unknown) = options
            .sets
            .iter()
            .find(|s| !self.config.sets.iter().any(|c| c.name.get_ref() == *s))
        {
            return Err(EngineError::Config(format!(
                "no certificate set named {unknown:?} in the config"
            )));
        }
        let journal = Arc::new(Journal::new(store.clone(), store.load()?));
        let selected: Vec<usize> = (0..self.config.sets.len())
            .filter(|&i| {
                options.sets.is_empty() || options.sets.contains(self.config.sets[i].name.get_ref())
            })
            .collect();
        let concurrency = options
            .concurrency
            .unwrap_or(self.config.concurrency)
            .max(1);
        let shared_options = Arc::new(options.clone());
        let mut outcomes: Vec<(usize, SetOutcome)> = futures_util::stream::iter(selected)
            .map(|index| {
                let (engine, journal, options) =
                    (self.clone(), journal.clone(), shared_options.clone());
                let name = self.config.sets[index].name.get_ref().clone();
                let task = tokio::spawn(async move {
                    let set = &engine.config.sets[index];
                    engine.run_set_reporting(set, &journal, &options).await
                });
                async move {
                    let outcome = task.await.unwrap_or_else(|e| SetOutcome {
                        failure: Some(SetFailure {
                            kind: FailureKind::Other,
                            message: format!(
                                "set {name}: internal error ({e}); this is a bug, please report it"
                            ),
                        }),
                        set: name,
                        ..SetOutcome::default()
                    });
                    (index, outcome)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        outcomes.sort_by_key(|(index, _)| *index);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    /// One set's run, with its failure in the outcome.
    async fn run_set_reporting(
        &self,
        set: &CertSet,
        journal: &Journal,
        options: &RunOptions,
    ) -> SetOutcome {
        let mut outcome = SetOutcome {
            set: set.name.get_ref().clone(),
            ..SetOutcome::default()
        };
        if let Err(error) = self.run_set(set, journal, options, &mut outcome).await {
            let kind = match error {
                EngineError::Config(_) => FailureKind::Config,
                EngineError::NotPropagated(_) => FailureKind::NotPropagated,
                _ => FailureKind::Other,
            };
            outcome.failure = Some(SetFailure {
                kind,
                message: error.to_string(),
            });
        }
        outcome
    }

    async fn run_set(
        &self,
        set: &CertSet,
        journal: &Journal,
        options: &RunOptions,
        outcome: &mut SetOutcome,
    ) -> Result<(), EngineError> {
        let name = set.name.get_ref().clone();
        let owners = self.owners_in_zones(set)?;
        let dir = journal.store().dir().to_path_buf();
        let mut entry = journal.get(&name);
        if self.prepare_source(set, &dir, &mut entry)? {
            journal.put(&name, &entry).await?;
        }
        if options.rollover {
            self.start_rollover(set, &dir, &mut entry)?;
            journal.put(&name, &entry).await?;
        }
        let timeout = options
            .propagation_timeout
            .unwrap_or(DEFAULT_PROPAGATION_TIMEOUT);
        for _ in 0..MAX_STEPS_PER_RUN {
            let observed = self.observe(&owners).await?;
            let decision = self.decide(set, &owners, &dir, &entry, &observed)?;
            for alarm in &decision.alarms {
                let text = alarm.to_string();
                if !outcome.alarms.contains(&text) {
                    self.say(&format!("ALARM: set {name}: {text}"));
                    outcome.alarms.push(text);
                }
                if matches!(alarm, Alarm::LiveKeyUnpublished { .. }) {
                    outcome.emergency = true;
                }
            }
            let before = entry.clone();
            self.track_emergency(set, &mut entry, &decision)?;
            if decision.step.is_none() && decision.wake_at.is_none() && entry.alarm.is_none() {
                let mark = super::idle::mark(set, &dir, &entry, self.now())?;
                // Refreshed only now and then: an idle run from cron writes no state.
                if entry
                    .idle
                    .as_ref()
                    .is_none_or(|old| super::idle::worth_refreshing(old, &mark))
                {
                    entry.idle = Some(mark);
                }
            } else {
                entry.idle = None;
            }
            if entry != before {
                journal.put(&name, &entry).await?;
            }
            if let Some(step) = &decision.step
                && !options.confirm
                && set.manual.iter().any(|m| m.matches(step))
            {
                outcome.waiting = Some(format!(
                    "the next step ({}) is manual: run `tlsa run --confirm --set {name}` to perform it",
                    describe(step)
                ));
                return Ok(());
            }
            let Some(step) = decision.step else {
                outcome.wake_at = decision.wake_at;
                outcome.waiting = decision.waiting.clone();
                if let (true, Some(at)) = (options.wait, decision.wake_at) {
                    self.wait_until(&name, at, decision.waiting.as_deref())
                        .await;
                    continue;
                }
                if outcome.emergency
                    && let Some(until) = entry.alarm_until
                {
                    let text = format!(
                        "the live key's record is published again; resolvers that cached the RRset without it may still make DANE senders refuse mail until {}",
                        when(until, self.now())
                    );
                    self.say(&format!("ALARM: set {name}: {text}"));
                    outcome.alarms.push(text);
                }
                return Ok(());
            };
            let summary = describe(&step);
            self.say(&format!("set {name}: {summary}"));
            if matches!(step, Step::Deploy { .. }) {
                // Known before the files change: see `SetState::reload_pending`.
                entry.reload_pending = true;
                journal.put(&name, &entry).await?;
            }
            let before_step = entry.clone();
            if let Err(error) = self
                .execute(set, &owners, &dir, &mut entry, step, &observed, timeout)
                .await
            {
                // What a step records before acting (a TTL hold) must
                // survive its failure: the change may have been applied.
                if entry != before_step {
                    journal.put(&name, &entry).await?;
                }
                return Err(error);
            }
            entry.record(self.now(), summary.clone());
            journal.put(&name, &entry).await?;
            outcome.done.push(summary);
        }
        Err(EngineError::Config(format!(
            "set {name}: more than {MAX_STEPS_PER_RUN} steps in one run; this is a bug, please report it with the state file"
        )))
    }

    /// Sleeps until `at` (and a little past, so the plan sees it passed),
    /// redrawing a countdown on a terminal.
    async fn wait_until(&self, set: &str, at: Timestamp, why: Option<&str>) {
        if let Some(why) = why {
            self.say(&format!(
                "set {set}: waiting until {}: {why}",
                when(at, self.now())
            ));
        }
        loop {
            let left = self.now().until(at);
            if left.is_zero() {
                break;
            }
            match &self.countdown {
                Some(countdown) => {
                    countdown(&format!(
                        "set {set}: {:.0} s to wait",
                        left.as_secs_f64().ceil()
                    ));
                    self.clock.sleep(left.min(COUNTDOWN_TICK)).await;
                }
                None => self.clock.sleep(left).await,
            }
        }
        if let Some(countdown) = &self.countdown {
            countdown("");
        }
        // tokio never wakes early; 2 ms covers rounding to the millisecond.
        self.clock.sleep(Duration::from_millis(2)).await;
    }

    /// Keeps the emergency alarm in the state while the live key is
    /// unpublished, and until every cache that may hold an RRset without it
    /// has expired (its `safe_at`), so `tlsa status` shows it all that time.
    fn track_emergency(
        &self,
        set: &CertSet,
        entry: &mut SetState,
        decision: &Decision,
    ) -> Result<(), EngineError> {
        if let Some(alarm) = decision
            .alarms
            .iter()
            .find(|a| matches!(a, Alarm::LiveKeyUnpublished { .. }))
        {
            entry.alarm = Some(alarm.to_string());
            entry.alarm_until = None;
            return Ok(());
        }
        if entry.alarm.is_none() {
            return Ok(());
        }
        let live = files::cert_facts(&files::deploy_files(set).chain)?.map(|c| c.key.id);
        entry.alarm_until = live
            .and_then(|id| entry.keys.get(&id))
            .and_then(|k| k.safe_at);
        if entry.alarm_until.is_some_and(|until| until <= self.now()) {
            entry.alarm = None;
            entry.alarm_until = None;
        }
        Ok(())
    }

    /// A self-signed set without any certificate gets its first one.
    /// Returns whether the state changed.
    fn prepare_source(
        &self,
        set: &CertSet,
        dir: &std::path::Path,
        entry: &mut SetState,
    ) -> Result<bool, EngineError> {
        let Source::SelfSigned { names } = &set.source else {
            return Ok(false);
        };
        let staged = files::source_files(set, dir, entry)?;
        let deployed = files::deploy_files(set);
        if staged.chain.exists() || deployed.chain.exists() {
            return Ok(false);
        }
        let name = set.name.get_ref();
        let (key, path) = keys::create_next_key(dir, name, set.next_key)?;
        stage_self_signed(&path, names, &staged)?;
        self.say(&format!(
            "set {name}: first key {} generated, certificate staged",
            key.short()
        ));
        entry.record(self.now(), "first key generated");
        Ok(true)
    }

    /// A planned roll: the next key gets a certificate and becomes the source.
    fn start_rollover(
        &self,
        set: &CertSet,
        dir: &std::path::Path,
        entry: &mut SetState,
    ) -> Result<(), EngineError> {
        let name = set.name.get_ref();
        let now = self.now();
        if let Source::CertbotPair(lineages) = &set.source {
            let (live, other) = files::pair_roles(set, lineages)?;
            let live_key = files::cert_facts(&live.chain)?.map(|c| c.key.id);
            let Some(next) = files::cert_facts(&other.chain)?.map(|c| c.key.id) else {
                return Err(EngineError::Config(format!(
                    "set {name}: the other lineage {} has no certificate yet; issue one there (certbot certonly --cert-name …) first",
                    other.chain.display()
                )));
            };
            if Some(&next) == live_key.as_ref() {
                return Err(EngineError::Config(format!(
                    "set {name}: both lineages hold the same key; renew {} with --new-key first",
                    other.chain.display()
                )));
            }
            entry.rollover_requested_at = Some(now);
            entry.record(
                now,
                format!("rollover to key {} requested", plan::short(&next)),
            );
            entry.rollover_to = Some(next);
            return Ok(());
        }
        let Source::SelfSigned { names } = &set.source else {
            return Err(EngineError::Config(format!(
                "set {name}: a planned roll needs a certificate for the next key; use a certbot pair source (see the README), or request one with `tlsa csr {name}` and let the deploy hook bring it in"
            )));
        };
        let Some(next) = entry.next_key.clone() else {
            return Err(EngineError::Config(format!(
                "set {name}: no next key yet; run `tlsa run` first so that one is generated and published"
            )));
        };
        let path = keys::key_path(dir, name, &next);
        stage_self_signed(&path, names, &files::source_files(set, dir, entry)?)?;
        entry.rollover_requested_at = Some(now);
        entry.record(
            now,
            format!("rollover to key {} requested", plan::short(&next)),
        );
        entry.rollover_to = Some(next);
        Ok(())
    }

    /// What the plan would do now for every set, without doing it (and
    /// without the lock: `tlsa plan` may run beside a `tlsa run`).
    pub async fn preview(
        &self,
        state: &State,
    ) -> Result<Vec<(String, Decision, Observed)>, EngineError> {
        let mut previews = Vec::new();
        for set in &self.config.sets {
            let owners = self.owners_in_zones(set)?;
            let empty = SetState::default();
            let set_state = state.sets.get(set.name.get_ref()).unwrap_or(&empty);
            let observed = self.observe(&owners).await?;
            let decision =
                self.decide(set, &owners, &self.config.state_dir, set_state, &observed)?;
            previews.push((set.name.get_ref().clone(), decision, observed));
        }
        Ok(previews)
    }

    /// Reads every owner's RRset from the primary / provider.
    async fn observe(&self, owners: &[Owner]) -> Result<Observed, EngineError> {
        let reads = owners.iter().map(|owner| {
            let zone = &self.zones[owner.zone];
            (owner, zone.provider.as_ref(), &zone.name, &owner.name)
        });
        let mut reads = std::pin::pin!(crate::dns::read_rrsets(reads));
        let mut observed = Observed::default();
        while let Some((owner, read)) = reads.next().await {
            let rrset = read?;
            observed.ttls.insert(owner.text.clone(), rrset.ttl);
            observed.records.insert(owner.text.clone(), rrset.records);
        }
        Ok(observed)
    }

    /// Asks the plan, given the files and what DNS serves.
    fn decide(
        &self,
        set: &CertSet,
        owners: &[Owner],
        state_dir: &std::path::Path,
        set_state: &SetState,
        observed: &Observed,
    ) -> Result<Decision, EngineError> {
        let paired = match &set.source {
            Source::CertbotPair(lineages) => Some(files::pair_roles(set, lineages)?.1),
            _ => None,
        };
        let next = match (&paired, &set_state.next_key) {
            (Some(other), _) => files::cert_facts(&other.chain)?.map(|c| c.key),
            (None, Some(id)) => {
                let path = keys::key_path(state_dir, set.name.get_ref(), id);
                path.exists()
                    .then(|| files::key_material(&path))
                    .transpose()?
                    .filter(|k| &k.id == id)
            }
            (None, None) => None,
        };
        let policy = Self::policy(set);
        let view = View {
            generates_next: paired.is_none(),
            owners: owners.iter().map(|o| o.text.clone()).collect(),
            policy: &policy,
            fully_managed: set.fully_managed,
            ttl: set.ttl,
            deployed: files::cert_facts(&files::deploy_files(set).chain)?,
            source: files::cert_facts(&files::source_files(set, state_dir, set_state)?.chain)?,
            next,
            dns: observed.records.clone(),
            ttls: observed.ttls.clone(),
            state: set_state,
            now: self.now(),
        };
        Ok(plan::decide(&view))
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        set: &CertSet,
        owners: &[Owner],
        dir: &std::path::Path,
        entry: &mut SetState,
        step: Step,
        observed: &Observed,
        propagation_timeout: Duration,
    ) -> Result<(), EngineError> {
        let now = self.now();
        match step {
            Step::Publish { keys, edits } => {
                self.change(set, owners, entry, &edits, observed).await?;
                self.note_published(set, dir, entry, &keys, observed, now)?;
            }
            Step::Retire { keys, added, edits } => {
                self.change(set, owners, entry, &edits, observed).await?;
                self.note_published(set, dir, entry, &added, observed, now)?;
                for id in keys {
                    if let Some(key) = entry.keys.get_mut(&id) {
                        key.removed_at = Some(now);
                    }
                }
            }
            Step::Reconcile { edits } => {
                self.change(set, owners, entry, &edits, observed).await?;
            }
            Step::AwaitPropagation { keys, removed } => {
                self.await_propagation(
                    set,
                    owners,
                    dir,
                    entry,
                    &keys,
                    observed,
                    propagation_timeout,
                )
                .await?;
                for id in removed {
                    entry.keys.remove(&id);
                }
            }
            Step::GenerateNextKey => {
                let (key, _) = keys::create_next_key(dir, set.name.get_ref(), set.next_key)?;
                entry.next_key = Some(key.id);
            }
            Step::Deploy { key, .. } => {
                let source = files::source_files(set, dir, entry)?;
                // The plan decided on what the source held a moment ago; an
                // ACME client may have replaced it since.
                let found = files::cert_facts(&source.chain)?.map(|c| c.key.id);
                if found.as_deref() != Some(key.as_str()) {
                    return Err(EngineError::SourceChanged {
                        set: set.name.get_ref().clone(),
                        file: source.chain.clone(),
                        expected: plan::short(&key).to_string(),
                        found: found.as_deref().map_or("none", plan::short).to_string(),
                    });
                }
                files::install(&source, &files::deploy_files(set))?;
                files::reload(&set.deploy.reload).await?;
                entry.reload_pending = false;
                entry.rollover_requested_at = None;
                entry.rollover_to = None;
            }
            Step::Verify { key } => {
                let deployed = files::cert_facts(&files::deploy_files(set).chain)?
                    .map(|c| c.key)
                    .filter(|k| k.id == key)
                    .ok_or_else(|| EngineError::NotVerified {
                        set: set.name.get_ref().clone(),
                        key: plan::short(&key).to_string(),
                        why: "the deploy target changed".into(),
                    })?;
                let verifier: &dyn Verify = match set.verify {
                    VerifyMode::Live => self.verifier.as_ref(),
                    VerifyMode::DeployedFiles => &DeployedFiles,
                };
                verifier.presents(set, &deployed).await.map_err(|why| {
                    EngineError::NotVerified {
                        set: set.name.get_ref().clone(),
                        key: deployed.short().to_string(),
                        why,
                    }
                })?;
                entry.verified = Some(Verified { key, at: now });
            }
        }
        Ok(())
    }

    /// Applies a change set (one UPDATE / API call per zone), after checking
    /// that every owner validates as Secure. A lowered TTL is remembered: a
    /// cache may hold the RRset with the old, longer TTL for that long.
    async fn change(
        &self,
        set: &CertSet,
        owners: &[Owner],
        entry: &mut SetState,
        edits: &[Edit],
        observed: &Observed,
    ) -> Result<(), EngineError> {
        self.require_secure(owners).await?;
        self.hold_lowered_ttl(set, entry, observed);
        for zone_index in Self::zones_of(owners) {
            let zone = &self.zones[zone_index];
            let in_zone: Vec<Edit> = edits
                .iter()
                .filter(|e| {
                    owners
                        .iter()
                        .any(|o| o.zone == zone_index && o.name == e.owner)
                })
                .cloned()
                .collect();
            if in_zone.is_empty() {
                continue;
            }
            let known = in_zone
                .iter()
                .filter_map(|e| observed.rrset(&e.owner))
                .collect();
            let applied = zone
                .writer
                .apply(zone.provider.as_ref(), &zone.name, in_zone, known)
                .await?;
            if let Some(serial) = applied.and_then(|a| a.serial) {
                let mut serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
                // Sets' changes finish in any order: keep the newest serial.
                let known = serials.entry(zone_index).or_insert(serial);
                if propagation::serial_at_least(serial, *known) {
                    *known = serial;
                }
            }
        }
        Ok(())
    }

    /// Remembers a TTL the change is about to lower: caches may hold the
    /// RRsets with the old, longer TTL. Recorded before the change is sent,
    /// so that a change applied but not confirmed (a lost answer, a failure
    /// between the messages of a large change) still counts with it.
    fn hold_lowered_ttl(&self, set: &CertSet, entry: &mut SetState, observed: &Observed) {
        let now = self.now();
        if entry.ttl_hold.as_ref().is_some_and(|h| h.until <= now) {
            entry.ttl_hold = None;
        }
        if let Some(old) = observed.prior().0
            && old > set.ttl
        {
            // Counted from now, plus the longest a propagation may take: a
            // lagging server may hand out the old TTL until it catches up.
            let until = now + DEFAULT_PROPAGATION_TIMEOUT + Duration::from_secs(u64::from(old));
            let held = entry.ttl_hold.take();
            entry.ttl_hold = Some(TtlHold {
                ttl: held.as_ref().map_or(old, |h| h.ttl.max(old)),
                until: held.as_ref().map_or(until, |h| h.until.max(until)),
            });
        }
    }

    /// The longest TTL a cache may hold an RRset of this set with now: what
    /// is served, or a longer TTL lowered recently.
    fn prior_ttl(&self, entry: &SetState, observed: &Observed) -> Option<u32> {
        let held = entry
            .ttl_hold
            .as_ref()
            .filter(|h| h.until > self.now())
            .map(|h| h.ttl);
        observed.prior().0.max(held)
    }

    /// Records that `keys` now have records (published at `now`), with what
    /// caches may hold from before. A key published before keeps the worst
    /// of both: its `safe_at` may only move later.
    fn note_published(
        &self,
        set: &CertSet,
        dir: &std::path::Path,
        entry: &mut SetState,
        keys: &[String],
        observed: &Observed,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let prior_ttl = self.prior_ttl(entry, observed);
        let (_, prior_absent) = observed.prior();
        for id in keys {
            let spki = self.spki_of(set, dir, entry, id)?;
            let key = entry
                .keys
                .entry(id.clone())
                .or_insert_with(|| new_key_state(spki, now));
            key.published_at.get_or_insert(now);
            key.prior_ttl = key.prior_ttl.max(prior_ttl);
            key.prior_absent |= prior_absent;
            key.propagated_at = None;
            key.safe_at = None;
        }
        Ok(())
    }

    /// The SPKI of a key the plan names: from the files, the next key, or the state.
    fn spki_of(
        &self,
        set: &CertSet,
        dir: &std::path::Path,
        entry: &SetState,
        id: &str,
    ) -> Result<Vec<u8>, EngineError> {
        let mut chains = vec![
            files::deploy_files(set).chain,
            files::source_files(set, dir, entry)?.chain,
        ];
        if let Source::CertbotPair(lineages) = &set.source {
            chains.extend(lineages.iter().map(|l| CertFiles::in_dir(l).chain));
        }
        for chain in chains {
            if let Some(facts) = files::cert_facts(&chain)?
                && facts.key.id == id
            {
                return Ok(facts.key.spki);
            }
        }
        let path = keys::key_path(dir, set.name.get_ref(), id);
        if path.exists() {
            return Ok(files::key_material(&path)?.spki);
        }
        entry
            .keys
            .get(id)
            .and_then(|k| hex::decode(&k.spki).ok())
            .ok_or_else(|| EngineError::Config(format!("key {} is unknown", plan::short(id))))
    }

    /// Refuses to change anything unless every owner validates as Secure
    /// (positive or negative answer).
    async fn require_secure(&self, owners: &[Owner]) -> Result<(), EngineError> {
        let names: Vec<Name> = owners.iter().map(|o| o.name.clone()).collect();
        let validations = self.validator.validate_tlsa_all(&names).await;
        for (owner, validation) in owners.iter().zip(validations) {
            if !validation.is_acceptable_for_changes() {
                return Err(EngineError::Insecure {
                    zone: self.zones[owner.zone].name.to_string(),
                    why: format!(
                        "{}: {validation}; tlsa only publishes into, and removes from, zones that validate as Secure",
                        owner.text
                    ),
                });
            }
        }
        Ok(())
    }

    /// Waits until every authoritative address of every zone involved
    /// serves what the primary serves (as just observed), validates it, and
    /// records when each key is safe.
    #[allow(clippy::too_many_arguments)]
    async fn await_propagation(
        &self,
        set: &CertSet,
        owners: &[Owner],
        dir: &std::path::Path,
        entry: &mut SetState,
        keys: &[String],
        observed: &Observed,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let deadline = self.clock.now() + timeout;
        let mut facts = ttl::TtlFacts::default();
        let mut propagated_at = SystemTime::UNIX_EPOCH;
        for zone_index in Self::zones_of(owners) {
            let zone = &self.zones[zone_index];
            let rrsets = owners
                .iter()
                .filter(|o| o.zone == zone_index)
                .map(|o| {
                    let records = observed.records.get(&o.text).cloned().unwrap_or_default();
                    (o.name.clone(), records)
                })
                .collect();
            let min_serial = self
                .serials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&zone_index)
                .copied();
            let expected = Expected { rrsets, min_serial };
            let servers = ZoneServers::discover(&zone.discovery).await?;
            let propagated = propagation::wait_until_propagated(
                &servers,
                self.clock.as_ref(),
                &expected,
                deadline,
            )
            .await
            .map_err(|e| EngineError::NotPropagated(e.to_string()))?;
            facts = ttl::worst_case_by_owner(&propagated.observation)
                .into_values()
                .fold(facts, ttl::TtlFacts::longest);
            propagated_at = propagated_at.max(propagated.at);
        }
        self.require_secure(owners).await?;
        let margin = Duration::from_secs(set.margin);
        let at = unix(propagated_at);
        let policy = Self::policy(set);
        let current_ttl = self.prior_ttl(entry, observed);
        for id in keys {
            let spki = self.spki_of(set, dir, entry, id)?;
            // Only a key whose records every server serves can become safe.
            let records = policy.records_for_key(&spki);
            if !observed
                .records
                .values()
                .all(|served| records.is_subset(served))
            {
                continue;
            }
            let key = entry.keys.entry(id.clone()).or_insert_with(|| {
                // Adopted: published before tlsa knew it. Assume the worst
                // about what caches held before.
                let mut adopted = new_key_state(spki, at);
                adopted.prior_ttl = current_ttl;
                adopted.prior_absent = true;
                adopted
            });
            let safe = ttl::t_safe(
                propagated_at,
                key.prior_ttl,
                &facts,
                !key.prior_absent,
                margin,
            );
            key.propagated_at = Some(at);
            // Rounded up: a key is safe only once the whole interval has passed.
            key.safe_at = Some(Timestamp::from_system_ceil(safe).max(at));
        }
        Ok(())
    }
}

fn new_key_state(spki: Vec<u8>, now: Timestamp) -> KeyState {
    KeyState {
        spki: hex::encode(spki),
        first_seen: now,
        published_at: None,
        prior_ttl: None,
        prior_absent: false,
        propagated_at: None,
        safe_at: None,
        removed_at: None,
    }
}

/// Issues a self-signed certificate for the key at `key_path` into `to`.
fn stage_self_signed(
    key_path: &std::path::Path,
    names: &[String],
    to: &CertFiles,
) -> Result<(), EngineError> {
    let pem = keys::self_signed_pem(key_path, names, SELF_SIGNED_DAYS)?;
    let key = std::fs::read(key_path).map_err(|e| FileError::Read {
        file: key_path.to_path_buf(),
        why: e.to_string(),
    })?;
    let dir = to.chain.parent().expect("staged files live in a directory");
    std::fs::create_dir_all(dir).map_err(|e| FileError::Write {
        file: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    for (path, content, mode) in [(&to.key, key, 0o600), (&to.chain, pem.into_bytes(), 0o644)] {
        crate::fsutil::write_atomic(path, &content, mode).map_err(|e| FileError::Write {
            file: path.clone(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// One line for a step, for progress output and the timeline.
pub fn describe(step: &Step) -> String {
    let keys = |ids: &[String]| {
        ids.iter()
            .map(|k| plan::short(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match step {
        Step::Publish { keys: ids, edits } => format!(
            "publish records for key {} at {} owner name(s)",
            keys(ids),
            edits.len()
        ),
        Step::AwaitPropagation { keys: ids, removed } if removed.is_empty() => {
            format!(
                "propagation to every authoritative server: key {}",
                keys(ids)
            )
        }
        Step::AwaitPropagation { keys: ids, removed } if ids.is_empty() => format!(
            "propagation to every authoritative server: key {} removed",
            keys(removed)
        ),
        Step::AwaitPropagation { keys: ids, removed } => format!(
            "propagation to every authoritative server: key {} present, key {} removed",
            keys(ids),
            keys(removed)
        ),
        Step::GenerateNextKey => "generate a new next key".into(),
        Step::Deploy {
            key,
            same_key: true,
        } => {
            format!(
                "deploy the renewed certificate (same key {})",
                plan::short(key)
            )
        }
        Step::Deploy { key, .. } => format!("deploy key {} (goes live)", plan::short(key)),
        Step::Verify { key } => format!("verify that key {} is presented", plan::short(key)),
        Step::Retire {
            keys: ids, added, ..
        } if added.is_empty() => format!("retire key {}", keys(ids)),
        Step::Retire {
            keys: ids, added, ..
        } => format!(
            "retire key {} and publish key {} in one change",
            keys(ids),
            keys(added)
        ),
        Step::Reconcile { edits } => format!(
            "bring {} RRset(s) in line with the config (TTL, matching types)",
            edits.len()
        ),
    }
}
