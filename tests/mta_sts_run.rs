//! MTA-STS changes made by `tlsa run` on real servers (the scene of tests/mta_sts.rs: the
//! lab's signed BIND zone validated by unbound, nginx serving the policy on two loopback
//! addresses with a certificate from a test CA, Postfix as the MX), watched from outside by a
//! probe that reads the `_mta-sts` TXT from BIND and then fetches the policy from both
//! addresses: whenever the TXT announces an id, both addresses already serve that policy.
//! Run with `cargo test --test integration mta_sts_run:: -- --nocapture` for the timings.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use support::{Lab, RollDns, StsScene, TlsIdentity, TlsaRun};
use tlsa::live::webpki;
use tlsa::mtasts::fetch::{self, FetchOptions};
use tlsa::mtasts::policy::{self, Mode, Policy};

fn tlsa_run(config: &Path, extra: &[&str]) -> TlsaRun {
    let timeout: &[&str] = if extra.contains(&"--propagation-timeout") {
        &[]
    } else {
        &["--propagation-timeout", "15"]
    };
    let run = TlsaRun::of(
        ["run", "--config", config.to_str().unwrap()]
            .iter()
            .chain(timeout)
            .chain(extra),
    );
    eprintln!(
        "tlsa run {extra:?}: exit {:?}\n{}{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// What `[[mta_sts]]` says beyond the scene's wiring.
struct Wanted<'a> {
    mode: &'a str,
    max_age: u32,
    mx: Vec<String>,
    manage_mx: bool,
    trust_id_refresh: bool,
    leave: bool,
    /// Indices of the nginx sites whose webroot tlsa writes.
    webroots: &'a [usize],
    /// More `[[mta_sts]]` lines.
    extra: &'a str,
}

impl<'a> Wanted<'a> {
    /// Mode testing for `mx`, both webroots written, nothing else.
    fn testing(max_age: u32, mx: Vec<String>) -> Self {
        Wanted {
            mode: "testing",
            max_age,
            mx,
            manage_mx: false,
            trust_id_refresh: false,
            leave: false,
            webroots: &[0, 1],
            extra: "",
        }
    }
}

fn write_config(scene: &StsScene, dir: &Path, wanted: &Wanted) -> PathBuf {
    let mx: Vec<String> = wanted.mx.iter().map(|m| format!("{m:?}")).collect();
    let webroots: Vec<String> = wanted
        .webroots
        .iter()
        .map(|&i| format!("{:?}", scene.nginx.webroot(i).display().to_string()))
        .collect();
    let text = format!(
        r#"{head}
[[mta_sts]]
domain = "{zone}"
zone = "{zone}"
mode = "{mode}"
max_age = {max_age}
mx = [{mx}]
manage_mx = {manage_mx}
trust_id_refresh = {trust}
leave = {leave}
webroots = [{webroots}]
reload = ["true"]
ca_file = "{ca}"
ttl = 2
policy_port = {policy_port}
mx_port = {mx_port}
{extra}
"#,
        head = RollDns::bind(&scene.lab).config_head(dir),
        zone = scene.zone,
        mode = wanted.mode,
        max_age = wanted.max_age,
        mx = mx.join(", "),
        manage_mx = wanted.manage_mx,
        trust = wanted.trust_id_refresh,
        leave = wanted.leave,
        webroots = webroots.join(", "),
        ca = scene.ca_file.display(),
        policy_port = scene.nginx.port(),
        mx_port = scene.postfix.port(),
        extra = wanted.extra,
    );
    let file = dir.join("tlsa.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The whole text of each TXT record BIND serves at `name` (strings joined).
fn txt_at(server: SocketAddr, name: &str) -> Vec<String> {
    support::query(server, name, "TXT", &["+norec"])
        .rdata("TXT")
        .iter()
        .map(|r| r.trim_matches('"').replace("\" \"", ""))
        .collect()
}

fn sts_ids(lab: &Lab, zone: &str) -> Vec<String> {
    dig_sts_ids(lab.server_addr(), zone)
}

fn dig_sts_ids(server: SocketAddr, zone: &str) -> Vec<String> {
    txt_at(server, &format!("_mta-sts.{zone}."))
        .iter()
        .filter_map(|t| t.strip_prefix("v=STSv1; id=").map(str::to_string))
        .collect()
}

fn mx_hosts(lab: &Lab, zone: &str) -> Vec<String> {
    dig_mx(lab.server_addr(), zone)
}

fn dig_mx(server: SocketAddr, zone: &str) -> Vec<String> {
    let mut hosts: Vec<String> = support::query(server, &format!("{zone}."), "MX", &["+norec"])
        .rdata("MX")
        .iter()
        .filter_map(|r| r.split_whitespace().nth(1))
        .map(|h| h.trim_end_matches('.').to_string())
        .collect();
    hosts.sort();
    hosts
}

/// One probe sample: the ids BIND announced throughout the sample, and what each address served.
#[derive(Debug, Clone)]
struct Sample {
    at: SystemTime,
    ids: Vec<String>,
    served: Vec<Option<String>>,
    mx: Vec<String>,
}

/// Samples until stopped; every sample is checked by [`assert_ordered`].
struct Probe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(scene: &StsScene) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (zone, server) = (scene.zone.clone(), scene.lab.server_addr());
        let addresses = [scene.nginx.addr(0), scene.nginx.addr(1)];
        let roots = webpki::load_roots(Some(&scene.ca_file)).unwrap();
        let options = FetchOptions {
            roots,
            timeout: Duration::from_secs(4),
        };
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            while !stop2.load(Ordering::SeqCst) {
                let at = SystemTime::now();
                let before = dig_sts_ids(server, &zone);
                let mx = dig_mx(server, &zone);
                let served: Vec<Option<String>> = addresses
                    .iter()
                    .map(|a| {
                        runtime
                            .block_on(fetch::fetch(&zone, *a, &options))
                            .outcome
                            .ok()
                    })
                    .collect();
                // The reads are not one instant: an id counts as announced during the
                // fetches only if BIND served it before and after them (a record removed
                // between the TXT read and the fetches is not a violation).
                let after = dig_sts_ids(server, &zone);
                let ids = before.into_iter().filter(|id| after.contains(id)).collect();
                samples2.lock().unwrap().push(Sample {
                    at,
                    ids,
                    served,
                    mx,
                });
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // What was served before the run starts must be in the samples: return only once
        // the first one is taken (a run started at once can replace the policy file before
        // the thread's first fetch; seen in CI).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while samples.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline && !thread.is_finished(),
                "the probe took no sample within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Probe {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let samples = self.samples.lock().unwrap().clone();
        assert_ordered(&samples);
        samples
    }
}

/// Runs `tlsa run --wait` while a probe samples what is served (until 300 ms after it ends);
/// the run must succeed.
fn sampled_wait_run(scene: &StsScene, config: &Path) -> Vec<Sample> {
    let probe = Probe::start(scene);
    let run = tlsa_run(config, &["--wait"]);
    std::thread::sleep(Duration::from_millis(300));
    let samples = probe.finish();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    samples
}

/// When the probe first saw `what` (a sample matching `seen`).
fn first_at(samples: &[Sample], what: &str, seen: impl Fn(&Sample) -> bool) -> SystemTime {
    samples
        .iter()
        .find(|s| seen(s))
        .map(|s| s.at)
        .unwrap_or_else(|| panic!("the probe never saw {what}"))
}

/// A gap between two events seen by the probe is known to within one sampling interval:
/// the rule holds if the gap seen is at least the rule's wait less the longest interval.
fn assert_gap_at_least(gap: Duration, rule: Duration, samples: &[Sample]) {
    let resolution = samples
        .windows(2)
        .filter_map(|w| w[1].at.duration_since(w[0].at).ok())
        .max()
        .unwrap_or_default();
    assert!(
        gap + resolution >= rule,
        "seen {gap:?} apart (sampled every ≤ {resolution:?}); the rule is {rule:?}"
    );
}

fn served_id(body: &Option<String>) -> Option<String> {
    body.as_deref()
        .and_then(|b| policy::parse(b).ok())
        .map(|p| p.policy.id())
}

/// Whenever BIND announced a new id (one the first sample did not show), every address
/// served (just after) the policy it names. An id announced from the start may meet a newer
/// file: that is the order of a change.
fn assert_ordered(samples: &[Sample]) {
    assert!(
        samples.len() > 3,
        "the probe took {} samples",
        samples.len()
    );
    let initial = samples[0].ids.clone();
    for s in samples {
        for id in s.ids.iter().filter(|id| !initial.contains(id)) {
            for body in &s.served {
                assert_eq!(
                    served_id(body).as_ref(),
                    Some(id),
                    "at {:?} the TXT announced id {id} while an address served {body:?}",
                    s.at
                );
            }
        }
    }
}

/// The MX certificate: for `mail.ZONE` and `mx2.ZONE` (the second MX host of the tests is
/// the same Postfix).
fn mail_and_mx2(ca: &support::TestCa, mail: &str) -> TlsIdentity {
    let mx2 = mail.replacen("mail.", "mx2.", 1);
    ca.issue(&[mail, &mx2], 90)
}

/// The domain as if MTA-STS had never been set up: no policy file, no STS record.
fn fresh_domain(scene: &StsScene) {
    for i in 0..2 {
        std::fs::remove_file(scene.nginx.webroot(i).join(".well-known/mta-sts.txt")).unwrap();
    }
    let id = scene.policy.id();
    let (first, rest) = id.split_at(10);
    scene.lab.nsupdate_ok(&format!(
        "update delete _mta-sts.{}. TXT \"v=STSv1; id={first}\" \"{rest}\"",
        scene.zone
    ));
    support::poll_until("the STS record gone", Duration::from_secs(10), || {
        sts_ids(&scene.lab, &scene.zone).is_empty().then_some(())
    });
}

/// A policy change: with one webroot not written (its address keeps the old file), `run`
/// fails naming that address and the id stays; with both, the file is served everywhere
/// before the id changes, and a rerun changes nothing.
#[test]
fn a_policy_change_is_served_on_every_address_before_the_id_changes() {
    let scene = StsScene::start(Mode::Testing, mail_and_mx2, None);
    let dir = tempfile::tempdir().unwrap();
    let zone = scene.zone.clone();
    let old_id = scene.policy.id();
    let mut wanted = Wanted {
        webroots: &[0],
        ..Wanted::testing(86_400, vec![format!("mail.{zone}")])
    };
    let new = Policy::new(Mode::Testing, 86_400, &wanted.mx).unwrap();
    let config = write_config(&scene, dir.path(), &wanted);
    let started = Instant::now();
    let run = tlsa_run(&config, &["--propagation-timeout", "3"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&scene.nginx.addr(1).to_string()),
        "names the stale address: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("TXT id was not changed"),
        "{}",
        run.stderr
    );
    assert_eq!(sts_ids(&scene.lab, &zone), vec![old_id.clone()]);
    eprintln!("stale address refused in {:?}", started.elapsed());

    wanted.webroots = &[0, 1];
    let config = write_config(&scene, dir.path(), &wanted);
    let probe = Probe::start(&scene);
    let started = Instant::now();
    let run = tlsa_run(&config, &[]);
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let samples = probe.finish();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(sts_ids(&scene.lab, &zone), vec![new.id()]);
    assert!(
        txt_at(scene.lab.server_addr(), &format!("_mta-sts.{zone}."))
            .contains(&"v=spf1 -all".to_string()),
        "the other TXT record at the owner is kept"
    );
    assert!(samples.iter().any(|s| s.ids == [new.id()]));
    eprintln!(
        "policy change: {} probe samples, all ordered; run took {elapsed:?}",
        samples.len()
    );

    let again = tlsa_run(&config, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(!again.stdout.contains("done:"), "{}", again.stdout);

    // `tlsa status` tells the new policy and the old one senders may still hold (a day).
    let status = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("run tlsa status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!("served   id {} mode testing", new.id()))
            && text.contains(&format!("cached   id {old_id} mode testing"))
            && text.contains("last run recorded"),
        "{text}"
    );
}

/// `manage_mx`: a host enters the policy first and the MX RRset only once the policy that
/// did not list it may have expired from every cache (its last service + max_age 3 s); then
/// it leaves the MX RRset first and the policy one MX TTL later.
#[test]
fn an_mx_host_enters_after_cached_policies_expire_and_leaves_in_the_safe_order() {
    let scene = StsScene::start(Mode::Testing, mail_and_mx2, None);
    let zone = scene.zone.clone();
    let mail = format!("mail.{zone}");
    let mx2 = format!("mx2.{zone}");
    // mx2 is the same Postfix (its certificate names both).
    scene
        .lab
        .nsupdate_ok(&format!("update add {mx2}. 2 IN A 127.0.0.1"));
    fresh_domain(&scene);
    let dir = tempfile::tempdir().unwrap();
    let mut wanted = Wanted {
        manage_mx: true,
        ..Wanted::testing(3, vec![mail.clone()])
    };
    let config = write_config(&scene, dir.path(), &wanted);
    assert_eq!(tlsa_run(&config, &[]).code, Some(0));
    let only_mail = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    assert_eq!(sts_ids(&scene.lab, &zone), vec![only_mail.id()]);

    wanted.mx = vec![mail.clone(), mx2.clone()];
    let config = write_config(&scene, dir.path(), &wanted);
    let samples = sampled_wait_run(&scene, &config);
    assert_eq!(mx_hosts(&scene.lab, &zone), vec![mail.clone(), mx2.clone()]);
    let both = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    let last_old = samples
        .iter()
        .filter(|s| {
            s.served
                .iter()
                .any(|b| served_id(b) == Some(only_mail.id()))
        })
        .map(|s| s.at)
        .max()
        .expect("the old policy was seen served");
    let first_mx2 = first_at(&samples, "mx2 in the MX RRset", |s| s.mx.contains(&mx2));
    let gap = first_mx2.duration_since(last_old).unwrap_or_default();
    eprintln!(
        "mx2 entered the MX RRset {gap:?} after the last sample serving the policy without it (max_age 3 s); {} samples",
        samples.len()
    );
    assert_gap_at_least(gap, Duration::from_secs(3), &samples);
    assert!(
        samples
            .iter()
            .filter(|s| s.mx.contains(&mx2))
            .all(|s| s.ids == [both.id()]),
        "while mx2 is in the MX RRset, the announced policy lists it"
    );

    // Leaving: the MX RRset first, the policy after one MX TTL (2 s).
    wanted.mx = vec![mail.clone()];
    let config = write_config(&scene, dir.path(), &wanted);
    let samples = sampled_wait_run(&scene, &config);
    assert_eq!(mx_hosts(&scene.lab, &zone), vec![mail.clone()]);
    assert_eq!(sts_ids(&scene.lab, &zone), vec![only_mail.id()]);
    let mx2_gone = first_at(&samples, "the MX RRset without mx2", |s| {
        !s.mx.contains(&mx2)
    });
    let policy_without = first_at(&samples, "the policy without mx2 announced", |s| {
        s.ids == [only_mail.id()]
    });
    let gap = policy_without.duration_since(mx2_gone).unwrap_or_default();
    eprintln!("mx2 left the policy {gap:?} after it left the MX RRset (MX TTL 2 s)");
    assert_gap_at_least(gap, Duration::from_secs(2), &samples);

    // trust_id_refresh (weaker): mx2 enters one TXT TTL (2 s) after the id of a policy
    // listing it was announced.
    wanted.mx = vec![mail.clone(), mx2.clone()];
    wanted.trust_id_refresh = true;
    let config = write_config(&scene, dir.path(), &wanted);
    let samples = sampled_wait_run(&scene, &config);
    let announced = first_at(&samples, "the policy listing mx2 announced", |s| {
        s.ids == [both.id()]
    });
    let entered = first_at(&samples, "mx2 in the MX RRset", |s| s.mx.contains(&mx2));
    let gap = entered.duration_since(announced).unwrap_or_default();
    eprintln!(
        "trust_id_refresh: mx2 entered {gap:?} after its policy's id was announced (TXT TTL 2 s)"
    );
    assert_gap_at_least(gap, Duration::from_secs(2), &samples);
}

/// Leaving MTA-STS (RFC 8461 §8.3): mode none with a new id first; the TXT record and the
/// file only once every policy served before has expired (max_age 3 s).
#[test]
fn leaving_publishes_mode_none_then_removes_record_and_file_after_expiry() {
    let scene = StsScene::start(Mode::Testing, mail_and_mx2, None);
    let zone = scene.zone.clone();
    fresh_domain(&scene);
    let dir = tempfile::tempdir().unwrap();
    let mut wanted = Wanted::testing(3, vec![format!("mail.{zone}")]);
    let config = write_config(&scene, dir.path(), &wanted);
    assert_eq!(tlsa_run(&config, &[]).code, Some(0));
    wanted.leave = true;
    let config = write_config(&scene, dir.path(), &wanted);
    let probe = Probe::start(&scene);
    let started = Instant::now();
    let first = tlsa_run(&config, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first
            .stdout
            .contains("pending: remove the _mta-sts TXT record"),
        "{}",
        first.stdout
    );
    let none = Policy::new(Mode::None, 3, &wanted.mx).unwrap();
    assert_eq!(sts_ids(&scene.lab, &zone), vec![none.id()]);
    let run = tlsa_run(&config, &["--wait"]);
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let samples = probe.finish();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(sts_ids(&scene.lab, &zone).is_empty());
    assert!(
        txt_at(scene.lab.server_addr(), &format!("_mta-sts.{zone}."))
            .contains(&"v=spf1 -all".to_string())
    );
    for i in 0..2 {
        assert!(
            !scene
                .nginx
                .webroot(i)
                .join(".well-known/mta-sts.txt")
                .exists()
        );
    }
    assert!(
        elapsed >= Duration::from_secs(3),
        "removed no earlier than max_age after the last testing policy: {elapsed:?}"
    );
    assert!(samples.iter().any(|s| s.ids == [none.id()]));
    eprintln!("left MTA-STS in {elapsed:?}; {} samples", samples.len());
}

/// Mode enforce is held (mode none published, `run` says why) while the MX presents a
/// self-signed certificate (DANE-only); once it presents a CA-issued one, `run` announces
/// testing and then enforce (`enforce_after = 0`: no clean period to wait for).
#[test]
fn enforce_is_held_while_an_mx_is_self_signed_and_follows_testing_once_it_is_not() {
    let scene = StsScene::start(
        Mode::Testing,
        |_, mail| TlsIdentity::self_signed(&[mail], 90),
        None,
    );
    let zone = scene.zone.clone();
    let mail = format!("mail.{zone}");
    fresh_domain(&scene);
    let dir = tempfile::tempdir().unwrap();
    let wanted = Wanted {
        mode: "enforce",
        extra: "enforce_after = 0",
        ..Wanted::testing(3, vec![mail.clone()])
    };
    let config = write_config(&scene, dir.path(), &wanted);
    let none = Policy::new(Mode::None, 3, &wanted.mx).unwrap();

    // `tlsa plan` shows the policy it would serve, the steps in order and the hold; it
    // changes nothing.
    let plan = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(["plan", "--config"])
        .arg(&config)
        .output()
        .expect("run tlsa plan");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{text}");
    let expected = [
        format!("mta-sts {zone}: policy {}", none.id()),
        "    mode: none".to_string(),
        format!(
            "mta-sts {zone}: next step: write the policy file (id {})",
            none.id()
        ),
        format!("mta-sts {zone}: held: mode enforce needs a WebPKI-valid certificate"),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "{line:?} in:\n{text}");
    }
    assert!(sts_ids(&scene.lab, &zone).is_empty());
    assert!(
        !scene
            .nginx
            .webroot(0)
            .join(".well-known/mta-sts.txt")
            .exists()
    );

    let held = tlsa_run(&config, &[]);
    assert_eq!(held.code, Some(0), "a hold is no failure: {}", held.stderr);
    assert!(
        held.stdout
            .contains("held: mode enforce needs a WebPKI-valid certificate")
            && held.stdout.contains(&mail),
        "{}\n{}",
        held.stdout,
        held.stderr
    );
    assert_eq!(sts_ids(&scene.lab, &zone), vec![none.id()]);

    scene.postfix.install(&scene.ca.issue(&[&mail], 90));
    scene.postfix.reload();
    let enforce = tlsa_run(&config, &[]);
    assert_eq!(enforce.code, Some(0), "{}", enforce.stderr);
    let testing = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    let policy = Policy::new(Mode::Enforce, 3, &wanted.mx).unwrap();
    assert_eq!(sts_ids(&scene.lab, &zone), vec![policy.id()]);
    // Testing announced first, enforce only after it (in the same run: enforce_after = 0).
    let announced = |id: String| {
        enforce
            .stdout
            .find(&format!("done: publish TXT \"v=STSv1; id={id}\""))
            .unwrap_or_else(|| panic!("{id} not announced:\n{}", enforce.stdout))
    };
    assert!(announced(testing.id()) < announced(policy.id()));
    assert!(!enforce.stdout.contains("held:"), "{}", enforce.stdout);
}

/// Each fetch rule a sender applies, broken on the policy address in turn (redirect, 404,
/// `text/html`, a certificate for another name, an expired one, a self-signed one, a server
/// too slow for the 4 s a strict sender allows): `run` writes the new file to that address's
/// webroot, but the address does not serve it by the rules, so `run` fails naming the
/// address and the rule, and the announced id stays the old one (one run per case, in
/// parallel, each with its own state and webroot).
#[test]
fn run_does_not_change_the_id_while_an_address_breaks_a_fetch_rule() {
    use support::{Serve, Site, random_loopback_v4};
    let scene = StsScene::start(Mode::Testing, |ca, mail| ca.issue(&[mail], 90), None);
    let zone = scene.zone.clone();
    let old_id = scene.policy.id();
    let host = format!("mta-sts.{zone}");
    let good = scene.ca.issue(&[&host], 90);
    let any = String::new();
    let cases: Vec<(&str, TlsIdentity, Serve, &str)> = vec![
        ("redirect", good.clone(), Serve::Redirect, "redirect"),
        ("404", good.clone(), Serve::NotFound, "404"),
        (
            "text/html",
            good.clone(),
            Serve::Typed {
                body: any.clone(),
                content_type: "text/html".into(),
            },
            "text/html",
        ),
        (
            "wrong name",
            scene.ca.issue(&[&format!("www.{zone}")], 90),
            Serve::Policy(any.clone()),
            "certificate-host-mismatch",
        ),
        (
            "expired",
            scene.ca.issue_expired(&[&host]),
            Serve::Policy(any.clone()),
            "certificate-expired",
        ),
        (
            "self-signed",
            TlsIdentity::self_signed(&[&host], 90),
            Serve::Policy(any.clone()),
            "certificate-not-trusted",
        ),
        (
            "slow",
            good.clone(),
            Serve::Slow {
                body: any.clone(),
                bytes_per_second: 16,
            },
            "4 s",
        ),
    ];
    let sites: Vec<Site> = cases
        .iter()
        .map(|(_, identity, serve, _)| Site {
            ip: random_loopback_v4(),
            identity: identity.clone(),
            serve: serve.clone(),
        })
        .collect();
    let broken = support::Nginx::start(&host, &sites);
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|threads| {
        for (i, (what, _, _, named)) in cases.iter().enumerate() {
            let (scene, broken, dir) = (&scene, &broken, dir.path().join(format!("case-{i}")));
            threads.spawn(move || {
                std::fs::create_dir_all(&dir).unwrap();
                let addresses = format!("policy_addresses = [\"{}\"]", broken.addr(i));
                let wanted = Wanted {
                    webroots: &[],
                    extra: &addresses,
                    ..Wanted::testing(86_400, vec![format!("mail.{}", scene.zone)])
                };
                let config = write_config(scene, &dir, &wanted);
                // tlsa writes the broken site's webroot: only the rule keeps it unserved.
                let text = std::fs::read_to_string(&config).unwrap().replacen(
                    "webroots = []",
                    &format!("webroots = [{:?}]", broken.webroot(i).display().to_string()),
                    1,
                );
                std::fs::write(&config, text).unwrap();
                let run = tlsa_run(&config, &["--propagation-timeout", "2"]);
                assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
                let address = broken.addr(i).to_string();
                assert!(
                    run.stderr.contains(&address) && run.stderr.contains(named),
                    "{what}: names {address} and {named:?}: {}",
                    run.stderr
                );
                assert!(
                    run.stderr.contains("TXT id was not changed"),
                    "{what}: {}",
                    run.stderr
                );
            });
        }
    });
    assert_eq!(sts_ids(&scene.lab, &zone), vec![old_id]);
}

/// Without `manage_mx`, an MX host added to DNS by someone else that the served policy does
/// not match is an alarm: `run` exits 1 naming the host and the policy, changes nothing, and
/// `status` shows the alarm; once the policy lists the host, the alarm is gone. A host
/// listed ahead of DNS gets a note saying from when DNS may list it.
#[test]
fn an_mx_the_served_policy_does_not_match_is_an_alarm() {
    let scene = StsScene::start(Mode::Testing, mail_and_mx2, None);
    let zone = scene.zone.clone();
    let mail = format!("mail.{zone}");
    let mx2 = format!("mx2.{zone}");
    fresh_domain(&scene);
    let dir = tempfile::tempdir().unwrap();
    let mut wanted = Wanted::testing(3, vec![mail.clone()]);
    let config = write_config(&scene, dir.path(), &wanted);
    assert_eq!(tlsa_run(&config, &[]).code, Some(0));
    let only_mail = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    assert_eq!(sts_ids(&scene.lab, &zone), vec![only_mail.id()]);

    scene.lab.nsupdate_ok(&format!(
        "update add {mx2}. 2 IN A 127.0.0.1\nupdate add {zone}. 2 IN MX 20 {mx2}."
    ));
    support::poll_until("mx2 in the MX RRset", Duration::from_secs(10), || {
        mx_hosts(&scene.lab, &zone).contains(&mx2).then_some(())
    });
    let alarm = tlsa_run(&config, &[]);
    assert_eq!(alarm.code, Some(1), "{}", alarm.stderr);
    for text in [&alarm.stdout, &alarm.stderr] {
        assert!(
            text.contains("ALARM") && text.contains(&mx2) && text.contains(&only_mail.id()),
            "{text}"
        );
    }
    assert_eq!(sts_ids(&scene.lab, &zone), vec![only_mail.id()]);
    assert!(mx_hosts(&scene.lab, &zone).contains(&mx2), "DNS left alone");
    let status = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("run tlsa status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(": alarm: ") && text.contains(&mx2),
        "status shows the alarm:\n{text}"
    );

    wanted.mx = vec![mail.clone(), mx2.clone()];
    let config = write_config(&scene, dir.path(), &wanted);
    let fixed = tlsa_run(&config, &[]);
    assert_eq!(fixed.code, Some(0), "{}", fixed.stderr);
    assert!(!fixed.stdout.contains("ALARM"), "{}", fixed.stdout);
    let both = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    assert_eq!(sts_ids(&scene.lab, &zone), vec![both.id()]);

    // A host the operator will add: the policy lists it first, and `run` says from when
    // DNS may list it (once the policy without it, max_age 3 s, may have expired).
    let mx3 = format!("mx3.{zone}");
    wanted.mx = vec![mail.clone(), mx2.clone(), mx3.clone()];
    let config = write_config(&scene, dir.path(), &wanted);
    let ahead = tlsa_run(&config, &[]);
    assert_eq!(ahead.code, Some(0), "{}", ahead.stderr);
    assert!(
        ahead.stdout.contains(&format!(
            "note: an MX host matching {mx3} may enter the MX RRset from"
        )),
        "{}",
        ahead.stdout
    );
    assert!(
        !mx_hosts(&scene.lab, &zone).contains(&mx3),
        "DNS left alone"
    );
}

/// An RFC 8460 report from one sender for `domain`'s MTA-STS policy, dated today (UTC),
/// with `failed` sessions of `result` (none when 0).
fn sts_report(domain: &str, id: &str, successful: u64, failed: u64, result: &str) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let details = match failed {
        0 => String::new(),
        n => format!(
            r#","failure-details":[{{"result-type":"{result}","sending-mta-ip":"192.0.2.7","receiving-mx-hostname":"mail.{domain}","failed-session-count":{n}}}]"#
        ),
    };
    format!(
        r#"{{"organization-name":"Lab Sender","date-range":{{"start-datetime":"{today}T00:00:00Z","end-datetime":"{today}T23:59:59Z"}},"contact-info":"tlsrpt@sender.example","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: testing"],"policy-domain":"{domain}","mx-host":["mail.{domain}"]}},"summary":{{"total-successful-session-count":{successful},"total-failure-session-count":{failed}}}{details}}}]}}"#
    )
}

fn import_report(config: &Path, dir: &Path, name: &str, report: &str) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, report).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(["tlsrpt", "import", "--config"])
        .arg(config)
        .arg(&file)
        .output()
        .expect("run tlsa tlsrpt import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `enforce_clean_reports`: enforce waits for the senders' TLS-RPT reports — held with no
/// report, held naming the failure when today's report has an `sts-webpki-invalid`
/// failure; with a store holding a clean report for today instead, enforce is published.
#[test]
fn enforce_waits_for_clean_tls_reports() {
    let scene = StsScene::start(Mode::Testing, |ca, mail| ca.issue(&[mail], 90), None);
    let zone = scene.zone.clone();
    let mail = format!("mail.{zone}");
    fresh_domain(&scene);
    let wanted = Wanted {
        mode: "enforce",
        extra: "enforce_after = 0\nenforce_clean_reports = true",
        ..Wanted::testing(3, vec![mail.clone()])
    };
    let testing = Policy::new(Mode::Testing, 3, &wanted.mx).unwrap();
    let enforce = Policy::new(Mode::Enforce, 3, &wanted.mx).unwrap();

    let failing_dir = tempfile::tempdir().unwrap();
    let config = write_config(&scene, failing_dir.path(), &wanted);
    let none_yet = tlsa_run(&config, &[]);
    assert_eq!(none_yet.code, Some(0), "{}", none_yet.stderr);
    assert!(
        none_yet
            .stdout
            .contains("held: mode enforce needs a TLS-RPT report"),
        "{}",
        none_yet.stdout
    );
    assert_eq!(sts_ids(&scene.lab, &zone), vec![testing.id()]);
    import_report(
        &config,
        failing_dir.path(),
        "failing",
        &sts_report(&zone, "r-fail", 5, 3, "sts-webpki-invalid"),
    );
    let failing = tlsa_run(&config, &[]);
    assert_eq!(failing.code, Some(0), "{}", failing.stderr);
    assert!(
        failing
            .stdout
            .contains("held: mode enforce needs enforce_after of TLS-RPT reports")
            && failing.stdout.contains("sts-webpki-invalid × 3"),
        "{}",
        failing.stdout
    );
    assert_eq!(sts_ids(&scene.lab, &zone), vec![testing.id()]);

    // Another state directory (its own history and store): a clean report of today.
    let clean_dir = tempfile::tempdir().unwrap();
    let config = write_config(&scene, clean_dir.path(), &wanted);
    import_report(
        &config,
        clean_dir.path(),
        "clean",
        &sts_report(&zone, "r-clean", 12, 0, ""),
    );
    let clean = tlsa_run(&config, &[]);
    assert_eq!(clean.code, Some(0), "{}", clean.stderr);
    assert!(!clean.stdout.contains("held:"), "{}", clean.stdout);
    assert_eq!(sts_ids(&scene.lab, &zone), vec![enforce.id()]);
}
