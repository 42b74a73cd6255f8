//! `tlsa check` against real servers: a real Postfix (STARTTLS and implicit TLS) on loopback
//! ports, TLSA/A/AAAA/MX records published into the lab's signed zone (BIND 9) and validated
//! through the lab's unbound from the zone's trust anchor. Every verdict is compared with
//! `openssl s_client -dane_tlsa_*`, an independent DANE implementation, run on the same
//! address with the same records. Run with `cargo test --test integration live_check::`.

use crate::support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Dovecot, Lab, Postfix, PostfixOptions, SilentServer, TlsIdentity, TlsaRun, closed_port,
    poll_until, random_loopback_v4,
};

/// Bounds for polls; they end as soon as they see what they wait for.
const DNS_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-address limit given to `tlsa check` where nothing is meant to time out: generous,
/// since other tests load this 2-core machine.
const CHECK_TIMEOUT: &str = "10";

/// A syntactically valid SHA-256 that matches no key.
const OTHER_HASH: &str = "8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";

// ------------------------------------------------------------------ helpers

fn tlsa(args: &[String]) -> TlsaRun {
    TlsaRun::of(args)
}

/// `tlsa check HOST` through the lab's validating unbound, anchored at the zone's DNSKEY.
fn check(lab: &Lab, host: &str, extra: &[&str]) -> TlsaRun {
    let mut args: Vec<String> = vec![
        "check".into(),
        host.into(),
        "--resolver".into(),
        lab.resolver_addr().to_string(),
        "--anchor".into(),
        lab.dnskey_anchor_file().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout".into(), CHECK_TIMEOUT.into()]);
    }
    tlsa(&args)
}

/// Publishes `mail.ZONE` A/AAAA for every address of `postfix` (their IPs), and returns
/// the host name.
fn publish_host(lab: &Lab, addresses: &[SocketAddr]) -> String {
    let host = lab.name("mail");
    let body: Vec<String> = addresses
        .iter()
        .map(|a| {
            let rtype = if a.is_ipv4() { "A" } else { "AAAA" };
            format!("update add {host} 2 IN {rtype} {}", a.ip())
        })
        .collect();
    lab.nsupdate_ok(&body.join("\n"));
    host.trim_end_matches('.').to_string()
}

/// Replaces the TLSA RRset at `owner` with `records` and waits until the validating
/// resolver serves exactly them with AD (its cache of the old RRset has expired).
fn set_tlsa(lab: &Lab, owner: &str, records: &[String]) {
    let mut body = vec![format!("update delete {owner} TLSA")];
    body.extend(
        records
            .iter()
            .map(|r| format!("update add {owner} 2 IN TLSA {r}")),
    );
    lab.nsupdate_ok(&body.join("\n"));
    let mut want: Vec<String> = records.iter().map(|r| r.to_ascii_uppercase()).collect();
    want.sort();
    poll_until(
        &format!("{owner} TLSA validated as {records:?}"),
        DNS_TIMEOUT,
        || {
            let reply = lab.query_resolver(owner, "TLSA");
            let mut got: Vec<String> = reply
                .rdata("TLSA")
                .iter()
                .map(|r| r.to_ascii_uppercase())
                .collect();
            got.sort();
            (reply.is_noerror() && reply.has_flag("ad") && got == want).then_some(())
        },
    );
}

/// Waits until the resolver validates `name`/`rtype` with some answer.
fn wait_validated(lab: &Lab, name: &str, rtype: &str) {
    poll_until(&format!("{name} {rtype} validated"), DNS_TIMEOUT, || {
        let reply = lab.query_resolver(name, rtype);
        (reply.is_noerror() && reply.has_flag("ad") && !reply.rdata(rtype).is_empty()).then_some(())
    });
}

/// Asserts that `openssl s_client` concludes `expected` (in `tlsa check`'s verdict names) at
/// `addr`: an implementation independent of ours agrees with the report.
fn assert_openssl_agrees(
    expected: &str,
    addr: SocketAddr,
    starttls: Option<&str>,
    domain: &str,
    records: &[String],
    deadline: Duration,
) {
    let (verdict, text) = openssl_verdict(addr, starttls, domain, records, deadline);
    let mode = starttls.unwrap_or("implicit TLS");
    assert_eq!(verdict, expected, "openssl on {addr} ({mode}):\n{text}");
}

/// What `openssl s_client` concluded, in `tlsa check`'s verdict names.
fn openssl_verdict(
    addr: SocketAddr,
    starttls: Option<&str>,
    domain: &str,
    records: &[String],
    deadline: Duration,
) -> (String, String) {
    let mut cmd = Command::new(support::tool("openssl"));
    cmd.args(["s_client", "-brief", "-connect", &addr.to_string()]);
    if let Some(protocol) = starttls {
        cmd.args(["-starttls", protocol]);
    }
    // -dane_ee_no_namechecks: RFC 7672 §3.1.1 (and Postfix) ignore names with DANE-EE(3);
    // without it OpenSSL checks the name even for a 3 x x match.
    cmd.args([
        "-servername",
        domain,
        "-dane_tlsa_domain",
        domain,
        "-dane_ee_no_namechecks",
    ]);
    for record in records {
        cmd.args(["-dane_tlsa_rrdata", record]);
    }
    cmd.arg("-verify_return_error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run openssl s_client");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("openssl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict = match status {
        None => "timeout",
        Some(_) if text.contains("Connection refused") || text.contains("connect:errno") => {
            "unreachable"
        }
        Some(_) if text.contains("Didn't find STARTTLS") => "starttls-not-offered",
        Some(s) if s.success() && text.contains("DANE TLSA") && text.contains("matched") => "match",
        Some(s)
            if !s.success()
                && (text.contains("Verification error") || text.contains("verify error:")) =>
        {
            "mismatch"
        }
        Some(_) => "other",
    };
    (verdict.to_string(), text)
}

/// The address entries of the first endpoint of a report.
fn addresses(report: &Value) -> Vec<Value> {
    report["endpoints"][0]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    addresses(report)
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap_or_default().to_string(),
                a["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Checks the shape of a `tlsa-check/1` document: every documented key with its type, and
/// verdict/status values from the documented sets.
fn assert_schema(doc: &Value) {
    let object = |v: &Value, what: &str| {
        assert!(v.is_object(), "{what} is not an object: {v}");
    };
    let string = |v: &Value, key: &str| {
        assert!(v[key].is_string(), "{key} is not a string in {v}");
    };
    let array = |v: &Value, key: &str| {
        assert!(v[key].is_array(), "{key} is not an array in {v}");
    };
    let status = |v: &Value| {
        let s = v["status"].as_str().unwrap_or_default();
        assert!(
            ["OK", "WARNING", "CRITICAL", "UNKNOWN"].contains(&s),
            "bad status {s:?} in {v}"
        );
    };
    object(doc, "report");
    assert_eq!(doc["schema"], "tlsa-check/1");
    status(doc);
    let code = doc["exit_code"].as_u64().expect("exit_code");
    let expected = match doc["status"].as_str().unwrap() {
        "OK" => 0,
        "WARNING" => 1,
        "CRITICAL" => 2,
        _ => 3,
    };
    assert_eq!(code, expected, "exit_code matches status");
    for key in ["summary", "checked_at", "dnssec"] {
        string(doc, key);
    }
    assert!(doc["summary"].as_str().unwrap().starts_with("TLSA "));
    assert!(doc["elapsed_ms"].is_u64());
    array(doc, "endpoints");
    array(doc, "findings");
    for finding in doc["findings"].as_array().unwrap() {
        status(finding);
        string(finding, "message");
    }
    for e in doc["endpoints"].as_array().unwrap() {
        object(e, "endpoint");
        for key in ["host", "protocol", "owner"] {
            string(e, key);
        }
        assert!(e["port"].is_u64());
        status(e);
        let tlsa = &e["tlsa"];
        for key in ["dnssec", "answer", "detail"] {
            string(tlsa, key);
        }
        array(tlsa, "records");
        array(e, "address_lookups");
        for l in e["address_lookups"].as_array().unwrap() {
            for key in ["rtype", "dnssec", "answer", "detail"] {
                string(l, key);
            }
            array(l, "addresses");
        }
        array(e, "findings");
        array(e, "addresses");
        for a in e["addresses"].as_array().unwrap() {
            string(a, "address");
            a["address"]
                .as_str()
                .unwrap()
                .parse::<SocketAddr>()
                .expect("address is ADDR:PORT");
            status(a);
            string(a, "summary");
            array(a, "warnings");
            array(a, "notes");
            assert!(a["elapsed_ms"].is_u64());
            let verdict = a["verdict"].as_str().expect("verdict");
            match verdict {
                "match" => {
                    string(a, "record");
                    assert!(a["depth"].is_u64());
                }
                "mismatch" => {
                    string(a, "presented");
                    array(a, "records");
                }
                "no-usable-records" => array(a, "records"),
                "no-tlsa" => string(a, "presented"),
                "timeout" => {
                    string(a, "detail");
                    assert!(a["limit_seconds"].is_number());
                }
                "insecure"
                | "bogus"
                | "dns-error"
                | "starttls-not-offered"
                | "protocol-error"
                | "handshake-failed"
                | "unreachable" => string(a, "detail"),
                other => panic!("undocumented verdict {other:?}"),
            }
            if let Some(leaf) = a.get("leaf") {
                for key in [
                    "subject",
                    "issuer",
                    "key_algorithm",
                    "tlsa_3_1_1",
                    "not_after",
                ] {
                    string(leaf, key);
                }
                assert!(leaf["days_left"].is_i64() && leaf["chain_length"].is_u64());
            }
        }
    }
}

/// A lab, a key, and a Postfix offering STARTTLS on its port and implicit TLS (wrapper
/// mode) on the returned address.
fn implicit_tls_scene() -> (Lab, TlsIdentity, Postfix, SocketAddr) {
    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 90);
    let postfix = Postfix::start(PostfixOptions {
        tls: Some(id.clone()),
        implicit_tls: true,
        ..PostfixOptions::default()
    });
    let wrapper = postfix.implicit_tls_addr().expect("wrapper-mode port");
    (lab, id, postfix, wrapper)
}

fn starttls_postfix(identity: &TlsIdentity) -> Postfix {
    Postfix::start(PostfixOptions {
        tls: Some(identity.clone()),
        extra_v4: Some(random_loopback_v4()),
        ipv6: true,
        implicit_tls: false,
        deliver: None,
    })
}

// -------------------------------------------------------------------- tests

/// The matching key gives `match` on every address (two IPv4, one IPv6, found through the
/// host's validated A/AAAA records); after the TLSA RRset is replaced by a non-matching hash,
/// every address gives `mismatch` naming the presented key. openssl agrees on each address.
#[test]
fn match_on_every_address_then_mismatch_naming_the_key() {
    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 90);
    let postfix = starttls_postfix(&id);
    let host = publish_host(&lab, postfix.addresses());
    let owner = format!("_{}._tcp.{host}.", postfix.port());
    let good = format!("3 1 1 {}", id.spki_sha256());
    set_tlsa(&lab, &owner, std::slice::from_ref(&good));
    wait_validated(&lab, &host, "AAAA");
    let port = postfix.port().to_string();
    let args = ["--port", port.as_str(), "--starttls", "smtp", "--json"];

    let run = check(&lab, &host, &args);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(report["status"], "OK");
    let got = verdicts(&report);
    let mut sorted = postfix.addresses().to_vec();
    sorted.sort();
    let expected: Vec<(String, String)> = sorted
        .iter()
        .map(|a| (a.to_string(), "match".to_string()))
        .collect();
    assert_eq!(
        got, expected,
        "addresses sorted, each a match: {}",
        run.stdout
    );
    for a in addresses(&report) {
        assert_eq!(a["record"], good);
        assert_eq!(a["depth"], 0);
        assert_eq!(a["leaf"]["tlsa_3_1_1"], good);
        assert_eq!(a["tls_version"], "TLSv1.3");
    }
    let lookups = report["endpoints"][0]["address_lookups"]
        .as_array()
        .unwrap();
    assert!(
        lookups.iter().all(|l| l["dnssec"] == "secure"),
        "{lookups:?}"
    );
    assert_eq!(report["endpoints"][0]["tlsa"]["dnssec"], "secure");
    for addr in postfix.addresses() {
        assert_openssl_agrees(
            "match",
            *addr,
            Some("smtp"),
            &host,
            std::slice::from_ref(&good),
            DNS_TIMEOUT,
        );
    }
    eprintln!("match: {} ({:?})", report["summary"], run.elapsed);

    let wrong = format!("3 1 1 {OTHER_HASH}");
    set_tlsa(&lab, &owner, std::slice::from_ref(&wrong));
    let run = check(&lab, &host, &args);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert_eq!(report["status"], "CRITICAL");
    for a in addresses(&report) {
        assert_eq!(a["verdict"], "mismatch", "{a}");
        assert_eq!(a["presented"], good, "names the presented key: {a}");
        assert_eq!(a["records"][0]["record"], wrong);
        assert!(a["summary"].as_str().unwrap().contains(&good), "{a}");
    }
    assert_eq!(addresses(&report).len(), 3);
    for addr in postfix.addresses() {
        assert_openssl_agrees(
            "mismatch",
            *addr,
            Some("smtp"),
            &host,
            std::slice::from_ref(&wrong),
            DNS_TIMEOUT,
        );
    }
    eprintln!("mismatch: {} ({:?})", report["summary"], run.elapsed);

    // The text form: the monitoring line first, then the table naming the key.
    let run = check(
        &lab,
        &host,
        &["--port", port.as_str(), "--starttls", "smtp"],
    );
    assert_eq!(run.code, Some(2));
    let first = run.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("TLSA CRITICAL: 0 of 3 addresses match"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ADDRESS"), "{}", run.stdout);
    assert!(run.stdout.contains(&good), "{}", run.stdout);
    eprintln!("text output:\n{}", run.stdout);
}

/// Postfix without TLS, a closed port and a server that accepts and never answers, checked
/// in one run: each address gets its own verdict (starttls-not-offered, unreachable,
/// timeout), the silent one within the configured limit and without delaying the others
/// beyond it. Each case, run alone, exits CRITICAL, and openssl reaches the same verdict.
#[test]
fn starttls_missing_closed_port_and_silent_server() {
    let lab = Lab::start();
    let plain = Postfix::start(PostfixOptions::default());
    let silent = SilentServer::start();
    let closed = closed_port();
    let host = lab.name("mail").trim_end_matches('.').to_string();
    let owner = format!("_25._tcp.{host}.");
    let record = format!("3 1 1 {OTHER_HASH}");
    set_tlsa(&lab, &owner, std::slice::from_ref(&record));
    let no_tls = plain.addresses()[0];
    let cases = [
        (no_tls, "starttls-not-offered"),
        (closed, "unreachable"),
        (silent.addr(), "timeout"),
    ];
    let limit = 3.0;
    let limit_text = limit.to_string();

    let mut args: Vec<String> = vec!["--json".into(), "--timeout".into(), limit_text.clone()];
    for (addr, _) in &cases {
        args.push("--address".into());
        args.push(addr.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = check(&lab, &host, &args);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let got = verdicts(&report);
    let expected: Vec<(String, String)> = cases
        .iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, expected, "{}", run.stdout);
    let entries = addresses(&report);
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap()
            .contains("STARTTLS is not among the EHLO capabilities"),
        "{}",
        entries[0]
    );
    let timed_out = &entries[2];
    assert_eq!(timed_out["limit_seconds"], limit);
    assert!(
        timed_out["detail"].as_str().unwrap().contains("greeting"),
        "{timed_out}"
    );
    let waited = timed_out["elapsed_ms"].as_u64().unwrap();
    assert!(
        (3000..4500).contains(&waited),
        "timeout after {waited} ms, limit 3000 ms"
    );
    // The fast failures were not held up by the silent server.
    for fast in &entries[..2] {
        assert!(fast["elapsed_ms"].as_u64().unwrap() < 2000, "{fast}");
    }
    assert!(
        run.elapsed < Duration::from_secs_f64(limit + 4.0),
        "the whole check took {:?}",
        run.elapsed
    );
    eprintln!(
        "failures together: {} ({:?})",
        report["summary"], run.elapsed
    );

    for (addr, expected) in cases {
        let run = check(
            &lab,
            &host,
            &[
                "--json",
                "--timeout",
                &limit_text,
                "--address",
                &addr.to_string(),
            ],
        );
        assert_eq!(run.code, Some(2), "{expected}: {}", run.stdout);
        assert_eq!(verdicts(&run.json())[0].1, expected, "{}", run.stdout);
        assert_openssl_agrees(
            expected,
            addr,
            Some("smtp"),
            &host,
            std::slice::from_ref(&record),
            Duration::from_secs_f64(limit),
        );
        eprintln!("{expected}: tlsa {:?}, openssl agrees", run.elapsed);
    }
}

/// An implicit-TLS endpoint (Postfix's wrapper mode, as for smtps/submissions on 465): the
/// TLSA owner uses port 465, the connection goes to the wrapper's loopback port.
#[test]
fn implicit_tls_endpoint() {
    let (lab, id, postfix, wrapper) = implicit_tls_scene();
    let host = lab.name("mail").trim_end_matches('.').to_string();
    let good = format!("3 1 1 {}", id.spki_sha256());
    set_tlsa(
        &lab,
        &format!("_465._tcp.{host}."),
        std::slice::from_ref(&good),
    );

    let address = wrapper.to_string();
    let run = check(
        &lab,
        &host,
        &["--port", "465", "--address", &address, "--json"],
    );
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(report["endpoints"][0]["protocol"], "none");
    assert_eq!(
        report["endpoints"][0]["owner"],
        format!("_465._tcp.{host}.")
    );
    assert_eq!(
        verdicts(&report),
        vec![(address.clone(), "match".to_string())]
    );
    assert_openssl_agrees("match", wrapper, None, &host, &[good], DNS_TIMEOUT);

    // STARTTLS spoken to an implicit-TLS port gets no greeting: a timeout, bounded.
    let run = check(
        &lab,
        &host,
        &[
            "--port",
            "465",
            "--starttls",
            "smtp",
            "--address",
            &address,
            "--timeout",
            "1",
            "--json",
        ],
    );
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert_eq!(verdicts(&run.json())[0].1, "timeout", "{}", run.stdout);

    // Implicit TLS spoken to the STARTTLS port: the plain-text greeting fails the
    // handshake at once, and the message says what to try.
    let starttls_port = postfix.addresses()[0].to_string();
    let run = check(
        &lab,
        &host,
        &["--port", "465", "--address", &starttls_port, "--json"],
    );
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let entry = &addresses(&run.json())[0];
    assert_eq!(entry["verdict"], "handshake-failed", "{entry}");
    assert!(
        entry["detail"].as_str().unwrap().contains("--starttls"),
        "{entry}"
    );
}

/// Usage 2 (DANE-TA): the CA certificate presented after the leaf is the anchor; the chain
/// must validate up to it and the leaf must name the host. openssl agrees with both
/// outcomes.
#[test]
fn dane_ta_checks_chain_and_names() {
    let lab = Lab::start();
    let host = lab.name("mail").trim_end_matches('.').to_string();
    for (names, expected, code) in [
        (vec![host.as_str()], "match", 0),
        (vec!["other.example.test"], "mismatch", 2),
    ] {
        let id = TlsIdentity::ca_issued(&names, 90);
        let postfix = Postfix::start(PostfixOptions {
            tls: Some(id.clone()),
            ..PostfixOptions::default()
        });
        let record = format!("2 0 1 {}", id.issuer_cert_sha256());
        set_tlsa(
            &lab,
            &format!("_25._tcp.{host}."),
            std::slice::from_ref(&record),
        );
        let addr = postfix.addresses()[0];
        let run = check(&lab, &host, &["--address", &addr.to_string(), "--json"]);
        let report = run.json();
        assert_schema(&report);
        assert_eq!(run.code, Some(code), "{}", run.stdout);
        let entry = &addresses(&report)[0];
        assert_eq!(entry["verdict"], expected, "{entry}");
        if expected == "match" {
            assert_eq!(entry["depth"], 1);
            assert_eq!(entry["record"], record);
        } else {
            let why = entry["records"][0]["result"].as_str().unwrap();
            assert!(why.contains("reference identifier"), "{why}");
        }
        assert_openssl_agrees(expected, addr, Some("smtp"), &host, &[record], DNS_TIMEOUT);
    }
}

/// `--mx DOMAIN` follows the validated MX set to the host, its addresses and its TLSA.
#[test]
fn mx_following() {
    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 90);
    let postfix = starttls_postfix(&id);
    let host = publish_host(&lab, postfix.addresses());
    let zone = lab.zone().trim_end_matches('.').to_string();
    lab.nsupdate_ok(&format!("update add {zone}. 2 IN MX 10 {host}."));
    let good = format!("3 1 1 {}", id.spki_sha256());
    set_tlsa(&lab, &format!("_{}._tcp.{host}.", postfix.port()), &[good]);
    wait_validated(&lab, &format!("{zone}."), "MX");
    wait_validated(&lab, &host, "AAAA");

    let port = postfix.port().to_string();
    let run = tlsa(&[
        "check".into(),
        "--mx".into(),
        zone.clone(),
        "--port".into(),
        port,
        "--resolver".into(),
        lab.resolver_addr().to_string(),
        "--anchor".into(),
        lab.dnskey_anchor_file().display().to_string(),
        "--json".into(),
    ]);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(report["mx"]["domain"], zone);
    assert_eq!(report["mx"]["dnssec"], "secure");
    assert_eq!(report["mx"]["hosts"][0]["host"], host);
    assert_eq!(report["mx"]["hosts"][0]["preference"], 10);
    assert_eq!(report["endpoints"][0]["protocol"], "smtp");
    assert_eq!(addresses(&report).len(), 3);
    assert!(addresses(&report).iter().all(|a| a["verdict"] == "match"));
}

/// Exit codes beyond OK and CRITICAL-by-mismatch: WARNING for a soon-expiring certificate,
/// CRITICAL for a proven-absent TLSA RRset and for a bogus one, UNKNOWN when DNS cannot
/// answer and for bad input (never clap's 2).
#[test]
fn exit_codes_and_json_for_each_state() {
    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 5);
    let postfix = Postfix::start(PostfixOptions {
        tls: Some(id.clone()),
        ..PostfixOptions::default()
    });
    let addr = postfix.addresses()[0].to_string();
    let host = lab.name("mail").trim_end_matches('.').to_string();
    let owner = format!("_25._tcp.{host}.");
    let good = format!("3 1 1 {}", id.spki_sha256());

    // NODATA proven by NSEC: no-tlsa, CRITICAL, and the key to publish is named.
    lab.nsupdate_ok(&format!("update add {host}. 2 IN TXT \"exists\""));
    let run = check(&lab, &host, &["--address", &addr, "--json"]);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert_eq!(addresses(&report)[0]["verdict"], "no-tlsa");
    assert_eq!(addresses(&report)[0]["presented"], good);
    assert_eq!(report["endpoints"][0]["tlsa"]["dnssec"], "secure");

    // Matching, but the certificate expires in under 14 days: WARNING (1).
    set_tlsa(&lab, &owner, std::slice::from_ref(&good));
    let run = check(&lab, &host, &["--address", &addr, "--json"]);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(report["status"], "WARNING");
    let entry = &addresses(&report)[0];
    assert_eq!(entry["verdict"], "match");
    assert!(
        entry["warnings"][0].as_str().unwrap().contains("expires"),
        "{entry}"
    );
    // With a shorter warning window the same check is OK (0).
    let run = check(&lab, &host, &["--address", &addr, "--expiry-days", "3"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.stdout.starts_with("TLSA OK: 1 of 1 addresses"),
        "{}",
        run.stdout
    );

    // Bogus: a resolver trusting a wrong DS, in AD mode.
    let bogus = lab.start_resolver_with_ds(&lab.wrong_ds());
    let run = tlsa(&[
        "check".into(),
        host.clone(),
        "--address".into(),
        addr.clone(),
        "--resolver".into(),
        bogus.addr().to_string(),
        "--trust-ad".into(),
        "--json".into(),
    ]);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert_eq!(addresses(&report)[0]["verdict"], "bogus", "{}", run.stdout);

    // No resolver answers: UNKNOWN (3).
    let nobody = closed_port();
    let run = tlsa(&[
        "check".into(),
        host.clone(),
        "--address".into(),
        addr.clone(),
        "--resolver".into(),
        nobody.to_string(),
        "--trust-ad".into(),
        "--json".into(),
    ]);
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(3), "{}", run.stdout);
    assert_eq!(addresses(&report)[0]["verdict"], "dns-error");

    // Bad input: UNKNOWN (3) with the monitoring line on stdout, also as JSON.
    for bad in [
        vec!["check", "not a host"],
        vec![
            "check",
            "mail.example.com",
            "--address",
            "mail.example.com:25",
        ],
        vec!["check", "mail.example.com", "--port", "2525"],
        vec!["check", "mail.example.com", "--timeout", "0"],
        vec!["check", "--no-such-option"],
        vec!["check"],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let run = tlsa(&args);
        assert_eq!(run.code, Some(3), "{bad:?}: {}{}", run.stdout, run.stderr);
        assert!(!run.stderr.is_empty(), "{bad:?}: says why on stderr");
    }
    let run = tlsa(&[
        "check".into(),
        "mail.example.com".into(),
        "--anchor".into(),
        "/nonexistent/anchor".into(),
        "--resolver".into(),
        lab.resolver_addr().to_string(),
        "--json".into(),
    ]);
    assert_eq!(run.code, Some(3), "{}{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["status"], "UNKNOWN");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/anchor"),
        "{doc}"
    );
    drop(bogus);
}

/// The roll engine's observation, through the library: the key every address of the
/// endpoint presents (its validated A/AAAA addresses), and why none for an address where
/// nothing listens.
#[test]
fn presented_keys_for_the_roll_engine() {
    use tlsa::dns::observe::dnssec::Anchors;
    use tlsa::live::capture::ConnectOptions;
    use tlsa::live::endpoint::{Endpoint, Protocol};
    use tlsa::live::presented::presented_keys;
    use tlsa::live::resolve::{Trust, ValidatingDns};

    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 90);
    let postfix = starttls_postfix(&id);
    let host = publish_host(&lab, postfix.addresses());
    wait_validated(&lab, &host, "AAAA");
    let endpoint = Endpoint::new(&host, postfix.port(), Some(Protocol::Smtp)).unwrap();
    let nobody = support::closed_port();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let trust = Trust::Anchored(Anchors::File(lab.dnskey_anchor_file().to_path_buf()));
        let dns = Arc::new(
            ValidatingDns::new(lab.resolver_addr(), &trust)
                .await
                .unwrap(),
        );
        let connect = ConnectOptions::default();
        let found = presented_keys(&[(endpoint.clone(), None)], dns.clone(), &connect).await;
        assert_eq!(found.len(), 3, "every validated address: {found:?}");
        for at in &found {
            let spki = at.spki.as_ref().expect("a key");
            assert_eq!(
                tlsa::roll::plan::KeyMaterial::from_spki(spki).id,
                id.spki_sha256()
            );
        }

        let found = presented_keys(&[(endpoint, Some(vec![nobody]))], dns, &connect).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].address, Some(nobody));
        assert!(found[0].spki.is_err(), "{found:?}");
    });
}

/// `tlsa check -c CONFIG` checks every endpoint of every set of a tlsa config — here a
/// STARTTLS port and an implicit-TLS port of one Postfix, pinned by the config's
/// `addresses` — with the config's resolver and anchor; each endpoint names its set, and
/// one endpoint going wrong is CRITICAL while the other stays OK.
#[test]
fn config_checks_every_configured_endpoint() {
    let (lab, id, postfix, wrapper) = implicit_tls_scene();
    let smtp = postfix.addresses()[0];
    let host = lab.name("mail").trim_end_matches('.').to_string();
    let good = format!("3 1 1 {}", id.spki_sha256());
    for port in [25, 465] {
        set_tlsa(
            &lab,
            &format!("_{port}._tcp.{host}."),
            std::slice::from_ref(&good),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(&lab, dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "port = 25\n",
        &format!(
            "port = 25\naddresses = [\"{smtp}\"]\n\n[[set.endpoint]]\nhost = \"{host}\"\nport = 465\naddresses = [\"{wrapper}\"]\n"
        ),
    );
    std::fs::write(&config, &text).unwrap();
    let config_arg = config.display().to_string();
    let run_check = || {
        tlsa(&[
            "check".into(),
            "-c".into(),
            config_arg.clone(),
            "--json".into(),
        ])
    };

    let run = run_check();
    let report = run.json();
    assert_schema(&report);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let endpoints = report["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{}", run.stdout);
    for (endpoint, (port, protocol)) in endpoints.iter().zip([(25, "smtp"), (465, "none")]) {
        assert_eq!(endpoint["sets"], serde_json::json!(["mail"]));
        assert_eq!(endpoint["port"], port);
        assert_eq!(endpoint["protocol"], protocol);
        assert_eq!(endpoint["status"], "OK");
        assert_eq!(endpoint["tlsa"]["dnssec"], "secure");
    }
    // Bare `tlsa check` (the monitoring plugin's simplest call) reads the config every
    // other command reads: $TLSA_CONFIG here.
    let bare = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tlsa"))
            .arg("check")
            .args(args)
            .env("TLSA_CONFIG", &config)
            .output()
            .unwrap()
    };
    for args in [&["--json"][..], &["--set", "mail", "--json"]] {
        let out = bare(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["endpoints"].as_array().unwrap().len(), 2, "{report}");
    }
    // A forgotten HOST: --port would silently not apply to the configured endpoints.
    let out = bare(&["--port", "587"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("give its HOST"));

    set_tlsa(
        &lab,
        &format!("_465._tcp.{host}."),
        &[format!("3 1 1 {OTHER_HASH}")],
    );
    let run = run_check();
    let report = run.json();
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert_eq!(report["status"], "CRITICAL");
    let status: Vec<(u64, String)> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["port"].as_u64().unwrap(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(status, [(25, "OK".into()), (465, "CRITICAL".into())]);
    let text_run = tlsa(&["check".into(), "-c".into(), config_arg.clone()]);
    assert!(
        text_run.stdout.contains(&format!("set mail: {host}:465")),
        "{}",
        text_run.stdout
    );

    // A typo in the config: UNKNOWN, naming the file and the line.
    std::fs::write(&config, text.replace("margin = 0", "margni = 0")).unwrap();
    let run = tlsa(&["check".into(), "-c".into(), config_arg.clone()]);
    assert_eq!(run.code, Some(3), "{}", run.stdout);
    assert!(run.stdout.starts_with("TLSA UNKNOWN"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&config_arg) && run.stdout.contains("margni"),
        "{}",
        run.stdout
    );
}

/// IMAP and POP3 against a real Dovecot: STARTTLS on each (`--starttls imap|pop3`, the
/// dialogues the unit tests only script) and implicit TLS (IMAPS, POP3S) all present the key
/// the TLSA records name, and openssl agrees on the STARTTLS ports; a wrong record at the
/// POP3 port is a mismatch naming the presented key, there only.
#[test]
fn imap_and_pop3_on_a_real_dovecot() {
    let lab = Lab::start();
    let id = TlsIdentity::self_signed(&["mail.example.test"], 90);
    let dovecot = Dovecot::start(&id);
    let host = lab.name("mail").trim_end_matches('.').to_string();
    let good = format!("3 1 1 {}", id.spki_sha256());
    let endpoints = [
        (dovecot.imap, "imap"),
        (dovecot.pop3, "pop3"),
        (dovecot.imaps, "none"),
        (dovecot.pop3s, "none"),
    ];
    let owner = |addr: SocketAddr| format!("_{}._tcp.{host}.", addr.port());
    for (addr, _) in endpoints {
        set_tlsa(&lab, &owner(addr), std::slice::from_ref(&good));
    }
    let check_at = |addr: SocketAddr, protocol: &str| {
        let (port, address) = (addr.port().to_string(), addr.to_string());
        check(
            &lab,
            &host,
            &[
                "--port",
                &port,
                "--starttls",
                protocol,
                "--address",
                &address,
                "--json",
            ],
        )
    };
    for (addr, protocol) in endpoints {
        let run = check_at(addr, protocol);
        assert_eq!(run.code, Some(0), "{protocol} on {addr}: {}", run.stdout);
        let report = run.json();
        assert_schema(&report);
        assert_eq!(report["endpoints"][0]["protocol"], protocol);
        assert_eq!(verdicts(&report), vec![(addr.to_string(), "match".into())]);
        if protocol != "none" {
            assert_openssl_agrees(
                "match",
                addr,
                Some(protocol),
                &host,
                std::slice::from_ref(&good),
                DNS_TIMEOUT,
            );
        }
    }

    set_tlsa(&lab, &owner(dovecot.pop3), &[format!("3 1 1 {OTHER_HASH}")]);
    let run = check_at(dovecot.pop3, "pop3");
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let entry = &addresses(&run.json())[0];
    assert_eq!(entry["verdict"], "mismatch", "{entry}");
    assert!(
        entry.to_string().contains(&id.spki_sha256()[..12]),
        "names the presented key: {entry}"
    );
    let run = check_at(dovecot.imap, "imap");
    assert_eq!(
        run.code,
        Some(0),
        "the IMAP port is unaffected: {}",
        run.stdout
    );
}
