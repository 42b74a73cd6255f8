//! `tlsa check --mx DOMAIN` for one domain against the lab — DNS (MX, A, TLSA, both TXT
//! records, all validated), the MTA-STS policy fetched from both addresses of the policy
//! host, and every MX address connected to (DANE and WebPKI) — side by side with two MTA-STS
//! checkers from PyPI on the same lab: postfix-mta-sts-resolver's `mta-sts-query` (TXT +
//! policy fetch) and checkdmarc (SPF, DMARC, MX, MTA-STS, TLS-RPT, … with `--skip-tls`).
//! Measurements, not tests: they print figures and assert only that each tool ran.
//!
//!   cargo bench --bench mta_sts -- [RUNS=10] [VENV]
//!
//! VENV is a virtualenv holding `postfix-mta-sts-resolver` and `checkdmarc` (`python3 -m
//! venv V && V/bin/pip install postfix-mta-sts-resolver checkdmarc`); without it only tlsa
//! is measured. Those tools hard-code port 443 and the system resolver, so the bench runs
//! itself again inside a private network and mount namespace (`unshare -n -m`, as root):
//! nginx on port 443 of two loopback addresses, a forwarder on 127.0.0.1:53 to the lab's
//! validating unbound, and /etc/resolv.conf bind-mounted to point there.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Forwarder, StsScene};
use tlsa::mtasts::policy::Mode;

/// Set in the re-executed bench, inside the namespace.
const INSIDE: &str = "TLSA_BENCH_NAMESPACE";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::var_os(INSIDE).is_none() {
        let status = Command::new("unshare")
            .args(["-n", "-m", "--"])
            .arg(std::env::current_exe().expect("the bench's path"))
            .args(&args)
            .env(INSIDE, "1")
            .status()
            .expect("run unshare (util-linux; needs root)");
        std::process::exit(status.code().unwrap_or(1));
    }
    let runs: usize = args
        .first()
        .map_or(10, |n| n.parse().expect("RUNS is a number"));
    let venv = args.get(1).map(PathBuf::from);
    run_ok(Command::new("ip").args(["link", "set", "lo", "up"]));

    let scene = StsScene::start(Mode::Enforce, |ca, mail| ca.issue(&[mail], 90), Some(443));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let _forwarder = runtime.block_on(Forwarder::listening_on(
        "127.0.0.1:53".parse().unwrap(),
        scene.lab.resolver_addr(),
    ));
    let resolv = scene.lab.dir().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\noptions trust-ad edns0\n").unwrap();
    run_ok(
        Command::new("mount")
            .arg("--bind")
            .arg(&resolv)
            .arg("/etc/resolv.conf"),
    );

    let zone = scene.zone.clone();
    let tlsa = |cmd: &mut Command| {
        cmd.args(["check", "--mx", &zone, "--port"])
            .arg(scene.postfix.port().to_string())
            .arg("--resolver")
            .arg(scene.lab.resolver_addr().to_string())
            .arg("--anchor")
            .arg(scene.lab.dnskey_anchor_file())
            .arg("--ca-file")
            .arg(&scene.ca_file);
    };
    println!("domain {zone}: policy on 2 addresses (nginx, port 443), 1 MX address (Postfix)");
    measure(
        "tlsa check --mx",
        runs,
        || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tlsa"));
            tlsa(&mut cmd);
            cmd
        },
        |out| out.status.success() && stdout(out).starts_with("TLSA OK"),
    );

    let Some(venv) = venv else {
        println!("(no VENV given: the PyPI checkers are not measured)");
        return;
    };
    let python_tool = |name: &str| {
        let mut cmd = Command::new(venv.join("bin").join(name));
        cmd.env("SSL_CERT_FILE", &scene.ca_file)
            .env("REQUESTS_CA_BUNDLE", &scene.ca_file);
        cmd
    };
    let id = scene.policy.id();
    measure(
        "mta-sts-query (postfix-mta-sts-resolver)",
        runs,
        || {
            let mut cmd = python_tool("mta-sts-query");
            cmd.arg(&zone);
            cmd
        },
        |out| stdout(out).contains(&id) || stdout(out).contains("enforce"),
    );
    measure(
        "checkdmarc --skip-tls",
        runs,
        || {
            let mut cmd = python_tool("checkdmarc");
            cmd.args(["--skip-tls", &zone]);
            cmd
        },
        |out| stdout(out).contains("mta_sts"),
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `command()` once to show its output and check it worked, then `runs` times, and
/// prints the median, mean and range of the wall times.
fn measure(
    name: &str,
    runs: usize,
    command: impl Fn() -> Command,
    worked: impl Fn(&Output) -> bool,
) {
    let out = command().output().unwrap_or_else(|e| panic!("{name}: {e}"));
    let shown = stdout(&out);
    let first: Vec<&str> = shown.lines().take(6).collect();
    assert!(
        worked(&out),
        "{name} did not work:\n{shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = command().output().expect("run");
            let took = started.elapsed();
            assert!(
                worked(&out),
                "{name} failed on a later run:\n{}",
                stdout(&out)
            );
            took
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len().max(1) as f64;
    println!(
        "{name}: median {:.1} ms, mean {mean:.1} ms, min {:.1} ms, max {:.1} ms ({runs} runs)\n  {}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        first.join("\n  ")
    );
}
