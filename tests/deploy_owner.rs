//! `deploy = { owner, group, mode }`: a full deploy through `tlsa run --wait` against the lab
//! gives the deployed files to a real non-root user and group (`nobody`/`nogroup`), the keys
//! 0640; `tlsa config check` names a user or group that does not exist.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use support::{Lab, self_signed_source, tlsa, write_roll_config};

/// The uid or gid of `name` in the passwd or group database, by `getent`.
fn id_of(database: &str, name: &str) -> u32 {
    let out = Command::new(support::tool("getent"))
        .args([database, name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no {database} entry {name:?} on this host (Debian has nobody/nogroup)"
    );
    let line = String::from_utf8(out.stdout).unwrap();
    line.split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn deployed_files_belong_to_the_servers_user_and_group() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_roll_config(&lab, dir.path(), &self_signed_source(&lab), &[]);
    let text = std::fs::read_to_string(&config).unwrap();
    let owned = text.replace(
        "reload = [] }",
        "reload = [], owner = \"nobody\", group = \"nogroup\", mode = \"0640\" }",
    );
    assert_ne!(owned, text, "the deploy table was found");
    std::fs::write(&config, &owned).unwrap();
    let out = tlsa(&config, &["config", "check"]);
    assert!(out.status.success(), "{out:?}");

    let out = tlsa(&config, &["run", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let (uid, gid) = (id_of("passwd", "nobody"), id_of("group", "nogroup"));
    let live = dir.path().join("live");
    for (file, mode) in [
        ("privkey.pem", 0o640),
        ("combined.pem", 0o640),
        ("fullchain.pem", 0o644),
    ] {
        let meta = std::fs::metadata(live.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{file}");
    }
    // No temporary file was left with other rights.
    let names: Vec<String> = std::fs::read_dir(&live)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");

    // A user or group that does not exist is a config problem, before any deploy.
    let wrong = owned.replace("owner = \"nobody\"", "owner = \"no-such-user-tlsa\"");
    std::fs::write(&config, wrong).unwrap();
    let out = tlsa(&config, &["config", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stdout.contains("set mail: deploy.owner \"no-such-user-tlsa\": no such user"),
        "{stdout}"
    );
    // A key mode every user could read is refused when the config is read.
    let open = owned.replace("mode = \"0640\"", "mode = \"0644\"");
    std::fs::write(&config, open).unwrap();
    let out = tlsa(&config, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("lets every user of the host read"),
        "{stderr}"
    );
}
