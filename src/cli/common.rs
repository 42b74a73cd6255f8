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
    StateStore::open(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))
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
        Box::new(|line: &str| super::journal::say(super::journal::Level::of_progress(line), line)),
    )
    .await
    .map_err(engine_failure)
}

pub fn engine_failure(error: EngineError) -> Failure {
    match error {
        EngineError::Config(_) => Failure::Input(vec![error.to_string()]),
        other => Failure::Runtime(vec![other.to_string()]),
    }
}

pub use crate::roll::executor::when;
