//! The roll engine end to end against the real lab (BIND signing inline,
//! unbound validating): a self-signed set adopted from nothing, rerun
//! idempotently, then rolled to its pre-published next key, through the
//! `tlsa` binary and a config file as an operator would run it.

use crate::support;

use std::collections::BTreeSet;

use support::{Lab, deployed_key, deployed_key_in, served, set_section, tlsa, write_config};

/// The set `mail` published with TTL 3 and deployed; returns the config and its original
/// text (with `ttl = 2`) for the test to rewrite.
fn deployed_with_ttl_3(lab: &Lab, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let config = write_config(lab, dir);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("ttl = 2", "ttl = 3")).unwrap();
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    (config, text)
}

/// Replaces the secret in the lab's TSIG key file by a wrong one; returns the good file text.
fn break_tsig_key(lab: &Lab) -> String {
    let good = std::fs::read_to_string(lab.tsig_key_file()).unwrap();
    let wrong = good.replace(lab.tsig_secret(), "c2VjcmV0IHRoYXQgaXMgd3Jvbmc=");
    std::fs::write(lab.tsig_key_file(), wrong).unwrap();
    good
}

#[test]
fn self_signed_set_is_adopted_published_and_rolled() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());

    // First run: first key generated and published, deployed once safe, a
    // next key generated and published.
    let first = tlsa(&config, &["run", "--wait"]);
    assert!(first.status.success());
    let live = deployed_key(dir.path());
    let records = served(&lab);
    assert_eq!(records.len(), 2, "live and next: {records:?}");
    assert!(records.contains(&live));
    assert!(dir.path().join("reloaded").exists(), "reload command ran");

    // Rerun: nothing to do.
    let again = tlsa(&config, &["run"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 step(s) done"));
    assert_eq!(served(&lab), records);

    // Planned roll: the next key goes live, the old key's record goes, and a
    // fresh next key is published in the same change.
    let roll = tlsa(&config, &["rollover", "--wait"]);
    assert!(roll.status.success());
    let new_live = deployed_key(dir.path());
    assert_ne!(new_live, live);
    let after = served(&lab);
    assert!(
        records.contains(&new_live),
        "the new live key was the pre-published next key"
    );
    assert!(after.contains(&new_live));
    assert!(!after.contains(&live), "old key retired: {after:?}");
    assert_eq!(after.len(), 2, "live and a fresh next: {after:?}");
}

#[test]
fn plan_and_status_describe_the_set_without_changing_it() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());

    let plan = tlsa(&config, &["plan"]);
    assert!(plan.status.success());
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("mail: next step: generate a new next key"),
        "{text}"
    );
    // The whole first publication is shown, with an example key.
    assert!(
        text.contains("mail: then (with an example next key") && text.contains("    + 3 1 1 "),
        "{text}"
    );
    assert!(text.contains("update add _25._tcp.mail."), "{text}");
    assert!(served(&lab).is_empty(), "plan changed nothing");
    assert!(!dir.path().join("state/keys").exists(), "plan wrote no key");
    let plan = tlsa(&config, &["plan", "--json", "--set", "mail"]);
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(json[0]["step"], "generate a new next key");
    assert_eq!(
        json[0]["then"]["changes"][0]["after"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{json}"
    );
    let unknown = tlsa(&config, &["plan", "--set", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));

    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let status = tlsa(&config, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let set = &json[0];
    assert_eq!(set["set"], "mail");
    assert_eq!(set["live"].as_str().unwrap(), deployed_key(dir.path()));
    let slots: BTreeSet<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["slot"].as_str().unwrap())
        .collect();
    assert_eq!(slots, BTreeSet::from(["live", "next"]));
    let plan = tlsa(&config, &["plan"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("mail: nothing due"));

    // Someone deletes the next key's record by hand: the plan shows the
    // repair as a diff and as nsupdate input, and still changes nothing.
    let next = set["next"].as_str().unwrap().to_string();
    let owner = lab.name("_25._tcp.mail");
    lab.nsupdate_ok(&format!("update delete {owner} TLSA 3 1 1 {next}"));
    let plan = tlsa(&config, &["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains(&format!("+ 3 1 1 {next}")), "{text}");
    let absolute = format!("{}.", owner.trim_end_matches('.'));
    assert!(
        text.contains(&format!("update add {absolute} 2 TLSA 3 1 1 {next}")),
        "{text}"
    );
    assert!(!served(&lab).contains(&next));
}

#[test]
fn a_second_run_while_one_holds_the_lock_changes_nothing() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    let _held = tlsa::roll::state::StateStore::open(&dir.path().join("state")).unwrap();
    let second = tlsa(&config, &["run"]);
    assert_eq!(
        second.status.code(),
        Some(75),
        "locked: nothing done, nothing wrong"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("another tlsa run (pid {})", std::process::id())),
        "{stderr}"
    );
    assert!(served(&lab).is_empty());
}

#[test]
fn a_wrong_tsig_key_mid_roll_removes_nothing_and_the_roll_resumes_once_fixed() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let before = served(&lab);
    let live = deployed_key(dir.path());

    let (key_file, good) = (lab.tsig_key_file(), break_tsig_key(&lab));
    let failed = tlsa(&config, &["rollover", "--wait"]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(
        served(&lab).is_superset(&before),
        "nothing removed: {:?}",
        served(&lab)
    );
    assert!(served(&lab).contains(&live));

    std::fs::write(key_file, good).unwrap();
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let after = served(&lab);
    assert!(
        !after.contains(&live),
        "old key retired after the fix: {after:?}"
    );
    assert!(after.contains(&deployed_key(dir.path())));
    assert_eq!(after.len(), 2);
}

#[test]
fn a_live_key_without_record_is_republished_with_an_alarm_until_safe() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let live = support::remove_live_record(&lab, dir.path());

    let emergency = tlsa(&config, &["run"]);
    assert_eq!(
        emergency.status.code(),
        Some(1),
        "an emergency exits non-zero"
    );
    let stderr = String::from_utf8_lossy(&emergency.stderr);
    assert!(
        stderr.contains("ALARM") && stderr.contains("has no usable TLSA record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("may still make DANE senders refuse mail until"),
        "{stderr}"
    );
    assert!(served(&lab).contains(&live), "republished at once");
    let status = String::from_utf8_lossy(&tlsa(&config, &["status"]).stdout).to_string();
    assert!(status.contains("ALARM"), "{status}");

    // Once every cache may have expired, the alarm is over.
    let cleared = support::poll_until("alarm cleared", std::time::Duration::from_secs(15), || {
        let run = tlsa(&config, &["run"]);
        let status = String::from_utf8_lossy(&tlsa(&config, &["status"]).stdout).to_string();
        (run.status.success() && !status.contains("ALARM")).then_some(status)
    });
    assert!(cleared.contains("live"));
}

#[test]
fn manual_steps_wait_for_confirmation() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("margin = 0", "margin = 0\nmanual = [\"retire\"]"),
    )
    .unwrap();
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let old = deployed_key(dir.path());

    let roll = tlsa(&config, &["rollover", "--wait"]);
    assert!(roll.status.success());
    assert!(String::from_utf8_lossy(&roll.stdout).contains("is manual: run `tlsa run --confirm"));
    assert_ne!(deployed_key(dir.path()), old, "deploy is automatic");
    assert!(served(&lab).contains(&old), "retire waits for confirmation");

    assert!(
        tlsa(&config, &["run", "--confirm", "--wait"])
            .status
            .success()
    );
    assert!(!served(&lab).contains(&old));
}

#[test]
fn a_failing_set_is_reported_and_the_other_sets_still_run() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    // A second set whose ACME client left a damaged certificate.
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let zone = lab.zone().trim_end_matches('.');
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&set_section(
        "broken",
        &format!(
            "{{ files = {{ cert = {0:?}, key = {0:?} }} }}",
            broken.display().to_string()
        ),
        &format!(
            "{{ dir = \"{}/broken-live\", reload = [] }}",
            dir.path().display()
        ),
        &[(format!("submission.{zone}"), 587)],
    ));
    std::fs::write(&config, text).unwrap();

    let run = tlsa(&config, &["run", "--wait"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains(&broken.display().to_string()), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("broken: 0 step(s) done; FAILED"),
        "{stdout}"
    );
    // The healthy set did its whole first run regardless.
    assert_eq!(served(&lab).len(), 2, "live and next of set mail");
    assert!(served(&lab).contains(&deployed_key(dir.path())));
    // Status tells the whole story: the failed run and its error, the other set's run.
    let status = tlsa(&config, &["status", "--set", "broken"]);
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("last run") && text.contains("failed") && text.contains("broken.pem"),
        "{text}"
    );
    assert!(
        !text.contains("set mail"),
        "--set shows that set only: {text}"
    );
    let status = tlsa(&config, &["status", "--json", "--set", "mail"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json[0]["last_run"]["outcome"], "done", "{json}");
}

#[test]
fn an_idle_set_is_skipped_without_any_query_with_offline_if_idle() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    // Not yet provably idle: the first run ended by deploying; one more run
    // reads DNS, finds nothing to do and leaves the mark.
    assert!(tlsa(&config, &["run"]).status.success());

    // Point the config at a primary and a resolver that do not exist: a
    // run that sent any query would fail.
    let text = std::fs::read_to_string(&config).unwrap();
    let dead = text
        .replace(&lab.resolver_addr().to_string(), "127.0.0.1:9")
        .replace(&lab.server_addr().to_string(), "127.0.0.1:9");
    std::fs::write(&config, &dead).unwrap();
    let offline = tlsa(&config, &["run", "--offline-if-idle"]);
    assert!(offline.status.success());
    assert!(
        String::from_utf8_lossy(&offline.stdout).contains("mail: idle (offline"),
        "{offline:?}"
    );
    let networked = tlsa(&config, &["run"]);
    assert!(!networked.status.success(), "without the flag, DNS is read");

    // A changed setting of the set makes it not provably idle any more.
    std::fs::write(&config, dead.replace("margin = 0", "margin = 1")).unwrap();
    let busy = tlsa(&config, &["run", "--offline-if-idle"]);
    assert!(!busy.status.success(), "a changed set reads DNS");
}

#[test]
fn a_lowered_ttl_is_applied_and_keys_published_after_it_still_wait_for_the_old_one() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, text) = deployed_with_ttl_3(&lab, dir.path());
    let owner = lab.name("_25._tcp.mail");
    let ttl_served = || {
        lab.query_server(&owner, "TLSA")
            .records("TLSA")
            .next()
            .unwrap()
            .ttl
    };
    assert_eq!(ttl_served(), 3);

    std::fs::write(&config, text.replace("ttl = 2", "ttl = 1")).unwrap();
    // The plan shows the TTL change, and as nsupdate input the whole RRset
    // deleted and added back with the new TTL.
    let plan = tlsa(&config, &["plan"]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    let absolute = format!("{}.", owner.trim_end_matches('.'));
    assert!(shown.contains("(TTL 3 -> 1)"), "{shown}");
    assert!(
        shown.contains(&format!("update delete {absolute} TLSA\n")),
        "{shown}"
    );
    assert_eq!(
        shown
            .matches(&format!("update add {absolute} 1 TLSA 3 1 1"))
            .count(),
        2,
        "{shown}"
    );
    assert_eq!(ttl_served(), 3, "plan changed nothing");
    let lowered = tlsa(&config, &["run"]);
    assert!(lowered.status.success());
    assert!(
        String::from_utf8_lossy(&lowered.stdout).contains("in line with the config"),
        "{lowered:?}"
    );
    assert_eq!(ttl_served(), 1);
    let records = served(&lab);

    // The roll adds a fresh next key while caches may still hold the
    // RRset with TTL 3: its wait counts with 3 s, not 1 s.
    assert!(tlsa(&config, &["rollover", "--wait"]).status.success());
    assert_eq!(served(&lab).len(), 2);
    assert_ne!(served(&lab), records);
    let state = tlsa::roll::state::load_dir(&dir.path().join("state")).unwrap();
    let set = &state.sets["mail"];
    let next = set.next_key.as_ref().unwrap();
    assert_eq!(set.keys[next].prior_ttl, Some(3), "{set:#?}");
}

/// Ten sets of ten owner names in one zone, worked on concurrently: every owner gets its
/// set's live and next key. (With concurrent UPDATEs to one zone, BIND 9.18's inline
/// signing was seen to accept changes it then never served; the engine now sends one
/// zone's changes one at a time, and this test is what caught it.)
#[test]
fn many_sets_in_one_zone_are_published_concurrently() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_many_sets_config(&lab, dir.path(), 100, 10);

    let run = tlsa(&config, &["run", "--wait", "--concurrency", "16"]);
    assert!(run.status.success());
    for set in 0..10 {
        let live = support::deployed_key_in(&dir.path().join(format!("live/s{set}"))).unwrap();
        for i in set * 10..set * 10 + 10 {
            let rrset = lab.query_server(&lab.name(&format!("_25._tcp.h{i}")), "TLSA");
            let keys = support::three_one_one(&rrset);
            assert_eq!(keys.len(), 2, "h{i}: {keys:?}");
            assert!(keys.contains(&live), "h{i} holds set s{set}'s live key");
        }
    }
}

/// One set whose endpoints live in two zones (`mail` and `mx1` in the first, `mx2` in the
/// second): each change of the roll is one UPDATE per zone, every owner in both zones serves
/// the same records, and the old key is retired from both.
#[test]
fn a_set_spanning_two_zones_is_rolled_in_both() {
    let lab = support::MultiZoneLab::start(2, 2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let primary = runtime.block_on(support::Forwarder::start(lab.server_addr()));
    let dir = tempfile::tempdir().unwrap();
    let [first, second] = [0, 1].map(|i| lab.zones()[i].trim_end_matches('.').to_string());
    let config = lab.write_config(dir.path(), 0);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.truncate(text.find("[[set]]").unwrap());
    let text = text.replace(
        &format!("server = \"{}\"", lab.server_addr()),
        &format!("server = \"{}\"", primary.addr),
    ) + &set_section(
        "mail",
        &support::self_signed_for(&format!("mail.{first}")),
        &format!("{{ dir = \"{}/live\" }}", dir.path().display()),
        &[
            (format!("mail.{first}"), 25),
            (format!("mx1.{first}"), 25),
            (format!("mx2.{second}"), 25),
        ],
    );
    std::fs::write(&config, text).unwrap();
    let owners = [
        format!("_25._tcp.mail.{first}."),
        format!("_25._tcp.mx1.{first}."),
        format!("_25._tcp.mx2.{second}."),
    ];
    let served_at = |owner: &str| {
        support::three_one_one(&support::query(
            lab.server_addr(),
            owner,
            "TLSA",
            &["+norec"],
        ))
    };
    let updates = || {
        let (udp, tcp) = primary.updates();
        udp + tcp
    };

    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let live = deployed_key(dir.path());
    let first_records = served_at(&owners[0]);
    assert_eq!(first_records.len(), 2, "live and next key");
    assert!(first_records.contains(&live));
    for owner in &owners[1..] {
        assert_eq!(served_at(owner), first_records, "{owner}");
    }
    assert_eq!(
        updates(),
        2,
        "live and next published with one UPDATE per zone"
    );

    assert!(tlsa(&config, &["rollover", "--wait"]).status.success());
    let new_live = deployed_key(dir.path());
    assert_ne!(new_live, live);
    for owner in &owners {
        let records = served_at(owner);
        assert!(!records.contains(&live), "{owner}: old key retired");
        assert!(records.contains(&new_live), "{owner}: {records:?}");
        assert_eq!(records.len(), 2, "{owner}: live and a fresh next key");
    }
    assert_eq!(
        updates(),
        4,
        "retire + new next key: one more UPDATE per zone"
    );
}

/// A server with an RSA and an ECDSA certificate is two sets on the same endpoint: both keys
/// (and both next keys) are published side by side, each set rolls only its own key, and
/// neither set's retire touches the other's records.
#[test]
fn rsa_and_ecdsa_sets_on_one_endpoint_roll_independently() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    let zone = lab.zone().trim_end_matches('.');
    let rsa_dir = dir.path().join("live-rsa");
    let rsa_set = set_section(
        "mail-rsa",
        &support::self_signed_source(&lab),
        &format!("{{ dir = \"{}\" }}", rsa_dir.display()),
        &[(format!("mail.{zone}"), 25)],
    )
    .replace("ttl = 2\n", "next_key = \"rsa-2048\"\nttl = 2\n");
    let text = std::fs::read_to_string(&config).unwrap() + "\n" + &rsa_set;
    std::fs::write(&config, text).unwrap();
    let is_rsa = |deploy_dir: &std::path::Path| {
        let pem = std::fs::read(deploy_dir.join("fullchain.pem")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        cert.public_key().algorithm.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    };

    assert!(tlsa(&config, &["run", "--wait"]).status.success());
    let (ecdsa, rsa) = (deployed_key(dir.path()), deployed_key_in(&rsa_dir).unwrap());
    assert!(is_rsa(&rsa_dir) && !is_rsa(&dir.path().join("live")));
    let served_first = served(&lab);
    assert_eq!(served_first.len(), 4, "two live and two next keys");
    assert!(served_first.contains(&ecdsa) && served_first.contains(&rsa));

    assert!(
        tlsa(&config, &["rollover", "mail-rsa", "--wait"])
            .status
            .success()
    );
    let new_rsa = deployed_key_in(&rsa_dir).unwrap();
    assert_ne!(new_rsa, rsa);
    assert!(is_rsa(&rsa_dir), "the RSA set's next key is RSA too");
    assert_eq!(
        deployed_key(dir.path()),
        ecdsa,
        "the ECDSA set did not move"
    );
    let after_rsa = served(&lab);
    assert!(!after_rsa.contains(&rsa), "old RSA key retired");
    assert!(after_rsa.contains(&new_rsa) && after_rsa.contains(&ecdsa));
    assert_eq!(after_rsa.len(), 4, "{after_rsa:?}");

    assert!(
        tlsa(&config, &["rollover", "mail", "--wait"])
            .status
            .success()
    );
    let new_ecdsa = deployed_key(dir.path());
    assert_ne!(new_ecdsa, ecdsa);
    assert_eq!(deployed_key_in(&rsa_dir).unwrap(), new_rsa);
    let after_both = served(&lab);
    assert!(!after_both.contains(&ecdsa), "old ECDSA key retired");
    assert!(after_both.contains(&new_ecdsa) && after_both.contains(&new_rsa));
    assert_eq!(after_both.len(), 4, "{after_both:?}");
}

/// `--wait` on a terminal redraws one countdown line while it sleeps, and clears it before
/// the next line; off a terminal it announces the wait once and prints no countdown.
/// `script` gives the first run a pseudo-terminal.
#[test]
fn wait_shows_a_countdown_on_a_terminal_only() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    let script = support::tool_with_hint(
        "script",
        "install util-linux's bsdutils (apt-get install -y bsdutils)",
    );
    let command = format!(
        "{} run --wait -c {}",
        support::tlsa_binary(),
        config.display()
    );
    // -e: script's status is the command's; -q: no banner; the typescript is discarded.
    let out = std::process::Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(
        terminal.contains("\r\x1b[Kset mail: ") && terminal.contains(" s to wait"),
        "a countdown line: {terminal:?}"
    );
    let last = terminal.rfind(" s to wait").unwrap() + " s to wait".len();
    let after = &terminal[last..];
    assert!(
        after.starts_with("\r\x1b[Ktlsa: set mail: deploy"),
        "the countdown is cleared before the next line: {after:?}"
    );
    assert!(served(&lab).contains(&deployed_key(dir.path())));

    // Without a terminal: the same wait, announced once, and no countdown.
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&lab, dir.path());
    let out = tlsa(&config, &["run", "--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(stderr.contains("waiting until"), "{stderr}");
    assert!(
        !stderr.contains("s to wait") && !stderr.contains('\x1b'),
        "{stderr}"
    );
}

/// A change that lowers the TTL records the hold before it is sent: when the UPDATE fails
/// (here a wrong TSIG key; equally an answer lost after the server applied it), the state
/// still says caches may hold the RRset with the old TTL.
#[test]
fn a_failed_change_that_lowers_the_ttl_still_holds_the_old_one() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, text) = deployed_with_ttl_3(&lab, dir.path());
    let state = || tlsa::roll::state::load_dir(&dir.path().join("state")).unwrap();
    assert!(state().sets["mail"].ttl_hold.is_none());

    std::fs::write(&config, text.replace("ttl = 2", "ttl = 1")).unwrap();
    let (key_file, good) = (lab.tsig_key_file(), break_tsig_key(&lab));
    let failed = tlsa(&config, &["run"]);
    assert_eq!(failed.status.code(), Some(1));
    let hold = state().sets["mail"].ttl_hold.clone();
    assert_eq!(hold.map(|h| h.ttl), Some(3), "held despite the failure");

    std::fs::write(key_file, good).unwrap();
    assert!(tlsa(&config, &["run"]).status.success());
    assert_eq!(
        state().sets["mail"].ttl_hold.as_ref().map(|h| h.ttl),
        Some(3)
    );
}

/// `tlsa ARGS -c CONFIG` under umask 000, with `env` added to its environment.
fn tlsa_umask_000(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> bool {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(support::tlsa_binary());
    command
        .args(args)
        .arg("-c")
        .arg(config)
        .envs(env.iter().copied());
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    eprintln!(
        "tlsa {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

#[test]
fn local_files_are_defended_whatever_the_umask_and_environment() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let env_dump = dir.path().join("reload-env");
    let reload = format!("env > {}", env_dump.display());
    let config = support::write_roll_config(
        &lab,
        dir.path(),
        &support::self_signed_source(&lab),
        &["sh", "-c", &reload],
    );
    // A second zone whose API token comes from the environment: a secret
    // the reload command must not inherit.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[[set]]",
        "[[zone]]\nname = \"elsewhere.test\"\nbackend = \"cloudflare\"\ntoken = { env = \"TLSA_TEST_API_TOKEN\" }\n\n[[set]]",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let token = "cf-token-from-the-environment-5150";
    assert!(tlsa_umask_000(
        &config,
        &["run", "--wait"],
        &[
            ("TLSA_TEST_API_TOKEN", token),
            ("TLSA_TSIG_KEY", "hmac-sha256:k:c2VjcmV0")
        ]
    ));

    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let state = dir.path().join("state");
    for private in ["", "sets", "keys", "keys/mail", "staged", "staged/mail"] {
        assert_eq!(mode(&state.join(private)), 0o700, "state/{private}");
    }
    assert_eq!(
        mode(&dir.path().join("live")),
        0o755,
        "the deploy directory"
    );
    assert_eq!(mode(&dir.path().join("live/privkey.pem")), 0o600);

    let seen = std::fs::read_to_string(&env_dump).expect("the reload command ran");
    assert!(
        seen.contains("PATH="),
        "the rest of the environment stays: {seen}"
    );
    assert!(
        !seen.contains(token)
            && !seen.contains("TLSA_TEST_API_TOKEN")
            && !seen.contains("TLSA_TSIG_KEY"),
        "{seen}"
    );

    // A lock file planted as a symlink is not followed (its target kept).
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::remove_file(state.join("lock")).ok();
    std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
    assert!(!tlsa_umask_000(
        &config,
        &["run"],
        &[("TLSA_TEST_API_TOKEN", token)]
    ));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}
