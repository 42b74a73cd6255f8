use std::process::ExitCode;

use clap::Parser;
use tlsa::cli::{self, Cli, run};

fn main() -> ExitCode {
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
        Err(failure) => {
            for message in failure.messages() {
                eprintln!("tlsa: {message}");
            }
            failure.exit_code()
        }
    }
}
