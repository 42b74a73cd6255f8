//! `tlsa providers`: checks, read-only, that a back-end's credentials work
//! for a zone, without printing any secret. Until back-ends are part of the
//! configuration file, the back-end is described by flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hickory_proto::rr::Name;

use super::Failure;
use crate::dns::backend::{BackendConfig, check_credentials};
use crate::dns::cloudflare::CloudflareConfig;
use crate::dns::desec::DesecConfig;
use crate::dns::http::SecretSource;
use crate::dns::powerdns::{DEFAULT_SERVER_ID, PowerDnsConfig};
use crate::dns::zonefile::ZoneFileConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Cloudflare,
    Desec,
    Powerdns,
    Zonefile,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    tlsa providers --backend powerdns --zone example.com --api-url http://127.0.0.1:8081 --secret-file /etc/tlsa/pdns.key\n  \
    tlsa providers --backend cloudflare --zone example.com --secret-env CLOUDFLARE_API_TOKEN\n  \
    tlsa providers --backend zonefile --zone example.com --records-file /etc/bind/tlsa.example.com.db \\\n      \
    --serial-file /etc/bind/example.com.db -- rndc reload {zone}")]
pub struct ProvidersArgs {
    /// The back-end to check.
    #[arg(long)]
    pub backend: Kind,
    /// The zone the records are published in.
    #[arg(long)]
    pub zone: String,
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
    let config = backend_config(args).map_err(|e| Failure::Input(vec![e]))?;
    let zone = Name::from_ascii(&args.zone)
        .map(|mut z| {
            z.set_fqdn(true);
            z
        })
        .map_err(|e| Failure::Input(vec![format!("--zone {:?}: {e}", args.zone)]))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(vec![format!("cannot start the async runtime: {e}")]))?;
    let check = runtime.block_on(check_credentials(&config, &zone));
    let written = if args.json {
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
        writeln!(out, "{value:#}")
    } else {
        writeln!(out, "{check}")
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write the output: {e}")]))?;
    match check.outcome {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::Runtime(vec![e.to_string()])),
    }
}

fn backend_config(args: &ProvidersArgs) -> Result<BackendConfig, String> {
    let secret = || match (&args.secret_file, &args.secret_env) {
        (Some(file), _) => Ok(SecretSource::File(file.clone())),
        (None, Some(var)) => Ok(SecretSource::Env(var.clone())),
        (None, None) => Err(format!(
            "--backend {}: give --secret-file FILE or --secret-env VARIABLE",
            args.backend
                .to_possible_value()
                .map_or("?".into(), |v| v.get_name().to_string())
        )),
    };
    Ok(match args.backend {
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
            let zone =
                Name::from_ascii(&args.zone).map_err(|e| format!("--zone {:?}: {e}", args.zone))?;
            let mut config = ZoneFileConfig::new(zone, records, args.reload.clone());
            config.serial_file = args.serial_file.clone();
            BackendConfig::ZoneFile(config)
        }
    })
}
