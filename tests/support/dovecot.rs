//! A real Dovecot on loopback, for the IMAP and POP3 live checks: STARTTLS on an IMAP and a
//! POP3 port, implicit TLS on an IMAPS and a POP3S port, one certificate. No mailbox is ever
//! opened (the checks stop after the handshake), so the user database is a static stub.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::launch::{self, Transport};
use super::postfix::TlsIdentity;
use super::process::ServerProcess;
use super::tools;

const INSTALL_HINT: &str = "install Dovecot with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends dovecot-imapd dovecot-pop3d)";

pub struct Dovecot {
    // Field order is drop order: the server stops before its directory goes.
    _process: ServerProcess,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts Dovecot presenting `identity` on all four ports; returns once the IMAP port
    /// greets with this instance's own greeting and the other ports accept connections.
    pub fn start(identity: &TlsIdentity) -> Self {
        let dovecot = tools::tool_with_hint("dovecot", INSTALL_HINT);
        // Dovecot's unprivileged login processes read the certificate through this directory.
        let dir = super::postfix::traversable_dir("tlsa-dovecot-");
        // key.pem (0600) and fullchain.pem, as Postfix gets them.
        super::postfix::write_identity(dir.path(), identity);
        // Unique to this instance: the greeting proves who answers on a port.
        let greeting = unique_greeting("tlsa-lab", dir.path());
        let config = dir.path().join("dovecot.conf");
        let mut ports = [0u16; 3];
        let (process, imap) = launch::start_verified(
            "dovecot",
            dir.path(),
            |port| {
                ports = [
                    launch::free_port(),
                    launch::free_port(),
                    launch::free_port(),
                ];
                fs::write(&config, config_text(dir.path(), &greeting, port, ports))
                    .expect("write dovecot.conf");
                let mut cmd = Command::new(&dovecot);
                cmd.arg("-F").arg("-c").arg(&config);
                cmd
            },
            |addr, _transport: Transport| greets_with(addr, &greeting),
        );
        let at = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let dovecot = Dovecot {
            _process: process,
            imap,
            imaps: at(ports[0]),
            pop3: at(ports[1]),
            pop3s: at(ports[2]),
            _dir: dir,
        };
        for addr in [dovecot.imaps, dovecot.pop3, dovecot.pop3s] {
            let up =
                super::wait::try_poll_every(launch::STARTUP_POLL, launch::STARTUP_TIMEOUT, || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                        .is_ok()
                        .then_some(())
                });
            assert!(up.is_some(), "Dovecot does not serve {addr}");
        }
        dovecot
    }
}

/// A real Dovecot serving the Maildirs a [`super::postfix::Delivery`] fills, for mailbox
/// readers under test: plain IMAP on loopback, and IMAPS (implicit TLS) with `identity`.
/// Each user's password is given; logins are `USER@DOMAIN`.
pub struct MailboxServer {
    _process: ServerProcess,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    _dir: tempfile::TempDir,
}

impl MailboxServer {
    pub fn start(
        delivery: &super::postfix::Delivery,
        users: &[(&str, &str)],
        identity: &TlsIdentity,
    ) -> Self {
        let dovecot = tools::tool_with_hint("dovecot", INSTALL_HINT);
        let dir = super::postfix::traversable_dir("tlsa-dovecot-mail-");
        super::postfix::write_identity(dir.path(), identity);
        let imaps = launch::free_port();
        let passwd = dir.path().join("passwd");
        let lines: String = users
            .iter()
            .map(|(user, password)| {
                format!("{user}@{}:{{PLAIN}}{password}::::::\n", delivery.domain)
            })
            .collect();
        fs::write(&passwd, lines).expect("write the passwd file");
        let greeting = unique_greeting("tlsa-mail", dir.path());
        let config = dir.path().join("dovecot.conf");
        let (process, imap) = launch::start_verified(
            "dovecot",
            dir.path(),
            |port| {
                fs::write(
                    &config,
                    mailbox_config_text(dir.path(), &greeting, [port, imaps], &passwd, delivery),
                )
                .expect("write dovecot.conf");
                let mut cmd = Command::new(&dovecot);
                cmd.arg("-F").arg("-c").arg(&config);
                cmd
            },
            |addr, _transport: Transport| greets_with(addr, &greeting),
        );
        let imaps = SocketAddr::from((Ipv4Addr::LOCALHOST, imaps));
        let up = super::wait::try_poll_every(launch::STARTUP_POLL, launch::STARTUP_TIMEOUT, || {
            TcpStream::connect_timeout(&imaps, Duration::from_secs(1))
                .is_ok()
                .then_some(())
        });
        assert!(up.is_some(), "Dovecot does not serve {imaps}");
        MailboxServer {
            _process: process,
            imap,
            imaps,
            _dir: dir,
        }
    }
}

fn mailbox_config_text(
    dir: &Path,
    greeting: &str,
    [imap, imaps]: [u16; 2],
    passwd: &Path,
    delivery: &super::postfix::Delivery,
) -> String {
    let dir_text = dir.display();
    let base = delivery.base.display();
    let uid = super::postfix::MAIL_UID;
    format!(
        "base_dir = {dir_text}/run\n\
         state_dir = {dir_text}/state\n\
         log_path = /dev/stderr\n\
         protocols = imap\n\
         listen = 127.0.0.1\n\
         ssl = yes\n\
         ssl_cert = <{dir_text}/fullchain.pem\n\
         ssl_key = <{dir_text}/key.pem\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         login_greeting = {greeting}\n\
         default_login_user = dovenull\n\
         default_internal_user = dovecot\n\
         mail_location = maildir:{base}/%d/%n/Maildir\n\
         passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n\
         userdb {{\n  driver = static\n  args = uid={uid} gid={uid} home={base}/%d/%n\n}}\n\
         service imap-login {{\n\
           inet_listener imap {{\n    port = {imap}\n  }}\n\
           inet_listener imaps {{\n    port = {imaps}\n    ssl = yes\n  }}\n\
         }}\n\
         service anvil {{\n  chroot =\n}}\n",
        passwd = passwd.display()
    )
}

/// The whole configuration: nothing from /etc/dovecot, logs to stderr (the process log).
fn config_text(dir: &Path, greeting: &str, imap: u16, [imaps, pop3, pop3s]: [u16; 3]) -> String {
    let dir = dir.display();
    format!(
        "base_dir = {dir}/run\n\
         state_dir = {dir}/state\n\
         log_path = /dev/stderr\n\
         protocols = imap pop3\n\
         listen = 127.0.0.1\n\
         ssl = yes\n\
         ssl_cert = <{dir}/fullchain.pem\n\
         ssl_key = <{dir}/key.pem\n\
         login_greeting = {greeting}\n\
         default_login_user = dovenull\n\
         default_internal_user = dovecot\n\
         passdb {{\n  driver = static\n  args = nopassword\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={dir}/home\n}}\n\
         service imap-login {{\n\
           inet_listener imap {{\n    port = {imap}\n  }}\n\
           inet_listener imaps {{\n    port = {imaps}\n  }}\n\
         }}\n\
         service pop3-login {{\n\
           inet_listener pop3 {{\n    port = {pop3}\n  }}\n\
           inet_listener pop3s {{\n    port = {pop3s}\n  }}\n\
         }}\n\
         service anvil {{\n  chroot =\n}}\n"
    )
}

/// A greeting unique to the instance in `dir`: it proves who answers on a port.
fn unique_greeting(prefix: &str, dir: &Path) -> String {
    format!(
        "{prefix}-{}",
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dovecot")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
}

/// Whether `addr` sends the IMAP greeting `* OK … GREETING`.
fn greets_with(addr: SocketAddr, greeting: &str) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).is_ok()
        && line.starts_with("* OK")
        && line.contains(greeting)
}
