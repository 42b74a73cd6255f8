//! [`Lab`]: one private DNS world per test.

use std::env;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::authoritative::{Authoritative, Server, ZoneSetup};
use super::dig::{self, DigReply};
use super::process::ServerProcess;
use super::resolver::Resolver;
use super::tools;
use super::tsig::{TSIG_ALGORITHM, TsigKey};
use super::zone::{self, Ds};

/// Tools every lab uses, whichever authoritative server it runs.
const COMMON_TOOLS: &[&str] = &[
    "tsig-keygen",
    "dig",
    "nsupdate",
    "unbound",
    "unbound-control",
];

/// Set to `1` to keep lab directories (configs, logs, keys) after the test; their paths are
/// printed on stderr.
const KEEP_ENV: &str = "TLSA_LAB_KEEP";

/// How a lab is set up.
#[derive(Clone, Debug)]
pub struct LabOptions {
    pub server: Server,
    /// TTL of the zone's records (`$TTL`), SOA minimum (negative caching) and DNSKEY TTL.
    pub ttl: u32,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            server: Server::Bind,
            ttl: 2,
        }
    }
}

/// How long the lab took to come up.
#[derive(Clone, Copy, Debug)]
pub struct StartupTimes {
    /// From spawning the authoritative server to its signed zone verified on its port.
    pub authoritative: Duration,
    /// From spawning unbound to the zone's SOA validated (AD).
    pub resolver: Duration,
}

/// A fresh signed zone `tHEX-N.test.` on a real authoritative server (BIND 9 or Knot DNS)
/// that accepts TSIG (hmac-sha256) updates, plus a real unbound validating it from a DS trust
/// anchor — all on loopback ports picked at run time, in a temporary directory.
///
/// Dropping the lab stops every process it started (also when a test panics) and removes
/// the directory (unless `TLSA_LAB_KEEP=1`).
///
/// Create and drop a lab on the same thread, one that lives as long as the lab (the test's
/// own thread, also under `#[tokio::test]`): its servers are told to die with the thread that
/// spawned them, so that a killed test binary leaves no servers behind.
pub struct Lab {
    // Field order is drop order: processes stop before the directory goes.
    resolver: Resolver,
    auth: Authoritative,
    kind: Server,
    zone: String,
    ttl: u32,
    key: TsigKey,
    ds_records: Vec<String>,
    dnskey_records: Vec<String>,
    ds_anchor_file: PathBuf,
    dnskey_anchor_file: PathBuf,
    startup: StartupTimes,
    extra_resolvers: AtomicU32,
    dir: LabDir,
}

impl Lab {
    /// A lab with BIND 9 as authoritative.
    pub fn start() -> Self {
        Self::with_options(LabOptions::default())
    }

    /// A lab with Knot DNS as authoritative.
    pub fn start_knot() -> Self {
        Self::with_options(LabOptions {
            server: Server::Knot,
            ..LabOptions::default()
        })
    }

    pub fn with_options(options: LabOptions) -> Self {
        tools::require(COMMON_TOOLS);
        tools::require(options.server.tools());
        let dir = LabDir::new();
        let zone = zone::unique_zone_name();
        let key = TsigKey::generate(dir.path(), &key_name(&zone));
        let zone_file = dir.path().join("zone.db");
        fs::write(&zone_file, zone::zone_file_text(&zone, options.ttl)).expect("write zone file");

        let started = Instant::now();
        let setup = ZoneSetup {
            zone: &zone,
            ttl: options.ttl,
            zone_file: &zone_file,
            key: &key,
        };
        let auth = options.server.start(dir.path(), &setup);
        let auth_time = started.elapsed();

        let ds_records: Vec<String> = auth.ds.iter().map(|ds| ds.line(&zone)).collect();
        let dnskey_records: Vec<String> = auth.dnskeys.iter().map(|k| k.line(&zone)).collect();
        let ds_anchor_file = dir.path().join("ds.anchor");
        let dnskey_anchor_file = dir.path().join("dnskey.anchor");
        zone::write_lines(&ds_anchor_file, &ds_records);
        zone::write_lines(&dnskey_anchor_file, &dnskey_records);

        let started = Instant::now();
        let resolver = Resolver::start(
            &dir.path().join("resolver"),
            &zone,
            auth.addr,
            &zone::lines_text(&ds_records),
        );
        resolver.wait_validated(&zone);
        let startup = StartupTimes {
            authoritative: auth_time,
            resolver: started.elapsed(),
        };
        eprintln!(
            "lab: {zone} on {:?} {} ({} ms), validated by unbound {} ({} ms), in {}",
            options.server,
            auth.addr,
            startup.authoritative.as_millis(),
            resolver.addr(),
            startup.resolver.as_millis(),
            dir.path().display()
        );
        Lab {
            resolver,
            auth,
            kind: options.server,
            zone,
            ttl: options.ttl,
            key,
            ds_records,
            dnskey_records,
            ds_anchor_file,
            dnskey_anchor_file,
            startup,
            extra_resolvers: AtomicU32::new(0),
            dir,
        }
    }

    /// The zone, fully qualified (`tHEX-N.test.`).
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `relative` + the zone: `lab.name("_25._tcp.mail")` is `_25._tcp.mail.tHEX-N.test.`.
    pub fn name(&self, relative: &str) -> String {
        format!("{relative}.{}", self.zone)
    }

    pub fn kind(&self) -> Server {
        self.kind
    }

    /// The zone's TTL, SOA minimum and DNSKEY TTL (see [`LabOptions::ttl`]).
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The authoritative server (UDP and TCP).
    pub fn server_addr(&self) -> SocketAddr {
        self.auth.addr
    }

    pub fn server_pid(&self) -> u32 {
        self.auth.process.pid()
    }

    /// Stops the authoritative server for `down` and starts it again on the same port with
    /// the same zone files (see [`Authoritative::restart`]).
    pub fn restart_server(&mut self, down: std::time::Duration) {
        self.auth.restart(self.kind, &self.zone, down);
    }

    /// named.conf or knot.conf (e.g. for `knotc -c`, `keymgr -c`).
    pub fn server_config_file(&self) -> &Path {
        &self.auth.config
    }

    pub fn server_log(&self) -> &Path {
        self.auth.process.log_path()
    }

    pub fn server_log_tail(&self) -> String {
        self.auth.process.log_tail()
    }

    /// The TSIG key in BIND's format: `key "NAME" { algorithm hmac-sha256; secret "…"; };`.
    pub fn tsig_key_file(&self) -> &Path {
        &self.key.file
    }

    pub fn tsig_key_name(&self) -> &str {
        &self.key.name
    }

    /// The key's base64 secret.
    pub fn tsig_secret(&self) -> &str {
        &self.key.secret
    }

    /// Always `hmac-sha256`.
    pub fn tsig_algorithm(&self) -> &'static str {
        TSIG_ALGORITHM
    }

    /// unbound `trust-anchor-file` format: the [`Self::ds_records`] lines.
    pub fn ds_anchor_file(&self) -> &Path {
        &self.ds_anchor_file
    }

    /// Zone-file DNSKEY lines of the key-signing key, as hickory's `TrustAnchors::from_file`
    /// reads them: `ZONE 3600 IN DNSKEY 257 3 13 BASE64`.
    pub fn dnskey_anchor_file(&self) -> &Path {
        &self.dnskey_anchor_file
    }

    /// `ZONE 3600 IN DS TAG 13 2 HEX`, one per key-signing key (SHA-256 digests only).
    pub fn ds_records(&self) -> Vec<String> {
        self.ds_records.clone()
    }

    /// `ZONE 3600 IN DNSKEY 257 3 13 BASE64`, one per key-signing key.
    pub fn dnskey_records(&self) -> Vec<String> {
        self.dnskey_records.clone()
    }

    /// A DS line with the zone's key tag and algorithm but a wrong digest: a resolver
    /// trusting it must find the zone bogus.
    pub fn wrong_ds(&self) -> String {
        let ds = &self.auth.ds[0];
        let wrong = Ds {
            digest: "0".repeat(ds.digest.len()),
            ..ds.clone()
        };
        wrong.line(&self.zone)
    }

    /// The lab's validating unbound.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn resolver_addr(&self) -> SocketAddr {
        self.resolver.addr()
    }

    /// The lab directory (configs, logs, keys, anchors).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn startup_times(&self) -> StartupTimes {
        self.startup
    }

    /// PIDs of the processes the lab itself runs (authoritative, resolver); resolvers from
    /// [`Self::start_resolver_with_ds`] belong to their handles.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.auth.process.pid(), self.resolver.pid()]
    }

    /// Runs `nsupdate -k KEYFILE` with `server`, `zone`, `body` and `send`; `body` holds the
    /// update commands, e.g. `update add NAME 2 IN TLSA 3 1 1 HEX`.
    pub fn nsupdate(&self, body: &str) -> Output {
        let script = format!(
            "server {} {}\nzone {}\n{}\nsend\n",
            self.auth.addr.ip(),
            self.auth.addr.port(),
            self.zone,
            body.trim_end()
        );
        let mut child = tools::command("nsupdate")
            .arg("-k")
            .arg(&self.key.file)
            .args(["-t", "5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nsupdate");
        let mut stdin = child.stdin.take().expect("nsupdate stdin");
        stdin
            .write_all(script.as_bytes())
            .expect("write nsupdate script");
        drop(stdin); // EOF ends nsupdate
        child.wait_with_output().expect("wait for nsupdate")
    }

    /// [`Self::nsupdate`], panicking unless the update succeeded.
    pub fn nsupdate_ok(&self, body: &str) {
        let output = self.nsupdate(body);
        assert!(
            output.status.success(),
            "nsupdate failed ({}):\n{body}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `dig @ADDR -p PORT ARGS…`, stdout (see [`dig::dig`]).
    pub fn dig(&self, addr: SocketAddr, args: &[&str]) -> String {
        dig::dig(addr, args)
    }

    /// `name`/`rtype` straight from the authoritative server (`+norec +dnssec`).
    pub fn query_server(&self, name: &str, rtype: &str) -> DigReply {
        dig::query(self.auth.addr, name, rtype, &["+norec"])
    }

    /// `name`/`rtype` through the validating resolver (`+dnssec`).
    pub fn query_resolver(&self, name: &str, rtype: &str) -> DigReply {
        self.resolver.query(name, rtype, &[])
    }

    /// Empties the validating resolver's cache for the zone.
    pub fn flush_resolver(&self) {
        self.resolver.flush_zone(&self.zone);
    }

    /// Another unbound for this zone trusting `ds_anchor` (zone-file DS lines, e.g.
    /// [`Self::wrong_ds`]), in its own directory and port; stopped when the handle drops.
    pub fn start_resolver_with_ds(&self, ds_anchor: &str) -> Resolver {
        let n = self.extra_resolvers.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.dir.path().join(format!("resolver-{n}"));
        Resolver::start(&dir, &self.zone, self.auth.addr, &format!("{ds_anchor}\n"))
    }

    /// Another validating unbound for this zone (the lab's DS) with more `server:` options
    /// (`extra`, see [`Resolver::start_zones_with`]).
    pub fn start_resolver_with_options(&self, extra: &str) -> Resolver {
        let n = self.extra_resolvers.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.dir.path().join(format!("resolver-{n}"));
        let anchor = format!("{}\n", self.ds_records().join("\n"));
        Resolver::start_zones_with(&dir, &[&self.zone], self.auth.addr, &anchor, extra)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let lab = format!("lab {}", self.zone);
        stop_servers(&lab, &mut self.auth.process, &mut self.resolver);
    }
}

/// Stops a lab's authoritative server and resolver (when it is dropped): on a failing test
/// their logs first, then both asked to stop before either is waited for, so that their
/// shutdowns overlap.
pub(super) fn stop_servers(lab: &str, authoritative: &mut ServerProcess, resolver: &mut Resolver) {
    if thread::panicking() {
        eprintln!(
            "{lab}: test failed; server logs:\n{}\n{}",
            authoritative.log_tail(),
            resolver.log_tail()
        );
    }
    resolver.terminate();
    authoritative.terminate();
    resolver.wait_or_kill();
    authoritative.wait_or_kill();
}

/// `tlsa-lab-<first label of the zone>`.
fn key_name(zone: &str) -> String {
    format!("tlsa-lab-{}", zone.split('.').next().unwrap_or_default())
}

/// The lab's temporary directory, removed on drop unless `TLSA_LAB_KEEP=1` — also when
/// startup fails, so a failed start can be inspected.
pub(super) struct LabDir {
    dir: Option<TempDir>,
    path: PathBuf,
}

impl LabDir {
    pub(super) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tlsa-lab-")
            .tempdir()
            .expect("create lab directory");
        LabDir {
            path: dir.path().to_owned(),
            dir: Some(dir),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LabDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if env::var(KEEP_ENV).is_ok_and(|v| v == "1") {
            eprintln!("lab: kept {}", dir.keep().display());
        } else if thread::panicking() {
            eprintln!(
                "lab: removing {} (set {KEEP_ENV}=1 to keep it)",
                self.path.display()
            );
        }
    }
}
