//! The ACME account: created once per CA directory, its credentials (they
//! hold the account's private key) written 0600, atomically, in the state
//! directory and read back on every later order. Never printed: errors name
//! the file, never its content.

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountBuilder, AccountCredentials, ExternalAccountKey, NewAccount};
use sha2::{Digest, Sha256};

use crate::fsutil;

/// What went wrong talking to the CA or keeping the account.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME account file {path}: {why}")]
    Account { path: PathBuf, why: String },
    #[error("the CA at {directory} {action}: {why}")]
    Ca {
        directory: String,
        action: String,
        why: String,
        /// Worth trying again at once (a rejected nonce, a 5xx, a dropped connection).
        transient: bool,
    },
    #[error("the ACME order: the CA {action}: {why}")]
    Order {
        action: String,
        why: String,
        transient: bool,
    },
    #[error("{0}")]
    Challenge(String),
    #[error("the certificate request: {0}")]
    Csr(String),
}

/// The External Account Binding key from the CA's key id and its MAC key
/// (base64url, as CAs hand it out; padding and the standard alphabet are
/// accepted too). The key is never part of an error.
pub fn external_account_key(kid: &str, mac_key: &str) -> Result<ExternalAccountKey, AcmeError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = mac_key.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(mac_key.trim()))
        .map_err(|_| {
            AcmeError::Challenge(
                "the External Account Binding MAC key is not base64url; give it as the CA issued it (not shown)".into(),
            )
        })?;
    if bytes.is_empty() {
        return Err(AcmeError::Challenge(
            "the External Account Binding MAC key is empty".into(),
        ));
    }
    let bytes = zeroize::Zeroizing::new(bytes);
    Ok(ExternalAccountKey::new(kid.to_string(), &bytes))
}

impl AcmeError {
    /// An error a new attempt may not meet: the CA's `badNonce` (after the
    /// client's own retries), `serverInternal` or a 5xx, or a connection that
    /// failed. A refusal (`unauthorized`, `rateLimited`, `rejectedIdentifier`,
    /// …) is not: asking again at once would only spend the CA's limits.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AcmeError::Ca {
                transient: true,
                ..
            } | AcmeError::Order {
                transient: true,
                ..
            }
        )
    }
}

/// Whether the CA (or the way to it) may well answer differently next time.
pub fn transient(error: &instant_acme::Error) -> bool {
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem.r#type.as_deref().unwrap_or("");
            kind.ends_with(":badNonce")
                || kind.ends_with(":serverInternal")
                || problem.status.is_some_and(|s| s >= 500)
        }
        instant_acme::Error::Http(_)
        | instant_acme::Error::Hyper(_)
        | instant_acme::Error::Other(_) => true,
        _ => false,
    }
}

/// Whether the CA says it looked at the response and found it wanting (RFC 8555
/// §6.7: `unauthorized`, `incorrectResponse`, `dns`, `connection`, `tls`, `caa`). A CA
/// may say so in its answer to the "ready" request or only when the order is polled,
/// depending on how fast it validates: either way the challenge did not validate.
pub fn is_validation_failure(error: &instant_acme::Error) -> bool {
    const VALIDATION: [&str; 6] = [
        ":unauthorized",
        ":incorrectResponse",
        ":dns",
        ":connection",
        ":tls",
        ":caa",
    ];
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem.r#type.as_deref().unwrap_or("");
            VALIDATION.iter().any(|v| kind.ends_with(v))
        }
        _ => false,
    }
}

/// Where the accounts of one state directory live.
pub struct AccountStore {
    dir: PathBuf,
    /// Extra trust roots for the CA's HTTPS (a private or test CA); `None`:
    /// the system's.
    ca_roots: Option<PathBuf>,
}

impl AccountStore {
    pub fn new(state_dir: &Path, ca_roots: Option<PathBuf>) -> Self {
        AccountStore {
            dir: state_dir.join("acme"),
            ca_roots,
        }
    }

    /// The credentials file for a CA directory URL: one account per CA.
    pub fn path(&self, directory: &str) -> PathBuf {
        let digest = Sha256::digest(directory.as_bytes());
        self.dir
            .join(format!("account-{}.json", hex::encode(&digest[..8])))
    }

    /// The account at `directory`: the stored one, or a new one (contact
    /// URIs such as `mailto:postmaster@example.com`, bound to the CA's
    /// external account by `eab` where the CA requires it) stored before use.
    pub async fn account(
        &self,
        directory: &str,
        contact: &[&str],
        eab: Option<&ExternalAccountKey>,
    ) -> Result<Account, AcmeError> {
        let path = self.path(directory);
        let ca = |action: &str, e: instant_acme::Error| AcmeError::Ca {
            directory: directory.to_string(),
            action: action.to_string(),
            transient: transient(&e),
            why: e.to_string(),
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let credentials: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|e| AcmeError::Account {
                        path: path.clone(),
                        // serde's message names a position, not the content.
                        why: format!("not readable account credentials ({e}); remove it to create a new account"),
                    })?;
                self.builder(directory)?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| ca("refused the stored account", e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let new = NewAccount {
                    contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = self
                    .builder(directory)?
                    .create(&new, directory.to_string(), eab)
                    .await
                    .map_err(|e| ca("refused to create an account", e))?;
                self.store(&path, &credentials)?;
                Ok(account)
            }
            Err(e) => Err(AcmeError::Account {
                path,
                why: e.to_string(),
            }),
        }
    }

    fn builder(&self, directory: &str) -> Result<AccountBuilder, AcmeError> {
        let built = match &self.ca_roots {
            Some(roots) => Account::builder_with_root(roots),
            None => Account::builder(),
        };
        built.map_err(|e| AcmeError::Ca {
            directory: directory.to_string(),
            action: "cannot be reached with these trust roots".into(),
            why: e.to_string(),
            transient: false,
        })
    }

    fn store(&self, path: &Path, credentials: &AccountCredentials) -> Result<(), AcmeError> {
        let failed = |why: String| AcmeError::Account {
            path: path.to_owned(),
            why,
        };
        fsutil::create_dir_all_mode(&self.dir, 0o700).map_err(|e| failed(e.to_string()))?;
        let json = serde_json::to_vec(credentials).map_err(|e| failed(e.to_string()))?;
        fsutil::write_atomic(path, &json, 0o600).map_err(|e| failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str) -> instant_acme::Error {
        let json = format!(r#"{{"type": "urn:ietf:params:acme:error:{kind}", "status": 403}}"#);
        instant_acme::Error::Api(serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn a_failed_validation_is_told_from_other_ca_errors() {
        for kind in [
            "unauthorized",
            "incorrectResponse",
            "dns",
            "connection",
            "tls",
            "caa",
        ] {
            assert!(is_validation_failure(&problem(kind)), "{kind}");
            assert!(!transient(&problem(kind)), "{kind}");
        }
        for kind in ["malformed", "badNonce", "rateLimited", "rejectedIdentifier"] {
            assert!(!is_validation_failure(&problem(kind)), "{kind}");
        }
    }

    #[test]
    fn an_eab_key_is_read_in_either_alphabet_and_never_quoted() {
        assert!(
            external_account_key(
                "kid",
                "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
            )
            .is_ok()
        );
        assert!(external_account_key("kid", "c2VjcmV0+/8=").is_ok());
        let err = external_account_key("kid", "not base64 !!secret!!")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("secret!!"), "{err}");
        assert!(external_account_key("kid", "").is_err());
    }
}
