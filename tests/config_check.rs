//! `tlsa config check [--online]` against the lab: a correct config passes online (a
//! TSIG-signed query to the real BIND, the real unbound validating), and each way a config
//! goes wrong is one line naming the file, zone or server.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Lab, RollDns, certbot_source, write_roll_config_for};

fn config_check(config: &Path, online: bool) -> Output {
    let mut command = Command::new(support::tlsa_binary());
    command.args(["config", "check", "-c"]).arg(config);
    if online {
        command.arg("--online");
    }
    command.output().expect("run tlsa")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private copy of a key file with mode 0600.
fn private_copy(from: &Path, to: PathBuf) -> PathBuf {
    std::fs::copy(from, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    to
}

/// A lineage directory with the files certbot writes (the check reads them, nothing more).
fn lineage(dir: &Path) -> PathBuf {
    let lineage = dir.join("live/mail");
    std::fs::create_dir_all(&lineage).unwrap();
    for file in ["fullchain.pem", "privkey.pem"] {
        std::fs::write(lineage.join(file), "").unwrap();
    }
    lineage
}

/// The roll config of the lab with the TSIG key file `key`.
fn lab_config(lab: &Lab, dir: &Path, key: &Path, source: &str) -> PathBuf {
    let mut dns = RollDns::bind(lab);
    dns.backend = dns.backend.replace(
        &lab.tsig_key_file().display().to_string(),
        &key.display().to_string(),
    );
    write_roll_config_for(&dns, dir, source, &["true"])
}

#[test]
fn a_correct_config_passes_and_each_mistake_is_one_line() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(lab.tsig_key_file(), dir.path().join("tsig.key"));
    let lineage = lineage(dir.path());
    let good = lab_config(&lab, dir.path(), &key, &certbot_source(&lineage));

    let out = config_check(&good, true);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("online checks passed"), "{out:?}");

    // `tlsa providers` checks the configured RFC 2136 back-end the same way.
    let providers = |config: &Path| {
        Command::new(support::tlsa_binary())
            .args(["providers", "-c"])
            .arg(config)
            .output()
            .expect("run tlsa")
    };
    let out = providers(&good);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("answers a query signed with key"),
        "{out:?}"
    );

    // A wrong TSIG secret: the signed query comes back BADSIG from BIND.
    let secret = lab.tsig_secret();
    let wrong_secret = secret.replacen(
        &secret[..1],
        if secret.starts_with('A') { "B" } else { "A" },
        1,
    );
    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&key)
            .unwrap()
            .replace(secret, &wrong_secret),
    )
    .unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bad_key = lab_config(&lab, dir.path(), &wrong, &certbot_source(&lineage));
    assert!(
        config_check(&bad_key, false).status.success(),
        "offline, the key file is fine"
    );
    let out = config_check(&bad_key, true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("zone {}", lab.zone().trim_end_matches('.')))
            && text.contains(&lab.server_addr().to_string())
            && text.contains("BADSIG"),
        "{text}"
    );
    assert!(
        !text.contains(secret) && !text.contains(&wrong_secret),
        "{text}"
    );

    // A missing lineage, and a key file others may read: offline problems, exit 2.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = lab_config(
        &lab,
        dir.path(),
        &key,
        &certbot_source(&dir.path().join("live/gone")),
    );
    let out = config_check(&missing, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text.lines().any(|l| l.contains("set mail: certbot lineage")
            && l.contains("live/gone")
            && l.contains("fullchain.pem")
            && l.contains("certbot certonly")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("tsig_key file")
            && l.contains("mode 0644")
            && l.contains("chmod 600")),
        "{text}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // An endpoint outside every configured zone.
    let text = std::fs::read_to_string(&good).unwrap().replace(
        &format!("host = \"mail.{}\"", lab.zone().trim_end_matches('.')),
        "host = \"mail.elsewhere.example\"",
    );
    let outside = dir.path().join("outside.toml");
    std::fs::write(&outside, text).unwrap();
    let out = config_check(&outside, false);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Refused when the config loads (nothing could publish its records),
    // naming the endpoint and the key to add.
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("endpoint mail.elsewhere.example:25 is in no configured zone")
            && text.contains("[[zone]]"),
        "{text}"
    );
}
