//! The MTA-STS part of `tlsa plan` (text): per `[[mta_sts]]` domain, the
//! policy the plan aims at (its id and file), the steps due now in the order
//! `tlsa run` takes them, and what waits, is held or alarms. One
//! observation; nothing is changed.

use std::io::Write;

use crate::mtasts::service::DomainPreview;
use crate::timestamp::Timestamp;

/// Prints every domain; the errors (a domain that could not be observed) are
/// returned for the exit status.
pub fn print(domains: &[DomainPreview], out: &mut dyn Write) -> std::io::Result<Vec<String>> {
    let mut problems = Vec::new();
    for domain in domains {
        let name = &domain.domain;
        let preview = match &domain.result {
            Ok(preview) => preview,
            Err(why) => {
                writeln!(out, "mta-sts {name}: cannot plan (see below)")?;
                problems.push(format!("mta-sts {name}: {why}"));
                continue;
            }
        };
        let outcome = &preview.outcome;
        writeln!(out, "mta-sts {name}: policy {}", outcome.target_id)?;
        for line in preview.policy.lines() {
            writeln!(out, "    {line}")?;
        }
        let mut due = preview.due.iter();
        if let Some(first) = due.next() {
            writeln!(out, "mta-sts {name}: next step: {first}")?;
        }
        for then in due {
            writeln!(out, "mta-sts {name}: then: {then}")?;
        }
        super::sts::print_notes(name, outcome, out)?;
        if let Some(due) = outcome.next_due {
            writeln!(
                out,
                "mta-sts {name}: next step due {}",
                Timestamp::from_system(due)
            )?;
        } else if preview.due.is_empty() && outcome.is_complete() {
            writeln!(out, "mta-sts {name}: nothing to do")?;
        }
    }
    Ok(problems)
}
