//! `tlsa config check [--online]`: finds now what would make a run fail
//! later (see `config::audit`), one line per problem.

use std::io::Write;

use clap::{Args, Subcommand};

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::config::audit::{self, Class};

#[derive(Debug, Args)]
pub struct ConfigCommandArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config and everything it names, without changing anything.
    #[command(
        after_help = "Offline: the schema; every file the config names readable (TSIG \
key and token files readable by nobody else); every endpoint inside a configured zone; state and \
deploy directories writable; reload programs present.
--online also: each zone's credentials with a read-only call (RFC 2136: a TSIG-signed SOA query \
to the server), and the resolver returning DNSSEC data that validates from the anchor.

Exit codes: 0 no problem; 2 a problem with the config or a file it names; 1 only online \
problems (a server, provider or resolver refused)."
    )]
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also ask the DNS servers, providers and resolver (read-only).
        #[arg(long)]
        online: bool,
        /// Print the problems as JSON: `{ config, ok, problems: [{ class, place, what }] }`.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &ConfigCommandArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let ConfigCommand::Check {
        config,
        online,
        json,
    } = &args.command;
    let loaded = config.load()?;
    let mut problems = audit::offline(&loaded);
    if *online {
        problems.extend(common::runtime()?.block_on(audit::online(&loaded)));
    }
    let file = config.config.display();
    let written = if *json {
        let doc = serde_json::json!({
            "config": config.config,
            "ok": problems.is_empty(),
            "online": online,
            "problems": problems,
        });
        writeln!(out, "{doc:#}")
    } else if problems.is_empty() {
        writeln!(
            out,
            "{file}: ok ({} zones, {} sets{})",
            loaded.zones.len(),
            loaded.sets.len(),
            if *online {
                ", online checks passed"
            } else {
                "; --online also asks the servers"
            }
        )
    } else {
        problems
            .iter()
            .try_for_each(|p| writeln!(out, "{file}: {p}"))
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))?;
    let summary = vec![format!("{file}: {} problem(s)", problems.len())];
    match problems
        .iter()
        .map(|p| p.class)
        .min_by_key(|c| *c != Class::Config)
    {
        None => Ok(()),
        Some(Class::Config) => Err(Failure::Input(summary)),
        Some(Class::Online) => Err(Failure::Runtime(summary)),
    }
}
