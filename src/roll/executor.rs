//! The executor: observes files and DNS, asks the plan for the step due,
//! performs it, records what happened, and asks again. Every step is
//! preceded by the checks it depends on (DNSSEC validation before any
//! change, propagation on every authoritative server before a key counts
//! as published), and the state is saved after every step, so a crash or
//! kill at any point is followed by a rerun that picks up where DNS and the
//! files say the roll is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;

use super::files::{self, CertFiles, FileError};
use super::keys::{self, KeyError};
use super::plan::{self, Alarm, Decision, Step, View};
use super::policy::RecordPolicy;
use super::state::{KeyState, SetState, State, StateError, StateStore, Timestamp, Verified};
pub use super::verify::{DeployedFiles, Live, Verify};
use crate::clock::Clock;
use crate::config::{BackendKind, CertSet, Config, SecretRef, Source, ValidationMode, VerifyMode};
use crate::dns::dnssec::{Anchors, Validator};
use crate::dns::propagation::{self, Discovery, Expected, Lookup, ZoneServers};
use crate::dns::rfc2136::Rfc2136;
use crate::dns::tsig::TsigKey;
use crate::dns::{self, DnsError, Provider, ttl};
use crate::tlsa::TlsaRecord;

/// How long one propagation wait may take before the run gives up (the
/// step is repeated by the next run).
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Steps one set may take in one run; a loop past this is a bug, not a roll.
const MAX_STEPS_PER_RUN: usize = 64;
/// Self-signed certificates are valid this long (DANE-EE ignores dates, but
/// some clients log expired certificates).
const SELF_SIGNED_DAYS: i64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Boxed: DNS errors carry names and addresses, and a large error type
    /// would bloat every `Result` on the engine's paths.
    #[error(transparent)]
    Dns(Box<DnsError>),
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
}

impl From<DnsError> for EngineError {
    fn from(error: DnsError) -> Self {
        EngineError::Dns(Box::new(error))
    }
}

/// One configured zone, ready to use.
struct ZoneRuntime {
    name: Name,
    provider: Box<dyn Provider>,
    discovery: Discovery,
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
}

/// Unix seconds as RFC 3339, with "in N s" when in the future.
pub fn when(at: Timestamp, now: Timestamp) -> String {
    let text = time::OffsetDateTime::from_unix_timestamp(at as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string());
    if at > now {
        format!("{text} (in {} s)", at - now)
    } else {
        text
    }
}

pub fn unix(time: SystemTime) -> Timestamp {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn from_unix(at: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(at)
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
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn say(&self, text: &str) {
        (self.progress)(text);
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

    /// The configured zone holding all of a set's owner names (the longest match).
    fn zone_for(&self, set: &CertSet) -> Result<&ZoneRuntime, EngineError> {
        let owners = Self::owners(set)?;
        self.zones
            .iter()
            .filter(|z| {
                owners.iter().all(|o| {
                    parse_name(o, "owner").is_ok_and(|o| z.name.zone_of(&o))
                })
            })
            .max_by_key(|z| z.name.num_labels())
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "set {}: no [[zone]] in the config contains {}; add the zone that holds these names",
                    set.name.get_ref(),
                    owners.join(", ")
                ))
            })
    }

    fn policy(set: &CertSet) -> RecordPolicy {
        RecordPolicy {
            matching: set.matching.iter().map(|m| m.0).collect(),
            ..RecordPolicy::default()
        }
    }

    /// Runs every due step of every selected set.
    pub async fn run(
        &self,
        store: &StateStore,
        options: &RunOptions,
    ) -> Result<Vec<SetOutcome>, EngineError> {
        let mut state = store.load()?;
        let mut outcomes = Vec::new();
        for set in &self.config.sets {
            let name = set.name.get_ref().clone();
            if !options.sets.is_empty() && !options.sets.contains(&name) {
                continue;
            }
            let outcome = self.run_set(set, store, &mut state, options).await?;
            outcomes.push(outcome);
        }
        if let Some(unknown) = options
            .sets
            .iter()
            .find(|s| !self.config.sets.iter().any(|c| c.name.get_ref() == *s))
        {
            return Err(EngineError::Config(format!(
                "no certificate set named {unknown:?} in the config"
            )));
        }
        Ok(outcomes)
    }

    async fn run_set(
        &self,
        set: &CertSet,
        store: &StateStore,
        state: &mut State,
        options: &RunOptions,
    ) -> Result<SetOutcome, EngineError> {
        let name = set.name.get_ref().clone();
        let zone = self.zone_for(set)?;
        let mut outcome = SetOutcome {
            set: name.clone(),
            ..SetOutcome::default()
        };
        self.prepare_source(set, store, state).await?;
        if options.rollover {
            self.start_rollover(set, store, state)?;
        }
        for _ in 0..MAX_STEPS_PER_RUN {
            let set_state = state.sets.entry(name.clone()).or_default().clone();
            let decision = self.decide(set, zone, store.dir(), &set_state).await?;
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
            self.track_emergency(set, state.sets.entry(name.clone()).or_default(), &decision)?;
            store.save(state)?;
            if let Some(step) = &decision.step
                && !options.confirm
                && set.manual.iter().any(|m| m.matches(step))
            {
                outcome.waiting = Some(format!(
                    "the next step ({}) is manual: run `tlsa run --confirm --set {name}` to perform it",
                    describe(step)
                ));
                return Ok(outcome);
            }
            let Some(step) = decision.step else {
                outcome.wake_at = decision.wake_at;
                outcome.waiting = decision.waiting.clone();
                match (options.wait, decision.wake_at) {
                    (true, Some(at)) => {
                        if let Some(why) = &decision.waiting {
                            let now = unix(self.clock.now());
                            self.say(&format!(
                                "set {name}: waiting until {}: {why}",
                                when(at, now)
                            ));
                        }
                        let pause = from_unix(at)
                            .duration_since(self.clock.now())
                            .unwrap_or(Duration::ZERO);
                        self.clock.sleep(pause + Duration::from_millis(20)).await;
                        continue;
                    }
                    _ => {
                        if outcome.emergency
                            && let Some(until) = state.sets.get(&name).and_then(|s| s.alarm_until)
                        {
                            let text = format!(
                                "the live key's record is published again; resolvers that cached the RRset without it may still make DANE senders refuse mail until {}",
                                when(until, unix(self.clock.now()))
                            );
                            self.say(&format!("ALARM: set {name}: {text}"));
                            outcome.alarms.push(text);
                        }
                        return Ok(outcome);
                    }
                }
            };
            let summary = describe(&step);
            self.say(&format!("set {name}: {summary}"));
            if matches!(step, Step::Deploy { .. }) {
                // Known before the files change: see `SetState::reload_pending`.
                state.sets.entry(name.clone()).or_default().reload_pending = true;
                store.save(state)?;
            }
            let entry = state.sets.entry(name.clone()).or_default();
            let timeout = options
                .propagation_timeout
                .unwrap_or(DEFAULT_PROPAGATION_TIMEOUT);
            self.execute(set, zone, store, entry, step, timeout).await?;
            let now = unix(self.clock.now());
            entry.record(now, summary.clone());
            store.save(state)?;
            outcome.done.push(summary);
        }
        Err(EngineError::Config(format!(
            "set {name}: more than {MAX_STEPS_PER_RUN} steps in one run; this is a bug, please report it with the state file"
        )))
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
        let now = unix(self.clock.now());
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
        if entry.alarm_until.is_some_and(|until| until <= now) {
            entry.alarm = None;
            entry.alarm_until = None;
        }
        Ok(())
    }

    /// A self-signed set without any certificate gets its first one.
    async fn prepare_source(
        &self,
        set: &CertSet,
        store: &StateStore,
        state: &mut State,
    ) -> Result<(), EngineError> {
        let Source::SelfSigned { names } = &set.source else {
            return Ok(());
        };
        let staged = files::source_files(set, store.dir());
        let deployed = files::deploy_files(set);
        if staged.chain.exists() || deployed.chain.exists() {
            return Ok(());
        }
        let name = set.name.get_ref();
        let (key, path) = keys::create_next_key(store.dir(), name, set.next_key)?;
        stage_self_signed(&path, names, &staged)?;
        self.say(&format!(
            "set {name}: first key {} generated, certificate staged",
            key.short()
        ));
        state
            .sets
            .entry(name.clone())
            .or_default()
            .record(unix(self.clock.now()), "first key generated");
        store.save(state)?;
        Ok(())
    }

    /// A planned roll: the next key gets a certificate and becomes the source.
    fn start_rollover(
        &self,
        set: &CertSet,
        store: &StateStore,
        state: &mut State,
    ) -> Result<(), EngineError> {
        let name = set.name.get_ref();
        let Source::SelfSigned { names } = &set.source else {
            return Err(EngineError::Config(format!(
                "set {name}: a planned roll needs a certificate for the next key; for an ACME source, request one with `tlsa csr {name}` and let the deploy hook bring it in"
            )));
        };
        let entry = state.sets.entry(name.clone()).or_default();
        let Some(next) = entry.next_key.clone() else {
            return Err(EngineError::Config(format!(
                "set {name}: no next key yet; run `tlsa run` first so that one is generated and published"
            )));
        };
        let path = keys::key_path(store.dir(), name, &next);
        stage_self_signed(&path, names, &files::source_files(set, store.dir()))?;
        let now = unix(self.clock.now());
        entry.rollover_requested_at = Some(now);
        entry.record(
            now,
            format!("rollover to key {} requested", plan::short(&next)),
        );
        store.save(state)?;
        Ok(())
    }

    /// What the plan would do now for every set, without doing it (and
    /// without the lock: `tlsa plan` may run beside a `tlsa run`).
    pub async fn preview(
        &self,
        state: &State,
    ) -> Result<Vec<(String, Decision, BTreeMap<String, BTreeSet<TlsaRecord>>)>, EngineError> {
        let mut previews = Vec::new();
        for set in &self.config.sets {
            let zone = self.zone_for(set)?;
            let empty = SetState::default();
            let set_state = state.sets.get(set.name.get_ref()).unwrap_or(&empty);
            let decision = self
                .decide(set, zone, &self.config.state_dir, set_state)
                .await?;
            let mut current = BTreeMap::new();
            for owner in Self::owners(set)? {
                let rrset = zone
                    .provider
                    .read(&zone.name, &parse_name(&owner, "owner")?)
                    .await?;
                current.insert(owner, rrset.records);
            }
            previews.push((set.name.get_ref().clone(), decision, current));
        }
        Ok(previews)
    }

    /// Observes the files and DNS of a set and asks the plan.
    async fn decide(
        &self,
        set: &CertSet,
        zone: &ZoneRuntime,
        state_dir: &std::path::Path,
        set_state: &SetState,
    ) -> Result<Decision, EngineError> {
        let owners = Self::owners(set)?;
        let mut dns = BTreeMap::new();
        for owner in &owners {
            let rrset = zone
                .provider
                .read(&zone.name, &parse_name(owner, "owner")?)
                .await?;
            dns.insert(owner.clone(), rrset.records);
        }
        let next = match &set_state.next_key {
            Some(id) => {
                let path = keys::key_path(state_dir, set.name.get_ref(), id);
                path.exists()
                    .then(|| files::key_material(&path))
                    .transpose()?
                    .filter(|k| &k.id == id)
            }
            None => None,
        };
        let policy = Self::policy(set);
        let view = View {
            owners,
            policy: &policy,
            fully_managed: set.fully_managed,
            ttl: set.ttl,
            deployed: files::cert_facts(&files::deploy_files(set).chain)?,
            source: files::cert_facts(&files::source_files(set, state_dir).chain)?,
            next,
            dns,
            state: set_state,
            now: unix(self.clock.now()),
        };
        Ok(plan::decide(&view))
    }

    async fn execute(
        &self,
        set: &CertSet,
        zone: &ZoneRuntime,
        store: &StateStore,
        entry: &mut SetState,
        step: Step,
        propagation_timeout: Duration,
    ) -> Result<(), EngineError> {
        let now = unix(self.clock.now());
        match step {
            Step::Publish { keys, edits } => {
                self.require_secure(set, zone).await?;
                let (prior_ttl, prior_absent) = self.prior(set, zone).await?;
                dns::apply_edits(zone.provider.as_ref(), &zone.name, &edits).await?;
                for id in keys {
                    let spki = self.spki_of(set, store, entry, &id)?;
                    let key = entry
                        .keys
                        .entry(id)
                        .or_insert_with(|| new_key_state(spki, now));
                    key.published_at.get_or_insert(now);
                    key.prior_ttl = prior_ttl;
                    key.prior_absent = prior_absent;
                    key.propagated_at = None;
                    key.safe_at = None;
                }
            }
            Step::Retire { keys, edits } => {
                self.require_secure(set, zone).await?;
                dns::apply_edits(zone.provider.as_ref(), &zone.name, &edits).await?;
                for id in keys {
                    if let Some(key) = entry.keys.get_mut(&id) {
                        key.removed_at = Some(now);
                    }
                }
            }
            Step::AwaitPropagation { keys, removed } => {
                self.await_propagation(set, zone, store, entry, &keys, propagation_timeout)
                    .await?;
                for id in removed {
                    entry.keys.remove(&id);
                }
            }
            Step::GenerateNextKey => {
                let (key, _) =
                    keys::create_next_key(store.dir(), set.name.get_ref(), set.next_key)?;
                entry.next_key = Some(key.id);
            }
            Step::Deploy { .. } => {
                let source = files::source_files(set, store.dir());
                files::install(&source, &files::deploy_files(set))?;
                files::reload(&set.deploy.reload).await?;
                entry.reload_pending = false;
                entry.rollover_requested_at = None;
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

    /// The SPKI of a key the plan names: from the files, the next key, or the state.
    fn spki_of(
        &self,
        set: &CertSet,
        store: &StateStore,
        entry: &SetState,
        id: &str,
    ) -> Result<Vec<u8>, EngineError> {
        let candidates = [
            files::cert_facts(&files::deploy_files(set).chain)?.map(|c| c.key),
            files::cert_facts(&files::source_files(set, store.dir()).chain)?.map(|c| c.key),
        ];
        if let Some(key) = candidates.into_iter().flatten().find(|k| k.id == id) {
            return Ok(key.spki);
        }
        let path = keys::key_path(store.dir(), set.name.get_ref(), id);
        if path.exists() {
            return Ok(files::key_material(&path)?.spki);
        }
        entry
            .keys
            .get(id)
            .and_then(|k| hex::decode(&k.spki).ok())
            .ok_or_else(|| EngineError::Config(format!("key {} is unknown", plan::short(id))))
    }

    /// The longest TTL among the set's RRsets now, and whether one is absent:
    /// what caches may hold from before a change.
    async fn prior(
        &self,
        set: &CertSet,
        zone: &ZoneRuntime,
    ) -> Result<(Option<u32>, bool), EngineError> {
        let mut longest = None;
        let mut absent = false;
        for owner in Self::owners(set)? {
            let rrset = zone
                .provider
                .read(&zone.name, &parse_name(&owner, "owner")?)
                .await?;
            absent |= rrset.records.is_empty();
            longest = longest.max(rrset.ttl);
        }
        Ok((longest, absent))
    }

    /// Refuses to change anything unless every owner of the set validates as
    /// Secure (positive or negative answer).
    async fn require_secure(&self, set: &CertSet, zone: &ZoneRuntime) -> Result<(), EngineError> {
        for owner in Self::owners(set)? {
            let validation = self
                .validator
                .validate_tlsa(&parse_name(&owner, "owner")?)
                .await;
            if !validation.is_acceptable_for_changes() {
                return Err(EngineError::Insecure {
                    zone: zone.name.to_string(),
                    why: format!(
                        "{validation}; tlsa only publishes into, and removes from, zones that validate as Secure"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Waits until every authoritative address serves what the primary
    /// serves, validates it, and records when each key is safe.
    async fn await_propagation(
        &self,
        set: &CertSet,
        zone: &ZoneRuntime,
        store: &StateStore,
        entry: &mut SetState,
        keys: &[String],
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let mut rrsets = BTreeMap::new();
        let mut current_ttl = None;
        for owner in Self::owners(set)? {
            let name = parse_name(&owner, "owner")?;
            let rrset = zone.provider.read(&zone.name, &name).await?;
            current_ttl = current_ttl.max(rrset.ttl);
            rrsets.insert(name, rrset.records);
        }
        let expected = Expected {
            rrsets,
            min_serial: None,
        };
        let servers = ZoneServers::discover(&zone.discovery).await?;
        let deadline = self.clock.now() + timeout;
        let propagated =
            propagation::wait_until_propagated(&servers, self.clock.as_ref(), &expected, deadline)
                .await
                .map_err(|e| EngineError::NotPropagated(e.to_string()))?;
        self.require_secure(set, zone).await?;
        let facts = ttl::worst_case_by_owner(&propagated.observation)
            .into_values()
            .reduce(ttl::TtlFacts::longest)
            .unwrap_or_default();
        let margin = Duration::from_secs(set.margin);
        let at = unix(propagated.at);
        let policy = Self::policy(set);
        for id in keys {
            let spki = self.spki_of(set, store, entry, id)?;
            // Only a key whose records every server serves can become safe.
            let records = policy.records_for_key(&spki);
            if !expected
                .rrsets
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
                propagated.at,
                key.prior_ttl,
                &facts,
                !key.prior_absent,
                margin,
            );
            key.propagated_at = Some(at);
            key.safe_at = Some(unix(safe).max(at));
            // Round up: a key is safe only once the whole last second has passed.
            if safe
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos() > 0)
                .unwrap_or(false)
            {
                key.safe_at = key.safe_at.map(|s| s + 1);
            }
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
        Step::Retire { keys: ids, .. } => format!("retire key {}", keys(ids)),
    }
}
