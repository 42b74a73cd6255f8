//! Diagnostics on stderr, readable by the systemd journal.
//!
//! Under systemd (the shipped `tlsa.service`), stderr is a stream to journald, which reads a
//! `<N>` syslog priority at the start of each line (sd-daemon(3)). Without it every line is
//! logged at the unit's default level (info), so an emergency alarm or a failed run would be
//! invisible to `journalctl -p warning` and to any alerting built on priorities. The prefix
//! is written only when stderr *is* that journal stream — systemd sets `JOURNAL_STREAM` to
//! its `device:inode`, and children of the service (a reload command run from a hook, a
//! shell redirecting stderr to a file) inherit the variable without the stream — so a
//! terminal, a cron mail or a log file never sees it.

use std::io::Write;

/// syslog priorities (RFC 5424 severities) the CLI uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

impl Level {
    /// A progress line's level: alarms and warnings stand out, then the engine's notices
    /// (`set NAME: notice: …`, e.g. a key nobody prepared); the rest is information.
    pub fn of_progress(line: &str) -> Level {
        if line.starts_with("ALARM:") || line.starts_with("warning:") {
            Level::Warning
        } else if line.starts_with("set ") && line.contains(": notice: ") {
            Level::Notice
        } else {
            Level::Info
        }
    }
}

/// Whether this process's stderr is the journal stream systemd announced in
/// `JOURNAL_STREAM` (`DEVICE:INODE`, both decimal).
pub fn stderr_is_journal() -> bool {
    let announced = std::env::var("JOURNAL_STREAM").ok();
    is_stream(announced.as_deref(), stderr_identity())
}

/// Whether the announced stream is the file `stderr` (device, inode) is.
fn is_stream(announced: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    match (announced.and_then(parse_stream), stderr) {
        (Some(announced), Some(stderr)) => announced == stderr,
        _ => false,
    }
}

/// `DEVICE:INODE` as systemd writes it into `JOURNAL_STREAM`.
fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// (device, inode) of the file behind file descriptor 2.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// `text` as stderr lines, each prefixed `<N>` when `journal` (journald reads the priority
/// per line, so a multi-line message keeps its level on every line).
pub fn format(journal: bool, level: Level, prefix: &str, text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if journal {
            out.push_str(&format!("<{}>", level as u8));
        }
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes `tlsa: TEXT` to stderr at `level` (one write, so that lines from the engine's
/// threads do not interleave within a message).
pub fn say(level: Level, text: &str) {
    // Decided once: stderr does not change during a run.
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let journal = *JOURNAL.get_or_init(stderr_is_journal);
    let line = format(journal, level, "tlsa: ", text);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_carry_the_priority_on_every_line() {
        assert_eq!(
            format(true, Level::Error, "tlsa: ", "set mail: failed\n  cause"),
            "<3>tlsa: set mail: failed\n<3>tlsa:   cause\n"
        );
        assert_eq!(
            format(false, Level::Error, "tlsa: ", "set mail: failed"),
            "tlsa: set mail: failed\n"
        );
    }

    #[test]
    fn alarms_and_warnings_are_warnings_progress_is_info() {
        assert_eq!(
            Level::of_progress("ALARM: set mail: key not published"),
            Level::Warning
        );
        assert_eq!(
            Level::of_progress("warning: zone example.com: sha1"),
            Level::Warning
        );
        assert_eq!(
            Level::of_progress("set mail: notice: a new key nobody prepared"),
            Level::Notice
        );
        assert_eq!(Level::of_progress("set mail: deployed"), Level::Info);
        let alarm = "ALARM: set mail: the live key has no record";
        assert_eq!(
            format(true, Level::of_progress(alarm), "tlsa: ", alarm),
            format!("<4>tlsa: {alarm}\n")
        );
    }

    #[test]
    fn only_the_announced_stream_itself_is_the_journal() {
        assert!(is_stream(Some("8:123456"), Some((8, 123456))));
        // An inherited variable: stderr was redirected elsewhere since.
        assert!(!is_stream(Some("8:123456"), Some((8, 123457))));
        assert!(!is_stream(Some("9:123456"), Some((8, 123456))));
        assert!(!is_stream(None, Some((8, 123456))));
        assert!(!is_stream(Some("8"), Some((8, 123456))));
        assert!(!is_stream(Some("x:1"), Some((0, 1))));
        assert!(!is_stream(Some("8:123456"), None));
    }
}
