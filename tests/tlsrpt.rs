//! TLS-RPT ingestion against real servers and real tools: report mails DKIM-signed by
//! `dkimsign` (python3-dkim) with the key in the lab's signed BIND zone, delivered by a real
//! Postfix into Maildirs that a real Dovecot serves over IMAP, read by `tlsa tlsrpt import`
//! through unbound; the HTTPS receiver under gzip/JSON/oversized/garbage POSTs and a kill -9
//! in a burst; every real-world variant sample; a gzip bomb and deep nesting in bounded
//! memory; the HTML page rendered by headless Chromium. Run with `cargo test --test integration tlsrpt::`.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::{
    Delivery, DkimKey, Lab, MailboxServer, Postfix, PostfixOptions, TlsIdentity, poll_until,
};
use tlsa::tlsrpt::report::{self, PolicyType};
use tlsa::tlsrpt::store::{ReportStore, SqliteStore};

fn material() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/material/tlsrpt")
}

/// The sample reports (not the README beside them).
fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(material())
        .expect("list the samples")
        .map(|e| e.expect("sample entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        10,
        "expected the ten samples in {:?}",
        material()
    );
    files
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A config with a state directory in `dir`, DKIM keys looked up at `resolver`, and
/// `extra` appended (more of `[tlsrpt]`, or its sub-tables).
fn write_config(dir: &Path, resolver: SocketAddr, extra: &str) -> PathBuf {
    let path = dir.join("tlsa.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\n[dnssec]\nresolver = \"{resolver}\"\nmode = \"ad\"\n[tlsrpt]\n{extra}",
            dir.join("state").display()
        ),
    )
    .expect("write the config");
    path
}

fn tlsa(config: &Path, args: &[&str]) -> Output {
    Command::new(support::tlsa_binary())
        .arg("tlsrpt")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("run tlsa")
}

fn ok_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "tlsa failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Asserts the tally's counters named in `expected`.
fn assert_counts(tally: &Value, expected: &[(&str, u64)]) {
    let found: Vec<(&str, u64)> = expected
        .iter()
        .map(|(k, _)| (*k, count(tally, k)))
        .collect();
    assert_eq!(found, expected, "{tally}");
}

/// The failed sessions of a `summary --json`'s result-type lines, added up.
fn failed_sessions(summary: &Value) -> u64 {
    summary["rows"]
        .as_array()
        .expect("summary rows")
        .iter()
        .filter(|r| !r["result_type"].is_null())
        .map(|r| r["failed"].as_u64().unwrap())
        .sum()
}

fn count(tally: &Value, key: &str) -> u64 {
    tally[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {tally}"))
}

// ------------------------------------------------------------------ samples

#[test]
fn each_real_world_variant_sample_is_parsed_and_claims_only_what_it_says() {
    let parsed: BTreeMap<String, report::Report> = samples()
        .iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let bytes = std::fs::read(path).unwrap();
            let report = report::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, report)
        })
        .collect();
    let has_note = |name: &str, text: &str| {
        let notes = &parsed[name].notes;
        assert!(
            notes.iter().any(|n| n.contains(text)),
            "{name}: no note with {text:?} in {notes:?}"
        );
    };
    assert!(
        parsed["rfc-conforming"].notes.is_empty(),
        "{:?}",
        parsed["rfc-conforming"].notes
    );

    let zoneless = &parsed["microsoft-zoneless-datetime"];
    assert_eq!(
        zoneless.start.unix_timestamp(),
        1_795_824_000,
        "2026-11-28T00:00:00 as UTC"
    );
    has_note("microsoft-zoneless-datetime", "taken as UTC");

    let google = &parsed["google-empty-sending-ip"].policies[0].failures[0];
    assert_eq!((google.sending_mta_ip, google.receiving_ip), (None, None));
    assert_eq!(google.failed_session_count, 4);
    has_note("google-empty-sending-ip", "sending-mta-ip is empty");

    assert_eq!(parsed["contact-info-null"].contact, None);
    has_note("contact-info-null", "contact-info is null");

    assert_eq!(
        parsed["mx-host-string"].policies[0].mx_hosts,
        ["mx2.example.test"]
    );
    has_note("mx-host-string", "mx-host is one string");
    assert_eq!(
        parsed["mx-host-array"].policies[0].mx_hosts,
        ["*.example.test", "mx-backup.example.test"]
    );

    let one = &parsed["policy-string-one-string"].policies[0];
    assert_eq!(one.policy_strings.len(), 1);
    assert!(one.policy_strings[0].contains("3 1 1 8f1a"));
    has_note("policy-string-one-string", "policy-string is one string");

    let minimal = &parsed["missing-optional-fields"];
    assert_eq!(minimal.contact, None);
    assert_eq!(minimal.policies[0].policy_type, PolicyType::NoPolicyFound);
    assert!(minimal.policies[0].mx_hosts.is_empty() && minimal.policies[0].failures.is_empty());

    let unknown = &parsed["unknown-result-type"].policies[0].failures[0];
    assert_eq!(unknown.result_type, "x-vendor-handshake-timeout");
    assert!(!unknown.is_known_type());
    has_note("unknown-result-type", "kept as unknown");

    // The schema's placeholder names are no fields: nothing is read from them.
    let placeholder = &parsed["placeholder-keys"].policies[0];
    assert!(
        placeholder.mx_hosts.is_empty(),
        "{:?}",
        placeholder.mx_hosts
    );
    assert_eq!(placeholder.failures[0].sending_mta_ip, None);
    assert_eq!(placeholder.failures[0].additional_information, None);
    has_note("placeholder-keys", "\"mx-host-pattern\" is a placeholder");
    has_note("placeholder-keys", "\"ip-address\" is a placeholder");

    // The same samples gzipped (.json.gz and bare .gz) through the command line.
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("in");
    std::fs::create_dir(&files).unwrap();
    for (i, path) in samples().iter().enumerate() {
        let suffix = if i % 2 == 0 { "json.gz" } else { "gz" };
        let name = format!("{}.{suffix}", path.file_stem().unwrap().to_string_lossy());
        std::fs::write(files.join(name), gzip(&std::fs::read(path).unwrap())).unwrap();
    }
    let config = write_config(dir.path(), "127.0.0.1:53".parse().unwrap(), "");
    let import = || {
        ok_json(&tlsa(
            &config,
            &["import", "--json", files.to_str().unwrap()],
        ))
    };
    let tally = import();
    assert_counts(&tally, &[("stored", 10), ("invalid", 0)]);
    let again = import();
    assert_counts(&again, &[("stored", 0), ("duplicate", 10)]);
    let summary = ok_json(&tlsa(
        &config,
        &["summary", "--json", "--domain", "MX1.example.test."],
    ));
    assert_eq!(summary["reports"]["accepted"], 10);
    let rows = summary["rows"].as_array().unwrap();
    // mx1.example.test's TLSA policy: 3 tlsa-invalid + 4 dnssec-invalid + 5 unknown type.
    assert_eq!(failed_sessions(&summary), 12, "{summary}");
    assert!(
        rows.iter()
            .all(|r| r["policy_domain"] == "mx1.example.test")
    );
}

// ------------------------------------------------------------------ hostile input

/// `/usr/bin/time -v tlsa …`: its output and the peak resident set in KiB.
fn with_peak_memory(config: &Path, args: &[&str]) -> (Output, u64) {
    let time = support::tool_with_hint(
        "time",
        "install GNU time with `scripts/install-test-deps` (apt-get install -y --no-install-recommends time)",
    );
    let output = Command::new(time)
        .arg("-v")
        .arg(support::tlsa_binary())
        .arg("tlsrpt")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("run tlsa under time -v");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {stderr}"));
    (output, peak)
}

#[test]
fn a_gzip_bomb_and_deeply_nested_json_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB of zeros gzipped (about 1 MB on disk).
    let bomb = dir.path().join("bomb.json.gz");
    {
        let file = std::fs::File::create(&bomb).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            encoder.write_all(&chunk).unwrap();
        }
        encoder.finish().unwrap();
    }
    assert!(std::fs::metadata(&bomb).unwrap().len() < 8 << 20);
    // 100,000 levels of arrays inside an otherwise plausible report, plain and gzipped.
    let depth = 100_000;
    let deep = format!(
        "{{\"organization-name\":\"Deep\",\"x\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    std::fs::write(dir.path().join("deep.json"), &deep).unwrap();
    std::fs::write(dir.path().join("deep2.json.gz"), gzip(deep.as_bytes())).unwrap();
    let config = write_config(dir.path(), "127.0.0.1:53".parse().unwrap(), "");
    let (output, peak_kib) = with_peak_memory(
        &config,
        &[
            "import",
            "--json",
            bomb.to_str().unwrap(),
            dir.path().join("deep.json").to_str().unwrap(),
            dir.path().join("deep2.json.gz").to_str().unwrap(),
        ],
    );
    let tally = ok_json(&output);
    assert_counts(&tally, &[("invalid", 3), ("stored", 0)]);
    let problems = tally["problems"].to_string();
    assert!(problems.contains("bomb.json.gz: larger than"), "{problems}");
    assert!(problems.contains("recursion limit exceeded"), "{problems}");
    // The decompression cap is 16 MiB; the binary itself takes a few tens.
    assert!(peak_kib < 120 * 1024, "peak RSS {peak_kib} KiB");
    println!("gzip bomb + deep JSON: peak RSS {peak_kib} KiB");
}

// ------------------------------------------------------------------ HTTPS receiver

struct Receiver {
    child: Child,
    addr: SocketAddr,
}

impl Receiver {
    fn start(config: &Path, identity_dir: &Path) -> Self {
        let mut child = Command::new(support::tlsa_binary())
            .args(["tlsrpt", "-c"])
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0", "--cert"])
            .arg(identity_dir.join("fullchain.pem"))
            .arg("--key")
            .arg(identity_dir.join("key.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tlsa tlsrpt serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the receiver's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Receiver { child, addr }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn identity(dir: &Path) -> TlsIdentity {
    let identity = TlsIdentity::self_signed(&["tlsrpt.example.test"], 30);
    std::fs::write(dir.join("fullchain.pem"), &identity.chain_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &identity.key_pem).unwrap();
    identity
}

fn client(identity: &TlsIdentity, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(identity.chain_pem.as_bytes()).unwrap(),
        )
        .resolve("tlsrpt.example.test", addr)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("https://tlsrpt.example.test:{}/v1/tlsrpt", addr.port())
}

/// A small valid report with this id.
fn generated_report(id: &str, failed: u64) -> String {
    format!(
        r#"{{"organization-name":"Burst Sender","date-range":{{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"}},"contact-info":"r@burst.example","report-id":"{id}","policies":[{{"policy":{{"policy-type":"tlsa","policy-string":["3 1 1 00"],"policy-domain":"mx1.example.test","mx-host":["mx1.example.test"]}},"summary":{{"total-successful-session-count":10,"total-failure-session-count":{failed}}},"failure-details":[{{"result-type":"tlsa-invalid","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mx1.example.test","failed-session-count":{failed}}}]}}]}}"#
    )
}

async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    media: &str,
    body: Vec<u8>,
) -> Result<(u16, String), reqwest::Error> {
    let response = client
        .post(url(addr))
        .header("Content-Type", media)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

#[test]
fn the_https_receiver_stores_gzip_and_json_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let identity = identity(dir.path());
    let config = write_config(dir.path(), "127.0.0.1:53".parse().unwrap(), "");
    let receiver = Receiver::start(&config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(&identity, receiver.addr);
    let conforming = std::fs::read(material().join("rfc-conforming.json")).unwrap();
    let zoneless = std::fs::read(material().join("microsoft-zoneless-datetime.json")).unwrap();
    // (media type, body, expected status, text the answer holds); in this order.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/tlsrpt+gzip", gzip(&conforming), 200, "stored"),
        (
            "application/tlsrpt+gzip",
            gzip(&conforming),
            200,
            "duplicate",
        ),
        ("application/tlsrpt+json", zoneless.clone(), 200, "stored"),
        (
            "application/tlsrpt+json",
            vec![b' '; 17 << 20],
            413,
            "at most",
        ),
        ("text/plain", zoneless.clone(), 415, "expected Content-Type"),
        (
            "application/tlsrpt+json",
            b"{\"not\":\"a report\"}".to_vec(),
            400,
            "organization-name",
        ),
        (
            "application/tlsrpt+gzip",
            b"plain".to_vec(),
            400,
            "not gzip",
        ),
    ];
    runtime.block_on(async {
        for (media, body, status, text) in cases {
            let size = body.len();
            match post(&client, receiver.addr, media, body).await {
                Ok((got, answer)) => {
                    assert_eq!(got, status, "{media}, {size} bytes: {answer}");
                    assert!(answer.contains(text), "{media}, {size} bytes: {answer}");
                }
                // The server may close while a client still sends an oversized body.
                Err(e) => assert_eq!(status, 413, "{media}, {size} bytes: {e}"),
            }
        }
        let get = client.get(url(receiver.addr)).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 405);
    });
    let store = SqliteStore::open(&dir.path().join("state/tlsrpt.sqlite")).unwrap();
    let counts = store.counts().unwrap();
    assert_eq!(counts.accepted, 2, "{counts:?}");
    assert!(
        store
            .has_accepted(
                "Conforming Sender Inc.",
                "2026-11-27T00:00:00Z_mx1.example.test"
            )
            .unwrap()
    );
    assert!(
        store
            .has_accepted("Zoneless Datetimes Corp", "133456789012345678+example.test")
            .unwrap()
    );
}

#[test]
fn every_acknowledged_report_survives_a_kill_9_of_the_receiver_in_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let identity = identity(dir.path());
    let config = write_config(dir.path(), "127.0.0.1:53".parse().unwrap(), "");
    let mut receiver = Receiver::start(&config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let total = 400usize;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed_posts = Arc::new(Mutex::new(0usize));
    let kill_after = 120usize;
    runtime.block_on(async {
        let client = client(&identity, receiver.addr);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..8 {
            let (client, next, acked, failed_posts) = (
                client.clone(),
                next.clone(),
                acked.clone(),
                failed_posts.clone(),
            );
            let addr = receiver.addr;
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let id = format!("burst-{i}");
                    let body = gzip(generated_report(&id, 1).as_bytes());
                    match post(&client, addr, "application/tlsrpt+gzip", body).await {
                        Ok((200, _)) => acked.lock().unwrap().push(id),
                        _ => *failed_posts.lock().unwrap() += 1,
                    }
                }
            }));
        }
        // kill -9 once enough POSTs were acknowledged, while the others are in flight.
        poll_until(
            "acknowledged POSTs before the kill",
            Duration::from_secs(60),
            || (acked.lock().unwrap().len() >= kill_after).then_some(()),
        );
        receiver.child.kill().expect("kill -9 the receiver");
        receiver.child.wait().unwrap();
        for worker in workers {
            worker.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    let failed = *failed_posts.lock().unwrap();
    assert!(
        acked.len() >= kill_after && failed > 0,
        "acked {} failed {failed}",
        acked.len()
    );
    // Restarted on the same store: every acknowledged report is there.
    let restarted = Receiver::start(&config, dir.path());
    let store = SqliteStore::open(&dir.path().join("state/tlsrpt.sqlite")).unwrap();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !store.has_accepted("Burst Sender", id).unwrap())
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // And the reporters' retries of the rest are taken after the restart.
    runtime.block_on(async {
        let client = client(&identity, restarted.addr);
        for i in 0..total {
            let id = format!("burst-{i}");
            let body = gzip(generated_report(&id, 1).as_bytes());
            let (status, _) = post(&client, restarted.addr, "application/tlsrpt+gzip", body)
                .await
                .unwrap();
            assert_eq!(status, 200, "{id}");
        }
    });
    assert_eq!(store.counts().unwrap().accepted, total as u64);
    println!(
        "burst: {} acknowledged before kill -9, {failed} failed in flight, none lost",
        acked.len()
    );
}

// ------------------------------------------------------------------ mail: Postfix, Dovecot, DKIM

/// The domain whose reports these are (the mailbox domain), and the reporting domain
/// that signs them is the lab's zone.
const MAIL_DOMAIN: &str = "example.test";

/// A `multipart/report; report-type=tlsrpt` message carrying `json` gzipped and base64'd.
fn report_mail(submitter: &str, to: &str, report_id: &str, json: &str) -> (String, String) {
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        gzip(json.as_bytes()),
    );
    let wrapped: String = payload
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    let message = format!(
        "From: TLS reports <tlsrpt@{submitter}>\r\n\
         To: {to}\r\n\
         Subject: Report Domain: {MAIL_DOMAIN} Submitter: {submitter} Report-ID: <{report_id}>\r\n\
         Date: Mon, 30 Nov 2026 06:00:00 +0000\r\n\
         Message-ID: <{report_id}@{submitter}>\r\n\
         TLS-Report-Domain: {MAIL_DOMAIN}\r\n\
         TLS-Report-Submitter: {submitter}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"tlsrpt-boundary\"\r\n\
         \r\n\
         --tlsrpt-boundary\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is an aggregate TLS report from {submitter}.\r\n\
         \r\n\
         --tlsrpt-boundary\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{submitter}!{MAIL_DOMAIN}!1795996800!1796083199!{report_id}.json.gz\"\r\n\
         \r\n\
         {wrapped}\
         --tlsrpt-boundary--\r\n"
    );
    (message, wrapped)
}

/// One SMTP transaction to Postfix on `addr`; panics unless the message is accepted.
fn send_mail(addr: SocketAddr, from: &str, to: &str, message: &[u8]) {
    let stream = TcpStream::connect(addr).expect("connect to Postfix");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let expect = |code: &str, reader: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the SMTP reply");
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220", &mut reader);
    for (command, code) in [
        ("EHLO reporter.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        expect(code, &mut reader);
    }
    // Dot-stuffing: a line starting with '.' gets another.
    let text = String::from_utf8_lossy(message).replace("\r\n.", "\r\n..");
    writer.write_all(text.as_bytes()).unwrap();
    writer.write_all(b".\r\n").unwrap();
    expect("250", &mut reader);
    writer.write_all(b"QUIT\r\n").unwrap();
}

/// `tlsa tlsrpt import --maildir MAILDIR` with its own state in `state`, DKIM as `mode` says.
fn import_maildir(state: &Path, resolver: SocketAddr, mode: &str, maildir: &Path) -> Value {
    std::fs::create_dir_all(state).unwrap();
    let config = write_config(state, resolver, &format!("dkim = \"{mode}\"\n"));
    ok_json(&tlsa(
        &config,
        &["import", "--json", "--maildir", maildir.to_str().unwrap()],
    ))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Three reports for `user`: signed, signed then modified, unsigned — delivered by Postfix.
fn deliver_three(postfix: &Postfix, key: &DkimKey, user: &str) -> [String; 3] {
    let to = format!("{user}@{MAIL_DOMAIN}");
    let from = format!("tlsrpt@{}", key.domain);
    let ids = [
        format!("{user}-signed"),
        format!("{user}-modified"),
        format!("{user}-unsigned"),
    ];
    let (good, _) = report_mail(&key.domain, &to, &ids[0], &generated_report(&ids[0], 3));
    send_mail(
        postfix.addresses()[0],
        &from,
        &to,
        &key.sign(good.as_bytes()),
    );
    // Signed, then the report swapped for another (more failures, another id): the body
    // hash no longer matches.
    let (original, original_payload) = report_mail(
        &key.domain,
        &to,
        &ids[1],
        &generated_report(&format!("{user}-original"), 1),
    );
    let signed = String::from_utf8(key.sign(original.as_bytes())).unwrap();
    let (_, forged_payload) =
        report_mail(&key.domain, &to, &ids[1], &generated_report(&ids[1], 999));
    let modified = signed.replace(&original_payload, &forged_payload);
    assert_ne!(modified, signed);
    send_mail(postfix.addresses()[0], &from, &to, modified.as_bytes());
    let (unsigned, _) = report_mail(&key.domain, &to, &ids[2], &generated_report(&ids[2], 5));
    send_mail(postfix.addresses()[0], &from, &to, unsigned.as_bytes());
    ids
}

#[test]
fn mail_reports_via_postfix_dovecot_imap_and_maildir_are_dkim_checked() {
    let lab = Lab::start();
    let signer_domain = lab.zone().trim_end_matches('.').to_string();
    let dir = tempfile::tempdir().unwrap();
    let key = DkimKey::generate(&dir.path().join("dkim"), &signer_domain, "s1");
    key.publish(&lab);

    let delivery = Delivery {
        domain: MAIL_DOMAIN.to_string(),
        users: vec!["bob".into(), "carol".into()],
        base: dir.path().join("mail"),
    };
    let postfix = Postfix::start(PostfixOptions {
        deliver: Some(delivery.clone()),
        ..PostfixOptions::default()
    });
    let password = "s3cret-imap-pw";
    // IMAPS with a certificate from a CA of the test's own, given to tlsa as ca_file.
    let identity = TlsIdentity::ca_issued(&["localhost"], 30);
    let ca_file = dir.path().join("imap-ca.pem");
    let ca = identity
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .nth(1);
    std::fs::write(&ca_file, ca.expect("the CA certificate")).unwrap();
    let dovecot = MailboxServer::start(&delivery, &[("bob", password)], &identity);

    let bob = deliver_three(&postfix, &key, "bob");
    let carol = deliver_three(&postfix, &key, "carol");
    for user in ["bob", "carol"] {
        let new = delivery.maildir(user).join("new");
        poll_until(
            &format!("three messages in {}", new.display()),
            Duration::from_secs(30),
            || (files_in(&new).len() == 3).then_some(()),
        );
    }

    // IMAP: Dovecot over the delivered Maildir.
    let password_file = dir.path().join("imap.pass");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let imap_table = |server: String, tls: bool| {
        format!(
            "dkim = \"require\"\nstore = \"{}\"\n[tlsrpt.imap]\nserver = \"{server}\"\nuser = \"bob@{MAIL_DOMAIN}\"\npassword_file = \"{}\"\ntls = {tls}\nca_file = \"{}\"\nafter = \"seen\"\n",
            dir.path().join("imap.sqlite").display(),
            password_file.display(),
            ca_file.display()
        )
    };
    let imap_config = write_config(
        dir.path(),
        lab.resolver_addr(),
        &imap_table(format!("localhost:{}", dovecot.imaps.port()), true),
    );
    let output = tlsa(&imap_config, &["import", "--imap", "--json"]);
    let all_output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all_output.contains(password), "the password was printed");
    let tally = ok_json(&output);
    assert_counts(&tally, &[("stored", 1), ("quarantined", 2), ("invalid", 0)]);
    let store = SqliteStore::open(&dir.path().join("imap.sqlite")).unwrap();
    assert!(store.has_accepted("Burst Sender", &bob[0]).unwrap());
    assert!(!store.has_accepted("Burst Sender", &bob[1]).unwrap());
    assert!(!store.has_accepted("Burst Sender", &bob[2]).unwrap());
    let counts = store.counts().unwrap();
    assert_eq!(
        counts.quarantined,
        [("fail".to_string(), 1), ("none".to_string(), 1)],
        "{counts:?}"
    );
    // The summary holds the signed report only (3 failures), and counts the others apart.
    let summary = ok_json(&tlsa(&imap_config, &["summary", "--json"]));
    assert_eq!(failed_sessions(&summary), 3, "{summary}");
    // All three are \Seen now: a second run, over plain IMAP on loopback, finds nothing.
    let imap_config = write_config(
        dir.path(),
        lab.resolver_addr(),
        &imap_table(dovecot.imap.to_string(), false),
    );
    let again = ok_json(&tlsa(&imap_config, &["import", "--imap", "--json"]));
    let seen_all = ["stored", "quarantined", "duplicate", "invalid", "retry"]
        .iter()
        .all(|k| count(&again, k) == 0);
    assert!(seen_all, "{again}");
    // A wrong password is refused, and still not printed.
    std::fs::write(&password_file, "wrong-password\n").unwrap();
    let refused = tlsa(&imap_config, &["import", "--imap", "--json"]);
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("login as bob@example.test refused"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");

    // Maildir: carol's messages straight from the directory Postfix delivered to.
    let maildir = delivery.maildir("carol");
    let maildir_config_dir = dir.path().join("maildir-run");
    let tally = import_maildir(
        &maildir_config_dir,
        lab.resolver_addr(),
        "require",
        &maildir,
    );
    assert_counts(&tally, &[("stored", 1), ("quarantined", 2)]);
    assert!(files_in(&maildir.join("new")).is_empty());
    let cur = files_in(&maildir.join("cur"));
    assert_eq!(cur.len(), 3, "{cur:?}");
    assert!(
        cur.iter().all(|p| p.to_string_lossy().ends_with(":2,S")),
        "{cur:?}"
    );
    let store = SqliteStore::open(&maildir_config_dir.join("state/tlsrpt.sqlite")).unwrap();
    assert!(store.has_accepted("Burst Sender", &carol[0]).unwrap());
    assert_eq!(store.counts().unwrap().accepted, 1);

    // `dkim = "record"`: the same three accepted, verdicts recorded.
    for path in &cur {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(":2,S", "");
        std::fs::rename(path, maildir.join("new").join(name)).unwrap();
    }
    let tally = import_maildir(
        &dir.path().join("record-run"),
        lab.resolver_addr(),
        "record",
        &maildir,
    );
    assert_counts(&tally, &[("stored", 3), ("quarantined", 0)]);
}

// ------------------------------------------------------------------ the HTML page in Chromium

/// Failed sessions per (MX host, day) as the samples say, read here independently.
fn expected_failures() -> BTreeMap<(String, String), u64> {
    let mut expected = BTreeMap::new();
    let mut days = std::collections::BTreeSet::new();
    let mut hosts = std::collections::BTreeSet::new();
    for path in samples() {
        let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let day = json["date-range"]["start-datetime"].as_str().unwrap()[..10].to_string();
        days.insert(day.clone());
        for policy in json["policies"].as_array().unwrap() {
            for failure in policy["failure-details"].as_array().into_iter().flatten() {
                let host = failure["receiving-mx-hostname"]
                    .as_str()
                    .unwrap()
                    .to_string();
                hosts.insert(host.clone());
                *expected.entry((host, day.clone())).or_insert(0) +=
                    failure["failed-session-count"].as_u64().unwrap();
            }
        }
    }
    for host in &hosts {
        for day in &days {
            expected.entry((host.clone(), day.clone())).or_insert(0);
        }
    }
    expected
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

#[test]
fn the_html_summary_rendered_by_chromium_charts_the_samples_failures() {
    let chromium = support::tool_with_hint(
        "chromium",
        "install Chromium with `scripts/install-test-deps` (apt-get install -y --no-install-recommends chromium)",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:53".parse().unwrap(), "");
    let paths: Vec<String> = samples().iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["import", "--json"];
    args.extend(paths.iter().map(String::as_str));
    assert_eq!(count(&ok_json(&tlsa(&config, &args)), "stored"), 10);
    let page = dir.path().join("summary.html");
    let output = tlsa(&config, &["summary", "--html", page.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let profile = dir.path().join("chromium");
    let run = |extra: &[&str]| {
        Command::new(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path())
            .output()
            .expect("run chromium")
    };
    let dumped = run(&["--dump-dom"]);
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let dom = String::from_utf8_lossy(&dumped.stdout).to_string();
    assert!(
        dom.contains("<svg id=\"failures-chart\""),
        "no chart in the DOM:\n{dom}"
    );

    // Every point of every series, as the browser's DOM has them.
    let mut charted = BTreeMap::new();
    for series in dom.split("<g class=\"series\"").skip(1) {
        let head = &series[..series.find('>').unwrap()];
        let mx = attribute(head, "data-mx").expect("data-mx");
        let body = &series[..series.find("</g>").unwrap()];
        assert!(
            body.contains(&format!(">{mx}</text>")),
            "no legend for {mx}"
        );
        for circle in body.split("<circle").skip(1) {
            let tag = &circle[..circle.find('>').unwrap()];
            let day = attribute(tag, "data-day").unwrap();
            let failed: u64 = attribute(tag, "data-failed").unwrap().parse().unwrap();
            assert!(
                circle.contains(&format!("<title>{mx} {day}: {failed} failed</title>")),
                "no title for {mx} {day}"
            );
            charted.insert((mx.clone(), day), failed);
        }
        let labels: Vec<u64> = body
            .split("<text class=\"count\"")
            .skip(1)
            .map(|t| {
                t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]
                    .parse()
                    .unwrap()
            })
            .collect();
        let nonzero: Vec<u64> = charted
            .iter()
            .filter(|((m, _), v)| *m == mx && **v > 0)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(labels, nonzero, "count labels of {mx}");
    }
    assert_eq!(charted, expected_failures());
    // The y axis goes up to the largest day's failures.
    let max = expected_failures().values().copied().max().unwrap();
    assert!(dom.contains("class=\"y-max\"") && dom.contains(&format!(">{max}</text>")));
    // The table holds every summary line.
    let summary = ok_json(&tlsa(&config, &["summary", "--json"]));
    let rows = summary["rows"].as_array().unwrap().len();
    assert_eq!(
        dom.matches("<tr class=\"total\">").count() + dom.matches("<tr class=\"failure\">").count(),
        rows
    );

    // And it renders: a screenshot of the page.
    let shot = dir.path().join("summary.png");
    let screenshot = run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=900,700",
    ]);
    assert!(screenshot.status.success());
    let mut png = Vec::new();
    std::fs::File::open(&shot)
        .unwrap()
        .read_to_end(&mut png)
        .unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
