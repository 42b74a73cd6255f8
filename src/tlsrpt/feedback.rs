//! TLS-RPT reports beside the roll: what senders reported about a set's MX
//! hosts since the set's last roll step, and the monitoring verdicts drawn
//! from it. A DANE failure (`tlsa-invalid`, `dnssec-invalid`,
//! `dane-required`) in a report whose date range ends after the set's last
//! deploy means senders could not match the key presented since that
//! deploy (or validate its records): critical. Other failures beyond
//! `[tlsrpt] warn_failures` are a warning.
//!
//! Reports are daily: one covering the day of a step also covers the hours
//! before it, so a failure can predate the step it is shown beside. The
//! windows err towards showing it.

use std::time::Duration;

use serde::Serialize;

use super::store::{HostReports, ReportStore, StoreError};
use crate::config::CertSet;
use crate::roll::plan::StepKind;
use crate::roll::state::{Event, SetState, Timestamp};

/// The result types of DANE failures (RFC 8460 §4.3.2).
pub const DANE_RESULT_TYPES: [&str; 3] = ["tlsa-invalid", "dnssec-invalid", "dane-required"];

/// How far back reports count for a set whose timeline records no roll step.
pub const WINDOW_WITHOUT_STEP: Duration = Duration::from_secs(7 * 86_400);

const ANY_STEP: [StepKind; 3] = [StepKind::Publish, StepKind::Deploy, StepKind::Retire];

/// The roll step a window of reports starts at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepSeen {
    pub kind: StepKind,
    /// The timeline's line for it.
    pub what: String,
    pub at: Timestamp,
}

/// A window of reports: since a step, or the last [`WINDOW_WITHOUT_STEP`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub since: Timestamp,
    pub step: Option<StepSeen>,
}

/// The latest event of a set's timeline recording a step of one of `kinds`.
fn last_step<'a>(state: &'a SetState, kinds: &[StepKind]) -> Option<&'a Event> {
    state
        .timeline
        .iter()
        .rev()
        .find(|e| StepKind::of_event(&e.what).is_some_and(|k| kinds.contains(&k)))
}

impl Window {
    /// Since the latest step of one of `kinds` the state records.
    pub fn since_last(state: &SetState, kinds: &[StepKind], now: Timestamp) -> Option<Window> {
        let event = last_step(state, kinds)?;
        Some(Window {
            since: event.at,
            step: Some(StepSeen {
                kind: StepKind::of_event(&event.what)?,
                what: event.what.clone(),
                at: event.at,
            }),
        })
        .filter(|w| w.since <= now)
    }

    fn default(now: Timestamp) -> Window {
        Window {
            since: now - WINDOW_WITHOUT_STEP,
            step: None,
        }
    }

    fn unix_secs(&self) -> i64 {
        i64::try_from(self.since.unix_ms() / 1000).unwrap_or(i64::MAX)
    }

    /// `since`/`after` the step, or the default window.
    fn describe(&self, since: &str) -> String {
        match &self.step {
            Some(step) => format!(
                "{since} the set's last {} step ({}, at {})",
                step.kind.as_str(),
                step.what,
                step.at.rfc3339()
            ),
            None => format!(
                "in the last {} days (no roll step recorded)",
                WINDOW_WITHOUT_STEP.as_secs() / 86_400
            ),
        }
    }
}

/// What `tlsa status` shows for a set: per DANE MX host, the reports
/// since the set's last roll step.
#[derive(Debug, Clone, Serialize)]
pub struct SetReports {
    #[serde(flatten)]
    pub window: Window,
    pub hosts: Vec<HostReports>,
}

pub fn set_reports(
    store: &dyn ReportStore,
    set: &CertSet,
    state: &SetState,
    now: Timestamp,
) -> Result<SetReports, StoreError> {
    let window = Window::since_last(state, &ANY_STEP, now).unwrap_or_else(|| Window::default(now));
    let hosts = set
        .mx_hosts()
        .iter()
        .map(|host| store.host_reports(host, window.unix_secs()))
        .collect::<Result<_, _>>()?;
    Ok(SetReports { window, hosts })
}

/// How bad a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Critical,
}

/// One monitoring verdict about a set's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub level: Level,
    pub message: String,
}

/// The verdicts for one set: DANE failures since its last deploy are
/// critical; other failures since its last roll step beyond
/// `warn_failures` sessions (per host) are a warning.
pub fn verdicts(
    store: &dyn ReportStore,
    set: &CertSet,
    state: &SetState,
    warn_failures: u64,
    now: Timestamp,
) -> Result<Vec<Verdict>, StoreError> {
    let name = set.name.get_ref();
    let any = Window::since_last(state, &ANY_STEP, now).unwrap_or_else(|| Window::default(now));
    let deploy = Window::since_last(state, &[StepKind::Deploy], now).unwrap_or_else(|| any.clone());
    let mut verdicts = Vec::new();
    for host in set.mx_hosts() {
        let dane = store.host_reports(&host, deploy.unix_secs())?;
        let dane: Vec<_> = dane
            .failures
            .iter()
            .filter(|f| DANE_RESULT_TYPES.contains(&f.result_type.as_str()) && f.sessions > 0)
            .collect();
        if !dane.is_empty() {
            let types: Vec<String> = dane
                .iter()
                .map(|f| format!("{} {}", f.sessions, f.result_type))
                .collect();
            let mut orgs: Vec<&str> = dane
                .iter()
                .flat_map(|f| f.organizations.iter().map(String::as_str))
                .collect();
            orgs.sort();
            orgs.dedup();
            verdicts.push(Verdict {
                level: Level::Critical,
                message: format!(
                    "TLS-RPT: set {name}, host {host}: failed DANE sessions ({}) reported by {} in reports ending {}: senders could not validate this host's TLSA records or match its key; compare `tlsa status` with the served records",
                    types.join(", "),
                    orgs.join(", "),
                    deploy.describe("after"),
                ),
            });
        }
        let other = store.host_reports(&host, any.unix_secs())?;
        let other: Vec<_> = other
            .failures
            .iter()
            .filter(|f| !DANE_RESULT_TYPES.contains(&f.result_type.as_str()))
            .collect();
        let sessions: u64 = other.iter().map(|f| f.sessions).sum();
        if sessions > warn_failures {
            let types: Vec<String> = other
                .iter()
                .map(|f| format!("{} {}", f.sessions, f.result_type))
                .collect();
            verdicts.push(Verdict {
                level: Level::Warning,
                message: format!(
                    "TLS-RPT: set {name}, host {host}: {sessions} failed session(s) ({}) reported {}, more than [tlsrpt] warn_failures = {warn_failures}",
                    types.join(", "),
                    any.describe("since"),
                ),
            });
        }
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tlsrpt::store::{Provenance, SqliteStore};

    fn set() -> CertSet {
        let text = crate::config::testing::dns_for_tests("example.com")
            + r#"
[[set]]
name = "mail"
source = { certbot = "/tmp/lineage" }
deploy = { dir = "/tmp/deploy" }

[[set.endpoint]]
host = "Mail.Example.com."
port = 25

[[set.endpoint]]
host = "imap.example.com"
port = 993
"#;
        Config::parse(&text).unwrap().sets.remove(0)
    }

    fn report(id: &str, end: &str, failures: &[(&str, u64)]) -> crate::tlsrpt::report::Report {
        let details: Vec<String> = failures
            .iter()
            .map(|(t, n)| format!(r#"{{"result-type":"{t}","failed-session-count":{n}}}"#))
            .collect();
        let json = format!(
            r#"{{"organization-name":"Org","date-range":{{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"{end}"}},"contact-info":null,"report-id":"{id}","policies":[{{"policy":{{"policy-type":"tlsa","policy-domain":"mail.example.com"}},"summary":{{"total-successful-session-count":5,"total-failure-session-count":1}},"failure-details":[{}]}}]}}"#,
            details.join(",")
        );
        crate::tlsrpt::report::parse(json.as_bytes()).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap();
        Timestamp::from_unix_secs(t.unix_timestamp() as u64)
    }

    #[test]
    fn dane_failures_after_the_deploy_are_critical_others_beyond_the_threshold_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        let mut state = SetState::default();
        state.record(
            at("2026-11-30T10:00:00Z"),
            "deploy key 0123456789abcdef (goes live)",
        );
        state.record(
            at("2026-11-30T10:05:00Z"),
            "verify that every address presents key 01",
        );
        state.record(at("2026-11-30T10:06:00Z"), "retire key fedcba9876543210");
        let now = at("2026-12-01T12:00:00Z");
        assert_eq!(set().mx_hosts(), ["mail.example.com"], "port 25 only");

        // Before the deploy: nothing counts.
        let before = report("a", "2026-11-30T09:00:00Z", &[("tlsa-invalid", 9)]);
        store
            .insert_all(&[(before, Provenance::default())])
            .unwrap();
        assert!(verdicts(&store, &set(), &state, 0, now).unwrap().is_empty());

        // Between the deploy and the retire: critical (deploy window), and not
        // counted among the others (retire window).
        let between = report(
            "b",
            "2026-11-30T10:03:00Z",
            &[("dane-required", 2), ("starttls-not-supported", 1)],
        );
        store
            .insert_all(&[(between, Provenance::default())])
            .unwrap();
        let found = verdicts(&store, &set(), &state, 0, now).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].level, Level::Critical);
        for part in [
            "set mail",
            "host mail.example.com",
            "2 dane-required",
            "deploy step (deploy key 0123456789abcdef",
            "Org",
        ] {
            assert!(
                found[0].message.contains(part),
                "{part}: {}",
                found[0].message
            );
        }

        // After the retire: other failures over the threshold warn.
        let after = report("c", "2026-11-30T23:59:59Z", &[("certificate-expired", 3)]);
        store.insert_all(&[(after, Provenance::default())]).unwrap();
        let found = verdicts(&store, &set(), &state, 3, now).unwrap();
        assert_eq!(found.len(), 1, "3 is not more than 3: {found:?}");
        let found = verdicts(&store, &set(), &state, 2, now).unwrap();
        assert_eq!(found[1].level, Level::Warning);
        assert!(
            found[1].message.contains("3 certificate-expired"),
            "{}",
            found[1].message
        );
        assert!(
            found[1].message.contains("last retire step"),
            "{}",
            found[1].message
        );

        let shown = set_reports(&store, &set(), &state, now).unwrap();
        assert_eq!(shown.window.step.as_ref().unwrap().kind, StepKind::Retire);
        assert_eq!(shown.hosts[0].reports, 1);

        // No step recorded: the last 7 days.
        let fresh = verdicts(&store, &set(), &SetState::default(), 0, now).unwrap();
        assert!(
            fresh[0].message.contains("in the last 7 days"),
            "{}",
            fresh[0].message
        );
    }
}
