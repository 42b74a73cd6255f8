use std::process::ExitCode;

use clap::Parser;
use tlsa::cli::journal::{self, Level};
use tlsa::cli::{self, Cli, run};

fn main() -> ExitCode {
    if cli::generate::is_generate_invocation(std::env::args()) {
        let args = cli::generate::GenerateArgs::parse_from(
            std::iter::once("tlsa generate".to_string()).chain(std::env::args().skip(2)),
        );
        return match cli::generate::run(&args, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => report(failure),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `tlsa check` is a monitoring plugin: its usage errors are UNKNOWN
        // (3), not clap's 2, which would read as CRITICAL.
        Err(e) if e.use_stderr() && cli::is_check_invocation(std::env::args()) => {
            println!("TLSA UNKNOWN: invalid command line ({})", e.kind());
            let _ = e.print();
            return ExitCode::from(3);
        }
        Err(e) => e.exit(),
    };
    // Unlocked handles: the engine's progress lines come from other threads.
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    match run(cli, &mut stdout, &mut stderr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: cli::Failure) -> ExitCode {
    for message in failure.messages() {
        journal::say(Level::Error, message);
    }
    failure.exit_code()
}
