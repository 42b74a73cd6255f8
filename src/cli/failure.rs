//! How a command failed, and the exit code that says so.

use std::process::ExitCode;

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or usage: exit 2 (as clap does for bad arguments).
    Input(Vec<String>),
    /// The work could not be done (DNS, files, a check failed): exit 1.
    Runtime(Vec<String>),
    /// `tlsa check`: the monitoring state's exit code (1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN, also for bad input), which takes precedence over 1 and 2 above.
    Monitoring { code: u8, messages: Vec<String> },
    /// Another run holds the state lock: exit 75 (EX_TEMPFAIL), nothing was
    /// done and nothing is wrong — the timer units count it as success.
    Busy(Vec<String>),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Input(_) => ExitCode::from(2),
            Failure::Runtime(_) => ExitCode::from(1),
            Failure::Monitoring { code, .. } => ExitCode::from(*code),
            Failure::Busy(_) => ExitCode::from(75),
        }
    }

    /// Two failures of one run as one: bad input only when both are; every
    /// message kept.
    pub fn merge(self, other: Failure) -> Failure {
        let both_input = matches!((&self, &other), (Failure::Input(_), Failure::Input(_)));
        let mut messages = self.messages().to_vec();
        messages.extend_from_slice(other.messages());
        match both_input {
            true => Failure::Input(messages),
            false => Failure::Runtime(messages),
        }
    }

    pub fn messages(&self) -> &[String] {
        match self {
            Failure::Input(messages)
            | Failure::Runtime(messages)
            | Failure::Busy(messages)
            | Failure::Monitoring { messages, .. } => messages,
        }
    }
}
