//! Durable file replacement: state, keys and deployed certificates must be
//! either the old or the new content after a crash, never a torn mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `content` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory.
/// `mode` applies from creation, so a private key is never readable by others
/// even for an instant.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    replace_all(&[(path, content, mode)], None).map_err(|e| e.error)
}

/// A file's owner and group (`None`: the creating process's).
pub type Ownership = (Option<nix::unistd::Uid>, Option<nix::unistd::Gid>);

/// Mode of the directories tlsa creates for itself (state, keys, staged
/// certificates): private keys live there.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of a deploy directory tlsa creates: the server, which may read its
/// certificate after dropping privileges, must reach `fullchain.pem`; the
/// key files in it are 0600 themselves.
pub const DEPLOY_DIR: u32 = 0o755;

/// `create_dir_all` with every directory it creates given `mode`, whatever
/// the umask (under umask 000 plain creation makes them 0777). Directories
/// that exist already keep their mode: the operator's choice.
pub fn create_dir_all_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let missing: Vec<&Path> = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| fs::symlink_metadata(p).is_err())
        .collect();
    for dir in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(dir) {
            // The mode given is masked by the umask: set it explicitly.
            Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode))?,
            // Created meanwhile by someone else (another set's task): theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if !fs::metadata(path)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        ));
    }
    Ok(())
}

/// Why [`replace_all`] failed, and for which file.
#[derive(Debug)]
pub struct ReplaceError {
    pub path: PathBuf,
    pub error: io::Error,
}

/// Replaces several files together: every one gets its new content, or none
/// does (a deploy must never leave a new key beside an old certificate).
/// Every temporary is written and fsynced first; the current files are kept
/// under a second name (a hard link) until every rename succeeded; a failed
/// rename puts back those already replaced. A crash in the middle of the
/// renames can still leave a mix, as rename is atomic per file only: the
/// roll engine redoes an unfinished deploy on its next run.
///
/// With `owner`, each file is given that owner and group, and its exact
/// mode (not narrowed by the umask), on the temporary before the rename, so
/// the target never exists with the wrong owner or mode.
pub fn replace_all(
    files: &[(&Path, &[u8], u32)],
    owner: Option<Ownership>,
) -> Result<(), ReplaceError> {
    let mut staged: Vec<Staged> = Vec::new();
    let result = (|| {
        for &(path, content, mode) in files {
            staged.push(Staged::write(path, content, mode, owner)?);
        }
        for (done, file) in staged.iter().enumerate() {
            if let Err(error) = fs::rename(&file.tmp, file.path) {
                for earlier in staged[..done].iter().rev() {
                    earlier.restore();
                }
                return Err(ReplaceError {
                    path: file.path.to_path_buf(),
                    error,
                });
            }
        }
        for file in &staged {
            File::open(file.dir)
                .and_then(|d| d.sync_all())
                .map_err(|error| ReplaceError {
                    path: file.path.to_path_buf(),
                    error,
                })?;
        }
        Ok(())
    })();
    for file in &staged {
        file.clean_up();
    }
    result
}

/// Removes `.NAME.tmp.*` and `.NAME.old.*` in `dir`, left by a crash.
fn remove_leftovers(dir: &Path, name: &str) {
    let prefixes = [format!(".{name}.tmp."), format!(".{name}.old.")];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if prefixes.iter().any(|p| file.starts_with(p.as_str())) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// One file of [`replace_all`]: its new content in a temporary, and a second
/// name for its current content.
struct Staged<'a> {
    path: &'a Path,
    dir: &'a Path,
    tmp: PathBuf,
    /// The current file under another name (`None`: there was none).
    backup: Option<PathBuf>,
}

impl<'a> Staged<'a> {
    fn write(
        path: &'a Path,
        content: &[u8],
        mode: u32,
        owner: Option<Ownership>,
    ) -> Result<Self, ReplaceError> {
        let fail = |error| ReplaceError {
            path: path.to_path_buf(),
            error,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path.file_name().ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path has no file name",
            ))
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp.{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        // A crash may have left temporaries and backups behind (an earlier
        // private key among them): every tlsa write happens under the state
        // lock, so any such file of any process is stale. Removed now.
        remove_leftovers(dir, &file_name.to_string_lossy());
        let mut staged = Staged {
            path,
            dir,
            tmp,
            backup: None,
        };
        let written = (|| {
            use std::os::unix::fs::PermissionsExt;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & 0o600)
                .open(&staged.tmp)?;
            // Created readable by this user only; widened once it has its owner.
            if let Some((uid, gid)) = owner {
                nix::unistd::fchown(&file, uid, gid).map_err(io::Error::from)?;
            }
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(content)?;
            file.sync_all()?;
            // A symlink the operator set up is kept too (a hard link to a
            // symlink links the symlink itself), so a failed deploy puts it back.
            if fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
                let backup = dir.join(format!(
                    ".{}.old.{}",
                    file_name.to_string_lossy(),
                    std::process::id()
                ));
                let _ = fs::remove_file(&backup);
                fs::hard_link(path, &backup)?;
                staged.backup = Some(backup);
            }
            Ok(())
        })();
        match written {
            Ok(()) => Ok(staged),
            Err(error) => {
                staged.clean_up();
                Err(fail(error))
            }
        }
    }

    /// Puts the previous content back after this file was replaced.
    fn restore(&self) {
        match &self.backup {
            Some(backup) => {
                let _ = fs::rename(backup, self.path);
            }
            None => {
                let _ = fs::remove_file(self.path);
            }
        }
    }

    fn clean_up(&self) {
        let _ = fs::remove_file(&self.tmp);
        if let Some(backup) = &self.backup {
            let _ = fs::remove_file(backup);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn leftovers_of_a_crash_are_removed_on_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privkey.pem");
        let old_key = dir.path().join(".privkey.pem.old.4242");
        let tmp = dir.path().join(".privkey.pem.tmp.4242");
        fs::write(&old_key, b"an earlier private key").unwrap();
        fs::write(&tmp, b"half written").unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert!(!old_key.exists() && !tmp.exists());
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn replaces_content_with_the_requested_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn planted_symlinks_are_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        // At the target: the rename replaces the link itself.
        let target = dir.path().join("privkey.pem");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"key", 0o600).unwrap();
        assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
        // At the temporary's (predictable) name: removed, then created anew
        // with O_CREAT|O_EXCL, which does not follow a link either.
        let tmp = dir
            .path()
            .join(format!(".fullchain.pem.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&dir.path().join("fullchain.pem"), b"chain", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn directories_get_their_mode_and_existing_ones_keep_theirs() {
        use std::os::unix::fs::DirBuilderExt;
        let dir = tempfile::tempdir().unwrap();
        // (Under umask 000: tests/roll_engine.rs; the umask is per process,
        // shared by every test thread here.)
        let deep = dir.path().join("a/b/c");
        create_dir_all_mode(&deep, PRIVATE_DIR).unwrap();
        for sub in ["a", "a/b", "a/b/c"] {
            let mode = fs::metadata(dir.path().join(sub))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{sub}");
        }
        // An existing directory keeps the operator's mode.
        let existing = dir.path().join("existing");
        fs::DirBuilder::new().mode(0o750).create(&existing).unwrap();
        let mode = || fs::metadata(&existing).unwrap().permissions().mode();
        let before = mode();
        create_dir_all_mode(&existing.join("x"), PRIVATE_DIR).unwrap();
        assert_eq!(mode(), before);
        // A file in the way is an error, not a directory.
        fs::write(dir.path().join("file"), b"").unwrap();
        assert!(create_dir_all_mode(&dir.path().join("file"), PRIVATE_DIR).is_err());
    }

    #[test]
    fn fails_cleanly_in_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/key.pem");
        assert!(write_atomic(&path, b"x", 0o600).is_err());
    }
}
