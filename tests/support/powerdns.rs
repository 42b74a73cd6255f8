//! PowerDNS Authoritative as a lab component: `pdns_server` with the sqlite3 back-end and its
//! HTTP API on two free loopback ports (DNS, webserver), a fresh zone created through the API
//! with `"dnssec": true`, and a real unbound validating it from the DS the API reports
//! (`GET …/cryptokeys`). Everything lives in a temporary directory and stops on drop.
//!
//! Facts (PowerDNS 4.7.3, see shared/LAB.md): caches are off so every change is served at
//! once; zones must be created through the API (pdnsutil-created zones are REFUSED until a
//! rediscover); a bind failure on either port logs "address already in use" (the launcher then
//! retries on other ports); the server answers `id.server. CH TXT` with its `server-id`, which
//! is set to the lab directory so that only this server can give that answer. The API key is
//! random per lab, so only this server's API answers 200 to it.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::authoritative::serves_signed_zone;
use super::dig::{self, DigReply};
use super::lab::{LabDir, stop_servers};
use super::launch::{self, STARTUP_TIMEOUT, Transport};
use super::process::ServerProcess;
use super::resolver::{Resolver, answers_with_identity};
use super::tools;
use super::wait::poll_until;
use super::zone::{self, Dnskey, Ds};

/// What the PowerDNS lab runs.
const TOOLS: &[&str] = &[
    "pdns_server",
    "sqlite3",
    "unbound",
    "unbound-control",
    "dig",
];

/// The sqlite3 schema shipped by pdns-backend-sqlite3 (also under /usr/share/doc, which
/// minimal images often leave out).
const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

const INSTALL_HINT: &str = "install it with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends pdns-server pdns-backend-sqlite3 sqlite3)";

/// Bound on one API call made by the lab itself.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// A running PowerDNS serving a fresh signed zone, and an unbound validating it.
pub struct PowerDnsLab {
    // Field order is drop order: processes stop before the directory goes.
    resolver: Resolver,
    process: ServerProcess,
    dns_addr: SocketAddr,
    api_addr: SocketAddr,
    api_key: String,
    api_key_file: PathBuf,
    zone: String,
    ttl: u32,
    ds_records: Vec<String>,
    ds_anchor_file: PathBuf,
    dnskey_anchor_file: PathBuf,
    dir: LabDir,
}

impl PowerDnsLab {
    /// A lab whose zone has TTL (records, SOA minimum) 2 s.
    pub fn start() -> Self {
        Self::with_ttl(2)
    }

    pub fn with_ttl(ttl: u32) -> Self {
        tools::require(TOOLS);
        assert!(
            Path::new(SCHEMA).is_file(),
            "{SCHEMA} missing: {INSTALL_HINT}"
        );
        let dir = LabDir::new();
        let zone = zone::unique_zone_name();
        let api_key = random_hex(16);
        let api_key_file = dir.path().join("api.key");
        fs::write(&api_key_file, format!("{api_key}\n")).expect("write API key file");
        let database = dir.path().join("pdns.sqlite3");
        create_database(&database);

        let started = Instant::now();
        let identity = dir.path().display().to_string();
        let web_port = Cell::new(0u16);
        let config_dir = dir.path().join("pdns");
        fs::create_dir_all(&config_dir).expect("create pdns directory");
        let (process, dns_addr) = launch::start_verified(
            "pdns_server",
            &config_dir,
            |port| {
                web_port.set(launch::free_port());
                let text = config_text(
                    &config_dir,
                    &database,
                    &identity,
                    &api_key,
                    port,
                    web_port.get(),
                );
                fs::write(config_dir.join("pdns.conf"), text).expect("write pdns.conf");
                let mut cmd = tools::command("pdns_server");
                cmd.arg(format!("--config-dir={}", config_dir.display()))
                    .args(["--daemon=no", "--guardian=no", "--disable-syslog"]);
                cmd
            },
            |addr, transport| {
                answers_with_identity(addr, &identity, transport)
                    && (transport == Transport::Tcp || api_is_ours(web_port.get(), &api_key))
            },
        );
        let api_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, web_port.get()));
        let mut lab_api = Api {
            addr: api_addr,
            key: &api_key,
        };
        lab_api.create_zone(&zone, ttl);
        poll_until(
            &format!("{zone} served signed by PowerDNS at {dns_addr}"),
            STARTUP_TIMEOUT,
            || serves_signed_zone(dns_addr, &zone, Transport::Udp).then_some(()),
        );
        let (ds, dnskeys) = lab_api.keys(&zone);
        let ds_records: Vec<String> = ds.iter().map(|d| d.line(&zone)).collect();
        let dnskey_records: Vec<String> = dnskeys.iter().map(|k| k.line(&zone)).collect();
        let ds_anchor_file = dir.path().join("ds.anchor");
        let dnskey_anchor_file = dir.path().join("dnskey.anchor");
        zone::write_lines(&ds_anchor_file, &ds_records);
        zone::write_lines(&dnskey_anchor_file, &dnskey_records);
        let pdns_time = started.elapsed();

        let started = Instant::now();
        let resolver = Resolver::start(
            &dir.path().join("resolver"),
            &zone,
            dns_addr,
            &zone::lines_text(&ds_records),
        );
        resolver.wait_validated(&zone);
        eprintln!(
            "powerdns lab: {zone} on {dns_addr}, API {api_addr} ({} ms), validated by unbound {} ({} ms), in {}",
            pdns_time.as_millis(),
            resolver.addr(),
            started.elapsed().as_millis(),
            dir.path().display()
        );
        PowerDnsLab {
            resolver,
            process,
            dns_addr,
            api_addr,
            api_key,
            api_key_file,
            zone,
            ttl,
            ds_records,
            ds_anchor_file,
            dnskey_anchor_file,
            dir,
        }
    }

    /// The zone, fully qualified (`tHEX-N.test.`).
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

    /// PowerDNS's DNS port (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// `http://127.0.0.1:PORT`, the webserver serving `/api/v1`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// A file holding the API key (one line).
    pub fn api_key_file(&self) -> &Path {
        &self.api_key_file
    }

    /// unbound `trust-anchor-file` format: the zone's DS lines.
    pub fn ds_anchor_file(&self) -> &Path {
        &self.ds_anchor_file
    }

    /// Zone-file DNSKEY lines of the zone's key-signing key(s).
    pub fn dnskey_anchor_file(&self) -> &Path {
        &self.dnskey_anchor_file
    }

    pub fn ds_records(&self) -> &[String] {
        &self.ds_records
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn resolver_addr(&self) -> SocketAddr {
        self.resolver.addr()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `name`/`rtype` straight from PowerDNS (`+norec +dnssec`).
    pub fn query_server(&self, name: &str, rtype: &str) -> DigReply {
        dig::query(self.dns_addr, name, rtype, &["+norec"])
    }

    /// `name`/`rtype` through the validating unbound.
    pub fn query_resolver(&self, name: &str, rtype: &str) -> DigReply {
        self.resolver.query(name, rtype, &[])
    }

    /// One API call with this lab's key, blocking: (status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, String) {
        let body = body.map(|b| b.to_string());
        http(self.api_addr, method, path, &self.api_key, body.as_deref())
            .unwrap_or_else(|| panic!("no answer from the PowerDNS API at {}", self.api_addr))
    }

    /// The zone as the API returns it (JSON).
    pub fn zone_json(&self) -> serde_json::Value {
        let (status, body) = self.api(
            "GET",
            &format!("/api/v1/servers/localhost/zones/{}", self.zone),
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("zone JSON")
    }

    /// Replaces the TLSA RRset at `owner` behind tlsa's back (another writer), with `records`
    /// in presentation form.
    pub fn replace_tlsa(&self, owner: &str, ttl: u32, records: &[&str]) {
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::json!({"content": r, "disabled": false}))
            .collect();
        let body = serde_json::json!({"rrsets": [{"name": owner, "type": "TLSA", "ttl": ttl,
            "changetype": "REPLACE", "records": records}]});
        let (status, text) = self.api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{}", self.zone),
            Some(&body),
        );
        assert_eq!(status, 204, "{text}");
    }
}

impl Drop for PowerDnsLab {
    fn drop(&mut self) {
        let lab = format!("powerdns lab {}", self.zone);
        stop_servers(&lab, &mut self.process, &mut self.resolver);
    }
}

/// pdns.conf: sqlite3 with DNSSEC, API on loopback, no caches, no outside queries.
fn config_text(
    dir: &Path,
    database: &Path,
    identity: &str,
    api_key: &str,
    port: u16,
    web_port: u16,
) -> String {
    // - caches off: a change is served at once (tests poll anyway).
    // - security-poll-suffix empty: no query to the outside world at startup.
    // - server-id: answered to `id.server. CH TXT`, proves which server owns the port.
    // - one thread of each kind: labs run many at once on two cores.
    format!(
        "launch=gsqlite3\n\
         gsqlite3-database={database}\n\
         gsqlite3-dnssec=yes\n\
         local-address=127.0.0.1\n\
         local-port={port}\n\
         api=yes\n\
         api-key={api_key}\n\
         webserver=yes\n\
         webserver-address=127.0.0.1\n\
         webserver-port={web_port}\n\
         webserver-allow-from=127.0.0.0/8\n\
         cache-ttl=0\n\
         negquery-cache-ttl=0\n\
         query-cache-ttl=0\n\
         security-poll-suffix=\n\
         server-id={identity}\n\
         socket-dir={dir}\n\
         distributor-threads=1\n\
         receiver-threads=1\n\
         signing-threads=1\n",
        database = database.display(),
        dir = dir.display(),
    )
}

/// Creates the sqlite3 database from the shipped schema.
fn create_database(path: &Path) {
    let schema = fs::read(SCHEMA).unwrap_or_else(|e| panic!("read {SCHEMA}: {e}; {INSTALL_HINT}"));
    let mut child = tools::command("sqlite3")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sqlite3");
    child
        .stdin
        .take()
        .expect("sqlite3 stdin")
        .write_all(&schema)
        .expect("feed the schema to sqlite3");
    let output = child.wait_with_output().expect("wait for sqlite3");
    assert!(
        output.status.success(),
        "sqlite3 failed to create {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether the API on `port` accepts `key` and is an authoritative PowerDNS.
fn api_is_ours(port: u16, key: &str) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    http(addr, "GET", "/api/v1/servers/localhost", key, None)
        .is_some_and(|(status, body)| status == 200 && body.contains("\"authoritative\""))
}

/// The lab's own calls to the API.
struct Api<'a> {
    addr: SocketAddr,
    key: &'a str,
}

impl Api<'_> {
    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, String) {
        let body = body.map(|b| b.to_string());
        http(self.addr, method, path, self.key, body.as_deref())
            .unwrap_or_else(|| panic!("no answer from the PowerDNS API at {}", self.addr))
    }

    /// `POST /zones` with `"dnssec": true`: SOA (minimum = TTL), NS ns1, ns1 A 127.0.0.1.
    fn create_zone(&mut self, zone: &str, ttl: u32) {
        let rrset = |name: &str, rtype: &str, content: &str| {
            serde_json::json!({"name": name, "type": rtype, "ttl": ttl,
                "records": [{"content": content, "disabled": false}]})
        };
        let ns = format!("ns1.{zone}");
        let body = serde_json::json!({
            "name": zone,
            "kind": "Native",
            "dnssec": true,
            "nameservers": [],
            "rrsets": [
                rrset(zone, "SOA", &format!("{ns} hostmaster.{zone} 1 60 30 600 {ttl}")),
                rrset(zone, "NS", &ns),
                rrset(&ns, "A", "127.0.0.1"),
            ],
        });
        let (status, text) = self.call("POST", "/api/v1/servers/localhost/zones", Some(&body));
        assert_eq!(status, 201, "creating {zone} through the API: {text}");
    }

    /// DS (SHA-256) and DNSKEY of the zone's active key-signing keys, from `GET …/cryptokeys`.
    fn keys(&mut self, zone: &str) -> (Vec<Ds>, Vec<Dnskey>) {
        let (status, text) = self.call(
            "GET",
            &format!("/api/v1/servers/localhost/zones/{zone}/cryptokeys"),
            None,
        );
        assert_eq!(status, 200, "cryptokeys of {zone}: {text}");
        let keys: Vec<serde_json::Value> = serde_json::from_str(&text).expect("cryptokeys JSON");
        let (mut ds, mut dnskeys) = (Vec::new(), Vec::new());
        for key in keys.iter().filter(|k| k["active"] == true) {
            for line in key["ds"].as_array().into_iter().flatten() {
                let line = format!("{zone} IN DS {}", line.as_str().unwrap_or_default());
                ds.extend(
                    zone::parse_ds(&line)
                        .into_iter()
                        .filter(|d| d.digest_type == 2),
                );
            }
            if let Some(dnskey) = key["dnskey"].as_str() {
                let line = format!("{zone} IN DNSKEY {dnskey}");
                dnskeys.extend(zone::parse_dnskey(&line).into_iter().filter(Dnskey::is_sep));
            }
        }
        assert!(
            !ds.is_empty() && !dnskeys.is_empty(),
            "no active KSK/CSK in:\n{text}"
        );
        (ds, dnskeys)
    }
}

/// One blocking HTTP/1.1 exchange (`Connection: close`): (status, body), or `None` if there
/// was no well-formed answer within [`API_TIMEOUT`].
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, API_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(API_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(API_TIMEOUT)).ok()?;
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("read /dev/urandom");
    random.iter().map(|b| format!("{b:02x}")).collect()
}
