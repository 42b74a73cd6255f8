//! The roll engine with a real ACME CA (pebble) and a real ACME client (certbot) against the
//! real lab (BIND signing inline, unbound validating), driven as an operator would: tlsa
//! installed by `scripts/install`, certbot running the installed hook script (hash-slinger's
//! `tlsa` first in PATH), `tlsa run --wait` from the "timer".
//! Plus the crash-safety test: a planned roll SIGKILLed after each of its steps in turn.
//!
//! Each test has its own lab and pebble, TTLs of 2 s and a margin of 0. A [`SafetyProbe`]
//! samples every 100 ms the key in the deploy target against the RRset the authoritative
//! server serves and the RRset a caching validating resolver returns; every test requires
//! that it never saw the deployed key missing from either.

use crate::support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{
    Acme, DeployHook, HASH_SLINGER_TLSA, Lab, MAIL_OWNER, ProbeLog, RenewKey, Resolver,
    SafetyProbe, certbot_source, deployed_key, path_with_hash_slinger_first, self_signed_source,
    served, tlsa, write_roll_config,
};
use tlsa::roll::state::{self, State};

/// How long a killed roll's child may go without printing a progress line.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(90);

/// A lab, pebble and certbot, and a config whose set `mail` takes its certificates from
/// certbot's lineage for `mail.ZONE` and deploys them to `DIR/live`, with a reload command
/// that appends a line to `DIR/reloads` each time it runs.
struct Scene {
    // Field order is drop order: servers stop before the directory goes.
    lab: Lab,
    acme: Acme,
    domain: String,
    lineage: PathBuf,
    config: PathBuf,
    hook: DeployHook,
    dir: tempfile::TempDir,
}

impl Scene {
    fn start() -> Self {
        let lab = Lab::start();
        let acme = Acme::start();
        let dir = tempfile::tempdir().unwrap();
        let domain = format!("mail.{}", lab.zone().trim_end_matches('.'));
        let lineage = acme.lineage(&domain);
        let record = format!("date +%s.%N >> '{}'", dir.path().join("reloads").display());
        let config = write_roll_config(
            &lab,
            dir.path(),
            &certbot_source(&lineage),
            &["sh", "-c", &record],
        );
        let hook = DeployHook::tlsa(dir.path(), &config);
        Scene {
            lab,
            acme,
            domain,
            lineage,
            config,
            hook,
            dir,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How many times the reload command ran.
    fn reloads(&self) -> usize {
        std::fs::read_to_string(self.dir().join("reloads"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    fn state(&self) -> State {
        read_state(self.dir())
    }

    /// A caching validating resolver of the lab zone that only the probe asks, and the
    /// probe watching the deploy target against it and the authoritative server.
    fn probe(&self) -> (Resolver, SafetyProbe) {
        probe(&self.lab, self.dir())
    }

    /// The lineage's current certificate: (key, leaf fingerprint).
    fn lineage_cert(&self) -> (String, String) {
        cert_of(&self.lineage.join("fullchain.pem"))
    }

    fn deployed_cert(&self) -> (String, String) {
        cert_of(&self.dir().join("live/fullchain.pem"))
    }

    /// Issues the lineage's first certificate (no hook: tlsa is not set up yet), then lets
    /// the first `tlsa run --wait` adopt it.
    fn adopted(&self) {
        self.acme.certonly(&self.domain, None);
        assert!(tlsa(&self.config, &["run", "--wait"]).status.success());
        assert_eq!(deployed_key(self.dir()), self.lineage_cert().0);
    }
}

fn read_state(dir: &Path) -> State {
    state::load_dir(&dir.join("state")).expect("the state files parse")
}

fn probe(lab: &Lab, dir: &Path) -> (Resolver, SafetyProbe) {
    let witness = lab.start_resolver_with_ds(&lab.ds_records().join("\n"));
    witness.wait_validated(lab.zone());
    let probe = SafetyProbe::start(
        dir.join("live"),
        lab.name(MAIL_OWNER),
        lab.server_addr(),
        witness.addr(),
    );
    (witness, probe)
}

/// Lets the probe take a few more samples (bounded), then stops it.
fn finish(probe: SafetyProbe) -> ProbeLog {
    let seen = probe.log().samples;
    support::poll_until("the probe's last samples", Duration::from_secs(20), || {
        (probe.log().samples >= seen + 3).then_some(())
    });
    let log = probe.stop();
    eprintln!(
        "probe: {} samples ({} set aside), deployed keys in order: {:?}, violations: {}",
        log.samples,
        log.skipped,
        log.deployed
            .iter()
            .map(|(at, key)| format!("{:.1}s {}", at.as_secs_f64(), &key[..16]))
            .collect::<Vec<_>>(),
        log.violations.len()
    );
    log
}

/// (key, fingerprint of the leaf certificate) of the chain at `chain`, as the engine sees it.
fn cert_of(chain: &Path) -> (String, String) {
    let facts = tlsa::roll::files::cert_facts(chain)
        .unwrap()
        .unwrap_or_else(|| panic!("no certificate at {}", chain.display()));
    (facts.key.id, facts.fingerprint)
}

/// The TLSA RRset served by the authoritative server, with TTLs: `TTL RDATA` lines.
fn served_rrset(lab: &Lab) -> BTreeSet<String> {
    lab.query_server(&lab.name(MAIL_OWNER), "TLSA")
        .records("TLSA")
        .map(|r| format!("{} {}", r.ttl, r.rdata.to_lowercase()))
        .collect()
}

fn keys(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|k| k.to_string()).collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When `path` was last written, in Unix seconds.
fn mtime(path: &Path) -> f64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A key's `safe_at`, in Unix seconds.
fn safe_at(state: &State, key: &str) -> f64 {
    state.sets["mail"].keys[key]
        .safe_at
        .unwrap_or_else(|| panic!("no safe_at for key {key}: {state:#?}"))
        .unix_ms() as f64
        / 1000.0
}

#[test]
fn an_existing_certbot_lineage_is_adopted_deployed_once_safe_and_a_rerun_changes_nothing() {
    let started = Instant::now();
    let scene = Scene::start();
    let setup = started.elapsed();
    let issued = scene.acme.certonly(&scene.domain, None);
    let (live, lineage_fingerprint) = scene.lineage_cert();
    assert!(
        served(&scene.lab).is_empty(),
        "nothing published before tlsa"
    );
    let (_witness, probe) = scene.probe();

    // First run: publishes the live key and a generated next key, waits out propagation
    // and caches, deploys the lineage's certificate.
    let run_started = Instant::now();
    let first = tlsa(&scene.config, &["run", "--wait"]);
    let run_took = run_started.elapsed();
    assert!(first.status.success());
    let state = scene.state();
    let next = state.sets["mail"].next_key.clone().expect("a next key");
    assert_ne!(next, live);
    assert_eq!(
        served(&scene.lab),
        keys(&[&live, &next]),
        "3 1 1 for live and next"
    );
    for key in [&live, &next] {
        let k = &state.sets["mail"].keys[key];
        assert!(
            k.propagated_at.is_some() && k.safe_at.is_some(),
            "{key}: {k:?}"
        );
    }
    assert_eq!(
        scene.deployed_cert(),
        (live.clone(), lineage_fingerprint),
        "the lineage's certificate deployed"
    );
    for file in ["fullchain.pem", "privkey.pem"] {
        let read = |dir: &Path| std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            read(&scene.dir().join("live")),
            read(&scene.lineage),
            "{file}"
        );
    }
    let deployed_at = mtime(&scene.dir().join("live/fullchain.pem"));
    let live_safe = safe_at(&state, &live);
    assert!(
        deployed_at >= live_safe,
        "deployed at {deployed_at}, safe at {live_safe}"
    );
    assert_eq!(scene.reloads(), 1);

    // Rerun: no step, no DNS change, nothing redeployed.
    let rrset = served_rrset(&scene.lab);
    let again = tlsa(&scene.config, &["run"]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("mail: 0 step(s) done; nothing pending")
    );
    assert_eq!(served_rrset(&scene.lab), rrset);
    assert_eq!(
        scene.state().sets["mail"].timeline,
        state.sets["mail"].timeline
    );
    assert_eq!(mtime(&scene.dir().join("live/fullchain.pem")), deployed_at);
    assert_eq!(scene.reloads(), 1);

    let log = finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    assert!(log.samples >= 5, "the probe sampled the run: {log:?}");
    eprintln!(
        "timings: lab+pebble {:.1} s, certbot issue {:.1} s, first run {:.1} s (deployed {:.2} s after safe_at), total {:.1} s",
        setup.as_secs_f64(),
        issued.elapsed.as_secs_f64(),
        run_took.as_secs_f64(),
        deployed_at - live_safe,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_renewal_with_the_same_key_is_deployed_at_once_without_dns_change() {
    let started = Instant::now();
    let scene = Scene::start();
    scene.adopted();
    let (live, before_fingerprint) = scene.deployed_cert();
    let rrset = served_rrset(&scene.lab);
    let (_witness, probe) = scene.probe();

    let renewed = scene
        .acme
        .renew(&scene.domain, RenewKey::Reuse, Some(scene.hook.path()));
    // Checked at once: the hook did its work before certbot returned.
    let (hook_log, hook_stderr) = (scene.hook.log(), scene.hook.stderr());
    eprintln!("deploy hook:\n{hook_log}{hook_stderr}");
    assert_eq!(scene.hook.exits(), [0], "{hook_log}");
    // Deployed, then verified like every deploy (the first one and same-key renewals too).
    assert!(
        hook_log.contains("tlsa: mail: 2 step(s) done")
            && hook_log.contains("done: verify that every address presents key"),
        "{hook_log}"
    );
    let (lineage_key, lineage_fingerprint) = scene.lineage_cert();
    assert_eq!(lineage_key, live, "certbot kept the key");
    assert_ne!(
        lineage_fingerprint, before_fingerprint,
        "certbot issued a new certificate"
    );
    assert_eq!(
        scene.deployed_cert(),
        (live.clone(), lineage_fingerprint),
        "the renewal is deployed"
    );
    assert_eq!(scene.reloads(), 2, "the server was reloaded");
    assert_eq!(served_rrset(&scene.lab), rrset, "no DNS change");
    let timeline = &scene.state().sets["mail"].timeline;
    let last_two: Vec<&str> = timeline[timeline.len() - 2..]
        .iter()
        .map(|e| e.what.as_str())
        .collect();
    assert!(
        last_two[0].starts_with("deploy the renewed certificate (same key")
            && last_two[1].starts_with("verify that every address presents key"),
        "{timeline:?}"
    );

    let log = finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    eprintln!(
        "timings: certbot renew with the hook {:.1} s, total {:.1} s",
        renewed.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_installed_hook_linked_into_certbots_deploy_hooks_publishes_a_new_key_despite_hash_slinger() {
    let started = Instant::now();
    let mut scene = Scene::start();
    scene.adopted();
    let (old, _) = scene.deployed_cert();

    // The README's registration: one link in certbot's deploy-hook directory (run after
    // every renewal of any lineage; the hook acts on the sets of the renewed one).
    let hooks_dir = scene.acme.deploy_hooks_dir();
    std::fs::create_dir_all(&hooks_dir).unwrap();
    let installed = scene.hook.installed();
    std::os::unix::fs::symlink(
        installed.hook("certbot-deploy-hook"),
        hooks_dir.join("tlsa"),
    )
    .unwrap();
    // certbot's environment on a Debian host with both installed: `tlsa` in PATH is
    // hash-slinger's, which fails on `tlsa hook certbot` ("unrecognized arguments").
    let path = path_with_hash_slinger_first(&installed.prefix().join("sbin"));
    let which = Command::new("sh")
        .args(["-c", "command -v tlsa"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&which.stdout).trim(),
        HASH_SLINGER_TLSA
    );
    scene.acme.set_env("PATH", &path);
    scene
        .acme
        .set_env("TLSA_CONFIG", scene.config.to_str().unwrap());

    let renewed = scene.acme.renew(&scene.domain, RenewKey::New, None);
    let (new, _) = scene.lineage_cert();
    assert_ne!(new, old, "certbot made a new key");
    // Published by the hook before certbot returned; kept out of service until safe.
    let output = format!("{}{}", renewed.stdout, renewed.stderr);
    assert!(
        served(&scene.lab).contains(&new),
        "the new key is published: {:?}\n{output}",
        served(&scene.lab)
    );
    assert_eq!(
        scene.deployed_cert().0,
        old,
        "not deployed before it is safe"
    );
    assert!(!output.contains("unrecognized arguments"), "{output}");
    // The timer's run deploys it once safe.
    assert!(tlsa(&scene.config, &["run", "--wait"]).status.success());
    assert_eq!(scene.deployed_cert().0, new);
    eprintln!(
        "timings: certbot renew through the linked hook {:.1} s, total {:.1} s",
        renewed.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_surprise_new_key_is_published_at_once_and_deployed_only_once_safe() {
    let started = Instant::now();
    let scene = Scene::start();
    scene.adopted();
    let old = deployed_key(scene.dir());
    let next = scene.state().sets["mail"].next_key.clone().unwrap();
    let (_witness, probe) = scene.probe();

    let renew_started = unix_now();
    let renewed = scene
        .acme
        .renew(&scene.domain, RenewKey::New, Some(scene.hook.path()));
    let (hook_log, hook_stderr) = (scene.hook.log(), scene.hook.stderr());
    eprintln!("deploy hook:\n{hook_log}{hook_stderr}");
    let (new, _) = scene.lineage_cert();
    assert!(
        new != old && new != next,
        "certbot made a key nobody prepared"
    );
    assert_eq!(scene.hook.exits(), [0], "{hook_log}");
    // certbot's default: handled safely by the gated deploy, so a notice, never an alarm.
    assert!(
        hook_stderr.contains("tlsa: set mail: notice: the ACME client brought a new key")
            && hook_stderr.contains("not pre-published"),
        "a notice on stderr about the unprepared key: {hook_stderr}"
    );
    assert!(!hook_stderr.contains("ALARM"), "no alarm: {hook_stderr}");
    // Published at once (and propagated: the hook waited for that), not deployed.
    assert_eq!(served(&scene.lab), keys(&[&old, &new, &next]));
    assert_eq!(
        deployed_key(scene.dir()),
        old,
        "the previous certificate stays in service"
    );
    let new_safe = safe_at(&scene.state(), &new);
    let published_after = new_safe - renew_started;

    // The timer's run: deploys once safe, verifies, retires the old key.
    let run_started = Instant::now();
    let run = tlsa(&scene.config, &["run", "--wait"]);
    let run_took = run_started.elapsed();
    assert!(run.status.success());
    assert!(
        !String::from_utf8_lossy(&run.stderr).contains("ALARM"),
        "no alarm in the timer's run either"
    );
    assert_eq!(deployed_key(scene.dir()), new);
    let deployed_at = mtime(&scene.dir().join("live/fullchain.pem"));
    assert!(
        deployed_at >= new_safe,
        "deployed at {deployed_at}, before the new key was safe at {new_safe}"
    );
    assert_eq!(
        served(&scene.lab),
        keys(&[&new, &next]),
        "old key retired, next kept"
    );
    assert_eq!(scene.reloads(), 2);
    let state = scene.state();
    assert_eq!(
        state.sets["mail"].verified.as_ref().map(|v| &v.key),
        Some(&new)
    );
    assert_eq!(
        state.sets["mail"]
            .keys
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        keys(&[&new, &next])
    );

    let log = finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    let order: Vec<&str> = log.deployed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        order,
        [old.as_str(), new.as_str()],
        "the probe saw the switch"
    );
    eprintln!(
        "timings: certbot renew --new-key with the hook {:.1} s (safe_at {:.2} s after it began), \
         run --wait {:.1} s, deployed {:.2} s after safe_at, total {:.1} s",
        renewed.elapsed.as_secs_f64(),
        published_after,
        run_took.as_secs_f64(),
        deployed_at - new_safe,
        started.elapsed().as_secs_f64()
    );
}

/// What one killed (or finally unkilled) planned roll did.
struct KilledRoll {
    /// Its progress lines, in order.
    lines: Vec<String>,
    /// The progress line after which the roll was killed; `None`: it completed.
    killed_after: Option<String>,
    took: Duration,
}

/// Whether a progress line announces a wait rather than a step.
fn is_wait(line: &str) -> bool {
    line.contains(": waiting until ")
}

/// `tlsa ARGS --wait -c CONFIG` as a child, SIGKILLed as soon as `kill_now(lines so far)`
/// says so, checked at each progress line (`tlsa: set …`: each step and each wait announces
/// itself before it starts) and every 10 ms in between.
fn run_killed(
    config: &Path,
    args: &[&str],
    stdout: &Path,
    mut kill_now: impl FnMut(&[String]) -> bool,
) -> KilledRoll {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(args)
        .args(["--wait", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut killed = false;
    let mut quiet = Duration::ZERO;
    loop {
        match received.recv_timeout(Duration::from_millis(10)) {
            Ok(line) => {
                eprintln!("{args:?}: {line}");
                quiet = Duration::ZERO;
                if line.starts_with("tlsa: set ") {
                    lines.push(line);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                quiet += Duration::from_millis(10);
                if quiet > PROGRESS_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{args:?}: no progress line for {PROGRESS_TIMEOUT:?}");
                }
            }
        }
        if kill_now(&lines) {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let killed_after = match (killed, status.signal()) {
        (true, Some(libc::SIGKILL)) => Some(lines.last().cloned().unwrap_or_default()),
        // Killed as it exited on its own after its last line: it completed.
        (true, None) if status.success() => None,
        (false, _) => {
            assert!(status.success(), "{args:?} failed: {status}");
            None
        }
        _ => panic!("{args:?}: unexpected end {status}"),
    };
    KilledRoll {
        lines,
        killed_after,
        took: started.elapsed(),
    }
}

/// The crash-safety test's world: a self-signed set whose reload command can be held (while
/// `DIR/hold` exists it signals `DIR/held` and waits, giving up if tlsa dies) and logs each
/// reload that completes for a live tlsa in `DIR/reloads`.
struct Crashes {
    lab: Lab,
    config: PathBuf,
    /// The same config with `manual = ["retire"]`.
    manual_retire: PathBuf,
    dir: tempfile::TempDir,
}

impl Crashes {
    fn start() -> Self {
        let lab = Lab::start();
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let reload = format!(
            "if [ -e '{hold}' ]; then touch '{held}'; \
             while [ -e '{hold}' ] && kill -0 $PPID 2>/dev/null; do sleep 0.02; done; \
             kill -0 $PPID 2>/dev/null || exit 1; fi; date +%s.%N >> '{reloads}'",
            hold = file("hold"),
            held = file("held"),
            reloads = file("reloads"),
        );
        let config = write_roll_config(
            &lab,
            dir.path(),
            &self_signed_source(&lab),
            &["sh", "-c", &reload],
        );
        let text = std::fs::read_to_string(&config).unwrap();
        let manual_retire = dir.path().join("tlsa-manual-retire.toml");
        std::fs::write(
            &manual_retire,
            text.replace("margin = 0", "margin = 0\nmanual = [\"retire\"]"),
        )
        .unwrap();
        Crashes {
            lab,
            config,
            manual_retire,
            dir,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// When the last reload that completed for a live tlsa ended (Unix seconds).
    fn last_reload(&self) -> f64 {
        let text = std::fs::read_to_string(self.dir().join("reloads")).unwrap_or_default();
        text.lines()
            .last()
            .map_or(0.0, |l| l.trim().parse().unwrap())
    }

    /// After a roll to `target` away from `old`, and the rerun: the roll is complete and
    /// nothing is lost, doubled or stale.
    fn check_complete(&self, round: &str, old: &str, target: &str, probe: &SafetyProbe) {
        let after = read_state(self.dir());
        let set = &after.sets["mail"];
        let live = deployed_key(self.dir());
        let next = set.next_key.clone().expect("a next key");
        assert_eq!(
            live, target,
            "{round}: the roll to the pre-published next key completed"
        );
        assert!(next != live && next != old, "{round}: a fresh next key");
        assert_eq!(
            served(&self.lab),
            keys(&[&live, &next]),
            "{round}: exactly live + one next"
        );
        let known: BTreeSet<String> = set.keys.keys().cloned().collect();
        assert_eq!(
            known,
            keys(&[&live, &next]),
            "{round}: state keys {:#?}",
            set.keys
        );
        let installed = mtime(&self.dir().join("live/fullchain.pem"));
        assert!(
            self.last_reload() >= installed,
            "{round}: the server was not reloaded after the certificate was installed at {installed} (last reload {})",
            self.last_reload()
        );
        let violations = probe.log().violations;
        assert!(violations.is_empty(), "{round}: {violations:#?}");
    }
}

/// A planned roll (`tlsa rollover --wait`) SIGKILLed right after its 1st, 2nd, … progress
/// line until one completes unkilled, then killed inside its deploy step (during the reload,
/// after the new files are in place) and, exactly reproduced, right after its retire's
/// UPDATE; each time `tlsa run --wait` must complete the roll safely.
#[test]
fn a_planned_roll_killed_at_each_step_completes_on_rerun_safely() {
    let started = Instant::now();
    let world = Crashes::start();
    let dir = world.dir();
    let (_witness, probe) = probe(&world.lab, dir);
    assert!(tlsa(&world.config, &["run", "--wait"]).status.success());
    // One roll first, so that each round starts like the next: right after a roll, its
    // fresh next key not yet safe (the roll's first progress line is then the wait).
    assert!(
        tlsa(&world.config, &["rollover", "--wait"])
            .status
            .success()
    );

    let mut report: Vec<String> = Vec::new();
    let mut killed_kinds = BTreeSet::new();
    let rerun = |round: &str| {
        let rerun_started = Instant::now();
        let rerun = tlsa(&world.config, &["run", "--wait"]);
        assert!(rerun.status.success(), "{round}: the rerun failed");
        rerun_started.elapsed()
    };
    let (mut n, mut retries) = (1, 0);
    loop {
        assert!(n <= 20, "a planned roll should not take 20 progress lines");
        let old = deployed_key(dir);
        let target = read_state(dir).sets["mail"].next_key.clone().unwrap();
        let out = dir.join(format!("rollover-{n}.out"));
        let roll = run_killed(&world.config, &["rollover"], &out, |lines| lines.len() >= n);
        let round = format!("round {n}");
        let rerun_took = match &roll.killed_after {
            Some(_) => rerun(&round),
            None => Duration::ZERO,
        };
        world.check_complete(&round, &old, &target, &probe);
        let line = match &roll.killed_after {
            Some(line) => format!("killed after {line:?}"),
            None => "completed unkilled".into(),
        };
        report.push(format!(
            "{round}: {line}: roll {:.1} s, rerun {:.1} s",
            roll.took.as_secs_f64(),
            rerun_took.as_secs_f64()
        ));
        let Some(line) = roll.killed_after else { break };
        let kind = line
            .splitn(3, ": ")
            .nth(2)
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or_default();
        killed_kinds.insert(if is_wait(&line) {
            "waiting".to_string()
        } else {
            kind.to_string()
        });
        // On a slow moment the fresh next key may already be safe when the roll starts: no
        // wait line, so this round killed one step later than planned. Try it again.
        if !roll.lines.first().is_some_and(|l| is_wait(l)) && retries < 2 {
            retries += 1;
            report.push(format!("{round}: no wait before the roll: once more"));
            continue;
        }
        (n, retries) = (n + 1, 0);
    }

    // Killed inside the deploy step: the new files are in place, the reload is running.
    let old = deployed_key(dir);
    let target = read_state(dir).sets["mail"].next_key.clone().unwrap();
    std::fs::write(dir.join("hold"), "").unwrap();
    let held = dir.join("held");
    let roll = run_killed(
        &world.config,
        &["rollover"],
        &dir.join("rollover-reload.out"),
        |_| held.exists(),
    );
    std::fs::remove_file(dir.join("hold")).unwrap();
    assert!(roll.killed_after.is_some(), "killed during the reload");
    assert_eq!(
        deployed_key(dir),
        target,
        "the new files were in place when killed"
    );
    let rerun_took = rerun("killed during the reload");
    world.check_complete("killed during the reload", &old, &target, &probe);
    report.push(format!(
        "killed during the deploy's reload: roll {:.1} s, rerun {:.1} s",
        roll.took.as_secs_f64(),
        rerun_took.as_secs_f64()
    ));

    // Killed right after the retire's UPDATE, before the state is saved: the roll stops
    // before the (manual) retire with its state saved, exactly what such a kill leaves
    // behind once the retire's change is in DNS; the retire runs, and that state comes back.
    let old = deployed_key(dir);
    let target = read_state(dir).sets["mail"].next_key.clone().unwrap();
    let stopped = tlsa(&world.manual_retire, &["rollover", "--wait"]);
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("is manual"));
    let state_file = state::set_file(&dir.join("state"), "mail");
    let before_retire = std::fs::read(&state_file).unwrap();
    let retire = tlsa(&world.manual_retire, &["run", "--confirm", "--wait"]);
    assert!(retire.status.success());
    assert!(
        !served(&world.lab).contains(&old),
        "the retire's change is in DNS"
    );
    std::fs::write(&state_file, before_retire).unwrap();
    let rerun_took = rerun("killed after the retire's UPDATE");
    world.check_complete("killed after the retire's UPDATE", &old, &target, &probe);
    report.push(format!(
        "killed after the retire's UPDATE: rerun {:.1} s",
        rerun_took.as_secs_f64()
    ));

    let log = finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    for kind in ["deploy", "generate", "verify", "retire", "propagation"] {
        assert!(
            killed_kinds.contains(kind),
            "no round was killed in a {kind} step: {report:#?}"
        );
    }
    eprintln!(
        "kill rounds:\n  {}\nkilled in: {killed_kinds:?}; probe {} samples; total {:.1} s",
        report.join("\n  "),
        log.samples,
        started.elapsed().as_secs_f64()
    );
}

/// The staged-key setup for certbot users: two lineages for the same name, both kept
/// renewed with `--reuse-key`; the one not in service holds the pre-published next key, so
/// a planned roll deploys at once; afterwards the old lineage gets a new key through the hook,
/// which publishes it and retires the old key in one change.
#[test]
fn a_certbot_pair_rolls_to_the_other_lineage_at_once_and_retires_the_old_key_on_its_renewal() {
    let started = Instant::now();
    let lab = Lab::start();
    let acme = Acme::start();
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("mail.{}", lab.zone().trim_end_matches('.'));
    acme.certonly(&domain, None);
    let args = [
        "certonly",
        "--standalone",
        "--cert-name",
        "mail-next",
        "-d",
        &domain,
        "--key-type",
        "ecdsa",
    ];
    acme.certbot_ok(&args.map(std::ffi::OsStr::new));
    let (first, second) = (acme.lineage(&domain), acme.lineage("mail-next"));
    let source = format!(
        r#"{{ certbot-pair = ["{}", "{}"] }}"#,
        first.display(),
        second.display()
    );
    let record = format!("date +%s.%N >> '{}'", dir.path().join("reloads").display());
    let config = write_roll_config(&lab, dir.path(), &source, &["sh", "-c", &record]);
    let hook = DeployHook::tlsa(dir.path(), &config);
    let key_a = cert_of(&first.join("fullchain.pem")).0;
    let key_b = cert_of(&second.join("fullchain.pem")).0;
    assert_ne!(key_a, key_b);

    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    assert_eq!(deployed_key(dir.path()), key_a, "the first lineage is live");
    assert_eq!(served(&lab), keys(&[&key_a, &key_b]), "the other is next");
    assert!(
        read_state(dir.path()).sets["mail"].next_key.is_none(),
        "tlsa made no key"
    );

    let (_witness, probe) = probe(&lab, dir.path());
    let roll = tlsa(&config, &["rollover", "--wait"]);
    assert!(roll.status.success());
    assert_eq!(
        deployed_key(dir.path()),
        key_b,
        "rolled to the other lineage"
    );
    let stderr = String::from_utf8_lossy(&roll.stderr);
    assert!(
        !stderr.contains("waiting until"),
        "the next key was safe long before: no wait at deploy time\n{stderr}"
    );

    // The old lineage gets a new key; the hook publishes it and retires the old key.
    acme.renew(&domain, RenewKey::New, Some(hook.path()));
    assert_eq!(hook.exits(), [0], "{}{}", hook.log(), hook.stderr());
    let key_a2 = cert_of(&first.join("fullchain.pem")).0;
    assert_ne!(key_a2, key_a);
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    assert_eq!(served(&lab), keys(&[&key_b, &key_a2]));
    assert_eq!(deployed_key(dir.path()), key_b, "the live lineage stays");
    let timeline = &read_state(dir.path()).sets["mail"].timeline;
    assert!(
        timeline.iter().any(|e| e.what.contains("in one change")),
        "retire and publish in one change set: {timeline:?}"
    );

    let log = finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    eprintln!(
        "timings: pair roll {:.1} s total",
        started.elapsed().as_secs_f64()
    );
}
