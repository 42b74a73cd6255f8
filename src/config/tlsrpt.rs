//! The optional `[tlsrpt]` table: where reports are stored, where they come from, and how
//! strictly mail reports' DKIM signatures are required.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secrets::SecretSource;
use crate::tlsrpt::ingest::DkimMode;
use crate::tlsrpt::sources::imap::{After, ImapSource};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tlsrpt {
    /// The SQLite file; `STATE_DIR/tlsrpt.sqlite` when absent.
    pub store: Option<PathBuf>,
    /// `require` (default): unsigned or failing mail reports are kept apart; `record`:
    /// accepted with the verdict recorded.
    #[serde(default)]
    pub dkim: DkimMode,
    /// The validating resolver DKIM keys are looked up through; `[dnssec] resolver` when absent.
    #[serde(default, deserialize_with = "super::values::optional_dns_address")]
    pub resolver: Option<SocketAddr>,
    /// Files and directories `tlsa tlsrpt import` reads when given none.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Maildirs whose `new/` messages are imported.
    #[serde(default)]
    pub maildirs: Vec<PathBuf>,
    pub imap: Option<Imap>,
    pub serve: Option<Serve>,
    /// Where senders send reports: the `rua` of the `_smtp._tls` record
    /// `tlsa run` and `tlsa tlsrpt publish` keep; no record is managed when empty.
    #[serde(default)]
    pub rua: Vec<String>,
    /// TTL of the `_smtp._tls` record.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The policy domains that get the record, instead of every `[[mta_sts]]`
    /// domain and DANE MX host.
    #[serde(default)]
    pub domains: Vec<String>,
    /// `tlsa check -c`: failed sessions of non-DANE result types (per host,
    /// since the set's last roll step) beyond this many are a WARNING; 0: any.
    #[serde(default)]
    pub warn_failures: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imap {
    /// `HOST[:PORT]` (993 with TLS, 143 without).
    pub server: String,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// `seen` (default) or `move:FOLDER`.
    #[serde(default = "default_after")]
    pub after: String,
    /// Implicit TLS (default); `false` is accepted for a loopback server only.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// A CA file for a server whose certificate no system root issued.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// `ADDRESS:PORT` the HTTPS receiver listens on.
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first) and key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

fn default_ttl() -> u32 {
    3600
}

fn default_mailbox() -> String {
    "INBOX".into()
}

fn default_after() -> String {
    "seen".into()
}

fn default_true() -> bool {
    true
}

impl Default for Tlsrpt {
    /// What an absent `[tlsrpt]` table means (the serde defaults).
    fn default() -> Self {
        Tlsrpt {
            store: None,
            dkim: DkimMode::default(),
            resolver: None,
            paths: Vec::new(),
            maildirs: Vec::new(),
            imap: None,
            serve: None,
            rua: Vec::new(),
            ttl: default_ttl(),
            domains: Vec::new(),
            warn_failures: 0,
        }
    }
}

impl Tlsrpt {
    pub fn store_path(&self, state_dir: &Path) -> PathBuf {
        self.store
            .clone()
            .unwrap_or_else(|| state_dir.join(crate::tlsrpt::store::DEFAULT_FILE))
    }

    /// Checked at load, so that a bad source fails the config, not some later import.
    pub fn check(&self) -> Result<(), String> {
        for uri in &self.rua {
            crate::tlsrpt::record::check_rua(uri).map_err(|why| format!("[tlsrpt] rua: {why}"))?;
        }
        if self.ttl == 0 || self.ttl > super::values::MAX_TTL {
            return Err(format!(
                "[tlsrpt] ttl = {}: expected 1 to {} seconds (RFC 2181 §8; default 3600)",
                self.ttl,
                super::values::MAX_TTL
            ));
        }
        for domain in &self.domains {
            crate::tlsrpt::record::owner(domain)
                .map_err(|why| format!("[tlsrpt] domains: {why}"))?;
        }
        if self.rua.is_empty() && !self.domains.is_empty() {
            return Err("[tlsrpt] domains is set but rua is not: add rua = [\"mailto:…\"] (where senders send reports), or remove domains".into());
        }
        if let Some(imap) = &self.imap {
            imap.source()?;
        }
        if let Some(serve) = &self.serve
            && serve.cert.is_some() != serve.key.is_some()
        {
            return Err(
                "[tlsrpt.serve] needs both cert and key (or neither, for plain HTTP on loopback)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Imap {
    pub fn source(&self) -> Result<ImapSource, String> {
        let password = match (&self.password_file, &self.password_env) {
            (Some(file), None) => SecretSource::File(file.clone()),
            (None, Some(name)) if super::values::is_env_name(name) => {
                SecretSource::Env(name.clone())
            }
            (None, Some(_)) => {
                return Err("[tlsrpt.imap] password_env expects the name of an environment variable; the value given is not one, and is not shown in case it is the password itself".into());
            }
            _ => {
                return Err(
                    "[tlsrpt.imap] needs exactly one of password_file = \"PATH\" or password_env = \"VARIABLE\""
                        .into(),
                );
            }
        };
        let default_port = if self.tls { 993 } else { 143 };
        let (host, port) = match self.server.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => (
                host.trim_matches(['[', ']']).to_string(),
                port.parse().map_err(|_| {
                    format!(
                        "[tlsrpt.imap] server = {:?}: the port is not a number",
                        self.server
                    )
                })?,
            ),
            _ => (
                self.server.trim_matches(['[', ']']).to_string(),
                default_port,
            ),
        };
        if host.is_empty() {
            return Err("[tlsrpt.imap] server is empty; expected HOST[:PORT]".into());
        }
        Ok(ImapSource {
            host,
            port,
            user: self.user.clone(),
            password,
            mailbox: self.mailbox.clone(),
            after: self
                .after
                .parse::<After>()
                .map_err(|e| format!("[tlsrpt.imap] {e}"))?,
            tls: self.tls,
            ca_file: self.ca_file.clone(),
        })
    }
}
