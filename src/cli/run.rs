//! `tlsa run` (from cron or a timer: do what is due) and `tlsa rollover`
//! (start a planned roll to the next key).

use std::io::Write;

use clap::Args;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::roll::executor::{RunOptions, SetOutcome, unix};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only this certificate set (repeatable; all sets when absent).
    #[arg(long = "set", value_name = "SET")]
    pub sets: Vec<String>,
    /// Stay until nothing is pending, sleeping until each step is due.
    #[arg(long)]
    pub wait: bool,
    /// Also perform the steps the config marks as manual.
    #[arg(long)]
    pub confirm: bool,
}

#[derive(Debug, Args)]
pub struct RolloverArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The certificate set to roll (all sets when absent).
    pub set: Option<String>,
    /// Stay until the roll is complete.
    #[arg(long)]
    pub wait: bool,
}

pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), Failure> {
    execute(
        &args.config,
        RunOptions {
            sets: args.sets.clone(),
            wait: args.wait,
            confirm: args.confirm,
            ..RunOptions::default()
        },
        out,
    )
}

pub fn rollover(args: &RolloverArgs, out: &mut dyn Write) -> Result<(), Failure> {
    execute(
        &args.config,
        RunOptions {
            sets: args.set.iter().cloned().collect(),
            wait: args.wait,
            rollover: true,
            ..RunOptions::default()
        },
        out,
    )
}

fn execute(config: &ConfigArgs, options: RunOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let config = config.load()?;
    let store = common::open_state(&config)?;
    let runtime = common::runtime()?;
    let outcomes = runtime.block_on(async {
        let engine = common::engine(config).await?;
        engine
            .run(&store, &options)
            .await
            .map_err(common::engine_failure)
    })?;
    report(&outcomes, out)
        .map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))?;
    let emergencies: Vec<String> = outcomes
        .iter()
        .filter(|o| o.emergency)
        .map(|o| format!("set {}: {}", o.set, o.alarms.join("; ")))
        .collect();
    if emergencies.is_empty() {
        Ok(())
    } else {
        Err(Failure::Runtime(emergencies))
    }
}

fn report(outcomes: &[SetOutcome], out: &mut dyn Write) -> std::io::Result<()> {
    let now = unix(std::time::SystemTime::now());
    for outcome in outcomes {
        let status = match (&outcome.waiting, outcome.wake_at) {
            (Some(why), Some(at)) => {
                format!("waiting: {why}; run again at {}", common::when(at, now))
            }
            (Some(why), None) => format!("waiting: {why}"),
            (None, Some(at)) => format!("run again at {}", common::when(at, now)),
            _ => "nothing pending".to_string(),
        };
        writeln!(
            out,
            "{}: {} step(s) done; {status}",
            outcome.set,
            outcome.done.len()
        )?;
        for step in &outcome.done {
            writeln!(out, "  done: {step}")?;
        }
    }
    Ok(())
}
