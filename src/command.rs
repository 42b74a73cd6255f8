//! Running an operator's command (a deploy's or a zone file's reload): an
//! argument list (no shell), bounded in time, without tlsa's secrets.

use std::process::Stdio;
use std::time::Duration;

/// Output of a failed command quoted in errors.
const MAX_OUTPUT: usize = 2000;

/// Why a command failed: its status (or why it did not run) and its output,
/// as one paragraph (`: …`, or empty when it printed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    pub status: String,
    pub output: String,
}

/// Runs `argv`, killed after `timeout` (with every process it started: it
/// runs in its own process group), with the variables `hidden_env` removed
/// from its environment (the rest is inherited: PATH, HOME, …). Its output
/// is read as it comes, and only the start of it kept: a chatty command
/// cannot fill memory. Once it has exited, its output is waited for only
/// briefly: a reload that started a daemon holding the pipes has worked.
pub async fn run(
    argv: &[String],
    timeout: Duration,
    hidden_env: &[String],
) -> Result<(), CommandFailure> {
    let failure = |status: String| CommandFailure {
        status,
        output: String::new(),
    };
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in hidden_env {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .map_err(|e| failure(format!("cannot start it: {e}")))?;
    let group = child.id();
    let stdout = tokio::spawn(read_capped(child.stdout.take()));
    let stderr = tokio::spawn(read_capped(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(failure(format!("cannot wait for it: {e}"))),
        Err(_) => {
            kill_group(group);
            return Err(failure(format!(
                "no exit within {} s; killed",
                timeout.as_secs()
            )));
        }
    };
    if status.success() {
        stdout.abort();
        stderr.abort();
        return Ok(());
    }
    let mut text = String::new();
    for reader in [stderr, stdout] {
        let handle = reader.abort_handle();
        match tokio::time::timeout(OUTPUT_GRACE, reader).await {
            Ok(Ok(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
            _ => handle.abort(),
        }
        text.push(' ');
    }
    // One paragraph: the output's lines joined.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let output_text = if text.is_empty() {
        String::new()
    } else {
        let cut: String = text.chars().take(MAX_OUTPUT).collect();
        format!(": {cut}")
    };
    Err(CommandFailure {
        status: status.to_string(),
        output: output_text,
    })
}

/// How long a command's output is waited for once it has exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Reads a pipe to its end, keeping at most a few times [`MAX_OUTPUT`]
/// bytes (the rest is read and dropped, so the writer never blocks).
async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = (4 * MAX_OUTPUT).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// Kills the process group a command leads (the command and what it started).
fn kill_group(leader: Option<u32>) {
    if let Some(pid) = leader.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn a_reload_that_leaves_a_daemon_holding_its_output_has_worked() {
        let started = std::time::Instant::now();
        let daemon = argv(&["sh", "-c", "sleep 20 & echo started"]);
        assert_eq!(run(&daemon, Duration::from_secs(5), &[]).await, Ok(()));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_chatty_failure_is_read_without_filling_memory() {
        let chatty = argv(&[
            "sh",
            "-c",
            "head -c 50000000 /dev/zero | tr '\\0' x; exit 4",
        ]);
        let failed = run(&chatty, Duration::from_secs(20), &[])
            .await
            .unwrap_err();
        assert!(failed.status.contains('4'), "{failed:?}");
        assert!(
            failed.output.chars().count() <= MAX_OUTPUT + 2,
            "{}",
            failed.output.len()
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_what_the_command_started_too() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let failed = run(&argv(&["sh", "-c", &script]), Duration::from_secs(1), &[])
            .await
            .unwrap_err();
        assert!(failed.status.contains("killed"), "{failed:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Gone, or a zombie waiting for whoever reaps orphans here.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X");
        assert!(!alive, "the background child {pid} survived: {state}");
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[tokio::test]
    async fn status_output_and_timeout_are_reported() {
        let second = Duration::from_secs(1);
        assert_eq!(run(&argv(&["true"]), second, &[]).await, Ok(()));
        let failed = run(&argv(&["sh", "-c", "echo 'no\nzone'; exit 3"]), second, &[])
            .await
            .unwrap_err();
        assert!(failed.status.contains('3'), "{failed:?}");
        assert_eq!(failed.output, ": no zone");
        let slow = run(&argv(&["sleep", "5"]), Duration::from_millis(100), &[])
            .await
            .unwrap_err();
        assert!(slow.status.contains("killed"), "{slow:?}");
        let missing = run(&argv(&["/nonexistent/reload"]), second, &[])
            .await
            .unwrap_err();
        assert!(missing.status.starts_with("cannot start it"), "{missing:?}");
    }

    #[tokio::test]
    async fn hidden_variables_are_removed_and_the_rest_inherited() {
        // cargo sets CARGO_MANIFEST_DIR for every test process.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("env");
        let script = format!("env > {}", dump.display());
        let command = argv(&["/bin/sh", "-c", &script]);
        let second = Duration::from_secs(5);
        run(&command, second, &[]).await.unwrap();
        assert!(
            std::fs::read_to_string(&dump)
                .unwrap()
                .contains("CARGO_MANIFEST_DIR=")
        );
        run(&command, second, &["CARGO_MANIFEST_DIR".into()])
            .await
            .unwrap();
        let seen = std::fs::read_to_string(&dump).unwrap();
        assert!(
            !seen.contains("CARGO_MANIFEST_DIR=") && seen.contains("PATH="),
            "{seen}"
        );
    }

    #[test]
    fn secret_variables_are_the_ones_the_config_names() {
        let config = Config::parse(
            &(crate::config::testing::dns_for_tests("example.com")
                + r#"tsig_key = { env = "MY_TSIG" }

[[zone]]
name = "example.org"
backend = "cloudflare"
token = { env = "CF_TOKEN" }

[[zone]]
name = "example.net"
backend = "desec"
token = { file = "/etc/tlsa/desec.token" }

[[set]]
name = "mail"
source = { acme = { directory = "https://ca.example/dir", names = ["mail.example.com"], eab = { kid = "k", hmac_key = { env = "CA_EAB_KEY" } } } }
deploy = { dir = "/etc/tlsa/live/mail" }
[[set.endpoint]]
host = "mail.example.com"
port = 25
"#),
        )
        .unwrap();
        assert_eq!(
            config.secret_env_names(),
            ["TLSA_TSIG_KEY", "MY_TSIG", "CF_TOKEN", "CA_EAB_KEY"]
        );
    }
}
