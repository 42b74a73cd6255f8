//! A real ACME CA and a real ACME client on loopback: pebble, with a TLS identity made by
//! `openssl` for this run, and certbot with private config/work/logs directories, whose
//! `--deploy-hook` can run the installed `certbot-deploy-hook` with the `tlsa` under test.
//!
//! Entry point: [`Acme`]. Facts about both programs here: `shared/LAB.md` (ACME section).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::install::{HASH_SLINGER_TLSA, Installed, path_with_hash_slinger_first};
use super::lab::LabDir;
use super::launch::{self, Transport};
use super::process::ServerProcess;
use super::tools;
use super::wait::try_poll_every;

const INSTALL_HINT: &str = "install pebble and certbot with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends pebble certbot openssl)";

const LEGO_HINT: &str = "install lego with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends lego)";

/// How long one certbot (or lego) run may take (~3.5 s to issue, ~1.5 s to renew on an idle machine).
const CERTBOT_TIMEOUT: Duration = Duration::from_secs(120);

/// certbot runs tried when its standalone http-01 port turns out to be taken.
const CERTBOT_ATTEMPTS: u32 = 3;

/// Validity of the TLS identity pebble's API serves (the test CA and its leaf).
const TLS_DAYS: &str = "2";

/// Which key a renewal uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewKey {
    /// `--reuse-key`: the lineage keeps its key.
    Reuse,
    /// `--new-key`: certbot makes a new key, whatever the lineage says.
    New,
}

/// One finished certbot run.
#[derive(Debug)]
pub struct CertbotRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// pebble on free loopback ports, and certbot pointed at it. pebble is stopped by PID (and
/// its directory removed, unless `TLSA_LAB_KEEP=1`) when this is dropped.
///
/// pebble runs with `PEBBLE_VA_ALWAYS_VALID=1` (every challenge passes without the CA
/// connecting anywhere), `PEBBLE_VA_NOSLEEP=1` and `PEBBLE_WFE_NONCEREJECT=0` (no random
/// `badNonce` retries). certbot still runs its standalone http-01 server, on the port in
/// pebble's `httpPort`; with the VA always valid, nothing connects to it, so if that port
/// is taken by the time certbot runs, certbot is simply run again on another free port.
///
/// Like [`super::Lab`], create and drop it on the test's own thread.
pub struct Acme {
    // Field order is drop order: pebble stops before its directory goes.
    pebble: ServerProcess,
    addr: SocketAddr,
    management: SocketAddr,
    http01_port: u16,
    ca_file: PathBuf,
    runs: AtomicU32,
    /// Set for every certbot run (and so for its hooks), after the inherited environment.
    env: Vec<(String, String)>,
    dir: LabDir,
}

/// How a validating pebble ([`Acme::start_validating`]) behaves beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct AcmeOptions {
    /// `PEBBLE_WFE_NONCEREJECT`: the percentage of good nonces refused as `badNonce`.
    pub nonce_reject: u8,
    /// External Account Binding required, with this (key id, base64url MAC key).
    pub eab: Option<(String, String)>,
    /// `certificateValidityPeriod`: the lifetime of issued certificates, in seconds.
    pub validity_seconds: Option<u64>,
    /// `PEBBLE_VA_SLEEPTIME`: the validation waits a random 0..N seconds (instead of none).
    pub va_sleep_seconds: Option<u32>,
}

impl Acme {
    pub fn start() -> Self {
        Self::start_with(None, &AcmeOptions::default())
    }

    /// pebble validating DNS-01 (and HTTP-01, on [`Self::http01_port`]) for real: it asks
    /// `dns_server` (the lab's authoritative server) for `_acme-challenge` records and the
    /// names' addresses; challenges are not always valid, and authorizations are never
    /// reused (LAB.md, "pebble validating DNS-01 for real").
    pub fn start_dns01(dns_server: SocketAddr) -> Self {
        Self::start_with(Some(dns_server), &AcmeOptions::default())
    }

    /// [`Self::start_dns01`] with `options`.
    pub fn start_validating(dns_server: SocketAddr, options: &AcmeOptions) -> Self {
        Self::start_with(Some(dns_server), options)
    }

    /// The port pebble connects to for HTTP-01 (`httpPort`), on the name's address.
    pub fn http01_port(&self) -> u16 {
        self.http01_port
    }

    fn start_with(dns_server: Option<SocketAddr>, options: &AcmeOptions) -> Self {
        for tool in ["pebble", "certbot", "openssl"] {
            tools::tool_with_hint(tool, INSTALL_HINT);
        }
        let dir = LabDir::new();
        let started = Instant::now();
        let (ca_file, cert_file, key_file) = make_tls_identity(dir.path());
        let ca_der = pem::parse(fs::read(&ca_file).expect("read the test CA"))
            .expect("the test CA is PEM")
            .into_contents();
        let config = dir.path().join("pebble.json");
        let (mut management, mut http01_port) = (0, 0);
        let (pebble, addr) = launch::start_verified(
            "pebble",
            dir.path(),
            |port| {
                management = launch::free_port();
                http01_port = launch::free_port();
                let mut text = serde_json::json!({
                    "pebble": {
                        "listenAddress": format!("127.0.0.1:{port}"),
                        "managementListenAddress": format!("127.0.0.1:{management}"),
                        "certificate": cert_file,
                        "privateKey": key_file,
                        "httpPort": http01_port,
                        "tlsPort": launch::free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": options.eab.is_some()
                    }
                });
                if let Some((kid, key)) = &options.eab {
                    text["pebble"]["externalAccountMACKeys"] = serde_json::json!({ kid: key });
                }
                if let Some(seconds) = options.validity_seconds {
                    text["pebble"]["certificateValidityPeriod"] = serde_json::json!(seconds);
                }
                fs::write(&config, text.to_string()).expect("write pebble.json");
                let mut cmd = tools::command("pebble");
                cmd.arg("-config")
                    .arg(&config)
                    .env("PEBBLE_WFE_NONCEREJECT", options.nonce_reject.to_string());
                match options.va_sleep_seconds {
                    Some(seconds) => {
                        cmd.env_remove("PEBBLE_VA_NOSLEEP")
                            .env("PEBBLE_VA_SLEEPTIME", seconds.to_string());
                    }
                    None => {
                        cmd.env("PEBBLE_VA_NOSLEEP", "1");
                    }
                }
                match dns_server {
                    Some(dns) => {
                        cmd.arg("-dnsserver").arg(dns.to_string());
                        cmd.env("PEBBLE_AUTHZREUSE", "0");
                        cmd.env_remove("PEBBLE_VA_ALWAYS_VALID");
                    }
                    None => {
                        cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
                    }
                }
                cmd
            },
            // Over TCP only; a TLS handshake verified against this run's own CA proves
            // that the server on the port is ours.
            |addr, _: Transport| {
                https_get(addr, &ca_der, "/dir").is_some_and(|b| b.contains("newAccount"))
            },
        );
        let management = SocketAddr::from((Ipv4Addr::LOCALHOST, management));
        eprintln!(
            "acme: pebble on {addr} (management {management}) in {} ms, in {}",
            started.elapsed().as_millis(),
            dir.path().display()
        );
        Acme {
            pebble,
            addr,
            management,
            http01_port,
            ca_file,
            runs: AtomicU32::new(0),
            env: Vec::new(),
            dir,
        }
    }

    /// Sets `key=value` in the environment of every later certbot run (its hooks see it).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// certbot's directory of deploy hooks it runs after every renewal of any lineage.
    pub fn deploy_hooks_dir(&self) -> PathBuf {
        self.certbot_config_dir().join("renewal-hooks/deploy")
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.addr)
    }

    /// pebble's management interface (`/roots/0` is the issuing root, new at each start).
    pub fn management_addr(&self) -> SocketAddr {
        self.management
    }

    /// The CA of pebble's HTTPS API (certbot trusts it through `REQUESTS_CA_BUNDLE`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The certificate chain and key of pebble's HTTPS API (`localhost`/`127.0.0.1`, issued by
    /// [`Self::ca_file`]): an endpoint in front of pebble that its clients trust as they do it.
    pub fn api_identity(&self) -> (PathBuf, PathBuf) {
        let tls = self.dir().join("tls");
        (tls.join("cert.pem"), tls.join("key.pem"))
    }

    /// pebble's ACME directory object.
    pub fn directory(&self) -> serde_json::Value {
        let ca_der = pem::parse(fs::read(&self.ca_file).expect("read the test CA"))
            .expect("the test CA is PEM")
            .into_contents();
        let response = https_get(self.addr, &ca_der, "/dir").expect("pebble serves its directory");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .expect("an HTTP response");
        serde_json::from_str(body).expect("the directory is JSON")
    }

    pub fn pid(&self) -> u32 {
        self.pebble.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_tail(&self) -> String {
        self.pebble.log_tail()
    }

    /// Everything pebble logged so far.
    pub fn log(&self) -> String {
        self.pebble.log()
    }

    /// certbot's `--config-dir`.
    pub fn certbot_config_dir(&self) -> PathBuf {
        self.dir.path().join("certbot/config")
    }

    /// The lineage certbot keeps for `domain` (its first name): `CONFIG/live/DOMAIN`, with
    /// `fullchain.pem` and `privkey.pem`.
    pub fn lineage(&self, domain: &str) -> PathBuf {
        self.certbot_config_dir().join("live").join(domain)
    }

    /// `certbot certonly --standalone -d DOMAIN --key-type ecdsa [--deploy-hook HOOK]`: a
    /// new account on first use, then a certificate; panics unless certbot succeeds.
    pub fn certonly(&self, domain: &str, deploy_hook: Option<&Path>) -> CertbotRun {
        let args = [
            "--agree-tos",
            "--register-unsafely-without-email",
            "certonly",
            "--standalone",
            "-d",
            domain,
            "--key-type",
            "ecdsa",
        ];
        self.certbot_with_hook(&args, deploy_hook)
    }

    /// certbot with `args` [and `--deploy-hook HOOK`]; panics unless it succeeds.
    fn certbot_with_hook(&self, args: &[&str], deploy_hook: Option<&Path>) -> CertbotRun {
        let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        if let Some(hook) = deploy_hook {
            args.extend([OsStr::new("--deploy-hook"), hook.as_os_str()]);
        }
        self.certbot_ok(&args)
    }

    /// `certbot renew --cert-name DOMAIN --force-renewal --no-random-sleep-on-renew` with
    /// `--reuse-key` or `--new-key` [and `--deploy-hook HOOK`]; panics unless it succeeds.
    pub fn renew(&self, domain: &str, key: RenewKey, deploy_hook: Option<&Path>) -> CertbotRun {
        let key = match key {
            RenewKey::Reuse => "--reuse-key",
            RenewKey::New => "--new-key",
        };
        let args = [
            "renew",
            "--cert-name",
            domain,
            "--force-renewal",
            "--no-random-sleep-on-renew",
            key,
            "--key-type",
            "ecdsa",
        ];
        self.certbot_with_hook(&args, deploy_hook)
    }

    /// [`Self::certbot`], panicking with certbot's output unless it succeeded.
    pub fn certbot_ok(&self, args: &[&OsStr]) -> CertbotRun {
        let run = self.certbot(args);
        assert!(
            run.status.success(),
            "certbot {args:?} failed ({}):\n{}\n{}\n{}",
            run.status,
            run.stdout,
            run.stderr,
            self.pebble.log_tail()
        );
        run
    }

    /// Runs certbot against pebble with `args`, plus the private directories, the server,
    /// `--non-interactive` and the standalone http-01 address; bounded in time.
    pub fn certbot(&self, args: &[&OsStr]) -> CertbotRun {
        let config_dir = self.certbot_config_dir();
        let base = self.dir.path().join("certbot");
        self.client("certbot", "Could not bind", &|port| {
            let mut all: Vec<OsString> = vec!["--non-interactive".into(), "--server".into()];
            all.push(self.directory_url().into());
            all.extend(["--config-dir".into(), config_dir.clone().into_os_string()]);
            all.extend(["--work-dir".into(), base.join("work").into_os_string()]);
            all.extend(["--logs-dir".into(), base.join("logs").into_os_string()]);
            all.extend(args.iter().map(|a| a.to_os_string()));
            all.extend(["--http-01-address", "127.0.0.1", "--http-01-port"].map(OsString::from));
            all.push(port.to_string().into());
            all
        })
    }

    /// Runs lego against pebble with its account and certificates in `path` (`--path`):
    /// `lego --server … --path PATH --email … --accept-tos --domains DOMAIN --key-type ec256
    /// --http --http.port 127.0.0.1:P ARGS` (ARGS: the command, `run` or `renew …`).
    pub fn lego(&self, path: &Path, domain: &str, args: &[&OsStr]) -> CertbotRun {
        tools::tool_with_hint("lego", LEGO_HINT);
        self.client("lego", "address already in use", &|port| {
            let mut all: Vec<OsString> = vec!["--server".into(), self.directory_url().into()];
            all.extend(["--path".into(), path.as_os_str().to_os_string()]);
            all.extend(
                [
                    "--email",
                    "tlsa-test@example.org",
                    "--accept-tos",
                    "--domains",
                    domain,
                    "--key-type",
                    "ec256",
                    "--http",
                    "--http.port",
                ]
                .map(OsString::from),
            );
            all.push(format!("127.0.0.1:{port}").into());
            all.extend(args.iter().map(|a| a.to_os_string()));
            all
        })
    }

    /// Runs the ACME client `program` with `args(http-01 port)`, trusting pebble's API CA and
    /// with [`Self::set_env`]'s variables; bounded in time, and run again on another free
    /// port when its output says `port_taken` (with pebble's VA always valid, nothing
    /// connects to that port, so which one does not matter).
    fn client(
        &self,
        program: &str,
        port_taken: &str,
        args: &dyn Fn(u16) -> Vec<OsString>,
    ) -> CertbotRun {
        let base = self.dir.path().join(program);
        let mut port = self.http01_port;
        for attempt in 1..=CERTBOT_ATTEMPTS {
            let n = self.runs.fetch_add(1, Ordering::Relaxed);
            let (out_path, err_path) = (
                base.join(format!("run-{n}.out")),
                base.join(format!("run-{n}.err")),
            );
            fs::create_dir_all(&base).expect("create the client's directory");
            let args = args(port);
            let mut cmd = tools::command(program);
            cmd.args(&args)
                // certbot (Python requests) and lego read the CA from these.
                .env("REQUESTS_CA_BUNDLE", &self.ca_file)
                .env("LEGO_CA_CERTIFICATES", &self.ca_file)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(fs::File::create(&out_path).expect("client stdout file"))
                .stderr(fs::File::create(&err_path).expect("client stderr file"));
            let started = Instant::now();
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
            let status = try_poll_every(Duration::from_millis(20), CERTBOT_TIMEOUT, || {
                child.try_wait().expect("wait for the ACME client")
            });
            let Some(status) = status else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{program} {args:?} did not finish within {CERTBOT_TIMEOUT:?}:\n{}",
                    fs::read_to_string(&err_path).unwrap_or_default()
                );
            };
            let run = CertbotRun {
                status,
                stdout: fs::read_to_string(&out_path).unwrap_or_default(),
                stderr: fs::read_to_string(&err_path).unwrap_or_default(),
                elapsed: started.elapsed(),
            };
            eprintln!(
                "{program} {args:?}: {} in {} ms\n{}",
                run.status,
                run.elapsed.as_millis(),
                run.stderr.trim_end()
            );
            let taken = format!("{}{}", run.stdout, run.stderr).contains(port_taken);
            if run.status.success() || !taken || attempt == CERTBOT_ATTEMPTS {
                return run;
            }
            port = launch::free_port();
        }
        unreachable!("the last attempt returns")
    }
}

/// A certbot `--deploy-hook` that runs the certbot hook as `scripts/install` installs it (into
/// `DIR/root/usr/local`, with the `tlsa` under test), with hash-slinger's `tlsa` first in
/// `PATH` (the hook must call its own binary by absolute path) and `TLSA_CONFIG` set,
/// appending what it prints to two logs (stdout, stderr).
pub struct DeployHook {
    script: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    installed: Installed,
}

impl DeployHook {
    /// Installs tlsa into `DIR/root` and writes the hook as `DIR/deploy-hook` (logs:
    /// `DIR/deploy-hook.log`, `.err`).
    pub fn tlsa(dir: &Path, config: &Path) -> Self {
        let installed = Installed::new(&dir.join("root"));
        let hook = installed.hook("certbot-deploy-hook");
        let script = dir.join("deploy-hook");
        let log = dir.join("deploy-hook.log");
        let stderr = dir.join("deploy-hook.err");
        let text = format!(
            r#"#!/bin/sh
# certbot --deploy-hook of a test: the installed hook, another tlsa first in PATH.
exec >>'{log}' 2>>'{stderr}'
PATH='{path}'
TLSA_CONFIG='{config}'
export PATH TLSA_CONFIG
echo "deploy-hook: start RENEWED_LINEAGE=$RENEWED_LINEAGE RENEWED_DOMAINS=$RENEWED_DOMAINS"
if [ "$(command -v tlsa)" != '{other}' ]; then
  echo "deploy-hook: tlsa is $(command -v tlsa), not {other}"
  echo "deploy-hook: exit 127"
  exit 127
fi
'{hook}'
rc=$?
echo "deploy-hook: exit $rc"
exit $rc
"#,
            log = log.display(),
            stderr = stderr.display(),
            path = path_with_hash_slinger_first(&installed.prefix().join("sbin")),
            config = config.display(),
            other = HASH_SLINGER_TLSA,
            hook = hook.display(),
        );
        fs::write(&script, text).expect("write the deploy hook");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the hook");
        DeployHook {
            script,
            log,
            stderr,
            installed,
        }
    }

    pub fn path(&self) -> &Path {
        &self.script
    }

    /// The installation whose certbot hook this runs.
    pub fn installed(&self) -> &Installed {
        &self.installed
    }

    /// What the hook's runs printed on stdout so far, with a `deploy-hook: start …` and a
    /// `deploy-hook: exit N` line around each run.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the hook's runs printed on stderr so far (tlsa's progress lines and alarms).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit code of each run so far.
    pub fn exits(&self) -> Vec<i32> {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("deploy-hook: exit ")?.parse().ok())
            .collect()
    }
}

/// A CA and a leaf for `localhost`/`127.0.0.1` signed by it (ECDSA P-256), made by openssl:
/// `(ca.pem, cert.pem, key.pem)`.
fn make_tls_identity(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let tls = dir.join("tls");
    fs::create_dir_all(&tls).expect("create the TLS directory");
    let path = |name: &str| tls.join(name);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    tools::run_ok(
        tools::command("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(path("ca.key"))
            .arg("-out")
            .arg(path("ca.pem"))
            .args(["-days", TLS_DAYS, "-subj", "/CN=tlsa test pebble API CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    tools::run_ok(
        tools::command("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(path("key.pem"))
            .arg("-out")
            .arg(path("leaf.csr"))
            .args(["-subj", "/CN=localhost"]),
    );
    fs::write(
        path("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the leaf extensions");
    tools::run_ok(
        tools::command("openssl")
            .args(["x509", "-req", "-in"])
            .arg(path("leaf.csr"))
            .arg("-CA")
            .arg(path("ca.pem"))
            .arg("-CAkey")
            .arg(path("ca.key"))
            .arg("-CAcreateserial")
            .arg("-CAserial")
            .arg(path("ca.srl"))
            .arg("-extfile")
            .arg(path("leaf.ext"))
            .arg("-out")
            .arg(path("cert.pem"))
            .args(["-days", TLS_DAYS]),
    );
    (path("ca.pem"), path("cert.pem"), path("key.pem"))
}

/// `GET path` over HTTPS, trusting only `ca_der`; the whole response when it is a 200.
fn https_get(addr: SocketAddr, ca_der: &[u8], path: &str) -> Option<String> {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).ok()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    // The server may close without close_notify: what arrived before counts.
    let _ = tls.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// The deployed leaf certificate of a set, as the ACME tests look at it.
pub struct Leaf {
    /// The key id tlsa gives its SPKI.
    pub key: String,
    pub issuer: String,
    pub subject: String,
    pub not_before: std::time::SystemTime,
    pub not_after: std::time::SystemTime,
}

/// The leaf of `DEPLOY/fullchain.pem`.
pub fn deployed_leaf(deploy: &Path) -> Leaf {
    let pem = fs::read(deploy.join("fullchain.pem")).expect("read the deployed chain");
    let first = pem::parse_many(&pem).expect("PEM").remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(first.contents()).expect("a certificate");
    let at = |t: x509_parser::time::ASN1Time| {
        std::time::UNIX_EPOCH + Duration::from_secs(t.timestamp().try_into().expect("after 1970"))
    };
    Leaf {
        key: tlsa::roll::plan::KeyMaterial::from_spki(cert.public_key().raw).id,
        issuer: cert.issuer().to_string(),
        subject: cert.subject().to_string(),
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
    }
}

/// The pre-published next key in the state of set `set`.
pub fn state_next_key(state: &Path, set: &str) -> String {
    let file = tlsa::roll::state::set_file(state, set);
    let value: serde_json::Value =
        serde_json::from_slice(&fs::read(file).expect("read the set's state")).expect("JSON");
    value["next_key"].as_str().expect("a next key").to_string()
}

/// `{ acme = { directory, names, ca_file, EXTRA } }` for pebble (`extra`: more `key = value`
/// pairs, comma-separated, or empty).
pub fn acme_source(acme: &Acme, names: &[&str], extra: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let extra = match extra {
        "" => String::new(),
        more => format!(", {more}"),
    };
    format!(
        r#"{{ acme = {{ directory = "{}", names = [{}], ca_file = "{}"{extra} }} }}"#,
        acme.directory_url(),
        names.join(", "),
        acme.ca_file().display()
    )
}
