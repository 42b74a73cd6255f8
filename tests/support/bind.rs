//! BIND 9 as the lab's authoritative primary: `dnssec-policy` + inline signing.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::authoritative::ZoneSetup;
use super::tools;

/// named.conf for one zone, everything (keys, journal, pid file) inside `dir`.
pub fn config_text(dir: &Path, setup: &ZoneSetup, port: u16) -> String {
    config_text_zones(dir, std::slice::from_ref(setup), port)
}

/// named.conf for several zones sharing one TTL and one TSIG key (the first zone's).
pub fn config_text_zones(dir: &Path, setups: &[ZoneSetup], port: u16) -> String {
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).expect("create BIND key directory");
    let (dir, keys) = (dir.display(), keys.display());
    let first = &setups[0];
    let (ttl, key_file) = (first.ttl, first.key.file.display());
    let zones: String = setups.iter().map(zone_stanza).collect();
    // `reuseport no`: one socket per address; it does not stop the kernel from sharing the
    // UDP port (BIND still sets SO_REUSEADDR), which is why the launcher verifies answers.
    // `notify no`: NOTIFY would go to the NS address, 127.0.0.1 port 53 — not ours.
    // `max-zone-ttl` only caps record TTLs and paces key rolls (none: the CSK never rolls);
    // a day lets tests publish long TTLs uncapped.
    format!(
        r#"include "{key_file}";

options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    reuseport no;
    recursion no;
    dnssec-validation no;
    notify no;
    key-directory "{keys}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
}};

controls {{ }};

dnssec-policy "lab" {{
    keys {{ csk lifetime unlimited algorithm ecdsap256sha256; }};
    dnskey-ttl {ttl};
    max-zone-ttl 86400;
    zone-propagation-delay 0;
    publish-safety 0;
    retire-safety 0;
    parent-ds-ttl {ttl};
    parent-propagation-delay 0;
}};

{zones}"#
    )
}

fn zone_stanza(setup: &ZoneSetup) -> String {
    let (zone, key_name, zone_file) = (setup.zone, &setup.key.name, setup.zone_file.display());
    format!(
        r#"
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    dnssec-policy "lab";
    inline-signing yes;
    update-policy {{ grant {key_name} zonesub ANY; }};
}};
"#
    )
}

/// `named` in the foreground (`-g`, which also logs to stderr), one worker thread: labs run
/// many at once on two cores.
pub fn command(config: &Path) -> Command {
    let mut cmd = tools::command("named");
    cmd.args(["-g", "-n", "1", "-c"]).arg(config);
    cmd
}

/// `dnssec-dsfromkey -2` of every key in the key directory (only the CSK exists).
pub fn ds_text(dir: &Path) -> String {
    key_files(dir)
        .iter()
        .map(|key| tools::run_ok(tools::command("dnssec-dsfromkey").arg("-2").arg(key)))
        .collect()
}

/// The DNSKEY records of the key files (their non-comment lines).
pub fn dnskey_text(dir: &Path) -> String {
    key_files(dir)
        .iter()
        .map(|key| fs::read_to_string(key).expect("read BIND key file"))
        .collect()
}

/// `keys/K<zone>.+013+<tag>.key` files.
fn key_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let entries = fs::read_dir(dir.join("keys")).expect("read BIND key directory");
    let mut keys: Vec<_> = entries
        .map(|entry| entry.expect("key directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "key"))
        .collect();
    keys.sort();
    keys
}
