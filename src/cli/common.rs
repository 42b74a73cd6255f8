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
        Config::load(&self.config).map_err(|e| Failure::Input(vec![e.to_string()]))
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

impl OptionalConfigArgs {
    pub fn load(&self) -> Result<Option<Config>, Failure> {
        self.config
            .as_deref()
            .map(|file| Config::load(file).map_err(|e| Failure::Input(vec![e.to_string()])))
            .transpose()
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(vec![format!("cannot start the async runtime: {e}")]))
}

pub fn open_state(config: &Config) -> Result<StateStore, Failure> {
    StateStore::open(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))
}

pub async fn engine(config: Config) -> Result<Engine, Failure> {
    // Sets that say `verify = "deployed-files"` are checked that way by the
    // engine itself; the live verifier serves the others.
    let verifier: Box<dyn crate::roll::verify::Verify> =
        match crate::roll::verify::Live::new(&config).await {
            Ok(live) => Box::new(live),
            Err(e) => return Err(Failure::Runtime(vec![e.to_string()])),
        };
    Engine::new(
        config,
        Arc::new(SystemClock),
        verifier,
        Box::new(|line: &str| eprintln!("tlsa: {line}")),
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
        crate::dns::DnsError::Secret { .. } | crate::dns::DnsError::Config(_)
    )
}

pub use crate::roll::executor::when;
