//! tlsa installed as an operator installs it: `scripts/install --prefix ROOT/usr/local` with
//! the binary under test, into a fresh directory, so that the hooks and units hold absolute
//! paths that exist on this machine — or staged as a packager does (`DESTDIR=ROOT`, prefix
//! /usr/local), whose hooks and units name the final paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's hash-slinger puts its own, unrelated `tlsa`.
pub const HASH_SLINGER_TLSA: &str = "/usr/bin/tlsa";

const HASH_SLINGER_HINT: &str = "install hash-slinger with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends hash-slinger)";

/// One installation. Paths returned are where the files are on disk; for a staged one,
/// [`Installed::prefix`] is the final prefix the files name.
pub struct Installed {
    prefix: PathBuf,
    destdir: Option<PathBuf>,
}

impl Installed {
    /// Runs `scripts/install --prefix ROOT/usr/local --binary <tlsa under test>`; panics with
    /// its output unless it succeeds.
    pub fn new(root: &Path) -> Self {
        Self::install(root.join("usr/local"), None)
    }

    /// `DESTDIR=ROOT scripts/install --prefix /usr/local --binary <tlsa under test>`.
    pub fn staged(root: &Path) -> Self {
        Self::install(PathBuf::from("/usr/local"), Some(root.to_path_buf()))
    }

    fn install(prefix: PathBuf, destdir: Option<PathBuf>) -> Self {
        let installed = Installed { prefix, destdir };
        installed.script(&["--binary", super::tools::tlsa_binary()]);
        installed
    }

    /// The prefix the installed files name (`ROOT/usr/local`, or `/usr/local` when staged).
    pub fn prefix(&self) -> PathBuf {
        self.prefix.clone()
    }

    /// Where `PREFIX/relative` is on disk.
    pub fn path(&self, relative: &str) -> PathBuf {
        let path = self.prefix.join(relative);
        match &self.destdir {
            Some(root) => root.join(path.strip_prefix("/").unwrap()),
            None => path,
        }
    }

    pub fn binary(&self) -> PathBuf {
        self.path("sbin/tlsa")
    }

    /// An installed hook: `PREFIX/lib/tlsa/hooks/NAME`.
    pub fn hook(&self, name: &str) -> PathBuf {
        self.path("lib/tlsa/hooks").join(name)
    }

    pub fn units_dir(&self) -> PathBuf {
        self.path("lib/systemd/system")
    }

    pub fn man_dir(&self) -> PathBuf {
        self.path("share/man")
    }

    /// `scripts/install --uninstall` for this prefix.
    pub fn uninstall(&self) -> Output {
        self.script(&["--uninstall"])
    }

    fn script(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install");
        let mut cmd = Command::new(&script);
        cmd.arg("--prefix").arg(&self.prefix).args(args);
        match &self.destdir {
            Some(root) => cmd.env("DESTDIR", root),
            None => cmd.env_remove("DESTDIR"),
        };
        let out = cmd
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
