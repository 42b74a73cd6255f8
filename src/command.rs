//! Running an operator's command (a deploy's or a zone file's reload): an
//! argument list (no shell), bounded in time, without tlsa's secrets.

use std::process::Stdio;
use std::time::Duration;

use crate::config::Config;

/// Output of a failed command quoted in errors.
const MAX_OUTPUT: usize = 2000;

/// Why a command failed: its status (or why it did not run) and its output,
/// as one paragraph (`: …`, or empty when it printed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    pub status: String,
    pub output: String,
}

/// Every environment variable the config reads a secret from (`env = "…"`
/// of a TSIG key, API key or token), and `TLSA_TSIG_KEY`: a command tlsa
/// runs does not need them, and a reload script that logs its environment
/// must not be able to leak them.
pub fn secret_env_names(config: &Config) -> Vec<String> {
    let mut names = vec![crate::dns::tsig::KEY_ENV.to_string()];
    for zone in &config.zones {
        for secret in [&zone.tsig_key, &zone.api_key, &zone.token]
            .into_iter()
            .flatten()
        {
            if let Some(var) = &secret.env
                && !names.contains(var)
            {
                names.push(var.clone());
            }
        }
    }
    names
}

/// Runs `argv`, killed after `timeout`, with the variables `hidden_env`
/// removed from its environment (the rest is inherited: PATH, HOME, …).
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
        .kill_on_drop(true);
    for var in hidden_env {
        command.env_remove(var);
    }
    let child = command
        .spawn()
        .map_err(|e| failure(format!("cannot start it: {e}")))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(failure(format!("cannot wait for it: {e}"))),
        Err(_) => {
            return Err(failure(format!(
                "no exit within {} s; killed",
                timeout.as_secs()
            )));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    // One paragraph: the output's lines joined.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let output_text = if text.is_empty() {
        String::new()
    } else {
        let cut: String = text.chars().take(MAX_OUTPUT).collect();
        format!(": {cut}")
    };
    Err(CommandFailure {
        status: output.status.to_string(),
        output: output_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            r#"
[dnssec]
resolver = "127.0.0.1:53"

[[zone]]
name = "example.com"
backend = "rfc2136"
server = "127.0.0.1:53"
tsig_key = { env = "MY_TSIG" }

[[zone]]
name = "example.org"
backend = "cloudflare"
token = { env = "CF_TOKEN" }

[[zone]]
name = "example.net"
backend = "desec"
token = { file = "/etc/tlsa/desec.token" }
"#,
        )
        .unwrap();
        assert_eq!(
            secret_env_names(&config),
            ["TLSA_TSIG_KEY", "MY_TSIG", "CF_TOKEN"]
        );
    }
}
