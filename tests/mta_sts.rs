//! MTA-STS judged by `tlsa check --mx` against real servers: nginx serving the policy over
//! HTTPS on several loopback addresses with certificates from a throwaway CA, the lab's
//! signed BIND zone (TXT, A, MX, TLSA) validated through unbound, and a real Postfix as the
//! MX. Run with `cargo test --test integration mta_sts::`.

use crate::support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Nginx, Serve, Site, StsScene, TlsIdentity, poll_until, random_loopback_v4};
use tlsa::mtasts::policy::{Mode, Policy};

const DNS_TIMEOUT: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    elapsed: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// `tlsa check --mx ZONE` through the lab's resolver, trusting the scene's CA.
fn check_mx(scene: &StsScene, extra: &[String]) -> Run {
    let mut args: Vec<String> = vec![
        "check".into(),
        "--mx".into(),
        scene.zone.clone(),
        "--port".into(),
        scene.postfix.port().to_string(),
        "--resolver".into(),
        scene.lab.resolver_addr().to_string(),
        "--anchor".into(),
        scene.lab.dnskey_anchor_file().display().to_string(),
        "--ca-file".into(),
        scene.ca_file.display().to_string(),
        "--sts-port".into(),
        scene.nginx.port().to_string(),
        "--timeout".into(),
        "10".into(),
    ];
    args.extend(extra.iter().cloned());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(&args)
        .output()
        .expect("run tlsa");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn json_check(scene: &StsScene, extra: &[String]) -> (Run, Value) {
    let mut extra = extra.to_vec();
    extra.push("--json".into());
    let run = check_mx(scene, &extra);
    let doc = run.json();
    (run, doc)
}

fn sts_results(doc: &Value) -> Vec<(String, String)> {
    doc["mta_sts"]["addresses"]
        .as_array()
        .expect("mta_sts.addresses")
        .iter()
        .map(|a| {
            (
                a["result"].as_str().unwrap_or_default().to_string(),
                a["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The policy is fetched from both addresses of `mta-sts.ZONE` and judged good, the TXT id
/// (two strings in DNS) read whole, the MX matched by the wildcard and WebPKI-valid; then
/// one address serves an older file: it is named stale and the check is CRITICAL (enforce).
#[test]
fn a_good_policy_on_every_address_then_one_stale() {
    let scene = StsScene::start(Mode::Enforce, |ca, mail| ca.issue(&[mail], 90), None);
    let (run, doc) = json_check(&scene, &[]);
    let sts = &doc["mta_sts"];
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(sts["status"], "OK", "{sts:#}");
    assert_eq!(sts["txt"]["verdict"], "valid");
    assert_eq!(sts["txt"]["record"]["id"], scene.policy.id());
    assert_eq!(
        sts["txt"]["ignored"], 1,
        "the v=spf1 record is no STS record"
    );
    let results = sts_results(&doc);
    assert_eq!(results.len(), 2, "{sts:#}");
    assert!(results.iter().all(|(r, _)| r == "ok"), "{results:?}");
    let addresses: Vec<SocketAddr> = sts["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut expected = vec![scene.nginx.addr(0), scene.nginx.addr(1)];
    expected.sort();
    assert_eq!(
        addresses, expected,
        "fetched from every A record, on its own"
    );
    assert_eq!(sts["policy"]["mode"], "enforce");
    assert_eq!(sts["mx"][0]["host"], format!("mail.{}", scene.zone));
    assert_eq!(sts["mx"][0]["pattern"], format!("*.{}", scene.zone));
    assert_eq!(sts["mx"][0]["webpki"][0]["result"], "valid", "{sts:#}");
    assert_eq!(sts["tlsrpt"]["records"].as_array().unwrap().len(), 1);
    assert_eq!(doc["endpoints"][0]["addresses"][0]["webpki"]["valid"], true);
    eprintln!(
        "check --mx (good, 2 policy addresses, 1 MX address): {:?}",
        run.elapsed
    );

    // The second address serves the policy of before (another MX pattern).
    let old = Policy::new(Mode::Testing, 3600, &[format!("mx.{}", scene.zone)]).unwrap();
    scene.nginx.set_policy(1, &old.canonical());
    let (run, doc) = json_check(&scene, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let results = sts_results(&doc);
    let stale: Vec<&(String, String)> = results.iter().filter(|(r, _)| r == "stale").collect();
    assert_eq!(stale.len(), 1, "{results:?}");
    assert!(stale[0].1.contains("mode testing"), "{results:?}");
    assert_eq!(results.iter().filter(|(r, _)| r == "ok").count(), 1);
    assert_eq!(
        doc["mta_sts"]["policy"]["mode"], "enforce",
        "the id names the current one"
    );
    let text = check_mx(&scene, &[]);
    assert!(text.stdout.contains("stale"), "{}", text.stdout);
    assert!(text.stdout.starts_with("TLSA CRITICAL"), "{}", text.stdout);
}

/// Each fetch rule broken on its own address (pinned with --sts-address): the check names
/// the rule, and is CRITICAL because the TXT record announces a policy nobody can fetch.
#[test]
fn each_fetch_rule_broken_is_named() {
    let scene = StsScene::start(Mode::Enforce, |ca, mail| ca.issue(&[mail], 90), None);
    let host = format!("mta-sts.{}", scene.zone);
    let good = scene.ca.issue(&[&host], 90);
    let text = scene.policy.canonical();
    // Valid policies if read whole: only the size or the speed breaks them.
    let padded = |bytes: usize| {
        let mut body = text.clone();
        while body.len() < bytes {
            body.push_str(&format!("x_pad: {}\r\n", "a".repeat(70)));
        }
        body
    };
    let cases: Vec<(&str, TlsIdentity, Serve, &str, &str)> = vec![
        ("redirect", good.clone(), Serve::Redirect, "redirect", "301"),
        ("404", good.clone(), Serve::NotFound, "http-status", "404"),
        (
            "text/html",
            good.clone(),
            Serve::Typed {
                body: text.clone(),
                content_type: "text/html".into(),
            },
            "content-type",
            "text/html",
        ),
        (
            "80 KB",
            good.clone(),
            Serve::Policy(padded(80 * 1024)),
            "too-large",
            "64 KiB",
        ),
        (
            "wrong name",
            scene.ca.issue(&[&format!("www.{}", scene.zone)], 90),
            Serve::Policy(text.clone()),
            "certificate",
            "certificate-host-mismatch",
        ),
        (
            "expired",
            scene.ca.issue_expired(&[&host]),
            Serve::Policy(text.clone()),
            "certificate",
            "certificate-expired",
        ),
        (
            "self-signed",
            TlsIdentity::self_signed(&[&host], 90),
            Serve::Policy(text.clone()),
            "certificate",
            "certificate-not-trusted",
        ),
        (
            "slow",
            good.clone(),
            Serve::Slow {
                body: padded(8 * 1024),
                bytes_per_second: 256,
            },
            "timeout",
            "within 4 s",
        ),
    ];
    let sites: Vec<Site> = cases
        .iter()
        .map(|(_, identity, serve, _, _)| Site {
            ip: random_loopback_v4(),
            identity: identity.clone(),
            serve: serve.clone(),
        })
        .collect();
    let broken = Nginx::start(&host, &sites);
    for (i, (what, _, _, result, detail)) in cases.iter().enumerate() {
        let addr = broken.addr(i).to_string();
        let (run, doc) = json_check(&scene, &["--sts-address".into(), addr.clone()]);
        let results = sts_results(&doc);
        assert_eq!(results.len(), 1, "{what}: {results:?}");
        assert_eq!(results[0].0, *result, "{what}: {results:?}");
        assert!(results[0].1.contains(detail), "{what}: {results:?}");
        assert_eq!(run.code, Some(2), "{what}: {}", run.stdout);
        let summary = doc["summary"].as_str().unwrap();
        assert!(summary.contains("MTA-STS"), "{what}: {summary}");
        if *what == "slow" {
            assert!(
                run.elapsed < Duration::from_secs(9),
                "{what}: bounded, took {:?}",
                run.elapsed
            );
        }
        eprintln!("{what}: {} ({:?})", results[0].1, run.elapsed);
    }
}

/// enforce with an MX presenting a self-signed certificate (DANE matches it, WebPKI does
/// not): CRITICAL, naming the MX; once Postfix presents a certificate from the CA (and its
/// TLSA record follows), OK.
#[test]
fn enforce_refused_while_an_mx_is_self_signed() {
    let scene = StsScene::start(
        Mode::Enforce,
        |_, mail| TlsIdentity::self_signed(&[mail], 90),
        None,
    );
    let (run, doc) = json_check(&scene, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let sts = &doc["mta_sts"];
    assert_eq!(
        sts["mx"][0]["webpki"][0]["result"], "certificate-not-trusted",
        "{sts:#}"
    );
    assert_eq!(
        doc["endpoints"][0]["addresses"][0]["verdict"], "match",
        "DANE is fine"
    );
    let findings: Vec<&str> = sts["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "CRITICAL")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("not WebPKI-valid") && f.contains("refuse to deliver")),
        "{findings:?}"
    );

    let mail = format!("mail.{}", scene.zone);
    let issued = scene.ca.issue(&[&mail], 90);
    scene.postfix.install(&issued);
    scene.postfix.reload();
    let owner = format!("_{}._tcp.{mail}.", scene.postfix.port());
    scene.lab.nsupdate_ok(&format!(
        "update delete {owner} TLSA\nupdate add {owner} 2 IN TLSA 3 1 1 {}",
        issued.spki_sha256()
    ));
    let want = issued.spki_sha256().to_ascii_uppercase();
    poll_until("the new TLSA record validated", DNS_TIMEOUT, || {
        let reply = scene.lab.query_resolver(&owner, "TLSA");
        let got = reply
            .rdata("TLSA")
            .join(" ")
            .to_ascii_uppercase()
            .replace(' ', "");
        (reply.has_flag("ad") && got.ends_with(&want)).then_some(())
    });
    let doc = poll_until("the CA-issued certificate accepted", DNS_TIMEOUT, || {
        let (run, doc) = json_check(&scene, &[]);
        (run.code == Some(0)).then_some(doc)
    });
    assert_eq!(doc["mta_sts"]["mx"][0]["webpki"][0]["result"], "valid");
}
