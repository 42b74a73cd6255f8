//! A full local key roll, start to finish, on a throwaway DNSSEC-signed zone:
//! real BIND 9 (inline signing, TSIG updates) and a real validating unbound
//! on loopback, TTLs of 2 s, a self-signed DANE-EE certificate set. Shows
//! each step as it happens and what the authoritative server serves.
//!
//! Run: `scripts/demo` (installs bind9/unbound if missing), or
//! `cargo run --example local_roll` when they are installed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use tlsa::clock::SystemClock;
use tlsa::config::Config;
use tlsa::roll::executor::{DeployedFiles, Engine, RunOptions, SetOutcome};
use tlsa::roll::state::StateStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = support::Lab::start();
    let dir = tempfile::tempdir()?;
    let zone = lab.zone().trim_end_matches('.').to_string();
    let config_text = format!(
        r#"state_dir = "{dir}/state"

[dnssec]
resolver = "{resolver}"
anchor = "{anchor}"

[[zone]]
name = "{zone}"
backend = "rfc2136"
server = "{server}"
tsig_key = {{ file = "{key}" }}
ns_port = {port}

[[set]]
name = "mail"
source = {{ self-signed = {{ names = ["mail.{zone}"] }} }}
deploy = {{ dir = "{dir}/live" }}
ttl = 2
margin = 0
# No server listens for this test set: check the deploy target instead.
verify = "deployed-files"

[[set.endpoint]]
host = "mail.{zone}"
port = 25
"#,
        dir = dir.path().display(),
        resolver = lab.resolver_addr(),
        anchor = lab.dnskey_anchor_file().display(),
        server = lab.server_addr(),
        key = lab.tsig_key_file().display(),
        port = lab.server_addr().port(),
    );
    println!(
        "# zone {zone}: BIND at {}, validated by unbound at {}",
        lab.server_addr(),
        lab.resolver_addr()
    );
    println!("# config:\n{config_text}");
    let config = Config::parse(&config_text)?;
    let store = Arc::new(StateStore::open(&config.state_dir)?);
    let start = Instant::now();
    let owner = lab.name("_25._tcp.mail");
    let show = |title: &str| {
        println!(
            "\n## {title} (t = {:.1} s): {owner} TLSA as served:",
            start.elapsed().as_secs_f64()
        );
        for rdata in lab.query_server(&owner, "TLSA").rdata("TLSA") {
            println!("   {rdata}");
        }
    };

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let engine = Arc::new(
            Engine::new(
                config,
                Arc::new(SystemClock),
                Box::new(DeployedFiles),
                Box::new(move |line: &str| {
                    println!("[{:6.2} s] {line}", start.elapsed().as_secs_f64())
                }),
            )
            .await?,
        );
        println!(
            "\n## first run: adopt the set, publish, wait until safe, deploy, publish a next key"
        );
        let outcomes = engine
            .clone()
            .run(
                store.clone(),
                &RunOptions {
                    wait: true,
                    ..RunOptions::default()
                },
            )
            .await?;
        failed(&outcomes)?;
        show("after the first run");
        println!("\n## planned roll to the pre-published next key");
        let outcomes = engine
            .clone()
            .run(
                store.clone(),
                &RunOptions {
                    wait: true,
                    rollover: true,
                    ..RunOptions::default()
                },
            )
            .await?;
        failed(&outcomes)?;
        show("after the roll");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// The first set that failed, as an error.
fn failed(outcomes: &[SetOutcome]) -> Result<(), Box<dyn std::error::Error>> {
    match outcomes.iter().find_map(|o| o.failure.as_ref()) {
        Some(failure) => Err(failure.message.clone().into()),
        None => Ok(()),
    }
}
