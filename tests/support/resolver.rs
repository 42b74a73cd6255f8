//! unbound as a validating resolver for the lab zone: the independent witness that what the
//! authoritative serves validates (AD flag) — or does not (SERVFAIL) — from a trust anchor.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::dig::{self, DigReply};
use super::launch::{self, STARTUP_POLL, STARTUP_TIMEOUT, Transport};
use super::process::ServerProcess;
use super::tools;
use super::wait::try_poll_every;
use super::wire;

/// A running unbound, stopped when dropped.
pub struct Resolver {
    process: ServerProcess,
    addr: SocketAddr,
    config: PathBuf,
    anchor: PathBuf,
}

impl Resolver {
    /// Starts unbound in `dir` for `zone` served at `authoritative`, trusting the DS lines
    /// `ds_anchor` (zone-file syntax). Returns once unbound answers; whether the zone
    /// validates is up to the caller ([`Self::wait_validated`]) — it must not with a wrong DS.
    pub fn start(dir: &Path, zone: &str, authoritative: SocketAddr, ds_anchor: &str) -> Self {
        Self::start_zones(dir, &[zone], authoritative, ds_anchor)
    }

    /// [`Self::start`] for several zones on the same authoritative server.
    pub fn start_zones(
        dir: &Path,
        zones: &[&str],
        authoritative: SocketAddr,
        ds_anchor: &str,
    ) -> Self {
        Self::start_zones_with(dir, zones, authoritative, ds_anchor, "")
    }

    /// [`Self::start_zones`] with more `server:` options (`extra`: lines indented by four
    /// spaces), e.g. a `cache-min-ttl` that makes it hold records past their TTL.
    pub fn start_zones_with(
        dir: &Path,
        zones: &[&str],
        authoritative: SocketAddr,
        ds_anchor: &str,
        extra: &str,
    ) -> Self {
        fs::create_dir_all(dir).expect("create resolver directory");
        let anchor = dir.join("ds.anchor");
        fs::write(&anchor, ds_anchor).expect("write DS trust anchor");
        let config = dir.join("unbound.conf");
        // The directory is unique to this resolver: as its identity it proves who answers.
        let identity = dir.display().to_string();
        let (process, addr) = launch::start_verified(
            "unbound",
            dir,
            |port| {
                let text = config_text(dir, &anchor, &identity, zones, authoritative, port, extra);
                fs::write(&config, text).expect("write unbound configuration");
                let mut cmd = tools::command("unbound");
                cmd.arg("-d").arg("-c").arg(&config);
                cmd
            },
            |addr, transport| answers_with_identity(addr, &identity, transport),
        );
        Resolver {
            process,
            addr,
            config,
            anchor,
        }
    }

    /// Where the resolver listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// The DS trust-anchor file it was started with.
    pub fn anchor_file(&self) -> &Path {
        &self.anchor
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// A recursive query through this resolver (`+dnssec +nosplit`, plus `extra`).
    pub fn query(&self, name: &str, rtype: &str, extra: &[&str]) -> DigReply {
        dig::query(self.addr, name, rtype, extra)
    }

    /// `unbound-control ARGS…` on this resolver (control over a unix socket in its directory).
    pub fn control(&self, args: &[&str]) -> Output {
        tools::run(self.control_command().args(args))
    }

    /// Forgets everything cached at or below `zone` (records, negative answers, keys).
    pub fn flush_zone(&self, zone: &str) {
        tools::run_ok(self.control_command().args(["flush_zone", zone]));
        tools::run_ok(self.control_command().arg("flush_bogus"));
    }

    /// Waits until the SOA of `zone` comes back validated (AD); panics with the log if not.
    pub fn wait_validated(&self, zone: &str) {
        let validated = try_poll_every(STARTUP_POLL, STARTUP_TIMEOUT, || {
            let reply = wire::query(
                self.addr,
                Transport::Udp,
                zone,
                wire::TYPE_SOA,
                wire::CLASS_IN,
                true,
            );
            reply.is_some_and(|r| r.is_noerror() && r.ad).then_some(())
        });
        assert!(
            validated.is_some(),
            "unbound at {} did not validate {zone} within {STARTUP_TIMEOUT:?}; now it says:\n{}\n{}",
            self.addr,
            self.query(zone, "SOA", &[]).raw,
            self.log_tail()
        );
    }

    /// Asks to stop without waiting (see `ServerProcess::terminate`).
    pub(crate) fn terminate(&mut self) {
        self.process.terminate();
    }

    pub(crate) fn wait_or_kill(&mut self) {
        self.process.wait_or_kill();
    }

    fn control_command(&self) -> Command {
        let mut cmd = tools::command("unbound-control");
        cmd.arg("-c").arg(&self.config);
        cmd
    }
}

/// unbound.conf: validate `zone` from the anchor, ask only the lab's authoritative.
fn config_text(
    dir: &Path,
    anchor: &Path,
    identity: &str,
    zones: &[&str],
    authoritative: SocketAddr,
    port: u16,
    extra: &str,
) -> String {
    let (dir, anchor) = (dir.display(), anchor.display());
    let auth = format!("{}@{}", authoritative.ip(), authoritative.port());
    let stubs: String = zones
        .iter()
        .map(|zone| format!("stub-zone:\n    name: \"{zone}\"\n    stub-addr: {auth}\n\n"))
        .collect();
    // - `so-reuseport: no`: a taken port makes unbound exit (and the launcher retry) instead
    //   of silently sharing it.
    // - `local-zone: "test." nodefault`: otherwise unbound answers .test NXDOMAIN itself.
    // - The "." stub and `outgoing-interface: 127.0.0.1`: there is no Internet here, and
    //   unbound must never try the real root servers (a stray name now gets REFUSED from the
    //   lab's own server; a loopback source address cannot reach anything off the machine).
    // - `val-bogus-ttl: 1`: a failure is not remembered for the default 60 s.
    // - `ede: yes`: SERVFAILs say why (e.g. EDE 9, DNSKEY missing, for a wrong DS).
    // - Small caches; record TTLs are honoured (the cache is what TLSA rolls must wait out).
    format!(
        r#"server:
    interface: 127.0.0.1@{port}
    so-reuseport: no
    do-ip6: no
    outgoing-interface: 127.0.0.1
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    local-zone: "test." nodefault
    trust-anchor-file: "{anchor}"
    module-config: "validator iterator"
    chroot: ""
    username: ""
    directory: "{dir}"
    use-syslog: no
    logfile: ""
    pidfile: "{dir}/unbound.pid"
    do-daemonize: no
    identity: "{identity}"
    verbosity: 1
    val-log-level: 2
    val-bogus-ttl: 1
    ede: yes
    infra-keep-probing: yes
    num-threads: 1
    msg-cache-size: 1m
    rrset-cache-size: 1m
    key-cache-size: 1m
    neg-cache-size: 1m
{extra}
remote-control:
    control-enable: yes
    control-interface: "{dir}/control.sock"
    control-use-cert: no

{stubs}stub-zone:
    name: "."
    stub-addr: {auth}
    stub-prime: no
"#
    )
}

/// Whether `addr` answers `id.server. CH TXT` with `identity`.
pub(super) fn answers_with_identity(
    addr: SocketAddr,
    identity: &str,
    transport: Transport,
) -> bool {
    let reply = wire::query(
        addr,
        transport,
        "id.server.",
        wire::TYPE_TXT,
        wire::CLASS_CH,
        false,
    );
    reply.is_some_and(|r| {
        r.is_noerror() && r.has_answer(wire::TYPE_TXT) && r.contains(identity.as_bytes())
    })
}
