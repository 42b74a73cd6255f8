//! `tlsa plan`: the step each set would take now, as an RRset diff per
//! owner name and the equivalent nsupdate script. Changes nothing. On a new
//! set, whose first step is generating a next key, it also shows the first
//! publication that follows, with an example key made in memory. Then (text
//! only) each MTA-STS domain: the policy aimed at and the steps due.

use std::collections::BTreeSet;
use std::io::Write;

use clap::Args;
use hickory_proto::rr::Name;
use serde::Serialize;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::dns::Edit;
use crate::dns::rrset::{Rdata, rdata_of};
use crate::roll::executor::{Observed, Preview, unix};
use crate::roll::plan::{Decision, Step};
use crate::roll::state::{self, Timestamp};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only this certificate set (repeatable; all sets when absent).
    #[arg(long = "set", value_name = "SET")]
    pub sets: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// One set's plan, as `--json` prints it.
#[derive(Debug, Serialize)]
struct SetPlan {
    set: String,
    /// The step due now, for people; `null` when nothing is due.
    step: Option<String>,
    alarms: Vec<String>,
    notices: Vec<String>,
    waiting: Option<String>,
    wake_at: Option<Timestamp>,
    changes: Vec<Change>,
    nsupdate: Vec<String>,
    /// After a next key is generated: the step that follows, shown with an
    /// example key (`tlsa run` generates the real one).
    then: Option<Box<SetPlan>>,
    /// An `acme` set: the certificate order a run makes now, with the
    /// challenge responses it puts in place and removes (null when none is due).
    acme_order: Option<crate::roll::executor::OrderPreview>,
}

/// One owner's RRset before and after the step.
#[derive(Debug, Serialize)]
struct Change {
    owner: String,
    ttl_before: Option<u32>,
    ttl: u32,
    before: Vec<String>,
    after: Vec<String>,
}

pub fn run(args: &PlanArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    common::known_sets(&config, &args.sets)?;
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    // MTA-STS domains are planned for the text output, unless it is narrowed to sets.
    let with_sts = !args.json && args.sets.is_empty();
    let (previews, sts) = common::runtime()?.block_on(async {
        let engine = common::engine(config).await?;
        let previews = engine
            .preview(&state, &args.sets)
            .await
            .map_err(common::engine_failure)?;
        let sts = match with_sts {
            true => crate::mtasts::service::preview_all(&engine).await,
            false => Vec::new(),
        };
        Ok::<_, Failure>((previews, sts))
    })?;
    let plans: Vec<SetPlan> = previews.iter().map(set_plan).collect();
    let cannot_write =
        |e: std::io::Error| Failure::Runtime(vec![format!("cannot write output: {e}")]);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &plans)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
            .map_err(cannot_write)?;
        return Ok(());
    }
    plans
        .iter()
        .try_for_each(|plan| print_text(plan, out, "next step: "))
        .map_err(cannot_write)?;
    let problems = super::sts_plan::print(&sts, out).map_err(cannot_write)?;
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Failure::Runtime(problems)),
    }
}

fn set_plan(preview: &Preview) -> SetPlan {
    let mut plan = plan_of(&preview.set, &preview.decision, &preview.observed);
    plan.acme_order = preview.order.clone();
    plan.then = preview
        .then
        .as_ref()
        .map(|then| Box::new(plan_of(&preview.set, then, &preview.observed)));
    plan
}

fn plan_of(set: &str, decision: &Decision, observed: &Observed) -> SetPlan {
    let edits = decision.step.as_ref().and_then(Step::edits).unwrap_or(&[]);
    let changes = edits.iter().map(|edit| change(edit, observed)).collect();
    SetPlan {
        set: set.to_string(),
        step: decision.step.as_ref().map(ToString::to_string),
        alarms: decision.alarms.iter().map(ToString::to_string).collect(),
        notices: decision.notices.clone(),
        waiting: decision.waiting.clone(),
        wake_at: decision.wake_at,
        nsupdate: nsupdate(edits, observed),
        changes,
        then: None,
        acme_order: None,
    }
}

/// The RRset at the edit's owner as observed, and as the edit leaves it.
fn before_and_after(edit: &Edit, observed: &Observed) -> (BTreeSet<Rdata>, BTreeSet<Rdata>) {
    let served = observed.records.get(&edit.owner).cloned();
    let before = rdata_of(served.unwrap_or_default());
    let after = edit.desired_from(&before);
    (before, after)
}

fn change(edit: &Edit, observed: &Observed) -> Change {
    let owner = edit.owner.to_ascii();
    let (before, after) = before_and_after(edit, observed);
    Change {
        ttl_before: observed.ttls.get(&edit.owner).copied().flatten(),
        ttl: edit.ttl,
        before: before.iter().map(ToString::to_string).collect(),
        after: after.iter().map(ToString::to_string).collect(),
        owner,
    }
}

/// The change as nsupdate input. A new TTL applies to the whole RRset:
/// it is deleted and added back whole, in the same message.
fn nsupdate(edits: &[Edit], observed: &Observed) -> Vec<String> {
    let mut script = Vec::new();
    for edit in edits {
        let owner = edit.owner.to_ascii();
        let (before, after) = before_and_after(edit, observed);
        let ttl = edit.ttl;
        let ttl_change = ttl_change(observed, &edit.owner, &before, ttl).is_some();
        if ttl_change {
            script.push(format!("update delete {owner} TLSA"));
        }
        for record in before.union(&after).collect::<BTreeSet<&Rdata>>() {
            match (before.contains(record), after.contains(record)) {
                (true, false) if !ttl_change => {
                    script.push(format!("update delete {owner} TLSA {record}"))
                }
                (false, true) => script.push(format!("update add {owner} {ttl} TLSA {record}")),
                (true, true) if ttl_change => {
                    script.push(format!("update add {owner} {ttl} TLSA {record}"))
                }
                _ => {}
            }
        }
    }
    if !script.is_empty() {
        script.push("send".into());
    }
    script
}

/// The TTL served now, when the change replaces it.
fn ttl_change(
    observed: &Observed,
    owner: &Name,
    before: &BTreeSet<Rdata>,
    ttl: u32,
) -> Option<u32> {
    let served = observed.ttls.get(owner).copied().flatten();
    served.filter(|t| *t != ttl && !before.is_empty())
}

fn print_text(plan: &SetPlan, out: &mut dyn Write, lead: &str) -> std::io::Result<()> {
    let set = &plan.set;
    let now = unix(std::time::SystemTime::now());
    for alarm in &plan.alarms {
        writeln!(out, "{set}: ALARM: {alarm}")?;
    }
    for notice in &plan.notices {
        writeln!(out, "{set}: notice: {notice}")?;
    }
    if let Some(order) = &plan.acme_order {
        writeln!(
            out,
            "{set}: acme order from {} for {} ({}): {}",
            order.directory,
            order.names.join(", "),
            order.challenge,
            order.why
        )?;
        for response in &order.responses {
            writeln!(out, "    {response}")?;
        }
    }
    let Some(step) = &plan.step else {
        match (&plan.waiting, plan.wake_at) {
            (Some(why), Some(at)) => {
                writeln!(out, "{set}: nothing due; {why} ({})", common::when(at, now))?
            }
            _ => writeln!(out, "{set}: nothing due")?,
        }
        return Ok(());
    };
    writeln!(out, "{set}: {lead}{step}")?;
    for change in &plan.changes {
        match change
            .ttl_before
            .filter(|t| *t != change.ttl && !change.before.is_empty())
        {
            Some(old) => writeln!(
                out,
                "  {} TLSA (TTL {old} -> {}):",
                change.owner, change.ttl
            )?,
            None => writeln!(out, "  {} TLSA:", change.owner)?,
        }
        let all: BTreeSet<&String> = change.before.iter().chain(&change.after).collect();
        for record in all {
            let mark = match (
                change.before.contains(record),
                change.after.contains(record),
            ) {
                (true, false) => '-',
                (false, true) => '+',
                _ => ' ',
            };
            writeln!(out, "    {mark} {record}")?;
        }
    }
    if !plan.nsupdate.is_empty() {
        writeln!(out, "  as nsupdate input:")?;
        for line in &plan.nsupdate {
            writeln!(out, "    {line}")?;
        }
    }
    if let Some(then) = &plan.then {
        print_text(
            then,
            out,
            "then (with an example next key; `tlsa run` generates the real one): ",
        )?;
    }
    Ok(())
}
