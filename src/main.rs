use std::process::ExitCode;

use clap::Parser;
use tlsa::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
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
