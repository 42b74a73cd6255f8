//! TLS-RPT reports beside the roll, on real servers: a set for `mail.ZONE` rolls in the lab
//! (BIND signing, unbound validating, a real Postfix presenting the key — K0 before tlsa, K1
//! from a certbot lineage deployed by the roll, TTLs of 2 s so `t_safe` comes in seconds),
//! then reports written here after RFC 8460 §4 are imported and `tlsa check -c` and
//! `tlsa status` read them against the set's timeline: successes and a DANE failure from
//! before the deploy are OK, another failure type beyond `warn_failures` is WARNING, a
//! `tlsa-invalid` failure in a report ending after the deploy is CRITICAL naming the set,
//! the host and the step.

mod support;

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

    /// Writes a report (RFC 8460 §4.4) for the host and imports it.
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
                    ip = self.postfix.addresses()[0].ip(),
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
        let file = self.dir.path().join(format!("{id}.json"));
        std::fs::write(&file, report).unwrap();
        let (code, out) = self.run(&["tlsrpt", "import", file.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.starts_with("stored 1,"), "{out}");
    }

    fn check(&self) -> (Option<i32>, String) {
        let out = std::process::Command::new(support::tlsa_binary())
            .args(["check", "-c"])
            .arg(&self.config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("check -c: {}\n{stdout}", out.status);
        (out.status.code(), stdout)
    }

    fn status_json(&self) -> serde_json::Value {
        let (code, out) = self.run(&["status", "--json"]);
        assert_eq!(code, Some(0), "{out}");
        serde_json::from_str(&out).unwrap()
    }
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
    scene.import(
        "old-dane",
        before_roll - day,
        before_roll,
        &[("tlsa-invalid", 4)],
    );
    scene.import("ok-1", now - day, now + Duration::from_secs(60), &[]);
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
    scene.import(
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
    scene.import(
        "dane-3",
        now - day,
        now + Duration::from_secs(60),
        &[("tlsa-invalid", 3)],
    );
    let (code, out) = scene.check();
    assert_eq!(code, Some(2), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("CRITICAL TLS-RPT"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("set mail"), "{line}");
    assert!(line.contains(&format!("host {}", scene.host)), "{line}");
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
