//! Many signed zones on one BIND (for the scale benchmark): `count` fresh zones, inline
//! signing, one TSIG key allowed to update all of them, and one unbound validating every one
//! of them from their DS records (its "." stub already sends every name to the BIND).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::authoritative::{ZoneSetup, serves_signed_zone};
use super::bind;
use super::lab::LabDir;
use super::launch::{self, Transport};
use super::process::ServerProcess;
use super::resolver::Resolver;
use super::tsig::TsigKey;
use super::wait::poll_until;
use super::{tools, wire, zone};

/// How long BIND may take to sign every zone after it started.
const SIGNING_TIMEOUT: Duration = Duration::from_secs(300);

pub struct MultiZoneLab {
    // Field order is drop order: processes stop before the directory goes.
    resolver: Resolver,
    _bind: ServerProcess,
    addr: SocketAddr,
    zones: Vec<String>,
    key: TsigKey,
    dnskey_anchor_file: PathBuf,
    dir: LabDir,
}

impl MultiZoneLab {
    pub fn start(count: usize, ttl: u32) -> Self {
        tools::require(&["named", "dnssec-dsfromkey", "unbound", "dig"]);
        let dir = LabDir::new();
        let zones: Vec<String> = (0..count).map(|_| zone::unique_zone_name()).collect();
        let key = TsigKey::generate(dir.path(), &format!("tlsa-multizone-{count}"));
        let zone_dir = dir.path().join("zones");
        fs::create_dir_all(&zone_dir).expect("create zone directory");
        let files: Vec<PathBuf> = zones
            .iter()
            .map(|name| {
                let file = zone_dir.join(format!("{name}db"));
                fs::write(&file, zone::zone_file_text(name, ttl)).expect("write zone file");
                file
            })
            .collect();
        let setups: Vec<ZoneSetup> = zones
            .iter()
            .zip(&files)
            .map(|(name, file)| ZoneSetup {
                zone: name,
                ttl,
                zone_file: file,
                key: &key,
            })
            .collect();
        let bind_dir = dir.path().join("named");
        fs::create_dir_all(&bind_dir).expect("create BIND directory");
        let config = bind_dir.join("named.conf");
        let (process, addr) = launch::start_verified(
            "named",
            &bind_dir,
            |port| {
                fs::write(&config, bind::config_text_zones(&bind_dir, &setups, port))
                    .expect("write BIND configuration");
                bind::command(&config)
            },
            // Loading and signing a thousand zones takes longer than the launcher waits:
            // a served SOA of the first zone proves the server is ours and up.
            |addr, transport| {
                wire::query(
                    addr,
                    transport,
                    &zones[0],
                    wire::TYPE_SOA,
                    wire::CLASS_IN,
                    false,
                )
                .is_some_and(|r| r.is_noerror() && r.aa && r.has_answer(wire::TYPE_SOA))
            },
        );
        poll_until("BIND signed the first zone", SIGNING_TIMEOUT, || {
            serves_signed_zone(addr, &zones[0], Transport::Udp).then_some(())
        });
        let last = zones.last().expect("at least one zone").clone();
        poll_until("BIND signed every zone", SIGNING_TIMEOUT, || {
            serves_signed_zone(addr, &last, Transport::Udp).then_some(())
        });
        let ds_text = bind::ds_text(&bind_dir);
        let dnskey_anchor_file = dir.path().join("dnskey.anchor");
        fs::write(&dnskey_anchor_file, bind::dnskey_text(&bind_dir)).expect("write anchor");
        let names: Vec<&str> = zones.iter().map(String::as_str).collect();
        let resolver = Resolver::start_zones(&dir.path().join("resolver"), &names, addr, &ds_text);
        resolver.wait_validated(&last);
        MultiZoneLab {
            resolver,
            _bind: process,
            addr,
            zones,
            key,
            dnskey_anchor_file,
            dir,
        }
    }

    /// The zones, absolute (`tHEX-N.test.`).
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn resolver_addr(&self) -> SocketAddr {
        self.resolver.addr()
    }

    pub fn tsig_key_file(&self) -> &Path {
        &self.key.file
    }

    /// Every zone's DNSKEY lines, as tlsa's `anchor` takes them.
    pub fn dnskey_anchor_file(&self) -> &Path {
        &self.dnskey_anchor_file
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `DIR/tlsa.toml`: every zone (RFC 2136 with the shared key), and per zone one
    /// set of `owners` endpoints `hI.ZONE:25`, self-signed, verified by its deploy target.
    pub fn write_config(&self, dir: &Path, owners: usize) -> PathBuf {
        let mut text = format!(
            "state_dir = \"{}/state\"\n\n[dnssec]\nresolver = \"{}\"\nanchor = \"{}\"\n\n",
            dir.display(),
            self.resolver_addr(),
            self.dnskey_anchor_file.display()
        );
        for zone in &self.zones {
            text.push_str(&format!(
                "[[zone]]\nname = \"{zone}\"\nbackend = \"rfc2136\"\nserver = \"{}\"\ntsig_key = {{ file = \"{}\" }}\nns_port = {}\n\n",
                self.addr,
                self.key.file.display(),
                self.addr.port()
            ));
        }
        for (n, zone) in self.zones.iter().enumerate() {
            let zone = zone.trim_end_matches('.');
            let endpoints: Vec<(String, u16)> =
                (0..owners).map(|i| (format!("h{i}.{zone}"), 25)).collect();
            text.push_str(&super::roll::set_section(
                &format!("s{n}"),
                &super::roll::self_signed_for(&format!("h0.{zone}")),
                &format!("{{ dir = \"{}/live/s{n}\" }}", dir.display()),
                &endpoints,
            ));
        }
        let path = dir.join("tlsa.toml");
        fs::write(&path, text).expect("write config");
        path
    }
}
