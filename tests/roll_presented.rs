//! The keys the servers present are the truth: the roll engine observes a real Postfix on
//! every run, and a [`SafetyProbe`] compares what Postfix presents with the RRset a
//! caching unbound (a sender's view) returns, from the first run to the last.
//!
//! Each scene: the lab zone (BIND signing inline, unbound validating), one or two Postfix
//! instances for `mail.ZONE` presenting K0 (a certificate they had before tlsa), a certbot
//! lineage holding K1, and a set that deploys to `DIR/live` and reloads with `DIR/reload.sh`
//! — which a test writes to copy the deploy files into the Postfix instances it should
//! reach and reload them, or to do nothing at all (a reload that does not take effect).

use crate::support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use support::{
    Lab, Postfix, PostfixOptions, Resolver, SafetyProbe, TlsIdentity, certbot_source,
    presented_key, served, tlsa, tool, write_roll_config,
};
use tlsa::live::endpoint::Endpoint;

struct Scene {
    // Field order is drop order: servers stop before the directory goes.
    lab: Lab,
    postfixes: Vec<Postfix>,
    witness: Resolver,
    config: PathBuf,
    k0: TlsIdentity,
    k1: TlsIdentity,
    dir: tempfile::TempDir,
}

impl Scene {
    /// `instances` Postfix servers presenting K0; the lineage holds K1; `reloads` says
    /// which instances `reload.sh` reaches at first.
    fn start(instances: usize, reloads: &[usize], extra: &str) -> Self {
        let lab = Lab::start();
        let dir = tempfile::tempdir().unwrap();
        let host = format!("mail.{}", lab.zone().trim_end_matches('.'));
        let k0 = TlsIdentity::self_signed(&[&host], 30);
        let k1 = TlsIdentity::self_signed(&[&host], 30);
        let postfixes: Vec<Postfix> = (0..instances)
            .map(|_| {
                Postfix::start(PostfixOptions {
                    tls: Some(k0.clone()),
                    ..PostfixOptions::default()
                })
            })
            .collect();
        let lineage = dir.path().join("lineage");
        std::fs::create_dir_all(&lineage).unwrap();
        std::fs::write(lineage.join("fullchain.pem"), &k1.chain_pem).unwrap();
        std::fs::write(lineage.join("privkey.pem"), &k1.key_pem).unwrap();
        let script = dir.path().join("reload.sh").display().to_string();
        let config = write_roll_config(
            &lab,
            dir.path(),
            &certbot_source(&lineage),
            &["sh", &script],
        );
        let addresses: Vec<String> = postfixes
            .iter()
            .map(|p| format!("\"{}\"", p.addresses()[0]))
            .collect();
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("verify = \"deployed-files\"\n", extra)
            .replace(
                "port = 25\n",
                &format!("port = 25\naddresses = [{}]\n", addresses.join(", ")),
            );
        std::fs::write(&config, text).unwrap();
        let witness = lab.start_resolver_with_ds(&lab.ds_records().join("\n"));
        let scene = Scene {
            lab,
            postfixes,
            witness,
            config,
            k0,
            k1,
            dir,
        };
        scene.set_reloads(reloads);
        for index in 0..instances {
            scene.wait_presents(index, &scene.k0.spki_sha256());
        }
        scene
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::new(
            &format!("mail.{}", self.lab.zone().trim_end_matches('.')),
            25,
            None,
        )
        .unwrap()
    }

    fn address(&self, index: usize) -> SocketAddr {
        self.postfixes[index].addresses()[0]
    }

    /// Rewrites `reload.sh` so that a deploy reaches exactly these Postfix instances.
    fn set_reloads(&self, instances: &[usize]) {
        let live = self.dir.path().join("live");
        let mut script = String::from("set -e\n");
        for &index in instances {
            let postfix = &self.postfixes[index];
            let tls = postfix.tls_dir();
            script.push_str(&format!(
                "cp '{live}/privkey.pem' '{tls}/key.pem.new' && mv '{tls}/key.pem.new' '{tls}/key.pem'\n\
                 cp '{live}/fullchain.pem' '{tls}/fullchain.pem.new' && mv '{tls}/fullchain.pem.new' '{tls}/fullchain.pem'\n\
                 '{postfix_bin}' -c '{conf}' reload\n",
                live = live.display(),
                tls = tls.display(),
                postfix_bin = tool("postfix").display(),
                conf = postfix.config_dir().display(),
            ));
        }
        std::fs::write(self.dir.path().join("reload.sh"), script).unwrap();
    }

    fn presented(&self, index: usize) -> Option<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        presented_key(&runtime, self.address(index), &self.endpoint())
    }

    fn wait_presents(&self, index: usize, key: &str) {
        support::poll_until(
            "Postfix presents the expected key",
            Duration::from_secs(20),
            || (self.presented(index).as_deref() == Some(key)).then_some(()),
        );
    }

    /// The probe over every Postfix instance against the witness resolver.
    fn probe(&self) -> SafetyProbe {
        let addresses: Vec<_> = self.postfixes.iter().map(|p| p.addresses()[0]).collect();
        let owner = self.lab.name(support::MAIL_OWNER);
        SafetyProbe::presented(
            &self.lab,
            &self.witness,
            &owner,
            &addresses,
            &self.endpoint(),
        )
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = tlsa(&self.config, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// Runs tlsa, which must exit with `code` (`why` says why); returns its stdout and
    /// stderr.
    fn run_expecting(&self, code: i32, args: &[&str], why: &str) -> (String, String) {
        let (got, stdout, stderr) = self.run(args);
        assert_eq!(got, Some(code), "tlsa {args:?}: {why}\n{stdout}{stderr}");
        (stdout, stderr)
    }

    fn status(&self) -> String {
        self.run(&["status"]).1
    }

    /// Lets the probe watch a little longer (caches of the last RRset expire), then stops it.
    fn finish(&self, probe: SafetyProbe) -> support::ProbeLog {
        std::thread::sleep(Duration::from_secs(3));
        let log = probe.stop();
        eprintln!(
            "probe: {} samples, {} skipped, keys in service in order {:?}, violations {}",
            log.samples,
            log.skipped,
            log.deployed,
            log.violations.len()
        );
        log
    }
}

fn short(key: &str) -> &str {
    &key[..16]
}

fn keys(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|k| k.to_string()).collect()
}

#[test]
fn adoption_publishes_the_presented_key_and_retires_it_once_the_new_one_is_presented() {
    let scene = Scene::start(1, &[0], "");
    let (k0, k1) = (scene.k0.spki_sha256(), scene.k1.spki_sha256());
    let probe = scene.probe();

    let (_, stderr) = scene.run_expecting(0, &["run", "--wait"], "");
    assert!(!stderr.contains("ALARM"), "{stderr}");
    assert!(
        stderr.contains(&format!("publish records for key {}", short(&k0))),
        "K0, presented, is published with the first change: {stderr}"
    );
    scene.wait_presents(0, &k1);
    let final_rrset = served(&scene.lab);
    assert!(final_rrset.contains(&k1), "{final_rrset:?}");
    assert!(!final_rrset.contains(&k0), "K0 retired: {final_rrset:?}");
    assert_eq!(final_rrset.len(), 2, "K1 and the next key: {final_rrset:?}");

    let log = scene.finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
    let order: Vec<&str> = log.deployed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        order,
        [k0.as_str(), k1.as_str()],
        "the probe saw the switch"
    );
    assert!(log.samples >= 20, "the probe sampled the roll: {log:?}");
    let status = scene.status();
    assert!(
        status.contains(&format!("{}  key {}", scene.address(0), short(&k1))),
        "status shows what the address presents: {status}"
    );
}

#[test]
fn a_reload_that_does_nothing_alarms_removes_nothing_and_completes_once_fixed() {
    let scene = Scene::start(1, &[], "");
    let (k0, k1) = (scene.k0.spki_sha256(), scene.k1.spki_sha256());
    let probe = scene.probe();

    let (_, stderr) = scene.run_expecting(
        1,
        &["run", "--wait"],
        "a deploy that did not take effect fails",
    );
    let alarm = format!("{} presents key {}", scene.address(0), short(&k0));
    assert!(
        stderr.contains("ALARM") && stderr.contains(&alarm),
        "the alarm names the address and its key: {stderr}"
    );
    assert!(served(&scene.lab).is_superset(&keys(&[&k0, &k1])));
    let status = scene.status();
    assert!(
        status.contains("ALARM") && status.contains(&alarm),
        "{status}"
    );

    // Every later run reloads again, checks again, and removes nothing.
    let (_, stderr) = scene.run_expecting(1, &["run"], "");
    assert!(
        stderr.contains("deploy the renewed certificate"),
        "{stderr}"
    );
    assert!(served(&scene.lab).contains(&k0));

    // The reload is fixed: the next run completes the roll.
    scene.set_reloads(&[0]);
    scene.run_expecting(0, &["run", "--wait"], "");
    scene.wait_presents(0, &k1);
    assert!(
        !served(&scene.lab).contains(&k0),
        "K0 retired once K1 is presented"
    );
    let status = scene.status();
    assert!(!status.contains("ALARM"), "{status}");

    let log = scene.finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
}

#[test]
fn a_key_changed_by_hand_is_an_alarm_and_published_or_with_alarm_only_just_an_alarm() {
    let scene = Scene::start(1, &[0], "");
    scene.run_expecting(0, &["run", "--wait"], "");
    let host = format!("mail.{}", scene.lab.zone().trim_end_matches('.'));

    // Postfix pointed at another certificate by hand.
    let by_hand = TlsIdentity::self_signed(&[&host], 30);
    scene.postfixes[0].install(&by_hand);
    scene.postfixes[0].reload();
    scene.wait_presents(0, &by_hand.spki_sha256());
    let (_, stderr) = scene.run_expecting(1, &["run"], "");
    assert!(
        stderr.contains("ALARM")
            && stderr.contains(&format!(
                "key {} presented by {}",
                short(&by_hand.spki_sha256()),
                scene.endpoint_label(0)
            )),
        "{stderr}"
    );
    support::poll_until(
        "the presented key is published",
        Duration::from_secs(10),
        || {
            served(&scene.lab)
                .contains(&by_hand.spki_sha256())
                .then_some(())
        },
    );

    // With on_unmatched_key = "alarm", a key tlsa did not expect is only reported. (The
    // operator now points Postfix at files of their own: tlsa's reloads no longer reach it,
    // so they cannot undo the change either.)
    scene.set_reloads(&[]);
    let text = std::fs::read_to_string(&scene.config)
        .unwrap()
        .replace("margin = 0\n", "margin = 0\non_unmatched_key = \"alarm\"\n");
    std::fs::write(&scene.config, text).unwrap();
    let again = TlsIdentity::self_signed(&[&host], 30);
    scene.postfixes[0].install(&again);
    scene.postfixes[0].reload();
    scene.wait_presents(0, &again.spki_sha256());
    let (_, stderr) = scene.run_expecting(1, &["run"], "");
    assert!(
        stderr.contains("ALARM") && stderr.contains("tlsa does not publish it"),
        "{stderr}"
    );
    assert!(!served(&scene.lab).contains(&again.spki_sha256()));
    assert!(scene.status().contains("ALARM"));
}

#[test]
fn two_addresses_nothing_is_retired_until_both_present_the_new_key() {
    let scene = Scene::start(2, &[0], "");
    let (k0, k1) = (scene.k0.spki_sha256(), scene.k1.spki_sha256());
    let probe = scene.probe();

    let (_, stderr) = scene.run_expecting(
        1,
        &["run", "--wait"],
        "the second address still presents K0",
    );
    scene.wait_presents(0, &k1);
    assert_eq!(scene.presented(1).as_deref(), Some(k0.as_str()));
    assert!(
        stderr.contains(&format!("{} presents key {}", scene.address(1), short(&k0))),
        "{stderr}"
    );
    assert!(
        served(&scene.lab).is_superset(&keys(&[&k0, &k1])),
        "nothing retired"
    );

    scene.set_reloads(&[0, 1]);
    scene.run_expecting(0, &["run", "--wait"], "");
    scene.wait_presents(1, &k1);
    assert!(!served(&scene.lab).contains(&k0));

    let log = scene.finish(probe);
    assert!(log.violations.is_empty(), "{:#?}", log.violations);
}

impl Scene {
    /// How the engine names the endpoint at instance `index`'s address.
    fn endpoint_label(&self, index: usize) -> String {
        format!(
            "mail.{}:25 at {}",
            self.lab.zone().trim_end_matches('.'),
            self.address(index)
        )
    }
}

#[test]
fn waits_name_the_lagging_server_and_the_hook_names_it_when_it_gives_up() {
    let scene = Scene::start(1, &[0], "");
    // A secondary that never sees an update, listed as one of the zone's servers.
    let lagging = scene
        .lab
        .start_frozen_copy(&[support::random_loopback_v4()]);
    let lagging_addr = lagging.addrs()[0].to_string();
    let port_line = format!("ns_port = {}\n", scene.lab.server_addr().port());
    let text = std::fs::read_to_string(&scene.config).unwrap().replace(
        &port_line,
        &format!("{port_line}extra_servers = [\"{lagging_addr}\"]\n"),
    );
    std::fs::write(&scene.config, text).unwrap();

    let lineage = scene.dir.path().join("lineage").display().to_string();
    let (stdout, stderr) = scene.run_expecting(
        0,
        &[
            "hook",
            "certbot",
            "--lineage",
            &lineage,
            "--propagation-timeout",
            "3",
        ],
        "the hook leaves the rest to the timer",
    );
    assert!(
        stdout.contains("propagation not yet complete") && stdout.contains(&lagging_addr),
        "the hook's last word names the lagging server: {stdout}"
    );
    assert!(
        stderr.contains("waiting for zone") && stderr.contains(&lagging_addr),
        "and so does its progress while it waits: {stderr}"
    );

    let (_, stderr) = scene.run_expecting(1, &["run", "--wait", "--propagation-timeout", "2"], "");
    assert!(
        stderr.contains("waiting for zone") && stderr.contains(&lagging_addr),
        "run --wait names the server it waits on: {stderr}"
    );
}
