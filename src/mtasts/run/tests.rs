//! The executor driven through whole changes against a simulated world: a
//! web server whose addresses serve what the webroot holds (unless one
//! lags), authoritative servers holding what the fake back-end published,
//! and a manual clock. Each test checks the RFC 8461 order at the instant
//! of every DNS change.

use std::sync::{Arc, Mutex};

use super::*;
use crate::clock::ManualClock;
use crate::mtasts::dns::StsDnsError;
use crate::mtasts::policy::{self, Mode};

const ADDRS: [&str; 2] = ["192.0.2.1:443", "192.0.2.2:443"];

struct Sim {
    clock: Arc<ManualClock>,
    webroot: PathBuf,
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    /// What each address serves; an address in `lagging` never picks up
    /// the webroot.
    served: Vec<Option<String>>,
    lagging: Vec<usize>,
    txt: Option<String>,
    mx: Vec<String>,
    /// Every DNS change, with the bodies served at that instant.
    log: Vec<(String, SystemTime, Vec<Option<String>>)>,
}

impl Sim {
    fn new(mx: &[&str]) -> (Arc<Sim>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim {
            clock: Arc::new(ManualClock::default()),
            webroot: dir.path().to_path_buf(),
            state: Mutex::new(SimState {
                served: vec![None; ADDRS.len()],
                mx: mx.iter().map(|s| s.to_string()).collect(),
                ..SimState::default()
            }),
        };
        (Arc::new(sim), dir)
    }

    fn reload_marker(&self) -> PathBuf {
        self.webroot.join("reloaded")
    }

    fn log(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .map(|(what, _, _)| what.clone())
            .collect()
    }

    fn change(&self, what: String) {
        let mut s = self.state.lock().unwrap();
        let served = s.served.clone();
        s.log.push((what, self.clock.now(), served));
    }
}

#[async_trait]
impl ObserveSts for Sim {
    async fn observe(&self) -> Result<Observed, String> {
        let written = execute::written(std::slice::from_ref(&self.webroot));
        let mut s = self.state.lock().unwrap();
        // The web server picks up the file when reloaded (the reload command
        // leaves a marker), except on a lagging address.
        if std::fs::remove_file(self.reload_marker()).is_ok() {
            for i in 0..ADDRS.len() {
                if !s.lagging.contains(&i) {
                    s.served[i] = written.clone();
                }
            }
        }
        let served = ADDRS
            .iter()
            .zip(&s.served)
            .map(|(a, b)| (a.parse().unwrap(), b.clone()))
            .collect();
        Ok(Observed {
            world: World {
                now: self.clock.now(),
                written,
                served,
                txt: vec![s.txt.iter().cloned().collect(); 2],
                txt_ttl: 60,
                mx: s.mx.clone(),
                mx_ttl: 30,
                webpki_failures: Vec::new(),
                reports: None,
            },
            fetch_failures: vec![(ADDRS[1].parse().unwrap(), "HTTP 404".into())],
        })
    }
}

#[async_trait]
impl PublishSts for Sim {
    async fn publish_txt(&self, _: &str, id: &str) -> Result<(), StsDnsError> {
        self.change(format!("txt {id}"));
        self.state.lock().unwrap().txt = Some(id.to_string());
        Ok(())
    }
    async fn remove_txt(&self, _: &str) -> Result<(), StsDnsError> {
        self.change("remove txt".into());
        self.state.lock().unwrap().txt = None;
        Ok(())
    }
    async fn add_mx(&self, _: &str, host: &str) -> Result<(), StsDnsError> {
        self.change(format!("add mx {host}"));
        self.state.lock().unwrap().mx.push(host.to_string());
        Ok(())
    }
    async fn remove_mx(&self, _: &str, host: &str) -> Result<(), StsDnsError> {
        self.change(format!("remove mx {host}"));
        self.state.lock().unwrap().mx.retain(|m| m != host);
        Ok(())
    }
}

fn settings(mx: &[&str], manage_mx: bool) -> Settings {
    Settings {
        mode: Mode::Testing,
        max_age: 100,
        patterns: Some(mx.iter().map(|s| s.to_string()).collect()),
        manage_mx,
        trust_id_refresh: false,
        enforce_after: Duration::from_secs(1000),
        leave: false,
    }
}

async fn run(sim: &Arc<Sim>, settings: &Settings, wait: bool) -> Result<Outcome, String> {
    let roots = [sim.webroot.clone()];
    let history = sim.webroot.join("state/example.com.json");
    let reload = [
        "touch".to_string(),
        sim.reload_marker().display().to_string(),
    ];
    Executor {
        settings,
        local: Local {
            domain: "example.com",
            webroots: &roots,
            reload: &reload,
            hidden_env: &[],
        },
        observer: sim.as_ref(),
        dns: sim.as_ref(),
        clock: sim.clock.as_ref(),
        history: &history,
        wait,
        confirm_timeout: Duration::from_secs(5),
        progress: &|_| {},
    }
    .run()
    .await
}

/// Every TXT change happened while every address served the policy it names.
fn assert_id_after_file(sim: &Sim) {
    for (what, _, served) in &sim.state.lock().unwrap().log {
        let Some(id) = what.strip_prefix("txt ") else {
            continue;
        };
        for body in served {
            let served_id = body
                .as_deref()
                .and_then(|b| policy::parse(b).ok())
                .map(|p| p.policy.id());
            assert_eq!(
                served_id.as_deref(),
                Some(id),
                "{what} while serving {body:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_new_policy_is_served_everywhere_before_its_id_and_a_rerun_does_nothing() {
    let (sim, _dir) = Sim::new(&["mail.example.com"]);
    let settings = settings(&["mail.example.com"], false);
    let outcome = run(&sim, &settings, false).await.unwrap();
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(outcome.performed.len(), 3, "{:?}", outcome.performed);
    assert!(outcome.performed[0].starts_with("write the policy file"));
    assert!(outcome.performed[1].starts_with("reload"));
    assert_eq!(sim.log(), vec![format!("txt {}", outcome.target_id)]);
    assert_id_after_file(&sim);

    let again = run(&sim, &settings, false).await.unwrap();
    assert!(again.performed.is_empty(), "{again:?}");
    assert_eq!(sim.log().len(), 1);
}

#[tokio::test]
async fn an_address_that_keeps_the_old_file_holds_the_id_and_the_next_run_reloads_again() {
    let (sim, dir) = Sim::new(&["mail.example.com"]);
    run(&sim, &settings(&["mail.example.com"], false), false)
        .await
        .unwrap();
    sim.state.lock().unwrap().lagging = vec![1];
    let changed = settings(&["mail.example.com", "mx2.example.com"], false);
    let err = run(&sim, &changed, false).await.unwrap_err();
    assert!(err.contains("192.0.2.2:443: HTTP 404"), "{err}");
    assert!(err.contains("TXT id was not changed"), "{err}");
    assert_eq!(sim.log().len(), 1, "no second TXT change: {:?}", sim.log());
    let history = load_history(&dir.path().join("state/example.com.json")).unwrap();
    assert_eq!(history.reloaded_for, None, "the next run reloads again");

    sim.state.lock().unwrap().lagging.clear();
    let outcome = run(&sim, &changed, false).await.unwrap();
    assert!(outcome.performed[0].starts_with("reload"), "{outcome:?}");
    assert_eq!(sim.log().len(), 2);
    assert_id_after_file(&sim);
}

#[tokio::test]
async fn an_mx_host_enters_the_rrset_only_once_every_older_policy_expired() {
    let (sim, _dir) = Sim::new(&["a.example.com"]);
    run(&sim, &settings(&["a.example.com"], true), false)
        .await
        .unwrap();
    let first_served = sim.clock.now();
    sim.clock.advance(Duration::from_secs(10));
    let both = settings(&["a.example.com", "b.example.com"], true);
    let outcome = run(&sim, &both, false).await.unwrap();
    assert!(!outcome.is_complete());
    assert!(
        outcome
            .pending
            .iter()
            .any(|p| p.contains("add MX b.example.com")),
        "{outcome:?}"
    );
    // The a-only policy was served until this run replaced it: + max_age.
    let due = outcome.next_due.unwrap();
    assert!(due >= first_served + Duration::from_secs(110), "{due:?}");
    assert!(!sim.log().iter().any(|l| l.starts_with("add mx")));

    // With --wait the same run sleeps until then and adds it.
    let outcome = run(&sim, &both, true).await.unwrap();
    assert!(outcome.is_complete(), "{outcome:?}");
    let log = sim.state.lock().unwrap().log.clone();
    let (_, at, _) = log
        .iter()
        .find(|(w, _, _)| w == "add mx b.example.com")
        .unwrap();
    assert!(*at >= due, "added at {at:?}, due {due:?}");
    assert_id_after_file(&sim);
}

#[tokio::test]
async fn an_mx_host_leaves_the_rrset_first_and_the_policy_one_ttl_later() {
    let (sim, _dir) = Sim::new(&["a.example.com", "b.example.com"]);
    run(
        &sim,
        &settings(&["a.example.com", "b.example.com"], true),
        false,
    )
    .await
    .unwrap();
    let only_a = settings(&["a.example.com"], true);
    let outcome = run(&sim, &only_a, false).await.unwrap();
    assert_eq!(sim.log()[1], "remove mx b.example.com");
    assert!(
        outcome
            .pending
            .iter()
            .any(|p| p.contains("b.example.com leaves the policy")),
        "{outcome:?}"
    );
    let before = sim.log().len();
    let outcome = run(&sim, &only_a, true).await.unwrap();
    assert!(outcome.is_complete(), "{outcome:?}");
    let log = sim.log();
    assert_eq!(log.len(), before + 1, "{log:?}");
    assert!(log.last().unwrap().starts_with("txt "));
    assert_id_after_file(&sim);
}

#[tokio::test]
async fn a_corrupt_history_is_an_error_naming_the_file() {
    let (sim, dir) = Sim::new(&["a.example.com"]);
    let file = dir.path().join("state/example.com.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{not json").unwrap();
    let err = run(&sim, &settings(&["a.example.com"], false), false)
        .await
        .unwrap_err();
    assert!(err.contains("example.com.json"), "{err}");
    assert!(sim.log().is_empty());
}
