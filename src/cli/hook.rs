//! `tlsa hook certbot|acme-sh|lego` (the ACME clients' renewal hooks) and `tlsa csr SET`.
//!
//! The hook runs the sets whose source is the renewed certificate once, without
//! waiting for TTLs: a renewal with the same key deploys at once, a new key
//! is published at once and deployed by a later `tlsa run` (timer) when it
//! is safe. It never blocks the ACME client for longer than one propagation check.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Failure;
use super::common::ConfigArgs;
use crate::config::Source;
use crate::roll::executor::RunOptions;
use crate::roll::state;
use crate::roll::{files, keys};

/// The longest a hook run waits for propagation before leaving it to `tlsa run`.
const HOOK_PROPAGATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub client: HookClient,
}

#[derive(Debug, Subcommand)]
pub enum HookClient {
    /// certbot --deploy-hook: reads RENEWED_LINEAGE.
    Certbot {
        #[command(flatten)]
        common: HookCommon,
        /// The lineage directory certbot renewed.
        #[arg(long, env = "RENEWED_LINEAGE")]
        lineage: PathBuf,
    },
    /// acme.sh --reloadcmd (or --renew-hook): reads CERT_FULLCHAIN_PATH.
    AcmeSh {
        #[command(flatten)]
        common: HookCommon,
        /// The `fullchain.cer` acme.sh renewed (in its certificate directory).
        #[arg(long, env = "CERT_FULLCHAIN_PATH")]
        fullchain: PathBuf,
    },
    /// lego --renew-hook: reads LEGO_CERT_PATH.
    Lego {
        #[command(flatten)]
        common: HookCommon,
        /// The certificate lego renewed (`PATH/certificates/DOMAIN.crt`).
        #[arg(long, env = "LEGO_CERT_PATH")]
        cert: PathBuf,
    },
}

/// What every client's hook takes.
#[derive(Debug, Args)]
pub struct HookCommon {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seconds the hook waits for propagation before leaving the rest to
    /// the timer's `tlsa run` [default: 20].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    propagation_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CsrArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The certificate set whose next key the request is for.
    pub set: String,
}

pub fn hook(args: &HookArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (common, renewed, what) = match &args.client {
        HookClient::Certbot { common, lineage } => (common, lineage, "the lineage"),
        HookClient::AcmeSh { common, fullchain } => (common, fullchain, "the certificate"),
        HookClient::Lego { common, cert } => (common, cert, "the certificate"),
    };
    let HookCommon {
        config,
        propagation_timeout,
    } = common;
    let loaded = config.load()?;
    let wanted = canonical(renewed);
    let sets: Vec<String> = loaded
        .sets
        .iter()
        .filter(|s| match (&args.client, &s.source) {
            (HookClient::Certbot { .. }, Source::Certbot(dir)) => canonical(dir) == wanted,
            (HookClient::Certbot { .. }, Source::CertbotPair(dirs)) => {
                dirs.iter().any(|dir| canonical(dir) == wanted)
            }
            // Both name the renewed certificate file: the one the set reads.
            (HookClient::AcmeSh { .. }, Source::AcmeSh(_))
            | (HookClient::Lego { .. }, Source::Lego { .. }) => {
                canonical(&files::source_files_of(s, &loaded.state_dir).chain) == wanted
            }
            _ => false,
        })
        .map(|s| s.name.get_ref().clone())
        .collect();
    if sets.is_empty() {
        writeln!(
            out,
            "tlsa: no certificate set uses {what} {}; nothing to do",
            renewed.display()
        )
        .map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
        return Ok(());
    }
    // Never hold the ACME client up for long: what cannot finish now, the timer does.
    let options = RunOptions {
        sets,
        propagation_timeout: Some(
            propagation_timeout.map_or(HOOK_PROPAGATION_TIMEOUT, std::time::Duration::from_secs),
        ),
        ..RunOptions::default()
    };
    let outcomes = super::run::execute(loaded, &options)?;
    // Propagation slower than the hook may wait is not a failure: the
    // records are published and the timer's `tlsa run` confirms them.
    super::run::finish(&outcomes, out, true, "tlsa: ")
}

fn canonical(path: &std::path::Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

pub fn csr(args: &CsrArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    let set = config
        .sets
        .iter()
        .find(|s| s.name.get_ref() == &args.set)
        .ok_or_else(|| {
            Failure::Input(vec![format!(
                "no certificate set named {:?} in the config",
                args.set
            )])
        })?;
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let next = state
        .sets
        .get(&args.set)
        .and_then(|s| s.next_key.clone())
        .ok_or_else(|| {
            Failure::Runtime(vec![format!(
                "set {}: no next key yet; run `tlsa run` first so that one is generated and published",
                args.set
            )])
        })?;
    // Each host once, in config order: the first becomes the subject's CN.
    let mut names: Vec<String> = Vec::new();
    for host in set.endpoints.iter().map(|e| &e.host) {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let path = keys::key_path(&config.state_dir, &args.set, &next);
    let pem = keys::csr_pem(&path, &names).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    out.write_all(pem.as_bytes())
        .map_err(|e| Failure::Runtime(vec![e.to_string()]))
}
