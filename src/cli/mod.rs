//! Command-line interface: one file per command, each a thin layer over the library.

use clap::{Parser, Subcommand};

pub mod check;
mod check_text;
mod common;
pub mod config;
mod failure;
pub mod generate;
pub mod hash;
pub mod hook;
pub mod journal;
pub mod lookup;
mod owner;
pub mod plan;
pub mod providers;
pub mod run;
pub mod status;
mod sts;
mod sts_plan;
mod sts_status;
pub mod tlsrpt;

pub use failure::Failure;

/// Manage DANE TLSA records: compute, publish, roll and verify.
#[derive(Debug, Parser)]
#[command(
    name = "tlsa",
    version,
    about,
    long_about = None,
    after_help = "Every command that reads the config takes -c FILE (or TLSA_CONFIG; default /etc/tlsa/tlsa.toml).

Exit codes (all commands but `check`): 0 done, nothing wrong; 1 the work failed (a DNS server,
provider, resolver or live check said no; an alarm); 2 the config or the command line is wrong,
or a file the config names (TSIG key, token, anchor) cannot be used; 75 another run holds the
state lock (nothing was done).
`tlsa check` is a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Only errors and alarms on stderr; `run`, `rollover` and `hook` print
    /// no report either (for cron: mail only when something is wrong).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr: the config, resolver, trust anchor and
    /// back-ends a command works with.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print TLSA data for certificates, chains, keys and CSRs.
    Hash(hash::HashArgs),
    /// Show what every authoritative server serves for a TLSA owner name,
    /// and whether it validates under DNSSEC.
    Lookup(lookup::LookupArgs),
    /// Do whatever roll steps are due (for cron or a systemd timer).
    Run(run::RunArgs),
    /// Start a planned roll to the pre-published next key.
    Rollover(run::RolloverArgs),
    /// Run as an ACME client's renewal hook: certbot, acme.sh or lego.
    Hook(hook::HookArgs),
    /// Print a certificate request (PKCS#10) for a set's next key.
    Csr(hook::CsrArgs),
    /// Show the step each set would take now, as an RRset diff and nsupdate input.
    Plan(plan::PlanArgs),
    /// Show each set's keys, roll step and timeline (files and state only).
    Status(status::StatusArgs),
    /// Connect to an endpoint's addresses and check the presented key against
    /// its validated TLSA records (monitoring exit codes 0/1/2/3).
    Check(check::CheckArgs),
    /// Check, read-only, that the DNS back-ends' credentials work (every
    /// zone of the config, or one back-end by flags; never prints a secret).
    Providers(providers::ProvidersArgs),
    /// Check the config and everything it names (`tlsa config check [--online]`).
    Config(config::ConfigCommandArgs),
    /// TLS-RPT (RFC 8460) reports: import, summarise, receive by HTTPS.
    Tlsrpt(tlsrpt::TlsrptArgs),
}

/// Whether the command line (program name first) runs `tlsa check`: its
/// first word that is not an option is `check`.
pub fn is_check_invocation(args: impl IntoIterator<Item = String>) -> bool {
    args.into_iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| a == "check")
}

/// Runs the parsed command, writing results to `out` and warnings to `err`.
pub fn run(
    cli: Cli,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    common::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => common::Verbosity::Quiet,
        (false, true) => common::Verbosity::Verbose,
        (false, false) => common::Verbosity::Normal,
    });
    // The report of a run is progress, not requested data: -q drops it;
    // what went wrong still reaches stderr through the failure.
    let mut sink = std::io::sink();
    let reports = matches!(
        cli.command,
        Command::Run(_) | Command::Rollover(_) | Command::Hook(_)
    );
    let out: &mut dyn std::io::Write = if cli.quiet && reports { &mut sink } else { out };
    match cli.command {
        Command::Hash(args) => hash::run(&args, out, err),
        Command::Lookup(args) => lookup::run(&args, out),
        Command::Run(args) => run::run(&args, out),
        Command::Rollover(args) => run::rollover(&args, out),
        Command::Status(args) => status::run(&args, out),
        Command::Plan(args) => plan::run(&args, out),
        Command::Hook(args) => hook::hook(&args, out),
        Command::Csr(args) => hook::csr(&args, out),
        Command::Check(args) => check::run(&args, out),
        Command::Providers(args) => providers::run(&args, out),
        Command::Config(args) => config::run(&args, out),
        Command::Tlsrpt(args) => tlsrpt::run(&args, out),
    }
}
