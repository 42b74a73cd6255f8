//! More authoritative servers around a [`Lab`]: the shapes a zone's NS set takes in real life,
//! for tests of what *every* server serves.
//!
//! - [`Lab::start_frozen_copy`]: a second authoritative serving the lab zone exactly as the
//!   primary serves it now (signed, same serial), which never receives later updates — a
//!   secondary that lags — until [`StaticServer::reload`]ed with a newer transfer. It listens
//!   on other loopback addresses (e.g. a random `127.x.y.z` and `::1`) with the lab server's
//!   port, so that NS records (which carry no port) can list it beside the primary.
//! - [`Lab::start_unsigned_child`]: an unsigned zone `LABEL.ZONE`, delegated from the signed
//!   lab zone without a DS: what a validator must call Insecure. Its server listens on port 53
//!   of a random `127.x.y.z` (glue carries no port), which needs root.
//!
//! Both are plain BIND 9 primaries (no signing, no updates) started from zone-file text.

use std::fs::{self, File};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use super::dig;
use super::lab::Lab;
use super::launch::{STARTUP_POLL, STARTUP_TIMEOUT};
use super::process::ServerProcess;
use super::tools;
use super::wait::{poll_until, try_poll_every};

/// Attempts at finding free addresses before giving up.
const MAX_ATTEMPTS: u32 = 5;

/// What a [`StaticServer`] serves, and where.
pub struct Setup {
    /// Every address listened on, all with `port`.
    pub ips: Vec<IpAddr>,
    pub port: u16,
    /// (zone name, zone-file text).
    pub zones: Vec<(String, String)>,
}

/// A BIND 9 primary serving zones from files written by the test; stopped when dropped.
pub struct StaticServer {
    process: ServerProcess,
    /// Loopback addresses this server added to `lo` (removed on drop).
    added: Vec<IpAddr>,
    dir: PathBuf,
    ips: Vec<IpAddr>,
    port: u16,
    zones: Vec<String>,
}

impl StaticServer {
    /// Starts `named` in `dir` with what `setup(attempt)` says: zones (name, zone-file text)
    /// served on every address with one port. A new attempt (new addresses) follows when
    /// they are taken. Returns once every address answers every zone's SOA authoritatively.
    pub fn start(dir: &Path, mut setup: impl FnMut(u32) -> Setup) -> Self {
        fs::create_dir_all(dir).expect("create static server directory");
        let mut failures = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            let Setup { ips, port, zones } = setup(attempt);
            assert!(
                !zones.is_empty() && !ips.is_empty(),
                "a static server needs zones and addresses"
            );
            if let Some(taken) = ips.iter().find(|ip| !is_free(**ip, port)) {
                failures.push(format!("{taken} port {port} in use"));
                continue;
            }
            // named listens only on addresses configured on an interface; Linux
            // routes all of 127/8 to lo, but BIND needs the address listed.
            let added: Vec<IpAddr> = ips.iter().copied().filter(|ip| add_to_lo(*ip)).collect();
            let names: Vec<String> = zones.iter().map(|(z, _)| z.clone()).collect();
            for (zone, text) in &zones {
                fs::write(zone_file(dir, zone), text).expect("write zone file");
            }
            let config = dir.join("named.conf");
            fs::write(&config, config_text(dir, &ips, port, &names)).expect("write named.conf");
            let mut cmd = tools::command("named");
            cmd.args(["-g", "-n", "1", "-c"]).arg(&config);
            let log = dir.join(format!("named-{attempt}.log"));
            let mut process = ServerProcess::spawn("named", cmd, &log);
            let ready = try_poll_every(STARTUP_POLL, STARTUP_TIMEOUT, || {
                let log = process.log().to_ascii_lowercase();
                if log.contains("address in use") || log.contains("could not listen") {
                    return Some(false);
                }
                if process.exit_status().is_some() {
                    return Some(false);
                }
                let all = ips.iter().all(|ip| {
                    let addr = SocketAddr::new(*ip, port);
                    names.iter().all(|zone| serves_soa(addr, zone))
                });
                all.then_some(true)
            });
            match ready {
                Some(true) => {
                    return StaticServer {
                        process,
                        added,
                        dir: dir.to_owned(),
                        ips,
                        port,
                        zones: names,
                    };
                }
                Some(false) => {
                    added.iter().for_each(|ip| remove_from_lo(*ip));
                    failures.push(format!("{ips:?} port {port}: {}", process.log_tail()))
                }
                None => panic!(
                    "named did not serve {names:?} on {ips:?} port {port} within {STARTUP_TIMEOUT:?}:\n{}",
                    process.log_tail()
                ),
            }
        }
        panic!("could not start a static named: {failures:?}");
    }

    /// Every address it listens on (same port).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect()
    }

    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Replaces `zone`'s content by `text` and makes named reload it (SIGHUP); returns once
    /// every address serves the new SOA serial (that of `text`).
    pub fn reload(&self, zone: &str, text: &str) {
        assert!(
            self.zones.iter().any(|z| z == zone),
            "{zone} is not served here"
        );
        let serial = soa_serial(text).expect("the new zone text has an SOA record");
        let path = zone_file(&self.dir, zone);
        fs::write(&path, text).expect("rewrite zone file");
        // named reloads a zone only if its file is newer than the last load: make sure it is,
        // whatever the file system's timestamp granularity.
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now() + Duration::from_secs(2)))
            .expect("touch zone file");
        let pid = libc::pid_t::try_from(self.process.pid()).expect("pid fits pid_t");
        // SAFETY: plain syscall on our own running child (owned by `self.process`).
        unsafe { libc::kill(pid, libc::SIGHUP) };
        for addr in self.addrs() {
            poll_until(
                &format!("{addr} to serve {zone} with serial {serial}"),
                STARTUP_TIMEOUT,
                || (served_serial(addr, zone) == Some(serial)).then_some(()),
            );
        }
    }
}

/// named.conf: a primary for each zone, no recursion, no signing, transfers allowed.
fn config_text(dir: &Path, ips: &[IpAddr], port: u16, zones: &[String]) -> String {
    let v4: Vec<String> = ips
        .iter()
        .filter(|ip| ip.is_ipv4())
        .map(|ip| format!("{ip};"))
        .collect();
    let v6: Vec<String> = ips
        .iter()
        .filter(|ip| ip.is_ipv6())
        .map(|ip| format!("{ip};"))
        .collect();
    let list = |l: &[String]| {
        if l.is_empty() {
            "none;".to_string()
        } else {
            l.join(" ")
        }
    };
    let zone_blocks: String = zones
        .iter()
        .map(|zone| {
            format!(
                "zone \"{zone}\" {{\n    type primary;\n    file \"{}\";\n}};\n",
                zone_file(dir, zone).display()
            )
        })
        .collect();
    let dir = dir.display();
    format!(
        r#"options {{
    directory "{dir}";
    listen-on port {port} {{ {} }};
    listen-on-v6 port {port} {{ {} }};
    reuseport no;
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ any; }};
    max-zone-ttl 86400;
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
}};

controls {{ }};

{zone_blocks}"#,
        list(&v4),
        list(&v6)
    )
}

fn zone_file(dir: &Path, zone: &str) -> PathBuf {
    dir.join(format!(
        "{}db",
        zone.trim_end_matches('.').replace('.', "_") + "."
    ))
}

/// Whether nothing holds `ip:port` for UDP or TCP right now.
fn is_free(ip: IpAddr, port: u16) -> bool {
    UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok()
}

fn serves_soa(addr: SocketAddr, zone: &str) -> bool {
    let reply = dig::query(addr, zone, "SOA", &["+norec"]);
    reply.is_noerror() && reply.has_flag("aa") && !reply.rdata("SOA").is_empty()
}

/// The SOA serial `addr` serves for `zone` (authoritatively), if any.
pub fn served_serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    let reply = dig::query(addr, zone, "SOA", &["+norec"]);
    if !reply.has_flag("aa") {
        return None;
    }
    let rdata = reply.rdata("SOA").into_iter().next()?.to_owned();
    rdata.split_whitespace().nth(2)?.parse().ok()
}

/// The serial of the first SOA record in zone-file text (one record per line).
pub fn soa_serial(text: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| f.eq_ignore_ascii_case("SOA"))?;
            fields.get(at + 3)?.parse().ok()
        })
}

/// A random address in 127.0.0.0/8 away from the usual ones (127.0.0.1, 127.0.0.53, …).
pub fn random_loopback_v4() -> IpAddr {
    let mut b = [0u8; 3];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    IpAddr::V4(Ipv4Addr::new(127, 100 + b[0] % 150, b[1], 1 + b[2] % 254))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// The zone exactly as the lab's server serves it now: an AXFR (signed records, one
    /// SOA), in zone-file syntax.
    pub fn zone_transfer(&self) -> String {
        let text = self.dig(
            self.server_addr(),
            &[
                self.zone(),
                "AXFR",
                "+onesoa",
                "+nocomments",
                "+nocmd",
                "+nostats",
            ],
        );
        assert!(
            soa_serial(&text).is_some(),
            "AXFR of {} from {} failed:\n{text}",
            self.zone(),
            self.server_addr()
        );
        text
    }

    /// A second authoritative for the lab zone on `ips`, with the lab server's port, serving
    /// [`Self::zone_transfer`] as of now and never updated by `nsupdate`: a lagging
    /// secondary. (To list it in the NS set, add its NS and address records to the zone
    /// before taking the copy.)
    pub fn start_frozen_copy(&self, ips: &[IpAddr]) -> StaticServer {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir().join(format!("copy-{n}"));
        let text = self.zone_transfer();
        let port = self.server_addr().port();
        StaticServer::start(&dir, |_| Setup {
            ips: ips.to_vec(),
            port,
            zones: vec![(self.zone().to_string(), text.clone())],
        })
    }

    /// An unsigned zone `LABEL.ZONE` holding `records` (zone-file lines relative to it, e.g.
    /// `_25._tcp.mail 2 IN TLSA 3 1 1 HEX`), on port 53 of a random loopback address, and
    /// delegated to it from the lab zone (NS + glue, no DS) with `nsupdate`. Returns once
    /// the lab server serves the delegation. Needs root (port 53).
    pub fn start_unsigned_child(&self, label: &str, records: &str) -> StaticServer {
        // SAFETY: plain syscall.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "an unsigned child zone needs port 53 (glue has no port): run as root"
        );
        let child = format!("{label}.{}", self.zone());
        let ttl = self.ttl();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir().join(format!("child-{n}"));
        let mut chosen = None;
        let server = StaticServer::start(&dir, |_| {
            let ip = random_loopback_v4();
            chosen = Some(ip);
            let text = format!(
                "$ORIGIN {child}\n$TTL {ttl}\n\
                 @ IN SOA ns hostmaster 1 60 30 600 {ttl}\n\
                 @ IN NS ns\n\
                 ns IN A {ip}\n\
                 {records}\n"
            );
            Setup {
                ips: vec![ip],
                port: 53,
                zones: vec![(child.clone(), text)],
            }
        });
        let ip = chosen.expect("an address was chosen");
        self.nsupdate_ok(&format!(
            "update add {child} {ttl} IN NS ns.{child}\nupdate add ns.{child} {ttl} IN A {ip}"
        ));
        poll_until(
            &format!("{} to delegate {child}", self.server_addr()),
            STARTUP_TIMEOUT,
            || {
                let reply =
                    dig::query(self.server_addr(), &format!("ns.{child}"), "A", &["+norec"]);
                let referral = reply.raw.contains(&format!("ns.{child}"))
                    && reply.raw.contains("AUTHORITY SECTION")
                    && reply.raw.contains("\tNS\t");
                // The signed zone must also prove that no DS exists (served after signing).
                let ds = dig::query(self.server_addr(), &child, "DS", &["+norec"]);
                (referral && ds.is_noerror() && ds.has_flag("aa") && ds.raw.contains("NSEC"))
                    .then_some(())
            },
        );
        server
    }
}

/// `::1`, for servers that must also be reached over IPv6.
pub const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Adds a 127/8 address other than 127.0.0.1 to `lo` (needs root); true when
/// this call added it.
fn add_to_lo(ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else { return false };
    if !v4.is_loopback() || v4 == std::net::Ipv4Addr::LOCALHOST {
        return false;
    }
    tools::command("ip")
        .args(["addr", "add", &format!("{v4}/32"), "dev", "lo"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn remove_from_lo(ip: IpAddr) {
    let _ = tools::command("ip")
        .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
        .output();
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.process.stop();
        self.added.iter().for_each(|ip| remove_from_lo(*ip));
    }
}
