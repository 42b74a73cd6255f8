//! The persisted state of every certificate set: per key, when its records
//! were published, seen on every authoritative server, and safe to use.
//! Human-readable JSON, versioned, replaced atomically, guarded by a lock.
//! It holds timestamps and intent, never secrets; DNS stays the source of
//! truth for records and every run reconciles with it.
//!
//! One file per set (`sets/SET.json`): a step of one set rewrites only that
//! set's few kilobytes. (A single file for all sets made a run over a
//! thousand sets rewrite megabytes after every step.) A `state.json` from
//! an older tlsa is split into set files when the store is opened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{PRIVATE_DIR, create_dir_all_mode, write_atomic};

pub use crate::timestamp::Timestamp;

/// A key's identity: the hex SHA-256 of its SubjectPublicKeyInfo, which is
/// also the association data of its `3 1 1` record.
pub type KeyId = String;

pub const STATE_VERSION: u32 = 1;
/// Where older versions kept every set in one file; migrated on open.
const LEGACY_STATE_FILE: &str = "state.json";
const SETS_DIR: &str = "sets";
const LOCK_FILE: &str = "lock";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub sets: BTreeMap<String, SetState>,
}

/// What one set's file holds: the set's state, with the version and the
/// set's name so that a file read on its own says what it is.
#[derive(Debug, Serialize, Deserialize)]
struct SetFile {
    version: u32,
    set: String,
    #[serde(flatten)]
    state: SetState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetState {
    /// Every key whose records tlsa published or adopted, until their removal
    /// has been seen on every authoritative server.
    #[serde(default)]
    pub keys: BTreeMap<KeyId, KeyState>,
    /// The key the last live check saw on every address, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
    /// The key tlsa last deployed (and reloaded the server for): a deploy
    /// target holding a key that no address presents and that tlsa never
    /// deployed is deployed (reloaded) once safe, while one tlsa deployed is
    /// verified, and redeployed only after a failed verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<KeyId>,
    /// The last verify step failed (a deploy that did not take effect):
    /// why, for `tlsa status`, until a verify passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_failure: Option<String>,
    /// An operator asked for a planned roll at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover_requested_at: Option<Timestamp>,
    /// The key that planned roll goes to (for a certbot pair: which lineage
    /// to deploy, even after a run killed mid-deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover_to: Option<KeyId>,
    /// An emergency seen by the last run (the live key unpublished), shown
    /// by `tlsa status` until a run finds it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    /// When the emergency ends: the live key's `safe_at` once republished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_until: Option<Timestamp>,
    /// The pre-generated next key (its file is under `keys/SET/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<KeyId>,
    /// A deploy has started and its reload command has not yet succeeded:
    /// the files in the deploy target may not be what the server uses. Set
    /// (and saved) before the files change, cleared once the reload succeeded,
    /// so that a run killed in between, or a failed reload, is followed by
    /// another reload rather than by a verification of files no server loaded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reload_pending: bool,
    /// A TTL lowered recently: caches may hold RRsets with the old, longer
    /// TTL until `until`, so keys published before then count with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_hold: Option<TtlHold>,
    /// The last run that checked DNS found nothing to do or wait for, with
    /// these inputs: `tlsa run --offline-if-idle` may skip the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleMark>,
    /// What every address presented at the last observation, for `tlsa
    /// status` (the plan always decides from a fresh observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented: Option<PresentedSeen>,
    /// How the last run of this set ended, for `tlsa status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// ACME orders that failed in a row: no automatic order before
    /// `retry_at` (a CA's rate limits outlast an hourly timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_backoff: Option<AcmeBackoff>,
    /// ACME renewals that kept the key since the key last rolled
    /// (`roll_every`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub acme_kept_key: u32,
    /// The CA's renewal window for the live certificate (RFC 9773), or
    /// that it has none, and when to ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_renewal_info: Option<crate::acme::renewal_info::RenewalInfo>,
    /// Recent events, newest last, for `tlsa status`.
    #[serde(default)]
    pub timeline: Vec<Event>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Failed ACME orders of a set, and when the next one may be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeBackoff {
    pub failures: u32,
    pub retry_at: Timestamp,
    /// The CA's last error (no secret: the account key is never in it).
    pub error: String,
}

impl AcmeBackoff {
    /// The wait after `failures` failures in a row: 5 minutes, doubling, at
    /// most a day.
    pub fn wait(failures: u32) -> std::time::Duration {
        let minutes = 5u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
        std::time::Duration::from_secs((minutes * 60).min(86_400))
    }
}

/// How a run of a set ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it ended. Rewritten when anything else changes, and hourly
    /// otherwise (an idle run from cron writes no state).
    pub at: Timestamp,
    /// `done` (steps taken, nothing pending), `waiting` (for a time or a
    /// manual step), `idle`, `alarm` or `failed`.
    pub outcome: String,
    /// Steps the run performed.
    #[serde(default)]
    pub steps: usize,
    /// Why it failed, or what the alarm said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next step is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<Timestamp>,
}

impl LastRun {
    /// Whether `self` says something `older` does not (or `older` is stale).
    pub fn worth_saving_over(&self, older: &LastRun, refresh: std::time::Duration) -> bool {
        let same = LastRun {
            at: older.at,
            ..self.clone()
        };
        same != *older || older.at + refresh <= self.at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentedSeen {
    /// When this is what the servers presented: refreshed when it changes,
    /// and hourly otherwise (an idle run from cron writes no state).
    pub at: Timestamp,
    pub addresses: Vec<AddressSeen>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSeen {
    pub address: String,
    /// The key presented there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyId>,
    /// Why no key was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// DER SubjectPublicKeyInfo in hex (public data), so that the records of
    /// a key whose files are gone can still be recognised and removed.
    pub spki: String,
    pub first_seen: Timestamp,
    /// When all its records were first seen on the primary / provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Timestamp>,
    /// The longest TTL the RRsets had before this key's records were added
    /// (a cache may hold that older RRset this long): an input of `t_safe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_ttl: Option<u32>,
    /// Some owner had no RRset before: negative answers may be cached too.
    #[serde(default)]
    pub prior_absent: bool,
    /// When every authoritative server was seen serving them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagated_at: Option<Timestamp>,
    /// When every cache that may hold an RRset without this key has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_at: Option<Timestamp>,
    /// When its records were removed (retired); dropped from the state once
    /// the removal is seen on every authoritative server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<Timestamp>,
}

impl KeyState {
    /// A key first seen at `now`, nothing known yet about its records.
    pub fn new(spki: &[u8], now: Timestamp) -> Self {
        KeyState {
            spki: hex::encode(spki),
            first_seen: now,
            published_at: None,
            prior_ttl: None,
            prior_absent: false,
            propagated_at: None,
            safe_at: None,
            removed_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlHold {
    pub ttl: u32,
    pub until: Timestamp,
    /// A propagation wait has since seen every server serve the lowered
    /// TTL. Until then the hold does not expire: a server that catches up
    /// late hands out the old TTL until it does.
    #[serde(default)]
    pub confirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleMark {
    /// When DNS was last read and found in order.
    pub checked_at: Timestamp,
    /// SHA-256 over the set's config and files at that time (see `roll::idle`).
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub key: KeyId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub what: String,
}

/// How many events a set's timeline keeps.
const TIMELINE_LEN: usize = 50;

impl SetState {
    pub fn record(&mut self, at: Timestamp, what: impl Into<String>) {
        self.timeline.push(Event {
            at,
            what: what.into(),
        });
        let excess = self.timeline.len().saturating_sub(TIMELINE_LEN);
        self.timeline.drain(..excess);
    }
}

/// Why the state could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot use the state directory {dir}: {why}; tlsa needs it as a directory it can write (mode 0700, owned by the user tlsa runs as, on a writable filesystem): create it or make it writable, or set state_dir in the config"
    )]
    Dir { dir: PathBuf, why: String },
    #[error(
        "another tlsa run (pid {holder}) holds the lock {lock}; wait for it to finish, or remove the lock file if that process no longer exists"
    )]
    Locked { lock: PathBuf, holder: String },
    #[error(
        "the state file {file} is damaged ({why}); restore it from a backup, or move it aside: tlsa rebuilds what it can from DNS"
    )]
    Damaged { file: PathBuf, why: String },
    #[error(
        "the state file {file} has version {found}, this tlsa understands {STATE_VERSION}: use a newer tlsa"
    )]
    Version { file: PathBuf, found: u32 },
    #[error("cannot write the state file {file}: {why}")]
    Write { file: PathBuf, why: String },
}

/// The state directory, held under an exclusive lock for as long as this lives.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    _lock: File,
}

impl StateStore {
    /// Takes the lock (without waiting: a second run must not queue behind a
    /// long roll) and records our pid in the lock file for the message above.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let dir_error = |why: String| StateError::Dir {
            dir: dir.to_path_buf(),
            why,
        };
        create_dir_all_mode(dir, PRIVATE_DIR).map_err(|e| dir_error(e.to_string()))?;
        let lock_path = dir.join(LOCK_FILE);
        // Never through a symlink (one planted there would have its target
        // overwritten with our pid, as root), and not truncated before the
        // lock is ours: the holder's pid stays readable for the message.
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    dir_error(format!(
                        "{} is a symbolic link; tlsa does not follow it: remove it",
                        lock_path.display()
                    ))
                } else {
                    dir_error(e.to_string())
                }
            })?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            return Err(StateError::Locked {
                lock: lock_path,
                holder: Some(holder.trim())
                    .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                    .unwrap_or("unknown")
                    .to_string(),
            });
        }
        lock.set_len(0).map_err(|e| dir_error(e.to_string()))?;
        lock.rewind().map_err(|e| dir_error(e.to_string()))?;
        write!(lock, "{}", std::process::id()).map_err(|e| dir_error(e.to_string()))?;
        create_dir_all_mode(&dir.join(SETS_DIR), PRIVATE_DIR)
            .map_err(|e| dir_error(e.to_string()))?;
        let store = StateStore {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        store.migrate_legacy()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored state, or an empty one on first use.
    pub fn load(&self) -> Result<State, StateError> {
        load_dir(&self.dir)
    }

    /// Replaces one set's file.
    pub fn save_set(&self, name: &str, state: &SetState) -> Result<(), StateError> {
        let file = set_file(&self.dir, name);
        let write_error = |why: String| StateError::Write {
            file: file.clone(),
            why,
        };
        // Config names are checked at load; a legacy state file's are not.
        if !crate::config::is_file_safe_name(name) {
            return Err(write_error(format!(
                "the set name {name:?} cannot name a file; rename the set in the config"
            )));
        }
        let content = SetFile {
            version: STATE_VERSION,
            set: name.to_string(),
            state: state.clone(),
        };
        let mut text =
            serde_json::to_string_pretty(&content).map_err(|e| write_error(e.to_string()))?;
        text.push('\n');
        write_atomic(&file, text.as_bytes(), 0o644).map_err(|e| write_error(e.to_string()))
    }

    /// Splits an older tlsa's `state.json` into set files (a set file
    /// already present is newer and wins), then moves it aside.
    fn migrate_legacy(&self) -> Result<(), StateError> {
        let legacy = self.dir.join(LEGACY_STATE_FILE);
        let Some(old) = parse::<State>(&legacy)? else {
            return Ok(());
        };
        for (name, set) in &old.sets {
            // A name the config can no longer hold has no set to serve; its
            // entry stays in the moved-aside file.
            if !crate::config::is_file_safe_name(name) {
                continue;
            }
            if !set_file(&self.dir, name).exists() {
                self.save_set(name, set)?;
            }
        }
        // Never over an earlier one (a downgrade and upgrade again).
        let aside = (0..)
            .map(|n| match n {
                0 => self.dir.join(format!("{LEGACY_STATE_FILE}.migrated")),
                n => self.dir.join(format!("{LEGACY_STATE_FILE}.migrated.{n}")),
            })
            .find(|path| !path.exists())
            .expect("an unused name");
        std::fs::rename(&legacy, &aside).map_err(|e| StateError::Write {
            file: legacy,
            why: e.to_string(),
        })
    }
}

/// The file of one set's state inside a state directory.
pub fn set_file(dir: &Path, set: &str) -> PathBuf {
    dir.join(SETS_DIR).join(format!("{set}.json"))
}

/// Reads a state directory without the lock (for read-only commands): the
/// set files, and an older tlsa's `state.json` not yet migrated.
pub fn load_dir(dir: &Path) -> Result<State, StateError> {
    let mut state = parse::<State>(&dir.join(LEGACY_STATE_FILE))?.unwrap_or(State {
        version: STATE_VERSION,
        sets: BTreeMap::new(),
    });
    let sets_dir = dir.join(SETS_DIR);
    let entries = match std::fs::read_dir(&sets_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
        Err(e) => {
            return Err(StateError::Dir {
                dir: sets_dir,
                why: e.to_string(),
            });
        }
    };
    for entry in entries {
        let path = entry
            .map_err(|e| StateError::Dir {
                dir: sets_dir.clone(),
                why: e.to_string(),
            })?
            .path();
        // Temporary files of an interrupted write start with a dot.
        let visible = path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'));
        if !visible || path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(file) = parse::<SetFile>(&path)? else {
            continue; // removed meanwhile
        };
        // A copy (a backup, say) must not pass for the set's own file.
        if path != set_file(dir, &file.set) {
            return Err(StateError::Damaged {
                file: path,
                why: format!(
                    "it holds the state of set {:?}, whose file is {}; move this copy out of {}",
                    file.set,
                    set_file(dir, &file.set).display(),
                    sets_dir.display()
                ),
            });
        }
        state.sets.insert(file.set, file.state);
    }
    Ok(state)
}

/// Reads a JSON state file and checks its version; `None` if there is no
/// such file (a run may be moving it aside while a read-only command reads).
fn parse<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<Option<T>, StateError> {
    let damaged = |why: String| StateError::Damaged {
        file: file.to_path_buf(),
        why,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(damaged(e.to_string())),
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let version: Versioned = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    if version.version != STATE_VERSION {
        return Err(StateError::Version {
            file: file.to_path_buf(),
            found: version.version,
        });
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut state = store.load().unwrap();
        assert_eq!(state.version, STATE_VERSION);
        let set = state.sets.entry("mail".into()).or_default();
        set.keys.insert(
            "ab".into(),
            KeyState {
                spki: "3059".into(),
                first_seen: Timestamp::from_unix_secs(10),
                published_at: Some(Timestamp::from_unix_secs(11)),
                prior_ttl: Some(60),
                prior_absent: false,
                propagated_at: None,
                safe_at: None,
                removed_at: None,
            },
        );
        set.record(Timestamp::from_unix_secs(12), "published");
        store.save_set("mail", &state.sets["mail"]).unwrap();
        assert_eq!(store.load().unwrap(), state);
        let text = std::fs::read_to_string(set_file(dir.path(), "mail")).unwrap();
        assert!(
            text.contains("\"published_at\": \"1970-01-01T00:00:11Z\""),
            "human-readable: {text}"
        );
        assert!(text.contains("\"set\": \"mail\""), "names its set: {text}");
    }

    #[test]
    fn a_step_rewrites_only_its_own_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut one = SetState::default();
        one.record(Timestamp::from_unix_secs(1), "one");
        store.save_set("one", &one).unwrap();
        store.save_set("two", &SetState::default()).unwrap();
        let before = std::fs::metadata(set_file(dir.path(), "two"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        one.record(Timestamp::from_unix_secs(2), "again");
        store.save_set("one", &one).unwrap();
        let after = std::fs::metadata(set_file(dir.path(), "two"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after, "set two's file untouched");
        assert_eq!(store.load().unwrap().sets["one"].timeline.len(), 2);
    }

    #[test]
    fn an_older_single_state_file_is_split_into_set_files() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(LEGACY_STATE_FILE);
        std::fs::write(
            &legacy,
            r#"{"version": 1, "sets": {"mail": {"keys": {}, "next_key": "abcd", "timeline": []},
                "../outside": {"keys": {}, "timeline": []}}}"#,
        )
        .unwrap();
        // Read-only commands see it before any run migrated it.
        assert_eq!(
            load_dir(dir.path()).unwrap().sets["mail"]
                .next_key
                .as_deref(),
            Some("abcd")
        );
        let store = StateStore::open(dir.path()).unwrap();
        assert!(!legacy.exists(), "moved aside");
        assert!(dir.path().join("state.json.migrated").exists());
        assert!(set_file(dir.path(), "mail").exists());
        assert!(
            !dir.path().join("outside.json").exists(),
            "no file outside sets/"
        );
        assert!(store.save_set("../outside", &SetState::default()).is_err());
        assert_eq!(
            store.load().unwrap().sets["mail"].next_key.as_deref(),
            Some("abcd")
        );
    }

    #[test]
    fn a_second_store_reports_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateStore::open(dir.path()).unwrap();
        let err = StateStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("another tlsa run"), "{err}");
    }

    #[test]
    fn a_copy_of_a_set_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.save_set("mail", &SetState::default()).unwrap();
        let copy = dir.path().join("sets/mail-old.json");
        std::fs::copy(set_file(dir.path(), "mail"), &copy).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("mail-old.json") && err.contains("move this copy"),
            "{err}"
        );
    }

    #[test]
    fn damaged_and_future_files_are_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let file = set_file(dir.path(), "mail");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{ not json").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("damaged") && err.contains("mail.json"),
            "{err}"
        );
        std::fs::write(&file, r#"{"version": 99, "set": "mail"}"#).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer tlsa"), "{err}");
    }

    #[test]
    fn timeline_is_bounded() {
        let mut set = SetState::default();
        for i in 0..(TIMELINE_LEN as u64 + 10) {
            set.record(Timestamp::from_unix_secs(i), format!("event {i}"));
        }
        assert_eq!(set.timeline.len(), TIMELINE_LEN);
        assert_eq!(set.timeline[0].at, Timestamp::from_unix_secs(10));
    }
}
