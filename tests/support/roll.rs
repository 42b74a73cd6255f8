//! Driving the roll engine from the outside, as an operator would: a config file for one
//! certificate set in the lab zone, the `tlsa` binary under test, what the authoritative
//! server serves, what the deploy target holds — and a [`SafetyProbe`] that watches the
//! safety invariant (docs/design.md §1) from a background thread while a test runs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::dig;
use super::lab::Lab;
use super::powerdns::PowerDnsLab;
use super::resolver::Resolver;

/// The test set's only endpoint, relative to the lab zone.
pub const MAIL_OWNER: &str = "_25._tcp.mail";

/// How often the [`SafetyProbe`] samples.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// `source = { self-signed = … }` for `mail.ZONE`.
pub fn self_signed_source(lab: &Lab) -> String {
    self_signed_source_in(lab.zone())
}

/// `source = { self-signed = … }` for `mail.ZONE` of any zone.
pub fn self_signed_source_in(zone: &str) -> String {
    self_signed_for(&format!("mail.{}", zone.trim_end_matches('.')))
}

/// `source = { certbot = "LINEAGE" }`.
pub fn certbot_source(lineage: &Path) -> String {
    format!(r#"{{ certbot = "{}" }}"#, lineage.display())
}

/// The DNS side of a roll config: the zone, how tlsa publishes into it, and the resolver
/// and trust anchor it validates with.
pub struct RollDns {
    pub zone: String,
    pub resolver: SocketAddr,
    pub anchor: PathBuf,
    /// The `[[zone]]` keys after `name`, one per line.
    pub backend: String,
}

impl RollDns {
    /// The lab's BIND through RFC 2136 with TSIG, validated from its DNSKEY anchor.
    pub fn bind(lab: &Lab) -> Self {
        RollDns {
            zone: lab.zone().trim_end_matches('.').to_string(),
            resolver: lab.resolver_addr(),
            anchor: lab.dnskey_anchor_file().to_path_buf(),
            backend: format!(
                "backend = \"rfc2136\"\nserver = \"{}\"\ntsig_key = {{ file = \"{}\" }}\nns_port = {}",
                lab.server_addr(),
                lab.tsig_key_file().display(),
                lab.server_addr().port()
            ),
        }
    }

    /// PowerDNS through its HTTP API, validated from the DS it reports.
    pub fn powerdns(lab: &PowerDnsLab) -> Self {
        RollDns {
            zone: lab.zone().trim_end_matches('.').to_string(),
            resolver: lab.resolver_addr(),
            anchor: lab.ds_anchor_file().to_path_buf(),
            backend: format!(
                "backend = \"powerdns\"\napi_url = \"{}\"\napi_key = {{ file = \"{}\" }}\nns_port = {}",
                lab.api_url(),
                lab.api_key_file().display(),
                lab.dns_addr().port()
            ),
        }
    }

    /// The head of a config for this DNS: `state_dir` (`DIR/state`), `[dnssec]` and the
    /// `[[zone]]`; features' tables follow.
    pub fn config_head(&self, dir: &Path) -> String {
        format!(
            r#"state_dir = "{dir}/state"

[dnssec]
resolver = "{resolver}"
anchor = "{anchor}"

[[zone]]
name = "{zone}"
{backend}
"#,
            dir = dir.display(),
            resolver = self.resolver,
            anchor = self.anchor.display(),
            zone = self.zone,
            backend = self.backend,
        )
    }
}

/// Writes `DIR/tlsa.toml`: the lab zone (RFC 2136 with TSIG, validated from the lab's DNSKEY
/// anchor), and one set `mail` for `_25._tcp.mail.ZONE` with `source` (a TOML inline table),
/// deploy target `DIR/live` and `reload` (argv), TTL 2 s, margin 0, state in `DIR/state`.
/// No server listens for the set, so the `verified` step checks the deploy target.
pub fn write_roll_config(lab: &Lab, dir: &Path, source: &str, reload: &[&str]) -> PathBuf {
    write_roll_config_for(&RollDns::bind(lab), dir, source, reload)
}

/// [`write_roll_config`] with any DNS side.
pub fn write_roll_config_for(dns: &RollDns, dir: &Path, source: &str, reload: &[&str]) -> PathBuf {
    let reload: Vec<String> = reload.iter().map(|arg| format!("{arg:?}")).collect();
    let config = format!(
        "{head}\n{set}",
        head = dns.config_head(dir),
        set = set_section(
            "mail",
            source,
            &format!(
                "{{ dir = \"{}/live\", reload = [{}] }}",
                dir.display(),
                reload.join(", ")
            ),
            &[(format!("mail.{}", dns.zone), 25)],
        ),
    );
    let path = dir.join("tlsa.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// One `[[set]]` table of the lab configs: `source` and `deploy` as TOML inline tables, TTL
/// 2 s, margin 0, verified by its deploy target (no server listens for test sets), with one
/// `[[set.endpoint]]` per (host, port).
pub fn set_section(name: &str, source: &str, deploy: &str, endpoints: &[(String, u16)]) -> String {
    let mut text = format!(
        "[[set]]\nname = \"{name}\"\nsource = {source}\ndeploy = {deploy}\nttl = 2\nmargin = 0\n\
         # No server listens for this test set: check the deploy target instead.\n\
         verify = \"deployed-files\"\n\n"
    );
    for (host, port) in endpoints {
        text.push_str(&format!(
            "[[set.endpoint]]\nhost = \"{host}\"\nport = {port}\n\n"
        ));
    }
    text
}

/// `{ self-signed = { names = [NAME] } }`.
pub fn self_signed_for(name: &str) -> String {
    format!("{{ self-signed = {{ names = [\"{name}\"] }} }}")
}

/// Writes `DIR/tlsa.toml` for many owner names in the lab zone: sets `s0`, `s1`, … of up to
/// `per_set` endpoints `hI.ZONE:25` (I from 0 to `names` − 1), self-signed, deployed to
/// `DIR/live/sN`, verified by their deploy targets.
pub fn write_many_sets_config(lab: &Lab, dir: &Path, names: usize, per_set: usize) -> PathBuf {
    let config = write_roll_config(lab, dir, &self_signed_source(lab), &[]);
    let base = std::fs::read_to_string(&config).unwrap();
    let zone = lab.zone().trim_end_matches('.');
    let mut text = base[..base.find("[[set]]").unwrap()].to_string();
    for (set, first) in (0..names).step_by(per_set).enumerate() {
        let endpoints: Vec<(String, u16)> = (first..(first + per_set).min(names))
            .map(|i| (format!("h{i}.{zone}"), 25))
            .collect();
        text.push_str(&set_section(
            &format!("s{set}"),
            &self_signed_for(&format!("h{set}.{zone}")),
            &format!("{{ dir = \"{}/live/s{set}\" }}", dir.display()),
            &endpoints,
        ));
    }
    std::fs::write(&config, text).unwrap();
    config
}

/// [`write_roll_config`] for a self-signed set whose reload command touches `DIR/reloaded`.
pub fn write_config(lab: &Lab, dir: &Path) -> PathBuf {
    let reloaded = dir.join("reloaded").display().to_string();
    write_roll_config(lab, dir, &self_signed_source(lab), &["touch", &reloaded])
}

/// Runs the `tlsa` binary under test with `ARGS -c CONFIG`; its output goes to the test log.
pub fn tlsa(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(super::tools::tlsa_binary())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    eprintln!(
        "tlsa {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deletes the record of the key deployed in `dir` from the lab zone by hand (an
/// emergency: the live key is unmatched) and waits until the server serves that; returns
/// the key.
pub fn remove_live_record(lab: &Lab, dir: &Path) -> String {
    let live = deployed_key(dir);
    let owner = lab.name(MAIL_OWNER);
    lab.nsupdate_ok(&format!("update delete {owner} TLSA 3 1 1 {live}"));
    super::poll_until("deletion served", Duration::from_secs(10), || {
        (!served(lab).contains(&live)).then_some(())
    });
    live
}

/// The `3 1 1` association data (lower-case hex) in TLSA answer records.
pub fn three_one_one(reply: &dig::DigReply) -> BTreeSet<String> {
    reply
        .records("TLSA")
        .filter_map(|r| {
            let fields: Vec<&str> = r.rdata.split_whitespace().collect();
            (fields.len() > 3 && fields[..3] == ["3", "1", "1"])
                .then(|| fields[3..].concat().to_lowercase())
        })
        .collect()
}

/// The 3 1 1 data served for the set's owner by the authoritative server.
pub fn served(lab: &Lab) -> BTreeSet<String> {
    three_one_one(&lab.query_server(&lab.name(MAIL_OWNER), "TLSA"))
}

/// The 3 1 1 data served for the set's owner by PowerDNS.
pub fn served_by_powerdns(lab: &PowerDnsLab) -> BTreeSet<String> {
    three_one_one(&lab.query_server(&lab.name(MAIL_OWNER), "TLSA"))
}

/// The key (its 3 1 1 data) of the certificate in `DIR/live`.
pub fn deployed_key(dir: &Path) -> String {
    deployed_key_in(&dir.join("live")).expect("a certificate is deployed")
}

/// The key of the certificate `deploy_dir/fullchain.pem`, if there is one.
pub fn deployed_key_in(deploy_dir: &Path) -> Option<String> {
    let chain = deploy_dir.join("fullchain.pem");
    chain.exists().then(|| {
        let material = tlsa::tlsa::load_file(&chain).unwrap();
        tlsa::roll::plan::KeyMaterial::from_spki(&material.spki).id
    })
}

/// What a [`SafetyProbe`] saw so far.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    /// Samples that checked the invariant (what was in service did not change during the
    /// sample and both DNS servers answered).
    pub samples: usize,
    /// Samples set aside: a key changed while sampling, or a server did not answer.
    pub skipped: usize,
    /// Instants where a key in service had no record in an RRset, with what was seen.
    pub violations: Vec<String>,
    /// Each key in service (deployed, or presented; several presented at once are joined
    /// with `+`), in order, with the probe's time of first sight.
    pub deployed: Vec<(Duration, String)>,
}

/// What a [`SafetyProbe`] takes as the key in service.
#[derive(Clone)]
pub enum InService {
    /// The certificate in a deploy target (`fullchain.pem`).
    DeployTarget(PathBuf),
    /// What each of these addresses presents for the endpoint (STARTTLS as its port
    /// says): the safety invariant's own terms.
    Presented {
        addresses: Vec<SocketAddr>,
        endpoint: tlsa::live::endpoint::Endpoint,
    },
}

impl InService {
    /// The keys in service now; `None` when an address could not be observed.
    fn keys(&self, runtime: &tokio::runtime::Runtime) -> Option<BTreeSet<String>> {
        match self {
            InService::DeployTarget(dir) => Some(deployed_key_in(dir).into_iter().collect()),
            InService::Presented {
                addresses,
                endpoint,
            } => addresses
                .iter()
                .map(|&address| presented_key(runtime, address, endpoint))
                .collect(),
        }
    }
}

/// The key (its 3 1 1 data) the server at `address` presents, if it answers.
pub fn presented_key(
    runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
    endpoint: &tlsa::live::endpoint::Endpoint,
) -> Option<String> {
    use tlsa::live::capture::{ConnectOptions, capture};
    let presented = runtime
        .block_on(capture(address, endpoint, &ConnectOptions::default()))
        .ok()?;
    let leaf = presented.chain.first()?;
    Some(tlsa::roll::plan::KeyMaterial::from_spki(leaf.spki()).id)
}

/// Samples every [`PROBE_INTERVAL`], until stopped or dropped, the key(s) in service and the
/// set's TLSA RRset as (a) the authoritative server serves it and (b) a caching validating
/// resolver (a sender's view, holding RRsets for their TTL) returns it, and records every
/// instant where a key in service is missing from either.
///
/// Each sample reads what is in service before and after the two queries and counts only
/// when both reads agree: the keys were then in service during the whole of both queries,
/// so a missing record is a real violation and never an artefact of a change between two
/// reads. With [`InService::Presented`], an owner without any TLSA RRset fails nobody
/// (senders then do not use DANE) and is no violation; a deploy target's key must always
/// be in the RRset.
pub struct SafetyProbe {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ProbeLog>>,
    thread: Option<JoinHandle<()>>,
}

impl SafetyProbe {
    /// `witness`: a resolver that nobody else queries, e.g. from
    /// [`Lab::start_resolver_with_ds`]; `owner` is absolute.
    pub fn start(
        deploy_dir: PathBuf,
        owner: String,
        authoritative: SocketAddr,
        witness: SocketAddr,
    ) -> Self {
        Self::watch(
            InService::DeployTarget(deploy_dir),
            owner,
            authoritative,
            witness,
        )
    }

    /// [`Self::start`] for what `addresses` present for `endpoint` (the invariant's own
    /// terms), at the lab's authoritative server and `witness`.
    pub fn presented(
        lab: &Lab,
        witness: &Resolver,
        owner: &str,
        addresses: &[SocketAddr],
        endpoint: &tlsa::live::endpoint::Endpoint,
    ) -> Self {
        let in_service = InService::Presented {
            addresses: addresses.to_vec(),
            endpoint: endpoint.clone(),
        };
        Self::watch(
            in_service,
            owner.to_string(),
            lab.server_addr(),
            witness.addr(),
        )
    }

    /// [`Self::start`] for any [`InService`].
    pub fn watch(
        in_service: InService,
        owner: String,
        authoritative: SocketAddr,
        witness: SocketAddr,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ProbeLog::default()));
        let empty_is_safe = matches!(in_service, InService::Presented { .. });
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let sample = sample(&in_service, &runtime, &owner, authoritative, witness);
                    let mut log = log.lock().unwrap();
                    match sample {
                        Some((keys, auth, cached)) => {
                            log.samples += 1;
                            let joined = keys.iter().cloned().collect::<Vec<_>>().join("+");
                            if !keys.is_empty()
                                && log.deployed.last().is_none_or(|(_, k)| *k != joined)
                            {
                                log.deployed.push((start.elapsed(), joined));
                            }
                            for key in &keys {
                                for (what, rrset) in [("authoritative", &auth), ("cached", &cached)]
                                {
                                    let fails_nobody = empty_is_safe && rrset.is_empty();
                                    if !rrset.contains(key) && !fails_nobody {
                                        log.violations.push(format!(
                                            "{:?}: key {key} in service but missing from the {what} RRset {rrset:?}",
                                            start.elapsed()
                                        ));
                                    }
                                }
                            }
                        }
                        None => log.skipped += 1,
                    }
                    drop(log);
                    thread::sleep(PROBE_INTERVAL.saturating_sub(began.elapsed()));
                }
            })
        };
        SafetyProbe {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// What the probe saw so far.
    pub fn log(&self) -> ProbeLog {
        self.log.lock().unwrap().clone()
    }

    /// Stops sampling and returns everything seen.
    pub fn stop(mut self) -> ProbeLog {
        self.halt();
        self.log()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the safety probe panicked");
        }
    }
}

impl Drop for SafetyProbe {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.halt();
        } else {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

type Sample = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

/// One bracketed sample, or `None` when it cannot be judged.
fn sample(
    in_service: &InService,
    runtime: &tokio::runtime::Runtime,
    owner: &str,
    auth: SocketAddr,
    witness: SocketAddr,
) -> Option<Sample> {
    let before = in_service.keys(runtime)?;
    let served = dig::query(auth, owner, "TLSA", &["+norec"]);
    let cached = dig::query(witness, owner, "TLSA", &[]);
    let after = in_service.keys(runtime)?;
    // NXDOMAIN is an answer too: no RRset at all (before the first record, the name does
    // not exist), which caches hold as long as the zone's negative TTL.
    let answered = |reply: &dig::DigReply| reply.is_noerror() || reply.status == "NXDOMAIN";
    (before == after && answered(&served) && answered(&cached) && cached.has_flag("ad"))
        .then(|| (after, three_one_one(&served), three_one_one(&cached)))
}

/// A self-signed set in the lab whose deploy target a real Postfix serves (its key and
/// chain are symlinks into the deploy directory), verified live on Postfix's loopback
/// address: what the safety and fault tests roll.
pub struct LivePostfixSet {
    pub postfix: super::postfix::Postfix,
    pub dir: tempfile::TempDir,
    pub deploy: PathBuf,
    pub config: PathBuf,
    pub smtp: SocketAddr,
    pub endpoint: tlsa::live::endpoint::Endpoint,
}

impl LivePostfixSet {
    /// Postfix presents nothing until the first deploy (it reads files that do not
    /// exist yet); no run has happened.
    pub fn start(lab: &Lab) -> Self {
        Self::start_with_source(lab, &self_signed_source(lab))
    }

    /// [`Self::start`] with another `source` (an ACME CA, …).
    pub fn start_with_source(lab: &Lab, source: &str) -> Self {
        use super::postfix::{Postfix, PostfixOptions, TlsIdentity};
        let postfix = Postfix::start(PostfixOptions {
            tls: Some(TlsIdentity::self_signed(&["mail.example"], 30)),
            ..PostfixOptions::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path().join("live");
        std::fs::create_dir_all(&deploy).unwrap();
        for (postfix_name, ours) in [
            ("key.pem", "privkey.pem"),
            ("fullchain.pem", "fullchain.pem"),
        ] {
            let link = postfix.tls_dir().join(postfix_name);
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(deploy.join(ours), &link).unwrap();
        }
        postfix.reload();
        let zone = lab.zone().trim_end_matches('.').to_string();
        let smtp = postfix.addresses()[0];
        let endpoint =
            tlsa::live::endpoint::Endpoint::new(&format!("mail.{zone}"), 25, None).unwrap();
        let postfix_dir = postfix.config_dir().display().to_string();
        let config = write_roll_config(
            lab,
            dir.path(),
            source,
            &["postfix", "-c", &postfix_dir, "reload"],
        );
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("verify = \"deployed-files\"\n", "")
            .replace(
                "port = 25\n",
                &format!("port = 25\naddresses = [\"{smtp}\"]\n"),
            );
        std::fs::write(&config, text).unwrap();
        LivePostfixSet {
            postfix,
            dir,
            deploy,
            config,
            smtp,
            endpoint,
        }
    }

    /// The key id of the deployed certificate.
    pub fn deployed(&self) -> String {
        deployed_key_in(&self.deploy).expect("a certificate is deployed")
    }
}
