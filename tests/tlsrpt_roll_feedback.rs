//! TLS-RPT reports beside the roll, on real servers: a set for `mail.ZONE` rolls in the lab
//! (BIND signing, unbound validating, a real Postfix presenting the key — K0 before tlsa, K1
//! from a certbot lineage deployed by the roll, TTLs of 2 s so `t_safe` comes in seconds),
//! then reports written here after RFC 8460 §4 are imported and `tlsa check -c` and
//! `tlsa status` read them against the set's timeline: successes and a DANE failure from
//! before the deploy are OK, another failure type beyond `warn_failures` is WARNING, a
//! `tlsa-invalid` failure in a report ending after the deploy is CRITICAL naming the set,
//! the host and the step.

use crate::support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Lab, Postfix, PostfixOptions, TlsIdentity, certbot_source, tlsa, tool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Scene {
    // Field order is drop order: servers stop before the directory goes.
    _lab: Lab,
    postfix: Postfix,
    config: PathBuf,
    host: String,
    dir: tempfile::TempDir,
}

impl Scene {
    fn start() -> Self {
        let lab = Lab::start();
        let dir = tempfile::tempdir().unwrap();
        let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
        let k0 = TlsIdentity::self_signed(&[&host], 30);
        let k1 = TlsIdentity::self_signed(&[&host], 30);
        let postfix = Postfix::start(PostfixOptions {
            tls: Some(k0),
            ..PostfixOptions::default()
        });
        let lineage = dir.path().join("lineage");
        std::fs::create_dir_all(&lineage).unwrap();
        std::fs::write(lineage.join("fullchain.pem"), &k1.chain_pem).unwrap();
        std::fs::write(lineage.join("privkey.pem"), &k1.key_pem).unwrap();
        // The deploy reaches the Postfix instance: its files replaced, then a reload.
        let live = dir.path().join("live");
        let tls = postfix.tls_dir();
        let script = dir.path().join("reload.sh");
        std::fs::write(
            &script,
            format!(
                "set -e\ncp '{live}/privkey.pem' '{tls}/key.pem'\ncp '{live}/fullchain.pem' '{tls}/fullchain.pem'\n'{bin}' -c '{conf}' reload\n",
                live = live.display(),
                tls = tls.display(),
                bin = tool("postfix").display(),
                conf = postfix.config_dir().display(),
            ),
        )
        .unwrap();
        let script = script.display().to_string();
        let config = support::write_roll_config(
            &lab,
            dir.path(),
            &certbot_source(&lineage),
            &["sh", &script],
        );
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("verify = \"deployed-files\"\n", "")
            .replace(
                "port = 25\n",
                &format!("port = 25\naddresses = [\"{}\"]\n", postfix.addresses()[0]),
            )
            + "\n[tlsrpt]\nwarn_failures = 1\n";
        std::fs::write(&config, text).unwrap();
        Scene {
            _lab: lab,
            postfix,
            config,
            host,
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = tlsa(&self.config, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Writes reports about the host and imports them.
    fn reporter(&self) -> Reporter<'_> {
        Reporter {
            config: &self.config,
            dir: self.dir.path(),
            host: &self.host,
            ip: self.postfix.addresses()[0].ip(),
        }
    }

    fn check(&self) -> (Option<i32>, String) {
        check_c(&self.config)
    }

    fn status_json(&self) -> serde_json::Value {
        let (code, out) = self.run(&["status", "--json"]);
        assert_eq!(code, Some(0), "{out}");
        serde_json::from_str(&out).unwrap()
    }
}

/// Writes reports as a sender would (RFC 8460 §4.4) about one MX host and imports them
/// with `tlsa tlsrpt import`.
struct Reporter<'a> {
    config: &'a Path,
    dir: &'a Path,
    host: &'a str,
    ip: IpAddr,
}

impl Reporter<'_> {
    fn import(
        &self,
        id: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        failures: &[(&str, u64)],
    ) {
        let details: Vec<String> = failures
            .iter()
            .map(|(result_type, sessions)| {
                format!(
                    r#"{{"result-type":"{result_type}","sending-mta-ip":"198.51.100.7","receiving-mx-hostname":"{host}","receiving-ip":"{ip}","failed-session-count":{sessions}}}"#,
                    host = self.host,
                    ip = self.ip,
                )
            })
            .collect();
        let failed: u64 = failures.iter().map(|(_, n)| n).sum();
        let report = format!(
            r#"{{
  "organization-name": "Lab Sender",
  "date-range": {{"start-datetime": "{start}", "end-datetime": "{end}"}},
  "contact-info": "tlsrpt@sender.example",
  "report-id": "{id}",
  "policies": [{{
    "policy": {{
      "policy-type": "tlsa",
      "policy-string": ["3 1 1 0000"],
      "policy-domain": "{host}",
      "mx-host": "{host}"
    }},
    "summary": {{"total-successful-session-count": 12, "total-failure-session-count": {failed}}},
    "failure-details": [{details}]
  }}]
}}"#,
            start = start.format(&Rfc3339).unwrap(),
            end = end.format(&Rfc3339).unwrap(),
            host = self.host,
            details = details.join(","),
        );
        let file = self.dir.join(format!("{id}.json"));
        std::fs::write(&file, report).unwrap();
        let out = tlsa(self.config, &["tlsrpt", "import", file.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.starts_with("stored 1,"), "{text}");
    }
}

fn check_c(config: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(support::tlsa_binary())
        .args(["check", "-c"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("check -c: {}\n{stdout}", out.status);
    (out.status.code(), stdout)
}

/// `check -c` is CRITICAL with a TLS-RPT line naming set `mail` and `host`: that line and
/// the whole output.
fn critical_tlsrpt_line(config: &Path, host: &str) -> (String, String) {
    let (code, out) = check_c(config);
    assert_eq!(code, Some(2), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("CRITICAL TLS-RPT"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(line.contains("set mail"), "{line}");
    assert!(line.contains(&format!("host {host}")), "{line}");
    (line, out)
}

fn state_dir(dir: &Path) -> PathBuf {
    dir.join("state")
}

#[test]
fn reports_after_the_deploy_turn_check_critical_naming_set_host_and_step() {
    let scene = Scene::start();
    let before_roll = OffsetDateTime::now_utc() - Duration::from_secs(5);
    // The whole roll: adopt K0, publish K1, wait for t_safe, deploy, verify, retire K0.
    let (code, out) = scene.run(&["run", "--wait"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deploy key"), "{out}");
    assert!(state_dir(scene.dir.path()).exists());
    let status = scene.status_json();
    assert!(status[0]["tls_reports"].is_null(), "no store yet: {status}");

    // Live and DNS agree, no reports: OK.
    let (code, out) = scene.check();
    assert_eq!(code, Some(0), "{out}");

    // Successes, and a DANE failure in a report that ended before the roll: still OK.
    let now = OffsetDateTime::now_utc();
    let day = Duration::from_secs(86_400);
    scene.reporter().import(
        "old-dane",
        before_roll - day,
        before_roll,
        &[("tlsa-invalid", 4)],
    );
    scene
        .reporter()
        .import("ok-1", now - day, now + Duration::from_secs(60), &[]);
    let (code, out) = scene.check();
    assert_eq!(code, Some(0), "{out}");
    let status = scene.status_json();
    let reports = &status[0]["tls_reports"];
    assert_eq!(reports["step"]["kind"], "retire", "{reports}");
    assert_eq!(reports["hosts"][0]["host"], scene.host.as_str());
    assert_eq!(reports["hosts"][0]["reports"], 1, "{reports}");
    assert_eq!(reports["hosts"][0]["successful"], 12);
    assert_eq!(reports["hosts"][0]["failed"], 0);

    // Another failure type beyond warn_failures = 1: WARNING.
    scene.reporter().import(
        "sts-2",
        now - day,
        now + Duration::from_secs(60),
        &[("starttls-not-supported", 2)],
    );
    let (code, out) = scene.check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("starttls-not-supported"), "{out}");
    assert!(out.contains("warn_failures = 1"), "{out}");

    // A tlsa-invalid failure in a report ending after the deploy: CRITICAL, naming all.
    scene.reporter().import(
        "dane-3",
        now - day,
        now + Duration::from_secs(60),
        &[("tlsa-invalid", 3)],
    );
    let (line, _) = critical_tlsrpt_line(&scene.config, &scene.host);
    assert!(line.contains("last deploy step (deploy key"), "{line}");
    assert!(
        !line.contains("7 tlsa-invalid"),
        "the report from before the roll is not counted: {line}"
    );

    let (code, text) = scene.run(&["status"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("TLS-RPT reports since the last retire step"),
        "{text}"
    );
    assert!(text.contains("3 tlsa-invalid"), "{text}");
}

/// A deploy that came too early, forced the way it happens in the world: a resolver that
/// holds records past their TTL (unbound's `cache-min-ttl`, set by an operator who wanted
/// fewer queries). tlsa waits the TTL the zone publishes; that cache still holds the RRset
/// from two rolls ago when the third key goes live, so a DANE sender behind it fails —
/// `tlsa check` through that cache says so — and the reports its operator sends
/// (`tlsa-invalid` for the MX) turn `check -c` CRITICAL naming the set, the host and the
/// deploy step that came too early for them.
#[test]
fn a_deploy_too_early_for_a_cache_that_outstays_the_ttl_is_critical_in_the_reports() {
    let lab = Lab::start();
    let set = support::LivePostfixSet::start(&lab);
    let config_text = std::fs::read_to_string(&set.config).unwrap() + "\n[tlsrpt]\n";
    std::fs::write(&set.config, config_text).unwrap();
    let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
    let (code, out) = run(&set.config, &["run", "--wait"]);
    assert_eq!(code, Some(0), "{out}");
    let k1 = set.deployed();

    // The overstaying cache learns the RRset {K1, K2} now and keeps it for an hour.
    let sticky = lab.start_resolver_with_options("    cache-min-ttl: 3600\n");
    sticky.wait_validated(lab.zone());
    let owner = lab.name(support::MAIL_OWNER);
    let cached = support::three_one_one(&sticky.query(&owner, "TLSA", &[]));
    assert!(cached.contains(&k1) && cached.len() == 2, "{cached:?}");

    // Two planned rolls, each waiting the published TTL: K2, then K3 goes live.
    for _ in 0..2 {
        let (code, out) = run(&set.config, &["rollover", "--wait"]);
        assert_eq!(code, Some(0), "{out}");
    }
    let k3 = set.deployed();
    assert!(
        !cached.contains(&k3),
        "K3 was published after the cache filled"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    support::poll_until("Postfix presents K3", Duration::from_secs(20), || {
        (support::presented_key(&runtime, set.smtp, &set.endpoint).as_ref() == Some(&k3))
            .then_some(())
    });
    assert_eq!(
        support::three_one_one(&sticky.query(&owner, "TLSA", &[])),
        cached,
        "the cache still serves the RRset of two rolls ago"
    );

    // What a DANE sender behind each cache sees: the honest one validates K3, the other fails.
    let smtp = set.smtp.to_string();
    let sender = |resolver: std::net::SocketAddr| {
        let resolver = resolver.to_string();
        let out = std::process::Command::new(support::tlsa_binary())
            .args(["check", &host, "--trust-ad", "--timeout", "5"])
            .args(["--resolver", &resolver, "--address", &smtp])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("check through {resolver}: {}\n{text}", out.status);
        (out.status.code(), text)
    };
    let (code, out) = sender(lab.resolver_addr());
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = sender(sticky.addr());
    assert_eq!(
        code,
        Some(2),
        "a sender behind the overstaying cache fails: {out}"
    );

    // That sender's report for today: tlsa-invalid sessions for the MX, after the deploy.
    let now = OffsetDateTime::now_utc();
    Reporter {
        config: &set.config,
        dir: set.dir.path(),
        host: &host,
        ip: set.smtp.ip(),
    }
    .import(
        "sticky-cache-1",
        now - Duration::from_secs(86_400),
        now + Duration::from_secs(60),
        &[("tlsa-invalid", 5)],
    );
    let (line, out) = critical_tlsrpt_line(&set.config, &host);
    assert!(line.contains("5 tlsa-invalid"), "{line}");
    assert!(
        line.contains(&format!("last deploy step (deploy key {}", &k3[..16])),
        "names the deploy of K3: {line}"
    );
    // Live and the honest DNS agree: the only CRITICAL is the reports'.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("CRITICAL")).count(),
        1,
        "{out}"
    );
}

fn run(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = tlsa(config, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}
