//! The zone-file back-end against a real BIND 9 loading a zone file that `$INCLUDE`s tlsa's
//! records file, signing inline, reloaded through a real rndc control channel: publish,
//! replace, delete — the file's lines, one SOA serial increment per change, none when nothing
//! changes, each change served signed and Secure through unbound and through the crate's
//! validator; a failing reload puts the file back; without a serial bump BIND refuses the
//! reload. A hand edit between read and write, several owners, TTL changes and each record
//! type are the back-end contract in `tests/provider_contract.rs`.
//! Run with `cargo test --test integration zonefile::`.

use crate::support;
use support::records::{A, B, C, edit, name, set, tlsa_id, tlsa_of};

use std::fs;
use std::time::{Duration, Instant};

use support::{BindZoneFileLab, poll_until};
use tlsa::dns::observe::dnssec::{Anchors, Validator, Verdict};
use tlsa::dns::publish::zonefile::{ZoneFile, ZoneFileConfig};
use tlsa::dns::publish::zonefile_format::soa_serial;
use tlsa::dns::{DnsError, Provider, apply_edits};

/// Generous: the machine may be busy; every poll ends as soon as it sees.
const TIMEOUT: Duration = Duration::from_secs(15);

fn config(lab: &BindZoneFileLab) -> ZoneFileConfig {
    let mut config = ZoneFileConfig::new(name(lab.zone()), lab.records_file(), lab.reload_argv());
    config.serial_file = Some(lab.zone_file().to_owned());
    config.reload_timeout = Duration::from_secs(20);
    config
}

fn backend(lab: &BindZoneFileLab) -> ZoneFile {
    ZoneFile::new(config(lab)).expect("zone-file back-end")
}

fn zone_serial(lab: &BindZoneFileLab) -> u32 {
    let text = fs::read_to_string(lab.zone_file()).expect("read zone file");
    soa_serial(&text).expect("SOA serial").1
}

/// Polls BIND until it serves exactly `records` at `owner`, signed (or a signed denial).
fn assert_served_signed(lab: &BindZoneFileLab, owner: &str, records: &[&str]) {
    let expected = set(records);
    poll_until(
        &format!("{owner} TLSA {records:?} served signed by BIND"),
        TIMEOUT,
        || {
            let reply = lab.query_server(owner, "TLSA");
            let signed = if expected.is_empty() {
                reply.raw.contains("RRSIG\tNSEC")
            } else {
                reply.is_signed("TLSA")
            };
            (reply.has_flag("aa") && tlsa_of(&reply) == expected && signed).then_some(())
        },
    );
}

/// unbound (cache flushed) answers exactly `records` with AD, and so does the crate's
/// validator, anchored at the zone's DS: Secure.
async fn assert_secure(lab: &BindZoneFileLab, owner: &str, records: &[&str]) {
    let expected = set(records);
    lab.resolver().flush_zone(lab.zone());
    poll_until(
        &format!("{owner} TLSA {records:?} validated by unbound"),
        TIMEOUT,
        || {
            let reply = lab.query_resolver(owner, "TLSA");
            let answered =
                reply.is_noerror() || (expected.is_empty() && reply.status == "NXDOMAIN");
            (answered && reply.has_flag("ad") && tlsa_of(&reply) == expected).then_some(())
        },
    );
    let validator = Validator::anchored(
        lab.resolver_addr(),
        &Anchors::File(lab.ds_anchor_file().to_owned()),
    )
    .await
    .expect("validator from the DS anchor");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let validation = validator.validate_tlsa(&name(owner)).await;
        if validation.verdict == Verdict::Secure && *validation.records() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{owner} not Secure with {records:?} within {TIMEOUT:?}: {validation}"
        );
        lab.resolver().flush_zone(lab.zone());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_published(lab: &BindZoneFileLab, owner: &str, records: &[&str]) {
    assert_served_signed(lab, owner, records);
    assert_secure(lab, owner, records).await;
}

#[tokio::test]
async fn publish_replace_delete_through_an_included_file_and_rndc() {
    let lab = BindZoneFileLab::start();
    let files = backend(&lab);
    let zone = name(lab.zone());
    let (mail, www) = (lab.name("_25._tcp.mail"), lab.name("_443._tcp.www"));
    let ttl = lab.ttl();
    let serial_0 = zone_serial(&lab);

    let report = files.check().await.expect("the set-up checks out");
    assert!(report.join("\n").contains("SOA serial"), "{report:?}");

    apply_edits(&files, &zone, &[edit(&mail, &[A], &[], ttl)])
        .await
        .expect("publish")
        .expect("a change was needed");
    let written = fs::read_to_string(lab.records_file()).unwrap();
    assert!(
        written.contains(&format!("{mail} {ttl} IN TLSA {A}\n")),
        "{written}"
    );
    assert_eq!(zone_serial(&lab), serial_0 + 1);
    let read = files.read(&zone, &tlsa_id(&mail)).await.unwrap();
    assert_eq!((read.records, read.ttl), (set(&[A]), Some(ttl)));
    assert_published(&lab, &mail, &[A]).await;

    // Replace at one owner and publish at another: one file write, one reload.
    apply_edits(
        &files,
        &zone,
        &[edit(&mail, &[B], &[A], ttl), edit(&www, &[C], &[], ttl)],
    )
    .await
    .expect("replace")
    .expect("a change was needed");
    assert_eq!(zone_serial(&lab), serial_0 + 2);
    assert_published(&lab, &mail, &[B]).await;
    assert_published(&lab, &www, &[C]).await;

    // Nothing to change: no write, no reload, no serial bump.
    assert_eq!(
        apply_edits(&files, &zone, &[edit(&mail, &[B], &[], ttl)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(zone_serial(&lab), serial_0 + 2);

    apply_edits(
        &files,
        &zone,
        &[edit(&mail, &[], &[B], ttl), edit(&www, &[], &[C], ttl)],
    )
    .await
    .expect("delete")
    .expect("a change was needed");
    let written = fs::read_to_string(lab.records_file()).unwrap();
    assert!(!written.contains("TLSA 3"), "{written}");
    assert_published(&lab, &mail, &[]).await;
    assert_published(&lab, &www, &[]).await;
}

#[tokio::test]
async fn a_failing_reload_restores_the_file() {
    let lab = BindZoneFileLab::start();
    let zone = name(lab.zone());
    let mail = lab.name("_25._tcp.mail");
    apply_edits(&backend(&lab), &zone, &[edit(&mail, &[A], &[], 2)])
        .await
        .unwrap();
    assert_served_signed(&lab, &mail, &[A]);
    let before = fs::read(lab.records_file()).unwrap();

    // rndc fails for a zone the server does not have.
    let mut broken = config(&lab);
    broken.reload = lab.rndc_argv();
    broken
        .reload
        .extend(["reload".into(), "no-such-zone.test".into()]);
    let files = ZoneFile::new(broken).unwrap();
    let err = apply_edits(&files, &zone, &[edit(&mail, &[B], &[A], 2)])
        .await
        .expect_err("the reload fails");
    assert!(matches!(err, DnsError::ReloadFailed { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("reload failure: {text}");
    assert!(
        text.contains("no-such-zone.test")
            && text.contains("exit status: 1")
            && text.contains("restored to its previous content"),
        "{text}"
    );
    assert_eq!(fs::read(lab.records_file()).unwrap(), before);
    assert_eq!(
        files.read(&zone, &tlsa_id(&mail)).await.unwrap().records,
        set(&[A])
    );
    // A program that does not exist: the check says so before any change is tried.
    let mut missing = config(&lab);
    missing.reload = vec!["/nonexistent/rndc".into(), "reload".into()];
    let check = ZoneFile::new(missing).unwrap().check().await.unwrap_err();
    assert!(check.to_string().contains("/nonexistent/rndc"), "{check}");
    // The server still serves A; the right command then publishes B.
    assert_served_signed(&lab, &mail, &[A]);
    apply_edits(&backend(&lab), &zone, &[edit(&mail, &[B], &[A], 2)])
        .await
        .unwrap();
    assert_published(&lab, &mail, &[B]).await;
}

/// Without `serial_file`, BIND (inline signing) refuses the reload although rndc exits 0 —
/// the reason the back-end can increment the serial. Observed in BIND's log, and the
/// server keeps serving the old (empty) RRset.
#[tokio::test]
async fn without_a_serial_bump_bind_refuses_the_reload_silently() {
    let lab = BindZoneFileLab::start();
    let mut no_serial = config(&lab);
    no_serial.serial_file = None;
    let files = ZoneFile::new(no_serial).unwrap();
    let zone = name(lab.zone());
    let mail = lab.name("_25._tcp.mail");
    apply_edits(&files, &zone, &[edit(&mail, &[A], &[], 2)])
        .await
        .expect("rndc exits 0");
    poll_until("BIND's refusal in its log", TIMEOUT, || {
        lab.log().contains("not loaded due to errors").then_some(())
    });
    assert!(lab.log().contains("out of range"), "{}", lab.log_tail());
    assert_served_signed(&lab, &mail, &[]);
}

/// `tlsa providers --backend zonefile`: the set-up checked from the command line.
#[test]
fn the_providers_command_checks_the_files_and_the_reload_program() {
    let lab = BindZoneFileLab::start();
    let run = |reload: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tlsa"))
            .args(["providers", "--backend", "zonefile", "--zone", lab.zone()])
            .arg("--records-file")
            .arg(lab.records_file())
            .arg("--serial-file")
            .arg(lab.zone_file())
            .arg("--")
            .args(reload)
            .output()
            .expect("run tlsa")
    };
    let ok = run(&lab.reload_argv());
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        stdout.contains("writable, SOA serial") && stdout.contains("not run by this check"),
        "{stdout}"
    );
    let missing = run(&["no-such-reload-tool".into(), "{zone}".into()]);
    // A program the configuration names but this host lacks: a config error (2).
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stdout)
            .contains("\"no-such-reload-tool\" not found in PATH"),
        "{missing:?}"
    );
}
