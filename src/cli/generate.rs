//! `tlsa generate man DIR` and `tlsa generate completions SHELL`: the manual pages and shell
//! completions, generated from the same clap definition that parses the command line, so
//! they cannot drift from it. The installers (scripts/install, scripts/package-deb) run these
//! on the binary they install.
//!
//! A command line of its own, outside [`Cli`], parsed when the first argument is `generate`
//! (see `src/main.rs`): clap_complete writes completions even for hidden subcommands, and
//! installers' plumbing has no place in what an operator completes or reads in tlsa(8).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use super::{Cli, Failure};

/// Section 8 (system administration): Debian's hash-slinger owns tlsa(1) for its own `tlsa`
/// command, so `man 8 tlsa` opens this one and neither package's file hides the other's.
pub const MAN_SECTION: &str = "8";

/// Generate tlsa's manual pages or shell completions (for installers).
#[derive(Debug, Parser)]
#[command(name = "tlsa generate", version)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write tlsa.8 and one page per command (tlsa-run.8, …) into DIR.
    Man { dir: PathBuf },
    /// Print the completion script for SHELL.
    Completions { shell: Shell },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Whether the command line (program name first) is `tlsa generate …`.
pub fn is_generate_invocation(args: impl IntoIterator<Item = String>) -> bool {
    args.into_iter().nth(1).is_some_and(|a| a == "generate")
}

pub fn run(args: &GenerateArgs, out: &mut dyn Write) -> Result<(), Failure> {
    match &args.what {
        Generate::Man { dir } => man_pages(dir).map_err(|e| {
            Failure::Runtime(vec![format!(
                "cannot write the manual pages into {}: {e}",
                dir.display()
            )])
        }),
        Generate::Completions { shell } => {
            let mut cmd = Cli::command();
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "tlsa", out);
            Ok(())
        }
    }
}

/// Writes the pages for the command and, recursively, for every visible subcommand.
fn man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_page(cmd, dir, true)
}

fn write_page(cmd: clap::Command, dir: &Path, top: bool) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub.clone(), dir, false)?;
    }
    // Every page's footer names the package and version (a subcommand alone has none).
    let man = clap_mangen::Man::new(cmd)
        .section(MAN_SECTION)
        .source(concat!("tlsa ", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    if top {
        page.extend_from_slice(TOP_PAGE_EXTRA.as_bytes());
    }
    crate::fsutil::write_atomic(&dir.join(man.get_filename()), &page, 0o644)
}

/// What the top page says beyond the options: the files, the environment and the other
/// `tlsa`, which the command line definition does not know. Paths are the Debian package's;
/// scripts/install rewrites `/usr/sbin/tlsa` and `/usr/lib/tlsa/` to its prefix, here as in
/// the hooks and units.
const TOP_PAGE_EXTRA: &str = r#".SH FILES
.TP
\fI/etc/tlsa/tlsa.toml\fR
The configuration (another with \fB\-c\fR or \fBTLSA_CONFIG\fR). Commented examples are in
the documentation directory (\fI/usr/share/doc/tlsa/examples\fR for the Debian package).
.TP
\fI/var/lib/tlsa\fR
The usual \fBstate_dir\fR: timestamps, intent and next keys (no secrets).
.TP
\fI/etc/tlsa/live\fR
The usual deploy directories; the systemd units may write there.
.TP
\fI/usr/lib/tlsa/hooks\fR
Hooks for certbot (\fBcertbot\-deploy\-hook\fR), acme.sh (\fBacme.sh\-reloadcmd\fR) and lego
(\fBlego\-renew\-hook\fR); each calls this binary by the absolute path it was installed at.
.TP
\fItlsa.timer\fR, \fItlsa\-daily.timer\fR
systemd timers: \fBtlsa run \-\-offline\-if\-idle\fR every 5 minutes, \fBtlsa run\fR daily.
.SH ENVIRONMENT
.TP
\fBTLSA_CONFIG\fR
The configuration file.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd; when standard error is that stream, each diagnostic line starts with its
syslog priority (\fB<3>\fR errors, \fB<4>\fR warnings and alarms, \fB<5>\fR notices,
\fB<6>\fR progress).
.SH NOTES
Debian's hash\-slinger package installs another program called \fBtlsa\fR as
\fI/usr/bin/tlsa\fR, documented in \fBtlsa\fR(1). This one is \fI/usr/sbin/tlsa\fR, in an sbin
directory, which comes first in root's PATH; its hooks and units never look it up through
PATH.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_command_in_section_8() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("man8");
        man_pages(&dir).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for page in [
            "tlsa.8",
            "tlsa-run.8",
            "tlsa-hook-certbot.8",
            "tlsa-hook-lego.8",
        ] {
            assert!(names.contains(&page.to_string()), "{page} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let top = std::fs::read_to_string(dir.join("tlsa.8")).unwrap();
        assert!(
            top.starts_with(".ie") || top.contains(".TH tlsa 8"),
            "{top}"
        );
        assert!(top.contains(".SH FILES") && top.contains("hash\\-slinger"));
    }

    #[test]
    fn completions_name_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            run(
                &GenerateArgs {
                    what: Generate::Completions { shell },
                },
                &mut out,
            )
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            for word in ["rollover", "offline-if-idle"] {
                assert!(text.contains(word), "{shell:?}: {word}");
            }
            assert!(
                !text.contains("generate"),
                "{shell:?}: hidden command listed"
            );
        }
    }
}
