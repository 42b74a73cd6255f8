//! `tlsa tlsrpt publish` on real servers (BIND 9 and Knot, each signing the lab zone and
//! taking RFC 2136 with TSIG; unbound validating): the `_smtp._tls` record of the config's
//! DANE MX host is created with its URIs encoded, a stale `v=TLSRPTv1` record replaced, an
//! unrelated TXT record at the name kept; a rerun sends no UPDATE (the zone's serial stays);
//! `--dry-run` changes nothing; a bad `rua` is a config error (exit 2, one paragraph).

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::{Lab, self_signed_source, served_serial, tlsa, write_roll_config};

/// The lab's roll config (one set, endpoint `mail.ZONE:25`) plus a `[tlsrpt]` table.
fn config(lab: &Lab, dir: &Path, tlsrpt: &str) -> PathBuf {
    let path = write_roll_config(lab, dir, &self_signed_source(lab), &[]);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\n[tlsrpt]\n{tlsrpt}\n"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The TXT strings served at `owner`, each record's strings joined.
fn served_txt(lab: &Lab, owner: &str) -> BTreeSet<String> {
    lab.query_server(owner, "TXT")
        .rdata("TXT")
        .iter()
        .map(|r| {
            r.trim()
                .trim_matches('"')
                .split("\" \"")
                .collect::<String>()
        })
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn scenario(lab: Lab) {
    let dir = tempfile::tempdir().unwrap();
    let zone = lab.zone().trim_end_matches('.').to_string();
    let host = format!("mail.{zone}");
    let owner = format!("_smtp._tls.{host}.");
    let config = config(
        &lab,
        dir.path(),
        &format!(
            "rua = [\"mailto:tls,rpt@{zone}\", \"https://reports.{zone}/v1;x\"]\nttl = {}",
            lab.ttl()
        ),
    );
    let wanted = format!("v=TLSRPTv1; rua=mailto:tls%2Crpt@{zone},https://reports.{zone}/v1%3Bx");
    let ttl = lab.ttl();
    lab.nsupdate_ok(&format!(
        "update add {owner} {ttl} IN TXT \"v=TLSRPTv1; rua=mailto:old@{zone}\"\n\
         update add {owner} {ttl} IN TXT \"site-verification=keep\""
    ));
    let before = served_txt(&lab, &owner);
    assert_eq!(before.len(), 2, "{before:?}");
    let serial = || served_serial(lab.server_addr(), lab.zone()).expect("SOA serial");

    // A dry run says what it would do and sends nothing.
    let serial_before = serial();
    let out = tlsa(&config, &["tlsrpt", "publish", "--dry-run"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(&format!("tls-rpt {host}: would publish ({wanted})")),
        "{}",
        stdout(&out)
    );
    assert_eq!(served_txt(&lab, &owner), before, "dry run changed nothing");
    assert_eq!(serial(), serial_before, "dry run sent no UPDATE");

    // Published: the old TLS-RPT record replaced, the unrelated one kept, signed.
    let out = tlsa(&config, &["tlsrpt", "publish"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(&format!("tls-rpt {host}: published")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        served_txt(&lab, &owner),
        BTreeSet::from([wanted.clone(), "site-verification=keep".to_string()])
    );
    assert!(lab.query_server(&owner, "TXT").is_signed("TXT"));

    // Again: nothing to do, no UPDATE (the serial stays), also as a dry run.
    let serial_published = serial();
    assert!(
        serial_published != serial_before,
        "the change bumped the serial"
    );
    for args in [
        &["tlsrpt", "publish"][..],
        &["tlsrpt", "publish", "--dry-run"],
    ] {
        let out = tlsa(&config, args);
        assert!(out.status.success());
        assert!(
            stdout(&out).contains(&format!("tls-rpt {host}: unchanged")),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    assert_eq!(serial(), serial_published, "a rerun sent no UPDATE");

    // `tlsa run` keeps it too, and finds nothing to change.
    let out = tlsa(&config, &["run"]);
    assert!(
        stdout(&out).contains(&format!("tls-rpt {host}: unchanged")),
        "{}",
        stdout(&out)
    );
    assert_eq!(served_txt(&lab, &owner).len(), 2);
}

#[test]
fn bind() {
    scenario(Lab::start());
}

#[test]
fn knot() {
    scenario(Lab::start_knot());
}

/// A `rua` that no sender can use is refused at load: exit 2, one paragraph naming the
/// key and what is expected, and nothing is sent.
#[test]
fn a_bad_rua_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    for (rua, why) in [
        ("ftp://reports.example.com", "scheme \"ftp\""),
        ("mailto:nobody", "no mail address"),
        ("https:///v1", "no host"),
    ] {
        let path = dir.path().join("tlsa.toml");
        std::fs::write(
            &path,
            format!(
                "state_dir = \"{}/state\"\n\n[dnssec]\nresolver = \"127.0.0.1:9\"\n\n[tlsrpt]\nrua = [\"{rua}\"]\n",
                dir.path().display()
            ),
        )
        .unwrap();
        for args in [&["tlsrpt", "publish"][..], &["run"]] {
            let out = tlsa(&path, args);
            assert_eq!(out.status.code(), Some(2), "{rua} {args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("[tlsrpt] rua"), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(err.contains("expected mailto:"), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.trim().contains("\n\n"), "one paragraph: {err}");
        }
    }
}
