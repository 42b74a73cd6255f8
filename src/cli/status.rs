//! `tlsa status`: per set, the keys in each slot with their hashes and
//! times, when the next step is due, and a short timeline; then (text only)
//! each MTA-STS domain's policies. Reads files and the state only (no DNS,
//! no lock), so it is safe to run at any moment.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::config::{CertSet, VerifyMode};
use crate::roll::executor::unix;
use crate::roll::files;
use crate::roll::plan::short;
use crate::roll::state::{self, Event, KeyState, LastRun, PresentedSeen, SetState, Timestamp};
use crate::tlsrpt::feedback::{self, SetReports};

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
    /// Only this certificate set (repeatable; all sets when absent).
    #[arg(long = "set", value_name = "SET")]
    pub sets: Vec<String>,
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
    /// The last verify step failed: a deploy that did not take effect.
    verify_failure: Option<String>,
    /// `live`: the servers are observed every run; `deployed-files`: the
    /// deploy target's key is taken as presented.
    observed: &'static str,
    /// What every address presented at the last observation.
    presented: Option<PresentedSeen>,
    /// How the last run ended, and when the next step is due.
    last_run: Option<LastRun>,
    /// Files that could not be read (a damaged certificate, …).
    problems: Vec<String>,
    keys: Vec<KeyStatus>,
    timeline: Vec<Event>,
    /// TLS-RPT reports about the set's MX hosts since its last roll step
    /// (null without a report store).
    tls_reports: Option<SetReports>,
    /// An `acme` set: the live certificate's expiry and renewal, and the
    /// backoff of failed orders (null for other sources).
    acme: Option<AcmeStatus>,
}

#[derive(Debug, Serialize)]
struct AcmeStatus {
    not_after: Option<Timestamp>,
    renew_at: Option<Timestamp>,
    /// What `renew_at` was decided from: `window` (the CA's RFC 9773
    /// renewal window), `alarm` (the window lies past the expiry alarm),
    /// `two-thirds` (no window).
    renew_by: Option<&'static str>,
    /// The CA's renewal window for the live certificate, when it gave one.
    renewal_window: Option<crate::acme::renewal_info::Window>,
    /// From when a certificate not yet renewed is an alarm (`alarm_days`).
    alarm_at: Option<Timestamp>,
    /// The challenge the CA is answered with (`dns-01`, `http-01`).
    challenge: &'static str,
    backoff: Option<crate::roll::state::AcmeBackoff>,
}

/// What `status` says of an `acme` set, from the deployed certificate.
fn acme_status(set: &CertSet, set_state: &SetState) -> Option<AcmeStatus> {
    let crate::config::Source::Acme(source) = &set.source else {
        return None;
    };
    use crate::acme::renewal_info::{self, Basis};
    let pem = std::fs::read(files::deploy_files(set).chain).ok();
    let validity = pem.as_deref().and_then(crate::acme::source::validity);
    let info = set_state.acme_renewal_info.as_ref();
    let renewal = pem
        .as_deref()
        .and_then(|pem| renewal_info::renewal_at(source, pem, info));
    let cert = pem.as_deref().and_then(renewal_info::certificate_id);
    Some(AcmeStatus {
        not_after: validity.map(|(_, end)| Timestamp::from_system(end)),
        renew_at: renewal.map(|(at, _)| Timestamp::from_system(at)),
        renew_by: renewal.map(|(_, basis)| match basis {
            Basis::Window => "window",
            Basis::WindowPastAlarm => "alarm",
            Basis::TwoThirds => "two-thirds",
        }),
        renewal_window: info
            .filter(|i| cert.as_deref() == Some(i.cert.as_str()))
            .and_then(|i| i.window.clone()),
        alarm_at: validity
            .map(|(start, end)| Timestamp::from_system(source.alarm_from(start, end))),
        challenge: match source.challenge {
            crate::acme::source::ChallengeKind::Dns01 => "dns-01",
            crate::acme::source::ChallengeKind::Http01 => "http-01",
        },
        backoff: set_state.acme_backoff.clone(),
    })
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
    common::known_sets(&config, &args.sets)?;
    let state =
        state::load_dir(&config.state_dir).map_err(|e| Failure::Runtime(vec![e.to_string()]))?;
    let mut report = Vec::new();
    let selected = config
        .sets
        .iter()
        .filter(|s| args.sets.is_empty() || args.sets.contains(s.name.get_ref()));
    let store = super::tlsrpt::existing_store(&config);
    let now = Timestamp::from_system(std::time::SystemTime::now());
    for set in selected {
        let empty = SetState::default();
        let set_state = state.sets.get(set.name.get_ref()).unwrap_or(&empty);
        let mut status = status_of(set, set_state, &config.state_dir, args.events)?;
        match &store {
            Ok(Some(store)) => match feedback::set_reports(store, set, set_state, now) {
                Ok(reports) => status.tls_reports = Some(reports),
                Err(e) => status.problems.push(e.to_string()),
            },
            Ok(None) => {}
            Err(e) => status.problems.push(e.clone()),
        }
        report.push(status);
    }
    let written = if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        // MTA-STS domains are shown unless the output is narrowed to sets.
        print_text(&report, out).and_then(|()| {
            if args.sets.is_empty() {
                super::sts_status::print(&config, out, std::time::SystemTime::now())
            } else {
                Ok(())
            }
        })
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))
}

fn status_of(
    set: &CertSet,
    set_state: &SetState,
    state_dir: &std::path::Path,
    events: usize,
) -> Result<SetStatus, Failure> {
    // A damaged file is what status must show, not a reason to show nothing.
    let mut problems = Vec::new();
    let mut read = |path: Result<std::path::PathBuf, files::FileError>| match path
        .and_then(|p| files::cert_facts(&p))
    {
        Ok(facts) => facts.map(|c| c.key.id),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let live = read(Ok(files::deploy_files(set).chain));
    let source = read(files::source_files(set, state_dir, set_state).map(|f| f.chain));
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
        verify_failure: set_state.verify_failure.clone(),
        observed: match set.verify {
            VerifyMode::Live => "live",
            VerifyMode::DeployedFiles => "deployed-files",
        },
        presented: set_state.presented.clone(),
        last_run: set_state.last_run.clone(),
        problems,
        keys,
        timeline: set_state.timeline[skip..].to_vec(),
        tls_reports: None,
        acme: acme_status(set, set_state),
    })
}

fn print_text(report: &[SetStatus], out: &mut dyn Write) -> std::io::Result<()> {
    let now = unix(std::time::SystemTime::now());
    for set in report {
        writeln!(out, "set {}", set.set)?;
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let (red, reset) = if common::colour(terminal) {
            ("\x1b[1;31m", "\x1b[0m")
        } else {
            ("", "")
        };
        if let Some(alarm) = &set.alarm {
            writeln!(out, "  {red}ALARM: {alarm}{reset}")?;
            if let Some(until) = set.alarm_until {
                writeln!(
                    out,
                    "  {red}records republished; safe again at {}{reset}",
                    common::when(until, now)
                )?;
            }
        }
        if let Some(last) = &set.last_run {
            let mut line = format!(
                "  last run recorded {}: {}",
                common::when(last.at, now),
                last.outcome
            );
            if last.steps > 0 {
                line.push_str(&format!(", {} step(s)", last.steps));
            }
            if let Some(error) = &last.error {
                let colour = if last.outcome == "waiting" { "" } else { red };
                let reset = if colour.is_empty() { "" } else { reset };
                line.push_str(&format!(": {colour}{error}{reset}"));
            }
            writeln!(out, "{line}")?;
            if let Some(due) = last.next_due {
                writeln!(out, "  next step due at {}", common::when(due, now))?;
            }
        } else {
            writeln!(out, "  no run yet: `tlsa run` does what is due")?;
        }
        for problem in &set.problems {
            writeln!(out, "  {red}problem: {problem}{reset}")?;
        }
        if let Some(failure) = &set.verify_failure {
            writeln!(out, "  {red}{failure}{reset}")?;
        }
        if set.live.is_none() {
            writeln!(out, "  nothing deployed yet")?;
        }
        match (&set.presented, set.observed) {
            (_, "deployed-files") => writeln!(
                out,
                "  presented: not observed (verify = \"deployed-files\": the deploy target's key counts as presented)"
            )?,
            (None, _) => writeln!(out, "  presented: not observed yet")?,
            (Some(seen), _) => {
                writeln!(
                    out,
                    "  presented, as observed at {}:",
                    common::when(seen.at, now)
                )?;
                for address in &seen.addresses {
                    let what = match (&address.key, &address.error) {
                        (Some(key), _) => format!("key {}", short(key)),
                        (None, Some(why)) => format!("nothing seen: {why}"),
                        (None, None) => "nothing seen".to_string(),
                    };
                    writeln!(out, "    {}  {what}", address.address)?;
                }
            }
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
        if let Some(reports) = &set.tls_reports {
            print_reports(reports, now, red, reset, out)?;
        }
        if let Some(acme) = &set.acme {
            if let (Some(end), Some(renew)) = (acme.not_after, acme.renew_at) {
                writeln!(
                    out,
                    "  acme: certificate valid until {}; renewed (a planned roll) from {} ({})",
                    common::when(end, now),
                    common::when(renew, now),
                    acme.challenge
                )?;
            }
            match &acme.renewal_window {
                Some(window) => writeln!(
                    out,
                    "  acme: the CA's renewal window (RFC 9773): {} to {}{}",
                    common::when(window.start, now),
                    common::when(window.end, now),
                    window
                        .explanation
                        .as_ref()
                        .map_or(String::new(), |url| format!(" (why: {url})"))
                )?,
                None if acme.renew_at.is_some() => writeln!(
                    out,
                    "  acme: no renewal window from the CA (RFC 9773): renewed at two thirds of the lifetime"
                )?,
                None => {}
            }
            if let Some(alarm) = acme.alarm_at.filter(|at| *at <= now) {
                writeln!(
                    out,
                    "  {red}acme: ALARM: the certificate ends {} and is not renewed (inside its alarm window since {}){reset}",
                    acme.not_after
                        .map_or("soon".into(), |end| common::when(end, now)),
                    common::when(alarm, now)
                )?;
            }
            if let Some(b) = &acme.backoff {
                writeln!(
                    out,
                    "  {red}acme: {} order(s) failed in a row; next automatic order at {}: {}{reset}",
                    b.failures,
                    common::when(b.retry_at, now),
                    b.error
                )?;
            }
        }
    }
    Ok(())
}

/// The TLS-RPT lines of a set: per MX host, sessions since the window began.
fn print_reports(
    reports: &SetReports,
    now: Timestamp,
    red: &str,
    reset: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let since = match &reports.window.step {
        Some(step) => format!(
            "since the last {} step ({})",
            step.kind.as_str(),
            common::when(step.at, now)
        ),
        None => format!(
            "in the last {} days (no roll step recorded)",
            feedback::WINDOW_WITHOUT_STEP.as_secs() / 86_400
        ),
    };
    writeln!(out, "  TLS-RPT reports {since}:")?;
    for host in &reports.hosts {
        let failures: Vec<String> = host
            .failures
            .iter()
            .map(|f| format!("{} {}", f.sessions, f.result_type))
            .collect();
        let (colour, end) = match host
            .failures
            .iter()
            .any(|f| feedback::DANE_RESULT_TYPES.contains(&f.result_type.as_str()))
        {
            true => (red, reset),
            false => ("", ""),
        };
        let detail = match failures.is_empty() {
            true => String::new(),
            false => format!(" ({colour}{}{end})", failures.join(", ")),
        };
        writeln!(
            out,
            "    {}  {} report(s), {} successful, {} failed session(s){detail}",
            host.host, host.reports, host.successful, host.failed
        )?;
    }
    Ok(())
}
