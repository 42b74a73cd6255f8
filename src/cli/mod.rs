//! Command-line interface: one file per command, each a thin layer over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod hash;
mod owner;

/// Manage DANE TLSA records: compute, publish, roll and verify.
#[derive(Debug, Parser)]
#[command(name = "tlsa", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print TLSA data for certificates, chains, keys and CSRs.
    Hash(hash::HashArgs),
}

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or usage: exit 2 (as clap does for bad arguments).
    Input(Vec<String>),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Input(_) => ExitCode::from(2),
        }
    }

    pub fn messages(&self) -> &[String] {
        match self {
            Failure::Input(messages) => messages,
        }
    }
}

/// Runs the parsed command, writing results to `out` and warnings to `err`.
pub fn run(
    cli: Cli,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    match cli.command {
        Command::Hash(args) => hash::run(&args, out, err),
    }
}
