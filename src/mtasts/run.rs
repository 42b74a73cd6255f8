//! The MTA-STS executor: observe the world, fold it into the history, plan,
//! perform the first step that is due, and again — until nothing is due
//! (or, with `wait`, until the plan is empty).
//!
//! The planner ([`super::plan`]) decides; this module only performs, and
//! it never trusts its own actions: after a step it observes again, so the
//! TXT id moves only once a fresh fetch from every address of the policy
//! host returned the new file. A confirmation that does not come within
//! `confirm_timeout` is an error naming each address and what it served;
//! the id is not touched, and the next run reloads the web server again.
//!
//! The history (when each policy was first and last served, when its id
//! was announced, when an MX host left) is saved after every observation,
//! atomically, as JSON in the state directory: a run killed at any instant
//! resumes from what it had seen, and every wait is computed from it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::dns::PublishSts;
use super::execute::{self, Local};
use super::plan::{self, History, Settings, Step, World};
use crate::clock::Clock;
use crate::fsutil;
use crate::roll::state::LastRun;
use crate::timestamp::Timestamp;

/// How often a confirmation observes again.
pub const CONFIRM_POLL: Duration = Duration::from_millis(500);

/// More actions than this in one run means the world does not follow the
/// plan (a step that reports success but changes nothing).
const MAX_ACTIONS: usize = 32;

/// What one observation saw, with the reasons behind what it did not see.
#[derive(Debug, Clone)]
pub struct Observed {
    pub world: World,
    /// Per address of the policy host that served no valid policy, why.
    pub fetch_failures: Vec<(SocketAddr, String)>,
}

/// Observes the world of one mail domain (the policy file on disk and as
/// served, the TXT on every authoritative server, the validated MX RRset,
/// the MX certificates). `Err`: nothing may be decided from it.
#[async_trait]
pub trait ObserveSts: Send + Sync {
    async fn observe(&self) -> Result<Observed, String>;
}

/// One domain's executor and everything it acts through.
pub struct Executor<'a> {
    pub settings: &'a Settings,
    pub local: Local<'a>,
    pub observer: &'a dyn ObserveSts,
    pub dns: &'a dyn PublishSts,
    pub clock: &'a dyn Clock,
    /// The history file (see [`history_file`]).
    pub history: &'a Path,
    /// Stay until the plan is empty, sleeping through its waits.
    pub wait: bool,
    /// How long every address may take to serve a new file (and every
    /// authoritative server a new id) once it was written.
    pub confirm_timeout: Duration,
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
}

/// What a run did and what remains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub domain: String,
    /// The id of the policy the plan aims at.
    pub target_id: String,
    /// The steps performed, in order.
    pub performed: Vec<String>,
    /// Steps not due yet and waits, each with its instant.
    pub pending: Vec<String>,
    /// Why the configured policy is held back (not an error).
    pub holds: Vec<String>,
    /// Mismatches senders would fail on (the run exits 1).
    pub alarms: Vec<String>,
    /// For the operator: when an MX change tlsa does not make is safe.
    pub notices: Vec<String>,
    /// The earliest instant a pending step is due.
    pub next_due: Option<SystemTime>,
}

impl Outcome {
    /// Nothing left to do.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty() && self.holds.is_empty() && self.alarms.is_empty()
    }
}

/// Where the history of `domain` lives under the state directory.
pub fn history_file(state_dir: &Path, domain: &str) -> PathBuf {
    state_dir
        .join("mta-sts")
        .join(format!("{}.json", domain.trim_end_matches('.')))
}

/// The saved history (empty when there is none yet).
pub fn load_history(path: &Path) -> Result<History, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not an MTA-STS history written by tlsa ({e}); move it away to start over (waits then count from now)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn save_history(path: &Path, history: &History) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fsutil::create_dir_all_mode(dir, 0o700)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(history).map_err(|e| e.to_string())?;
    fsutil::write_atomic(path, &text, 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What the scan of a plan found to do next.
enum Next<'p> {
    Act(&'p Step),
    Confirm(&'p Step),
    Idle,
}

fn next_step(steps: &[Step], now: SystemTime) -> Next<'_> {
    for step in steps {
        match step {
            Step::Wait { .. } | Step::Hold { .. } | Step::Alarm { .. } => {}
            Step::MxMayEnter { .. } => {}
            Step::ConfirmServed { .. } | Step::ConfirmTxt { .. } => return Next::Confirm(step),
            s if s.not_before().is_some_and(|t| t > now) => {}
            s => return Next::Act(s),
        }
    }
    Next::Idle
}

/// The notes of a plan: pending steps, holds, alarms, the earliest due.
fn notes(outcome: &mut Outcome, steps: &[Step], now: SystemTime) {
    outcome.pending.clear();
    outcome.holds.clear();
    outcome.alarms.clear();
    outcome.notices.clear();
    outcome.next_due = None;
    for step in steps {
        match step {
            Step::Hold { why } => outcome.holds.push(why.clone()),
            Step::MxMayEnter { .. } => outcome.notices.push(step.to_string()),
            Step::Alarm { why } => outcome.alarms.push(why.clone()),
            s => {
                if let Some(t) = s.not_before().filter(|t| *t > now) {
                    outcome.pending.push(s.to_string());
                    outcome.next_due = Some(outcome.next_due.map_or(t, |d| d.min(t)));
                }
            }
        }
    }
}

/// What `tlsa plan` shows of a domain: the policy the plan aims at, the
/// steps due now in order, and the notes (pending, held, alarms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// The target policy file, canonical (CRLF).
    pub policy: String,
    /// Steps that are due now, in the order `run` would take them (each
    /// after the previous one is confirmed).
    pub due: Vec<String>,
    pub outcome: Outcome,
}

impl Executor<'_> {
    /// One observation and the plan made from it; nothing is performed and
    /// the history is not saved.
    pub async fn preview(&self) -> Result<Preview, String> {
        let mut history = load_history(self.history)?;
        let observed = self.observer.observe().await?;
        let world = &observed.world;
        plan::record(&mut history, world);
        let plan = plan::plan(self.settings, world, &history)?;
        let mut outcome = Outcome {
            domain: self.local.domain.to_string(),
            target_id: plan.target.id(),
            ..Outcome::default()
        };
        notes(&mut outcome, &plan.steps, world.now);
        let due = plan
            .steps
            .iter()
            .filter(|s| {
                !matches!(
                    s,
                    Step::Wait { .. }
                        | Step::Hold { .. }
                        | Step::Alarm { .. }
                        | Step::MxMayEnter { .. }
                ) && s.not_before().is_none_or(|t| t <= world.now)
            })
            .map(ToString::to_string)
            .collect();
        Ok(Preview {
            policy: plan.target.canonical(),
            due,
            outcome,
        })
    }

    pub async fn run(&self) -> Result<Outcome, String> {
        let mut history = load_history(self.history)?;
        let mut outcome = Outcome {
            domain: self.local.domain.to_string(),
            ..Outcome::default()
        };
        let result = self.drive(&mut history, &mut outcome).await;
        history.last_run = Some(last_run(&result, &outcome, self.clock.now()));
        save_history(self.history, &history)?;
        result.map(|()| outcome)
    }

    async fn drive(&self, history: &mut History, outcome: &mut Outcome) -> Result<(), String> {
        let mut confirming: Option<(String, SystemTime)> = None;
        let mut performed: BTreeSet<String> = BTreeSet::new();
        loop {
            let observed = self.observer.observe().await?;
            let world = &observed.world;
            plan::record(history, world);
            save_history(self.history, history)?;
            let plan = plan::plan(self.settings, world, history)?;
            outcome.target_id = plan.target.id();
            notes(outcome, &plan.steps, world.now);
            match next_step(&plan.steps, world.now) {
                Next::Act(step) => {
                    let text = step.to_string();
                    if !performed.insert(text.clone()) || performed.len() > MAX_ACTIONS {
                        return Err(format!(
                            "{}: \"{text}\" was performed and reported success, but the next observation does not show it; nothing further was changed (check the web server's document root and the zone's back-end)",
                            self.local.domain
                        ));
                    }
                    (self.progress)(&format!("mta-sts {}: {text}", self.local.domain));
                    execute::perform(step, &self.local, Some(self.dns))
                        .await
                        .map_err(|e| format!("mta-sts {}: {e}", self.local.domain))?;
                    if let Step::Reload { id } = step {
                        history.reloaded_for = Some(id.clone());
                        save_history(self.history, history)?;
                    }
                    outcome.performed.push(text);
                    confirming = None;
                }
                Next::Confirm(step) => {
                    let key = step_kind(step);
                    let since = match &confirming {
                        Some((k, since)) if *k == key => *since,
                        _ => {
                            confirming = Some((key, world.now));
                            world.now
                        }
                    };
                    if world.now >= since + self.confirm_timeout {
                        if matches!(step, Step::ConfirmServed { .. }) {
                            // The reload did not take: the next run reloads again.
                            history.reloaded_for = None;
                            save_history(self.history, history)?;
                        }
                        return Err(self.not_confirmed(step, &observed));
                    }
                    self.clock.sleep(CONFIRM_POLL).await;
                }
                Next::Idle => match outcome.next_due {
                    Some(due) if self.wait => {
                        let now = self.clock.now();
                        (self.progress)(&format!(
                            "mta-sts {}: waiting {:.1} s: {}",
                            self.local.domain,
                            due.duration_since(now).unwrap_or_default().as_secs_f64(),
                            outcome.pending.join("; ")
                        ));
                        self.clock
                            .sleep(due.duration_since(now).unwrap_or_default())
                            .await;
                    }
                    _ => return Ok(()),
                },
            }
        }
    }

    fn not_confirmed(&self, step: &Step, observed: &Observed) -> String {
        let domain = self.local.domain;
        let seconds = self.confirm_timeout.as_secs_f64();
        match step {
            Step::ConfirmServed { id, stale } => {
                let why: Vec<String> = stale
                    .iter()
                    .map(|a| {
                        let reason = observed
                            .fetch_failures
                            .iter()
                            .find(|(f, _)| f == a)
                            .map_or("serves another policy", |(_, r)| r.as_str());
                        format!("{a}: {reason}")
                    })
                    .collect();
                format!(
                    "mta-sts {domain}: policy {id} is written but not served by every address of mta-sts.{domain} after {seconds:.0} s ({}); the TXT id was not changed, so senders keep the policy they have. Check the web server's document root and reload command; the next run reloads again",
                    why.join("; ")
                )
            }
            Step::ConfirmTxt { id } => format!(
                "mta-sts {domain}: not every authoritative server announces id {id} after {seconds:.0} s (they serve: {:?}); a lagging secondary keeps senders on the old policy, which still lists every MX host in use",
                observed.world.txt
            ),
            other => format!("mta-sts {domain}: {other} not confirmed"),
        }
    }
}

/// The run's end as `tlsa status` shows it (the roll's vocabulary).
fn last_run(result: &Result<(), String>, outcome: &Outcome, now: SystemTime) -> LastRun {
    let (state, error) = match result {
        Err(e) => ("failed", Some(e.clone())),
        Ok(()) if !outcome.alarms.is_empty() => ("alarm", Some(outcome.alarms.join("; "))),
        Ok(()) if !outcome.is_complete() => ("waiting", None),
        Ok(()) if outcome.performed.is_empty() => ("idle", None),
        Ok(()) => ("done", None),
    };
    LastRun {
        at: Timestamp::from_system(now),
        outcome: state.into(),
        steps: outcome.performed.len(),
        error,
        next_due: outcome.next_due.map(Timestamp::from_system),
    }
}

fn step_kind(step: &Step) -> String {
    match step {
        Step::ConfirmServed { id, .. } => format!("served {id}"),
        Step::ConfirmTxt { id } => format!("txt {id}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
