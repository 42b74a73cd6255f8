//! The zone-file back-end, for zones built from files (a signer pipeline,
//! BIND or Knot loading a zone file that `$INCLUDE`s tlsa's records).
//!
//! - **tlsa owns one file** ([`ZoneFileConfig::records_file`]) entirely: it
//!   holds only the records tlsa publishes (TLSA, TXT, MX), one per line,
//!   with absolute owner names and explicit TTLs, so the `$ORIGIN` and `$TTL` of the including file never
//!   matter. A hand edit that keeps to that form is read back (DNS is the
//!   source of truth, and so is this file); anything else — another type,
//!   a directive, parentheses, a name outside the zone — is refused with the
//!   line number rather than silently dropped.
//! - **Reading** parses that file: it is what the server is told to serve.
//!   Whether every authoritative server does serve it, signed and Secure, is
//!   what [`crate::dns::observe::propagation`] and [`crate::dns::observe::dnssec`] check, as for every
//!   back-end.
//! - **Writing** is compare-and-swap on the file content: the RRsets are
//!   compared with what the plan expected ([`DnsError::ChangedBeforeWrite`]
//!   when not), the new file is written to a temporary file, fsynced and
//!   renamed over the old one (the directory fsynced too; owner, group and
//!   mode kept), after checking once more that nobody changed the file
//!   meanwhile. Then the zone's SOA serial is incremented when configured
//!   ([`ZoneFileConfig::serial_file`]), and the reload command runs.
//! - **The reload command** is an argv (no shell): `rndc reload {zone}`,
//!   `knotc zone-reload {zone}`, a pipeline script. `{zone}` in an argument
//!   becomes the zone name without its final dot. When it fails (exit
//!   status, timeout, cannot start), the records file is put back as it was
//!   and the error says so: the next run sees the old content and tries
//!   again. (The serial stays incremented: a higher serial with the same
//!   content is harmless, a lower one would be refused.)
//! - **Serial**: BIND with inline signing refuses to reload a zone file
//!   whose SOA serial did not increase ("ixfr-from-differences: new serial
//!   … out of range", "not loaded due to errors") — and `rndc reload` still
//!   exits 0 ("zone reload queued"). Hence [`ZoneFileConfig::serial_file`]:
//!   the zone's main file, in which tlsa increments the first SOA serial (and
//!   touches nothing else). Knot with `zonefile-load: difference-no-serial`,
//!   or a signer pipeline that sets the serial itself, need no such thing.
//!   The serial the servers then serve is the signer's, not the file's, so
//!   [`Applied::serial`] stays `None` and propagation is judged on content.
//!
//! Files are read and written with blocking calls: they are small, and a
//! change happens a few times a year.
//!
//! The file's format (render, parse, the SOA serial) is in
//! [`super::zonefile_format`].

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::rr::Name;

use super::checked_write::expect_unchanged;
use super::provider::{Applied, ChangeSet, Provider};
use super::zonefile_format::{Rrsets, bump_serial, parse_records, render_records, soa_serial};
use crate::dns::DnsError;
use crate::dns::rrset::{RrType, Rrset, RrsetId};
use crate::fsutil::write_atomic;

/// Default bound on the reload command.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The placeholder for the zone name in reload arguments.
pub const ZONE_PLACEHOLDER: &str = "{zone}";

/// How one zone is published through files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFileConfig {
    pub zone: Name,
    /// The file tlsa owns, `$INCLUDE`d by the zone file. It must exist (an
    /// empty file is fine): the zone file's `$INCLUDE` needs it anyway.
    pub records_file: PathBuf,
    /// The reload command as argv, e.g. `["rndc", "reload", "{zone}"]`.
    pub reload: Vec<String>,
    /// The zone's main file, whose SOA serial tlsa increments before each
    /// reload; `None` when the server or the pipeline handles serials.
    pub serial_file: Option<PathBuf>,
    pub reload_timeout: Duration,
    /// Environment variables removed before the reload command runs (the
    /// config's secret sources: [`crate::config::Config::secret_env_names`]).
    pub hidden_env: Vec<String>,
}

impl ZoneFileConfig {
    pub fn new(zone: Name, records_file: impl Into<PathBuf>, reload: Vec<String>) -> Self {
        ZoneFileConfig {
            zone,
            records_file: records_file.into(),
            reload,
            serial_file: None,
            reload_timeout: DEFAULT_RELOAD_TIMEOUT,
            hidden_env: Vec::new(),
        }
    }
}

/// The zone-file back-end.
#[derive(Debug, Clone)]
pub struct ZoneFile {
    config: ZoneFileConfig,
}

impl ZoneFile {
    pub fn new(mut config: ZoneFileConfig) -> Result<Self, DnsError> {
        if config
            .reload
            .first()
            .is_none_or(|program| program.is_empty())
        {
            return Err(DnsError::Config(format!(
                "zone {}: the zone-file back-end needs a reload command, e.g. [\"rndc\", \"reload\", \"{ZONE_PLACEHOLDER}\"]",
                config.zone
            )));
        }
        config.zone.set_fqdn(true);
        Ok(ZoneFile { config })
    }

    pub fn config(&self) -> &ZoneFileConfig {
        &self.config
    }

    /// The reload command with `{zone}` filled in.
    pub fn reload_argv(&self) -> Vec<String> {
        let zone = self.config.zone.to_ascii();
        let zone = zone.trim_end_matches('.');
        self.config
            .reload
            .iter()
            .map(|arg| arg.replace(ZONE_PLACEHOLDER, zone))
            .collect()
    }

    /// Read-only checks: the records file is readable, well-formed and
    /// writable (as is its directory, for the atomic replace), the serial
    /// file holds a serial, and the reload program exists. Returns what was
    /// verified.
    pub async fn check(&self) -> Result<Vec<String>, DnsError> {
        let path = &self.config.records_file;
        let (_, rrsets) = self.load()?;
        let mut report = vec![format!(
            "{} readable: {} RRsets",
            path.display(),
            rrsets.len()
        )];
        fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| file_error(path, &format!("not writable: {e}")))?;
        let dir = parent_dir(path);
        let probe = dir.join(format!(".tlsa-check.{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| {
                file_error(
                    dir,
                    &format!(
                        "tlsa cannot create files in this directory ({e}), which replacing {} atomically needs",
                        path.display()
                    ),
                )
            })?;
        report.push(format!("{} and its directory writable", path.display()));
        if let Some(serial_file) = &self.config.serial_file {
            let text = read_text(serial_file)?;
            let (_, serial) = soa_serial(&text).ok_or_else(|| no_soa(serial_file))?;
            fs::OpenOptions::new()
                .append(true)
                .open(serial_file)
                .map_err(|e| file_error(serial_file, &format!("not writable: {e}")))?;
            report.push(format!(
                "{} writable, SOA serial {serial}",
                serial_file.display()
            ));
        }
        let argv = self.reload_argv();
        let program = find_program(&argv[0]).ok_or_else(|| {
            DnsError::Config(format!(
                "reload command `{}`: program {:?} not found{}; give its full path (e.g. /usr/sbin/rndc)",
                argv.join(" "),
                argv[0],
                if argv[0].contains('/') {
                    String::new()
                } else {
                    " in PATH".into()
                }
            ))
        })?;
        report.push(format!(
            "reload command `{}` ({} is executable; not run by this check)",
            argv.join(" "),
            program.display()
        ));
        Ok(report)
    }

    /// The records file's bytes and RRsets.
    fn load(&self) -> Result<(Vec<u8>, Rrsets), DnsError> {
        let path = &self.config.records_file;
        let bytes = fs::read(path).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "; create it empty (touch) and $INCLUDE it from the zone file of {}",
                    self.config.zone
                )
            } else {
                String::new()
            };
            file_error(path, &format!("cannot read tlsa's records file: {e}{hint}"))
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| file_error(path, "not UTF-8 text: tlsa writes only ASCII here"))?;
        let rrsets = parse_records(&self.config.zone, text)
            .map_err(|(line, why)| file_error(path, &format!("line {line}: {why}")))?;
        Ok((bytes, rrsets))
    }

    /// Runs the reload command; `Err` holds the status and output.
    async fn run_reload(&self) -> Result<(), (String, String)> {
        crate::command::run(
            &self.reload_argv(),
            self.config.reload_timeout,
            &self.config.hidden_env,
        )
        .await
        .map_err(|f| (f.status, f.output))
    }
}

#[async_trait]
impl Provider for ZoneFile {
    fn describe(&self) -> String {
        format!(
            "zone file {} (reload: {})",
            self.config.records_file.display(),
            self.reload_argv().join(" ")
        )
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if self.config.zone.zone_of(owner) {
            Ok(self.config.zone.clone())
        } else {
            Err(DnsError::Config(format!(
                "{owner} is not in zone {}, the only zone of the zone-file back-end for {}",
                self.config.zone,
                self.config.records_file.display()
            )))
        }
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        self.check_zone(zone)?;
        let (_, rrsets) = self.load()?;
        Ok(Rrset::stored(id, rrsets.get(id)))
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        self.check_zone(&set.zone)?;
        let path = &self.config.records_file;
        let (original, mut rrsets) = self.load()?;
        for change in &set.changes {
            if !self.config.zone.zone_of(&change.owner) {
                return Err(self.zone_of(&change.owner).await.unwrap_err());
            }
            let empty = BTreeSet::new();
            let current = rrsets.get(&change.id()).map_or(&empty, |(_, r)| r);
            expect_unchanged(&format!("zone file {}", path.display()), change, current)?;
            if change.desired.is_empty() {
                rrsets.remove(&change.id());
            } else {
                rrsets.insert(change.id(), (change.ttl, change.desired.clone()));
            }
        }
        let content = render_records(&self.config.zone, &rrsets);
        if content.as_bytes() == original.as_slice() {
            return Ok(Applied::default());
        }
        let serial_update = match &self.config.serial_file {
            Some(serial_file) => {
                let text = read_text(serial_file)?;
                let bumped = bump_serial(&text).ok_or_else(|| no_soa(serial_file))?;
                Some((serial_file, bumped))
            }
            None => None,
        };
        // Compare once more right before the swap: a hand edit or another
        // tlsa since the read must not be overwritten.
        let now = fs::read(path).map_err(|e| file_error(path, &format!("cannot read: {e}")))?;
        if now != original {
            let first = set.changes.first();
            return Err(DnsError::ChangedBeforeWrite {
                backend: format!("zone file {}", path.display()),
                owner: first.map_or_else(|| set.zone.clone(), |c| c.owner.clone()),
                rtype: first.map_or(RrType::Tlsa, |c| c.rtype),
                found: "a file changed by someone else since tlsa read it".into(),
            });
        }
        replace_file(path, content.as_bytes())?;
        if let Some((serial_file, bumped)) = serial_update
            && let Err(e) = replace_file(serial_file, bumped.as_bytes())
        {
            let restored = replace_file(path, &original);
            return Err(restore_note(e, restored));
        }
        if let Err((status, output)) = self.run_reload().await {
            let restored = replace_file(path, &original);
            let error = DnsError::ReloadFailed {
                zone: set.zone.clone(),
                command: self.reload_argv().join(" "),
                status,
                output,
            };
            return Err(restore_note(error, restored));
        }
        Ok(Applied::default())
    }
}

impl ZoneFile {
    fn check_zone(&self, zone: &Name) -> Result<(), DnsError> {
        if *zone == self.config.zone {
            Ok(())
        } else {
            Err(DnsError::Config(format!(
                "zone {zone} is not the zone of the zone-file back-end for {} ({})",
                self.config.records_file.display(),
                self.config.zone
            )))
        }
    }
}

/// `error`, or, when putting the old file back failed too, an error that
/// says the file now holds the new content.
fn restore_note(error: DnsError, restored: Result<(), DnsError>) -> DnsError {
    match restored {
        Ok(()) => error,
        Err(restore) => DnsError::Config(format!(
            "{error}; RESTORING FAILED, the records file holds the new content but the server may not: {restore}"
        )),
    }
}

/// Replaces `path` atomically, keeping its mode, owner and group (the
/// server may read it as another user).
fn replace_file(path: &Path, content: &[u8]) -> Result<(), DnsError> {
    let meta = fs::metadata(path).map_err(|e| file_error(path, &format!("cannot stat: {e}")))?;
    let mode = meta.permissions().mode() & 0o7777;
    write_atomic(path, content, mode)
        .map_err(|e| file_error(path, &format!("cannot replace it: {e}")))?;
    let new = fs::metadata(path).map_err(|e| file_error(path, &format!("cannot stat: {e}")))?;
    if (new.uid(), new.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
            file_error(
                path,
                &format!(
                    "replaced, but cannot give it back its owner {}:{} ({e}): the server may not be able to read it; run tlsa as that owner or as root",
                    meta.uid(),
                    meta.gid()
                ),
            )
        })?;
    }
    // The umask may have narrowed the mode at creation, and chown may clear setgid bits.
    if new.permissions().mode() & 0o7777 != mode || new.uid() != meta.uid() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| file_error(path, &format!("cannot restore its mode: {e}")))?;
    }
    Ok(())
}

fn file_error(path: &Path, why: &str) -> DnsError {
    DnsError::File {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn no_soa(path: &Path) -> DnsError {
    file_error(
        path,
        "no SOA record with a numeric serial found: serial_file must be the zone's main file, holding its SOA",
    )
}

fn read_text(path: &Path) -> Result<String, DnsError> {
    fs::read_to_string(path).map_err(|e| file_error(path, &format!("cannot read: {e}")))
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `program` as the reload would run it: a path, or found in `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::test_values::name;

    #[test]
    fn reload_argv_fills_in_the_zone() {
        let config = ZoneFileConfig::new(
            name("example.test"),
            "/tmp/x",
            vec!["rndc".into(), "reload".into(), "{zone}".into()],
        );
        let backend = ZoneFile::new(config.clone()).unwrap();
        assert_eq!(backend.reload_argv(), ["rndc", "reload", "example.test"]);
        let mut empty = config;
        empty.reload.clear();
        assert!(ZoneFile::new(empty).is_err());
    }
}
