//! Durable file replacement: state, keys and deployed certificates must be
//! either the old or the new content after a crash, never a torn mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `content` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory.
/// `mode` applies from creation, so a private key is never readable by others
/// even for an instant.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_owned(path, content, mode, None)
}

/// A file's owner and group (`None`: the creating process's).
pub type Ownership = (Option<nix::unistd::Uid>, Option<nix::unistd::Gid>);

/// [`write_atomic`], the file given to `owner` first: ownership and the exact
/// mode (not narrowed by the umask) are set on the temporary file before the
/// rename, so the target never exists with the wrong owner or mode.
pub fn write_atomic_owned(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<Ownership>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    // A crash may have left a temporary file from an earlier process with our pid.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o600)
            .open(&tmp)?;
        // Created readable by this user only; widened once it has its owner.
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(&file, uid, gid).map_err(io::Error::from)?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
    fn fails_cleanly_in_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/key.pem");
        assert!(write_atomic(&path, b"x", 0o600).is_err());
    }
}
