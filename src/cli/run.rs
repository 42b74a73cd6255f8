//! `tlsa run` (from cron or a timer: do what is due) and `tlsa rollover`
//! (start a planned roll to the next key).

use std::io::{IsTerminal, Write};

use clap::Args;

use super::Failure;
use super::common::{self, ConfigArgs, PropagationArg};
use crate::config::Config;
use crate::mtasts;
use crate::mtasts::service::DomainRun;
use crate::roll::executor::{FailureKind, RunOptions, SetOutcome, unix};
use crate::roll::{idle, state};
use crate::tlsrpt;
use crate::tlsrpt::publish::DomainRecord;

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
    /// Send no DNS query at all for sets the state proves idle: the last run
    /// that read DNS (within 24 h) found nothing to do, and no file or
    /// setting changed since. For frequent cron runs.
    #[arg(long)]
    pub offline_if_idle: bool,
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    #[command(flatten)]
    pub propagation: PropagationArg,
}

#[derive(Debug, Args)]
pub struct ConcurrencyArg {
    /// Sets worked on at once [default: the config's `concurrency`, 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
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
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    #[command(flatten)]
    pub propagation: PropagationArg,
}

pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    let mut options = RunOptions {
        sets: args.sets.clone(),
        wait: args.wait,
        confirm: args.confirm,
        concurrency: args.concurrency.concurrency.map(usize::from),
        propagation_timeout: args.propagation.duration(),
        ..RunOptions::default()
    };
    let mut skipped = Vec::new();
    if args.offline_if_idle && !args.wait {
        skipped = provably_idle_sets(&config, &options.sets)?;
        let selected: Vec<String> = config
            .sets
            .iter()
            .map(|s| s.name.get_ref().clone())
            .filter(|n| options.sets.is_empty() || options.sets.contains(n))
            .collect();
        // MTA-STS policies read DNS and the web server at every run, the
        // TLS-RPT record DNS: MTA-STS policies and the TLS-RPT record.
        let others =
            !config.mta_sts.is_empty() || config.tlsrpt.as_ref().is_some_and(|t| !t.rua.is_empty());
        if selected.iter().all(|n| skipped.contains(n)) && !others {
            for set in &skipped {
                writeln!(
                    out,
                    "{set}: idle (offline: nothing can be due; DNS not read)"
                )
                .map_err(write_failure)?;
            }
            return Ok(());
        }
        options.sets = selected
            .into_iter()
            .filter(|n| !skipped.contains(n))
            .collect();
    }
    // `--set` narrows the run to certificate sets: MTA-STS only runs whole.
    let sts = args.sets.is_empty();
    let (outcomes, domains, records) = execute_all(config, &options, sts)?;
    for set in &skipped {
        writeln!(
            out,
            "{set}: idle (offline: nothing can be due; DNS not read)"
        )
        .map_err(write_failure)?;
    }
    let sets = finish(&outcomes, out, false, "");
    let sts = super::sts::finish(&domains, out);
    let rpt = super::tlsrpt::finish_records(&records, out);
    [sts, rpt]
        .into_iter()
        .fold(sets, |all, one| match (all, one) {
            (Err(a), Err(b)) => Err(a.merge(b)),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        })
}

pub fn rollover(args: &RolloverArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    let outcomes = execute(
        config,
        &RunOptions {
            sets: args.set.iter().cloned().collect(),
            wait: args.wait,
            rollover: true,
            concurrency: args.concurrency.concurrency.map(usize::from),
            propagation_timeout: args.propagation.duration(),
            ..RunOptions::default()
        },
    )?;
    finish(&outcomes, out, false, "")
}

/// The selected sets whose idleness the state proves without DNS.
fn provably_idle_sets(config: &Config, only: &[String]) -> Result<Vec<String>, Failure> {
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let now = unix(std::time::SystemTime::now());
    Ok(config
        .sets
        .iter()
        .filter(|set| only.is_empty() || only.contains(set.name.get_ref()))
        .filter(|set| {
            state
                .sets
                .get(set.name.get_ref())
                .is_some_and(|entry| idle::provably_idle(set, &config.state_dir, entry, now))
        })
        .map(|set| set.name.get_ref().clone())
        .collect())
}

/// Runs the engine under the state lock.
pub fn execute(config: Config, options: &RunOptions) -> Result<Vec<SetOutcome>, Failure> {
    Ok(execute_all(config, options, false)?.0)
}

/// What one whole run did: the sets, the MTA-STS domains, the TLS-RPT records.
type RunOutcomes = (Vec<SetOutcome>, Vec<DomainRun>, Vec<DomainRecord>);

/// Runs the engine, then (with `sts`) every `[[mta_sts]]` policy and the
/// TLS-RPT record of every policy domain, under one hold of the state lock.
pub fn execute_all(
    config: Config,
    options: &RunOptions,
    sts: bool,
) -> Result<RunOutcomes, Failure> {
    let store = common::open_state(&config)?;
    let runtime = common::runtime()?;
    runtime.block_on(async {
        let mut engine = common::engine(config).await?;
        if options.wait
            && std::io::stderr().is_terminal()
            && common::verbosity() > common::Verbosity::Quiet
        {
            engine = engine.with_countdown(Box::new(|line: &str| {
                eprint!("\r\x1b[K{line}");
                if line.is_empty() {
                    let _ = std::io::stderr().flush();
                }
            }));
        }
        let engine = std::sync::Arc::new(engine);
        let outcomes = engine
            .clone()
            .run(std::sync::Arc::new(store), options)
            .await
            .map_err(common::engine_failure)?;
        if !sts {
            return Ok((outcomes, Vec::new(), Vec::new()));
        }
        let timeout = options
            .propagation_timeout
            .unwrap_or_else(|| engine.configured_propagation_timeout());
        let domains = mtasts::service::run_all(&engine, options.wait, timeout).await;
        let records = tlsrpt::publish::publish_all(&engine, false, timeout).await;
        Ok((outcomes, domains, records))
    })
}

/// Prints what each set did, and turns emergencies and failed sets into the
/// exit status. `propagation_pending_ok`: a set whose records are published
/// but not yet on every server is not a failure (the deploy hook).
/// `prefix` starts every line (the hook's output is shown among certbot's).
pub fn finish(
    outcomes: &[SetOutcome],
    out: &mut dyn Write,
    propagation_pending_ok: bool,
    prefix: &str,
) -> Result<(), Failure> {
    report(outcomes, out, prefix).map_err(write_failure)?;
    let mut problems = Vec::new();
    let mut all_config = true;
    for outcome in outcomes {
        if outcome.emergency {
            problems.push(format!(
                "set {}: {}",
                outcome.set,
                outcome.alarms.join("; ")
            ));
            all_config = false;
        }
        match &outcome.failure {
            Some(f) if f.kind == FailureKind::NotPropagated && propagation_pending_ok => {}
            Some(f) => {
                problems.push(f.message.clone());
                all_config &= f.kind == FailureKind::Config;
            }
            None => {}
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false if all_config => Err(Failure::Input(problems)),
        false => Err(Failure::Runtime(problems)),
    }
}

fn write_failure(e: std::io::Error) -> Failure {
    Failure::Runtime(vec![format!("cannot write output: {e}")])
}

fn report(outcomes: &[SetOutcome], out: &mut dyn Write, prefix: &str) -> std::io::Result<()> {
    let now = unix(std::time::SystemTime::now());
    for outcome in outcomes {
        let status = match (&outcome.failure, &outcome.waiting, outcome.wake_at) {
            (Some(f), _, _) if f.kind == FailureKind::NotPropagated => format!(
                "published; propagation not yet complete, the next run confirms it: {}",
                f.message.replace('\n', &format!("\n{prefix}  "))
            ),
            (Some(_), _, _) => "FAILED (see the error below)".to_string(),
            (None, Some(why), Some(at)) => {
                format!("waiting: {why}; run again at {}", common::when(at, now))
            }
            (None, Some(why), None) => format!("waiting: {why}"),
            (None, None, Some(at)) => format!("run again at {}", common::when(at, now)),
            _ => "nothing pending".to_string(),
        };
        writeln!(
            out,
            "{prefix}{}: {} step(s) done; {status}",
            outcome.set,
            outcome.done.len()
        )?;
        for step in &outcome.done {
            writeln!(out, "{prefix}  done: {step}")?;
        }
    }
    Ok(())
}
