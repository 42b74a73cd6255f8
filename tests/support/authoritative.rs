//! The authoritative server of a lab, BIND 9 or Knot DNS, behind one surface: a signed zone
//! accepting TSIG updates on a verified loopback port, and the zone's DS and DNSKEY.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::launch::{self, Transport};
use super::process::ServerProcess;
use super::tsig::TsigKey;
use super::wire;
use super::zone::{self, Dnskey, Ds};
use super::{bind, knot};

/// Which authoritative server a lab runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Server {
    /// BIND 9 (`named`), `dnssec-policy` with inline signing.
    #[default]
    Bind,
    /// Knot DNS (`knotd`), automatic signing.
    Knot,
}

/// What every authoritative server of a lab is configured with.
pub struct ZoneSetup<'a> {
    pub zone: &'a str,
    pub ttl: u32,
    /// The unsigned zone file to start from.
    pub zone_file: &'a Path,
    pub key: &'a TsigKey,
}

/// A running authoritative server serving the lab zone signed.
pub struct Authoritative {
    pub process: ServerProcess,
    pub addr: SocketAddr,
    pub config: PathBuf,
    /// SHA-256 DS records of the zone's key-signing key(s).
    pub ds: Vec<Ds>,
    /// The zone's key-signing DNSKEY(s) (SEP bit set).
    pub dnskeys: Vec<Dnskey>,
}

impl Server {
    /// The server's program name, also used for its directory and logs.
    pub fn program(self) -> &'static str {
        match self {
            Server::Bind => "named",
            Server::Knot => "knotd",
        }
    }

    /// The tools the lab needs for this server (besides the common ones).
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Server::Bind => &["named", "dnssec-dsfromkey"],
            Server::Knot => &["knotd", "keymgr"],
        }
    }

    /// Starts the server in `lab_dir/PROGRAM/` and waits until it serves the zone signed.
    pub fn start(self, lab_dir: &Path, setup: &ZoneSetup) -> Authoritative {
        let dir = lab_dir.join(self.program());
        fs::create_dir_all(&dir).expect("create server directory");
        let config = dir.join(format!("{}.conf", self.program()));
        let (process, addr) = launch::start_verified(
            self.program(),
            &dir,
            |port| {
                let text = self.config_text(&dir, setup, port);
                fs::write(&config, text).expect("write server configuration");
                self.command(&config)
            },
            |addr, transport| serves_signed_zone(addr, setup.zone, transport),
        );
        let ds_text = self.ds_text(&dir, &config, setup.zone);
        let dnskey_text = self.dnskey_text(&dir, &config, setup.zone);
        // Knot also prints SHA-384 DS; SHA-256 is what every resolver supports.
        let ds = zone::parse_ds(&ds_text)
            .into_iter()
            .filter(|ds| ds.digest_type == 2);
        let dnskeys = zone::parse_dnskey(&dnskey_text)
            .into_iter()
            .filter(Dnskey::is_sep);
        Authoritative {
            process,
            addr,
            config,
            ds: non_empty(ds.collect(), "DS", &ds_text),
            dnskeys: non_empty(dnskeys.collect(), "key-signing DNSKEY", &dnskey_text),
        }
    }

    fn config_text(self, dir: &Path, setup: &ZoneSetup, port: u16) -> String {
        match self {
            Server::Bind => bind::config_text(dir, setup, port),
            Server::Knot => knot::config_text(dir, setup, port),
        }
    }

    fn command(self, config: &Path) -> Command {
        match self {
            Server::Bind => bind::command(config),
            Server::Knot => knot::command(config),
        }
    }

    /// DS records of the zone as the server's own tools print them.
    fn ds_text(self, dir: &Path, config: &Path, zone: &str) -> String {
        match self {
            Server::Bind => bind::ds_text(dir),
            Server::Knot => knot::keymgr(config, zone, "ds"),
        }
    }

    /// DNSKEY records of the zone as the server's own tools print them.
    fn dnskey_text(self, dir: &Path, config: &Path, zone: &str) -> String {
        match self {
            Server::Bind => bind::dnskey_text(dir),
            Server::Knot => knot::keymgr(config, zone, "dnskey"),
        }
    }
}

impl Authoritative {
    /// Stops the server as an operator's restart would (SIGTERM; BIND and Knot write their
    /// journals on the way out), leaves it down for `down`, then starts it again with the
    /// same configuration, port and files, and waits until it serves `zone` signed again.
    pub fn restart(&mut self, kind: Server, zone: &str, down: Duration) {
        self.process.stop();
        std::thread::sleep(down);
        let dir = self
            .config
            .parent()
            .expect("the configuration is in the server directory");
        let log = dir.join(format!("{}-restarted.log", kind.program()));
        self.process = ServerProcess::spawn(kind.program(), kind.command(&self.config), &log);
        let addr = self.addr;
        let served = super::wait::try_poll_until(Duration::from_secs(30), || {
            serves_signed_zone(addr, zone, Transport::Udp).then_some(())
        });
        assert!(
            served.is_some(),
            "{} did not serve {zone} again on {addr} after a restart:\n{}",
            kind.program(),
            self.process.log_tail()
        );
    }
}

/// `records`, unless there are none: then the lab cannot build a trust anchor.
fn non_empty<T>(records: Vec<T>, what: &str, tool_output: &str) -> Vec<T> {
    assert!(!records.is_empty(), "no {what} record in:\n{tool_output}");
    records
}

/// Whether `addr` answers authoritatively with the signed SOA of `zone` — which only this
/// lab's server can do, the zone name being unique.
pub(super) fn serves_signed_zone(addr: SocketAddr, zone: &str, transport: Transport) -> bool {
    wire::query(addr, transport, zone, wire::TYPE_SOA, wire::CLASS_IN, false).is_some_and(|r| {
        r.is_noerror() && r.aa && r.has_answer(wire::TYPE_SOA) && r.has_answer(wire::TYPE_RRSIG)
    })
}
