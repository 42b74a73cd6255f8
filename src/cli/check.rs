//! `tlsa check`: live verification of an endpoint (or of a domain's MX
//! hosts) against its validated TLSA RRset, as a monitoring plugin.
//!
//! Exit codes follow the Nagios plugin convention and take precedence over
//! the CLI's usual ones: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Bad input to
//! `check` (an invalid host, an unreadable anchor file, a bad option) is
//! UNKNOWN (3), not the exit 2 other commands use, so a monitoring system
//! never mistakes a typo in its configuration for a broken server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::Failure;
use super::check_text::{print_sts, print_text};
use crate::config::{CertSet, Config};
use crate::dns::observe::dnssec::Anchors;
use crate::dns::observe::resolver_probe::{self, ResolverDnssec};
use crate::live::capture::{ConnectOptions, default_helo};
use crate::live::check::{self, CheckOptions, Target};
use crate::live::endpoint::{Endpoint, Protocol};
use crate::live::report::{Finding, Report};
use crate::live::resolve::{self, Trust, ValidatingDns};
use crate::live::verdict::Status;
use crate::live::webpki;
use crate::mtasts;
use crate::mtasts::check::StsOptions;
use crate::mtasts::check::StsReport;
use crate::mtasts::fetch::FetchOptions;
use crate::tlsrpt::feedback;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes (Nagios plugin convention): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
bad input to `check` is UNKNOWN (3).

Examples:
  tlsa check mail.example.com
  tlsa check --mx example.com --json
  tlsa check imap.example.com --port 993
  tlsa check mail.example.com --port 25 --address 192.0.2.1:25 --address [2001:db8::1]:25
  tlsa check mail.example.com --resolver 127.0.0.1 --trust-ad
  tlsa check -c /etc/tlsa/tlsa.toml"
)]
pub struct CheckArgs {
    /// Host name of the endpoint (TLSA owner _PORT._tcp.HOST).
    #[arg(value_name = "HOST", conflicts_with = "mx")]
    pub host: Option<String>,

    /// Check every endpoint of every certificate set in this tlsa config,
    /// with its resolver and trust anchor (unless given here) and the
    /// addresses it pins. Without HOST, --mx or -c: $TLSA_CONFIG, else
    /// /etc/tlsa/tlsa.toml.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with_all = ["host", "mx", "addresses"]
    )]
    pub config: Option<PathBuf>,

    /// With a config (-c or the default one): only this certificate set
    /// (repeatable).
    #[arg(long = "set", value_name = "SET", conflicts_with_all = ["host", "mx"])]
    pub sets: Vec<String>,

    /// Service port; also selects the TLSA owner name [default: 25].
    #[arg(short, long)]
    pub port: Option<u16>,

    /// How TLS starts: smtp, lmtp, imap, pop3, or none (implicit TLS)
    /// [default: by port: 25/587 smtp, 143 imap, 110 pop3, 465/993/995/443 none].
    #[arg(long, value_name = "PROTOCOL")]
    pub starttls: Option<Protocol>,

    /// Check every MX host of DOMAIN, as a sending MTA would find them.
    #[arg(long, value_name = "DOMAIN")]
    pub mx: Option<String>,

    /// Recursive resolver for all lookups [default: first nameserver in /etc/resolv.conf].
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub resolver: Option<String>,

    /// Validate from these trust anchors (DNSKEY/DS lines) instead of the root KSKs.
    #[arg(long, value_name = "FILE", conflicts_with = "trust_ad")]
    pub anchor: Option<PathBuf>,

    /// Trust the resolver's AD bit instead of validating here (only for a
    /// validating resolver on this host or a protected link).
    #[arg(long)]
    pub trust_ad: bool,

    /// Connect to these addresses instead of the host's A/AAAA records
    /// (repeatable; `192.0.2.1:25`, `[2001:db8::1]:25`, or an address alone
    /// for --port). The TLSA owner still uses --port.
    #[arg(long = "address", value_name = "ADDR:PORT", conflicts_with = "mx")]
    pub addresses: Vec<String>,

    /// Limit per address for connect, STARTTLS and TLS handshake, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub timeout: f64,

    /// Warn when a presented certificate expires within N days.
    #[arg(long, value_name = "N", default_value_t = check::DEFAULT_EXPIRY_DAYS)]
    pub expiry_days: u32,

    /// Name to send in EHLO/LHLO [default: this machine's host name].
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,

    /// Print the report as JSON (schema `tlsa-check/1`).
    #[arg(long)]
    pub json: bool,

    /// With --mx: a PEM file of CA certificates trusted for the MTA-STS
    /// WebPKI checks (policy host and MX certificates) beside the system's
    /// roots, e.g. a private or test CA.
    #[arg(long, value_name = "FILE", requires = "mx")]
    pub ca_file: Option<PathBuf>,

    /// With --mx: port of the policy host's addresses [default: 443].
    #[arg(long, value_name = "PORT", requires = "mx")]
    pub sts_port: Option<u16>,

    /// With --mx: fetch the MTA-STS policy from these addresses instead of
    /// the A/AAAA records of mta-sts.DOMAIN (repeatable; `192.0.2.1:443`,
    /// or an address alone for --sts-port).
    #[arg(long = "sts-address", value_name = "ADDR[:PORT]", requires = "mx")]
    pub sts_addresses: Vec<String>,

    /// With --mx: limit for each whole policy fetch (connect, TLS, request,
    /// body), in seconds; 4 is the shortest a known sender allows.
    #[arg(long, value_name = "SECONDS", default_value_t = 4.0)]
    pub sts_timeout: f64,
}

pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let report = match checked(args) {
        Ok(report) => report,
        Err(why) => return Err(unknown(args, why, out)),
    };
    let (report, sts) = report;
    let written = if args.json {
        let doc = Document {
            report: &report,
            mta_sts: sts.as_ref(),
        };
        serde_json::to_writer_pretty(&mut *out, &doc)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        print_text(&report, out).and_then(|()| match &sts {
            Some(sts) => print_sts(sts, out),
            None => Ok(()),
        })
    };
    written.map_err(|e| Failure::Monitoring {
        code: Status::Unknown.exit_code(),
        messages: vec![format!("cannot write output: {e}")],
    })?;
    match report.status {
        Status::Ok => Ok(()),
        status => Err(Failure::Monitoring {
            code: status.exit_code(),
            messages: Vec::new(),
        }),
    }
}

/// The `--json` document: the DANE report, and with --mx the MTA-STS one.
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    mta_sts: Option<&'a StsReport>,
}

/// Runs the check; `Err` is a reason the check could not run (UNKNOWN).
fn checked(args: &CheckArgs) -> Result<(Report, Option<StsReport>), String> {
    let (targets, mut options, resolver, trust, config) = prepare(args)?;
    let sts = sts_setup(args, &targets)?;
    if let Some(Ok(sts)) = &sts {
        options.webpki = Some(sts.options.fetch.roots.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let dns = Arc::new(
            ValidatingDns::new(resolver, &trust)
                .await
                .map_err(|e| e.to_string())?,
        );
        let mut report = check::check(&targets, dns.clone(), &options).await;
        // A resolver that drops RRSIGs makes every zone look bogus: ask it
        // for the anchor zone's DNSKEY (known to be signed) before blaming one.
        if report.has_dnssec_failure() {
            let zone = match &trust {
                Trust::Anchored(anchors) => resolver_probe::anchor_zone(anchors),
                Trust::ResolverAd => hickory_proto::rr::Name::root(),
            };
            if let Ok(ResolverDnssec::StripsSignatures) =
                resolver_probe::probe(resolver, &zone).await
            {
                report.distrust_resolver(resolver_probe::strips_advice(resolver, &zone));
            }
        }
        if let Some(config) = &config {
            label_with_sets(&mut report, config, &args.sets);
            report.add_findings(tls_report_findings(config, &args.sets));
        }
        let sts = match sts {
            None => None,
            Some(Err(why)) => {
                report.add_findings(vec![Finding {
                    status: Status::Unknown,
                    message: format!("MTA-STS not checked: {why}"),
                }]);
                None
            }
            Some(Ok(sts)) => {
                let sts =
                    mtasts::check::check(&sts.domain, dns.as_ref(), &report, &sts.options).await;
                report.add_findings(sts.findings.clone());
                Some(sts)
            }
        };
        Ok((report, sts))
    })
}

/// What the MTA-STS part of `--mx` needs.
struct StsSetup {
    domain: String,
    options: StsOptions,
}

/// `None` without --mx; `Some(Err)` when the WebPKI roots cannot be loaded
/// (then the MTA-STS part is UNKNOWN, the DANE part still runs).
fn sts_setup(
    args: &CheckArgs,
    targets: &[Target],
) -> Result<Option<Result<StsSetup, String>>, String> {
    let Some(domain) = targets.iter().find_map(|t| match t {
        Target::Mx { domain, .. } => Some(domain.clone()),
        Target::Endpoint { .. } => None,
    }) else {
        return Ok(None);
    };
    if !(args.sts_timeout.is_finite() && args.sts_timeout > 0.0 && args.sts_timeout <= 3600.0) {
        return Err(format!(
            "--sts-timeout {} is not a number of seconds between 0 and 3600",
            args.sts_timeout
        ));
    }
    let port = args.sts_port.unwrap_or(mtasts::fetch::HTTPS_PORT);
    let addresses = if args.sts_addresses.is_empty() {
        None
    } else {
        Some(
            args.sts_addresses
                .iter()
                .map(|a| {
                    crate::config::with_default_port(a, port).ok_or_else(|| {
                        format!("--sts-address {a:?} is not an IP address with an optional port (192.0.2.1:443, [2001:db8::1]:443)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let roots = match webpki::load_roots(args.ca_file.as_deref()) {
        Ok(roots) => roots,
        // A CA file named on the command line that cannot be used is bad input.
        Err(why) if args.ca_file.is_some() => return Err(format!("--ca-file: {why}")),
        Err(why) => return Ok(Some(Err(why))),
    };
    Ok(Some(Ok(StsSetup {
        domain,
        options: StsOptions {
            fetch: FetchOptions {
                roots,
                timeout: Duration::from_secs_f64(args.sts_timeout),
            },
            port,
            addresses,
        },
    })))
}

/// Names, on each endpoint of the report, the sets of the config it serves.
fn label_with_sets(report: &mut Report, config: &Config, only: &[String]) {
    for endpoint in &mut report.endpoints {
        endpoint.sets = selected_sets(config, only)
            .filter(|set| {
                set.endpoints.iter().any(|e| {
                    e.port == endpoint.port
                        && e.host
                            .trim_end_matches('.')
                            .eq_ignore_ascii_case(&endpoint.host)
                })
            })
            .map(|set| set.name.get_ref().clone())
            .collect();
    }
}

/// What the stored TLS-RPT reports say about the selected sets' MX hosts
/// since their last roll steps (`tlsrpt::feedback`): DANE failures after the
/// last deploy CRITICAL, other failures beyond `[tlsrpt] warn_failures`
/// WARNING. Nothing without a report store.
fn tls_report_findings(config: &Config, only: &[String]) -> Vec<Finding> {
    let unknown = |why: String| {
        vec![Finding {
            status: Status::Unknown,
            message: format!("TLS-RPT reports not checked: {why}"),
        }]
    };
    let store = match super::tlsrpt::existing_store(config) {
        Ok(Some(store)) => store,
        Ok(None) => return Vec::new(),
        Err(why) => return unknown(why),
    };
    let state = match crate::roll::state::load_dir(&config.state_dir) {
        Ok(state) => state,
        Err(e) => return unknown(e.to_string()),
    };
    let warn = config.tlsrpt.as_ref().map_or(0, |t| t.warn_failures);
    let now = crate::roll::state::Timestamp::from_system(SystemTime::now());
    let empty = crate::roll::state::SetState::default();
    let mut findings = Vec::new();
    for set in selected_sets(config, only) {
        let set_state = state.sets.get(set.name.get_ref()).unwrap_or(&empty);
        match feedback::verdicts(&store, set, set_state, warn, now) {
            Ok(verdicts) => findings.extend(verdicts.into_iter().map(|v| Finding {
                status: match v.level {
                    feedback::Level::Critical => Status::Critical,
                    feedback::Level::Warning => Status::Warning,
                },
                message: v.message,
            })),
            Err(e) => return unknown(e.to_string()),
        }
    }
    findings
}

fn selected_sets<'a>(config: &'a Config, only: &'a [String]) -> impl Iterator<Item = &'a CertSet> {
    config
        .sets
        .iter()
        .filter(move |set| only.is_empty() || only.contains(set.name.get_ref()))
}

/// Every endpoint of the selected sets, each once (two sets of a dual
/// RSA+ECDSA server share their endpoints).
fn config_targets(config: &Config, only: &[String]) -> Result<Vec<Target>, String> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !config.sets.iter().any(|s| s.name.get_ref() == *name))
    {
        return Err(format!(
            "--set {unknown}: no certificate set of that name in the config"
        ));
    }
    let mut targets: Vec<Target> = Vec::new();
    for set in selected_sets(config, only) {
        for (endpoint, addresses) in set
            .live_endpoints()
            .map_err(|why| format!("set {}: {why}", set.name.get_ref()))?
        {
            let duplicate = targets.iter().any(|t| {
                matches!(t, Target::Endpoint { endpoint: e, addresses: a }
                    if *e == endpoint && *a == addresses)
            });
            if !duplicate {
                targets.push(Target::Endpoint {
                    endpoint,
                    addresses,
                });
            }
        }
    }
    if targets.is_empty() {
        return Err("the config has no endpoint to check".into());
    }
    Ok(targets)
}

/// UNKNOWN: the monitoring line still goes to stdout (as JSON with --json),
/// and the reason to stderr.
fn unknown(args: &CheckArgs, why: String, out: &mut dyn Write) -> Failure {
    // The monitoring line is one line: a config error's excerpt goes to stderr only.
    let first = why.lines().next().unwrap_or_default();
    if args.json {
        let doc = serde_json::json!({
            "schema": crate::live::report::SCHEMA,
            "status": Status::Unknown,
            "exit_code": Status::Unknown.exit_code(),
            "summary": format!("TLSA UNKNOWN: {first}"),
            "error": why,
        });
        let _ = writeln!(out, "{doc:#}");
    } else {
        let _ = writeln!(out, "TLSA UNKNOWN: {first}");
    }
    Failure::Monitoring {
        code: Status::Unknown.exit_code(),
        messages: vec![why],
    }
}

/// The SMTP port, when --port is not given.
const DEFAULT_PORT: u16 = 25;

type Prepared = (Vec<Target>, CheckOptions, SocketAddr, Trust, Option<Config>);

fn prepare(args: &CheckArgs) -> Result<Prepared, String> {
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(format!(
            "--timeout {} is not a number of seconds between 0 and 3600",
            args.timeout
        ));
    }
    let port = args.port.unwrap_or(DEFAULT_PORT);
    let one_endpoint = args.host.is_some() || args.mx.is_some();
    if !one_endpoint
        && (args.port.is_some() || args.starttls.is_some() || !args.addresses.is_empty())
    {
        // Without HOST they would silently not apply to the configured endpoints.
        return Err(
            "--port, --starttls and --address describe one endpoint: give its HOST (or --mx DOMAIN); a config's endpoints carry their own"
                .into(),
        );
    }
    // Nothing named on the command line: the configured endpoints, from the
    // config every other command reads by default.
    let default_config = (!one_endpoint && args.config.is_none()).then(|| {
        std::env::var_os("TLSA_CONFIG")
            .map_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH), PathBuf::from)
    });
    let config = args
        .config
        .as_ref()
        .or(default_config.as_ref())
        .map(|file| Config::load(file).map_err(|e| e.to_string()))
        .transpose()?;
    let targets = match (&args.host, &args.mx) {
        _ if config.is_some() => config_targets(config.as_ref().expect("checked"), &args.sets)?,
        (_, Some(domain)) => vec![Target::Mx {
            domain: check::normalise_domain(domain)?,
            port,
            protocol: args.starttls.unwrap_or(Protocol::Smtp),
        }],
        (Some(host), None) => {
            let endpoint = Endpoint::new(host, port, args.starttls)?;
            let addresses = if args.addresses.is_empty() {
                None
            } else {
                Some(
                    args.addresses
                        .iter()
                        .map(|a| parse_address(a, port))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            vec![Target::Endpoint {
                endpoint,
                addresses,
            }]
        }
        (None, None) => {
            return Err("give a HOST to check, --mx DOMAIN, or -c CONFIG".into());
        }
    };
    let resolver = match (&args.resolver, &config) {
        (Some(text), _) => parse_resolver(text)?,
        (None, Some(config)) => config.dnssec.resolver,
        (None, None) => resolve::system_resolver()?,
    };
    let trust = match (&args.anchor, args.trust_ad, &config) {
        (_, true, _) => Trust::ResolverAd,
        (Some(file), false, _) => Trust::Anchored(Anchors::File(file.clone())),
        (None, false, Some(config)) => config.dnssec.trust(),
        (None, false, None) => Trust::Anchored(Anchors::RootKeys),
    };
    let helo = match &args.helo {
        Some(name) => {
            crate::live::endpoint::normalise_host(name).map_err(|e| format!("--helo: {e}"))?
        }
        None => default_helo(),
    };
    let options = CheckOptions {
        connect: ConnectOptions {
            timeout: Duration::from_secs_f64(args.timeout),
            helo,
            key_kind: None,
        },
        expiry_days: args.expiry_days,
        now: SystemTime::now(),
        webpki: None,
    };
    Ok((targets, options, resolver, trust, config))
}

/// `192.0.2.1:25`, `[2001:db8::1]:25`, or an address alone (then `port`).
fn parse_address(text: &str, port: u16) -> Result<SocketAddr, String> {
    crate::config::with_default_port(text, port).ok_or_else(|| {
        format!("--address {text:?} is not an IP address with an optional port (192.0.2.1:25, [2001:db8::1]:25)")
    })
}

fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    crate::config::parse_dns_address(text).map_err(|why| format!("--resolver {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_resolvers_parse() {
        assert_eq!(
            parse_address("127.0.0.1:2525", 25).unwrap(),
            "127.0.0.1:2525".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:25", 587).unwrap(),
            "[::1]:25".parse().unwrap()
        );
        assert_eq!(
            parse_address("::1", 587).unwrap(),
            "[::1]:587".parse().unwrap()
        );
        assert!(parse_address("mail.example.com:25", 25).is_err());
        assert_eq!(
            parse_resolver("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert!(
            parse_resolver("localhost")
                .unwrap_err()
                .contains("--resolver")
        );
    }
}
