//! What `tlsa run` prints for each `[[mta_sts]]` domain, and the exit
//! status it contributes: an error or an alarm fails the run (exit 1);
//! pending steps and holds are reported, not failures.

use std::io::Write;

use super::Failure;
use crate::mtasts::run::Outcome;
use crate::mtasts::service::DomainRun;
use crate::timestamp::Timestamp;

pub fn finish(domains: &[DomainRun], out: &mut dyn Write) -> Result<(), Failure> {
    let mut problems = Vec::new();
    for run in domains {
        report(run, out)
            .map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))?;
        match &run.result {
            Err(e) => problems.push(e.clone()),
            Ok(outcome) => problems.extend(
                outcome
                    .alarms
                    .iter()
                    .map(|a| format!("mta-sts {}: ALARM: {a}", run.domain)),
            ),
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Failure::Runtime(problems)),
    }
}

/// What remains of a domain's plan, one line each: pending steps, holds,
/// alarms and notes (`run` and `plan` print them alike).
pub fn print_notes(domain: &str, outcome: &Outcome, out: &mut dyn Write) -> std::io::Result<()> {
    let kinds: [(&str, &[String]); 4] = [
        ("pending", &outcome.pending),
        ("held", &outcome.holds),
        ("ALARM", &outcome.alarms),
        ("note", &outcome.notices),
    ];
    for (kind, lines) in kinds {
        for line in lines {
            writeln!(out, "mta-sts {domain}: {kind}: {line}")?;
        }
    }
    Ok(())
}

fn report(run: &DomainRun, out: &mut dyn Write) -> std::io::Result<()> {
    let domain = &run.domain;
    let outcome = match &run.result {
        Ok(outcome) => outcome,
        Err(_) => return writeln!(out, "mta-sts {domain}: failed (see below)"),
    };
    for step in &outcome.performed {
        writeln!(out, "mta-sts {domain}: done: {step}")?;
    }
    print_notes(domain, outcome, out)?;
    match outcome.next_due {
        Some(due) => writeln!(
            out,
            "mta-sts {domain}: policy {} in progress; next step due {}",
            outcome.target_id,
            Timestamp::from_system(due)
        ),
        None if outcome.is_complete() => writeln!(
            out,
            "mta-sts {domain}: policy {} served on every address and announced on every authoritative server",
            outcome.target_id
        ),
        None => Ok(()),
    }
}
