//! `tlsa check` through a resolver that strips DNSSEC (a forwarder dropping RRSIG, NSEC
//! and NSEC3, as many stubs and routers do): the check names the resolver as the problem
//! and says what to do, instead of blaming the zone's signatures; the monitoring line stays
//! under 200 characters. Through the lab's validating unbound, nothing blames the resolver.

use crate::support;

use std::net::SocketAddr;
use std::process::{Command, Output};

use support::{Forwarder, Lab};

/// `tlsa check mail.ZONE --port PORT` (nothing listens there) through `resolver`.
fn check(lab: &Lab, port: u16, resolver: SocketAddr) -> Output {
    let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
    Command::new(support::tlsa_binary())
        .args([
            "check",
            &host,
            "--port",
            &port.to_string(),
            "--starttls",
            "smtp",
        ])
        .args(["--resolver", &resolver.to_string()])
        .args(["--anchor", lab.dnskey_anchor_file().to_str().unwrap()])
        .args(["--timeout", "2"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_strips_dnssec_is_named_as_the_problem() {
    let lab = Lab::start();
    let port = support::closed_port().port();
    let mail = lab.name("mail");
    lab.nsupdate_ok(&format!(
        "update add _{port}._tcp.{mail} 2 IN TLSA 3 1 1 {}\nupdate add {mail} 2 IN A 127.0.0.1",
        "ab".repeat(32)
    ));
    let stripping = Forwarder::stripping_dnssec(lab.resolver_addr()).await;
    let resolver = stripping.addr;
    let (lab, stripped, validated) = tokio::task::spawn_blocking(move || {
        // Served and validated first, so that the stripped run sees the same data.
        let validated = support::poll_until(
            "the records validate through unbound",
            std::time::Duration::from_secs(10),
            || {
                let out = check(&lab, port, lab.resolver_addr());
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.contains(" secure: 3 1 1").then_some(out)
            },
        );
        let stripped = check(&lab, port, resolver);
        (lab, stripped, validated)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&stripped.stdout).into_owned();
    eprintln!("{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.chars().count() < 200,
        "monitoring line of {} characters: {first}",
        first.chars().count()
    );
    assert!(
        first.starts_with(&format!(
            "TLSA UNKNOWN: 0 of 1 addresses match; resolver {resolver} strips DNSSEC"
        )) && first.contains("unbound"),
        "{first}"
    );
    assert_eq!(
        stripped.status.code(),
        Some(3),
        "UNKNOWN: the check itself is not set up right"
    );
    assert!(stdout.contains("without RRSIG records"), "{stdout}");

    // The lab's unbound passes DNSSEC on: the verdict is about the server (nothing listens).
    let text = String::from_utf8_lossy(&validated.stdout);
    assert!(!text.contains("strips DNSSEC"), "{text}");
    assert_eq!(validated.status.code(), Some(2), "{text}");
    drop(lab);
}
