//! Finding the external programs the lab drives. A missing tool fails the test loudly: a
//! silently skipped integration test would look like a passing one.

use std::env;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install the lab packages with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends bind9 bind9-utils bind9-dnsutils knot \
     knot-dnsutils unbound ldnsutils hash-slinger)";

/// Absolute path of `name`, searched in `PATH` and then in the sbin directories (servers live
/// in /usr/sbin, which a non-login `PATH` may lack). Panics with an install hint if absent.
pub fn tool(name: &str) -> PathBuf {
    tool_with_hint(name, INSTALL_HINT)
}

/// [`tool`] with the install hint of the package that provides `name`.
pub fn tool_with_hint(name: &str, hint: &str) -> PathBuf {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| panic!("`{name}` not found: {hint}"))
}

/// Checks all `names` up front, so a missing package is reported before any server starts.
pub fn require(names: &[&str]) {
    for name in names {
        tool(name);
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A `Command` for the tool `name` (resolved with [`tool`]).
pub fn command(name: &str) -> Command {
    Command::new(tool(name))
}

/// Runs `cmd` to completion and returns its stdout; panics with its stderr if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tool output is UTF-8")
}

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

/// The `tlsa` binary under test. Integration tests know it at compile time;
/// the example that reuses this lab does not, and never calls this.
pub fn tlsa_binary() -> &'static str {
    match option_env!("CARGO_BIN_EXE_tlsa") {
        Some(path) => path,
        None => panic!("the tlsa binary is known to integration tests only (cargo test)"),
    }
}

/// A finished run of the `tlsa` binary: its exit code, its output as text, how long it took.
pub struct TlsaRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl TlsaRun {
    /// Runs `tlsa ARGS` to its end; panics if it cannot start or if it panicked (a panic is
    /// a bug whatever the input).
    pub fn of<I, S>(args: I) -> TlsaRun
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let started = Instant::now();
        let out = run(Command::new(tlsa_binary()).args(args));
        TlsaRun::from_output(out, started.elapsed())
    }

    /// [`Self::of`] for a run that must succeed: panics with its stderr otherwise.
    pub fn ok<I, S>(args: I) -> TlsaRun
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let run = TlsaRun::of(&args);
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert_eq!(run.code, Some(0), "tlsa {shown:?}: {}", run.stderr);
        run
    }

    /// The run of a tlsa process started by other means, once it has ended (`elapsed` after
    /// its start); panics if it panicked.
    pub fn from_output(out: Output, elapsed: Duration) -> TlsaRun {
        let run = TlsaRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        };
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        run
    }

    /// Stdout as JSON; panics with both outputs when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}
