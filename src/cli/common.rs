//! What the config-driven commands share: finding and loading the config,
//! opening the state, and building the engine.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Failure;
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::roll::executor::{Engine, EngineError};
use crate::roll::state::StateStore;

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(short, long, env = "TLSA_CONFIG", default_value = config::DEFAULT_PATH, global = true)]
    pub config: PathBuf,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config, Failure> {
        let config = Config::load(&self.config).map_err(|e| Failure::Input(vec![e.to_string()]))?;
        describe(&self.config, &config);
        Ok(config)
    }
}

/// `-c` for commands that work without a config and take their settings
/// from it when one is given (`lookup`, `providers`).
#[derive(Debug, Clone, Args)]
pub struct OptionalConfigArgs {
    /// Take the settings from this tlsa config (resolver, trust anchor,
    /// zones) where the command line gives none.
    #[arg(short, long, env = "TLSA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How long a propagation wait may take.
#[derive(Debug, Args)]
pub struct PropagationArg {
    /// Seconds one propagation wait may take before the run gives up and
    /// names each lagging server [default: the config's
    /// `propagation_timeout`, 120].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub propagation_timeout: Option<u64>,
}

impl PropagationArg {
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.propagation_timeout.map(std::time::Duration::from_secs)
    }
}

impl OptionalConfigArgs {
    pub fn load(&self) -> Result<Option<Config>, Failure> {
        let Some(file) = self.config.as_deref() else {
            return Ok(None);
        };
        let config = Config::load(file).map_err(|e| Failure::Input(vec![e.to_string()]))?;
        describe(file, &config);
        Ok(Some(config))
    }
}

/// `-v`: which config, and what it points at.
fn describe(file: &std::path::Path, config: &Config) {
    if verbosity() < Verbosity::Verbose {
        return;
    }
    say(
        Verbosity::Verbose,
        &format!(
            "config {}: {} zone(s), {} set(s), state in {}",
            file.display(),
            config.zones.len(),
            config.sets.len(),
            config.state_dir.display()
        ),
    );
    let trust = match &config.dnssec.trust() {
        crate::live::resolve::Trust::ResolverAd => "the resolver's AD bit".to_string(),
        crate::live::resolve::Trust::Anchored(crate::dns::observe::dnssec::Anchors::RootKeys) => {
            "validated here from the root KSKs".to_string()
        }
        crate::live::resolve::Trust::Anchored(crate::dns::observe::dnssec::Anchors::File(path)) => {
            format!("validated here from {}", path.display())
        }
    };
    say(
        Verbosity::Verbose,
        &format!("resolver {}, DNSSEC: {trust}", config.dnssec.resolver),
    );
    for zone in &config.zones {
        say(
            Verbosity::Verbose,
            &format!(
                "zone {}: {} back-end",
                zone.name.get_ref(),
                format!("{:?}", zone.backend).to_lowercase()
            ),
        );
    }
}

/// How much a command tells on stderr besides errors and alarms: set once
/// by `-q`/`-v` before the command runs (a process runs one command).
static VERBOSITY: std::sync::atomic::AtomicU8 =
    std::sync::atomic::AtomicU8::new(Verbosity::Normal as u8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verbosity {
    /// `-q`: only errors and alarms.
    Quiet = 0,
    /// Progress lines as steps happen.
    Normal = 1,
    /// `-v`: also what the command works with (config, resolver, back-ends).
    Verbose = 2,
}

pub fn set_verbosity(level: Verbosity) {
    VERBOSITY.store(level as u8, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// A progress line on stderr, shown at `level` and above; alarms and
/// warnings always are.
pub fn say(level: Verbosity, line: &str) {
    let always = line.starts_with("ALARM") || line.starts_with("warning");
    if always || verbosity() >= level {
        super::journal::say(super::journal::Level::of_progress(line), line);
    }
}

/// Whether to colour output going to a stream: only a terminal, and never
/// when NO_COLOR is set to anything non-empty (https://no-color.org) or the
/// terminal is `dumb`.
pub fn colour(is_terminal: bool) -> bool {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    is_terminal && !set("NO_COLOR") && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(vec![format!("cannot start the async runtime: {e}")]))
}

/// Refuses `--set` names the config does not have.
pub fn known_sets(config: &Config, names: &[String]) -> Result<(), Failure> {
    match names
        .iter()
        .find(|n| !config.sets.iter().any(|s| s.name.get_ref() == *n))
    {
        Some(unknown) => Err(Failure::Input(vec![format!(
            "no certificate set named {unknown:?} in the config"
        )])),
        None => Ok(()),
    }
}

pub fn open_state(config: &Config) -> Result<StateStore, Failure> {
    StateStore::open(&config.state_dir).map_err(|e| match e {
        crate::roll::state::StateError::Locked { .. } => Failure::Busy(vec![e.to_string()]),
        other => Failure::Runtime(vec![other.to_string()]),
    })
}

pub async fn engine(config: Config) -> Result<Engine, Failure> {
    // Sets that say `verify = "deployed-files"` are observed that way by the
    // engine itself; the live observer serves the others.
    let servers: Box<dyn crate::roll::presented::Servers> =
        match crate::roll::presented::Live::new(&config).await {
            Ok(live) => Box::new(live),
            Err(e) => return Err(Failure::Runtime(vec![e.to_string()])),
        };
    Engine::new(
        config,
        Arc::new(SystemClock),
        servers,
        Box::new(|line: &str| say(Verbosity::Normal, line)),
    )
    .await
    .map_err(engine_failure)
}

pub fn engine_failure(error: EngineError) -> Failure {
    match error {
        EngineError::Config(_) => Failure::Input(vec![error.to_string()]),
        EngineError::Dns(ref dns) if is_config_error(dns) => {
            Failure::Input(vec![error.to_string()])
        }
        other => Failure::Runtime(vec![other.to_string()]),
    }
}

/// Whether a DNS-layer error is the config's fault (exit 2): a token file
/// that cannot be read is the same class of error as a TSIG key file that
/// cannot be read.
pub fn is_config_error(error: &crate::dns::DnsError) -> bool {
    matches!(
        error,
        crate::dns::DnsError::Secret(_) | crate::dns::DnsError::Config(_)
    )
}

pub use crate::roll::executor::when;
