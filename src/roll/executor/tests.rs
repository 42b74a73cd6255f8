//! The executor driven through whole rolls against an in-memory world: a
//! zone with a primary and a secondary that can lag, a validator that
//! calls every answer Secure, a server that presents what was deployed
//! (or ignores reloads), and a manual clock — every roll in milliseconds,
//! no lab. The world checks the safety invariant itself: whenever the key
//! presented or an RRset changes, the presented key must be matched by
//! every RRset a cache may still hold (each one served within its TTL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex as StdMutex;

use async_trait::async_trait;

use super::*;
use crate::clock::ManualClock;
use crate::dns::observe::dnssec::{Validation, Verdict};
use crate::dns::observe::propagation::{
    AnswerKind, Observation, Observe, Origin, ServedRrset, ServerAddr, ServerObservation, Soa,
};
use crate::dns::publish::provider::{Applied, ChangeSet};
use crate::dns::rrset::{rdata_of, tlsa_of};
use crate::dns::{RrType, Rrset, RrsetId};
use crate::tlsa::{Matching, Selector, Usage};

const ZONE: &str = "example.test.";
const OWNER: &str = "_25._tcp.mail.example.test.";
/// The SOA TTL and MINIMUM: the negative TTL.
const NEGATIVE_TTL: u32 = 30;

fn owner() -> Name {
    Name::from_ascii(OWNER).unwrap()
}

/// The zone, the server and what caches may hold.
struct World {
    clock: Arc<ManualClock>,
    serial: u32,
    records: BTreeSet<TlsaRecord>,
    ttl: u32,
    /// The secondary's copy while it lags (`None`: it serves the primary's).
    lagging: Option<(u32, BTreeSet<TlsaRecord>, u32)>,
    fail_updates: bool,
    updates: usize,
    /// Another writer at the owner (another set, another tlsa host, an
    /// operator), acting once, while the next propagation wait looks: the
    /// RRset it leaves, given the one there.
    other_writer: Option<OtherWriter>,
    /// The server ignores reloads: it keeps presenting what it has.
    deaf: bool,
    presented: Option<KeyMaterial>,
    /// One address in front of a pool with a backend that was never
    /// reloaded: every other look lands there and sees this key.
    stale_backend: Option<KeyMaterial>,
    looks: usize,
    deploy_dir: PathBuf,
    /// RRsets no longer served: (served until, records, TTL).
    history: Vec<(SystemTime, BTreeSet<TlsaRecord>, u32)>,
    violations: Vec<String>,
}

impl World {
    fn new(clock: Arc<ManualClock>, deploy_dir: PathBuf) -> Self {
        World {
            clock,
            serial: 1,
            records: BTreeSet::new(),
            ttl: 0,
            lagging: None,
            fail_updates: false,
            updates: 0,
            other_writer: None,
            deaf: false,
            presented: None,
            stale_backend: None,
            looks: 0,
            deploy_dir,
            history: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Every RRset a cache may still hold now (an empty one fails nobody).
    fn cached(&self) -> Vec<BTreeSet<TlsaRecord>> {
        let now = self.clock.now();
        let held = |until: SystemTime, ttl: u32| {
            until + Duration::from_secs(u64::from(ttl)) + ttl::RESOLVER_CLOCK_GRANULARITY > now
        };
        let mut cached: Vec<BTreeSet<TlsaRecord>> = self
            .history
            .iter()
            .filter(|(until, _, ttl)| held(*until, *ttl))
            .map(|(_, records, _)| records.clone())
            .collect();
        cached.push(self.records.clone());
        cached.extend(self.lagging.iter().map(|(_, records, _)| records.clone()));
        cached
    }

    fn check_invariant(&mut self, when: &str) {
        let Some(key) = &self.presented else {
            return;
        };
        let record = RecordPolicy::default().records_for_key(&key.spki);
        for rrset in self.cached() {
            if !rrset.is_empty() && rrset.is_disjoint(&record) {
                self.violations.push(format!(
                    "{when}: key {} presented, a cached RRset {rrset:?} lacks it",
                    key.short()
                ));
            }
        }
    }

    fn serve(&mut self, records: BTreeSet<TlsaRecord>, ttl: u32) {
        if records != self.records || ttl != self.ttl {
            let old = std::mem::replace(&mut self.records, records);
            let old_ttl = std::mem::replace(&mut self.ttl, ttl);
            if self.lagging.is_none() {
                self.history.push((self.clock.now(), old, old_ttl));
            }
            self.serial += 1;
            self.check_invariant("after a change");
        }
    }

    /// The secondary catches up (what it served stays in caches a TTL).
    fn catch_up(&mut self) {
        if let Some((_, records, ttl)) = self.lagging.take() {
            self.history.push((self.clock.now(), records, ttl));
        }
    }

    /// The server (re)loads the deploy target, unless it ignores reloads.
    fn reload(&mut self) {
        if self.deaf {
            return;
        }
        let chain = self.deploy_dir.join("fullchain.pem");
        let key = files::cert_facts(&chain).ok().flatten().map(|c| c.key);
        if key.is_some() && key != self.presented {
            self.presented = key;
            self.check_invariant("after a deploy");
        }
    }

    fn served_keys(&self) -> BTreeSet<String> {
        self.records.iter().map(|r| r.data_hex()).collect()
    }
}

type OtherWriter = Box<dyn FnOnce(&BTreeSet<TlsaRecord>) -> BTreeSet<TlsaRecord> + Send>;

type Shared = Arc<StdMutex<World>>;

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

struct Primary(Shared);

#[async_trait]
impl Provider for Primary {
    fn describe(&self) -> String {
        "the in-memory primary".into()
    }

    async fn zone_of(&self, _owner: &Name) -> Result<Name, DnsError> {
        Ok(Name::from_ascii(ZONE).unwrap())
    }

    async fn read(&self, _zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        let world = lock(&self.0);
        assert_eq!(id.rtype, RrType::Tlsa, "the roll engine reads TLSA RRsets");
        Ok(Rrset {
            owner: id.owner.clone(),
            rtype: id.rtype,
            ttl: (!world.records.is_empty()).then_some(world.ttl),
            records: rdata_of(world.records.iter().cloned()),
        })
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        let mut world = lock(&self.0);
        world.updates += 1;
        if world.fail_updates {
            return Err(DnsError::Config(
                "the primary refused the UPDATE (injected)".into(),
            ));
        }
        for change in &set.changes {
            if change.expected != rdata_of(world.records.iter().cloned()) {
                return Err(DnsError::Conflict {
                    server: SocketAddr::from(([192, 0, 2, 53], 53)),
                    owner: change.owner.clone(),
                    rtype: change.rtype,
                });
            }
        }
        for change in &set.changes {
            world.serve(tlsa_of(&change.desired), change.ttl);
        }
        Ok(Applied {
            serial: Some(world.serial),
        })
    }
}

/// The primary and the secondary, as a propagation wait asks them.
struct Servers2(Shared);

#[async_trait]
impl FindServers for Servers2 {
    async fn find(&self) -> Result<Box<dyn Observe>, DnsError> {
        Ok(Box::new(Servers2(self.0.clone())))
    }
}

#[async_trait]
impl Observe for Servers2 {
    async fn observe(&self, rrsets: &[RrsetId], _timeout: Duration) -> Observation {
        let mut world = lock(&self.0);
        world.clock.advance(Duration::from_millis(5));
        if let Some(write) = world.other_writer.take() {
            let records = write(&world.records);
            let ttl = world.ttl;
            world.serve(records, ttl);
        }
        let view = |n: u8, serial: u32, records: &BTreeSet<TlsaRecord>, ttl: u32| {
            let rrset = Rrset {
                owner: owner(),
                rtype: RrType::Tlsa,
                ttl: (!records.is_empty()).then_some(ttl),
                records: rdata_of(records.iter().cloned()),
            };
            let served = ServedRrset::signed(rrset, NEGATIVE_TTL);
            ServerObservation {
                server: ServerAddr {
                    origin: Origin::Extra,
                    addr: SocketAddr::from(([192, 0, 2, n], 53)),
                },
                result: Ok(crate::dns::observe::propagation::Served {
                    soa: Soa {
                        serial,
                        ttl: NEGATIVE_TTL,
                        minimum: NEGATIVE_TTL,
                    },
                    rrsets: rrsets.iter().map(|o| (o.clone(), served.clone())).collect(),
                }),
            }
        };
        let primary = view(1, world.serial, &world.records, world.ttl);
        let secondary = match &world.lagging {
            Some((serial, records, ttl)) => view(2, *serial, records, *ttl),
            None => view(2, world.serial, &world.records, world.ttl),
        };
        Observation {
            zone: Name::from_ascii(ZONE).unwrap(),
            servers: vec![primary, secondary],
            unresolved: Vec::new(),
        }
    }
}

/// Every answer Secure, with the primary's records.
struct Secure(Shared);

#[async_trait]
impl ValidateRrsets for Secure {
    async fn validate_all(&self, ids: &[RrsetId]) -> Vec<Validation> {
        let world = lock(&self.0);
        ids.iter()
            .map(|id| Validation {
                owner: id.owner.clone(),
                verdict: Verdict::Secure,
                reason: "validated (in-memory)".into(),
                answer: Some(if world.records.is_empty() {
                    AnswerKind::NoData
                } else {
                    AnswerKind::Positive
                }),
                rrset: Rrset {
                    owner: id.owner.clone(),
                    rtype: id.rtype,
                    ttl: Some(world.ttl),
                    records: rdata_of(world.records.iter().cloned()),
                },
                method: "in-memory".into(),
            })
            .collect()
    }
}

/// The mail server: presents what it last loaded from the deploy target.
struct MailServer(Shared);

#[async_trait]
impl Servers for MailServer {
    async fn presented(&self, _set: &CertSet, _kind: Option<KeyKind>) -> Vec<PresentedAt> {
        let mut world = lock(&self.0);
        world.reload();
        world.looks += 1;
        let stale = world
            .stale_backend
            .clone()
            .filter(|_| world.looks.is_multiple_of(2));
        stale
            .or_else(|| world.presented.clone())
            .iter()
            .map(|key| PresentedAt {
                address: "mail.example.test:25 at 192.0.2.25:25".into(),
                key: Ok(key.clone()),
            })
            .collect()
    }
}

struct Scene {
    world: Shared,
    engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path, ttl: u32) -> Config {
    config_with_source(
        dir,
        ttl,
        r#"{ self-signed = { names = ["mail.example.test"] } }"#,
    )
}

fn config_with_source(dir: &std::path::Path, ttl: u32, source: &str) -> Config {
    crate::config::testing::one_set_for_tests(dir, ttl, source)
}

impl Scene {
    fn new(ttl: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::default());
        let world = Arc::new(StdMutex::new(World::new(
            clock.clone(),
            dir.path().join("live"),
        )));
        let scene_config = config(dir.path(), ttl);
        let engine = Scene::engine(scene_config, clock, &world);
        Scene { world, engine, dir }
    }

    fn engine(config: Config, clock: Arc<ManualClock>, world: &Shared) -> Arc<Engine> {
        let parts = Parts {
            zones: vec![ZoneParts {
                name: Name::from_ascii(ZONE).unwrap(),
                provider: Box::new(Primary(world.clone())),
                servers: Box::new(Servers2(world.clone())),
            }],
            validator: Box::new(Secure(world.clone())),
            servers: Box::new(MailServer(world.clone())),
        };
        Arc::new(Engine::from_parts(config, clock, parts, Box::new(|_| {})))
    }

    /// A new engine with another TTL in the config, same world and state.
    fn reconfigure(&mut self, ttl: u32) {
        let clock = lock(&self.world).clock.clone();
        self.engine = Scene::engine(config(self.dir.path(), ttl), clock, &self.world);
    }

    /// One `tlsa run` (or `rollover`), as a process would do it.
    async fn run(&self, options: RunOptions) -> SetOutcome {
        // The tests of this binary run in parallel in one process: another
        // test forking a command at this instant gives its child a copy of
        // every open descriptor — the previous run's lock included — until
        // the child execs. A real run is a process of its own; here, wait
        // out that instant.
        let dir = self.dir.path().join("state");
        let mut tries = 0;
        let store = loop {
            match StateStore::open(&dir) {
                Err(crate::roll::state::StateError::Locked { .. }) if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let mut outcomes = self
            .engine
            .clone()
            .run(Arc::new(store), &options)
            .await
            .unwrap();
        outcomes.remove(0)
    }

    async fn run_wait(&self) -> SetOutcome {
        self.run(RunOptions {
            wait: true,
            ..RunOptions::default()
        })
        .await
    }

    async fn rollover_wait(&self) -> SetOutcome {
        self.run(RunOptions {
            wait: true,
            rollover: true,
            ..RunOptions::default()
        })
        .await
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.world)
    }

    fn presented(&self) -> String {
        self.world()
            .presented
            .clone()
            .expect("a key is presented")
            .id
    }

    fn assert_safe(&self) {
        let world = self.world();
        assert!(world.violations.is_empty(), "{:#?}", world.violations);
    }
}

fn ok(outcome: &SetOutcome) {
    assert!(outcome.failure.is_none(), "{outcome:?}");
    assert!(outcome.alarms.is_empty(), "{outcome:?}");
}

#[tokio::test]
async fn a_whole_roll_keeps_the_invariant_and_ends_with_live_and_next() {
    let scene = Scene::new(60);
    let adopted = scene.run_wait().await;
    ok(&adopted);
    let first = scene.presented();
    assert_eq!(scene.world().served_keys().len(), 2, "live and next");
    let rolled = scene.rollover_wait().await;
    ok(&rolled);
    let second = scene.presented();
    assert_ne!(first, second);
    let served = scene.world().served_keys();
    assert!(
        served.contains(&second) && !served.contains(&first),
        "{served:?}"
    );
    assert_eq!(served.len(), 2, "the new live key and a fresh next key");
    // Publish, retire + fresh next: one change each, nothing else.
    assert_eq!(scene.world().updates, 2, "{rolled:?}");
    let idle = scene.run(RunOptions::default()).await;
    assert!(idle.done.is_empty(), "a rerun does nothing: {idle:?}");
    scene.assert_safe();
}

#[tokio::test]
async fn a_roll_killed_between_any_two_steps_completes_safely_on_rerun() {
    // The uninterrupted roll, for its number of steps and end state.
    let reference = Scene::new(60);
    ok(&reference.run_wait().await);
    let steps = reference.rollover_wait().await.done.len();
    assert!(steps >= 4, "a roll takes several steps");
    for kill_after in 1..steps {
        let scene = Scene::new(60);
        ok(&scene.run_wait().await);
        let first = scene.presented();
        let killed = scene
            .run(RunOptions {
                wait: true,
                rollover: true,
                stop_after_steps: Some(kill_after),
                ..RunOptions::default()
            })
            .await;
        assert_eq!(killed.done.len(), kill_after);
        // The timer's next runs pick up where the state and DNS say.
        ok(&scene.run_wait().await);
        let served = scene.world().served_keys();
        assert!(
            !served.contains(&first),
            "killed after {kill_after}: {served:?}"
        );
        assert_eq!(served.len(), 2, "killed after {kill_after}: {served:?}");
        assert!(served.contains(&scene.presented()));
        scene.assert_safe();
    }
}

#[tokio::test]
async fn a_lagging_secondary_holds_the_roll_and_nothing_goes_live_early() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    {
        let mut world = scene.world();
        let copy = (world.serial, world.records.clone(), world.ttl);
        world.lagging = Some(copy);
    }
    // The pre-published next key was safe long ago: it goes live, and the
    // retire (old key out, a fresh next key in) cannot be confirmed.
    let stuck = scene.rollover_wait().await;
    let failure = stuck.failure.expect("propagation cannot complete");
    assert_eq!(failure.kind, FailureKind::NotPropagated, "{failure:?}");
    assert!(
        failure.message.contains("192.0.2.2:53"),
        "{}",
        failure.message
    );
    let second = scene.presented();
    // Rolling on to the fresh next key, which the secondary never served,
    // must wait: nothing changes while it lags.
    let held = scene.rollover_wait().await;
    assert!(held.failure.is_some(), "{held:?}");
    assert_eq!(scene.presented(), second, "not deployed while unconfirmed");
    scene.world().catch_up();
    ok(&scene.rollover_wait().await);
    assert_ne!(scene.presented(), second);
    scene.assert_safe();
}

#[tokio::test]
async fn a_lowered_ttl_makes_keys_published_after_it_wait_for_the_old_one() {
    let mut scene = Scene::new(3600);
    ok(&scene.run_wait().await);
    scene.reconfigure(60);
    ok(&scene.run(RunOptions::default()).await);
    assert_eq!(scene.world().ttl, 60);
    let lowered_at = scene.world().clock.now();
    // The first roll goes to the next key published long before (safe);
    // its retire publishes a fresh next key after the lowering, which a
    // cache may be missing for the old TTL.
    ok(&scene.rollover_wait().await);
    ok(&scene.rollover_wait().await);
    let waited = scene
        .world()
        .clock
        .now()
        .duration_since(lowered_at)
        .unwrap();
    assert!(
        waited >= Duration::from_secs(3600),
        "the fresh key went live {waited:?} after the TTL was lowered from 3600 s"
    );
    scene.assert_safe();
}

#[tokio::test]
async fn a_failed_update_removes_nothing_and_the_roll_resumes() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    let first = scene.presented();
    // The roll gets to its retire, which the primary refuses.
    let until_retire = scene
        .run(RunOptions {
            wait: true,
            rollover: true,
            stop_after_steps: Some(3),
            ..RunOptions::default()
        })
        .await;
    assert!(
        until_retire.done.iter().any(|s| s.starts_with("verify")),
        "{until_retire:?}"
    );
    scene.world().fail_updates = true;
    let refused = scene.run_wait().await;
    assert!(refused.failure.is_some(), "{refused:?}");
    assert!(
        scene.world().served_keys().contains(&first),
        "nothing removed"
    );
    scene.world().fail_updates = false;
    ok(&scene.run_wait().await);
    assert!(!scene.world().served_keys().contains(&first));
    scene.assert_safe();
}

#[tokio::test]
async fn a_server_that_ignores_reloads_keeps_its_key_published_and_alarms() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    let first = scene.presented();
    scene.world().deaf = true;
    let rolled = scene.rollover_wait().await;
    let failure = rolled.failure.expect("the deploy did not take effect");
    assert!(failure.message.starts_with("ALARM"), "{}", failure.message);
    assert!(scene.world().served_keys().contains(&first));
    for _ in 0..2 {
        assert!(scene.run_wait().await.failure.is_some());
        assert!(
            scene.world().served_keys().contains(&first),
            "nothing removed"
        );
    }
    scene.world().deaf = false;
    ok(&scene.run_wait().await);
    assert!(!scene.world().served_keys().contains(&first));
    scene.assert_safe();
}

#[tokio::test]
async fn a_pool_with_one_backend_not_reloaded_is_never_verified() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    let first = scene.world().presented.clone().unwrap();
    scene.world().stale_backend = Some(first.clone());
    for _ in 0..3 {
        let rolled = scene.rollover_wait().await;
        let failure = rolled.failure.expect("a mixed pool is not verified");
        assert!(failure.message.starts_with("ALARM"), "{}", failure.message);
        assert!(
            scene.world().served_keys().contains(&first.id),
            "the key the stale backend presents keeps its record"
        );
    }
    // The backend is reloaded: the roll completes.
    scene.world().stale_backend = None;
    ok(&scene.run_wait().await);
    assert!(!scene.world().served_keys().contains(&first.id));
    scene.assert_safe();
}

/// A record of another writer's, not any key of the set's.
fn foreign_record(byte: u8) -> TlsaRecord {
    TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, &[byte; 32])
}

#[tokio::test]
async fn another_writer_during_a_propagation_wait_neither_stalls_it_nor_is_lost() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    let first = scene.presented();
    let theirs = foreign_record(1);
    // It adds a record while the roll's first wait looks: the servers will
    // never serve the RRset read before the wait again.
    let added = theirs.clone();
    scene.world().other_writer = Some(Box::new(move |records| {
        records.iter().cloned().chain([added]).collect()
    }));
    let rolled = scene.rollover_wait().await;
    ok(&rolled);
    assert!(scene.world().other_writer.is_none(), "the writer wrote");
    assert_ne!(scene.presented(), first, "the roll completed");
    {
        let world = scene.world();
        assert!(world.records.contains(&theirs), "their record is kept");
        assert!(!world.served_keys().contains(&first), "the old key retired");
    }
    // And it removes that record again during the next roll's wait.
    let removed = theirs.clone();
    scene.world().other_writer = Some(Box::new(move |records| {
        records.iter().filter(|r| **r != removed).cloned().collect()
    }));
    ok(&scene.rollover_wait().await);
    assert!(!scene.world().records.contains(&theirs));
    assert_eq!(scene.world().served_keys().len(), 2, "live and next");
    scene.assert_safe();
}

#[tokio::test]
async fn a_record_of_the_set_removed_by_another_writer_during_the_wait_is_not_confirmed() {
    let scene = Scene::new(60);
    ok(&scene.run_wait().await);
    let first = scene.presented();
    // The roll deploys the next key (long safe) and stops before its
    // retire, which adds a fresh next key; another writer deletes that
    // record while the wait looks.
    let retired = scene
        .run(RunOptions {
            rollover: true,
            wait: true,
            stop_after_steps: Some(3),
            ..RunOptions::default()
        })
        .await;
    assert!(retired.failure.is_none(), "{retired:?}");
    let live = scene.presented();
    assert_ne!(live, first);
    let kept = live.clone();
    scene.world().other_writer = Some(Box::new(move |records| {
        records
            .iter()
            .filter(|r| r.data_hex() == kept)
            .cloned()
            .collect()
    }));
    let outcome = scene.run(RunOptions::default()).await;
    // The fresh key is not counted as propagated: the wait for the set's
    // records the primary held when it began cannot complete.
    let failure = outcome.failure.expect("not propagated");
    assert_eq!(failure.kind, FailureKind::NotPropagated, "{failure:?}");
    assert!(scene.world().served_keys().contains(&live));
    // The next run puts the record back, and the roll goes on from there.
    ok(&scene.run_wait().await);
    assert_eq!(scene.world().served_keys().len(), 2, "live and next");
    ok(&scene.rollover_wait().await);
    assert_ne!(scene.presented(), live);
    scene.assert_safe();
}

#[tokio::test]
async fn the_expiry_alarm_says_a_renewal_waits_for_its_records_not_that_none_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let world = Arc::new(StdMutex::new(World::new(
        clock.clone(),
        dir.path().join("live"),
    )));
    let source = r#"{ acme = { directory = "https://ca.example.test/dir", names = ["mail.example.test"] } }"#;
    let config = config_with_source(dir.path(), 60, source);
    let engine = Scene::engine(config, clock.clone(), &world);
    let set = &engine.config.sets[0];
    // A live certificate 10 days old with one day left: inside its alarm window.
    let now = time::OffsetDateTime::from(clock.now());
    let mut params = rcgen::CertificateParams::new(vec!["mail.example.test".to_string()]).unwrap();
    params.not_before = now - time::Duration::days(10);
    params.not_after = now + time::Duration::days(1);
    let pair = rcgen::KeyPair::generate().unwrap();
    let live = params.self_signed(&pair).unwrap().pem();
    let deploy = files::deploy_files(set);
    std::fs::create_dir_all(deploy.chain.parent().unwrap()).unwrap();
    std::fs::write(&deploy.chain, live).unwrap();

    let mut entry = SetState::default();
    let nothing = engine
        .expiry_alarm(set, &entry)
        .expect("inside the alarm window");
    assert!(
        nothing.contains("no renewal has succeeded yet"),
        "{nothing}"
    );
    // The renewal was ordered for the next key, whose records become safe in an hour.
    let next = KeyMaterial::from_spki(&[7; 32]);
    safety::note_published(
        &mut entry,
        std::slice::from_ref(&next),
        safety::Before::default(),
        engine.now(),
    );
    entry.keys.get_mut(&next.id).unwrap().safe_at = Some(engine.now() + Duration::from_secs(3600));
    entry.rollover_to = Some(next.id.clone());
    let waiting = engine.expiry_alarm(set, &entry).unwrap();
    assert!(
        waiting.contains("waits until its records are safe") && !waiting.contains("no renewal"),
        "{waiting}"
    );
}
