//! BIND 9 serving a zone built from files, for the zone-file back-end: the zone file
//! `$INCLUDE`s a records file that tlsa owns, BIND signs inline (`dnssec-policy`), and an
//! rndc control channel on a free loopback port with a fresh key (BIND's controls are off in
//! the other labs) lets the back-end's reload command be a real `rndc reload ZONE`. A real
//! unbound validates the zone from its DS.
//!
//! The BIND configuration is the lab's own (`bind::config_text`) with two changes: the zone
//! takes no dynamic updates (BIND refuses `rndc reload` of a dynamic zone), and `controls`
//! opens the rndc channel.
//!
//! Facts (BIND 9.18): with inline signing, a reload whose zone file kept its SOA serial is
//! refused ("ixfr-from-differences: new serial (N) out of range", "not loaded due to errors"),
//! yet `rndc reload` exits 0 ("zone reload queued"); a higher serial loads, and changes in the
//! included file are seen even when the main file's mtime is older than the last load.

use std::cell::Cell;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use super::authoritative::{ZoneSetup, serves_signed_zone};
use super::bind;
use super::dig::{self, DigReply};
use super::lab::{LabDir, stop_servers};
use super::launch::{self, Transport};
use super::process::ServerProcess;
use super::resolver::Resolver;
use super::tools;
use super::tsig::TsigKey;
use super::zone;

const TOOLS: &[&str] = &[
    "named",
    "rndc",
    "tsig-keygen",
    "dnssec-dsfromkey",
    "unbound",
    "unbound-control",
    "dig",
];

/// A running BIND loading `zone.db` (which `$INCLUDE`s `tlsa.db`), with rndc, and an
/// unbound validating the zone.
pub struct BindZoneFileLab {
    // Field order is drop order: processes stop before the directory goes.
    resolver: Resolver,
    process: ServerProcess,
    addr: SocketAddr,
    zone: String,
    ttl: u32,
    zone_file: PathBuf,
    records_file: PathBuf,
    rndc_conf: PathBuf,
    ds_anchor_file: PathBuf,
    dnskey_anchor_file: PathBuf,
    dir: LabDir,
}

impl BindZoneFileLab {
    pub fn start() -> Self {
        tools::require(TOOLS);
        let dir = LabDir::new();
        let zone = zone::unique_zone_name();
        let ttl = 2;
        let records_file = dir.path().join("tlsa.db");
        fs::write(&records_file, "").expect("create the records file");
        let zone_file = dir.path().join("zone.db");
        fs::write(
            &zone_file,
            format!(
                "{}$INCLUDE \"{}\"\n",
                zone::zone_file_text(&zone, ttl),
                records_file.display()
            ),
        )
        .expect("write zone file");
        // The update key only satisfies the lab's configuration text; updates are turned off.
        let update_key = TsigKey::generate(dir.path(), "tlsa-lab-unused");
        let rndc_dir = dir.path().join("rndc");
        fs::create_dir_all(&rndc_dir).expect("create rndc directory");
        let rndc_key = TsigKey::generate(&rndc_dir, "tlsa-lab-rndc");
        let rndc_conf = rndc_dir.join("rndc.conf");
        let bind_dir = dir.path().join("named");
        fs::create_dir_all(&bind_dir).expect("create BIND directory");
        let config = bind_dir.join("named.conf");
        let setup = ZoneSetup {
            zone: &zone,
            ttl,
            zone_file: &zone_file,
            key: &update_key,
        };

        let started = Instant::now();
        let control_port = Cell::new(0u16);
        let (process, addr) = launch::start_verified(
            "named",
            &bind_dir,
            |port| {
                control_port.set(launch::free_port());
                let text = config_text(&bind_dir, &setup, port, control_port.get(), &rndc_key);
                fs::write(&config, text).expect("write named.conf");
                bind::command(&config)
            },
            |addr, transport| serves_signed_zone(addr, &zone, transport),
        );
        fs::write(
            &rndc_conf,
            format!(
                "include \"{}\";\noptions {{ default-key \"{}\"; default-server 127.0.0.1; default-port {}; }};\n",
                rndc_key.file.display(),
                rndc_key.name,
                control_port.get()
            ),
        )
        .expect("write rndc.conf");
        let ds_records: Vec<String> = zone::parse_ds(&bind::ds_text(&bind_dir))
            .into_iter()
            .filter(|ds| ds.digest_type == 2)
            .map(|ds| ds.line(&zone))
            .collect();
        let dnskey_records: Vec<String> = zone::parse_dnskey(&bind::dnskey_text(&bind_dir))
            .into_iter()
            .filter(zone::Dnskey::is_sep)
            .map(|k| k.line(&zone))
            .collect();
        assert!(
            !ds_records.is_empty() && !dnskey_records.is_empty(),
            "no KSK for {zone}"
        );
        let ds_anchor_file = dir.path().join("ds.anchor");
        let dnskey_anchor_file = dir.path().join("dnskey.anchor");
        zone::write_lines(&ds_anchor_file, &ds_records);
        zone::write_lines(&dnskey_anchor_file, &dnskey_records);
        let bind_time = started.elapsed();

        let started = Instant::now();
        let resolver = Resolver::start(
            &dir.path().join("resolver"),
            &zone,
            addr,
            &zone::lines_text(&ds_records),
        );
        resolver.wait_validated(&zone);
        let lab = BindZoneFileLab {
            resolver,
            process,
            addr,
            zone,
            ttl,
            zone_file,
            records_file,
            rndc_conf,
            ds_anchor_file,
            dnskey_anchor_file,
            dir,
        };
        // Prove the control channel works before any test relies on it.
        let status = lab.rndc(&["status"]);
        assert!(
            status.status.success(),
            "rndc status failed: {status:?}\n{}",
            lab.log_tail()
        );
        eprintln!(
            "zone-file lab: {} on BIND {} with rndc ({} ms), validated by unbound {} ({} ms), in {}",
            lab.zone,
            lab.addr,
            bind_time.as_millis(),
            lab.resolver.addr(),
            started.elapsed().as_millis(),
            lab.dir.path().display()
        );
        lab
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `relative` + the zone.
    pub fn name(&self, relative: &str) -> String {
        format!("{relative}.{}", self.zone)
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's main file (holds the SOA; `$INCLUDE`s [`Self::records_file`]).
    pub fn zone_file(&self) -> &Path {
        &self.zone_file
    }

    /// The file tlsa owns.
    pub fn records_file(&self) -> &Path {
        &self.records_file
    }

    /// `rndc -c CONF reload {zone}`, as the back-end's reload command.
    pub fn reload_argv(&self) -> Vec<String> {
        let mut argv = self.rndc_argv();
        argv.extend(["reload".to_string(), "{zone}".to_string()]);
        argv
    }

    /// `rndc -c CONF`.
    pub fn rndc_argv(&self) -> Vec<String> {
        vec![
            tools::tool("rndc").display().to_string(),
            "-c".into(),
            self.rndc_conf.display().to_string(),
        ]
    }

    /// Runs `rndc ARGS…` against this server.
    pub fn rndc(&self, args: &[&str]) -> Output {
        let argv = self.rndc_argv();
        tools::run(
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .args(args),
        )
    }

    pub fn ds_anchor_file(&self) -> &Path {
        &self.ds_anchor_file
    }

    pub fn dnskey_anchor_file(&self) -> &Path {
        &self.dnskey_anchor_file
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn resolver_addr(&self) -> SocketAddr {
        self.resolver.addr()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// BIND's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `name`/`rtype` straight from BIND (`+norec +dnssec`).
    pub fn query_server(&self, name: &str, rtype: &str) -> DigReply {
        dig::query(self.addr, name, rtype, &["+norec"])
    }

    /// `name`/`rtype` through the validating unbound.
    pub fn query_resolver(&self, name: &str, rtype: &str) -> DigReply {
        self.resolver.query(name, rtype, &[])
    }
}

impl Drop for BindZoneFileLab {
    fn drop(&mut self) {
        let lab = format!("zone-file lab {}", self.zone);
        stop_servers(&lab, &mut self.process, &mut self.resolver);
    }
}

/// The lab's named.conf, with an rndc channel and without dynamic updates.
fn config_text(
    dir: &Path,
    setup: &ZoneSetup,
    port: u16,
    control_port: u16,
    rndc_key: &TsigKey,
) -> String {
    let text = bind::config_text(dir, setup, port);
    let update_policy = format!(
        "    update-policy {{ grant {} zonesub ANY; }};\n",
        setup.key.name
    );
    let controls = format!(
        "include \"{}\";\ncontrols {{ inet 127.0.0.1 port {control_port} allow {{ 127.0.0.1; }} keys {{ \"{}\"; }}; }};",
        rndc_key.file.display(),
        rndc_key.name
    );
    assert!(
        text.contains(&update_policy) && text.contains("controls { };"),
        "the lab's BIND configuration changed shape; update zonefile_bind.rs:\n{text}"
    );
    text.replace(&update_policy, "")
        .replace("controls { };", &controls)
}
