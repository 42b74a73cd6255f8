//! `tlsa plan`: the step each set would take now, as an RRset diff per
//! owner name and the equivalent nsupdate script. Changes nothing.

use std::collections::BTreeSet;
use std::io::Write;

use clap::Args;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::roll::executor::unix;
use crate::roll::state;
use crate::tlsa::TlsaRecord;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: &PlanArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let ttls: Vec<(String, u32)> = config
        .sets
        .iter()
        .map(|s| (s.name.get_ref().clone(), s.ttl))
        .collect();
    let previews = common::runtime()?.block_on(async {
        let engine = common::engine(config).await?;
        engine.preview(&state).await.map_err(common::engine_failure)
    })?;
    let now = unix(std::time::SystemTime::now());
    let written: std::io::Result<()> = (|| {
        for (set, decision, current) in &previews {
            let ttl = ttls
                .iter()
                .find(|(n, _)| n == set)
                .map_or(3600, |(_, t)| *t);
            for alarm in &decision.alarms {
                writeln!(out, "{set}: ALARM: {alarm}")?;
            }
            let Some(step) = &decision.step else {
                match (&decision.waiting, decision.wake_at) {
                    (Some(why), Some(at)) => {
                        writeln!(out, "{set}: nothing due; {why} ({})", common::when(at, now))?
                    }
                    _ => writeln!(out, "{set}: nothing due")?,
                }
                continue;
            };
            writeln!(out, "{set}: next step: {step}")?;
            let Some(edits) = step.edits() else {
                continue;
            };
            let mut script = Vec::new();
            for edit in edits {
                let owner = edit.owner.to_ascii();
                let before = current.records.get(&owner).cloned().unwrap_or_default();
                let after = edit.desired_from(&before);
                let served_ttl = current.ttls.get(&owner).copied().flatten();
                let ttl_change = served_ttl.filter(|t| *t != edit.ttl && !before.is_empty());
                match ttl_change {
                    Some(old) => writeln!(out, "  {owner} TLSA (TTL {old} -> {}):", edit.ttl)?,
                    None => writeln!(out, "  {owner} TLSA:")?,
                }
                // A new TTL applies to the whole RRset: delete it and add it
                // back whole, in the same message.
                if ttl_change.is_some() {
                    script.push(format!("update delete {owner} TLSA"));
                }
                for record in before.union(&after).collect::<BTreeSet<&TlsaRecord>>() {
                    let mark = match (before.contains(record), after.contains(record)) {
                        (true, false) => '-',
                        (false, true) => '+',
                        _ => ' ',
                    };
                    writeln!(out, "    {mark} {record}")?;
                    match mark {
                        '-' if ttl_change.is_none() => {
                            script.push(format!("update delete {owner} TLSA {record}"))
                        }
                        '+' => script.push(format!("update add {owner} {ttl} TLSA {record}")),
                        ' ' if ttl_change.is_some() => {
                            script.push(format!("update add {owner} {ttl} TLSA {record}"))
                        }
                        _ => {}
                    }
                }
            }
            writeln!(out, "  as nsupdate input:")?;
            for line in script {
                writeln!(out, "    {line}")?;
            }
            writeln!(out, "    send")?;
        }
        Ok(())
    })();
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))
}
