//! The lab behind `scripts/demo`: a real BIND 9 signing a fresh zone inline and accepting
//! TSIG-signed updates, and a real validating unbound, on free loopback ports (the test lab of
//! tests/support), plus a tlsa config for one self-signed set in that zone, TTLs of 2 s.
//!
//! `demo_lab DIR` writes `DIR/tlsa.toml`, prints `KEY VALUE` lines (`config`, `owner`,
//! `server`, `resolver`, `anchor`, then `ready`) and keeps the servers up until its standard
//! input closes; the script then drives the real `tlsa` commands against them.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: demo_lab DIR");
        std::process::exit(2);
    };
    let lab = support::Lab::start();
    let config = support::write_roll_config(&lab, &dir, &support::self_signed_source(&lab), &[]);
    let mut out = std::io::stdout().lock();
    for (key, value) in [
        ("config", config.display().to_string()),
        ("owner", lab.name(support::MAIL_OWNER)),
        ("server", lab.server_addr().to_string()),
        ("resolver", lab.resolver_addr().to_string()),
        ("anchor", lab.dnskey_anchor_file().display().to_string()),
    ] {
        writeln!(out, "{key} {value}").unwrap();
    }
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    drop(out);
    // Until the script closes our stdin (or dies): then the lab stops its servers by PID.
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}
