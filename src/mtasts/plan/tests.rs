//! The planner against a simulated world driven by a fake clock: web
//! servers that serve what was written once reloaded (one of them may
//! ignore reloads), authoritative servers that serve what was published,
//! and an MX RRset. Every rule of the module documentation has a test.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::clock::{Clock, ManualClock};

const A1: &str = "192.0.2.1:443";
const A2: &str = "192.0.2.2:443";

struct Sim {
    clock: ManualClock,
    settings: Settings,
    history: History,
    world: World,
    /// Addresses that never load a new file.
    deaf: Vec<SocketAddr>,
    log: Vec<(SystemTime, Step)>,
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn settings(mode: Mode, max_age: u32, mx: &[&str]) -> Settings {
    Settings {
        mode,
        max_age,
        patterns: Some(mx.iter().map(|s| s.to_string()).collect()),
        manage_mx: false,
        trust_id_refresh: false,
        enforce_after: Duration::from_secs(0),
        leave: false,
    }
}

impl Sim {
    fn new(settings: Settings) -> Sim {
        let clock = ManualClock::new(start());
        let world = World {
            now: clock.now(),
            written: None,
            served: vec![(A1.parse().unwrap(), None), (A2.parse().unwrap(), None)],
            txt: vec![Vec::new(), Vec::new()],
            txt_ttl: 2,
            mx: Vec::new(),
            mx_ttl: 3,
            webpki_failures: Vec::new(),
            reports: None,
        };
        Sim {
            clock,
            settings,
            history: History::default(),
            world,
            deaf: Vec::new(),
            log: Vec::new(),
        }
    }

    fn plan(&mut self) -> Plan {
        self.world.now = self.clock.now();
        record(&mut self.history, &self.world);
        plan(&self.settings, &self.world, &self.history).unwrap()
    }

    fn perform(&mut self, step: &Step) {
        match step {
            Step::WriteFile { content, .. } => self.world.written = Some(content.clone()),
            Step::Reload { id } => {
                self.history.reloaded_for = Some(id.clone());
                for (addr, body) in &mut self.world.served {
                    if !self.deaf.contains(addr) {
                        *body = self.world.written.clone();
                    }
                }
            }
            Step::PublishTxt { id } => {
                for ids in &mut self.world.txt {
                    *ids = vec![id.clone()];
                }
            }
            Step::AddMx { host, .. } => self.world.mx.push(host.clone()),
            Step::RemoveMx { host } => self.world.mx.retain(|h| h != host),
            Step::RemoveTxt { .. } => self.world.txt.iter_mut().for_each(Vec::clear),
            Step::RemoveFile { .. } => {
                self.world.written = None;
                self.world.served.iter_mut().for_each(|(_, b)| *b = None);
            }
            other => panic!("not performable: {other}"),
        }
        self.log.push((self.clock.now(), step.clone()));
    }

    /// Runs like `tlsa run` on a timer: performs the first step when due,
    /// sleeps until a "not before", stops when stuck or done.
    fn run(&mut self) -> Plan {
        for _ in 0..100 {
            let plan = self.plan();
            // Notes for the operator are no step of tlsa's.
            let Some(first) = plan
                .steps
                .iter()
                .find(|s| !matches!(s, Step::MxMayEnter { .. }))
                .cloned()
            else {
                return plan;
            };
            match &first {
                Step::ConfirmServed { .. }
                | Step::ConfirmTxt { .. }
                | Step::Hold { .. }
                | Step::Alarm { .. } => return plan,
                Step::Wait { until, .. } => self.advance_to(*until),
                step => match step.not_before() {
                    Some(t) if t > self.clock.now() => self.advance_to(t),
                    _ => {
                        self.perform(step);
                        self.clock.advance(Duration::from_millis(100));
                    }
                },
            }
        }
        panic!("no end: {:#?}", self.log);
    }

    fn advance_to(&self, t: SystemTime) {
        if let Ok(d) = t.duration_since(self.clock.now()) {
            self.clock.advance(d);
        }
    }

    fn when(&self, what: impl Fn(&Step) -> bool) -> SystemTime {
        self.log
            .iter()
            .find(|(_, s)| what(s))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("never happened: {:#?}", self.log))
    }

    /// Asserts that the first `to` step ran at least `least` after the first `from` step
    /// (steps named as by [`name`]) and, with `within`, less than `within` after it.
    fn assert_gap(&self, from: &str, to: &str, least: Duration, within: Option<Duration>) {
        let at = |wanted: &str| self.when(|s| name(s) == wanted);
        let (start, end) = (at(from), at(to));
        assert!(
            end >= start + least,
            "{to} less than {least:?} after {from}: {:#?}",
            self.log
        );
        if let Some(within) = within {
            assert!(
                end < start + within,
                "{to} later than needed, {within:?} after {from}: {:#?}",
                self.log
            );
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.log.iter().map(|(_, s)| name(s)).collect()
    }
}

fn name(step: &Step) -> &'static str {
    match step {
        Step::WriteFile { .. } => "write",
        Step::Reload { .. } => "reload",
        Step::ConfirmServed { .. } => "confirm-served",
        Step::PublishTxt { .. } => "publish-txt",
        Step::ConfirmTxt { .. } => "confirm-txt",
        Step::AddMx { .. } => "add-mx",
        Step::RemoveMx { .. } => "remove-mx",
        Step::Wait { .. } => "wait",
        Step::Hold { .. } => "hold",
        Step::Alarm { .. } => "alarm",
        Step::RemoveTxt { .. } => "remove-txt",
        Step::RemoveFile { .. } => "remove-file",
        Step::MxMayEnter { .. } => "mx-may-enter",
    }
}

#[test]
fn a_new_policy_goes_file_reload_served_then_txt() {
    let mut sim = Sim::new(settings(Mode::Testing, 60, &["mx1.example.com"]));
    let first = sim.plan();
    let names: Vec<&str> = first.steps.iter().map(name).collect();
    assert_eq!(
        names,
        [
            "write",
            "reload",
            "confirm-served",
            "publish-txt",
            "confirm-txt"
        ]
    );
    let done = sim.run();
    assert!(done.steps.is_empty(), "{:?}", done.steps);
    assert_eq!(sim.names(), ["write", "reload", "publish-txt"]);
    assert_eq!(sim.world.txt, vec![vec![first.target.id()]; 2]);
    assert!(first.steps[0].to_string().contains(&first.target.id()));
}

#[test]
fn an_address_still_serving_the_old_file_holds_the_id() {
    let mut sim = Sim::new(settings(Mode::Testing, 60, &["mx1.example.com"]));
    sim.run();
    let old_id = sim.world.txt[0][0].clone();
    sim.deaf = vec![A2.parse().unwrap()];
    sim.settings.patterns = Some(vec!["mx1.example.com".into(), "mx2.example.com".into()]);
    let stuck = sim.run();
    let Some(Step::ConfirmServed { stale, .. }) = stuck.steps.first() else {
        panic!("{:?}", stuck.steps)
    };
    assert_eq!(stale, &vec![A2.parse::<SocketAddr>().unwrap()]);
    assert_eq!(
        sim.world.txt[0],
        vec![old_id.clone()],
        "the id moved before the file was served everywhere"
    );
    // Reloaded once; a second reload is not planned while it is stale.
    assert_eq!(
        sim.names(),
        ["write", "reload", "publish-txt", "write", "reload"]
    );
    // The address catches up: now the id moves.
    sim.deaf.clear();
    let content = sim.world.written.clone();
    sim.world.served[1].1 = content;
    // Done, but for the note that mx2 may enter DNS only once the old policy expired.
    let names: Vec<&str> = sim.run().steps.iter().map(name).collect();
    assert_eq!(names, ["mx-may-enter"]);
    assert_ne!(sim.world.txt[0], vec![old_id]);
}

#[test]
fn other_sts_records_are_replaced_by_exactly_one() {
    let mut sim = Sim::new(settings(Mode::None, 60, &[]));
    sim.world.txt = vec![vec!["a1".into(), "b2".into()], vec!["a1".into()]];
    sim.run();
    let id = sim.plan().target.id();
    assert_eq!(sim.world.txt, vec![vec![id.clone()], vec![id]]);
}

/// A managed MX RRset settled at `before`, then the config changed to `after`
/// and run to the end; the log holds only the change's steps.
fn change_managed_mx(mut s: Settings, before: &[&str], after: &[&str]) -> (Sim, Plan) {
    s.manage_mx = true;
    s.patterns = Some(before.iter().map(|h| h.to_string()).collect());
    let mut sim = Sim::new(s);
    sim.world.mx = before.iter().map(|h| h.to_string()).collect();
    sim.run();
    sim.settings.patterns = Some(after.iter().map(|h| h.to_string()).collect());
    sim.log.clear();
    let done = sim.run();
    (sim, done)
}

#[test]
fn an_mx_enters_the_rrset_after_the_previous_max_age() {
    let (sim, _) = change_managed_mx(
        settings(Mode::Enforce, 10, &[]),
        &["mx1.example.com"],
        &["mx1.example.com", "mx2.example.com"],
    );
    assert_eq!(sim.names(), ["write", "reload", "publish-txt", "add-mx"]);
    // The old policy (max_age 10, not listing mx2) was seen served until the
    // observation after the reload; every cache of it has expired 10 s later.
    let secs = Duration::from_secs;
    sim.assert_gap("reload", "add-mx", secs(10), Some(secs(11)));
    sim.assert_gap("publish-txt", "add-mx", Duration::from_nanos(1), None);
    assert!(sim.world.mx.contains(&"mx2.example.com".to_string()));
}

#[test]
fn with_trust_id_refresh_an_mx_waits_one_txt_ttl_after_the_new_id() {
    let mut s = settings(Mode::Enforce, 600, &[]);
    s.trust_id_refresh = true;
    let (sim, _) = change_managed_mx(
        s,
        &["mx1.example.com"],
        &["mx1.example.com", "mx2.example.com"],
    );
    // One TXT TTL (2 s), not the max_age (600 s).
    let secs = Duration::from_secs;
    sim.assert_gap("publish-txt", "add-mx", secs(2), Some(secs(60)));
}

/// Found in the lab: a policy announced once, replaced, then announced again
/// counted from its first announcement, so the MX entered at once.
#[test]
fn a_policy_announced_again_counts_from_its_new_announcement() {
    let mut s = settings(Mode::Enforce, 600, &[]);
    s.trust_id_refresh = true;
    let both = ["mx1.example.com", "mx2.example.com"];
    let (mut sim, _) = change_managed_mx(s, &["mx1.example.com"], &both);
    sim.settings.patterns = Some(vec!["mx1.example.com".into()]);
    sim.run();
    assert_eq!(sim.world.mx, vec!["mx1.example.com"]);
    sim.settings.patterns = Some(both.iter().map(|h| h.to_string()).collect());
    sim.log.clear();
    sim.run();
    // One TXT TTL after the id came back.
    sim.assert_gap("publish-txt", "add-mx", Duration::from_secs(2), None);
}

#[test]
fn an_mx_leaves_the_rrset_first_and_the_policy_after_its_ttl() {
    let (sim, done) = change_managed_mx(
        settings(Mode::Enforce, 10, &[]),
        &["mx1.example.com", "mx2.example.com"],
        &["mx1.example.com"],
    );
    assert!(done.steps.is_empty(), "{:?}", done.steps);
    assert_eq!(sim.names(), ["remove-mx", "write", "reload", "publish-txt"]);
    // The MX TTL: 3 s.
    sim.assert_gap("remove-mx", "write", Duration::from_secs(3), None);
    assert_eq!(done.target.mx, vec!["mx1.example.com"]);
}

#[test]
fn dns_lists_an_mx_the_served_policy_does_not_match() {
    let mut sim = Sim::new(settings(Mode::Enforce, 60, &["mx1.example.com"]));
    sim.world.mx = vec!["mx1.example.com".into()];
    sim.run();
    sim.world.mx.push("mx9.example.com".into());
    let plan = sim.plan();
    assert!(
        matches!(&plan.steps[..], [Step::Alarm { why }] if why.contains("mx9.example.com")),
        "{:?}",
        plan.steps
    );
}

#[test]
fn mx_from_dns_follows_the_rrset_and_keeps_a_leaving_host_for_its_ttl() {
    let mut s = settings(Mode::Testing, 60, &[]);
    s.patterns = None;
    let mut sim = Sim::new(s);
    sim.world.mx = vec!["a.example.com".into(), "b.example.com".into()];
    sim.run();
    sim.world.mx = vec!["a.example.com".into()];
    sim.log.clear();
    let plan = sim.plan();
    assert_eq!(
        plan.target.mx,
        vec!["a.example.com", "b.example.com"],
        "b stays for the MX TTL"
    );
    assert!(
        matches!(plan.steps.last(), Some(Step::Wait { .. })),
        "{:?}",
        plan.steps
    );
    sim.run();
    assert_eq!(sim.plan().target.mx, vec!["a.example.com"]);
}

#[test]
fn enforce_follows_the_clean_period_of_testing() {
    let mut s = settings(Mode::Enforce, 60, &["mx1.example.com"]);
    s.enforce_after = Duration::from_secs(5);
    let mut sim = Sim::new(s);
    let first = sim.plan();
    assert_eq!(first.target.mode, Mode::Testing);
    sim.run();
    let announced = sim.when(|s| matches!(s, Step::PublishTxt { .. }));
    let enforce_written = sim
        .log
        .iter()
        .filter(|(_, s)| matches!(s, Step::WriteFile { content, .. } if content.contains("mode: enforce")))
        .map(|(t, _)| *t)
        .next()
        .expect("enforce was published");
    assert!(
        enforce_written >= announced + Duration::from_secs(5),
        "{:#?}",
        sim.log
    );
    assert_eq!(sim.plan().target.mode, Mode::Enforce);
}

#[test]
fn an_mx_without_a_webpki_certificate_holds_the_mode() {
    let mut sim = Sim::new(settings(Mode::Testing, 60, &["mx1.example.com"]));
    sim.world.webpki_failures =
        vec!["mx1.example.com at 192.0.2.25:25: certificate-not-trusted".into()];
    let plan = sim.run();
    assert_eq!(plan.target.mode, Mode::None);
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::Hold { why } if why.contains("WebPKI"))),
        "{:?}",
        plan.steps
    );
    // Once valid, testing is published.
    sim.world.webpki_failures.clear();
    assert!(sim.run().steps.is_empty());
    assert_eq!(sim.plan().target.mode, Mode::Testing);
}

#[test]
fn leaving_waits_for_every_served_policy_to_expire() {
    let mut sim = Sim::new(settings(Mode::Enforce, 20, &["mx1.example.com"]));
    sim.run();
    sim.settings.leave = true;
    sim.log.clear();
    let plan = sim.run();
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(
        sim.names(),
        [
            "write",
            "reload",
            "publish-txt",
            "remove-txt",
            "remove-file"
        ]
    );
    let none = sim
        .log
        .iter()
        .find_map(|(_, s)| match s {
            Step::WriteFile { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    assert!(none.contains("mode: none"), "{none}");
    // max_age 20.
    let secs = Duration::from_secs;
    sim.assert_gap("reload", "remove-txt", secs(20), Some(secs(21)));
    assert!(sim.world.written.is_none() && sim.world.txt.iter().all(Vec::is_empty));
}

#[test]
fn steps_say_when_they_may_run() {
    let t = start() + Duration::from_secs(90);
    let step = Step::AddMx {
        host: "mx2.example.com".into(),
        not_before: t,
    };
    assert_eq!(step.not_before(), Some(t));
    assert!(
        step.to_string().contains("not before 2027-01-15T08:01:30Z"),
        "{step}"
    );
}

#[test]
fn the_history_is_kept_as_json() {
    let mut sim = Sim::new(settings(Mode::Testing, 60, &["mx1.example.com"]));
    sim.world.mx = vec!["mx1.example.com".into()];
    sim.run();
    let text = serde_json::to_string_pretty(&sim.history).unwrap();
    let back: History = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sim.history);
    assert!(text.contains("\"announced_at\""), "{text}");
}

#[test]
fn enforce_with_clean_reports_waits_for_a_clean_report_and_names_failures() {
    use crate::mtasts::report_gate::{DAY, ReportDay, day_name, day_start};
    let mut s = settings(Mode::Enforce, 60, &["mx1.example.com"]);
    s.enforce_after = Duration::from_secs(5);
    let mut sim = Sim::new(s);
    sim.world.reports = Some(Vec::new());
    let stuck = sim.run();
    assert_eq!(stuck.target.mode, Mode::Testing);
    assert!(
        stuck
            .steps
            .iter()
            .any(|s| matches!(s, Step::Hold { why } if why.contains("needs a TLS-RPT report"))),
        "{stuck:#?}"
    );

    // A report of today with a failure: still testing, the failure named.
    let today = day_start(&day_name(sim.clock.now())).unwrap();
    sim.world.reports = Some(vec![ReportDay {
        start: today,
        successful: 4,
        blocking: vec![("sts-webpki-invalid".into(), 3)],
    }]);
    let failing = sim.run();
    assert_eq!(failing.target.mode, Mode::Testing);
    assert!(
        failing
            .steps
            .iter()
            .any(|s| matches!(s, Step::Hold { why } if why.contains("sts-webpki-invalid × 3"))),
        "{failing:#?}"
    );

    // The next day's reports are clean: still held until enforce_after has passed since
    // the end of the failing day (a hold, not a wait: a failure wants the operator's eye;
    // the next run after it looks again), then enforce.
    sim.advance_to(today + DAY);
    sim.world.reports.as_mut().unwrap().push(ReportDay {
        start: today + DAY,
        successful: 10,
        blocking: Vec::new(),
    });
    assert_eq!(sim.run().target.mode, Mode::Testing);
    sim.advance_to(today + DAY + Duration::from_secs(5));
    let done = sim.run();
    assert_eq!(done.target.mode, Mode::Enforce, "{done:#?}");
    let enforce_written = sim
        .log
        .iter()
        .filter(|(_, s)| matches!(s, Step::WriteFile { content, .. } if content.contains("mode: enforce")))
        .map(|(t, _)| *t)
        .next()
        .expect("enforce was published");
    assert!(enforce_written >= today + DAY + Duration::from_secs(5));
}

#[test]
fn without_manage_mx_the_plan_says_when_a_new_host_may_enter_the_mx_rrset() {
    let mut sim = Sim::new(settings(Mode::Testing, 60, &["mx1.example.com"]));
    sim.world.mx = vec!["mx1.example.com".into()];
    sim.run();
    sim.settings.patterns = Some(vec!["mx1.example.com".into(), "mx2.example.com".into()]);
    let plan = sim.run();
    assert!(
        sim.world.mx == ["mx1.example.com"],
        "tlsa leaves the MX RRset alone"
    );
    let old_gone =
        sim.when(|s| matches!(s, Step::WriteFile { content, .. } if content.contains("mx2")));
    let from = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::MxMayEnter { pattern, from } if pattern == "mx2.example.com" => Some(*from),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{plan:#?}"));
    assert!(from >= old_gone + Duration::from_secs(60), "{from:?}");
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::MxMayEnter { pattern, .. } if pattern == "mx1.example.com"))
    );

    // Once the operator adds it, the note is gone and nothing alarms.
    sim.world.mx.push("mx2.example.com".into());
    let plan = sim.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::MxMayEnter { .. } | Step::Alarm { .. })),
        "{plan:#?}"
    );
}
