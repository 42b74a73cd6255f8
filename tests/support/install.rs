//! tlsa installed as an operator installs it: `scripts/install --prefix ROOT/usr/local` with
//! the binary under test, into a fresh directory, so that the hooks and units hold absolute
//! paths that exist on this machine (a DESTDIR-staged install would point at /usr/local).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's hash-slinger puts its own, unrelated `tlsa`.
pub const HASH_SLINGER_TLSA: &str = "/usr/bin/tlsa";

const HASH_SLINGER_HINT: &str = "install hash-slinger with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends hash-slinger)";

/// One installation under `ROOT/usr/local`.
pub struct Installed {
    root: PathBuf,
}

impl Installed {
    /// Runs `scripts/install --prefix ROOT/usr/local --binary <tlsa under test>`; panics with
    /// its output unless it succeeds.
    pub fn new(root: &Path) -> Self {
        let installed = Installed {
            root: root.to_path_buf(),
        };
        let binary = super::tools::tlsa_binary();
        installed.script(&["--binary", binary]);
        installed
    }

    /// The installation prefix, `ROOT/usr/local`.
    pub fn prefix(&self) -> PathBuf {
        self.root.join("usr/local")
    }

    pub fn binary(&self) -> PathBuf {
        self.prefix().join("sbin/tlsa")
    }

    /// An installed hook: `PREFIX/lib/tlsa/hooks/NAME`.
    pub fn hook(&self, name: &str) -> PathBuf {
        self.prefix().join("lib/tlsa/hooks").join(name)
    }

    pub fn units_dir(&self) -> PathBuf {
        self.prefix().join("lib/systemd/system")
    }

    pub fn man_dir(&self) -> PathBuf {
        self.prefix().join("share/man")
    }

    /// `scripts/install --uninstall` for this prefix.
    pub fn uninstall(&self) -> Output {
        self.script(&["--uninstall"])
    }

    fn script(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install");
        let out = Command::new(&script)
            .arg("--prefix")
            .arg(self.prefix())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A PATH in which hash-slinger's `tlsa` comes first, as in certbot's environment on a
/// Debian host with both installed (`extra` after it); panics with an install hint when
/// hash-slinger is missing, as the point is that the hooks must not pick it up.
pub fn path_with_hash_slinger_first(extra: &Path) -> String {
    assert!(
        Path::new(HASH_SLINGER_TLSA).exists(),
        "{HASH_SLINGER_TLSA} not found: {HASH_SLINGER_HINT}"
    );
    format!("/usr/bin:/bin:{}:/usr/sbin:/sbin", extra.display())
}
