//! The `[[mta_sts]]` policies of a config, run: each domain's [`Executor`]
//! wired to the engine's zone back-ends, server discovery, validator and
//! clock (the same ones the TLSA roll uses), with the live observer.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::config::{MtaSts, MxSource};
use super::dns::{StsDns, txt_id};
use super::execute::Local;
use super::fetch::FetchOptions;
use super::observe::LiveObserver;
use super::plan::Settings;
use super::report_gate;
use super::run::{Executor, Outcome, Preview, history_file};
use crate::config::{Config, with_default_port};
use crate::live::resolve::{Dns, ValidatingDns};
use crate::live::webpki;
use crate::roll::executor::Engine;

/// One domain's run.
#[derive(Debug)]
pub struct DomainRun {
    pub domain: String,
    pub result: Result<Outcome, String>,
}

/// What the planner is told the operator wants.
pub fn settings(policy: &MtaSts) -> Settings {
    Settings {
        mode: policy.mode,
        max_age: *policy.max_age.get_ref(),
        patterns: match policy.mx.get_ref() {
            MxSource::Dns => None,
            MxSource::Patterns(p) => Some(p.clone()),
        },
        manage_mx: policy.manage_mx,
        trust_id_refresh: policy.trust_id_refresh,
        enforce_after: Duration::from_secs(policy.enforce_after),
        leave: policy.leave,
    }
}

/// One domain's preview (`tlsa plan`).
#[derive(Debug)]
pub struct DomainPreview {
    pub domain: String,
    pub result: Result<Preview, String>,
}

/// What the executor is asked to do.
#[derive(Debug, Clone, Copy)]
enum Action {
    Run { wait: bool },
    Preview,
}

enum Done {
    Ran(Outcome),
    Previewed(Preview),
}

/// Runs every `[[mta_sts]]` of the engine's config, one after the other.
pub async fn run_all(engine: &Engine, wait: bool, timeout: Duration) -> Vec<DomainRun> {
    each_domain(engine, Action::Run { wait }, timeout)
        .await
        .into_iter()
        .map(|(domain, result)| DomainRun {
            domain,
            result: result.map(|done| match done {
                Done::Ran(outcome) => outcome,
                Done::Previewed(preview) => preview.outcome,
            }),
        })
        .collect()
}

/// Observes every `[[mta_sts]]` domain once and plans, changing nothing.
pub async fn preview_all(engine: &Engine) -> Vec<DomainPreview> {
    let timeout = engine.configured_propagation_timeout();
    each_domain(engine, Action::Preview, timeout)
        .await
        .into_iter()
        .map(|(domain, result)| DomainPreview {
            domain,
            result: result.map(|done| match done {
                Done::Previewed(preview) => preview,
                Done::Ran(outcome) => Preview {
                    outcome,
                    ..Preview::default()
                },
            }),
        })
        .collect()
}

async fn each_domain(
    engine: &Engine,
    action: Action,
    timeout: Duration,
) -> Vec<(String, Result<Done, String>)> {
    let config = engine.config();
    if config.mta_sts.is_empty() {
        return Vec::new();
    }
    let dns: Arc<dyn Dns> =
        match ValidatingDns::new(config.dnssec.resolver, &config.dnssec.trust()).await {
            Ok(dns) => Arc::new(dns),
            Err(e) => {
                return config
                    .mta_sts
                    .iter()
                    .map(|p| {
                        let why = format!("cannot set up DNSSEC validation: {e}");
                        (p.domain.get_ref().clone(), Err(why))
                    })
                    .collect();
            }
        };
    let mut runs = Vec::new();
    for policy in &config.mta_sts {
        let domain = super::matching::normalise(policy.domain.get_ref());
        let result = run_one(
            engine,
            config,
            policy,
            &domain,
            dns.clone(),
            action,
            timeout,
        )
        .await;
        runs.push((domain, result));
    }
    runs
}

async fn run_one(
    engine: &Engine,
    config: &Config,
    policy: &MtaSts,
    domain: &str,
    dns: Arc<dyn Dns>,
    action: Action,
    timeout: Duration,
) -> Result<Done, String> {
    let owner: Name = txt_id(domain).map_err(|e| e.to_string())?.owner;
    let publication = engine
        .publication_for(&owner, timeout)
        .map_err(|e| e.to_string())?;
    let roots = webpki::load_roots(policy.ca_file.as_deref())
        .map_err(|e| format!("mta_sts {domain:?}: ca_file: {e}"))?;
    let policy_addresses = match policy.policy_addresses.as_slice() {
        [] => None,
        given => Some(
            given
                .iter()
                .filter_map(|a| with_default_port(a, policy.policy_port))
                .collect(),
        ),
    };
    let settings = settings(policy);
    let observer = LiveObserver {
        domain: domain.to_string(),
        webroots: &policy.webroots,
        dns,
        servers: publication.servers,
        validator: publication.validator,
        clock: publication.clock,
        fetch: FetchOptions {
            roots,
            timeout: Duration::from_secs_f64(policy.fetch_timeout),
        },
        policy_port: policy.policy_port,
        policy_addresses,
        mx_port: policy.mx_port,
        wanted_mx: match (&settings.patterns, policy.manage_mx) {
            (Some(hosts), true) => hosts.clone(),
            _ => Vec::new(),
        },
        default_ttl: policy.ttl,
        reports: policy.enforce_clean_reports.then(|| {
            let store = match &config.tlsrpt {
                Some(tlsrpt) => tlsrpt.store_path(&config.state_dir),
                None => config.state_dir.join(crate::tlsrpt::store::DEFAULT_FILE),
            };
            // The clean period and the day before it (reports are grouped by day).
            let back = Duration::from_secs(policy.enforce_after) + 2 * report_gate::DAY;
            (store, back)
        }),
    };
    let clock = publication.clock;
    let progress = publication.progress;
    let sts_dns = StsDns {
        publication,
        ttl: policy.ttl,
    };
    let hidden_env = config.secret_env_names();
    let history = history_file(&config.state_dir, domain);
    let executor = Executor {
        settings: &settings,
        local: Local {
            domain,
            webroots: &policy.webroots,
            reload: &policy.reload,
            hidden_env: &hidden_env,
        },
        observer: &observer,
        dns: &sts_dns,
        clock,
        history: &history,
        wait: matches!(action, Action::Run { wait: true }),
        confirm_timeout: timeout,
        progress,
    };
    match action {
        Action::Run { .. } => executor.run().await.map(Done::Ran),
        Action::Preview => executor.preview().await.map(Done::Previewed),
    }
}
