//! Secrets tlsa uses — API tokens and keys, the ACME External Account
//! Binding key, IMAP passwords — come from a file or an environment
//! variable that the configuration names ([`SecretSource`]), never from the
//! configuration itself. Loaded, they are [`Secret`]s: no `Display`, a
//! redacting `Debug`, overwritten when dropped; errors name where the secret
//! was looked for, never its value. (TSIG keys have their own type in
//! `dns::publish::tsig`, which also parses their files.)

use std::fmt;
use std::path::PathBuf;

/// A secret could not be loaded. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load the {what} from {source_name}: {why}")]
pub struct SecretError {
    pub what: String,
    /// "file /etc/…" or "environment variable NAME".
    pub source_name: String,
    pub why: String,
}

/// A credential (API token, API key). Its `Debug` is redacted and it has no
/// `Display`, so it cannot end up in a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    /// Overwritten when dropped (best effort: the HTTP client copies the
    /// header it is sent in).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a secret is kept: configuration names the place, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret (surrounding whitespace is ignored).
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

impl SecretSource {
    /// Loads the secret; `what` names it in errors ("Cloudflare API token").
    pub fn load(&self, what: &str) -> Result<Secret, SecretError> {
        let error = |why: String| SecretError {
            what: what.to_string(),
            source_name: self.to_string(),
            why,
        };
        let raw = match self {
            SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                error(format!(
                    "{e}; check the path and that this user may read it"
                ))
            })?,
            SecretSource::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => error("it is not set".into()),
                std::env::VarError::NotUnicode(_) => error("it is not valid UTF-8".into()),
            })?,
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(error("it is empty".into()));
        }
        if value.chars().any(char::is_control) {
            return Err(error(
                "it holds control characters or several lines; put only the secret there".into(),
            ));
        }
        Ok(Secret::new(value))
    }
}
