//! The pure planner of MTA-STS changes: given the desired policy, what the
//! world serves and what the state remembers, the next steps in RFC 8461
//! §8 order. No I/O, no clock: the time is part of the [`World`].
//!
//! The rules, each unit-tested below:
//!
//! - **A policy change** (§8.1): write the file → reload → confirm that every
//!   address of the policy host serves it → publish exactly one
//!   `v=STSv1; id=…` TXT record (replacing any others) → confirm it on every
//!   authoritative server. The id never moves before the file is served
//!   everywhere: a sender seeing the new id must fetch the new policy.
//! - **An MX host enters** the policy first, and the MX RRset only when every
//!   policy a sender may have cached lists it: each earlier policy not
//!   matching it has expired (its last observed service + its `max_age`), or
//!   with `trust_id_refresh` one TXT TTL after the id of a policy listing it
//!   was announced (weaker: it trusts every sender to refetch on a new id).
//! - **An MX host leaves** the MX RRset first, and the policy only after the
//!   MX RRset's TTL has passed since it left (caches may still hand it out).
//! - **Mode gates**: testing or enforce only while every MX address presents
//!   a WebPKI-valid certificate (else the mode in effect is held); enforce
//!   only after `enforce_after` of testing, and with `enforce_clean_reports`
//!   only once TLS-RPT reports show that long without an MTA-STS failure
//!   (see [`report_gate`]).
//! - **Leaving** (§8.3): mode none with a short `max_age` and a new id; the
//!   TXT record and the file are removed only after every policy served
//!   before it has expired (last served + its `max_age`).
//!
//! [`record`] folds an observation into the [`History`] (when each policy
//! was first and last seen served, when its id was announced, when an MX
//! host left the RRset); the executor saves it in the state.
//!
//! **Why one file (about 640 lines of code):** the rules above interlock —
//! an MX change waits on the expiry of cached policies, the mode on the
//! certificates the MX hosts present and on the reports, the id on the file
//! being served everywhere — and [`plan`] applies them in one order. Kept
//! together, the order and the rules read as one piece; the unit tests of
//! every rule are in `plan/tests.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::matching;
use super::policy::{self, Mode, Policy};
use super::report_gate::{self, NotYet, ReportDay};

/// The `max_age` of the policy that leaves MTA-STS (at most this; less if
/// the configured one is smaller): a day, as RFC 8461 §8.3 suggests "short".
pub const LEAVE_MAX_AGE: u32 = 86_400;

/// What the operator wants (the config, resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub max_age: u32,
    /// Explicit patterns; `None`: the MX RRset's hosts (`mx = "dns"`).
    pub patterns: Option<Vec<String>>,
    /// tlsa manages the MX RRset: `patterns` are the MX hosts wanted.
    pub manage_mx: bool,
    pub trust_id_refresh: bool,
    pub enforce_after: Duration,
    pub leave: bool,
}

/// What is observed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub now: SystemTime,
    /// The policy file as every webroot holds it (`None`: missing, or the
    /// webroots differ).
    pub written: Option<String>,
    /// What each address of the policy host serves (`None`: no valid answer).
    pub served: Vec<(SocketAddr, Option<String>)>,
    /// The ids of the STS TXT records each authoritative server serves.
    pub txt: Vec<Vec<String>>,
    pub txt_ttl: u32,
    /// The validated MX RRset's hosts and TTL.
    pub mx: Vec<String>,
    pub mx_ttl: u32,
    /// MX addresses whose certificate is not WebPKI-valid for their name.
    pub webpki_failures: Vec<String>,
    /// TLS-RPT reports for the domain, per day (`None`: the enforce gate
    /// does not ask for them).
    pub reports: Option<Vec<ReportDay>>,
}

/// What the state remembers (saved by the executor, human-readable JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Every policy ever seen served, oldest first.
    pub policies: Vec<ServedPolicy>,
    /// MX hosts that left the MX RRset.
    pub mx_removed: Vec<MxRemoval>,
    /// The MX RRset's hosts at the last observation.
    pub last_mx: Vec<String>,
    /// The policy id a reload was run for.
    pub reloaded_for: Option<String>,
    /// How the last run ended (for `tlsa status`; the planner ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<crate::roll::state::LastRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedPolicy {
    pub id: String,
    pub mode: Mode,
    pub max_age: u32,
    pub mx: Vec<String>,
    #[serde(with = "unix")]
    pub first_served: SystemTime,
    /// The last observation at which some address served it (or, once it is
    /// replaced, the observation that saw it gone: it may have been served
    /// until then).
    #[serde(with = "unix")]
    pub last_served: SystemTime,
    /// When every authoritative server was first seen announcing its id.
    #[serde(default, with = "unix_option")]
    pub announced_at: Option<SystemTime>,
    /// Served at the last observation.
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MxRemoval {
    pub host: String,
    #[serde(with = "unix")]
    pub left_at: SystemTime,
    pub ttl: u32,
}

/// One step, as data; the executor performs the first and plans again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the policy file (atomically) to every webroot.
    WriteFile { id: String, content: String },
    /// Run the reload command.
    Reload { id: String },
    /// Fetch again until every address serves the policy.
    ConfirmServed { id: String, stale: Vec<SocketAddr> },
    /// Publish exactly one `v=STSv1; id=ID` record, replacing any others
    /// (performed through the zone's back-end).
    PublishTxt { id: String },
    /// Wait until every authoritative server announces the id.
    ConfirmTxt { id: String },
    /// Add an MX host to the MX RRset, not before the instant every cached
    /// policy may list it.
    AddMx {
        host: String,
        not_before: SystemTime,
    },
    /// Remove an MX host from the MX RRset (always safe first).
    RemoveMx { host: String },
    /// Nothing to do until then.
    Wait { until: SystemTime, why: String },
    /// The change cannot go on (the operator must act).
    Hold { why: String },
    /// DNS lists an MX host the served policy does not match (`run` exits 1).
    Alarm { why: String },
    /// For the operator (tlsa does not manage the MX RRset): a host the
    /// policy's `pattern` matches may enter the MX RRset from then.
    MxMayEnter { pattern: String, from: SystemTime },
    /// Remove the `_mta-sts` TXT record (leaving MTA-STS).
    RemoveTxt { not_before: SystemTime },
    /// Remove the policy file from every webroot (leaving MTA-STS).
    RemoveFile { not_before: SystemTime },
}

impl Step {
    /// The instant before which the step must not be performed, if any.
    pub fn not_before(&self) -> Option<SystemTime> {
        match self {
            Step::AddMx { not_before, .. }
            | Step::RemoveTxt { not_before }
            | Step::RemoveFile { not_before } => Some(*not_before),
            Step::Wait { until, .. } => Some(*until),
            _ => None,
        }
    }
}

fn stamp(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::WriteFile { id, .. } => {
                write!(f, "write the policy file (id {id}) to every webroot")
            }
            Step::Reload { id } => write!(f, "reload the web server to serve policy {id}"),
            Step::ConfirmServed { id, stale } => write!(
                f,
                "confirm policy {id} is served on every address (not yet: {})",
                stale
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::PublishTxt { id } => {
                write!(f, "publish TXT \"v=STSv1; id={id}\" as the only STS record")
            }
            Step::ConfirmTxt { id } => {
                write!(f, "confirm every authoritative server announces id {id}")
            }
            Step::AddMx { host, not_before } => {
                write!(f, "add MX {host}, not before {}", stamp(*not_before))
            }
            Step::RemoveMx { host } => write!(f, "remove MX {host}"),
            Step::Wait { until, why } => write!(f, "wait until {}: {why}", stamp(*until)),
            Step::Hold { why } => write!(f, "held: {why}"),
            Step::Alarm { why } => write!(f, "ALARM: {why}"),
            Step::MxMayEnter { pattern, from } => write!(
                f,
                "an MX host matching {pattern} may enter the MX RRset from {} (every policy a sender may hold lists it by then)",
                stamp(*from)
            ),
            Step::RemoveTxt { not_before } => {
                write!(
                    f,
                    "remove the _mta-sts TXT record, not before {}",
                    stamp(*not_before)
                )
            }
            Step::RemoveFile { not_before } => {
                write!(
                    f,
                    "remove the policy file, not before {}",
                    stamp(*not_before)
                )
            }
        }
    }
}

/// The plan: the policy to serve and the steps towards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Policy,
    pub steps: Vec<Step>,
}

/// The next steps, in order.
pub fn plan(settings: &Settings, world: &World, history: &History) -> Result<Plan, String> {
    let now = world.now;
    let mut steps = Vec::new();
    let (target, mut waits) = target_policy(settings, world, history)?;
    let id = target.id();
    let content = target.canonical();

    // Leaving, once the none policy has been announced and everything served
    // before it has expired: only removals remain.
    if settings.leave {
        let announced = history
            .policies
            .iter()
            .any(|p| p.id == id && p.announced_at.is_some());
        let expiry = expiry_of_others(history, &id, now);
        if announced && now >= expiry {
            if world.txt.iter().any(|ids| !ids.is_empty()) {
                steps.push(Step::RemoveTxt { not_before: expiry });
            }
            if world.written.is_some() {
                steps.push(Step::RemoveFile { not_before: expiry });
            }
            return Ok(Plan { target, steps });
        }
    }

    // MX removals go first: leaving the MX RRset is always safe.
    if settings.manage_mx {
        let wanted = settings.patterns.clone().unwrap_or_default();
        for host in &world.mx {
            if !wanted
                .iter()
                .any(|w| matching::normalise(w) == matching::normalise(host))
            {
                steps.push(Step::RemoveMx { host: host.clone() });
            }
        }
    }

    // §8.1: the file, served everywhere, then the id.
    let served_everywhere = !world.served.is_empty()
        && world
            .served
            .iter()
            .all(|(_, body)| body.as_deref() == Some(&content));
    if !served_everywhere {
        let stale: Vec<SocketAddr> = world
            .served
            .iter()
            .filter(|(_, body)| body.as_deref() != Some(&content))
            .map(|(a, _)| *a)
            .collect();
        if world.written.as_deref() != Some(&content) {
            steps.push(Step::WriteFile {
                id: id.clone(),
                content: content.clone(),
            });
            steps.push(Step::Reload { id: id.clone() });
        } else if history.reloaded_for.as_deref() != Some(&id) {
            steps.push(Step::Reload { id: id.clone() });
        }
        steps.push(Step::ConfirmServed {
            id: id.clone(),
            stale,
        });
    }
    let announced_everywhere =
        !world.txt.is_empty() && world.txt.iter().all(|ids| ids.as_slice() == [id.clone()]);
    if !announced_everywhere {
        let partly = world.txt.iter().any(|ids| ids.as_slice() == [id.clone()]);
        if !partly || !served_everywhere {
            steps.push(Step::PublishTxt { id: id.clone() });
        }
        steps.push(Step::ConfirmTxt { id: id.clone() });
    }

    // MX additions: after the policy listing them, when caches allow.
    let announced_at = history
        .policies
        .iter()
        .find(|p| p.id == id)
        .and_then(|p| p.announced_at)
        .filter(|_| announced_everywhere)
        .unwrap_or(now);
    if settings.manage_mx {
        for host in settings.patterns.iter().flatten() {
            if world
                .mx
                .iter()
                .any(|m| matching::normalise(m) == matching::normalise(host))
            {
                continue;
            }
            steps.push(Step::AddMx {
                host: matching::normalise(host),
                not_before: entry_time(settings, world, history, &id, host, announced_at),
            });
        }
    } else if let Some(served) = history
        .policies
        .iter()
        .find(|p| p.current && p.announced_at.is_some())
    {
        // The operator changes the MX RRset: say until when a pattern of the
        // policy that no MX host matches yet must wait for its host to enter.
        if served.id == id && announced_everywhere {
            for pattern in &target.mx {
                if world
                    .mx
                    .iter()
                    .all(|m| matching::matching_pattern(std::slice::from_ref(pattern), m).is_none())
                {
                    // Only while it is not safe yet: afterwards there is nothing to say.
                    let from = entry_time(settings, world, history, &id, pattern, announced_at);
                    if from > now {
                        steps.push(Step::MxMayEnter {
                            pattern: pattern.clone(),
                            from,
                        });
                    }
                }
            }
        }
        for host in &world.mx {
            if matching::matching_pattern(&served.mx, host).is_none() {
                steps.push(Step::Alarm {
                    why: format!(
                        "the MX RRset lists {host}, which the served policy (id {}) does not match: senders applying it refuse that host",
                        served.id
                    ),
                });
            }
        }
    }

    if settings.leave {
        let expiry = expiry_of_others(history, &id, now).max(now);
        steps.push(Step::RemoveTxt { not_before: expiry });
        steps.push(Step::RemoveFile { not_before: expiry });
    }
    steps.append(&mut waits);
    Ok(Plan { target, steps })
}

/// When `host` (or a pattern) may enter the MX RRset: once every policy a
/// sender may hold lists it — each earlier policy not matching it expired
/// (its last service + its `max_age`; one still served counts from now), or
/// with `trust_id_refresh` one TXT TTL after the announcement of `id`.
fn entry_time(
    settings: &Settings,
    world: &World,
    history: &History,
    id: &str,
    host: &str,
    announced_at: SystemTime,
) -> SystemTime {
    if settings.trust_id_refresh {
        return announced_at + secs(world.txt_ttl);
    }
    history
        .policies
        .iter()
        .filter(|p| p.id != id && matching::matching_pattern(&p.mx, host).is_none())
        .map(|p| {
            let until = if p.current { world.now } else { p.last_served };
            until + secs(p.max_age)
        })
        .max()
        .unwrap_or(world.now)
        .max(announced_at)
}

/// When every policy other than `id` has expired from every cache.
fn expiry_of_others(history: &History, id: &str, now: SystemTime) -> SystemTime {
    history
        .policies
        .iter()
        .filter(|p| p.id != id)
        .map(|p| (if p.current { now } else { p.last_served }) + secs(p.max_age))
        .max()
        .unwrap_or(now)
}

/// The policy to serve now, with the waits and holds that shaped it.
fn target_policy(
    settings: &Settings,
    world: &World,
    history: &History,
) -> Result<(Policy, Vec<Step>), String> {
    let now = world.now;
    let mut notes = Vec::new();
    // The hosts the policy must match: the wanted ones, those in the MX
    // RRset now, and those that left it less than its TTL ago.
    let mut mx: Vec<String> = match &settings.patterns {
        Some(patterns) => patterns.clone(),
        None => world.mx.clone(),
    };
    if settings.manage_mx || settings.patterns.is_none() {
        mx.extend(world.mx.iter().cloned());
        for removal in &history.mx_removed {
            let until = removal.left_at + secs(removal.ttl);
            if now < until && !world.mx.contains(&removal.host) {
                mx.push(removal.host.clone());
                notes.push(Step::Wait {
                    until,
                    why: format!("{} leaves the policy once the MX RRset's TTL has passed since it left the RRset", removal.host),
                });
            }
        }
    }
    if settings.leave {
        let max_age = settings.max_age.min(LEAVE_MAX_AGE);
        return Ok((Policy::new(Mode::None, max_age, &mx)?, notes));
    }
    let in_effect = history
        .policies
        .iter()
        .rev()
        .find(|p| p.current && p.announced_at.is_some())
        .map_or(Mode::None, |p| p.mode);
    let mut mode = settings.mode;
    if mode != Mode::None && !world.webpki_failures.is_empty() {
        let held = mode.min(in_effect);
        if held < mode {
            notes.push(Step::Hold {
                why: format!(
                    "mode {mode} needs a WebPKI-valid certificate on every MX address; not valid: {}",
                    world.webpki_failures.join("; ")
                ),
            });
            mode = held;
        }
    }
    if mode == Mode::Enforce && in_effect != Mode::Enforce {
        match testing_since(history) {
            Some(since) if now >= since + settings.enforce_after => {
                if let Some(days) = &world.reports
                    && let Err((not_yet, failures)) =
                        report_gate::judge(days, since, settings.enforce_after, now)
                {
                    notes.push(reports_not_clean(not_yet, &failures));
                    mode = Mode::Testing;
                }
            }
            since => {
                let until = since.unwrap_or(now) + settings.enforce_after;
                notes.push(Step::Wait {
                    until,
                    why: "mode enforce follows a clean period in mode testing (enforce_after)"
                        .into(),
                });
                mode = Mode::Testing;
            }
        }
    }
    Ok((Policy::new(mode, settings.max_age, &mx)?, notes))
}

/// Why the reports hold enforce back: a wait while they are clean so far,
/// a hold naming the failures or the missing report otherwise.
fn reports_not_clean(not_yet: NotYet, failures: &[String]) -> Step {
    let seen = match failures {
        [] => String::new(),
        f => format!(" (failures reported: {})", f.join(", ")),
    };
    match not_yet {
        NotYet::Until(until) if failures.is_empty() => Step::Wait {
            until,
            why: "mode enforce follows enforce_after of TLS-RPT reports without MTA-STS failures"
                .into(),
        },
        NotYet::Until(until) => Step::Hold {
            why: format!(
                "mode enforce needs enforce_after of TLS-RPT reports without MTA-STS failures, from {} at the earliest{seen}",
                stamp(until)
            ),
        },
        NotYet::NoReport { since } => Step::Hold {
            why: format!(
                "mode enforce needs a TLS-RPT report with successful sessions since {}{seen}; import the reports (`tlsa tlsrpt import`)",
                stamp(since)
            ),
        },
    }
}

/// Since when policies in mode testing or enforce have been announced
/// without interruption by one in mode none.
fn testing_since(history: &History) -> Option<SystemTime> {
    let mut since = None;
    for p in &history.policies {
        match (p.mode, p.announced_at) {
            (Mode::None, Some(_)) => since = None,
            (_, Some(at)) if since.is_none() => since = Some(at),
            _ => {}
        }
    }
    since
}

/// Folds the observation into the history.
pub fn record(history: &mut History, world: &World) {
    let now = world.now;
    let mut seen: Vec<String> = Vec::new();
    for (_, body) in &world.served {
        let Some(parsed) = body.as_deref().and_then(|b| policy::parse(b).ok()) else {
            continue;
        };
        let id = parsed.policy.id();
        match history.policies.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.last_served = now;
                p.current = true;
            }
            None => history.policies.push(ServedPolicy {
                id: id.clone(),
                mode: parsed.policy.mode,
                max_age: parsed.policy.max_age,
                mx: parsed.policy.mx.clone(),
                first_served: now,
                last_served: now,
                announced_at: None,
                current: true,
            }),
        }
        seen.push(id);
    }
    for p in &mut history.policies {
        if p.current && !seen.contains(&p.id) {
            // It may have been served until this observation.
            p.last_served = now;
            p.current = false;
        }
        let announced =
            !world.txt.is_empty() && world.txt.iter().all(|ids| ids.as_slice() == [p.id.clone()]);
        if announced && p.announced_at.is_none() {
            p.announced_at = Some(now);
        }
        // An id replaced by another on every server: if it comes back, its
        // announcement is a new one (senders learn it anew from then). An id
        // removed with no successor (leaving) keeps its announcement.
        let replaced = world.txt.iter().any(|ids| !ids.is_empty())
            && world.txt.iter().all(|ids| !ids.contains(&p.id));
        if replaced {
            p.announced_at = None;
        }
    }
    for host in &history.last_mx.clone() {
        if !world.mx.contains(host) && !history.mx_removed.iter().any(|r| &r.host == host) {
            history.mx_removed.push(MxRemoval {
                host: host.clone(),
                left_at: now,
                ttl: world.mx_ttl,
            });
        }
    }
    // A host back in the RRset is no longer leaving.
    history.mx_removed.retain(|r| !world.mx.contains(&r.host));
    history.last_mx = world.mx.clone();
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Instants in the state as RFC 3339 text to the millisecond (as the roll
/// engine keeps them), rounded up: a later "last served" only makes a wait
/// longer.
mod unix {
    use super::*;
    use crate::timestamp::Timestamp;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        Timestamp::from_system_ceil(*t).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(Timestamp::deserialize(d)?.to_system())
    }
}

mod unix_option {
    use super::*;
    use crate::timestamp::Timestamp;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        t.map(Timestamp::from_system_ceil).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<Timestamp>::deserialize(d)?.map(Timestamp::to_system))
    }
}

#[cfg(test)]
mod tests;
