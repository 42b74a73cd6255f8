//! `tlsa lookup` against the lab: per-server view and DNSSEC verdict.

use crate::support;

use std::process::Command;

use support::{Lab, TlsaRun};

fn lookup(lab: &Lab, resolver: std::net::SocketAddr, owner: &str) -> serde_json::Value {
    TlsaRun::ok([
        "lookup",
        owner,
        "--json",
        "--resolver",
        &resolver.to_string(),
        "--anchor",
        lab.dnskey_anchor_file().to_str().unwrap(),
        "--ns-port",
        &lab.server_addr().port().to_string(),
    ])
    .json()
}

#[test]
fn shows_every_server_and_the_validated_rrset() {
    let lab = Lab::start();
    let owner = lab.name("_25._tcp.mail");
    let data = "ab".repeat(32);
    lab.nsupdate_ok(&format!("update add {owner} 2 IN TLSA 3 1 1 {data}"));
    let report = support::poll_until(
        "record served and validated",
        std::time::Duration::from_secs(10),
        || {
            let report = lookup(&lab, lab.resolver_addr(), &owner);
            (report["dnssec"]["verdict"] == "Secure"
                && report["servers"][0]["records"][0].is_string())
            .then_some(report)
        },
    );
    assert_eq!(report["zone"], lab.zone());
    assert_eq!(report["dnssec"]["records"][0], format!("3 1 1 {data}"));
    let server = &report["servers"][0];
    assert_eq!(server["address"], lab.server_addr().to_string());
    assert_eq!(server["records"][0], format!("3 1 1 {data}"));
    assert_eq!(server["ttl"], 2);
    assert!(server["serial"].as_u64().unwrap() > 0);

    // A name without TLSA: a validated negative answer.
    let none = lookup(&lab, lab.resolver_addr(), &lab.name("_25._tcp.nothing"));
    assert_eq!(none["dnssec"]["verdict"], "Secure");
    assert_eq!(none["servers"][0]["records"].as_array().unwrap().len(), 0);
}

#[test]
fn a_resolver_with_a_wrong_ds_gives_no_secure_verdict() {
    let lab = Lab::start();
    let owner = lab.name("_25._tcp.mail");
    lab.nsupdate_ok(&format!(
        "update add {owner} 2 IN TLSA 3 1 1 {}",
        "cd".repeat(32)
    ));
    let bad = lab.start_resolver_with_ds(&lab.wrong_ds());
    let out = Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args([
            "lookup",
            &owner,
            "--json",
            "--resolver",
            &bad.addr().to_string(),
        ])
        .args(["--anchor", lab.dnskey_anchor_file().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "not Secure: exit 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["dnssec"]["verdict"] == "Bogus" || report["dnssec"]["verdict"] == "Indeterminate",
        "{report}"
    );
    assert!(
        report["servers_error"]
            .as_str()
            .unwrap()
            .contains("Server Failure"),
        "{report}"
    );
}
