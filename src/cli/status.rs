//! `tlsa status`: per set, the keys in each slot with their hashes and
//! times, when the next step is due, and a short timeline. Reads files and
//! the state only (no DNS, no lock), so it is safe to run at any moment.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::config::CertSet;
use crate::roll::executor::unix;
use crate::roll::files;
use crate::roll::plan::short;
use crate::roll::state::{self, Event, KeyState, SetState};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Timeline events shown per set.
    #[arg(long, default_value_t = 8)]
    pub events: usize,
}

#[derive(Debug, Serialize)]
struct SetStatus {
    set: String,
    /// Key id (SHA-256 of the SPKI, = the 3 1 1 data) in service.
    live: Option<String>,
    /// A newer certificate waiting to go live, if its key differs.
    staged: Option<String>,
    next: Option<String>,
    /// An emergency seen by the last run.
    alarm: Option<String>,
    alarm_until: Option<crate::roll::state::Timestamp>,
    keys: Vec<KeyStatus>,
    timeline: Vec<Event>,
}

#[derive(Debug, Serialize)]
struct KeyStatus {
    key: String,
    slot: &'static str,
    #[serde(flatten)]
    times: KeyState,
}

pub fn run(args: &StatusArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let mut report = Vec::new();
    for set in &config.sets {
        let empty = SetState::default();
        let set_state = state.sets.get(set.name.get_ref()).unwrap_or(&empty);
        report.push(status_of(set, set_state, &config.state_dir, args.events)?);
    }
    let written = if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        print_text(&report, out)
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))
}

fn status_of(
    set: &CertSet,
    set_state: &SetState,
    state_dir: &std::path::Path,
    events: usize,
) -> Result<SetStatus, Failure> {
    let read = |path: &std::path::Path| {
        files::cert_facts(path).map_err(|e| Failure::Runtime(vec![e.to_string()]))
    };
    let live = read(&files::deploy_files(set).chain)?.map(|c| c.key.id);
    let source_files = files::source_files(set, state_dir, set_state)
        .map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let source = read(&source_files.chain)?.map(|c| c.key.id);
    let staged = source.filter(|s| Some(s) != live.as_ref());
    let next = set_state
        .next_key
        .clone()
        .filter(|n| Some(n) != live.as_ref());
    let slot = |id: &str| -> &'static str {
        if live.as_deref() == Some(id) {
            "live"
        } else if staged.as_deref() == Some(id) {
            "staged"
        } else if next.as_deref() == Some(id) {
            "next"
        } else {
            "retiring"
        }
    };
    let keys = set_state
        .keys
        .iter()
        .map(|(id, times)| KeyStatus {
            key: id.clone(),
            slot: slot(id),
            times: times.clone(),
        })
        .collect();
    let skip = set_state.timeline.len().saturating_sub(events);
    Ok(SetStatus {
        set: set.name.get_ref().clone(),
        live,
        staged,
        next,
        alarm: set_state.alarm.clone(),
        alarm_until: set_state.alarm_until,
        keys,
        timeline: set_state.timeline[skip..].to_vec(),
    })
}

fn print_text(report: &[SetStatus], out: &mut dyn Write) -> std::io::Result<()> {
    let now = unix(std::time::SystemTime::now());
    for set in report {
        writeln!(out, "set {}", set.set)?;
        if let Some(alarm) = &set.alarm {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let (red, reset) = if common::colour(terminal) {
                ("\x1b[1;31m", "\x1b[0m")
            } else {
                ("", "")
            };
            writeln!(out, "  {red}ALARM: {alarm}{reset}")?;
            if let Some(until) = set.alarm_until {
                writeln!(
                    out,
                    "  {red}records republished; safe again at {}{reset}",
                    common::when(until, now)
                )?;
            }
        }
        if set.live.is_none() {
            writeln!(out, "  nothing deployed yet")?;
        }
        for key in &set.keys {
            let mut facts = Vec::new();
            if let Some(at) = key.times.propagated_at {
                facts.push(format!("on every server since {}", common::when(at, now)));
            } else if key.times.published_at.is_some() {
                facts.push("published, propagation not yet confirmed".to_string());
            }
            if let Some(at) = key.times.safe_at
                && at > now
            {
                facts.push(format!("safe to go live at {}", common::when(at, now)));
            }
            if let Some(at) = key.times.removed_at {
                facts.push(format!("records removed at {}", common::when(at, now)));
            }
            writeln!(
                out,
                "  {:<8} 3 1 1 {}  {}",
                key.slot,
                key.key,
                facts.join("; ")
            )?;
        }
        if let Some(live) = &set.live
            && !set.keys.iter().any(|k| &k.key == live)
        {
            writeln!(
                out,
                "  live     key {} is not known to tlsa yet: run `tlsa run`",
                short(live)
            )?;
        }
        for event in &set.timeline {
            writeln!(out, "    {}  {}", common::when(event.at, now), event.what)?;
        }
    }
    Ok(())
}
