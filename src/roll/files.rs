//! The certificate files of a set: where the ACME client (or tlsa itself)
//! puts new ones, and the deploy target the server reads, which tlsa owns.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::plan::{CertFacts, KeyMaterial};
use crate::config::{CertSet, Source};
use crate::fsutil::write_atomic;

pub const CHAIN_FILE: &str = "fullchain.pem";
pub const KEY_FILE: &str = "privkey.pem";
/// How long a reload command may run before it counts as failed.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Input(#[from] crate::tlsa::InputError),
    #[error(
        "{key}: this private key does not belong to the certificate {cert}; the ACME client's output is inconsistent: nothing was deployed"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot write {file}: {why}")]
    Write { file: PathBuf, why: String },
    #[error("cannot read {file}: {why}")]
    Read { file: PathBuf, why: String },
    #[error(
        "the reload command {command:?} failed: {why}; the new certificate is in place but the server may still use the old one: fix the command and run `tlsa run` again"
    )]
    Reload { command: Vec<String>, why: String },
}

/// A certificate chain file and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            chain: dir.join(CHAIN_FILE),
            key: dir.join(KEY_FILE),
        }
    }
}

/// Where tlsa stages self-signed certificates (and planned rolls) for a set.
pub fn staged_dir(state_dir: &Path, set: &str) -> PathBuf {
    state_dir.join("staged").join(set)
}

/// Where the newest certificate of a set comes from.
pub fn source_files(set: &CertSet, state_dir: &Path) -> CertFiles {
    match &set.source {
        Source::Certbot(lineage) => CertFiles::in_dir(lineage),
        Source::Files { cert, key } => CertFiles {
            chain: cert.clone(),
            key: key.clone(),
        },
        Source::SelfSigned { .. } => CertFiles::in_dir(&staged_dir(state_dir, set.name.get_ref())),
    }
}

pub fn deploy_files(set: &CertSet) -> CertFiles {
    CertFiles::in_dir(&set.deploy.dir)
}

/// The key and fingerprint of the certificate in `chain`; `None` when the
/// file does not exist (nothing deployed yet, no certificate issued yet).
pub fn cert_facts(chain: &Path) -> Result<Option<CertFacts>, FileError> {
    if !chain.exists() {
        return Ok(None);
    }
    let material = crate::tlsa::load_file(chain)?;
    let Some(leaf) = material.leaf() else {
        return Err(FileError::Read {
            file: chain.to_path_buf(),
            why: format!("expected a certificate chain, found a {}", material.kind),
        });
    };
    Ok(Some(CertFacts {
        key: KeyMaterial::from_spki(leaf.spki()),
        fingerprint: hex::encode(Sha256::digest(leaf.der())),
    }))
}

/// The public key of a private key file.
pub fn key_material(key: &Path) -> Result<KeyMaterial, FileError> {
    Ok(KeyMaterial::from_spki(&crate::tlsa::load_file(key)?.spki))
}

/// Puts `from` into service at `to`: the key first (0600) and then the
/// chain, each atomically, after checking that they belong together. A
/// server reading between the two writes sees the old chain with the new
/// key for an instant at most; reload happens after both.
pub fn install(from: &CertFiles, to: &CertFiles) -> Result<(), FileError> {
    let cert = cert_facts(&from.chain)?.ok_or_else(|| FileError::Read {
        file: from.chain.clone(),
        why: "no certificate there".into(),
    })?;
    if key_material(&from.key)?.id != cert.key.id {
        return Err(FileError::KeyMismatch {
            cert: from.chain.clone(),
            key: from.key.clone(),
        });
    }
    let read = |file: &Path| {
        std::fs::read(file).map_err(|e| FileError::Read {
            file: file.to_path_buf(),
            why: e.to_string(),
        })
    };
    let (chain, key) = (read(&from.chain)?, read(&from.key)?);
    for (path, content, mode) in [(&to.key, &key, 0o600), (&to.chain, &chain, 0o644)] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FileError::Write {
                file: path.clone(),
                why: e.to_string(),
            })?;
        }
        write_atomic(path, content, mode).map_err(|e| FileError::Write {
            file: path.clone(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// Runs the reload command (argument list, no shell), bounded in time.
pub async fn reload(command: &[String]) -> Result<(), FileError> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    let fail = |why: String| FileError::Reload {
        command: command.to_vec(),
        why,
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RELOAD_TIMEOUT, child)
        .await
        .map_err(|_| fail(format!("no exit within {} s", RELOAD_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!(
            "{}: {}",
            output.status,
            stderr.trim().lines().last().unwrap_or("")
        )));
    }
    Ok(())
}
