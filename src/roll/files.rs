//! The certificate files of a set: where the ACME client (or tlsa itself)
//! puts new ones, and the deploy target the server reads, which tlsa owns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::plan::{CertFacts, KeyMaterial};
use super::state::SetState;
use crate::config::{CertSet, Source};
use crate::fsutil::{DEPLOY_DIR, create_dir_all_mode, replace_all};

pub const CHAIN_FILE: &str = "fullchain.pem";
pub const KEY_FILE: &str = "privkey.pem";
/// The key followed by the chain, in one file (see `config::Deploy`).
pub const COMBINED_FILE: &str = "combined.pem";
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
    /// Who may read them, when tlsa writes them (the deploy target).
    pub access: Access,
}

/// Owner, group and key mode of files tlsa writes (`deploy = { owner, group, mode }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Of the private key files; the chain is 0644.
    pub key_mode: u32,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            owner: None,
            group: None,
            key_mode: crate::config::DEFAULT_KEY_MODE,
        }
    }
}

impl Access {
    /// The user and group ids; `Err` says which name does not exist.
    pub fn ownership(&self) -> Result<crate::fsutil::Ownership, String> {
        use nix::unistd::{Group, User};
        let uid = lookup("owner", "user", &self.owner, User::from_name)?.map(|u| u.uid);
        let gid = lookup("group", "group", &self.group, Group::from_name)?.map(|g| g.gid);
        Ok((uid, gid))
    }
}

/// A user or group by name, the error naming the config key.
fn lookup<T>(
    key: &str,
    kind: &str,
    name: &Option<String>,
    find: impl Fn(&str) -> nix::Result<Option<T>>,
) -> Result<Option<T>, String> {
    let Some(name) = name else {
        return Ok(None);
    };
    find(name)
        .map_err(|e| format!("{key} {name:?}: cannot look the {kind} up: {e}"))?
        .map(Some)
        .ok_or_else(|| format!("{key} {name:?}: no such {kind} on this host"))
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            chain: dir.join(CHAIN_FILE),
            key: dir.join(KEY_FILE),
            access: Access::default(),
        }
    }
}

/// Where tlsa stages self-signed certificates (and planned rolls) for a set.
pub fn staged_dir(state_dir: &Path, set: &str) -> PathBuf {
    state_dir.join("staged").join(set)
}

/// Where the certificate to put into service comes from: the ACME client's
/// newest, or the staged one of a planned roll. For a certbot pair, the
/// live lineage, or the other one once a roll to it was requested.
pub fn source_files(
    set: &CertSet,
    state_dir: &Path,
    entry: &SetState,
) -> Result<CertFiles, FileError> {
    if let Source::CertbotPair(lineages) = &set.source {
        let (live, other) = pair_roles(set, lineages)?;
        let target = entry.rollover_to.as_deref();
        let other_is_target =
            target.is_some() && cert_facts(&other.chain)?.map(|c| c.key.id).as_deref() == target;
        return Ok(if other_is_target { other } else { live });
    }
    Ok(source_files_of(set, state_dir))
}

/// For a certbot pair: (the lineage whose key is deployed, the other one);
/// the first lineage is live while nothing is deployed.
pub fn pair_roles(
    set: &CertSet,
    lineages: &[PathBuf; 2],
) -> Result<(CertFiles, CertFiles), FileError> {
    let [first, second] = lineages.clone().map(|dir| CertFiles::in_dir(&dir));
    let deployed = cert_facts(&deploy_files(set).chain)?.map(|c| c.key.id);
    let second_live =
        deployed.is_some() && cert_facts(&second.chain)?.map(|c| c.key.id) == deployed;
    Ok(if second_live {
        (second, first)
    } else {
        (first, second)
    })
}

/// The certificate files a set's source names, without roles.
pub(crate) fn source_files_of(set: &CertSet, state_dir: &Path) -> CertFiles {
    match &set.source {
        Source::Certbot(lineage) => CertFiles::in_dir(lineage),
        Source::CertbotPair(lineages) => CertFiles::in_dir(&lineages[0]),
        Source::Files { cert, key } => CertFiles {
            chain: cert.clone(),
            key: key.clone(),
            access: Access::default(),
        },
        Source::AcmeSh(dir) => {
            // acme.sh names ECDSA certificates' directories `NAME_ecc`.
            let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let name = dir_name.strip_suffix("_ecc").unwrap_or(dir_name);
            CertFiles {
                chain: dir.join("fullchain.cer"),
                key: dir.join(format!("{name}.key")),
                access: Access::default(),
            }
        }
        Source::Lego { path, domain } => {
            // lego writes `*.example.com` as `_.example.com`.
            let name = domain.replace('*', "_");
            let dir = path.join("certificates");
            CertFiles {
                chain: dir.join(format!("{name}.crt")),
                key: dir.join(format!("{name}.key")),
                access: Access::default(),
            }
        }
        Source::SelfSigned { .. } | Source::Acme(_) => {
            CertFiles::in_dir(&staged_dir(state_dir, set.name.get_ref()))
        }
    }
}

pub fn deploy_files(set: &CertSet) -> CertFiles {
    CertFiles {
        access: Access {
            owner: set.deploy.owner.clone(),
            group: set.deploy.group.clone(),
            key_mode: set.deploy.mode.unwrap_or(crate::config::DEFAULT_KEY_MODE),
        },
        ..CertFiles::in_dir(&set.deploy.dir)
    }
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

/// Puts `from` into service at `to`: the combined file (key and chain, one
/// atomic rename), the key (0600) and the chain, after checking that they
/// belong together, all replaced or none ([`replace_all`]). A server reading
/// the separate files between their renames could see the old chain with
/// the new key; one reading `combined.pem` never can. Reload happens after all.
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
    let mut combined = key.clone();
    if !combined.ends_with(b"\n") {
        combined.push(b'\n');
    }
    combined.extend_from_slice(&chain);
    let combined_path = to
        .key
        .parent()
        .map_or_else(|| PathBuf::from(COMBINED_FILE), |d| d.join(COMBINED_FILE));
    let owner = to.access.ownership().map_err(|why| FileError::Write {
        file: to.key.clone(),
        why: format!("{why}; fix deploy.owner/deploy.group"),
    })?;
    let owner = (owner != (None, None)).then_some(owner);
    let key_mode = to.access.key_mode;
    let files = [
        (combined_path.as_path(), combined.as_slice(), key_mode),
        (to.key.as_path(), key.as_slice(), key_mode),
        (to.chain.as_path(), chain.as_slice(), 0o644),
    ];
    for (path, _, _) in files {
        if let Some(dir) = path.parent() {
            create_dir_all_mode(dir, DEPLOY_DIR).map_err(|e| FileError::Write {
                file: path.to_path_buf(),
                why: e.to_string(),
            })?;
        }
    }
    // All or nothing: a server reading privkey.pem and fullchain.pem must
    // never find the new key with the old certificate after a failed write.
    replace_all(&files, owner).map_err(|e| FileError::Write {
        file: e.path,
        why: match e.error.raw_os_error() {
            Some(code) if code == nix::errno::Errno::EPERM as i32 => format!(
                "{}: only root may give files to another user (deploy.owner), and a group only to one this user is in (deploy.group); nothing was deployed",
                e.error
            ),
            _ => format!(
                "{}; nothing was deployed: the files there are as they were",
                e.error
            ),
        },
    })
}

/// Runs the reload command (argument list, no shell), bounded in time,
/// without the environment variables `hidden_env` (the config's secrets).
pub async fn reload(command: &[String], hidden_env: &[String]) -> Result<(), FileError> {
    crate::command::run(command, RELOAD_TIMEOUT, hidden_env)
        .await
        .map_err(|f| FileError::Reload {
            command: command.to_vec(),
            why: format!("{}{}", f.status, f.output),
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::KeyAlgorithmChoice;

    fn set_with_source(source: &str) -> CertSet {
        crate::config::testing::one_set_for_tests(Path::new("/tmp"), 60, source)
            .sets
            .remove(0)
    }

    #[test]
    fn acme_sh_and_lego_layouts_name_their_files() {
        let acme = set_with_source(r#"{ acme-sh = "/root/.acme.sh/mail.example.com_ecc" }"#);
        let files = source_files_of(&acme, Path::new("/state"));
        assert_eq!(
            files.chain,
            Path::new("/root/.acme.sh/mail.example.com_ecc/fullchain.cer")
        );
        assert_eq!(
            files.key,
            Path::new("/root/.acme.sh/mail.example.com_ecc/mail.example.com.key")
        );
        let lego =
            set_with_source(r#"{ lego = { path = "/root/.lego", domain = "*.example.com" } }"#);
        let files = source_files_of(&lego, Path::new("/state"));
        assert_eq!(
            files.chain,
            Path::new("/root/.lego/certificates/_.example.com.crt")
        );
        assert_eq!(
            files.key,
            Path::new("/root/.lego/certificates/_.example.com.key")
        );
    }

    /// A self-signed certificate and its key, made in `dir` under `name`.
    fn material(dir: &Path, name: &str) -> CertFiles {
        let (_, key) =
            super::super::keys::create_next_key(dir, name, KeyAlgorithmChoice::EcdsaP256).unwrap();
        let pem = super::super::keys::self_signed_pem(&key, &["mail.example".into()], 1).unwrap();
        let chain = dir.join(format!("{name}-chain.pem"));
        std::fs::write(&chain, pem).unwrap();
        CertFiles {
            chain,
            key,
            access: Access::default(),
        }
    }

    #[test]
    fn a_failed_install_leaves_the_deployed_files_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (material(dir.path(), "old"), material(dir.path(), "new"));
        let deploy = dir.path().join("deploy");
        let to = CertFiles::in_dir(&deploy);
        install(&old, &to).unwrap();
        let before: Vec<Vec<u8>> = [COMBINED_FILE, KEY_FILE]
            .iter()
            .map(|f| std::fs::read(deploy.join(f)).unwrap())
            .collect();
        // The last file of the deploy cannot be replaced: a directory in its place.
        std::fs::remove_file(&to.chain).unwrap();
        std::fs::create_dir(&to.chain).unwrap();
        let err = install(&new, &to).unwrap_err().to_string();
        let after: Vec<Vec<u8>> = [COMBINED_FILE, KEY_FILE]
            .iter()
            .map(|f| std::fs::read(deploy.join(f)).unwrap())
            .collect();
        assert!(
            after == before,
            "the old key stays with the old certificate"
        );
        assert!(err.contains("nothing was deployed"), "{err}");
        let mut names: Vec<String> = std::fs::read_dir(&deploy)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [COMBINED_FILE, CHAIN_FILE, KEY_FILE],
            "no temporary left"
        );
    }

    #[test]
    fn install_writes_a_combined_file_key_first_private() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key_path) =
            super::super::keys::create_next_key(dir.path(), "mail", KeyAlgorithmChoice::EcdsaP256)
                .unwrap();
        let pem =
            super::super::keys::self_signed_pem(&key_path, &["mail.example".into()], 1).unwrap();
        let from = CertFiles {
            chain: dir.path().join("chain.pem"),
            key: key_path.clone(),
            access: Access::default(),
        };
        std::fs::write(&from.chain, &pem).unwrap();
        let to = CertFiles::in_dir(&dir.path().join("deploy"));
        install(&from, &to).unwrap();
        let combined =
            std::fs::read_to_string(dir.path().join("deploy").join(COMBINED_FILE)).unwrap();
        let key = std::fs::read_to_string(&key_path).unwrap();
        assert!(combined.starts_with(&key));
        assert!(combined.ends_with(&pem));
        for file in [COMBINED_FILE, KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join("deploy").join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let loaded = crate::tlsa::load_file(&dir.path().join("deploy").join(COMBINED_FILE));
        assert!(loaded.is_ok(), "the combined file reads as key + chain");

        // For a server running as another user: its owner and group, the key 0640.
        // (Giving files away needs root, as the lab runs.)
        use std::os::unix::fs::MetadataExt;
        let access = Access {
            owner: Some("nobody".into()),
            group: Some("nogroup".into()),
            key_mode: 0o640,
        };
        let (uid, gid) = access.ownership().unwrap();
        let to = CertFiles {
            access,
            ..CertFiles::in_dir(&dir.path().join("deploy"))
        };
        install(&from, &to).unwrap();
        for (file, mode) in [
            (COMBINED_FILE, 0o640),
            (KEY_FILE, 0o640),
            (CHAIN_FILE, 0o644),
        ] {
            let meta = std::fs::metadata(dir.path().join("deploy").join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
            assert_eq!(Some(meta.uid()), uid.map(|u| u.as_raw()), "{file}");
            assert_eq!(Some(meta.gid()), gid.map(|g| g.as_raw()), "{file}");
        }
        let missing = Access {
            owner: Some("no-such-user-tlsa".into()),
            ..Access::default()
        };
        assert!(missing.ownership().unwrap_err().contains("no such user"));
    }
}
