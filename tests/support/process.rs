//! Server processes started by the lab: output to a log file, stopped by PID on drop.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to exit after SIGTERM before it is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Lines of a server's log quoted in panic messages.
const LOG_TAIL_LINES: usize = 40;

/// A running server that is stopped (SIGTERM, then SIGKILL) and reaped when dropped, also
/// while a failing test unwinds.
pub struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with stdout and stderr appended to `log`. Writing to a file, not a pipe,
    /// means a chatty server can never block on a full pipe nobody reads.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ServerProcess {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log, for panic messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- last {} lines of {} ---\n{}",
            tail.len(),
            self.log.display(),
            tail.join("\n")
        )
    }

    /// `Some(status)` once the process has exited (it is then reaped).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for server process")
    }

    /// Asks the server to stop (SIGTERM) without waiting; see [`Self::wait_or_kill`].
    pub fn terminate(&mut self) {
        // Never signal a reaped child: its PID may already belong to someone else.
        if self.exit_status().is_none() {
            let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
            // SAFETY: plain syscall on a PID that is our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    /// Waits up to [`STOP_GRACE`] for the process to exit, then SIGKILLs it; always reaps it.
    pub fn wait_or_kill(&mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        while self.exit_status().is_none() {
            if Instant::now() >= deadline {
                // `Child::kill` is a no-op error on an already reaped child, never a stray kill.
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, grace period, SIGKILL, reap.
    pub fn stop(&mut self) {
        self.terminate();
        self.wait_or_kill();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the kernel SIGKILL the child when the *thread* that spawned it exits (PR_SET_PDEATHSIG),
/// so servers do not outlive a test binary that is killed (timeout, Ctrl-C, abort) and cannot
/// run its `Drop`s. The trigger is the spawning thread, not the process: a lab must therefore
/// be created on a thread that lives as long as the lab (the test's own thread — not a
/// short-lived helper such as tokio's `spawn_blocking` pool, whose idle threads exit).
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // syscalls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if u32::try_from(libc::getppid()) != Ok(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
