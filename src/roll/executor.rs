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
use super::plan::{self, Decision, KeyMaterial, PresentedAt, Step, View};
use super::policy::RecordPolicy;
pub use super::presented::{DeployedFiles, Live, Servers};
use super::state::{
    AddressSeen, KeyState, PresentedSeen, SetState, State, StateError, StateStore, Timestamp,
    TtlHold, Verified,
};
use super::zone_writer::ZoneWriter;
use crate::clock::Clock;
use crate::config::{
    BackendKind, CertSet, Config, KeyAlgorithmChoice, SecretRef, Source, UnmatchedKey,
    ValidationMode, VerifyMode,
};
use crate::dns::dnssec::{Anchors, Validator};
use crate::dns::propagation::{self, Discovery, Expected, Lookup, ZoneServers};
use crate::dns::rfc2136::Rfc2136;
use crate::dns::tsig::TsigKey;
use crate::dns::{DnsError, Edit, Provider, ttl};
use crate::live::KeyKind;
use crate::tlsa::TlsaRecord;

/// How long the verify step waits for every address to present a key just
/// deployed (a server's reload takes a moment) before it calls the deploy
/// failed.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the verify step looks again meanwhile.
const VERIFY_POLL: Duration = Duration::from_millis(250);
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
        "ALARM: set {set}: the deployed key {key} is not presented everywhere: {why}. The records of every key still presented stay published and nothing is removed; check the reload command (deploy.reload) and which certificate the server reads, then run `tlsa run` again: it reloads again and checks again"
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
    /// Handled safely, worth a word (exit 0).
    pub notices: Vec<String>,
}

/// Progress lines for people, as the run goes.
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

pub struct Engine {
    config: Config,
    clock: Arc<dyn Clock>,
    zones: Vec<ZoneRuntime>,
    validator: Validator,
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

fn load_tsig(zone: &str, secret: &SecretRef) -> Result<TsigKey, EngineError> {
    let key = match (&secret.file, &secret.env) {
        (Some(file), _) => TsigKey::from_file(file, None),
        (None, Some(var)) => TsigKey::from_env(var),
        (None, None) => {
            return Err(EngineError::Config(format!(
                "zone {zone}: tsig_key needs file or env"
            )));
        }
    };
    key.map_err(|e| EngineError::Config(format!("zone {zone}: {e}")))
}

/// The publishing back-end of a configured zone.
fn build_provider(
    zone: &crate::config::Zone,
    name: &Name,
    secret_env: &[String],
    progress: &Progress,
) -> Result<Box<dyn Provider>, EngineError> {
    use crate::dns::backend::BackendConfig;
    use crate::dns::{cloudflare, desec, powerdns, zonefile};
    let required = |what: &str| EngineError::Config(format!("zone {name}: {what} is missing"));
    let config = match zone.backend {
        BackendKind::Rfc2136 => {
            let server = zone.server.ok_or_else(|| required("server"))?;
            let key = zone
                .tsig_key
                .as_ref()
                .map(|s| load_tsig(zone.name.get_ref(), s))
                .transpose()?;
            for warning in key.iter().flat_map(TsigKey::warnings) {
                progress(&format!("warning: zone {name}: {warning}"));
            }
            return Ok(Box::new(Rfc2136::new(server, key).with_zone(name.clone())));
        }
        BackendKind::Powerdns => {
            let url = zone.api_url.clone().ok_or_else(|| required("api_url"))?;
            let key = zone.api_key.as_ref().ok_or_else(|| required("api_key"))?;
            let mut config = powerdns::PowerDnsConfig::new(url, key.source());
            if let Some(id) = &zone.server_id {
                config.server_id = id.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::PowerDns(config)
        }
        BackendKind::Cloudflare => {
            let token = zone.token.as_ref().ok_or_else(|| required("token"))?;
            let mut config = cloudflare::CloudflareConfig::new(token.source());
            if let Some(url) = &zone.api_url {
                config.base_url = url.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::Cloudflare(config)
        }
        BackendKind::Desec => {
            let token = zone.token.as_ref().ok_or_else(|| required("token"))?;
            let mut config = desec::DesecConfig::new(token.source());
            if let Some(url) = &zone.api_url {
                config.base_url = url.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::Desec(config)
        }
        BackendKind::Zonefile => {
            let file = zone
                .records_file
                .clone()
                .ok_or_else(|| required("records_file"))?;
            let reload = zone.reload.clone().ok_or_else(|| required("reload"))?;
            let mut config = zonefile::ZoneFileConfig::new(name.clone(), file, reload);
            config.serial_file = zone.serial_file.clone();
            config.hidden_env = secret_env.to_vec();
            BackendConfig::ZoneFile(config)
        }
    };
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
        servers: Box<dyn Servers>,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let mut zones = Vec::new();
        let secret_env = crate::command::secret_env_names(&config);
        for zone in &config.zones {
            let name = parse_name(zone.name.get_ref(), "zone name")?;
            let provider = build_provider(zone, &name, &secret_env, &progress)?;
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
            servers,
            progress,
            countdown: None,
            serials: Mutex::new(BTreeMap::new()),
            secret_env,
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
        let timeout = self.propagation_timeout(options);
        for _ in 0..MAX_STEPS_PER_RUN {
            let observed = self.observe(&owners).await?;
            let presented = self.observe_servers(set, &dir, &entry).await?;
            let decision = self.decide(set, &owners, &dir, &entry, &observed, &presented)?;
            for alarm in &decision.alarms {
                let text = alarm.to_string();
                if !outcome.alarms.contains(&text) {
                    self.say(&format!("ALARM: set {name}: {text}"));
                    outcome.alarms.push(text);
                }
            }
            outcome.emergency |= decision.emergency();
            for notice in &decision.notices {
                if !outcome.notices.contains(notice) {
                    self.say(&format!("set {name}: notice: {notice}"));
                    outcome.notices.push(notice.clone());
                }
            }
            let before = entry.clone();
            remember_presented(&mut entry, &presented, self.now());
            self.track_emergency(&mut entry, &decision, &presented);
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
                    "the next step ({step}) is manual: run `tlsa run --confirm --set {name}` to perform it"
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
            let summary = step.to_string();
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

    /// Keeps the emergency alarm in the state while a presented key is
    /// unmatched, and until every cache that may hold an RRset without it
    /// has expired (the presented keys' `safe_at`), so `tlsa status` shows
    /// it all that time.
    fn track_emergency(
        &self,
        entry: &mut SetState,
        decision: &Decision,
        presented: &[PresentedAt],
    ) {
        if let Some(alarm) = decision.alarms.first() {
            entry.alarm = Some(alarm.to_string());
            entry.alarm_until = None;
            return;
        }
        if entry.alarm.is_none() {
            return;
        }
        let safe_times: Vec<Option<Timestamp>> = presented
            .iter()
            .filter_map(|p| p.key.as_ref().ok())
            .map(|key| entry.keys.get(&key.id).and_then(|k| k.safe_at))
            .collect();
        // Unknown (a key not yet confirmed) keeps the alarm up.
        entry.alarm_until = safe_times
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max());
        if entry.alarm_until.is_some_and(|until| until <= self.now()) {
            entry.alarm = None;
            entry.alarm_until = None;
        }
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
            let presented = self
                .observe_servers(set, &self.config.state_dir, set_state)
                .await?;
            let decision = self.decide(
                set,
                &owners,
                &self.config.state_dir,
                set_state,
                &observed,
                &presented,
            )?;
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

    /// The effective propagation timeout: the run's option, else the config's.
    fn propagation_timeout(&self, options: &RunOptions) -> Duration {
        options
            .propagation_timeout
            .unwrap_or(Duration::from_secs(self.config.propagation_timeout))
    }

    /// What every address of the set presents now (the deploy target's key
    /// for `verify = "deployed-files"` sets).
    async fn observe_servers(
        &self,
        set: &CertSet,
        state_dir: &std::path::Path,
        set_state: &SetState,
    ) -> Result<Vec<PresentedAt>, EngineError> {
        if set.verify == VerifyMode::DeployedFiles {
            return Ok(DeployedFiles.presented(set, None).await);
        }
        let kind = self.key_kind(set, state_dir, set_state)?;
        Ok(self.servers.presented(set, kind).await)
    }

    /// The kind of key the set's servers are asked for: the deployed key's,
    /// else the source's, else what the set generates.
    fn key_kind(
        &self,
        set: &CertSet,
        state_dir: &std::path::Path,
        set_state: &SetState,
    ) -> Result<Option<KeyKind>, EngineError> {
        let chains = [
            files::deploy_files(set).chain,
            files::source_files(set, state_dir, set_state)?.chain,
        ];
        for chain in chains {
            if let Some(facts) = files::cert_facts(&chain)? {
                return Ok(KeyKind::of_spki(&facts.key.spki));
            }
        }
        Ok(Some(match set.next_key {
            KeyAlgorithmChoice::EcdsaP256 | KeyAlgorithmChoice::EcdsaP384 => KeyKind::Ecdsa,
            _ => KeyKind::Rsa,
        }))
    }

    /// Asks the plan, given the files, what DNS serves and what the servers present.
    fn decide(
        &self,
        set: &CertSet,
        owners: &[Owner],
        state_dir: &std::path::Path,
        set_state: &SetState,
        observed: &Observed,
        presented: &[PresentedAt],
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
            presented: presented.to_vec(),
            publish_unmatched: set.on_unmatched_key == UnmatchedKey::Publish,
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
                self.change(owners, entry, &edits, observed, propagation_timeout)
                    .await?;
                self.note_published(entry, &keys, observed, now);
            }
            Step::Retire { keys, added, edits } => {
                self.change(owners, entry, &edits, observed, propagation_timeout)
                    .await?;
                self.note_published(entry, &added, observed, now);
                for id in keys {
                    if let Some(key) = entry.keys.get_mut(&id) {
                        key.removed_at = Some(now);
                    }
                }
            }
            Step::Reconcile { edits } => {
                self.change(owners, entry, &edits, observed, propagation_timeout)
                    .await?;
            }
            Step::AwaitPropagation { keys, removed } => {
                self.await_propagation(set, owners, entry, &keys, observed, propagation_timeout)
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
                files::reload(&set.deploy.reload, &self.secret_env).await?;
                entry.reload_pending = false;
                // Every deploy is verified live before it counts.
                entry.verified = None;
                entry.rollover_requested_at = None;
                entry.rollover_to = None;
            }
            Step::Verify { key } => {
                let presented = self.await_presented(set, dir, entry, &key).await?;
                remember_presented(entry, &presented, self.now());
                let elsewhere: Vec<String> = presented
                    .iter()
                    .filter(|p| !p.key.as_ref().is_ok_and(|k| k.id == key))
                    .map(|p| match &p.key {
                        Ok(other) => format!("{} presents key {}", p.address, other.short()),
                        Err(why) => format!("{}: {why}", p.address),
                    })
                    .collect();
                if presented.is_empty() || !elsewhere.is_empty() {
                    // The next run reloads again before it checks again.
                    entry.reload_pending = true;
                    let error = EngineError::NotVerified {
                        set: set.name.get_ref().clone(),
                        key: plan::short(&key).to_string(),
                        why: if presented.is_empty() {
                            "no address to check".to_string()
                        } else {
                            elsewhere.join("; ")
                        },
                    };
                    entry.verify_failure = Some(error.to_string());
                    return Err(error);
                }
                entry.verify_failure = None;
                entry.verified = Some(Verified {
                    key,
                    at: self.now(),
                });
            }
        }
        Ok(())
    }

    /// Observes the servers until every address presents `key`, for at most
    /// [`VERIFY_TIMEOUT`]; returns the last observation.
    async fn await_presented(
        &self,
        set: &CertSet,
        dir: &std::path::Path,
        entry: &SetState,
        key: &str,
    ) -> Result<Vec<PresentedAt>, EngineError> {
        let deadline = self.clock.now() + VERIFY_TIMEOUT;
        loop {
            let presented = self.observe_servers(set, dir, entry).await?;
            let everywhere = !presented.is_empty()
                && presented
                    .iter()
                    .all(|p| p.key.as_ref().is_ok_and(|k| k.id == key));
            if everywhere || self.clock.now() >= deadline {
                return Ok(presented);
            }
            self.clock.sleep(VERIFY_POLL).await;
        }
    }

    /// Applies a change set (one UPDATE / API call per zone), after checking
    /// that every owner validates as Secure. A lowered TTL is remembered: a
    /// cache may hold the RRset with the old, longer TTL for that long.
    async fn change(
        &self,
        owners: &[Owner],
        entry: &mut SetState,
        edits: &[Edit],
        observed: &Observed,
        propagation_timeout: Duration,
    ) -> Result<(), EngineError> {
        self.require_secure(owners).await?;
        let new_ttl = edits.iter().map(|e| e.ttl).max();
        self.hold_lowered_ttl(entry, observed, new_ttl, propagation_timeout);
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
    fn hold_lowered_ttl(
        &self,
        entry: &mut SetState,
        observed: &Observed,
        new_ttl: Option<u32>,
        propagation_timeout: Duration,
    ) {
        let now = self.now();
        if entry.ttl_hold.as_ref().is_some_and(|h| h.until <= now) {
            entry.ttl_hold = None;
        }
        if let (Some(old), Some(new)) = (observed.prior().0, new_ttl)
            && old > new
        {
            // Counted from now, plus the longest a propagation may take: a
            // lagging server may hand out the old TTL until it catches up.
            let until = now + propagation_timeout + Duration::from_secs(u64::from(old));
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
        entry: &mut SetState,
        keys: &[KeyMaterial],
        observed: &Observed,
        now: Timestamp,
    ) {
        let prior_ttl = self.prior_ttl(entry, observed);
        let (_, prior_absent) = observed.prior();
        for material in keys {
            let key = entry
                .keys
                .entry(material.id.clone())
                .or_insert_with(|| KeyState::new(&material.spki, now));
            key.published_at.get_or_insert(now);
            key.prior_ttl = key.prior_ttl.max(prior_ttl);
            key.prior_absent |= prior_absent;
            key.propagated_at = None;
            key.safe_at = None;
        }
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
        entry: &mut SetState,
        keys: &[KeyMaterial],
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
            let name = set.name.get_ref();
            let report = |lags: &[propagation::Lag]| {
                let lines: Vec<String> = lags.iter().map(ToString::to_string).collect();
                (self.progress)(&format!(
                    "set {name}: waiting for zone {} on {} address(es):\n    {}",
                    zone.name,
                    lags.len(),
                    lines.join("\n    ")
                ));
            };
            let propagated = propagation::wait_reporting(
                &servers,
                self.clock.as_ref(),
                &expected,
                deadline,
                &report,
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
        for material in keys {
            let (id, spki) = (&material.id, &material.spki);
            // Only a key whose records every server serves can become safe.
            let records = policy.records_for_key(spki);
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
                let mut adopted = KeyState::new(spki, at);
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
    crate::fsutil::create_dir_all_mode(dir, crate::fsutil::PRIVATE_DIR).map_err(|e| {
        FileError::Write {
            file: dir.to_path_buf(),
            why: e.to_string(),
        }
    })?;
    for (path, content, mode) in [(&to.key, key, 0o600), (&to.chain, pem.into_bytes(), 0o644)] {
        crate::fsutil::write_atomic(path, &content, mode).map_err(|e| FileError::Write {
            file: path.clone(),
            why: e.to_string(),
        })?;
    }
    Ok(())
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
        seen.addresses == addresses && seen.at + super::idle::MARK_REFRESH > now
    });
    if !fresh {
        entry.presented = Some(PresentedSeen { at: now, addresses });
    }
}
