//! `scripts/install` into a fresh root directory, as an operator installs tlsa: every piece in
//! place, every hook and unit calling the installed binary by absolute path, the units
//! accepted by `systemd-analyze verify` (which also opens their man pages), diagnostics with
//! journal priorities under systemd, and `--uninstall` removing exactly what was installed.
//! (certbot renewing through the installed hook: tests/roll_certbot.rs.)

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{Installed, tool_with_hint};

const SYSTEMD_HINT: &str = "install systemd and man-db with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends systemd man-db)";

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn installs_every_piece_calling_the_binary_by_absolute_path_and_uninstalls_exactly_that() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // Someone else's file in a directory the install shares: it must survive the uninstall.
    let theirs = root.join("usr/local/share/man/man8/other.8");
    fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    fs::write(&theirs, ".TH other 8\n").unwrap();
    let before = tree(&root);

    let installed = Installed::new(&root);
    let prefix = installed.prefix();
    let version = Command::new(installed.binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tlsa "));
    for file in [
        "share/man/man8/tlsa.8",
        "share/man/man8/tlsa-run.8",
        "share/man/man8/tlsa-hook-certbot.8",
        "share/bash-completion/completions/tlsa",
        "share/zsh/site-functions/_tlsa",
        "share/fish/vendor_completions.d/tlsa.fish",
        "lib/tlsa/install-manifest",
    ] {
        assert!(prefix.join(file).is_file(), "{file} installed");
    }
    let binary = installed.binary().display().to_string();
    for (hook, client) in [
        ("certbot-deploy-hook", "certbot"),
        ("acme.sh-reloadcmd", "acme-sh"),
        ("lego-renew-hook", "lego"),
    ] {
        let text = fs::read_to_string(installed.hook(hook)).unwrap();
        let mode = fs::metadata(installed.hook(hook)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o755, "{hook}");
        let exec: Vec<&str> = text.lines().filter(|l| l.starts_with("exec ")).collect();
        assert_eq!(exec, [format!("exec {binary} hook {client}")], "{hook}");
        // Its registration line names where it was installed.
        assert!(
            text.contains(&installed.hook(hook).display().to_string()),
            "{hook}:\n{text}"
        );
    }
    for unit in ["tlsa.service", "tlsa-daily.service"] {
        let text = fs::read_to_string(installed.units_dir().join(unit)).unwrap();
        let exec: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        let args = if unit == "tlsa.service" {
            " run --offline-if-idle"
        } else {
            " run"
        };
        assert_eq!(exec, [format!("ExecStart={binary}{args}")], "{unit}");
    }
    // `man 8 tlsa` opens this tool's page, whatever section 1 holds (hash-slinger's tlsa).
    let man = Command::new(tool_with_hint("man", SYSTEMD_HINT))
        .args(["-w", "8", "tlsa"])
        .env("MANPATH", installed.man_dir())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&man.stdout).trim(),
        prefix.join("share/man/man8/tlsa.8").display().to_string()
    );

    installed.uninstall();
    assert_eq!(tree(&root), before, "exactly the installed files removed");
    assert!(theirs.exists());
}

#[test]
fn a_staged_install_names_the_final_paths_and_uninstalls_from_the_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    let installed = Installed::staged(&stage);
    assert!(installed.binary().starts_with(&stage) && installed.binary().is_file());
    let hook = fs::read_to_string(installed.hook("certbot-deploy-hook")).unwrap();
    assert!(
        hook.contains("\nexec /usr/local/sbin/tlsa hook certbot\n"),
        "{hook}"
    );
    let unit = fs::read_to_string(installed.units_dir().join("tlsa.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/local/sbin/tlsa run --offline-if-idle\n"),
        "{unit}"
    );
    let manifest = fs::read_to_string(installed.path("lib/tlsa/install-manifest")).unwrap();
    assert!(
        manifest
            .lines()
            .all(|l| !l.contains(stage.to_str().unwrap())),
        "{manifest}"
    );
    assert!(
        manifest.contains("file /usr/local/sbin/tlsa\n"),
        "{manifest}"
    );
    installed.uninstall();
    assert!(tree(&stage).is_empty(), "{:?}", tree(&stage));
}

#[test]
fn the_installed_units_pass_systemd_analyze_verify() {
    let analyze = tool_with_hint("systemd-analyze", SYSTEMD_HINT);
    tool_with_hint("man", SYSTEMD_HINT);
    let tmp = tempfile::tempdir().unwrap();
    let installed = Installed::new(&tmp.path().join("root"));
    let units: Vec<PathBuf> = [
        "tlsa.service",
        "tlsa.timer",
        "tlsa-daily.service",
        "tlsa-daily.timer",
    ]
    .iter()
    .map(|u| installed.units_dir().join(u))
    .collect();
    // verify checks the syntax, that each ExecStart/ExecCondition binary exists and is
    // executable, that the timers' units exist, and runs `man` for each Documentation= page:
    // MANPATH lets it find the installed tlsa(8) and tlsa-run(8).
    let verify = |files: &[PathBuf]| {
        let out = Command::new(&analyze)
            .arg("verify")
            .args(files)
            .env("MANPATH", installed.man_dir())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("systemd-analyze verify {files:?}: {}\n{stderr}", out.status);
        (out.status.success(), stderr)
    };
    let (ok, stderr) = verify(&units);
    assert!(ok && stderr.trim().is_empty(), "{stderr}");

    // The same check fails on a binary nobody installed there (as the shipped unit's
    // /usr/local/bin/tlsa was) and on a page nobody installed. (The old man:tlsa(1) exists:
    // it is hash-slinger's page, which verify cannot tell; hence the section-8 check.)
    for unit in &units {
        let text = fs::read_to_string(unit).unwrap();
        assert!(
            text.contains("\nDocumentation=man:tlsa(8)"),
            "{}",
            unit.display()
        );
    }
    let broken = tmp.path().join("broken");
    fs::create_dir_all(&broken).unwrap();
    let service = fs::read_to_string(&units[0]).unwrap();
    let binary = installed.binary().display().to_string();
    for (name, text) in [
        (
            "missing-binary.service",
            service.replace(&binary, "/nonexistent/sbin/tlsa"),
        ),
        (
            "wrong-page.service",
            service.replace("man:tlsa(8)", "man:tlsa-nosuchpage(8)"),
        ),
    ] {
        fs::write(broken.join(name), text).unwrap();
        let (ok, stderr) = verify(&[broken.join(name)]);
        assert!(!ok, "{name} must fail verification: {stderr}");
    }
}

#[test]
fn under_systemd_each_diagnostic_line_starts_with_its_journal_priority() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    // stderr is a file standing in for journald's stream; JOURNAL_STREAM names it (systemd
    // sets DEVICE:INODE), or names another file (a child that inherited the variable).
    let run = |announce: Option<&Path>| {
        let log = tmp.path().join("stderr");
        let file = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(support::tlsa_binary());
        cmd.args(["run", "-c"]).arg(&missing).stderr(file);
        cmd.env_remove("JOURNAL_STREAM");
        if let Some(stream) = announce {
            let meta = fs::metadata(stream).unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let status = cmd.status().unwrap();
        assert!(!status.success());
        fs::read_to_string(&log).unwrap()
    };
    let log = tmp.path().join("stderr");
    fs::write(&log, "").unwrap();
    let journal = run(Some(&log));
    assert!(journal.starts_with("<3>tlsa: "), "{journal}");
    assert!(journal.lines().all(|l| l.starts_with("<3>")), "{journal}");
    assert!(journal.contains("missing.toml"), "{journal}");
    let elsewhere = tmp.path().join("other");
    fs::write(&elsewhere, "").unwrap();
    let inherited = run(Some(&elsewhere));
    assert!(inherited.starts_with("tlsa: "), "{inherited}");
    assert!(run(None).starts_with("tlsa: "));
}

/// A self-signed ECDSA certificate for `name`, as an ACME client would leave it: (chain PEM,
/// key PEM, the key's 3 1 1 data).
fn certificate(name: &str) -> (String, String, String) {
    use rcgen::PublicKeyData;
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let spki = made.signing_key.subject_public_key_info();
    let id = tlsa::roll::plan::KeyMaterial::from_spki(&spki).id;
    (made.cert.pem(), made.signing_key.serialize_pem(), id)
}

/// Runs an installed hook as its ACME client does: `var` naming the renewed certificate,
/// hash-slinger's `tlsa` first in PATH. (stdout, stderr); panics unless it exits 0.
fn run_hook(installed: &Installed, hook: &str, config: &Path, var: &str, cert: &Path) -> String {
    let out = Command::new(installed.hook(hook))
        .env(
            "PATH",
            support::path_with_hash_slinger_first(&installed.prefix().join("sbin")),
        )
        .env("TLSA_CONFIG", config)
        .env(var, cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{hook} ({var}={}): {}\n{stdout}{}",
        cert.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{hook}: {stdout}");
    stdout
}

#[test]
fn the_installed_acme_sh_and_lego_hooks_run_the_set_of_the_renewed_certificate_only() {
    let lab = support::Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let zone = lab.zone().trim_end_matches('.').to_string();
    // acme.sh's layout for an ECDSA certificate, and lego's.
    let acme_name = format!("mail.{zone}");
    let acme_dir = dir.join(format!("acme.sh/{acme_name}_ecc"));
    let (chain, key, acme_key) = certificate(&acme_name);
    fs::create_dir_all(&acme_dir).unwrap();
    fs::write(acme_dir.join("fullchain.cer"), chain).unwrap();
    fs::write(acme_dir.join(format!("{acme_name}.key")), key).unwrap();
    let lego_name = format!("mx2.{zone}");
    let lego_certs = dir.join("lego/certificates");
    let (chain, key, lego_key) = certificate(&lego_name);
    fs::create_dir_all(&lego_certs).unwrap();
    fs::write(lego_certs.join(format!("{lego_name}.crt")), chain).unwrap();
    fs::write(lego_certs.join(format!("{lego_name}.key")), key).unwrap();

    let config = support::write_roll_config(
        &lab,
        dir,
        &format!(r#"{{ acme-sh = "{}" }}"#, acme_dir.display()),
        &[],
    );
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&support::set_section(
        "mx2",
        &format!(
            r#"{{ lego = {{ path = "{}", domain = "{lego_name}" }} }}"#,
            dir.join("lego").display()
        ),
        &format!(r#"{{ dir = "{}/live-mx2" }}"#, dir.display()),
        &[(lego_name.clone(), 25)],
    ));
    fs::write(&config, text).unwrap();
    let installed = Installed::new(&dir.join("root"));
    let served_at = |host: &str| {
        support::three_one_one(&lab.query_server(&format!("_25._tcp.{host}."), "TLSA"))
    };

    // lego renewed mx2's certificate: only that set runs, and publishes its key at once.
    let out = run_hook(
        &installed,
        "lego-renew-hook",
        &config,
        "LEGO_CERT_PATH",
        &lego_certs.join(format!("{lego_name}.crt")),
    );
    assert!(
        out.contains("tlsa: mx2: ") && !out.contains("tlsa: mail: "),
        "{out}"
    );
    assert!(served_at(&lego_name).contains(&lego_key));
    assert!(served_at(&acme_name).is_empty(), "the other set untouched");

    // acme.sh renewed mail's: only that set runs.
    let out = run_hook(
        &installed,
        "acme.sh-reloadcmd",
        &config,
        "CERT_FULLCHAIN_PATH",
        &acme_dir.join("fullchain.cer"),
    );
    assert!(
        out.contains("tlsa: mail: ") && !out.contains("tlsa: mx2: "),
        "{out}"
    );
    assert!(served_at(&acme_name).contains(&acme_key));

    // A certificate no set reads: nothing to do, and no failure for the ACME client.
    let out = run_hook(
        &installed,
        "lego-renew-hook",
        &config,
        "LEGO_CERT_PATH",
        &lego_certs.join("other.example.crt"),
    );
    assert!(
        out.contains("no certificate set uses the certificate"),
        "{out}"
    );
}
