//! `tlsa providers`: checks, read-only, that the back-ends' credentials work,
//! without printing any secret: every zone of the config (RFC 2136 with a
//! TSIG-signed query), or one back-end described by flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hickory_proto::rr::Name;

use super::Failure;
use super::common::{self, ConfigArgs};
use crate::dns::publish::backend::{BackendConfig, CredentialCheck, check_credentials};
use crate::dns::publish::cloudflare::CloudflareConfig;
use crate::dns::publish::desec::DesecConfig;
use crate::dns::publish::powerdns::{DEFAULT_SERVER_ID, PowerDnsConfig};
use crate::dns::publish::zonefile::ZoneFileConfig;
use crate::secrets::SecretSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Cloudflare,
    Desec,
    Powerdns,
    Zonefile,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every back-end works, 1 a back-end refused or failed, \
    2 the config (or a file it names, e.g. a token or TSIG key file) is wrong.\n\n\
    Examples:\n  \
    tlsa providers                       (every zone of $TLSA_CONFIG or /etc/tlsa/tlsa.toml)\n  \
    tlsa providers -c /etc/tlsa/tlsa.toml --zone example.com\n  \
    tlsa providers --backend powerdns --zone example.com --api-url http://127.0.0.1:8081 --secret-file /etc/tlsa/pdns.key\n  \
    tlsa providers --backend cloudflare --zone example.com --secret-env CLOUDFLARE_API_TOKEN\n  \
    tlsa providers --backend zonefile --zone example.com --records-file /etc/bind/tlsa.example.com.db \\\n      \
    --serial-file /etc/bind/example.com.db -- rndc reload {zone}"
)]
pub struct ProvidersArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check this back-end, described by the flags below, instead of the
    /// config's zones.
    #[arg(long)]
    pub backend: Option<Kind>,
    /// The zone the records are published in (with a config: only this zone).
    #[arg(long)]
    pub zone: Option<String>,
    /// The API's URL (Cloudflare, deSEC: their public API by default; PowerDNS: the webserver).
    #[arg(long)]
    pub api_url: Option<String>,
    /// PowerDNS server id.
    #[arg(long, default_value = DEFAULT_SERVER_ID)]
    pub server_id: String,
    /// File holding the API token (Cloudflare, deSEC) or API key (PowerDNS).
    #[arg(long, conflicts_with = "secret_env")]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the API token or key.
    #[arg(long)]
    pub secret_env: Option<String>,
    /// Zone file back-end: the records file tlsa owns.
    #[arg(long)]
    pub records_file: Option<PathBuf>,
    /// Zone file back-end: the zone's main file, whose SOA serial tlsa increments.
    #[arg(long)]
    pub serial_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Zone file back-end: the reload command, after `--` (`{zone}` is replaced).
    #[arg(last = true)]
    pub reload: Vec<String>,
}

pub fn run(args: &ProvidersArgs, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let backends = match args.backend {
        Some(kind) => {
            let zone = args
                .zone
                .as_deref()
                .ok_or_else(|| Failure::Input(vec!["--backend needs --zone ZONE".into()]))?;
            let config = backend_config(args, kind, zone).map_err(|e| Failure::Input(vec![e]))?;
            vec![(absolute(zone)?, Ok(config))]
        }
        None => configured(args)?,
    };
    let checks: Vec<CredentialCheck> = common::runtime()?.block_on(async {
        let mut checks = Vec::new();
        for (zone, config) in &backends {
            checks.push(match config {
                Ok(config) => check_credentials(config, zone).await,
                Err(why) => CredentialCheck {
                    zone: zone.clone(),
                    kind: "config",
                    backend: None,
                    outcome: Err(crate::dns::DnsError::Config(why.clone())),
                },
            });
        }
        checks
    });
    let written = if args.json {
        let values: Vec<serde_json::Value> = checks.iter().map(json).collect();
        // One back-end by flags: one object, as before; the config's: a list.
        match (args.backend, values.as_slice()) {
            (Some(_), [one]) => writeln!(out, "{one:#}"),
            _ => writeln!(out, "{:#}", serde_json::Value::Array(values)),
        }
    } else {
        checks.iter().try_for_each(|check| writeln!(out, "{check}"))
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write the output: {e}")]))?;
    let failed: Vec<&crate::dns::DnsError> = checks
        .iter()
        .filter_map(|c| c.outcome.as_ref().err())
        .collect();
    let messages = failed.iter().map(ToString::to_string).collect();
    match failed.as_slice() {
        [] => Ok(()),
        all if all.iter().all(|e| common::is_config_error(e)) => Err(Failure::Input(messages)),
        _ => Err(Failure::Runtime(messages)),
    }
}

fn json(check: &CredentialCheck) -> serde_json::Value {
    let mut value = serde_json::json!({
        "zone": check.zone.to_string(),
        "backend": check.kind,
        "description": check.backend,
        "ok": check.is_ok(),
    });
    match &check.outcome {
        Ok(details) => value["details"] = serde_json::json!(details),
        Err(e) => value["error"] = serde_json::json!(e.to_string()),
    }
    value
}

fn absolute(zone: &str) -> Result<Name, Failure> {
    Name::from_ascii(zone)
        .map(|mut z| {
            z.set_fqdn(true);
            z
        })
        .map_err(|e| Failure::Input(vec![format!("--zone {zone:?}: {e}")]))
}

/// Every zone of the config (or the one `--zone` names) with its back-end.
type Configured = Vec<(Name, Result<BackendConfig, String>)>;

fn configured(args: &ProvidersArgs) -> Result<Configured, Failure> {
    let config = args.config.load()?;
    let wanted = args.zone.as_deref().map(absolute).transpose()?;
    let zones: Configured = config
        .zones
        .iter()
        .filter_map(|zone| {
            let name = absolute(zone.name.get_ref()).ok()?;
            wanted
                .as_ref()
                .is_none_or(|w| *w == name)
                .then(|| (name.clone(), zone.backend(&name)))
        })
        .collect();
    if zones.is_empty() {
        return Err(Failure::Input(vec![match &args.zone {
            Some(zone) => format!(
                "{}: no [[zone]] named {zone:?}",
                args.config.config.display()
            ),
            None => format!("{}: no [[zone]] to check", args.config.config.display()),
        }]));
    }
    Ok(zones)
}

fn backend_config(args: &ProvidersArgs, kind: Kind, zone: &str) -> Result<BackendConfig, String> {
    let secret = || match (&args.secret_file, &args.secret_env) {
        (Some(file), _) => Ok(SecretSource::File(file.clone())),
        (None, Some(var)) => Ok(SecretSource::Env(var.clone())),
        (None, None) => Err(format!(
            "--backend {}: give --secret-file FILE or --secret-env VARIABLE",
            kind.to_possible_value()
                .map_or("?".into(), |v| v.get_name().to_string())
        )),
    };
    Ok(match kind {
        Kind::Cloudflare => {
            let mut config = CloudflareConfig::new(secret()?);
            if let Some(url) = &args.api_url {
                config.base_url = url.clone();
            }
            BackendConfig::Cloudflare(config)
        }
        Kind::Desec => {
            let mut config = DesecConfig::new(secret()?);
            if let Some(url) = &args.api_url {
                config.base_url = url.clone();
            }
            BackendConfig::Desec(config)
        }
        Kind::Powerdns => {
            let url = args.api_url.clone().ok_or(
                "--backend powerdns needs --api-url (the webserver, e.g. http://127.0.0.1:8081)",
            )?;
            let mut config = PowerDnsConfig::new(url, secret()?);
            config.server_id = args.server_id.clone();
            BackendConfig::PowerDns(config)
        }
        Kind::Zonefile => {
            let records = args
                .records_file
                .clone()
                .ok_or("--backend zonefile needs --records-file FILE")?;
            if args.reload.is_empty() {
                return Err(
                    "--backend zonefile needs the reload command after `--`, e.g. -- rndc reload {zone}"
                        .into(),
                );
            }
            let zone = Name::from_ascii(zone).map_err(|e| format!("--zone {zone:?}: {e}"))?;
            let mut config = ZoneFileConfig::new(zone, records, args.reload.clone());
            config.serial_file = args.serial_file.clone();
            BackendConfig::ZoneFile(config)
        }
    })
}
