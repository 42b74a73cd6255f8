//! Output for people and for machines: colour only on a terminal and never with NO_COLOR
//! (https://no-color.org), `-q` (only errors and alarms) and `-v` (what a command works
//! with), against the lab during a real emergency.

use crate::support;

use std::process::{Command, Output};

use support::{Lab, tlsa, write_config};

const RED: &str = "\x1b[1;31m";

/// `tlsa ARGS -c CONFIG` on a pseudo-terminal (`script`), with `env` set.
fn on_terminal(config: &std::path::Path, args: &str, env: &[(&str, &str)]) -> Output {
    let script = support::tool_with_hint(
        "script",
        "install util-linux's bsdutils (apt-get install -y bsdutils)",
    );
    let command = format!("{} {args} -c {}", support::tlsa_binary(), config.display());
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().unwrap()
}

#[test]
fn colour_quiet_and_verbose() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());

    // -q: a run with nothing wrong says nothing at all.
    let quiet = tlsa(&config, &["-q", "run", "--wait"]);
    assert!(quiet.status.success(), "{quiet:?}");
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{quiet:?}"
    );
    // -v: the config, resolver, trust anchor and back-end in use.
    let verbose = tlsa(&config, &["run", "-v"]);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(verbose.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("tlsa: config {}", config.display()))
            && stderr.contains(&format!("resolver {}", lab.resolver_addr()))
            && stderr.contains("rfc2136 back-end"),
        "{stderr}"
    );
    let normal = tlsa(&config, &["run"]);
    assert!(!String::from_utf8_lossy(&normal.stderr).contains("tlsa: config "));

    // An emergency: the live key's record removed by hand.
    support::remove_live_record(&lab, dir.path());
    // -q still raises the alarm, on stderr, and the exit status says so.
    let alarm = tlsa(&config, &["-q", "run"]);
    let stderr = String::from_utf8_lossy(&alarm.stderr);
    assert_eq!(alarm.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ALARM"), "{stderr}");
    assert!(alarm.stdout.is_empty(), "{alarm:?}");

    // The alarm in red on a terminal; not with NO_COLOR, not off a terminal.
    let coloured =
        String::from_utf8_lossy(&on_terminal(&config, "status", &[]).stdout).into_owned();
    assert!(coloured.contains(&format!("{RED}ALARM")), "{coloured:?}");
    for plain in [
        String::from_utf8_lossy(&on_terminal(&config, "status", &[("NO_COLOR", "1")]).stdout)
            .into_owned(),
        String::from_utf8_lossy(&tlsa(&config, &["status"]).stdout).into_owned(),
    ] {
        assert!(
            plain.contains("ALARM") && !plain.contains('\x1b'),
            "{plain:?}"
        );
    }
}
