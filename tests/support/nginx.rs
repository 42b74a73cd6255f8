//! A real nginx serving MTA-STS policies over HTTPS on loopback: one process, one port, one
//! `server` per [`Site`], each on its own loopback address (so that one policy host name can
//! have several addresses, and each way of breaking the fetch rules its own address).
//!
//! nginx runs in the foreground (`daemon off`) as the lab's [`ServerProcess`], with its pid,
//! logs and every temporary path inside its own directory (LAB.md: otherwise it tries
//! /var/lib/nginx). Its workers run as `nobody`, so the directory is world-traversable and
//! the files world-readable. A policy can be replaced while it runs ([`Nginx::set_policy`]):
//! static files need no reload.

use std::fs;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::launch::{self, Transport};
use super::postfix::{TlsIdentity, traversable_dir, write_identity};
use super::process::ServerProcess;
use super::tools;

const INSTALL_HINT: &str = "install nginx with `scripts/install-test-deps` (apt-get install -y --no-install-recommends nginx)";

/// What a site answers at `/.well-known/mta-sts.txt`.
#[derive(Clone, Debug)]
pub enum Serve {
    /// This body, `Content-Type: text/plain` exactly.
    Policy(String),
    /// This body with this media type.
    Typed { body: String, content_type: String },
    /// `301` to another URL.
    Redirect,
    /// `404`.
    NotFound,
    /// This body, sent at this many bytes a second.
    Slow { body: String, bytes_per_second: u32 },
}

/// One `server` block: an address of its own, a certificate, an answer.
#[derive(Clone)]
pub struct Site {
    pub ip: IpAddr,
    pub identity: TlsIdentity,
    pub serve: Serve,
}

/// A running nginx; stopped and its directory removed when dropped.
pub struct Nginx {
    // Field order is drop order: the process stops before its directory goes.
    process: ServerProcess,
    port: u16,
    sites: Vec<SocketAddr>,
    root: PathBuf,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with `sites`, all named `server_name`, on a free port, and returns once
    /// every site's address accepts connections.
    pub fn start(server_name: &str, sites: &[Site]) -> Self {
        Self::start_with(server_name, sites, None)
    }

    /// [`Self::start`] on `port` (443 in a private network namespace, for tools that
    /// hard-code it): one attempt, no other server can hold the port there.
    pub fn start_on(server_name: &str, sites: &[Site], port: u16) -> Self {
        Self::start_with(server_name, sites, Some(port))
    }

    fn start_with(server_name: &str, sites: &[Site], fixed: Option<u16>) -> Self {
        let nginx = tools::tool_with_hint("nginx", INSTALL_HINT);
        assert!(!sites.is_empty(), "nginx needs at least one site");
        let dir = traversable_dir("tlsa-nginx-");
        let root = dir.path().to_path_buf();
        for (i, site) in sites.iter().enumerate() {
            let site_dir = root.join(format!("site-{i}"));
            fs::create_dir_all(site_dir.join("www/.well-known")).expect("create docroot");
            write_identity(&site_dir, &site.identity);
            let body = match &site.serve {
                Serve::Policy(body) | Serve::Typed { body, .. } | Serve::Slow { body, .. } => {
                    body.as_str()
                }
                Serve::Redirect | Serve::NotFound => "",
            };
            fs::write(site_dir.join("www/.well-known/mta-sts.txt"), body).expect("write policy");
        }
        let config = root.join("nginx.conf");
        let command_for = |port| {
            fs::write(&config, config_text(&root, server_name, sites, port))
                .expect("write nginx.conf");
            command(&nginx, &root, &config)
        };
        let (process, port) = match fixed {
            None => {
                let (process, ready) =
                    launch::start_verified("nginx", &root, command_for, |addr, _: Transport| {
                        accepts(addr)
                    });
                (process, ready.port())
            }
            Some(port) => (
                ServerProcess::spawn("nginx", command_for(port), &root.join("nginx.log")),
                port,
            ),
        };
        let sites: Vec<SocketAddr> = sites.iter().map(|s| SocketAddr::new(s.ip, port)).collect();
        await_serving(&process, &sites);
        Nginx {
            process,
            port,
            sites,
            root,
            dir,
        }
    }

    /// The port every site listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Site `i`'s address and port.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.sites[i]
    }

    /// Replaces site `i`'s file (atomically: a fetch sees the old or the new one).
    pub fn set_policy(&self, i: usize, body: &str) {
        let dir = self.root.join(format!("site-{i}/www/.well-known"));
        let tmp = dir.join(".mta-sts.txt.tmp");
        fs::write(&tmp, body).expect("write policy");
        fs::rename(&tmp, dir.join("mta-sts.txt")).expect("install policy");
    }

    /// The directory site `i` serves (a webroot for tlsa to write into).
    pub fn webroot(&self, i: usize) -> PathBuf {
        self.root.join(format!("site-{i}/www"))
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// nginx serving one directory over plain HTTP on `127.0.0.1:port` (an ACME HTTP-01
/// webroot: the CA validates on a port of its config); [`Nginx::webroot`]`(0)` is the
/// directory. One attempt: the port is the caller's.
pub fn start_plain_http(port: u16) -> Nginx {
    let nginx = tools::tool_with_hint("nginx", INSTALL_HINT);
    let dir = traversable_dir("tlsa-nginx-");
    let root = dir.path().to_path_buf();
    let www = root.join("site-0/www");
    fs::create_dir_all(&www).expect("create docroot");
    let mut text = prelude(&root);
    text.push_str(&format!(
        "server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
        www.display()
    ));
    let config = root.join("nginx.conf");
    fs::write(&config, text).expect("write nginx.conf");
    let cmd = command(&nginx, &root, &config);
    let process = ServerProcess::spawn("nginx", cmd, &root.join("nginx.log"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    await_serving(&process, &[addr]);
    Nginx {
        process,
        port,
        sites: vec![addr],
        root,
        dir,
    }
}

/// nginx in the foreground with `config`, every path inside `root`.
fn command(nginx: &Path, root: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(nginx);
    cmd.arg("-e")
        .arg(root.join("error.log"))
        .args(["-g", "daemon off;", "-c"])
        .arg(config)
        .arg("-p")
        .arg(format!("{}/", root.display()));
    cmd
}

/// Returns once every address accepts connections; panics with nginx's log otherwise.
fn await_serving(process: &ServerProcess, addrs: &[SocketAddr]) {
    for addr in addrs {
        let up = super::wait::try_poll_every(launch::STARTUP_POLL, launch::STARTUP_TIMEOUT, || {
            accepts(*addr).then_some(())
        });
        assert!(
            up.is_some(),
            "nginx does not serve {addr}:\n{}",
            process.log_tail()
        );
    }
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The start of every config: pid, logs and temporary paths inside `root`, an open `http`.
fn prelude(root: &Path) -> String {
    let r = root.display();
    format!(
        "pid {r}/nginx.pid;\n\
         error_log {r}/error.log info;\n\
         worker_processes 1;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {r}/client_body;\n\
         proxy_temp_path {r}/proxy;\n\
         fastcgi_temp_path {r}/fastcgi;\n\
         uwsgi_temp_path {r}/uwsgi;\n\
         scgi_temp_path {r}/scgi;\n"
    )
}

fn config_text(root: &Path, server_name: &str, sites: &[Site], port: u16) -> String {
    let r = root.display();
    let mut text = prelude(root);
    text.push_str(&format!(
        "# The readiness probe's address: 127.0.0.1 with the first site's certificate.\n\
         server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {r}/site-0/fullchain.pem; ssl_certificate_key {r}/site-0/key.pem; return 204; }}\n"
    ));
    for (i, site) in sites.iter().enumerate() {
        let d = format!("{r}/site-{i}");
        let answer = match &site.serve {
            Serve::Policy(_) => format!("root {d}/www; types {{ }} default_type text/plain;"),
            Serve::Typed { content_type, .. } => {
                format!("root {d}/www; types {{ }} default_type {content_type};")
            }
            Serve::Redirect => format!("return 301 https://www.{server_name}/mta-sts.txt;"),
            Serve::NotFound => "return 404;".to_string(),
            Serve::Slow {
                bytes_per_second, ..
            } => format!(
                "root {d}/www; types {{ }} default_type text/plain; sendfile off; limit_rate {bytes_per_second};"
            ),
        };
        text.push_str(&format!(
            "server {{\n  listen {}:{port} ssl;\n  server_name {server_name};\n  ssl_certificate {d}/fullchain.pem;\n  ssl_certificate_key {d}/key.pem;\n  location = /.well-known/mta-sts.txt {{ {answer} }}\n}}\n",
            site.ip
        ));
    }
    text.push_str("}\n");
    text
}
