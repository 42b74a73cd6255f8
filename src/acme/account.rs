//! The ACME account: created once per CA directory, its credentials (they
//! hold the account's private key) written 0600, atomically, in the state
//! directory and read back on every later order. Never printed: errors name
//! the file, never its content.

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
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
    },
    #[error("the ACME order: the CA {action}: {why}")]
    Order { action: String, why: String },
    #[error("{0}")]
    Challenge(String),
    #[error("the certificate request: {0}")]
    Csr(String),
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
    /// URIs such as `mailto:postmaster@example.com`) stored before use.
    pub async fn account(&self, directory: &str, contact: &[&str]) -> Result<Account, AcmeError> {
        let path = self.path(directory);
        let ca = |action: &str, e: instant_acme::Error| AcmeError::Ca {
            directory: directory.to_string(),
            action: action.to_string(),
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
                    .create(&new, directory.to_string(), None)
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
