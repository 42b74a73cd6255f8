//! Wiring: the config's zones become publishing back-ends, server
//! discovery and the writer of each zone; the resolver and trust anchor
//! become the validator.

use super::*;

fn load_tsig(zone: &str, secret: &SecretRef) -> Result<TsigKey, EngineError> {
    let key = match (&secret.file, &secret.env) {
        (Some(file), _) => TsigKey::from_file(file, None),
        (None, Some(var)) => TsigKey::from_env(var),
        (None, None) => {
            return Err(EngineError::Config(format!(
                "zone {zone}: tsig_key needs file or env"
            )));
        }
    };
    key.map_err(|e| EngineError::Config(format!("zone {zone}: {e}")))
}

/// The publishing back-end of a configured zone.
fn build_provider(
    zone: &crate::config::Zone,
    name: &Name,
    secret_env: &[String],
    progress: &Progress,
) -> Result<Box<dyn Provider>, EngineError> {
    use crate::dns::backend::BackendConfig;
    use crate::dns::{cloudflare, desec, powerdns, zonefile};
    let required = |what: &str| EngineError::Config(format!("zone {name}: {what} is missing"));
    let config = match zone.backend {
        BackendKind::Rfc2136 => {
            let server = zone.server.ok_or_else(|| required("server"))?;
            let key = zone
                .tsig_key
                .as_ref()
                .map(|s| load_tsig(zone.name.get_ref(), s))
                .transpose()?;
            for warning in key.iter().flat_map(TsigKey::warnings) {
                progress(&format!("warning: zone {name}: {warning}"));
            }
            return Ok(Box::new(Rfc2136::new(server, key).with_zone(name.clone())));
        }
        BackendKind::Powerdns => {
            let url = zone.api_url.clone().ok_or_else(|| required("api_url"))?;
            let key = zone.api_key.as_ref().ok_or_else(|| required("api_key"))?;
            let mut config = powerdns::PowerDnsConfig::new(url, key.source());
            if let Some(id) = &zone.server_id {
                config.server_id = id.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::PowerDns(config)
        }
        BackendKind::Cloudflare => {
            let token = zone.token.as_ref().ok_or_else(|| required("token"))?;
            let mut config = cloudflare::CloudflareConfig::new(token.source());
            if let Some(url) = &zone.api_url {
                config.base_url = url.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::Cloudflare(config)
        }
        BackendKind::Desec => {
            let token = zone.token.as_ref().ok_or_else(|| required("token"))?;
            let mut config = desec::DesecConfig::new(token.source());
            if let Some(url) = &zone.api_url {
                config.base_url = url.clone();
            }
            config.zones = vec![name.clone()];
            BackendConfig::Desec(config)
        }
        BackendKind::Zonefile => {
            let file = zone
                .records_file
                .clone()
                .ok_or_else(|| required("records_file"))?;
            let reload = zone.reload.clone().ok_or_else(|| required("reload"))?;
            let mut config = zonefile::ZoneFileConfig::new(name.clone(), file, reload);
            config.serial_file = zone.serial_file.clone();
            config.hidden_env = secret_env.to_vec();
            BackendConfig::ZoneFile(config)
        }
    };
    Ok(config.build()?)
}

pub(super) fn parse_name(text: &str, what: &str) -> Result<Name, EngineError> {
    let absolute = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(&absolute)
        .map_err(|e| EngineError::Config(format!("{what} {text:?} is not a DNS name: {e}")))
}

/// One zone's back-end and servers, for [`Engine::from_parts`].
pub struct ZoneParts {
    pub name: Name,
    pub provider: Box<dyn Provider>,
    pub servers: Box<dyn FindServers>,
}

/// Everything the engine talks to, for [`Engine::from_parts`]: what tests
/// replace with fakes.
pub struct Parts {
    /// One per `[[zone]]` of the config, in its order.
    pub zones: Vec<ZoneParts>,
    pub validator: Box<dyn ValidateTlsa>,
    /// Observes what the servers of `verify = "live"` sets present.
    pub servers: Box<dyn Servers>,
}

impl Engine {
    /// Builds the back-ends, server discovery and the validator from the config.
    pub async fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        servers: Box<dyn Servers>,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let mut zones = Vec::new();
        let secret_env = crate::command::secret_env_names(&config);
        for zone in &config.zones {
            let name = parse_name(zone.name.get_ref(), "zone name")?;
            let provider = build_provider(zone, &name, &secret_env, &progress)?;
            let discovery = Discovery::new(name.clone(), Lookup::Resolver(config.dnssec.resolver))
                .port(zone.ns_port)
                .extra(zone.extra_servers.iter().copied());
            zones.push(ZoneParts {
                name,
                provider,
                servers: Box::new(discovery),
            });
        }
        let validator = match config.dnssec.mode {
            ValidationMode::Anchored => {
                let anchors = match &config.dnssec.anchor {
                    Some(file) => Anchors::File(file.clone()),
                    None => Anchors::RootKeys,
                };
                Validator::anchored(config.dnssec.resolver, &anchors).await?
            }
            ValidationMode::Ad => Validator::resolver_ad(config.dnssec.resolver),
        };
        let parts = Parts {
            zones,
            validator: Box::new(validator),
            servers,
        };
        Ok(Engine::from_parts(config, clock, parts, progress))
    }

    /// An engine over the given back-ends, servers and validator (fakes in
    /// tests); the config's zones must match `parts.zones` in order.
    pub fn from_parts(
        config: Config,
        clock: Arc<dyn Clock>,
        parts: Parts,
        progress: Progress,
    ) -> Engine {
        let zones = parts
            .zones
            .into_iter()
            .map(|zone| ZoneRuntime {
                name: zone.name,
                provider: zone.provider,
                servers: zone.servers,
                writer: ZoneWriter::default(),
            })
            .collect();
        let secret_env = crate::command::secret_env_names(&config);
        Engine {
            config,
            clock,
            zones,
            validator: parts.validator,
            servers: parts.servers,
            progress,
            countdown: None,
            serials: Mutex::new(BTreeMap::new()),
            secret_env,
        }
    }
}
