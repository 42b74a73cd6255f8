//! Faults during real rolls, each followed by reruns, with the lab's signed BIND zone:
//!
//! - SIGKILLs at seeded random instants across whole planned rolls, and the primary
//!   paused (SIGSTOP) mid-roll and stopped and restarted mid-roll, under the safety probe against a real Postfix that serves
//!   the deploy target: no instant where the presented key is missing from the cached
//!   RRset, no record lost or left behind;
//! - several tlsa hosts (separate configs and state) rolling their own sets in one zone at
//!   the same time: no record of any host lost;
//! - the state directory on a full filesystem: a clean failure, no damaged state, and a
//!   complete run once space returns.
//!
//! `TLSA_FAULT_SEED=N` replays a kill schedule (the seed used is printed).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    Lab, LivePostfixSet, SafetyProbe, deployed_key_in, presented_key, self_signed_for,
    self_signed_source, tlsa, write_roll_config,
};

/// A small deterministic generator (xorshift64*): the schedule depends on the seed only.
struct Schedule(u64);

impl Schedule {
    fn from_env() -> Self {
        let seed = std::env::var("TLSA_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x7153_2026);
        eprintln!("fault schedule seed: {seed} (TLSA_FAULT_SEED={seed} replays it)");
        Schedule(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A delay between `min` and `max` milliseconds.
    fn delay(&mut self, min: u64, max: u64) -> Duration {
        Duration::from_millis(min + self.next() % (max - min + 1))
    }
}

fn deployed(deploy: &Path) -> String {
    deployed_key_in(deploy).expect("a certificate is deployed")
}

fn next_key(state_dir: &Path) -> String {
    let file = tlsa::roll::state::set_file(state_dir, "mail");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
        .unwrap_or_else(|e| panic!("{}: damaged state: {e}", file.display()));
    state["next_key"].as_str().unwrap_or_default().to_string()
}

/// The 3 1 1 data BIND serves at `owner`, sorted.
fn served(lab: &Lab, owner: &str) -> Vec<String> {
    support::three_one_one(&lab.query_server(owner, "TLSA"))
        .into_iter()
        .collect()
}

/// `tlsa ARGS --wait` as a child, SIGKILLed after `after`; whether it was killed (it may
/// have finished first).
fn killed_after(config: &Path, args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(args)
        .args(["--wait", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// `tlsa rollover --wait` as a child, with `fault` done to the lab `after` it started; how
/// it ended (it waits or fails cleanly; the rerun that follows finishes the roll).
fn rollover_during(
    config: &Path,
    after: Duration,
    fault: impl FnOnce(),
) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(["rollover", "--wait", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    fault();
    child.wait().unwrap()
}

#[test]
fn seeded_kills_a_paused_and_a_restarted_primary_never_present_a_key_without_its_record() {
    let mut schedule = Schedule::from_env();
    let mut lab = Lab::start();
    let set = LivePostfixSet::start(&lab);
    let (config, deploy, smtp, endpoint) = (&set.config, &set.deploy, set.smtp, &set.endpoint);
    assert!(tlsa(config, &["run", "--wait"]).status.success());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = deployed(deploy);
    support::poll_until(
        "Postfix presents the deployed key",
        Duration::from_secs(20),
        || (presented_key(&runtime, smtp, endpoint).as_ref() == Some(&first)).then_some(()),
    );

    let owner = lab.name("_25._tcp.mail");
    let witness = lab.start_resolver_with_ds(&lab.ds_records().join("\n"));
    let probe = SafetyProbe::presented(&lab, &witness, &owner, &[smtp], endpoint);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut kills = 0;
    let mut keys = vec![first.clone()];
    for round in 0..5 {
        if round == 1 || round == 2 {
            let after = schedule.delay(100, 1500);
            let status = rollover_during(config, after, || {
                if round == 1 {
                    // The primary stops answering for 2 s, then resumes.
                    let pid = lab.server_pid() as i32;
                    unsafe { libc::kill(pid, libc::SIGSTOP) };
                    std::thread::sleep(Duration::from_secs(2));
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                } else {
                    // The primary is stopped (SIGTERM), down for 2 s, and started again
                    // from its files on the same port.
                    lab.restart_server(Duration::from_secs(2));
                }
            });
            let fault = ["", "paused for 2 s", "stopped for 2 s and restarted"][round];
            eprintln!("round {round}: rollover with the primary {fault} after {after:?}: {status}");
        } else {
            // A planned roll killed at a random instant, then its continuation killed at
            // another (a roll whose next key is already safe takes a second or two).
            for (args, max) in [(&["rollover"][..], 1500), (&["run"][..], 800)] {
                let delay = schedule.delay(50, max);
                if killed_after(config, args, delay) {
                    kills += 1;
                    eprintln!("round {round}: {args:?} killed after {delay:?}");
                }
            }
        }
        let rerun = tlsa(config, &["run", "--wait"]);
        assert!(rerun.status.success(), "round {round}: the rerun completes");
        let live = deployed(deploy);
        if keys.last() != Some(&live) {
            keys.push(live);
        }
        // Whatever happened, the rolls go on: a planned roll to the next key completes.
        if round == 4 {
            assert!(tlsa(config, &["rollover", "--wait"]).status.success());
            keys.push(deployed(deploy));
        }
    }
    std::thread::sleep(Duration::from_secs(3)); // caches of the final RRset expire
    let log = probe.stop();
    eprintln!(
        "faults: {kills} SIGKILLs, a 2 s pause and a 2 s stop/restart of the primary over {} rolls in {:?}; probe: {} samples ({} skipped), violations: {}",
        keys.len() - 1,
        started.elapsed(),
        log.samples,
        log.skipped,
        log.violations.len()
    );
    assert!(kills >= 3, "the schedule killed {kills} times (of up to 6)");
    assert!(keys.len() >= 3, "the rolls went on: {keys:?}");
    assert!(log.samples >= 50, "the probe sampled the rolls");
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    // Nothing lost, nothing left behind: the live key and the next one, exactly.
    let live = deployed(deploy);
    let mut wanted = vec![live.clone(), next_key(&set.dir.path().join("state"))];
    wanted.sort();
    assert_eq!(served(&lab, &owner), wanted);
    assert_eq!(presented_key(&runtime, smtp, endpoint), Some(live));
}

#[test]
fn several_hosts_rolling_their_own_sets_in_one_zone_lose_no_record() {
    let lab = Lab::start();
    let zone = lab.zone().trim_end_matches('.').to_string();
    let hosts = ["h1", "h2", "h3"];
    let dirs: Vec<tempfile::TempDir> = hosts.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let configs: Vec<PathBuf> = hosts
        .iter()
        .zip(&dirs)
        .map(|(host, dir)| {
            let name = format!("{host}.{zone}");
            let config = write_roll_config(&lab, dir.path(), &self_signed_for(&name), &["true"]);
            let text = std::fs::read_to_string(&config).unwrap().replace(
                &format!("host = \"mail.{zone}\""),
                &format!("host = \"{name}\""),
            );
            std::fs::write(&config, text).unwrap();
            config
        })
        .collect();
    // Every host rolls three times, all at once: their UPDATEs to the zone interleave.
    let started = Instant::now();
    std::thread::scope(|threads| {
        for config in &configs {
            threads.spawn(move || {
                assert!(tlsa(config, &["run", "--wait"]).status.success());
                for round in 0..3 {
                    let out = tlsa(config, &["rollover", "--wait"]);
                    assert!(out.status.success(), "{}: round {round}", config.display());
                }
            });
        }
    });
    eprintln!(
        "{} hosts × 3 rolls in one zone at once: {:?}",
        hosts.len(),
        started.elapsed()
    );
    for ((host, dir), config) in hosts.iter().zip(&dirs).zip(&configs) {
        let owner = lab.name(&format!("_25._tcp.{host}"));
        let mut wanted = vec![
            deployed(&dir.path().join("live")),
            next_key(&dir.path().join("state")),
        ];
        wanted.sort();
        assert_eq!(
            served(&lab, &owner),
            wanted,
            "{host}: live and next, nothing else"
        );
        // And the host's own view agrees: nothing to do.
        let check = tlsa(config, &["run"]);
        assert!(check.status.success());
    }
}

/// A filesystem mounted at a directory for one test (root only, as the suite runs in CI:
/// scripts/test-deb needs root too), unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    /// `mount ARGS… dir` for each argument list in turn.
    fn new(dir: &Path, steps: &[&[&str]], what: &str) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        for args in steps {
            let status = Command::new("mount")
                .args(*args)
                .arg(dir)
                .status()
                .expect("run mount");
            assert!(
                status.success(),
                "mounting {what} needs root (the suite runs as root, as scripts/test-deb does)"
            );
        }
        Mounted(dir.to_path_buf())
    }

    /// A tmpfs of `size` at `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Mounted {
        let options = format!("size={size},mode=0700");
        Mounted::new(dir, &[&["-t", "tmpfs", "-o", &options, "tmpfs"]], "a tmpfs")
    }

    /// `dir` bound onto itself read-only: unwritable even for root, which chmod is not.
    fn read_only(dir: &Path) -> Mounted {
        let dir_text = dir.to_str().unwrap();
        let steps: [&[&str]; 2] = [&["--bind", dir_text], &["-o", "remount,bind,ro", dir_text]];
        Mounted::new(dir, &steps, "a read-only bind mount")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `dir/filler`, leaving nothing free.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_state_filesystem_fails_cleanly_and_recovers_when_space_returns() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_roll_config(&lab, dir.path(), &self_signed_source(&lab), &["true"]);
    let state = dir.path().join("state");
    let _tmpfs = Mounted::tmpfs(&state, "1m");
    let owner = lab.name("_25._tcp.mail");

    // A first roll with room: the set is live with a next key.
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let live = deployed(&dir.path().join("live"));
    let next = next_key(&state);
    let before = served(&lab, &owner);

    // No space left: a planned roll fails with a clear error and damages nothing.
    fill(&state);
    let full = tlsa(&config, &["rollover", "--wait"]);
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("No space left on device"),
        "names the cause: {stderr}"
    );
    assert_eq!(next_key(&state), next, "the state is intact");
    let after = served(&lab, &owner);
    for key in &before {
        assert!(
            after.contains(key),
            "nothing removed: {before:?} → {after:?}"
        );
    }
    assert_eq!(deployed(&dir.path().join("live")), live);

    // Space returns: the same command completes the roll.
    std::fs::remove_file(state.join("filler")).unwrap();
    rolls_to(&config, &lab, &dir.path().join("live"), &next);
}

/// `rollover --wait` completes: `next` is deployed and the owner serves exactly it and the
/// fresh next key.
fn rolls_to(config: &Path, lab: &Lab, live_dir: &Path, next: &str) {
    let done = tlsa(config, &["rollover", "--wait"]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert_eq!(
        deployed(live_dir),
        next,
        "the pre-published next key went live"
    );
    let state = live_dir.parent().unwrap().join("state");
    let mut wanted = vec![next.to_string(), next_key(&state)];
    wanted.sort();
    assert_eq!(served(lab, &lab.name("_25._tcp.mail")), wanted);
}

/// The files a deploy writes.
const DEPLOY_FILES: [&str; 3] = ["combined.pem", "privkey.pem", "fullchain.pem"];

/// A self-signed set configured in `dir` and brought live (`run --wait`): its config, state
/// directory and deploy directory.
fn live_self_signed_set(lab: &Lab, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let config = write_roll_config(lab, dir, &self_signed_source(lab), &["true"]);
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    (config, dir.join("state"), dir.join("live"))
}

/// A planned roll with an unwritable deploy directory, then an unwritable state directory:
/// each run fails naming the directory and changes nothing (nothing removed from DNS, the
/// deployed pair and the state as they were); writable again, the same command completes.
#[test]
fn unwritable_deploy_and_state_directories_fail_cleanly_and_recover() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, state, live_dir) = live_self_signed_set(&lab, dir.path());
    let owner = lab.name("_25._tcp.mail");

    for (unwritable, what) in [(&live_dir, "deploy"), (&state, "state")] {
        let live = deployed(&live_dir);
        let next = next_key(&state);
        let before = served(&lab, &owner);
        let set_file = tlsa::roll::state::set_file(&state, "mail");
        let state_before = std::fs::read(&set_file).unwrap();
        let read_only = Mounted::read_only(unwritable);
        let failed = tlsa(&config, &["rollover", "--wait"]);
        let stderr = String::from_utf8_lossy(&failed.stderr).to_string();
        eprintln!("{what} directory read-only: {}\n{stderr}", failed.status);
        assert!(!failed.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains(&unwritable.display().to_string())
                && stderr.contains("Read-only file system"),
            "names the {what} directory and the cause: {stderr}"
        );
        assert_eq!(deployed(&live_dir), live, "the deployed pair is unchanged");
        assert_eq!(next_key(&state), next, "the state still holds the next key");
        if what == "state" {
            assert_eq!(std::fs::read(&set_file).unwrap(), state_before);
            assert!(stderr.contains("make it writable"), "{stderr}");
        }
        let after = served(&lab, &owner);
        assert!(
            before.iter().all(|key| after.contains(key)),
            "nothing removed: {before:?} → {after:?}"
        );

        drop(read_only);
        rolls_to(&config, &lab, &live_dir, &next);
    }
}

/// Symlinks planted in the deploy directory as its three files, pointing at files a local
/// attacker wants overwritten as root (holding what was deployed, so tlsa reads the target
/// as it was): the next deploy replaces the links themselves and never writes through them.
#[test]
fn symlinks_planted_in_the_deploy_directory_are_replaced_never_followed() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, state, live_dir) = live_self_signed_set(&lab, dir.path());
    let next = next_key(&state);
    let victims = dir.path().join("victims");
    std::fs::create_dir(&victims).unwrap();
    for name in DEPLOY_FILES {
        let victim = victims.join(name);
        std::fs::rename(live_dir.join(name), &victim).unwrap();
        std::os::unix::fs::symlink(&victim, live_dir.join(name)).unwrap();
    }
    let before: Vec<Vec<u8>> = DEPLOY_FILES
        .iter()
        .map(|name| std::fs::read(victims.join(name)).unwrap())
        .collect();
    let rolled = tlsa(&config, &["rollover", "--wait"]);
    assert!(
        rolled.status.success(),
        "{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    for (name, content) in DEPLOY_FILES.iter().zip(&before) {
        let now = std::fs::read(victims.join(name)).unwrap();
        assert!(&now == content, "{name}: the link's target was written");
        let meta = std::fs::symlink_metadata(live_dir.join(name)).unwrap();
        assert!(
            meta.is_file(),
            "{name} is a file of tlsa's again, not the link"
        );
    }
    assert_eq!(deployed(&live_dir), next);
}
