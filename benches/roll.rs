//! Roll benchmarks against the real lab (BIND 9 signing inline, unbound validating), driving
//! the release `tlsa` binary as an operator would. Measurements, not tests: they print
//! figures and assert nothing about time.
//!
//!   cargo bench --bench roll -- latency [TTLS=2,5,30] [RUNS=5]
//!   cargo bench --bench roll -- cron [NAMES=1,100,1000]
//!   cargo bench --bench roll -- scale [SETS=1000] [OWNERS=10] [CONCURRENCY=16,64]
//!   cargo bench --bench roll -- zones [ZONES=1000] [OWNERS=10] [CONCURRENCY=16]
//!
//! latency: a set adopted from nothing (publish, propagate, wait until safe, deploy), then a
//!   planned roll; reports how close the deploy comes to the physical limit — the first
//!   instant the record was seen on the authoritative server (by this program's own poller)
//!   plus the longest time a resolver may cache the RRset without it (negative TTL, as the
//!   RRset did not exist; +1 s for resolvers' whole-second clocks) — and how long the old
//!   record stays after the new key went live (the retire lag).
//! cron: `tlsa run` with nothing due, for N owner names (sets of 10 endpoints), with and
//!   without `--offline-if-idle`: wall time (hyperfine) and DNS messages sent, counted by
//!   forwarders in front of the primary and the resolver.
//! scale: SETS sets of OWNERS owner names in one zone (the lab has one zone), per
//!   concurrency, three runs (see `roll_rows`): the first publication, the deploy, and a
//!   planned roll (retire the old key and publish a fresh next key in one change per set):
//!   wall time, tlsa CPU time, peak RSS, UPDATE messages and other queries to the primary.
//! zones: ZONES zones on one BIND, one set of OWNERS owner names per zone: the same runs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{
    Forwarder, Lab, LabOptions, MAIL_OWNER, deployed_key, self_signed_source, write_roll_config,
};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let list = |i: usize, default: &str| -> Vec<u64> {
        args.get(i)
            .map_or(default, String::as_str)
            .split(',')
            .map(|n| n.parse().expect("a comma-separated list of numbers"))
            .collect()
    };
    match args.first().map(String::as_str) {
        Some("latency") => latency(&list(1, "2,5,30"), list(2, "5")[0] as usize),
        Some("cron") => cron(&list(1, "1,100,1000")),
        Some("scale") => scale(
            list(1, "1000")[0] as usize,
            list(2, "10")[0] as usize,
            &list(3, "16,64"),
        ),
        Some("zones") => zones(
            list(1, "1000")[0] as usize,
            list(2, "10")[0] as usize,
            &list(3, "16"),
        ),
        _ => {
            eprintln!("usage: cargo bench --bench roll -- latency|cron|scale [...] (see the file)")
        }
    }
}

fn tlsa_binary() -> &'static str {
    env!("CARGO_BIN_EXE_tlsa")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn run_tlsa(config: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(tlsa_binary())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run tlsa");
    assert!(
        out.status.success(),
        "tlsa {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn commas(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

// ------------------------------------------------------------------------------- latency

/// Polls the authoritative server's TLSA RRset every 10 ms and remembers when each key was
/// first and last seen there (Unix seconds).
/// (when, the keys served then), in order.
type Sightings = Arc<Mutex<Vec<(f64, BTreeSet<String>)>>>;

struct Poller {
    stop: Arc<AtomicBool>,
    seen: Sightings,
    thread: Option<thread::JoinHandle<()>>,
}

impl Poller {
    fn start(lab: &Lab) -> Self {
        let (server, owner) = (lab.server_addr(), lab.name(MAIL_OWNER));
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Sightings = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let text = support::dig(server, &["+short", &owner, "TLSA"]);
                    let keys: BTreeSet<String> = text
                        .lines()
                        .filter_map(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            (f.len() > 3).then(|| f[3..].concat().to_lowercase())
                        })
                        .collect();
                    seen.lock().unwrap().push((unix_now(), keys));
                    thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Poller {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// First instant `key` was served.
    fn first_seen(&self, key: &str) -> Option<f64> {
        let seen = self.seen.lock().unwrap();
        seen.iter().find(|(_, k)| k.contains(key)).map(|(t, _)| *t)
    }

    /// First instant after `after` when `key` was no longer served.
    fn gone_after(&self, key: &str, after: f64) -> Option<f64> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .find(|(t, k)| *t >= after && !k.contains(key))
            .map(|(t, _)| *t)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The instants the reload command ran (it appends `date +%s.%N`).
fn reloads(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("reloads"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn safe_at(dir: &Path, key: &str) -> f64 {
    let state = tlsa::roll::state::load_dir(&dir.join("state")).unwrap();
    let at = state.sets["mail"].keys[key].safe_at.expect("safe_at");
    at.unix_ms() as f64 / 1000.0
}

struct LatencyRun {
    ratio_limit: f64,
    ratio_engine: f64,
    live_after_limit: f64,
    retire_lag: f64,
}

fn latency_once(ttl: u32) -> LatencyRun {
    let lab = Lab::with_options(LabOptions {
        ttl,
        ..LabOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let record = format!("date +%s.%N >> '{}'", dir.path().join("reloads").display());
    let config = write_roll_config(
        &lab,
        dir.path(),
        &self_signed_source(&lab),
        &["sh", "-c", &record],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("ttl = 2", &format!("ttl = {ttl}"))).unwrap();
    let poller = Poller::start(&lab);

    let start = unix_now();
    run_tlsa(&config, &["run", "--wait"]);
    let live = reloads(dir.path())[0];
    let key = deployed_key(dir.path());
    let seen = poller.first_seen(&key).expect("the poller saw the record");
    // Negative answers (the RRset did not exist) are cached for min(SOA TTL, MINIMUM) = ttl.
    let limit = seen + f64::from(ttl) + 1.0;
    let engine_safe = safe_at(dir.path(), &key);

    run_tlsa(&config, &["rollover", "--wait"]);
    let new_live = reloads(dir.path())[1];
    // The removal was confirmed before tlsa returned; let the poller take a sample after it.
    thread::sleep(Duration::from_millis(200));
    let gone = poller
        .gone_after(&key, new_live)
        .expect("the old record went");
    LatencyRun {
        ratio_limit: (live - start) / (limit - start),
        ratio_engine: (live - start) / (engine_safe - start),
        live_after_limit: live - limit,
        retire_lag: gone - new_live,
    }
}

fn latency(ttls: &[u64], runs: usize) {
    println!("roll latency: deploy vs the physical limit, and the retire lag");
    println!(
        "{:>5} {:>4}  {:>12} {:>12} {:>14} {:>12}",
        "TTL", "runs", "ratio(limit)", "ratio(t_safe)", "live-limit(ms)", "retire lag(ms)"
    );
    for &ttl in ttls {
        let runs = if ttl >= 30 { runs.min(3) } else { runs };
        let results: Vec<LatencyRun> = (0..runs).map(|_| latency_once(ttl as u32)).collect();
        let pick = |f: fn(&LatencyRun) -> f64| {
            let mut v: Vec<f64> = results.iter().map(f).collect();
            median(&mut v)
        };
        println!(
            "{:>4}s {:>4}  {:>12.3} {:>12.3} {:>14.0} {:>12.0}",
            ttl,
            runs,
            pick(|r| r.ratio_limit),
            pick(|r| r.ratio_engine),
            pick(|r| r.live_after_limit * 1000.0),
            pick(|r| r.retire_lag * 1000.0),
        );
        for r in &results {
            println!(
                "        run: ratio(limit) {:.3}, ratio(t_safe) {:.3}, live {:+.0} ms after the limit, retire lag {:.0} ms",
                r.ratio_limit,
                r.ratio_engine,
                r.live_after_limit * 1000.0,
                r.retire_lag * 1000.0
            );
        }
    }
    println!(
        "reproduce: cargo bench --bench roll -- latency {} {runs}",
        commas(ttls)
    );
}

// ---------------------------------------------------------------------------------- cron

/// [`support::write_many_sets_config`] with `server` and `resolver` in place of the lab's
/// (counting forwarders in front of them).
fn many_names_config(
    lab: &Lab,
    dir: &Path,
    names: usize,
    per_set: usize,
    server: std::net::SocketAddr,
    resolver: std::net::SocketAddr,
) -> PathBuf {
    let config = support::write_many_sets_config(lab, dir, names, per_set);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&lab.server_addr().to_string(), &server.to_string())
        .replace(&lab.resolver_addr().to_string(), &resolver.to_string());
    std::fs::write(&config, text).unwrap();
    config
}

fn hyperfine_mean(command: &str) -> (f64, f64) {
    let json = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("hyperfine")
        .args(["--warmup", "1", "--runs", "10", "--export-json"])
        .arg(json.path())
        .arg(command)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("hyperfine is installed (apt-get install hyperfine)");
    assert!(status.success(), "{command}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap();
    let r = &doc["results"][0];
    (r["mean"].as_f64().unwrap(), r["stddev"].as_f64().unwrap())
}

fn cron(names: &[u64]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("cron cost: `tlsa run` with nothing due");
    println!(
        "{:>6}  {:>14} {:>9}  {:>14} {:>9}",
        "names", "run (ms)", "queries", "offline (ms)", "queries"
    );
    for &n in names {
        let lab = Lab::start();
        let (primary, resolver) = runtime.block_on(async {
            (
                Forwarder::start(lab.server_addr()).await,
                Forwarder::start(lab.resolver_addr()).await,
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let config = many_names_config(
            &lab,
            dir.path(),
            n as usize,
            10,
            primary.addr,
            resolver.addr,
        );
        run_tlsa(&config, &["run", "--wait"]);
        run_tlsa(&config, &["run"]); // idle, marks the sets idle
        let count = |args: &[&str]| {
            let before = primary.queries() + resolver.queries();
            run_tlsa(&config, args);
            primary.queries() + resolver.queries() - before
        };
        let queries = count(&["run"]);
        let offline_queries = count(&["run", "--offline-if-idle"]);
        let cmd = |extra: &str| format!("{} run {extra} -c {}", tlsa_binary(), config.display());
        let (run_mean, _) = hyperfine_mean(&cmd(""));
        let (offline_mean, _) = hyperfine_mean(&cmd("--offline-if-idle"));
        println!(
            "{:>6}  {:>14.1} {:>9}  {:>14.1} {:>9}",
            n,
            run_mean * 1000.0,
            queries,
            offline_mean * 1000.0,
            offline_queries
        );
    }
    println!(
        "reproduce: cargo bench --bench roll -- cron {}",
        commas(names)
    );
}

// --------------------------------------------------------------------------------- scale

fn scale(sets: usize, owners: usize, concurrency: &[u64]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("scale: {sets} sets x {owners} owner names in one zone");
    print_scale_header();
    for &c in concurrency {
        let lab = Lab::start();
        let primary = runtime.block_on(Forwarder::start(lab.server_addr()));
        let dir = tempfile::tempdir().unwrap();
        let config = many_names_config(
            &lab,
            dir.path(),
            sets * owners,
            owners,
            primary.addr,
            lab.resolver_addr(),
        );
        roll_rows(&config, c, &primary);
    }
    println!(
        "reproduce: cargo bench --bench roll -- scale {sets} {owners} {}",
        commas(concurrency)
    );
}

fn zones(count: usize, owners: usize, concurrency: &[u64]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("zones: {count} zones x {owners} owner names (one set per zone) on one BIND");
    for &c in concurrency {
        let started = Instant::now();
        let lab = support::MultiZoneLab::start(count, 2);
        println!(
            "  (BIND loaded and signed {count} zones in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        let primary = runtime.block_on(Forwarder::start(lab.server_addr()));
        let dir = tempfile::tempdir().unwrap();
        let config = lab.write_config(dir.path(), owners);
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("server = \"{}\"", lab.server_addr()),
            &format!("server = \"{}\"", primary.addr),
        );
        std::fs::write(&config, text).unwrap();
        print_scale_header();
        roll_rows(&config, c, &primary);
    }
    println!(
        "reproduce: cargo bench --bench roll -- zones {count} {owners} {}",
        commas(concurrency)
    );
}

fn print_scale_header() {
    println!(
        "{:<9} {:>11}  {:>9} {:>12} {:>12} {:>8} {:>9}",
        "step", "concurrency", "wall (s)", "tlsa CPU (s)", "peak RSS(MB)", "UPDATEs", "queries"
    );
}

/// The three runs of a roll across every set, one row each:
/// - publish: the first `tlsa run` (each set's live and next key published, propagated,
///   validated; it ends waiting for the caches);
/// - deploy: `tlsa run --wait` (waits for the caches, ~3 s with TTL 2, then deploys and
///   checks every set; no DNS change);
/// - roll: `tlsa rollover --wait` (the planned roll: the next key goes live at once, then one
///   change per set retires the old key and publishes a fresh next key, and propagation).
fn roll_rows(config: &Path, concurrency: u64, primary: &Forwarder) {
    let c = concurrency.to_string();
    for (step, args) in [
        ("publish", vec!["run", "--concurrency", &c]),
        ("deploy", vec!["run", "--wait", "--concurrency", &c]),
        ("roll", vec!["rollover", "--wait", "--concurrency", &c]),
    ] {
        timed_row(step, config, &args, concurrency, primary);
    }
}

/// Runs `tlsa ARGS -c CONFIG` under GNU time and prints its row; UPDATEs and queries are
/// those of this run, counted by the forwarder in front of the primary.
fn timed_row(step: &str, config: &Path, args: &[&str], concurrency: u64, primary: &Forwarder) {
    let (updates_before, queries_before) = (primary.updates(), primary.queries());
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(tlsa_binary())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("GNU time is installed (apt-get install time)");
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !l.starts_with("tlsa: set ") && !l.trim_start().starts_with(char::is_uppercase)
            })
            .take(20)
            .collect();
        panic!(
            "tlsa {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("FAILED"))
                .take(10)
                .collect::<Vec<_>>()
                .join("\n"),
            problems.join("\n")
        );
    }
    let value = |label: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    let cpu = value("User time (seconds): ") + value("System time (seconds): ");
    let rss_mb = value("Maximum resident set size (kbytes): ") / 1024.0;
    let ((udp, tcp), (udp0, tcp0)) = (primary.updates(), updates_before);
    println!(
        "{:<9} {:>11}  {:>9.1} {:>12.1} {:>12.1} {:>8} {:>9}",
        step,
        concurrency,
        wall,
        cpu,
        rss_mb,
        udp + tcp - udp0 - tcp0,
        primary.queries() - queries_before
    );
}
